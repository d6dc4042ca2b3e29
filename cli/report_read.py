"""What ``jidoka report`` reads of a line from Temporal, and nothing kept on the side.

* The line's issue workflows, from visibility: ``JidokaLine = "<line>"``, started before the
  window ends and still running or closed after it starts. Each run of a workflow that
  continued as new is listed; the latest run counts.
* A closed issue: the result in its latest run's completion event (``IssueResult``: phase,
  counters, attempts, halts, times). One closed without a result (terminated, failed, timed
  out) is listed with its close status, its figures unknown.
* A running issue: its ``status`` query. A query needs a worker: when none answers within
  :data:`QUERY_TIMEOUT`, no other query is tried, and each running issue is listed with the
  phase its ``JidokaPhase`` search attribute last showed and its figures unknown (the report
  says so; run a worker, or ``jidoka run``, for the figures).
* The line's halts: the line workflow's ``status`` query (none without a worker).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from temporalio.client import (
    Client,
    WorkflowExecution,
    WorkflowExecutionStatus,
    WorkflowHandle,
)
from temporalio.service import RPCError, RPCStatusCode

from cli.common import started_workflow_path
from jidoka import search_attributes as sa
from jidoka.keys import line_workflow_id
from jidoka.models import HaltRecord
from jidoka.outcomes import Phase
from jidoka.payloads import IssueResult, IssueStatus, LineStatus
from jidoka.report import FactsSource, IssueFacts, Window

QUERY_TIMEOUT = timedelta(seconds=5)
"""How long a ``status`` query may wait for a worker before the report goes on without it."""
PARALLEL = 16
"""Issue workflows read at once."""

T = TypeVar("T")


class UnknownLine(Exception):
    """No line workflow by that name, and no issue workflow names it."""


@dataclass
class LineFacts:
    issues: list[IssueFacts]
    halts: list[HaltRecord] | None
    """None when the line's status could not be queried (no worker, no line workflow)."""
    workflow_path: str | None
    """The WORKFLOW.md the line was started with, as its start input says."""


def issues_query(line: str, window: Window) -> str:
    """The visibility query for the issue workflows of ``line`` active in ``window``."""
    quoted = line.replace("\\", "\\\\").replace("'", "\\'")
    return (
        f"WorkflowType = 'IssueWorkflow' AND {sa.LINE.name} = '{quoted}' "
        f"AND StartTime <= '{rfc3339(window.until)}' "
        f"AND (ExecutionStatus = 'Running' OR CloseTime >= '{rfc3339(window.since)}')"
    )


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


WorkflowUrl = Callable[[str], str | None]
"""A workflow id -> its page in the Temporal Web UI (None: no UI to link to)."""


