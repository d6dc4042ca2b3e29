"""``jidoka demo`` (what ``make demo`` runs): a fresh copy of examples/demo under .jidoka/demo,
its sample project turned into a git repository, and ``jidoka run --until-idle`` on it.

The demo line halts several times on purpose (a hallucinated success, an agent's HALT, a token
burn, a hook timeout). Each time it prints the halt and the exact commands to resume it; by
default the demo then resumes by itself with a root cause (``--resume-with``), or waits for you
to resume it from another terminal with ``--interactive``.

Every ship goes into review (``review:`` in the demo's WORKFLOW.md), where a scripted reviewer
plays the person: it sends DEMO-1 back once with a comment (a rework round), then approves and
merges it, and every other issue that reaches review, by editing their board files.

At its end the demo writes the line's report (``jidoka report``: throughput, lead time, value
and waste in tokens and money, the Pareto of stops) to ``report.html`` in the demo's folder.
Its prices are illustrative: ``pricing:`` in the demo's WORKFLOW.md prices a made-up model.
"""

from __future__ import annotations

import argparse
import asyncio
import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Generator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

from activities.tracker.local import (
    COMMENTS_HEADING,
    LOCK_FILE_NAME,
    IssueFile,
    MalformedIssueFile,
    UnwritableEdit,
    parse_issue_file,
    render_state_change,
    replace_if_unchanged,
)
from cli.common import load_or_fail
from cli.errors import CliError, SubParsers
from cli.report import DEFAULT_SINCE, build_report, parse_window, summary_line, write_html
from cli.run import Connection, run_line
from jidoka.config import LocalTrackerConfig
from jidoka.models import LoadedWorkflow
from jidoka.outcomes import Phase
from jidoka.payloads import LineStatus

DEFAULT_ROOT_CAUSE = (
    "demo: each halt comes from the scripted scenario written in the issue; reviewed and accepted"
)
SENT_BACK = "DEMO-1"
"""The issue the scripted reviewer sends back once (its board file says so)."""
REVIEWER = "reviewer"
REQUEST = (
    "Please update changes/{issue}.md in a new commit so that it says which attempt made the "
    "change."
)
"""The ``ship`` scenario's next round rewrites that note with its attempt number."""
LOCK_TIMEOUT_S = 10.0
REVIEWER_PATIENCE_S = 120.0
"""How long the reviewer keeps the run open for an issue it moved that stays in review (the
issue's own poll, ``review.poll_interval_s``, picks a move up well within it)."""


def repository_root() -> Path:
    return Path(__file__).resolve().parents[1]


def add_parser(subparsers: SubParsers) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="run the demo line (examples/demo) until it is idle",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--dir", default=None, help="where to build the demo (default .jidoka/demo)"
    )
    parser.add_argument(
        "--interactive", action="store_true", help="wait for you to resume each halt yourself"
    )
    parser.add_argument("--resume-with", default=DEFAULT_ROOT_CAUSE, metavar="ROOT_CAUSE")
    parser.add_argument("--json", action="store_true", help="print the final summary as JSON")
    parser.add_argument("--port", type=int, default=7233)
    parser.add_argument("--ui-port", type=int, default=8233)
    parser.set_defaults(handler=run)


def prepare(target: Path) -> Path:
    """A fresh demo folder: WORKFLOW.md, the board, a new git repository of the sample project."""
    source = repository_root() / "examples" / "demo"
    if not (source / "WORKFLOW.md").is_file():
        raise CliError(f"the demo lives in a checkout of the repository; {source} not found")
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    shutil.copy2(source / "WORKFLOW.md", target / "WORKFLOW.md")
    shutil.copytree(source / "board", target / "board")
    repo = target / "sample-repo"
    shutil.copytree(source / "sample-repo", repo)
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "Jidoka Demo",
        "GIT_AUTHOR_EMAIL": "demo@jidoka.invalid",
        "GIT_COMMITTER_NAME": "Jidoka Demo",
        "GIT_COMMITTER_EMAIL": "demo@jidoka.invalid",
    }
    for command in (
        ["init", "-q", "-b", "main"],
        ["add", "-A"],
        ["commit", "-q", "-m", "calc: initial"],
    ):
        subprocess.run(["git", *command], cwd=repo, check=True, env=env, capture_output=True)
    return target / "WORKFLOW.md"


