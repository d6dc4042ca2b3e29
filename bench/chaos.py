"""Chaos run: nothing is lost when processes die.

A real deployment in miniature, all on this machine: the embedded Temporal dev server as its own
process (SQLite file), ``--workers`` real ``jidoka worker`` processes (each its own
``JIDOKA_HOST_ID``, disk for workspaces and ``JIDOKA_STATE_DIR``, one shared task queue), and
one line on a local board of ``--issues`` issues played by the scripted agent: ``ship``, a slow
ship, ``breaks-tests-then-fixes``, ``ask`` (this run answers it, as ``jidoka issue answer``
does) and ``hallucinate`` (halts ``no_progress`` by design; this run resumes the line with a
root cause, as ``jidoka run --resume-with`` does, and the issue stays halted).

At seeded random moments (when a seeded share of the issues has settled) it SIGKILLs a worker
process ``--worker-kills`` times, preferring one with an agent at work, and restarts it: the
1st, 3rd, 5th... under the same host id (its workspaces are still on its disk), the 2nd, 4th...
under a new host id with a new disk (the issues pinned to the dead host must move). Once, it
SIGKILLs the server's process group and starts it again on the same database, after a seeded 1
to 4 s or ``--server-outage-s`` (``--server-outage-s 45``: a 45 s outage, during which agents
keep working and their hosts keep trying to report). After each kill it
measures the recovery: the time until the line's ``status`` query answers again and an issue
makes progress (and, apart, until every issue stranded on the dead host has moved on).

At the end it checks, and prints one machine-readable last line (even when a target is missed;
exit code 1 when one is)::

    lost=… wrong_state=… duplicates=… leftovers=… phantoms=… worker_kills=… server_kills=…
    recovery_p50_s=… recovery_max_s=… infra_attempts=… agent_failures=… issues=… wall_s=…

* ``lost``: issues that never settled (still working, paused or queued at the deadline, never
  started, or their workflow closed without a report);
* ``wrong_state``: settled, but not where the scenario says (ship-like: shipped, Done, one ship
  comment; ask: paused, answered, shipped; hallucinate: halted ``no_progress``, In Progress), or
  the line's status disagreeing, or a ship comment whose proof does not hold in the origin;
* ``duplicates``: a comment marker (``<!-- jidoka:…:key -->``) written twice, more comments of
  a kind than the scenario writes (two "shipped"), or more tracker transitions in the history;
* ``leftovers``: processes carrying this run's tag (workers pass it down, the sandbox lets it
  through ``sandbox.pass_env``) still alive once the line has settled, other than the workers;
* ``phantoms``: ``running`` entries of the line whose issue workflow is closed;
* ``infra_attempts`` / ``agent_failures``: the issues' ``counters.infra_failures`` and
  ``counters.failures`` summed (kills must be charged to the infrastructure, never the agent).

Targets: 0 lost, 0 wrong_state, 0 duplicates, 0 leftovers, 0 phantoms, and every planned kill
done. Everything it started (server, workers, agents) is killed on the way out, error or not.

Usage: ``make chaos``, or
``.venv/bin/python bench/chaos.py [--issues 100] [--workers 3] [--worker-kills 5] [--seed 1]``
The scratch folder (board, origin, worker logs, the server's database) is removed after a run
that meets every target and kept otherwise, or with ``--keep``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import shutil
import signal
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import TypeVar

from temporalio.client import (
    Client,
    WorkflowHandle,
    WorkflowQueryFailedError,
)
from temporalio.service import RPCError

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.chaos_support import (  # noqa: E402
    MIX,
    IssueFacts,
    Judgement,
    Scenario,
    build_line,
    describe_attempts,
    gather_facts,
    judge,
    plan_issues,
)
from jidoka.keys import line_workflow_id  # noqa: E402
from jidoka.outcomes import HaltCategory, Outcome, Phase  # noqa: E402
from jidoka.payloads import (  # noqa: E402
    AnswerRequest,
    IssueStatus,
    LineStatus,
    LineWorkflowInput,
    ResumeRequest,
)
from runtime.devserver import (  # noqa: E402
    DevServerSettings,
    RunningDevServer,
    connect_when_ready,
    start_dev_server,
    stop_dev_server,
)
from tests.support.linekit import LineKit, unproven_ships  # noqa: E402
from tests.support.ports import free_port  # noqa: E402
from tests.support.workerproc import ProcInfo, WorkerFleet, WorkerProcess, tagged  # noqa: E402

OPERATOR = "chaos"
ANSWER = "Enable it by default; keep Python 3.11 and later supported."
EXPECTED_ROOT_CAUSE = "chaos run: a hallucinating agent halts the line by design"
OTHER_ROOT_CAUSE = "chaos run: resumed so the other issues proceed (this halt is reported)"
POLL_S = 0.5
REANSWER_S = 30.0
"""A paused issue still paused this long after its answer is answered again (and said so)."""
QUERY_TIMEOUT = timedelta(seconds=5)
CALL_TIMEOUT_S = 15.0
RESUME_AGAIN_S = 10.0
RECOVERY_TIMEOUT_S = 180.0
"""A kill not recovered from within this long is reported as such (and counts as this long)."""
ACTIVE = frozenset(
    {Phase.PREPARING, Phase.WAITING_FOR_SLOT, Phase.RUNNING_AGENT, Phase.VERIFYING, Phase.SHIPPING}
)
"""Phases in which an issue's work is in the hands of one host."""

