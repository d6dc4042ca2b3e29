"""The report's figures (jidoka/report.py), from facts built by hand
(tests/support/report_facts.py tells each issue's story); the arithmetic is written next to each
assertion."""

from __future__ import annotations

import pytest

from jidoka.models import AttemptRecord, IssueCounters, TokenUsage
from jidoka.outcomes import AgentStop, HaltCategory, HaltScope, Outcome, Phase
from jidoka.report import (
    CostTotal,
    FactsSource,
    LineReport,
    line_report,
    nearest_rank,
    normal_text,
    stop_events,
)
from tests.support.report_facts import (
    AGENT_CLAIMED,
    LOOP,
    WINDOW,
    at,
    attempt,
    halt,
    issue,
    issues,
    line_halts,
)

HOUR = 3600.0


def report() -> LineReport:
    return line_report(
        "t", issues(), line_halts(), WINDOW, generated_at=WINDOW.until, currency="USD"
    )


def test_which_issues_the_window_holds_and_how_they_stand() -> None:
    made = report()
    # H finished two days before the window: left out. A..G, U and X remain.
    assert [row.identifier for row in made.issues] == ["A", "B", "C", "D", "E", "F", "G", "U", "X"]
    assert made.issues_total == 9
    assert made.open_issues == 4  # D, E, G (status) and U (unread)
    assert made.unread_issues == 2  # U (no worker answered) and X (terminated)
    assert made.phases == {
        "shipped": 3,
        "running_agent": 2,
        "abandoned": 1,
        "halted": 1,
        "paused": 1,
        "terminated": 1,
    }


def test_throughput_lead_time_and_first_time_through() -> None:
    made = report()
    # A, B and C shipped inside the two days: 3 / 2 = 1.5 a day.
    assert (made.throughput.shipped, made.throughput.days, made.throughput.per_day) == (3, 2.0, 1.5)
    # Lead times: A 3h-1h = 2h, B 10h-2h = 8h, C 29h-5h = 24h. Median of three: 8h.
    # p90 by nearest rank: rank ceil(0.9 * 3) = 3, the third: 24h. Max 24h.
    lead = made.lead_time
    assert (lead.count, lead.median_s, lead.p90_s, lead.max_s) == (
        3,
        8 * HOUR,
        24 * HOUR,
        24 * HOUR,
    )
    # A and C shipped at their first attempt, B at its second: 2 / 3.
    ftt = made.first_time_through
    assert (ftt.shipped, ftt.first_time, ftt.rate) == (3, 2, 0.6667)


