"""The five whys: an issue's history, told as the chain of attempts, evidence and decisions that
led to where it is, ending at the rule that decided. Pure: the CLI decodes the history into
these records; this module only tells the story (and is tested without Temporal)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import assert_never

from pydantic import BaseModel

from cli.money import attempt_cost_text, attempts_total_text, currency_of
from jidoka import ratchet
from jidoka.config import PricingConfig
from jidoka.cost import attempt_cost
from jidoka.models import (
    AgentRunResult,
    Decision,
    Evidence,
    HaltRecord,
    HookResult,
    Issue,
    IssueCounters,
    WorkspaceInfo,
)
from jidoka.outcomes import DecisionKind, HaltCategory, HaltScope, HaltSource, Outcome, Phase
from jidoka.payloads import (
    AnswerRequest,
    CancelRequest,
    DecideRequest,
    HaltRequest,
    HookInput,
    IssueResult,
    PreserveResult,
    PushResult,
    ResumeRequest,
    ReviewChanged,
    TransitionInput,
    TransitionResult,
)
from jidoka.policy import JUDGE_STOPS, count_outcome
from jidoka.review import ChangeRequest, CheckState, RequestState, ReviewVerdict, approvers


@dataclass(frozen=True)
class ActivityRecord:
    at: datetime
    name: str
    input: BaseModel | None = None
    result: BaseModel | str | bool | None = None
    failure: str | None = None


@dataclass(frozen=True)
class DecisionRecord:
    at: datetime
    attempt: int
    outcome: Outcome
    decision: Decision


@dataclass(frozen=True)
class MessageRecord:
    at: datetime
    name: str
    payload: BaseModel | None
    kind: str = "signal"


@dataclass(frozen=True)
class TimerRecord:
    at: datetime
    seconds: float
    summary: str = ""
    cut_short_after: float | None = None
    """Set when the workflow cancelled the timer (a signal woke it): how long it waited."""


@dataclass(frozen=True)
class HaltedRecord:
    """The issue entered the halted phase (its ``JidokaHalted`` search attribute was set). The
    history keeps no halt of its own for a stop the orchestrator made without a decision (a
    review cap, a tracker error): the story finds it in the issue's ``halts``."""

    at: datetime


@dataclass(frozen=True)
class ConfigRecord:
    """The WORKFLOW.md the issue loaded (at its start, and again before an attempt): what its
    attempts were priced with."""

    at: datetime
    pricing: PricingConfig | None
    model: str | None
    """The model the agent runs, as WORKFLOW.md names it (``WorkflowConfig.agent_model``)."""


Record = ActivityRecord | DecisionRecord | MessageRecord | TimerRecord | HaltedRecord | ConfigRecord


@dataclass
class Story:
    workflow_id: str
    url: str
    records: list[Record] = field(default_factory=list[Record])
    result: IssueResult | None = None
    phase: Phase | None = None
    """Current phase when the workflow still runs (from the status query or search attribute)."""
    halts: list[HaltRecord] = field(default_factory=list[HaltRecord])
    """The issue's halts, oldest first (from its status query, or its result once it ended)."""
    review_waiting: str | None = None
    """What the review watch waits for, when it still runs (from the status query)."""
    counters: IssueCounters | None = None
    """The issue's counters (tokens, money), from its result or its status query."""


def _agent_line(agent: AgentRunResult, priced: ConfigRecord | None = None) -> str:
    """What the agent did; on a priced line, what it cost (``priced``: the config in force)."""
    code = f" (exit {agent.exit_code})" if agent.exit_code is not None else ""
    waited = f" (after waiting {agent.slot_wait_s:.1f}s for a slot)" if agent.slot_wait_s else ""
    tokens = f"{agent.usage.total_tokens:,} tokens"
    if not agent.usage_reported:
        tokens = "tokens not reported"
    if priced is not None and priced.pricing is not None:
        cost = attempt_cost(agent.usage, agent.usage_reported, priced.pricing, priced.model)
        tokens += ", " + attempt_cost_text(
            cost, priced.pricing.currency, usage_reported=agent.usage_reported, model=priced.model
        )
    return (
        f"agent: {agent.stop.value}{code} after {agent.duration_s:.1f}s{waited}, "
        f"{tokens} — {agent.detail}".rstrip(" —")
    )


