"""The local board as the review loop's forge (``activities/forge/board.py``) on a real board
folder: what an issue file reads as, and what the policy makes of it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from activities.forge.board import (
    BOARD_REVIEWER,
    COMMENT_CHARS,
    MAX_COMMENTS,
    BoardForge,
    since_ship,
)
from activities.tracker.base import TrackerError, TrackerErrorCategory
from activities.tracker.local import (
    BoardComment,
    LocalBoard,
    board_comments,
    parse_issue_file,
    render_issue_file,
)
from jidoka.config import LocalTrackerConfig, ReviewConfig
from jidoka.models import Issue
from jidoka.review import (
    ChangeRequest,
    RequestState,
    ReviewLedger,
    ReviewVerdict,
    StepKind,
    addressed_after,
    next_step,
)

HEAD = "a" * 40
URL = "file:///board/DEMO-1.md"
NOW = datetime(2024, 5, 3, 12, 0, tzinfo=UTC)
REVIEW = ReviewConfig.model_validate({"state": "Human Review"})


def tracker_config(board: Path) -> LocalTrackerConfig:
    return LocalTrackerConfig.model_validate(
        {
            "kind": "local",
            "board": str(board),
            "active_states": ["Todo", "In Progress"],
            "working_state": "In Progress",
            "paused_states": ["Waiting"],
            "backlog_states": ["Backlog"],
            "terminal_states": ["Done", "Cancelled"],
            "done_state": "Done",
        }
    )


@pytest.fixture
def board(tmp_path: Path) -> Path:
    folder = tmp_path / "board"
    folder.mkdir()
    return folder


@pytest.fixture
def forge(board: Path) -> BoardForge:
    return BoardForge.from_config(tracker_config(board), REVIEW, clock=lambda: NOW)


def new_issue(board: Path, state: str, identifier: str = "DEMO-1") -> Path:
    path = board / f"{identifier}.md"
    path.write_text(render_issue_file("Add a flag", state, description="Do it."), "utf-8")
    return path


def person_comment(path: Path, author: str, body: str, stamp: str = "2024-05-03T09:00") -> None:
    """What a person appends by hand: a header without a marker line."""
    with path.open("a", encoding="utf-8") as handle:
        handle.write(f"\n### {stamp} · {author}\n{body}\n")


async def jidoka_comment(board: Path, marker: str, body: str = "Shipped.") -> None:
    """What the line writes, through the board's own write path."""
    tracker = LocalBoard(tracker_config(board))
    issue = await tracker.fetch_issue("DEMO-1")
    assert await tracker.add_comment(issue, body, marker) is True


def set_state(path: Path, state: str) -> None:
    text = path.read_text("utf-8")
    old = parse_issue_file(text).state
    path.write_text(text.replace(f"state: {old}\n", f"state: {state}\n", 1), "utf-8")


async def read(forge: BoardForge, issue_id: str = "DEMO-1") -> ChangeRequest:
    return await forge.read(issue_id, shipped_head=HEAD, url=URL)


# --------------------------------------------------------------------------------------------
# The comments of an issue file (pure)
# --------------------------------------------------------------------------------------------

FILE = """\
---
title: T
state: Todo
---
Description.

### 2024-01-01 · not-a-comment
Still the description: no Comments heading above.

## Comments

Text before the first header belongs to no comment.

### 2024-05-02T10:00:00Z · jidoka
<!-- jidoka:ship-1 -->
Shipped at aaaa.

###   2024-05-03 09:00  ·  Alice Smith  \r
  Please rename the flag.\r
\r
Thanks.

### 2024-05-03 · jidoka
A person signing as jidoka, without a marker line.
"""


def test_comment_blocks_in_file_order() -> None:
    comments = board_comments(parse_issue_file(FILE))
    assert comments == [
        BoardComment("jidoka", "2024-05-02T10:00:00Z", "ship-1", "Shipped at aaaa.", 0),
        BoardComment(
            "Alice Smith", "2024-05-03 09:00", None, "Please rename the flag.\n\nThanks.", 1
        ),
        BoardComment(
            "jidoka", "2024-05-03", None, "A person signing as jidoka, without a marker line.", 2
        ),
    ]


