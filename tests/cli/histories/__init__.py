"""Recorded issue histories that ``jidoka why`` is tested on (decoded and told, never
replayed: ``tests/histories/`` holds the ones the replay tests replay). ``record.py``
regenerates them."""

from __future__ import annotations

from pathlib import Path

from temporalio.client import WorkflowHistory

HISTORY_DIR = Path(__file__).resolve().parent


def load(name: str) -> WorkflowHistory:
    path = HISTORY_DIR / f"{name}.json"
    return WorkflowHistory.from_json(path.stem, path.read_text(encoding="utf-8"))
