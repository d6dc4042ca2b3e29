"""The line's status as operators see it: the line's own account, with the live phase of each
running issue.

An issue signals its line only for what the line acts on (a pause, a halt, its ship, a
back-off, its end); the progress in between (preparing, waiting for a slot, running the agent,
verifying) is kept in each issue's ``JidokaPhase`` search attribute, and the rework rounds of an
issue in review in its ``JidokaReviewRounds``. One visibility query for the whole line reads
both back, so ``jidoka line status`` and ``jidoka run`` show where each issue really is without
the line's history paying a signal for every step.

On a priced line (``pricing:`` in WORKFLOW.md) the same query reads each issue's money
(``JidokaCost``, with ``JidokaTokens``): of the running issues, and of every issue the line ever
ran, for the line's total.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle
from temporalio.service import RPCError, RPCStatusCode

from cli.money import DEFAULT_CURRENCY, total_text, visible_cost_text
from jidoka import search_attributes as sa
from jidoka.outcomes import Phase
from jidoka.payloads import LineStatus

ISSUE_WORKFLOW = "IssueWorkflow"


@dataclass(frozen=True)
class LiveIssue:
    """What visibility says of one running issue workflow."""

    phase: Phase | None = None
    review_rounds: int | None = None
    """Rework rounds sent after its ship; None until it first entered review."""
    cost: float | None = None
    """``JidokaCost``: the money its attempts of known cost spent; None when not set (a line
    without ``pricing:``)."""
    tokens: int = 0
    running: bool = True


@dataclass
class LineCost:
    """The line's money, summed over every issue it ran (as visibility holds them)."""

    currency: str
    known: float = 0.0
    unknown_issues: int = 0
    """Issues whose cost shows nothing known though they used tokens: the sum is a lower
    bound while any is."""

    def text(self) -> str:
        total = total_text(self.known, self.unknown_issues, self.currency) + " in total"
        if self.unknown_issues:
            total += f" ({self.unknown_issues} issue(s) of unknown cost)"
        return total


@dataclass
class LineView:
    """The line's ``status`` query with what visibility adds to it."""

    status: LineStatus
    review_rounds: dict[str, int] = field(default_factory=dict[str, int])
    """By workflow id: the rework rounds of each running issue that has entered review."""
    costs: dict[str, float | None] = field(default_factory=dict[str, float | None])
    """By workflow id, on a priced line: each running issue's ``JidokaCost`` (None: not set)."""
    cost: LineCost | None = None
    """On a priced line: its total. None on a line without prices (or when visibility did
    not answer)."""

    def cost_text(self, workflow_id: str, tokens: int, spent: bool) -> str:
        """A running issue's cost, for its row (``spent``: one of its attempts ended)."""
        currency = self.cost.currency if self.cost is not None else DEFAULT_CURRENCY
        return visible_cost_text(self.costs.get(workflow_id), tokens, spent, currency)

    def json(self) -> dict[str, Any]:
        """``status`` as JSON, each running issue (and its copy in the retry queue) with its
        ``review_rounds``: null when it never entered review, or visibility did not answer. On
        a priced line, each with its ``cost`` (the known part, null when not set) and the
        line's ``cost`` (``currency``, ``known``, ``unknown_issues``)."""
        data = self.status.model_dump(mode="json")
        for key in ("running", "retry_queue"):
            for entry in data[key]:
                entry["review_rounds"] = self.review_rounds.get(entry["workflow_id"])
                if self.cost is not None:
                    entry["cost"] = self.costs.get(entry["workflow_id"])
        if self.cost is not None:
            data["cost"] = {
                "currency": self.cost.currency,
                "known": round(self.cost.known, 9),
                "unknown_issues": self.cost.unknown_issues,
            }
        return data


async def read_line_status(client: Client, handle: WorkflowHandle[Any, Any]) -> LineStatus:
    """The line's ``status`` query with the live phases laid over it (see
    :func:`read_line_view`; no money read)."""
    return (await read_line_view(client, handle, priced=False)).status


