"""Recorded workflow histories (``*.json``, ``WorkflowHistory.to_json()``) and the replayer that
checks them against the current workflow code. ``record.py`` regenerates them."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from worker import WORKFLOWS

HISTORY_DIR = Path(__file__).resolve().parent


def replayer(workflows: Sequence[type] = WORKFLOWS) -> Replayer:
    """A ``Replayer`` set up like the worker: the worker's workflow classes, the default
    (sandboxed) runner, no interceptors, and the pydantic data converter every Jidoka client
    uses (``jidoka.runtime.temporal.connect``)."""
    return Replayer(workflows=list(workflows), data_converter=pydantic_data_converter)


def recorded() -> list[Path]:
    return sorted(HISTORY_DIR.glob("*.json"))


def load(path: Path) -> WorkflowHistory:
    """A committed history; its file name stands in for the workflow ID."""
    return WorkflowHistory.from_json(path.stem, path.read_text(encoding="utf-8"))


async def assert_replays(history: WorkflowHistory) -> None:
    """A live run's history replays on the code that made it: what a worker restarted
    mid-run, or one answering a query without the run in its cache, does."""
    result = await replayer().replay_workflow(history, raise_on_replay_failure=False)
    assert result.replay_failure is None, (
        f"the live history does not replay: {result.replay_failure}"
    )