def test_value_waste_and_what_no_record_classifies() -> None:
    spend = report().spend
    # Value: the shipping attempts A1 (1000 tokens, $0.10, 600 s), B2 (1500, $0.15, 700 s) and
    # C1 (500, unknown: no usage reported, 300 s) = 3 attempts, 3000 tokens, 1600 s; the money
    # is $0.25 known plus one attempt unknown, so the whole is unknown.
    assert (spend.value.attempts, spend.value.tokens, spend.value.agent_seconds) == (3, 3000, 1600)
    assert spend.value.cost.amount is None
    assert (spend.value.cost.known, spend.value.cost.unknown_attempts) == (0.25, 1)
    assert spend.value.cost.text("USD") == "≥ $0.25 (cost unknown for 1 attempt)"
    # Waste: B1 verify_failed (2000, $0.20, 900 s), D1 and D2 no_progress (800 + 600,
    # $0.08 + $0.06, 200 + 150 s), E1 awaiting_answers (300, $0.03, 100 s), F1 halt_requested
    # (400, $0.04, 120 s) = 5 attempts, 4100 tokens, $0.41, 1470 s.
    assert (spend.waste.attempts, spend.waste.tokens, spend.waste.agent_seconds) == (5, 4100, 1470)
    assert spend.waste.cost.amount == 0.41
    # By outcome, largest first by tokens.
    assert [
        (w.outcome, w.spend.attempts, w.spend.tokens, w.spend.cost.amount)
        for w in spend.waste_by_outcome
    ] == [
        (Outcome.VERIFY_FAILED, 1, 2000, 0.2),
        (Outcome.NO_PROGRESS, 2, 1400, 0.14),
        (Outcome.HALT_REQUESTED, 1, 400, 0.04),
        (Outcome.AWAITING_ANSWERS, 1, 300, 0.03),
    ]
    # Unclassified: G's attempt still runs (its counters hold 700 tokens, $0.07, 90 s, no
    # record yet).
    assert (
        spend.unclassified.attempts,
        spend.unclassified.tokens,
        spend.unclassified.cost.amount,
    ) == (1, 700, 0.07)
    # Total: 3000 + 4100 + 700 = 7800 tokens; $0.25 + $0.41 + $0.07 = $0.73 known, one attempt
    # unknown (C1) and two issues not read (U, X): a lower bound, never a whole.
    assert spend.total.tokens == 7800 and spend.usage.total_tokens == 7800
    assert spend.total.cost.amount is None
    assert (
        spend.total.cost.known,
        spend.total.cost.unknown_attempts,
        spend.total.cost.unknown_issues,
    ) == (0.73, 1, 2)
    assert spend.total.cost.text("USD") == (
        "≥ $0.73 (cost unknown for 1 attempt, 2 issues not read)"
    )
    # Tokens by kind: only A reported them (800 input, 400 of them cached, 200 output).
    assert (
        spend.usage.input_tokens,
        spend.usage.cached_input_tokens,
        spend.usage.output_tokens,
    ) == (800, 400, 200)
    # Per shipped issue: the whole spend, waste included, over 3: $0.73 / 3 = $0.2433...
    assert spend.cost_per_shipped is not None
    assert spend.cost_per_shipped.known == pytest.approx(0.73 / 3)
    assert spend.cost_per_shipped.amount is None


def test_waiting() -> None:
    waiting = report().waiting
    # Halted (the issues' own halts): D 7h -> 7h30 (0.5h), D 9h30 -> the window's end at 48h
    # (38.5h, still halted), F 13h -> 19h (6h): 45h.
    assert waiting.halted_s == (0.5 + 38.5 + 6) * HOUR
    # Paused: E asked at 8h, its attempt ended at 8h30, still paused at 48h: 39.5h.
    assert waiting.paused_s == 39.5 * HOUR
    # Agent slots: A waited 30 s, B's second attempt 60 s.
    assert waiting.slot_wait_s == 90
    # The line stopped: 7h00m01 -> 7h45 (2699 s), 9h30m01 -> 10h (1799 s), 13h00m02 -> 14h
    # (3598 s), 30h -> 31h (3600 s), 40h -> 48h, still open (28800 s).
    assert waiting.line_stopped_s == 2699 + 1799 + 3598 + 3600 + 28800


def test_each_stop_counted_once_in_the_pareto() -> None:
    stops = report().stops
    # Seven line records and four issue records tell five stops: D's two no_progress halts and
    # F's halt_production (each echoed by the line a second later), the line's loop_detected
    # (copied into D's halts too), and an operator's halt, still open like D's second.
    assert (stops.total, stops.open) == (5, 2)
    assert [(b.label, b.count, b.share_pct, b.cumulative_pct) for b in stops.by_category] == [
        ("no_progress", 2, 40.0, 40.0),
        ("halt_production", 1, 20.0, 60.0),
        ("loop_detected", 1, 20.0, 80.0),
        ("other", 1, 20.0, 100.0),
    ]
    # Root causes: D's first (its retry's), D's second (the line's resume: "Agent claimed
    # success  without commits." is the same text once normalised), F's own ("Staging DB was
    # corrupted.", not the line's "staging db was corrupted", which is the same anyway), and
    # the loop's. The operator's halt has none yet.
    assert [(b.label, b.count, b.cumulative_pct) for b in stops.by_root_cause] == [
        (AGENT_CLAIMED, 2, 50.0),
        ("flaky tracker", 1, 75.0),
        ("Staging DB was corrupted.", 1, 100.0),
    ]


