# pyright: strict
"""The line's report: what it shipped, how fast, at what cost, and what stopped it (pure: no
I/O, no clock; ``jidoka report`` reads the facts, docs/report.md explains every figure).

The figures are the Toyota ones. **Throughput** and **lead time** (dispatch to done) say how
the line flows; **first-time-through** how often an issue shipped at its first attempt.
**Value** is the spend of the attempts that shipped; every other attempt is **waste**, named by
its outcome. **Waiting** is time, not tokens: issues halted or paused for a person, attempts
waiting for an agent slot, the line stopped. The **Pareto** of stops puts the few causes that
stop the line most at the front. A cost that is not known is said to be unknown, never zero.

One :class:`LineReport` is built from a list of :class:`IssueFacts` and the line's halts; the
HTML page and ``--json`` both render it, so they show the same figures.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import assert_never

from pydantic import Field

from jidoka.base import Model
from jidoka.cost import UNKNOWN_CURRENCY, Spend, money_text, spend_of
from jidoka.models import AttemptRecord, HaltRecord, IssueCounters, TokenUsage
from jidoka.outcomes import DecisionKind, HaltScope, Outcome, Phase
from jidoka.review import ReviewLedger

TOP = 5
"""Issues listed as the slowest and as the most expensive."""
SECONDS_PER_DAY = 86_400.0
_ROUND = 9


# --------------------------------------------------------------------------------------------
# The facts read from Temporal
# --------------------------------------------------------------------------------------------


class FactsSource(StrEnum):
    """Where an issue's facts were read."""

    RESULT = "result"
    """A closed issue workflow's result (the completion event of its latest run)."""
    STATUS = "status"
    """A running issue workflow's ``status`` query."""
    UNREAD = "unread"
    """Running, but no worker answered its ``status`` query: its figures so far are unknown."""
    NO_RESULT = "no_result"
    """Closed without a result (terminated, failed, timed out, cancelled): figures unknown."""


def has_figures(source: FactsSource) -> bool:
    """Whether the facts carry the issue's counters, attempts and halts."""
    match source:
        case FactsSource.RESULT | FactsSource.STATUS:
            return True
        case FactsSource.UNREAD | FactsSource.NO_RESULT:
            return False
        case _:
            assert_never(source)


def is_open(source: FactsSource) -> bool:
    """Whether the issue's workflow still runs."""
    match source:
        case FactsSource.STATUS | FactsSource.UNREAD:
            return True
        case FactsSource.RESULT | FactsSource.NO_RESULT:
            return False
        case _:
            assert_never(source)


class IssueFacts(Model):
    """What the report knows of one issue workflow."""

    identifier: str
    workflow_id: str
    source: FactsSource
    run_id: str | None = None
    url: str | None = None
    """The issue workflow in the Temporal Web UI."""
    title: str | None = None
    phase: Phase | None = None
    """None: not known (closed without a result)."""
    closed_as: str | None = None
    """Temporal's close status of a workflow that ended without a result (``terminated``...)."""
    started_at: datetime | None = None
    """When the issue was dispatched (its workflow started)."""
    finished_at: datetime | None = None
    counters: IssueCounters | None = None
    """None when the figures are unknown (see :class:`FactsSource`)."""
    attempts: list[AttemptRecord] = Field(default_factory=list[AttemptRecord])
    """The latest attempts the issue keeps (each with outcome, tokens, cost and time)."""
    halts: list[HaltRecord] = Field(default_factory=list[HaltRecord])
    review: ReviewLedger | None = None


class Window(Model):
    """The time the report covers, both ends included."""

    since: datetime
    until: datetime

    @property
    def days(self) -> float:
        return max((self.until - self.since).total_seconds(), 0.0) / SECONDS_PER_DAY

    def holds(self, moment: datetime) -> bool:
        return self.since <= moment <= self.until

    def overlap_s(self, start: datetime, end: datetime) -> float:
        """Seconds of ``[start, end]`` inside the window."""
        return max((min(end, self.until) - max(start, self.since)).total_seconds(), 0.0)


# --------------------------------------------------------------------------------------------
# The report
# --------------------------------------------------------------------------------------------


