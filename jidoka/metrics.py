"""Jidoka's own figures on the worker's Prometheus endpoint (docs/metrics.md): the catalog.

The names, kinds, labels and buckets of every ``jidoka_*`` metric, in one place: the workflows
emit theirs through ``workflow.metric_meter()`` (:mod:`workflows.metrics`, never during replay),
the activities theirs through ``activity.metric_meter()`` or the worker's runtime meter
(:mod:`activities.metrics`); ``worker.py`` gives the histograms their buckets, and the Grafana
dashboard (``deploy/observability/grafana-jidoka.json``) may query no other name.

Labels stay few and bounded: a line, an outcome, a halt category, an agent kind, a model, a
currency, a kind of token. Never an issue, a branch, a path or anything secret: one series per
issue would grow without end, and a label is stored in clear wherever the metrics go.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Kind(StrEnum):
    COUNTER = "counter"
    HISTOGRAM = "histogram"
    GAUGE = "gauge"


@dataclass(frozen=True)
class Metric:
    name: str
    kind: Kind
    description: str
    labels: tuple[str, ...]
    """Jidoka's own labels; the SDK adds ``namespace``, ``task_queue`` and ``workflow_type`` or
    ``activity_type`` to what a workflow or an activity emits, Prometheus adds ``instance``."""
    unit: str | None = None
    buckets: tuple[float, ...] = ()
    """Histograms: upper bounds, in ``unit`` (the SDK's defaults are for milliseconds)."""


TOKEN_KINDS = ("input", "cached_input", "output", "other")
"""``input`` is the prompt tokens read fresh (cached ones excluded), so the kinds add up to the
attempt's total; ``other`` is what an agent reported as total beyond input and output."""

UNKNOWN = "unknown"
"""A label value that is not known (no model named, no line loaded yet)."""

TOKENS = Metric(
    "jidoka_tokens_total",
    Kind.COUNTER,
    "Tokens the agents spent, by kind and by the outcome of the attempt that spent them",
    ("line", "kind", "outcome", "agent_kind", "model"),
    unit="tokens",
)
COST = Metric(
    "jidoka_cost_micros_total",
    Kind.COUNTER,
    "Money the agents spent on priced lines, in millionths of the currency, by outcome",
    ("line", "currency", "outcome", "model"),
    unit="micros",
)
COST_UNKNOWN = Metric(
    "jidoka_cost_unknown_attempts_total",
    Kind.COUNTER,
    "Attempts on priced lines whose cost is unknown (no usage reported, no price for the "
    "model): counted here, never as zero cost",
    ("line", "model"),
)
ATTEMPTS = Metric(
    "jidoka_attempts_total",
    Kind.COUNTER,
    "Attempts ended, by outcome",
    ("line", "outcome", "agent_kind"),
)
HALTS = Metric(
    "jidoka_halts_total",
    Kind.COUNTER,
    "Halts by category, each counted once where it was raised (an issue, or the line itself)",
    ("line", "category"),
)
SHIPS = Metric(
    "jidoka_ships_total",
    Kind.COUNTER,
    "Ships: work pushed and moved to the done (or review) state with its evidence",
    ("line",),
)
AGENT_SECONDS = Metric(
    "jidoka_attempt_agent_seconds",
    Kind.HISTOGRAM,
    "Agent time of an attempt (slot wait excluded), by outcome",
    ("line", "outcome"),
    unit="s",
    buckets=(1, 5, 15, 30, 60, 120, 300, 600, 900, 1200, 1800, 2700, 3600, 5400, 7200, 10800),
)
SLOT_WAIT = Metric(
    "jidoka_agent_slot_wait_seconds",
    Kind.HISTOGRAM,
    "Time an attempt waited for an agent slot on its host (JIDOKA_MAX_AGENTS)",
    ("line", "agent_kind"),
    unit="s",
    buckets=(0.1, 0.5, 1, 5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600),
)
SLOTS_CAPACITY = Metric(
    "jidoka_agent_slots_capacity",
    Kind.GAUGE,
    "Agent slots on this worker host (JIDOKA_MAX_AGENTS)",
    (),
)
SLOTS_IN_USE = Metric(
    "jidoka_agent_slots_in_use",
    Kind.GAUGE,
    "Agent slots held by a running agent on this worker host",
    (),
)
SLOT_WAITERS = Metric(
    "jidoka_agent_slot_waiters",
    Kind.GAUGE,
    "Attempts waiting for an agent slot on this worker host",
    (),
)

WORKFLOW_METRICS: tuple[Metric, ...] = (
    TOKENS,
    COST,
    COST_UNKNOWN,
    ATTEMPTS,
    HALTS,
    SHIPS,
    AGENT_SECONDS,
)
"""Emitted by workflow code (replay-safe meter)."""
WORKER_METRICS: tuple[Metric, ...] = (SLOT_WAIT, SLOTS_CAPACITY, SLOTS_IN_USE, SLOT_WAITERS)
"""Emitted on the worker host, by the ``run_agent`` activity and its slots."""
ALL: tuple[Metric, ...] = WORKFLOW_METRICS + WORKER_METRICS


def bucket_overrides() -> dict[str, list[float]]:
    """The histograms' buckets, for ``PrometheusConfig(histogram_bucket_overrides=...)``."""
    return {m.name: [float(b) for b in m.buckets] for m in ALL if m.buckets}


def micros(amount: float) -> int:
    """A money amount in millionths, the unit of :data:`COST` (counters add whole numbers)."""
    return max(round(amount * 1_000_000), 0)
