"""The local board, fuzzed: ``<ID>.md`` files are written by people (and by anything else that
can write to the folder), so any bytes under any name must leave the board listing standing.

* :func:`parse_issue_file` gives an :class:`IssueFile` whose offsets fit the text, or raises
  :class:`MalformedIssueFile` (a ValueError); an issue read from it is normalised and encodes
  as JSON (it travels in Temporal payloads).
* A board of random files (garbage, mutated valid files, odd names, a symlink leading off the
  board, a FIFO, a folder named like an issue) lists exactly the files that parse and are in
  a wanted state, never raises, and never opens anything outside the board folder. Reading
  each identifier by id gives its issue, or a ``MALFORMED_ISSUE`` / ``NOT_FOUND`` error.

(``tests/activities/tracker/test_local_properties.py`` covers one file at a time and the
writes; this adds whole boards, the listing oracle and mutated front matter.)
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import yaml
from hypothesis import event, given
from hypothesis import strategies as st
from hypothesis.strategies import DrawFn

from activities.tracker.base import TrackerError, TrackerErrorCategory
from activities.tracker.local import (
    IssueFile,
    LocalBoard,
    MalformedIssueFile,
    issue_from_file,
    parse_issue_file,
)
from jidoka.config import LocalTrackerConfig
from jidoka.models import Issue
from jidoka.policy import norm_state
from tests.fuzz.support import (
    NASTY_TEXT,
    bounded,
    bounded_async,
    flipped,
    fuzzing,
    inside,
    mutated,
    opened_paths,
)

VALID_FRONT: dict[str, object] = {
    "title": "Add a --verbose flag",
    "state": "Todo",
    "priority": 2,
    "labels": ["cli", "Good-First-Issue"],
    "blocked_by": ["DEMO-1", "../x"],
    "created_at": "2024-05-01T09:00:00Z",
    "updated_at": "2024-05-02",
    "url": "https://example.invalid/3",
}
BODY_LINES = [
    "The description, in Markdown.",
    "## Comments",
    "## comments ##",
    "### 2024-05-02T10:00:00Z · jidoka",
    "<!-- jidoka:dispatch-1 -->",
    "---",
    "",
    "\r",
    "title: not front matter",
]
STATES = ["Todo", "In Progress", " todo ", "Done", "TODO"]


@st.composite
def issue_texts(draw: DrawFn) -> str:
    """The text of a board file: a valid front matter mutated and dumped, YAML spliced into a
    valid file, noise, or anything."""
    body = "\n".join(draw(st.lists(st.sampled_from(BODY_LINES) | st.text(max_size=30), max_size=6)))
    match draw(st.integers(0, 6)):
        case 0 | 1:
            text = f"---\ntitle: T\nstate: {draw(st.sampled_from(STATES))}\n---\n{body}"
        case 2 | 3:
            front = draw(mutated(VALID_FRONT))
            try:
                dumped = yaml.safe_dump(front, allow_unicode=draw(st.booleans()))
            except yaml.YAMLError:
                dumped = "title: x\nstate: Todo\n"
            text = f"---\n{dumped}---\n{body}"
        case 4:
            key = draw(st.sampled_from(["title", "state", "labels", "created_at", "priority"]))
            value = draw(
                st.sampled_from(
                    [
                        "2024-13-45",
                        "!!timestamp 2024-13-45",
                        "9999-12-31T23:59:59-23:59",
                        "0001-01-01T00:00:00+23:59",
                        "[" * 200 + "]" * 200,
                        "&a [*a]",
                        "*nowhere",
                        "!!binary '!!!'",
                        "!!python/object/apply:os.system ['true']",
                        "|\n  block",
                        '"\\ud800"',
                        "1" * 5_000,
                        ".nan",
                        "{? [a]: 1}",
                        "",
                    ]
                )
            )
            lines = [f"{k}: {v!r}" if k != key else f"{k}: {value}" for k, v in VALID_FRONT.items()]
            text = "---\n" + "\n".join(lines) + f"\n---\n{body}"
        case 5:
            text = draw(st.text(alphabet="-:# \n\t[]{}&*!|>'\"titlestae0123", max_size=200))
        case _:
            text = draw(st.text(max_size=200)) + draw(st.sampled_from(NASTY_TEXT))
    if draw(st.integers(0, 4)) == 0:
        text = text.replace("\n", "\r\n")
    if draw(st.integers(0, 6)) == 0:
        text = "\ufeff" + text
    return text


def check_issue_file(text: str, parsed: IssueFile) -> None:
    assert 0 <= parsed.front_matter_start <= parsed.front_matter_end <= parsed.body_start
    assert parsed.body_start <= len(text)
    if parsed.comments_start is not None:
        assert parsed.body_start <= parsed.comments_start < len(text)
    assert parsed.title and parsed.title == parsed.title.strip()
    assert parsed.state and parsed.state == parsed.state.strip()
    assert parsed.newline in ("\n", "\r\n")
    assert all(isinstance(key, str) for key in parsed.front_matter)


def check_issue(issue: Issue, identifier: str) -> None:
    assert issue.id == issue.identifier == identifier
    assert issue.title and issue.state
    assert all(label and label == label.lower() for label in issue.labels)
    assert len(set(issue.labels)) == len(issue.labels)
    assert issue.priority is None or type(issue.priority) is int
    for moment in (issue.created_at, issue.updated_at):
        assert moment is None or moment.utcoffset() == timedelta(0)
    assert all(ref.id and ref.id == ref.identifier for ref in issue.blocked_by)
    assert Issue.model_validate_json(issue.model_dump_json()) == issue


@fuzzing(ci_examples=200)
@given(text=issue_texts())
def test_any_text_is_an_issue_file_or_malformed(text: str) -> None:
    try:
        parsed = bounded(lambda: parse_issue_file(text))
    except MalformedIssueFile as error:
        event("malformed")
        assert isinstance(error, ValueError)
        assert str(error) and len(str(error)) < 500
        return
    event("issue file")
    check_issue_file(text, parsed)
    issue = bounded(
        lambda: issue_from_file(
            "P-1", parsed, default_url="file:///board/P-1.md", state_of=lambda _: None
        )
    )
    check_issue(issue, "P-1")


# --------------------------------------------------------------------------------------------
# Whole boards
# --------------------------------------------------------------------------------------------

file_names = st.one_of(
    st.sampled_from(["P-1", "A", "ENG-123", "-rf", "..", "a b", "é", "日本-1", "x.lock", "$HOME"]),
    st.text(
        alphabet=st.characters(exclude_characters="/\x00", exclude_categories=["Cs"]),
        min_size=1,
        max_size=40,
    ),
).filter(lambda name: len(name.encode()) <= 250)


@st.composite
def boards(draw: DrawFn) -> list[tuple[str, str, bytes]]:
    """(kind, name, content) of each entry: ``file`` (content as bytes), ``link`` (to a file
    off the board), ``fifo``, ``folder``, ``dotfile``, ``bad-name`` (not UTF-8)."""
    entries: list[tuple[str, str, bytes]] = []
    names = draw(st.lists(file_names, min_size=1, max_size=5, unique_by=str.casefold))
    for name in names:
        kind = draw(st.sampled_from(["file"] * 6 + ["link", "fifo", "folder", "dotfile"]))
        text = draw(issue_texts())
        raw = text.encode()
        if draw(st.integers(0, 5)) == 0:
            raw = draw(flipped(raw) | st.binary(max_size=100))
        entries.append((kind, name, raw))
    return entries


def build_board(root: Path, entries: list[tuple[str, str, bytes]]) -> Path:
    board, outside = root / "board", root / "outside"
    board.mkdir()
    outside.mkdir()
    secret = outside / "secret.md"
    secret.write_text("---\ntitle: secret\nstate: Todo\n---\nnever read me\n")
    for kind, name, raw in entries:
        path = board / f"{name}.md"
        match kind:
            case "file":
                path.write_bytes(raw)
            case "link":
                path.symlink_to(secret)
            case "fifo":
                os.mkfifo(path)
            case "folder":
                path.mkdir()
            case _:
                (board / f".{name}.md").write_bytes(raw)
    # a file whose name is not UTF-8: skipped by the listing, whatever it holds
    with open(os.path.join(os.fsencode(board), b"\xff-bad.md"), "wb") as handle:
        handle.write(b"---\ntitle: T\nstate: Todo\n---\n")
    return board


def expected_listing(entries: list[tuple[str, str, bytes]], wanted: set[str]) -> set[str]:
    found: set[str] = set()
    for kind, name, raw in entries:
        if kind != "file" or name.startswith("."):
            continue
        try:
            parsed = parse_issue_file(raw.decode("utf-8"))
        except (UnicodeDecodeError, MalformedIssueFile):
            continue
        if norm_state(parsed.state) in wanted:
            found.add(name)
    return found


def make_config(board: Path) -> LocalTrackerConfig:
    return LocalTrackerConfig.model_validate(
        {
            "kind": "local",
            "board": str(board),
            "active_states": ["Todo"],
            "terminal_states": ["Done"],
            "done_state": "Done",
        }
    )


@fuzzing(ci_examples=40)
@given(entries=boards(), states=st.lists(st.sampled_from(STATES), min_size=1, max_size=3))
def test_a_board_of_any_files_lists_exactly_the_usable_ones(
    entries: list[tuple[str, str, bytes]], states: list[str]
) -> None:
    with tempfile.TemporaryDirectory(prefix="jidoka-fuzz-") as folder:
        board = build_board(Path(folder), entries)
        tracker = LocalBoard(make_config(board))
        wanted = {norm_state(state) for state in states}
        with opened_paths() as opened:
            listed = bounded_async(lambda: tracker.fetch_issues_by_states(states))
            by_id: dict[str, Issue | TrackerError] = {}
            for _, name, _ in entries:
                by_id[name] = _fetch(lambda name=name: tracker.fetch_issue(name))
        outside = [path for path in opened if not inside(str(board), path)]
        assert not outside, outside[:3]
    assert {issue.id for issue in listed} == expected_listing(entries, wanted)
    event(f"listed {len(listed)} of {len(entries)}")
    for issue in listed:
        check_issue(issue, issue.id)
        assert norm_state(issue.state) in wanted
    for kind, name, _ in entries:
        found = by_id[name]
        if isinstance(found, Issue):
            assert kind == "file"
            check_issue(found, name)
        else:
            assert found.category in (
                TrackerErrorCategory.MALFORMED_ISSUE,
                TrackerErrorCategory.NOT_FOUND,
            ), found
            assert len(found.message) < 1_000


def _fetch(read: Callable[[], object]) -> Issue | TrackerError:
    try:
        issue = bounded_async(read)  # pyright: ignore[reportArgumentType]
    except TrackerError as error:
        return error
    assert isinstance(issue, Issue)
    return issue
