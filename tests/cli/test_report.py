"""``jidoka report``: the page's charts parsed back (bars, labels, relative heights, the Pareto
line), the figures of a recorded history worked out by hand, the window, the errors, and one
end-to-end run on a real line of the dev server whose ``--json`` and page agree."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from cli.errors import CliError
from cli.report import parse_window, summary_line
from cli.report_html import render_html
from cli.report_read import issues_query, result_facts
from jidoka.models import AttemptRecord, HaltRecord, IssueCounters, TokenUsage
from jidoka.outcomes import AgentStop, HaltCategory, HaltScope, HaltSource, Outcome, Phase
from jidoka.payloads import IssueResult
from jidoka.report import FactsSource, IssueFacts, LineReport, Window, line_report
from tests.cli.histories import load
from tests.support.cli import cli_env, jidoka
from tests.support.linekit import eventually, factory, make_line, resuming, start_line
from tests.support.ports import UI_PORT, free_port
from tests.support.report_facts import WINDOW, at, issue, issues, line_halts
from tests.support.report_page import Page, assert_heights_relative

# -- the page, parsed back (tests/support/report_page.py) ---------------------------------------


def scenario_report() -> LineReport:
    return line_report(
        "t", issues(), line_halts(), WINDOW, generated_at=WINDOW.until, currency="USD"
    )


def test_the_page_draws_the_figures_of_the_report() -> None:
    report = scenario_report()
    page = Page(render_html(report))

    assert page.forbidden == []
    assert page.sections == [
        "flow",
        "value-waste",
        "waste-by-outcome",
        "waiting",
        "stops",
        "slowest",
        "most-expensive",
        "issues",
        "notes",
    ]
    # Value 3000 tokens, waste 4100 (the tallest: the full 160 px), unclassified 700.
    value_waste = page.charts["chart-value-waste"]
    assert [(b.label, b.value) for b in value_waste.bars] == [
        ("value", 3000),
        ("waste", 4100),
        ("unclassified", 700),
    ]
    assert [round(b.height, 1) for b in value_waste.bars] == [117.1, 160.0, 27.3]
    assert_heights_relative(value_waste)
    # Waste by outcome, largest first: 2000 -> 160 px, 1400 -> 112, 400 -> 32, 300 -> 24.
    wastes = page.charts["chart-waste-by-outcome"]
    assert wastes.labels == ["verify_failed", "no_progress", "halt_requested", "awaiting_answers"]
    assert [b.height for b in wastes.bars] == [160.0, 112.0, 32.0, 24.0]
    # The Pareto of stops: 2, 1, 1, 1 stops -> 160, 80, 80, 80 px; cumulative 40, 60, 80, 100%.
    stops = page.charts["chart-stops"]
    assert stops.labels == ["no_progress", "halt_production", "loop_detected", "other"]
    assert [b.height for b in stops.bars] == [160.0, 80.0, 80.0, 80.0]
    assert stops.cumulative == [40.0, 60.0, 80.0, 100.0]
    # Every issue links to its workflow in the Web UI.
    assert "http://ui.invalid/namespaces/default/workflows/jidoka-issue-t-D" in page.links


def test_json_and_page_show_the_same_figures() -> None:
    report = scenario_report()
    document = json.loads(report.model_dump_json())
    page = Page(render_html(report))
    html = render_html(report)

    spend = document["spend"]
    assert [b.value for b in page.charts["chart-value-waste"].bars] == [
        spend["value"]["tokens"],
        spend["waste"]["tokens"],
        spend["unclassified"]["tokens"],
    ]
    assert [(b.label, b.value) for b in page.charts["chart-waste-by-outcome"].bars] == [
        (w["outcome"], w["spend"]["tokens"]) for w in spend["waste_by_outcome"]
    ]
    by_category = document["stops"]["by_category"]
    assert [(b.label, b.value) for b in page.charts["chart-stops"].bars] == [
        (bar["label"], bar["count"]) for bar in by_category
    ]
    assert page.charts["chart-stops"].cumulative == [bar["cumulative_pct"] for bar in by_category]
    assert f"{document['throughput']['shipped']} shipped" in html
    assert f"{round(document['first_time_through']['rate'] * 100)}%" in html
    # The total is a lower bound in both: null in JSON, "≥" on the page, never $0.00.
    assert spend["total"]["cost"]["amount"] is None and spend["total"]["cost"]["known"] == 0.73
    assert "≥ $0.73" in html and "$0.00" not in html


def test_a_window_with_no_issue_says_so() -> None:
    window = Window(since=at(-240), until=at(-120))
    report = line_report("t", issues(), [], window, generated_at=window.until)
    html = render_html(report)
    page = Page(html)
    assert report.empty and page.charts == {} and page.sections == ["empty"]
    assert "No issue of line <strong>t</strong> was active between 2026-11-21 00:00 UTC" in html


def test_an_unpriced_line_shows_unknown_costs_never_zero() -> None:
    # No pricing: every attempt whose agent ran has an unknown cost.
    ran = AttemptRecord(
        number=1,
        started_at=at(1),
        agent_stop=AgentStop.EXITED,
        tokens=900,
        usage=TokenUsage(input_tokens=700, output_tokens=200, total_tokens=900),
        outcome=Outcome.SHIPPED,
    )
    facts = issue(
        "P",
        FactsSource.RESULT,
        phase=Phase.SHIPPED,
        started_at=at(1),
        finished_at=at(2),
        attempts=[ran],
        counters=IssueCounters(attempts=1, tokens=ran.usage or TokenUsage(), cost_unknown=1),
    )
    report = line_report("t", [facts], [], WINDOW, generated_at=WINDOW.until, currency=None)
    html = render_html(report)
    # The value row, the cards of the cost per shipped issue and of the spend, the issue's
    # row: unknown, never 0.00. (No currency was read: none is claimed.)
    value_row = (
        '<tr><td>value</td><td class="num">1</td><td class="num">900</td>'
        '<td class="num">unknown</td>'
    )
    assert value_row in html
    assert html.count('<div class="figure">unknown</div>') == 2
    assert '<td class="num">900</td><td class="num">unknown</td>' in html
    assert "$" not in html
    assert report.spend.total.cost.amount is None
    assert report.spend.value.cost.text(None) == "unknown"


async def test_figures_of_a_recorded_history() -> None:
    """``histories/issue_line_stops.json``: S-1 asked questions (attempt 1, 3000 tokens),
    waited paused for the answer, then shipped (attempt 2, 6000 tokens) on a line priced at
    $100 / $25 cached / $400 per million input / cached input / output tokens."""
    events = load("issue_line_stops").events
    [completed] = [e for e in events if e.HasField("workflow_execution_completed_event_attributes")]
    [result] = await pydantic_data_converter.decode(
        completed.workflow_execution_completed_event_attributes.result.payloads, [IssueResult]
    )
    assert isinstance(result, IssueResult)
    started = events[0].event_time.ToDatetime().replace(tzinfo=UTC)
    base = IssueFacts(identifier="S-1", workflow_id="jidoka-issue-x-S-1", source=FactsSource.UNREAD)
    facts = result_facts(base.model_copy(update={"started_at": started}), result)
    window = Window(since=started - timedelta(hours=1), until=started + timedelta(hours=1))
    report = line_report("x", [facts], [], window, generated_at=window.until, currency="USD")

    asked, shipped = result.attempts
    # Attempt 1: 2400 input (1200 of them cached), 600 output:
    # 1200 * $100 + 1200 * $25 + 600 * $400 = $390,000 per million = $0.39, all waste.
    # Attempt 2: 4800 input (2400 cached), 1200 output: twice that, $0.78, the value.
    assert [w.outcome for w in report.spend.waste_by_outcome] == [Outcome.AWAITING_ANSWERS]
    assert (report.spend.waste.tokens, report.spend.waste.cost.amount) == (3000, 0.39)
    assert (report.spend.value.tokens, report.spend.value.cost.amount) == (6000, 0.78)
    assert report.spend.total.cost.amount == 1.17 and report.spend.total.tokens == 9000
    assert report.spend.unclassified.attempts == 0
    assert report.spend.usage.cached_input_tokens == 1200 + 2400
    # Shipped at its second attempt: throughput 1, first-time-through 0 of 1.
    assert report.throughput.shipped == 1 and report.first_time_through.rate == 0.0
    # Lead time: dispatch to done, as the result says.
    assert result.started_at is not None and result.finished_at is not None
    lead = (result.finished_at - result.started_at).total_seconds()
    assert report.lead_time.median_s == pytest.approx(lead, abs=0.001)
    # Paused from the end of the attempt that asked to the start of the next.
    assert asked.ended_at is not None
    paused = (shipped.started_at - asked.ended_at).total_seconds()
    assert report.waiting.paused_s == pytest.approx(paused, abs=0.001)
    assert report.spend.cost_per_shipped is not None
    assert report.spend.cost_per_shipped.amount == 1.17


def test_the_window() -> None:
    now = datetime(2026, 12, 3, 12, tzinfo=UTC)
    assert parse_window("7d", None, now) == Window(since=now - timedelta(days=7), until=now)
    assert parse_window("90m", "2026-12-02T00:00:00Z", now) == Window(
        since=datetime(2026, 12, 1, 22, 30, tzinfo=UTC), until=datetime(2026, 12, 2, tzinfo=UTC)
    )
    assert parse_window("2026-12-01T08:00:00+01:00", "1h", now).since == datetime(
        2026, 12, 1, 7, tzinfo=UTC
    )
    with pytest.raises(CliError, match="expected a span such as 30m"):
        parse_window("last tuesday", None, now)
    with pytest.raises(CliError, match="the window is empty"):
        parse_window("2026-12-04", None, now)
    query = issues_query("o'brien", Window(since=now - timedelta(days=1), until=now))
    assert "JidokaLine = 'o\\'brien'" in query
    assert "StartTime <= '2026-12-03T12:00:00Z'" in query
    assert "CloseTime >= '2026-12-02T12:00:00Z'" in query


async def test_errors_are_one_line(dev_env: WorkflowEnvironment, tmp_path: Path) -> None:
    code, out, err = await jidoka("report", "--line", "no-such-line", env=cli_env(dev_env))
    assert code == 1 and out == ""
    assert "jidoka: no line named 'no-such-line' on" in err and "Traceback" not in err
    nobody = cli_env(None, TEMPORAL_ADDRESS=f"127.0.0.1:{free_port()}")
    code, _, err = await jidoka("report", "--line", "x", env=nobody, timeout=60)
    assert code == 1 and "jidoka: cannot reach Temporal at" in err and "Traceback" not in err
    code, _, err = await jidoka("report", "--line", "x", "--since", "soon", env=nobody)
    assert code == 1 and "--since 'soon': expected a span" in err


# -- end to end -------------------------------------------------------------------------------

PRICED = {
    "pricing": {
        "currency": "EUR",
        "model": "line-model",
        "models": {"line-model": {"input": 2.0, "cached_input": 0.5, "output": 8.0}},
    },
}
ROOT_CAUSE = "test: these issues halt on purpose"


async def test_a_real_line_reported(
    client: Client, dev_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    """Two issues ship at once, one after a failed verify (a continuation), one claims success
    without a commit (no_progress halts the line; the probe resumes it, the issue stays halted
    for a person). The report, with a worker and then without one."""
    kit = make_line(tmp_path, PRICED)
    kit.add_issue("R-1", "ship")
    kit.add_issue("R-2", "ship")
    kit.add_issue("R-3", "breaks-tests-then-fixes")
    kit.add_issue("R-4", "hallucinate")
    env = cli_env(dev_env, JIDOKA_UI_URL=f"http://localhost:{UI_PORT}")
    page_path = tmp_path / "report.html"
    async with factory(client) as f:
        line = await start_line(f, kit)

        def settled(status: Any) -> bool:
            shipped = {e.identifier for e in status.finished if e.phase is Phase.SHIPPED}
            halted = {e.identifier for e in status.running if e.phase is Phase.HALTED}
            return shipped == {"R-1", "R-2", "R-3"} and halted == {"R-4"} and not status.halted

        await eventually(resuming(line), settled, timeout=120, what="three shipped, one halted")
        # Visibility closes the three shipped workflows a moment after their results.
        await eventually(
            lambda: count_closed(client, kit.line), lambda n: n == 3, what="visibility closed"
        )
        began = time.monotonic()
        code, out, err = await jidoka(
            "report", str(kit.workflow_md), "--json", "--out", str(page_path), env=env
        )
        took = time.monotonic() - began
    assert code == 0, err
    document = json.loads(out)
    assert f"jidoka: wrote {page_path}" in err

    assert document["line"] == kit.line and document["currency"] == "EUR"
    assert document["issues_total"] == 4 and document["open_issues"] == 1
    assert document["phases"] == {"shipped": 3, "halted": 1}
    # Throughput: shipped; first-time-through: R-1 and R-2 (R-3 needed a
    # continuation after its verify failed): 2 of 3.
    assert document["throughput"]["shipped"] == 3
    assert document["first_time_through"] == {"shipped": 3, "first_time": 2, "rate": 0.6667}
    # One stop, counted once though the issue and the line both record it; resumed by the
    # probe with its root cause, still open on the issue (it waits for a person).
    stops = document["stops"]
    assert stops["total"] == 1 and stops["open"] == 1
    assert stops["by_category"] == [
        {"label": "no_progress", "count": 1, "share_pct": 100.0, "cumulative_pct": 100.0}
    ]
    assert [c["label"] for c in stops["by_root_cause"]] == [ROOT_CAUSE]
    # Waste: R-3's failed verify and R-4's claim; every attempt priced, so the sums are whole.
    spend = document["spend"]
    assert {w["outcome"] for w in spend["waste_by_outcome"]} == {"verify_failed", "no_progress"}
    assert spend["value"]["attempts"] == 3 and spend["waste"]["attempts"] == 2
    assert spend["total"]["cost"]["amount"] is not None and spend["total"]["cost"]["amount"] > 0
    assert spend["total"]["cost"]["unknown_attempts"] == 0
    total = spend["value"]["cost"]["amount"] + spend["waste"]["cost"]["amount"]
    assert spend["total"]["cost"]["amount"] == pytest.approx(total)
    assert document["notes"] == []

    # The page of the same run draws the same figures.
    page = Page(page_path.read_text(encoding="utf-8"))
    assert page.forbidden == []
    assert [(b.label, b.value) for b in page.charts["chart-stops"].bars] == [("no_progress", 1)]
    assert [b.value for b in page.charts["chart-value-waste"].bars] == [
        spend["value"]["tokens"],
        spend["waste"]["tokens"],
    ]
    assert_heights_relative(page.charts["chart-waste-by-outcome"])
    assert f"http://localhost:{UI_PORT}/namespaces/default/workflows/{kit.workflow_id('R-4')}" in (
        page.links
    )
    print(f"report of 4 issues: {took:.2f}s (subprocess included)")

    # Without a worker, the halted issue cannot answer its query: listed, figures unknown.
    code, out, err = await jidoka("report", "--line", kit.line, "--json", env=env, timeout=90)
    assert code == 0, err
    document = json.loads(out)
    rows = {row["identifier"]: row for row in document["issues"]}
    assert rows["R-4"]["source"] == "unread" and rows["R-4"]["tokens"] is None
    assert document["currency"] == "EUR"  # from the WORKFLOW.md the line was started with
    assert document["throughput"]["shipped"] == 3 and document["unread_issues"] == 1
    assert document["spend"]["total"]["cost"]["amount"] is None
    assert any("not read (R-4)" in note for note in document["notes"])
    assert any("the line's halts were not read" in note for note in document["notes"])


async def count_closed(client: Client, line: str) -> int:
    query = f"JidokaLine = '{line}' AND WorkflowType = 'IssueWorkflow' AND ExecutionStatus = 'Completed'"
    return (await client.count_workflows(query)).count


def test_the_report_of_many_issues_is_quick() -> None:
    """1,000 issues of 3 attempts and 2 halts each: the figures and the page in well under a
    second or two (what a line of a few weeks holds)."""
    many: list[IssueFacts] = []
    for n in range(1000):
        facts = issues()[n % 6]
        many.append(facts.model_copy(update={"identifier": f"{facts.identifier}{n}"}))
    began = time.perf_counter()
    report = line_report("t", many, line_halts(), WINDOW, generated_at=WINDOW.until)
    html = render_html(report)
    took = time.perf_counter() - began
    assert report.issues_total == 1000 and len(html) > 100_000
    assert took < 5, f"{took:.2f}s"


def test_the_console_summary_line() -> None:
    text = summary_line(scenario_report())
    assert text.startswith(
        "line t, 2.0 days: 9 issues, 3 shipped (1.50 a day), lead time median 8h 00m"
    )
    assert "first-time-through 67%, 5 stops; spent ≥ $0.73" in text
    empty = line_report("t", [], [], WINDOW, generated_at=WINDOW.until)
    assert summary_line(empty) == "line t: no issue was active in the window"


def test_words_from_trackers_agents_and_operators_stay_text_in_the_page() -> None:
    """Titles come from trackers, halt reasons from agents (a HALT verdict's words), root
    causes from operators: none of them may become markup in a page opened in a browser."""
    hostile = '<script>alert(1)</script>"><img src=x onerror=alert(2)>'
    facts = [
        issue("X", FactsSource.RESULT, phase=Phase.HALTED, title=hostile, started_at=at(1)),
        *issues(),
    ]
    halts = [
        *line_halts(),
        HaltRecord(
            category=HaltCategory.HALT_PRODUCTION,
            reason=hostile,
            source=HaltSource.AGENT,
            scope=HaltScope.LINE,
            issue_identifier=hostile,
            at=at(20),
            resolved_at=at(21),
            root_cause=hostile,
        ),
    ]
    report = line_report(hostile, facts, halts, WINDOW, generated_at=WINDOW.until, currency="USD")
    html = render_html(report)
    page = Page(html)
    assert page.forbidden == []
    assert "<script>" not in html and "<img" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html  # shown, as text
