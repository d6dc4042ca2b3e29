# pyright: strict
"""The local board tracker (``tracker.kind: local``): a folder of Markdown issue files.

One file per issue, ``<IDENTIFIER>.md``; the file name stem is both ``id`` and ``identifier``::

    ---
    title: Add a --verbose flag        # required
    state: Todo                        # required
    priority: 2                        # optional int (anything else reads as None)
    labels: [cli, Good-First-Issue]    # optional, read lowercased
    blocked_by: [DEMO-1]               # optional identifiers on the same board
    created_at: 2024-05-01T09:00:00Z   # optional ISO-8601 or YAML date (naive means UTC)
    updated_at: 2024-05-02             # optional
    url: https://example.invalid/3     # optional (default: the file's file:// URL)
    ---
    The description, in Markdown.

    ## Comments

    ### 2024-05-02T10:00:00Z · jidoka
    <!-- jidoka:dispatch-1 -->
    Picked up by the line.

Unknown front matter keys are ignored: a board file is a person's document, not config.

People edit the board while the line runs, so:

* reads never take the lock; every write replaces the file atomically (temp file in the board
  folder, ``fsync``, ``os.replace``, ``fsync`` of the folder), so a reader sees the old file or
  the new one, never half of either;
* every read-modify-write holds an exclusive ``flock`` on ``<board>/.jidoka-board.lock`` so
  that orchestrator processes and threads never interleave;
* a person does not take that lock, so right before the replace the file is read again and,
  if its content changed since it was read, the edit is redone on the new content (at most
  :data:`WRITE_ATTEMPTS` times, then ``CONFLICT``). The window left is the few microseconds
  between that check and the replace; an editor that saves a stale buffer can still drop what
  the line wrote, as it would drop any concurrent change;
* ``set_state`` rewrites the ``state:`` line only; every other byte is kept, and the result is
  parsed again before it is written (a value the line cannot rewrite in place, such as a block
  scalar, is refused with ``UNPROCESSABLE`` rather than guessed at);
* nothing outside the board folder is ever opened: identifiers with ``/``, NUL, a leading dot,
  or resolving elsewhere (symlinks included) are ``NOT_FOUND``.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import hashlib
import json
import logging
import math
import os
import re
import stat
import tempfile
import threading
import time
from collections.abc import Callable, Generator, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from enum import StrEnum
from pathlib import Path
from typing import assert_never

import yaml

from activities.tracker.base import TrackerClient, TrackerError, TrackerErrorCategory
from jidoka.config import LocalTrackerConfig
from jidoka.models import BlockerRef, Issue
from jidoka.policy import norm_state

logger = logging.getLogger(__name__)

LOCK_FILE_NAME = ".jidoka-board.lock"
COMMENTS_HEADING = "## Comments"
COMMENT_AUTHOR = "jidoka"
MAX_FILE_BYTES = 4 * 1024 * 1024
"""Larger files are malformed: a board file is a document, and reads must stay cheap."""
WRITE_ATTEMPTS = 5
LOCK_TIMEOUT_S = 30.0
MAX_MARKER_LENGTH = 1000
_SETTLE_DELAY_S = 0.01
"""A by-id read that finds a malformed file looks again after this delay: an editor that
saves in place (truncate, then write) shows a half-written file for a moment."""
_SETTLE_READS = 3

_COMMENTS_HEADING_RE = re.compile(r"##[ \t]+comments[ \t]*#*[ \t]*", re.IGNORECASE)
_COMMENT_HEADER_RE = re.compile(r"###[ \t].*·[ \t]*" + COMMENT_AUTHOR + r"[ \t]*")
_MARKER_LINE_RE = re.compile(r"<!-- jidoka:(.+) -->")
_STATE_LINE_RE = re.compile(
    r"(?P<key>state|\"state\"|'state')(?P<colon>[ \t]*:)(?=[ \t\r\n]|\Z)(?P<rest>[^\r\n]*)"
    r"(?P<eol>\r?\n)?"
)
_COMMENT_START_RE = re.compile(r"[ \t]#")
_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


# --------------------------------------------------------------------------------------------
# The file format (pure)
# --------------------------------------------------------------------------------------------


class MalformedIssueFile(ValueError):
    """The text is not a usable issue file; the message says what is wrong."""


class UnwritableEdit(ValueError):
    """The edit cannot be made in place without changing anything else in the file."""


@dataclass(frozen=True)
class IssueFile:
    """A parsed issue file, with the offsets an in-place edit needs."""

    text: str
    front_matter: Mapping[str, object]
    """The YAML map as loaded (keys that are not strings are dropped)."""
    title: str
    state: str
    front_matter_start: int
    front_matter_end: int
    body_start: int
    comments_start: int | None
    """Offset of the ``## Comments`` heading line, None when there is none."""
    newline: str

    @property
    def description(self) -> str | None:
        end = len(self.text) if self.comments_start is None else self.comments_start
        return self.text[self.body_start : end].strip() or None

    def markers(self) -> set[str]:
        """Markers of the comments the line wrote: a marker line right under a comment
        header. The whole body is searched, so that a person deleting or moving the
        ``## Comments`` heading does not make the line write its comments twice."""
        found: set[str] = set()
        previous = ""
        for _, line in _lines(self.text, self.body_start):
            current = line.strip()
            match = _MARKER_LINE_RE.fullmatch(current)
            if match and _COMMENT_HEADER_RE.fullmatch(previous):
                found.add(match.group(1))
            previous = current
        return found


