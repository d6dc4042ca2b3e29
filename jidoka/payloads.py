"""Inputs and outputs of activities and workflows: one model per input and per output.

Domain vocabulary (Issue, Evidence, HaltRecord, ...) lives in :mod:`jidoka.models`; this module
holds the envelopes that carry it across the Temporal boundary.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import Field

from jidoka.config import WorkflowConfig
from jidoka.models import (
    AgentRunResult,
    AttemptRecord,
    Decision,
    Evidence,
    HaltRecord,
    Issue,
    IssueCounters,
    LoadedWorkflow,
    Model,
    RateLimitInfo,
    ShipEvidence,
    WorkspaceInfo,
)
from jidoka.outcomes import LinePhase, Outcome, Phase


class HookName(StrEnum):
    AFTER_CREATE = "after_create"
    BEFORE_RUN = "before_run"
    AFTER_RUN = "after_run"
    BEFORE_REMOVE = "before_remove"
    VERIFY = "verify"


# --------------------------------------------------------------------------------------------
# Host-pinned workspace activities
# --------------------------------------------------------------------------------------------


class HostClaim(Model):
    host_id: str
    host_queue: str


class PrepareWorkspaceInput(Model):
    workflow: LoadedWorkflow
    issue: Issue
    base_sha: str | None = None
    """The base recorded by an earlier attempt; None on the first one."""
    attempt: int


class HookInput(Model):
    workflow: LoadedWorkflow
    workspace: WorkspaceInfo
    hook: HookName
    attempt: int
    issue_identifier: str


class EvidenceInput(Model):
    workspace: WorkspaceInfo


class PreserveInput(Model):
    workflow: LoadedWorkflow
    workspace: WorkspaceInfo
    stamp: str
    """UTC timestamp chosen by the workflow, so retries name the same branch."""
    reason: str


class PreserveResult(Model):
    branch: str | None
    """None when there was nothing to preserve (no commit and a clean tree)."""
    sha: str | None = None
    pushed: bool = False
    detail: str = ""


class PushInput(Model):
    workflow: LoadedWorkflow
    workspace: WorkspaceInfo


class PushResult(Model):
    remote: str
    sha: str


class AgentStarted(Model):
    """Signal ``agent_started`` from the ``run_agent`` activity: a slot was free, the agent runs."""

    attempt: int
    slot_wait_s: float = 0.0


class RecoverAgentInput(Model):
    """Ask the issue's host for the result of an agent run it finished (see the activity)."""

    attempt: int


class RemoveWorkspaceInput(Model):
    workflow: LoadedWorkflow
    identifier: str


class RemoveWorkspaceResult(Model):
    removed: bool
    path: str
    before_remove: str | None = None


# --------------------------------------------------------------------------------------------
# Tracker activities
# --------------------------------------------------------------------------------------------


class TrackerQuery(Model):
    config: WorkflowConfig
    issue_ids: list[str] = Field(default_factory=list[str])
    states: list[str] = Field(default_factory=list[str])


class TrackerIssueInput(Model):
    config: WorkflowConfig
    issue_id: str


class TransitionInput(Model):
    config: WorkflowConfig
    issue_id: str
    expected_state: str
    target_state: str
    evidence: ShipEvidence | None = None
    comment: str | None = None
    idempotency_key: str


class TransitionResult(Model):
    issue: Issue
    already_applied: bool = False


class CommentInput(Model):
    config: WorkflowConfig
    issue_id: str
    body: str
    idempotency_key: str


class PublishInput(Model):
    config: WorkflowConfig
    issue: Issue
    branch: str
    title: str
    body: str


# --------------------------------------------------------------------------------------------
# IssueWorkflow
# --------------------------------------------------------------------------------------------


class PendingEvaluation(Model):
    """An agent run whose judgement was interrupted (a hook timed out after it): an operator's
    retry re-judges it instead of running the agent again, so a good run is never lost."""

    attempt: int
    agent: AgentRunResult


class IssueState(Model):
    """Everything the issue workflow must not forget; carried across continue-as-new."""

    issue: Issue | None = None
    tracker_state: str | None = None
    """The state Jidoka last wrote or observed: the expected state of the next write."""
    phase: Phase = Phase.QUEUED
    counters: IssueCounters = Field(default_factory=IssueCounters)
    attempts: list[AttemptRecord] = Field(default_factory=list[AttemptRecord])
    halts: list[HaltRecord] = Field(default_factory=list[HaltRecord])
    halt: HaltRecord | None = None
    line_halted: bool = False
    host_queue: str | None = None
    workspace: WorkspaceInfo | None = None
    base_sha: str | None = None
    resume_token: str | None = None
    guidance: str | None = None
    pending: PendingEvaluation | None = None
    questions: list[str] = Field(default_factory=list[str])
    last_outcome: Outcome | None = None
    last_decision: Decision | None = None
    last_evidence: Evidence | None = None
    config_error: str | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    ship: ShipEvidence | None = None
    preserved_branch: str | None = None
    retry_at: datetime | None = None
    """When backing off: the time of the next attempt."""


