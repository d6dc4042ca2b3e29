"""Reading the JUnit report the tests wrote (``activities/test_report.py``): the reports of
pytest, Jest, gotestsum and cargo nextest as those tools write them, and the hostile ones an
agent could plant (entity bombs, XXE, deep nesting, huge files, links out of the checkout), each
refused quickly with a message that names the file and, when known, the line and column."""

from __future__ import annotations

import contextlib
import os
import re
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from activities import test_report
from activities.test_report import (
    MAX_DEPTH,
    MAX_ID_CHARS,
    MAX_REPORT_BYTES,
    ReportMissing,
    ReportProblem,
    parse_junit,
    read_report,
)
from jidoka.outcomes import TestStatus

PASSED = TestStatus.PASSED
FAILED = TestStatus.FAILED
SKIPPED = TestStatus.SKIPPED


def parse(text: str | bytes, *, chunk: int = 7) -> dict[str, TestStatus]:
    """Parse in small chunks, so that every test also tries elements split across chunks."""
    data = text.encode() if isinstance(text, str) else text
    return parse_junit(pieces(data, chunk), source="report.xml")


def pieces(data: bytes, size: int) -> Iterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


def refused(text: str | bytes) -> str:
    with pytest.raises(ReportProblem) as caught:
        parse(text)
    return str(caught.value)


def suite(*cases: str, name: str = "s") -> str:
    return f'<testsuites><testsuite name="{name}">{"".join(cases)}</testsuite></testsuites>'


# --- the formats --------------------------------------------------------------------------------

PYTEST = """<?xml version="1.0" encoding="utf-8"?><testsuites><testsuite name="pytest" errors="2" \
failures="1" skipped="1" tests="6" time="0.123" timestamp="2024-05-01T10:00:00.000000" \
hostname="ci"><testcase classname="tests.test_calc" name="test_add[1-2]" time="0.001" />\
<testcase classname="tests.test_calc" name="test_add[3-4]" time="0.001" />\
<testcase classname="tests.test_calc" name="test_div" time="0.002"><failure \
message="ZeroDivisionError: division by zero">def test_div():
&gt;       assert div(1, 0) == 0
E       ZeroDivisionError: division by zero

tests/test_calc.py:12: ZeroDivisionError</failure></testcase>\
<testcase classname="tests.test_calc" name="test_later" time="0.000"><skipped type="pytest.skip" \
message="not yet">tests/test_calc.py:20: not yet</skipped></testcase>\
<testcase classname="tests.test_db" name="test_query" time="0.003"><error \
message="failed on setup with &quot;RuntimeError: no db&quot;">@pytest.fixture
    def db():
&gt;       raise RuntimeError("no db")
E       RuntimeError: no db</error></testcase>\
<testcase classname="" name="tests.test_broken" time="0.000"><error message="collection failure">\
ImportError while importing test module</error></testcase></testsuite></testsuites>"""


def test_pytest_junitxml() -> None:
    assert parse(PYTEST) == {
        "tests.test_calc::test_add[1-2]": PASSED,
        "tests.test_calc::test_add[3-4]": PASSED,
        "tests.test_calc::test_div": FAILED,
        "tests.test_calc::test_later": SKIPPED,
        "tests.test_db::test_query": FAILED,
        "pytest::tests.test_broken": FAILED,
    }


JEST = """<?xml version="1.0" encoding="UTF-8"?>
<testsuites name="jest tests" tests="4" failures="1" errors="0" time="1.234">
  <testsuite name="Calculator" errors="0" failures="1" skipped="1" timestamp="2024-05-01T10:00:00" time="0.5" tests="3">
    <testcase classname="Calculator adds two numbers" name="Calculator adds two numbers" time="0.002">
    </testcase>
    <testcase classname="Calculator divides by zero" name="Calculator divides by zero" time="0.003">
      <failure>Error: expect(received).toThrow()

Received function did not throw
    at Object.&lt;anonymous&gt; (/app/src/calc.test.js:12:31)</failure>
    </testcase>
    <testcase classname="Calculator pending" name="Calculator pending" time="0">
      <skipped/>
    </testcase>
  </testsuite>
  <testsuite name="Parser" errors="0" failures="0" skipped="0" timestamp="2024-05-01T10:00:01" time="0.1" tests="1">
    <testcase classname="Parser reads numbers" name="Parser reads numbers" time="0.001">
    </testcase>
  </testsuite>
</testsuites>
"""