@dataclass
class _Spent:
    """What the story's attempts cost, as it told them."""

    tokens: int = 0
    attempts: int = 0
    cost: float = 0.0
    unknown: int = 0


def _spent_line(story: Story, spent: _Spent, priced: ConfigRecord | None) -> str | None:
    """The issue's total: its counters when the story has them (what its budgets counted),
    else the sum of the attempts told."""
    counters = story.counters
    if counters is not None:
        spent = _Spent(
            tokens=counters.tokens.total_tokens,
            attempts=counters.attempts,
            cost=counters.cost,
            unknown=counters.cost_unknown,
        )
    if not spent.attempts and not spent.tokens:
        return None
    line = f"Spent: {spent.tokens:,} tokens over {spent.attempts} attempt(s)"
    if priced is not None and priced.pricing is not None:
        money = attempts_total_text(spent.cost, spent.unknown, currency_of(priced.pricing))
        line += f"; cost {money}"
    return line + "."


def _charges(decisions: list[DecisionRecord]) -> str | None:
    """Which cap each failed attempt was charged to: the agent's, or the infrastructure's."""
    counters = IssueCounters()
    for record in decisions:
        counters = count_outcome(counters, record.outcome)
    if not counters.failures and not counters.infra_failures:
        return None
    return (
        f"Charged: {counters.failures} failed attempt(s) to the agent (budgets.max_attempts), "
        f"{counters.infra_failures} lost to the infrastructure (budgets.max_infra_failures, "
        "never the agent's)"
    )


def _evidence_line(evidence: Evidence) -> str:
    reading = evidence.verdict
    if reading.verdict is not None:
        verdict = f"verdict {reading.verdict.verdict}"
    elif reading.error:
        verdict = f"verdict file rejected ({reading.error})"
    else:
        verdict = "no verdict file"
    git = evidence.git
    tree = (
        "clean tree"
        if git.uncommitted_count == 0
        else f"{git.uncommitted_count} uncommitted path(s)"
    )
    return (
        f"evidence: {verdict}; {git.commits_ahead} commit(s) on {git.branch} beyond "
        f"{git.base_sha[:10]}; net diff {git.diff.files_changed} file(s) "
        f"+{git.diff.insertions}/-{git.diff.deletions}; {tree}"
    )


def _hook_line(hook: HookResult) -> str:
    if hook.timed_out:
        state = "timed out"
    elif hook.ok:
        state = "passed"
    else:
        state = f"failed (exit {hook.exit_code})"
    tail = hook.output_tail.strip().splitlines()[-1:] if hook.output_tail.strip() else []
    return f"{hook.name}: {state}" + (f" — {tail[0][:160]}" if tail and not hook.ok else "")


def _judge_lines(evidence: Evidence) -> list[str]:
    """The protected paths an attempt changed and what the ratchet found, one line each."""
    lines = [
        f"  protected path changed: {change.path} ({change.glob})"
        for change in evidence.git.protected
    ]
    more = evidence.git.protected_count - len(evidence.git.protected)
    if more > 0:
        lines.append(f"  protected paths changed: {more} more")
    return lines


def _tests_lines(hook: HookResult) -> list[str]:
    if hook.tests is None:
        return []
    return [f"  tests: {ratchet.summary(hook.tests)}"] + [
        f"  test ratchet: {finding}" for finding in ratchet.findings(hook.tests)
    ]


# -- after the ship: the review loop ------------------------------------------------------------

_ROUND = re.compile(r"rework round (\d+): ")


