"""The agent supervisor: one session of one agent, whatever its kind.

It owns what must be the same for every agent (docs/agents.md):

* each process runs as ``bash -lc <command>`` in the workspace, in its own process group, so a
  kill reaches grandchildren (test runners, shells, a backgrounded ``sleep``);
* three clocks: *progress* silence (only progress events reset it; retry noise does not),
  *raw* silence (any line resets it) and the wall cap of the session;
* budgets enforced mid-run from normalised usage: the session's token budget and the
  first-commit budget, overshooting by at most the one event that crossed them;
* turns: a ``TURN_ENDED`` event asks the continuation policy for another turn, within
  ``max_turns``; the adapter decides whether that needs a new process;
* stops: :meth:`AgentAdapter.interrupt`, a short wind-down, then SIGTERM/SIGKILL of the group.
  Cancellation (how Temporal delivers cancel, heartbeat timeout and worker shutdown) kills the
  group too and is re-raised. No path leaves a process of the group alive;
* heartbeats while the agent runs, and the NDJSON transcript.
"""

from __future__ import annotations

import asyncio
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import assert_never

from activities.agent.adapters import AgentAdapter, NextTurn, StdinMode, TurnContext
from activities.agent.events import AgentEvent, EventKind, TurnStatus
from activities.agent.leftovers import clear_group, record_group
from activities.agent.probe import FirstCommitProbe
from activities.agent.session import (
    Continuation,
    Heartbeat,
    SessionReport,
    SessionSpec,
)
from activities.agent.stops import StopFacts, describe_stop
from activities.agent.streams import (
    QUEUE_LINES,
    Eof,
    Exited,
    Item,
    Line,
    ProcessIO,
    pump_lines,
    uncancellable,
    watch_exit,
)
from activities.agent.transcript import Transcript
from activities.agent.usage import UsageMeter
from activities.process import Tail, child_environment, group_alive, kill_group
from jidoka.models import RateLimitInfo
from jidoka.outcomes import AgentStop

HEARTBEAT_EVERY_S = 2.0
EXIT_DRAIN_S = 1.0
"""After the agent exits, how long a backgrounded grandchild may hold its pipes open before the
supervisor stops reading and kills the rest of the group."""
STDERR_TAIL_CHARS = 8000


@dataclass(frozen=True)
class _End:
    stop: AgentStop
    exit_code: int | None = None
    message: str = ""


@dataclass(frozen=True)
class _SameProcess:
    """The adapter started ``turn`` on the running process."""

    turn: TurnContext


_Action = _End | TurnContext | _SameProcess | None
"""What a line asks for: stop, relaunch for this turn once the process exits, go on."""


