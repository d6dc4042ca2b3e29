"""What the agent tests share: a lab (origin, workspace, WORKFLOW.md) for each test, and the
worker's secrets that no agent may receive."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.agents.lab import (
    GITHUB_TOKEN,
    TRACKER_KEY,
    TRACKER_SECRET_NAME,
    Lab,
    make_lab,
)


@pytest.fixture
def lab(tmp_path: Path) -> Lab:
    return make_lab(tmp_path)


@pytest.fixture
def tracker_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    """The worker holds a GitHub token and the Linear key a line's tracker names (``lab.workflow(
    ..., linear=True)``): :data:`GITHUB_TOKEN`, :data:`TRACKER_KEY`."""
    monkeypatch.setenv("GITHUB_TOKEN", GITHUB_TOKEN)
    monkeypatch.setenv(TRACKER_SECRET_NAME, TRACKER_KEY)
