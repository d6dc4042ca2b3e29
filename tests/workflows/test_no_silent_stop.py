"""No silent stop: every way an issue or the line can fail ends visibly.

Each test reproduces a way Jidoka used to lose an issue or stall a line without a word, on the
real dev server with real workers, boards, git and agents. Where a step must fail or wait in a
way no real input provokes, the real activity is replaced (by name) in a real worker.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

from temporalio import activity
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.common import (
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
)
from temporalio.exceptions import ApplicationError

from activities.agent.run import run_agent
from activities.line import ISSUE_WORKFLOW, LineActivities
from activities.workspace import push_branch
from jidoka import search_attributes as sa
from jidoka.models import AgentRunResult
from jidoka.outcomes import HaltCategory, Outcome, Phase
from jidoka.payloads import (
    AgentRunInput,
    DispatchPlan,
    DispatchQuery,
    EvidenceInput,
    IssueWorkflowInput,
    LineStatus,
    PushInput,
    PushResult,
    StartedIssue,
    StartIssuesInput,
)
from tests.support.buggy_workflows import IssueWorkflowWithABug
from tests.support.linekit import (
    LineKit,
    board_text,
    eventually,
    factory,
    issue_status,
    line_status,
    live_line_status,
    make_line,
    refreshed_status,
    start_line,
    wait_for_phase,
)
from workflows.common import QUICK_RETRY
from workflows.line import LineWorkflow

SLOW_AGENT = {"stall_timeout_s": 60, "silence_timeout_s": 60, "turn_timeout_s": 120}


async def still_running(client: Client, workflow_id: str) -> bool:
    description = await client.get_workflow_handle(workflow_id).describe()
    return description.status is WorkflowExecutionStatus.RUNNING


async def terminate_all(client: Client, kit: LineKit, identifiers: list[str]) -> None:
    for identifier in identifiers:
        handle = client.get_workflow_handle(kit.workflow_id(identifier))
        if await still_running(client, handle.id):
            await handle.terminate("test done")


# ---------------------------------------------------------------------------------------------
# Agent slots: waiting is its own phase, bounded by its own setting, never agent time
# ---------------------------------------------------------------------------------------------


async def test_waiting_for_a_slot_is_its_own_phase_and_never_agent_time(
    client: Client, tmp_path: Path
) -> None:
    # One slot for four issues whose agents each run about 3 s (the sandbox's start included)
    # under a 6 s cap per attempt: the last one waits longer than that cap, and still ships at
    # its first attempt.
    kit = make_line(
        tmp_path,
        {
            "agent": {
                "stall_timeout_s": 6,
                "silence_timeout_s": 6,
                "turn_timeout_s": 6,
                "env": {"JIDOKA_SCRIPTED_PACE": "0.7"},
            },
            "concurrency": {"max_agents": 4},
        },
    )
    identifiers = ["W-1", "W-2", "W-3", "W-4"]
    for identifier in identifiers:
        kit.add_issue(identifier, "ship")
    seen_waiting: set[str] = set()

    async def watch() -> LineStatus:
        status = await live_line_status(client, handle)
        seen_waiting.update(
            e.identifier for e in status.running if e.phase is Phase.WAITING_FOR_SLOT
        )
        return status

    async with factory(client, max_agents=1) as f:
        handle = await start_line(f, kit)
        status = await eventually(
            watch, lambda s: len(s.finished) == 4, timeout=120, what="four shipped"
        )
        statuses = [
            await issue_status(client.get_workflow_handle(kit.workflow_id(i))) for i in identifiers
        ]
        histories = [
            await client.get_workflow_handle(kit.workflow_id(i)).fetch_history()
            for i in identifiers
        ]
        await handle.terminate("test done")
    assert {f.phase for f in status.finished} == {Phase.SHIPPED}
    assert seen_waiting, "the line never showed an issue waiting for a slot"
    waits = [s.attempts[0].slot_wait_s for s in statuses]
    longest = max(waits)
    assert longest > 6, f"the last issue should have waited longer than one attempt's cap: {waits}"
    for s in statuses:
        assert s.counters.attempts == 1 and s.counters.failures == 0, s.counters
        # Agent time is the agent's own: no wait counted in it.
        assert s.counters.agent_seconds < 6, s.counters
    # The Web UI saw the phase too: the issue that waited longest upserted it before running.
    waited_most = histories[waits.index(longest)]
    phases = _phase_upserts(waited_most.events)
    assert phases.index(Phase.WAITING_FOR_SLOT.value) < phases.index(Phase.RUNNING_AGENT.value)


def _phase_upserts(events: object) -> list[str]:
    found: list[str] = []
    for event in events:  # type: ignore[attr-defined]
        if event.event_type != EventType.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES:
            continue
        fields = event.upsert_workflow_search_attributes_event_attributes.search_attributes
        payload = fields.indexed_fields.get(sa.PHASE.name)
        if payload is not None:
            found.append(payload.data.decode().strip('"'))
    return found


async def test_no_slot_within_the_bound_halts_the_issue_visibly(
    client: Client, tmp_path: Path
) -> None:
    kit = make_line(tmp_path, {"timeouts": {"slot_wait_s": 3}, "agent": SLOW_AGENT})
    kit.add_issue("B-1", "silent-stall")  # holds the host's only slot
    async with factory(client, max_agents=1) as f:
        handle = await start_line(f, kit)
        await wait_for_phase(
            client.get_workflow_handle(kit.workflow_id("B-1")),
            Phase.RUNNING_AGENT,
            what="B-1 holds the slot",
        )
        kit.add_issue("B-2", "ship")
        await handle.signal(LineWorkflow.refresh)
        halted = await wait_for_phase(
            client.get_workflow_handle(kit.workflow_id("B-2")),
            Phase.HALTED,
            what="B-2 halted for want of a slot",
        )
        line = await eventually(
            lambda: line_status(handle), lambda s: s.halted, what="the line halted"
        )
        assert await still_running(client, kit.workflow_id("B-2"))
        await eventually(
            board_text(kit, "B-2"),
            lambda text: "Jidoka: halted" in text,
            what="the halt comment on B-2",
        )
        await handle.terminate("test done")
        await terminate_all(client, kit, ["B-1", "B-2"])
    assert halted.halt is not None
    assert halted.halt.category is HaltCategory.INFRASTRUCTURE
    assert "no agent slot" in halted.halt.reason
    assert halted.last_outcome is Outcome.SLOT_TIMEOUT
    assert halted.counters.failures == 0
    assert any(h.category is HaltCategory.INFRASTRUCTURE for h in line.open_halts)


# ---------------------------------------------------------------------------------------------
# Unexpected errors: a named halt of the issue, never a failed workflow
# ---------------------------------------------------------------------------------------------


@activity.defn(name="run_agent")
async def run_agent_that_breaks(input: AgentRunInput) -> AgentRunResult:
    raise RuntimeError("disk on fire")


@activity.defn(name="collect_evidence")
async def evidence_in_a_shape_no_one_expects(input: EvidenceInput) -> dict[str, object]:
    return {"garbled": True}


async def test_an_activity_failing_unexpectedly_halts_the_issue(
    client: Client, tmp_path: Path
) -> None:
    kit = make_line(tmp_path)
    kit.add_issue("E-1", "ship")
    async with factory(client, replace=[run_agent_that_breaks]) as f:
        handle = await f.start_issue(kit, "E-1")
        halted = await wait_for_phase(handle, Phase.HALTED, what="E-1 halted")
        text = await eventually(
            board_text(kit, "E-1"), lambda t: "Jidoka: halted" in t, what="halt comment"
        )
        assert await still_running(client, handle.id)
        await handle.terminate("test done")
    assert halted.halt is not None
    assert halted.halt.category is HaltCategory.ORCHESTRATOR_ERROR
    assert "run_agent failed" in halted.halt.reason and "disk on fire" in halted.halt.reason
    assert halted.attempts[-1].outcome is Outcome.ORCHESTRATOR_ERROR
    assert "orchestrator_error" in text
    assert kit.state_of("E-1") == "In Progress"  # never closed, and never silently abandoned


async def test_an_error_in_the_workflows_own_code_halts_the_issue_and_waits(
    client: Client, tmp_path: Path
) -> None:
    kit = make_line(tmp_path)
    kit.add_issue("E-2", "ship")
    async with factory(client, replace=[IssueWorkflowWithABug]) as f:
        handle = await f.start_issue(kit, "E-2")
        halted = await wait_for_phase(handle, Phase.HALTED, what="E-2 halted")
        await eventually(
            board_text(kit, "E-2"), lambda t: "Jidoka: halted" in t, what="halt comment"
        )
        history = await handle.fetch_history()
        assert await still_running(client, handle.id)
        await handle.terminate("test done")
    assert halted.halt is not None
    assert halted.halt.category is HaltCategory.ORCHESTRATOR_ERROR
    assert "unexpected error in the issue workflow" in halted.halt.reason
    assert "a bug in the workflow" in halted.halt.reason
    # Stopped once, waiting for a person: not failing task after task.
    failed_tasks = [
        e for e in history.events if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED
    ]
    assert not failed_tasks
    assert kit.state_of("E-2") == "In Progress"


async def test_an_issue_workflow_whose_task_keeps_failing_halts_the_line(
    client: Client, tmp_path: Path
) -> None:
    # Evidence in a shape the workflow cannot decode fails its task before any of its code
    # runs (the same as a determinism error after a bad deploy): only the line can say so.
    kit = make_line(tmp_path)
    kit.add_issue("E-3", "ship")
    async with factory(client, replace=[evidence_in_a_shape_no_one_expects]) as f:
        handle = await start_line(f, kit)
        status = await eventually(
            lambda: refreshed_status(handle), lambda s: s.halted, timeout=90, what="the line halted"
        )
        text = await eventually(
            board_text(kit, "E-3"), lambda t: "workflow stuck" in t, what="the comment on E-3"
        )
        await handle.terminate("test done")
        await terminate_all(client, kit, ["E-3"])
    (halt,) = status.open_halts
    assert halt.category is HaltCategory.ORCHESTRATOR_ERROR and halt.issue_identifier == "E-3"
    assert "workflow task failed" in halt.reason
    assert [e.identifier for e in status.running if e.stuck] == ["E-3"]
    assert kit.workflow_id("E-3") in text


# ---------------------------------------------------------------------------------------------
# The line: bookkeeping independent of arrival order
# ---------------------------------------------------------------------------------------------


class StartsThatAnswerLate(LineActivities):
    """Starts the issues, then holds its result until every one of them has ended: the line
    hears each issue's final report before it learns that the issue was started."""

    @activity.defn(name="start_issue_workflows")
    async def start_issue_workflows(self, input: StartIssuesInput) -> list[StartedIssue]:
        started = await super().start_issue_workflows(input)
        for item in started:
            while True:
                description = await self._client.get_workflow_handle(item.workflow_id).describe()
                if description.status is not WorkflowExecutionStatus.RUNNING:
                    break
                activity.heartbeat()
                await asyncio.sleep(0.2)
        return started


