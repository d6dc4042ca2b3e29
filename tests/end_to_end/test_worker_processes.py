"""Workers as real OS processes, killed the way hosts die: SIGKILL, SIGTERM, a lost host.

Everything is real: the session's dev server, ``jidoka worker`` processes started from the
installed console script (configured only by ``TEMPORAL_*`` and ``JIDOKA_*`` variables, as in a
deployment), git repositories, the scripted agent as a subprocess in its own process group, and
the local board on disk. Nothing is mocked; survivors are looked for in ``/proc``.

What is proven:

* a worker SIGKILLed while its agent runs: the attempt ends ``worker_lost`` through the
  heartbeat timeout (one failure charged), the agent it left behind is reaped by the restarted
  worker of the same host before the next attempt, which ships; Done once, one ship comment;
* three workers drain one board while the host of a running agent is SIGKILLed for good: the
  issue moves to another host (the lost host's queue times out, ``claim_host`` picks a live
  one, which prepares a fresh workspace from the base because nothing was pushed), every issue
  ends where its scenario says, and no tracker transition or comment is written twice;
* SIGTERM with a short ``JIDOKA_SHUTDOWN_GRACE_S``: the worker exits, the agent's whole process
  group (a grandchild ``sleep`` included) is gone, and the attempt is recorded as
  ``worker_shutdown`` → ``worker_lost`` rather than vanishing;
* a workspace preparation slower than ``timeouts.heartbeat_s`` runs once: a live worker
  heartbeats, so the server neither times it out nor starts a second one beside it;
* ``JIDOKA_METRICS_BIND`` serves the Temporal SDK's metrics in Prometheus text on ``/metrics``.

Invariant checked wherever something shipped: a ship comment means the pushed work branch holds
commits beyond the base and a non-empty diff.
"""

from __future__ import annotations

import asyncio
import re
import urllib.request
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest
from temporalio.api.common.v1 import Payloads
from temporalio.client import Client, WorkflowHandle
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.service import RPCError, RPCStatusCode

from activities.agent.transcript import transcript_path
from jidoka.keys import line_workflow_id, workspace_key
from jidoka.models import AgentRunResult, ShipEvidence
from jidoka.outcomes import AgentStop, HaltCategory, Outcome, Phase
from jidoka.payloads import (
    IssueResult,
    IssueStatus,
    IssueWorkflowInput,
    LineWorkflowInput,
    ResumeRequest,
    ResumeResult,
)
from runtime import history
from runtime.history import Step, steps
from tests.support.git import run_git
from tests.support.linekit import LineKit, eventually, issue_status, line_status, make_line
from tests.support.ports import free_port
from tests.support.workerproc import (
    ProcInfo,
    WorkerFleet,
    group_members,
    live_processes,
    recorded_agent_group,
    tagged,
    wait_group_gone,
    worker_fleet,
)
from workflows.issue import IssueWorkflow
from workflows.line import LineWorkflow

pytestmark = pytest.mark.slow

T = TypeVar("T")

DEADLINE_S = 90.0
"""Generous upper bounds for polls: they fail a test that hangs, they never time a run."""

SLOW_PACE_S = 600
"""Seconds the scripted agent sleeps after its first progress event on a slowed attempt: far
longer than any test, so an agent that is gone was killed, not finished."""

LOSS_TIMEOUTS = {"heartbeat_s": 4, "host_start_s": 3}
"""A lost worker is noticed within seconds (the supervisor heartbeats every 2 s). A live host
picks a task up in milliseconds (64 activity slots); a lost host's queue is given up after
``host_start_s``, twice on the way to another host (result recovery, then the next attempt)."""

PATIENT_AGENT = {"stall_timeout_s": 120, "silence_timeout_s": 120, "turn_timeout_s": 300}
"""Clocks that never fire during a test: the agent ends because of the worker, not a clock."""


