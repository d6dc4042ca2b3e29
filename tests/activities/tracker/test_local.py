"""The local board tracker on real files, with real concurrent processes."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from activities.tracker.base import TrackerError, TrackerErrorCategory
from activities.tracker.local import (
    LOCK_FILE_NAME,
    LocalBoard,
    parse_issue_file,
    render_issue_file,
    replace_if_unchanged,
)
from jidoka.config import LocalTrackerConfig
from jidoka.models import BlockerRef, Issue
from tests.support.paths import REPO_ROOT

WELL_FORMED = """\
---
# People write comments in front matter too.
title: "  Add a --verbose flag "
state: todo   # moved by hand
priority: 2
labels: [CLI, Good-First-Issue, cli]
blocked_by: [DEMO-1, DEMO-2, NOPE-9]
created_at: 2024-05-01
updated_at: 2024-05-02T10:30:00
owner: somebody
---

Print more.

Much more.

## Comments

### 2024-05-02T10:00:00Z · jidoka
<!-- jidoka:dispatch-1 -->
Picked up.
"""


def config(
    board: Path | str, active: tuple[str, ...] = ("Todo", "In Progress")
) -> LocalTrackerConfig:
    return LocalTrackerConfig.model_validate(
        {
            "kind": "local",
            "board": str(board),
            "active_states": list(active),
            "working_state": "In Progress",
            "terminal_states": ["Done", "Cancelled"],
            "done_state": "Done",
        }
    )


def write(board: Path, identifier: str, text: str) -> Path:
    path = board / f"{identifier}.md"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def board(tmp_path: Path) -> Path:
    folder = tmp_path / "board"
    folder.mkdir()
    return folder


def leftovers(board: Path) -> list[str]:
    """Temp files a write left behind (there must be none)."""
    return sorted(p.name for p in board.iterdir() if p.name.endswith(".tmp"))


# --------------------------------------------------------------------------------------------
# Reads
# --------------------------------------------------------------------------------------------


async def test_normalises_a_well_formed_board(board: Path) -> None:
    write(board, "DEMO-1", render_issue_file("Done already", "Done"))
    write(board, "DEMO-2", "---\ntitle: Underway\nstate: In Progress\n---\n")
    path = write(board, "DEMO-3", WELL_FORMED)

    issue = await LocalBoard(config(board)).fetch_issue("DEMO-3")

    assert issue == Issue(
        id="DEMO-3",
        identifier="DEMO-3",
        title="Add a --verbose flag",
        description="Print more.\n\nMuch more.",
        priority=2,
        state="todo",
        url=path.as_uri(),
        labels=["cli", "good-first-issue"],
        blocked_by=[
            BlockerRef(id="DEMO-1", identifier="DEMO-1", state="Done"),
            BlockerRef(id="DEMO-2", identifier="DEMO-2", state="In Progress"),
            BlockerRef(id="NOPE-9", identifier="NOPE-9", state=None),
        ],
        created_at=datetime(2024, 5, 1, tzinfo=UTC),
        updated_at=datetime(2024, 5, 2, 10, 30, tzinfo=UTC),
    )
    assert issue.url is not None and issue.url.startswith("file:///")


@pytest.mark.parametrize(
    ("front_matter", "expected"),
    [
        ("priority: high", {"priority": None}),
        ("priority: true", {"priority": None}),
        ("priority: 1.5", {"priority": None}),
        ("priority: -3", {"priority": -3}),
        ("labels: Bug", {"labels": ["bug"]}),
        ("labels: [1, null, {a: b}, ' UI ']", {"labels": ["1", "ui"]}),
        ("url: https://tracker.invalid/7", {"url": "https://tracker.invalid/7"}),
        (
            "created_at: 2024-05-01T12:00:00+02:00",
            {"created_at": datetime(2024, 5, 1, 10, tzinfo=UTC)},
        ),
        (
            "created_at: '2024-05-01T12:00:00Z'",
            {"created_at": datetime(2024, 5, 1, 12, tzinfo=UTC)},
        ),
        ("created_at: yesterday", {"created_at": None}),
        ("created_at: 42", {"created_at": None}),
    ],
)
async def test_normalises_optional_fields(
    board: Path, front_matter: str, expected: dict[str, object]
) -> None:
    write(board, "X-1", f"---\ntitle: T\nstate: Todo\n{front_matter}\n---\n")
    issue = await LocalBoard(config(board)).fetch_issue("X-1")
    assert {key: getattr(issue, key) for key in expected} == expected


async def test_description_is_none_when_only_comments_follow(board: Path) -> None:
    write(board, "X-1", "---\ntitle: T\nstate: Todo\n---\n\n## Comments\n\nsomething\n")
    assert (await LocalBoard(config(board)).fetch_issue("X-1")).description is None


async def test_candidates_are_the_issues_in_active_states(board: Path) -> None:
    write(board, "A-1", "---\ntitle: a\nstate: '  TODO '\n---\n")
    write(board, "A-2", "---\ntitle: b\nstate: in progress\n---\n")
    write(board, "A-3", "---\ntitle: c\nstate: Done\n---\n")
    write(board, "A-4", "---\ntitle: d\nstate: Backlog\n---\n")
    tracker = LocalBoard(config(board))

    candidates = await tracker.fetch_candidate_issues()
    assert [(i.identifier, i.state) for i in candidates] == [
        ("A-1", "TODO"),
        ("A-2", "in progress"),
    ]

    by_states = await tracker.fetch_issues_by_states(["done", "Backlog", "Nowhere"])
    assert [i.identifier for i in by_states] == ["A-3", "A-4"]

    by_ids = await tracker.fetch_issues_by_ids(["A-4", "GONE-1", "A-1", "A-4"])
    assert [i.identifier for i in by_ids] == ["A-4", "A-1"]


async def test_empty_inputs_return_nothing_without_a_scan(tmp_path: Path) -> None:
    tracker = LocalBoard(config(tmp_path / "no-such-board"))
    assert await tracker.fetch_issues_by_states([]) == []
    assert await tracker.fetch_issues_by_ids([]) == []
    # The same board with real inputs does look, and says the folder is missing: a missing
    # board must never read as "every issue is gone" during reconciliation.
    for call in (tracker.fetch_candidate_issues(), tracker.fetch_issues_by_ids(["X-1"])):
        with pytest.raises(TrackerError) as caught:
            await call
        assert caught.value.category is TrackerErrorCategory.MISSING_PROJECT


def test_board_must_be_resolved() -> None:
    for board in ("$BOARD_DIR", "relative/board"):
        with pytest.raises(TrackerError) as caught:
            LocalBoard(config(board))
        assert caught.value.category is TrackerErrorCategory.MISSING_PROJECT
        assert board in caught.value.message


async def test_only_markdown_files_directly_in_the_folder_count(board: Path) -> None:
    issue = "---\ntitle: t\nstate: Todo\n---\n"
    write(board, "REAL-1", issue)
    (board / ".HIDDEN-1.md").write_text(issue)
    (board / ".REAL-1.md.abc123.tmp").write_text(issue)
    (board / "REAL-1.md~").write_text(issue)
    (board / "notes.txt").write_text(issue)
    (board / "sub").mkdir()
    (board / "sub" / "NESTED-1.md").write_text(issue)
    (board / "FOLDER-1.md").mkdir()
    os.mkfifo(board / "PIPE-1.md")  # opening a FIFO for reading would block forever

    tracker = LocalBoard(config(board))
    assert [i.identifier for i in await tracker.fetch_candidate_issues()] == ["REAL-1"]
    assert [i.id for i in await tracker.fetch_issues_by_ids(["FOLDER-1", "PIPE-1"])] == []
    for identifier in ("FOLDER-1", "PIPE-1", ".HIDDEN-1"):
        with pytest.raises(TrackerError) as caught:
            await tracker.fetch_issue(identifier)
        assert caught.value.category is TrackerErrorCategory.NOT_FOUND


async def test_a_symlink_inside_the_board_reads_as_its_target(board: Path) -> None:
    write(board, "REAL-1", "---\ntitle: t\nstate: Todo\n---\n")
    (board / "ALIAS-1.md").symlink_to("REAL-1.md")
    tracker = LocalBoard(config(board))
    issue = await tracker.fetch_issue("ALIAS-1")
    assert (issue.identifier, issue.title) == ("ALIAS-1", "t")
    await tracker.set_state(issue, "In Progress")
    assert (board / "ALIAS-1.md").is_symlink()  # the write went to the target, link kept
    assert "state: In Progress" in (board / "REAL-1.md").read_text()


async def test_the_board_folder_may_itself_be_a_symlink(tmp_path: Path, board: Path) -> None:
    write(board, "REAL-1", "---\ntitle: t\nstate: Todo\n---\n")
    (tmp_path / "linked").symlink_to(board)
    tracker = LocalBoard(config(tmp_path / "linked"))
    assert [i.id for i in await tracker.fetch_candidate_issues()] == ["REAL-1"]
    moved = await tracker.set_state(await tracker.fetch_issue("REAL-1"), "Done")
    assert moved.state == "Done"


MALFORMED = {
    "no front matter": (b"title: x\nstate: Todo\n", "no front matter"),
    "unclosed front matter": (b"---\ntitle: x\nstate: Todo\n", "not closed"),
    "yaml error": (b"---\ntitle: [x\nstate: Todo\n---\n", "not valid YAML"),
    "impossible date": (b"---\ntitle: x\nstate: Todo\nday: 2024-13-45\n---\n", "not valid YAML"),
    "not a map": (b"---\n- title\n- state\n---\n", "must be a map"),
    "empty front matter": (b"---\n---\nbody\n", "must be a map"),
    "missing title": (b"---\nstate: Todo\n---\n", "'title' is missing"),
    "empty state": (b"---\ntitle: x\nstate: '  '\n---\n", "'state' is missing"),
    "list title": (b"---\ntitle: [a, b]\nstate: Todo\n---\n", "'title' must be text"),
    "not utf-8": (b"---\ntitle: caf\xe9\nstate: Todo\n---\n", "not UTF-8"),
}


@pytest.mark.parametrize("kind", sorted(MALFORMED))
async def test_malformed_files_are_left_out_of_lists_and_logged(
    board: Path, kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    content, problem = MALFORMED[kind]
    (board / "BAD-1.md").write_bytes(content)
    write(board, "GOOD-1", "---\ntitle: fine\nstate: Todo\n---\n")
    tracker = LocalBoard(config(board))

    with caplog.at_level(logging.WARNING, logger="activities.tracker.local"):
        candidates = await tracker.fetch_candidate_issues()
        by_states = await tracker.fetch_issues_by_states(["Todo"])
    assert [i.identifier for i in candidates] == ["GOOD-1"]
    assert [i.identifier for i in by_states] == ["GOOD-1"]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("BAD-1.md" in message and problem in message for message in warnings), warnings

    for read in (tracker.fetch_issue("BAD-1"), tracker.fetch_issues_by_ids(["GOOD-1", "BAD-1"])):
        with pytest.raises(TrackerError) as caught:
            await read
        assert caught.value.category is TrackerErrorCategory.MALFORMED_ISSUE
        assert "BAD-1.md" in caught.value.message and problem in caught.value.message


UNREADABLE_PROBE = """
import asyncio, concurrent.futures.thread, os, sys
from activities.tracker.base import TrackerError
from activities.tracker.local import LocalBoard
from jidoka.config import LocalTrackerConfig