def test_jest_junit() -> None:
    assert parse(JEST) == {
        "Calculator adds two numbers::Calculator adds two numbers": PASSED,
        "Calculator divides by zero::Calculator divides by zero": FAILED,
        "Calculator pending::Calculator pending": SKIPPED,
        "Parser reads numbers::Parser reads numbers": PASSED,
    }


GOTESTSUM = """<?xml version="1.0" encoding="UTF-8"?>
<testsuites tests="5" failures="2" errors="0" time="0.012000">
	<testsuite tests="4" failures="1" time="0.010000" name="example.com/calc" timestamp="2024-05-01T10:00:00Z">
		<properties>
			<property name="go.version" value="go1.22.2 linux/amd64"></property>
		</properties>
		<testcase classname="example.com/calc" name="TestAdd" time="0.000000"></testcase>
		<testcase classname="example.com/calc" name="TestAdd/negative" time="0.000000"></testcase>
		<testcase classname="example.com/calc" name="TestDiv" time="0.000000">
			<failure message="Failed" type="">=== RUN   TestDiv&#xA;    calc_test.go:12: want 2, got 0&#xA;--- FAIL: TestDiv (0.00s)&#xA;</failure>
		</testcase>
		<testcase classname="example.com/calc" name="TestSlow" time="0.000000">
			<skipped message="=== RUN   TestSlow&#xA;    calc_test.go:20: slow&#xA;--- SKIP: TestSlow (0.00s)&#xA;"></skipped>
		</testcase>
	</testsuite>
	<testsuite tests="1" failures="1" time="0.000000" name="example.com/broken" timestamp="2024-05-01T10:00:00Z">
		<properties>
			<property name="go.version" value="go1.22.2 linux/amd64"></property>
		</properties>
		<testcase classname="example.com/broken" name="TestMain" time="0.000000">
			<failure message="Failed" type="">example.com/broken [build failed]</failure>
		</testcase>
	</testsuite>
	<testsuite tests="0" failures="0" time="0.000000" name="example.com/calc/cmd" timestamp="2024-05-01T10:00:00Z">
		<properties>
			<property name="go.version" value="go1.22.2 linux/amd64"></property>
		</properties>
	</testsuite>
</testsuites>
"""


def test_gotestsum_junitfile() -> None:
    assert parse(GOTESTSUM) == {
        "example.com/calc::TestAdd": PASSED,
        "example.com/calc::TestAdd/negative": PASSED,
        "example.com/calc::TestDiv": FAILED,
        "example.com/calc::TestSlow": SKIPPED,
        "example.com/broken::TestMain": FAILED,
    }


NEXTEST = """<?xml version="1.0" encoding="UTF-8"?>
<testsuites name="nextest-run" tests="4" failures="1" errors="0" uuid="5a1d6bb3-2f6e-4f5e-9a0e-3f0c5c0a1b2c" timestamp="2024-05-01T10:00:00.000+00:00" time="0.321">
    <testsuite name="calc::bin/calc" tests="1" disabled="0" errors="0" failures="0">
        <testcase name="cli::parses_args" classname="calc::bin/calc" timestamp="2024-05-01T10:00:00.010+00:00" time="0.004">
        </testcase>
    </testsuite>
    <testsuite name="calc" tests="3" disabled="0" errors="0" failures="1">
        <testcase name="ops::test_add" classname="calc" timestamp="2024-05-01T10:00:00.020+00:00" time="0.003">
            <system-out>running 1 test</system-out>
        </testcase>
        <testcase name="ops::test_flaky" classname="calc" timestamp="2024-05-01T10:00:00.030+00:00" time="0.010">
            <flakyFailure timestamp="2024-05-01T10:00:00.030+00:00" time="0.004" type="test failure">thread 'ops::test_flaky' panicked at src/ops.rs:40:9
<system-out>running 1 test</system-out><system-err>assertion failed</system-err></flakyFailure>
        </testcase>
        <testcase name="ops::test_div" classname="calc" timestamp="2024-05-01T10:00:00.040+00:00" time="0.002">
            <failure type="test failure">thread 'ops::test_div' panicked at src/ops.rs:52:5:
attempt to divide by zero</failure>
            <rerunFailure timestamp="2024-05-01T10:00:00.050+00:00" time="0.002" type="test failure">attempt to divide by zero</rerunFailure>
            <system-out>running 1 test</system-out>
        </testcase>
    </testsuite>
</testsuites>
"""


