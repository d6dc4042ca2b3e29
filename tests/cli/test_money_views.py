"""Money where tokens are shown: ``jidoka line status|watch`` (each running issue's cost, read
with the live phases in the one visibility query, and the line's total) and ``jidoka issue
status`` (the issue's cost and each attempt's), rendered from models built here. Unknown is
said, never ``$0.00``. The same views on a real priced line are in ``test_line_money.py``."""

from __future__ import annotations

from datetime import timedelta

from cli.line_view import LineCost, LineView
from cli.render import issue_status_text, line_status_text
from jidoka.models import AttemptRecord, IssueCounters, TokenUsage
from jidoka.outcomes import AgentStop, Outcome, Phase
from tests.cli.test_review_views import NOW, entry, issue, line, table_row

# Per million tokens: input 100, cached input 25, output 400. 3,000 tokens (2,400 in, 1,200 of
# them cached, 600 out): 1,200 x 100 + 1,200 x 25 + 600 x 400 = 390,000 / 1e6 = 0.39.
ONE_STEP = TokenUsage(
    input_tokens=2_400, cached_input_tokens=1_200, output_tokens=600, total_tokens=3_000
)


def test_the_line_shows_each_running_issues_cost_and_its_total() -> None:
    known = entry("M-1", Phase.RUNNING_AGENT)
    unpriced = entry("M-2", Phase.VERIFYING)  # tokens, but no price for its model
    unreported = entry("M-3", Phase.BACKING_OFF)
    unreported.tokens, unreported.last_outcome = 0, Outcome.AGENT_FAILED  # no usage reported
    fresh = entry("M-4", Phase.PREPARING)
    fresh.tokens = 0  # nothing spent yet
    status = line(known, unpriced, unreported, fresh)
    view = LineView(
        status,
        costs={known.workflow_id: 0.39, unpriced.workflow_id: 0.0, unreported.workflow_id: 0.0},
        cost=LineCost(currency="USD", known=0.39 + 0.78, unknown_issues=2),
    )
    text = line_status_text(status, NOW, money=view)
    header = next(row for row in text.splitlines() if row.strip().startswith("ISSUE "))
    assert header.split() == ["ISSUE", "PHASE", "ATTEMPT", "TOKENS", "COST", "ELAPSED", "STATE"]
    assert " 12,000  $0.39 " in table_row(text, "M-1")
    assert " 12,000  unknown " in table_row(text, "M-2")
    assert " 0       unknown " in table_row(text, "M-3")
    assert " 0       -  " in table_row(text, "M-4")
    assert "$0.00" not in text
    # The total: the known part, a lower bound while issues of unknown cost are in it.
    assert "  cost: ≥ $1.17 in total (2 issue(s) of unknown cost)\n" in text
    exact = LineView(status, costs={}, cost=LineCost(currency="EUR", known=1.17))
    assert "  cost: 1.17 EUR in total\n" in line_status_text(status, NOW, money=exact)


def test_a_line_without_prices_shows_tokens_only() -> None:
    status = line(entry("M-1", Phase.RUNNING_AGENT))
    text = line_status_text(status, NOW, money=LineView(status))
    assert text == line_status_text(status, NOW)
    assert "COST" not in text and "cost:" not in text


def test_the_json_adds_each_issues_cost_and_the_lines() -> None:
    status = line(entry("M-1", Phase.RUNNING_AGENT), entry("M-2", Phase.RUNNING_AGENT))
    view = LineView(
        status,
        costs={"jidoka-issue-x-M-1": 0.39},
        cost=LineCost(currency="USD", known=1.17, unknown_issues=1),
    )
    data = view.json()
    assert [e["cost"] for e in data["running"]] == [0.39, None]
    assert data["cost"] == {"currency": "USD", "known": 1.17, "unknown_issues": 1}
    plain = LineView(status).json()
    assert "cost" not in plain and "cost" not in plain["running"][0]


def attempt(number: int, outcome: Outcome | None, **update: object) -> AttemptRecord:
    return AttemptRecord(
        number=number,
        started_at=NOW - timedelta(hours=1),
        agent_stop=AgentStop.EXITED,
        outcome=outcome,
    ).model_copy(update=update)


def test_issue_status_shows_its_cost_and_each_attempts() -> None:
    status = issue(
        Phase.RUNNING_AGENT,
        None,
        counters=IssueCounters(attempts=4, cost=0.39, cost_unknown=2),
        attempts=[
            attempt(1, Outcome.VERIFY_FAILED, tokens=3_000, usage=ONE_STEP, cost=0.39, model="m"),
            attempt(2, Outcome.AGENT_FAILED, tokens=0, usage=None, cost=None, model="m"),
            attempt(3, Outcome.NO_PROGRESS, tokens=3_000, usage=ONE_STEP, cost=None, model="x"),
            attempt(4, Outcome.WORKSPACE_FAILED, agent_stop=None),
        ],
    )
    text = issue_status_text(status, NOW, link="http://ui/w", currency="USD")
    lines = text.splitlines()
    assert lines[1] == "  workflow: jidoka-issue-x-R-1 (Web UI: http://ui/w)"
    assert lines[4] == "  cost: ≥ $0.39 (2 attempt(s) of unknown cost)"
    block = lines[lines.index("  attempts:") + 1 :][:4]
    assert block == [
        "    1: verify_failed — 3,000 tokens, $0.39",
        "    2: agent_failed — tokens not reported, cost unknown: the agent reported no usage",
        "    3: no_progress — 3,000 tokens, cost unknown: no price for model x",
        "    4: workspace_failed — no agent ran",
    ]
    nothing_known = issue(
        Phase.HALTED, None, counters=IssueCounters(attempts=1, cost=0.0, cost_unknown=1)
    )
    text = issue_status_text(nothing_known, NOW, currency="EUR")
    assert "  cost: unknown (1 attempt(s) of unknown cost)" in text and "0.00" not in text
    exact = issue(Phase.SHIPPED, None, counters=IssueCounters(attempts=2, cost=1.17))
    assert "  cost: 1.17 EUR\n" in issue_status_text(exact, NOW, currency="EUR")


def test_issue_status_on_a_line_without_prices_shows_no_money() -> None:
    status = issue(
        Phase.SHIPPED,
        None,
        counters=IssueCounters(attempts=1, cost_unknown=1),
        attempts=[attempt(1, Outcome.SHIPPED, tokens=3_000, usage=ONE_STEP)],
    )
    text = issue_status_text(status, NOW)
    assert "cost" not in text and "attempts:" not in text and "Web UI" not in text