async def test_a_final_report_before_the_start_result_is_not_lost(
    client: Client, tmp_path: Path
) -> None:
    kit = make_line(tmp_path)
    kit.add_issue("R-1", "ship")
    late = StartsThatAnswerLate(client)
    async with factory(client, replace=[late.start_issue_workflows]) as f:
        handle = await start_line(f, kit)
        status = await eventually(
            lambda: line_status(handle),
            lambda s: not s.running and len(s.finished) == 1 and s.idle,
            what="R-1 finished and the line idle",
        )
        history = await handle.fetch_history()
        await handle.terminate("test done")
    assert [(e.identifier, e.phase) for e in status.finished] == [("R-1", Phase.SHIPPED)]
    assert kit.state_of("R-1") == "Done"
    # Its own report closed it: the line never took the shipped issue for a running one (which
    # reconciliation then "cancels" when it sees it Done: a signal to a closed workflow).
    signals = [
        e.signal_external_workflow_execution_initiated_event_attributes.signal_name
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_SIGNAL_EXTERNAL_WORKFLOW_EXECUTION_INITIATED
    ]
    assert "cancel" not in signals


# ---------------------------------------------------------------------------------------------
# The line: bounded payloads, failures of its own work
# ---------------------------------------------------------------------------------------------


def _write_issue(kit: LineKit, identifier: str, front: str, body: str) -> None:
    (kit.board / f"{identifier}.md").write_text(f"---\n{front}---\n{body}")