class Supervisor:
    def __init__(
        self,
        adapter: AgentAdapter,
        spec: SessionSpec,
        *,
        probe: FirstCommitProbe,
        transcript: Transcript,
        scrub: Callable[[str], str],
        heartbeat: Heartbeat,
        continuation: Continuation,
        heartbeat_every_s: float = HEARTBEAT_EVERY_S,
    ) -> None:
        self._adapter = adapter
        self._heartbeat_every_s = heartbeat_every_s
        self._spec = spec
        self._probe = probe
        self._transcript = transcript
        self._scrub = scrub
        self._heartbeat = heartbeat
        self._continuation = continuation
        self._meter = UsageMeter()
        self._stderr = Tail(STDERR_TAIL_CHARS)
        self._last_stderr = ""
        self._rate_limit: RateLimitInfo | None = None
        self._before_first_commit = 0
        self._turns = 0
        self._started = 0.0
        self._last_output = 0.0
        self._last_progress = 0.0
        self._last_heartbeat = 0.0
        self._pid: int | None = None

    # -- the session ---------------------------------------------------------------------------

    async def run(self) -> SessionReport:
        self._started = self._last_heartbeat = time.monotonic()
        turn = TurnContext(1, self._spec.prompt, str(self._spec.workspace), self._spec.resume_token)
        try:
            await self._probe.check(force=True)
            while True:
                outcome = await self._run_process(turn)
                if isinstance(outcome, _End):
                    break
                turn = outcome
            # The answer to "did it commit?" must not depend on when the last periodic check ran.
            await self._probe.check(force=True)
        except asyncio.CancelledError:
            self._transcript.record("summary", self._summary(AgentStop.CANCELLED, None))
            raise
        report = self._report(outcome)
        self._transcript.record("summary", self._summary(report.stop, report.exit_code, report))
        return report

    async def _run_process(self, turn: TurnContext) -> _End | TurnContext:
        """One agent process: launch, watch, and make sure its whole group is gone after."""
        spec = self._spec
        launch = self._adapter.launch(turn)
        env = child_environment(
            base=spec.base_env, strip=spec.withheld, extra={**launch.env, **spec.pinned_env}
        )
        bash = shutil.which("bash")
        if bash is None:
            return _End(AgentStop.UNAVAILABLE, message="bash is not on this worker's PATH")
        try:
            proc = await asyncio.create_subprocess_exec(
                *spec.confinement.argv([bash, "-lc", launch.command]),
                cwd=spec.workspace,
                env=env,
                stdin=asyncio.subprocess.DEVNULL
                if launch.stdin is StdinMode.CLOSED
                else asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                start_new_session=True,
            )
        except OSError as error:
            return _End(
                AgentStop.UNAVAILABLE,
                message=f"cannot start bash in {spec.workspace}: {error.strerror or error}",
            )
        self._pid = proc.pid
        record_group(spec.workspace, proc.pid)
        self._turns = turn.number  # turns started: a launched process starts one
        self._transcript.record(
            "launch",
            {
                "turn": turn.number,
                "pid": proc.pid,
                "command": launch.command,
                "cwd": str(spec.workspace),
                "stdin": launch.stdin.value,
            },
        )
        assert proc.stdout is not None and proc.stderr is not None
        queue: asyncio.Queue[Item] = asyncio.Queue(QUEUE_LINES)
        readers = [
            asyncio.create_task(pump_lines(proc.stdout, "stdout", queue)),
            asyncio.create_task(pump_lines(proc.stderr, "stderr", queue)),
            asyncio.create_task(watch_exit(proc, queue)),
        ]
        io = ProcessIO(proc.stdin, self._transcript)
        try:
            await self._adapter.begin(io, turn, launch)
            return await self._watch(proc, queue, io, turn)
        finally:
            await uncancellable(self._reap(proc, queue, io, readers))
            clear_group(spec.workspace, proc.pid)

    async def _watch(
        self,
        proc: asyncio.subprocess.Process,
        queue: asyncio.Queue[Item],
        io: ProcessIO,
        turn: TurnContext,
    ) -> _End | TurnContext:
        self._last_output = self._last_progress = time.monotonic()
        exited_at: float | None = None
        exit_code: int | None = None
        open_streams = 2
        relaunch: TurnContext | None = None
        while exited_at is None or open_streams > 0:
            timeout = max(0.0, self._next_deadline(exited_at) - time.monotonic())
            try:
                item: Item | None = await asyncio.wait_for(queue.get(), timeout=timeout)
            except TimeoutError:
                item = None
            action: _Action = None
            match item:
                case Line():
                    if relaunch is None:
                        action = await self._on_line(item, io, turn)
                    else:  # the turn is over; the process is on its way out
                        self._record_line(item)
                case Eof():
                    open_streams -= 1
                case Exited(code=code):
                    exit_code, exited_at = code, time.monotonic()
                case None:
                    pass
            match action:
                case _End():
                    return await self._wind_down(action, proc, queue, io)
                case TurnContext():
                    relaunch = action
                case _SameProcess(turn=turn):
                    self._last_progress = time.monotonic()
                case None:
                    pass
            now = time.monotonic()
            self._maybe_heartbeat(now)
            if (due := self._probe.next_due()) is not None and now >= due:
                await self._probe.check()
            if exited_at is None:
                if (stop := self._clock_stop(now)) is not None:
                    return await self._stop(stop, proc, queue, io)
            elif now - exited_at >= EXIT_DRAIN_S:
                break
        if relaunch is not None:
            return relaunch
        if exit_code != 0 and self._rate_limit is not None and self._rate_limit.exhausted:
            return _End(AgentStop.RATE_LIMITED, exit_code)
        return _End(AgentStop.EXITED, exit_code)

    # -- lines and events -----------------------------------------------------------------------

    async def _on_line(self, line: Line, io: ProcessIO, turn: TurnContext) -> _Action:
        self._last_output = time.monotonic()
        if line.stream == "stderr":
            self._stderr.add(line.text + "\n")
            if line.text.strip():
                self._last_stderr = line.text.strip()[:300]
            events = self._adapter.parse_stderr(line.text)
        else:
            events = self._adapter.parse(line.text)
        if not events:
            self._record_line(line)
        action: _Action = None
        for event in events:
            self._record_event(event)
            step = await self._on_event(event, io, turn)
            if isinstance(step, _End):
                return step  # nothing after the deciding event is counted
            action = action or step
        return action

    async def _on_event(self, event: AgentEvent, io: ProcessIO, turn: TurnContext) -> _Action:
        if event.progress:
            self._last_progress = time.monotonic()
        if event.rate_limit is not None:
            self._rate_limit = event.rate_limit
        await self._adapter.respond(event, io)
        if event.usage is not None:
            self._meter.add(event.usage)
            if (stop := await self._budget_stop()) is not None:
                return _End(stop)
        if event.kind is EventKind.TURN_ENDED:
            return await self._on_turn_end(event, io, turn)
        return None

    async def _budget_stop(self) -> AgentStop | None:
        budgets = self._spec.budgets
        await self._probe.check()  # rate-limited: a usage burst spawns at most one git a second
        total = self._meter.total
        if not self._probe.seen:
            self._before_first_commit = total
            limit = budgets.tokens_before_first_commit
            # Ask git once more before stopping: the commit may be younger than the last check.
            if limit is not None and total > limit and not await self._probe.check(force=True):
                return AgentStop.FIRST_COMMIT_BUDGET
        if total > budgets.tokens:
            return AgentStop.TOKEN_BUDGET
        return None

    async def _on_turn_end(self, event: AgentEvent, io: ProcessIO, turn: TurnContext) -> _Action:
        status = event.turn_status or TurnStatus.COMPLETED
        match status:
            case TurnStatus.FAILED | TurnStatus.INTERRUPTED:
                if self._rate_limit is not None and self._rate_limit.exhausted:
                    return _End(AgentStop.RATE_LIMITED, message=event.message)
                return _End(AgentStop.FAILED, message=event.message or f"turn {status.value}")
            case TurnStatus.COMPLETED:
                pass
            case _:
                assert_never(status)
        guidance = await self._continuation(turn.number)
        if guidance is None:
            return _End(AgentStop.EXITED)
        if turn.number >= self._spec.budgets.max_turns:
            return _End(AgentStop.TURN_LIMIT)
        following = TurnContext(
            turn.number + 1, guidance, turn.workspace, self._adapter.resume_token()
        )
        how = await self._adapter.next_turn(io, following)
        match how:
            case NextTurn.SAME_PROCESS:
                self._turns = following.number
                return _SameProcess(following)
            case NextTurn.NEW_PROCESS:
                io.close_stdin()  # a process that waits for more input would never exit
                return following
            case _:
                assert_never(how)

    def _record_event(self, event: AgentEvent) -> None:
        if event.kind is EventKind.RAW:
            stream = event.data.get("stream", "stdout")
            self._transcript.record(str(stream), {"line": event.data.get("line", "")})
        else:
            self._transcript.record(event.kind.value, event.data)

    def _record_line(self, line: Line, **extra: object) -> None:
        self._transcript.record(line.stream, {"line": line.text, **extra})

    # -- clocks, heartbeats ---------------------------------------------------------------------

    def _next_deadline(self, exited_at: float | None) -> float:
        deadlines = [self._last_heartbeat + self._heartbeat_every_s]
        if (due := self._probe.next_due()) is not None:
            deadlines.append(due)
        clocks = self._spec.clocks
        if exited_at is None:
            deadlines += [
                self._started + clocks.wall_s,
                self._last_output + clocks.silence_s,
                self._last_progress + clocks.progress_s,
            ]
        else:
            deadlines.append(exited_at + EXIT_DRAIN_S)
        return min(deadlines)

    def _clock_stop(self, now: float) -> AgentStop | None:
        clocks = self._spec.clocks
        if now - self._started >= clocks.wall_s:
            return clocks.wall_stop
        if now - self._last_output >= clocks.silence_s:
            return AgentStop.SILENCE_STALL
        if now - self._last_progress >= clocks.progress_s:
            return AgentStop.PROGRESS_STALL
        return None

    def _maybe_heartbeat(self, now: float) -> None:
        if now - self._last_heartbeat < self._heartbeat_every_s:
            return
        self._last_heartbeat = now
        self._heartbeat(
            {
                "pid": self._pid,
                "turn": self._turns,
                "tokens": self._meter.total,
                "since_progress_s": round(now - self._last_progress, 1),
                "since_output_s": round(now - self._last_output, 1),
            }
        )

    # -- stopping -------------------------------------------------------------------------------

    async def _stop(
        self,
        stop: AgentStop,
        proc: asyncio.subprocess.Process,
        queue: asyncio.Queue[Item],
        io: ProcessIO,
    ) -> _End:
        self._transcript.record("stop", {"reason": stop.value})
        await self._adapter.interrupt(io)
        return await self._wind_down(_End(stop), proc, queue, io)

    async def _wind_down(
        self,
        end: _End,
        proc: asyncio.subprocess.Process,
        queue: asyncio.Queue[Item],
        io: ProcessIO,
    ) -> _End:
        """Give the agent ``wind_down_s`` to exit on its own (after an interrupt, or after its
        session ended); its output is recorded but no longer counted. The group kill follows
        in :meth:`_reap`."""
        io.close_stdin()
        deadline = time.monotonic() + self._adapter.wind_down_s
        while proc.returncode is None and (left := deadline - time.monotonic()) > 0:
            try:
                item = await asyncio.wait_for(queue.get(), timeout=left)
            except TimeoutError:
                break
            if isinstance(item, Line):
                self._record_line(item, after_stop=True)
        exit_code = end.exit_code if end.exit_code is not None else proc.returncode
        return _End(end.stop, exit_code, end.message)

    async def _reap(
        self,
        proc: asyncio.subprocess.Process,
        queue: asyncio.Queue[Item],
        io: ProcessIO,
        readers: list[asyncio.Task[None]],
    ) -> None:
        if proc.returncode is None or group_alive(proc.pid):
            await kill_group(proc)
        # With the group gone the pipes close: let the pumps finish (draining the queue, which
        # may be full and holding them up), but not for long.
        deadline = time.monotonic() + 1.0
        pending = set(readers)
        while pending and time.monotonic() < deadline:
            self._drain_leftovers(queue)
            _, pending = await asyncio.wait(pending, timeout=0.05)
        for task in pending:
            task.cancel()
        await asyncio.gather(*readers, return_exceptions=True)
        await io.aclose()
        self._drain_leftovers(queue)
        self._transcript.record("exit", {"pid": proc.pid, "returncode": proc.returncode})

    def _drain_leftovers(self, queue: asyncio.Queue[Item]) -> None:
        """Lines that arrived after the decision: kept for the record, no longer counted."""
        while not queue.empty():
            item = queue.get_nowait()
            if isinstance(item, Line):
                if item.stream == "stderr":
                    self._stderr.add(item.text + "\n")
                self._record_line(item, after_stop=True)

    # -- the report -----------------------------------------------------------------------------

    def _report(self, end: _End) -> SessionReport:
        spec = self._spec
        elapsed = time.monotonic() - self._started
        usage = self._meter.usage
        facts = StopFacts(
            elapsed_s=elapsed,
            exit_code=end.exit_code,
            tokens=usage.total_tokens,
            turns=self._turns,
            max_turns=spec.budgets.max_turns,
            progress_s=spec.clocks.progress_s,
            silence_s=spec.clocks.silence_s,
            wall_s=spec.clocks.wall_s,
            budget_tokens=spec.budgets.tokens,
            budget_first_commit=spec.budgets.tokens_before_first_commit,
            branch=spec.branch,
            since_output_s=time.monotonic() - self._last_output,
            last_stderr=self._last_stderr,
            rate_limit=self._rate_limit,
            message=end.message,
        )
        detail = " ".join(self._scrub(describe_stop(end.stop, facts)).split())
        return SessionReport(
            stop=end.stop,
            # A stopped agent's exit status is our own signal, not its verdict on itself.
            exit_code=end.exit_code if end.stop in _OWN_EXIT else None,
            usage=usage,
            usage_reported=self._meter.reported,
            tokens_before_first_commit=self._before_first_commit,
            first_commit_seen=self._probe.seen,
            turns=self._turns,
            detail=detail,
            stderr_tail=self._scrub(self._stderr.text()) if self._stderr.text() else "",
            rate_limit=self._rate_limit,
            resume_token=self._adapter.resume_token(),
            duration_s=round(elapsed, 3),
        )

    def _summary(
        self, stop: AgentStop, exit_code: int | None, report: SessionReport | None = None
    ) -> dict[str, object]:
        usage = self._meter.usage
        return {
            "stop": stop.value,
            "exit_code": exit_code,
            "usage": usage.model_dump(),
            "turns": self._turns,
            "tokens_before_first_commit": self._before_first_commit,
            "first_commit_seen": self._probe.seen,
            "duration_s": round(time.monotonic() - self._started, 3),
            "detail": report.detail if report else describe_stop(stop, StopFacts()),
        }


_OWN_EXIT = frozenset({AgentStop.EXITED, AgentStop.RATE_LIMITED, AgentStop.FAILED})