def _lines(text: str, start: int = 0, end: int | None = None) -> Iterator[tuple[int, str]]:
    """(offset, line with its line break) pairs. Only ``\\n`` ends a line, so that offsets
    map back onto the exact bytes (a CRLF line keeps its ``\\r``)."""
    stop = len(text) if end is None else end
    offset = start
    while offset < stop:
        newline = text.find("\n", offset, stop)
        line_end = stop if newline < 0 else newline + 1
        yield offset, text[offset:line_end]
        offset = line_end


def _load_yaml(text: str) -> object:
    try:
        return yaml.load(text, Loader=_YAML_LOADER)  # noqa: S506 - a safe loader
    # A hostile document can make PyYAML raise more than YAMLError (ValueError for 2024-13-45,
    # RecursionError for deep nesting, ...): every failure here means "not valid front matter".
    except Exception as exc:
        summary = " ".join(str(exc).split()) or type(exc).__name__
        raise MalformedIssueFile(f"front matter is not valid YAML: {summary[:300]}") from None


def _required_text(front_matter: Mapping[str, object], key: str) -> str:
    value = front_matter.get(key)
    match value:
        case bool() | None:
            text = ""
        case str() | int() | float():
            text = str(value).strip()
        case _:
            raise MalformedIssueFile(f"{key!r} must be text, not {type(value).__name__}")
    if not text:
        raise MalformedIssueFile(f"{key!r} is missing or empty")
    return text


def parse_issue_file(text: str) -> IssueFile:
    """Parse the text of one issue file. Raises :class:`MalformedIssueFile`."""
    start = 1 if text.startswith("\ufeff") else 0
    lines = _lines(text, start)
    first = next(lines, None)
    if first is None or first[1].rstrip() != "---":
        raise MalformedIssueFile("no front matter: the file must start with a '---' line")
    front_matter_start = first[0] + len(first[1])
    closing = next(((o, line) for o, line in lines if line.rstrip() == "---"), None)
    if closing is None:
        raise MalformedIssueFile("front matter is not closed by a '---' line")
    front_matter_end = closing[0]
    body_start = closing[0] + len(closing[1])
    loaded = _load_yaml(text[front_matter_start:front_matter_end])
    if not isinstance(loaded, dict):
        kind = "empty" if loaded is None else f"a {type(loaded).__name__}"
        raise MalformedIssueFile(f"front matter must be a map of keys, it is {kind}")
    entries: list[tuple[object, object]] = list(loaded.items())  # pyright: ignore[reportUnknownArgumentType]
    front_matter = {key: value for key, value in entries if isinstance(key, str)}
    comments_start = next(
        (o for o, line in _lines(text, body_start) if _COMMENTS_HEADING_RE.fullmatch(line.strip())),
        None,
    )
    return IssueFile(
        text=text,
        front_matter=front_matter,
        title=_required_text(front_matter, "title"),
        state=_required_text(front_matter, "state"),
        front_matter_start=front_matter_start,
        front_matter_end=front_matter_end,
        body_start=body_start,
        comments_start=comments_start,
        newline="\r\n" if first[1].endswith("\r\n") else "\n",
    )


def _timestamp(value: object) -> datetime | None:
    match value:
        case datetime():
            moment = value
        case date():
            moment = datetime(value.year, value.month, value.day, tzinfo=UTC)
        case str():
            try:
                moment = datetime.fromisoformat(value.strip())
            except ValueError:
                return None
        case _:
            return None
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    try:
        return moment.astimezone(UTC)
    except OverflowError:
        return None


def _priority(value: object) -> int | None:
    match value:
        case bool():
            return None
        case int():
            return value
        case _:
            return None


def _text_items(value: object) -> list[str]:
    """A list of scalars (or one scalar) as stripped strings; other shapes give nothing."""
    items: list[object] = list(value) if isinstance(value, list) else [value]  # pyright: ignore[reportUnknownArgumentType]
    texts: list[str] = []
    for item in items:
        match item:
            case bool() | None:
                continue
            case str() | int() | float():
                text = str(item).strip()
                if text and text not in texts:
                    texts.append(text)
            case _:
                continue
    return texts


def issue_from_file(
    identifier: str,
    issue_file: IssueFile,
    *,
    default_url: str,
    state_of: Callable[[str], str | None],
) -> Issue:
    """Normalise like every adapter (docs/trackers.md). ``state_of`` gives a blocker's state,
    None when unknown."""
    front_matter = issue_file.front_matter
    url = front_matter.get("url")
    labels = [label.lower() for label in _text_items(front_matter.get("labels"))]
    return Issue(
        id=identifier,
        identifier=identifier,
        title=issue_file.title,
        description=issue_file.description,
        priority=_priority(front_matter.get("priority")),
        state=issue_file.state,
        url=url.strip() if isinstance(url, str) and url.strip() else default_url,
        labels=list(dict.fromkeys(labels)),
        blocked_by=[
            BlockerRef(id=blocker, identifier=blocker, state=state_of(blocker))
            for blocker in _text_items(front_matter.get("blocked_by"))
        ],
        created_at=_timestamp(front_matter.get("created_at")),
        updated_at=_timestamp(front_matter.get("updated_at")),
    )