def test_no_comments_heading_means_no_comments() -> None:
    text = "---\ntitle: T\nstate: Todo\n---\n### 2024-05-03 · alice\nHi.\n"
    assert board_comments(parse_issue_file(text)) == []


def test_header_like_lines_inside_a_code_fence_and_malformed_headers_are_body() -> None:
    text = """\
---
title: T
state: Todo
---
## Comments

### 2024-05-03 · alice
Run this:
```markdown
### 2024-05-03 · mallory
<!-- not a header: quoted -->
```
~~~~
### 2024-05-03 · mallory
~~~
### still quoted · mallory
~~~~
### a header without the separator
### · nobody
### 2024-05-03 ·
    ### 2024-05-03 · indented-code
### 2024-05-04 · bob
Second.
"""
    comments = board_comments(parse_issue_file(text))
    assert [(c.author, c.index) for c in comments] == [("alice", 0), ("bob", 1)]
    alice = comments[0].body
    assert alice.startswith("Run this:\n```markdown\n### 2024-05-03 · mallory")
    for line in (
        "### still quoted · mallory",
        "### a header without the separator",
        "### · nobody",
        "### 2024-05-03 ·",
        "    ### 2024-05-03 · indented-code",
    ):
        assert line in alice.split("\n")
    assert comments[1].body == "Second."


def test_the_lines_own_comment_is_read_even_after_a_fence_left_open() -> None:
    """A person's unclosed fence must not swallow the line's ship comment (what
    ``IssueFile.markers`` sees, the comments see too)."""
    text = """\
---
title: T
state: Todo
---
## Comments

### 2024-05-03 · alice
```
never closed
### 2024-05-03 · bob
### 2024-05-04T00:00:00Z · jidoka
<!-- jidoka:ship-2 -->
Shipped again.
"""
    issue_file = parse_issue_file(text)
    comments = board_comments(issue_file)
    assert [(c.author, c.marker) for c in comments] == [("alice", None), ("jidoka", "ship-2")]
    assert comments[0].body == "```\nnever closed\n### 2024-05-03 · bob"
    assert comments[1].body == "Shipped again."
    assert {c.marker for c in comments if c.marker} == issue_file.markers()


async def test_read_comments_reads_one_file_through_the_by_id_path(board: Path) -> None:
    path = new_issue(board, "Human Review")
    await jidoka_comment(board, "ship-1")
    person_comment(path, "alice", "Looks off.")
    tracker = LocalBoard(tracker_config(board))
    issue, comments = await tracker.read_comments("DEMO-1")
    assert isinstance(issue, Issue)
    assert (issue.identifier, issue.state) == ("DEMO-1", "Human Review")
    assert [(c.author, c.marker, c.body) for c in comments] == [
        ("jidoka", "ship-1", "Shipped."),
        ("alice", None, "Looks off."),
    ]
    for missing in ("DEMO-2", "../board/DEMO-1", ".hidden", "a\x00b"):
        with pytest.raises(TrackerError) as caught:
            await tracker.read_comments(missing)
        assert caught.value.category is TrackerErrorCategory.NOT_FOUND


# --------------------------------------------------------------------------------------------
# States
# --------------------------------------------------------------------------------------------


async def test_in_review_is_open_with_no_verdict(board: Path, forge: BoardForge) -> None:
    path = new_issue(board, "human review")  # states compare case-insensitively
    await jidoka_comment(board, "ship-1")
    person_comment(path, "alice", "Not reviewed yet, just a note.")
    request = await read(forge)
    # A board has no merge conflicts: what the policy waits for is a person's review.
    assert request == ChangeRequest(url=URL, state=RequestState.OPEN, head_sha=HEAD, mergeable=True)
    assert not request.reviews and not request.comments
    assert request.checks == []


@pytest.mark.parametrize(
    ("state", "expected"),
    [
        ("Done", RequestState.MERGED),
        ("  DONE ", RequestState.MERGED),
        ("Cancelled", RequestState.CLOSED),
        ("cancelled", RequestState.CLOSED),
        ("Waiting", RequestState.OPEN),
        ("Backlog", RequestState.OPEN),
        ("Somewhere Else", RequestState.OPEN),
    ],
)
async def test_states_map_to_request_states(
    board: Path, forge: BoardForge, state: str, expected: RequestState
) -> None:
    path = new_issue(board, "Human Review")
    await jidoka_comment(board, "ship-1")
    person_comment(path, "alice", "A comment that only an active state turns into feedback.")
    set_state(path, f'"{state}"')
    request = await read(forge)
    mergeable = True if expected is RequestState.OPEN else None
    assert request == ChangeRequest(url=URL, state=expected, head_sha=HEAD, mergeable=mergeable)


