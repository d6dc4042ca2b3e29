"""Money as the CLI shows it beside tokens (pure). An unknown cost is said to be unknown, and a
sum with unknown parts is a lower bound ("≥ $1.23"): never ``$0.00`` for money nobody knows."""

from __future__ import annotations

from jidoka.config import PricingConfig
from jidoka.cost import UNKNOWN_CURRENCY, money_text

DEFAULT_CURRENCY = UNKNOWN_CURRENCY
"""When the CLI has no WORKFLOW.md to read the currency from (``--line NAME`` and the file
the line was started with is not on this machine): the amount is shown, its currency is not
guessed."""


def currency_of(pricing: PricingConfig | None) -> str:
    return pricing.currency if pricing is not None else DEFAULT_CURRENCY


def total_text(known: float, unknown_parts: int, currency: str) -> str:
    """A sum of costs: ``$1.17``; ``≥ $0.39`` while ``unknown_parts`` of it are unknown;
    ``unknown`` when nothing of it is known."""
    if unknown_parts and not known:
        return "unknown"
    amount = money_text(known, currency)
    return f"≥ {amount}" if unknown_parts else amount


def attempts_total_text(known: float, unknown_attempts: int, currency: str) -> str:
    """An issue's cost, saying how many attempts' cost is unknown."""
    text = total_text(known, unknown_attempts, currency)
    if unknown_attempts:
        text += f" ({unknown_attempts} attempt(s) of unknown cost)"
    return text


def attempt_cost_text(
    cost: float | None, currency: str, *, usage_reported: bool = True, model: str | None = None
) -> str:
    """One attempt's cost on a priced line, or why it is unknown: the agent reported no usage,
    or its model (``model``, as WORKFLOW.md names it) has no price."""
    if cost is not None:
        return money_text(cost, currency)
    if not usage_reported:
        return "cost unknown: the agent reported no usage"
    if model is None:
        return "cost unknown: no model named for the agent (pricing.model)"
    return f"cost unknown: no price for model {model}"


def visible_cost_text(cost: float | None, tokens: int, spent: bool, currency: str) -> str:
    """An issue's cost as visibility shows it (``JidokaCost``, the known part only): nothing
    known while tokens were used or an attempt ended (a model without a price, an agent that
    reports no usage) is ``unknown``; ``-`` before anything was spent."""
    if cost:
        return money_text(cost, currency)
    return "unknown" if tokens > 0 or spent else "-"