def slowed_first_attempt(identifier: str) -> str:
    """The scripted agent, paced to a crawl on ``identifier``'s first attempt only."""
    return (
        f'if [ "$JIDOKA_ISSUE" = "{identifier}" ] && [ "$JIDOKA_ATTEMPT" = 1 ]; then '
        f"export JIDOKA_SCRIPTED_PACE={SLOW_PACE_S}; fi; "
        'exec "$JIDOKA_PYTHON" -m activities.agent.scripted_agent'
    )


def host_name(role: str) -> str:
    return f"{role}-{uuid.uuid4().hex[:6]}"


# ---------------------------------------------------------------------------------------------
# Polling and reading
# ---------------------------------------------------------------------------------------------


async def poll(
    probe: Callable[[], Awaitable[T]],
    accept: Callable[[T], bool],
    *,
    what: str,
    timeout: float = DEADLINE_S,
) -> T:
    """Poll until ``accept`` holds. A query may fail for a moment while a dead worker's
    sticky queue is given up; that is retried, and shown if the deadline passes."""
    return await eventually(probe, accept, timeout=timeout, what=what, any_rpc_error=True)


async def settled_status(handle: WorkflowHandle[Any, Any]) -> IssueStatus:
    """``status`` of a workflow at rest, retried while a dead worker's sticky queue is given up."""
    return await poll(lambda: issue_status(handle), lambda _: True, what="a status answer")


async def running_agent(workspace: Path, attempt: int = 1) -> int:
    """The process group of the scripted agent running in ``workspace``, once its first
    progress event is in the attempt's transcript: past that line a slowed agent sleeps, so
    from then on only a kill ends it (earlier, a dead worker's closed pipe could)."""
    transcript = transcript_path(workspace, attempt)

    async def probe() -> list[ProcInfo]:
        pgid = recorded_agent_group(workspace)
        if pgid is None or not transcript.is_file():
            return []
        if '"kind": "progress"' not in transcript.read_text(errors="replace"):
            return []
        return group_members(pgid)

    members = await poll(
        probe,
        lambda procs: any("activities.agent.scripted_agent" in p.cmdline for p in procs),
        what=f"a scripted agent at work in {workspace}",
    )
    return members[0].pgid


@dataclass(frozen=True)
class BoardComment:
    marker: str
    body: str


def board_comments(kit: LineKit, identifier: str) -> list[BoardComment]:
    """The comments the line wrote on one issue file, in order."""
    text = kit.issue_text(identifier)
    if "\n## Comments" not in text:
        return []
    section = text.split("\n## Comments", 1)[1]
    found: list[BoardComment] = []
    for block in re.split(r"^### ", section, flags=re.MULTILINE)[1:]:
        lines = block.splitlines()
        marker = re.fullmatch(r"<!-- jidoka:(.+) -->", lines[1].strip()) if len(lines) > 1 else None
        assert marker is not None, f"a comment without a marker on {identifier}: {block!r}"
        found.append(BoardComment(marker=marker.group(1), body="\n".join(lines[2:])))
    return found


def comment_kinds(kit: LineKit, identifier: str) -> Counter[str]:
    """How many comments of each kind (``shipped``, ``halted``, ``paused``...) an issue got,
    after checking that no comment was written twice."""
    comments = board_comments(kit, identifier)
    markers = [c.marker for c in comments]
    assert len(markers) == len(set(markers)), f"{identifier}: a comment written twice: {markers}"
    kinds: Counter[str] = Counter()
    for comment in comments:
        kind = re.search(r"\*\*Jidoka: (\w+)\*\*", comment.body)
        kinds[kind.group(1) if kind else "other"] += 1
    return kinds


async def activity_runs(handle: WorkflowHandle[Any, Any], name: str) -> list[Step]:
    """Each ``name`` activity of the workflow as its history records it (retries included)."""
    events = [event async for event in handle.fetch_history_events()]
    return [step for step in steps(events) if step.name == name]


def decode(payloads: Payloads, kind: type[T]) -> T:
    (value,) = pydantic_data_converter.payload_converter.from_payloads(payloads.payloads, [kind])
    assert isinstance(value, kind)
    return value


async def transition_targets(handle: WorkflowHandle[Any, Any]) -> list[str]:
    """Every tracker transition the issue workflow asked for, from its history."""
    events = [event async for event in handle.fetch_history_events()]
    return history.transition_targets(history.steps(events))


