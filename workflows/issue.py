"""IssueWorkflow: one PRD issue, decided from evidence.

The loop, one step at a time: gate (issue and line not halted, budget left) → claim the issue →
prepare the workspace on its host → ``before_run`` → the agent → ``after_run`` → evidence →
``verify`` (only for a ship claim that passed the git gate) → outcome → decision → act (ship,
continue, retry after a backoff, pause for answers, halt, abandon, release). Counters live in
workflow state, so caps survive crashes, restarts and continue-as-new; retries are timers in
the history, never blind activity retries.

Who does what: :mod:`workflows.host_calls` and :mod:`workflows.tracker_calls` make the calls
and classify what came back; :mod:`jidoka.policy` turns outcomes into decisions; this class
decides and acts, and owns every change of phase.

Signals:
    ``halt(HaltRequest)``: stop before the next attempt (scope ``line``: the line is halted).
    ``resume(ResumeRequest)``: same as ``decide`` retry; refused visibly without a root cause
    (scope ``line``: the line was resumed).
    ``answer(AnswerRequest)``: answers for a paused issue.
    ``cancel(CancelRequest)``: stop, preserve the work, optionally remove the workspace.
    ``tracker_state(TrackerStateUpdate)``: the line saw the issue's live state.
    ``agent_started(AgentStarted)``: from the ``run_agent`` activity, once its host had a slot.
    ``review_changed(ReviewChanged)``: the change request of an issue in review changed (a
    webhook relay, or the line seeing a person's move): read it now instead of at the next poll.
Update:
    ``decide(DecideRequest) -> DecideResult``: retry (with a note for the agent) or abandon a
    halted issue; after a ``protected_paths`` or ``tests_weakened`` stop, also accept: the
    person's consent is recorded and the held work judged again.
Query:
    ``status() -> IssueStatus``.

After the ship, with ``review:`` in WORKFLOW.md: the issue waits in ``review.state``, phase
``in_review``, holding no agent slot, and watches its change request (:mod:`workflows.review_watch`):
feedback starts a rework round (an ordinary attempt with exactly what to fix, shipped back
into review only through the same evidence gate), a ready request is merged pinned to the
shipped head (``review.merge: auto``) or waited on, a merged one moves the issue to the done
state with the evidence, a closed one releases it. Every loop is capped; a cap halts.

No silent end: an outcome no rule expected (an activity failing in a new way) is
``orchestrator_error``, and any error in this workflow's own code halts the issue with that
category and the error, on the tracker and in the status; the workflow itself never fails.
Every phase change reaches the line as it happens (``issue_report``).
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import datetime, timedelta
from typing import assert_never

from temporalio import workflow
from temporalio.exceptions import ActivityError

from workflows import metrics
from workflows.common import (
    LEAN_HISTORY,
    cause_message,
    history_is_long,
    host_lost,
    load_config,
    patched,
    resume_problem,
    signal_quietly,
    start_lean_steps,
    write_keys,
)
from workflows.host_calls import AttemptEnded, HostCalls, HostLost
from workflows.issue_reports import IssueReports
from workflows.review_watch import Reading, ReviewWatch
from workflows.tracker_calls import ReadFailed, TrackerCalls, TrackerWriteFailed, Unreadable

with workflow.unsafe.imports_passed_through():
    from jidoka import comments, judge, policy, review
    from jidoka import search_attributes as sa
    from jidoka.config import ReviewConfig, WorkflowConfig
    from jidoka.models import (
        AgentRunResult,
        AttemptRecord,
        Consent,
        Decision,
        Evidence,
        HaltRecord,
        HeldWork,
        HookResult,
        Issue,
        IssueState,
        JudgeFindings,
        LoadedWorkflow,
        PendingEvaluation,
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
        DecideRequest,
        DecideResult,
        HaltRequest,
        IssueResult,
        IssueStatus,
        IssueWorkflowInput,
        ResumeRequest,
        ReviewChanged,
        TrackerStateUpdate,
    )
    from jidoka.review import ChangeRequest, RequestState, ReviewLedger, Step, StepKind

MAX_RECORDS = 50
"""Attempts and halts kept in state (and so in continue-as-new inputs)."""
REASON_LIMIT = 2000
"""Characters of a halt reason kept: reasons carry errors and outputs of unbounded size."""
FIRST_READING = "the first reading of the change request"
REVIEW_DEFAULTS = ReviewConfig(state="in review")
"""The watch's pace when ``review:`` left WORKFLOW.md while an issue was in review."""
FRESH = timedelta(seconds=30)
"""A WORKFLOW.md load or an issue read this recent (in workflow time, with no wait between)
serves the next attempt as it is: a second read would only lengthen the history."""