def _rework_round(decision: Decision) -> tuple[int, str] | None:
    """A rework round's decision (``workflows/issue.py`` writes its reason as "rework round N:
    what to fix"): N and what to fix, or None for any other decision."""
    found = _ROUND.match(decision.reason)
    if decision.kind is not DecisionKind.CONTINUE or found is None:
        return None
    return int(found.group(1)), decision.reason[found.end() :]


def _changes_requested_by(request: ChangeRequest) -> list[str]:
    """Who requests changes on the change request's head, as things stand (each reviewer's
    latest approving or blocking verdict on that head; a dismissal clears it)."""
    latest: dict[str, ReviewVerdict] = {}
    for review in sorted(request.reviews, key=lambda r: r.submitted_at):
        if review.commit_sha != request.head_sha:
            continue
        match review.verdict:
            case ReviewVerdict.APPROVED | ReviewVerdict.CHANGES_REQUESTED:
                latest[review.author] = review.verdict
            case ReviewVerdict.DISMISSED:
                latest.pop(review.author, None)
            case ReviewVerdict.COMMENTED:
                pass
            case _:
                assert_never(review.verdict)
    return sorted(a for a, v in latest.items() if v is ReviewVerdict.CHANGES_REQUESTED)


def _request_line(request: ChangeRequest) -> str:
    """One reading of the change request, in one line: its state and head, then (open) its
    checks, reviews, comments and mergeability."""
    head = request.head_sha[:12]
    match request.state:
        case RequestState.MERGED:
            return f"change request read: merged at {head}"
        case RequestState.CLOSED:
            return f"change request read: closed unmerged at {head}"
        case RequestState.GONE:
            return "change request read: gone (the forge no longer shows it)"
        case RequestState.OPEN:
            pass
        case _:
            assert_never(request.state)
    parts = [f"open at {head}"]
    checks = request.checks
    if checks:
        failing = [c.name for c in checks if c.state is CheckState.FAILED]
        pending = sum(1 for c in checks if c.state is CheckState.PENDING)
        text = f"{len(failing)} of {len(checks)} check(s) failing"
        text += f" ({', '.join(failing)})" if failing else ""
        text += f", {pending} pending" if pending else ""
        parts.append(text)
    else:
        parts.append("no checks")
    approved = approvers(request)
    if approved:
        parts.append("approved by " + ", ".join(approved))
    blocking = _changes_requested_by(request)
    if blocking:
        parts.append("changes requested by " + ", ".join(blocking))
    parts.append(f"{len(request.comments)} review comment(s)")
    if request.mergeable is None:
        parts.append("mergeability not computed yet")
    elif request.mergeable:
        parts.append("mergeable")
    else:
        files = len(request.conflicting_files)
        parts.append(f"conflicts with the base ({files} file(s))" if files else "conflicts")
    return "change request read: " + "; ".join(parts)


def _timer_line(timer: TimerRecord) -> str:
    what = timer.summary or "timer"
    if timer.cut_short_after is None:
        return f"  waited {timer.seconds:.0f}s ({what})"
    waited = timer.cut_short_after
    return (
        f"  waited {waited:.0f}s" if waited >= 10 else f"  waited {waited:.1f}s"
    ) + f" of {timer.seconds:.0f}s ({what}), woken early"


def _review_changed_line(changed: ReviewChanged) -> str:
    line = f"  review_changed from {changed.source}"
    details = [f"state '{changed.state}'"] if changed.state else []
    details += [changed.url] if changed.url else []
    return line + (f": {', '.join(details)}" if details else "")


def _halt_at(halts: list[HaltRecord], used: set[int], at: datetime) -> HaltRecord | None:
    """The halt the issue entered at ``at``: the latest one not told yet that was made by
    then (a halt is stamped with the workflow's time, which precedes its events')."""
    found: int | None = None
    for index, halt in enumerate(halts):
        if index not in used and halt.at <= at:
            found = index
    if found is None:
        return None
    used.add(found)
    return halts[found]


