"""What the CLI prints reaches an operator's terminal as text, never as control sequences.

Much of what ``jidoka why``, ``issue status`` and ``line status`` show comes from an agent (its
verdict's summary, questions and halt reason, its stderr) or a tracker. A hostile agent can put
terminal escapes in them: rewrite what the screen shows, set the window title, write the
clipboard (OSC 52), or hide a line with a carriage return. While a command runs, ``sys.stdout``
and ``sys.stderr`` replace every control character but tab and newline with ``?``; the CLI's
own escapes (``line watch`` clearing the screen) go through :func:`control` only.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from typing import Any, TextIO

_KEPT = {"\t", "\n"}
INERT = str.maketrans(
    {
        chr(code): "?"
        for code in [*range(0x00, 0x20), 0x7F, *range(0x80, 0xA0)]
        if chr(code) not in _KEPT
    }
)
"""C0 controls but tab and newline, DEL, and the C1 controls (``\\x9b`` is a CSI on its own)."""


def inert(text: str) -> str:
    return text.translate(INERT)


class InertText:
    """A text stream whose writes are made inert; everything else is the stream's own."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    def write(self, text: str) -> int:
        return self.stream.write(inert(text))

    def __getattr__(self, name: str) -> Any:
        return getattr(self.stream, name)


@contextlib.contextmanager
def inert_streams() -> Iterator[None]:
    """``sys.stdout`` and ``sys.stderr`` inert for the duration."""
    out, err = sys.stdout, sys.stderr
    sys.stdout = InertText(out)  # type: ignore[assignment]
    sys.stderr = InertText(err)  # type: ignore[assignment]
    try:
        yield
    finally:
        sys.stdout, sys.stderr = out, err


def control(sequence: str) -> None:
    """One of the CLI's own control sequences, written to stdout as it is."""
    stream: object = sys.stdout
    target = stream.stream if isinstance(stream, InertText) else sys.stdout
    target.write(sequence)
