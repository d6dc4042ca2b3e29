"""``jidoka check`` as a user runs it (the real console script): the example checks clean, every
problem is named by its key path, ``--json`` is one document, and no file, however nasty (the
inputs that once hung or crashed the loader), gives a traceback or a hang."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from jidoka.workflow_file import MAX_WORKFLOW_BYTES
from tests.support.linekit import base_front_matter
from tests.support.paths import JIDOKA
from tests.support.workflow_md import EXAMPLE, bomb, document, edited, write_workflow


def run_check(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [JIDOKA, "check", *args], capture_output=True, text=True, timeout=60, env={**os.environ}
    )


def test_check_accepts_the_example() -> None:
    done = run_check(str(EXAMPLE))
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.startswith("ok:")


def test_check_names_the_missing_done_state(tmp_path: Path) -> None:
    front = base_front_matter("x")
    del front["tracker"]["done_state"]
    done = run_check(str(write_workflow(tmp_path, front)))
    assert done.returncode == 1
    assert "tracker.done_state" in done.stdout
    assert "Traceback" not in done.stdout + done.stderr


@pytest.mark.parametrize("target", ["missing.md", ".", "binary"])
def test_check_never_prints_a_traceback(tmp_path: Path, target: str) -> None:
    (tmp_path / "binary").write_bytes(b"\x00\xff\xfe---\n\x80")
    done = subprocess.run(
        [JIDOKA, "check", target], capture_output=True, text=True, timeout=60, cwd=tmp_path
    )
    assert done.returncode == 1
    assert "Traceback" not in done.stdout + done.stderr


def test_check_json(tmp_path: Path) -> None:
    front = base_front_matter("x")
    del front["tracker"]["done_state"]
    done = run_check("--json", str(write_workflow(tmp_path, front)))

    report = json.loads(done.stdout)
    assert report["valid"] is False
    assert "tracker.done_state" in [p["path"] for p in report["problems"]]


def test_check_reports_a_weaker_sandbox_as_a_risk(tmp_path: Path) -> None:
    default = run_check("--json", str(write_workflow(tmp_path, base_front_matter("x"))))
    assert json.loads(default.stdout)["risks"] == []  # the scripted agent: sandboxed, offline

    front = {**base_front_matter("x"), "sandbox": "none"}
    done = run_check(str(write_workflow(tmp_path, front)))
    assert done.returncode == 0
    assert "risk: sandbox: none" in done.stdout

    front = {**base_front_matter("x"), "sandbox": {"network": True, "writable": ["/srv/cache"]}}
    report = json.loads(run_check("--json", str(write_workflow(tmp_path, front))).stdout)
    assert [r.split(" - ")[0] for r in report["risks"]] == [
        "sandbox network on",
        "sandbox.writable",
    ]


def test_check_warns_while_verify_runs_without_a_judge(tmp_path: Path) -> None:
    front = base_front_matter("x")  # verify set, no judge: section
    done = run_check(str(write_workflow(tmp_path, front)))
    assert done.returncode == 0
    assert "warning: hooks.verify is set but judge.protected_paths is empty" in done.stdout
    assert "warning: hooks.verify is set but judge.test_report is not" in done.stdout

    front["judge"] = {"protected_paths": ["test_*.py"], "test_report": "r.xml"}
    report = json.loads(run_check("--json", str(write_workflow(tmp_path, front))).stdout)
    assert report["warnings"] == []

    front["judge"] = {"test_report": "../r.xml"}
    done = run_check(str(write_workflow(tmp_path, front)))
    assert done.returncode == 1 and "judge.test_report" in done.stdout


NASTY_FILES: dict[str, tuple[bytes, str]] = {
    "invalid-date": (
        document(edited("base_branch: main", "base_branch: !!timestamp 2024-13-45")),
        "workspace.base_branch",
    ),
    "deep-nesting": (
        document(edited("line: x", "line: x\nextra: " + "[" * 1000 + "]" * 1000)),
        "extra.0.0",
    ),
    "alias-bomb": (document(edited("  kind: local", f"  kind: {bomb(9)}")), "tracker.kind"),
    "huge-integer": (
        document(edited("max_tokens: 200000", "max_tokens: " + "9" * 5000)),
        "budgets.max_tokens",
    ),
    "liquid-loops": (
        document(
            body="{% for i in (1..100000) %}{% for j in (1..100000) %}{% endfor %}{% endfor %}"
        ),
        "(prompt)",
    ),
    "unclosed-braces": (document(body="{" * 100_000), "(prompt)"),
    "too-large": (document(body="x" * MAX_WORKFLOW_BYTES), "(file)"),
    "garbage": (b"---\n\x00\xff\xfe" * 1000, "(file)"),
}


@pytest.mark.parametrize("name", sorted(NASTY_FILES))
def test_check_reports_nasty_files_without_a_traceback(tmp_path: Path, name: str) -> None:
    content, path = NASTY_FILES[name]
    target = tmp_path / "WORKFLOW.md"
    target.write_bytes(content)
    done = subprocess.run(
        [JIDOKA, "check", str(target)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    assert f"  {path}" in done.stdout, done.stdout
    assert len(done.stdout) < 20_000
