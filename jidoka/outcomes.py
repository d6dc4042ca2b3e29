"""The closed sets Jidoka decides over.

Every branch on one of these enums is a ``match`` ending in ``assert_never`` so that pyright
proves each member handled (poka-yoke: a new member is a type error, never a silent fallback).
"""

from __future__ import annotations

from enum import StrEnum


class Outcome(StrEnum):
    """What one attempt yielded, computed from evidence the orchestrator gathered itself."""

    SHIPPED = "shipped"
    """Ship verdict, commits beyond base, non-empty net diff, clean tree, verify passed."""
    NO_PROGRESS = "no_progress"
    """Claimed done, but no commit or no net diff outside ``.jidoka/``."""
    UNCOMMITTED_WORK = "uncommitted_work"
    """Claimed done with changes left uncommitted in the working tree."""
    VERIFY_FAILED = "verify_failed"
    VERDICT_MISSING = "verdict_missing"
    VERDICT_INVALID = "verdict_invalid"
    VERDICT_UNKNOWN = "verdict_unknown"
    HALT_REQUESTED = "halt_requested"
    AWAITING_ANSWERS = "awaiting_answers"
    TURN_LIMIT = "turn_limit"
    AGENT_FAILED = "agent_failed"
    AGENT_UNAVAILABLE = "agent_unavailable"
    """The agent could not start or is not logged in: retrying cannot help."""
    AGENT_STALLED = "agent_stalled"
    RATE_LIMITED = "rate_limited"
    HOOK_FAILED = "hook_failed"
    HOOK_TIMEOUT = "hook_timeout"
    PROMPT_INVALID = "prompt_invalid"
    CONFIG_INVALID = "config_invalid"
    """A setting could not be used on the worker (e.g. an unset ``$VAR``)."""
    WORKSPACE_FAILED = "workspace_failed"
    """The workspace could not be prepared (clone failed, base branch missing, ...)."""
    BUDGET_EXCEEDED = "budget_exceeded"
    WORKER_LOST = "worker_lost"
    """The host stopped answering (heartbeat or pick-up timeout, server outage, SIGTERM).
    An infrastructure fault: charged to ``budgets.max_infra_failures``, never to the agent."""
    SLOT_TIMEOUT = "slot_timeout"
    """No agent slot freed on the issue's host within ``timeouts.slot_wait_s``."""
    ORCHESTRATOR_ERROR = "orchestrator_error"
    """One of Jidoka's own activities failed in a way no other outcome describes."""
    WORKFLOW_CHANGED = "workflow_changed"
    """WORKFLOW.md changed while the attempt ran: work judged by moved judges does not ship."""
    PROTECTED_PATHS = "protected_paths"
    """The net diff changes ``judge.protected_paths`` nobody consented to: held for a person."""
    TESTS_WEAKENED = "tests_weakened"
    """``verify`` passed but its report shows a weaker judge than the base's (fewer tests,
    tests newly skipped, a failing test removed): held for a person."""
    CLOSING_KEYWORDS = "closing_keywords"
    """The work's commit messages close other issues (``Fixes #12``) once it lands on the
    default branch, behind the guarded transition: held for a person."""
    NO_NEW_WORK = "no_new_work"
    """A rework round after the ship claimed done, but its head is the one already in review:
    the round added nothing, so it stops instead of reshipping the same work."""
    CANCELLED = "cancelled"


class DecisionKind(StrEnum):
    """What happens after an outcome. Only ``SHIP`` moves an issue to its done state."""

    SHIP = "ship"
    CONTINUE = "continue"
    """Another attempt soon, with guidance built from the evidence (verify output, etc.)."""
    RETRY = "retry"
    """Another attempt after a failure backoff."""
    PAUSE = "pause"
    HALT = "halt"
    ABANDON = "abandon"
    """Preserve the work on an ``abandoned/`` branch, comment, leave the state to humans."""
    RELEASE = "release"
    """The issue left our hands (reconciliation or operator cancel): preserve work, stop."""


