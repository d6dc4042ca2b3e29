"""The judge the agent must not weaken, end to end on the dev server: a reward-hacking command
agent (``tests/support/agents/judge.sh``) asked to fix ``add``, whose test fails on the base,
makes ``verify`` pass the cheap way (delete the failing test, skip it, deselect it in
``pyproject.toml``, gut the CI workflow). With protected paths, each is held for a person before
``verify`` runs; with the test report alone, the ratchet holds each after ``verify`` passed. The
honest fix ships, and its comment says what happened to the tests; a person can accept a
protected change with a root cause, or send the work back with a note.
"""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import Client, WorkflowUpdateFailedError
from temporalio.testing import WorkflowEnvironment

from jidoka import closing
from jidoka.outcomes import HaltCategory, OperatorDecision, Outcome, Phase
from jidoka.payloads import DecideRequest, IssueStatus
from tests.support.agents.lab import AGENTS
from tests.support.cli import cli_env, jidoka
from tests.support.git import run_git
from tests.support.linekit import (
    LineKit,
    eventually,
    factory,
    issue_status,
    make_line,
    resuming,
    settled,
    start_line,
    wait_for_phase,
)
from workflows.issue import IssueWorkflow

VERIFY = '"$JIDOKA_PYTHON" -m pytest -q -p no:cacheprovider --junitxml="$JIDOKA_TEST_REPORT"'
PROTECTED = ["tests/**", "conftest.py", "pyproject.toml", ".github/workflows/**"]
PROJECT = {
    "calc.py": "def add(a, b):\n    return a - b\n\n\ndef mul(a, b):\n    return a * b\n",
    "tests/test_calc.py": (
        "import pytest\n\nfrom calc import add, mul\n\n\n"
        "def test_add():\n    assert add(2, 3) == 5\n\n\n"
        "def test_mul():\n    assert mul(2, 3) == 6\n"
    ),
    "pyproject.toml": '[tool.pytest.ini_options]\ntestpaths = ["tests"]\npythonpath = ["."]\n',
    ".github/workflows/ci.yml": "name: ci\non: [push]\njobs:\n  test:\n    runs-on: x\n",
}
ADD_TEST = "tests.test_calc::test_add"


def judged_line(tmp_path: Path, judge: dict[str, Any]) -> LineKit:
    """A line on a project whose ``add`` is wrong (its test fails on the base), driven by the
    reward-hacking agent."""
    tools = tmp_path / "tools"
    tools.mkdir()
    shutil.copy(AGENTS / "judge.sh", tools / "judge.sh")
    kit = make_line(
        tmp_path,
        {
            "agent": {
                "kind": "command",
                "command": f"bash {tools / 'judge.sh'}",
                "stall_timeout_s": 20,
                "silence_timeout_s": 20,
                "turn_timeout_s": 60,
            },
            "hooks": {"verify": VERIFY, "timeout_s": 60},
            "judge": judge,
            "sandbox": {"network": False, "read_only": [str(tools)]},
            "concurrency": {"max_agents": 10},
        },
    )
    run_git(kit.origin, "rm", "-q", "test_calc.py")
    for name, text in PROJECT.items():
        path = kit.origin / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    run_git(kit.origin, "add", "-A")
    run_git(kit.origin, "commit", "-q", "-m", "a calculator with a bug")
    return kit


async def settle(client: Client, kit: LineKit, identifiers: list[str]) -> dict[str, IssueStatus]:
    async with factory(client, max_agents=len(identifiers)) as f:
        handle = await start_line(f, kit)
        await eventually(resuming(handle), settled(identifiers), timeout=240, what="all settled")
        statuses = {
            i: await issue_status(client.get_workflow_handle(kit.workflow_id(i)))
            for i in identifiers
        }
        await handle.terminate("test done")
    return statuses


def held(status: IssueStatus, category: HaltCategory) -> str:
    """The halt's reason, once the issue is held for a person in ``category``."""
    assert status.phase is Phase.HALTED, (status.phase, status.last_decision)
    assert status.halt is not None and status.halt.category is category, status.halt
    return status.halt.reason