def render_issue_file(
    title: str,
    state: str,
    *,
    description: str = "",
    priority: int | None = None,
    labels: Sequence[str] = (),
    blocked_by: Sequence[str] = (),
    created_at: datetime | None = None,
    url: str | None = None,
) -> str:
    """The text of a new issue file (for seeding boards and tests). Raises ValueError for
    an empty title or state, and for a description holding a ``## Comments`` heading line
    (it would start the comments)."""
    if not title.strip() or not state.strip():
        raise ValueError("an issue needs a title and a state")
    if any(_COMMENTS_HEADING_RE.fullmatch(line.strip()) for _, line in _lines(description)):
        raise ValueError("the description must not contain a '## Comments' heading line")
    front_matter: dict[str, object] = {"title": title, "state": state}
    if priority is not None:
        front_matter["priority"] = priority
    if labels:
        front_matter["labels"] = list(labels)
    if blocked_by:
        front_matter["blocked_by"] = list(blocked_by)
    if created_at is not None:
        front_matter["created_at"] = created_at.isoformat()
    if url is not None:
        front_matter["url"] = url
    dumped = _dump_yaml(front_matter, readable=True)
    if _load_yaml(dumped) != front_matter:
        # PyYAML writes some characters (NEL, U+2028, ...) raw that it then reads as line
        # breaks: escape everything that is not ASCII rather than change the values.
        dumped = _dump_yaml(front_matter, readable=False)
    body = description.strip()
    return f"---\n{dumped}---\n{body}\n" if body else f"---\n{dumped}---\n"


def _dump_yaml(front_matter: Mapping[str, object], *, readable: bool) -> str:
    return yaml.safe_dump(
        dict(front_matter), sort_keys=False, allow_unicode=readable, width=1_000_000
    )


def _split_scalar(rest: str) -> tuple[str, str, str] | None:
    """``rest`` of a ``key:`` line as (leading blanks, value token, what follows it)."""
    token = rest.lstrip(" \t")
    lead = rest[: len(rest) - len(token)]
    if token[:1] in ('"', "'"):
        quote = token[0]
        index = 1
        while index < len(token):
            char = token[index]
            if quote == '"' and char == "\\":
                index += 2
                continue
            if char == quote:
                if quote == "'" and token[index + 1 : index + 2] == "'":
                    index += 2
                    continue
                return lead, token[: index + 1], token[index + 1 :]
            index += 1
        return None
    comment = _COMMENT_START_RE.search(token)
    value = token[: comment.start() if comment else len(token)].rstrip(" \t")
    return lead, value, token[len(value) :]


def _plain_scalar_ok(value: str) -> bool:
    try:
        return yaml.load(f"k: {value}\n", Loader=_YAML_LOADER) == {"k": value}  # noqa: S506 - a safe loader
    except Exception:
        return False


def _yaml_scalar(value: str, quote: str) -> str:
    """``value`` in the quoting style the file already used, when that style can hold it."""
    if quote == "'" and value.isprintable():
        return "'" + value.replace("'", "''") + "'"
    if quote != '"' and "#" not in value and _plain_scalar_ok(value):
        return value
    return json.dumps(value, ensure_ascii=False)


def _same_value(left: object, right: object, seen: set[tuple[int, int]]) -> bool:
    """Deep equality of loaded YAML that survives aliases (shared or cyclic) and NaN."""
    if left is right:
        return True
    if type(left) is not type(right):
        return False
    pair = (id(left), id(right))
    if pair in seen:
        return True
    seen.add(pair)
    if isinstance(left, dict) and isinstance(right, dict):
        left_items: list[tuple[object, object]] = list(left.items())  # pyright: ignore[reportUnknownArgumentType]
        right_items: list[tuple[object, object]] = list(right.items())  # pyright: ignore[reportUnknownArgumentType]
        return len(left_items) == len(right_items) and all(
            _same_value(lk, rk, seen) and _same_value(lv, rv, seen)
            for (lk, lv), (rk, rv) in zip(left_items, right_items, strict=True)
        )
    if isinstance(left, list) and isinstance(right, list):
        left_list: list[object] = left  # pyright: ignore[reportUnknownVariableType]
        right_list: list[object] = right  # pyright: ignore[reportUnknownVariableType]
        return len(left_list) == len(right_list) and all(
            _same_value(a, b, seen) for a, b in zip(left_list, right_list, strict=True)
        )
    if isinstance(left, float) and isinstance(right, float) and math.isnan(left):
        return math.isnan(right)
    return left == right


