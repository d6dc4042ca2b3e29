"""Where things are: the repository, its README, the tests' recorded fixtures, and the installed
``jidoka`` console script (beside this interpreter, as ``pip install -e .`` puts it)."""

from __future__ import annotations

import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
README = REPO_ROOT / "README.md"
FIXTURES = REPO_ROOT / "tests" / "fixtures"
"""Documented shapes of the GitHub and Linear APIs (``github/``, ``linear/``)."""
JIDOKA = str(Path(sys.executable).with_name("jidoka"))
