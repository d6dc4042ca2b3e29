"""``jidoka demo`` (what ``make demo`` runs) as a user runs it: the real console script, started
from a folder outside the repository, builds the demo line, runs it sandboxed to idle on its
embedded server, and prints one JSON summary whose outcomes are the ones each scripted issue
is written to end in."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from tests.support.paths import JIDOKA
from tests.support.ports import free_port
from tests.support.workerproc import child_environ

EXPECTED = {
    "DEMO-1": ("shipped", "shipped"),
    "DEMO-2": ("halted", "no_progress"),
    "DEMO-3": ("halted", "halt_requested"),
    "DEMO-4": ("paused", "awaiting_answers"),
    "DEMO-5": ("halted", "budget_exceeded"),
    "DEMO-6": ("halted", "hook_timeout"),
    "DEMO-7": ("shipped", "shipped"),
    "DEMO-8": ("shipped", "shipped"),
    "DEMO-9": ("halted", "protected_paths"),
}


def test_the_demo_runs_from_anywhere_and_ends_as_written(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    done = subprocess.run(
        [
            JIDOKA,
            "demo",
            "--json",
            "--dir",
            str(tmp_path / "demo"),
            "--port",
            str(free_port()),
            "--ui-port",
            str(free_port()),
        ],
        cwd=elsewhere,
        env=child_environ(),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )

    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    summary = json.loads(done.stdout)  # stdout is the document alone
    ended = {i["identifier"]: (i["phase"], i["outcome"]) for i in summary["issues"]}
    assert ended == EXPECTED
    assert "a fresh line in" in done.stderr and "Traceback" not in done.stderr