def render_state_change(issue_file: IssueFile, target_state: str) -> str:
    """The file with its ``state:`` value replaced by ``target_state`` and every other byte
    kept. Raises :class:`UnwritableEdit` when that cannot be done exactly."""
    state_line = None
    for offset, line in _lines(
        issue_file.text, issue_file.front_matter_start, issue_file.front_matter_end
    ):
        match = _STATE_LINE_RE.fullmatch(line)
        if match:
            state_line = (offset, line, match)  # YAML keeps the last of duplicate keys
    if state_line is None:
        raise UnwritableEdit("no top-level 'state:' line to rewrite")
    offset, line, match = state_line
    parts = _split_scalar(match.group("rest"))
    if parts is None:
        raise UnwritableEdit("the 'state:' value is not a one-line scalar")
    lead, token, trailing = parts
    new_line = (
        match.group("key")
        + match.group("colon")
        + (lead or " ")
        + _yaml_scalar(target_state, token[:1])
        + trailing
        + (match.group("eol") or "")
    )
    text = issue_file.text
    new_text = text[:offset] + new_line + text[offset + len(line) :]
    try:
        edited = parse_issue_file(new_text)
    except MalformedIssueFile as exc:
        raise UnwritableEdit(f"the rewritten file would not parse ({exc})") from None
    expected = {**issue_file.front_matter, "state": target_state}
    if not _same_value(dict(edited.front_matter), expected, set()):
        raise UnwritableEdit("rewriting the 'state:' line in place would change other keys")
    return new_text


def _ends_with_blank_line(text: str) -> bool:
    return text.endswith(("\n\n", "\n\r\n"))


def render_comment_append(
    issue_file: IssueFile, body: str, marker: str, at: datetime
) -> str | None:
    """The file with one comment appended under ``## Comments`` (the heading is created
    when missing), or None when a comment with ``marker`` is already there."""
    if marker in issue_file.markers():
        return None
    nl = issue_file.newline
    text = issue_file.text
    if text and not text.endswith("\n"):
        text += nl
    if text and not _ends_with_blank_line(text):
        text += nl
    if issue_file.comments_start is None:
        text += COMMENTS_HEADING + nl + nl
    stamp = at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    body_lines = body.replace("\r\n", "\n").strip("\n").split("\n") if body.strip() else []
    block = [f"### {stamp} · {COMMENT_AUTHOR}", f"<!-- jidoka:{marker} -->", *body_lines, ""]
    return text + nl.join(block) + nl


@dataclass(frozen=True)
class BoardComment:
    """One comment block under ``## Comments``: on the local board a person's review is a
    comment they write there (and a state they set), so the review loop reads these."""

    author: str
    stamp: str
    """The header's time stamp as written (a person types it by hand: never parsed)."""
    marker: str | None
    """The ``<!-- jidoka:MARKER -->`` of a comment the line wrote; None for a person's."""
    body: str
    """Stripped, line ends made ``\\n``; the marker line is not part of it."""
    index: int
    """Position among the comments of the file, from 0."""


_HEADER_RE = re.compile(r"###[ \t]+(?P<stamp>.*?)[ \t]*·[ \t]*(?P<author>[^·]*?)")
"""A comment header, on a stripped line; the author is after the last ``·``, as
:data:`_COMMENT_HEADER_RE` reads it."""
_FENCE_OPEN_RE = re.compile(r" {0,3}(?P<fence>`{3,}(?=[^`]*\Z)|~{3,})")
_FENCE_CLOSE_RE = re.compile(r" {0,3}(?P<fence>`{3,}|~{3,})[ \t]*")


def _own_marker(line: str, following: str) -> str | None:
    """The marker of a comment the line wrote when ``line`` is its header: exactly what
    :meth:`IssueFile.markers` recognises, so the two never disagree about what was written."""
    if not _COMMENT_HEADER_RE.fullmatch(line.strip()):
        return None
    match = _MARKER_LINE_RE.fullmatch(following.strip())
    return match.group(1) if match else None


def _person_header(line: str) -> tuple[str, str] | None:
    """(stamp, author) of a person's comment header, None when ``line`` is not one. Indented
    by four or more blanks it is Markdown code, not a heading; without a stamp or an author it
    is malformed, and stays text of the comment above."""
    if len(line) - len(line.lstrip(" ")) >= 4:
        return None
    match = _HEADER_RE.fullmatch(line.strip())
    if match is None or not match.group("stamp") or not match.group("author"):
        return None
    return match.group("stamp"), match.group("author")


def _fence_after(fence: str | None, line: str) -> str | None:
    """The open code fence after ``line`` (CommonMark's rule: a fence closes on a line of the
    same character, at least as long, and nothing else). A ``### `` line inside a fence is
    quoted text, not a comment header."""
    if fence is None:
        match = _FENCE_OPEN_RE.match(line.rstrip("\r\n"))
        return match.group("fence") if match else None
    match = _FENCE_CLOSE_RE.fullmatch(line.rstrip("\r\n"))
    if match and match.group("fence")[0] == fence[0] and len(match.group("fence")) >= len(fence):
        return None
    return fence


