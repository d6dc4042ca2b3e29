"""The attempt's transcript: every event and raw line as NDJSON, scrubbed, size-bounded.

It lives in the worker's own state, next to the workspace's sealed repository, where the agent
cannot rewrite it, so that a post-mortem or ``jidoka why`` reads what the agent actually did.
Only the path travels through Temporal, never the content.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO, cast

from activities.host_state import transcripts

MAX_TRANSCRIPT_BYTES = 64 * 1024 * 1024
MAX_TEXT_CHARS = 64 * 1024
"""Longer strings (a 5 MB diff in one event) are cut: the transcript is for reading."""


def transcript_path(workspace: str | Path, attempt: int) -> Path:
    return transcripts(workspace) / f"{attempt}.ndjson"


class Transcript:
    def __init__(self, path: Path, scrub: Callable[[str], str]) -> None:
        self.path = path
        self._scrub = scrub
        path.parent.mkdir(parents=True, exist_ok=True)
        # Appending: a retried activity for the same attempt keeps what the first one saw.
        # backslashreplace: a lone surrogate (a JSON escape in an agent's line) is written as
        # the same escape, \udXXX, instead of failing the session
        self._file: TextIO | None = path.open("a", encoding="utf-8", errors="backslashreplace")
        self._written = path.stat().st_size
        self._full = False

    def record(self, kind: str, data: Mapping[str, object]) -> None:
        if self._file is None:
            return
        line = json.dumps(
            {
                "ts": datetime.now(UTC).isoformat(timespec="milliseconds"),
                "kind": kind,
                "data": self._clean(dict(data)),
            },
            ensure_ascii=False,
            default=str,
        )
        if self._written + len(line) > MAX_TRANSCRIPT_BYTES and kind != "summary":
            if not self._full:
                self._full = True
                self._write(
                    json.dumps({"kind": "truncated", "data": {"limit": MAX_TRANSCRIPT_BYTES}})
                )
            return
        self._write(line)

    def _write(self, line: str) -> None:
        assert self._file is not None
        self._file.write(line + "\n")
        self._file.flush()
        self._written += len(line) + 1

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def _clean(self, value: object) -> object:
        """Scrub every string (keys included) and cut long ones."""
        if isinstance(value, str):
            text = self._scrub(value)
            if len(text) > MAX_TEXT_CHARS:
                return text[:MAX_TEXT_CHARS] + f"[... {len(text) - MAX_TEXT_CHARS} chars cut]"
            return text
        if isinstance(value, Mapping):
            mapping = cast(Mapping[object, object], value)
            return {str(self._clean(str(k))): self._clean(v) for k, v in mapping.items()}
        if isinstance(value, list | tuple):
            items = cast(list[object], value)
            return [self._clean(item) for item in items]
        return value
