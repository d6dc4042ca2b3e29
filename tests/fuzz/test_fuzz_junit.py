"""JUnit reports, fuzzed: the report the ratchet reads is written by code the agent controls.

:func:`activities.test_report.parse_junit` gives ``{test id: status}`` or raises
:class:`ReportProblem`, and nothing else, for any bytes in any chunking:

* generated reports (suites in suites, cases with odd names, failures, errors, skips, output,
  properties, comments, CDATA, character references) read as an oracle built from the same
  tree says: the id is ``classname::name`` (or the nearest named suite's), control characters
  dropped; a failure or error fails a case, a skip skips it, and of a case reported twice the
  best run counts;
* the same reports broken (bytes flipped, cut short, a DOCTYPE or an entity injected, another
  encoding declared, nesting past the limit) give a result or a ``ReportProblem`` whose message
  names the file and echoes nothing long;
* the outcome never depends on how the bytes were split into chunks.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from xml.sax.saxutils import escape, quoteattr

from hypothesis import event, given
from hypothesis import strategies as st
from hypothesis.strategies import DrawFn

from activities.test_report import MAX_DEPTH, MAX_ID_CHARS, ReportProblem, parse_junit
from jidoka.outcomes import TestStatus
from tests.fuzz.support import bounded, flipped, fuzzing

SOURCE = "reports/junit.xml"
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")
_RANK = {TestStatus.SKIPPED: 0, TestStatus.FAILED: 1, TestStatus.PASSED: 2}

# Characters XML 1.0 allows (no surrogates, no U+FFFE/U+FFFF, no C0 control but tab and
# line breaks), the C1 controls the reader drops included.
xml_chars = st.sampled_from("\t\n\r") | st.characters(
    codec="utf-8",
    exclude_categories=["Cs"],
    exclude_characters="\ufffe\uffff",
    min_codepoint=0x20,
)
names = st.one_of(
    st.text(xml_chars, max_size=20),
    st.sampled_from(["test_a", "a::b", "Case #1", "\x85next", "tab\there", "ünï", "😀", " "]),
)


@dataclass
class Case:
    name: str
    classname: str | None
    outcomes: list[str]
    """Direct children: failure, error, skipped, system-out, properties."""


@dataclass
class Suite:
    name: str | None
    items: list[Case | Suite] = field(default_factory=list["Case | Suite"])


cases = st.builds(
    Case,
    name=names.map(lambda name: name if _CONTROL.sub("", name) else f"{name}t"),
    classname=st.none() | names,
    outcomes=st.lists(
        st.sampled_from(["failure", "error", "skipped", "system-out", "properties"]), max_size=3
    ),
)
suites = st.recursive(
    st.builds(Suite, name=st.none() | names, items=st.lists(cases, min_size=1, max_size=4)),
    lambda children: st.builds(
        Suite, name=st.none() | names, items=st.lists(children | cases, max_size=3)
    ),
    max_leaves=8,
)


@st.composite
def trimmings(draw: DrawFn) -> str:
    """What may sit between elements without changing the result."""
    return draw(
        st.sampled_from(
            ["", "", "\n  ", "<!-- a comment -->", "<?pi data?>", "<![CDATA[<testcase>]]>"]
        )
    )


def _text(draw: DrawFn) -> str:
    return escape(draw(st.text(xml_chars, max_size=15)))


def render(draw: DrawFn, item: Case | Suite) -> str:
    if isinstance(item, Case):
        attributes = f" name={quoteattr(item.name)}"
        if item.classname is not None:
            attributes += f" classname={quoteattr(item.classname)}"
        children = "".join(
            f"<{tag} message={quoteattr('m')}>{_text(draw)}</{tag}>{draw(trimmings())}"
            for tag in item.outcomes
        )
        return f'<testcase{attributes} time="0.1">{children}</testcase>'
    attributes = f" name={quoteattr(item.name)}" if item.name is not None else ""
    body = "".join(render(draw, child) + draw(trimmings()) for child in item.items)
    return f"<testsuite{attributes}>{body}</testsuite>"


def expected(root: Suite, wrapped: bool) -> dict[str, TestStatus]:
    found: dict[str, TestStatus] = {}

    def walk(item: Case | Suite, suite: str) -> None:
        if isinstance(item, Suite):
            inner = _CONTROL.sub("", item.name or "") or suite
            for child in item.items:
                walk(child, inner)
            return
        name = _CONTROL.sub("", item.name)
        prefix = _CONTROL.sub("", item.classname or "") or suite
        test_id = f"{prefix}::{name}" if prefix else name
        if "failure" in item.outcomes or "error" in item.outcomes:
            status = TestStatus.FAILED
        elif "skipped" in item.outcomes:
            status = TestStatus.SKIPPED
        else:
            status = TestStatus.PASSED
        earlier = found.get(test_id)
        if earlier is None or _RANK[status] > _RANK[earlier]:
            found[test_id] = status

    walk(root, "")
    del wrapped
    return found


@st.composite
def reports(draw: DrawFn) -> tuple[bytes, dict[str, TestStatus]]:
    """A well-formed report and the result it must give."""
    root = draw(suites)
    wrapped = draw(st.booleans())
    body = render(draw, root)
    if wrapped:
        body = f"<testsuites>{draw(trimmings())}{body}</testsuites>"
    declaration = draw(
        st.sampled_from(
            ["", '<?xml version="1.0"?>', '<?xml version="1.0" encoding="UTF-8"?>\n', "\ufeff"]
        )
    )
    return (declaration + body).encode(), expected(root, wrapped)


def chunked(data: bytes, cuts: list[int]) -> Iterator[bytes]:
    start = 0
    for cut in sorted({min(max(cut, 0), len(data)) for cut in cuts}):
        yield data[start:cut]
        start = cut
    yield data[start:]


def parse(data: bytes, cuts: list[int]) -> dict[str, TestStatus] | str:
    """The result, or the problem's message."""
    try:
        return bounded(lambda: parse_junit(chunked(data, cuts), source=SOURCE))
    except ReportProblem as problem:
        return str(problem)


