"""Read the JUnit XML report the project's tests wrote, as ``{test id: status}``.

The test ratchet compares the tests of the head commit with those of the base commit, so that an
agent cannot make ``verify`` pass by deleting or skipping tests. The report is written by code the
agent controls, so it is hostile input and is read as such:

- the file is opened without following a symbolic link at any step, must be a regular file, and
  is read in chunks, never more than ``MAX_REPORT_BYTES``;
- the XML is parsed by expat as a stream, with no tree kept: a DOCTYPE, an entity declaration or
  an external entity is refused outright (no billion laughs, no quadratic blowup, no XXE), and
  the depth, the number of test cases and the length of an id are bounded;
- the parser is fed ever larger pieces while one token stays unfinished, so that a giant
  attribute does not make expat rescan it on every chunk (quadratic time before expat 2.6);
- anything that is not a readable JUnit report is a ``ReportProblem`` naming the file and, when
  the parser knows them, the line and column; nothing of the content but a short, cleaned
  element name is echoed.
"""

from __future__ import annotations

import errno
import hashlib
import os
import re
import stat
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import NoReturn
from xml.parsers import expat

from jidoka.outcomes import TestStatus

MAX_REPORT_BYTES = 64 * 1024 * 1024
MAX_TESTS = 200_000
MAX_DEPTH = 64
MAX_ID_CHARS = 512

READ_BYTES = 1024 * 1024
"""Bytes read from the file at a time, and the fewest handed to the parser at once."""

_SHOWN_CHARS = 80
"""The most characters of an element name, or of a decoder's complaint, put in a message."""

_DIGEST_CHARS = 16
"""Hex digits of the hash that ends an id cut to ``MAX_ID_CHARS``."""

_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")
"""The control characters (Unicode category Cc), stripped from ids."""

_ROOTS = frozenset({"testsuites", "testsuite"})

_FAILED_CHILDREN = frozenset({"failure", "error"})
"""Children of a ``<testcase>`` that fail it. nextest's ``<flakyFailure>`` and
``<rerunFailure>`` record earlier runs and do not."""

_RANK = {TestStatus.SKIPPED: 0, TestStatus.FAILED: 1, TestStatus.PASSED: 2}
"""For a test reported several times (reruns, retries): a run that passed wins, then a failure."""


class ReportProblem(Exception):
    """The report cannot be read as a JUnit report; the message names what is wrong and where
    (the file, line and column when the XML parser knows them)."""


class ReportMissing(ReportProblem):
    """No report at the configured path."""


def parse_junit(chunks: Iterable[bytes], *, source: str) -> dict[str, TestStatus]:
    """Test id -> status. ``source`` names the file in error messages."""
    reader = _JUnitReader(source)
    for chunk in chunks:
        reader.feed(chunk)
    return reader.finish()


def read_report(root: Path, relative: str) -> dict[str, TestStatus]:
    """Read ``root/relative`` without following a symbolic link at any step. The file must be a
    regular file of at most ``MAX_REPORT_BYTES``; it is streamed to ``parse_junit``.

    Raises ``ReportMissing`` when a component of the path does not exist, ``ReportProblem``
    for anything else that keeps the report from being read."""
    fd = _open_report(root, _components(relative), relative)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise ReportProblem(f"{relative}: not a regular file")
        if info.st_size > MAX_REPORT_BYTES:
            raise _too_large(relative)
        return parse_junit(_chunks(fd), source=relative)
    finally:
        os.close(fd)


# --- the file -----------------------------------------------------------------------------------

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
"""``O_NONBLOCK`` so that a FIFO planted at the path cannot hold the open forever."""


def _components(relative: str) -> list[str]:
    """The names along ``relative``, refusing what could leave the checkout."""
    if "\0" in relative:
        raise ReportProblem(f"{relative!r}: a report path cannot hold a NUL character")
    if PurePosixPath(relative).is_absolute():
        raise ReportProblem(f"{relative}: a report path must be relative to the checkout")
    parts = [part for part in relative.split("/") if part not in ("", ".")]
    if ".." in parts:
        raise ReportProblem(f"{relative}: a report path cannot hold '..'")
    if not parts:
        raise ReportProblem(f"{relative!r}: a report path must name a file")
    return parts


