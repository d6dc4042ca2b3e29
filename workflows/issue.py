"""IssueWorkflow: one PRD issue, decided from evidence (DESIGN §3-§4).

Each attempt: gate (issue and line not halted, budget left) → prepare the workspace on its host
→ ``before_run`` → the agent → ``after_run`` → evidence → ``verify`` (only for a ship claim that
passed the git gate) → outcome → decision → act. Counters live in workflow state, so caps
survive crashes, restarts and continue-as-new; retries are timers in the history, never blind
activity retries.

Signals:
    ``halt(HaltRequest)``: stop before the next attempt (scope ``line``: the line is halted).
    ``resume(ResumeRequest)``: same as ``decide`` retry; refused visibly without a root cause
    (scope ``line``: the line was resumed).
    ``answer(AnswerRequest)``: answers for a paused issue.
    ``cancel(CancelRequest)``: stop, preserve the work, optionally remove the workspace.
    ``tracker_state(TrackerStateUpdate)``: the line saw the issue's live state.
    ``agent_started(AgentStarted)``: from the ``run_agent`` activity, once its host had a slot.
Update:
    ``decide(DecideRequest) -> DecideResult``: retry or abandon a halted issue.
Query:
    ``status() -> IssueStatus``.

No silent end: an outcome no rule expected (an activity failing in a new way) is
``orchestrator_error``, and any error in this workflow's own code halts the issue with that
category and the error, on the tracker and in the status; the workflow itself never fails.
Every phase change reaches the line as it happens (``issue_report``).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from datetime import timedelta
from typing import Any, TypeVar, assert_never

from temporalio import workflow
from temporalio.common import RetryPolicy, SearchAttributeUpdate
from temporalio.exceptions import (
    ActivityError,
    ApplicationError,
    CancelledError,
    TimeoutType,
)
from temporalio.exceptions import TimeoutError as ActivityTimeoutError

with workflow.unsafe.imports_passed_through():
    from activities.agent.results import recover_agent_result
    from activities.agent.run import run_agent
    from activities.config import load_workflow_config
    from activities.evidence import collect_evidence
    from activities.hooks import hook_script, hook_timeout_s, run_hook
    from activities.tracker.activities import (
        TRACKER_NOT_FOUND,
        TRANSITION_REFUSED,
        tracker_comment,
        tracker_fetch_issue,
        tracker_publish,
        tracker_transition,
    )
    from activities.workspace import (
        ErrorType,
        HostActivities,
        prepare_workspace,
        preserve_work,
        push_branch,
        remove_workspace,
    )
    from jidoka import comments, policy
    from jidoka import search_attributes as sa
    from jidoka.config import WorkflowConfig
    from jidoka.models import (
        AgentRunResult,
        AttemptRecord,
        Decision,
        Evidence,
        HaltRecord,
        HookResult,
        Issue,
        IssueState,
        LoadedWorkflow,
        PendingEvaluation,
        RateLimitInfo,
        ShipEvidence,
        WorkspaceInfo,
    )
    from jidoka.outcomes import (
        DecisionKind,
        HaltCategory,
        HaltScope,
        HaltSource,
        HookName,
        OperatorDecision,
        Outcome,
        Phase,
    )
    from jidoka.payloads import (
        AgentRunInput,
        AgentStarted,
        AnswerRequest,
        CancelRequest,
        CommentInput,
        DecideRequest,
        DecideResult,
        EvidenceInput,
        HaltRequest,
        HookInput,
        IssueReport,
        IssueResult,
        IssueStatus,
        IssueWorkflowInput,
        LoadWorkflowInput,
        PrepareWorkspaceInput,
        PreserveInput,
        PublishInput,
        PushInput,
        RecoverAgentInput,
        RemoveWorkspaceInput,
        ResumeRequest,
        TrackerIssueInput,
        TrackerStateUpdate,
        TransitionInput,
    )

T = TypeVar("T")

MAX_RECORDS = 50
"""Attempts and halts kept in state (and so in continue-as-new inputs)."""
REASON_LIMIT = 2000
"""Characters of a halt reason kept: reasons carry errors and outputs of unbounded size."""
HISTORY_SOFT_LIMIT = 8000

TRACKER_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=2),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=60),
    maximum_attempts=6,
)
"""Tracker calls: transient provider errors only; deterministic ones are non-retryable."""
QUICK_RETRY = RetryPolicy(maximum_attempts=3, initial_interval=timedelta(seconds=1))
NO_RETRY = RetryPolicy(maximum_attempts=1)
"""Agents and hooks: a failed run is a workflow decision, never a blind activity retry."""


class _HostLost(Exception):
    """A host-pinned activity's host stopped answering (heartbeat or pick-up timeout)."""

    def __init__(self, message: str, timeout: TimeoutType | None) -> None:
        super().__init__(message)
        self.message = message
        self.timeout = timeout


class _ReportExtras:
    """What the next report to the line must carry besides the phase."""

    def __init__(
        self,
        tokens_delta: int = 0,
        outcome: Outcome | None = None,
        rate_limit: RateLimitInfo | None = None,
    ) -> None:
        self.tokens_delta = tokens_delta
        self.outcome = outcome
        self.rate_limit = rate_limit

    @property
    def empty(self) -> bool:
        return self.tokens_delta == 0 and self.outcome is None and self.rate_limit is None


class _AttemptEnded(Exception):
    """Ends an attempt early with an outcome (hook failure, lost worker, cancellation...)."""

    def __init__(self, outcome: Outcome, detail: str, hook: HookResult | None = None) -> None:
        super().__init__(detail)
        self.outcome = outcome
        self.detail = detail
        self.hook = hook