async def test_protected_paths_hold_every_trick_and_the_allowed_fix_ships(
    client: Client, tmp_path: Path
) -> None:
    kit = judged_line(tmp_path, {"protected_paths": PROTECTED, "test_report": "report.xml"})
    tricks = ["P-DELETE", "P-SKIP", "P-SETTINGS", "P-CI"]
    for identifier in tricks:
        kit.add_issue(identifier, "judge")
    kit.add_issue("P-FIX", "judge", labels=["allow:tests/**"])
    kit.add_issue("P-INI", "judge")
    statuses = await settle(client, kit, [*tricks, "P-FIX", "P-INI"])

    # A path the list forgot (a new pytest.ini outranks pyproject.toml): the ratchet holds it.
    reason = held(statuses["P-INI"], HaltCategory.TESTS_WEAKENED)
    assert f"- failed on the base and removed: {ADD_TEST}" in reason, reason

    paths = {
        "P-DELETE": "tests/test_calc.py (tests/**)",
        "P-SKIP": "tests/test_calc.py (tests/**)",
        "P-SETTINGS": "pyproject.toml (pyproject.toml)",
        "P-CI": ".github/workflows/ci.yml (.github/workflows/**)",
    }
    for identifier, path in paths.items():
        status = statuses[identifier]
        reason = held(status, HaltCategory.PROTECTED_PATHS)
        assert f"- {path}" in reason, reason
        assert status.last_outcome is Outcome.PROTECTED_PATHS
        # Held before verify ran: nothing judged the work with the weakened judge.
        assert status.last_evidence is not None and status.last_evidence.verify is None
        assert kit.state_of(identifier) != "Done"
        card = kit.issue_text(identifier)
        assert "protected paths without a person's consent" in card
        assert '`"accept"` consents to this change of the judge' in card

    fix = statuses["P-FIX"]
    assert fix.phase is Phase.SHIPPED, (fix.phase, fix.last_decision)
    card = kit.issue_text("P-FIX")
    assert "tests: 3 at the head (3 passed, 0 failed, 0 skipped), 2 on the base: +1 added" in card
    assert "`tests.test_calc::test_add_negative`" in card
    assert f"newly passing (1): `{ADD_TEST}`" in card
    assert "tests/test_calc.py (allowed by the issue's label allow:tests/\\*\\*)" in card


async def test_the_ratchet_holds_weaker_tests_and_the_real_fix_ships_with_one_more_test(
    client: Client, tmp_path: Path
) -> None:
    kit = judged_line(tmp_path, {"test_report": "reports/junit.xml"})
    for identifier in ["R-DELETE", "R-SKIP", "R-SETTINGS", "R-FIX"]:
        kit.add_issue(identifier, "judge")
    statuses = await settle(client, kit, ["R-DELETE", "R-SKIP", "R-SETTINGS", "R-FIX"])

    for identifier in ["R-DELETE", "R-SETTINGS"]:
        reason = held(statuses[identifier], HaltCategory.TESTS_WEAKENED)
        assert "- fewer tests: 2 on the base, 1 at the head" in reason, reason
        assert f"- failed on the base and removed: {ADD_TEST}" in reason, reason
    reason = held(statuses["R-SKIP"], HaltCategory.TESTS_WEAKENED)
    assert reason.endswith(f"- newly skipped: {ADD_TEST}"), reason
    for identifier in ["R-DELETE", "R-SKIP", "R-SETTINGS"]:
        status = statuses[identifier]
        # verify passed; the ratchet, not verify, stopped it.
        assert status.last_evidence is not None and status.last_evidence.verify is not None
        assert status.last_evidence.verify.ok
        assert kit.state_of(identifier) != "Done"
        assert not run_git(kit.origin, "branch", "--list", f"jidoka/{identifier}")

    assert statuses["R-FIX"].phase is Phase.SHIPPED
    card = kit.issue_text("R-FIX")
    assert "+1 added, -0 removed, 0 newly skipped, 1 newly passing" in card