async def test_an_oversize_board_keeps_the_line_dispatching(client: Client, tmp_path: Path) -> None:
    # 3 MB in one issue and 60 issues of 40 KB: far past Temporal's 2 MiB payload limit if the
    # line fetched them whole.
    kit = make_line(tmp_path)
    filler = "All work and no play makes a long PRD. " * 80_000
    _write_issue(
        kit, "BIG-1", "title: a very long PRD\nstate: Todo\n", "Scenario: ship\n\n" + filler
    )
    _write_issue(kit, "GATE-1", "title: the gate\nstate: Backlog\n", "Not active.\n")
    for n in range(60):
        _write_issue(
            kit,
            f"WAIT-{n}",
            "title: waits for the gate\nstate: Todo\nblocked_by: [GATE-1]\n",
            "Scenario: ship\n\n" + filler[:40_000],
        )
    async with factory(client) as f:
        handle = await start_line(f, kit)
        status = await eventually(
            lambda: line_status(handle),
            lambda s: len(s.finished) == 1 and s.idle,
            timeout=90,
            what="BIG-1 shipped and the line idle",
        )
        history = await handle.fetch_history()
        await handle.terminate("test done")
    assert [(e.identifier, e.phase) for e in status.finished] == [("BIG-1", Phase.SHIPPED)]
    assert not status.halts and status.tracker_error is None
    failures = [
        e for e in history.events if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_FAILED
    ]
    assert not failures
    prompt = (kit.workspace("BIG-1") / ".jidoka" / "prompt.md").read_text()
    assert "the description is longer than" in prompt
    assert len(prompt) < 100_000


