"""WORKFLOW.md documents for the loader's tests: the base document (``linekit``'s front matter)
broken in one place at a time, and the problems it gives."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
import yaml

from jidoka.models import Problem
from jidoka.workflow_file import WorkflowFileError, parse_workflow
from tests.support.linekit import base_front_matter
from tests.support.paths import REPO_ROOT

EXAMPLE = REPO_ROOT / "examples" / "demo" / "WORKFLOW.md"
"""The demo line's WORKFLOW.md, which must always check clean."""
NOWHERE = Path("/nonexistent/WORKFLOW.md")
BASE_FRONT = yaml.safe_dump(base_front_matter("x"), sort_keys=False)
BODY = "Do {{ issue.title }}"
BODY_LINE = BASE_FRONT.count("\n") + 3
"""Line of the file where the prompt body starts: after '---', the front matter and '---'."""
QUICK_S = 3.0
"""For inputs that hung or took many seconds before: they now take well under half a second."""


def write_workflow(
    tmp_path: Path, front: dict[str, object] | str, body: str = "Do {{ issue.title }}"
) -> Path:
    """``tmp_path/WORKFLOW.md`` with this front matter (a mapping, or YAML text) and body."""
    text = front if isinstance(front, str) else yaml.safe_dump(front, sort_keys=False)
    path = tmp_path / "WORKFLOW.md"
    path.write_text(f"---\n{text}---\n{body}\n")
    return path


def document(front: str = BASE_FRONT, body: str = BODY) -> bytes:
    return f"---\n{front}---\n{body}\n".encode()


def edited(old: str, new: str) -> str:
    """The base front matter with its first ``old`` replaced by ``new``."""
    assert old in BASE_FRONT, old
    return BASE_FRONT.replace(old, new, 1)


def problems_of(raw: bytes) -> list[Problem]:
    with pytest.raises(WorkflowFileError) as caught:
        parse_workflow(raw, NOWHERE)
    return caught.value.problems


def only_problem(raw: bytes) -> Problem:
    found = problems_of(raw)
    assert len(found) == 1, found
    return found[0]


def bomb(levels: int) -> str:
    """A flow sequence whose last item expands to 9**levels scalars (a "billion laughs")."""
    names = [chr(ord("a") + level) for level in range(levels)]
    items = [f"&{names[0]} [" + ", ".join(["lol"] * 9) + "]"]
    for below, name in itertools.pairwise(names):
        items.append(f"&{name} [" + ", ".join([f"*{below}"] * 9) + "]")
    return "[" + ", ".join(items) + "]"