async def agent_results(handle: WorkflowHandle[Any, Any]) -> list[AgentRunResult]:
    """What each ``run_agent`` activity returned, as recorded in the history."""
    runs = await activity_runs(handle, "run_agent")
    return [decode(run.result, AgentRunResult) for run in runs if run.result is not None]


def assert_shipped_work_is_real(kit: LineKit, identifier: str, ship: ShipEvidence | None) -> None:
    """A ship comment ⇒ the work branch, as pushed to origin, is ahead of the base with a
    non-empty diff (checked in the origin repository, not trusted from the payload)."""
    assert ship is not None, f"{identifier} shipped without ship evidence"
    branch = f"jidoka/{workspace_key(identifier)}"
    ahead = int(run_git(kit.origin, "rev-list", "--count", f"{ship.base_sha}..{branch}"))
    assert ahead >= 1, f"{identifier}: shipped with no commit beyond the base"
    changed = run_git(kit.origin, "diff", "--name-only", ship.base_sha, branch)
    assert [name for name in changed.splitlines() if not name.startswith(".jidoka/")], (
        f"{identifier}: shipped with an empty diff"
    )
    assert run_git(kit.origin, "rev-parse", branch) == ship.head_sha


def assert_shipped_once(kit: LineKit, identifier: str, ship: ShipEvidence | None) -> None:
    assert kit.state_of(identifier) == "Done"
    assert comment_kinds(kit, identifier)["shipped"] == 1
    assert_shipped_work_is_real(kit, identifier, ship)


async def start_issue(
    client: Client, fleet: WorkerFleet, kit: LineKit, identifier: str
) -> WorkflowHandle[IssueWorkflow, IssueResult]:
    return await client.start_workflow(
        IssueWorkflow.run,
        IssueWorkflowInput(workflow_path=str(kit.workflow_md), issue_id=identifier),
        id=kit.workflow_id(identifier),
        task_queue=fleet.task_queue,
    )


# ---------------------------------------------------------------------------------------------
# 1. SIGKILL mid-agent, restart on the same host
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("sandbox", ["bwrap", "none"])
async def test_a_sigkilled_worker_is_worker_lost_and_its_restart_reaps_the_agent_then_ships_once(
    client: Client, tmp_path: Path, sandbox: str
) -> None:
    kit = make_line(
        tmp_path,
        {
            "agent": {**PATIENT_AGENT, "command": slowed_first_attempt("K-1")},
            "timeouts": LOSS_TIMEOUTS,
            "sandbox": {"mode": sandbox},
        },
    )
    kit.add_issue("K-1", "ship")
    host = host_name("crash")
    async with worker_fleet(client, tmp_path / "logs") as fleet:
        first = await fleet.start(host)
        handle = await start_issue(client, fleet, kit, "K-1")
        pgid = await running_agent(kit.workspace("K-1"))
        status = await issue_status(handle)
        assert status.phase is Phase.RUNNING_AGENT and status.host_queue == first.queue

        first.sigkill()
        if sandbox == "bwrap":
            # Sandboxed, the agent ends with the worker that started it, group and all.
            await wait_group_gone(pgid)
        else:
            # Unsandboxed, it runs in its own group and outlives the worker.
            assert group_members(pgid), "the agent died with its worker: nothing left to reap"

        second = await fleet.start(host)
        result = await asyncio.wait_for(handle.result(), DEADLINE_S)
        status = await settled_status(handle)
        reaped_log = second.log()

    assert result.phase is Phase.SHIPPED and result.outcome is Outcome.SHIPPED
    assert [a.outcome for a in status.attempts] == [Outcome.WORKER_LOST, Outcome.SHIPPED]
    lost = status.attempts[0]
    assert "heartbeat" in lost.agent_detail.lower(), lost.agent_detail
    assert lost.agent_stop is None  # the worker never reported: the server's timeout did
    # The lost host is the infrastructure's doing: the agent keeps all of its attempts.
    assert status.counters.infra_failures == 1 and status.counters.failures == 0
    assert status.counters.attempts == 2
    # Same host both times: the workspace stayed on its disk and the restarted worker reused it.
    assert {a.host_queue for a in status.attempts} == {first.queue}
    assert status.workspace_path == str(kit.workspace("K-1"))
    assert group_members(pgid) == []
    if sandbox == "none":
        # The orphan was reaped by prepare_workspace of attempt 2, long before it could finish.
        assert f"killed agent group {pgid}" in reaped_log
    assert_shipped_once(kit, "K-1", result.ship)
    assert await transition_targets(handle) == ["In Progress", "Done"]