class IssueWorkflowInput(Model):
    """Start one issue. By hand::

    temporal workflow start --type IssueWorkflow --task-queue jidoka \\
      --workflow-id jidoka-issue-demo-DEMO-1 \\
      --input '{"workflow_path": "/abs/WORKFLOW.md", "issue_id": "DEMO-1"}'
    """

    workflow_path: str
    issue_id: str
    line_workflow_id: str | None = None
    """Set when a line started it: halts, tokens and the end are reported there."""
    workflow: LoadedWorkflow | None = None
    """The line's last good config: used when WORKFLOW.md is invalid at start."""
    state: IssueState | None = None
    """Carried over by continue-as-new; never set by hand."""


class IssueStatus(Model):
    """Query ``status``."""

    workflow_id: str
    line: str | None
    issue_id: str
    identifier: str | None
    title: str | None
    url: str | None
    phase: Phase
    tracker_state: str | None
    attempt: int
    counters: IssueCounters
    last_outcome: Outcome | None
    last_decision: Decision | None
    last_evidence: Evidence | None
    halt: HaltRecord | None
    halts: list[HaltRecord]
    line_halted: bool
    questions: list[str]
    attempts: list[AttemptRecord]
    host_queue: str | None
    workspace_path: str | None
    branch: str | None
    config_error: str | None
    started_at: datetime | None
    finished_at: datetime | None
    ship: ShipEvidence | None
    preserved_branch: str | None
    retry_at: datetime | None = None


class IssueResult(Model):
    """What an issue workflow returns when it ends."""

    issue_id: str
    identifier: str | None
    phase: Phase
    outcome: Outcome | None
    tracker_state: str | None
    counters: IssueCounters
    ship: ShipEvidence | None = None
    preserved_branch: str | None = None
    halts: list[HaltRecord] = Field(default_factory=list[HaltRecord])


class DecideResult(Model):
    accepted: bool
    message: str


class TrackerStateUpdate(Model):
    """Signal ``tracker_state``: the line saw this issue's live state (wakes a paused issue)."""

    state: str


# --------------------------------------------------------------------------------------------
# Issue -> line reports
# --------------------------------------------------------------------------------------------


class IssueReport(Model):
    """Signal ``issue_report`` to the line: progress of one of its issues."""

    issue_id: str
    identifier: str
    workflow_id: str
    phase: Phase
    attempt: int
    tokens_total: int
    tokens_delta: int = 0
    outcome: Outcome | None = None
    rate_limit: RateLimitInfo | None = None
    final: bool = False
    at: datetime
    moving_to: str | None = None
    """Set just before the issue moves its own tracker state: the line must not read that move
    as a person's edit (and cancel the issue) when its reconciliation sees it first."""
    retry_at: datetime | None = None
    """When backing off: the time of the next attempt."""
    infra_failures: int = 0


class LineStatusIssue(Model):
    issue_id: str
    identifier: str
    workflow_id: str
    state: str
    phase: Phase
    attempt: int
    tokens: int
    started_at: datetime
    last_outcome: Outcome | None = None


class LinePhaseInfo(Model):
    phase: LinePhase
    reason: str = ""


# --------------------------------------------------------------------------------------------
# LineWorkflow
# --------------------------------------------------------------------------------------------


class RunningEntry(Model):
    """The line's view of one issue workflow it started."""

    issue_id: str
    identifier: str
    workflow_id: str
    state: str
    """Tracker state at the last reconciliation."""
    phase: Phase = Phase.QUEUED
    attempt: int = 0
    tokens: int = 0
    started_at: datetime
    last_outcome: Outcome | None = None
    cancel_sent: bool = False
    moving_to: str | None = None
    """The tracker state this issue is moving itself to (cleared by its next report)."""
    retry_at: datetime | None = None
    """When backing off: the time of its next attempt."""
    infra_failures: int = 0
    reported: bool = False
    """The issue workflow has reported at least once (so it surely started)."""
    stuck: bool = False
    """Its workflow task keeps failing (seen by the sweep; the line halted once for it)."""
    phase_at: datetime | None = None
    """When the line heard of the current phase."""


class FinishedEntry(Model):
    issue_id: str
    identifier: str
    workflow_id: str
    phase: Phase
    outcome: Outcome | None = None
    tokens: int = 0
    finished_at: datetime
    closed_without_report: str | None = None
    """Set when the issue workflow closed without telling the line how it ended: its Temporal
    close status (``failed``, ``terminated``, ``timed_out``, ``canceled``...)."""


class LedgerEntry(Model):
    at: datetime
    tokens: int


