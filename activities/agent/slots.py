"""How many agents one host runs at once (``JIDOKA_MAX_AGENTS``).

A workspace is pinned to its host, so an attempt cannot move elsewhere when this host is busy:
it waits here for a slot, heartbeating so the workflow still sees a live worker. Other host
activities (hooks, evidence) are not limited by this and never queue behind agents.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

from activities.heartbeats import heartbeat_every

DEFAULT_MAX_AGENTS = 2
WAIT_HEARTBEAT_S = 2.0


class AgentSlots:
    def __init__(self, size: int = DEFAULT_MAX_AGENTS) -> None:
        self.resize(size)

    def resize(self, size: int) -> None:
        if size < 1:
            raise ValueError(f"JIDOKA_MAX_AGENTS must be at least 1, got {size}")
        self.size = size
        self._semaphore = asyncio.Semaphore(size)

    @property
    def in_use(self) -> int:
        return self.size - self._semaphore._value  # pyright: ignore[reportPrivateUsage]

    @contextlib.asynccontextmanager
    async def hold(self, heartbeat: Callable[..., Any]) -> AsyncIterator[None]:
        semaphore = self._semaphore
        while True:
            try:
                await asyncio.wait_for(
                    semaphore.acquire(), timeout=heartbeat_every(WAIT_HEARTBEAT_S)
                )
                break
            except TimeoutError:
                with contextlib.suppress(RuntimeError):
                    heartbeat({"waiting_for_agent_slot": True, "slots": self.size})
        try:
            yield
        finally:
            semaphore.release()


AGENT_SLOTS = AgentSlots()
"""The process-wide limit; ``worker.py`` sizes it from ``JIDOKA_MAX_AGENTS``."""