T0 = time.monotonic()
T = TypeVar("T")


def say(text: str) -> None:
    print(f"[{time.monotonic() - T0:7.1f}s] {text}", flush=True)


def signature(status: LineStatus) -> tuple[frozenset[str], frozenset[tuple[str, str, int]]]:
    """What changes when an issue makes progress: the finished set, each running phase."""
    return (
        frozenset(f.identifier for f in status.finished),
        frozenset((e.identifier, e.phase.value, e.attempt) for e in status.running),
    )


def settled_count(status: LineStatus, plan: dict[str, Scenario]) -> int:
    """Issues that reached their end or wait for a person's decision."""
    done = {f.identifier for f in status.finished}
    done |= {e.identifier for e in status.running if e.phase is Phase.HALTED}
    return len(done & plan.keys())


# ---------------------------------------------------------------------------------------------
# Processes: the server and the workers
# ---------------------------------------------------------------------------------------------


@dataclass
class Server:
    """The dev server as its own process group, killed and started again on one database."""

    settings: DevServerSettings
    running: RunningDevServer | None = None

    async def start(self) -> None:
        self.running = await start_dev_server(self.settings, owner="bench/chaos.py")

    def sigkill(self) -> None:
        assert self.running is not None
        process = self.running.process
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)

    def stop(self) -> None:
        if self.running is not None:
            stop_dev_server(self.running)


@dataclass
class Host:
    """One worker slot. A restart under the same host id keeps the disk; a new host id gets a
    new one (its issues' workspaces stay on the dead host's disk)."""

    slot: int
    generation: int
    scratch: Path
    max_agents: int
    process: WorkerProcess | None = None

    @property
    def host_id(self) -> str:
        return f"chaos-w{self.slot}-g{self.generation}"

    @property
    def disk(self) -> Path:
        return self.scratch / "hosts" / self.host_id

    def environment(self) -> dict[str, str]:
        return {
            "WORKSPACES": str(self.disk / "workspaces"),
            "JIDOKA_STATE_DIR": str(self.disk / "state"),
            "JIDOKA_MAX_AGENTS": str(self.max_agents),
        }

    async def start(self, fleet: WorkerFleet) -> None:
        (self.disk / "workspaces").mkdir(parents=True, exist_ok=True)
        self.process = await fleet.start(self.host_id, self.environment())


# ---------------------------------------------------------------------------------------------
# The operator: answers, resumes, watches
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Observation:
    sent: float
    """When the query was sent (monotonic)."""
    answered: float
    status: LineStatus