def test_cargo_nextest_with_a_flaky_test_that_passed_on_retry() -> None:
    assert parse(NEXTEST) == {
        "calc::bin/calc::cli::parses_args": PASSED,
        "calc::ops::test_add": PASSED,
        "calc::ops::test_flaky": PASSED,
        "calc::ops::test_div": FAILED,
    }


def test_a_lone_testsuite_root_and_a_testcase_outside_any_suite() -> None:
    assert parse('<testsuite name="unit"><testcase name="a"/></testsuite>') == {"unit::a": PASSED}
    assert parse('<testsuites name="all"><testcase name="b"/></testsuites>') == {"b": PASSED}


def test_the_nearest_named_suite_names_a_case_without_classname() -> None:
    report = (
        '<testsuites><testsuite name="outer"><testsuite name="inner"><testcase name="a"/>'
        '</testsuite><testsuite><testcase name="b"/></testsuite><testcase name="c"/></testsuite>'
        "</testsuites>"
    )
    assert parse(report) == {"inner::a": PASSED, "outer::b": PASSED, "outer::c": PASSED}


# --- statuses -----------------------------------------------------------------------------------


def test_an_error_fails_a_case_and_failure_wins_over_skipped() -> None:
    report = suite(
        '<testcase name="errored"><error message="boom"/></testcase>',
        '<testcase name="both"><skipped/><failure/></testcase>',
        '<testcase name="skipped"><skipped message="later"/></testcase>',
        '<testcase name="passed"><system-out>ok</system-out></testcase>',
    )
    assert parse(report) == {
        "s::errored": FAILED,
        "s::both": FAILED,
        "s::skipped": SKIPPED,
        "s::passed": PASSED,
    }


def test_only_direct_children_of_a_testcase_count() -> None:
    report = suite(
        '<testcase name="a"><system-out><failure/></system-out></testcase>',
        '<testcase name="b"><properties><skipped/></properties></testcase>',
    )
    assert parse(report) == {"s::a": PASSED, "s::b": PASSED}


def test_a_test_reported_several_times_passes_if_any_run_passed() -> None:
    report = suite(
        '<testcase name="flaky"><failure/></testcase>',
        '<testcase name="flaky"/>',
        '<testcase name="flaky"><failure/></testcase>',
        '<testcase name="broken"><skipped/></testcase>',
        '<testcase name="broken"><error/></testcase>',
        '<testcase name="broken"><skipped/></testcase>',
        '<testcase name="ignored"><skipped/></testcase>',
        '<testcase name="ignored"><skipped/></testcase>',
    )
    assert parse(report) == {"s::flaky": PASSED, "s::broken": FAILED, "s::ignored": SKIPPED}


def test_an_empty_report_has_no_tests() -> None:
    assert parse("<testsuites/>") == {}


# --- ids ----------------------------------------------------------------------------------------


def test_control_characters_are_stripped_from_ids() -> None:
    report = suite('<testcase classname="&#9;" name="test_a&#10;b&#x85;c&#x7f;"/>', name="s&#13;")
    assert parse(report) == {"s::test_abc": PASSED}


def test_a_long_id_is_cut_to_the_limit_deterministically_and_stays_distinct() -> None:
    stem = "t" * 600
    report = suite(f'<testcase name="{stem}a"/>', f'<testcase name="{stem}b"/>')
    first = parse(report)
    assert first == parse(report, chunk=4096)
    assert sorted(len(test_id) for test_id in first) == [MAX_ID_CHARS, MAX_ID_CHARS]
    assert all(test_id.startswith("s::ttt") for test_id in first)
    assert set(first.values()) == {PASSED}