async def test_a_tracker_that_refuses_the_line_halts_it(client: Client, tmp_path: Path) -> None:
    kit = make_line(tmp_path, {"tracker": {"board": "$JIDOKA_TEST_BOARD_NOT_SET"}})
    async with factory(client) as f:
        handle = await start_line(f, kit)
        status = await eventually(lambda: line_status(handle), lambda s: s.halted, what="halted")
        await handle.terminate("test done")
    (halt,) = status.open_halts
    assert halt.category is HaltCategory.TRACKER_ERROR
    assert "JIDOKA_TEST_BOARD_NOT_SET" in halt.reason


@activity.defn(name="tracker_dispatch_plan")
async def tracker_that_answers_503(input: DispatchQuery) -> DispatchPlan:
    raise ApplicationError("503 Service Unavailable", type="tracker_api_status")


async def test_a_tracker_that_keeps_failing_halts_the_line(client: Client, tmp_path: Path) -> None:
    kit = make_line(tmp_path)
    async with factory(client, replace=[tracker_that_answers_503]) as f:
        handle = await start_line(f, kit)
        seen: list[str] = []

        async def watch() -> LineStatus:
            status = await refreshed_status(handle)  # the next tick at once, not in a second
            if status.tracker_error and not status.halted:
                seen.append(status.tracker_error)
            return status

        status = await eventually(watch, lambda s: s.halted, timeout=120, what="halted")
        await handle.terminate("test done")
    assert seen, "the failures were never shown while they lasted"
    assert "in a row" in seen[-1] and "503" in seen[-1]
    (halt,) = status.open_halts
    assert halt.category is HaltCategory.TRACKER_ERROR
    assert "10 times in a row" in halt.reason