@dataclass
class Operator:
    """What a person at the line does: answers paused issues, resumes the line after each halt
    with a root cause (the halted issue stays halted). It is also the only reader of the line's
    status (too many queries at once fill the server's query buffer for a busy workflow):
    the chaos side listens to what it reads."""

    client: Client
    line: WorkflowHandle[object, object]
    plan: dict[str, Scenario]
    status: LineStatus | None = None
    answered: dict[str, float] = field(default_factory=dict[str, float])
    resumes: int = 0
    unexpected_halts: list[str] = field(default_factory=list[str])
    timeline: dict[str, list[tuple[float, str]]] = field(
        default_factory=dict[str, list[tuple[float, str]]]
    )
    _listeners: list[asyncio.Queue[Observation]] = field(
        default_factory=list[asyncio.Queue[Observation]]
    )
    _seen_halts: set[tuple[str, str, str | None]] = field(
        default_factory=set[tuple[str, str, str | None]]
    )
    _last_report: float = 0.0
    _resumed_halts: frozenset[tuple[str, str | None]] = frozenset()
    _resumed_at: float = 0.0

    async def query(self) -> LineStatus | None:
        """The line's status, or None when it does not answer within :data:`CALL_TIMEOUT_S`."""
        return await bounded(
            self.line.query("status", result_type=LineStatus, rpc_timeout=QUERY_TIMEOUT)
        )

    def listen(self) -> asyncio.Queue[Observation]:
        queue: asyncio.Queue[Observation] = asyncio.Queue()
        self._listeners.append(queue)
        return queue

    def unlisten(self, queue: asyncio.Queue[Observation]) -> None:
        with contextlib.suppress(ValueError):
            self._listeners.remove(queue)

    async def next_status(self) -> LineStatus:
        """The first status read from now on."""
        queue = self.listen()
        try:
            return (await queue.get()).status
        finally:
            self.unlisten(queue)

    async def run(self) -> None:
        while True:
            asked_at = time.monotonic()
            status = await self.query()
            if status is not None:
                self.status = status
                seen = Observation(sent=asked_at, answered=time.monotonic(), status=status)
                for queue in self._listeners:
                    queue.put_nowait(seen)
                await self._act(status)
            await asyncio.sleep(POLL_S)

    def _follow(self, status: LineStatus, now: float) -> None:
        """Each issue's phases as the line showed them, with when (for the slowest)."""
        views = {e.identifier: f"{e.phase.value}#{e.attempt}" for e in status.running}
        views |= {f.identifier: f"finished/{f.phase.value}" for f in status.finished}
        for identifier, view in views.items():
            seen = self.timeline.setdefault(identifier, [])
            if not seen or seen[-1][1] != view:
                seen.append((now, view))

    async def _act(self, status: LineStatus) -> None:
        self._follow(status, time.monotonic())
        for halt in status.halts:
            key = (halt.at.isoformat(), halt.category.value, halt.issue_identifier)
            if key in self._seen_halts:
                continue
            self._seen_halts.add(key)
            if not self._expected(halt.category, halt.issue_identifier):
                text = f"{halt.issue_identifier}: {halt.category.value}: {halt.reason[:300]}"
                self.unexpected_halts.append(text)
                say(f"UNEXPECTED HALT {text}")
        now = time.monotonic()
        if status.halted:
            await self._resume(status, now)
        for entry in status.running:
            if entry.phase is not Phase.PAUSED:
                continue
            last = self.answered.get(entry.identifier)
            if last is not None and now - last < REANSWER_S:
                continue
            handle = self.client.get_workflow_handle(entry.workflow_id)
            answer = AnswerRequest(answer=ANSWER, operator=OPERATOR)
            if not await sent(handle.signal("answer", answer)):
                continue
            if last is not None:
                say(f"{entry.identifier} still paused {REANSWER_S:.0f}s after its answer")
            self.answered[entry.identifier] = now
        if now - self._last_report >= 10:
            self._last_report = now
            agents = sum(1 for e in status.running if e.phase is Phase.RUNNING_AGENT)
            say(
                f"settled {settled_count(status, self.plan)}/{len(self.plan)}, "
                f"running {len(status.running)} ({agents} agents), line "
                f"{'HALTED' if status.halted else 'running'}, resumes {self.resumes}, "
                f"answers {len(self.answered)}"
            )

    def _expected(self, category: HaltCategory, identifier: str | None) -> bool:
        scenario = self.plan.get(identifier or "")
        return category is HaltCategory.NO_PROGRESS and scenario is not None and scenario.halts

    async def _resume(self, status: LineStatus, now: float) -> None:
        """Resume with the ``resume`` signal (as ``jidoka run --resume-with`` does with the
        update): once per new open halt, or again after :data:`RESUME_AGAIN_S` (the line
        broadcasts a resume to every running issue, which takes a while)."""
        halts = frozenset((h.at.isoformat(), h.issue_identifier) for h in status.open_halts)
        if halts <= self._resumed_halts and now - self._resumed_at < RESUME_AGAIN_S:
            return
        expected = all(self._expected(h.category, h.issue_identifier) for h in status.open_halts)
        request = ResumeRequest(
            root_cause=EXPECTED_ROOT_CAUSE if expected else OTHER_ROOT_CAUSE, operator=OPERATOR
        )
        if not await sent(self.line.signal("resume", request)):
            return
        self._resumed_halts = halts
        self._resumed_at = now
        self.resumes += 1