@workflow.defn
class IssueWorkflow:
    """One PRD issue from dispatch to shipped, paused, halted, abandoned or released.

    Signals ``halt``, ``resume``, ``answer``, ``cancel``, ``tracker_state``; update ``decide``;
    query ``status``. See the module docstring for the loop and the message contracts.
    """

    @workflow.init
    def __init__(self, input: IssueWorkflowInput) -> None:
        self._input = input
        self._s: IssueState = (
            input.state.model_copy(deep=True) if input.state is not None else IssueState()
        )
        self._workflow: LoadedWorkflow | None = input.workflow
        self._cancel: CancelRequest | None = None
        self._answer: AnswerRequest | None = None
        self._operator: DecideRequest | None = None
        self._operator_halt: HaltRequest | None = None
        self._woken_state: str | None = None
        self._notice: str | None = None
        self._upserted: dict[str, object] = {}
        self._agent_started: AgentStarted | None = None
        self._unreported = _ReportExtras()
        self._announced_moving_to: str | None = None

    # ------------------------------------------------------------------------------------------
    # Run
    # ------------------------------------------------------------------------------------------

    @workflow.run
    async def run(self, input: IssueWorkflowInput) -> IssueResult:
        s = self._s
        if s.started_at is None:
            s.started_at = workflow.now()
        try:
            await self._load_config()
            while not s.phase.is_final:
                if self._history_is_long():
                    await workflow.wait_condition(workflow.all_handlers_finished)
                    workflow.continue_as_new(
                        IssueWorkflowInput(
                            workflow_path=input.workflow_path,
                            issue_id=input.issue_id,
                            line_workflow_id=input.line_workflow_id,
                            state=self._s,
                        )
                    )
                try:
                    await self._step()
                except Exception as error:  # no silent end: whatever broke, a person sees it
                    await self._fault(error)
        except asyncio.CancelledError:
            # `temporal workflow cancel`: wind down like a cancel signal, then end cancelled.
            await self._release(CancelRequest(reason="workflow cancelled"))
            raise
        await workflow.wait_condition(workflow.all_handlers_finished)
        return self._result()

    def _history_is_long(self) -> bool:
        info = workflow.info()
        return info.is_continue_as_new_suggested() or info.get_current_history_length() > (
            HISTORY_SOFT_LIMIT
        )

    async def _step(self) -> None:
        s = self._s
        if self._cancel is not None:
            await self._release(self._cancel)
            return
        if self._operator_halt is not None and s.phase not in (Phase.HALTED, Phase.SHIPPING):
            # An operator's halt takes effect between steps: never mid-ship, and it parks a
            # paused issue too (its questions stay on the tracker).
            request, self._operator_halt = self._operator_halt, None
            await self._halt(
                request.category,
                request.reason,
                HaltSource.OPERATOR,
                evidence={"operator": request.operator},
            )
            return
        match s.phase:
            case Phase.HALTED:
                await self._wait_for_operator()
                return
            case Phase.PAUSED:
                await self._wait_for_answer()
                return
            case (
                Phase.QUEUED
                | Phase.GATED
                | Phase.PREPARING
                | Phase.WAITING_FOR_SLOT
                | Phase.RUNNING_AGENT
                | Phase.VERIFYING
                | Phase.SHIPPING
                | Phase.BACKING_OFF
            ):
                pass
            case Phase.SHIPPED | Phase.ABANDONED | Phase.RELEASED:
                return
            case _:
                assert_never(s.phase)
        if s.line_halted:
            await self._enter(Phase.GATED)
            await workflow.wait_condition(
                lambda: (
                    not self._s.line_halted
                    or self._cancel is not None
                    or self._operator_halt is not None
                )
            )
            return
        await self._load_config()
        if s.phase.is_final:
            return
        if s.issue is None:
            await self._start_issue()
            return
        gate = policy.budget_gate(s.counters, self._config)
        if gate is not None:
            self._record_decision(s.counters.attempts, Outcome.BUDGET_EXCEEDED, gate)
            await self._act(gate, Outcome.BUDGET_EXCEEDED, None, None)
            return
        await self._attempt()

    # ------------------------------------------------------------------------------------------
    # Config and the issue itself
    # ------------------------------------------------------------------------------------------

    @property
    def _config(self) -> WorkflowConfig:
        assert self._workflow is not None, "config used before the first load"
        return self._workflow.config

    async def _load_config(self) -> None:
        """Reload WORKFLOW.md before each attempt; an invalid edit keeps the last good config
        (Symphony §6.2) and shows the error in ``status``. With no good config at all, halt
        (``config_invalid``) until an operator has fixed the file and resumes."""
        while not self._s.phase.is_final:
            try:
                loaded = await workflow.execute_activity(
                    load_workflow_config,
                    LoadWorkflowInput(path=self._input.workflow_path),
                    start_to_close_timeout=timedelta(seconds=30),
                    retry_policy=QUICK_RETRY,
                )
            except ActivityError as error:
                message = _cause_message(error)
                self._s.config_error = message
                if self._workflow is not None:
                    workflow.logger.warning(
                        "WORKFLOW.md invalid, keeping the last good: %s", message
                    )
                    return
                await self._halt(HaltCategory.CONFIG_INVALID, message, HaltSource.ORCHESTRATOR)
                await self._wait_for_operator()
                continue
            self._workflow = loaded
            self._s.config_error = None
            return

    async def _start_issue(self) -> None:
        """Read the issue and label the run (the first attempt claims it)."""
        s = self._s
        issue = await self._read_issue()
        if issue is None:
            return
        s.issue = issue
        s.tracker_state = issue.state
        workflow.upsert_memo({"title": issue.title, "url": issue.url or ""})
        self._upsert(line=self._config.line, issue=issue.identifier)

    async def _claim(self, issue: Issue) -> bool:
        """Before an attempt the issue must be ours and in the working state: someone else's
        move releases it; our own pause (an operator retried a paused issue) is undone first,
        so the tracker never says "awaiting answers" while an agent works."""
        s = self._s
        ours = policy.norm_state(issue.state) == policy.norm_state(s.tracker_state or "")
        paused_by_us = ours and any(
            policy.norm_state(issue.state) == policy.norm_state(p)
            for p in self._config.tracker.paused_states
        )
        if not self._is_active(issue.state) and not paused_by_us:
            await self._release(CancelRequest(reason=f"moved to '{issue.state}' by someone else"))
            return False
        s.tracker_state = issue.state
        target = self._config.tracker.working_state or (
            self._first_active() if paused_by_us else None
        )
        if target is None or policy.norm_state(issue.state) == policy.norm_state(target):
            return True
        try:
            await self._transition(target, comment=None, key=f"claim-{s.counters.attempts + 1}")
        except _TrackerWriteFailed as failed:
            if failed.category is HaltCategory.TRANSITION_REFUSED:
                await self._release(CancelRequest(reason=f"claim refused: {failed}"))
            else:
                await self._halt(failed.category, str(failed), HaltSource.ORCHESTRATOR)
            return False
        return True

    def _is_active(self, state: str) -> bool:
        return any(
            policy.norm_state(state) == policy.norm_state(a)
            for a in self._config.tracker.active_states
        )

    async def _fetch_issue(self) -> Issue:
        return await workflow.execute_activity(
            tracker_fetch_issue,
            TrackerIssueInput(config=self._config, issue_id=self._input.issue_id),
            start_to_close_timeout=timedelta(seconds=60),
            retry_policy=TRACKER_RETRY,
        )

    async def _read_issue(self) -> Issue | None:
        """The issue's live record, or None after handling why it could not be read: a deleted
        issue is released, a permanent error halts, a tracker outage waits and tries later."""
        try:
            return await self._fetch_issue()
        except ActivityError as error:
            kind = _cause_type(error)
            message = _cause_message(error)
            if kind == TRACKER_NOT_FOUND:
                await self._release(CancelRequest(reason=f"the issue no longer exists: {message}"))
            elif _is_permanent(error):
                await self._halt(
                    HaltCategory.OTHER, f"cannot read the issue: {message}", HaltSource.ORCHESTRATOR
                )
            else:
                workflow.logger.warning("tracker unreachable, trying again later: %s", message)
                await self._back_off(float(self._config.backoff.max_s), "tracker outage")
            return None

    # ------------------------------------------------------------------------------------------
    # One attempt
    # ------------------------------------------------------------------------------------------

    async def _attempt(self) -> None:
        s = self._s
        assert self._workflow is not None
        loaded = self._workflow
        config = loaded.config
        number = s.counters.attempts + 1
        record = AttemptRecord(number=number, started_at=workflow.now())
        await self._enter(Phase.PREPARING)
        issue = await self._read_issue()
        if issue is None:
            return
        s.issue = issue
        if not await self._claim(issue):
            return
        agent: AgentRunResult | None = None
        evidence: Evidence | None = None
        pending = s.pending
        try:
            workspace = await self._prepare(loaded, issue, number)
            record.host_queue = workspace.host_queue
            if pending is None:
                await self._hook(HookName.BEFORE_RUN, workspace, number, fatal=True)
                s.counters = s.counters.model_copy(update={"attempts": number})
                await self._enter(Phase.WAITING_FOR_SLOT)
                agent = await self._run_agent(loaded, issue, workspace, number)
                s.counters = policy.record_usage(s.counters, agent)
                if agent.resume_token:
                    s.resume_token = agent.resume_token
                after = await self._hook(HookName.AFTER_RUN, workspace, number, fatal=False)
                if after is not None and after.timed_out:
                    s.pending = PendingEvaluation(attempt=number, agent=agent)
                    raise _AttemptEnded(Outcome.HOOK_TIMEOUT, "after_run timed out", after)
            else:
                agent = pending.agent
                s.pending = None
            evidence = await self._collect(workspace)
            if policy.needs_verify(evidence, config):
                await self._enter(Phase.VERIFYING)
                verify = await self._hook(HookName.VERIFY, workspace, number, fatal=False)
                evidence = evidence.model_copy(update={"verify": verify})
                if verify is not None and verify.timed_out:
                    s.pending = PendingEvaluation(attempt=number, agent=agent)
            outcome = policy.classify_attempt(agent, evidence, config)
            detail = agent.detail
        except _AttemptEnded as ended:
            outcome, detail = ended.outcome, ended.detail
            if ended.hook is not None:
                record.hook_failure = f"{ended.hook.name}: {ended.detail}"
        except ActivityError as error:
            # An activity failed in a way no outcome above describes: stop and show it.
            outcome = Outcome.ORCHESTRATOR_ERROR
            detail = f"{error.activity_type or 'an activity'} failed: {_cause_message(error)}"
        self._finish_attempt(record, agent, evidence, outcome, detail)
        await self._decide_and_act(record, outcome, agent, evidence)

    def _finish_attempt(
        self,
        record: AttemptRecord,
        agent: AgentRunResult | None,
        evidence: Evidence | None,
        outcome: Outcome,
        detail: str,
    ) -> None:
        record.ended_at = workflow.now()
        record.outcome = outcome
        record.agent_detail = detail
        if agent is not None:
            record.agent_stop = agent.stop
            record.tokens = agent.usage.total_tokens
            record.slot_wait_s = agent.slot_wait_s
        if evidence is not None:
            reading = evidence.verdict
            record.verdict = reading.verdict.verdict if reading.verdict else None
            record.verdict_error = reading.error
            record.commits_ahead = evidence.git.commits_ahead
            record.diff = evidence.git.diff
            record.uncommitted_count = evidence.git.uncommitted_count
            record.verify_ok = evidence.verify.ok if evidence.verify else None
        self._s.last_outcome = outcome
        self._s.last_evidence = evidence

    async def _decide_and_act(
        self,
        record: AttemptRecord,
        outcome: Outcome,
        agent: AgentRunResult | None,
        evidence: Evidence | None,
    ) -> None:
        s = self._s
        config = self._config
        s.counters = policy.count_outcome(s.counters, outcome)
        reading = evidence.verdict if evidence is not None else None
        token = reading.verdict.verdict if reading is not None and reading.verdict else None
        rate_delay = 0.0
        if agent is not None and agent.rate_limit is not None and agent.rate_limit.resets_at:
            rate_delay = max((agent.rate_limit.resets_at - workflow.now()).total_seconds(), 0.0)
        decision = policy.decide(
            outcome,
            policy.DecisionContext(
                counters=s.counters,
                verdict_token=token,
                verdict_route=config.verdicts.get(token) if token else None,
                guidance=policy.continuation_guidance(outcome, evidence),
                rate_limit_delay_s=min(rate_delay, float(config.backoff.max_s) * 12),
                agent_stop=agent.stop if agent is not None else None,
                detail=record.hook_failure or record.agent_detail,
                hook=_failed_hook(record, evidence),
            ),
            config,
        )
        s.counters = policy.count_continuation(s.counters, decision)
        self._record_decision(record.number, outcome, decision)
        record.decision = decision
        s.last_decision = decision
        s.attempts = [*s.attempts, record][-MAX_RECORDS:]
        self._upsert(outcome=outcome.value)
        # Sent with the phase the decision leads to (the next report), not in a signal of its own.
        self._unreported = _ReportExtras(
            tokens_delta=self._unreported.tokens_delta + record.tokens,
            outcome=outcome,
            rate_limit=agent.rate_limit if agent else self._unreported.rate_limit,
        )
        await self._act(decision, outcome, evidence, agent)

    # ------------------------------------------------------------------------------------------
    # Activities on the issue's host
    # ------------------------------------------------------------------------------------------

    async def _ensure_host(self) -> str:
        if self._s.host_queue is None:
            claim = await workflow.execute_activity_method(
                HostActivities.claim_host,
                start_to_close_timeout=timedelta(seconds=30),
                retry_policy=QUICK_RETRY,
            )
            self._s.host_queue = claim.host_queue
        return self._s.host_queue

    async def _prepare(self, loaded: LoadedWorkflow, issue: Issue, number: int) -> WorkspaceInfo:
        """Prepare on the issue's host; if that host is gone, on another one (from the pushed
        branch when there is one, DESIGN §3)."""
        for _ in range(2):
            queue = await self._ensure_host()
            try:
                workspace = await workflow.execute_activity(
                    prepare_workspace,
                    PrepareWorkspaceInput(
                        workflow=loaded, issue=issue, base_sha=self._s.base_sha, attempt=number
                    ),
                    task_queue=queue,
                    schedule_to_start_timeout=timedelta(
                        seconds=loaded.config.timeouts.host_start_s
                    ),
                    start_to_close_timeout=timedelta(seconds=loaded.config.hooks.timeout_s + 600),
                    heartbeat_timeout=timedelta(seconds=loaded.config.timeouts.heartbeat_s),
                    retry_policy=QUICK_RETRY,
                )
            except ActivityError as error:
                if _timeout_type(error) is TimeoutType.SCHEDULE_TO_START:
                    workflow.logger.warning(
                        "host %s did not pick up the workspace: host lost", queue
                    )
                    self._s.host_queue = None
                    continue
                raise _AttemptEnded(*_prepare_failure(error)) from None
            self._s.workspace = workspace
            self._s.base_sha = workspace.base_sha
            return workspace
        raise _AttemptEnded(Outcome.WORKER_LOST, "no host picked up the workspace")

    async def _host_call(self, start: Callable[[], workflow.ActivityHandle[T]]) -> T:
        """Run a host activity that an issue ``cancel`` must interrupt; a lost host ends the
        attempt as ``worker_lost``."""
        try:
            return await self._await_host_activity(start())
        except _HostLost as lost:
            raise _AttemptEnded(Outcome.WORKER_LOST, lost.message) from None

    async def _await_host_activity(
        self, handle: workflow.ActivityHandle[T], *, attempt: int | None = None
    ) -> T:
        """Wait for a host activity, cancelling it on an issue ``cancel``. With ``attempt``, the
        agent's ``agent_started`` signal moves the phase from waiting for a slot to running."""

        def started() -> bool:
            signal = self._agent_started
            return attempt is not None and signal is not None and signal.attempt == attempt

        while True:
            await workflow.wait_condition(
                lambda: handle.done() or self._cancel is not None or started()
            )
            if handle.done():
                break
            if self._cancel is not None:
                handle.cancel()
                with contextlib.suppress(ActivityError, asyncio.CancelledError):
                    await handle
                raise _AttemptEnded(Outcome.CANCELLED, self._cancel.reason)
            self._agent_started = None
            await self._enter(Phase.RUNNING_AGENT)
        try:
            return await handle
        except ActivityError as error:
            if _is_lost(error):
                raise _HostLost(_cause_message(error), _timeout_type(error)) from None
            raise

    async def _hook(
        self, hook: HookName, workspace: WorkspaceInfo, number: int, *, fatal: bool
    ) -> HookResult | None:
        """Run a hook. ``fatal`` hooks end the attempt on failure; a timeout always does for
        ``before_run`` and is reported for the others (the caller decides)."""
        assert self._workflow is not None
        config = self._workflow.config
        if not hook_script(self._workflow, hook):
            return None
        timeout = hook_timeout_s(self._workflow, hook)
        hook_input = HookInput(
            workflow=self._workflow,
            workspace=workspace,
            hook=hook,
            attempt=number,
            issue_identifier=self._identifier,
        )
        try:
            result = await self._host_call(
                lambda: workflow.start_activity(
                    run_hook,
                    hook_input,
                    task_queue=workspace.host_queue,
                    schedule_to_start_timeout=timedelta(seconds=config.timeouts.host_start_s),
                    start_to_close_timeout=timedelta(seconds=timeout + 120),
                    heartbeat_timeout=timedelta(seconds=config.timeouts.heartbeat_s),
                    retry_policy=NO_RETRY,
                    cancellation_type=workflow.ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
                    summary=f"hook {hook.value}",
                )
            )
        except ActivityError as error:
            raise _AttemptEnded(
                Outcome.HOOK_FAILED, f"{hook.value}: {_cause_message(error)}"
            ) from None
        if fatal and not result.ok:
            outcome = Outcome.HOOK_TIMEOUT if result.timed_out else Outcome.HOOK_FAILED
            raise _AttemptEnded(
                outcome, f"{hook.value} {'timed out' if result.timed_out else 'failed'}", result
            )
        return result

    async def _run_agent(
        self, loaded: LoadedWorkflow, issue: Issue, workspace: WorkspaceInfo, number: int
    ) -> AgentRunResult:
        s = self._s
        budget = policy.attempt_budget(s.counters, loaded.config)
        timeouts = loaded.config.timeouts
        agent_input = AgentRunInput(
            workflow=loaded,
            issue=issue,
            attempt=number,
            template_attempt=None if number == 1 else number,
            guidance=s.guidance,
            workspace=workspace,
            budget_tokens=budget.tokens,
            budget_tokens_before_first_commit=budget.tokens_before_first_commit,
            wall_s=budget.wall_s,
            max_turns=budget.max_turns,
            resume_token=s.resume_token,
            slot_wait_s=float(timeouts.slot_wait_s),
        )
        handle = workflow.start_activity(
            run_agent,
            agent_input,
            task_queue=workspace.host_queue,
            schedule_to_start_timeout=timedelta(seconds=timeouts.host_start_s),
            # Waiting for a slot has its own bound, inside the activity; it is never agent time.
            start_to_close_timeout=timedelta(seconds=timeouts.slot_wait_s + budget.wall_s + 120),
            heartbeat_timeout=timedelta(seconds=timeouts.heartbeat_s),
            retry_policy=NO_RETRY,
            cancellation_type=workflow.ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
            summary=f"agent attempt {number}",
        )
        try:
            result = await self._await_host_activity(handle, attempt=number)
        except _HostLost as lost:
            recovered = (
                await self._recover_agent(workspace, number)
                if lost.timeout is TimeoutType.HEARTBEAT
                else None
            )
            if recovered is None:
                raise _AttemptEnded(Outcome.WORKER_LOST, lost.message) from None
            workflow.logger.info("attempt %d: the agent had finished; result recovered", number)
            result = recovered
        s.guidance = None
        return result

    async def _recover_agent(self, workspace: WorkspaceInfo, number: int) -> AgentRunResult | None:
        """The host stopped answering while the agent ran; if it is back (a server outage, a
        network blip) and still holds the finished result, the work is judged, not redone."""
        wait = min(self._config.timeouts.host_start_s, 30)
        try:
            return await workflow.execute_activity(
                recover_agent_result,
                RecoverAgentInput(attempt=number),
                task_queue=workspace.host_queue,
                schedule_to_start_timeout=timedelta(seconds=wait),
                start_to_close_timeout=timedelta(seconds=30),
                retry_policy=NO_RETRY,
            )
        except ActivityError:
            return None

    async def _collect(self, workspace: WorkspaceInfo) -> Evidence:
        try:
            return await workflow.execute_activity(
                collect_evidence,
                EvidenceInput(workspace=workspace),
                task_queue=workspace.host_queue,
                schedule_to_start_timeout=timedelta(seconds=self._config.timeouts.host_start_s),
                start_to_close_timeout=timedelta(seconds=120),
                heartbeat_timeout=timedelta(seconds=self._config.timeouts.heartbeat_s),
                retry_policy=QUICK_RETRY,
            )
        except ActivityError as error:
            if _is_lost(error):
                raise _AttemptEnded(Outcome.WORKER_LOST, _cause_message(error)) from None
            raise _AttemptEnded(Outcome.WORKSPACE_FAILED, _cause_message(error)) from None

    # ------------------------------------------------------------------------------------------
    # Acting on a decision
    # ------------------------------------------------------------------------------------------

    async def _act(
        self,
        decision: Decision,
        outcome: Outcome,
        evidence: Evidence | None,
        agent: AgentRunResult | None,
    ) -> None:
        s = self._s
        s.last_decision = decision
        match decision.kind:
            case DecisionKind.SHIP:
                assert evidence is not None
                await self._ship(evidence)
            case DecisionKind.CONTINUE | DecisionKind.RETRY:
                s.guidance = decision.guidance
                await self._back_off(decision.delay_s, decision.kind.value)
                await self._enter(Phase.QUEUED)
            case DecisionKind.PAUSE:
                assert decision.target_state is not None
                questions = (
                    evidence.verdict.verdict.questions
                    if evidence is not None and evidence.verdict.verdict is not None
                    else []
                )
                await self._pause(decision.target_state, questions)
            case DecisionKind.HALT:
                source = (
                    HaltSource.AGENT
                    if outcome is Outcome.HALT_REQUESTED
                    else HaltSource.ORCHESTRATOR
                )
                reason = decision.reason
                if outcome is Outcome.HALT_REQUESTED and evidence and evidence.verdict.verdict:
                    reason = evidence.verdict.verdict.halt_reason or reason
                facts: dict[str, str | int | bool | None] = {
                    "outcome": outcome.value,
                    "rule": decision.rule,
                }
                if agent is not None:
                    facts["agent_stop"] = agent.stop.value
                    facts["tokens"] = agent.usage.total_tokens
                if evidence is not None:
                    facts["commits_ahead"] = evidence.git.commits_ahead
                    facts["files_changed"] = evidence.git.diff.files_changed
                assert decision.halt_category is not None
                await self._halt(decision.halt_category, reason, source, evidence=facts)
            case DecisionKind.ABANDON:
                await self._abandon(decision.reason)
            case DecisionKind.RELEASE:
                await self._release(self._cancel or CancelRequest(reason=decision.reason))
            case _:
                assert_never(decision.kind)

    async def _back_off(self, seconds: float, why: str) -> None:
        """Wait before the next attempt, visibly (``backing_off`` with ``retry_at``); a cancel
        or an operator halt cuts it short."""
        if seconds <= 0:
            return
        self._s.retry_at = workflow.now() + timedelta(seconds=seconds)
        await self._enter(Phase.BACKING_OFF)
        with contextlib.suppress(TimeoutError):
            await workflow.wait_condition(
                lambda: self._cancel is not None or self._operator_halt is not None,
                timeout=timedelta(seconds=seconds),
                timeout_summary=f"{why} backoff",
            )
        self._s.retry_at = None

    async def _ship(self, evidence: Evidence) -> None:
        s = self._s
        assert self._workflow is not None and s.workspace is not None and s.issue is not None
        loaded = self._workflow
        config = loaded.config
        # Told up front, so the line never reads our own move to done as a person's edit.
        await self._enter(Phase.SHIPPING, moving_to=config.tracker.done_state)
        verdict = evidence.verdict.verdict
        ship = ShipEvidence(
            outcome=Outcome.SHIPPED,
            branch=evidence.git.branch,
            base_sha=evidence.git.base_sha,
            head_sha=evidence.git.head_sha,
            commits_ahead=evidence.git.commits_ahead,
            diff=evidence.git.diff,
            uncommitted_count=evidence.git.uncommitted_count,
            verify_configured=config.hooks.verify is not None,
            verify_passed=evidence.verify.ok if evidence.verify is not None else None,
            tokens_total=s.counters.tokens.total_tokens,
            summary=verdict.summary if verdict else "",
        )
        try:
            if config.workspace.push_on_ship:
                pushed = await workflow.execute_activity(
                    push_branch,
                    PushInput(workflow=loaded, workspace=s.workspace),
                    task_queue=s.workspace.host_queue,
                    schedule_to_start_timeout=timedelta(seconds=config.timeouts.host_start_s),
                    start_to_close_timeout=timedelta(minutes=5),
                    heartbeat_timeout=timedelta(seconds=config.timeouts.heartbeat_s),
                    retry_policy=QUICK_RETRY,
                )
                ship = ship.model_copy(update={"pushed_to": pushed.remote})
                url = await workflow.execute_activity(
                    tracker_publish,
                    PublishInput(
                        config=config,
                        issue=s.issue,
                        branch=ship.branch,
                        title=f"{s.issue.identifier}: {s.issue.title}",
                        body=comments.ship_comment(
                            ship, config.tracker.done_state, config.hooks.verify
                        ),
                    ),
                    start_to_close_timeout=timedelta(seconds=120),
                    retry_policy=TRACKER_RETRY,
                )
                if url:
                    ship = ship.model_copy(update={"pull_request_url": url})
        except ActivityError as error:
            await self._halt(
                HaltCategory.OTHER,
                f"shipping failed before the tracker was touched: {_cause_message(error)}",
                HaltSource.ORCHESTRATOR,
            )
            return
        try:
            await self._transition(
                config.tracker.done_state,
                comment=comments.ship_comment(ship, config.tracker.done_state, config.hooks.verify),
                key="ship",
                evidence=ship,
            )
        except _TrackerWriteFailed as failed:
            await self._halt(failed.category, str(failed), HaltSource.ORCHESTRATOR)
            return
        s.ship = ship
        s.finished_at = workflow.now()
        await self._enter(Phase.SHIPPED, final=True)

    async def _pause(self, paused_state: str, questions: list[str]) -> None:
        s = self._s
        try:
            await self._transition(
                paused_state,
                comment=comments.questions_comment(
                    questions, paused_state, workflow.info().workflow_id
                ),
                key=f"pause-{s.counters.attempts}",
            )
        except _TrackerWriteFailed as failed:
            await self._halt(failed.category, str(failed), HaltSource.ORCHESTRATOR)
            return
        s.questions = questions
        await self._enter(Phase.PAUSED)

    async def _wait_for_answer(self) -> None:
        """Paused: wake on an answer, on the tracker moving the issue back to an active state
        (the line tells us; a line-less issue polls), or on cancel."""
        s = self._s
        poll = (
            None
            if self._input.line_workflow_id
            else timedelta(seconds=self._config.polling.interval_s)
        )
        try:
            await workflow.wait_condition(
                lambda: (
                    self._answer is not None
                    or self._woken_state is not None
                    or self._cancel is not None
                    or self._operator_halt is not None
                ),
                timeout=poll,
                timeout_summary="poll the tracker while paused",
            )
        except TimeoutError:
            issue = await self._read_issue()
            if issue is not None and self._is_active(issue.state):
                self._woken_state = issue.state
            return
        if self._cancel is not None or self._operator_halt is not None:
            return
        guidance: str
        if self._answer is not None:
            answer, self._answer = self._answer, None
            await self._comment(
                comments.answer_comment(answer.answer, answer.operator),
                key=f"answer-{len(s.attempts)}",
            )
            guidance = "Answers to your questions:\n\n" + answer.answer
        else:
            s.tracker_state = self._woken_state
            guidance = (
                "A person moved the issue back to work. Read the issue and its comments for the "
                "answers to your earlier questions, then continue."
            )
        self._woken_state = None
        target = self._config.tracker.working_state or self._first_active()
        try:
            await self._transition(target, comment=None, key=f"unpause-{len(s.attempts)}")
        except _TrackerWriteFailed as failed:
            await self._halt(failed.category, str(failed), HaltSource.ORCHESTRATOR)
            return
        s.questions = []
        s.guidance = guidance
        await self._enter(Phase.QUEUED)

    def _first_active(self) -> str:
        working = self._config.tracker.working_state
        for state in self._config.tracker.active_states:
            if working is None or policy.norm_state(state) != policy.norm_state(working):
                return state
        return self._config.tracker.active_states[0]

    async def _halt(
        self,
        category: HaltCategory,
        reason: str,
        source: HaltSource,
        *,
        evidence: dict[str, str | int | bool | None] | None = None,
    ) -> None:
        s = self._s
        if len(reason) > REASON_LIMIT:
            reason = reason[: REASON_LIMIT - 1] + "…"
        record = HaltRecord(
            category=category,
            reason=reason,
            source=source,
            scope=HaltScope.ISSUE,
            issue_identifier=s.issue.identifier if s.issue else self._input.issue_id,
            at=workflow.now(),
            evidence=evidence or {},
        )
        s.halt = record
        s.halts = [*s.halts, record][-MAX_RECORDS:]
        await self._enter(Phase.HALTED)
        if self._input.line_workflow_id:
            await self._signal_line(
                "halt",
                HaltRequest(
                    reason=reason,
                    category=category,
                    source=source,
                    scope=HaltScope.LINE,
                    issue_identifier=record.issue_identifier,
                    evidence=record.evidence,
                ),
            )
        if s.issue is not None:
            await self._comment(
                comments.halt_comment(record, workflow.info().workflow_id),
                key=f"halt-{len(s.halts)}",
            )

    async def _fault(self, error: Exception) -> None:
        """An error in this workflow's own code. Failing the workflow would leave the tracker
        saying "In Progress" with no word to anyone; instead the issue halts with the error
        (tracker comment, status, Web UI) and waits for a person before anything runs again."""
        s = self._s
        message = f"{type(error).__name__}: {error}"
        workflow.logger.error("unexpected error, halting the issue: %s", message)
        if s.phase.is_final:
            return
        reason = f"unexpected error in the issue workflow ({message})"
        decision = Decision(
            kind=DecisionKind.HALT,
            reason=reason,
            rule="no silent stop: an unexpected error halts the issue",
            halt_category=HaltCategory.ORCHESTRATOR_ERROR,
        )
        s.last_decision = decision
        try:
            self._record_decision(s.counters.attempts, Outcome.ORCHESTRATOR_ERROR, decision)
            await self._halt(HaltCategory.ORCHESTRATOR_ERROR, reason, HaltSource.ORCHESTRATOR)
        except Exception as again:  # even the halt failed: hold still, visibly
            workflow.logger.error("could not halt cleanly: %s", again)
            s.phase = Phase.HALTED
            self._upsert(phase=Phase.HALTED.value, halted=True)
        await workflow.wait_condition(
            lambda: self._operator is not None or self._cancel is not None
        )

    async def _wait_for_operator(self) -> None:
        await workflow.wait_condition(
            lambda: self._operator is not None or self._cancel is not None
        )
        if self._cancel is not None:
            return
        s = self._s
        decision, self._operator = self._operator, None
        assert decision is not None
        if s.halt is not None:
            resolved = s.halt.model_copy(
                update={
                    "resolved_at": workflow.now(),
                    "root_cause": decision.root_cause,
                    "resolved_by": decision.operator,
                }
            )
            s.halt = None
            s.halts = [*s.halts[:-1], resolved] if s.halts else [resolved]
        match decision.decision:
            case OperatorDecision.RETRY:
                s.counters = s.counters.model_copy(
                    update={"failures": 0, "continuations": 0, "infra_failures": 0}
                )
                await self._enter(Phase.QUEUED)
            case OperatorDecision.ABANDON:
                await self._abandon(f"abandoned by {decision.operator}: {decision.root_cause}")
            case _:
                assert_never(decision.decision)

    async def _abandon(self, reason: str) -> None:
        s = self._s
        branch, detail = await self._preserve(reason)
        await self._comment(comments.abandon_comment(reason, branch, detail), key="abandon")
        s.finished_at = workflow.now()
        await self._enter(Phase.ABANDONED, final=True)

    async def _release(self, request: CancelRequest) -> None:
        """The issue left our hands: keep the work, optionally remove the workspace, no
        tracker writes (the tracker already says where the issue is)."""
        s = self._s
        if s.phase.is_final:
            return
        await self._preserve(request.reason)
        if request.cleanup_workspace and self._workflow is not None and s.workspace is not None:
            try:
                await workflow.execute_activity(
                    remove_workspace,
                    RemoveWorkspaceInput(workflow=self._workflow, identifier=self._identifier),
                    task_queue=s.workspace.host_queue,
                    schedule_to_start_timeout=timedelta(seconds=self._config.timeouts.host_start_s),
                    start_to_close_timeout=timedelta(seconds=self._config.hooks.timeout_s + 120),
                    heartbeat_timeout=timedelta(seconds=self._config.timeouts.heartbeat_s),
                    retry_policy=QUICK_RETRY,
                )
            except ActivityError as error:
                workflow.logger.warning("could not remove the workspace: %s", _cause_message(error))
        s.last_outcome = s.last_outcome if s.last_outcome is not None else Outcome.CANCELLED
        s.finished_at = workflow.now()
        await self._enter(Phase.RELEASED, final=True)

    async def _preserve(self, reason: str) -> tuple[str | None, str]:
        s = self._s
        if self._workflow is None or s.workspace is None:
            return None, "no workspace was created"
        stamp = workflow.now().strftime("%Y%m%dT%H%M%SZ")
        try:
            result = await workflow.execute_activity(
                preserve_work,
                PreserveInput(
                    workflow=self._workflow, workspace=s.workspace, stamp=stamp, reason=reason
                ),
                task_queue=s.workspace.host_queue,
                schedule_to_start_timeout=timedelta(seconds=self._config.timeouts.host_start_s),
                start_to_close_timeout=timedelta(minutes=5),
                heartbeat_timeout=timedelta(seconds=self._config.timeouts.heartbeat_s),
                retry_policy=QUICK_RETRY,
            )
        except ActivityError as error:
            return None, f"could not preserve: {_cause_message(error)}"
        s.preserved_branch = result.branch
        return result.branch, result.detail

    # ------------------------------------------------------------------------------------------
    # Tracker writes
    # ------------------------------------------------------------------------------------------

    async def _comment(self, body: str, *, key: str) -> None:
        """Best effort: a comment that cannot be written is logged, never a reason to stop."""
        if self._workflow is None:
            return
        try:
            await workflow.execute_activity(
                tracker_comment,
                CommentInput(
                    config=self._config,
                    issue_id=self._input.issue_id,
                    body=body,
                    idempotency_key=f"{workflow.info().workflow_id}:{key}",
                ),
                start_to_close_timeout=timedelta(seconds=60),
                retry_policy=TRACKER_RETRY,
            )
        except ActivityError as error:
            workflow.logger.warning("could not comment (%s): %s", key, _cause_message(error))

    async def _transition(
        self, target: str, *, comment: str | None, key: str, evidence: ShipEvidence | None = None
    ) -> None:
        s = self._s
        moving = policy.norm_state(target) != policy.norm_state(s.tracker_state or "")
        if (
            moving
            and workflow.patched("report-own-transitions")
            and self._announced_moving_to != target
        ):
            # The line must hear it before its reconciliation can see the new state, or it
            # reads our own ship or pause as a person's edit and cancels us.
            await self._report(moving_to=target)
        try:
            result = await workflow.execute_activity(
                tracker_transition,
                TransitionInput(
                    config=self._config,
                    issue_id=self._input.issue_id,
                    expected_state=s.tracker_state or "",
                    target_state=target,
                    evidence=evidence,
                    comment=comment,
                    idempotency_key=f"{workflow.info().workflow_id}:{key}",
                ),
                start_to_close_timeout=timedelta(seconds=120),
                retry_policy=TRACKER_RETRY,
            )
        except ActivityError as error:
            category = (
                HaltCategory.TRANSITION_REFUSED
                if _cause_type(error) == TRANSITION_REFUSED
                else HaltCategory.OTHER
            )
            prefix = "" if category is HaltCategory.TRANSITION_REFUSED else "tracker write failed: "
            raise _TrackerWriteFailed(category, prefix + _cause_message(error)) from None
        s.tracker_state = result.issue.state
        s.issue = result.issue

    # ------------------------------------------------------------------------------------------
    # Reporting: search attributes, the line, the result
    # ------------------------------------------------------------------------------------------

    @property
    def _identifier(self) -> str:
        return self._s.issue.identifier if self._s.issue is not None else self._input.issue_id

    def _record_decision(self, attempt: int, outcome: Outcome, decision: Decision) -> None:
        """Write the decision into the history (a memo upsert is an event with its payload), so
        ``jidoka why`` and the Web UI show what was decided, why, and by which rule."""
        workflow.upsert_memo(
            {
                "decision": {
                    "attempt": attempt,
                    "outcome": outcome.value,
                    **decision.model_dump(mode="json", exclude={"guidance"}),
                }
            }
        )

    async def _enter(
        self, phase: Phase, *, final: bool = False, moving_to: str | None = None
    ) -> None:
        """Move to ``phase``: the search attributes and the line hear it as it happens."""
        s = self._s
        changed = phase is not s.phase
        s.phase = phase
        if phase is not Phase.BACKING_OFF:
            s.retry_at = None
        self._upsert(phase=phase.value, halted=phase is Phase.HALTED)
        if changed or final or moving_to is not None or not self._unreported.empty:
            await self._report(final=final, moving_to=moving_to)

    def _upsert(
        self,
        *,
        line: str | None = None,
        issue: str | None = None,
        phase: str | None = None,
        outcome: str | None = None,
        halted: bool | None = None,
    ) -> None:
        """Upsert only what changed: every upsert is a history event."""
        updates: list[SearchAttributeUpdate[Any]] = []
        keywords = ((sa.LINE, line), (sa.ISSUE, issue), (sa.PHASE, phase), (sa.OUTCOME, outcome))
        for key, value in keywords:
            if value is not None and self._upserted.get(key.name) != value:
                self._upserted[key.name] = value
                updates.append(key.value_set(value))
        if halted is not None and self._upserted.get(sa.HALTED.name) != halted:
            self._upserted[sa.HALTED.name] = halted
            updates.append(sa.HALTED.value_set(halted))
        tokens = self._s.counters.tokens.total_tokens
        if self._upserted.get(sa.TOKENS.name) != tokens:
            self._upserted[sa.TOKENS.name] = tokens
            updates.append(sa.TOKENS.value_set(tokens))
        if updates:
            workflow.upsert_search_attributes(updates)  # pyright: ignore[reportUnknownMemberType]

    async def _report(self, *, final: bool = False, moving_to: str | None = None) -> None:
        """Tell the line (when there is one) where this issue stands, with the tokens, outcome
        and rate limit of the last attempt if they have not been sent yet."""
        if not self._input.line_workflow_id:
            return
        s = self._s
        extras, self._unreported = self._unreported, _ReportExtras()
        self._announced_moving_to = moving_to
        report = IssueReport(
            issue_id=self._input.issue_id,
            identifier=self._identifier,
            workflow_id=workflow.info().workflow_id,
            phase=s.phase,
            attempt=s.counters.attempts,
            tokens_total=s.counters.tokens.total_tokens,
            tokens_delta=extras.tokens_delta,
            outcome=extras.outcome or s.last_outcome,
            rate_limit=extras.rate_limit,
            final=final,
            at=workflow.now(),
            moving_to=moving_to,
            retry_at=s.retry_at,
            infra_failures=s.counters.infra_failures,
        )
        await self._signal_line("issue_report", report)

    async def _signal_line(self, signal: str, payload: Any) -> None:
        line_id = self._input.line_workflow_id
        if not line_id:
            return
        try:
            await workflow.get_external_workflow_handle(line_id).signal(signal, payload)
        except Exception as error:
            workflow.logger.warning("could not signal line %s: %s", line_id, error)

    def _result(self) -> IssueResult:
        s = self._s
        return IssueResult(
            issue_id=self._input.issue_id,
            identifier=s.issue.identifier if s.issue else None,
            phase=s.phase,
            outcome=s.last_outcome,
            tracker_state=s.tracker_state,
            counters=s.counters,
            ship=s.ship,
            preserved_branch=s.preserved_branch,
            halts=s.halts,
        )

    # ------------------------------------------------------------------------------------------
    # Messages
    # ------------------------------------------------------------------------------------------

    @workflow.signal
    def halt(self, request: HaltRequest) -> None:
        if request.scope is HaltScope.LINE:
            self._s.line_halted = True
            return
        if self._s.phase.is_final or self._s.phase is Phase.HALTED:
            return
        self._operator_halt = request

    @workflow.signal
    def resume(self, request: ResumeRequest) -> None:
        if request.scope is HaltScope.LINE:
            self._s.line_halted = False
            return
        problem = _resume_problem(request.root_cause, request.operator)
        if problem is not None:
            self._notice = f"resume refused: {problem}"
            workflow.logger.warning("resume refused: %s", problem)
            return
        if self._s.phase is not Phase.HALTED:
            self._notice = "resume ignored: the issue is not halted"
            return
        self._notice = None
        self._operator = DecideRequest(
            decision=OperatorDecision.RETRY,
            root_cause=request.root_cause,
            operator=request.operator,
        )

    @workflow.signal
    def answer(self, request: AnswerRequest) -> None:
        if self._s.phase is Phase.PAUSED:
            self._answer = request

    @workflow.signal
    def cancel(self, request: CancelRequest) -> None:
        if not self._s.phase.is_final and self._s.phase is not Phase.SHIPPING:
            self._cancel = request

    @workflow.signal
    def tracker_state(self, update: TrackerStateUpdate) -> None:
        if self._s.phase is Phase.PAUSED:
            self._woken_state = update.state

    @workflow.signal
    def agent_started(self, started: AgentStarted) -> None:
        if self._s.phase is Phase.WAITING_FOR_SLOT and started.attempt == self._s.counters.attempts:
            self._agent_started = started

    @workflow.update
    def decide(self, request: DecideRequest) -> DecideResult:
        self._notice = None
        self._operator = request
        return DecideResult(accepted=True, message=f"{request.decision.value} accepted")

    @decide.validator
    def _validate_decide(self, request: DecideRequest) -> None:
        problem = _resume_problem(request.root_cause, request.operator)
        if problem is not None:
            raise ValueError(problem)
        if self._s.phase is not Phase.HALTED:
            raise ValueError(f"the issue is not halted (phase {self._s.phase.value})")
        if self._operator is not None:
            raise ValueError("a decision is already pending")

    @workflow.query
    def status(self) -> IssueStatus:
        s = self._s
        workspace = s.workspace
        return IssueStatus(
            workflow_id=workflow.info().workflow_id,
            line=self._workflow.config.line if self._workflow else None,
            issue_id=self._input.issue_id,
            identifier=s.issue.identifier if s.issue else None,
            title=s.issue.title if s.issue else None,
            url=s.issue.url if s.issue else None,
            phase=s.phase,
            tracker_state=s.tracker_state,
            attempt=s.counters.attempts,
            counters=s.counters,
            last_outcome=s.last_outcome,
            last_decision=s.last_decision,
            last_evidence=s.last_evidence,
            halt=s.halt,
            halts=s.halts,
            line_halted=s.line_halted,
            questions=s.questions,
            attempts=s.attempts,
            host_queue=s.host_queue,
            workspace_path=workspace.path if workspace else None,
            branch=workspace.branch if workspace else None,
            config_error=s.config_error or self._notice,
            started_at=s.started_at,
            finished_at=s.finished_at,
            ship=s.ship,
            preserved_branch=s.preserved_branch,
            retry_at=s.retry_at,
        )