class ScriptedReviewer:
    """The person who reviews the demo's ships, by editing the board files as one would.

    At every poll of the line (``run_line``'s ``hold_open``), each issue in phase
    ``in_review`` whose file is in the review state is acted on: :data:`SENT_BACK` the first
    time gets a comment and goes back to an active state (a rework round); every other time,
    and every other issue, goes to the done state (on the local board, the merge). An edit
    holds the board lock the line's own writes hold (``<board>/.jidoka-board.lock``) and
    replaces the file atomically, as activities/tracker/local.py does.

    What it reads is the board, not the line's phases: the follow polls the line about once
    a second, and a whole rework round can run between two polls (while a resume is under
    way), so the issue may look in review at every poll. A file back in the review state after
    its move is a new ship into review; the file still where it moved it is a move the issue
    has not picked up yet.

    It keeps the run open while an issue it moved is still in review in the line's status (up
    to :data:`REVIEWER_PATIENCE_S` after the move): the demo ends only after every review it
    took part in is over. An issue someone else moved elsewhere is not waited for.
    """

    def __init__(
        self,
        board: Path,
        *,
        review_state: str,
        rework_state: str,
        done_state: str,
        out: TextIO,
        sent_back: str = SENT_BACK,
        repo: Path | None = None,
        branch_prefix: str = "",
    ) -> None:
        self._board = board
        self._repo = repo
        """Where ships are pushed: the reviewer reads the reworked note there."""
        self._branch_prefix = branch_prefix
        self._review_state = review_state
        self._rework_state = rework_state
        self._done_state = done_state
        self._out = out
        self._to_send_back = sent_back
        self._sent_back: set[str] = set()
        self._moved: dict[str, float] = {}
        """Issues this reviewer moved out of the review state (when), still in review in the
        line's status at the last poll."""
        self._failed: set[str] = set()

    async def __call__(self, status: LineStatus) -> bool:
        in_review = sorted({e.identifier for e in status.running if e.phase is Phase.IN_REVIEW})
        now = time.monotonic()
        self._moved = {i: at for i, at in self._moved.items() if i in in_review}
        hold = False
        for identifier in in_review:
            said = await asyncio.to_thread(self._review, identifier)
            if said is not None:
                self._moved[identifier] = now
                self._say(said)
                hold = True
            elif identifier in self._moved:
                hold = hold or now - self._moved[identifier] < REVIEWER_PATIENCE_S
        return hold

    def _review(self, identifier: str) -> str | None:
        """One review, its edit under the board lock: what was done, or None (the file is not
        in the review state, or the edit could not be made: said once)."""
        path = self._board / f"{identifier}.md"
        try:
            # Reads need no lock (every write replaces the file whole); most polls stop here.
            if parse_issue_file(path.read_text("utf-8")).state != self._review_state:
                return None
            if identifier in self._sent_back:
                note = self._note_on_branch(identifier)
                answer = f"; changes/{identifier}.md now says: {note}" if note else ""
            else:
                answer = ""
            with board_lock(self._board):
                raw = path.read_bytes()
                issue_file = parse_issue_file(raw.decode("utf-8"))
                if issue_file.state != self._review_state:
                    return None
                if identifier == self._to_send_back and identifier not in self._sent_back:
                    request = REQUEST.format(issue=identifier)
                    moved = parse_issue_file(render_state_change(issue_file, self._rework_state))
                    text = with_person_comment(moved, REVIEWER, request)
                    said = f"{identifier} sent back to {self._rework_state}: {request}"
                else:
                    text = render_state_change(issue_file, self._done_state)
                    said = f"{identifier} approved and merged (moved to {self._done_state})"
                    said += answer
                digest = hashlib.sha256(raw).hexdigest()
                mode = path.stat().st_mode & 0o777
                if not replace_if_unchanged(str(path), text.encode("utf-8"), digest, mode):
                    return None  # edited meanwhile: read again at the next poll
        except (OSError, UnicodeError, MalformedIssueFile, UnwritableEdit) as error:
            if identifier not in self._failed:
                self._failed.add(identifier)
                self._say(f"cannot review {identifier}: {error}")
            return None
        if identifier == self._to_send_back:
            self._sent_back.add(identifier)
        return said

    def _note_on_branch(self, identifier: str) -> str | None:
        """The last line of the note the request was about, on the branch in review."""
        if self._repo is None:
            return None
        where = f"{self._branch_prefix}{identifier}:changes/{identifier}.md"
        try:
            shown = subprocess.run(
                ["git", "show", where],
                cwd=self._repo,
                capture_output=True,
                text=True,
                check=False,
                timeout=10,
            )
        except (OSError, subprocess.TimeoutExpired):
            return None
        lines = [line.strip() for line in shown.stdout.splitlines() if line.strip()]
        return lines[-1] if shown.returncode == 0 and lines else None

    def _say(self, text: str) -> None:
        print(f"reviewer: {text}", file=self._out, flush=True)


