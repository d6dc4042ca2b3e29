"""What the chaos run (``bench/chaos.py``) builds and what it checks.

* The line: a WORKFLOW.md shaped like the tests' (``tests/support/linekit.base_front_matter``:
  a local board, the scripted agent, the origin's own unittest suite as ``verify``) with clocks
  loose enough for a loaded 2-core machine, each host's workspaces on its own disk
  (``$WORKSPACES``), and a board of issues of mixed scenarios.
* What each scenario must end as (:data:`MIX`), and the evidence read to decide it: the issue
  workflow's status, the board file (state and comments, each carrying its marker
  ``<!-- jidoka:<key> -->``) and the tracker transitions recorded in the workflow's history.
* :func:`judge`: lost (never settled), in the wrong state, or written twice.
"""

from __future__ import annotations

import asyncio
import random
import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.service import RPCError, RPCStatusCode

from jidoka.models import Issue
from jidoka.outcomes import HaltCategory, Outcome, Phase
from jidoka.payloads import IssueStatus, LineStatus
from runtime import history
from tests.support.git import make_origin
from tests.support.linekit import LineKit, base_front_matter, deep_merge

WORKING = "In Progress"
PAUSED = "Awaiting Answers"
DONE = "Done"

QUERY_TIMEOUT = timedelta(seconds=30)

SLOW_PACE_S = 2.0
"""Seconds between the scripted agent's steps on a slow issue (a ship takes ~4 steps)."""
PACE_S = 0.3
"""Seconds between steps on every other issue."""


# ---------------------------------------------------------------------------------------------
# Scenarios
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Scenario:
    name: str
    prefix: str
    """Identifiers are ``<prefix>-<n>``: the board and the report say what each issue plays."""
    agent: str
    """The scripted agent's scenario (activities/agent/scripted_agent.py)."""
    share: float
    halts: bool = False
    """Halts ``no_progress`` by design (the run resumes the line, the issue stays halted)."""
    asks: bool = False
    """Pauses for answers on its first attempt (the run answers), then ships."""

    @property
    def expected(self) -> str:
        if self.halts:
            return "halted no_progress, In Progress, one halt comment"
        if self.asks:
            return "paused, answered, shipped once, Done"
        return "shipped once, Done"


MIX: tuple[Scenario, ...] = (
    Scenario("ship", "SHIP", "ship", 0.45),
    Scenario("slow", "SLOW", "ship", 0.15),
    Scenario("fix", "FIX", "breaks-tests-then-fixes", 0.15),
    Scenario("ask", "ASK", "ask", 0.15, asks=True),
    Scenario("hallucinate", "HALL", "hallucinate", 0.10, halts=True),
)


def plan_issues(count: int, rng: random.Random) -> dict[str, Scenario]:
    """``count`` issues in :data:`MIX` proportions (the remainder ships), shuffled by ``rng``;
    identifier → scenario, in dispatch order."""
    scenarios: list[Scenario] = []
    for scenario in MIX[1:]:
        scenarios += [scenario] * int(count * scenario.share)
    scenarios += [MIX[0]] * (count - len(scenarios))
    rng.shuffle(scenarios)
    width = len(str(count))
    return {f"{s.prefix}-{n:0{width}d}": s for n, s in enumerate(scenarios, 1)}


# ---------------------------------------------------------------------------------------------
# The line
# ---------------------------------------------------------------------------------------------

AGENT_COMMAND = (
    'case "$JIDOKA_ISSUE" in SLOW-*) export JIDOKA_SCRIPTED_PACE={slow};; esac; '
    'exec "$JIDOKA_PYTHON" -m activities.agent.scripted_agent'
)


def front_matter(line: str, max_agents: int) -> dict[str, Any]:
    """The tests' line, with clocks for a loaded machine and a disk per host."""
    return deep_merge(
        base_front_matter(line),
        {
            "workspace": {"root": "$WORKSPACES"},
            "hooks": {"timeout_s": 120},
            "agent": {
                "command": AGENT_COMMAND.format(slow=SLOW_PACE_S),
                "env": {"JIDOKA_SCRIPTED_PACE": str(PACE_S)},
                "stall_timeout_s": 60,
                "silence_timeout_s": 60,
                "turn_timeout_s": 300,
            },
            "budgets": {"max_attempts": 2, "max_continuations": 1, "max_infra_failures": 5},
            "backoff": {"base_s": 1, "max_s": 2, "continuation_s": 0},
            "concurrency": {"max_agents": max_agents},
            "polling": {"interval_s": 2},
            "timeouts": {"heartbeat_s": 8, "host_start_s": 15},
        },
    )