async def bounded(call: Awaitable[T]) -> T | None:
    """``call``'s result, or None when it fails or takes longer than :data:`CALL_TIMEOUT_S`
    (the server may be down, or the workflow's worker just killed)."""
    try:
        return await asyncio.wait_for(call, CALL_TIMEOUT_S)
    except (TimeoutError, RPCError, WorkflowQueryFailedError, RuntimeError):
        return None


async def sent(signal: Awaitable[None]) -> bool:
    """Whether a signal reached the server within :data:`CALL_TIMEOUT_S`."""

    async def delivered() -> bool:
        await signal
        return True

    return await bounded(delivered()) is not None


# ---------------------------------------------------------------------------------------------
# Chaos
# ---------------------------------------------------------------------------------------------


@dataclass
class Kill:
    number: int
    kind: str
    """``worker`` or ``server``."""
    at_s: float
    target: str
    restart: str
    stranded: dict[str, tuple[str, int]] = field(default_factory=dict[str, tuple[str, int]])
    """Issues whose work was on the killed host: (phase, attempt) at the kill."""
    back_s: float = 0.0
    """Kill → the process serving again."""
    answered_s: float | None = None
    """Kill → the first answer to a status query sent after it."""
    progress_s: float | None = None
    """Kill → the first status showing an issue further than at the kill."""
    stranded_s: float | None = None
    """Kill → every stranded issue finished, off its host (backing off, parked...) or in a
    new attempt."""
    tagged: int = 0
    """Tagged processes other than the workers at the kill (agents, hooks, git): proof that
    the leftover scan sees what the workers start."""
    recovered: asyncio.Event = field(default_factory=asyncio.Event)
    """Set once the status answers and an issue made progress."""

    @property
    def recovery_s(self) -> float:
        if self.answered_s is None or self.progress_s is None:
            return RECOVERY_TIMEOUT_S
        return max(self.answered_s, self.progress_s)

    def brief(self) -> str:
        return (
            f"kill {self.number}: {self.kind} {self.target} ({self.restart}): status answered "
            f"after {_seconds(self.answered_s)}, progress after {_seconds(self.progress_s)}"
        )

    def line(self) -> str:
        stranded = (
            f"; {len(self.stranded)} stranded ({', '.join(sorted(self.stranded))}) moved on "
            f"after {_seconds(self.stranded_s)}"
            if self.stranded
            else "; nothing stranded"
        )
        return (
            f"kill {self.number}: {self.kind} {self.target} at {self.at_s:.1f}s, back "
            f"({self.restart}) in {self.back_s:.1f}s; status answered after "
            f"{_seconds(self.answered_s)}, progress after {_seconds(self.progress_s)}{stranded}; "
            f"{self.tagged} tagged process(es) besides the workers at the kill"
        )


def _seconds(value: float | None) -> str:
    return f"{value:.1f}s" if value is not None else f">{RECOVERY_TIMEOUT_S:.0f}s"