class CostTotal(Model):
    """A sum of money that says when part of it is not known."""

    amount: float | None
    """The whole sum; None (unknown, never zero) while any part of it is unknown."""
    known: float
    """The sum of the parts whose cost is known: a lower bound while any part is unknown."""
    known_attempts: int = 0
    unknown_attempts: int = 0
    """Attempts whose cost is unknown (no price for the model, no usage reported)."""
    unknown_issues: int = 0
    """Issues whose spend could not be read at all."""

    @classmethod
    def zero(cls) -> CostTotal:
        return cls(amount=0.0, known=0.0)

    @classmethod
    def of(
        cls, known: float, known_attempts: int, unknown_attempts: int, unknown_issues: int = 0
    ) -> CostTotal:
        known = round(known, _ROUND)
        whole = unknown_attempts == 0 and unknown_issues == 0
        return cls(
            amount=known if whole else None,
            known=known,
            known_attempts=known_attempts,
            unknown_attempts=unknown_attempts,
            unknown_issues=unknown_issues,
        )

    @classmethod
    def of_attempt(cls, cost: float | None) -> CostTotal:
        return cls.of(cost or 0.0, int(cost is not None), int(cost is None))

    def plus(self, other: CostTotal) -> CostTotal:
        return CostTotal.of(
            self.known + other.known,
            self.known_attempts + other.known_attempts,
            self.unknown_attempts + other.unknown_attempts,
            self.unknown_issues + other.unknown_issues,
        )

    def per(self, count: int) -> CostTotal:
        """The cost of one of ``count`` units (the unknown parts stay the whole's)."""
        known = round(self.known / count, _ROUND)
        return self.model_copy(
            update={"known": known, "amount": known if self.amount is not None else None}
        )

    @property
    def nothing_known(self) -> bool:
        return self.known_attempts == 0 and self.amount is None

    def text(self, currency: str | None) -> str:
        """``$1.23``; ``unknown``; ``≥ $1.23 (cost unknown for 2 attempts)``."""
        caveat = self.caveat()
        return f"{self.headline(currency)} ({caveat})" if caveat else self.headline(currency)

    def headline(self, currency: str | None) -> str:
        """``$1.23``; ``unknown``; ``≥ $1.23`` (a lower bound)."""
        if self.amount is not None:
            return money(self.amount, currency)
        if self.nothing_known:
            return "unknown"
        return f"≥ {money(self.known, currency)}"

    def caveat(self) -> str:
        """What is not known of a lower bound (``cost unknown for 2 attempts``); empty for a
        whole sum or one wholly unknown."""
        if self.amount is not None or self.nothing_known:
            return ""
        missing: list[str] = []
        if self.unknown_attempts:
            missing.append(plural(self.unknown_attempts, "attempt"))
        if self.unknown_issues:
            missing.append(plural(self.unknown_issues, "issue") + " not read")
        return f"cost unknown for {', '.join(missing)}"


def money(amount: float, currency: str | None) -> str:
    return money_text(amount, currency or UNKNOWN_CURRENCY)


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


class SpendFigures(Model):
    """Attempts, tokens, money and agent time of one kind of spend."""

    attempts: int = 0
    tokens: int = 0
    cost: CostTotal = Field(default_factory=CostTotal.zero)
    agent_seconds: float = 0.0

    def plus(self, other: SpendFigures) -> SpendFigures:
        return SpendFigures(
            attempts=self.attempts + other.attempts,
            tokens=self.tokens + other.tokens,
            cost=self.cost.plus(other.cost),
            agent_seconds=round(self.agent_seconds + other.agent_seconds, 3),
        )


class OutcomeSpend(Model):
    outcome: Outcome
    spend: SpendFigures


class SpendReport(Model):
    """Everything spent in the window: value, waste by outcome, and what no record classifies."""

    total: SpendFigures
    usage: TokenUsage
    """The tokens by kind (cached input included in input), as far as agents reported them."""
    value: SpendFigures
    """The attempts that shipped."""
    waste: SpendFigures
    """Every other attempt."""
    waste_by_outcome: list[OutcomeSpend]
    """Largest first (by tokens, then agent time)."""
    unclassified: SpendFigures
    """Spend no attempt record holds: an attempt still being judged, attempts older than the
    ones an issue keeps, or a result recorded before attempts were kept."""
    unknown_issues: int = 0
    """Issues whose spend could not be read (every figure above is then a lower bound)."""
    cost_per_shipped: CostTotal | None = None
    """The whole spend (waste included) divided by the issues shipped; None when none did."""


