# pyright: strict
"""What the line spent, in money and by kind of spend (pure: no I/O, deterministic).

Money comes from the usage the agent reported and the prices WORKFLOW.md gives
(``pricing:``). A cost is ``None`` when it cannot be known (the model has no price, the
agent reported no usage): an unknown is never shown as zero.

Spend is classified the Toyota way. Only the attempt that shipped added value; every other
attempt is waste, named by its outcome (a failed verify is a defect reworked, a stall is
waiting on a dead agent, a hallucinated "done" is overproduction of claims). Waiting is time,
not tokens: an issue halted or paused, waiting for a person.
"""

from __future__ import annotations

from enum import StrEnum

from jidoka.base import Model
from jidoka.config import PricingConfig, TokenPrices, WorkflowConfig
from jidoka.models import TokenUsage
from jidoka.outcomes import Outcome

PER = 1_000_000
"""Prices are per million tokens."""
UNKNOWN_CURRENCY = "(currency unknown)"
"""Said after an amount when the WORKFLOW.md that priced it cannot be read here: a "$" could
be a lie about a line priced in euros."""


class Spend(StrEnum):
    VALUE = "value"
    """The attempt that shipped."""
    WASTE = "waste"
    """Any other attempt: its tokens and time bought no shipped work."""


class Money(Model):
    """An amount with its currency; ``amount`` None when unknown."""

    amount: float | None
    currency: str

    @property
    def known(self) -> bool:
        return self.amount is not None

    def text(self) -> str:
        return money_text(self.amount, self.currency)


def money_text(amount: float | None, currency: str) -> str:
    """``$1.23`` / ``1.23 EUR``; ``unknown`` when the amount is; tiny amounts keep 4 places."""
    if amount is None:
        return "unknown"
    places = 4 if 0 < abs(amount) < 0.01 else 2
    number = f"{amount:,.{places}f}"
    return f"${number}" if currency == "USD" else f"{number} {currency}"


def prices_for(pricing: PricingConfig | None, model: str | None) -> TokenPrices | None:
    if pricing is None or model is None:
        return None
    wanted = model.strip().casefold()
    for name, prices in pricing.models.items():
        if name.strip().casefold() == wanted:
            return prices
    return None


def usage_cost(usage: TokenUsage, prices: TokenPrices | None) -> float | None:
    """The money ``usage`` cost at ``prices``; None when there is no price."""
    if prices is None:
        return None
    cached = min(max(usage.cached_input_tokens, 0), max(usage.input_tokens, 0))
    fresh = max(usage.input_tokens, 0) - cached
    cached_price = prices.cached_input if prices.cached_input is not None else prices.input
    total = (
        fresh * prices.input + cached * cached_price + max(usage.output_tokens, 0) * prices.output
    )
    return round(total / PER, 9)


def attempt_cost(
    usage: TokenUsage, usage_reported: bool, pricing: PricingConfig | None, model: str | None
) -> float | None:
    """An attempt's cost: unknown without a reported usage or without a price."""
    if not usage_reported:
        return None
    return usage_cost(usage, prices_for(pricing, model))


def add_costs(costs: list[float | None]) -> float | None:
    """The sum, unknown as soon as one part is (a partial sum would read as the whole)."""
    if any(cost is None for cost in costs):
        return None
    return round(sum(cost for cost in costs if cost is not None), 9)


def spend_of(outcome: Outcome | None) -> Spend:
    """Value is the ship; everything else is waste (an attempt still running counts as
    neither: callers skip it)."""
    return Spend.VALUE if outcome is Outcome.SHIPPED else Spend.WASTE


def cost_cap_reached(spent: float | None, max_cost: float | None) -> bool:
    """``budgets.max_cost`` reached. An unknown spend never reaches it: WORKFLOW.md refuses
    ``max_cost`` without a price for the agent's model, and an agent that reports no usage
    is capped by its wall-time and turn budgets instead."""
    return max_cost is not None and spent is not None and spent >= max_cost


def pricing_warnings(config: WorkflowConfig) -> list[str]:
    """What leaves costs unknown on a line that gives prices: shown by ``jidoka check``."""
    if config.pricing is None:
        return []
    model = config.agent_model()
    if model is None:
        return [
            "pricing: is set but the agent's model is not named (pricing.model, "
            "agent.codex.model or agent.claude.model) - every cost will show as unknown"
        ]
    if prices_for(config.pricing, model) is None:
        return [
            f"pricing: has no price for the agent's model '{model}' - every cost will show "
            "as unknown"
        ]
    return []
