"""How often a long activity heartbeats: often enough for the timeout the workflow gave it.

The workflow sets ``heartbeat_timeout`` from ``timeouts.heartbeat_s`` (how fast a lost host
becomes ``worker_lost``). An activity that heartbeats on a fixed clock slower than that would be
timed out while alive, so every loop asks here: its usual pace, or a third of the timeout when
that is shorter (two beats may be late before the server gives up)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from temporalio import activity

MIN_INTERVAL_S = 0.1
WORKSPACE_HEARTBEAT_S = 1.0


def heartbeat_every(usual_s: float) -> float:
    try:
        timeout = activity.info().heartbeat_timeout
    except RuntimeError:  # called outside an activity (a direct call, a benchmark)
        return usual_s
    if not timeout:
        return usual_s
    return max(MIN_INTERVAL_S, min(usual_s, timeout.total_seconds() / 3))


@contextlib.asynccontextmanager
async def heartbeating(usual_s: float = WORKSPACE_HEARTBEAT_S) -> AsyncIterator[None]:
    """Heartbeat while the block runs, for workspace work of unknown length (clone, checkout,
    push, preserve). The workflow gives these a heartbeat timeout so that a lost host is seen in
    seconds; without beats a slow clone on a live host would be timed out and started again
    beside the one still running in the same workspace."""

    async def beat() -> None:
        while True:
            with contextlib.suppress(RuntimeError):  # outside an activity (direct calls)
                activity.heartbeat()
            await asyncio.sleep(heartbeat_every(usual_s))

    task = asyncio.create_task(beat())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