class Throughput(Model):
    shipped: int
    days: float
    per_day: float


class LeadTime(Model):
    """Dispatch to done, of the issues shipped in the window (seconds)."""

    count: int
    median_s: float | None = None
    p90_s: float | None = None
    """Nearest rank: the shortest lead time at least 90% of the issues did not exceed."""
    max_s: float | None = None


class FirstTimeThrough(Model):
    shipped: int
    first_time: int
    """Shipped with exactly one attempt (no retry, no continuation, no rework round)."""
    rate: float | None
    """``first_time / shipped``; None when nothing shipped."""


class Waiting(Model):
    """Time spent waiting, in seconds, inside the window."""

    halted_s: float
    """Issues halted, waiting for a person's decision (summed over issues)."""
    paused_s: float
    """Issues paused, waiting for answers (summed over issues)."""
    slot_wait_s: float
    """Attempts waiting for an agent slot on their host."""
    line_stopped_s: float | None
    """The line halted (its andon lock on: nothing new dispatched); None when its halts were
    not read."""


class ParetoBar(Model):
    label: str
    count: int
    share_pct: float
    cumulative_pct: float


class Stops(Model):
    """The stops of the window, each counted once."""

    total: int
    open: int
    """Stops nobody resolved yet."""
    by_category: list[ParetoBar]
    by_root_cause: list[ParetoBar]
    """The root causes people gave when they resumed (texts alike counted together)."""
    line_halts_read: bool


class IssueRow(Model):
    """One issue, with its figures over its whole life."""

    identifier: str
    workflow_id: str
    url: str | None
    title: str | None
    phase: Phase | None
    source: FactsSource
    closed_as: str | None = None
    started_at: datetime | None
    finished_at: datetime | None
    duration_s: float | None
    """Dispatch to its end, or to the window's end while it runs."""
    attempts: int | None
    tokens: int | None
    cost: CostTotal | None
    review_rounds: int | None = None
    stops: int = 0

    @property
    def status(self) -> str:
        if self.phase is not None:
            return self.phase.value
        return self.closed_as or self.source.value


class LineReport(Model):
    """The report of one line over one window: what the HTML page and ``--json`` show."""

    line: str
    generated_at: datetime
    window: Window
    currency: str | None
    """Of every amount (``pricing.currency``); None when the line's WORKFLOW.md was not read."""
    line_url: str | None = None
    issues_total: int
    open_issues: int
    unread_issues: int
    """Issues whose figures are unknown (no worker answered, or closed without a result)."""
    phases: dict[str, int]
    throughput: Throughput
    lead_time: LeadTime
    first_time_through: FirstTimeThrough
    spend: SpendReport
    waiting: Waiting
    stops: Stops
    slowest: list[IssueRow]
    most_expensive: list[IssueRow]
    issues: list[IssueRow]
    notes: list[str] = Field(default_factory=list[str])

    @property
    def empty(self) -> bool:
        return self.issues_total == 0

    def cost_text(self, cost: CostTotal) -> str:
        return cost.text(self.currency)


# --------------------------------------------------------------------------------------------
# Building it
# --------------------------------------------------------------------------------------------


def line_report(
    line: str,
    issues: Sequence[IssueFacts],
    line_halts: Sequence[HaltRecord] | None,
    window: Window,
    *,
    generated_at: datetime,
    currency: str | None = None,
    line_url: str | None = None,
) -> LineReport:
    """The report of ``line`` over ``window`` from the facts of its issues and its halts
    (None: the line's halts could not be read; its stops are then the issues' own)."""
    included = [f for f in issues if _active_in(f, window)]
    shipped = [
        f
        for f in included
        if f.phase is Phase.SHIPPED and f.finished_at is not None and window.holds(f.finished_at)
    ]
    spend = spend_report(included, window, len(shipped))
    rows = sorted((issue_row(f, window) for f in included), key=lambda r: r.identifier)
    return LineReport(
        line=line,
        generated_at=generated_at,
        window=window,
        currency=currency,
        line_url=line_url,
        issues_total=len(included),
        open_issues=sum(1 for f in included if is_open(f.source)),
        unread_issues=sum(1 for f in included if not has_figures(f.source)),
        phases=_phase_counts(rows),
        throughput=Throughput(
            shipped=len(shipped),
            days=round(window.days, 3),
            per_day=round(len(shipped) / window.days, 3) if window.days > 0 else 0.0,
        ),
        lead_time=lead_time(shipped),
        first_time_through=first_time_through(shipped),
        spend=spend,
        waiting=waiting(included, line_halts, window),
        stops=stops(included, line_halts, window),
        slowest=slowest(rows),
        most_expensive=most_expensive(rows),
        issues=rows,
        notes=_notes(included, line_halts),
    )