def _open_report(root: Path, parts: list[str], relative: str) -> int:
    """A descriptor of the report, every component opened below the one before, none followed."""
    try:
        dir_fd = os.open(root, _DIR_FLAGS)
    except OSError as error:
        raise ReportProblem(
            f"{relative}: cannot open the checkout {root}: {error.strerror}"
        ) from None
    try:
        for depth, part in enumerate(parts[:-1]):
            folder_fd = _open_at(dir_fd, part, _DIR_FLAGS, "/".join(parts[: depth + 1]), relative)
            os.close(dir_fd)
            dir_fd = folder_fd
        return _open_at(dir_fd, parts[-1], _FILE_FLAGS, "/".join(parts), relative)
    finally:
        os.close(dir_fd)


def _open_at(dir_fd: int, name: str, flags: int, shown: str, relative: str) -> int:
    try:
        return os.open(name, flags, dir_fd=dir_fd)
    except FileNotFoundError:
        raise ReportMissing(f"{relative}: no report ({shown} does not exist)") from None
    except OSError as error:
        if error.errno in (errno.ELOOP, errno.ENOTDIR) and _is_link(dir_fd, name):
            raise ReportProblem(
                f"{relative}: {shown} is a symbolic link; a report is never read through one"
            ) from None
        raise ReportProblem(f"{relative}: cannot open {shown}: {error.strerror}") from None


def _is_link(dir_fd: int, name: str) -> bool:
    try:
        return stat.S_ISLNK(os.lstat(name, dir_fd=dir_fd).st_mode)
    except OSError:
        return False


def _chunks(fd: int) -> Iterator[bytes]:
    """The file's bytes, stopping one byte past ``MAX_REPORT_BYTES`` (for the parser to refuse)
    however much the file grew since its size was checked."""
    left = MAX_REPORT_BYTES + 1
    while left > 0 and (chunk := os.read(fd, min(READ_BYTES, left))):
        left -= len(chunk)
        yield chunk


def _too_large(source: str) -> ReportProblem:
    return ReportProblem(f"{source}: larger than {MAX_REPORT_BYTES} bytes")


# --- the XML ------------------------------------------------------------------------------------


@dataclass
class _Case:
    test_id: str
    failed: bool = False
    skipped: bool = False

    def status(self) -> TestStatus:
        if self.failed:
            return TestStatus.FAILED
        if self.skipped:
            return TestStatus.SKIPPED
        return TestStatus.PASSED


@dataclass(frozen=True)
class _Frame:
    """An open element: its tag, the name of the nearest enclosing named ``<testsuite>`` (itself
    included), and the case it is when it is a ``<testcase>``."""

    tag: str
    suite: str
    case: _Case | None