@dataclass
class Chaos:
    client: Client
    operator: Operator
    server: Server
    fleet: WorkerFleet
    hosts: list[Host]
    rng: random.Random
    schedule: list[tuple[float, str]]
    """(share of the issues settled, ``worker`` | ``server``), in order."""
    outage_s: float | None = None
    """How long the server stays down after a kill (None: a seeded 1 to 4 s)."""
    kills: list[Kill] = field(default_factory=list[Kill])
    measures: list[asyncio.Task[None]] = field(default_factory=list[asyncio.Task[None]])
    _worker_kills: int = 0

    @classmethod
    def schedule_for(
        cls, rng: random.Random, worker_kills: int, server_kills: int
    ) -> list[tuple[float, str]]:
        moments = [(rng.uniform(0.05, 0.7), "worker") for _ in range(worker_kills)]
        moments += [(rng.uniform(0.25, 0.6), "server") for _ in range(server_kills)]
        return sorted(moments)

    async def run(self, total: int) -> None:
        """Each kill when its share of the issues has settled, once the one before has
        recovered (the status answers, an issue moved); stranded issues are followed in the
        background."""
        for share, kind in self.schedule:
            while True:
                status = self.operator.status
                if (
                    status is not None
                    and settled_count(status, self.operator.plan) >= share * total
                ):
                    break
                await asyncio.sleep(POLL_S)
            await asyncio.sleep(self.rng.uniform(0.0, 2.0))
            kill = await (self.kill_worker() if kind == "worker" else self.kill_server())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(kill.recovered.wait(), RECOVERY_TIMEOUT_S)
            say(kill.brief())

    async def finish(self) -> None:
        """Wait for every measurement (each ends by itself within its timeout)."""
        await asyncio.gather(*self.measures)

    async def _hosts_of_active(self, status: LineStatus) -> dict[str, tuple[str, tuple[str, int]]]:
        """identifier → (host queue, (phase, attempt)) for every issue at work on a host."""
        found: dict[str, tuple[str, tuple[str, int]]] = {}
        for entry in status.running:
            if entry.phase not in ACTIVE:
                continue
            handle = self.client.get_workflow_handle(entry.workflow_id)
            issue = await bounded(
                handle.query("status", result_type=IssueStatus, rpc_timeout=QUERY_TIMEOUT)
            )
            if issue is not None and issue.host_queue:
                found[entry.identifier] = (issue.host_queue, (entry.phase.value, entry.attempt))
        return found

    async def kill_worker(self) -> Kill:
        """SIGKILL a worker (one with work in hand, when there is one) and start it again:
        odd kills under the same host id, even ones under a new host id with a new disk."""
        self._worker_kills += 1
        baseline = await self.operator.next_status()
        active = await self._hosts_of_active(baseline)
        queues = {queue for queue, _ in active.values()}
        busy = [h.slot for h in self.hosts if h.process is not None and h.process.queue in queues]
        slot = self.rng.choice(busy) if busy else self.rng.randrange(len(self.hosts))
        host = self.hosts[slot]
        assert host.process is not None
        victim = host.process
        same = self._worker_kills % 2 == 1
        kill = Kill(
            number=len(self.kills) + 1,
            kind="worker",
            at_s=time.monotonic() - T0,
            target=victim.host_id,
            restart="",
            stranded={i: ps for i, (q, ps) in active.items() if q == victim.queue},
        )
        started = time.monotonic()
        self._measure(kill, started, baseline)
        victim.sigkill()
        if not same:
            host.generation += 1
        kill.restart = "same host id" if same else f"as {host.host_id}, a new disk"
        await host.start(self.fleet)
        kill.back_s = time.monotonic() - started
        return kill

    async def kill_server(self) -> Kill:
        """SIGKILL the server's process group, leave it down a seeded moment, start it again
        on the same database."""
        baseline = await self.operator.next_status()
        active = await self._hosts_of_active(baseline)
        outage = self.outage_s if self.outage_s is not None else self.rng.uniform(1.0, 4.0)
        kill = Kill(
            number=len(self.kills) + 1,
            kind="server",
            at_s=time.monotonic() - T0,
            target="temporal dev server",
            restart=f"same database, after {outage:.1f}s down",
            stranded={i: ps for i, (_, ps) in active.items()},
        )
        started = time.monotonic()
        self._measure(kill, started, baseline)
        self.server.sigkill()
        await asyncio.sleep(outage)
        await self.server.start()
        kill.back_s = time.monotonic() - started
        return kill

    def _measure(self, kill: Kill, started: float, baseline: LineStatus) -> None:
        workers = {w.pid for w in self.fleet.workers if w.running()}
        kill.tagged = sum(1 for p in tagged(self.fleet.tag) if p.pid not in workers)
        self.kills.append(kill)
        self.measures.append(asyncio.create_task(self._recover(kill, started, baseline)))

    async def _recover(self, kill: Kill, started: float, baseline: LineStatus) -> None:
        """Follow the statuses read after the kill until the status answered, an issue made
        progress and the stranded moved on (or the timeout)."""
        before = signature(baseline)
        nothing_to_do = settled_count(baseline, self.operator.plan) == len(self.operator.plan)
        pending = dict(kill.stranded)
        queue = self.operator.listen()
        try:
            while True:
                left = RECOVERY_TIMEOUT_S - (time.monotonic() - started)
                try:
                    seen = await asyncio.wait_for(queue.get(), max(left, 0.01))
                except TimeoutError:
                    return
                if seen.sent < started:
                    continue  # asked before the kill
                now = seen.answered - started
                status = seen.status
                if kill.answered_s is None:
                    kill.answered_s = now
                if kill.progress_s is None and (nothing_to_do or signature(status) != before):
                    kill.progress_s = now
                    kill.recovered.set()
                current = {e.identifier: e for e in status.running}
                for identifier, (_, attempt) in list(pending.items()):
                    entry = current.get(identifier)
                    if entry is None or entry.phase not in ACTIVE or entry.attempt != attempt:
                        del pending[identifier]  # finished, off the host, or a new attempt
                if not pending and kill.stranded_s is None:
                    kill.stranded_s = now if kill.stranded else 0.0
                if kill.progress_s is not None and kill.stranded_s is not None:
                    return
        finally:
            self.operator.unlisten(queue)


