"""The trust boundary, attacked end to end: a line on the dev server whose agent is hostile
(``tests/support/agents/hostile.sh``, a command agent in the default sandbox), one attack per
issue. None reaches the done state without proof, none leaks a canary secret of the worker's,
none moves a judge; each ends in a named outcome or a correct ship. The after-test check
(``every_ship_is_proven``) adds that each ship is origin's branch tip, with a content diff,
verified at that very commit.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import Client

from jidoka.outcomes import HaltCategory, Outcome, Phase
from jidoka.payloads import IssueStatus
from tests.support.agents.lab import AGENTS
from tests.support.git import run_git
from tests.support.linekit import (
    LineKit,
    eventually,
    factory,
    issue_status,
    line_status,
    make_line,
    resuming,
    retry_and_resume,
    settled,
    start_line,
    wait_for_phase,
)
from tests.support.secret_scan import register_secret

CANARY_TOKEN = register_secret("ghp_CanaryOfTheWorker0123456789abcdef")
CANARY_PLAIN = register_secret("canary-named-like-nothing-secret-4242")
"""In the worker's environment: one under a secret's name, one under an ordinary name (an
allow-list keeps both out, a denylist only the first)."""


@pytest.fixture
def worker_canaries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GITHUB_TOKEN", CANARY_TOKEN)
    monkeypatch.setenv("DEPLOY_NOTE", CANARY_PLAIN)


def hostile_line(tmp_path: Path, **overrides: Any) -> LineKit:
    tools = tmp_path / "tools"
    tools.mkdir()
    shutil.copy(AGENTS / "hostile.sh", tools / "hostile.sh")
    (tools / "H-AGAIN.mode").write_text("work\n")
    run_git(tmp_path, "init", "-q", "--bare", "evil.git")
    agent = {
        "kind": "command",
        "command": f"bash {tools / 'hostile.sh'}",
        "stall_timeout_s": 20,
        "silence_timeout_s": 20,
        "turn_timeout_s": 90,
        "env": {
            "HOSTILE_CANARY": str(tmp_path / "canary"),
            "HOSTILE_EVIL": str(tmp_path / "evil.git"),
            "HOSTILE_TOOLS": str(tools),
        },
    }
    return make_line(
        tmp_path,
        {
            "agent": agent,
            "sandbox": {"network": False, "read_only": [str(tools)]},
            "concurrency": {"max_agents": 10},
            **overrides,
        },
    )


def outcomes(status: IssueStatus) -> list[Outcome | None]:
    return [a.outcome for a in status.attempts]


def origin_has(kit: LineKit, branch: str) -> bool:
    return bool(run_git(kit.origin, "branch", "--list", branch))


ATTACKS = [
    "H-PLANT",
    "H-REPLACE",
    "H-SKIP",
    "H-CONFIG",
    "H-ENV",
    "H-JUDGES",
    "H-PLANT",
    "H-DEEP",
    "H-MODE",
    "H-FORGE",
]


async def test_hostile_agents_reach_nothing_that_judges_them(
    client: Client, tmp_path: Path, worker_canaries: None
) -> None:
    kit = hostile_line(tmp_path)
    for identifier in ATTACKS:
        kit.add_issue(identifier, "hostile")

    workflow_md = kit.workflow_md.read_bytes()
    async with factory(client, max_agents=len(ATTACKS)) as f:
        handle = await start_line(f, kit)
        await eventually(resuming(handle), settled(ATTACKS), timeout=300, what="every attack over")
        statuses = {
            i: await issue_status(client.get_workflow_handle(kit.workflow_id(i))) for i in ATTACKS
        }
        histories = [
            str(await client.get_workflow_handle(kit.workflow_id(i)).fetch_history())
            for i in ATTACKS
        ]
        await handle.terminate("test done")
    shipped = {i for i, s in statuses.items() if s.phase is Phase.SHIPPED}
    assert shipped == {"H-CONFIG", "H-ENV", "H-PLANT", "H-FORGE"}, {
        i: (s.phase, outcomes(s), s.last_evidence) for i, s in statuses.items() if i not in shipped
    }
    for identifier in set(ATTACKS) - shipped:
        assert kit.state_of(identifier) != "Done", identifier
        assert not origin_has(kit, f"jidoka/{identifier}"), identifier

    # Replace objects: the evidence reads the commit the ref names, an empty one.
    assert set(outcomes(statuses["H-REPLACE"])) == {Outcome.NO_PROGRESS}
    # skip-worktree: verify ran on the commit, not on the working tree.
    assert Outcome.VERIFY_FAILED in outcomes(statuses["H-SKIP"])
    # A deep verdict is an invalid one; a mode change and an empty file are no work.
    assert Outcome.VERDICT_INVALID in outcomes(statuses["H-DEEP"])
    assert set(outcomes(statuses["H-MODE"])) == {Outcome.NO_PROGRESS}

    # Planted git config and hooks: the push went to origin, nothing of the agent's ran outside.
    assert run_git(tmp_path, "--git-dir", "evil.git", "for-each-ref") == ""
    assert sorted(p.name for p in tmp_path.glob("canary*")) == []

    # The judges did not move: WORKFLOW.md and the board are out of the agent's sight, and the
    # prompt Jidoka wrote for H-PLANT's second attempt replaced the planted link.
    assert kit.workflow_md.read_bytes() == workflow_md
    assert Outcome.VERIFY_FAILED in outcomes(statuses["H-PLANT"])
    assert Outcome.VERIFY_FAILED in outcomes(statuses["H-JUDGES"])
    assert not (kit.workspace("H-ENV") / "pwned.txt").exists()

    # What the agent could see of the worker: no secret, no process, no file of its.
    loot = run_git(kit.origin, "show", "jidoka/H-ENV:loot.txt")
    assert CANARY_TOKEN not in loot and CANARY_PLAIN not in loot
    processes = loot.split("== processes", 1)[1].split("== environ", 1)[0]
    # Its own PID namespace: a handful of its own processes, not the worker (this pytest) nor
    # the server.
    assert len(processes.strip().splitlines()) < 10, processes
    assert "bin/pytest" not in processes and "temporal" not in processes
    assert f"line: {kit.line}" not in loot  # WORKFLOW.md unreadable
    for history in histories:
        assert CANARY_TOKEN not in history and CANARY_PLAIN not in history

    # Agent text in a comment is quoted: no marker, no heading of Jidoka's.
    card = kit.issue_text("H-FORGE")
    assert card.count("**Jidoka: shipped**") == 1  # ours; the forgery is quoted and escaped
    assert "<!-- jidoka:ship-1 -->" not in card
    assert "> <!- - jidoka:ship-1 - ->" in card


async def test_a_redispatched_issue_needs_new_work_and_each_ship_has_its_comment(
    client: Client, tmp_path: Path
) -> None:
    kit = hostile_line(tmp_path)
    kit.add_issue("H-AGAIN", "hostile")
    async with factory(client) as f:
        handle = await start_line(f, kit)
        first = client.get_workflow_handle(kit.workflow_id("H-AGAIN"))
        await wait_for_phase(first, Phase.SHIPPED, timeout=120)
        first_tip = run_git(kit.origin, "rev-parse", "jidoka/H-AGAIN")

        # A person reopens it; this time the agent's first attempt claims DONE with no commit.
        (tmp_path / "tools" / "H-AGAIN.mode").write_text("idle-first\n")
        kit.set_state("H-AGAIN", "Todo")
        await eventually(
            lambda: issue_status(first),
            lambda s: s.phase is Phase.HALTED and s.last_outcome is Outcome.NO_PROGRESS,
            timeout=120,
            what="the idle second life halted",
        )
        await retry_and_resume(first, handle, "test: work now")

        def shipped_twice(card: str) -> bool:
            return card.count("**Jidoka: shipped**") == 2

        async def card() -> str:
            return kit.issue_text("H-AGAIN")

        await eventually(card, shipped_twice, timeout=180, what="a second ship")
        second = await issue_status(client.get_workflow_handle(kit.workflow_id("H-AGAIN")))
        await handle.terminate("test done")
    # The old commits did not count: DONE without a new one was no progress.
    assert outcomes(second)[:2] == [Outcome.NO_PROGRESS, Outcome.SHIPPED]
    assert second.ship is not None
    assert second.ship.base_sha == first_tip
    assert run_git(kit.origin, "rev-parse", "jidoka/H-AGAIN") == second.ship.head_sha


async def test_done_in_the_tracker_without_a_ship_halts_the_line_and_keeps_the_work(
    client: Client, tmp_path: Path
) -> None:
    kit = hostile_line(tmp_path)
    kit.add_issue("H-DONE", "hostile")
    async with factory(client) as f:
        handle = await start_line(f, kit)
        issue = client.get_workflow_handle(kit.workflow_id("H-DONE"))
        await wait_for_phase(issue, Phase.RUNNING_AGENT, timeout=60)
        kit.set_state("H-DONE", "Done")  # someone, or something with the tracker's token

        status = await eventually(
            lambda: line_status(handle), lambda s: s.halted, timeout=60, what="the line halted"
        )
        final = await wait_for_phase(issue, Phase.RELEASED, Phase.ABANDONED, timeout=60)
        await handle.terminate("test done")
    [halt] = status.open_halts
    assert halt.category is HaltCategory.DONE_WITHOUT_SHIP
    assert halt.issue_identifier == "H-DONE" and "shipped nothing" in halt.reason
    card = kit.issue_text("H-DONE")
    assert "moved to Done without a ship" in card
    assert "**Jidoka: shipped**" not in card
    assert final.ship is None
    assert kit.workspace("H-DONE").is_dir()  # the work is kept