def _active_in(facts: IssueFacts, window: Window) -> bool:
    """Dispatched before the window ends, and not finished before it starts."""
    if facts.started_at is not None and facts.started_at > window.until:
        return False
    return facts.finished_at is None or facts.finished_at >= window.since


def lead_time(shipped: Sequence[IssueFacts]) -> LeadTime:
    times = sorted(
        (f.finished_at - f.started_at).total_seconds()
        for f in shipped
        if f.finished_at is not None and f.started_at is not None
    )
    if not times:
        return LeadTime(count=0)
    return LeadTime(
        count=len(times),
        median_s=round(statistics.median(times), 3),
        p90_s=round(nearest_rank(times, 0.9), 3),
        max_s=round(times[-1], 3),
    )


def nearest_rank(ordered: Sequence[float], fraction: float) -> float:
    """The value at rank ``ceil(fraction * n)`` of ``ordered`` (sorted, not empty)."""
    return ordered[max(math.ceil(fraction * len(ordered)), 1) - 1]


def first_time_through(shipped: Sequence[IssueFacts]) -> FirstTimeThrough:
    first = sum(1 for f in shipped if f.counters is not None and f.counters.attempts == 1)
    return FirstTimeThrough(
        shipped=len(shipped),
        first_time=first,
        rate=round(first / len(shipped), 4) if shipped else None,
    )


# -- spend ------------------------------------------------------------------------------------


def attempt_cost(attempt: AttemptRecord) -> float | None:
    """The attempt's cost; an attempt no agent ran for (the workspace failed, no slot freed)
    spent nothing, and one whose agent ran without a known price or usage is unknown."""
    if attempt.cost is None and attempt.agent_stop is None:
        return 0.0
    return attempt.cost


def attempt_spend(attempt: AttemptRecord) -> SpendFigures:
    return SpendFigures(
        attempts=1,
        tokens=attempt.tokens,
        cost=CostTotal.of_attempt(attempt_cost(attempt)),
        agent_seconds=attempt.agent_seconds,
    )


def unrecorded_spend(counters: IssueCounters, attempts: Sequence[AttemptRecord]) -> SpendFigures:
    """What the issue's counters hold beyond its attempt records."""
    costs = [attempt_cost(a) for a in attempts]
    extra_attempts = max(counters.attempts - len(attempts), 0)
    unknown = max(counters.cost_unknown - sum(1 for c in costs if c is None), 0)
    known = max(counters.cost - sum(c for c in costs if c is not None), 0.0)
    return SpendFigures(
        attempts=extra_attempts,
        tokens=max(counters.tokens.total_tokens - sum(a.tokens for a in attempts), 0),
        cost=CostTotal.of(
            known if known > 10**-_ROUND else 0.0, max(extra_attempts - unknown, 0), unknown
        ),
        agent_seconds=round(
            max(counters.agent_seconds - sum(a.agent_seconds for a in attempts), 0.0), 3
        ),
    )


def _usage_of(facts: IssueFacts, window: Window) -> TokenUsage:
    """Tokens by kind: the window's attempts that reported usage, and what the counters hold
    beyond the attempt records."""
    in_window = TokenUsage()
    recorded = TokenUsage()
    for attempt in facts.attempts:
        if attempt.usage is None:
            continue
        recorded = recorded.plus(attempt.usage)
        if window.holds(attempt.started_at):
            in_window = in_window.plus(attempt.usage)
    if facts.counters is None:
        return in_window
    whole = facts.counters.tokens
    beyond = TokenUsage(
        input_tokens=max(whole.input_tokens - recorded.input_tokens, 0),
        output_tokens=max(whole.output_tokens - recorded.output_tokens, 0),
        total_tokens=max(whole.total_tokens - recorded.total_tokens, 0),
        cached_input_tokens=max(whole.cached_input_tokens - recorded.cached_input_tokens, 0),
    )
    return in_window.plus(beyond)


