"""The domain vocabulary the envelopes carry: issues, evidence, verdicts, decisions, halt
records, counters, and the state each workflow carries across continue-as-new.

Where a type goes: a model carried inside others lives here; a model that is the whole input or
output of one activity, workflow, signal, update or query lives in :mod:`jidoka.payloads`; a
closed set of names lives in :mod:`jidoka.outcomes`. Everything is plain JSON through
``pydantic_data_converter``, so the Temporal CLI and the Web UI show it as written here. Rules:
paths and ids, never whole diffs or logs; never a secret.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import Field

from jidoka.base import Model
from jidoka.config import WorkflowConfig
from jidoka.outcomes import (
    AgentStop,
    DecisionKind,
    HaltCategory,
    HaltScope,
    HaltSource,
    Outcome,
    Phase,
    TestStatus,
)
from jidoka.review import ReviewLedger

# --------------------------------------------------------------------------------------------
# Tracker vocabulary, normalised the same way by every adapter (docs/trackers.md)
# --------------------------------------------------------------------------------------------


class BlockerRef(Model):
    id: str | None = None
    identifier: str | None = None
    state: str | None = None


DESCRIPTION_LIMIT = 64 * 1024
"""Characters of an issue's description carried in payloads; the rest is cut with a note.
Temporal refuses payloads over 2 MiB, and one oversized issue must never stall a line."""
TITLE_LIMIT = 512
LIST_LIMIT = 100
"""Labels and blockers carried per issue."""
NAME_LIMIT = 256
"""Characters of one label, identifier, state or blocker reference."""


class Issue(Model):
    id: str
    identifier: str
    title: str
    description: str | None = None
    priority: int | None = None
    state: str
    branch_name: str | None = None
    url: str | None = None
    labels: list[str] = Field(default_factory=list[str])
    """Lowercase."""
    blocked_by: list[BlockerRef] = Field(default_factory=list[BlockerRef])
    created_at: datetime | None = None
    updated_at: datetime | None = None
    description_cut: int = 0
    """Characters of the description left out of this payload (0: it is whole)."""

    def bounded(self) -> Issue:
        """This issue within payload limits: whatever the tracker holds, a fixed size."""
        description = self.description
        cut = self.description_cut
        if description is not None and len(description) > DESCRIPTION_LIMIT:
            cut += len(description) - DESCRIPTION_LIMIT
            description = (
                description[:DESCRIPTION_LIMIT]
                + f"\n\n[Jidoka: the description is longer than {DESCRIPTION_LIMIT:,} characters;"
                f" {cut:,} more are in the tracker" + (f" at {self.url}" if self.url else "") + "]"
            )
        return self.model_copy(
            update={
                "title": _cut(self.title, TITLE_LIMIT),
                "description": description,
                "description_cut": cut,
                "labels": [_cut(label, NAME_LIMIT) for label in self.labels[:LIST_LIMIT]],
                "blocked_by": [
                    BlockerRef(
                        id=_cut_or_none(ref.id),
                        identifier=_cut_or_none(ref.identifier),
                        state=_cut_or_none(ref.state),
                    )
                    for ref in self.blocked_by[:LIST_LIMIT]
                ],
                "url": _cut_or_none(self.url, 2048),
                "branch_name": _cut_or_none(self.branch_name),
            }
        )

    def slim(self) -> Issue:
        """What dispatch and reconciliation need: no description (issues read their own)."""
        return self.bounded().model_copy(update={"description": None, "description_cut": 0})


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _cut_or_none(text: str | None, limit: int = NAME_LIMIT) -> str | None:
    return None if text is None else _cut(text, limit)


# --------------------------------------------------------------------------------------------
# WORKFLOW.md, loaded
# --------------------------------------------------------------------------------------------


class LoadedWorkflow(Model):
    """A validated WORKFLOW.md. ``$VAR`` references are still references here."""

    path: str
    """Absolute path of the WORKFLOW.md it came from."""
    base_dir: str
    config: WorkflowConfig
    prompt_template: str
    digest: str
    """sha256 of the file bytes: tells a reload that changed nothing from one that did."""


class Problem(Model):
    """One thing wrong with a WORKFLOW.md, named by its key path."""

    path: str
    message: str
    hint: str | None = None

    def render(self) -> str:
        text = f"{self.path}: {self.message}"
        return f"{text}\n    hint: {self.hint}" if self.hint else text


# --------------------------------------------------------------------------------------------
# Verdict and evidence (docs/agents.md#the-verdict-file)
# --------------------------------------------------------------------------------------------


class Verdict(Model):
    """What the agent *says*, in ``.jidoka/verdict.json``. Untrusted input."""

    verdict: Annotated[str, Field(min_length=1, max_length=64)]
    summary: Annotated[str, Field(max_length=16_000)] = ""
    questions: Annotated[list[Annotated[str, Field(max_length=4000)]], Field(max_length=50)] = (
        Field(default_factory=list[str])
    )
    halt_reason: Annotated[str, Field(max_length=4000)] | None = None


class VerdictReading(Model):
    """The verdict file as the orchestrator found it."""

    present: bool
    verdict: Verdict | None = None
    error: str | None = None
    """Why the file was rejected (symlink, too large, not JSON, unknown field, ...)."""


class DiffStat(Model):
    files_changed: int = 0
    insertions: int = 0
    deletions: int = 0

    @property
    def empty(self) -> bool:
        return self.files_changed == 0


class TestSample(Model):
    """Some test ids of one kind, and how many there are in all."""

    __test__ = False

    count: int = 0
    ids: list[str] = Field(default_factory=list[str])
    """At most ``TEST_SAMPLE_LIMIT`` of them, sorted."""


TEST_SAMPLE_LIMIT = 20


class TestComparison(Model):
    """The head's test report against the base's (``judge.test_report``): counts and samples,
    never whole reports."""

    __test__ = False

    base_sha: str
    head_sha: str
    base_problem: str | None = None
    """Why the base's report could not be read (then nothing is compared)."""
    head_problem: str | None = None
    """Why the head's report could not be read: a judge that cannot be read is a weaker one."""
    base_total: int = 0
    head_total: int = 0
    head_counts: dict[TestStatus, int] = Field(default_factory=dict[TestStatus, int])
    added: TestSample = Field(default_factory=TestSample)
    removed: TestSample = Field(default_factory=TestSample)
    newly_skipped: TestSample = Field(default_factory=TestSample)
    """Present on both, not skipped on the base, skipped at the head."""
    newly_passing: TestSample = Field(default_factory=TestSample)
    """Failed on the base, passes at the head."""
    failing_removed: TestSample = Field(default_factory=TestSample)
    """Failed on the base, gone at the head: the failing test was deleted, not fixed."""
    head_failed: TestSample = Field(default_factory=TestSample)

    @property
    def compared(self) -> bool:
        return self.base_problem is None and self.head_problem is None