# ---------------------------------------------------------------------------------------------
# 2. Three workers, one SIGKILLed for good
# ---------------------------------------------------------------------------------------------

GROUP_A = {
    "A-1": "ship",
    "A-2": "ship",
    "A-3": "hallucinate",
    "A-4": "ask",
    "A-5": "breaks-tests-then-fixes",
}
"""Dispatched with S-1 and settled before its host dies."""
GROUP_B = ("B-1", "B-2")
"""Blocked by S-1 (``blocked_by``): dispatched only once S-1 ships, so they drain on the two
workers left."""
SHIPPING = ("S-1", "A-1", "A-2", "A-5", *GROUP_B)


async def pending_activities(handle: WorkflowHandle[Any, Any]) -> list[str]:
    """The activities a workflow waits on; none for a workflow not started yet."""
    try:
        described = await handle.describe()
    except RPCError as error:
        if error.status is RPCStatusCode.NOT_FOUND:
            return []
        raise
    return [a.activity_type.name for a in described.raw_description.pending_activities]


async def test_three_workers_drain_a_board_while_the_host_of_a_running_agent_is_sigkilled(
    client: Client, tmp_path: Path
) -> None:
    kit = make_line(
        tmp_path,
        {
            # Each worker keeps its workspaces on its own disk: $WORKSPACES differs per host.
            "workspace": {"root": "$WORKSPACES"},
            "agent": {**PATIENT_AGENT, "command": slowed_first_attempt("S-1")},
            "timeouts": LOSS_TIMEOUTS,
            "concurrency": {"max_agents": 8},
            # Dispatch happens on start, on resume and when an issue finishes; a slow tick
            # keeps the line's own activities out of the moment the host is killed.
            "polling": {"interval_s": 5},
        },
    )
    kit.add_issue("S-1", "ship", priority=1)
    for identifier, scenario in GROUP_A.items():
        kit.add_issue(identifier, scenario, priority=2)
    for identifier in GROUP_B:
        kit.add_issue(identifier, "ship", priority=3, blocked_by=["S-1"])
    roots = {role: tmp_path / f"disk-{role}" for role in ("a", "b", "c")}
    async with worker_fleet(client, tmp_path / "logs") as fleet:
        workers = await asyncio.gather(
            *(
                fleet.start(
                    host_name(f"scale-{role}"),
                    {"WORKSPACES": str(root), "JIDOKA_MAX_AGENTS": "3"},
                )
                for role, root in roots.items()
            )
        )
        root_of = {w.queue: root for w, root in zip(workers, roots.values(), strict=True)}
        line = await client.start_workflow(
            LineWorkflow.run,
            LineWorkflowInput(workflow_path=str(kit.workflow_md)),
            id=line_workflow_id(kit.line),
            task_queue=fleet.task_queue,
        )
        issues = {
            identifier: client.get_workflow_handle(kit.workflow_id(identifier))
            for identifier in ("S-1", *GROUP_A, *GROUP_B)
        }

        # The hallucinating agent pulls the cord; an operator resumes the line with a cause.
        halted = await poll(lambda: line_status(line), lambda s: s.halted, what="line halted")
        assert [(h.issue_identifier, h.category) for h in halted.open_halts] == [
            ("A-3", HaltCategory.NO_PROGRESS)
        ]
        resumed = await line.execute_update(
            "resume",
            ResumeRequest(root_cause="agent claimed success without commits", operator="ops"),
            result_type=ResumeResult,
        )
        assert isinstance(resumed, ResumeResult) and resumed.accepted

        # Group A settles while S-1's agent crawls on whichever host claimed it.
        settled = {
            "A-1": Phase.SHIPPED,
            "A-2": Phase.SHIPPED,
            "A-3": Phase.HALTED,
            "A-4": Phase.PAUSED,
            "A-5": Phase.SHIPPED,
            "S-1": Phase.RUNNING_AGENT,
        }

        async def phases() -> dict[str, Phase]:
            return {i: (await issue_status(issues[i])).phase for i in settled}

        await poll(phases, lambda p: p == settled, what="group A settled, S-1 running")
        assert [kit.state_of(i) for i in GROUP_B] == ["Todo", "Todo"]  # blocked by S-1
        s1_host = (await issue_status(issues["S-1"])).host_queue
        (victim,) = [w for w in workers if w.queue == s1_host]
        survivors = [w for w in workers if w is not victim]
        old_workspace = root_of[victim.queue] / workspace_key("S-1")
        await running_agent(old_workspace)

        # Kill it when S-1's agent is the only work in flight anywhere, so what is lost is
        # exactly one agent run (no tracker write or evidence collection cut in half).
        async def in_flight() -> list[str]:
            names = await pending_activities(line)
            for handle in issues.values():
                names += await pending_activities(handle)
            return names

        await poll(in_flight, lambda names: names == ["run_agent"], what="only S-1's agent busy")
        victim.sigkill()

        await poll(
            lambda: line_status(line),
            lambda s: set(SHIPPING) <= {f.identifier for f in s.finished},
            what="S-1 and the issues it blocked finished",
        )
        results: dict[str, IssueResult] = {}
        for identifier in SHIPPING:
            typed = client.get_workflow_handle_for(IssueWorkflow.run, kit.workflow_id(identifier))
            results[identifier] = await asyncio.wait_for(typed.result(), DEADLINE_S)
        statuses = {i: await settled_status(h) for i, h in issues.items()}
        targets = {i: await transition_targets(h) for i, h in issues.items()}
        final_line = await line_status(line)
        for handle in (line, issues["A-3"], issues["A-4"]):
            await handle.terminate("test done")

    # Every issue ended where its scenario says, on the tracker and in its workflow.
    for identifier in SHIPPING:
        assert results[identifier].phase is Phase.SHIPPED, identifier
        assert_shipped_once(kit, identifier, results[identifier].ship)
        assert comment_kinds(kit, identifier) == Counter({"shipped": 1}), identifier
        assert targets[identifier] == ["In Progress", "Done"], identifier
    assert statuses["A-3"].phase is Phase.HALTED and kit.state_of("A-3") == "In Progress"
    assert comment_kinds(kit, "A-3") == Counter({"halted": 1})
    assert targets["A-3"] == ["In Progress"]
    assert statuses["A-4"].phase is Phase.PAUSED and kit.state_of("A-4") == "Awaiting Answers"
    assert comment_kinds(kit, "A-4") == Counter({"paused": 1})
    assert targets["A-4"] == ["In Progress", "Awaiting Answers"]
    assert not final_line.halted and not final_line.open_halts

    # S-1 lost its host once, then moved: a fresh workspace on a live host, from the base
    # (nothing had been pushed), and its work shipped from there.
    s1 = statuses["S-1"]
    assert [a.outcome for a in s1.attempts] == [Outcome.WORKER_LOST, Outcome.SHIPPED]
    assert s1.attempts[0].host_queue == victim.queue
    new_host = s1.attempts[1].host_queue
    assert new_host in {w.queue for w in survivors}
    assert s1.counters.infra_failures == 1 and s1.counters.failures == 0
    assert s1.workspace_path == str(root_of[new_host] / workspace_key("S-1"))
    assert old_workspace.is_dir()  # the lost host's disk is not touched from elsewhere
    ship = results["S-1"].ship
    assert ship is not None and ship.commits_ahead == 1
    assert run_git(kit.origin, "rev-parse", "jidoka/S-1~1") == ship.base_sha
    # Only S-1 was charged for the lost host; B-1 and B-2 ran on the survivors.
    for identifier, status in statuses.items():
        if identifier != "S-1":
            assert status.counters.infra_failures == 0, identifier
    for identifier in GROUP_B:
        assert {a.host_queue for a in statuses[identifier].attempts} <= {w.queue for w in survivors}


