"""What the operator surface shows of an issue in review: ``jidoka line status|watch`` (the
line's table, with the rounds the one visibility query read) and ``jidoka issue status`` (the
review block), rendered from models built here."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from cli.line_view import LineView
from cli.render import issue_row, issue_status_text, line_status_text
from jidoka.models import FleetUse, HaltRecord, IssueCounters, RunningEntry, ShipEvidence
from jidoka.outcomes import HaltCategory, HaltScope, HaltSource, LinePhase, Outcome, Phase
from jidoka.payloads import IssueStatus, LineStatus
from jidoka.review import ReviewLedger

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
HEAD = "0123456789abcdef" * 2 + "01234567"
URL = "https://github.com/acme/app/pull/7"


def entry(name: str, phase: Phase, *, minutes: int = 5) -> RunningEntry:
    return RunningEntry(
        issue_id=name,
        identifier=name,
        workflow_id=f"jidoka-issue-x-{name}",
        state="Human Review" if phase is Phase.IN_REVIEW else "In Progress",
        phase=phase,
        attempt=2,
        tokens=12_000,
        started_at=NOW - timedelta(hours=1),
        phase_at=NOW - timedelta(minutes=minutes),
    )


def line(*entries: RunningEntry, idle: bool = False) -> LineStatus:
    return LineStatus(
        workflow_id="jidoka-line-x",
        line="x",
        phase=LinePhase.RUNNING,
        halted=False,
        open_halts=[],
        halts=[],
        notice=None,
        running=list(entries),
        retry_queue=[],
        finished=[],
        fleet=FleetUse(tokens_last_hour=0, tokens_per_hour_cap=None, tokens_total=24_000),
        rate_gate_until=None,
        config_error=None,
        tracker_error=None,
        ticks=3,
        last_tick_at=NOW,
        idle=idle,
        candidates_waiting=0,
        startup_report=[],
    )


def issue(phase: Phase, review: ReviewLedger | None, **update: object) -> IssueStatus:
    status = IssueStatus(
        workflow_id="jidoka-issue-x-R-1",
        line="x",
        issue_id="R-1",
        identifier="R-1",
        title="Name the zebra flag",
        url=None,
        phase=phase,
        tracker_state="Human Review",
        attempt=2,
        counters=IssueCounters(attempts=2),
        last_outcome=Outcome.SHIPPED,
        last_decision=None,
        last_evidence=None,
        halt=None,
        halts=[],
        line_halted=False,
        questions=[],
        attempts=[],
        host_queue=None,
        workspace_path=None,
        branch=None,
        config_error=None,
        started_at=NOW - timedelta(hours=2),
        finished_at=None,
        ship=None,
        preserved_branch=None,
        review=review,
    )
    return status.model_copy(update=update)


def ledger(**update: object) -> ReviewLedger:
    return ReviewLedger(
        url=URL, shipped_head=HEAD, started_at=NOW - timedelta(hours=1, minutes=30)
    ).model_copy(update=update)


def table_row(text: str, name: str) -> str:
    (row,) = [row for row in text.splitlines() if row.strip().startswith(name + " ")]
    return row


# -- jidoka line status / watch ----------------------------------------------------------------


def test_the_line_shows_an_issue_in_review_with_its_rounds() -> None:
    status = line(
        entry("R-1", Phase.IN_REVIEW, minutes=3),
        entry("R-2", Phase.RUNNING_AGENT),
        entry("R-3", Phase.IN_REVIEW),
    )
    rounds = {"jidoka-issue-x-R-1": 2, "jidoka-issue-x-R-2": 1}
    text = line_status_text(status, NOW, review_rounds=rounds)
    assert "in_review for 3m00s, 2 rework rounds" in table_row(text, "R-1")
    # A rework round under way: the agent runs, the round is named.
    assert "running_agent for 5m00s, 1 rework round" in table_row(text, "R-2")
    # In review, but visibility has not answered with its rounds: the phase alone.
    assert "in_review for 5m00s " in table_row(text, "R-3") + " "
    assert "rework" not in table_row(text, "R-3")
    assert "; 2 in review (waiting on people, no agent slot held)" in text


def test_a_line_without_review_renders_as_before() -> None:
    status = line(entry("R-2", Phase.RUNNING_AGENT))
    assert line_status_text(status, NOW) == line_status_text(status, NOW, review_rounds={})
    text = line_status_text(status, NOW)
    assert "rework" not in text and "in review" not in text
    assert "running_agent for 5m00s" in table_row(text, "R-2")


def test_the_json_adds_review_rounds_to_each_running_issue() -> None:
    status = line(entry("R-1", Phase.IN_REVIEW), entry("R-2", Phase.BACKING_OFF))
    status.retry_queue = [status.running[1]]
    data = LineView(status, {"jidoka-issue-x-R-1": 2}).json()
    assert [e["review_rounds"] for e in data["running"]] == [2, None]
    assert data["retry_queue"][0]["review_rounds"] is None
    # Only added: every field of the status is still there, under its name.
    plain = status.model_dump(mode="json")
    assert set(plain) == set(data)
    for before, after in zip(plain["running"], data["running"], strict=True):
        assert {k: v for k, v in after.items() if k != "review_rounds"} == before


# -- jidoka issue status -------------------------------------------------------------------------


def test_issue_status_shows_where_its_change_request_stands() -> None:
    status = issue(
        Phase.IN_REVIEW,
        ledger(rounds=1, tokens=7_500),
        review_waiting="waiting for checks: ci",
        ship=ShipEvidence.model_construct(commits_ahead=2, head_sha=HEAD, pull_request_url=URL),
    )
    text = issue_status_text(status, NOW)
    assert "  phase: in_review; tracker state: Human Review" in text
    block = text[text.index("  review: ") :].splitlines()
    assert block == [
        f"  review: {URL} (since 2026-12-03T10:30:00+00:00, 1h30m ago)",
        "    shipped head 0123456789ab; 1 rework round; 7,500 tokens in review",
        "    now: waiting for checks: ci",
    ]


def test_issue_status_during_a_rework_round_and_after_a_review_halt() -> None:
    reworking = issue(Phase.RUNNING_AGENT, ledger(rounds=2, tokens=9_000, reworking=True))
    text = issue_status_text(reworking, NOW)
    assert "    shipped head 0123456789ab; 2 rework rounds; 9,000 tokens in review" in text
    assert "    now: rework round 2 under way (its ship goes back into review)" in text

    halt = HaltRecord(
        category=HaltCategory.REVIEW_ROUNDS_CAP,
        reason="2 rework round(s) done, review.max_rounds is 2",
        source=HaltSource.ORCHESTRATOR,
        scope=HaltScope.ISSUE,
        issue_identifier="R-1",
        at=NOW,
    )
    halted = issue(Phase.HALTED, ledger(rounds=2), halt=halt, halts=[halt])
    text = issue_status_text(halted, NOW)
    assert "  HALTED: review_rounds_cap by orchestrator (R-1): 2 rework round(s) done" in text
    assert "(retry watches the change request again with the review caps afresh;" in text
    assert "  review: " + URL in text


def test_an_issue_never_in_review_shows_no_review_block() -> None:
    text = issue_status_text(issue(Phase.RUNNING_AGENT, None), NOW)
    assert "review" not in text


def test_the_issue_row_carries_the_rounds() -> None:
    assert issue_row(issue(Phase.IN_REVIEW, ledger(rounds=0)))[3] == "in_review (0 rework rounds)"
    assert issue_row(issue(Phase.SHIPPED, ledger(rounds=1)))[3] == "shipped (1 rework round)"
    assert issue_row(issue(Phase.SHIPPED, ledger(rounds=0)))[3] == "shipped"
    assert issue_row(issue(Phase.RUNNING_AGENT, None))[3] == "running_agent"