class HookResult(Model):
    name: str
    ran: bool
    ok: bool
    timed_out: bool = False
    exit_code: int | None = None
    duration_s: float = 0.0
    output_tail: str = ""
    """Last lines of combined output, truncated and scrubbed of known secrets."""
    sha: str | None = None
    """The commit it ran on, when it ran in a checkout of a pinned head (``verify``)."""
    tests: TestComparison | None = None
    """``verify`` with ``judge.test_report``: the head's tests against the base's."""


class PathChange(Model):
    """A protected path the net diff changes."""

    path: str
    glob: str
    """The ``judge.protected_paths`` glob it matches."""
    blob: str
    """Its content at the head (a git object id), ``""`` when the head deletes it: a consent
    covers exactly this content."""


PROTECTED_LIMIT = 100
"""Protected paths listed per attempt (the count says how many in all)."""


class GitEvidence(Model):
    base_sha: str
    head_sha: str
    """Tip of the work branch (not HEAD: an agent may have switched branches)."""
    branch: str
    commits_ahead: int
    diff: DiffStat
    """Net diff base..branch outside ``.jidoka/``."""
    uncommitted_paths: list[str] = Field(default_factory=list[str])
    """Modified or untracked paths outside ``.jidoka/`` (at most 50 listed)."""
    uncommitted_count: int = 0
    on_branch: bool = True
    """False when the workspace's HEAD is not the work branch."""
    protected: list[PathChange] = Field(default_factory=list[PathChange])
    """Protected paths (``judge.protected_paths``) the net diff changes, at most
    ``PROTECTED_LIMIT``."""
    protected_count: int = 0
    closing: list[str] = Field(default_factory=list[str])
    """Issue references the work's commit messages close (``Fixes #12``): a forge closes them
    when the work lands on the default branch (:mod:`jidoka.closing`)."""


class Evidence(Model):
    """What the orchestrator *measured* after an attempt."""

    verdict: VerdictReading
    git: GitEvidence
    verify: HookResult | None = None
    workflow_changed: bool = False
    """WORKFLOW.md changed while the attempt ran."""