@workflow.defn
class IssueWorkflow:
    """One PRD issue from dispatch to shipped, paused, halted, abandoned or released.

    Signals ``halt``, ``resume``, ``answer``, ``cancel``, ``tracker_state``,
    ``agent_started``; update ``decide``; query ``status``. See the module docstring for the
    loop and the message contracts.
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
        self._agent_started: AgentStarted | None = None
        self._config_loaded_at: datetime | None = None
        self._issue_read_at: datetime | None = None
        self._reports = IssueReports(self._s, input.issue_id, input.line_workflow_id)
        self._host = HostCalls(cancelled=lambda: self._cancel.reason if self._cancel else None)
        self._tracker = TrackerCalls(input.issue_id, idempotency=write_keys())
        self._watch = ReviewWatch(input.issue_id)

    # ------------------------------------------------------------------------------------------
    # The loop
    # ------------------------------------------------------------------------------------------

    @workflow.run
    async def run(self, input: IssueWorkflowInput) -> IssueResult:
        start_lean_steps()
        s = self._s
        if s.started_at is None:
            s.started_at = workflow.now()
        try:
            await self._load_config()
            while not s.phase.is_final:
                if history_is_long():
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
            case Phase.IN_REVIEW:
                await self._watch_review()
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
        if not self._fresh(self._config_loaded_at):
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
    # The config and the issue itself
    # ------------------------------------------------------------------------------------------

    @property
    def _config(self) -> WorkflowConfig:
        assert self._workflow is not None, "config used before the first load"
        return self._workflow.config

    @property
    def _loaded(self) -> LoadedWorkflow:
        assert self._workflow is not None, "config used before the first load"
        return self._workflow

    async def _load_config(self) -> None:
        """Reload WORKFLOW.md before each attempt; an invalid edit keeps the last good config
        and shows the error in ``status``. With no good config at all, halt
        (``config_invalid``) until an operator has fixed the file and resumes."""
        while not self._s.phase.is_final:
            try:
                loaded = await load_config(self._input.workflow_path)
            except ActivityError as error:
                message = cause_message(error)
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
            self._config_loaded_at = workflow.now()
            self._reports.tokens_count_now = loaded.config.budgets.fleet.tokens_per_hour is not None
            self._reports.priced = loaded.config.pricing is not None
            return

    async def _start_issue(self) -> None:
        """Read the issue and label the run (the first attempt claims it)."""
        s = self._s
        issue = await self._read_issue()
        if issue is None:
            return
        s.issue = issue
        s.tracker_state = issue.state
        self._issue_read_at = workflow.now()
        workflow.upsert_memo({"title": issue.title, "url": issue.url or ""})
        self._reports.upsert((sa.LINE, self._config.line), (sa.ISSUE, issue.identifier))

    async def _read_issue(self) -> Issue | None:
        """The issue's live record, or None after deciding what its absence means: a deleted
        issue is released, a refused read halts, a tracker outage waits and tries later."""
        found = await self._tracker.read(self._config)
        if not isinstance(found, ReadFailed):
            return found
        match found.kind:
            case Unreadable.GONE:
                await self._release(
                    CancelRequest(reason=f"the issue no longer exists: {found.message}")
                )
            case Unreadable.REFUSED:
                await self._halt(
                    HaltCategory.TRACKER_ERROR,
                    f"cannot read the issue: {found.message}",
                    HaltSource.ORCHESTRATOR,
                )
            case Unreadable.UNREACHABLE:
                workflow.logger.warning("tracker unreachable, trying later: %s", found.message)
                await self._back_off(float(self._config.backoff.max_s), "tracker outage")
            case _:
                assert_never(found.kind)
        return None

    async def _claim(self, issue: Issue) -> bool:
        """Before an attempt the issue must be ours and in the working state: someone else's
        move releases it; our own pause (an operator retried a paused issue) is undone first,
        so the tracker never says "awaiting answers" while an agent works."""
        s = self._s
        tracker = self._config.tracker
        ours = policy.norm_state(issue.state) == policy.norm_state(s.tracker_state or "")
        paused_by_us = ours and policy.in_states(issue.state, tracker.paused_states)
        if not policy.in_states(issue.state, tracker.active_states) and not paused_by_us:
            await self._release(CancelRequest(reason=f"moved to '{issue.state}' by someone else"))
            return False
        s.tracker_state = issue.state
        target = policy.work_state(self._config) if paused_by_us else tracker.working_state
        if target is None or policy.norm_state(issue.state) == policy.norm_state(target):
            return True
        try:
            await self._transition(target, comment=None, key=f"claim-{s.counters.attempts + 1}")
        except TrackerWriteFailed as failed:
            if failed.category is HaltCategory.TRANSITION_REFUSED:
                await self._release(CancelRequest(reason=f"claim refused: {failed}"))
            else:
                await self._halt(failed.category, str(failed), HaltSource.ORCHESTRATOR)
            return False
        return True

    # ------------------------------------------------------------------------------------------
    # One attempt
    # ------------------------------------------------------------------------------------------

    async def _attempt(self) -> None:
        s = self._s
        loaded = self._loaded
        config = loaded.config
        number = s.counters.attempts + 1
        record = AttemptRecord(number=number, started_at=workflow.now())
        await self._enter(Phase.PREPARING)
        # Each attempt judges with the WORKFLOW.md and the issue it starts with: both are read
        # once, here or just before, never again during the attempt.
        self._config_loaded_at = None
        if self._fresh(self._issue_read_at) and s.issue is not None:
            issue = s.issue
        else:
            issue = await self._read_issue()
        self._issue_read_at = None
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
                s.counters = policy.record_usage(
                    s.counters, agent, policy.attempt_cost(agent, loaded.config)
                )
                if agent.resume_token:
                    s.resume_token = agent.resume_token
                after = await self._hook(HookName.AFTER_RUN, workspace, number, fatal=False)
                if after is not None and after.timed_out:
                    s.pending = PendingEvaluation(attempt=number, agent=agent)
                    raise AttemptEnded(Outcome.HOOK_TIMEOUT, "after_run timed out", after)
            else:
                agent = pending.agent
                s.pending = None
            evidence = await self._host.collect(loaded, workspace)
            if policy.rework_gate(evidence, config, self._reworking_head):
                raise AttemptEnded(Outcome.NO_NEW_WORK, "no commit beyond the head in review")
            findings = self._judge_findings(evidence)
            if policy.needs_verify(evidence, config, findings):
                await self._enter(Phase.VERIFYING)
                verify = await self._hook(
                    HookName.VERIFY, workspace, number, fatal=False, sha=evidence.git.head_sha
                )
                evidence = evidence.model_copy(update={"verify": verify})
                if verify is not None and verify.timed_out:
                    s.pending = PendingEvaluation(attempt=number, agent=agent)
                findings = self._judge_findings(evidence)
            outcome = policy.classify_attempt(agent, evidence, config, findings)
            detail = agent.detail
            if outcome in policy.JUDGE_STOPS:
                s.held = HeldWork(
                    attempt=number, agent=agent, head_sha=evidence.git.head_sha, findings=findings
                )
                detail = judge.describe(findings)
        except AttemptEnded as ended:
            outcome, detail = ended.outcome, ended.detail
            if ended.hook is not None:
                record.hook_failure = f"{ended.hook.name}: {ended.detail}"
        except ActivityError as error:
            # An activity failed in a way no outcome above describes: stop and show it.
            outcome = Outcome.ORCHESTRATOR_ERROR
            detail = f"{error.activity_type or 'an activity'} failed: {cause_message(error)}"
        self._finish_attempt(record, agent, evidence, outcome, detail)
        metrics.attempt_ended(config, record, agent_ran=pending is None)
        await self._decide_and_act(record, outcome, agent, evidence)

    @property
    def _reworking_head(self) -> str | None:
        """During a rework round: the head in review, which the round must go beyond."""
        ledger = self._s.review
        return ledger.shipped_head if ledger is not None and ledger.reworking else None

    def _fresh(self, at: datetime | None) -> bool:
        """Whether a read made at ``at`` still serves (histories recorded before the patch
        read again, and replay as they ran)."""
        return at is not None and workflow.now() - at < FRESH and patched(LEAN_HISTORY)

    def _judge_findings(self, evidence: Evidence) -> JudgeFindings:
        return judge.findings(evidence, self._config, self._s.issue, self._s.consents)

    async def _prepare(self, loaded: LoadedWorkflow, issue: Issue, number: int) -> WorkspaceInfo:
        """Prepare on the issue's host; if that host does not pick it up, on another one (from
        the pushed branch when there is one)."""
        s = self._s
        for _ in range(2):
            if s.host_queue is None:
                s.host_queue = await self._host.claim_host()
            try:
                workspace = await self._host.prepare(
                    loaded, issue, s.base_sha, number, s.host_queue, rejudge=s.pending is not None
                )
            except HostLost:
                workflow.logger.warning("host %s did not pick up the workspace", s.host_queue)
                s.host_queue = None
                continue
            s.workspace = workspace
            s.base_sha = workspace.base_sha
            return workspace
        raise AttemptEnded(Outcome.WORKER_LOST, "no host picked up the workspace")

    async def _hook(
        self,
        hook: HookName,
        workspace: WorkspaceInfo,
        number: int,
        *,
        fatal: bool,
        sha: str | None = None,
    ) -> HookResult | None:
        """Run a hook. ``fatal`` hooks end the attempt on failure; for the others a failure or a
        timeout is reported and the caller decides. ``verify`` runs on the pinned ``sha``."""
        result = await self._host.hook(
            self._loaded, hook, workspace, number, self._identifier, sha=sha
        )
        if fatal and result is not None and not result.ok:
            outcome = Outcome.HOOK_TIMEOUT if result.timed_out else Outcome.HOOK_FAILED
            raise AttemptEnded(
                outcome, f"{hook.value} {'timed out' if result.timed_out else 'failed'}", result
            )
        return result

    async def _run_agent(
        self, loaded: LoadedWorkflow, issue: Issue, workspace: WorkspaceInfo, number: int
    ) -> AgentRunResult:
        s = self._s
        budget = policy.attempt_budget(s.counters, loaded.config)
        review_left = review.round_tokens_left(
            s.review, loaded.config.review, s.counters.tokens.total_tokens
        )
        agent_input = AgentRunInput(
            workflow=loaded,
            issue=issue,
            attempt=number,
            template_attempt=None if number == 1 else number,
            guidance=s.guidance,
            workspace=workspace,
            budget_tokens=budget.tokens if review_left is None else min(budget.tokens, review_left),
            budget_tokens_before_first_commit=budget.tokens_before_first_commit,
            wall_s=budget.wall_s,
            max_turns=budget.max_turns,
            resume_token=s.resume_token,
            slot_wait_s=float(loaded.config.timeouts.slot_wait_s),
        )

        def started() -> bool:
            signal = self._agent_started
            return signal is not None and signal.attempt == number

        async def now_running() -> None:
            self._agent_started = None
            await self._enter(Phase.RUNNING_AGENT)

        result = await self._host.run_agent(agent_input, started=started, on_started=now_running)
        s.guidance = None
        return result

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
            record.usage = agent.usage if agent.usage_reported else None
            record.model = self._config.agent_model()
            record.cost = policy.attempt_cost(agent, self._config)
            record.agent_seconds = agent.duration_s
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

    # ------------------------------------------------------------------------------------------
    # Deciding and acting
    # ------------------------------------------------------------------------------------------

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
                hook=policy.failed_hook(record, evidence),
            ),
            config,
        )
        s.counters = policy.count_continuation(s.counters, decision)
        self._record_decision(record.number, outcome, decision)
        record.decision = decision
        s.last_decision = decision
        s.attempts = [*s.attempts, record][-MAX_RECORDS:]
        self._reports.upsert_with_next((sa.OUTCOME, outcome.value))
        # Sent with the phase the decision leads to (the next report), not in a signal of its own.
        self._reports.attempt_ended(record.tokens, outcome, agent.rate_limit if agent else None)
        await self._act(decision, outcome, evidence, agent)

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
                assert decision.halt_category is not None
                await self._halt(
                    decision.halt_category,
                    policy.halt_reason(decision, outcome, evidence),
                    HaltSource.AGENT
                    if outcome is Outcome.HALT_REQUESTED
                    else HaltSource.ORCHESTRATOR,
                    evidence=policy.halt_facts(decision, outcome, evidence, agent),
                )
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

    # ------------------------------------------------------------------------------------------
    # The ship
    # ------------------------------------------------------------------------------------------

    async def _ship(self, evidence: Evidence) -> None:
        """Push, publish (a pull request where the tracker has them), then move to the done
        state with the proof; any failure halts, and nothing is closed without the proof."""
        s = self._s
        assert s.workspace is not None and s.issue is not None
        loaded = self._loaded
        config = loaded.config
        # Told up front, so the line never reads our own move to done as a person's edit.
        target = config.shipped_state()
        await self._enter(Phase.SHIPPING, moving_to=target)
        ship = policy.ship_evidence(
            evidence,
            config,
            s.counters,
            protected=judge.shipped_protected(evidence, config, s.issue, s.consents),
        )
        try:
            if config.workspace.push_on_ship:
                pushed = await self._host.push(loaded, s.workspace, ship.head_sha)
                ship = ship.model_copy(update={"pushed_to": pushed.remote})
                url = await self._tracker.publish(
                    config,
                    s.issue,
                    branch=ship.branch,
                    title=f"{s.issue.identifier}: {s.issue.title}",
                    body=comments.ship_comment(ship, target, config.hooks.verify),
                )
                if url:
                    ship = ship.model_copy(update={"pull_request_url": url})
        except ActivityError as error:
            if host_lost(error) and patched("ship-host-lost"):
                # The host died before the push: like a host lost mid-attempt, an
                # infrastructure fault retried within budgets.max_infra_failures.
                await self._lost_before_the_ship(cause_message(error))
                return
            await self._halt(
                HaltCategory.OTHER,
                f"shipping failed before the tracker was touched: {cause_message(error)}",
                HaltSource.ORCHESTRATOR,
            )
            return
        try:
            await self._transition(
                target,
                comment=comments.ship_comment(ship, target, config.hooks.verify),
                key=f"ship-{s.counters.attempts}",
                evidence=ship,
            )
        except TrackerWriteFailed as failed:
            await self._halt(failed.category, str(failed), HaltSource.ORCHESTRATOR)
            return
        s.ship = ship
        metrics.shipped(config.line)
        if config.review is not None:
            await self._enter_review(ship)
            return
        s.finished_at = workflow.now()
        await self._enter(Phase.SHIPPED, final=True)

    # ------------------------------------------------------------------------------------------
    # After the ship: the review loop
    # ------------------------------------------------------------------------------------------

    async def _enter_review(self, ship: ShipEvidence) -> None:
        """Shipped into review: from now on only ``ship.head_sha`` is judged as our work."""
        s = self._s
        issue_url = s.issue.url if s.issue is not None else None
        url = ship.pull_request_url or issue_url or self._identifier
        if s.review is None:
            s.review = ReviewLedger(url=url, shipped_head=ship.head_sha, started_at=workflow.now())
        else:
            spent = s.counters.tokens.total_tokens - s.review.round_tokens_from
            s.review = review.reshipped(s.review, ship.head_sha, max(spent, 0))
        s.review_waiting = FIRST_READING
        self._reports.upsert((sa.REVIEW_ROUNDS, s.review.rounds))
        await self._enter(Phase.IN_REVIEW)

    async def _watch_review(self) -> None:
        """One turn of the watch: wait (poll or signal), read, act on what the reading calls
        for. Each step's reason is in ``status`` (``review_waiting``) and the history."""
        s = self._s
        if s.review_waiting != FIRST_READING:
            # The first reading comes at once: a person's move between the ship's report and
            # this phase was seen by the line as ours, and would otherwise wait for a poll.
            await self._watch.wait(
                self._review_config,
                lambda: self._cancel is not None or self._operator_halt is not None,
            )
        if self._cancel is not None or self._operator_halt is not None:
            return
        await self._load_config()
        config = self._config
        if config.review is None or s.review is None:
            await self._halt(
                HaltCategory.CONFIG_INVALID,
                "the review: section left WORKFLOW.md while the change request is in review: "
                "put it back and retry, or abandon (the work stays on its branch)",
                HaltSource.ORCHESTRATOR,
            )
            return
        reading = await self._watch.read(config, s.review)
        if isinstance(reading, ReadFailed):
            if reading.kind is Unreadable.REFUSED:
                await self._halt(
                    HaltCategory.TRACKER_ERROR,
                    f"cannot read the change request: {reading.message}",
                    HaltSource.ORCHESTRATOR,
                )
            else:
                s.review_waiting = f"the forge did not answer, trying later: {reading.message}"
            return
        await self._act_on_review(reading)

    async def _act_on_review(self, reading: Reading) -> None:
        s = self._s
        step, request = reading.step, reading.request
        assert s.review is not None
        s.review_waiting = None
        match step.kind:
            case StepKind.WAIT:
                s.review_waiting = step.reason
            case StepKind.REWORK:
                await self._rework(step)
            case StepKind.MERGE:
                merged = await self._watch.merge(self._config, s.review, step)
                if merged is True:
                    await self._merged(request, by_jidoka=True)
                else:
                    await self._halt(
                        HaltCategory.REVIEW_MERGE_REFUSED,
                        f"the merge pinned to {step.merge_sha} was refused: the head moved or it "
                        "no longer merges cleanly"
                        if merged is False
                        else f"the merge failed, and whether it landed is unknown: {merged}",
                        HaltSource.ORCHESTRATOR,
                        evidence={"change_request": s.review.url, "sha": step.merge_sha or ""},
                    )
            case StepKind.MERGED:
                await self._merged(request, by_jidoka=False)
            case StepKind.CLOSED:
                await self._release(CancelRequest(reason=f"{step.reason}: {s.review.url}"))
            case StepKind.STOP:
                assert step.stop is not None
                await self._halt(
                    review.halt_category(step.stop),
                    step.reason,
                    HaltSource.ORCHESTRATOR,
                    evidence={
                        "change_request": s.review.url,
                        "shipped_head": s.review.shipped_head,
                        "rounds": s.review.rounds,
                    },
                )
            case _:
                assert_never(step.kind)

    async def _rework(self, step: Step) -> None:
        """Send the agent back with exactly what to fix: an ordinary attempt (the same gate,
        budgets and halts) whose prompt carries the brief; its ship goes back into review."""
        s = self._s
        config = self._config
        assert s.review is not None and step.feedback is not None and config.review is not None
        s.review = review.addressed_after(s.review, step).model_copy(
            update={"round_tokens_from": s.counters.tokens.total_tokens}
        )
        rounds = s.review.rounds
        self._record_decision(
            s.counters.attempts,
            s.last_outcome or Outcome.SHIPPED,
            Decision(
                kind=DecisionKind.CONTINUE,
                reason=f"rework round {rounds}: {step.reason}",
                rule="review: feedback on the change request starts a rework round "
                "(review.max_rounds)",
            ),
        )
        s.guidance = review.rework_brief(step.feedback, s.review.url)
        self._reports.upsert((sa.REVIEW_ROUNDS, rounds))
        issue = await self._read_issue()
        if issue is None:
            return
        s.issue, s.tracker_state = issue, issue.state
        self._issue_read_at = workflow.now()
        note = comments.review_round_comment(
            rounds, config.review.max_rounds, step.reason, s.review.url
        )
        if policy.in_states(issue.state, config.tracker.active_states):
            # A person sent it back (the board): it is theirs to have moved, ours to work.
            await self._tracker.comment(config, note, key=f"review-round-{rounds}")
        else:
            try:
                await self._transition(
                    policy.work_state(config), comment=note, key=f"review-round-{rounds}"
                )
            except TrackerWriteFailed as failed:
                await self._halt(failed.category, str(failed), HaltSource.ORCHESTRATOR)
                return
        await self._enter(Phase.QUEUED)

    async def _merged(self, request: ChangeRequest, *, by_jidoka: bool) -> None:
        """Merged: the done state, with the evidence of the whole loop."""
        s = self._s
        config = self._config
        assert s.review is not None and s.ship is not None
        done = config.tracker.done_state
        await self._enter(Phase.SHIPPING, moving_to=done)
        merged = request.model_copy(update={"state": RequestState.MERGED})
        try:
            await self._transition(
                done,
                comment=comments.merged_comment(
                    merged, s.review, s.counters.tokens.total_tokens, by_jidoka=by_jidoka, done=done
                ),
                key="merged",
                evidence=s.ship,
            )
        except TrackerWriteFailed as failed:
            await self._halt(failed.category, str(failed), HaltSource.ORCHESTRATOR)
            return
        s.review_waiting = None
        s.finished_at = workflow.now()
        await self._enter(Phase.SHIPPED, final=True)

    @property
    def _review_config(self) -> ReviewConfig:
        """The review settings the watch runs with (the last good WORKFLOW.md's)."""
        current = self._config.review
        # Removed from WORKFLOW.md meanwhile: the next reading halts and says so; until then
        # the defaults pace the wait.
        return current if current is not None else REVIEW_DEFAULTS

    async def _lost_before_the_ship(self, detail: str) -> None:
        s = self._s
        outcome = Outcome.WORKER_LOST
        s.counters = policy.count_outcome(s.counters, outcome)
        decision = policy.decide(
            outcome,
            policy.DecisionContext(
                counters=s.counters, detail=f"the host was lost before the push: {detail}"
            ),
            self._config,
        )
        self._record_decision(s.counters.attempts, outcome, decision)
        s.last_outcome = outcome
        if s.attempts:
            s.attempts[-1].outcome = outcome
            s.attempts[-1].decision = decision
        await self._act(decision, outcome, None, None)

    # ------------------------------------------------------------------------------------------
    # Waits for people: a pause for answers, a halt for an operator's decision
    # ------------------------------------------------------------------------------------------

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
        except TrackerWriteFailed as failed:
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
            if issue is not None and policy.in_states(
                issue.state, self._config.tracker.active_states
            ):
                self._woken_state = issue.state
            return
        if self._cancel is not None or self._operator_halt is not None:
            return
        guidance: str
        if self._answer is not None:
            answer, self._answer = self._answer, None
            await self._tracker.comment(
                self._config,
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
        try:
            await self._transition(
                policy.work_state(self._config), comment=None, key=f"unpause-{len(s.attempts)}"
            )
        except TrackerWriteFailed as failed:
            await self._halt(failed.category, str(failed), HaltSource.ORCHESTRATOR)
            return
        s.questions = []
        s.guidance = guidance
        await self._enter(Phase.QUEUED)

    async def _halt(
        self,
        category: HaltCategory,
        reason: str,
        source: HaltSource,
        *,
        evidence: policy.Facts | None = None,
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
        metrics.halted(self._workflow.config.line if self._workflow else None, category)
        await self._enter(Phase.HALTED)
        if self._input.line_workflow_id:
            await signal_quietly(
                self._input.line_workflow_id,
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
        if s.issue is not None and self._workflow is not None:
            await self._tracker.comment(
                self._config,
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
            rule="no silent stop (docs/operations.md#no-silent-stop): an unexpected error halts the issue",
            halt_category=HaltCategory.ORCHESTRATOR_ERROR,
        )
        s.last_decision = decision
        try:
            self._record_decision(s.counters.attempts, Outcome.ORCHESTRATOR_ERROR, decision)
            await self._halt(HaltCategory.ORCHESTRATOR_ERROR, reason, HaltSource.ORCHESTRATOR)
        except Exception as again:  # even the halt failed: hold still, visibly
            workflow.logger.error("could not halt cleanly: %s", again)
            s.phase = Phase.HALTED
            self._reports.upsert((sa.PHASE, Phase.HALTED.value), (sa.HALTED, True))
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
        held, s.held = s.held, None
        match decision.decision:
            case OperatorDecision.RETRY:
                s.counters = s.counters.model_copy(
                    update={"failures": 0, "continuations": 0, "infra_failures": 0}
                )
                if s.review is not None and not s.review.reworking:
                    # Halted while watching: watch again, the loop's caps afresh.
                    s.review = review.caps_afresh(s.review, workflow.now())
                    await self._enter(Phase.IN_REVIEW)
                    return
                if held is not None:
                    s.guidance = judge.send_back_guidance(held.findings, decision.note)
                elif decision.note:
                    s.guidance = decision.note
                await self._enter(Phase.QUEUED)
            case OperatorDecision.ACCEPT:
                assert held is not None, "the validator accepts only a held judge stop"
                consent = Consent(
                    at=workflow.now(),
                    operator=decision.operator,
                    root_cause=decision.root_cause,
                    attempt=held.attempt,
                    head_sha=held.head_sha,
                    paths=held.findings.protected,
                    tests=held.findings.tests,
                    closing=held.findings.closing,
                )
                s.consents = [*s.consents, consent][-MAX_RECORDS:]
                # Judged again, not run again: the same work, now with the person's consent.
                s.pending = PendingEvaluation(attempt=held.attempt, agent=held.agent)
                await self._enter(Phase.QUEUED)
            case OperatorDecision.ABANDON:
                await self._abandon(f"abandoned by {decision.operator}: {decision.root_cause}")
            case _:
                assert_never(decision.decision)

    # ------------------------------------------------------------------------------------------
    # Letting go: abandon (an operator's decision) and release (the issue left our hands)
    # ------------------------------------------------------------------------------------------

    async def _abandon(self, reason: str) -> None:
        s = self._s
        branch, detail = await self._preserve(reason)
        if self._workflow is not None:
            await self._tracker.comment(
                self._config, comments.abandon_comment(reason, branch, detail), key="abandon"
            )
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
                await self._host.remove(self._workflow, s.workspace, self._identifier)
            except ActivityError as error:
                workflow.logger.warning("could not remove the workspace: %s", cause_message(error))
        s.last_outcome = s.last_outcome if s.last_outcome is not None else Outcome.CANCELLED
        s.finished_at = workflow.now()
        await self._enter(Phase.RELEASED, final=True)

    async def _preserve(self, reason: str) -> tuple[str | None, str]:
        s = self._s
        if self._workflow is None or s.workspace is None:
            return None, "no workspace was created"
        stamp = workflow.now().strftime("%Y%m%dT%H%M%SZ")
        try:
            result = await self._host.preserve(self._workflow, s.workspace, stamp, reason)
        except ActivityError as error:
            return None, f"could not preserve: {cause_message(error)}"
        s.preserved_branch = result.branch
        return result.branch, result.detail

    # ------------------------------------------------------------------------------------------
    # Moving the issue on the tracker
    # ------------------------------------------------------------------------------------------

    async def _transition(
        self, target: str, *, comment: str | None, key: str, evidence: ShipEvidence | None = None
    ) -> None:
        s = self._s
        moving = policy.norm_state(target) != policy.norm_state(s.tracker_state or "")
        if (
            moving
            and patched("report-own-transitions")
            and self._reports.announced_moving_to != target
            and self._reports.line_would_misread(target, self._config)
        ):
            # The line must hear it before its reconciliation can see the new state, or it
            # reads our own ship or pause as a person's edit and cancels us.
            await self._reports.report(identifier=self._identifier, moving_to=target)
        result = await self._tracker.transition(
            self._config,
            expected=s.tracker_state or "",
            target=target,
            comment=comment,
            key=key,
            evidence=evidence,
        )
        s.tracker_state = result.issue.state
        s.issue = result.issue

    # ------------------------------------------------------------------------------------------
    # Reporting: the phase, search attributes, the line, the result
    # ------------------------------------------------------------------------------------------

    @property
    def _identifier(self) -> str:
        return self._s.issue.identifier if self._s.issue is not None else self._input.issue_id

    async def _enter(
        self, phase: Phase, *, final: bool = False, moving_to: str | None = None
    ) -> None:
        await self._reports.enter(
            phase, identifier=self._identifier, final=final, moving_to=moving_to
        )

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
            attempts=s.attempts,
            started_at=s.started_at,
            finished_at=s.finished_at,
            review=s.review,
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
        problem = resume_problem(request.root_cause, request.operator)
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

    @workflow.signal
    def review_changed(self, changed: ReviewChanged) -> None:
        watching = self._s.review if self._s.phase is Phase.IN_REVIEW else None
        notice = self._watch.hear(changed, watching)
        if notice is not None:
            self._notice = notice
            workflow.logger.info(notice)

    @workflow.update
    def decide(self, request: DecideRequest) -> DecideResult:
        self._notice = None
        self._operator = request
        return DecideResult(accepted=True, message=f"{request.decision.value} accepted")

    @decide.validator
    def _validate_decide(self, request: DecideRequest) -> None:
        problem = resume_problem(request.root_cause, request.operator)
        if problem is not None:
            raise ValueError(problem)
        if self._s.phase is not Phase.HALTED:
            raise ValueError(f"the issue is not halted (phase {self._s.phase.value})")
        if self._operator is not None:
            raise ValueError("a decision is already pending")
        if request.decision is OperatorDecision.ACCEPT and self._s.held is None:
            raise ValueError(
                "accept is for a protected_paths, tests_weakened or closing_keywords stop only: "
                "nothing is held for consent here (retry or abandon)"
            )

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
            review=s.review,
            review_waiting=s.review_waiting,
        )
