"""The plumbing between the supervisor and one agent process: line pumps and the stdin writer.

Both ends are bounded and never block the supervisor: stdout and stderr are read in chunks into
one queue (a full pipe would freeze the agent, and an unbounded line would eat the worker's
memory), and stdin writes go through a queue drained by a task.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Coroutine
from dataclasses import dataclass
from typing import Any, Literal

from activities.agent.transcript import Transcript

MAX_LINE_BYTES = 16 * 1024 * 1024
"""Codex app-server lines can carry whole diffs; the spec suggests buffers of 10 MB."""
READ_CHUNK = 64 * 1024
QUEUE_LINES = 4096
"""Lines read but not yet handled. When full, the pumps stop reading and the agent blocks on its
own pipe: a flood slows the agent down instead of filling the worker's memory."""
STDIN_RECORD_CHARS = 4096
"""Sent text up to this size is copied into the transcript; longer only its size."""

Stream = Literal["stdout", "stderr"]


@dataclass(frozen=True)
class Line:
    stream: Stream
    text: str


@dataclass(frozen=True)
class Eof:
    stream: Stream


@dataclass(frozen=True)
class Exited:
    code: int


Item = Line | Eof | Exited


def _decode(raw: bytes | bytearray) -> str:
    return bytes(raw).decode("utf-8", "replace").rstrip("\r")


async def pump_lines(
    reader: asyncio.StreamReader, stream: Stream, queue: asyncio.Queue[Item]
) -> None:
    """Split ``reader`` into lines; a line longer than ``MAX_LINE_BYTES`` is cut there and the
    rest of it skipped, so one runaway line costs bounded memory and is still seen as output."""
    buffer = bytearray()
    skipping = False
    while chunk := await reader.read(READ_CHUNK):
        start = 0
        while (end := chunk.find(b"\n", start)) != -1:
            if skipping:
                skipping = False
            else:
                buffer += chunk[start:end]
                await queue.put(Line(stream, _decode(buffer)))
            buffer.clear()
            start = end + 1
        if not skipping:
            buffer += chunk[start:]
            if len(buffer) > MAX_LINE_BYTES:
                await queue.put(Line(stream, _decode(buffer[:MAX_LINE_BYTES]) + " [line cut]"))
                buffer.clear()
                skipping = True
    if buffer and not skipping:
        await queue.put(Line(stream, _decode(buffer)))
    await queue.put(Eof(stream))


async def watch_exit(proc: asyncio.subprocess.Process, queue: asyncio.Queue[Item]) -> None:
    await queue.put(Exited(await proc.wait()))


class ProcessIO:
    """:class:`activities.agent.adapters.AgentIO` for one process."""

    def __init__(self, stdin: asyncio.StreamWriter | None, transcript: Transcript) -> None:
        self._stdin = stdin
        self._transcript = transcript
        self._outbox: asyncio.Queue[str | None] = asyncio.Queue()
        self._closing = False
        self._tasks: set[asyncio.Task[None]] = set()
        self._writer = asyncio.create_task(self._write_loop()) if stdin is not None else None

    def send(self, text: str) -> None:
        if self._stdin is None or self._closing:
            self._transcript.record("stdin_dropped", {"chars": len(text)})
            return
        self._outbox.put_nowait(text if text.endswith("\n") else text + "\n")

    def close_stdin(self) -> None:
        if self._stdin is not None and not self._closing:
            self._closing = True
            self._outbox.put_nowait(None)

    def spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and (error := task.exception()) is not None:
            # An adapter's background work failed: its request may stay unanswered, and the
            # clocks will end the session; the transcript says why.
            self._transcript.record("adapter_error", {"error": repr(error)})

    async def _write_loop(self) -> None:
        assert self._stdin is not None
        while (text := await self._outbox.get()) is not None:
            record: dict[str, object] = {"chars": len(text)}
            if len(text) <= STDIN_RECORD_CHARS:
                record["text"] = text
            self._transcript.record("stdin", record)
            try:
                self._stdin.write(text.encode("utf-8"))
                await self._stdin.drain()
            except OSError as error:  # the agent exited or closed its stdin: nothing to deliver
                self._transcript.record("stdin_closed", {"error": type(error).__name__})
                return
        self._stdin.close()
        with contextlib.suppress(OSError):
            await self._stdin.wait_closed()

    async def aclose(self) -> None:
        tasks = [*self._tasks, *([self._writer] if self._writer is not None else [])]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def uncancellable(cleanup: Awaitable[None]) -> None:
    """Finish ``cleanup`` even if cancelled meanwhile, then re-raise the cancellation: a second
    cancel must not leave half a process group alive."""
    task = asyncio.ensure_future(cleanup)
    cancelled = False
    while not task.done():
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError:
            cancelled = True
    task.result()
    if cancelled:
        raise asyncio.CancelledError