class JudgeFindings(Model):
    """What would weaken the judge, not yet consented to: changed protected paths (not allowed
    by the issue's ``allow:`` labels nor accepted by a person) and test-ratchet findings."""

    protected: list[PathChange] = Field(default_factory=list[PathChange])
    protected_more: int = 0
    """Protected paths changed beyond those listed."""
    tests: list[str] = Field(default_factory=list[str])
    """One line each: fewer tests, a test newly skipped, a failing test removed, ..."""
    closing: list[str] = Field(default_factory=list[str])
    """Other issues the commit messages close (``#12``, ``acme/app#3``, ``ENG-7``)."""

    @property
    def empty(self) -> bool:
        return (
            not self.protected and not self.protected_more and not self.tests and not self.closing
        )


class Consent(Model):
    """A person's yes to a change of the judge (``decide`` accept), kept for ``jidoka why``."""

    at: datetime
    operator: str
    root_cause: str
    attempt: int
    head_sha: str
    paths: list[PathChange] = Field(default_factory=list[PathChange])
    tests: list[str] = Field(default_factory=list[str])
    closing: list[str] = Field(default_factory=list[str])


class ShipEvidence(Model):
    """The proof a ship transition must carry; checked again at the tracker boundary."""

    outcome: Outcome
    branch: str
    base_sha: str
    head_sha: str
    commits_ahead: int
    diff: DiffStat
    uncommitted_count: int
    verify_configured: bool
    verify_passed: bool | None
    verified_sha: str | None = None
    """The commit ``verify`` ran on (a fresh checkout): it must be ``head_sha``."""
    tokens_total: int
    cost: float | None = None
    """Money spent by the attempts whose cost is known; None on a line without prices."""
    cost_unknown_attempts: int = 0
    """Attempts whose cost is unknown: ``cost`` is then a lower bound."""
    currency: str | None = None
    summary: str = ""
    pushed_to: str | None = None
    pull_request_url: str | None = None
    protected: list[str] = Field(default_factory=list[str])
    """Protected paths the shipped diff changes, each with who allowed it."""
    tests: TestComparison | None = None


# --------------------------------------------------------------------------------------------
# Agent runs
# --------------------------------------------------------------------------------------------


class TokenUsage(Model):
    input_tokens: int = 0
    """Every prompt token, cached ones included."""
    output_tokens: int = 0
    total_tokens: int = 0
    cached_input_tokens: int = 0
    """The part of ``input_tokens`` the provider read from its cache (priced lower)."""

    def plus(self, other: TokenUsage) -> TokenUsage:
        return TokenUsage(
            input_tokens=self.input_tokens + other.input_tokens,
            output_tokens=self.output_tokens + other.output_tokens,
            total_tokens=self.total_tokens + other.total_tokens,
            cached_input_tokens=self.cached_input_tokens + other.cached_input_tokens,
        )


class RateLimitInfo(Model):
    """An agent said the provider is limiting it; ``resets_at`` gates new dispatch."""

    resets_at: datetime | None = None
    used_percent: float | None = None
    exhausted: bool = False
    source: str = ""


# --------------------------------------------------------------------------------------------
# Halts and decisions
# --------------------------------------------------------------------------------------------


class HaltRecord(Model):
    category: HaltCategory
    reason: str
    source: HaltSource
    scope: HaltScope
    issue_identifier: str | None = None
    at: datetime
    evidence: dict[str, str | int | bool | None] = Field(
        default_factory=dict[str, str | int | bool | None]
    )
    resolved_at: datetime | None = None
    root_cause: str | None = None
    resolved_by: str | None = None


class Decision(Model):
    kind: DecisionKind
    reason: str
    """Plain words, ending at the WORKFLOW.md rule that decided (read by ``jidoka why``)."""
    rule: str
    """The config key or policy rule that decided, e.g. ``budgets.max_attempts``."""
    delay_s: float = 0.0
    halt_category: HaltCategory | None = None
    target_state: str | None = None
    guidance: str | None = None
    """Feedback for the next attempt (verify output, what the done gate found missing)."""


