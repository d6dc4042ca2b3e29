"""The issue's host: every activity that touches its workspace, with the options written once.

A workspace lives on one host, so these activities run on that host's own task queue, with a
pick-up timeout (``timeouts.host_start_s``) and a heartbeat timeout (``timeouts.heartbeat_s``):
a host that is gone is noticed in seconds, as the outcome ``worker_lost``.

The rule of this module: make the call and classify what came back (a result, or
:class:`AttemptEnded` with an outcome). Deciding what happens next is the workflow's.
Deterministic code only (it runs inside the issue workflow).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any, TypeVar

from temporalio import workflow
from temporalio.exceptions import ActivityError, CancelledError, TimeoutType

from workflows.common import (
    NO_RETRY,
    QUICK_RETRY,
    cause_message,
    cause_type,
    host_lost,
    timeout_type,
)

with workflow.unsafe.imports_passed_through():
    from activities.agent.results import recover_agent_result
    from activities.agent.run import run_agent
    from activities.evidence import collect_evidence
    from activities.hooks import hook_script, hook_timeout_s, run_hook
    from activities.workspace import (
        ErrorType,
        HostActivities,
        prepare_workspace,
        preserve_work,
        push_branch,
        remove_workspace,
    )
    from jidoka.config import WorkflowConfig
    from jidoka.models import (
        AgentRunResult,
        Evidence,
        HookResult,
        Issue,
        LoadedWorkflow,
        WorkspaceInfo,
    )
    from jidoka.outcomes import HookName, Outcome
    from jidoka.payloads import (
        AgentRunInput,
        EvidenceInput,
        HookInput,
        PrepareWorkspaceInput,
        PreserveInput,
        PreserveResult,
        PushInput,
        PushResult,
        RecoverAgentInput,
        RemoveWorkspaceInput,
        RemoveWorkspaceResult,
    )

T = TypeVar("T")

RECOVERY_PICKUP_S = 30
"""How long a host that lost touch gets to hand back a finished agent result."""


class AttemptEnded(Exception):
    """The attempt ends early with this outcome (a hook failed, the host was lost, a cancel)."""

    def __init__(self, outcome: Outcome, detail: str, hook: HookResult | None = None) -> None:
        super().__init__(detail)
        self.outcome = outcome
        self.detail = detail
        self.hook = hook


class HostLost(Exception):
    """The host stopped answering: nobody picked the activity up, or its heartbeat stopped."""

    def __init__(self, message: str, timeout: TimeoutType | None) -> None:
        super().__init__(message)
        self.message = message
        self.timeout = timeout


class HostCalls:
    """The activities on the issue's host.

    ``cancelled`` says why the issue was cancelled (None while it was not): a host activity in
    flight is then cancelled and the attempt ends ``cancelled``."""

    def __init__(self, cancelled: Callable[[], str | None]) -> None:
        self._cancelled = cancelled

    # -- placing the workspace ----------------------------------------------------------------

    async def claim_host(self) -> str:
        """Any worker answers on the shared queue with its own host queue: the host to use."""
        claim = await workflow.execute_activity_method(
            HostActivities.claim_host,
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=QUICK_RETRY,
        )
        return claim.host_queue

    async def prepare(
        self,
        loaded: LoadedWorkflow,
        issue: Issue,
        base_sha: str | None,
        number: int,
        queue: str,
        *,
        rejudge: bool = False,
    ) -> WorkspaceInfo:
        """Raises :class:`HostLost` when nobody on ``queue`` picked it up, else
        :class:`AttemptEnded` for a workspace that could not be prepared."""
        config = loaded.config
        try:
            return await workflow.execute_activity(
                prepare_workspace,
                PrepareWorkspaceInput(
                    workflow=loaded,
                    issue=issue.slim(),
                    base_sha=base_sha,
                    attempt=number,
                    rejudge=rejudge,
                ),
                start_to_close_timeout=timedelta(seconds=config.hooks.timeout_s + 600),
                retry_policy=QUICK_RETRY,
                **_on_host(config, queue),
            )
        except ActivityError as error:
            if timeout_type(error) is TimeoutType.SCHEDULE_TO_START:
                raise HostLost(cause_message(error), TimeoutType.SCHEDULE_TO_START) from None
            raise AttemptEnded(*_prepare_failure(error)) from None

    # -- the attempt ---------------------------------------------------------------------------

    async def hook(
        self,
        loaded: LoadedWorkflow,
        hook: HookName,
        workspace: WorkspaceInfo,
        number: int,
        identifier: str,
        *,
        sha: str | None = None,
    ) -> HookResult | None:
        """Run a hook when one is configured; a failure to run it ends the attempt."""
        if not hook_script(loaded, hook):
            return None
        hook_input = HookInput(
            workflow=loaded,
            workspace=workspace,
            hook=hook,
            attempt=number,
            issue_identifier=identifier,
            sha=sha,
        )
        handle = workflow.start_activity(
            run_hook,
            hook_input,
            start_to_close_timeout=timedelta(seconds=_hook_activity_s(loaded, hook)),
            retry_policy=NO_RETRY,
            cancellation_type=workflow.ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
            summary=f"hook {hook.value}",
            **_on_host(loaded.config, workspace.host_queue),
        )
        try:
            return await self._until_done(handle)
        except HostLost as lost:
            raise AttemptEnded(Outcome.WORKER_LOST, lost.message) from None
        except ActivityError as error:
            raise AttemptEnded(
                Outcome.HOOK_FAILED, f"{hook.value}: {cause_message(error)}"
            ) from None

    async def run_agent(
        self,
        agent_input: AgentRunInput,
        *,
        started: Callable[[], bool],
        on_started: Callable[[], Awaitable[None]],
    ) -> AgentRunResult:
        """One agent session. ``started`` turns true when the activity says it has a slot, and
        ``on_started`` is awaited then. A session whose host lost touch after the agent finished
        (an outage as it ended) is recovered from the host, not run again."""
        config = agent_input.workflow.config
        timeouts = config.timeouts
        workspace = agent_input.workspace
        handle = workflow.start_activity(
            run_agent,
            agent_input,
            # Waiting for a slot has its own bound, inside the activity; it is never agent time.
            start_to_close_timeout=timedelta(
                seconds=timeouts.slot_wait_s + agent_input.wall_s + 120
            ),
            retry_policy=NO_RETRY,
            cancellation_type=workflow.ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
            summary=f"agent attempt {agent_input.attempt}",
            **_on_host(config, workspace.host_queue),
        )
        try:
            return await self._until_done(handle, started=started, on_started=on_started)
        except HostLost as lost:
            recovered = (
                await self._recover_agent(config, workspace, agent_input.attempt)
                if lost.timeout is TimeoutType.HEARTBEAT
                else None
            )
            if recovered is None:
                raise AttemptEnded(Outcome.WORKER_LOST, lost.message) from None
            workflow.logger.info(
                "attempt %d: the agent had finished; result recovered", agent_input.attempt
            )
            return recovered

    async def collect(self, loaded: LoadedWorkflow, workspace: WorkspaceInfo) -> Evidence:
        """The attempt's evidence; ``loaded`` is the WORKFLOW.md the attempt started with."""
        try:
            return await workflow.execute_activity(
                collect_evidence,
                EvidenceInput(
                    workspace=workspace,
                    workflow_path=loaded.path,
                    workflow_digest=loaded.digest,
                    protected_paths=loaded.config.judge.protected_paths,
                ),
                start_to_close_timeout=timedelta(seconds=300),
                retry_policy=QUICK_RETRY,
                **_on_host(loaded.config, workspace.host_queue),
            )
        except ActivityError as error:
            if host_lost(error):
                raise AttemptEnded(Outcome.WORKER_LOST, cause_message(error)) from None
            raise AttemptEnded(Outcome.WORKSPACE_FAILED, cause_message(error)) from None

    # -- keeping the work ----------------------------------------------------------------------

    async def push(self, loaded: LoadedWorkflow, workspace: WorkspaceInfo, sha: str) -> PushResult:
        """Push exactly ``sha``; raises ActivityError when it could not be pushed."""
        return await workflow.execute_activity(
            push_branch,
            PushInput(workflow=loaded, workspace=workspace, sha=sha),
            start_to_close_timeout=timedelta(minutes=5),
            retry_policy=QUICK_RETRY,
            **_on_host(loaded.config, workspace.host_queue),
        )

    async def preserve(
        self, loaded: LoadedWorkflow, workspace: WorkspaceInfo, stamp: str, reason: str
    ) -> PreserveResult:
        """Raises ActivityError when the work could not be preserved."""
        return await workflow.execute_activity(
            preserve_work,
            PreserveInput(workflow=loaded, workspace=workspace, stamp=stamp, reason=reason),
            start_to_close_timeout=timedelta(minutes=5),
            retry_policy=QUICK_RETRY,
            **_on_host(loaded.config, workspace.host_queue),
        )

    async def remove(
        self, loaded: LoadedWorkflow, workspace: WorkspaceInfo, identifier: str
    ) -> RemoveWorkspaceResult:
        """Raises ActivityError when the workspace could not be removed."""
        return await workflow.execute_activity(
            remove_workspace,
            RemoveWorkspaceInput(workflow=loaded, identifier=identifier),
            start_to_close_timeout=timedelta(seconds=loaded.config.hooks.timeout_s + 120),
            retry_policy=QUICK_RETRY,
            **_on_host(loaded.config, workspace.host_queue),
        )

    # -- plumbing ------------------------------------------------------------------------------

    async def _until_done(
        self,
        handle: workflow.ActivityHandle[T],
        *,
        started: Callable[[], bool] | None = None,
        on_started: Callable[[], Awaitable[None]] | None = None,
    ) -> T:
        """Wait for a host activity; cancel it when the issue is cancelled."""
        while True:
            await workflow.wait_condition(
                lambda: (
                    handle.done()
                    or self._cancelled() is not None
                    or (started is not None and started())
                )
            )
            if handle.done():
                break
            reason = self._cancelled()
            if reason is not None:
                handle.cancel()
                with contextlib.suppress(ActivityError, asyncio.CancelledError):
                    await handle
                raise AttemptEnded(Outcome.CANCELLED, reason)
            if on_started is not None:
                await on_started()
        try:
            return await handle
        except ActivityError as error:
            if host_lost(error):
                raise HostLost(cause_message(error), timeout_type(error)) from None
            raise

    async def _recover_agent(
        self, config: WorkflowConfig, workspace: WorkspaceInfo, number: int
    ) -> AgentRunResult | None:
        """The host stopped answering while the agent ran; if it is back (a server outage, a
        network blip) and still holds the finished result, the work is judged, not redone."""
        try:
            return await workflow.execute_activity(
                recover_agent_result,
                RecoverAgentInput(attempt=number),
                task_queue=workspace.host_queue,
                schedule_to_start_timeout=timedelta(
                    seconds=min(config.timeouts.host_start_s, RECOVERY_PICKUP_S)
                ),
                start_to_close_timeout=timedelta(seconds=30),
                retry_policy=NO_RETRY,
            )
        except ActivityError:
            return None