def test_a_giant_attribute_fed_in_small_chunks_is_read_in_linear_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Expat before 2.6 rescans an unfinished token on every call: fed 4 KiB at a time, 16 MiB in
    # one attribute would take tens of seconds, unless the pieces grow with the token.
    monkeypatch.setattr(test_report, "READ_BYTES", 4096)
    data = suite(f'<testcase name="{"x" * (16 * 1024 * 1024)}"/>').encode()
    started = time.monotonic()
    result = parse(data, chunk=4096)
    assert time.monotonic() - started < 4
    assert [len(test_id) for test_id in result] == [MAX_ID_CHARS]


# --- malformed ----------------------------------------------------------------------------------


def test_a_truncated_report_names_the_file_line_and_column() -> None:
    message = refused('<testsuites>\n  <testsuite name="s">\n    <testcase name="a"/>\n    <testc')
    assert message == "report.xml, line 4, column 5: unclosed token"


def test_text_that_is_not_xml_is_refused() -> None:
    assert refused("all 12 tests passed\n") == "report.xml, line 1, column 1: syntax error"


def test_an_empty_file_is_refused() -> None:
    assert refused(b"") == "report.xml, line 1, column 1: no element found"


def test_invalid_utf8_is_refused() -> None:
    message = refused(b'<testsuites>\n<testcase name="caf\xe9"/></testsuites>')
    assert message == "report.xml, line 2, column 20: not well-formed (invalid token)"


def test_an_unknown_encoding_is_refused() -> None:
    message = refused('<?xml version="1.0" encoding="klingon"?><testsuites/>')
    assert message == "report.xml: cannot decode: unknown encoding: klingon"


def test_another_root_element_is_not_a_junit_report() -> None:
    message = refused("<html><body><testcase name='a'/></body></html>")
    assert message == "report.xml, line 1, column 1: not a JUnit report: root element <html>"


def test_a_long_root_element_is_shown_short() -> None:
    message = refused(f"<{'h' * 10_000}/>")
    assert message.endswith(f"root element <{'h' * 80}...>")


def test_a_testcase_without_a_name_is_refused() -> None:
    message = refused('<testsuites>\n<testsuite name="s">\n  <testcase classname="c"/>')
    assert message == "report.xml, line 3, column 3: a <testcase> without a name"


# --- hostile ------------------------------------------------------------------------------------

BILLION_LAUGHS = """<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<testsuites><testsuite name="&lol9;"><testcase name="&lol9;"/></testsuite></testsuites>
"""

DOCTYPE_REFUSED = re.compile(
    r"report\.xml, line \d+, column \d+: a DOCTYPE is not allowed in a test report"
)


def test_billion_laughs_is_refused_quickly() -> None:
    started = time.monotonic()
    # Refused where the internal subset opens, before any entity is declared.
    assert refused(BILLION_LAUGHS) == (
        "report.xml, line 2, column 16: a DOCTYPE is not allowed in a test report"
    )
    assert time.monotonic() - started < 1


def test_quadratic_blowup_is_refused_quickly() -> None:
    blob = "x" * 100_000
    report = (
        f'<?xml version="1.0"?>\n<!DOCTYPE kaboom [<!ENTITY a "{blob}">]>\n'
        f'<testsuites><testsuite name="s"><testcase name="t">{"&a;" * 50_000}</testcase>'
        "</testsuite></testsuites>"
    )
    started = time.monotonic()
    assert DOCTYPE_REFUSED.fullmatch(refused(report))
    assert time.monotonic() - started < 1


@pytest.fixture
def secret(tmp_path: Path) -> Path:
    path = tmp_path / "secret.txt"
    path.write_text("TOP-SECRET-7f3a9c\n")
    return path


