"""The figures workflow code emits (catalog: :mod:`jidoka.metrics`; docs/metrics.md).

Through ``workflow.metric_meter()``, the SDK's replay-safe meter: a value is recorded only while
the workflow runs live, never while a worker replays its history (after a restart, a cache
eviction, or in the replay tests). Recording creates no command and reads nothing back, so
these calls never change a history. A workflow task that fails and is retried runs live again
and may record twice: the figures are for watching a fleet, the ledger is the workflow state
(``jidoka line status``, ``jidoka why``).

A metric that cannot be recorded is logged, never raised: the figures must not halt a line.
"""

from __future__ import annotations

from collections.abc import Callable

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from jidoka import metrics as m
    from jidoka.config import WorkflowConfig
    from jidoka.models import AttemptRecord
    from jidoka.outcomes import HaltCategory


def attempt_ended(config: WorkflowConfig, record: AttemptRecord, *, agent_ran: bool) -> None:
    """An attempt has its outcome. ``agent_ran``: its agent ran in this attempt (not a held or
    pending result judged again), so its tokens, cost and time are counted now, and only now."""

    def emit() -> None:
        meter = workflow.metric_meter()
        line = config.line
        outcome = record.outcome.value if record.outcome is not None else m.UNKNOWN
        agent_kind = config.agent.kind.value
        model = record.model or m.UNKNOWN
        meter.create_counter(m.ATTEMPTS.name, m.ATTEMPTS.description).add(
            1, {"line": line, "outcome": outcome, "agent_kind": agent_kind}
        )
        if not agent_ran or record.agent_stop is None:
            return
        tokens = meter.create_counter(m.TOKENS.name, m.TOKENS.description, m.TOKENS.unit)
        for kind, count in token_kinds(record).items():
            if count > 0:
                tokens.add(
                    count,
                    {
                        "line": line,
                        "kind": kind,
                        "outcome": outcome,
                        "agent_kind": agent_kind,
                        "model": model,
                    },
                )
        pricing = config.pricing
        if pricing is not None and record.cost is None:
            meter.create_counter(m.COST_UNKNOWN.name, m.COST_UNKNOWN.description).add(
                1, {"line": line, "model": model}
            )
        elif pricing is not None and record.cost is not None:
            meter.create_counter(m.COST.name, m.COST.description, m.COST.unit).add(
                m.micros(record.cost),
                {"line": line, "currency": pricing.currency, "outcome": outcome, "model": model},
            )
        if record.agent_seconds > 0:  # a slot timeout: no agent time to show
            meter.create_histogram_float(
                m.AGENT_SECONDS.name, m.AGENT_SECONDS.description, m.AGENT_SECONDS.unit
            ).record(record.agent_seconds, {"line": line, "outcome": outcome})

    _safely(emit)


def token_kinds(record: AttemptRecord) -> dict[str, int]:
    """The attempt's tokens by kind (:data:`jidoka.metrics.TOKEN_KINDS`), adding up to its
    total; an agent that reported no usage has none."""
    usage = record.usage
    if usage is None:
        return {}
    prompt = max(usage.input_tokens, 0)
    cached = min(max(usage.cached_input_tokens, 0), prompt)
    output = max(usage.output_tokens, 0)
    return {
        "input": prompt - cached,
        "cached_input": cached,
        "output": output,
        "other": max(usage.total_tokens - prompt - output, 0),
    }


def halted(line: str | None, category: HaltCategory) -> None:
    """A halt raised here (by an issue, or by the line itself: never a halt the line only
    heard about from one of its issues, which counted it already)."""
    _safely(
        lambda: (
            workflow.metric_meter()
            .create_counter(m.HALTS.name, m.HALTS.description)
            .add(1, {"line": line or m.UNKNOWN, "category": category.value})
        )
    )


def shipped(line: str) -> None:
    _safely(
        lambda: (
            workflow.metric_meter()
            .create_counter(m.SHIPS.name, m.SHIPS.description)
            .add(1, {"line": line})
        )
    )


def _safely(emit: Callable[[], None]) -> None:
    try:
        emit()
    except Exception as error:  # the figures never halt a line
        workflow.logger.warning("could not record a metric: %s", error)