def _halt_rule(category: HaltCategory) -> str | None:
    """The setting that capped the review loop, for the halts it makes without a decision."""
    caps = "(docs/review.md#caps-and-the-andon)"
    match category:
        case HaltCategory.REVIEW_ROUNDS_CAP:
            return f"review.max_rounds {caps}"
        case HaltCategory.REVIEW_TOKENS_CAP:
            return f"review.max_tokens {caps}"
        case HaltCategory.REVIEW_TIME_CAP:
            return f"review.max_time {caps}"
        case HaltCategory.REVIEW_SAME_FAILURE:
            return f"review: the same failure after a rework round stops the loop {caps}"
        case HaltCategory.REVIEW_HEAD_MOVED:
            return f"review: only the head Jidoka shipped is judged as its work {caps}"
        case HaltCategory.REVIEW_REQUEST_GONE:
            return f"review: a change request the forge no longer shows stops the loop {caps}"
        case HaltCategory.REVIEW_MERGE_REFUSED:
            return f"review.merge: auto merges pinned to the shipped head {caps}"
        case HaltCategory.REVIEW_NO_NEW_WORK:
            return f"review: a rework round must add work {caps}"
        case (
            HaltCategory.HALT_PRODUCTION
            | HaltCategory.VERDICT_MISSING
            | HaltCategory.VERDICT_INVALID
            | HaltCategory.VERDICT_UNKNOWN
            | HaltCategory.NO_PROGRESS
            | HaltCategory.HOOK_TIMEOUT
            | HaltCategory.HOOK_FAILED
            | HaltCategory.BUDGET_EXCEEDED
            | HaltCategory.QUOTA_WALL
            | HaltCategory.LOOP_DETECTED
            | HaltCategory.AGENT_ERROR
            | HaltCategory.WORKSPACE_ERROR
            | HaltCategory.TRANSITION_REFUSED
            | HaltCategory.CONFIG_INVALID
            | HaltCategory.INFRASTRUCTURE
            | HaltCategory.TRACKER_ERROR
            | HaltCategory.ORCHESTRATOR_ERROR
            | HaltCategory.ISSUE_LOST
            | HaltCategory.WORKFLOW_CHANGED
            | HaltCategory.DONE_WITHOUT_SHIP
            | HaltCategory.PROTECTED_PATHS
            | HaltCategory.TESTS_WEAKENED
            | HaltCategory.CLOSING_KEYWORDS
            | HaltCategory.OTHER
        ):
            return None
        case _:
            assert_never(category)


def _is_watch_stop(category: HaltCategory) -> bool:
    """A halt that stopped the watch of the change request (a retry watches again), as
    opposed to one inside a rework round (a retry runs the round again)."""
    rule = _halt_rule(category)
    return rule is not None and category is not HaltCategory.REVIEW_NO_NEW_WORK


@dataclass
class _Review:
    """What the story saw of the review loop."""

    url: str | None = None
    reading: ChangeRequest | None = None
    rounds: int = 0
    merged_by_jidoka: bool = False
    watching: bool = False
    """A ``Review:`` heading was written for the current watch."""
    read_line: int | None = None
    """The index of the last reading's line while only the watch's waits followed it."""
    read_count: int = 0
    quiet: set[int] = field(default_factory=set[int])
    """Indexes of the watch's waits (timers, wake-ups): dropped between readings alike."""
    waits_from: int | None = None
    """Before the watch's first reading: the index of its first wait (the heading goes there)."""


def _tell_reading(lines: list[str], seen: _Review, request: ChangeRequest, at: datetime) -> None:
    """A reading of the change request; readings alike in a row (a watch of days polls
    hundreds of times) are told once, with their count."""
    text = "  " + _request_line(request)
    last = seen.read_line
    if (
        last is not None
        and lines[last].startswith(text)
        and all(i in seen.quiet for i in range(last + 1, len(lines)))
    ):
        del lines[last + 1 :]
        seen.read_count += 1
        lines[last] = (
            f"{text} ({seen.read_count} readings alike, the last at {at.isoformat(timespec='seconds')})"
        )
    else:
        if not seen.watching:
            where = len(lines) if seen.waits_from is None else seen.waits_from
            lines.insert(where, f"Review: the change request {request.url}")
            seen.quiet = {i + 1 if i >= where else i for i in seen.quiet}
            seen.watching, seen.waits_from = True, None
        lines.append(text)
        seen.read_line, seen.read_count = len(lines) - 1, 1
    seen.quiet = {i for i in seen.quiet if i < len(lines)}
    seen.url, seen.reading = request.url, request


