"""LineWorkflow: one production line = one WORKFLOW.md, long-running (docs/architecture.md).

Tick: reload the config (an invalid edit keeps the last good one) → reconcile running issues
against the tracker in one batch → guards (andon lock, fleet token budget, rate-limit gate,
loop detector) → fetch candidates → filter and sort (``policy.select_for_dispatch``) → start issue
workflows in one batch activity with idempotent IDs. Issue workflows claim their issue themselves.

The line's own work never fails silently: an error in its code halts it (``orchestrator_error``),
a tracker that keeps refusing the candidate fetch halts it (``tracker_error``), and an issue
workflow that closed without its final report is shown in the status and on the tracker (and
halts the line when it failed or timed out: ``issue_lost``). Its bookkeeping does not depend on
the order messages arrive in: an issue is registered before it is started, and a report from one
of this line's issues it does not know is adopted, not dropped.

Signals:
    ``halt(HaltRequest)``: pull the andon cord (operators, and every halted issue).
    ``resume(ResumeRequest)``: release it; refused visibly without ``root_cause``/``operator``.
    ``refresh()``: tick now.
    ``issue_report(IssueReport)``: progress from the line's issue workflows.
Update:
    ``resume(ResumeRequest) -> ResumeResult``: the same release, answered synchronously.
Query:
    ``status() -> LineStatus``.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import timedelta
from typing import Any, assert_never

from temporalio import workflow
from temporalio.exceptions import ActivityError

from workflows import metrics
from workflows.common import (
    FETCH_RETRY,
    LEAN_STEPS,
    QUICK_RETRY,
    TICK_RETRY,
    SearchAttributes,
    cause_message,
    history_is_long,
    is_permanent,
    load_config,
    patched,
    reload_config,
    resume_problem,
    run_step,
    signal_quietly,
    start_lean_steps,
)
from workflows.tracker_calls import TrackerCalls

with workflow.unsafe.imports_passed_through():
    from activities.line import LineActivities
    from activities.tracker.activities import (
        tracker_dispatch_plan,
        tracker_fetch_by_ids,
        tracker_states_by_ids,
    )
    from activities.workspace import cleanup_workspaces
    from jidoka import comments, policy
    from jidoka import search_attributes as sa
    from jidoka.config import WorkflowConfig
    from jidoka.keys import issue_workflow_id, workspace_key
    from jidoka.models import (
        FinishedEntry,
        FleetUse,
        HaltRecord,
        IssueToStart,
        LedgerEntry,
        LineState,
        LoadedWorkflow,
        RunningEntry,
        RunningRef,
    )
    from jidoka.outcomes import (
        HaltCategory,
        HaltScope,
        HaltSource,
        LinePhase,
        Phase,
        ReconcileAction,
    )
    from jidoka.payloads import (
        CancelRequest,
        CleanupInput,
        DispatchPlan,
        DispatchQuery,
        HaltRequest,
        IssueReport,
        IssueWorkflowCheck,
        LineStatus,
        LineWorkflowInput,
        ResumeRequest,
        ResumeResult,
        ReviewChanged,
        StaleClaimsInput,
        StartIssuesInput,
        TrackerQuery,
        TrackerStateUpdate,
        WorkflowIdsInput,
    )

MAX_HALTS = 100
MAX_FINISHED = 500
SWEEP_EVERY_TICKS = 10
CONFIRM_AFTER_S = 2.0
"""How soon a tracker state that would stop an issue is read again to confirm it."""
MAX_TRACKER_FAILURES = 10
"""Ticks in a row whose candidate fetch failed before the line halts: a tracker that stays
unreachable must stop the line visibly, not leave it idle with nothing dispatched."""


@workflow.defn
class LineWorkflow:
    """One production line. Signals ``halt``, ``resume``, ``refresh``, ``issue_report``;
    update ``resume``; query ``status``. See the module docstring for the tick."""

    @workflow.init
    def __init__(self, input: LineWorkflowInput) -> None:
        self._input = input
        self._s: LineState = (
            input.state.model_copy(deep=True) if input.state is not None else LineState()
        )
        self._workflow: LoadedWorkflow | None = None
        self._fingerprint: str | None = None
        """Of ``_workflow``, as the last reload said: an unchanged file comes back as this."""
        self._refresh = False
        self._attributes = SearchAttributes()
        self._broadcasting = asyncio.Lock()

    @workflow.run
    async def run(self, input: LineWorkflowInput) -> None:
        start_lean_steps()
        s = self._s
        while self._workflow is None:
            await self._load_config()
            if self._workflow is None:
                await self._wait(timedelta(seconds=30))
        self._upsert(line=self._config.line)
        if not s.started:
            await self._startup()
            s.started = True
        while True:
            try:
                await self._tick()
            except Exception as error:  # the line never fails silently: it halts, visibly
                await self._fault(error)
            if history_is_long(input.history_limit):
                await workflow.wait_condition(workflow.all_handlers_finished)
                workflow.continue_as_new(
                    LineWorkflowInput(
                        workflow_path=input.workflow_path,
                        state=s,
                        history_limit=input.history_limit,
                    )
                )
            await self._wait(self._next_tick_in())

    def _next_tick_in(self) -> timedelta:
        """The polling interval, or sooner when a reconciliation waits to be confirmed (after
        a timer, so that the reports already sent reach the line first)."""
        interval = float(self._config.polling.interval_s)
        if any(e.unconfirmed is not None and not e.cancel_sent for e in self._s.running.values()):
            interval = min(interval, CONFIRM_AFTER_S)
        return timedelta(seconds=interval)

    async def _wait(self, interval: timedelta) -> None:
        with contextlib.suppress(TimeoutError):
            await workflow.wait_condition(
                lambda: self._refresh, timeout=interval, timeout_summary="next tick"
            )
        self._refresh = False

    @property
    def _config(self) -> WorkflowConfig:
        assert self._workflow is not None, "config used before the first load"
        return self._workflow.config

    @property
    def _line_name(self) -> str | None:
        return self._workflow.config.line if self._workflow is not None else None

    # ------------------------------------------------------------------------------------------
    # Config, startup
    # ------------------------------------------------------------------------------------------

    async def _load_config(self) -> None:
        """Reload; an invalid edit keeps the last good config and shows in
        ``status`` and the ``JidokaConfigInvalid`` search attribute."""
        try:
            if workflow.patched(LEAN_STEPS):
                reloaded = await reload_config(self._input.workflow_path, self._fingerprint)
                self._fingerprint = reloaded.fingerprint
                loaded = reloaded.workflow or self._workflow
                assert loaded is not None, "a reload came back unchanged with no config held"
            else:
                loaded = await load_config(self._input.workflow_path)
        except ActivityError as error:
            self._s.config_error = cause_message(error)
            self._upsert(config_invalid=True)
            return
        self._workflow = loaded
        self._s.config_error = None
        self._upsert(config_invalid=False)

    async def _startup(self) -> None:
        """Reset stale ``working_state`` claims and clean the workspaces of terminal issues,
        preserving unpushed work first. Failures never stop startup."""
        assert self._workflow is not None
        loaded = self._workflow
        report: list[str] = []
        try:
            reset = await workflow.execute_activity_method(
                LineActivities.reset_stale_claims,
                StaleClaimsInput(workflow=loaded, line_workflow_id=workflow.info().workflow_id),
                start_to_close_timeout=timedelta(minutes=5),
                retry_policy=QUICK_RETRY,
            )
            if reset:
                report.append(f"reset stale claims: {', '.join(reset)}")
        except ActivityError as error:
            report.append(f"stale claim reset failed: {cause_message(error)}")
        try:
            # The activity reads the terminal issues itself: there can be any number of them.
            cleaned = await workflow.execute_activity(
                cleanup_workspaces,
                CleanupInput(workflow=loaded, stamp=workflow.now().strftime("%Y%m%dT%H%M%SZ")),
                start_to_close_timeout=timedelta(minutes=10),
                retry_policy=QUICK_RETRY,
            )
            if cleaned.removed:
                report.append(f"removed terminal workspaces: {', '.join(cleaned.removed[:50])}")
            for identifier, branch in list(cleaned.preserved.items())[:50]:
                report.append(f"preserved {identifier} on {branch}")
            for identifier, why in list(cleaned.failed.items())[:50]:
                report.append(f"kept workspace {identifier}: {why}")
        except ActivityError as error:
            report.append(f"terminal workspace cleanup failed: {cause_message(error)}")
        self._s.startup_report = report

    # ------------------------------------------------------------------------------------------
    # The tick
    # ------------------------------------------------------------------------------------------

    async def _tick(self) -> None:
        s = self._s
        now = workflow.now()
        s.ticks += 1
        s.last_tick_at = now
        await self._load_config()
        config = self._config
        s.ledger = [e for e in s.ledger if e.at > now - timedelta(hours=1)]
        window = timedelta(seconds=config.guards.loop.window_s)
        s.dispatches = {k: [t for t in v if t > now - window] for k, v in s.dispatches.items() if v}
        await self._reconcile(config)
        if s.ticks % SWEEP_EVERY_TICKS == 0:
            await self._sweep()
        s.idle = False
        if s.halted:
            return
        ledger = [(e.at, e.tokens) for e in s.ledger]
        if policy.quota_wall(ledger, now, config):
            used = policy.fleet_tokens_last_hour(ledger, now)
            await self._stop_line(
                HaltCategory.QUOTA_WALL,
                f"{used} tokens in the last hour (cap {config.budgets.fleet.tokens_per_hour})",
                evidence={"rule": "budgets.fleet.tokens_per_hour", "tokens_last_hour": used},
            )
            return
        if s.rate_gate_until is not None and now < s.rate_gate_until:
            return
        if s.config_error is not None:
            # No new dispatch from a file that does not validate; what runs keeps the last
            # good config (docs/workflow-file.md#choices-made-on-purpose).
            return
        try:
            plan = await run_step(
                tracker_dispatch_plan,
                DispatchQuery(
                    config=config,
                    running=[
                        RunningRef(issue_id=e.issue_id, state=e.state, parked=e.phase.is_parked)
                        for e in s.running.values()
                    ],
                ),
                start_to_close=timedelta(seconds=60),
                retry_policy=FETCH_RETRY,
            )
        except ActivityError as error:
            await self._candidate_fetch_failed(error)
            return
        s.tracker_error = None
        s.tracker_failures = 0
        if s.halted:  # the cord was pulled while the tracker answered: start nothing
            return
        await self._dispatch(config, plan)

    async def _candidate_fetch_failed(self, error: ActivityError) -> None:
        """A transient failure shows in the status and is tried again next tick; a permanent
        one, or one that keeps coming back, halts the line: it must never idle unseen."""
        s = self._s
        s.tracker_failures += 1
        s.tracker_error = (
            f"candidate fetch failed ({s.tracker_failures} in a row): {cause_message(error)}"
        )
        if not is_permanent(error) and s.tracker_failures < MAX_TRACKER_FAILURES:
            return
        why = "permanently" if is_permanent(error) else f"{s.tracker_failures} times in a row"
        await self._stop_line(
            HaltCategory.TRACKER_ERROR,
            f"the candidate fetch failed {why}: {cause_message(error)}",
            evidence={"rule": "tracker", "failures": s.tracker_failures},
        )
        s.tracker_failures = 0

    async def _dispatch(self, config: WorkflowConfig, plan: DispatchPlan) -> None:
        s = self._s
        now = workflow.now()
        to_start: list[IssueToStart] = []
        for issue in plan.chosen:
            if policy.loop_detected(s.dispatches.get(issue.id, []), now, config):
                count = len(s.dispatches.get(issue.id, []))
                await self._stop_line(
                    HaltCategory.LOOP_DETECTED,
                    f"{issue.identifier} was dispatched {count} times within "
                    f"{config.guards.loop.window_s}s",
                    issue_identifier=issue.identifier,
                    evidence={"rule": "guards.loop", "dispatches": count},
                )
                break
            to_start.append(
                IssueToStart(
                    issue=issue,
                    workflow_id=issue_workflow_id(config.line, workspace_key(issue.identifier)),
                )
            )
        if to_start:
            await self._start_issues(config, to_start)
        s.candidates_waiting = plan.waiting
        busy = any(not e.phase.is_parked for e in s.running.values())
        s.idle = not to_start and not plan.waiting and not busy

    async def _start_issues(self, config: WorkflowConfig, to_start: list[IssueToStart]) -> None:
        """Register, then start. An issue can run and report (even its end) before the start
        activity's result is processed here: registered first, its reports always find it."""
        s = self._s
        now = workflow.now()
        for item in to_start:
            issue = item.issue
            s.running[issue.id] = RunningEntry(
                issue_id=issue.id,
                identifier=issue.identifier,
                workflow_id=item.workflow_id,
                state=issue.state,
                started_at=now,
                phase_at=now,
            )
            s.finished.pop(issue.id, None)
            s.dispatches.setdefault(issue.id, []).append(now)
        assert self._workflow is not None
        try:
            await workflow.execute_activity_method(
                LineActivities.start_issue_workflows,
                StartIssuesInput(
                    workflow_path=self._input.workflow_path,
                    workflow=self._workflow,
                    line=config.line,
                    line_workflow_id=workflow.info().workflow_id,
                    task_queue=workflow.info().task_queue,
                    issues=to_start,
                    line_halted=s.halted,
                ),
                start_to_close_timeout=timedelta(minutes=2),
                retry_policy=QUICK_RETRY,
            )
        except ActivityError as error:
            # Starts are idempotent: forget the ones that never spoke, the next tick starts
            # (or joins) them again.
            for item in to_start:
                entry = s.running.get(item.issue.id)
                if entry is not None and not entry.reported:
                    s.running.pop(item.issue.id, None)
            s.tracker_error = f"starting issue workflows failed: {cause_message(error)}"
            if is_permanent(error):
                await self._stop_line(
                    HaltCategory.ORCHESTRATOR_ERROR,
                    f"issue workflows cannot be started: {cause_message(error)}",
                    evidence={"rule": "start_issue_workflows"},
                )

    async def _reconcile(self, config: WorkflowConfig) -> None:
        """Compare each running issue with its live tracker state (docs/architecture.md#the-lines-tick),
        in one batch request whatever the number of running issues."""
        s = self._s
        if not s.running:
            return
        query = TrackerQuery(config=config, issue_ids=sorted(s.running))
        try:
            if workflow.patched(LEAN_STEPS):
                live = await run_step(
                    tracker_states_by_ids,
                    query,
                    start_to_close=timedelta(seconds=60),
                    retry_policy=TICK_RETRY,
                )
            else:
                issues = await run_step(
                    tracker_fetch_by_ids,
                    query,
                    start_to_close=timedelta(seconds=60),
                    retry_policy=TICK_RETRY,
                )
                live = {issue.id: issue.state for issue in issues}
        except ActivityError as error:
            s.tracker_error = f"reconciliation skipped: {cause_message(error)}"
            return
        for entry in list(s.running.values()):
            state = live.get(entry.issue_id)
            action = policy.reconcile_action(state, entry.phase, config, moving_to=entry.moving_to)
            if not self._confirmed(entry, state, action):
                continue
            match action:
                case ReconcileAction.KEEP:
                    if state is not None:
                        entry.state = state
                case ReconcileAction.WAKE_PAUSED:
                    assert state is not None
                    entry.state = state
                    await signal_quietly(
                        entry.workflow_id, "tracker_state", TrackerStateUpdate(state=state)
                    )
                case ReconcileAction.CANCEL_AND_CLEAN | ReconcileAction.CANCEL_KEEP_WORKSPACE:
                    if not entry.cancel_sent:
                        entry.cancel_sent = True
                        where = f"'{state}'" if state is not None else "a state no longer visible"
                        await signal_quietly(
                            entry.workflow_id,
                            "cancel",
                            CancelRequest(
                                reason=f"moved to {where} in the tracker",
                                cleanup_workspace=action is ReconcileAction.CANCEL_AND_CLEAN,
                                source=HaltSource.ORCHESTRATOR,
                            ),
                        )
                case ReconcileAction.DONE_WITHOUT_SHIP:
                    assert state is not None
                    await self._done_without_ship(entry, state)
                case ReconcileAction.REVIEW_WATCHED:
                    if state != entry.state:
                        entry.state = state or ""
                        await signal_quietly(
                            entry.workflow_id,
                            "review_changed",
                            ReviewChanged(source="line", state=state),
                        )
                case _:
                    assert_never(action)

    def _confirmed(self, entry: RunningEntry, state: str | None, action: ReconcileAction) -> bool:
        """``policy.confirm_stop``: a state that would stop an issue waits for the next
        reconciliation (runs started before lean steps act at once, as they did)."""
        if not workflow.patched(LEAN_STEPS):
            return True
        confirmation = policy.confirm_stop(action, state, entry.unconfirmed)
        entry.unconfirmed = confirmation.unconfirmed
        return confirmation.act

    async def _done_without_ship(self, entry: RunningEntry, state: str) -> None:
        """Stop the issue keeping its work, halt the line, and say so on the tracker: a done
        state Jidoka did not reach is never read as a ship, nor released silently."""
        if entry.cancel_sent:
            return
        entry.cancel_sent = True
        phase = entry.phase.value
        await signal_quietly(
            entry.workflow_id,
            "cancel",
            CancelRequest(
                reason=f"moved to '{state}' in the tracker without a ship ({phase})",
                cleanup_workspace=False,
                source=HaltSource.ORCHESTRATOR,
            ),
        )
        await self._stop_line(
            HaltCategory.DONE_WITHOUT_SHIP,
            f"{entry.identifier}: the tracker shows '{state}' but Jidoka shipped nothing "
            f"(it was {phase}); its work is kept",
            issue_identifier=entry.identifier,
            evidence={"workflow_id": entry.workflow_id, "state": state, "phase": phase},
        )
        await self._comment(
            entry,
            comments.done_without_ship_comment(state, phase),
            key=f"done-without-ship:{entry.workflow_id}:{entry.started_at.isoformat()}",
        )

    async def _sweep(self) -> None:
        """Look after issue workflows that cannot speak for themselves. A completed one whose
        final report was lost: its result says how it ended. Any other close (failed, timed out,
        terminated...): shown in the status and on the tracker, never counted "finished"; a
        failure or timeout halts the line. One whose workflow task keeps failing (a bug, a
        determinism error after a deploy): the line halts once and says which."""
        s = self._s
        if not s.running:
            return
        try:
            checks = await workflow.execute_activity_method(
                LineActivities.check_issue_workflows,
                WorkflowIdsInput(workflow_ids=[e.workflow_id for e in s.running.values()]),
                start_to_close_timeout=timedelta(minutes=5),
                heartbeat_timeout=timedelta(seconds=60),
                retry_policy=QUICK_RETRY,
            )
        except ActivityError as error:
            s.tracker_error = f"could not check issue workflows: {cause_message(error)}"
            return
        by_workflow = {e.workflow_id: e for e in s.running.values()}
        stuck_now = {c.workflow_id for c in checks if c.status == "running"}
        for entry in s.running.values():
            if entry.stuck and entry.workflow_id not in stuck_now:
                entry.stuck = False  # it moves again (a fixed deploy)
        for check in checks:
            entry = by_workflow.get(check.workflow_id)
            if entry is None or entry.issue_id not in s.running:
                continue
            if check.status == "running":
                await self._stuck(entry, check)
            else:
                await self._closed_without_report(entry, check)

    async def _stuck(self, entry: RunningEntry, check: IssueWorkflowCheck) -> None:
        if entry.stuck:
            return
        entry.stuck = True
        await self._stop_line(
            HaltCategory.ORCHESTRATOR_ERROR,
            f"{entry.identifier}: its workflow task failed "
            f"{check.failing_task_attempts} times in a row (a code or determinism error); "
            "its history in the Web UI shows the error",
            issue_identifier=entry.identifier,
            evidence={"workflow_id": entry.workflow_id},
        )
        await self._comment(
            entry,
            comments.stuck_comment(entry.workflow_id, check.failing_task_attempts),
            key=f"stuck:{entry.workflow_id}:{entry.started_at.isoformat()}",
        )

    async def _closed_without_report(self, entry: RunningEntry, check: IssueWorkflowCheck) -> None:
        result = check.result
        if result is not None:
            entry.phase = result.phase
            entry.last_outcome = result.outcome
            entry.tokens = result.counters.tokens.total_tokens
            self._finish(entry)
            return
        self._finish(entry, closed_without_report=check.status)
        broke = check.status in ("failed", "timed_out")
        if broke:
            await self._stop_line(
                HaltCategory.ISSUE_LOST,
                f"{entry.identifier}: its workflow {check.status} without a final report",
                issue_identifier=entry.identifier,
                evidence={"workflow_id": entry.workflow_id, "status": check.status},
            )
        await self._comment(
            entry,
            comments.lost_comment(entry.workflow_id, check.status, broke),
            key=f"lost:{entry.workflow_id}:{entry.started_at.isoformat()}",
        )

    async def _comment(self, entry: RunningEntry, body: str, *, key: str) -> None:
        """Best effort: the status and the halt already say it; the tracker says it too."""
        tracker = TrackerCalls(entry.issue_id, idempotency=workflow.info().workflow_id)
        await tracker.comment(self._config, body, key=key)

    def _finish(self, entry: RunningEntry, *, closed_without_report: str | None = None) -> None:
        s = self._s
        s.running.pop(entry.issue_id, None)
        s.finished[entry.issue_id] = FinishedEntry(
            issue_id=entry.issue_id,
            identifier=entry.identifier,
            workflow_id=entry.workflow_id,
            phase=entry.phase,
            outcome=entry.last_outcome,
            tokens=entry.tokens,
            finished_at=workflow.now(),
            closed_without_report=closed_without_report,
        )
        if len(s.finished) > MAX_FINISHED:
            oldest = sorted(s.finished.values(), key=lambda f: f.finished_at)[
                : len(s.finished) - MAX_FINISHED
            ]
            for item in oldest:
                s.finished.pop(item.issue_id, None)

    # ------------------------------------------------------------------------------------------
    # The andon lock
    # ------------------------------------------------------------------------------------------

    async def _fault(self, error: Exception) -> None:
        """An error in the line's own code: halt the line once per distinct error (the next
        tick may meet it again) rather than fail, which would stop every dispatch unseen."""
        s = self._s
        message = f"{type(error).__name__}: {error}"[:2000]
        workflow.logger.error("unexpected error in the line: %s", message)
        if s.fault == message and s.halted:
            return
        s.fault = message
        await self._stop_line(
            HaltCategory.ORCHESTRATOR_ERROR,
            f"unexpected error in the line workflow ({message})",
            evidence={"rule": "no silent stop (docs/operations.md#no-silent-stop)"},
        )

    async def _stop_line(
        self,
        category: HaltCategory,
        reason: str,
        *,
        evidence: dict[str, str | int | bool | None],
        issue_identifier: str | None = None,
    ) -> None:
        """The line stops itself (the orchestrator pulls the cord), saying why."""
        metrics.halted(self._line_name, category)
        await self._halt_line(
            HaltRecord(
                category=category,
                reason=reason,
                source=HaltSource.ORCHESTRATOR,
                scope=HaltScope.LINE,
                issue_identifier=issue_identifier,
                at=workflow.now(),
                evidence=evidence,
            )
        )

    async def _halt_line(self, record: HaltRecord) -> None:
        s = self._s
        s.halts = [*s.halts, record][-MAX_HALTS:]
        was_halted = s.halted
        s.halted = True
        self._upsert(halted=True)
        if not was_halted:
            await self._broadcast(
                "halt",
                HaltRequest(
                    reason=record.reason,
                    category=record.category,
                    source=record.source,
                    scope=HaltScope.LINE,
                    issue_identifier=record.issue_identifier,
                ),
            )

    def _resume_problem(self, request: ResumeRequest) -> str | None:
        problem = resume_problem(request.root_cause, request.operator)
        if problem is None and not self._s.halted:
            return "the line is not halted"
        return problem

    async def _apply_resume(self, request: ResumeRequest) -> None:
        s = self._s
        now = workflow.now()
        s.halts = [
            h.model_copy(
                update={
                    "resolved_at": now,
                    "root_cause": request.root_cause,
                    "resolved_by": request.operator,
                }
            )
            if h.resolved_at is None
            else h
            for h in s.halts
        ]
        s.halted = False
        s.notice = None
        self._upsert(halted=False)
        await self._broadcast(
            "resume",
            ResumeRequest(
                root_cause=request.root_cause, operator=request.operator, scope=HaltScope.LINE
            ),
        )
        self._refresh = True

    async def _broadcast(self, signal: str, payload: Any) -> None:
        if not patched("serialize-andon-broadcasts"):
            await self._send_to_running(signal, payload)
            return
        # A resume arriving while a halt is still being sent issue by issue would otherwise
        # overtake it at some issues, which would then stay halted on a running line.
        async with self._broadcasting:
            await self._send_to_running(signal, payload)

    async def _send_to_running(self, signal: str, payload: Any) -> None:
        for entry in list(self._s.running.values()):
            await signal_quietly(entry.workflow_id, signal, payload)

    # ------------------------------------------------------------------------------------------
    # Messages
    # ------------------------------------------------------------------------------------------

    @workflow.signal
    async def halt(self, request: HaltRequest) -> None:
        if request.issue_identifier is None:  # an issue's own halt was counted by the issue
            metrics.halted(self._line_name, request.category)
        await self._halt_line(
            HaltRecord(
                category=request.category,
                reason=request.reason,
                source=request.source,
                scope=HaltScope.LINE,
                issue_identifier=request.issue_identifier,
                at=workflow.now(),
                evidence={
                    **request.evidence,
                    **({"operator": request.operator} if request.operator else {}),
                },
            )
        )

    @workflow.signal(name="resume")
    async def resume(self, request: ResumeRequest) -> None:
        problem = self._resume_problem(request)
        if problem is not None:
            self._s.notice = (
                f"resume refused at {workflow.now().isoformat(timespec='seconds')}: {problem}"
            )
            workflow.logger.warning("resume refused: %s", problem)
            return
        await self._apply_resume(request)

    @workflow.update(name="resume")
    async def resume_update(self, request: ResumeRequest) -> ResumeResult:
        await self._apply_resume(request)
        return ResumeResult(accepted=True, message=f"line resumed by {request.operator}")

    @resume_update.validator
    def _validate_resume(self, request: ResumeRequest) -> None:
        problem = self._resume_problem(request)
        if problem is not None:
            raise ValueError(problem)

    @workflow.signal
    def refresh(self) -> None:
        self._refresh = True

    @workflow.signal
    def issue_report(self, report: IssueReport) -> None:
        s = self._s
        if report.tokens_delta > 0:
            s.ledger.append(LedgerEntry(at=report.at, tokens=report.tokens_delta))
            s.tokens_total += report.tokens_delta
            self._upsert(tokens=s.tokens_total)
        limit = report.rate_limit
        if limit is not None and limit.exhausted and limit.resets_at is not None:
            s.rate_gate_until = policy.extend_gate(s.rate_gate_until, limit.resets_at)
        entry = s.running.get(report.issue_id)
        if entry is None:
            finished = s.finished.get(report.issue_id)
            if (
                finished is not None
                and finished.workflow_id == report.workflow_id
                and (report.at <= finished.finished_at)
            ):
                return  # a late copy of what the line already closed
            # One of ours the line does not know (yet, or any more: a restarted line): adopt
            # it, so no report is ever dropped. The next reconciliation reads its state.
            entry = RunningEntry(
                issue_id=report.issue_id,
                identifier=report.identifier,
                workflow_id=report.workflow_id,
                state="",
                started_at=report.at,
            )
            s.running[report.issue_id] = entry
            s.finished.pop(report.issue_id, None)
        if entry.phase is not report.phase:
            entry.phase_at = report.at
        entry.phase = report.phase
        entry.reported = True
        # Only until the issue's next report: by then its own move is over, and the same
        # state seen later (a halted issue closed by a person) is a person's edit again.
        entry.moving_to = report.moving_to
        entry.retry_at = report.retry_at
        entry.infra_failures = report.infra_failures
        entry.attempt = report.attempt
        entry.tokens = report.tokens_total
        entry.last_outcome = report.outcome
        if report.final:
            self._finish(entry)
            self._refresh = True

    @workflow.query
    def status(self) -> LineStatus:
        s = self._s
        now = workflow.now()
        ledger = [(e.at, e.tokens) for e in s.ledger]
        running = sorted(s.running.values(), key=lambda e: e.started_at)
        return LineStatus(
            workflow_id=workflow.info().workflow_id,
            line=self._workflow.config.line if self._workflow else None,
            phase=LinePhase.HALTED
            if s.halted
            else (LinePhase.RUNNING if s.started else LinePhase.STARTING),
            halted=s.halted,
            open_halts=[h for h in s.halts if h.resolved_at is None],
            halts=s.halts,
            notice=s.notice,
            running=running,
            retry_queue=[e for e in running if e.phase is Phase.BACKING_OFF],
            finished=sorted(s.finished.values(), key=lambda f: f.finished_at),
            lost=sorted(
                (f for f in s.finished.values() if f.closed_without_report is not None),
                key=lambda f: f.finished_at,
            ),
            fleet=FleetUse(
                tokens_last_hour=policy.fleet_tokens_last_hour(ledger, now),
                tokens_per_hour_cap=self._workflow.config.budgets.fleet.tokens_per_hour
                if self._workflow
                else None,
                tokens_total=s.tokens_total,
            ),
            rate_gate_until=s.rate_gate_until,
            config_error=s.config_error,
            tracker_error=s.tracker_error,
            ticks=s.ticks,
            last_tick_at=s.last_tick_at,
            idle=s.idle,
            candidates_waiting=s.candidates_waiting,
            startup_report=s.startup_report,
            risks=policy.config_risks(self._workflow.config) if self._workflow else [],
        )

    # ------------------------------------------------------------------------------------------
    # Search attributes
    # ------------------------------------------------------------------------------------------

    def _upsert(
        self,
        *,
        line: str | None = None,
        halted: bool | None = None,
        tokens: int | None = None,
        config_invalid: bool | None = None,
    ) -> None:
        phase = None if halted is None else (LinePhase.HALTED if halted else LinePhase.RUNNING)
        self._attributes.upsert(
            (sa.LINE, line),
            (sa.HALTED, halted),
            (sa.PHASE, phase.value if phase is not None else None),
            (sa.TOKENS, tokens),
            (sa.CONFIG_INVALID, config_invalid),
        )