def spend_report(included: Sequence[IssueFacts], window: Window, shipped: int) -> SpendReport:
    value = SpendFigures()
    waste = SpendFigures()
    unclassified = SpendFigures()
    by_outcome: dict[Outcome, SpendFigures] = {}
    usage = TokenUsage()
    unknown_issues = 0
    for facts in included:
        if facts.counters is None:
            unknown_issues += 1
            continue
        for attempt in facts.attempts:
            if not window.holds(attempt.started_at):
                continue
            spent = attempt_spend(attempt)
            if attempt.outcome is None:
                unclassified = unclassified.plus(spent)
                continue
            kind = spend_of(attempt.outcome)
            match kind:
                case Spend.VALUE:
                    value = value.plus(spent)
                case Spend.WASTE:
                    waste = waste.plus(spent)
                    by_outcome[attempt.outcome] = by_outcome.get(
                        attempt.outcome, SpendFigures()
                    ).plus(spent)
                case _:
                    assert_never(kind)
        unclassified = unclassified.plus(unrecorded_spend(facts.counters, facts.attempts))
        usage = usage.plus(_usage_of(facts, window))
    total = value.plus(waste).plus(unclassified)
    if unknown_issues:
        unread = CostTotal.of(0.0, 0, 0, unknown_issues)
        total = total.model_copy(update={"cost": total.cost.plus(unread)})
    return SpendReport(
        total=total,
        usage=usage,
        value=value,
        waste=waste,
        waste_by_outcome=[
            OutcomeSpend(outcome=outcome, spend=figures)
            for outcome, figures in sorted(
                by_outcome.items(),
                key=lambda item: (-item[1].tokens, -item[1].agent_seconds, item[0].value),
            )
        ],
        unclassified=unclassified,
        unknown_issues=unknown_issues,
        cost_per_shipped=total.cost.per(shipped) if shipped else None,
    )


# -- waiting ----------------------------------------------------------------------------------


def waiting(
    included: Sequence[IssueFacts], line_halts: Sequence[HaltRecord] | None, window: Window
) -> Waiting:
    halted = 0.0
    paused = 0.0
    slots = 0.0
    for facts in included:
        end_of_issue = facts.finished_at or window.until
        for halt in _unique(h for h in facts.halts if h.scope is HaltScope.ISSUE):
            halted += window.overlap_s(halt.at, halt.resolved_at or end_of_issue)
        paused += sum(window.overlap_s(start, end) for start, end in pauses(facts, window))
        slots += sum(a.slot_wait_s for a in facts.attempts if window.holds(a.started_at))
    return Waiting(
        halted_s=round(halted, 3),
        paused_s=round(paused, 3),
        slot_wait_s=round(slots, 3),
        line_stopped_s=None if line_halts is None else round(line_stopped_s(line_halts, window), 3),
    )


def pauses(facts: IssueFacts, window: Window) -> list[tuple[datetime, datetime]]:
    """Each pause for answers: from the attempt that asked until the next attempt starts, the
    issue ends, or (still paused) the window ends. A pause answered by an attempt that is still
    running has no record to end it yet, and is counted once that attempt is judged."""
    found: list[tuple[datetime, datetime]] = []
    attempts = sorted(facts.attempts, key=lambda a: a.started_at)
    for index, attempt in enumerate(attempts):
        if attempt.decision is None or attempt.decision.kind is not DecisionKind.PAUSE:
            continue
        start = attempt.ended_at or attempt.started_at
        if index + 1 < len(attempts):
            found.append((start, attempts[index + 1].started_at))
        elif facts.finished_at is not None:
            found.append((start, facts.finished_at))
        elif facts.phase is Phase.PAUSED:
            found.append((start, window.until))
    return found