# ---------------------------------------------------------------------------------------------
# 3. SIGTERM
# ---------------------------------------------------------------------------------------------


async def test_sigterm_kills_the_agents_whole_group_after_the_grace_and_records_the_attempt(
    client: Client, tmp_path: Path
) -> None:
    kit = make_line(tmp_path, {"agent": PATIENT_AGENT, "timeouts": LOSS_TIMEOUTS})
    kit.add_issue("G-1", "spawn-and-stall")
    workspace = kit.workspace("G-1")
    async with worker_fleet(client, tmp_path / "logs") as fleet:
        first = await fleet.start(host_name("term"), {"JIDOKA_SHUTDOWN_GRACE_S": "2"})
        handle = await start_issue(client, fleet, kit, "G-1")
        pgid = await running_agent(workspace)

        async def members() -> list[ProcInfo]:
            return group_members(pgid)

        group = await poll(
            members,
            lambda procs: any(p.cmdline == ("sleep", "1000") for p in procs),
            what="the agent's grandchild sleep",
        )
        (helper,) = [p for p in group if p.cmdline == ("sleep", "1000")]
        parents = {p.pid: p.ppid for p in live_processes()}
        chain = [helper.pid]
        while chain[-1] in parents and chain[-1] != pgid:
            chain.append(parents[chain[-1]])
        assert chain[-1] == pgid, chain  # started by the agent (in its sandbox), not the worker

        first.sigterm()
        code = await first.exit_code(DEADLINE_S)
        log = first.log()
        # Nothing the worker started outlives it: not the agent, not its grandchild.
        assert group_members(pgid) == [], log
        assert helper.pid not in {p.pid for p in live_processes()}, log

        async def leftovers() -> list[ProcInfo]:
            return tagged(fleet.tag)

        await poll(leftovers, lambda procs: procs == [], what="no process of the worker", timeout=5)
        assert recorded_agent_group(workspace) is None
        assert code == 0, log
        assert "stopping; agents get 2s to finish" in log
        # The dying worker still reported the attempt: its result is in the history.
        assert [r.stop for r in await agent_results(handle)] == [AgentStop.WORKER_SHUTDOWN]

        # Another host carries the workflow on: the attempt is a lost worker, charged once.
        await fleet.start(host_name("next"))
        status = await poll(
            lambda: issue_status(handle), lambda s: bool(s.attempts), what="attempt 1 recorded"
        )
        await handle.terminate("test done")
    first_attempt = status.attempts[0]
    assert first_attempt.outcome is Outcome.WORKER_LOST
    assert first_attempt.agent_stop is AgentStop.WORKER_SHUTDOWN
    assert first_attempt.host_queue == first.queue
    assert status.counters.infra_failures == 1 and status.counters.failures == 0
    assert kit.state_of("G-1") == "In Progress"
    assert comment_kinds(kit, "G-1")["shipped"] == 0


