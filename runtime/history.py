"""Reading the steps of a workflow history, ordinary and local activities alike.

An ordinary activity is three events (scheduled with its input, started, closed with its
result or failure); a local activity is one marker recorded by the workflow, with the activity's
type and its result or failure but not its input. Everything that reads what a workflow did
(``jidoka why``, the benches, the tests) reads both through :func:`steps`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from temporalio.api.common.v1 import Payload, Payloads
from temporalio.api.history.v1 import HistoryEvent
from temporalio.contrib.pydantic import pydantic_data_converter

from jidoka.payloads import TransitionInput, TransitionResult

LOCAL_ACTIVITY_MARKER = "core_local_activity"
"""The marker name the SDK gives a local activity's record."""


@dataclass
class Step:
    """One activity as the history tells it. ``input`` is None for a local activity (its input
    is not recorded) and ``result``/``failure`` are None while it has not ended."""

    name: str
    local: bool
    event_id: int
    """Of its scheduled event, or of its marker."""
    scheduled_at: datetime
    input: Payloads | None = None
    started_at: datetime | None = None
    ended_at: datetime | None = None
    tries: int = 0
    result: Payloads | None = None
    failure: str | None = None
    timed_out: bool = False


def steps(events: Iterable[HistoryEvent]) -> list[Step]:
    """The activities of ``events`` in the order they were scheduled (local ones where their
    marker is, which is when the workflow recorded their outcome)."""
    found: list[Step] = []
    by_event: dict[int, Step] = {}
    for event in events:
        at = event.event_time.ToDatetime()
        if event.HasField("activity_task_scheduled_event_attributes"):
            attrs = event.activity_task_scheduled_event_attributes
            step = Step(attrs.activity_type.name, False, event.event_id, at, input=attrs.input)
            by_event[event.event_id] = step
            found.append(step)
        elif event.HasField("activity_task_started_event_attributes"):
            attrs = event.activity_task_started_event_attributes
            if (step := by_event.get(attrs.scheduled_event_id)) is not None:
                step.started_at, step.tries = at, attrs.attempt
        elif event.HasField("activity_task_completed_event_attributes"):
            attrs = event.activity_task_completed_event_attributes
            if (step := by_event.get(attrs.scheduled_event_id)) is not None:
                step.ended_at, step.result = at, attrs.result
        elif event.HasField("activity_task_failed_event_attributes"):
            attrs = event.activity_task_failed_event_attributes
            if (step := by_event.get(attrs.scheduled_event_id)) is not None:
                step.ended_at, step.failure = at, attrs.failure.message
        elif event.HasField("activity_task_timed_out_event_attributes"):
            attrs = event.activity_task_timed_out_event_attributes
            if (step := by_event.get(attrs.scheduled_event_id)) is not None:
                step.ended_at, step.failure = at, attrs.failure.message
                step.timed_out = True
        elif (local := local_activity(event)) is not None:
            found.append(local)
    return found


def local_activity(event: HistoryEvent) -> Step | None:
    """The local activity a marker event records, or None for any other event."""
    if not event.HasField("marker_recorded_event_attributes"):
        return None
    marker = event.marker_recorded_event_attributes
    if marker.marker_name != LOCAL_ACTIVITY_MARKER or "data" not in marker.details:
        return None
    data = _json_of(marker.details["data"].payloads)
    name = data.get("activity_type")
    if not isinstance(name, str):
        return None
    at = event.event_time.ToDatetime()
    attempt = data.get("attempt")
    step = Step(name, True, event.event_id, at, started_at=at, ended_at=at)
    step.tries = attempt if isinstance(attempt, int) else 1
    if marker.HasField("failure"):
        step.failure = marker.failure.message
        step.timed_out = marker.failure.HasField("timeout_failure_info")
    elif "result" in marker.details:
        step.result = marker.details["result"]
    return step


def _json_of(payloads: Iterable[Payload]) -> dict[str, object]:
    for payload in payloads:
        try:
            value = json.loads(payload.data)
        except ValueError:
            return {}
        return value if isinstance(value, dict) else {}
    return {}


def transition_targets(found: Iterable[Step]) -> list[str]:
    """The state each ``tracker_transition`` moved (or asked to move) the issue to: from its
    input when it is an activity, from its result when it is a local activity (one that
    failed says nothing). A retry is the same step, so a state written twice shows twice."""
    converter = pydantic_data_converter.payload_converter
    targets: list[str] = []
    for step in found:
        if step.name != "tracker_transition":
            continue
        if step.input is not None:
            (move,) = converter.from_payloads(step.input.payloads, [TransitionInput])
            assert isinstance(move, TransitionInput)
            targets.append(move.target_state)
        elif step.result is not None:
            (moved,) = converter.from_payloads(step.result.payloads, [TransitionResult])
            assert isinstance(moved, TransitionResult)
            targets.append(moved.issue.state)
    return targets