def line_stopped_s(line_halts: Sequence[HaltRecord], window: Window) -> float:
    """The time the line was halted: the union of its halts' spans (a resume resolves every
    open halt at once, so they overlap)."""
    spans = sorted((h.at, h.resolved_at or window.until) for h in _unique(line_halts))
    total = 0.0
    current: tuple[datetime, datetime] | None = None
    for start, end in spans:
        if current is not None and start <= current[1]:
            current = (current[0], max(current[1], end))
            continue
        if current is not None:
            total += window.overlap_s(*current)
        current = (start, end)
    if current is not None:
        total += window.overlap_s(*current)
    return total


# -- stops ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Stop:
    """One stop of the line, however many records tell it."""

    category: str
    at: datetime
    resolved: bool
    root_cause: str | None


def _key(halt: HaltRecord) -> tuple[str, datetime, str, str | None]:
    return (halt.category.value, halt.at, halt.scope.value, halt.issue_identifier)


def _unique(halts: Iterable[HaltRecord]) -> list[HaltRecord]:
    """Each record once: a line-wide halt reaches every issue, and each keeps a copy."""
    seen: dict[tuple[str, datetime, str, str | None], HaltRecord] = {}
    for halt in halts:
        seen.setdefault(_key(halt), halt)
    return sorted(seen.values(), key=lambda h: h.at)


def stop_events(
    included: Sequence[IssueFacts], line_halts: Sequence[HaltRecord] | None
) -> list[Stop]:
    """Every stop once. An issue's halt is told twice: by the issue (scope ``issue``) and by
    the line it halted (scope ``line``, naming the issue, a moment later). The line's record
    that follows an issue's halt of the same category, before that issue's next one, is that
    halt's echo: one stop, resolved when the issue's halt is, its root cause the issue's if
    given, else the line's resume's."""
    records = _unique([*(line_halts or []), *(h for f in included for h in f.halts)])
    issue_halts = [h for h in records if h.scope is HaltScope.ISSUE]
    line_records = [h for h in records if h.scope is HaltScope.LINE]
    echoes = _echoes(issue_halts, line_records)
    found: list[Stop] = []
    for halt in issue_halts:
        echo = echoes.get(_key(halt))
        found.append(
            Stop(
                category=halt.category.value,
                at=halt.at,
                resolved=halt.resolved_at is not None,
                root_cause=halt.root_cause or (echo.root_cause if echo else None),
            )
        )
    echoed = {_key(e) for e in echoes.values()}
    found += [
        Stop(
            category=h.category.value,
            at=h.at,
            resolved=h.resolved_at is not None,
            root_cause=h.root_cause,
        )
        for h in line_records
        if _key(h) not in echoed
    ]
    return sorted(found, key=lambda s: s.at)


def _echoes(
    issue_halts: Sequence[HaltRecord], line_records: Sequence[HaltRecord]
) -> dict[tuple[str, datetime, str, str | None], HaltRecord]:
    """Issue halt key -> the line's record of the same stop."""
    matched: dict[tuple[str, datetime, str, str | None], HaltRecord] = {}
    groups: dict[tuple[str | None, str], list[HaltRecord]] = {}
    for halt in issue_halts:
        groups.setdefault((halt.issue_identifier, halt.category.value), []).append(halt)
    for (identifier, category), halts in groups.items():
        candidates = [
            h
            for h in line_records
            if h.issue_identifier == identifier and h.category.value == category
        ]
        ordered = sorted(halts, key=lambda h: h.at)
        for index, halt in enumerate(ordered):
            bound = ordered[index + 1].at if index + 1 < len(ordered) else None
            for candidate in candidates:
                if candidate.at < halt.at or (bound is not None and candidate.at >= bound):
                    continue
                matched[_key(halt)] = candidate
                candidates.remove(candidate)
                break
    return matched


def stops(
    included: Sequence[IssueFacts], line_halts: Sequence[HaltRecord] | None, window: Window
) -> Stops:
    events = [s for s in stop_events(included, line_halts) if window.holds(s.at)]
    causes = [s.root_cause for s in events if s.root_cause]
    return Stops(
        total=len(events),
        open=sum(1 for s in events if not s.resolved),
        by_category=pareto([s.category for s in events]),
        by_root_cause=pareto(causes, normal=normal_text),
        line_halts_read=line_halts is not None,
    )


def normal_text(text: str) -> str:
    """Root causes alike whatever their case, spacing or final punctuation."""
    return " ".join(text.split()).casefold().rstrip(" .!;:,")