def board_comments(issue_file: IssueFile) -> list[BoardComment]:
    """The comment blocks under the ``## Comments`` heading, in file order. A block runs from
    its ``### <stamp> · <author>`` header to the next header or the end of the file; text
    between the heading and the first header belongs to none. Tolerant, as people write
    these by hand: a malformed header, or a header-like line inside a code fence, is text of
    the comment it is in. A header the line wrote (with its marker line under it) always
    starts a comment, even after a fence a person left open, so that the line's own comments
    are read as :meth:`IssueFile.markers` reads them."""
    if issue_file.comments_start is None:
        return []
    lines = [line for _, line in _lines(issue_file.text, issue_file.comments_start)][1:]
    comments: list[BoardComment] = []
    header: tuple[str, str, str | None] | None = None
    body: list[str] = []
    fence: str | None = None

    def close() -> None:
        if header is not None:
            stamp, author, marker = header
            text = "".join(body).replace("\r\n", "\n").strip()
            comments.append(BoardComment(author, stamp, marker, text, len(comments)))

    skip_marker_line = False
    for position, line in enumerate(lines):
        if skip_marker_line:
            skip_marker_line = False
            continue
        following = lines[position + 1] if position + 1 < len(lines) else ""
        marker = _own_marker(line, following)
        person = _person_header(line) if fence is None and marker is None else None
        if marker is not None:
            match = _HEADER_RE.fullmatch(line.strip())
            close()
            header = (match.group("stamp") if match else "", COMMENT_AUTHOR, marker)
            body, fence, skip_marker_line = [], None, True
        elif person is not None:
            close()
            header, body = (*person, None), []
        else:
            fence = _fence_after(fence, line)
            body.append(line)
    close()
    return comments


# --------------------------------------------------------------------------------------------
# The board folder (blocking I/O; LocalBoard runs it in a thread)
# --------------------------------------------------------------------------------------------


class _Problem(StrEnum):
    ABSENT = "absent"
    OFF_BOARD = "off_board"
    MALFORMED = "malformed"


@dataclass(frozen=True)
class _Unusable:
    problem: _Problem
    path: str
    detail: str
    raw: bytes | None = None

    @property
    def where(self) -> str:
        return _shorten_path(self.path)


@dataclass(frozen=True)
class _Loaded:
    identifier: str
    path: str
    """Real path of the file (a symlink on the board resolves to its target there)."""
    raw: bytes
    mode: int
    issue_file: IssueFile


def _short(identifier: str) -> str:
    return repr(identifier if len(identifier) <= 80 else identifier[:77] + "...")


def _shorten_path(path: str) -> str:
    """Paths go into logs and error payloads; an identifier can be 10k characters long."""
    return path if len(path) <= 300 else f"{path[:200]}...{path[-60:]}"


def _board_path(board: str, identifier: str) -> str:
    """The real path of ``identifier``'s file. Raises ValueError for anything that is not a
    file name directly on the board (and so must never be opened)."""
    if not identifier or identifier.startswith(".") or "/" in identifier or "\x00" in identifier:
        raise ValueError("not an issue file name on this board")
    try:
        identifier.encode("utf-8")
        real = os.path.realpath(os.path.join(board, identifier + ".md"))
    except (UnicodeError, OSError):
        raise ValueError("not an issue file name on this board") from None
    if os.path.dirname(real) != board:
        raise ValueError("resolves outside the board folder")
    return real


def _read_file(path: str) -> tuple[bytes, int] | None:
    """Bytes and permission bits of a regular file, None when there is none at ``path``.
    Raises MalformedIssueFile when it cannot be read, ValueError when it became a symlink."""
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    try:
        if not stat.S_ISREG(os.lstat(path).st_mode):
            return None  # never open a FIFO or a device node that happens to end in .md
        fd = os.open(path, flags)
    except OSError as exc:
        if isinstance(exc, FileNotFoundError | NotADirectoryError):
            return None
        if exc.errno == errno.ENAMETOOLONG:
            return None  # no such file can exist
        if exc.errno == errno.ELOOP:  # swapped for a symlink since it was resolved
            raise ValueError("became a symlink while being read") from None
        raise MalformedIssueFile(f"unreadable ({exc.strerror or exc})") from None
    try:
        status = os.fstat(fd)
        if not stat.S_ISREG(status.st_mode):
            return None
        if status.st_size > MAX_FILE_BYTES:
            raise MalformedIssueFile(f"larger than {MAX_FILE_BYTES} bytes")
        chunks: list[bytes] = []
        size = 0
        while chunk := os.read(fd, 1 << 16):
            chunks.append(chunk)
            size += len(chunk)
            if size > MAX_FILE_BYTES:
                raise MalformedIssueFile(f"larger than {MAX_FILE_BYTES} bytes")
        return b"".join(chunks), stat.S_IMODE(status.st_mode)
    except OSError as exc:
        raise MalformedIssueFile(f"unreadable ({exc.strerror or exc})") from None
    finally:
        os.close(fd)


