"""Real git for the tests' own repositories (origins, workspaces, clones)."""

from __future__ import annotations

import subprocess
from pathlib import Path


def run_git(cwd: Path, *args: str) -> str:
    """``git *args`` in ``cwd``; its stdout, stripped. Fails the test if git fails."""
    return subprocess.run(
        ["git", *args], cwd=cwd, check=True, capture_output=True, text=True
    ).stdout.strip()


CALC = "def add(a, b):\n    return a + b\n"
CALC_TEST = (
    "import unittest\n\nfrom calc import add\n\n\n"
    "class AddTest(unittest.TestCase):\n"
    "    def test_add(self):\n        self.assertEqual(add(2, 3), 5)\n"
)


def make_origin(path: Path, *, with_tests: bool = True) -> Path:
    """A repository on ``main`` with one commit: a tiny Python project (``calc.py``) and, unless
    ``with_tests`` is false, its own unittest suite (``test_calc.py``, a line's verify hook)."""
    path.mkdir(parents=True)
    run_git(path, "init", "-q", "-b", "main")
    (path / "calc.py").write_text(CALC)
    if with_tests:
        (path / "test_calc.py").write_text(CALC_TEST)
    run_git(path, "add", "-A")
    run_git(path, "commit", "-q", "-m", "initial")
    return path
