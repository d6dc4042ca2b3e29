"""Money: prices in WORKFLOW.md, each attempt's cost, the money budget, and what is unknown
(shown as unknown, never as zero). Figures are computed by hand in each test."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from jidoka import comments, cost, policy
from jidoka.config import PricingConfig, TokenPrices, WorkflowConfig
from jidoka.models import AgentRunResult, IssueCounters, TokenUsage
from jidoka.outcomes import AgentStop, HaltCategory, Outcome
from jidoka.workflow_file import WorkflowFileError, load_workflow
from tests.jidoka.test_judge import ship_proof
from tests.support.linekit import make_line

PRICES = {"input": 1.25, "cached_input": 0.125, "output": 10.0}


def priced_line(tmp_path: Path, **overrides: Any) -> WorkflowConfig:
    front: dict[str, Any] = {
        "agent": {"kind": "codex", "codex": {"model": "gpt-5-codex"}},
        "pricing": {"models": {"gpt-5-codex": PRICES}},
    }
    front.update(overrides)
    return load_workflow(make_line(tmp_path, front).workflow_md).config


def run(usage: TokenUsage, reported: bool = True) -> AgentRunResult:
    return AgentRunResult(stop=AgentStop.EXITED, exit_code=0, usage=usage, usage_reported=reported)


def test_an_attempts_cost_prices_fresh_cached_and_output_tokens_apart() -> None:
    usage = TokenUsage(input_tokens=1_000_000, cached_input_tokens=400_000, output_tokens=50_000)
    prices = TokenPrices(**PRICES)
    # 600k fresh at 1.25, 400k cached at 0.125, 50k out at 10 (per million)
    assert cost.usage_cost(usage, prices) == pytest.approx(0.75 + 0.05 + 0.5)
    # No cached price: cached input costs what input costs.
    flat = TokenPrices(input=1.25, output=10.0)
    assert cost.usage_cost(usage, flat) == pytest.approx(1.25 + 0.5)


def test_cached_tokens_past_the_input_are_not_priced_twice() -> None:
    usage = TokenUsage(input_tokens=100, cached_input_tokens=1_000_000, output_tokens=0)
    assert cost.usage_cost(usage, TokenPrices(**PRICES)) == pytest.approx(100 * 0.125 / 1e6)


def test_a_cost_is_unknown_without_a_price_or_without_reported_usage() -> None:
    pricing = PricingConfig(models={"gpt-5-codex": TokenPrices(**PRICES)})
    usage = TokenUsage(input_tokens=10, output_tokens=10)
    assert cost.attempt_cost(usage, True, pricing, "GPT-5-Codex") is not None  # any case
    assert cost.attempt_cost(usage, True, pricing, "some-other-model") is None
    assert cost.attempt_cost(usage, True, pricing, None) is None
    assert cost.attempt_cost(usage, True, None, "gpt-5-codex") is None
    assert cost.attempt_cost(TokenUsage(), False, pricing, "gpt-5-codex") is None
    assert cost.add_costs([1.0, None]) is None and cost.add_costs([1.0, 0.5]) == 1.5


def test_money_reads_as_money_and_unknown_as_unknown() -> None:
    assert cost.money_text(1234.5, "USD") == "$1,234.50"
    assert cost.money_text(0.0042, "USD") == "$0.0042"
    assert cost.money_text(3, "EUR") == "3.00 EUR"
    assert cost.money_text(None, "USD") == "unknown"


def test_value_is_the_ship_and_everything_else_is_waste() -> None:
    for outcome in Outcome:
        expected = cost.Spend.VALUE if outcome is Outcome.SHIPPED else cost.Spend.WASTE
        assert cost.spend_of(outcome) is expected, outcome


def test_counters_keep_the_known_cost_and_count_the_unknown(tmp_path: Path) -> None:
    config = priced_line(tmp_path)
    usage = TokenUsage(input_tokens=800_000, cached_input_tokens=0, output_tokens=200_000)
    spent = policy.attempt_cost(run(usage), config)
    assert spent == pytest.approx(1.0 + 2.0)
    counters = policy.record_usage(IssueCounters(), run(usage), spent)
    assert (counters.cost, counters.cost_unknown) == (pytest.approx(3.0), 0)
    silent = run(TokenUsage(), reported=False)
    counters = policy.record_usage(counters, silent, policy.attempt_cost(silent, config))
    assert (counters.cost, counters.cost_unknown) == (pytest.approx(3.0), 1)


def test_the_money_budget_halts_and_caps_the_next_attempts_tokens(tmp_path: Path) -> None:
    config = priced_line(tmp_path, budgets={"max_cost": 5})
    assert policy.budget_gate(IssueCounters(cost=4.99), config) is None
    gate = policy.budget_gate(IssueCounters(cost=5.0), config)
    assert gate is not None and gate.halt_category is HaltCategory.BUDGET_EXCEEDED
    assert gate.rule == "budgets.max_cost" and "$5.00 spent of $5.00" in gate.reason
    # $2 left at the dearest price ($10 per million output tokens) pays for 200,000 tokens.
    budget = policy.attempt_budget(IssueCounters(cost=3.0), config)
    assert budget.tokens == 200_000
    # Without a money budget the token budget alone counts.
    assert policy.attempt_budget(IssueCounters(cost=3.0), priced_line(tmp_path / "b")).tokens == (
        config.budgets.max_tokens
    )


@pytest.mark.parametrize(
    ("overrides", "path", "words"),
    [
        ({"budgets": {"max_cost": 5}, "pricing": {"models": {}}}, "budgets.max_cost", "gpt-5"),
        (
            {"agent": {"kind": "scripted"}, "budgets": {"max_cost": 5}},
            "budgets.max_cost",
            "not named",
        ),
        (
            {"pricing": {"model": "gpt-5-codx", "models": {"gpt-5-codex": PRICES}}},
            "pricing.model",
            "no price",
        ),
    ],
)
def test_workflow_md_refuses_a_money_budget_it_cannot_count(
    tmp_path: Path, overrides: dict[str, Any], path: str, words: str
) -> None:
    with pytest.raises(WorkflowFileError) as error:
        priced_line(tmp_path, **overrides)
    problems = {p.path: p for p in error.value.problems}
    assert path in problems and words in problems[path].message, problems


def test_a_scripted_line_names_its_model_through_pricing(tmp_path: Path) -> None:
    config = priced_line(
        tmp_path,
        agent={"kind": "scripted"},
        pricing={"model": "house-model", "models": {"house-model": PRICES}},
        budgets={"max_cost": 1},
    )
    assert config.agent_model() == "house-model"


@pytest.mark.parametrize(
    ("update", "shown"),
    [
        ({}, None),  # a line without prices says nothing of money
        ({"currency": "USD", "cost": 3.5}, "- cost: $3.50"),
        (
            {"currency": "EUR", "cost": 3.5, "cost_unknown_attempts": 1},
            "- cost: at least 3.50 EUR (1 attempt(s) of unknown cost)",
        ),
        ({"currency": "USD", "cost": 0.0, "cost_unknown_attempts": 2}, "- cost: unknown"),
    ],
)
def test_the_ship_comment_states_the_cost_and_never_a_false_zero(
    update: dict[str, Any], shown: str | None
) -> None:
    text = comments.ship_comment(ship_proof(tokens_total=1234, **update), "Done", "pytest")
    money = [line for line in text.splitlines() if line.startswith("- cost:")]
    assert money == ([] if shown is None else [money[0]]) and "- tokens: 1,234" in text
    if shown is not None:
        assert money[0].startswith(shown), money
    assert "$0.00" not in text


def test_check_warns_when_prices_cannot_price_the_agent(tmp_path: Path) -> None:
    assert cost.pricing_warnings(priced_line(tmp_path / "a")) == []
    unnamed = priced_line(tmp_path / "b", agent={"kind": "scripted"})
    [warning] = cost.pricing_warnings(unnamed)
    assert "model is not named" in warning and "unknown" in warning
    other = priced_line(tmp_path / "c", agent={"kind": "claude", "claude": {"model": "opus"}})
    [warning] = cost.pricing_warnings(other)
    assert "'opus'" in warning
