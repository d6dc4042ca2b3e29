"""``jidoka why ISSUE``: read the issue workflow's history through the client (every run of it,
across continue-as-new) and tell the chain of attempts, evidence and decisions."""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any, cast

from pydantic import BaseModel
from temporalio.api.common.v1 import Payloads
from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import Client, WorkflowExecutionDescription, WorkflowExecutionStatus
from temporalio.converter import DataConverter
from temporalio.service import RPCError

from cli.common import (
    add_target_arguments,
    client_or_fail,
    issue_id_for,
    line_name,
    rpc_failure,
    web_ui,
)
from cli.errors import SubParsers
from cli.story import (
    ActivityRecord,
    ConfigRecord,
    DecisionRecord,
    HaltedRecord,
    MessageRecord,
    Record,
    Story,
    TimerRecord,
    tell,
)
from jidoka import search_attributes as sa
from jidoka.models import (
    AgentRunResult,
    Decision,
    Evidence,
    HookResult,
    Issue,
    LoadedWorkflow,
    WorkspaceInfo,
)
from jidoka.outcomes import Outcome, Phase
from jidoka.payloads import (
    AnswerRequest,
    CancelRequest,
    DecideRequest,
    HaltRequest,
    HookInput,
    IssueResult,
    IssueStatus,
    IssueWorkflowInput,
    PreserveResult,
    PushResult,
    ResumeRequest,
    ReviewChanged,
    TransitionInput,
    TransitionResult,
)
from jidoka.review import ChangeRequest
from runtime.history import local_activity

Decoded = BaseModel | str | bool | None
ResultType = type[BaseModel] | type[bool]

ACTIVITY_TYPES: dict[str, tuple[type[BaseModel] | None, ResultType | None]] = {
    "load_workflow_config": (None, LoadedWorkflow),
    "tracker_fetch_issue": (None, Issue),
    "prepare_workspace": (None, WorkspaceInfo),
    "run_agent": (None, AgentRunResult),
    "run_hook": (HookInput, HookResult),
    "collect_evidence": (None, Evidence),
    "tracker_transition": (TransitionInput, TransitionResult),
    "push_branch": (None, PushResult),
    "preserve_work": (None, PreserveResult),
    "forge_read": (None, ChangeRequest),
    "forge_merge": (None, bool),
}
MESSAGE_TYPES: dict[str, type[BaseModel]] = {
    "halt": HaltRequest,
    "resume": ResumeRequest,
    "decide": DecideRequest,
    "answer": AnswerRequest,
    "cancel": CancelRequest,
    "review_changed": ReviewChanged,
}