class HaltCategory(StrEnum):
    """Why a line or an issue stopped. Closed, so dashboards can group and operators search."""

    HALT_PRODUCTION = "halt_production"
    VERDICT_MISSING = "verdict_missing"
    VERDICT_INVALID = "verdict_invalid"
    VERDICT_UNKNOWN = "verdict_unknown"
    NO_PROGRESS = "no_progress"
    HOOK_TIMEOUT = "hook_timeout"
    HOOK_FAILED = "hook_failed"
    BUDGET_EXCEEDED = "budget_exceeded"
    QUOTA_WALL = "quota_wall"
    LOOP_DETECTED = "loop_detected"
    AGENT_ERROR = "agent_error"
    WORKSPACE_ERROR = "workspace_error"
    TRANSITION_REFUSED = "transition_refused"
    CONFIG_INVALID = "config_invalid"
    INFRASTRUCTURE = "infrastructure"
    """Hosts kept getting lost, or no agent slot freed in time: not the agent's doing."""
    TRACKER_ERROR = "tracker_error"
    """The tracker refuses a read the line or an issue needs (credentials, scope, payload)."""
    ORCHESTRATOR_ERROR = "orchestrator_error"
    """Jidoka's own code or activities failed unexpectedly; the error is in the halt."""
    ISSUE_LOST = "issue_lost"
    """An issue workflow ended without reporting how (failed, timed out)."""
    WORKFLOW_CHANGED = "workflow_changed"
    """WORKFLOW.md changed during an attempt that would otherwise have shipped."""
    DONE_WITHOUT_SHIP = "done_without_ship"
    """The tracker shows an issue done that Jidoka did not ship, while it was being worked on."""
    PROTECTED_PATHS = "protected_paths"
    """The work changes paths the agent may not change without a person's consent."""
    TESTS_WEAKENED = "tests_weakened"
    """The test ratchet: the work passes by weakening the tests."""
    CLOSING_KEYWORDS = "closing_keywords"
    """The work's commit messages would make the forge close other issues when it lands."""
    REVIEW_ROUNDS_CAP = "review_rounds_cap"
    """The change request still needs work after ``review.max_rounds`` rework rounds."""
    REVIEW_TOKENS_CAP = "review_tokens_cap"
    REVIEW_TIME_CAP = "review_time_cap"
    REVIEW_SAME_FAILURE = "review_same_failure"
    """The same check failed the same way after a rework round meant to fix it."""
    REVIEW_HEAD_MOVED = "review_head_moved"
    """The change request's head is not the one Jidoka shipped: someone else pushed to it."""
    REVIEW_REQUEST_GONE = "review_request_gone"
    REVIEW_MERGE_REFUSED = "review_merge_refused"
    """The forge refused the merge pinned to the shipped head (it moved, or it conflicts)."""
    REVIEW_NO_NEW_WORK = "review_no_new_work"
    """A rework round claimed done without a commit beyond the head already in review."""
    OTHER = "other"


JUDGE_STOP_CATEGORIES = frozenset(
    {HaltCategory.PROTECTED_PATHS, HaltCategory.TESTS_WEAKENED, HaltCategory.CLOSING_KEYWORDS}
)
"""The halts that hold work for a person's consent: ``decide accept`` answers them."""


class HaltSource(StrEnum):
    AGENT = "agent"
    ORCHESTRATOR = "orchestrator"
    OPERATOR = "operator"


class HaltScope(StrEnum):
    LINE = "line"
    ISSUE = "issue"


class Phase(StrEnum):
    """Where an issue workflow is now; mirrored in the ``JidokaPhase`` search attribute."""

    QUEUED = "queued"
    GATED = "gated"
    """Waiting for the line to be resumed (or for a rate-limit gate) before a new attempt."""
    PREPARING = "preparing"
    WAITING_FOR_SLOT = "waiting_for_slot"
    """Waiting for an agent slot on the issue's host; not agent time (``timeouts.slot_wait_s``)."""
    RUNNING_AGENT = "running_agent"
    VERIFYING = "verifying"
    SHIPPING = "shipping"
    IN_REVIEW = "in_review"
    """Shipped into review: watching the change request (checks, reviews, merge), holding no
    agent slot, until it is merged (then ``shipped``), closed, or needs a rework round."""
    BACKING_OFF = "backing_off"
    """Waiting for the next attempt (``retry_at`` in the status says when)."""
    PAUSED = "paused"
    HALTED = "halted"
    SHIPPED = "shipped"
    ABANDONED = "abandoned"
    RELEASED = "released"

    @property
    def is_final(self) -> bool:
        return self in _FINAL_PHASES

    @property
    def is_parked(self) -> bool:
        """Waiting on a human: it holds no agent slot and does not keep a line busy."""
        return self in (Phase.PAUSED, Phase.HALTED, Phase.IN_REVIEW)

    @property
    def concerns_the_line(self) -> bool:
        """The line acts on it: a parked issue holds no slot and a paused one is woken, a
        shipping one's move is its own, a backing-off one is in the retry queue, a final one is
        done. The other phases are progress only, shown live by the ``JidokaPhase`` search
        attribute: an issue does not signal its line for them."""
        return self in _LINE_PHASES


