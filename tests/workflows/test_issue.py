"""IssueWorkflow end to end on the real dev server: local board, real git, the scripted agent as
a real subprocess. Each scenario asserts the final tracker state, outcome, halt and counters."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from temporalio.client import Client

from jidoka.outcomes import HaltCategory, OperatorDecision, Outcome, Phase
from jidoka.payloads import AnswerRequest, DecideRequest
from runtime.history import steps
from tests.histories import assert_replays
from tests.support.git import run_git
from tests.support.linekit import board_text, eventually, factory, make_line, wait_for_phase
from workflows.issue import IssueWorkflow

TIMEOUT = 60


async def test_ship_moves_the_issue_to_done_with_evidence(client: Client, tmp_path: Path) -> None:
    kit = make_line(tmp_path)
    kit.add_issue("T-1", "ship")
    async with factory(client) as f:
        handle = await f.start_issue(kit, "T-1")
        result = await asyncio.wait_for(handle.result(), TIMEOUT)
        history = await handle.fetch_history()
    assert result.phase is Phase.SHIPPED
    assert result.outcome is Outcome.SHIPPED
    assert kit.state_of("T-1") == "Done"
    # One attempt reads WORKFLOW.md once and the issue once: nothing read twice for nothing.
    ran = [step.name for step in steps(history.events)]
    assert ran.count("load_workflow_config") == 1, ran
    assert ran.count("tracker_fetch_issue") == 1, ran
    # The short steps of the shared queue are local activities: one marker each, no input
    # (the config) copied into the history; what runs on the host stays an activity.
    await assert_replays(history)
    local = {step.name for step in steps(history.events) if step.local}
    assert {"load_workflow_config", "tracker_fetch_issue", "tracker_transition"} <= local
    assert local.isdisjoint({"prepare_workspace", "run_agent", "collect_evidence", "run_hook"})
    assert result.ship is not None and result.ship.commits_ahead >= 1
    assert result.ship.verify_passed is True
    text = kit.issue_text("T-1")
    assert "Jidoka: shipped" in text and "verify: passed" in text
    # The branch was pushed to origin: the shipped work outlives the workspace.
    assert run_git(kit.origin, "branch", "--list", "jidoka/T-1") != ""


async def test_hallucinated_success_halts_and_never_closes(client: Client, tmp_path: Path) -> None:
    kit = make_line(tmp_path)
    kit.add_issue("T-2", "hallucinate")
    async with factory(client) as f:
        handle = await f.start_issue(kit, "T-2")
        status = await wait_for_phase(handle, Phase.HALTED, timeout=TIMEOUT)
        assert status.halt is not None and status.halt.category is HaltCategory.NO_PROGRESS
        assert status.last_outcome is Outcome.NO_PROGRESS
        assert kit.state_of("T-2") == "In Progress"
        await handle.execute_update(
            IssueWorkflow.decide,
            DecideRequest(
                decision=OperatorDecision.ABANDON,
                root_cause="agent claims without commits",
                operator="tester",
            ),
        )
        result = await asyncio.wait_for(handle.result(), TIMEOUT)
    assert result.phase is Phase.ABANDONED
    assert kit.state_of("T-2") == "In Progress"
    assert "Jidoka: abandoned" in kit.issue_text("T-2")


async def test_ask_pauses_then_answer_ships(client: Client, tmp_path: Path) -> None:
    kit = make_line(tmp_path)
    kit.add_issue("T-3", "ask")
    async with factory(client) as f:
        handle = await f.start_issue(kit, "T-3")
        status = await wait_for_phase(handle, Phase.PAUSED, timeout=TIMEOUT)
        assert kit.state_of("T-3") == "Awaiting Answers"
        assert len(status.questions) == 2
        await handle.signal(
            IssueWorkflow.answer, AnswerRequest(answer="use option B", operator="pm")
        )
        result = await asyncio.wait_for(handle.result(), TIMEOUT)
    assert result.phase is Phase.SHIPPED
    assert kit.state_of("T-3") == "Done"
    assert "use option B" in kit.issue_text("T-3")


# Scenario -> (halt category, last outcome, failures, continuations, attempts) once halted.
HALTING = {
    "halt": (HaltCategory.HALT_PRODUCTION, Outcome.HALT_REQUESTED, 0, 0, 1),
    "no-verdict": (HaltCategory.VERDICT_MISSING, Outcome.VERDICT_MISSING, 0, 0, 1),
    "unknown-verdict": (HaltCategory.VERDICT_UNKNOWN, Outcome.VERDICT_UNKNOWN, 0, 0, 1),
    "invalid-verdict": (HaltCategory.VERDICT_INVALID, Outcome.VERDICT_INVALID, 0, 0, 1),
    "commit-then-revert": (HaltCategory.NO_PROGRESS, Outcome.NO_PROGRESS, 0, 0, 1),
    "breaks-tests": (HaltCategory.BUDGET_EXCEEDED, Outcome.VERIFY_FAILED, 0, 1, 2),
    # Edits never committed: no commit is no progress (the article), not "uncommitted work".
    "uncommitted": (HaltCategory.NO_PROGRESS, Outcome.NO_PROGRESS, 0, 0, 1),
    "crash": (HaltCategory.AGENT_ERROR, Outcome.AGENT_FAILED, 2, 0, 2),
    "silent-stall": (HaltCategory.AGENT_ERROR, Outcome.AGENT_STALLED, 2, 0, 2),
    "chatty-stall": (HaltCategory.AGENT_ERROR, Outcome.AGENT_STALLED, 2, 0, 2),
    "token-burn": (HaltCategory.BUDGET_EXCEEDED, Outcome.BUDGET_EXCEEDED, 0, 0, 1),
    "slow-hook": (HaltCategory.HOOK_TIMEOUT, Outcome.HOOK_TIMEOUT, 0, 0, 1),
}


@pytest.mark.parametrize("scenario", sorted(HALTING))
async def test_every_abnormal_scenario_halts_with_its_category(
    client: Client, tmp_path: Path, scenario: str
) -> None:
    category, outcome, failures, continuations, attempts = HALTING[scenario]
    kit = make_line(tmp_path, {"hooks": {"verify_timeout_s": 3}})
    kit.add_issue("T-9", scenario)
    async with factory(client) as f:
        handle = await f.start_issue(kit, "T-9")
        status = await wait_for_phase(handle, Phase.HALTED, timeout=TIMEOUT)
        assert status.halt is not None
        assert (status.halt.category, status.last_outcome) == (category, outcome)
        assert (status.counters.failures, status.counters.continuations) == (
            failures,
            continuations,
        )
        assert status.counters.attempts == attempts
        # Nothing abnormal ever closes an issue.
        assert kit.state_of("T-9") == "In Progress"
        # The halt comment is written just after the phase turns (an activity): poll for it.
        await eventually(
            board_text(kit, "T-9"),
            lambda text: "Jidoka: halted" in text,
            what="the halt comment",
        )
        await handle.terminate("test done")


async def test_verify_failure_feeds_the_next_attempt_which_ships(
    client: Client, tmp_path: Path
) -> None:
    kit = make_line(tmp_path)
    kit.add_issue("T-4", "breaks-tests-then-fixes")
    async with factory(client) as f:
        handle = await f.start_issue(kit, "T-4")
        result = await asyncio.wait_for(handle.result(), TIMEOUT)
        status = await handle.query(IssueWorkflow.status)
    assert result.phase is Phase.SHIPPED and kit.state_of("T-4") == "Done"
    assert [a.outcome for a in status.attempts] == [Outcome.VERIFY_FAILED, Outcome.SHIPPED]
    assert result.counters.continuations == 1
    prompt = (kit.workspace("T-4") / ".jidoka" / "prompt.md").read_text()
    assert "verify command failed" in prompt and "FAIL" in prompt


async def test_work_slower_than_a_short_heartbeat_timeout_is_not_a_lost_host(
    client: Client, tmp_path: Path
) -> None:
    # heartbeat_s 2 (a lost host noticed within 2 s): a 5 s hook and a 5 s agent are alive all
    # along, so they heartbeat faster than the timeout, whatever their usual pace.
    kit = make_line(
        tmp_path,
        {
            "timeouts": {"heartbeat_s": 2},
            "hooks": {"before_run": "sleep 5"},
            "agent": {
                "command": 'sleep 5; "$JIDOKA_PYTHON" -m activities.agent.scripted_agent',
                "stall_timeout_s": 10,
                "silence_timeout_s": 10,
            },
        },
    )
    kit.add_issue("T-7", "ship")
    async with factory(client) as f:
        handle = await f.start_issue(kit, "T-7")
        status = await wait_for_phase(handle, Phase.SHIPPED, Phase.HALTED, timeout=TIMEOUT)
        assert status.phase is Phase.SHIPPED, status.model_dump_json(indent=1)
        result = await asyncio.wait_for(handle.result(), TIMEOUT)
    assert result.phase is Phase.SHIPPED
    assert result.counters.attempts == 1 and result.counters.failures == 0