# ---------------------------------------------------------------------------------------------
# The end: checks and the report
# ---------------------------------------------------------------------------------------------


async def phantoms_of(client: Client, status: LineStatus) -> list[str]:
    """Running entries of the line whose issue workflow is closed."""
    found: list[str] = []
    for entry in status.running:
        try:
            described = await client.get_workflow_handle(entry.workflow_id).describe()
        except RPCError as error:
            found.append(f"{entry.identifier} ({entry.phase.value}): {error.message}")
            continue
        if described.status is not None and described.status.name != "RUNNING":
            found.append(
                f"{entry.identifier} shown {entry.phase.value}, its workflow is "
                f"{described.status.name.lower()}"
            )
    return found


async def leftovers_of(fleet: WorkerFleet) -> list[ProcInfo]:
    """Tagged processes other than the live workers that stay alive through 10 s of scans
    (a git process of a worker's own at the moment of one scan is not a leftover)."""
    workers = {w.pid for w in fleet.workers if w.running()}

    def scan() -> dict[tuple[int, tuple[str, ...]], ProcInfo]:
        return {(p.pid, p.cmdline): p for p in tagged(fleet.tag) if p.pid not in workers}

    first = scan()
    for _ in range(10):
        if not first:
            return []
        await asyncio.sleep(1.0)
        again = scan()
        first = {k: v for k, v in first.items() if k in again}
    return list(first.values())


async def wait_settled(operator: Operator, total: int, deadline: float) -> float | None:
    """When every issue settled (monotonic time), or None at the deadline."""
    while True:
        status = operator.status
        if status is not None and settled_count(status, operator.plan) >= total:
            return time.monotonic()
        if time.monotonic() > deadline:
            return None
        await asyncio.sleep(POLL_S)


async def read_status(operator: Operator, attempts: int = 60) -> LineStatus:
    for _ in range(attempts):
        status = await operator.query()
        if status is not None:
            return status
        await asyncio.sleep(1.0)
    raise RuntimeError("the line's status query does not answer")


