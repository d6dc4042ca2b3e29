"""After the ship: what a change request's state calls for. Pure policy, no I/O.

An issue whose work shipped with ``review:`` configured waits while its change request (a pull
request on GitHub; a person's edit on the local board) is reviewed. Each time the workflow reads
the change request (on its polling cadence, or when a webhook relay signals a change) it asks
:func:`next_step` what to do: wait, send the agent back to rework with exactly what to fix,
merge, close the loop, or stop the line with a named reason. Every loop here is capped: rounds,
tokens, time, and the same failure twice.

The forges report checks, reviews and comments in their own shapes; adapters translate them into
the models below (a snapshot of the change request at one moment).
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta
from enum import StrEnum
from typing import assert_never

from pydantic import Field

from jidoka.base import Model
from jidoka.config import MergeMode, ReviewConfig, TrackerStates
from jidoka.outcomes import HaltCategory

# ---------------------------------------------------------------------------------------------
# What a forge tells of a change request
# ---------------------------------------------------------------------------------------------


class RequestState(StrEnum):
    OPEN = "open"
    MERGED = "merged"
    CLOSED = "closed"
    """Closed without a merge."""
    GONE = "gone"
    """The forge no longer shows it (deleted, or the repository moved)."""


class CheckState(StrEnum):
    PENDING = "pending"
    """Queued or running."""
    PASSED = "passed"
    FAILED = "failed"
    """Failed, timed out, cancelled or needing action: anything that is not a pass."""
    SKIPPED = "skipped"
    """Neutral or skipped: counts as passed."""


class Check(Model):
    name: str
    state: CheckState
    summary: str = ""
    """The useful tail of its output, bounded by the adapter."""


class ReviewVerdict(StrEnum):
    APPROVED = "approved"
    CHANGES_REQUESTED = "changes_requested"
    COMMENTED = "commented"
    DISMISSED = "dismissed"


class Review(Model):
    author: str
    verdict: ReviewVerdict
    commit_sha: str
    """The head the reviewer looked at."""
    submitted_at: datetime


class ReviewComment(Model):
    id: str
    author: str
    body: str
    path: str | None = None
    line: int | None = None


class ChangeRequest(Model):
    """One reading of a change request."""

    url: str
    state: RequestState
    head_sha: str
    checks: list[Check] = Field(default_factory=list[Check])
    """The checks reported at ``head_sha``."""
    reviews: list[Review] = Field(default_factory=list[Review])
    comments: list[ReviewComment] = Field(default_factory=list[ReviewComment])
    """Review comments addressed to the agent (the forge's own bot excluded)."""
    mergeable: bool | None = None
    """None: the forge has not computed it yet."""
    conflicting_files: list[str] = Field(default_factory=list[str])


# ---------------------------------------------------------------------------------------------
# What the issue keeps of its review
# ---------------------------------------------------------------------------------------------


class ReviewLedger(Model):
    url: str
    """The change request (a pull request's page; the issue's own on the local board)."""
    shipped_head: str
    """The head Jidoka shipped (pushed, verified): the only head it judges as its own."""
    started_at: datetime
    round_tokens_from: int = 0
    """The issue's token count when the current rework round was sent: the round spends the
    rest."""
    rounds: int = 0
    tokens: int = 0
    addressed: list[str] = Field(default_factory=list[str])
    """Ids of the review comments already sent to the agent: never sent twice."""
    last_failure: str | None = None
    """The signature of the check failure the last rework round was sent for."""
    reworking: bool = False
    """A rework round was sent and has not shipped yet: the issue works, it does not watch."""
    caps_from_rounds: int = 0
    """``rounds`` when a person last retried a review stop: the rounds cap counts from here."""
    caps_from_tokens: int = 0
    """``tokens`` when a person last retried a review stop: the tokens cap counts from here."""

    @property
    def rounds_toward_cap(self) -> int:
        return self.rounds - self.caps_from_rounds

    @property
    def tokens_toward_cap(self) -> int:
        return self.tokens - self.caps_from_tokens


# ---------------------------------------------------------------------------------------------
# What to do
# ---------------------------------------------------------------------------------------------


class StepKind(StrEnum):
    WAIT = "wait"
    REWORK = "rework"
    MERGE = "merge"
    MERGED = "merged"
    """Merged (by Jidoka or a person): the tracker's done state, with the evidence."""
    CLOSED = "closed"
    """Closed without a merge: the issue is released, its work kept on its branch."""
    STOP = "stop"


class StopReason(StrEnum):
    """Why the review loop stops the line; each is a halt a person resolves."""

    ROUNDS_CAP = "review_rounds_cap"
    TOKENS_CAP = "review_tokens_cap"
    TIME_CAP = "review_time_cap"
    SAME_FAILURE = "review_same_failure"
    """The same check failed the same way after a rework round: the agent is not fixing it."""
    HEAD_MOVED = "review_head_moved"
    """The change request's head is not the one Jidoka shipped: a person pushed to it."""
    GONE = "review_request_gone"


class Feedback(Model):
    """Exactly what a rework round must fix: nothing else goes into its prompt."""

    failed_checks: list[Check] = Field(default_factory=list[Check])
    changes_requested_by: list[str] = Field(default_factory=list[str])
    comments: list[ReviewComment] = Field(default_factory=list[ReviewComment])
    conflicting_files: list[str] = Field(default_factory=list[str])

    @property
    def empty(self) -> bool:
        return not (
            self.failed_checks
            or self.changes_requested_by
            or self.comments
            or self.conflicting_files
        )


class Step(Model):
    kind: StepKind
    reason: str
    feedback: Feedback | None = None
    """For a rework round."""
    failure_signature: str | None = None
    """For a rework round sent for failing checks: kept to spot the same failure twice."""
    stop: StopReason | None = None
    merge_sha: str | None = None
    """For a merge: the head it must still be, or the forge refuses it."""


def next_step(
    request: ChangeRequest, ledger: ReviewLedger, config: ReviewConfig, now: datetime
) -> Step:
    """What one reading of the change request calls for. The order matters: how it ended
    first, then whether it is still ours, then the caps, then what needs fixing, then
    whether it is ready."""
    match request.state:
        case RequestState.MERGED:
            return Step(kind=StepKind.MERGED, reason="the change request was merged")
        case RequestState.CLOSED:
            return Step(kind=StepKind.CLOSED, reason="the change request was closed unmerged")
        case RequestState.GONE:
            return _stop(StopReason.GONE, "the forge no longer shows the change request")
        case RequestState.OPEN:
            pass
        case _:
            assert_never(request.state)
    if request.head_sha != ledger.shipped_head:
        return _stop(
            StopReason.HEAD_MOVED,
            f"its head is {request.head_sha[:12]}, not {ledger.shipped_head[:12]} as shipped: "
            "someone else pushed to it, so it is no longer judged as Jidoka's work",
        )
    if time_in_review_capped(ledger, config, now):
        return _stop(
            StopReason.TIME_CAP, f"in review longer than review.max_time ({config.max_time})"
        )
    feedback = _feedback(request, ledger, config)
    if not feedback.empty:
        signature = _failure_signature(feedback.failed_checks)
        if signature is not None and signature == ledger.last_failure:
            names = ", ".join(c.name for c in feedback.failed_checks)
            return _stop(
                StopReason.SAME_FAILURE,
                f"{names} failed the same way after a rework round",
            )
        if ledger.rounds_toward_cap >= config.max_rounds:
            return _stop(
                StopReason.ROUNDS_CAP,
                f"{ledger.rounds_toward_cap} rework round(s) done, review.max_rounds is "
                f"{config.max_rounds}",
            )
        if config.max_tokens is not None and ledger.tokens_toward_cap >= config.max_tokens:
            return _stop(
                StopReason.TOKENS_CAP,
                f"{ledger.tokens_toward_cap} tokens spent in review, review.max_tokens is "
                f"{config.max_tokens}",
            )
        return Step(
            kind=StepKind.REWORK,
            reason=_rework_reason(feedback),
            feedback=feedback,
            failure_signature=signature,
        )
    if not _green(request, config) or not _approved(request) or request.mergeable is not True:
        return Step(kind=StepKind.WAIT, reason=_waiting_for(request, config))
    match config.merge:
        case MergeMode.AUTO:
            return Step(
                kind=StepKind.MERGE,
                reason="approved and every required check passed at the shipped head",
                merge_sha=request.head_sha,
            )
        case MergeMode.MANUAL:
            return Step(
                kind=StepKind.WAIT, reason="ready: approved and green, for a person to merge"
            )
        case _:
            assert_never(config.merge)


def halt_category(reason: StopReason) -> HaltCategory:
    """The halt a review stop becomes (each its own category, for dashboards and search)."""
    match reason:
        case StopReason.ROUNDS_CAP:
            return HaltCategory.REVIEW_ROUNDS_CAP
        case StopReason.TOKENS_CAP:
            return HaltCategory.REVIEW_TOKENS_CAP
        case StopReason.TIME_CAP:
            return HaltCategory.REVIEW_TIME_CAP
        case StopReason.SAME_FAILURE:
            return HaltCategory.REVIEW_SAME_FAILURE
        case StopReason.HEAD_MOVED:
            return HaltCategory.REVIEW_HEAD_MOVED
        case StopReason.GONE:
            return HaltCategory.REVIEW_REQUEST_GONE
        case _:
            assert_never(reason)


def time_in_review_capped(ledger: ReviewLedger, config: ReviewConfig, now: datetime) -> bool:
    return now - ledger.started_at > timedelta(seconds=config.max_time_s())


def _stop(reason: StopReason, why: str) -> Step:
    return Step(kind=StepKind.STOP, reason=why, stop=reason)


def _required(request: ChangeRequest, config: ReviewConfig) -> list[Check]:
    if not config.required_checks:
        return list(request.checks)
    wanted = set(config.required_checks)
    return [c for c in request.checks if c.name in wanted]


def _green(request: ChangeRequest, config: ReviewConfig) -> bool:
    """Every required check reported at the head and passed (or skipped)."""
    checks = _required(request, config)
    reported = {c.name for c in checks}
    if any(name not in reported for name in config.required_checks):
        return False  # a required check that has not reported at this head yet
    return all(c.state in (CheckState.PASSED, CheckState.SKIPPED) for c in checks)


def _latest_verdicts(request: ChangeRequest) -> dict[str, ReviewVerdict]:
    """Each reviewer's latest approving or blocking verdict on the shipped head (a comment
    leaves an earlier verdict standing; a dismissal clears it)."""
    latest: dict[str, ReviewVerdict] = {}
    for review in sorted(request.reviews, key=lambda r: r.submitted_at):
        if review.commit_sha != request.head_sha:
            continue  # a review of another head is not a review of this work
        match review.verdict:
            case ReviewVerdict.APPROVED | ReviewVerdict.CHANGES_REQUESTED:
                latest[review.author] = review.verdict
            case ReviewVerdict.DISMISSED:
                latest.pop(review.author, None)
            case ReviewVerdict.COMMENTED:
                pass
            case _:
                assert_never(review.verdict)
    return latest


def approvers(request: ChangeRequest) -> list[str]:
    """Who approves the change request's head, as things stand."""
    return sorted(a for a, v in _latest_verdicts(request).items() if v is ReviewVerdict.APPROVED)


def _approved(request: ChangeRequest) -> bool:
    verdicts = _latest_verdicts(request).values()
    return ReviewVerdict.APPROVED in verdicts and ReviewVerdict.CHANGES_REQUESTED not in verdicts


def _feedback(request: ChangeRequest, ledger: ReviewLedger, config: ReviewConfig) -> Feedback:
    failed = [c for c in _required(request, config) if c.state is CheckState.FAILED]
    blocking = sorted(
        author
        for author, verdict in _latest_verdicts(request).items()
        if verdict is ReviewVerdict.CHANGES_REQUESTED
    )
    addressed = set(ledger.addressed)
    comments = [c for c in request.comments if c.id not in addressed]
    conflicts = list(request.conflicting_files) if request.mergeable is False else []
    if request.mergeable is False and not conflicts:
        conflicts = ["(the forge names no file)"]
    return Feedback(
        failed_checks=failed,
        changes_requested_by=blocking,
        comments=comments,
        conflicting_files=conflicts,
    )


def _failure_signature(failed: list[Check]) -> str | None:
    if not failed:
        return None
    text = "\n".join(f"{c.name}\0{c.summary}" for c in sorted(failed, key=lambda c: c.name))
    return hashlib.sha256(text.encode("utf-8", "replace")).hexdigest()[:16]


def _rework_reason(feedback: Feedback) -> str:
    parts: list[str] = []
    if feedback.failed_checks:
        parts.append("failing checks: " + ", ".join(c.name for c in feedback.failed_checks))
    if feedback.changes_requested_by:
        parts.append("changes requested by " + ", ".join(feedback.changes_requested_by))
    if feedback.comments:
        parts.append(f"{len(feedback.comments)} new review comment(s)")
    if feedback.conflicting_files:
        parts.append("conflicts with the base")
    return "; ".join(parts)


def _waiting_for(request: ChangeRequest, config: ReviewConfig) -> str:
    checks = _required(request, config)
    missing = [n for n in config.required_checks if n not in {c.name for c in checks}]
    pending = [c.name for c in checks if c.state is CheckState.PENDING]
    if missing or pending:
        return "waiting for checks: " + ", ".join([*pending, *missing])
    if request.mergeable is None:
        return "waiting for the forge to compute mergeability"
    return "waiting for an approving review"


def addressed_after(ledger: ReviewLedger, step: Step) -> ReviewLedger:
    """The ledger once ``step``'s rework round is sent: one more round, its comments never
    sent again, its failure remembered."""
    if step.kind is not StepKind.REWORK or step.feedback is None:
        return ledger
    return ledger.model_copy(
        update={
            "rounds": ledger.rounds + 1,
            "addressed": [*ledger.addressed, *(c.id for c in step.feedback.comments)],
            "last_failure": step.failure_signature,
            "reworking": True,
        }
    )


def reshipped(ledger: ReviewLedger, head: str, tokens: int) -> ReviewLedger:
    """The ledger once a rework round's work shipped as ``head``, spending ``tokens``: only
    that head is Jidoka's from now on, and reviews of the old one no longer count."""
    return ledger.model_copy(
        update={"shipped_head": head, "tokens": ledger.tokens + tokens, "reworking": False}
    )


def round_tokens_left(
    ledger: ReviewLedger | None, config: ReviewConfig | None, spent: int
) -> int | None:
    """Tokens a rework round's agent may still spend under ``review.max_tokens`` (None: no
    review cap applies now), ``spent`` being the issue's token count so far. The cap is also
    checked before a round is sent; this keeps one round from overshooting it."""
    if ledger is None or not ledger.reworking or config is None or config.max_tokens is None:
        return None
    in_review = ledger.tokens_toward_cap + max(spent - ledger.round_tokens_from, 0)
    return max(config.max_tokens - in_review, 0)


def caps_afresh(ledger: ReviewLedger, now: datetime) -> ReviewLedger:
    """The ledger once a person retried a review stop: the caps on rounds, tokens and time and
    the last failure start again (as a retry resets an issue's failure counters), while the
    totals keep counting for the evidence. The comments already sent stay sent, and the
    shipped head stays the only one judged as Jidoka's."""
    return ledger.model_copy(
        update={
            "caps_from_rounds": ledger.rounds,
            "caps_from_tokens": ledger.tokens,
            "started_at": now,
            "last_failure": None,
        }
    )


def review_state_problem(review: ReviewConfig, tracker: TrackerStates) -> str | None:
    """Why ``review.state`` cannot be where a change request waits, or None: it must be a
    state of its own, neither where issues end nor where the line works or parks them."""
    ends = [tracker.done_state, *tracker.terminal_states]
    state = review.state.casefold()
    if state in {s.casefold() for s in ends}:
        return (
            f"review.state {review.state!r} is a state where issues end; a change request in "
            "review waits in a state of its own (e.g. Human Review)"
        )
    others = [*tracker.active_states, *tracker.paused_states, *tracker.backlog_states]
    if state in {s.casefold() for s in others}:
        return (
            f"review.state {review.state!r} is already an active, paused or backlog state; a "
            "change request in review waits in a state of its own (e.g. Human Review)"
        )
    return None


# ---------------------------------------------------------------------------------------------
# The rework round's brief
# ---------------------------------------------------------------------------------------------

MAX_ITEMS = 20
"""Checks, comments or files listed in one brief; the rest are counted."""
MAX_OUTPUT_CHARS = 4_000
MAX_COMMENT_CHARS = 2_000
MAX_BRIEF_CHARS = 16_000
_CONTROL = str.maketrans({c: "?" for c in range(32) if chr(c) not in "\n\t"} | {127: "?"})


def rework_brief(feedback: Feedback, url: str) -> str:
    """What the agent is told for a rework round: exactly what to fix, quoted as it came
    (check output, reviewers' words), bounded, with control characters replaced. It becomes the
    continuation guidance of the round's prompt."""
    lines = [
        f"The work you shipped is in review ({_clean(url, 500)}) and needs another round.",
        "Fix exactly what follows on the same branch, commit, and write your verdict as before.",
    ]
    if feedback.failed_checks:
        lines += ["", "Failing checks, at the head you shipped:"]
        for check in feedback.failed_checks[:MAX_ITEMS]:
            lines.append(f"- {_clean(check.name, 200)}")
            output = _tail(_clean(check.summary, None), MAX_OUTPUT_CHARS)
            lines += [f"    {line}" for line in output.splitlines()] if output else []
        lines += _more(len(feedback.failed_checks), "check")
    if feedback.changes_requested_by:
        names = ", ".join(_clean(n, 100) for n in feedback.changes_requested_by[:MAX_ITEMS])
        lines += ["", f"Changes requested by: {names}."]
    if feedback.comments:
        lines += ["", "Review comments:"]
        for comment in feedback.comments[:MAX_ITEMS]:
            where = _clean(comment.path, 300) if comment.path else "(the change as a whole)"
            if comment.path and comment.line is not None:
                where += f":{comment.line}"
            body = _clean(comment.body, MAX_COMMENT_CHARS).replace("\n", "\n    ")
            lines.append(f"- {where} ({_clean(comment.author, 100)}): {body}")
        lines += _more(len(feedback.comments), "comment")
    if feedback.conflicting_files:
        files = ", ".join(_clean(f, 300) for f in feedback.conflicting_files[:MAX_ITEMS])
        lines += [
            "",
            f"The branch conflicts with the base in: {files}. Merge the base branch into yours "
            "and resolve the conflicts.",
        ]
    brief = "\n".join(lines)
    if len(brief) > MAX_BRIEF_CHARS:
        brief = brief[:MAX_BRIEF_CHARS] + "\n[... the rest is cut: see the change request]"
    return brief


def _clean(text: str, limit: int | None) -> str:
    cleaned = text.translate(_CONTROL)
    if limit is not None and len(cleaned) > limit:
        return cleaned[:limit] + " [...]"
    return cleaned


def _tail(text: str, limit: int) -> str:
    """The end of a log is where the failure is."""
    return text if len(text) <= limit else "[...]" + text[-limit:]


def _more(count: int, what: str) -> list[str]:
    extra = count - MAX_ITEMS
    return [f"- ... and {extra} more {what}(s), on the change request"] if extra > 0 else []