# ---------------------------------------------------------------------------------------------
# A truthful status
# ---------------------------------------------------------------------------------------------


async def test_the_status_shows_a_backoff_and_when_it_ends(client: Client, tmp_path: Path) -> None:
    kit = make_line(
        tmp_path, {"backoff": {"base_s": 120, "max_s": 300}, "budgets": {"max_attempts": 3}}
    )
    kit.add_issue("C-1", "crash")
    async with factory(client) as f:
        handle = await start_line(f, kit)
        status = await eventually(
            lambda: line_status(handle),
            lambda s: [e.identifier for e in s.retry_queue] == ["C-1"],
            what="C-1 in the retry queue",
        )
        issue = await issue_status(client.get_workflow_handle(kit.workflow_id("C-1")))
        await handle.terminate("test done")
        await terminate_all(client, kit, ["C-1"])
    (entry,) = status.retry_queue
    assert entry.phase is Phase.BACKING_OFF
    assert entry.retry_at is not None and entry.retry_at > datetime.now(UTC) + timedelta(seconds=60)
    assert issue.phase is Phase.BACKING_OFF and issue.retry_at == entry.retry_at
    assert entry.last_outcome is Outcome.AGENT_FAILED


# ---------------------------------------------------------------------------------------------
# Issue workflows that close without a final report
# ---------------------------------------------------------------------------------------------


class StartsWithATimeLimit(LineActivities):
    """Starts issue workflows that time out after a few seconds, as a misconfigured cluster
    or a person's `temporal workflow start --execution-timeout` might."""

    @activity.defn(name="start_issue_workflows")
    async def start_issue_workflows(self, input: StartIssuesInput) -> list[StartedIssue]:
        started: list[StartedIssue] = []
        for item in input.issues:
            handle = await self._client.start_workflow(
                ISSUE_WORKFLOW,
                IssueWorkflowInput(
                    workflow_path=input.workflow_path,
                    issue_id=item.issue.id,
                    line_workflow_id=input.line_workflow_id,
                    workflow=input.workflow,
                ),
                id=item.workflow_id,
                task_queue=input.task_queue,
                id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
                execution_timeout=timedelta(seconds=4),
                search_attributes=TypedSearchAttributes([SearchAttributePair(sa.LINE, input.line)]),
            )
            started.append(
                StartedIssue(
                    issue_id=item.issue.id,
                    workflow_id=item.workflow_id,
                    run_id=handle.result_run_id,
                    started=True,
                )
            )
        return started


async def test_an_issue_workflow_that_times_out_is_shown_and_halts_the_line(
    client: Client, tmp_path: Path
) -> None:
    kit = make_line(tmp_path, {"agent": SLOW_AGENT})
    kit.add_issue("T-1", "silent-stall")
    limited = StartsWithATimeLimit(client)
    async with factory(client, replace=[limited.start_issue_workflows]) as f:
        handle = await start_line(f, kit)
        status = await eventually(
            lambda: refreshed_status(handle), lambda s: s.halted, timeout=60, what="the line halted"
        )
        text = await eventually(
            board_text(kit, "T-1"),
            lambda t: "ended without a report" in t,
            what="the comment on T-1",
        )
        await handle.terminate("test done")
    (lost,) = status.lost
    assert lost.identifier == "T-1" and lost.closed_without_report == "timed_out"
    (halt,) = status.open_halts
    assert halt.category is HaltCategory.ISSUE_LOST and halt.issue_identifier == "T-1"
    assert "timed_out" in text
    assert not status.running


