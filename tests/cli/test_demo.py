"""``jidoka demo`` (what ``make demo`` runs) as a user runs it: the real console script, started
from a folder outside the repository, builds the demo line, runs it sandboxed to idle on its
embedded server, and prints one JSON summary whose outcomes are the ones each scripted issue
is written to end in. Every ship goes through review: the demo's scripted reviewer sends DEMO-1
back once (one rework round), then merges it and every other shipped issue."""

from __future__ import annotations

import asyncio
import fcntl
import io
import itertools
import json
import os
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import pytest

import cli.run as run_module
from activities.forge.board import BoardForge
from activities.tracker.local import (
    LOCK_FILE_NAME,
    parse_issue_file,
    render_comment_append,
    render_state_change,
)
from cli.demo import REQUEST, prepare, scripted_reviewer
from cli.run import Follower, HoldOpen, summary_text
from jidoka.config import LocalTrackerConfig
from jidoka.models import FleetUse, IssueCounters, RunningEntry
from jidoka.outcomes import LinePhase, Phase
from jidoka.payloads import IssueStatus, LineStatus
from jidoka.review import RequestState, ReviewVerdict
from jidoka.workflow_file import load_workflow
from tests.support.paths import JIDOKA
from tests.support.ports import free_port
from tests.support.report_page import Page, assert_heights_relative
from tests.support.workerproc import child_environ

EXPECTED = {
    "DEMO-1": ("shipped", "shipped"),
    "DEMO-2": ("halted", "no_progress"),
    "DEMO-3": ("halted", "halt_requested"),
    "DEMO-4": ("paused", "awaiting_answers"),
    "DEMO-5": ("halted", "budget_exceeded"),
    "DEMO-6": ("halted", "hook_timeout"),
    "DEMO-7": ("shipped", "shipped"),
    "DEMO-8": ("shipped", "shipped"),
    "DEMO-9": ("halted", "protected_paths"),
}
SHIPPED = sorted(name for name, (phase, _) in EXPECTED.items() if phase == "shipped")


