"""The host's agent slots under cancellation: a waiter cancelled around the moment its slot is
granted (a worker shutting down kills the running agents, which frees their slots, and cancels
the waiters at once) must see its cancellation and give the slot back, never start an agent
after it."""

from __future__ import annotations

import asyncio

import pytest

from activities.agent.slots import AgentSlots


@pytest.mark.parametrize("turns", range(6))
async def test_a_cancellation_that_meets_the_grant_is_not_swallowed(turns: int) -> None:
    """``turns``: loop iterations between the slot freeing and the cancel; some of them fall
    where the grant is done but the waiter has not come out of the wait yet."""
    slots = AgentSlots(1)
    started: list[str] = []
    release = asyncio.Event()

    async def holder() -> None:
        async with slots.hold(lambda *_: None):
            await release.wait()

    async def waiter() -> None:
        async with slots.hold(lambda *_: None):
            started.append("agent")

    first = asyncio.create_task(holder())
    await asyncio.sleep(0)
    second = asyncio.create_task(waiter())
    await asyncio.sleep(0)
    release.set()  # the slot frees ...
    for _ in range(turns):
        await asyncio.sleep(0)
    accepted = second.cancel()  # ... and the shutdown's cancel arrives
    if accepted:
        # Still waiting when the cancel came: it ends cancelled, and no agent started.
        with pytest.raises(asyncio.CancelledError):
            await second
        assert started == []
    else:
        assert started == ["agent"]  # it had already run: the cancel came too late
    await first
    assert slots.in_use == 0  # every granted slot went back