@dataclass
class _LineStop:
    at: datetime
    halt: HaltRequest | None
    """None for a resume whose halt is not in this history."""
    resume: ResumeRequest | None = None


@dataclass
class _LineStops:
    """The line-wide halts and resumes the line sent this issue (every running issue gets
    them): context, not the issue's own story, so told once, after it, one line per stop."""

    stops: list[_LineStop] = field(default_factory=list[_LineStop])

    def halted(self, at: datetime, halt: HaltRequest) -> None:
        last = self.stops[-1] if self.stops else None
        if last is not None and last.resume is None and last.halt == halt:
            return  # the same stop sent again
        self.stops.append(_LineStop(at=at, halt=halt))

    def resumed(self, at: datetime, resume: ResumeRequest) -> None:
        last = self.stops[-1] if self.stops else None
        if last is not None and last.resume is None:
            last.resume = resume
        else:  # its halt came before this history (or after: the broadcasts can cross)
            self.stops.append(_LineStop(at=at, halt=None, resume=resume))

    def lines(self, identifier: str | None) -> list[str]:
        if not self.stops:
            return []
        out = ["Meanwhile on the line (line-wide stops, not this issue's own unless said):"]
        for stop in self.stops:
            when = stop.at.isoformat(timespec="seconds")
            text = f"  {when} " + (
                _line_halt_text(stop.halt, identifier)
                if stop.halt
                else "the line was halted (its halt is not in this history)"
            )
            if stop.resume is not None:
                who = stop.resume.operator or "an operator"
                cause = stop.resume.root_cause or "(no root cause)"
                text += f"; resumed by {who}: {cause}"
            else:
                text += "; not resumed while this history ran"
            out.append(text)
        return out


def _line_halt_text(halt: HaltRequest, identifier: str | None) -> str:
    what = f"{halt.category.value} by {halt.source.value}"
    if halt.issue_identifier is not None and halt.issue_identifier == identifier:
        return f"the line halted for this issue's own halt ({what}, told above)"
    if halt.issue_identifier is not None:
        return f"the line halted for another issue, {halt.issue_identifier} ({what}): {halt.reason}"
    if halt.source is HaltSource.OPERATOR:
        who = f"operator {halt.operator}" if halt.operator else "an operator"
        return f"the line halted by {who}: {halt.reason}"
    return f"the line halted ({what}): {halt.reason}"