def test_a_line_record_echoes_only_the_issue_halt_it_follows() -> None:
    # Two halts of D, the line's records of each a second later, and one more line record of
    # D's category before D ever halted (an issue outside the facts, or a lost record): three.
    halts = [
        halt(HaltCategory.NO_PROGRESS, "D", 1),
        halt(HaltCategory.NO_PROGRESS, "D", 2),
    ]
    line = [
        halt(HaltCategory.NO_PROGRESS, "D", 0.5, scope=HaltScope.LINE),
        halt(HaltCategory.NO_PROGRESS, "D", 1, seconds=1, scope=HaltScope.LINE),
        halt(HaltCategory.NO_PROGRESS, "D", 2, seconds=1, scope=HaltScope.LINE),
    ]
    found = stop_events([issue("D", FactsSource.STATUS, halts=halts)], line)
    assert [s.at for s in found] == [at(0.5), at(1), at(2)]
    # Without the line's halts (no worker answered), the issues' own halts still count.
    assert len(stop_events([issue("D", FactsSource.STATUS, halts=[*halts, LOOP])], None)) == 3


def test_slowest_and_most_expensive() -> None:
    made = report()
    # Dispatch to end (or to the window's end at 48h while open): D 48-6 = 42h, E 40h, C 24h,
    # B 8h and F 8h (ties by name), then G 4h, U 3h, A 2h, X 1h.
    assert [(r.identifier, r.duration_s) for r in made.slowest] == [
        ("D", 42 * HOUR),
        ("E", 40 * HOUR),
        ("C", 24 * HOUR),
        ("B", 8 * HOUR),
        ("F", 8 * HOUR),
    ]
    # Known cost, largest first: B $0.35, D $0.14, A $0.10, G $0.07, F $0.04.
    assert [(r.identifier, r.cost.known if r.cost else None) for r in made.most_expensive] == [
        ("B", 0.35),
        ("D", 0.14),
        ("A", 0.10),
        ("G", 0.07),
        ("F", 0.04),
    ]
    assert made.slowest[0].url == "http://ui.invalid/namespaces/default/workflows/jidoka-issue-t-D"
    rows = {r.identifier: r for r in made.issues}
    assert rows["C"].cost is not None and rows["C"].cost.text("USD") == "unknown"
    assert rows["U"].cost is None and rows["U"].tokens is None
    assert rows["D"].stops == 2  # its own two halts, not the loop's copy


def test_notes_say_what_is_not_known() -> None:
    notes = report().notes
    assert any(n.startswith("1 running issue not read (U)") for n in notes), notes
    assert any(n.startswith("1 issue closed without a result (X (terminated))") for n in notes)
    without_line = line_report("t", issues(), None, WINDOW, generated_at=WINDOW.until)
    assert without_line.waiting.line_stopped_s is None
    assert not without_line.stops.line_halts_read
    assert any("the line's halts were not read" in n for n in without_line.notes)


def test_a_window_with_no_issue() -> None:
    # Ten to five days before T0: H was dispatched three days before T0, every other later.
    # (An issue still running is active in every window after its dispatch.)
    empty_window = WINDOW.model_copy(update={"since": at(-240), "until": at(-120)})
    made = line_report("t", issues(), [], empty_window, generated_at=empty_window.until)
    assert made.empty and made.issues == [] and made.issues_total == 0
    assert (made.throughput.shipped, made.throughput.per_day) == (0, 0.0)
    assert made.lead_time.count == 0 and made.lead_time.median_s is None
    assert made.first_time_through.rate is None
    assert made.spend.total.cost.amount == 0.0 and made.spend.cost_per_shipped is None
    assert made.stops.total == 0 and made.stops.by_category == []