if os.geteuid() == 0:  # root reads any file whatever its mode: read as nobody instead
    os.setgid(65534)
    os.setuid(65534)
board = LocalBoard(LocalTrackerConfig(kind="local", board=sys.argv[1], active_states=["Todo"],
                                      terminal_states=["Done"], done_state="Done"))

async def main() -> None:
    listed = await board.fetch_candidate_issues()
    try:
        await board.fetch_issue("LOCKED-1")
    except TrackerError as error:
        print(len(listed), error.category.value)

asyncio.run(main())
"""


def test_an_unreadable_file_is_malformed() -> None:
    # A world-traversable board (pytest's tmp folders are private to root), one unreadable file.
    folder = Path(tempfile.mkdtemp(prefix="jidoka-board-"))
    try:
        folder.chmod(0o755)
        path = write(folder, "LOCKED-1", "---\ntitle: t\nstate: Todo\n---\n")
        path.chmod(0)
        done = subprocess.run(
            [sys.executable, "-c", UNREADABLE_PROBE, str(folder)],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=REPO_ROOT,
        )
        assert done.stdout.split() == ["0", "tracker_malformed_issue"], done.stdout + done.stderr
    finally:
        shutil.rmtree(folder, ignore_errors=True)


async def test_a_file_too_large_is_malformed(board: Path) -> None:
    write(board, "HUGE-1", "---\ntitle: t\nstate: Todo\n---\n" + "x" * (5 * 1024 * 1024))
    with pytest.raises(TrackerError) as caught:
        await LocalBoard(config(board)).fetch_issue("HUGE-1")
    assert caught.value.category is TrackerErrorCategory.MALFORMED_ISSUE


async def test_a_missing_issue_is_not_found(board: Path) -> None:
    with pytest.raises(TrackerError) as caught:
        await LocalBoard(config(board)).fetch_issue("GONE-1")
    assert caught.value.category is TrackerErrorCategory.NOT_FOUND


async def test_nothing_outside_the_board_is_ever_read(tmp_path: Path, board: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    secret = "---\ntitle: secret\nstate: Todo\n---\nsecret body\n"
    (outside / "x.md").write_text(secret)
    (tmp_path / "x.md").write_text(secret)
    (board / "LINK-1.md").symlink_to(outside / "x.md")
    (board / "DIRLINK").symlink_to(outside)
    tracker = LocalBoard(config(board))

    escapes = ["../x", "../outside/x", str(outside / "x"), "/etc/passwd", "DIRLINK/x", "LINK-1"]
    escapes += ["", ".", "..", "X\x00", "a" * 10_000, "\udcff"]
    for identifier in escapes:
        with pytest.raises(TrackerError) as caught:
            await tracker.fetch_issue(identifier)
        assert caught.value.category is TrackerErrorCategory.NOT_FOUND, identifier[:40]
        assert len(caught.value.message) < 500
        assert "secret" not in caught.value.message
        fake = Issue.model_construct(id=identifier, identifier="x", title="x", state="Todo")
        for write_call in (tracker.set_state(fake, "Done"), tracker.add_comment(fake, "b", "m")):
            with pytest.raises(TrackerError) as caught:
                await write_call
            assert caught.value.category is TrackerErrorCategory.NOT_FOUND
    assert await tracker.fetch_issues_by_ids(escapes) == []
    assert await tracker.fetch_candidate_issues() == []  # the outside symlink is skipped
    assert (outside / "x.md").read_text() == secret
    assert (tmp_path / "x.md").read_text() == secret


# --------------------------------------------------------------------------------------------
# set_state
# --------------------------------------------------------------------------------------------


async def test_set_state_rewrites_only_the_state_line(board: Path) -> None:
    path = write(board, "DEMO-3", WELL_FORMED)
    path.chmod(0o640)
    before = path.read_bytes()
    tracker = LocalBoard(config(board))
    issue = await tracker.fetch_issue("DEMO-3")

    moved = await tracker.set_state(issue, "In Progress")

    after = path.read_bytes()
    old_line = b"state: todo   # moved by hand\n"
    new_line = b"state: In Progress   # moved by hand\n"
    assert after == before.replace(old_line, new_line)
    assert moved == issue.model_copy(update={"state": "In Progress"})
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    assert leftovers(board) == []


@pytest.mark.parametrize(
    ("line", "target", "expected"),
    [
        ('state: "Todo"\r\n', "In Progress", 'state: "In Progress"\r\n'),
        ("state:   'Todo' # why\n", "Won't do", "state:   'Won''t do' # why\n"),
        ("'state': Todo\n", "yes", "'state': \"yes\"\n"),
        ("state: Todo\n", "Review: team #2", 'state: "Review: team #2"\n'),
    ],
)
async def test_set_state_keeps_the_line_style(
    board: Path, line: str, target: str, expected: str
) -> None:
    newline = "\r\n" if line.endswith("\r\n") else "\n"
    head = f"---{newline}title: t{newline}"
    tail = f"---{newline}body{newline}"
    path = board / "S-1.md"
    path.write_bytes((head + line + tail).encode())
    tracker = LocalBoard(config(board))
    moved = await tracker.set_state(await tracker.fetch_issue("S-1"), target)
    assert moved.state == target
    assert path.read_bytes() == (head + expected + tail).encode()


async def test_set_state_to_the_current_state_writes_nothing(board: Path) -> None:
    path = write(board, "S-1", "---\ntitle: t\nstate: in progress\n---\n")
    before = path.stat()
    tracker = LocalBoard(config(board))
    issue = await tracker.fetch_issue("S-1")
    stale = issue.model_copy(update={"state": "Todo"})  # already moved where we want it
    for expected in (issue, stale):
        assert (await tracker.set_state(expected, " In Progress ")).state == "in progress"
    after = path.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)


async def test_set_state_refuses_when_someone_moved_the_issue(board: Path) -> None:
    path = write(board, "S-1", "---\ntitle: t\nstate: Todo\n---\n")
    tracker = LocalBoard(config(board))
    issue = await tracker.fetch_issue("S-1")
    path.write_text("---\ntitle: t\nstate: Cancelled\n---\n")
    before = path.read_bytes()

    with pytest.raises(TrackerError) as caught:
        await tracker.set_state(issue, "Done")

    assert caught.value.category is TrackerErrorCategory.CONFLICT
    assert "'Todo'" in caught.value.message and "'Cancelled'" in caught.value.message
    assert path.read_bytes() == before


@pytest.mark.parametrize(
    ("content", "category"),
    [
        ("---\ntitle: t\nstate: >-\n  Todo\n---\n", TrackerErrorCategory.UNPROCESSABLE),
        ("---\n{title: t, state: Todo}\n---\n", TrackerErrorCategory.UNPROCESSABLE),
        ("---\ntitle: t\nstate: &s Todo\nalias: *s\n---\n", TrackerErrorCategory.UNPROCESSABLE),
        ("---\ntitle: t\nstate: [Todo\n---\n", TrackerErrorCategory.MALFORMED_ISSUE),
        ("no front matter at all\n", TrackerErrorCategory.MALFORMED_ISSUE),
    ],
)
async def test_set_state_never_overwrites_what_it_cannot_edit_exactly(
    board: Path, content: str, category: TrackerErrorCategory
) -> None:
    path = write(board, "S-1", content)
    tracker = LocalBoard(config(board))
    issue = Issue(id="S-1", identifier="S-1", title="t", state="Todo")
    with pytest.raises(TrackerError) as caught:
        await tracker.set_state(issue, "Done")
    assert caught.value.category is category
    assert path.read_text() == content
    if category is TrackerErrorCategory.MALFORMED_ISSUE:
        with pytest.raises(TrackerError) as caught:
            await tracker.add_comment(issue, "body", "marker")
        assert caught.value.category is category
        assert path.read_text() == content
    assert leftovers(board) == []


async def test_set_state_rejects_an_empty_target(board: Path) -> None:
    write(board, "S-1", "---\ntitle: t\nstate: Todo\n---\n")
    tracker = LocalBoard(config(board))
    with pytest.raises(TrackerError) as caught:
        await tracker.set_state(await tracker.fetch_issue("S-1"), "  ")
    assert caught.value.category is TrackerErrorCategory.UNPROCESSABLE


# --------------------------------------------------------------------------------------------
# add_comment
# --------------------------------------------------------------------------------------------


async def test_add_comment_is_idempotent_by_marker(board: Path) -> None:
    path = write(board, "C-1", "---\ntitle: t\nstate: Todo\n---\nThe description.")
    tracker = LocalBoard(config(board))
    issue = await tracker.fetch_issue("C-1")

    assert await tracker.add_comment(issue, "First line\nsecond line\n", "ship-1") is True
    assert await tracker.add_comment(issue, "ignored", "ship-1") is False
    assert await tracker.add_comment(issue, "Another", "ship-2") is True

    text = path.read_text()
    assert text.startswith("---\ntitle: t\nstate: Todo\n---\nThe description.\n\n## Comments\n\n")
    assert text.count("## Comments") == 1
    blocks = text.split("## Comments\n\n")[1].split("\n\n")
    assert [block.splitlines()[1:] for block in blocks if block] == [
        ["<!-- jidoka:ship-1 -->", "First line", "second line"],
        ["<!-- jidoka:ship-2 -->", "Another"],
    ]
    for block in filter(None, blocks):
        stamp = block.splitlines()[0].removeprefix("### ").removesuffix(" · jidoka")
        assert datetime.fromisoformat(stamp).tzinfo is not None
    assert "ignored" not in text
    assert (await tracker.fetch_issue("C-1")).description == "The description."
    assert parse_issue_file(text).markers() == {"ship-1", "ship-2"}


async def test_add_comment_appends_under_an_existing_heading(board: Path) -> None:
    path = write(board, "C-1", WELL_FORMED)
    tracker = LocalBoard(config(board))
    issue = await tracker.fetch_issue("C-1")
    assert await tracker.add_comment(issue, "again", "dispatch-1") is False
    assert await tracker.add_comment(issue, "next", "dispatch-2") is True
    text = path.read_text()
    assert text.startswith(WELL_FORMED)
    assert text.count("## Comments") == 1
    assert (await tracker.fetch_issue("C-1")).description == issue.description


async def test_add_comment_still_finds_its_markers_when_the_heading_is_gone(board: Path) -> None:
    path = write(board, "C-1", WELL_FORMED.replace("## Comments\n", ""))
    tracker = LocalBoard(config(board))
    issue = await tracker.fetch_issue("C-1")
    assert await tracker.add_comment(issue, "again", "dispatch-1") is False
    assert path.read_text() == WELL_FORMED.replace("## Comments\n", "")


@pytest.mark.parametrize("marker", ["", " padded", "a\nb", "x-->y", "m" * 1001])
async def test_add_comment_rejects_unusable_markers(board: Path, marker: str) -> None:
    path = write(board, "C-1", "---\ntitle: t\nstate: Todo\n---\n")
    tracker = LocalBoard(config(board))
    with pytest.raises(TrackerError) as caught:
        await tracker.add_comment(await tracker.fetch_issue("C-1"), "body", marker)
    assert caught.value.category is TrackerErrorCategory.UNPROCESSABLE
    assert path.read_text() == "---\ntitle: t\nstate: Todo\n---\n"


def test_a_replace_refuses_a_file_changed_since_it_was_read(board: Path) -> None:
    path = write(board, "C-1", "---\ntitle: t\nstate: Todo\n---\n")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    path.write_text("---\ntitle: edited by a person\nstate: Todo\n---\n")

    assert replace_if_unchanged(str(path), b"ours", digest, 0o644) is False
    assert path.read_text() == "---\ntitle: edited by a person\nstate: Todo\n---\n"
    assert leftovers(board) == []

    fresh = hashlib.sha256(path.read_bytes()).hexdigest()
    assert replace_if_unchanged(str(path), b"ours", fresh, 0o600) is True
    assert path.read_bytes() == b"ours"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


# --------------------------------------------------------------------------------------------
# Concurrency: other tasks, another orchestrator process, a person editing the file
# --------------------------------------------------------------------------------------------

OTHER_ORCHESTRATOR = """
import asyncio, json, sys, time
from activities.tracker.base import TrackerError, TrackerErrorCategory
from activities.tracker.local import LocalBoard
from jidoka.config import LocalTrackerConfig