def _on_host(config: WorkflowConfig, queue: str) -> dict[str, Any]:
    """The options every activity on the issue's host shares."""
    return {
        "task_queue": queue,
        "schedule_to_start_timeout": timedelta(seconds=config.timeouts.host_start_s),
        "heartbeat_timeout": timedelta(seconds=config.timeouts.heartbeat_s),
    }


def _prepare_failure(error: ActivityError) -> tuple[Outcome, str]:
    kind = cause_type(error)
    message = cause_message(error)
    if host_lost(error):
        return Outcome.WORKER_LOST, message
    if isinstance(error.cause, CancelledError):
        return Outcome.CANCELLED, message
    if kind == ErrorType.HOOK_TIMEOUT:
        return Outcome.HOOK_TIMEOUT, f"after_create timed out: {message}"
    if kind == ErrorType.HOOK_FAILED:
        return Outcome.HOOK_FAILED, f"after_create failed: {message}"
    if kind == ErrorType.CONFIG_INVALID:
        return Outcome.CONFIG_INVALID, message
    return Outcome.WORKSPACE_FAILED, message


def _hook_activity_s(loaded: LoadedWorkflow, hook: HookName) -> int:
    """The hook's own timeout, plus room to set up and clean up; ``verify`` with a test report
    may also run once on the base (the first time that base is seen on the host)."""
    runs = 2 if hook is HookName.VERIFY and loaded.config.judge.test_report else 1
    return hook_timeout_s(loaded, hook) * runs + 120