def check_result(result: dict[str, TestStatus] | str) -> None:
    if isinstance(result, str):
        event("refused")
        assert result.startswith(SOURCE), result
        assert len(result) < len(SOURCE) + 300, result
        return
    event("read")
    for test_id, status in result.items():
        assert test_id and len(test_id) <= MAX_ID_CHARS
        assert not _CONTROL.search(test_id), test_id
        assert isinstance(status, TestStatus)


cut_lists = st.lists(st.integers(0, 4_000), max_size=6)


@fuzzing(ci_examples=150)
@given(report=reports(), cuts=cut_lists)
def test_a_generated_report_reads_as_its_oracle_says(
    report: tuple[bytes, dict[str, TestStatus]], cuts: list[int]
) -> None:
    data, wanted = report
    result = parse(data, cuts)
    assert result == wanted, (data[:500], result)
    event(f"{min(len(wanted), 5)}+ tests")


@st.composite
def hostile_reports(draw: DrawFn) -> bytes:
    data, _ = draw(reports())
    match draw(st.integers(0, 8)):
        case 0 | 1:
            return draw(flipped(data))
        case 2:
            return data[: draw(st.integers(0, len(data)))]
        case 3:
            injected = draw(
                st.sampled_from(
                    [
                        '<!DOCTYPE r [<!ENTITY a "aaaa">]>',
                        '<!DOCTYPE r SYSTEM "file:///etc/passwd">',
                        '<!DOCTYPE r [<!ENTITY % p SYSTEM "http://x/">%p;]>',
                        "&undefined;",
                        "&#0;",
                        "&#xD800;",
                        "&#1114112;",
                        "<?xml version='1.0'?>",
                    ]
                )
            )
            at = draw(st.sampled_from([0, data.find(b">") + 1, len(data) // 2]))
            return data[:at] + injected.encode() + data[at:]
        case 4:
            encoding = draw(
                st.sampled_from(
                    ["utf-16", "UTF-16LE", "latin-1", "ascii", "shift_jis", "cp1252", "nope", ""]
                )
            )
            declaration = f'<?xml version="1.0" encoding="{encoding}"?>'
            try:
                return (declaration + data.decode("utf-8")).encode(encoding or "utf-8")
            except (LookupError, UnicodeError):
                return declaration.encode() + data
        case 5:
            depth = draw(st.sampled_from([MAX_DEPTH - 1, MAX_DEPTH, MAX_DEPTH + 1, 5_000]))
            opened = "<testsuite>" * (depth - 1)
            return (
                f"<testsuites>{opened}" + "</testsuite>" * (depth - 1) + "</testsuites>"
            ).encode()
        case 6:
            name = draw(st.sampled_from(["x" * 100_000, "\x85" * 600, "a::" * 300]))
            return f"<testsuite><testcase name={quoteattr(name)}/></testsuite>".encode()
        case 7:
            root = draw(st.sampled_from(["html", "testcase", "TestSuites", "x" * 500, "a:b"]))
            return f"<{root}><testcase name='a'/></{root}>".encode()
        case _:
            return draw(st.binary(max_size=200))


@fuzzing(ci_examples=150)
@given(data=hostile_reports(), cuts=cut_lists, other_cuts=cut_lists)
def test_any_bytes_give_statuses_or_a_report_problem_whatever_the_chunks(
    data: bytes, cuts: list[int], other_cuts: list[int]
) -> None:
    result = parse(data, cuts)
    check_result(result)
    assert parse(data, other_cuts) == result
