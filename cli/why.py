"""``jidoka why ISSUE``: read the issue workflow's history through the client (every run of it,
across continue-as-new) and tell the chain of attempts, evidence and decisions."""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Sequence
from datetime import UTC
from typing import Any, cast

from pydantic import BaseModel
from temporalio.api.common.v1 import Payloads
from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import Client, WorkflowExecutionDescription, WorkflowExecutionStatus
from temporalio.service import RPCError

from cli.common import (
    add_target_arguments,
    client_or_fail,
    issue_id_for,
    line_name,
    rpc_failure,
    workflow_url,
)
from cli.errors import SubParsers
from cli.story import (
    ActivityRecord,
    DecisionRecord,
    MessageRecord,
    Record,
    Story,
    TimerRecord,
    tell,
)
from jidoka import search_attributes as sa
from jidoka.models import AgentRunResult, Decision, Evidence, HookResult, Issue, WorkspaceInfo
from jidoka.outcomes import Outcome, Phase
from jidoka.payloads import (
    AnswerRequest,
    CancelRequest,
    DecideRequest,
    HaltRequest,
    HookInput,
    IssueResult,
    IssueStatus,
    PreserveResult,
    PushResult,
    ResumeRequest,
    TransitionInput,
    TransitionResult,
)
from runtime.history import local_activity

ACTIVITY_TYPES: dict[str, tuple[type[BaseModel] | None, type[BaseModel] | None]] = {
    "tracker_fetch_issue": (None, Issue),
    "prepare_workspace": (None, WorkspaceInfo),
    "run_agent": (None, AgentRunResult),
    "run_hook": (HookInput, HookResult),
    "collect_evidence": (None, Evidence),
    "tracker_transition": (TransitionInput, TransitionResult),
    "push_branch": (None, PushResult),
    "preserve_work": (None, PreserveResult),
}
MESSAGE_TYPES: dict[str, type[BaseModel]] = {
    "halt": HaltRequest,
    "resume": ResumeRequest,
    "decide": DecideRequest,
    "answer": AnswerRequest,
    "cancel": CancelRequest,
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
    story = Story(workflow_id=workflow_id, url=workflow_url(workflow_id, client.namespace))
    for run_id in runs:
        history = await client.get_workflow_handle(workflow_id, run_id=run_id).fetch_history()
        story.records.extend(await _records(client, history.events))
        for event in history.events:
            if event.HasField("workflow_execution_completed_event_attributes"):
                results = await _decode(
                    client, event.workflow_execution_completed_event_attributes.result, IssueResult
                )
                if isinstance(results, IssueResult):
                    story.result = results
    if description.status is WorkflowExecutionStatus.RUNNING:
        try:
            status = await handle.query("status", result_type=IssueStatus)
            story.phase = status.phase
        except RPCError:
            story.phase = _phase_from_attributes(description)
    return story


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


async def _decode(
    client: Client, payloads: Payloads, kind: type[BaseModel] | None
) -> BaseModel | str | None:
    if not payloads.payloads:
        return None
    try:
        values = await client.data_converter.decode(payloads.payloads, [kind] if kind else None)
    except Exception:  # a payload from another version of Jidoka: tell what we can
        return None
    value = values[0] if values else None
    return value if isinstance(value, (BaseModel, str)) else None


async def _records(client: Client, events: Sequence[HistoryEvent]) -> list[Record]:
    records: list[Record] = []
    scheduled: dict[int, tuple[str, BaseModel | str | None]] = {}
    for event in events:
        at = event.event_time.ToDatetime().replace(tzinfo=UTC)
        if event.HasField("activity_task_scheduled_event_attributes"):
            attrs = event.activity_task_scheduled_event_attributes
            name = attrs.activity_type.name
            input_type = ACTIVITY_TYPES.get(name, (None, None))[0]
            decoded = await _decode(client, attrs.input, input_type) if input_type else None
            scheduled[event.event_id] = (name, decoded)
        elif event.HasField("activity_task_completed_event_attributes"):
            attrs = event.activity_task_completed_event_attributes
            name, decoded_input = scheduled.get(attrs.scheduled_event_id, ("?", None))
            result_type = ACTIVITY_TYPES.get(name, (None, None))[1]
            if result_type is None:
                continue
            result = await _decode(client, attrs.result, result_type)
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
                result = await _decode(client, local.result, result_type)
                records.append(ActivityRecord(at=at, name=local.name, result=result))
        elif event.HasField("workflow_properties_modified_event_attributes"):
            fields = event.workflow_properties_modified_event_attributes.upserted_memo.fields
            if "decision" in fields:
                raw = await client.data_converter.decode([fields["decision"]], [dict[str, Any]])
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
            payload = await _decode(client, attrs.input, kind) if kind else None
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
            payload = await _decode(client, request.input.args, kind) if kind else None
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
                    client, Payloads(payloads=[event.user_metadata.summary]), None
                )
                summary = decoded if isinstance(decoded, str) else ""
            records.append(
                TimerRecord(
                    at=at,
                    seconds=attrs.start_to_fire_timeout.ToTimedelta().total_seconds(),
                    summary=summary,
                )
            )
    return records