def add_parser(subparsers: SubParsers) -> None:
    parser = subparsers.add_parser(
        "why",
        help="the five whys: the chain of attempts, evidence and decisions behind an issue",
        description=__doc__,
    )
    parser.add_argument("issue", help="the issue identifier, e.g. DEMO-2")
    add_target_arguments(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    async def go() -> int:
        client = await client_or_fail()
        workflow_id = issue_id_for(line_name(args), args.issue)
        story = await read_story(client, workflow_id)
        print(tell(story))
        return 0

    return asyncio.run(go())


async def read_story(client: Client, workflow_id: str) -> Story:
    handle = client.get_workflow_handle(workflow_id)
    try:
        description = await handle.describe()
    except RPCError as error:
        raise rpc_failure(error, workflow_id) from None
    runs = await _run_chain(client, workflow_id, description.run_id)
    story = Story(workflow_id=workflow_id, url=web_ui(client).link(workflow_id, client.namespace))
    for run_id in runs:
        history = await client.get_workflow_handle(workflow_id, run_id=run_id).fetch_history()
        await add_run(story, client.data_converter, history.events)
    if description.status is WorkflowExecutionStatus.RUNNING:
        try:
            status = await handle.query("status", result_type=IssueStatus)
            story.phase = status.phase
            story.halts = list(status.halts)
            story.review_waiting = status.review_waiting
            story.counters = status.counters
        except RPCError:
            story.phase = _phase_from_attributes(description)
    return story


async def add_run(story: Story, converter: DataConverter, events: Sequence[HistoryEvent]) -> None:
    """Tell one run of the issue workflow (runs are added oldest first): its records, and its
    result (with the issue's halts) if it completed."""
    story.records.extend(await records_of(converter, events))
    for event in events:
        if event.HasField("workflow_execution_completed_event_attributes"):
            result = await _decode(
                converter, event.workflow_execution_completed_event_attributes.result, IssueResult
            )
            if isinstance(result, IssueResult):
                story.result = result
                story.halts = list(result.halts)
                story.counters = result.counters


def _phase_from_attributes(description: WorkflowExecutionDescription) -> Phase | None:
    value = description.typed_search_attributes.get(sa.PHASE)
    try:
        return Phase(value) if value else None
    except ValueError:
        return None


async def _run_chain(client: Client, workflow_id: str, latest: str) -> list[str]:
    """Oldest first: follow ``continued_execution_run_id`` back from the latest run."""
    chain = [latest]
    current = latest
    for _ in range(100):
        history = await client.get_workflow_handle(workflow_id, run_id=current).fetch_history()
        started = history.events[0].workflow_execution_started_event_attributes
        previous = started.continued_execution_run_id
        if not previous:
            break
        chain.append(previous)
        current = previous
    return list(reversed(chain))


def _config_record(at: datetime, loaded: LoadedWorkflow) -> ConfigRecord:
    config = loaded.config
    return ConfigRecord(at=at, pricing=config.pricing, model=config.agent_model())


async def _decode(converter: DataConverter, payloads: Payloads, kind: ResultType | None) -> Decoded:
    if not payloads.payloads:
        return None
    try:
        values = await converter.decode(payloads.payloads, [kind] if kind else None)
    except Exception:  # a payload from another version of Jidoka: tell what we can
        return None
    value = values[0] if values else None
    return value if isinstance(value, (BaseModel, str, bool)) else None


async def records_of(converter: DataConverter, events: Sequence[HistoryEvent]) -> list[Record]:
    """The records of one run's history, in its order, decoded with ``converter``."""
    records: list[Record] = []
    scheduled: dict[int, tuple[str, Decoded]] = {}
    timers: dict[int, int] = {}
    """A running timer's started event id -> the index of its record."""
    for event in events:
        at = event.event_time.ToDatetime().replace(tzinfo=UTC)
        if event.HasField("workflow_execution_started_event_attributes"):
            attrs = event.workflow_execution_started_event_attributes
            started = await _decode(converter, attrs.input, IssueWorkflowInput)
            if isinstance(started, IssueWorkflowInput) and started.workflow is not None:
                records.append(_config_record(at, started.workflow))
        elif event.HasField("activity_task_scheduled_event_attributes"):
            attrs = event.activity_task_scheduled_event_attributes
            name = attrs.activity_type.name
            input_type = ACTIVITY_TYPES.get(name, (None, None))[0]
            decoded = await _decode(converter, attrs.input, input_type) if input_type else None
            scheduled[event.event_id] = (name, decoded)
        elif event.HasField("activity_task_completed_event_attributes"):
            attrs = event.activity_task_completed_event_attributes
            name, decoded_input = scheduled.get(attrs.scheduled_event_id, ("?", None))
            result_type = ACTIVITY_TYPES.get(name, (None, None))[1]
            if result_type is None:
                continue
            result = await _decode(converter, attrs.result, result_type)
            if isinstance(result, LoadedWorkflow):
                records.append(_config_record(at, result))
                continue
            records.append(
                ActivityRecord(
                    at=at,
                    name=name,
                    input=decoded_input if isinstance(decoded_input, BaseModel) else None,
                    result=result,
                )
            )
        elif event.HasField("activity_task_failed_event_attributes"):
            attrs = event.activity_task_failed_event_attributes
            name, _ = scheduled.get(attrs.scheduled_event_id, ("?", None))
            records.append(ActivityRecord(at=at, name=name, failure=attrs.failure.message))
        elif event.HasField("activity_task_timed_out_event_attributes"):
            attrs = event.activity_task_timed_out_event_attributes
            name, _ = scheduled.get(attrs.scheduled_event_id, ("?", None))
            records.append(
                ActivityRecord(at=at, name=name, failure=f"timed out ({attrs.failure.message})")
            )
        elif (local := local_activity(event)) is not None:
            result_type = ACTIVITY_TYPES.get(local.name, (None, None))[1]
            if local.failure is not None:
                records.append(ActivityRecord(at=at, name=local.name, failure=local.failure))
            elif result_type is not None and local.result is not None:
                result = await _decode(converter, local.result, result_type)
                if isinstance(result, LoadedWorkflow):
                    records.append(_config_record(at, result))
                else:
                    records.append(ActivityRecord(at=at, name=local.name, result=result))
        elif event.HasField("workflow_properties_modified_event_attributes"):
            fields = event.workflow_properties_modified_event_attributes.upserted_memo.fields
            if "decision" in fields:
                raw = await converter.decode([fields["decision"]], [dict[str, Any]])
                data: dict[str, Any] = (
                    cast(dict[str, Any], raw[0]) if raw and isinstance(raw[0], dict) else {}
                )
                try:
                    decision = Decision.model_validate(
                        {k: v for k, v in data.items() if k not in ("attempt", "outcome")}
                    )
                    records.append(
                        DecisionRecord(
                            at=at,
                            attempt=int(data.get("attempt", 0)),
                            outcome=Outcome(data["outcome"]),
                            decision=decision,
                        )
                    )
                except (ValueError, KeyError):
                    continue
        elif event.HasField("workflow_execution_signaled_event_attributes"):
            attrs = event.workflow_execution_signaled_event_attributes
            kind = MESSAGE_TYPES.get(attrs.signal_name)
            payload = await _decode(converter, attrs.input, kind) if kind else None
            records.append(
                MessageRecord(
                    at=at,
                    name=attrs.signal_name,
                    payload=payload if isinstance(payload, BaseModel) else None,
                )
            )
        elif event.HasField("workflow_execution_update_accepted_event_attributes"):
            request = event.workflow_execution_update_accepted_event_attributes.accepted_request
            kind = MESSAGE_TYPES.get(request.input.name)
            payload = await _decode(converter, request.input.args, kind) if kind else None
            records.append(
                MessageRecord(
                    at=at,
                    name=request.input.name,
                    payload=payload if isinstance(payload, BaseModel) else None,
                    kind="update",
                )
            )
        elif event.HasField("timer_started_event_attributes"):
            attrs = event.timer_started_event_attributes
            summary = ""
            if event.user_metadata.HasField("summary"):
                decoded = await _decode(
                    converter, Payloads(payloads=[event.user_metadata.summary]), None
                )
                summary = decoded if isinstance(decoded, str) else ""
            timers[event.event_id] = len(records)
            records.append(
                TimerRecord(
                    at=at,
                    seconds=attrs.start_to_fire_timeout.ToTimedelta().total_seconds(),
                    summary=summary,
                )
            )
        elif event.HasField("timer_canceled_event_attributes"):
            index = timers.pop(event.timer_canceled_event_attributes.started_event_id, None)
            if index is not None and isinstance(timer := records[index], TimerRecord):
                waited = (at - timer.at).total_seconds()
                records[index] = replace(timer, cut_short_after=max(waited, 0.0))
        elif event.HasField("upsert_workflow_search_attributes_event_attributes"):
            fields = event.upsert_workflow_search_attributes_event_attributes.search_attributes
            halted = fields.indexed_fields.get(sa.HALTED.name)
            if halted is not None and await _decode(converter, Payloads(payloads=[halted]), bool):
                records.append(HaltedRecord(at=at))
    return records