def tell(story: Story) -> str:
    """The chain, in plain words."""
    lines: list[str] = []
    title = ""
    attempt_open = 0
    last_decision: DecisionRecord | None = None
    last_evidence: Evidence | None = None
    decisions: list[DecisionRecord] = []
    seen = _Review()
    halts_told: set[int] = set()
    halt_explained = False
    """A decision or a halt signal already told why the next halt happens."""
    identifier: str | None = None
    priced: ConfigRecord | None = None
    """The WORKFLOW.md in force: what the next attempt is priced with."""
    spent = _Spent()
    line_stops = _LineStops()
    for record in story.records:
        told = len(lines)
        quiet = False
        match record:
            case ConfigRecord():
                priced = record
            case ActivityRecord(name="tracker_fetch_issue", result=Issue() as issue) if not title:
                title = f'{issue.identifier} "{issue.title}"'
                identifier = issue.identifier
            case ActivityRecord(name="prepare_workspace", result=WorkspaceInfo() as ws):
                attempt_open += 1
                seen.watching = False
                lines.append(
                    f"Attempt {attempt_open} (workspace {ws.path}, branch {ws.branch}, base {ws.base_sha[:10]}):"
                )
            case ActivityRecord(name="run_agent", result=AgentRunResult() as agent):
                lines.append("  " + _agent_line(agent, priced))
                spent.attempts += 1
                spent.tokens += agent.usage.total_tokens
                pricing = priced.pricing if priced is not None else None
                model = priced.model if priced is not None else None
                cost = attempt_cost(agent.usage, agent.usage_reported, pricing, model)
                if cost is None:
                    spent.unknown += 1
                else:
                    spent.cost += cost
            case ActivityRecord(
                name="run_hook", input=HookInput() as hook_input, result=HookResult() as hook
            ):
                if hook.ran:
                    lines.append(f"  {hook_input.hook.value} hook: " + _hook_line(hook))
                    lines += _tests_lines(hook)
            case ActivityRecord(name="collect_evidence", result=Evidence() as evidence):
                last_evidence = evidence
                lines.append("  " + _evidence_line(evidence))
                lines += _judge_lines(evidence)
            case ActivityRecord(
                name="tracker_transition",
                input=TransitionInput() as move,
                result=TransitionResult(),
            ):
                lines.append(
                    f"Tracker: moved from '{move.expected_state}' to '{move.target_state}'"
                    + (" with the evidence comment" if move.evidence else "")
                )
            case ActivityRecord(
                name="tracker_transition",
                input=None,
                result=TransitionResult(moved_from=str() as moved_from) as moved,
            ):
                lines.append(
                    f"Tracker: moved from '{moved_from}' to '{moved.issue.state}'"
                    + (" with the evidence comment" if moved.with_evidence else "")
                )
            case ActivityRecord(name="push_branch", result=PushResult() as pushed):
                lines.append(f"  pushed {pushed.sha[:10]} to {pushed.remote}")
            case ActivityRecord(name="preserve_work", result=PreserveResult() as kept):
                lines.append(f"Work preserved: {kept.branch or 'nothing to keep'} ({kept.detail})")
            case ActivityRecord(name="forge_read", result=ChangeRequest() as request):
                _tell_reading(lines, seen, request, record.at)
                told = len(lines)  # it keeps its own account of the watch's lines
            case ActivityRecord(name="forge_merge", result=bool() as merged):
                seen.merged_by_jidoka = seen.merged_by_jidoka or merged
                lines.append(
                    "  merge pinned to the shipped head: "
                    + ("merged" if merged else "refused by the forge")
                )
            case ActivityRecord(name="forge_read", failure=str() as failure):
                lines.append(f"  reading the change request failed: {failure}")
            case ActivityRecord(name="forge_merge", failure=str() as failure):
                lines.append(f"  the merge failed: {failure}")
            case ActivityRecord(failure=str() as failure, name=name):
                lines.append(f"  {name} failed: {failure}")
            case DecisionRecord(decision=decision) if (
                rework := _rework_round(decision)
            ) is not None:
                last_decision = record
                decisions.append(record)
                seen.rounds += 1
                lines.append(
                    f"  decision: rework round {rework[0]} — {rework[1]} [rule: {decision.rule}]"
                )
            case DecisionRecord():
                last_decision = record
                decisions.append(record)
                halt_explained = record.decision.kind is DecisionKind.HALT
                lines.append(
                    f"  outcome: {record.outcome.value} → decision: {record.decision.kind.value}"
                    f" — {record.decision.reason} [rule: {record.decision.rule}]"
                )
            case TimerRecord() as timer:
                quiet = True
                lines.append(_timer_line(timer))
            case HaltedRecord(at=at):
                halt = _halt_at(story.halts, halts_told, at)
                if halt_explained:
                    pass
                elif halt is not None:
                    lines.append(
                        f"Halted ({halt.category.value}) by {halt.source.value}: {halt.reason}"
                    )
                else:
                    lines.append("Halted (the issue's status no longer lists why)")
                halt_explained = False
            case MessageRecord(name="halt", payload=HaltRequest(scope=HaltScope.LINE) as halt):
                line_stops.halted(record.at, halt)
            case MessageRecord(
                name="resume", payload=ResumeRequest(scope=HaltScope.LINE) as resume
            ):
                line_stops.resumed(record.at, resume)
            case MessageRecord(name="halt", payload=HaltRequest() as halt):
                who = halt.operator or halt.source.value
                halt_explained = True
                lines.append(f"Signal halt from {who}: {halt.reason}")
            case MessageRecord(name="resume", payload=ResumeRequest() as resume):
                lines.append(
                    f"Signal resume from {resume.operator or 'the line'}: {resume.root_cause or '(no root cause)'}"
                )
            case MessageRecord(name="decide", payload=DecideRequest() as decide):
                lines.append(
                    f"Operator {decide.operator} decided {decide.decision.value}: {decide.root_cause}"
                    + (f" (note for the agent: {decide.note[:200]})" if decide.note else "")
                )
            case MessageRecord(name="answer", payload=AnswerRequest() as answer):
                lines.append(
                    f"Answer from {answer.operator or 'an operator'}: {answer.answer[:200]}"
                )
            case MessageRecord(name="cancel", payload=CancelRequest() as cancel):
                lines.append(f"Cancel from the {cancel.source.value}: {cancel.reason}")
            case MessageRecord(name="review_changed", payload=ReviewChanged() as changed):
                quiet = True
                lines.append(_review_changed_line(changed))
            case _:
                pass
        if len(lines) > told:
            if quiet:
                seen.quiet.update(range(told, len(lines)))
                if not seen.watching and seen.waits_from is None:
                    seen.waits_from = told
            else:
                seen.read_line = seen.waits_from = None
    header = f"{title or story.workflow_id} — {describe_state(story)}"
    meanwhile = line_stops.lines(identifier)
    if meanwhile:
        lines += ["", *meanwhile]
    ending = conclusion(story, last_decision, last_evidence, seen)
    charges = _charges(decisions)
    if charges:
        ending.append(charges)
    total = _spent_line(story, spent, priced)
    if total:
        ending.append(total)
    return "\n".join([header, "", *lines, "", *ending, f"Web UI: {story.url}"])