board, count = sys.argv[1], int(sys.argv[2])
config = LocalTrackerConfig(kind="local", board=board, active_states=["Todo", "In Progress"],
                            terminal_states=["Done"], done_state="Done")

async def toggle(tracker):
    moved = conflicts = 0
    for _ in range(count // 4):
        issue = await tracker.fetch_issue("RACE-1")
        target = "Todo" if issue.state == "In Progress" else "In Progress"
        try:
            await tracker.set_state(issue, target)
            moved += 1
        except TrackerError as exc:
            assert exc.category is TrackerErrorCategory.CONFLICT, exc
            conflicts += 1
    return moved, conflicts

async def main():
    tracker = LocalBoard(config)
    issue = await tracker.fetch_issue("RACE-1")
    print("ready", flush=True)
    sys.stdin.readline()
    started = time.time()
    *results, moved = await asyncio.gather(
        *(tracker.add_comment(issue, f"process {i}", f"process-{i}") for i in range(count)),
        *(tracker.add_comment(issue, "shared", f"shared-{i}") for i in range(count)),
        toggle(tracker),
    )
    report = {"added": results[:count], "shared": results[count:], "moved": moved,
              "started": started, "ended": time.time()}
    print(json.dumps(report), flush=True)

asyncio.run(main())
"""


async def start_python(code: str, *args: str) -> asyncio.subprocess.Process:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        code,
        *args,
        cwd=REPO_ROOT,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    assert process.stdout is not None
    assert (await asyncio.wait_for(process.stdout.readline(), 30)).strip() == b"ready"
    return process


async def test_concurrent_writers_in_tasks_and_another_process(board: Path) -> None:
    path = write(board, "RACE-1", WELL_FORMED.replace("state: todo", "state: Todo"))
    count = 40
    other = await start_python(OTHER_ORCHESTRATOR, str(board), str(count))
    tracker = LocalBoard(config(board))
    issue = await tracker.fetch_issue("RACE-1")

    async def toggle() -> None:
        for _ in range(count // 4):
            current = await tracker.fetch_issue("RACE-1")
            target = "Todo" if current.state == "In Progress" else "In Progress"
            try:
                await tracker.set_state(current, target)
            except TrackerError as exc:
                assert exc.category is TrackerErrorCategory.CONFLICT

    assert other.stdin is not None and other.stdout is not None
    other.stdin.write(b"go\n")
    await other.stdin.drain()
    started = time.time()
    ours = await asyncio.gather(
        *(tracker.add_comment(issue, f"task {i}", f"task-{i}") for i in range(count)),
        *(tracker.add_comment(issue, "shared", f"shared-{i}") for i in range(count)),
        toggle(),
    )
    ended = time.time()
    report = json.loads(await asyncio.wait_for(other.stdout.readline(), 60))
    assert await other.wait() == 0
    assert report["started"] < ended and started < report["ended"], "the writers never overlapped"

    assert ours[:count] == [True] * count
    assert report["added"] == [True] * count
    # Each shared marker was written by exactly one of the two writers.
    assert [a + b for a, b in zip(ours[count : 2 * count], report["shared"], strict=True)] == [
        1
    ] * count
    text = path.read_text()
    parsed = parse_issue_file(text)
    assert parsed.state in ("Todo", "In Progress")
    for marker in [f"task-{i}" for i in range(count)] + [f"process-{i}" for i in range(count)]:
        assert text.count(f"<!-- jidoka:{marker} -->") == 1, marker
    for i in range(count):
        assert text.count(f"<!-- jidoka:shared-{i} -->") == 1
    assert text.count("## Comments") == 1
    assert parsed.markers() >= {"dispatch-1"}
    assert leftovers(board) == []
    assert (board / LOCK_FILE_NAME).exists()


HUMAN_EDITOR = """
import os, sys, time
path, stop = sys.argv[1], sys.argv[2]
prefix = b"title: Edited by a person "

def edit(number):
    # Saves in place, as many editors do: the bytes of the title change, nothing else.
    fd = os.open(path, os.O_RDWR)
    try:
        data = os.pread(fd, 1 << 22, 0)
        at = data.find(prefix)
        assert at >= 0, data[:200]
        os.pwrite(fd, b"%07d" % number, at + len(prefix))
    finally:
        os.close(fd)

print("ready", flush=True)
edits = 0
while not os.path.exists(stop):
    edits += 1
    edit(edits)
    time.sleep(0.001)
edits += 1
edit(edits)
print(edits, flush=True)
"""


async def test_a_person_editing_the_file_meanwhile_loses_nothing(
    board: Path, tmp_path: Path
) -> None:
    path = write(
        board, "EDIT-1", "---\ntitle: Edited by a person 0000000\nstate: Todo\n---\nBody.\n"
    )
    stop = tmp_path / "stop"
    tracker = LocalBoard(config(board))
    issue = await tracker.fetch_issue("EDIT-1")
    torn: list[str] = []
    reads = 0
    observing = threading.Event()
    observing.set()

    def observe() -> None:
        nonlocal reads
        while observing.is_set():
            text = path.read_text()
            reads += 1
            try:
                parse_issue_file(text)
            except ValueError as exc:
                torn.append(f"{exc}: {text[:80]!r}")

    observer = threading.Thread(target=observe)
    observer.start()
    human = await start_python(HUMAN_EDITOR, str(path), str(stop))
    count = 60
    try:
        added: list[bool] = []
        deadline = time.monotonic() + 20
        for i in range(count):
            while True:
                try:
                    added.append(await tracker.add_comment(issue, f"note {i}", f"note-{i}"))
                    break
                except TrackerError as exc:
                    # A person saving faster than we can write is a retryable conflict.
                    assert exc.category is TrackerErrorCategory.CONFLICT and exc.retryable
                    assert time.monotonic() < deadline
        stop.touch()
        assert human.stdout is not None
        last_edit = int(await asyncio.wait_for(human.stdout.readline(), 30))
        assert await human.wait() == 0
        assert await tracker.add_comment(issue, "after the person", "after") is True
    finally:
        observing.clear()
        observer.join()
        if human.returncode is None:
            human.kill()
            await human.wait()

    assert added == [True] * count
    assert torn == [] and reads > 0
    text = path.read_text()
    final = parse_issue_file(text)
    assert final.title == f"Edited by a person {last_edit:07d}"
    assert final.markers() == {f"note-{i}" for i in range(count)} | {"after"}
    for i in range(count):
        assert text.count(f"<!-- jidoka:note-{i} -->") == 1
    assert final.description == "Body."
    assert leftovers(board) == []