# ---------------------------------------------------------------------------------------------
# A live worker that is slow is not a lost one
# ---------------------------------------------------------------------------------------------


async def test_a_slow_workspace_preparation_is_not_mistaken_for_a_lost_worker(
    client: Client, tmp_path: Path
) -> None:
    """Preparing a workspace may outlast ``timeouts.heartbeat_s`` (a large clone, a slow
    disk). The worker is alive all along: the server must not time the preparation out and
    start a second one next to it in the same workspace."""
    slow_s = LOSS_TIMEOUTS["heartbeat_s"] + 2
    # Preparing takes its time on this host: the workspace's after_create hook (run inside
    # the preparation, like a large clone or a dependency install) outlasts the heartbeat
    # timeout. (Git hooks cannot slow it: Jidoka runs git with hooks off.)
    kit = make_line(
        tmp_path,
        {"timeouts": LOSS_TIMEOUTS, "hooks": {"after_create": f"sleep {slow_s}"}},
    )
    kit.add_issue("P-1", "ship")
    async with worker_fleet(client, tmp_path / "logs") as fleet:
        await fleet.start(host_name("slow"))
        handle = await start_issue(client, fleet, kit, "P-1")
        result = await asyncio.wait_for(handle.result(), DEADLINE_S)
        status = await settled_status(handle)
        prepares = await activity_runs(handle, "prepare_workspace")
        prepare_tries = [r.tries for r in prepares]
    # The premise holds: the one preparation lasted past the heartbeat timeout.
    (prepare,) = prepares
    assert prepare.started_at is not None and prepare.ended_at is not None
    assert (prepare.ended_at - prepare.started_at).total_seconds() >= slow_s
    assert prepare_tries == [1], "a live worker's preparation was timed out and run again"
    assert [a.outcome for a in status.attempts] == [Outcome.SHIPPED]
    assert status.counters.failures == 0
    assert result.phase is Phase.SHIPPED
    assert_shipped_once(kit, "P-1", result.ship)


