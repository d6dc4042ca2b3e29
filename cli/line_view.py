"""The line's status as operators see it: the line's own account, with the live phase of each
running issue.

An issue signals its line only for what the line acts on (a pause, a halt, its ship, a
back-off, its end); the progress in between (preparing, waiting for a slot, running the agent,
verifying) is kept in each issue's ``JidokaPhase`` search attribute, and the rework rounds of an
issue in review in its ``JidokaReviewRounds``. One visibility query for the whole line reads
both back, so ``jidoka line status`` and ``jidoka run`` show where each issue really is without
the line's history paying a signal for every step.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from temporalio.client import Client, WorkflowHandle
from temporalio.service import RPCError

from jidoka import search_attributes as sa
from jidoka.outcomes import Phase
from jidoka.payloads import LineStatus


@dataclass(frozen=True)
class LiveIssue:
    """What visibility says of one running issue workflow."""

    phase: Phase | None = None
    review_rounds: int | None = None
    """Rework rounds sent after its ship; None until it first entered review."""


@dataclass
class LineView:
    """The line's ``status`` query with what visibility adds to it."""

    status: LineStatus
    review_rounds: dict[str, int] = field(default_factory=dict[str, int])
    """By workflow id: the rework rounds of each running issue that has entered review."""

    def json(self) -> dict[str, Any]:
        """``status`` as JSON, each running issue (and its copy in the retry queue) with its
        ``review_rounds``: null when it never entered review, or visibility did not answer."""
        data = self.status.model_dump(mode="json")
        for key in ("running", "retry_queue"):
            for entry in data[key]:
                entry["review_rounds"] = self.review_rounds.get(entry["workflow_id"])
        return data


async def read_line_status(client: Client, handle: WorkflowHandle[Any, Any]) -> LineStatus:
    """The line's ``status`` query with the live phases laid over it (see
    :func:`read_line_view`)."""
    return (await read_line_view(client, handle)).status


async def read_line_view(client: Client, handle: WorkflowHandle[Any, Any]) -> LineView:
    """The line's ``status`` query with the live phases laid over it and the review rounds
    beside it. Raises RPCError when the line cannot be queried; a visibility store that cannot
    answer only leaves the phases as the line last heard them (and no rounds)."""
    status = await handle.query("status", result_type=LineStatus)
    view = LineView(status)
    if not status.running or status.line is None:
        return view
    try:
        live = await live_issues(client, status.line)
    except RPCError:
        return view
    view.review_rounds = {
        workflow_id: found.review_rounds
        for workflow_id, found in live.items()
        if found.review_rounds is not None
    }
    for entry in status.running:
        phase = live.get(entry.workflow_id, LiveIssue()).phase
        # The line's own phase wins whenever it acts on it: the issue reports each move into
        # or out of such a phase, and visibility can lag behind a report.
        if phase is None or entry.phase.concerns_the_line or phase.concerns_the_line:
            continue
        entry.phase = phase
    return view


async def live_issues(client: Client, line: str) -> dict[str, LiveIssue]:
    """The ``JidokaPhase`` and ``JidokaReviewRounds`` of each running issue workflow of
    ``line``, by workflow id: one visibility query."""
    quoted = line.replace("\\", "\\\\").replace("'", "\\'")
    query = f"{sa.LINE.name} = '{quoted}' AND ExecutionStatus = 'Running'"
    found: dict[str, LiveIssue] = {}
    async for execution in client.list_workflows(query):
        attributes = execution.typed_search_attributes
        value = attributes.get(sa.PHASE)
        phase = Phase(value) if value is not None and value in Phase.__members__.values() else None
        found[execution.id] = LiveIssue(phase=phase, review_rounds=attributes.get(sa.REVIEW_ROUNDS))
    return found