async def test_an_issue_workflow_terminated_by_hand_is_shown_not_counted_finished(
    client: Client, tmp_path: Path
) -> None:
    kit = make_line(tmp_path, {"agent": SLOW_AGENT})
    kit.add_issue("T-2", "silent-stall")
    async with factory(client) as f:
        handle = await start_line(f, kit)
        await wait_for_phase(
            client.get_workflow_handle(kit.workflow_id("T-2")),
            Phase.RUNNING_AGENT,
            what="T-2 running",
        )
        await client.get_workflow_handle(kit.workflow_id("T-2")).terminate("by hand")
        status = await eventually(
            lambda: refreshed_status(handle), lambda s: bool(s.lost), timeout=60, what="T-2 lost"
        )
        text = await eventually(
            board_text(kit, "T-2"),
            lambda t: "ended without a report" in t,
            what="the comment on T-2",
        )
        await handle.terminate("test done")
    (lost,) = status.lost
    assert lost.closed_without_report == "terminated"
    assert not status.halted  # a person's own act: shown, not a stop
    assert "terminated" in text


# ---------------------------------------------------------------------------------------------
# Infrastructure faults: never the agent's attempts, and a finished agent is never lost
# ---------------------------------------------------------------------------------------------


@activity.defn(name="run_agent")
async def run_agent_whose_completion_never_arrives(input: AgentRunInput) -> AgentRunResult:
    """The real agent run, then silence past the heartbeat timeout: what the server sees when
    it was down as the agent finished and the completion could not reach it."""
    result = await run_agent(input)
    await asyncio.sleep(input.workflow.config.timeouts.heartbeat_s * 3)
    return result


async def test_an_agent_that_finished_unseen_is_judged_not_run_again(
    client: Client, tmp_path: Path
) -> None:
    kit = make_line(tmp_path, {"timeouts": {"heartbeat_s": 2}})
    kit.add_issue("O-1", "ship")
    async with factory(client, replace=[run_agent_whose_completion_never_arrives]) as f:
        handle = await f.start_issue(kit, "O-1")
        result = await handle.result()
        history = await handle.fetch_history()
    assert result.phase is Phase.SHIPPED
    # One agent session: its result was recovered from the host, not redone, not charged.
    assert result.counters.attempts == 1
    assert result.counters.failures == 0 and result.counters.infra_failures == 0
    timed_out = [
        e for e in history.events if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT
    ]
    assert len(timed_out) == 1, "the agent's activity should have timed out once"
    assert kit.issue_text("O-1").count("**Jidoka: shipped**") == 1


class HostDyingAtFirstPush:
    """``push_branch`` whose host goes silent (no heartbeat, no answer) through every retry of
    the first push, as a worker killed mid-push; then the real push."""

    def __init__(self) -> None:
        self.silenced = 0

    @activity.defn(name="push_branch")
    async def push_branch(self, input: PushInput) -> PushResult:
        if activity.info().attempt <= (QUICK_RETRY.maximum_attempts or 1) and not self.silenced:
            if activity.info().attempt == QUICK_RETRY.maximum_attempts:
                self.silenced += 1
            await asyncio.sleep(3600)  # cancelled when its heartbeat timeout fires
        return await push_branch(input)


async def test_a_host_lost_during_the_push_is_an_infrastructure_retry_not_a_halt(
    client: Client, tmp_path: Path
) -> None:
    kit = make_line(tmp_path, {"timeouts": {"heartbeat_s": 2}})
    kit.add_issue("E-PUSH", "ship")
    dying = HostDyingAtFirstPush()
    async with factory(client, replace=[dying.push_branch]) as f:
        handle = await f.start_issue(kit, "E-PUSH")
        result = await asyncio.wait_for(handle.result(), 90)
    assert dying.silenced == 1
    assert result.phase is Phase.SHIPPED, result.halts
    assert result.counters.infra_failures == 1 and result.counters.failures == 0
    assert kit.state_of("E-PUSH") == "Done"
    assert kit.issue_text("E-PUSH").count("**Jidoka: shipped**") == 1
