"""Activities the line needs a Temporal client for: starting issue workflows in one batch,
noticing issue workflows that ended without reporting, and resetting stale claims at startup."""

from __future__ import annotations

from typing import Any

from temporalio import activity
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle
from temporalio.common import (
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from activities.tracker.activities import guarded_transition, tracker_session
from jidoka import search_attributes as sa
from jidoka.keys import issue_workflow_id, workspace_key
from jidoka.outcomes import HaltCategory, HaltScope, HaltSource, Phase
from jidoka.payloads import (
    HaltRequest,
    IssueResult,
    IssueWorkflowCheck,
    IssueWorkflowInput,
    StaleClaimsInput,
    StartedIssue,
    StartIssuesInput,
    TransitionInput,
    WorkflowIdsInput,
)
from jidoka.policy import ready_state

ISSUE_WORKFLOW = "IssueWorkflow"
FAILING_TASK_ATTEMPTS = 3
"""A workflow task failed this many times in a row: not a blip, the workflow is stuck."""


WORKFLOW_ID_TAKEN = "WorkflowIdTaken"


async def _refuse_another_issues_workflow(
    handle: WorkflowHandle[Any, Any], line: str, identifier: str
) -> None:
    """A start that joined a running workflow must have joined this issue's. Workflow IDs are
    ``jidoka-issue-<line>-<key>``: the lines ``demo`` and ``demo-ENG`` give issue ``ENG-1`` of the
    first and issue ``1`` of the second the same ID, and joining would silently run one issue
    as the other. Such a start fails for good, and the line halts saying why."""
    attributes = (await handle.describe()).typed_search_attributes
    owner = (attributes.get(sa.LINE), attributes.get(sa.ISSUE))
    if None in owner or owner == (line, identifier):
        return  # ours, or too new to say (a workflow upserts both in its first task)
    raise ApplicationError(
        f"the workflow ID {handle.id!r} is already the workflow of issue {owner[1]!r} of line "
        f"{owner[0]!r}, not of issue {identifier!r} of line {line!r}: the two lines' names make "
        "one ID for both; rename one of the lines",
        type=WORKFLOW_ID_TAKEN,
        non_retryable=True,
    )


class LineActivities:
    def __init__(self, client: Client) -> None:
        self._client = client

    @activity.defn(name="start_issue_workflows")
    async def start_issue_workflows(self, input: StartIssuesInput) -> list[StartedIssue]:
        """Start (or join, USE_EXISTING) one issue workflow per issue: idempotent under retries,
        because the workflow ID is derived from the line and the issue."""
        started: list[StartedIssue] = []
        for item in input.issues:
            issue = item.issue
            handle = await self._client.start_workflow(
                ISSUE_WORKFLOW,
                IssueWorkflowInput(
                    workflow_path=input.workflow_path,
                    issue_id=issue.id,
                    line_workflow_id=input.line_workflow_id,
                    workflow=input.workflow,
                ),
                id=item.workflow_id,
                task_queue=input.task_queue,
                id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
                id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
                search_attributes=TypedSearchAttributes(
                    [
                        SearchAttributePair(sa.LINE, input.line),
                        SearchAttributePair(sa.ISSUE, issue.identifier),
                        SearchAttributePair(sa.PHASE, Phase.QUEUED.value),
                        SearchAttributePair(sa.HALTED, False),
                        SearchAttributePair(sa.TOKENS, 0),
                    ]
                ),
                memo={"title": issue.title, "url": issue.url or ""},
                static_summary=f"{issue.identifier}: {issue.title}"[:200],
            )
            await _refuse_another_issues_workflow(handle, input.line, issue.identifier)
            if input.line_halted:
                await handle.signal(
                    "halt",
                    HaltRequest(
                        reason="the line is halted",
                        category=HaltCategory.HALT_PRODUCTION,
                        source=HaltSource.ORCHESTRATOR,
                        scope=HaltScope.LINE,
                    ),
                )
            started.append(
                StartedIssue(
                    issue_id=issue.id,
                    workflow_id=item.workflow_id,
                    run_id=handle.result_run_id,
                    started=True,
                )
            )
        return started

    @activity.defn(name="check_issue_workflows")
    async def check_issue_workflows(self, input: WorkflowIdsInput) -> list[IssueWorkflowCheck]:
        """The issue workflows the line must look at: closed ones (how they closed and, when
        one completed, how it ended: the line missed its final report) and running ones whose
        workflow task keeps failing (a code or determinism error holds them still)."""
        found: list[IssueWorkflowCheck] = []
        for workflow_id in input.workflow_ids:
            activity.heartbeat(workflow_id)
            handle = self._client.get_workflow_handle(workflow_id, result_type=IssueResult)
            try:
                description = await handle.describe()
            except RPCError as error:
                if error.status is RPCStatusCode.NOT_FOUND:
                    found.append(IssueWorkflowCheck(workflow_id=workflow_id, status="not_found"))
                    continue
                raise
            status = description.status
            if status is None:
                continue
            if status is WorkflowExecutionStatus.RUNNING:
                task = description.raw_description.pending_workflow_task
                if task.attempt >= FAILING_TASK_ATTEMPTS:
                    found.append(
                        IssueWorkflowCheck(
                            workflow_id=workflow_id,
                            status="running",
                            failing_task_attempts=task.attempt,
                        )
                    )
                continue
            result: IssueResult | None = None
            if status is WorkflowExecutionStatus.COMPLETED:
                result = await handle.result()
            found.append(
                IssueWorkflowCheck(
                    workflow_id=workflow_id, status=status.name.lower(), result=result
                )
            )
        return found

    @activity.defn(name="reset_stale_claims")
    async def reset_stale_claims(self, input: StaleClaimsInput) -> list[str]:
        """Issues left in ``working_state`` with no running issue workflow go back to the first
        other active state, with an audit comment (docs/architecture.md#the-lines-tick)."""
        config = input.workflow.config
        working = config.tracker.working_state
        if working is None:
            return []
        ready = ready_state(config)
        if ready is None:
            return []
        reset: list[str] = []
        async with tracker_session(config) as tracker:
            for issue in await tracker.fetch_issues_by_states([working]):
                workflow_id = issue_workflow_id(config.line, workspace_key(issue.identifier))
                if await self._running(workflow_id):
                    continue
                try:
                    await guarded_transition(
                        tracker,
                        TransitionInput(
                            config=config,
                            issue_id=issue.id,
                            expected_state=issue.state,
                            target_state=ready,
                            comment=(
                                f"**Jidoka: claim reset** → {ready}: it was left in "
                                f"'{working}' but no issue workflow ({workflow_id}) is running."
                            ),
                            idempotency_key=f"{input.line_workflow_id}:reset:{workflow_id}:"
                            f"{activity.info().workflow_run_id}",
                        ),
                    )
                except Exception as error:  # one failed reset must not stop startup
                    activity.logger.warning("could not reset %s: %s", issue.identifier, error)
                    continue
                reset.append(issue.identifier)
        return reset

    async def _running(self, workflow_id: str) -> bool:
        try:
            description = await self._client.get_workflow_handle(workflow_id).describe()
        except RPCError as error:
            if error.status is RPCStatusCode.NOT_FOUND:
                return False
            raise
        return description.status is WorkflowExecutionStatus.RUNNING