# ---------------------------------------------------------------------------------------------
# 4. Metrics
# ---------------------------------------------------------------------------------------------


def fetch_metrics(url: str) -> tuple[int, str, str]:
    with urllib.request.urlopen(url, timeout=10) as response:
        return (
            int(response.status),
            str(response.headers.get("Content-Type", "")),
            response.read().decode(),
        )


_SAMPLE = re.compile(r"^([A-Za-z_:][A-Za-z0-9_:]*)(?:\{(.*)\})?\s+(\S+)$")
_LABEL = re.compile(r'([A-Za-z_][A-Za-z0-9_]*)="((?:[^"\\]|\\.)*)"')


def metric(text: str, name: str, **labels: str) -> float | None:
    """The sum of the samples of ``name`` whose labels include ``labels`` (Prometheus text
    exposition format), None when there is none."""
    total: float | None = None
    for line in text.splitlines():
        match = _SAMPLE.match(line)
        if match is None or match.group(1) != name:
            continue
        found = dict(_LABEL.findall(match.group(2) or ""))
        if all(found.get(key) == value for key, value in labels.items()):
            total = (total or 0.0) + float(match.group(3))
    return total


async def test_the_metrics_endpoint_serves_temporal_sdk_metrics_after_work(
    client: Client, tmp_path: Path
) -> None:
    kit = make_line(tmp_path)
    kit.add_issue("M-1", "ship")
    port = free_port()
    async with worker_fleet(client, tmp_path / "logs") as fleet:
        worker = await fleet.start(
            host_name("metrics"), {"JIDOKA_METRICS_BIND": f"127.0.0.1:{port}"}
        )
        assert f"metrics on http://127.0.0.1:{port}/metrics" in worker.log()
        handle = await start_issue(client, fleet, kit, "M-1")
        result = await asyncio.wait_for(handle.result(), DEADLINE_S)
        code, content_type, text = await asyncio.to_thread(
            fetch_metrics, f"http://127.0.0.1:{port}/metrics"
        )
    assert result.phase is Phase.SHIPPED
    assert code == 200 and content_type.startswith("text/plain"), content_type
    assert "# TYPE temporal_workflow_completed counter" in text
    # The work this worker did, counted under both of its queues.
    shared, pinned = fleet.task_queue, worker.queue
    assert metric(text, "temporal_workflow_completed", task_queue=shared) == 1
    assert (
        metric(
            text,
            "temporal_activity_execution_latency_count",
            task_queue=pinned,
            activity_type="run_agent",
        )
        == 1
    )
    # The tracker calls run as local activities of the workflow, on the shared queue.
    assert (
        metric(
            text,
            "temporal_local_activity_execution_latency_count",
            task_queue=shared,
            activity_type="tracker_transition",
        )
        or 0
    ) >= 2  # claimed, then shipped
    assert metric(text, "temporal_worker_task_slots_available", task_queue=pinned) is not None
