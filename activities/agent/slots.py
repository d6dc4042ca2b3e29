"""How many agents one host runs at once (``JIDOKA_MAX_AGENTS``).

A workspace is pinned to its host, so an attempt cannot move elsewhere when this host is busy:
it waits here for a slot, heartbeating so the workflow still sees a live worker. Waiting is not
agent time: the agent's clocks start once it holds a slot, and the wait has its own bound
(``timeouts.slot_wait_s``). Waiters are served first come, first served, so with agents that
end no waiter starves. Other host activities (hooks, evidence) never queue behind agents.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from activities.heartbeats import heartbeat_every

DEFAULT_MAX_AGENTS = 2
WAIT_HEARTBEAT_S = 2.0


class SlotTimeout(Exception):
    """No slot freed within the wait bound."""

    def __init__(self, waited_s: float, size: int, waiting: int) -> None:
        super().__init__(
            f"no agent slot freed within {waited_s:.0f}s ({size} slot(s) on this host, "
            f"all busy; {waiting} attempt(s) waiting)"
        )
        self.waited_s = waited_s


class AgentSlots:
    def __init__(self, size: int = DEFAULT_MAX_AGENTS) -> None:
        self.on_change: Callable[[AgentSlots], None] | None = None
        """Told of every change of size, slots held and waiters (the worker's slot gauges)."""
        self.resize(size)

    def resize(self, size: int) -> None:
        if size < 1:
            raise ValueError(f"JIDOKA_MAX_AGENTS must be at least 1, got {size}")
        self.size = size
        self._semaphore = asyncio.Semaphore(size)
        self.waiting = 0
        self._changed()

    @property
    def in_use(self) -> int:
        return self.size - self._semaphore._value  # pyright: ignore[reportPrivateUsage]

    @contextlib.asynccontextmanager
    async def hold(
        self,
        heartbeat: Callable[..., Any],
        *,
        timeout_s: float | None = None,
    ) -> AsyncIterator[float]:
        """Hold a slot for the block; yields the seconds spent waiting for it.

        One ``acquire`` for the whole wait keeps this waiter's place in the semaphore's queue
        (re-acquiring on every heartbeat would send it to the back each time). Raises
        :class:`SlotTimeout` when ``timeout_s`` passes first."""
        semaphore = self._semaphore
        started = time.monotonic()
        self.waiting += 1
        self._changed()
        beat = asyncio.create_task(self._beat_while_waiting(heartbeat))
        acquired = False
        try:
            # asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow a
            # cancellation that arrives as the slot is granted.
            async with asyncio.timeout(timeout_s):
                await semaphore.acquire()
            acquired = True
        except TimeoutError:
            raise SlotTimeout(time.monotonic() - started, self.size, self.waiting - 1) from None
        finally:
            self.waiting -= 1
            self._changed()
            beat.cancel()
            try:
                # Wait for the heartbeat task without swallowing a cancellation of our own:
                # a worker shutting down cancels waiters just as the agents it kills free
                # their slots, and a lost cancel would start an agent after the shutdown.
                await asyncio.wait({beat})
            except asyncio.CancelledError:
                if acquired:
                    semaphore.release()
                    self._changed()
                raise
        try:
            yield time.monotonic() - started
        finally:
            semaphore.release()
            self._changed()

    def _changed(self) -> None:
        if self.on_change is not None:
            self.on_change(self)

    async def _beat_while_waiting(self, heartbeat: Callable[..., Any]) -> None:
        while True:
            await asyncio.sleep(heartbeat_every(WAIT_HEARTBEAT_S))
            with contextlib.suppress(RuntimeError):
                heartbeat({"waiting_for_agent_slot": True, "slots": self.size})


AGENT_SLOTS = AgentSlots()
"""The process-wide limit; ``worker.py`` sizes it from ``JIDOKA_MAX_AGENTS``."""