async def read_line_view(
    client: Client,
    handle: WorkflowHandle[Any, Any],
    *,
    priced: bool | None = None,
    currency: str = DEFAULT_CURRENCY,
) -> LineView:
    """The line's ``status`` query with the live phases laid over it and the review rounds
    beside it, and on a priced line the money. Raises RPCError when the line cannot be
    queried; a visibility store that cannot answer only leaves the phases as the line last
    heard them (and no rounds, no money).

    ``priced``: whether the line has ``pricing:`` (from its WORKFLOW.md); None when the caller
    cannot tell (``--line NAME``): then an issue holding ``JidokaCost`` says so, and
    ``currency`` is a guess."""
    status = await handle.query("status", result_type=LineStatus)
    view = LineView(status)
    if status.line is None or (not status.running and priced is False):
        return view
    try:
        live = await live_issues(client, status.line, with_cost=priced is not False)
    except RPCError:
        return view
    running = {workflow_id: found for workflow_id, found in live.items() if found.running}
    view.review_rounds = {
        workflow_id: found.review_rounds
        for workflow_id, found in running.items()
        if found.review_rounds is not None
    }
    if priced or any(found.cost is not None for found in live.values()):
        view.cost = _line_cost(live, status, currency)
        view.costs = {workflow_id: found.cost for workflow_id, found in running.items()}
    for entry in status.running:
        phase = running.get(entry.workflow_id, LiveIssue()).phase
        # The line's own phase wins whenever it acts on it: the issue reports each move into
        # or out of such a phase, and visibility can lag behind a report.
        if phase is None or entry.phase.concerns_the_line or phase.concerns_the_line:
            continue
        entry.phase = phase
    return view


def _line_cost(live: dict[str, LiveIssue], status: LineStatus, currency: str) -> LineCost:
    """The sum of every run's ``JidokaCost``. A run that used tokens or ended an attempt with
    nothing known is counted as unknown; one whose known part hides an unknown one cannot be
    told apart here (its issue's ``jidoka issue status`` says)."""
    total = LineCost(currency=currency)
    ended_an_attempt = {e.workflow_id for e in status.running if e.last_outcome is not None}
    for key, issue in live.items():
        if issue.cost:
            total.known += issue.cost
        elif issue.tokens > 0 or (issue.running and key in ended_an_attempt):
            total.unknown_issues += 1
    return total


async def live_issues(
    client: Client, line: str, *, with_cost: bool = False
) -> dict[str, LiveIssue]:
    """The ``JidokaPhase`` and ``JidokaReviewRounds`` of each running issue workflow of
    ``line``, by workflow id: one visibility query. ``with_cost``: the same query also reads
    every issue workflow of the line that holds ``JidokaCost`` (closed ones too, for the
    line's total); a server without that attribute gets the query without it."""
    quoted = line.replace("\\", "\\\\").replace("'", "\\'")
    running = f"{sa.LINE.name} = '{quoted}' AND ExecutionStatus = 'Running'"
    if not with_cost:
        return await _list(client, running)
    try:
        return await _list(
            client,
            f"{sa.LINE.name} = '{quoted}' AND "
            f"(ExecutionStatus = 'Running' OR {sa.COST.name} IS NOT NULL)",
        )
    except RPCError as error:
        if error.status is not RPCStatusCode.INVALID_ARGUMENT:
            raise
        return await _list(client, running)  # JidokaCost is not registered there


async def _list(client: Client, query: str) -> dict[str, LiveIssue]:
    found: dict[str, LiveIssue] = {}
    async for execution in client.list_workflows(query):
        if execution.workflow_type != ISSUE_WORKFLOW:
            continue  # the line itself (its JidokaTokens are the fleet's)
        if execution.status is WorkflowExecutionStatus.CONTINUED_AS_NEW:
            continue  # its successor carries its counters on
        attributes = execution.typed_search_attributes
        value = attributes.get(sa.PHASE)
        phase = Phase(value) if value is not None and value in Phase.__members__.values() else None
        issue = LiveIssue(
            phase=phase,
            review_rounds=attributes.get(sa.REVIEW_ROUNDS),
            cost=attributes.get(sa.COST),
            tokens=attributes.get(sa.TOKENS) or 0,
            running=execution.status is WorkflowExecutionStatus.RUNNING,
        )
        # A workflow id names one issue; it runs again after its last run closed: one key per
        # run, so that every run's money counts once.
        key = execution.id if issue.running else f"{execution.id}/{execution.run_id}"
        found[key] = issue
    return found