class LineState(Model):
    """Everything the line must not forget; carried across continue-as-new."""

    started: bool = False
    running: dict[str, RunningEntry] = Field(default_factory=dict[str, RunningEntry])
    finished: dict[str, FinishedEntry] = Field(default_factory=dict[str, FinishedEntry])
    dispatches: dict[str, list[datetime]] = Field(default_factory=dict[str, list[datetime]])
    ledger: list[LedgerEntry] = Field(default_factory=list[LedgerEntry])
    tokens_total: int = 0
    halted: bool = False
    halts: list[HaltRecord] = Field(default_factory=list[HaltRecord])
    notice: str | None = None
    rate_gate_until: datetime | None = None
    config_error: str | None = None
    ticks: int = 0
    last_tick_at: datetime | None = None
    idle: bool = False
    candidates_waiting: int = 0
    tracker_error: str | None = None
    tracker_failures: int = 0
    """Ticks in a row whose candidate fetch failed; past a cap the line halts."""
    fault: str | None = None
    """The last unexpected error of the line's own work (halted once per distinct error)."""
    startup_report: list[str] = Field(default_factory=list[str])


class LineWorkflowInput(Model):
    """Start a line. By hand::

    temporal workflow start --type LineWorkflow --task-queue jidoka \\
      --workflow-id jidoka-line-demo --input '{"workflow_path": "/abs/WORKFLOW.md"}'
    """

    workflow_path: str
    state: LineState | None = None
    """Carried over by continue-as-new; never set by hand."""
    history_limit: int | None = None
    """Continue as new past this many history events (default: when Temporal suggests it, or
    8000). Lower it to exercise continue-as-new."""


class FleetUse(Model):
    tokens_last_hour: int
    tokens_per_hour_cap: int | None
    tokens_total: int


class LineStatus(Model):
    """Query ``status`` on a line."""

    workflow_id: str
    line: str | None
    phase: LinePhase
    halted: bool
    open_halts: list[HaltRecord]
    halts: list[HaltRecord]
    notice: str | None
    running: list[RunningEntry]
    retry_queue: list[RunningEntry]
    finished: list[FinishedEntry]
    lost: list[FinishedEntry] = Field(default_factory=list[FinishedEntry])
    """Issue workflows that closed without a final report (also in ``finished``)."""
    fleet: FleetUse
    rate_gate_until: datetime | None
    config_error: str | None
    tracker_error: str | None
    ticks: int
    last_tick_at: datetime | None
    idle: bool
    candidates_waiting: int
    startup_report: list[str]


class IssueToStart(Model):
    issue: Issue
    workflow_id: str


class StartIssuesInput(Model):
    workflow_path: str
    workflow: LoadedWorkflow
    line: str
    line_workflow_id: str
    task_queue: str
    issues: list[IssueToStart]
    line_halted: bool = False


class RunningRef(Model):
    """What candidate selection needs to know of one running issue."""

    issue_id: str
    state: str
    parked: bool


class DispatchQuery(Model):
    """Input of ``tracker_dispatch_plan``: the line asks only for what it can start."""

    config: WorkflowConfig
    running: list[RunningRef] = Field(default_factory=list[RunningRef])


class DispatchPlan(Model):
    """The candidates to start now, in dispatch order and within the free slots (without their
    descriptions), and how many eligible ones wait: bounded whatever the tracker holds."""

    chosen: list[Issue] = Field(default_factory=list[Issue])
    waiting: int = 0


class IssueWorkflowCheck(Model):
    """An issue workflow the line counts as running that needs its attention."""

    workflow_id: str
    status: str
    """Temporal's status, lower case: ``running`` (with failing tasks), or how it closed
    (``completed``, ``failed``, ``terminated``, ``timed_out``, ``canceled``, ``not_found``)."""
    result: IssueResult | None = None
    """How it ended, when it completed (its final report was lost on the way)."""
    failing_task_attempts: int = 0
    """Running, but its workflow task has failed this many times in a row."""


class StartedIssue(Model):
    issue_id: str
    workflow_id: str
    run_id: str | None
    started: bool
    """False when a run with that id was already open (USE_EXISTING)."""


class WorkflowIdsInput(Model):
    workflow_ids: list[str]


class StaleClaimsInput(Model):
    workflow: LoadedWorkflow
    line_workflow_id: str


class CleanupInput(Model):
    workflow: LoadedWorkflow
    identifiers: list[str] | None = None
    """None: the workspaces of every issue the tracker shows in a terminal or the done state
    (read by the activity itself: their number is unbounded)."""
    stamp: str


class CleanupResult(Model):
    removed: list[str] = Field(default_factory=list[str])
    preserved: dict[str, str] = Field(default_factory=dict[str, str])
    failed: dict[str, str] = Field(default_factory=dict[str, str])