class _JUnitReader:
    """One expat parser fed chunk by chunk; the open elements are the only state kept."""

    def __init__(self, source: str) -> None:
        self._source = source
        self._results: dict[str, TestStatus] = {}
        self._stack: list[_Frame] = []
        self._cases = 0
        self._received = 0
        self._fed = 0
        self._held: list[bytes] = []
        self._held_bytes = 0
        self._parser = self._new_parser()

    def _new_parser(self) -> expat.XMLParserType:
        parser = expat.ParserCreate()
        parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
        parser.StartDoctypeDeclHandler = self._refuse_doctype
        parser.EntityDeclHandler = self._refuse_entity
        parser.UnparsedEntityDeclHandler = self._refuse_entity
        parser.ExternalEntityRefHandler = self._refuse_entity
        parser.SkippedEntityHandler = self._refuse_entity
        parser.StartElementHandler = self._start
        parser.EndElementHandler = self._end
        return parser

    def feed(self, chunk: bytes) -> None:
        self._received += len(chunk)
        if self._received > MAX_REPORT_BYTES:
            raise _too_large(self._source)
        self._held.append(chunk)
        self._held_bytes += len(chunk)
        # Expat rescans an unfinished token from its start on each call: wait until the new
        # bytes are as many as the unfinished ones, so the rescans add up to linear time.
        unfinished = self._fed - max(self._parser.CurrentByteIndex, 0)
        if self._held_bytes >= max(READ_BYTES, unfinished):
            self._parse(final=False)

    def finish(self) -> dict[str, TestStatus]:
        self._parse(final=True)
        return self._results

    def _parse(self, *, final: bool) -> None:
        data = b"".join(self._held)
        self._held.clear()
        self._held_bytes = 0
        try:
            self._parser.Parse(data, final)
        except expat.ExpatError as error:
            where = f"line {error.lineno}, column {error.offset + 1}"
            raise ReportProblem(
                f"{self._source}, {where}: {expat.ErrorString(error.code)}"
            ) from None
        except (LookupError, ValueError) as error:  # an encoding pyexpat cannot decode
            raise ReportProblem(f"{self._source}: cannot decode: {_shown(str(error))}") from None
        self._fed += len(data)

    def _problem(self, what: str) -> ReportProblem:
        line = self._parser.CurrentLineNumber
        column = self._parser.CurrentColumnNumber + 1
        return ReportProblem(f"{self._source}, line {line}, column {column}: {what}")

    def _refuse_doctype(self, *_declaration: object) -> NoReturn:
        raise self._problem("a DOCTYPE is not allowed in a test report")

    def _refuse_entity(self, *_entity: object) -> NoReturn:
        raise self._problem("entities are not allowed in a test report")

    def _start(self, tag: str, attributes: dict[str, str]) -> None:
        if len(self._stack) >= MAX_DEPTH:
            raise self._problem(f"elements nested deeper than {MAX_DEPTH}")
        parent = self._stack[-1] if self._stack else None
        if parent is None and tag not in _ROOTS:
            raise self._problem(f"not a JUnit report: root element <{_shown(tag)}>")
        suite = parent.suite if parent else ""
        case = None
        if tag == "testsuite":
            suite = _clean(attributes.get("name", "")) or suite
        elif tag == "testcase":
            case = self._open_case(attributes, suite)
        elif parent is not None and parent.case is not None:
            parent.case.failed |= tag in _FAILED_CHILDREN
            parent.case.skipped |= tag == "skipped"
        self._stack.append(_Frame(tag, suite, case))

    def _open_case(self, attributes: dict[str, str], suite: str) -> _Case:
        self._cases += 1
        if self._cases > MAX_TESTS:
            raise self._problem(f"more than {MAX_TESTS} test cases")
        name = _clean(attributes.get("name", ""))
        if not name:
            raise self._problem("a <testcase> without a name")
        prefix = _clean(attributes.get("classname", "")) or suite
        return _Case(_bounded(f"{prefix}::{name}" if prefix else name))

    def _end(self, _tag: str) -> None:
        case = self._stack.pop().case
        if case is None:
            return
        status = case.status()
        earlier = self._results.get(case.test_id)
        if earlier is None or _RANK[status] > _RANK[earlier]:
            self._results[case.test_id] = status


def _clean(text: str) -> str:
    return _CONTROL.sub("", text)


def _bounded(test_id: str) -> str:
    """``test_id``, or when longer than ``MAX_ID_CHARS`` its start followed by a hash of the
    whole: as long as the limit, the same on every run, and distinct for distinct ids."""
    if len(test_id) <= MAX_ID_CHARS:
        return test_id
    digest = hashlib.sha256(test_id.encode()).hexdigest()[:_DIGEST_CHARS]
    return f"{test_id[: MAX_ID_CHARS - _DIGEST_CHARS - 1]}#{digest}"


def _shown(text: str) -> str:
    """Text from the report made fit for a message: no control characters, short."""
    text = _clean(text)
    return text if len(text) <= _SHOWN_CHARS else f"{text[:_SHOWN_CHARS]}..."