def describe_state(story: Story) -> str:
    if story.result is not None:
        return f"{story.result.phase.value} (tracker state '{story.result.tracker_state}')"
    return f"{story.phase.value if story.phase else 'running'}"


def _open_halt(story: Story, phase: Phase | None) -> HaltRecord | None:
    if phase is not Phase.HALTED or not story.halts or story.halts[-1].resolved_at is not None:
        return None
    return story.halts[-1]


def conclusion(
    story: Story,
    last: DecisionRecord | None,
    evidence: Evidence | None,
    review: _Review | None = None,
) -> list[str]:
    """Why it is where it is, ending at the rule of WORKFLOW.md that decided."""
    phase = story.result.phase if story.result else story.phase
    seen = review or _Review()
    halt = _open_halt(story, phase)
    if halt is not None and not (
        last is not None
        and last.decision.kind is DecisionKind.HALT
        and last.decision.halt_category is halt.category
    ):
        return _halt_conclusion(halt)
    if last is None:
        return [
            f"Why? No attempt has been judged yet (phase {phase.value if phase else 'unknown'})."
        ]
    decision = last.decision
    because = f"attempt {last.attempt} ended with {last.outcome.value}: {decision.reason}"
    if evidence is not None and last.outcome in (
        Outcome.SHIPPED,
        Outcome.NO_PROGRESS,
        Outcome.UNCOMMITTED_WORK,
        Outcome.VERIFY_FAILED,
    ):
        because += f" ({_evidence_line(evidence).removeprefix('evidence: ')})"
    review_lines: list[str] = []
    match decision.kind:
        case DecisionKind.SHIP if phase is Phase.IN_REVIEW:
            why = (
                f"Why in review? Because {because}. The change request is watched until it "
                "is merged, closed, or needs a rework round."
            )
            review_lines = _review_lines(seen, story.review_waiting)
        case DecisionKind.SHIP if phase is Phase.RELEASED:
            closed = seen.reading is not None and seen.reading.state is RequestState.CLOSED
            why = (
                f"Why released? Because the change request was closed unmerged ({seen.url}); "
                "the work stays on its branch."
                if closed
                else f"Why released? It was let go after {because}."
            )
        case DecisionKind.SHIP:
            why = f"Why shipped? Because {because}."
            if seen.reading is not None:
                who = "Jidoka" if seen.merged_by_jidoka else "a person"
                review_lines = [
                    f"Review: merged by {who} after {_rounds(seen.rounds)} ({seen.url})."
                ]
        case DecisionKind.HALT if last.outcome in JUDGE_STOPS:
            category = decision.halt_category.value if decision.halt_category else "halt"
            held_for = (
                "would close other issues behind the guarded transition"
                if last.outcome is Outcome.CLOSING_KEYWORDS
                else "would weaken its judge"
            )
            why = (
                f"Why halted ({category})? Because attempt {last.attempt} {held_for}. "
                "It waits for an operator to accept the change (with a root cause), send it "
                "back to the agent (retry, with a note) or abandon it."
            )
        case DecisionKind.HALT:
            category = decision.halt_category.value if decision.halt_category else "halt"
            why = (
                f"Why halted ({category})? Because {because}. "
                "It waits for an operator to retry or abandon it."
            )
        case DecisionKind.PAUSE:
            why = (
                f"Why paused? Because {because}. It waits for an answer, "
                "or for the issue to be moved back to an active state."
            )
        case DecisionKind.CONTINUE if (rework := _rework_round(decision)) is not None:
            why = (
                f"Why another attempt? Because the change request in review needs work: "
                f"rework round {rework[0]}, for {rework[1]}."
            )
        case DecisionKind.CONTINUE | DecisionKind.RETRY:
            why = f"Why another attempt? Because {because}."
        case DecisionKind.ABANDON | DecisionKind.RELEASE:
            why = f"Why stopped? Because {because}."
    if phase is Phase.ABANDONED:
        why = "Why abandoned? An operator decided so after: " + because + "."
    return [why, *_stop_lines(last), *review_lines, f"Rule: {decision.rule}"]