def build_line(root: Path, line: str, plan: dict[str, Scenario], max_agents: int) -> LineKit:
    """WORKFLOW.md, the origin repository and the board, under ``root``."""
    kit = LineKit(root=root, line=line, front_matter=front_matter(line, max_agents))
    root.mkdir(parents=True)
    kit.board.mkdir()
    make_origin(kit.origin)
    kit.write()
    epoch = datetime(2026, 1, 1, tzinfo=UTC)
    for n, (identifier, scenario) in enumerate(plan.items()):
        created = (epoch + timedelta(seconds=n)).isoformat().replace("+00:00", "Z")
        kit.add_issue(
            identifier, scenario.agent, title=f"{scenario.name} #{n + 1}", created_at=created
        )
    return kit


# ---------------------------------------------------------------------------------------------
# Evidence
# ---------------------------------------------------------------------------------------------

_MARKER = re.compile(r"^<!-- jidoka:(.+) -->$", re.MULTILINE)
_KIND = re.compile(r"\*\*Jidoka: (\w+)")


@dataclass(frozen=True)
class BoardComments:
    markers: list[str]
    kinds: Counter[str]
    """Comments by kind: ``shipped``, ``paused``, ``answered``, ``halted``, ..."""

    @property
    def duplicate_markers(self) -> list[str]:
        return [m for m, n in Counter(self.markers).items() if n > 1]


def board_comments(text: str) -> BoardComments:
    if "\n## Comments" not in text:
        return BoardComments(markers=[], kinds=Counter())
    section = text.split("\n## Comments", 1)[1]
    markers: list[str] = []
    kinds: Counter[str] = Counter()
    for block in re.split(r"^### ", section, flags=re.MULTILINE)[1:]:
        marker = _MARKER.search(block)
        markers.append(marker.group(1) if marker else "(no marker)")
        kind = _KIND.search(block)
        kinds[kind.group(1) if kind else "other"] += 1
    return BoardComments(markers=markers, kinds=kinds)


@dataclass
class TrackerRecord:
    transitions: list[str]
    """Every tracker transition the issue workflow made, over all of its runs (continue-as-new
    included): a state written twice by the workflow shows twice here."""
    first_read_state: str | None
    """The state its first recorded read of the issue saw."""


async def tracker_record(client: Client, workflow_id: str) -> TrackerRecord:
    runs: list[list[history.Step]] = []
    run_id: str | None = None
    while True:
        handle = client.get_workflow_handle(workflow_id, run_id=run_id)
        events = [event async for event in handle.fetch_history_events()]
        previous = events[0].workflow_execution_started_event_attributes.continued_execution_run_id
        runs.insert(0, history.steps(events))
        if not previous:
            break
        run_id = previous
    steps = [step for run in runs for step in run]
    first_read: str | None = None
    for step in steps:
        if step.name == "tracker_fetch_issue" and step.result is not None:
            (issue,) = pydantic_data_converter.payload_converter.from_payloads(
                step.result.payloads, [Issue]
            )
            assert isinstance(issue, Issue)
            first_read = issue.state
            break
    return TrackerRecord(history.transition_targets(steps), first_read)


@dataclass
class IssueFacts:
    identifier: str
    scenario: Scenario
    workflow_id: str
    execution: str | None
    """The workflow's Temporal status (``running``, ``completed``...); None: never started."""
    status: IssueStatus | None
    board_state: str | None
    comments: BoardComments
    transitions: list[str]
    first_read_state: str | None
    line_view: str
    """``running/<phase>``, ``finished/<phase>`` or ``absent`` in the line's final status."""

    @property
    def asked(self) -> int:
        """Attempts that ended asking for answers."""
        if self.status is None:
            return 0
        return sum(1 for a in self.status.attempts if a.outcome is Outcome.AWAITING_ANSWERS)


def _execution_name(status: WorkflowExecutionStatus | None) -> str:
    return status.name.lower() if status is not None else "unknown"


async def gather_facts(
    client: Client, kit: LineKit, identifier: str, scenario: Scenario, line: LineStatus
) -> IssueFacts:
    workflow_id = kit.workflow_id(identifier)
    handle = client.get_workflow_handle(workflow_id)
    execution: str | None
    status: IssueStatus | None = None
    record = TrackerRecord([], None)
    try:
        execution = _execution_name((await handle.describe()).status)
    except RPCError as error:
        if error.status is not RPCStatusCode.NOT_FOUND:
            raise
        execution = None
    if execution is not None:
        try:
            status = await asyncio.wait_for(
                handle.query("status", result_type=IssueStatus, rpc_timeout=QUERY_TIMEOUT),
                QUERY_TIMEOUT.total_seconds() + 5,
            )
        except Exception as error:  # a closed workflow that cannot replay says so, below
            print(f"  {identifier}: status query failed: {error!r}")
        record = await tracker_record(client, workflow_id)
    text = kit.issue_text(identifier)
    board_state = kit.state_of(identifier)
    view = "absent"
    for entry in line.running:
        if entry.identifier == identifier:
            view = f"running/{entry.phase.value}"
    for item in line.finished:
        if item.identifier == identifier:
            view = f"finished/{item.phase.value}"
    return IssueFacts(
        identifier=identifier,
        scenario=scenario,
        workflow_id=workflow_id,
        execution=execution,
        status=status,
        board_state=board_state,
        comments=board_comments(text),
        transitions=record.transitions,
        first_read_state=record.first_read_state,
        line_view=view,
    )


