"""The figures the worker host emits itself (catalog: :mod:`jidoka.metrics`; docs/metrics.md).

* The slot wait of each attempt, from the ``run_agent`` activity through
  ``activity.metric_meter()`` (the SDK adds ``namespace``, ``task_queue`` = the host's queue and
  ``activity_type``).
* The host's agent slots (capacity, held, waiters) as gauges on the worker's runtime meter,
  set at every change of :data:`activities.agent.slots.AGENT_SLOTS` and once at start, so a
  host that has run nothing yet shows its free slots too.

A metric that cannot be recorded is logged, never raised: the figures must not fail an agent.
"""

from __future__ import annotations

import logging

from temporalio import activity
from temporalio.common import MetricMeter

from activities.agent.slots import AgentSlots
from jidoka import metrics as m

log = logging.getLogger(__name__)


def slot_waited(line: str, agent_kind: str, waited_s: float) -> None:
    """An attempt got its slot (or gave up) after ``waited_s``."""
    try:
        meter = activity.metric_meter()
    except RuntimeError:  # outside a worker (the bench's plain loop): nowhere to record
        return
    try:
        meter.create_histogram_float(
            m.SLOT_WAIT.name, m.SLOT_WAIT.description, m.SLOT_WAIT.unit
        ).record(max(waited_s, 0.0), {"line": line, "agent_kind": agent_kind})
    except Exception as error:  # the figures never fail an agent
        log.warning("could not record the slot wait: %s", error)


class SlotGauges:
    """The host's agent slots, as gauges on ``meter`` (the worker's runtime meter)."""

    def __init__(self, meter: MetricMeter) -> None:
        self._capacity = meter.create_gauge(m.SLOTS_CAPACITY.name, m.SLOTS_CAPACITY.description)
        self._in_use = meter.create_gauge(m.SLOTS_IN_USE.name, m.SLOTS_IN_USE.description)
        self._waiters = meter.create_gauge(m.SLOT_WAITERS.name, m.SLOT_WAITERS.description)

    def update(self, slots: AgentSlots) -> None:
        try:
            self._capacity.set(slots.size)
            self._in_use.set(max(slots.in_use, 0))
            self._waiters.set(max(slots.waiting, 0))
        except Exception as error:  # the figures never fail an agent
            log.warning("could not record the agent slots: %s", error)


def watch_slots(slots: AgentSlots, meter: MetricMeter) -> SlotGauges:
    """Keep ``slots``' gauges current on ``meter`` from now on (replacing any earlier watch)."""
    gauges = SlotGauges(meter)
    slots.on_change = gauges.update
    gauges.update(slots)
    return gauges