def _rounds(count: int) -> str:
    return f"{count} rework round{'' if count == 1 else 's'}"


def _review_lines(seen: _Review, waiting: str | None) -> list[str]:
    if seen.reading is None:
        return [f"Review: not read yet{f' ({waiting})' if waiting else ''}."]
    where = f"Review: {seen.url}, {_rounds(seen.rounds)} so far"
    return [
        f"{where}; last read: {_request_line(seen.reading).removeprefix('change request read: ')}."
    ] + ([f"Now: {waiting}."] if waiting else [])


def _halt_conclusion(halt: HaltRecord) -> list[str]:
    """A halt the orchestrator made without a decision (a review cap, a tracker error)."""
    category = halt.category
    why = f"Why halted ({category.value})? Because {halt.reason}."
    if _is_watch_stop(category):
        why += (
            " It waits for an operator: a retry watches the change request again with the "
            "review caps afresh, abandon lets it go with the work preserved."
        )
    else:
        why += " It waits for an operator to retry or abandon it."
    rule = _halt_rule(category) or (
        "no silent stop (docs/operations.md#no-silent-stop): what the orchestrator cannot do "
        "halts the issue"
    )
    return [why, f"Rule: {rule}"]


def _stop_lines(last: DecisionRecord) -> list[str]:
    """A judge stop, explained one finding per line."""
    if last.outcome not in JUDGE_STOPS:
        return []
    return [f"  {line}" for line in last.decision.reason.splitlines() if line.startswith("- ")]