@pytest.mark.parametrize(
    "declaration",
    [
        '<!DOCTYPE testsuites [<!ENTITY xxe SYSTEM "file://{secret}">]>',
        '<!DOCTYPE testsuites [<!ENTITY % xxe SYSTEM "file://{secret}"> %xxe;]>',
        '<!DOCTYPE testsuites SYSTEM "file://{secret}">',
    ],
    ids=["general entity", "parameter entity", "external DTD"],
)
def test_external_entities_are_refused_without_reading_the_file(
    secret: Path, declaration: str
) -> None:
    report = (
        f'<?xml version="1.0"?>\n{declaration.format(secret=secret)}\n'
        '<testsuites><testsuite name="s"><testcase name="&xxe;"/></testsuite></testsuites>'
    )
    message = refused(report)
    assert DOCTYPE_REFUSED.fullmatch(message)
    assert "TOP-SECRET" not in message


def test_an_undeclared_entity_is_refused(secret: Path) -> None:
    message = refused(suite('<testcase name="&xxe;"/>'))
    assert message == "report.xml, line 1, column 33: undefined entity"
    assert "TOP-SECRET" not in message


@pytest.mark.parametrize(
    "report",
    ["<!DOCTYPE testsuites>\n<testsuites/>", "<!DOCTYPE testsuites>"],
    ids=["with a root", "alone"],
)
def test_any_doctype_is_refused(report: str) -> None:
    assert refused(report) == (
        "report.xml, line 1, column 21: a DOCTYPE is not allowed in a test report"
    )


def test_nesting_up_to_the_limit_is_read_and_deeper_is_refused() -> None:
    def nested(depth: int) -> str:
        inner = '<testcase name="deep"/>'
        return (
            "<testsuites>"
            + "<testsuite>" * (depth - 2)
            + inner
            + "</testsuite>" * (depth - 2)
            + "</testsuites>"
        )

    assert parse(nested(MAX_DEPTH)) == {"deep": PASSED}
    message = refused(nested(MAX_DEPTH + 1))
    assert message.endswith(f": elements nested deeper than {MAX_DEPTH}")


def test_too_many_test_cases_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(test_report, "MAX_TESTS", 3)
    three = [f'<testcase name="t{index}"/>' for index in range(3)]
    assert parse(suite(*three)) == {"s::t0": PASSED, "s::t1": PASSED, "s::t2": PASSED}
    message = refused(suite(*three, '<testcase name="t0"/>'))
    assert message.endswith(": more than 3 test cases")


def test_a_stream_over_the_size_limit_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    report = suite('<testcase name="a"/>')
    monkeypatch.setattr(test_report, "MAX_REPORT_BYTES", len(report))
    assert parse(report) == {"s::a": PASSED}
    monkeypatch.setattr(test_report, "MAX_REPORT_BYTES", len(report) - 1)
    assert refused(report) == f"report.xml: larger than {len(report) - 1} bytes"


# --- reading the file ---------------------------------------------------------------------------


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    path = tmp_path / "checkout"
    (path / "reports").mkdir(parents=True)
    return path


def test_read_report_reads_a_file_below_the_checkout(checkout: Path) -> None:
    (checkout / "reports" / "junit.xml").write_text(PYTEST)
    result = read_report(checkout, "./reports//junit.xml")
    assert result["tests.test_calc::test_div"] == FAILED
    assert len(result) == 6


def test_read_report_names_the_report_in_errors(checkout: Path) -> None:
    (checkout / "reports" / "junit.xml").write_text("<testsuites>\n<testcase")
    with pytest.raises(ReportProblem) as caught:
        read_report(checkout, "reports/junit.xml")
    assert str(caught.value) == "reports/junit.xml, line 2, column 1: unclosed token"


def test_a_missing_report_is_missing(checkout: Path) -> None:
    with pytest.raises(ReportMissing) as caught:
        read_report(checkout, "reports/junit.xml")
    assert str(caught.value) == "reports/junit.xml: no report (reports/junit.xml does not exist)"
    with pytest.raises(ReportMissing) as caught:
        read_report(checkout, "target/nextest/junit.xml")
    assert str(caught.value) == "target/nextest/junit.xml: no report (target does not exist)"


