"""Determinism guard: every committed history in ``tests/histories/`` (a ship, a
hallucinated success halted then resumed with a root cause, a pause answered days later in
spirit, a line halted, resumed and continued as new, and an issue reporting to its line)
replays on the current ``IssueWorkflow`` and ``LineWorkflow`` with the worker's own setup
(``tests.histories.replayer``). A workflow change that would break a running workflow fails
here, naming the file.

The guard is shown to bite: the same histories replayed on a deliberately altered workflow
(one that schedules a different activity first) are reported as non-deterministic.

Regenerate the files with ``python -m tests.histories.record`` (see its docstring for when).
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from temporalio import workflow
from temporalio.client import WorkflowHistory

from activities.workspace import HostActivities
from jidoka.payloads import IssueResult, IssueWorkflowInput
from tests.histories import load, recorded, replayer
from workflows.issue import IssueWorkflow
from workflows.line import LineWorkflow

HISTORIES = recorded()


def workflow_type(history: WorkflowHistory) -> str:
    return history.events[0].workflow_execution_started_event_attributes.workflow_type.name


def test_the_recorded_histories_cover_both_workflows_and_a_continue_as_new() -> None:
    histories = {path.name: load(path) for path in HISTORIES}
    types = {workflow_type(h) for h in histories.values()}
    assert types == {IssueWorkflow.__name__, LineWorkflow.__name__}, sorted(histories)
    assert len(histories) >= 4, sorted(histories)
    assert any(
        h.events[-1].HasField("workflow_execution_continued_as_new_event_attributes")
        for h in histories.values()
    ), "no history ends with continue-as-new"
    # Signals and updates are part of what must replay.
    events = [e for h in histories.values() for e in h.events]
    assert any(e.HasField("workflow_execution_signaled_event_attributes") for e in events)
    assert any(e.HasField("workflow_execution_update_accepted_event_attributes") for e in events)


@pytest.mark.parametrize("path", HISTORIES, ids=lambda p: p.name)
async def test_recorded_history_replays_on_the_current_workflows(path: Path) -> None:
    result = await replayer().replay_workflow(load(path), raise_on_replay_failure=False)
    if result.replay_failure is not None:
        pytest.fail(
            f"tests/histories/{path.name} no longer replays on the current workflow code, so "
            f"running workflows like it would fail: {result.replay_failure}\n"
            "Guard the change with workflow.patched(...); re-record (python -m "
            "tests.histories.record) only once no workflow started by the old code still runs.",
            pytrace=False,
        )


@workflow.defn(name="IssueWorkflow", sandboxed=False)
class IssueWorkflowThatClaimsAHostFirst(IssueWorkflow):
    """IssueWorkflow with one change: a host is claimed before the config is loaded, so its
    first command differs from the one every recorded issue history starts with. (Unsandboxed
    only because the sandbox would re-import this test module; the sandbox never changes which
    commands a workflow emits.)"""

    @workflow.run
    async def run(self, input: IssueWorkflowInput) -> IssueResult:
        await workflow.execute_activity_method(
            HostActivities.claim_host, start_to_close_timeout=timedelta(seconds=30)
        )
        return await super().run(input)


ISSUE_HISTORIES = [p for p in HISTORIES if workflow_type(load(p)) == IssueWorkflow.__name__]


@pytest.mark.parametrize("path", ISSUE_HISTORIES, ids=lambda p: p.name)
async def test_an_altered_workflow_is_reported_as_non_deterministic(path: Path) -> None:
    result = await replayer([IssueWorkflowThatClaimsAHostFirst, LineWorkflow]).replay_workflow(
        load(path), raise_on_replay_failure=False
    )
    assert isinstance(result.replay_failure, workflow.NondeterminismError), result.replay_failure
    # What the altered code did first meets what the history recorded first: the lean-steps
    # patch marker in a history that starts with it, else the config load.
    expected = "lean-steps" if ".steps." in path.name else "claim_host"
    assert expected in str(result.replay_failure)