class AgentRunResult(Model):
    """What the supervisor reports after one agent session."""

    stop: AgentStop
    exit_code: int | None = None
    usage: TokenUsage = Field(default_factory=TokenUsage)
    """Tokens of this session only."""
    usage_reported: bool = True
    """False when the agent reported no usage at all: its zero tokens are unknown, not free.
    (Defaults True so that results recorded before the field read as they did.)"""
    tokens_before_first_commit: int = 0
    """Tokens of this session spent while the work branch had no commit beyond the base."""
    first_commit_seen: bool = False
    turns: int = 0
    detail: str = ""
    """One line for humans: why it stopped. Scrubbed of known secrets."""
    stderr_tail: str = ""
    resume_token: str | None = None
    rate_limit: RateLimitInfo | None = None
    transcript_path: str | None = None
    duration_s: float = 0.0
    """Agent time only: from the moment it had a slot to its end."""
    slot_wait_s: float = 0.0
    """Time spent waiting for an agent slot on the host before the agent started."""


# --------------------------------------------------------------------------------------------
# The issue's durable state (carried across continue-as-new)
# --------------------------------------------------------------------------------------------


class IssueCounters(Model):
    attempts: int = 0
    """Agent sessions started, over the issue's life."""
    failures: int = 0
    """Failed attempts counted against ``budgets.max_attempts`` (an operator retry resets)."""
    infra_failures: int = 0
    """Attempts lost to the infrastructure, counted against ``budgets.max_infra_failures``
    (an operator retry resets); never charged to the agent."""
    continuations: int = 0
    """Follow-ups counted against ``budgets.max_continuations`` (an operator retry resets)."""
    turns: int = 0
    tokens: TokenUsage = Field(default_factory=TokenUsage)
    tokens_before_first_commit: int = 0
    has_commit: bool = False
    agent_seconds: float = 0.0
    cost: float = 0.0
    """The money spent by the attempts whose cost is known (``pricing.currency``)."""
    cost_unknown: int = 0
    """Attempts whose cost is unknown (no price for the model, no usage reported): while
    any is, ``cost`` is a lower bound, and shown as one."""


class AttemptRecord(Model):
    number: int
    started_at: datetime
    ended_at: datetime | None = None
    host_queue: str | None = None
    agent_stop: AgentStop | None = None
    agent_detail: str = ""
    tokens: int = 0
    usage: TokenUsage | None = None
    """The attempt's usage by kind; None when the agent reported none."""
    model: str | None = None
    """The model the attempt's cost was priced as, as WORKFLOW.md names it."""
    cost: float | None = None
    """None: unknown (no price for the model, no usage reported), never zero."""
    agent_seconds: float = 0.0
    verdict: str | None = None
    verdict_error: str | None = None
    commits_ahead: int | None = None
    diff: DiffStat | None = None
    uncommitted_count: int | None = None
    verify_ok: bool | None = None
    hook_failure: str | None = None
    outcome: Outcome | None = None
    decision: Decision | None = None
    slot_wait_s: float = 0.0
    """Time this attempt waited for an agent slot on its host (not agent time)."""


# --------------------------------------------------------------------------------------------
# Workspace and agent-run payloads
# --------------------------------------------------------------------------------------------


class WorkspaceInfo(Model):
    """A prepared workspace on one host. Every activity that touches it runs on ``host_queue``."""

    path: str
    key: str
    branch: str
    base_sha: str
    host_queue: str
    created_now: bool = False


# --------------------------------------------------------------------------------------------
# What the workflows must not forget (carried across continue-as-new)
# --------------------------------------------------------------------------------------------


class PendingEvaluation(Model):
    """An agent run whose judgement was interrupted (a hook timed out after it): an operator's
    retry re-judges it instead of running the agent again, so a good run is never lost."""

    attempt: int
    agent: AgentRunResult


class HeldWork(Model):
    """An attempt that would weaken the judge, held for a person: ``decide`` accept re-judges
    it with their consent; retry sends it back to the agent."""

    attempt: int
    agent: AgentRunResult
    head_sha: str
    findings: JudgeFindings


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
    held: HeldWork | None = None
    consents: list[Consent] = Field(default_factory=list[Consent])
    review: ReviewLedger | None = None
    """After a ship with ``review:``: the change request watched (rounds, tokens, comments
    already sent to the agent); None before the first ship, or without a review loop."""
    review_waiting: str | None = None
    """What the review loop waits for, as of its last reading of the change request."""


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
    unconfirmed: str | None = None
    """A tracker state that would stop this issue, seen by one reconciliation and waiting for
    the next to confirm it (the issue's report of its own move may still be on its way)."""


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


class FleetUse(Model):
    tokens_last_hour: int
    tokens_per_hour_cap: int | None
    tokens_total: int


class IssueToStart(Model):
    issue: Issue
    workflow_id: str


class RunningRef(Model):
    """What candidate selection needs to know of one running issue."""

    issue_id: str
    state: str
    parked: bool
