"""How often a long activity heartbeats: often enough for the timeout the workflow gave it.

The workflow sets ``heartbeat_timeout`` from ``timeouts.heartbeat_s`` (how fast a lost host
becomes ``worker_lost``). An activity that heartbeats on a fixed clock slower than that would be
timed out while alive, so every loop asks here: its usual pace, or a third of the timeout when
that is shorter (two beats may be late before the server gives up)."""

from __future__ import annotations

from temporalio import activity

MIN_INTERVAL_S = 0.1


def heartbeat_every(usual_s: float) -> float:
    try:
        timeout = activity.info().heartbeat_timeout
    except RuntimeError:  # called outside an activity (a direct call, a benchmark)
        return usual_s
    if not timeout:
        return usual_s
    return max(MIN_INTERVAL_S, min(usual_s, timeout.total_seconds() / 3))