def scripted_reviewer(loaded: LoadedWorkflow, out: TextIO) -> ScriptedReviewer:
    """The demo's reviewer for its line: the board, review and done states of its WORKFLOW.md."""
    config = loaded.config
    tracker, review = config.tracker, config.review
    if not isinstance(tracker, LocalTrackerConfig) or review is None:
        raise CliError(f"{loaded.path}: the demo needs a local board and a review: section")
    base = Path(loaded.base_dir)
    return ScriptedReviewer(
        base / tracker.board,
        review_state=review.state,
        rework_state=tracker.active_states[0],
        done_state=tracker.done_state,
        out=out,
        repo=base / config.workspace.repo,
        branch_prefix=config.workspace.branch_prefix,
    )


@contextmanager
def board_lock(board: Path) -> Generator[None]:
    """The board's exclusive lock, the one the line holds for each of its edits."""
    fd = os.open(board / LOCK_FILE_NAME, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
    try:
        # Polling, not a blocking flock: a thread stuck in flock could not be given up on.
        deadline = time.monotonic() + LOCK_TIMEOUT_S
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise TimeoutError(f"the board lock in {board} is held by another") from None
                time.sleep(0.01)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def with_person_comment(issue_file: IssueFile, author: str, body: str) -> str:
    """The file with a person's comment appended under ``## Comments`` (created if missing),
    written as a person writes one on the board: a ``### <time> · <author>`` header, no marker."""
    nl = issue_file.newline
    text = issue_file.text.rstrip("\r\n")
    if issue_file.comments_start is None:
        text += f"{nl}{nl}{COMMENTS_HEADING}"
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return f"{text}{nl}{nl}### {stamp} · {author}{nl}{body}{nl}"


REPORT_FILE = "report.html"


class ReportWriter:
    """Writes the demo line's report at the end of the run, while its worker still answers
    the status queries of the issues left halted or paused."""

    def __init__(self, loaded: LoadedWorkflow, path: Path, out: TextIO) -> None:
        self._loaded = loaded
        self._path = path
        self._out = out

    async def __call__(self, connection: Connection) -> None:
        now = datetime.now(UTC)
        report = await build_report(
            connection.client,
            self._loaded.config.line,
            parse_window(DEFAULT_SINCE, None, now),
            now=now,
            config=self._loaded.config,
            ui_url=connection.ui_url,
        )
        path = write_html(report, self._path)
        pricing = self._loaded.config.pricing
        model = pricing.model if pricing is not None else None
        print(
            f"\njidoka report: {summary_line(report)}\n"
            f"  (the prices are illustrative: pricing: in the demo's WORKFLOW.md prices a "
            f"made-up model, {model})\n"
            f"  the report, one self-contained page: {path}",
            file=self._out,
            flush=True,
        )


def run(args: argparse.Namespace) -> int:
    target = Path(args.dir) if args.dir else Path.cwd() / ".jidoka" / "demo"
    workflow = prepare(target.resolve())
    # Under --json, stdout is the summary document alone: what a person reads goes to stderr.
    say = sys.stderr if args.json else sys.stdout
    print(f"jidoka demo: a fresh line in {workflow.parent}", file=say)
    run_args = argparse.Namespace(
        workflow=str(workflow),
        until_idle=True,
        json=args.json,
        resume_with=None if args.interactive else args.resume_with,
        operator="demo",
        max_resumes=10,
        port=args.port,
        ui_port=args.ui_port,
        wait_when_halted=args.interactive,
    )
    loaded = load_or_fail(str(workflow))
    reviewer = scripted_reviewer(loaded, say)
    report = ReportWriter(loaded, workflow.parent / REPORT_FILE, say)
    code = asyncio.run(run_line(run_args, hold_open=reviewer, at_end=report))
    print(
        "\nThe line's histories stay in "
        f"{workflow.parent / '.jidoka' / 'temporal.db'}. To explore them later:\n"
        f"  jidoka run {workflow}            # the Web UI and a worker again (the line resumes)\n"
        f"  jidoka why DEMO-2 --line demo    # from another terminal while it runs\n"
        f"  jidoka report --line demo        # the report again, from another terminal",
        file=say,
    )
    return code