def test_the_demo_runs_from_anywhere_and_ends_as_written(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    done = subprocess.run(
        [
            JIDOKA,
            "demo",
            "--json",
            "--dir",
            str(tmp_path / "demo"),
            "--port",
            str(free_port()),
            "--ui-port",
            str(free_port()),
        ],
        cwd=elsewhere,
        env=child_environ(),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )

    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    summary = json.loads(done.stdout)  # stdout is the document alone
    ended = {i["identifier"]: (i["phase"], i["outcome"]) for i in summary["issues"]}
    assert ended == EXPECTED
    assert "a fresh line in" in done.stderr and "Traceback" not in done.stderr
    # The demo's line is priced: every issue's cost is known, in the summary as in the report.
    assert summary["currency"] == "USD"
    assert all(i["cost"] > 0 and i["cost_unknown_attempts"] == 0 for i in summary["issues"])

    # The review loop: every ship was merged by the scripted reviewer, DEMO-1 after exactly
    # one rework round whose new commit answers the reviewer's request.
    states = {i["identifier"]: i["state"] for i in summary["issues"]}
    assert {name: states[name] for name in SHIPPED} == dict.fromkeys(SHIPPED, "Done")
    board = tmp_path / "demo" / "board"
    for name in SHIPPED:
        text = (board / f"{name}.md").read_text()
        assert text.count("Jidoka: merged") == 1, text
        rounds = 1 if name == "DEMO-1" else 0
        assert text.count("Jidoka: rework round") == rounds, text
        assert text.count("Jidoka: shipped") == 1 + rounds, text
        assert f"reviewer: {name} approved and merged" in done.stderr
    demo_1 = (board / "DEMO-1.md").read_text()
    assert "Jidoka: rework round 1 of 2" in demo_1 and "· reviewer\n" in demo_1
    assert "state: Done\n" in demo_1
    assert done.stderr.count("reviewer: DEMO-1 sent back") == 1
    assert "changes/DEMO-1.md now says: Change made by the scripted agent (attempt 2)." in (
        done.stderr
    )

    # The demo ends by writing the line's report: one page, its charts drawn from the run.
    report = tmp_path / "demo" / "report.html"
    assert f"the report, one self-contained page: {report}" in done.stderr
    assert "the prices are illustrative" in done.stderr
    page = Page(report.read_text(encoding="utf-8"))
    assert page.forbidden == []
    assert [b.label for b in page.charts["chart-value-waste"].bars] == ["value", "waste"]
    # Every halt the demo makes, once each (the issue's record and the line's are one stop).
    stops = {ended[name][1] for name in EXPECTED if ended[name][0] == "halted"}
    assert len(page.charts["chart-stops"].bars) == len(stops) == 5
    assert {b.label for b in page.charts["chart-stops"].bars} == {
        "no_progress",
        "halt_production",
        "budget_exceeded",
        "hook_timeout",
        "protected_paths",
    }
    assert page.charts["chart-stops"].cumulative[-1] == 100.0
    wasted = {b.label for b in page.charts["chart-waste-by-outcome"].bars}
    assert {"budget_exceeded", "no_progress", "verify_failed", "awaiting_answers"} <= wasted
    assert_heights_relative(page.charts["chart-waste-by-outcome"])


# -- the scripted reviewer and the run it holds open, without a server (fast) ------------------

HEAD = "a" * 40


def line_status(phases: dict[str, Phase], *, ticks: int = 1, idle: bool = True) -> LineStatus:
    now = datetime.now(UTC)
    return LineStatus(
        workflow_id="jidoka-line-demo",
        line="demo",
        phase=LinePhase.RUNNING,
        halted=False,
        open_halts=[],
        halts=[],
        notice=None,
        running=[
            RunningEntry(
                issue_id=name,
                identifier=name,
                workflow_id=f"jidoka-issue-demo-{name}",
                state="Human Review",
                phase=phase,
                started_at=now,
            )
            for name, phase in phases.items()
        ],
        retry_queue=[],
        finished=[],
        fleet=FleetUse(tokens_last_hour=0, tokens_per_hour_cap=None, tokens_total=0),
        rate_gate_until=None,
        config_error=None,
        tracker_error=None,
        ticks=ticks,
        last_tick_at=now,
        idle=idle,
        candidates_waiting=0,
        startup_report=[],
    )


def ship_into_review(board: Path, name: str, attempt: int) -> None:
    """What the line's ship does on the board: the review state, and its ship comment."""
    path = board / f"{name}.md"
    moved = parse_issue_file(
        render_state_change(parse_issue_file(path.read_text()), "Human Review")
    )
    marker = f"jidoka-issue-demo-{name}/run:ship-{attempt}"
    text = render_comment_append(moved, "**Jidoka: shipped**", marker, datetime.now(UTC))
    assert text is not None
    path.write_text(text)


def state_of(board: Path, name: str) -> str:
    return parse_issue_file((board / f"{name}.md").read_text()).state


async def test_the_scripted_reviewer_sends_demo_1_back_once_and_merges_every_ship(
    tmp_path: Path,
) -> None:
    loaded = load_workflow(prepare(tmp_path / "demo"))
    assert loaded.config.review is not None and loaded.config.review.state == "Human Review"
    tracker = loaded.config.tracker
    assert isinstance(tracker, LocalTrackerConfig)
    board = Path(loaded.base_dir) / tracker.board
    out = io.StringIO()
    reviewer = scripted_reviewer(loaded, out)
    for name in ("DEMO-1", "DEMO-8"):
        ship_into_review(board, name, 1)

    # Both in review: DEMO-1 is sent back with a comment the board's forge reads as a
    # request for changes, DEMO-8 is merged; the run is held until the line picks them up.
    both = line_status({"DEMO-1": Phase.IN_REVIEW, "DEMO-8": Phase.IN_REVIEW})
    assert await reviewer(both) is True
    assert state_of(board, "DEMO-1") == "Todo" and state_of(board, "DEMO-8") == "Done"
    forge = BoardForge.from_config(tracker, loaded.config.review)
    request = await forge.read("DEMO-1", shipped_head=HEAD, url="u")
    assert [(r.author, r.verdict) for r in request.reviews] == [
        ("reviewer", ReviewVerdict.CHANGES_REQUESTED)
    ]
    assert [c.body for c in request.comments] == [REQUEST.format(issue="DEMO-1")]
    merged = await forge.read("DEMO-8", shipped_head=HEAD, url="u")
    assert merged.state is RequestState.MERGED
    said = out.getvalue().splitlines()
    assert said == [
        f"reviewer: DEMO-1 sent back to Todo: {REQUEST.format(issue='DEMO-1')}",
        "reviewer: DEMO-8 approved and merged (moved to Done)",
    ]
    assert await reviewer(both) is True and len(out.getvalue().splitlines()) == 2

    # The rework round ships back into review. It may run whole between two polls (during a
    # resume), the line looking in review at each: the file back in review is what counts.
    ship_into_review(board, "DEMO-1", 2)
    assert await reviewer(line_status({"DEMO-1": Phase.IN_REVIEW})) is True
    assert state_of(board, "DEMO-1") == "Done"
    assert out.getvalue().splitlines()[-1].startswith("reviewer: DEMO-1 approved and merged")
    assert (board / "DEMO-1.md").read_text().count("· reviewer") == 1
    assert await reviewer(line_status({})) is False


async def test_the_scripted_reviewer_waits_for_the_board_lock_and_leaves_others_moves(
    tmp_path: Path,
) -> None:
    loaded = load_workflow(prepare(tmp_path / "demo"))
    tracker = loaded.config.tracker
    assert isinstance(tracker, LocalTrackerConfig)
    board = Path(loaded.base_dir) / tracker.board
    out = io.StringIO()
    reviewer = scripted_reviewer(loaded, out)
    ship_into_review(board, "DEMO-8", 1)
    # A person (not the reviewer) moved DEMO-7 elsewhere while in review: not waited for.
    ship_into_review(board, "DEMO-7", 1)
    path = board / "DEMO-7.md"
    path.write_text(render_state_change(parse_issue_file(path.read_text()), "Awaiting Answers"))

    fd = os.open(board / LOCK_FILE_NAME, os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # the line is writing the board
        review = asyncio.create_task(
            reviewer(line_status({"DEMO-7": Phase.IN_REVIEW, "DEMO-8": Phase.IN_REVIEW}))
        )
        await asyncio.sleep(0.3)
        assert not review.done() and state_of(board, "DEMO-8") == "Human Review"
        fcntl.flock(fd, fcntl.LOCK_UN)
        assert await asyncio.wait_for(review, 10) is True
    finally:
        os.close(fd)
    assert state_of(board, "DEMO-8") == "Done"
    assert state_of(board, "DEMO-7") == "Awaiting Answers"
    assert await reviewer(line_status({"DEMO-8": Phase.SHIPPING})) is False  # merging
    assert await reviewer(line_status({"DEMO-7": Phase.IN_REVIEW})) is False
    assert "DEMO-7" not in out.getvalue()


async def test_until_idle_ends_on_an_idle_line_unless_held_open(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Without ``hold_open`` an idle line ends ``--until-idle`` on its next tick, an issue in
    review or not (it waits on people); held open, it ends only once the hold is released."""
    ticks = itertools.count(1)

    async def status(_client: object, _handle: object) -> LineStatus:
        return line_status({"DEMO-1": Phase.IN_REVIEW}, ticks=next(ticks))

    monkeypatch.setattr(run_module, "read_line_status", status)
    monkeypatch.setattr(run_module, "POLL_S", 0)
    holds: list[int] = []

    async def hold_open(line: LineStatus) -> bool:
        holds.append(line.ticks)
        return len(holds) < 5

    def follower(hold: HoldOpen | None) -> Follower:
        return Follower(
            client=cast(Any, None),
            handle=cast(Any, None),
            line="demo",
            out=io.StringIO(),
            resume_with=None,
            operator="demo",
            max_resumes=0,
            hold_open=hold,
        )

    assert await follower(None).follow(until_idle=True, exit_on_halt=True) == 0
    assert next(ticks) == 3  # two polls: the idle line, then its next tick
    assert await follower(hold_open).follow(until_idle=True, exit_on_halt=True) == 0
    assert len(holds) == 6  # held for four polls, then the idle line and its next tick


def test_a_run_may_end_with_issues_in_review_and_its_summary_says_so() -> None:
    """For a user, an issue in review waits on people: the summary names it and what next."""
    in_review = IssueStatus(
        workflow_id="jidoka-issue-demo-DEMO-1",
        line="demo",
        issue_id="DEMO-1",
        identifier="DEMO-1",
        title="Add a multiply function",
        url=None,
        phase=Phase.IN_REVIEW,
        tracker_state="Human Review",
        attempt=1,
        counters=IssueCounters(),
        last_outcome=None,
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
        started_at=None,
        finished_at=None,
        ship=None,
        preserved_branch=None,
    )
    text = summary_text(line_status({"DEMO-1": Phase.IN_REVIEW}), [in_review])
    assert "Summary of line demo: idle, 1 in review (waiting on people)" in text
    assert "in_review" in text
    assert "DEMO-1 is in review (Human Review): it waits on people" in text
    assert "jidoka why DEMO-1 --line demo" in text