@dataclass
class Report:
    judgements: list[Judgement]
    facts: list[IssueFacts]
    phantoms: list[str]
    leftovers: list[ProcInfo]
    unproven: list[str]
    kills: list[Kill]
    planned_worker_kills: int
    planned_server_kills: int
    wall_s: float
    started: float
    """When the line started (monotonic)."""
    timeline: dict[str, list[tuple[float, str]]]

    @property
    def lost(self) -> int:
        return sum(1 for j in self.judgements if j.lost is not None)

    @property
    def wrong_state(self) -> int:
        wrong = {j.identifier for j in self.judgements if j.lost is None and j.wrong}
        wrong |= {line.split(":", 1)[0].removesuffix(".md") for line in self.unproven}
        return len(wrong)

    @property
    def duplicates(self) -> int:
        return sum(len(j.duplicates) for j in self.judgements)

    def count(self, kind: str) -> int:
        return sum(1 for k in self.kills if k.kind == kind)

    def misses(self) -> list[str]:
        misses = [
            f"{name}={value} (target 0)"
            for name, value in (
                ("lost", self.lost),
                ("wrong_state", self.wrong_state),
                ("duplicates", self.duplicates),
                ("leftovers", len(self.leftovers)),
                ("phantoms", len(self.phantoms)),
            )
            if value
        ]
        if self.count("worker") < self.planned_worker_kills:
            misses.append(f"worker_kills={self.count('worker')} of {self.planned_worker_kills}")
        if self.count("server") < self.planned_server_kills:
            misses.append(f"server_kills={self.count('server')} of {self.planned_server_kills}")
        return misses

    def last_line(self) -> str:
        recoveries = [k.recovery_s for k in self.kills]
        p50 = statistics.median(recoveries) if recoveries else 0.0
        worst = max(recoveries) if recoveries else 0.0
        statuses = [f.status for f in self.facts if f.status is not None]
        infra = sum(s.counters.infra_failures for s in statuses)
        agent = sum(s.counters.failures for s in statuses)
        return (
            f"lost={self.lost} wrong_state={self.wrong_state} duplicates={self.duplicates} "
            f"leftovers={len(self.leftovers)} phantoms={len(self.phantoms)} "
            f"worker_kills={self.count('worker')} server_kills={self.count('server')} "
            f"recovery_p50_s={p50:.1f} recovery_max_s={worst:.1f} infra_attempts={infra} "
            f"agent_failures={agent} issues={len(self.facts)} wall_s={self.wall_s:.0f}"
        )

    def print_slowest(self, count: int = 3) -> None:
        """The issues that took longest to settle, with the phases the line showed."""

        def settled_at(identifier: str) -> float:
            for at, view in self.timeline.get(identifier, []):
                if view.startswith(("finished/", "halted#")):
                    return at - self.started
            return float("inf")

        by_id = {f.identifier: f for f in self.facts}
        slowest = sorted(by_id, key=settled_at, reverse=True)[:count]
        print(f"\n== the {count} slowest to settle (s after the line started: phase#attempt)")
        for identifier in slowest:
            steps = " → ".join(
                f"{at - self.started:.0f} {view}" for at, view in self.timeline.get(identifier, [])
            )
            print(f"  {identifier}: {steps}")
            print(f"      {describe_attempts(by_id[identifier].status)}")

    def print_details(self) -> None:
        print("\n== kills")
        for kill in self.kills:
            print(f"  {kill.line()}")
        print("\n== issues by scenario (expected → ok / problems)")
        for scenario in MIX:
            mine = [
                (f, j)
                for f, j in zip(self.facts, self.judgements, strict=True)
                if f.scenario is scenario
            ]
            ok = sum(1 for _, j in mine if j.ok)
            infra = sum(f.status.counters.infra_failures for f, _ in mine if f.status)
            lost_attempts = sum(
                1
                for f, _ in mine
                if f.status
                for a in f.status.attempts
                if a.outcome is Outcome.WORKER_LOST
            )
            extra = ""
            if scenario.asks:
                skipped = sum(1 for f, _ in mine if f.status and f.asked == 0)
                extra = f", {skipped} never asked (attempt 1 lost before it asked)"
            print(
                f"  {scenario.name:<12} {len(mine):>3} x {scenario.expected}: {ok} ok, "
                f"{len(mine) - ok} not; {lost_attempts} attempt(s) worker_lost, "
                f"infra charged {infra}{extra}"
            )
        self.print_slowest()
        problems = [(f, j) for f, j in zip(self.facts, self.judgements, strict=True) if not j.ok]
        charged = [f for f in self.facts if f.status and f.status.counters.failures]
        if problems:
            print("\n== problems")
        for facts, judgement in problems:
            what = [judgement.lost] if judgement.lost else []
            what += judgement.wrong + judgement.duplicates
            print(f"  {facts.identifier} ({facts.scenario.name}): {'; '.join(what)}")
            print(f"      {describe_attempts(facts.status)}")
            print(
                f"      board {facts.board_state!r}, comments {dict(facts.comments.kinds)}, "
                f"transitions {facts.transitions}, line {facts.line_view}, "
                f"workflow {facts.workflow_id} ({facts.execution})"
            )
        if charged:
            print("\n== attempts charged to the agent")
            for facts in charged:
                print(
                    f"  {facts.identifier} ({facts.scenario.name}): {describe_attempts(facts.status)}"
                )
        for title, items in (
            ("phantom running entries", self.phantoms),
            ("ship comments without proof", self.unproven),
            (
                "leftover processes",
                [f"pid {p.pid}: {' '.join(p.cmdline)[:200]}" for p in self.leftovers],
            ),
        ):
            if items:
                print(f"\n== {title}")
                for item in items:
                    print(f"  {item}")


# ---------------------------------------------------------------------------------------------
# The run
# ---------------------------------------------------------------------------------------------