def test_a_symlinked_report_is_not_followed(checkout: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside.xml"
    outside.write_text(suite('<testcase name="a"/>'))
    (checkout / "reports" / "junit.xml").symlink_to(outside)
    with pytest.raises(ReportProblem) as caught:
        read_report(checkout, "reports/junit.xml")
    assert str(caught.value) == (
        "reports/junit.xml: reports/junit.xml is a symbolic link; a report is never read through one"
    )
    assert not isinstance(caught.value, ReportMissing)


def test_a_symlinked_folder_is_not_followed(checkout: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "junit.xml").write_text(suite('<testcase name="a"/>'))
    (checkout / "out").symlink_to(elsewhere)
    with pytest.raises(ReportProblem) as caught:
        read_report(checkout, "out/junit.xml")
    assert str(caught.value) == (
        "out/junit.xml: out is a symbolic link; a report is never read through one"
    )


def test_a_dangling_symlink_is_refused_not_missing(checkout: Path, tmp_path: Path) -> None:
    (checkout / "junit.xml").symlink_to(tmp_path / "nowhere.xml")
    with pytest.raises(ReportProblem) as caught:
        read_report(checkout, "junit.xml")
    assert not isinstance(caught.value, ReportMissing)
    assert "symbolic link" in str(caught.value)


@pytest.mark.parametrize(
    ("relative", "expected"),
    [
        ("../outside.xml", "../outside.xml: a report path cannot hold '..'"),
        ("reports/../../outside.xml", "reports/../../outside.xml: a report path cannot hold '..'"),
        ("/etc/passwd", "/etc/passwd: a report path must be relative to the checkout"),
        ("", "'': a report path must name a file"),
        ("./", "'./': a report path must name a file"),
        ("a\0b", "'a\\x00b': a report path cannot hold a NUL character"),
    ],
)
def test_paths_that_could_leave_the_checkout_are_refused(
    checkout: Path, tmp_path: Path, relative: str, expected: str
) -> None:
    (tmp_path / "outside.xml").write_text(suite('<testcase name="a"/>'))
    with pytest.raises(ReportProblem) as caught:
        read_report(checkout, relative)
    assert str(caught.value) == expected


def test_a_folder_at_the_path_is_refused(checkout: Path) -> None:
    with pytest.raises(ReportProblem) as caught:
        read_report(checkout, "reports")
    assert str(caught.value) == "reports: not a regular file"


def test_a_file_where_a_folder_should_be_is_refused(checkout: Path) -> None:
    (checkout / "junit.xml").write_text(suite('<testcase name="a"/>'))
    with pytest.raises(ReportProblem) as caught:
        read_report(checkout, "junit.xml/more.xml")
    assert str(caught.value) == "junit.xml/more.xml: cannot open junit.xml: Not a directory"


def test_a_fifo_at_the_path_is_refused_without_blocking(checkout: Path) -> None:
    fifo = checkout / "junit.xml"
    os.mkfifo(fifo)
    unblocked: list[bool] = []

    def unblock() -> None:  # a reader stuck opening the FIFO is let go, and the test fails
        with contextlib.suppress(OSError):
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
            unblocked.append(True)

    rescue = threading.Timer(2, unblock)
    rescue.start()
    try:
        with pytest.raises(ReportProblem) as caught:
            read_report(checkout, "junit.xml")
    finally:
        rescue.cancel()
    assert str(caught.value) == "junit.xml: not a regular file"
    assert not unblocked


def test_a_huge_file_is_refused_by_its_size(checkout: Path) -> None:
    path = checkout / "junit.xml"
    path.write_text("<testsuites>")
    os.truncate(path, MAX_REPORT_BYTES + 1)  # sparse: nothing is written
    started = time.monotonic()
    with pytest.raises(ReportProblem) as caught:
        read_report(checkout, "junit.xml")
    assert str(caught.value) == f"junit.xml: larger than {MAX_REPORT_BYTES} bytes"
    assert time.monotonic() - started < 1


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="needs /proc")
def test_reading_stops_past_the_limit_when_the_size_lied(monkeypatch: pytest.MonkeyPatch) -> None:
    # Files in /proc are regular files that say they are empty, like a report that grew after
    # its size was checked.
    proc = Path(f"/proc/{os.getpid()}")
    assert os.stat(proc / "status").st_size == 0
    monkeypatch.setattr(test_report, "MAX_REPORT_BYTES", 100)
    with pytest.raises(ReportProblem) as caught:
        read_report(proc, "status")
    assert str(caught.value) == "status: larger than 100 bytes"