class FactsReader:
    """Reads one line's facts; stops asking for queries once a worker failed to answer."""

    def __init__(self, client: Client, url_of: WorkflowUrl) -> None:
        self._client = client
        self._url_of = url_of
        self._worker_silent = False
        self._gate = asyncio.Semaphore(PARALLEL)

    async def read(self, line: str, window: Window) -> LineFacts:
        latest = await self._latest_runs(line, window)
        line_handle = self._client.get_workflow_handle(line_workflow_id(line))
        workflow_path = await started_workflow_path(self._client, line_handle.id)
        if workflow_path is None and not latest:
            raise UnknownLine(line)
        closed = [e for e in latest if e.status is not WorkflowExecutionStatus.RUNNING]
        running = [e for e in latest if e.status is WorkflowExecutionStatus.RUNNING]
        issues = list(await asyncio.gather(*(self._bounded(self._closed, e) for e in closed)))
        if running:
            # The first query tells whether a worker answers; the others follow in parallel.
            issues.append(await self._running(running[0]))
            issues += await asyncio.gather(*(self._bounded(self._running, e) for e in running[1:]))
        halts: list[HaltRecord] | None = None
        if workflow_path is not None:
            status = await self._query(line_handle, LineStatus)
            halts = list(status.halts) if status is not None else None
        return LineFacts(
            issues=sorted(issues, key=lambda f: f.identifier),
            halts=halts,
            workflow_path=workflow_path,
        )

    async def _bounded(
        self, read: Callable[[WorkflowExecution], Awaitable[T]], execution: WorkflowExecution
    ) -> T:
        async with self._gate:
            return await read(execution)

    async def _latest_runs(self, line: str, window: Window) -> list[WorkflowExecution]:
        """One execution per workflow id: its latest run (described afresh when the latest run
        visibility listed has continued as new into a run outside the window's query)."""
        latest: dict[str, WorkflowExecution] = {}
        async for execution in self._client.list_workflows(issues_query(line, window)):
            known = latest.get(execution.id)
            if known is None or execution.start_time > known.start_time:
                latest[execution.id] = execution
        found: list[WorkflowExecution] = []
        for execution in latest.values():
            if execution.status is WorkflowExecutionStatus.CONTINUED_AS_NEW:
                found.append(await self._client.get_workflow_handle(execution.id).describe())
            else:
                found.append(execution)
        return found

    async def _closed(self, execution: WorkflowExecution) -> IssueFacts:
        base = await self._base_facts(execution)
        if execution.status is not WorkflowExecutionStatus.COMPLETED:
            status = execution.status.name.lower() if execution.status else "closed"
            return base.model_copy(update={"source": FactsSource.NO_RESULT, "closed_as": status})
        handle = self._client.get_workflow_handle(
            execution.id, run_id=execution.run_id, result_type=IssueResult
        )
        try:
            result = await handle.result(follow_runs=False)
        except Exception:  # an unreadable result (another version's payload): said, not fatal
            return base.model_copy(
                update={"source": FactsSource.NO_RESULT, "closed_as": "completed, unreadable"}
            )
        return result_facts(base, result)

    async def _running(self, execution: WorkflowExecution) -> IssueFacts:
        base = await self._base_facts(execution)
        handle = self._client.get_workflow_handle(execution.id, run_id=execution.run_id)
        status = await self._query(handle, IssueStatus)
        if status is None:
            return base
        return status_facts(base, status)

    async def _query(self, handle: WorkflowHandle[Any, Any], kind: type[T]) -> T | None:
        """The ``status`` query, or None: no worker answered (then no other query is tried),
        or the workflow refused it."""
        if self._worker_silent:
            return None
        try:
            answer = await handle.query("status", result_type=kind, rpc_timeout=QUERY_TIMEOUT)
        except RPCError as error:
            if error.status in (RPCStatusCode.DEADLINE_EXCEEDED, RPCStatusCode.CANCELLED) or (
                "timeout" in error.message.lower()
            ):
                self._worker_silent = True
            return None
        except Exception:  # a query the workflow failed, or an answer of another shape
            return None
        return answer if isinstance(answer, kind) else None

    async def _base_facts(self, execution: WorkflowExecution) -> IssueFacts:
        """What visibility says: enough to list the issue when nothing else can be read."""
        attributes = execution.typed_search_attributes
        phase = attributes.get(sa.PHASE)
        title: str | None = None
        try:
            memo = await execution.memo()
            title = str(memo["title"]) if memo.get("title") else None
        except Exception:  # a memo of another shape: no title
            title = None
        return IssueFacts(
            identifier=attributes.get(sa.ISSUE) or execution.id,
            workflow_id=execution.id,
            run_id=execution.run_id,
            url=self._url_of(execution.id),
            title=title,
            source=FactsSource.UNREAD,
            phase=Phase(phase) if phase in Phase.__members__.values() else None,
            started_at=execution.start_time,
            finished_at=execution.close_time,
        )


def result_facts(base: IssueFacts, result: IssueResult) -> IssueFacts:
    """A closed issue's facts: what visibility said (``base``) completed by its result. A
    result recorded before results carried their times keeps the run's start and close."""
    return base.model_copy(
        update={
            "source": FactsSource.RESULT,
            "identifier": result.identifier or base.identifier,
            "phase": result.phase,
            "started_at": result.started_at or base.started_at,
            "finished_at": result.finished_at or base.finished_at,
            "counters": result.counters,
            "attempts": result.attempts,
            "halts": result.halts,
            "review": result.review,
        }
    )


def status_facts(base: IssueFacts, status: IssueStatus) -> IssueFacts:
    """A running issue's facts: what visibility said (``base``) completed by its status."""
    return base.model_copy(
        update={
            "source": FactsSource.STATUS,
            "identifier": status.identifier or base.identifier,
            "title": status.title or base.title,
            "phase": status.phase,
            "started_at": status.started_at or base.started_at,
            "finished_at": status.finished_at,
            "counters": status.counters,
            "attempts": status.attempts,
            "halts": status.halts,
            "review": status.review,
        }
    )


async def read_line_facts(
    client: Client, line: str, window: Window, url_of: WorkflowUrl
) -> LineFacts:
    """The facts of ``line``'s issues active in ``window`` and the line's halts. Raises
    :class:`UnknownLine`, and RPCError when Temporal refuses a read."""
    return await FactsReader(client, url_of).read(line, window)