async def test_sent_back_requests_changes_with_the_comments_since_the_ship(
    board: Path, forge: BoardForge
) -> None:
    path = new_issue(board, "Human Review")
    person_comment(path, "carol", "Before the ship: not feedback on this work.")
    await jidoka_comment(board, "dispatch-1", "Picked up.")
    await jidoka_comment(board, "ship-1", "Shipped at aaaa.")
    person_comment(path, "alice", "Rename the flag.")
    await jidoka_comment(board, "note-1", "The line's own words are never feedback.")
    await jidoka_comment(board, "ship-2", "Shipped again.")
    person_comment(path, "bob", "And add a test.", stamp="2024-05-03T10:00")
    set_state(path, "Todo")

    request = await read(forge)
    assert request.state is RequestState.OPEN
    assert (request.head_sha, request.url, request.checks) == (HEAD, URL, [])
    assert request.mergeable is None
    [review] = request.reviews
    assert review.author == "bob"  # the latest comment since the (first) ship
    assert review.verdict is ReviewVerdict.CHANGES_REQUESTED
    assert (review.commit_sha, review.submitted_at) == (HEAD, NOW)
    assert [(c.author, c.body, c.path, c.line) for c in request.comments] == [
        ("alice", "Rename the flag.", None, None),
        ("bob", "And add a test.", None, None),
    ]
    assert all(c.id.startswith("board:") for c in request.comments)


async def test_sent_back_without_a_word_is_the_boards_verdict(
    board: Path, forge: BoardForge
) -> None:
    path = new_issue(board, "Human Review")
    person_comment(path, "carol", "Before any ship.")
    set_state(path, "In Progress")
    request = await read(forge)  # never shipped: no comment counts
    assert [r.author for r in request.reviews] == [BOARD_REVIEWER]
    assert request.comments == []

    await jidoka_comment(board, "ship-1")
    request = await read(forge)  # shipped, then sent back with no comment
    assert [r.author for r in request.reviews] == [BOARD_REVIEWER]
    assert request.comments == []


# --------------------------------------------------------------------------------------------
# Comment ids and bounds
# --------------------------------------------------------------------------------------------


async def test_ids_are_stable_across_reads_and_distinct_for_identical_comments(
    board: Path, forge: BoardForge
) -> None:
    path = new_issue(board, "Todo")
    await jidoka_comment(board, "ship-1")
    person_comment(path, "alice", "Same words.")
    person_comment(path, "alice", "Same words.")
    person_comment(path, "alice", "Other words.")
    first = await read(forge)
    second = await read(forge)
    ids = [c.id for c in first.comments]
    assert ids == [c.id for c in second.comments]
    assert len(set(ids)) == 3

    # A person deleting an older comment leaves the ids of the later ones as they were.
    text = path.read_text("utf-8")
    path.write_text(text.replace("### 2024-05-03T09:00 · alice\nOther words.\n", ""), "utf-8")
    person_comment(path, "alice", "Other words.")
    assert [c.id for c in (await read(forge)).comments] == ids

    await jidoka_comment(board, "ship-2")  # the line writing more changes no id either
    assert [c.id for c in (await read(forge)).comments] == ids


async def test_a_huge_comment_and_a_flood_of_comments_are_bounded(
    board: Path, forge: BoardForge
) -> None:
    path = new_issue(board, "Todo")
    await jidoka_comment(board, "ship-1")
    person_comment(path, "alice", "x" * 100_000 + "\x1b[31m")
    request = await read(forge)
    [comment] = request.comments
    assert len(comment.body) == COMMENT_CHARS
    assert comment.body.endswith("\u2026")

    person_comment(path, "mallory\x07", "bell")
    request = await read(forge)
    assert request.comments[-1].author == "mallory\ufffd"
    assert request.reviews[0].author == "mallory\ufffd"

    with path.open("a", encoding="utf-8") as handle:
        for n in range(MAX_COMMENTS + 50):
            handle.write(f"\n### 2024-05-04 · bob\nNote {n}.\n")
    request = await read(forge)
    assert len(request.comments) == MAX_COMMENTS
    assert request.comments[0].body == "Note 50."  # the latest ones are kept
    assert request.comments[-1].body == f"Note {MAX_COMMENTS + 49}."


