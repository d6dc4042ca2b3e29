"""Properties of the local board: whatever a person (or an attacker) writes in the board folder,
and whatever identifier reaches the adapter, the answer is a normalised Issue or a TrackerError,
and nothing outside the board folder is ever opened.

"Opened" is observed with a Python audit hook (``open``, ``os.scandir``, ``os.rename``, ...),
so the check covers every thread the adapter uses, not just the code paths a reader expects.
"""

from __future__ import annotations

import os
import re
from datetime import UTC, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from activities.tracker.base import TrackerError, TrackerErrorCategory
from activities.tracker.local import LocalBoard, parse_issue_file, render_issue_file
from jidoka.config import LocalTrackerConfig
from jidoka.models import Issue
from tests.support.opened_paths import opened_paths

PROPERTY_SETTINGS = settings(
    max_examples=200,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# --------------------------------------------------------------------------------------------
# Watching what the adapter touches
# --------------------------------------------------------------------------------------------


def assert_inside(board: Path, paths: list[str]) -> None:
    real_board = os.path.realpath(board)
    for path in paths:
        try:
            real = os.path.realpath(path)
        except ValueError:
            real = path
        assert real == real_board or os.path.dirname(real) == real_board, path[:200]


# --------------------------------------------------------------------------------------------
# Strategies
# --------------------------------------------------------------------------------------------

SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(),
    st.text(max_size=30),
    st.dates(),
    st.datetimes(
        timezones=st.sampled_from(
            [None, UTC, timezone(timedelta(hours=5, minutes=30)), timezone(timedelta(hours=-8))]
        )
    ),
)
YAML_VALUES = st.recursive(
    SCALARS,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
OPTIONAL_FIELDS = ["priority", "labels", "blocked_by", "created_at", "updated_at", "url"]
FIELD_VALUES: st.SearchStrategy[object] = st.one_of(
    st.text(min_size=1, max_size=30),
    YAML_VALUES,
    st.lists(st.sampled_from(["P-1", "GOOD-1", "Bug", "../x", ""]), max_size=3),
)


def _with_title_and_state(optional: dict[str, object]) -> dict[str, object]:
    return {"title": "A title", "state": "Todo", **optional}


def _merged(required: dict[str, object], optional: dict[str, object]) -> dict[str, object]:
    return {**optional, **required}


WELL_FORMED = st.builds(
    _with_title_and_state, st.dictionaries(st.sampled_from(OPTIONAL_FIELDS), FIELD_VALUES)
)
FRONT_MATTER = st.one_of(
    WELL_FORMED,
    WELL_FORMED,
    st.dictionaries(
        st.sampled_from(["title", "state", *OPTIONAL_FIELDS]) | st.text(max_size=10),
        FIELD_VALUES,
        max_size=10,
    ),
    st.builds(
        _merged,
        st.fixed_dictionaries({"title": FIELD_VALUES, "state": FIELD_VALUES}),
        st.dictionaries(st.sampled_from(OPTIONAL_FIELDS) | st.text(max_size=10), FIELD_VALUES),
    ),
)
MARKDOWN = st.lists(
    st.sampled_from(
        ["## Comments", "## comments ##", "### 2024 · jidoka", "<!-- jidoka:note -->", "---"]
    )
    | st.text(max_size=40),
    max_size=8,
).map("\n".join)
YAMLISH = st.text(alphabet=" \t\n-:#[]{}&*!|>'\",?.0123456789abcdestitlestate_", max_size=200)


@st.composite
def documents(draw: st.DrawFn) -> bytes:
    """Whole files: raw bytes, raw text, YAML-ish noise in front matter, or dumped maps."""
    body = draw(MARKDOWN)
    kind = draw(st.sampled_from(["bytes", "text", "noise", *["dumped"] * 3, *["dumped-crlf"] * 2]))
    if kind == "bytes":
        return draw(st.binary(max_size=400))
    if kind == "text":
        return draw(st.text(max_size=400)).encode("utf-8", "surrogatepass")
    if kind == "noise":
        return f"---\n{draw(YAMLISH)}\n---\n{body}".encode("utf-8", "surrogatepass")
    dumped = yaml.safe_dump(draw(FRONT_MATTER), allow_unicode=draw(st.booleans()))
    text = f"---\n{dumped}---\n{body}"
    if kind == "dumped-crlf":
        text = text.replace("\n", "\r\n")
    return text.encode("utf-8", "surrogatepass")


IDENTIFIERS = st.one_of(
    st.just("GOOD-1"),
    st.sampled_from(
        [
            "GOOD-1",
            "LINK-1",
            "DIRLINK/secret",
            "../outside/secret",
            "../board/GOOD-1",
            "./GOOD-1",
            "/etc/passwd",
            str(Path("/") / "etc" / "hostname"),
            "",
            ".",
            "..",
            "...",
            ".jidoka-board",
            "GOOD-1\x00",
            "\x00",
            "\udcff",
            "é" * 300,
            "a" * 10_000,
        ]
    ),
    st.text(max_size=40),
    st.text(alphabet="./\\\x00aG-1é", max_size=16),
)

_HEADING = re.compile(r"##[ \t]+comments[ \t]*#*[ \t]*", re.IGNORECASE)


# --------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------


def make_config(board: Path) -> LocalTrackerConfig:
    return LocalTrackerConfig.model_validate(
        {
            "kind": "local",
            "board": str(board),
            "active_states": ["Todo", "In Progress"],
            "terminal_states": ["Done"],
            "done_state": "Done",
        }
    )


def assert_normalised(issue: Issue, identifier: str) -> None:
    assert issue.id == issue.identifier == identifier
    assert issue.title and issue.title == issue.title.strip()
    assert issue.state and issue.state == issue.state.strip()
    assert all(label and label == label.lower() for label in issue.labels)
    assert len(set(issue.labels)) == len(issue.labels)
    assert issue.priority is None or type(issue.priority) is int
    for moment in (issue.created_at, issue.updated_at):
        assert moment is None or moment.utcoffset() == timedelta(0)
    if issue.description is not None:
        assert issue.description and issue.description == issue.description.strip()
        assert not any(_HEADING.fullmatch(line.strip()) for line in issue.description.split("\n"))
    assert issue.url
    assert all(ref.id == ref.identifier and ref.id for ref in issue.blocked_by)
    # It must travel through Temporal as JSON.
    assert Issue.model_validate_json(issue.model_dump_json()) == issue


def same_but_state(left: Issue, right: Issue) -> bool:
    # A blocker can be the issue itself, so its state moves too.
    return left.model_dump(exclude={"state", "blocked_by"}) == right.model_dump(
        exclude={"state", "blocked_by"}
    )


def changed_lines(before: bytes, after: bytes) -> list[int]:
    old, new = before.split(b"\n"), after.split(b"\n")
    assert len(old) == len(new)
    return [i for i, (a, b) in enumerate(zip(old, new, strict=True)) if a != b]


@pytest.fixture(scope="module")
def layout(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("properties")
    board, outside = root / "board", root / "outside"
    board.mkdir()
    outside.mkdir()
    secret = render_issue_file("secret", "Todo", description="never read me")
    (outside / "secret.md").write_text(secret)
    (root / "secret.md").write_text(secret)
    (board / "LINK-1.md").symlink_to(outside / "secret.md")
    (board / "DIRLINK").symlink_to(outside)
    return board, outside


# --------------------------------------------------------------------------------------------
# Properties
# --------------------------------------------------------------------------------------------


@PROPERTY_SETTINGS
@given(content=documents())
async def test_any_file_reads_as_an_issue_or_a_tracker_error(
    layout: tuple[Path, Path], content: bytes
) -> None:
    board, _ = layout
    path = board / "P-1.md"
    path.write_bytes(content)
    tracker = LocalBoard(make_config(board))

    with opened_paths() as touched:
        try:
            issue = await tracker.fetch_issue("P-1")
        except TrackerError as exc:
            assert exc.category is TrackerErrorCategory.MALFORMED_ISSUE
            event("malformed")
            with pytest.raises(TrackerError):
                await tracker.fetch_issues_by_ids(["P-1"])
            listed = await tracker.fetch_issues_by_states(["Todo", "Done", "x"])
            assert "P-1" not in [i.id for i in listed]
            assert path.read_bytes() == content
            issue = None
        if issue is not None:
            event("issue")
            assert_normalised(issue, "P-1")
            assert await tracker.fetch_issues_by_ids(["P-1"]) == [issue]
            listed = await tracker.fetch_issues_by_states([issue.state])
            assert issue in listed
            await check_writes(tracker, path, issue)
    assert_inside(board, touched)


async def check_writes(tracker: LocalBoard, path: Path, issue: Issue) -> None:
    """A comment changes nothing but the comments; a move changes one line or nothing."""
    fresh = "note" not in parse_issue_file(path.read_text(encoding="utf-8")).markers()
    assert await tracker.add_comment(issue, "A note.\n\nWith a paragraph.", "note") is fresh
    assert "note" in parse_issue_file(path.read_text(encoding="utf-8")).markers()
    assert await tracker.add_comment(issue, "again", "note") is False
    commented = await tracker.fetch_issue("P-1")
    assert commented == issue
    before = path.read_bytes()
    try:
        moved = await tracker.set_state(issue, "Done")
    except TrackerError as exc:
        assert exc.category is TrackerErrorCategory.UNPROCESSABLE
        assert path.read_bytes() == before
        event("state refused")
        return
    event("state written")
    assert same_but_state(moved, issue)
    assert moved.state.lower() == "done"
    assert len(changed_lines(before, path.read_bytes())) <= 1


@PROPERTY_SETTINGS
@given(identifier=IDENTIFIERS)
async def test_any_identifier_stays_on_the_board(
    layout: tuple[Path, Path], identifier: str
) -> None:
    board, outside = layout
    (board / "GOOD-1.md").write_text(render_issue_file("good", "Todo"))
    secret = (outside / "secret.md").read_bytes()
    tracker = LocalBoard(make_config(board))
    probe = Issue.model_construct(id=identifier, identifier="x", title="x", state="Todo")

    with opened_paths() as touched:
        try:
            issue = await tracker.fetch_issue(identifier)
        except TrackerError as exc:
            assert exc.category is TrackerErrorCategory.NOT_FOUND
            assert len(exc.message) < 1000
            issue = None
        event("not found" if issue is None else "found")
        by_ids = await tracker.fetch_issues_by_ids([identifier, "GOOD-1"])
        for write in (
            tracker.add_comment(probe, "body", "probe"),
            tracker.set_state(probe, "Done"),
        ):
            try:
                await write
            except TrackerError as exc:
                assert issue is None
                assert exc.category is TrackerErrorCategory.NOT_FOUND
    assert_inside(board, touched)
    assert (outside / "secret.md").read_bytes() == secret
    if issue is None:
        assert [i.id for i in by_ids] == ["GOOD-1"]
    else:
        assert identifier == "GOOD-1"
        assert_normalised(issue, identifier)
        assert "secret" not in issue.model_dump_json()


@PROPERTY_SETTINGS
@given(
    title=st.text(min_size=1, max_size=40).filter(str.strip),
    state=st.text(min_size=1, max_size=20).filter(str.strip),
    description=st.text(max_size=200).filter(
        lambda text: not any(_HEADING.fullmatch(line.strip()) for line in text.split("\n"))
    ),
    priority=st.none() | st.integers(min_value=-5, max_value=10**12),
    labels=st.lists(st.text(min_size=1, max_size=12).filter(str.strip), max_size=4),
    blocked_by=st.lists(st.sampled_from(["R-1", "GONE-1", "../x"]), max_size=3, unique=True),
    created_at=st.none() | st.datetimes(timezones=st.just(UTC)),
)
async def test_rendered_files_read_back_as_written(
    tmp_path_factory: pytest.TempPathFactory,
    title: str,
    state: str,
    description: str,
    priority: int | None,
    labels: list[str],
    blocked_by: list[str],
    created_at: Any,
) -> None:
    board = tmp_path_factory.mktemp("rendered")
    (board / "R-1.md").write_text(
        render_issue_file(
            title,
            state,
            description=description,
            priority=priority,
            labels=labels,
            blocked_by=blocked_by,
            created_at=created_at,
        ),
        encoding="utf-8",
    )
    issue = await LocalBoard(make_config(board)).fetch_issue("R-1")
    assert_normalised(issue, "R-1")
    assert (issue.title, issue.state) == (title.strip(), state.strip())
    assert issue.description == (description.strip() or None)
    assert issue.priority == priority
    assert issue.labels == list(dict.fromkeys(label.strip().lower() for label in labels))
    assert [(ref.id, ref.state) for ref in issue.blocked_by] == [
        (ref, state.strip() if ref == "R-1" else None) for ref in blocked_by
    ]
    assert issue.created_at == created_at


@PROPERTY_SETTINGS
@given(
    line=st.sampled_from(
        [
            "state: Todo",
            "state:   Todo   # a note",
            'state: "Todo"',
            "state: 'Todo'",
            '"state" : Todo',
            "state: !!str Todo",
        ]
    ),
    target=st.text(min_size=1, max_size=30),
    newline=st.sampled_from(["\n", "\r\n"]),
)
async def test_any_target_state_is_written_exactly_or_refused(
    tmp_path_factory: pytest.TempPathFactory, line: str, target: str, newline: str
) -> None:
    board = tmp_path_factory.mktemp("targets")
    path = board / "T-1.md"
    content = newline.join(["---", "title: t", line, "labels: [a]", "---", "Body.", ""])
    path.write_bytes(content.encode())
    tracker = LocalBoard(make_config(board))
    issue = await tracker.fetch_issue("T-1")
    try:
        moved = await tracker.set_state(issue, target)
    except TrackerError as exc:
        assert exc.category is TrackerErrorCategory.UNPROCESSABLE
        assert path.read_bytes() == content.encode()
        event("refused")
        return
    event("written")
    assert moved.state.lower() == target.strip().lower()
    assert same_but_state(moved, issue)
    assert changed_lines(content.encode(), path.read_bytes()) in ([], [2])


@PROPERTY_SETTINGS
@given(body=st.text(max_size=300), marker=st.text(max_size=40))
async def test_any_comment_is_appended_once_or_refused(
    tmp_path_factory: pytest.TempPathFactory, body: str, marker: str
) -> None:
    board = tmp_path_factory.mktemp("comments")
    path = board / "C-1.md"
    content = render_issue_file("t", "Todo", description="The description.")
    path.write_text(content)
    tracker = LocalBoard(make_config(board))
    issue = await tracker.fetch_issue("C-1")
    try:
        assert await tracker.add_comment(issue, body, marker) is True
    except TrackerError as exc:
        assert exc.category is TrackerErrorCategory.UNPROCESSABLE
        assert path.read_text() == content
        return
    assert await tracker.add_comment(issue, "different", marker) is False
    text = path.read_text()
    assert text.startswith(content)
    assert text.count(f"<!-- jidoka:{marker} -->") == 1
    assert await tracker.fetch_issue("C-1") == issue
