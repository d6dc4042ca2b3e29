"""The line's status as operators see it: the line's own account, with the live phase of each
running issue.

An issue signals its line only for what the line acts on (a pause, a halt, its ship, a
back-off, its end); the progress in between (preparing, waiting for a slot, running the agent,
verifying) is kept in each issue's ``JidokaPhase`` search attribute. One visibility query for
the whole line reads it back, so ``jidoka line status`` and ``jidoka run`` show where each issue
really is without the line's history paying a signal for every step.
"""

from __future__ import annotations

from temporalio.client import Client, WorkflowHandle
from temporalio.service import RPCError

from jidoka import search_attributes as sa
from jidoka.outcomes import Phase
from jidoka.payloads import LineStatus


async def read_line_status(client: Client, handle: WorkflowHandle[object, object]) -> LineStatus:
    """The line's ``status`` query with the live phases laid over it. Raises RPCError when the
    line cannot be queried; a visibility store that cannot answer only leaves the phases as
    the line last heard them."""
    status = await handle.query("status", result_type=LineStatus)
    if not status.running or status.line is None:
        return status
    try:
        live = await live_phases(client, status.line)
    except RPCError:
        return status
    for entry in status.running:
        phase = live.get(entry.workflow_id)
        # The line's own phase wins whenever it acts on it: the issue reports each move into
        # or out of such a phase, and visibility can lag behind a report.
        if phase is None or entry.phase.concerns_the_line or phase.concerns_the_line:
            continue
        entry.phase = phase
    return status


async def live_phases(client: Client, line: str) -> dict[str, Phase]:
    """The ``JidokaPhase`` of each running issue workflow of ``line``, by workflow id."""
    quoted = line.replace("\\", "\\\\").replace("'", "\\'")
    query = f"{sa.LINE.name} = '{quoted}' AND ExecutionStatus = 'Running'"
    phases: dict[str, Phase] = {}
    async for found in client.list_workflows(query):
        value = found.typed_search_attributes.get(sa.PHASE)
        if value is not None and value in Phase.__members__.values():
            phases[found.id] = Phase(value)
    return phases