def pareto(labels: Sequence[str], normal: Callable[[str], str] | None = None) -> list[ParetoBar]:
    """Counts by label, largest first, with each bar's share and the running share. With
    ``normal``, labels alike under it count together, shown as first written."""
    counts: dict[str, int] = {}
    shown: dict[str, str] = {}
    for label in labels:
        key = normal(label) if normal is not None else label
        counts[key] = counts.get(key, 0) + 1
        shown.setdefault(key, " ".join(label.split()))
    total = sum(counts.values())
    bars: list[ParetoBar] = []
    running = 0
    for key, count in sorted(
        counts.items(), key=lambda item: (-item[1], shown[item[0]].casefold())
    ):
        running += count
        bars.append(
            ParetoBar(
                label=shown[key],
                count=count,
                share_pct=round(100 * count / total, 1),
                cumulative_pct=round(100 * running / total, 1),
            )
        )
    return bars


# -- issues -----------------------------------------------------------------------------------


def issue_row(facts: IssueFacts, window: Window) -> IssueRow:
    counters = facts.counters
    end = facts.finished_at or (window.until if is_open(facts.source) else None)
    duration = (end - facts.started_at).total_seconds() if end and facts.started_at else None
    return IssueRow(
        identifier=facts.identifier,
        workflow_id=facts.workflow_id,
        url=facts.url,
        title=facts.title,
        phase=facts.phase,
        source=facts.source,
        closed_as=facts.closed_as,
        started_at=facts.started_at,
        finished_at=facts.finished_at,
        duration_s=round(max(duration, 0.0), 3) if duration is not None else None,
        attempts=counters.attempts if counters else None,
        tokens=counters.tokens.total_tokens if counters else None,
        cost=CostTotal.of(
            counters.cost, max(counters.attempts - counters.cost_unknown, 0), counters.cost_unknown
        )
        if counters
        else None,
        review_rounds=facts.review.rounds if facts.review else None,
        stops=len(_unique(h for h in facts.halts if h.scope is HaltScope.ISSUE)),
    )


def slowest(rows: Sequence[IssueRow]) -> list[IssueRow]:
    timed = [r for r in rows if r.duration_s is not None]
    return sorted(timed, key=lambda r: (-(r.duration_s or 0.0), r.identifier))[:TOP]


def most_expensive(rows: Sequence[IssueRow]) -> list[IssueRow]:
    spent = [r for r in rows if r.cost is not None and (r.cost.known > 0 or (r.tokens or 0) > 0)]
    return sorted(
        spent, key=lambda r: (-(r.cost.known if r.cost else 0.0), -(r.tokens or 0), r.identifier)
    )[:TOP]


def _phase_counts(rows: Sequence[IssueRow]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for row in rows:
        counts[row.status] = counts.get(row.status, 0) + 1
    return dict(sorted(counts.items(), key=lambda item: (-item[1], item[0])))


def _notes(included: Sequence[IssueFacts], line_halts: Sequence[HaltRecord] | None) -> list[str]:
    notes: list[str] = []
    unread = [f.identifier for f in included if f.source is FactsSource.UNREAD]
    if unread:
        notes.append(
            f"{plural(len(unread), 'running issue')} not read ({', '.join(unread)}): no worker "
            "answered the status query; listed with the phase Temporal last saw, figures "
            "unknown until a worker runs"
        )
    lost = [
        f"{f.identifier} ({f.closed_as})" for f in included if f.source is FactsSource.NO_RESULT
    ]
    if lost:
        notes.append(
            f"{plural(len(lost), 'issue')} closed without a result ({', '.join(lost)}): "
            "figures unknown"
        )
    unitemised = [
        f.identifier
        for f in included
        if f.source is FactsSource.RESULT
        and f.counters is not None
        and f.counters.attempts > 0
        and not f.attempts
    ]
    if unitemised:
        notes.append(
            f"{plural(len(unitemised), 'issue')} without attempt records ({', '.join(unitemised)}"
            "): a result recorded before Jidoka kept them; their spend is counted as "
            "unclassified, not split into value and waste"
        )
    if line_halts is None:
        notes.append(
            "the line's halts were not read (no worker answered its status query): the stops "
            "are the issues' own, and the time the line stood still is unknown"
        )
    return notes
