"""Money end to end on the real dev server: a line with ``pricing:`` keeps every attempt's
cost (from the usage the scripted agent really reported) in the issue's state, its
``JidokaCost`` search attribute and the ship comment; a money budget stops an issue, named
after the money; a line without a price for its model never shows a cost of zero."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import Client

from jidoka import search_attributes as sa
from jidoka.models import AttemptRecord
from jidoka.outcomes import HaltCategory, Outcome, Phase
from tests.support.linekit import factory, make_line, wait_for_phase

TIMEOUT = 60
PRICES = {"input": 2.0, "cached_input": 0.5, "output": 8.0}  # per million tokens
PRICED: dict[str, Any] = {"pricing": {"model": "house-model", "models": {"house-model": PRICES}}}


def by_hand(attempt: AttemptRecord) -> float:
    """The price list applied by hand to what the attempt's agent reported."""
    assert attempt.usage is not None
    usage = attempt.usage
    fresh = usage.input_tokens - usage.cached_input_tokens
    return (fresh * 2.0 + usage.cached_input_tokens * 0.5 + usage.output_tokens * 8.0) / 1e6


async def test_a_priced_line_keeps_each_attempts_cost_and_shows_the_total(
    client: Client, tmp_path: Path
) -> None:
    kit = make_line(tmp_path, PRICED)
    kit.add_issue("M-1", "breaks-tests-then-fixes")
    async with factory(client) as f:
        handle = await f.start_issue(kit, "M-1")
        result = await asyncio.wait_for(handle.result(), TIMEOUT)
        described = await handle.describe()
    assert result.phase is Phase.SHIPPED
    attempts = result.attempts
    assert [a.outcome for a in attempts] == [Outcome.VERIFY_FAILED, Outcome.SHIPPED]
    for attempt in attempts:
        assert attempt.model == "house-model"
        assert attempt.usage is not None and attempt.usage.cached_input_tokens > 0
        assert attempt.cost == pytest.approx(by_hand(attempt))
    total = sum(by_hand(a) for a in attempts)
    assert result.counters.cost == pytest.approx(total) and result.counters.cost_unknown == 0
    assert described.typed_search_attributes.get(sa.COST) == pytest.approx(total)
    assert result.ship is not None and result.ship.cost == pytest.approx(total)
    assert f"- cost: ${total:.4f}" in kit.issue_text("M-1") or f"- cost: ${total:,.2f}" in (
        kit.issue_text("M-1")
    )


async def test_a_money_budget_stops_the_issue_and_names_the_money(
    client: Client, tmp_path: Path
) -> None:
    # $0.01 at the dearest price ($8 per million) pays for 1,250 tokens: the scripted agent
    # reports 3,000 per step, so the first attempt is cut by the money it may still spend.
    kit = make_line(tmp_path, {**PRICED, "budgets": {"max_cost": 0.01}})
    kit.add_issue("M-2", "ship")
    async with factory(client) as f:
        handle = await f.start_issue(kit, "M-2")
        status = await wait_for_phase(handle, Phase.HALTED, timeout=TIMEOUT)
        await handle.terminate("test done")
    assert status.halt is not None and status.halt.category is HaltCategory.BUDGET_EXCEEDED
    assert status.last_decision is not None
    assert status.last_decision.rule == "budgets.max_cost"
    assert kit.state_of("M-2") == "In Progress"  # never shipped on a budget stop


async def test_an_unpriced_model_has_an_unknown_cost_never_zero(
    client: Client, tmp_path: Path
) -> None:
    kit = make_line(
        tmp_path, {"pricing": {"models": {"another-model": PRICES}}}
    )  # the scripted agent's model is not named, so nothing prices it
    kit.add_issue("M-3", "ship")
    async with factory(client) as f:
        handle = await f.start_issue(kit, "M-3")
        result = await asyncio.wait_for(handle.result(), TIMEOUT)
    assert result.phase is Phase.SHIPPED
    [attempt] = result.attempts
    assert attempt.cost is None and attempt.usage is not None
    assert (result.counters.cost, result.counters.cost_unknown) == (0.0, 1)
    assert result.ship is not None and result.ship.cost_unknown_attempts == 1
    text = kit.issue_text("M-3")
    assert "- cost: unknown" in text and "$0.00" not in text