def test_an_attempt_without_usage_and_a_model_without_price_cost_unknown_never_zero() -> None:
    # The agent reported no usage: 0 tokens, usage None, cost None. Another attempt ran a model
    # without a price: tokens known, cost None. Neither is $0.00.
    no_usage = AttemptRecord(
        number=1, started_at=at(1), agent_stop=AgentStop.EXITED, outcome=Outcome.VERIFY_FAILED
    )
    usage = TokenUsage(input_tokens=1000, output_tokens=200, total_tokens=1200)
    unpriced = AttemptRecord(
        number=2,
        started_at=at(2),
        agent_stop=AgentStop.EXITED,
        tokens=1200,
        usage=usage,
        model="mystery-model",
        outcome=Outcome.SHIPPED,
    )
    facts = issue(
        "N",
        FactsSource.RESULT,
        phase=Phase.SHIPPED,
        started_at=at(1),
        finished_at=at(3),
        attempts=[no_usage, unpriced],
        counters=IssueCounters(attempts=2, tokens=usage, cost_unknown=2),
    )
    made = line_report("t", [facts], [], WINDOW, generated_at=WINDOW.until, currency="USD")
    for cost in (
        made.spend.total.cost,
        made.spend.value.cost,
        made.spend.waste.cost,
        made.issues[0].cost,
    ):
        assert cost is not None and cost.amount is None and cost.text("USD") == "unknown"
    assert made.spend.total.tokens == 1200 and made.spend.usage.input_tokens == 1000
    assert made.spend.cost_per_shipped is not None
    assert made.spend.cost_per_shipped.text("USD") == "unknown"
    # An attempt no agent ran for (its workspace failed) spent nothing: a known zero.
    no_agent = AttemptRecord(number=1, started_at=at(1), outcome=Outcome.WORKSPACE_FAILED)
    lost = issue(
        "W",
        FactsSource.RESULT,
        phase=Phase.ABANDONED,
        started_at=at(1),
        finished_at=at(2),
        attempts=[no_agent],
        counters=IssueCounters(attempts=1),
    )
    made = line_report("t", [lost], [], WINDOW, generated_at=WINDOW.until, currency="USD")
    assert made.spend.waste.cost.amount == 0.0 and made.spend.waste.cost.text("USD") == "$0.00"


def test_a_result_recorded_before_attempts_were_kept() -> None:
    old = issue(
        "O",
        FactsSource.RESULT,
        phase=Phase.SHIPPED,
        started_at=at(1),
        finished_at=at(2),
        counters=IssueCounters(attempts=1, tokens=TokenUsage(total_tokens=3000)),
    )
    made = line_report("t", [old], [], WINDOW, generated_at=WINDOW.until)
    # Counted (3000 tokens, one attempt), but neither value nor waste: no record says which.
    assert (made.spend.unclassified.attempts, made.spend.unclassified.tokens) == (1, 3000)
    assert made.spend.value.tokens == made.spend.waste.tokens == 0
    assert made.first_time_through.rate == 1.0
    assert any("without attempt records (O)" in note for note in made.notes)


def test_an_attempt_before_the_window_is_not_spent_in_it() -> None:
    # B's first attempt at 2h falls before a window starting at 3h; its second (4h) inside.
    window = WINDOW.model_copy(update={"since": at(3)})
    made = line_report("t", issues(), [], window, generated_at=window.until)
    assert [w.outcome for w in made.spend.waste_by_outcome] == [
        Outcome.NO_PROGRESS,
        Outcome.HALT_REQUESTED,
        Outcome.AWAITING_ANSWERS,
    ]


def test_small_pieces() -> None:
    ordered = [float(v) for v in range(1, 11)]
    assert nearest_rank(ordered, 0.9) == 9.0  # rank ceil(9.0) = 9
    assert nearest_rank(ordered, 0.5) == 5.0
    assert nearest_rank([7.0], 0.9) == 7.0
    assert normal_text("  Agent claimed\tsuccess WITHOUT commits. ") == AGENT_CLAIMED
    assert CostTotal.of(1.5, 2, 0).text(None) == "1.50 (currency unknown)"
    assert CostTotal.of(1.5, 2, 0).text("EUR") == "1.50 EUR"
    assert CostTotal.of(0.0, 0, 3).text("USD") == "unknown"
    assert attempt(1, 1, Outcome.SHIPPED, 10, None, 1).cost is None
