"""The base's side of the test ratchet: ``verify`` run once at the base commit, its report kept.

The head's report is read right after ``verify`` passed at the head; this module provides the
report to compare it with. The base is run in a fresh checkout of the base commit from the
sealed repository, like the head, and the report it wrote is cached in the worker's state per
(base commit, verify command, report path): every issue started from the same base reuses it.
Only a report that could be read is cached; a failed read is tried again next time.

Before ``verify`` runs, whatever sits at the report path in the checkout is removed: a report
committed by the agent must not stand in for the one ``verify`` writes.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
from pathlib import Path

from activities.test_report import ReportProblem, read_report
from jidoka.outcomes import TestStatus

REPORT_ENV = "JIDOKA_TEST_REPORT"

Tests = dict[str, TestStatus]


def clear_report(checkout: Path, relative: str) -> None:
    """Remove what is at the report path (a file, a link, a folder), never through a link: a
    linked folder on the way is left alone and the report read refuses it later."""
    parts = [p for p in relative.split("/") if p not in ("", ".")]
    current = checkout
    for part in parts[:-1]:
        current = current / part
        try:
            info = os.lstat(current)
        except FileNotFoundError:
            return
        if not stat.S_ISDIR(info.st_mode):
            return
    target = current / parts[-1]
    try:
        info = os.lstat(target)
    except FileNotFoundError:
        return
    if stat.S_ISDIR(info.st_mode):
        shutil.rmtree(target)
    else:
        target.unlink()


def load_report(checkout: Path, relative: str) -> tuple[Tests | None, str | None]:
    """The report's tests, or None and why it could not be read."""
    try:
        return read_report(checkout, relative), None
    except ReportProblem as problem:
        return None, str(problem)[:500]


def cache_path(state: Path, base_sha: str, script: str, relative: str) -> Path:
    digest = hashlib.sha256(f"{base_sha}\0{script}\0{relative}".encode()).hexdigest()[:32]
    return state / "test-baselines" / f"{digest}.json"


def cached(path: Path) -> Tests | None:
    """A cached base report; None when there is none or it is not one (then it is rebuilt)."""
    try:
        data = json.loads(path.read_text())
        return {str(k): TestStatus(v) for k, v in data["tests"].items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def store(path: Path, tests: Tests) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    partial = path.with_suffix(f".{os.getpid()}.tmp")
    partial.write_text(json.dumps({"tests": {k: v.value for k, v in tests.items()}}))
    partial.replace(path)