class _TrackerWriteFailed(Exception):
    def __init__(self, category: HaltCategory, message: str) -> None:
        super().__init__(message)
        self.category = category


def _failed_hook(record: AttemptRecord, evidence: Evidence | None) -> str | None:
    if evidence is not None and evidence.verify is not None and not evidence.verify.ok:
        return "verify"
    if record.hook_failure:
        return record.hook_failure.split(":", 1)[0]
    return None


def _resume_problem(root_cause: str, operator: str) -> str | None:
    missing = [
        name
        for name, value in (("root_cause", root_cause), ("operator", operator))
        if not value.strip()
    ]
    if missing:
        return f"{' and '.join(missing)} required: name what was wrong and who decided"
    return None


def _cause_type(error: ActivityError) -> str | None:
    cause = error.cause
    return cause.type if isinstance(cause, ApplicationError) else None


def _cause_message(error: ActivityError) -> str:
    cause = error.cause
    return str(cause.message if isinstance(cause, ApplicationError) else cause or error)


def _is_permanent(error: ActivityError) -> bool:
    cause = error.cause
    return isinstance(cause, ApplicationError) and cause.non_retryable


def _timeout_type(error: ActivityError) -> TimeoutType | None:
    cause = error.cause
    return cause.type if isinstance(cause, ActivityTimeoutError) else None


def _is_lost(error: ActivityError) -> bool:
    return _timeout_type(error) in (TimeoutType.HEARTBEAT, TimeoutType.SCHEDULE_TO_START)


def _prepare_failure(error: ActivityError) -> tuple[Outcome, str]:
    kind = _cause_type(error)
    message = _cause_message(error)
    if _is_lost(error):
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