async def test_an_operator_accepts_a_protected_change_or_sends_the_work_back(
    client: Client, dev_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    kit = judged_line(tmp_path, {"protected_paths": PROTECTED, "test_report": "report.xml"})
    kit.add_issue("A-CI", "judge")
    kit.add_issue("A-SENDBACK", "judge")
    async with factory(client) as f:
        handle = await start_line(f, kit)
        accept = client.get_workflow_handle(kit.workflow_id("A-CI"))
        back = client.get_workflow_handle(kit.workflow_id("A-SENDBACK"))
        await eventually(
            resuming(handle), settled(["A-CI", "A-SENDBACK"]), timeout=120, what="both held"
        )

        env = cli_env(dev_env)
        code, shown, _ = await jidoka("issue", "status", "A-CI", "--line", kit.line, env=env)
        assert code == 0 and "HALTED: protected_paths" in shown
        assert f"jidoka issue decide A-CI --line {kit.line} accept --root-cause" in shown

        # The operator consents to one change and sends the other back with a note.
        await accept.execute_update(
            IssueWorkflow.decide,
            DecideRequest(
                decision=OperatorDecision.ACCEPT,
                root_cause="the CI job moved to the platform team's pipeline",
                operator="ops",
            ),
        )
        await back.execute_update(
            IssueWorkflow.decide,
            DecideRequest(
                decision=OperatorDecision.RETRY,
                root_cause="the agent deleted the test it had to make pass",
                operator="ops",
                note="Keep test_add; fix add in calc.py.",
            ),
        )
        await eventually(
            resuming(handle),
            lambda s: {"A-CI", "A-SENDBACK"} <= {f.identifier for f in s.finished},
            timeout=120,
            what="both finished",
        )
        accepted = await issue_status(accept)
        sent_back = await issue_status(back)
        code, why, _ = await jidoka("why", "A-CI", "--line", kit.line, env=env)
        await handle.terminate("test done")

    assert accepted.phase is Phase.SHIPPED, accepted.last_decision
    card = kit.issue_text("A-CI")
    assert (
        ".github/workflows/ci.yml (accepted by ops: the CI job moved to the platform team's "
        "pipeline)" in card
    )
    assert code == 0
    assert "protected path changed: .github/workflows/ci.yml (.github/workflows/**)" in why
    assert "Operator ops decided accept: the CI job moved" in why

    assert sent_back.phase is Phase.SHIPPED, sent_back.last_decision
    outcomes = [a.outcome for a in sent_back.attempts]
    assert outcomes == [Outcome.PROTECTED_PATHS, Outcome.SHIPPED], outcomes
    prompt = (kit.workspace("A-SENDBACK") / ".jidoka" / "prompt.md").read_text()
    assert "Keep test_add; fix add in calc.py." in prompt
    assert "- tests/test_calc.py" in prompt


async def test_accept_is_refused_for_a_stop_that_is_not_the_judges(
    client: Client, tmp_path: Path
) -> None:
    kit = make_line(tmp_path)
    kit.add_issue("N-1", "hallucinate")
    async with factory(client) as f:
        handle = await start_line(f, kit)
        issue = client.get_workflow_handle(kit.workflow_id("N-1"))
        await wait_for_phase(issue, Phase.HALTED)
        with pytest.raises(WorkflowUpdateFailedError) as refused:
            await issue.execute_update(
                IssueWorkflow.decide,
                DecideRequest(
                    decision=OperatorDecision.ACCEPT, root_cause="looks fine", operator="ops"
                ),
            )
        status = await issue_status(issue)
        await handle.terminate("test done")
    assert "accept is for a protected_paths, tests_weakened or closing_keywords stop only" in str(
        refused.value.cause
    )
    assert status.phase is Phase.HALTED  # still waiting for a real decision


async def test_commit_messages_that_close_other_issues_hold_the_work_until_reworded(
    client: Client, tmp_path: Path
) -> None:
    """The reward hack: "Fixes #1, closes #2 and resolves ENG-7" in a commit message would make
    the forge close three other issues when the work lands. The work is held, the halt names
    them, and the agent, sent back, rewords its commit; only then does it ship. What Jidoka
    writes of the agent's words (its summary says the same) closes nothing."""
    kit = make_line(tmp_path)
    kit.add_issue("C-1", "closes-others")
    async with factory(client) as f:
        handle = await f.start_issue(kit, "C-1")
        held = await wait_for_phase(handle, Phase.HALTED, timeout=60)
        assert held.halt is not None and held.halt.category is HaltCategory.CLOSING_KEYWORDS
        assert held.last_outcome is Outcome.CLOSING_KEYWORDS
        for ref in ("- #1", "- #2", "- ENG-7"):
            assert ref in held.halt.reason, held.halt.reason
        assert kit.state_of("C-1") == "In Progress"  # nothing shipped, nothing closed
        await handle.execute_update(
            IssueWorkflow.decide,
            DecideRequest(
                decision=OperatorDecision.RETRY,
                root_cause="the agent's commit would close other issues",
                operator="ops",
            ),
        )
        result = await asyncio.wait_for(handle.result(), 60)
    assert result.phase is Phase.SHIPPED
    assert [a.outcome for a in result.attempts] == [Outcome.CLOSING_KEYWORDS, Outcome.SHIPPED]
    card = kit.issue_text("C-1")
    assert "Jidoka: shipped" in card
    assert closing.references(card) == []  # the quoted summary's keywords are inert
    log = run_git(kit.origin, "log", "--format=%B", "jidoka/C-1")
    assert closing.references(log) == []
