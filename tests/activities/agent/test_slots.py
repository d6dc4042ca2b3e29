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


@pytest.mark.parametrize("turns", range(6))
async def test_the_observer_hears_every_change_and_ends_where_the_slots_are(turns: int) -> None:
    """The worker's slot gauges (``activities.metrics``) are set from ``on_change``: after a
    grant, a release, a wait and a cancelled wait, the last word is the slots' own state."""
    slots = AgentSlots(1)
    heard: list[tuple[int, int, int]] = []
    slots.on_change = lambda s: heard.append((s.size, s.in_use, s.waiting))
    release = asyncio.Event()

    async def holder() -> None:
        async with slots.hold(lambda *_: None):
            await release.wait()

    async def waiter() -> None:
        async with slots.hold(lambda *_: None):
            pass

    first = asyncio.create_task(holder())
    await asyncio.sleep(0)
    second = asyncio.create_task(waiter())
    await asyncio.sleep(0)
    assert heard[-1] == (1, 1, 1)  # one agent running, one attempt waiting
    release.set()
    for _ in range(turns):
        await asyncio.sleep(0)
    second.cancel()
    await asyncio.gather(first, second, return_exceptions=True)
    assert (1, 1, 0) in heard
    assert heard[-1] == (1, slots.in_use, slots.waiting) == (1, 0, 0)
