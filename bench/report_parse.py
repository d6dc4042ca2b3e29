"""How long the test ratchet takes to read a big JUnit report, and how much memory it holds.

A pytest-shaped report of ``TESTS`` test cases (long parametrized ids, a tenth failing with a
message, a tenth skipped) is written to a temporary folder and read with
:func:`activities.test_report.read_report`, the way the verify activity reads the head's and the
base's reports; then both are compared (:func:`jidoka.ratchet.compare`). Targets in ``TARGETS``;
the exit code is 1 when one is missed.
"""

from __future__ import annotations

import resource
import sys
import tempfile
import time
from pathlib import Path

from activities.test_report import read_report
from jidoka import ratchet

TESTS = 100_000
TARGETS = {"read_s": 5.0, "compare_s": 1.0, "peak_rss_mb": 512.0}
"""A suite of 100,000 tests is read in seconds next to the minutes it took to run."""


def write_report(path: Path) -> int:
    with path.open("w", encoding="utf-8") as out:
        out.write('<?xml version="1.0" encoding="utf-8"?>\n<testsuites><testsuite name="pytest">\n')
        for i in range(TESTS):
            name = f"test_case[{i}-param-{'x' * 40}]"
            attrs = f'classname="tests.module_{i % 500}" name="{name}" time="0.001"'
            if i % 10 == 1:
                body = '<failure message="assert 1 == 2">' + "trace line\n" * 20 + "</failure>"
                out.write(f"<testcase {attrs}>{body}</testcase>\n")
            elif i % 10 == 2:
                out.write(f'<testcase {attrs}><skipped message="later"/></testcase>\n')
            else:
                out.write(f"<testcase {attrs}/>\n")
        out.write("</testsuite></testsuites>\n")
    return path.stat().st_size


def main() -> int:
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        size = write_report(root / "junit.xml")
        start = time.perf_counter()
        head = read_report(root, "junit.xml")
        read_s = time.perf_counter() - start
    base = dict(head)
    for test_id in list(base)[:100]:
        del base[test_id]
    start = time.perf_counter()
    comparison = ratchet.compare(base, head, base_sha="b", head_sha="h")
    ratchet.findings(comparison)
    compare_s = time.perf_counter() - start
    peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    figures = {"read_s": read_s, "compare_s": compare_s, "peak_rss_mb": peak_rss_mb}
    print(f"report: {TESTS:,} tests, {size / 1e6:.1f} MB")
    missed = 0
    for name, value in figures.items():
        ok = value <= TARGETS[name]
        missed += not ok
        print(f"{name}: {value:.2f} (target <= {TARGETS[name]}) {'ok' if ok else 'MISSED'}")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
