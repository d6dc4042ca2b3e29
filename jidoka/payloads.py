"""The envelopes that cross the Temporal boundary: one model per activity input and output, per
workflow input and result, per signal, update and query payload.

Where a type goes: a model that is the whole input or output of one activity, workflow, signal,
update or query lives here; a model carried *inside* others (an issue, evidence, a decision, a
halt record, the state a workflow carries across continue-as-new) lives in
:mod:`jidoka.models`; a closed set of names lives in :mod:`jidoka.outcomes`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import Field

from jidoka.config import WorkflowConfig
from jidoka.models import (
    AttemptRecord,
    Decision,
    Evidence,
    FinishedEntry,
    FleetUse,
    HaltRecord,
    Issue,
    IssueCounters,
    IssueState,
    IssueToStart,
    LineState,
    LoadedWorkflow,
    Model,
    RateLimitInfo,
    RunningEntry,
    RunningRef,
    ShipEvidence,
    WorkspaceInfo,
)
from jidoka.outcomes import (
    HaltCategory,
    HaltScope,
    HaltSource,
    HookName,
    LinePhase,
    OperatorDecision,
    Outcome,
    Phase,
)
from jidoka.review import ReviewLedger

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
    rejudge: bool = False
    """The agent does not run: an earlier attempt is judged again (its verdict is kept)."""


class HookInput(Model):
    workflow: LoadedWorkflow
    workspace: WorkspaceInfo
    hook: HookName
    attempt: int
    issue_identifier: str
    sha: str | None = None
    """``verify`` only: the pinned head it runs on, in a fresh checkout of exactly that SHA."""


class EvidenceInput(Model):
    workspace: WorkspaceInfo
    workflow_path: str = ""
    workflow_digest: str = ""
    """The digest of WORKFLOW.md when the attempt started (a change during it cannot ship)."""
    protected_paths: list[str] = Field(default_factory=list[str])
    """``judge.protected_paths`` of that WORKFLOW.md."""


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
    sha: str
    """The pinned head the evidence was read at: exactly this is pushed."""


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
    moved_from: str | None = None
    """The state the move was guarded on (its input's ``expected_state``), recorded with the
    result: a tracker call runs as a local activity, whose input the history does not keep."""
    with_evidence: bool = False
    """The move carried the evidence of a ship."""


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
    review: ReviewLedger | None = None
    review_waiting: str | None = None


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
    attempts: list[AttemptRecord] = Field(default_factory=list[AttemptRecord])
    """The latest attempts (outcome, tokens, cost, time each), as the state keeps them: what
    ``jidoka report`` reads of a closed issue."""
    started_at: datetime | None = None
    finished_at: datetime | None = None
    review: ReviewLedger | None = None


class DecideResult(Model):
    accepted: bool
    message: str


class ReviewChanged(Model):
    """Signal ``review_changed``: something happened to the change request of an issue in
    review (a webhook relay, or the line seeing a person's move on the board). It only wakes
    the watch early: the issue reads the change request itself and trusts nothing else in
    the signal. One for another change request (``url`` given and not its own) is ignored,
    visibly."""

    source: str = "webhook"
    url: str | None = None
    state: str | None = None


class ForgeReadInput(Model):
    """Activity ``forge_read``: one reading of the change request of a shipped issue."""

    config: WorkflowConfig
    issue_id: str
    url: str
    shipped_head: str


class ForgeMergeInput(Model):
    """Activity ``forge_merge``: merge the change request, pinned to the head judged."""

    config: WorkflowConfig
    issue_id: str
    url: str
    sha: str


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


# --------------------------------------------------------------------------------------------
# LineWorkflow
# --------------------------------------------------------------------------------------------


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
    risks: list[str] = Field(default_factory=list[str])
    """What the line's WORKFLOW.md lets agents reach beyond the default sandbox."""


class StartIssuesInput(Model):
    workflow_path: str
    workflow: LoadedWorkflow
    line: str
    line_workflow_id: str
    task_queue: str
    issues: list[IssueToStart]
    line_halted: bool = False


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


# --------------------------------------------------------------------------------------------
# Signals, updates and one-activity inputs moved here by the rule in the module docstring
# --------------------------------------------------------------------------------------------


class LoadWorkflowInput(Model):
    path: str


class ReloadWorkflowInput(Model):
    path: str
    known_fingerprint: str | None = None
    """The fingerprint of the config the caller holds: the same config comes back as None."""


class ReloadedWorkflow(Model):
    """A re-read of WORKFLOW.md: ``workflow`` is None when it is the config the caller holds."""

    fingerprint: str
    """A hash of the loaded config (the file and whatever the load resolved from it)."""
    workflow: LoadedWorkflow | None = None


class HaltRequest(Model):
    """Signal ``halt`` payload (operators, issues and the line all send it)."""

    reason: str = "halted by operator"
    category: HaltCategory = HaltCategory.HALT_PRODUCTION
    source: HaltSource = HaltSource.OPERATOR
    scope: HaltScope | None = None
    """For issue workflows: LINE means "the line is halted" (sent by the line)."""
    issue_identifier: str | None = None
    operator: str | None = None
    evidence: dict[str, str | int | bool | None] = Field(
        default_factory=dict[str, str | int | bool | None]
    )


class ResumeRequest(Model):
    """Signal/update ``resume`` payload. Without a root cause it is refused visibly."""

    root_cause: str = ""
    operator: str = ""
    scope: HaltScope | None = None
    """For issue workflows: LINE means "the line was resumed" (sent by the line)."""


class ResumeResult(Model):
    accepted: bool
    message: str


class DecideRequest(Model):
    """Update ``decide`` on a halted issue."""

    decision: OperatorDecision
    root_cause: str
    operator: str
    note: Annotated[str, Field(max_length=4000)] | None = None
    """For a retry: what the agent should do differently, put into its next prompt."""


class AnswerRequest(Model):
    """Signal ``answer`` on a paused issue."""

    answer: str
    operator: str = ""


class CancelRequest(Model):
    """Signal ``cancel`` on an issue: stop, preserve the work, optionally clean up."""

    reason: str = "cancelled by operator"
    cleanup_workspace: bool = False
    source: HaltSource = HaltSource.OPERATOR


class AgentRunInput(Model):
    """Input of the ``run_agent`` activity (one agent session = one attempt)."""

    workflow: LoadedWorkflow
    issue: Issue
    attempt: int
    """1-based session number; exported as ``JIDOKA_ATTEMPT``."""
    template_attempt: int | None = None
    """The Liquid ``attempt`` variable: None on the first attempt (docs/workflow-file.md#the-file)."""
    guidance: str | None = None
    workspace: WorkspaceInfo
    budget_tokens: int
    """Tokens this session may still spend (issue budget minus what was used)."""
    budget_tokens_before_first_commit: int | None = None
    """Tokens it may spend while the branch has no commit; None once it has one."""
    wall_s: float
    max_turns: int
    resume_token: str | None = None
    slot_wait_s: float = 6 * 3600
    """How long to wait for an agent slot on the host before giving up (``SLOT_TIMEOUT``)."""