_FINAL_PHASES = frozenset({Phase.SHIPPED, Phase.ABANDONED, Phase.RELEASED})
_LINE_PHASES = _FINAL_PHASES | {
    Phase.PAUSED,
    Phase.HALTED,
    Phase.SHIPPING,
    Phase.IN_REVIEW,
    Phase.BACKING_OFF,
}


class LinePhase(StrEnum):
    STARTING = "starting"
    RUNNING = "running"
    HALTED = "halted"
    STOPPED = "stopped"


class TrackerKind(StrEnum):
    LOCAL = "local"
    GITHUB = "github"
    LINEAR = "linear"
    JIRA = "jira"
    GITLAB = "gitlab"


class AgentKind(StrEnum):
    COMMAND = "command"
    SCRIPTED = "scripted"
    CODEX = "codex"
    CLAUDE = "claude"


class OperatorDecision(StrEnum):
    """What an operator may decide for a halted issue (the ``decide`` update)."""

    RETRY = "retry"
    """Run the agent again (after a judge stop: the work is sent back, with the note)."""
    ABANDON = "abandon"
    ACCEPT = "accept"
    """After a ``protected_paths``, ``tests_weakened`` or ``closing_keywords`` stop only: a
    person consents to what was held; the same work is judged again and may ship."""


class AgentStop(StrEnum):
    """How an agent session ended, as the supervisor saw it (before any evidence is read)."""

    EXITED = "exited"
    """The process exited, or a protocol agent completed its turns."""
    FAILED = "failed"
    """A protocol agent reported failure (Codex turn ``failed``, Claude ``is_error``)."""
    TURN_LIMIT = "turn_limit"
    PROGRESS_STALL = "progress_stall"
    SILENCE_STALL = "silence_stall"
    WALL_CLOCK = "wall_clock"
    TOKEN_BUDGET = "token_budget"
    FIRST_COMMIT_BUDGET = "first_commit_budget"
    ISSUE_WALL_TIME = "issue_wall_time"
    RATE_LIMITED = "rate_limited"
    UNAVAILABLE = "unavailable"
    """Could not start, not installed, not logged in."""
    PROMPT_INVALID = "prompt_invalid"
    SLOT_TIMEOUT = "slot_timeout"
    """No agent slot on this host within ``timeouts.slot_wait_s``: the agent never started."""
    CANCELLED = "cancelled"
    WORKER_SHUTDOWN = "worker_shutdown"
    """The worker was stopped (SIGTERM) and its grace period ran out: the agent was killed."""


class ReconcileAction(StrEnum):
    KEEP = "keep"
    CANCEL_AND_CLEAN = "cancel_and_clean"
    CANCEL_KEEP_WORKSPACE = "cancel_keep_workspace"
    WAKE_PAUSED = "wake_paused"
    DONE_WITHOUT_SHIP = "done_without_ship"
    """The tracker says done while Jidoka was working on the issue and shipped nothing: the
    line halts, the work is kept, and the tracker hears it."""
    REVIEW_WATCHED = "review_watched"
    """The issue is in review and watches its change request itself: the line only forwards
    a tracker state it had not seen yet (``review_changed``), so a person's move on the board
    is read at once instead of at the next review poll."""


class HookName(StrEnum):
    AFTER_CREATE = "after_create"
    BEFORE_RUN = "before_run"
    AFTER_RUN = "after_run"
    BEFORE_REMOVE = "before_remove"
    VERIFY = "verify"


class TestStatus(StrEnum):
    """One test's result in a machine-readable report (JUnit XML)."""

    __test__ = False  # not a pytest test class, whatever its name

    PASSED = "passed"
    FAILED = "failed"
    """A failure or an error."""
    SKIPPED = "skipped"