def _load(board: str, identifier: str) -> _Loaded | _Unusable:
    candidate = os.path.join(board, identifier.replace("\x00", "") + ".md")
    try:
        path = _board_path(board, identifier)
        found = _read_file(path)
    except MalformedIssueFile as exc:
        return _Unusable(_Problem.MALFORMED, candidate, str(exc))
    except ValueError as exc:
        return _Unusable(_Problem.OFF_BOARD, candidate, str(exc))
    if found is None:
        return _Unusable(_Problem.ABSENT, path, "no such file")
    raw, mode = found
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return _Unusable(_Problem.MALFORMED, path, f"not UTF-8 (byte {exc.start})", raw)
    try:
        issue_file = parse_issue_file(text)
    except MalformedIssueFile as exc:
        return _Unusable(_Problem.MALFORMED, path, str(exc), raw)
    return _Loaded(identifier, path, raw, mode, issue_file)


def _load_settled(board: str, identifier: str) -> _Loaded | _Unusable:
    """:func:`_load`, looking again while a malformed file is still changing."""
    result = _load(board, identifier)
    for _ in range(_SETTLE_READS - 1):
        if not (isinstance(result, _Unusable) and result.problem is _Problem.MALFORMED):
            break
        time.sleep(_SETTLE_DELAY_S)
        again = _load(board, identifier)
        if isinstance(again, _Unusable) and again.raw == result.raw:
            break
        result = again
    return result


_warned: dict[str, str] = {}
_warned_lock = threading.Lock()


def _report(unusable: _Unusable) -> None:
    """Warn about a problem file once per distinct problem: the line polls every few seconds."""
    with _warned_lock:
        repeated = _warned.get(unusable.path) == unusable.detail
        if len(_warned) > 10_000:
            _warned.clear()
        _warned[unusable.path] = unusable.detail
    level = logging.DEBUG if repeated else logging.WARNING
    logger.log(level, "local board: skipping %s: %s", unusable.where, unusable.detail)


def _forget_report(path: str) -> None:
    with _warned_lock:
        _warned.pop(path, None)


def _identifiers_on(board: str) -> list[str]:
    """Stems of the ``*.md`` entries directly in the folder (no dotfiles), sorted."""
    try:
        with os.scandir(board) as entries:
            names = [entry.name for entry in entries]
    except OSError as exc:
        raise TrackerError(
            TrackerErrorCategory.API_REQUEST,
            f"cannot list the board folder {board}: {exc.strerror or exc}",
            retryable=not isinstance(exc, PermissionError),
        ) from None
    stems: list[str] = []
    for name in sorted(names):
        if name.startswith(".") or not name.endswith(".md"):
            continue
        try:
            name.encode("utf-8")
        except UnicodeError:
            logger.warning("local board: skipping a file whose name is not UTF-8 in %s", board)
            continue
        stems.append(name[: -len(".md")])
    return stems


def _unchanged_digest(path: str, expected: str) -> bool:
    try:
        found = _read_file(path)
    except (MalformedIssueFile, ValueError):
        return False
    return found is not None and hashlib.sha256(found[0]).hexdigest() == expected


def _fsync_folder(folder: str) -> None:
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def replace_if_unchanged(path: str, data: bytes, expected_digest: str, mode: int) -> bool:
    """Atomically replace ``path`` by ``data`` unless its content no longer has the sha256
    ``expected_digest`` (someone edited it since it was read). Returns whether it wrote."""
    folder = os.path.dirname(path)
    prefix = "." + os.path.basename(path)[:100] + "."
    fd, temp = tempfile.mkstemp(prefix=prefix, suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fchmod(handle.fileno(), mode)
            os.fsync(handle.fileno())
        if not _unchanged_digest(path, expected_digest):
            return False
        os.replace(temp, path)
        temp = ""
        _fsync_folder(folder)
        return True
    finally:
        if temp:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temp)


@contextlib.contextmanager
def _board_lock(board: str) -> Generator[None]:
    """Exclusive lock of the board for one read-modify-write (processes and threads)."""
    flags = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        fd = os.open(os.path.join(board, LOCK_FILE_NAME), flags, 0o666)
    except OSError as exc:
        raise TrackerError(
            TrackerErrorCategory.API_REQUEST,
            f"cannot open the board lock in {board}: {exc.strerror or exc}",
        ) from None
    try:
        deadline = time.monotonic() + LOCK_TIMEOUT_S
        delay = 0.001
        # Polling rather than a blocking flock: a thread stuck in flock cannot be cancelled.
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise TrackerError(
                        TrackerErrorCategory.API_REQUEST,
                        f"the board lock in {board} was held for more than {LOCK_TIMEOUT_S}s",
                        retryable=True,
                    ) from None
                time.sleep(delay)
                delay = min(delay * 2, 0.02)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


# --------------------------------------------------------------------------------------------
# The adapter
# --------------------------------------------------------------------------------------------


