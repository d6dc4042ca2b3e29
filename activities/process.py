"""Subprocesses the way Jidoka runs them: in their own process group, with a sanitised
environment, output captured and truncated, and the whole group killed on timeout or cancel.

Used by hooks and by the agent supervisor, so that a timed-out ``npm install`` or a cancelled
agent never leaves a grandchild behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

TERM_GRACE_S = 3.0
"""How long a process group gets between SIGTERM and SIGKILL."""


def child_environment(
    *,
    base: Mapping[str, str],
    strip: Iterable[str],
    extra: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The environment of a hook or agent: the worker's, minus every secret name, plus extras."""
    stripped = set(strip)
    env = {k: v for k, v in base.items() if k not in stripped}
    if extra:
        env.update({k: v for k, v in extra.items() if k not in stripped})
    return env


def group_alive(pgid: int) -> bool:
    """Whether a process of group ``pgid`` still runs. Zombies do not count: a sandbox's inner
    process is orphaned to the host's init when the sandbox exits, and an init that reaps
    slowly would otherwise keep the group "alive" for seconds after everything ended."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return _running_member(pgid)


def _running_member(pgid: int) -> bool:
    try:
        entries = os.listdir("/proc")
    except OSError:
        return True  # no /proc to ask: the signal's answer stands
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as handle:
                stat = handle.read()
        except OSError:
            continue
        # "pid (comm) state ppid pgrp ...": comm may hold spaces and parentheses.
        fields = stat[stat.rfind(b")") + 2 :].split()
        if len(fields) >= 3 and int(fields[2]) == pgid and fields[0] != b"Z":
            return True
    return False


async def kill_group(proc: asyncio.subprocess.Process, grace_s: float = TERM_GRACE_S) -> None:
    """SIGTERM the process group, wait ``grace_s``, then SIGKILL what is left.

    The group id equals the leader's pid (``start_new_session=True``). Children that outlive the
    leader keep the group alive, so we wait on the group, not just on the leader.
    """
    pgid = proc.pid
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        if proc.returncode is None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(proc.wait()), timeout=0.1)
        if proc.returncode is not None and not group_alive(pgid):
            return
        await asyncio.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGKILL)
    with contextlib.suppress(TimeoutError, ProcessLookupError):
        await asyncio.wait_for(proc.wait(), timeout=5)


class Tail:
    """The last ``max_chars`` of a text stream, kept in bounded memory."""

    def __init__(self, max_chars: int = 8000) -> None:
        self._chunks: deque[str] = deque()
        self._size = 0
        self._max = max_chars
        self.truncated = False

    def add(self, text: str) -> None:
        self._chunks.append(text)
        self._size += len(text)
        while self._size > self._max and len(self._chunks) > 1:
            self._size -= len(self._chunks.popleft())
            self.truncated = True

    def text(self) -> str:
        joined = "".join(self._chunks)
        if len(joined) > self._max:
            self.truncated = True
            joined = joined[-self._max :]
        return ("[... truncated ...]\n" if self.truncated else "") + joined


@dataclass(frozen=True)
class ShellResult:
    exit_code: int | None
    timed_out: bool
    output_tail: str
    duration_s: float


async def run_shell(
    script: str,
    *,
    cwd: str,
    env: Mapping[str, str],
    timeout_s: float,
    output_chars: int = 8000,
    wrap: Callable[[list[str]], list[str]] = list,
) -> ShellResult:
    """Run ``bash -lc script`` in ``cwd`` in a new process group (``wrap`` puts it in a
    sandbox); kill the group on timeout or cancellation. Output (stdout and stderr combined)
    is kept as a bounded tail."""
    started = time.monotonic()
    proc = await asyncio.create_subprocess_exec(
        *wrap(["bash", "-lc", script]),
        cwd=cwd,
        env=dict(env),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        start_new_session=True,
    )
    tail = Tail(output_chars)

    async def pump() -> None:
        assert proc.stdout is not None
        while chunk := await proc.stdout.read(65536):
            tail.add(chunk.decode("utf-8", "replace"))

    reader = asyncio.create_task(pump())
    timed_out = False
    try:
        await asyncio.wait_for(proc.wait(), timeout=timeout_s)
    except TimeoutError:
        timed_out = True
        await kill_group(proc)
    except asyncio.CancelledError:
        await kill_group(proc)
        reader.cancel()
        raise
    # A backgrounded grandchild can hold the pipe open after the shell exits: kill the group.
    if group_alive(proc.pid):
        await kill_group(proc, grace_s=0.5)
    try:
        await asyncio.wait_for(reader, timeout=2)
    except TimeoutError:
        reader.cancel()
    return ShellResult(
        exit_code=None if timed_out else proc.returncode,
        timed_out=timed_out,
        output_tail=tail.text(),
        duration_s=time.monotonic() - started,
    )