async def chaos_run(args: argparse.Namespace, scratch: Path) -> Report:
    rng = random.Random(args.seed)
    plan = plan_issues(args.issues, rng)
    line_name = f"chaos{args.seed}x{uuid.uuid4().hex[:6]}"
    kit: LineKit = build_line(scratch / "line", line_name, plan, args.workers * args.max_agents)
    counts = {s.name: sum(1 for p in plan.values() if p is s) for s in MIX}
    say(f"line {line_name}: {args.issues} issues {counts}; scratch {scratch}")
    server = Server(
        DevServerSettings(db_path=scratch / "temporal.db", port=free_port(), headless=True)
    )
    fleet: WorkerFleet | None = None
    operator_task: asyncio.Task[None] | None = None
    try:
        await server.start()
        client = await connect_when_ready(server.settings.address)
        fleet = WorkerFleet(
            address=server.settings.address,
            namespace=client.namespace,
            task_queue=f"chaos-{uuid.uuid4().hex[:8]}",
            logs=scratch / "logs",
        )
        hosts = [Host(slot, 0, scratch, args.max_agents) for slot in range(args.workers)]
        await asyncio.gather(*(h.start(fleet) for h in hosts))
        say(f"server on {server.settings.address}; workers {[h.host_id for h in hosts]} serving")
        line: WorkflowHandle[object, object] = await client.start_workflow(
            "LineWorkflow",
            LineWorkflowInput(workflow_path=str(kit.workflow_md)),
            id=line_workflow_id(kit.line),
            task_queue=fleet.task_queue,
        )
        started = time.monotonic()
        operator = Operator(client=client, line=line, plan=plan)
        operator_task = asyncio.create_task(operator.run())
        chaos = Chaos(
            client=client,
            operator=operator,
            server=server,
            fleet=fleet,
            hosts=hosts,
            rng=rng,
            schedule=Chaos.schedule_for(rng, args.worker_kills, args.server_kills),
            outage_s=args.server_outage_s,
        )
        deadline = started + args.timeout_s
        settle_task = asyncio.create_task(wait_settled(operator, len(plan), deadline))
        chaos_task = asyncio.create_task(chaos.run(len(plan)))
        await asyncio.wait({chaos_task}, timeout=max(deadline - time.monotonic(), 1))
        if not chaos_task.done():
            say("DEADLINE: kills still planned")
            chaos_task.cancel()
        elif (failure := chaos_task.exception()) is not None:
            raise failure  # a worker or the server that does not come back: nothing to measure
        settled_at = await settle_task
        wall = (settled_at or time.monotonic()) - started
        say(
            f"{'every issue settled' if settled_at else 'DEADLINE: not every issue settled'}; "
            f"{wall:.0f}s after the line started"
        )
        await chaos.finish()
        operator_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await operator_task
        # Let reports in flight land (a tick or two), then read the line's last word.
        await bounded(line.signal("refresh"))
        await asyncio.sleep(6)
        final = await read_status(operator)
        say("checking every issue: workflow, board, history")
        facts = [
            await gather_facts(client, kit, identifier, scenario, final)
            for identifier, scenario in plan.items()
        ]
        report = Report(
            judgements=[judge(f) for f in facts],
            facts=facts,
            phantoms=await phantoms_of(client, final),
            leftovers=await leftovers_of(fleet),
            unproven=unproven_ships(kit),
            kills=chaos.kills,
            planned_worker_kills=args.worker_kills,
            planned_server_kills=args.server_kills,
            wall_s=wall,
            started=started,
            timeline=operator.timeline,
        )
        if operator.unexpected_halts:
            print("\n== unexpected halts (the run resumed the line after each)")
            for text in operator.unexpected_halts:
                print(f"  {text}")
        return report
    finally:
        if operator_task is not None:
            operator_task.cancel()
        if fleet is not None:
            fleet.close()
        server.stop()


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--issues", type=int, default=100)
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--worker-kills", type=int, default=5)
    parser.add_argument("--server-kills", type=int, default=1)
    parser.add_argument(
        "--server-outage-s",
        type=float,
        default=None,
        help="how long the server stays down after each kill (default: a seeded 1 to 4 s)",
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--max-agents", type=int, default=4, help="JIDOKA_MAX_AGENTS per worker")
    parser.add_argument("--timeout-s", type=float, default=1200, help="give up on the line after")
    parser.add_argument("--keep", action="store_true", help="keep the scratch folder")
    return parser.parse_args(argv)


async def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    for name, value in (("GIT_AUTHOR_NAME", "chaos"), ("GIT_COMMITTER_NAME", "chaos")):
        os.environ.setdefault(name, value)
    for name in ("GIT_AUTHOR_EMAIL", "GIT_COMMITTER_EMAIL"):
        os.environ.setdefault(name, "chaos@jidoka.invalid")
    scratch = Path(tempfile.mkdtemp(prefix="jidoka-chaos-"))
    task = asyncio.current_task()
    assert task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    try:
        report = await chaos_run(args, scratch)
    except BaseException:
        say(f"the run failed; scratch kept: {scratch}")
        raise
    if args.keep or report.misses():
        say(f"scratch kept: {scratch}")
    else:
        shutil.rmtree(scratch, ignore_errors=True)
    report.print_details()
    misses = report.misses()
    for miss in misses:
        print(f"TARGET MISSED: {miss}", file=sys.stderr)
    print(report.last_line(), flush=True)
    return 1 if misses else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