def _by_id_error(identifier: str, unusable: _Unusable) -> TrackerError:
    match unusable.problem:
        case _Problem.ABSENT:
            return TrackerError(
                TrackerErrorCategory.NOT_FOUND, f"{_short(identifier)}: no {unusable.where}"
            )
        case _Problem.OFF_BOARD:
            return TrackerError(
                TrackerErrorCategory.NOT_FOUND, f"{_short(identifier)}: {unusable.detail}"
            )
        case _Problem.MALFORMED:
            return TrackerError(
                TrackerErrorCategory.MALFORMED_ISSUE, f"{unusable.where}: {unusable.detail}"
            )
        case _:
            assert_never(unusable.problem)


def _check_writable_text(what: str, text: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeError:
        raise TrackerError(
            TrackerErrorCategory.UNPROCESSABLE, f"{what} is not encodable as UTF-8"
        ) from None


def _check_marker(marker: str) -> None:
    _check_writable_text("the comment marker", marker)
    if (
        not marker
        or marker != marker.strip()
        or not marker.isprintable()
        or "-->" in marker
        or len(marker) > MAX_MARKER_LENGTH
    ):
        raise TrackerError(
            TrackerErrorCategory.UNPROCESSABLE,
            f"comment marker {_short(marker)} must be 1-{MAX_MARKER_LENGTH} printable"
            " characters, without surrounding blanks or '-->'",
        )


class LocalBoard(TrackerClient):
    """The tracker adapter for a board folder (see the module docstring for the format)."""

    def __init__(self, config: LocalTrackerConfig) -> None:
        if "$" in config.board:
            raise TrackerError(
                TrackerErrorCategory.MISSING_PROJECT,
                f"tracker.board {config.board!r} holds an unresolved $ reference",
            )
        if not os.path.isabs(config.board):
            raise TrackerError(
                TrackerErrorCategory.MISSING_PROJECT,
                f"tracker.board {config.board!r} must be resolved to an absolute path first",
            )
        self._config = config

    # ---- reads -------------------------------------------------------------------------

    async def fetch_candidate_issues(self) -> list[Issue]:
        return await self.fetch_issues_by_states(self._config.active_states)

    async def fetch_issues_by_states(self, states: Sequence[str]) -> list[Issue]:
        """Issues whose state matches one of ``states`` (case and blanks ignored), sorted by
        identifier. Malformed files, and symlinks leading off the board, are logged and
        left out. A missing board folder is ``MISSING_PROJECT``, never an empty board."""
        wanted = {norm_state(state) for state in states}
        if not wanted:
            return []
        return await asyncio.to_thread(self._issues_in_states, wanted)

    async def fetch_issues_by_ids(self, issue_ids: Sequence[str]) -> list[Issue]:
        """In the order asked, each id once. An id with no file on the board (including one
        that could never name a file there, such as ``../x``) is absent from the result;
        a malformed file raises ``MALFORMED_ISSUE``."""
        if not issue_ids:
            return []
        return await asyncio.to_thread(self._issues_by_ids, list(dict.fromkeys(issue_ids)))

    async def fetch_issue(self, issue_id: str) -> Issue:
        return await asyncio.to_thread(self._issue_by_id, issue_id)

    async def read_comments(self, issue_id: str) -> tuple[Issue, list[BoardComment]]:
        """The issue and its comments (:func:`board_comments`), from one reading of its file
        and through the same path as :meth:`fetch_issue`: an id with no file on the board
        (including one that could never name a file there, such as ``../x``) is
        ``NOT_FOUND``, a malformed file ``MALFORMED_ISSUE``."""
        return await asyncio.to_thread(self._comments_by_id, issue_id)

    # ---- writes ------------------------------------------------------------------------

    async def set_state(self, issue: Issue, target_state: str) -> Issue:
        """Compare-and-set: the board must still show ``issue.state`` (or already
        ``target_state``, then nothing is written); otherwise ``CONFLICT``."""
        target = target_state.strip()
        if not target:
            raise TrackerError(TrackerErrorCategory.UNPROCESSABLE, "the target state is empty")
        _check_writable_text("the target state", target)
        return await asyncio.to_thread(self._set_state, issue.id, issue.state, target)

    async def add_comment(self, issue: Issue, body: str, marker: str) -> bool:
        """Append a comment block at the end of the file, under ``## Comments``. ``marker``
        must be one printable line without ``-->`` (else ``UNPROCESSABLE``)."""
        _check_marker(marker)
        _check_writable_text("the comment", body)
        at = datetime.now(UTC)
        return await asyncio.to_thread(self._add_comment, issue.id, body, marker, at)

    # ---- blocking work (runs in a thread) ------------------------------------------------

    def _board(self) -> str:
        board = os.path.realpath(self._config.board)
        if not os.path.isdir(board):
            raise TrackerError(
                TrackerErrorCategory.MISSING_PROJECT,
                f"the board folder {self._config.board} does not exist or is not a folder",
            )
        return board

    def _to_issue(
        self, board: str, loaded: _Loaded, state_of: Callable[[str], str | None]
    ) -> Issue:
        default_url = Path(os.path.join(board, loaded.identifier + ".md")).as_uri()
        return issue_from_file(
            loaded.identifier, loaded.issue_file, default_url=default_url, state_of=state_of
        )

    def _state_reader(self, board: str) -> Callable[[str], str | None]:
        cache: dict[str, str | None] = {}

        def state_of(identifier: str) -> str | None:
            if identifier not in cache:
                loaded = _load(board, identifier)
                cache[identifier] = loaded.issue_file.state if isinstance(loaded, _Loaded) else None
            return cache[identifier]

        return state_of

    def _issues_in_states(self, wanted: set[str]) -> list[Issue]:
        board = self._board()
        usable: list[_Loaded] = []
        for identifier in _identifiers_on(board):
            loaded = _load(board, identifier)
            if isinstance(loaded, _Loaded):
                _forget_report(loaded.path)
                usable.append(loaded)
                continue
            match loaded.problem:
                case _Problem.ABSENT:
                    continue  # removed since the listing, or a folder named like an issue
                case _Problem.OFF_BOARD | _Problem.MALFORMED:
                    _report(loaded)
                case _:
                    assert_never(loaded.problem)
        states = {loaded.identifier: loaded.issue_file.state for loaded in usable}
        return [
            self._to_issue(board, loaded, states.get)
            for loaded in usable
            if norm_state(loaded.issue_file.state) in wanted
        ]

    def _issues_by_ids(self, identifiers: list[str]) -> list[Issue]:
        board = self._board()
        state_of = self._state_reader(board)
        issues: list[Issue] = []
        for identifier in identifiers:
            loaded = _load_settled(board, identifier)
            if isinstance(loaded, _Loaded):
                issues.append(self._to_issue(board, loaded, state_of))
                continue
            match loaded.problem:
                case _Problem.ABSENT | _Problem.OFF_BOARD:
                    continue
                case _Problem.MALFORMED:
                    _report(loaded)
                    raise _by_id_error(identifier, loaded)
                case _:
                    assert_never(loaded.problem)
        return issues

    def _loaded_by_id(self, board: str, identifier: str) -> _Loaded:
        loaded = _load_settled(board, identifier)
        if isinstance(loaded, _Unusable):
            if loaded.problem is _Problem.MALFORMED:
                _report(loaded)
            raise _by_id_error(identifier, loaded)
        return loaded

    def _issue_by_id(self, identifier: str, board: str | None = None) -> Issue:
        board = board or self._board()
        loaded = self._loaded_by_id(board, identifier)
        return self._to_issue(board, loaded, self._state_reader(board))

    def _comments_by_id(self, identifier: str) -> tuple[Issue, list[BoardComment]]:
        board = self._board()
        loaded = self._loaded_by_id(board, identifier)
        issue = self._to_issue(board, loaded, self._state_reader(board))
        return issue, board_comments(loaded.issue_file)

    def _read_modify_write(
        self, board: str, identifier: str, edit: Callable[[IssueFile], str | None]
    ) -> bool:
        """Apply ``edit`` (None: nothing to write) under the board lock, redoing it when a
        person changed the file meanwhile. Returns whether the file was written."""
        for _ in range(WRITE_ATTEMPTS):
            loaded = _load_settled(board, identifier)
            if isinstance(loaded, _Unusable):
                raise _by_id_error(identifier, loaded)
            new_text = edit(loaded.issue_file)
            if new_text is None:
                return False
            digest = hashlib.sha256(loaded.raw).hexdigest()
            try:
                written = replace_if_unchanged(
                    loaded.path, new_text.encode("utf-8"), digest, loaded.mode
                )
            except OSError as exc:
                raise TrackerError(
                    TrackerErrorCategory.API_REQUEST,
                    f"cannot write {_shorten_path(loaded.path)}: {exc.strerror or exc}",
                    retryable=True,
                ) from None
            if written:
                return True
            logger.info("local board: %s changed while being written; redoing", loaded.path)
        raise TrackerError(
            TrackerErrorCategory.CONFLICT,
            f"{_short(identifier)} kept changing during {WRITE_ATTEMPTS} write attempts;"
            " nothing was written",
            retryable=True,
        )

    def _set_state(self, identifier: str, expected: str, target: str) -> Issue:
        def edit(issue_file: IssueFile) -> str | None:
            actual = issue_file.state
            if norm_state(actual) == norm_state(target):
                return None
            if norm_state(actual) != norm_state(expected):
                raise TrackerError(
                    TrackerErrorCategory.CONFLICT,
                    f"{_short(identifier)}: expected state {expected!r} but the board"
                    f" says {actual!r}; not moving it to {target!r}",
                )
            try:
                return render_state_change(issue_file, target)
            except UnwritableEdit as exc:
                raise TrackerError(
                    TrackerErrorCategory.UNPROCESSABLE,
                    f"{_short(identifier)}: cannot set state {target!r}: {exc}",
                ) from None

        board = self._board()
        with _board_lock(board):
            self._read_modify_write(board, identifier, edit)
            return self._issue_by_id(identifier, board)

    def _add_comment(self, identifier: str, body: str, marker: str, at: datetime) -> bool:
        board = self._board()
        with _board_lock(board):
            return self._read_modify_write(
                board,
                identifier,
                lambda issue_file: render_comment_append(issue_file, body, marker, at),
            )