# --------------------------------------------------------------------------------------------
# Files that are not there
# --------------------------------------------------------------------------------------------


async def test_a_missing_file_is_gone(board: Path, forge: BoardForge) -> None:
    new_issue(board, "Human Review")
    await jidoka_comment(board, "ship-1")
    (board / "DEMO-1.md").unlink()
    assert await read(forge) == ChangeRequest(url=URL, state=RequestState.GONE, head_sha=HEAD)


async def test_nothing_outside_the_board_is_read(
    tmp_path: Path, board: Path, forge: BoardForge
) -> None:
    """An outside file that would read as merged is never opened: the id names no file on
    the board, so the request is gone."""
    new_issue(tmp_path, "Done", identifier="x")
    (board / "LINK.md").symlink_to(tmp_path / "x.md")
    for issue_id in ("../x", f"{tmp_path}/x", "LINK", "..", "./x"):
        request = await read(forge, issue_id)
        assert request.state is RequestState.GONE, issue_id


async def test_other_tracker_errors_propagate(tmp_path: Path, board: Path) -> None:
    (board / "DEMO-1.md").write_text("no front matter\n", "utf-8")
    forge = BoardForge.from_config(tracker_config(board), REVIEW)
    with pytest.raises(TrackerError) as caught:
        await read(forge)
    assert caught.value.category is TrackerErrorCategory.MALFORMED_ISSUE

    forge = BoardForge.from_config(tracker_config(tmp_path / "no-board"), REVIEW)
    with pytest.raises(TrackerError) as caught:
        await read(forge)
    assert caught.value.category is TrackerErrorCategory.MISSING_PROJECT


# --------------------------------------------------------------------------------------------
# What the policy makes of it
# --------------------------------------------------------------------------------------------


async def test_the_policy_reworks_a_sent_back_issue_and_closes_a_done_one(
    board: Path, forge: BoardForge
) -> None:
    path = new_issue(board, "Human Review")
    await jidoka_comment(board, "ship-1")
    ledger = ReviewLedger(url=URL, shipped_head=HEAD, started_at=NOW - timedelta(hours=1))

    waiting = next_step(await read(forge), ledger, REVIEW, NOW)
    assert waiting.kind is StepKind.WAIT

    person_comment(path, "alice", "Rename the flag to --loud.")
    set_state(path, "Todo")
    step = next_step(await read(forge), ledger, REVIEW, NOW)
    assert step.kind is StepKind.REWORK
    assert step.feedback is not None
    assert step.feedback.changes_requested_by == ["alice"]
    assert [c.body for c in step.feedback.comments] == ["Rename the flag to --loud."]

    # Once sent, the same comment is never sent again.
    ledger = addressed_after(ledger, step)
    again = next_step(await read(forge), ledger, REVIEW, NOW)
    assert again.feedback is not None and again.feedback.comments == []

    set_state(path, "Done")
    assert next_step(await read(forge), ledger, REVIEW, NOW).kind is StepKind.MERGED


def test_the_ship_comment_is_found_by_its_real_write_key() -> None:
    """The issue workflow writes its ship comment under its idempotency key,
    ``<workflow id>/<first run id>:ship-<attempt>``, not a bare ``ship-<n>``."""
    comments = [
        BoardComment("alice", "2024-05-01T09:00:00Z", None, "Before the ship.", 0),
        BoardComment("jidoka", "2024-05-02T10:00:00Z", "issue-DEMO-1/0f3a-99:claim-1", "", 1),
        BoardComment("jidoka", "2024-05-02T10:00:00Z", "issue-DEMO-1/0f3a-99:ship-1", "", 2),
        BoardComment("bob", "2024-05-02T11:00:00Z", None, "Please rename it.", 3),
    ]
    assert [c.body for c in since_ship(comments)] == ["Please rename it."]