# ---------------------------------------------------------------------------------------------
# The judgement
# ---------------------------------------------------------------------------------------------


@dataclass
class Judgement:
    identifier: str
    lost: str | None = None
    """Why the issue never settled (None when it did)."""
    wrong: list[str] = field(default_factory=list[str])
    duplicates: list[str] = field(default_factory=list[str])

    @property
    def ok(self) -> bool:
        return self.lost is None and not self.wrong and not self.duplicates


def _compare(what: str, found: Counter[str], expected: Counter[str], judgement: Judgement) -> None:
    """More of an expected kind is a duplicate; a kind not expected at all, or fewer than
    expected, is a wrong state."""
    for kind, count in sorted(found.items()):
        want = expected.get(kind, 0)
        if want and count > want:
            judgement.duplicates.append(f"{what} {kind!r} x{count} (expected {want})")
        elif not want:
            judgement.wrong.append(f"unexpected {what} {kind!r} x{count}")
    for kind, want in sorted(expected.items()):
        if want and found.get(kind, 0) < want:
            judgement.wrong.append(f"{what} {kind!r} x{found.get(kind, 0)} (expected {want})")


def judge(facts: IssueFacts) -> Judgement:
    judgement = Judgement(facts.identifier)
    status = facts.status
    if facts.execution is None:
        judgement.lost = "no issue workflow was ever started"
    elif facts.execution not in ("running", "completed"):
        judgement.lost = f"its workflow closed {facts.execution}, without a report"
    elif status is None:
        judgement.lost = f"its workflow ({facts.execution}) does not answer its status query"
    elif not status.phase.is_final and status.phase is not Phase.HALTED:
        judgement.lost = f"still {status.phase.value} (attempt {status.attempt})"
    if judgement.lost is not None or status is None:
        return judgement
    for marker in facts.comments.duplicate_markers:
        judgement.duplicates.append(f"comment marker written twice: {marker}")
    scenario = facts.scenario
    asked = facts.asked
    if scenario.halts:
        halt = status.halt
        if status.phase is not Phase.HALTED:
            judgement.wrong.append(f"phase {status.phase.value}, expected halted")
        elif halt is None or halt.category is not HaltCategory.NO_PROGRESS:
            judgement.wrong.append(
                f"halted {halt.category.value if halt else '?'}, expected no_progress"
            )
        want_board, want_view = WORKING, "running/halted"
        kinds = Counter({"halted": 1})
        moves = Counter({WORKING: 1})
    else:
        if status.phase is not Phase.SHIPPED:
            halt = status.halt
            why = f" ({halt.category.value}: {halt.reason[:200]})" if halt else ""
            judgement.wrong.append(f"phase {status.phase.value}{why}, expected shipped")
        elif status.ship is None:
            judgement.wrong.append("shipped without ship evidence")
        if asked > (1 if scenario.asks else 0):
            judgement.wrong.append(f"asked for answers {asked} time(s)")
        want_board, want_view = DONE, "finished/shipped"
        kinds = Counter({"shipped": 1, "paused": asked, "answered": asked})
        moves = Counter({WORKING: 1 + asked, PAUSED: asked, DONE: 1})
    if facts.first_read_state == WORKING:
        # The claim landed, but the workflow task that made it died with its worker before
        # recording it: the next worker ran that task again, read the issue already claimed
        # and wrote nothing (the board shows one claim, the history none).
        moves[WORKING] -= 1
    if facts.board_state != want_board:
        judgement.wrong.append(f"board state {facts.board_state!r}, expected {want_board!r}")
    if facts.line_view != want_view:
        judgement.wrong.append(f"the line shows it {facts.line_view}, expected {want_view}")
    _compare("comment", facts.comments.kinds, kinds, judgement)
    _compare("transition to", Counter(facts.transitions), moves, judgement)
    return judgement


def describe_attempts(status: IssueStatus | None) -> str:
    """One line: each attempt's outcome and host, then the counters."""
    if status is None:
        return "(no status)"
    attempts = ", ".join(
        f"#{a.number} {a.outcome.value if a.outcome else '…'}@{a.host_queue or '?'}"
        for a in status.attempts
    )
    c = status.counters
    return (
        f"phase {status.phase.value}; attempts [{attempts}]; failures {c.failures}, "
        f"infra {c.infra_failures}, continuations {c.continuations}"
    )
