"""Agent adapters: translate one agent's wire format into :mod:`activities.agent.events`.

Adapters translate; they never decide. Clocks, budgets, turn limits, killing and the transcript
belong to :class:`activities.agent.supervisor.Supervisor`, the same for every agent.

The contract, and how each kind of agent fits it:

* :meth:`AgentAdapter.launch` returns the shell command for one process, how its stdin is used
  (:class:`StdinMode`) and extra environment (e.g. a per-run ``CODEX_HOME``).
* :meth:`AgentAdapter.begin` runs once the process is up. The default writes the prompt and
  closes stdin (``StdinMode.PROMPT``). A JSON-RPC adapter (Codex app-server) overrides it to send
  ``initialize`` / ``thread/start`` / ``turn/start`` through :class:`AgentIO` and keeps stdin open
  (``StdinMode.PROTOCOL``).
* :meth:`AgentAdapter.parse` turns one stdout line into events. It must never raise: unknown
  shapes become ``RAW`` events. Responses to the adapter's own requests may yield no event.
* :meth:`AgentAdapter.respond` sees every event and answers server->client requests (Codex
  approvals, dynamic tool calls, user input) by writing to :class:`AgentIO`; every request must
  get *some* answer, or the agent hangs. Slow work goes to :meth:`AgentIO.spawn`.
* A ``TURN_ENDED`` event ends a turn. The supervisor then asks its continuation policy whether
  another turn is needed and, within ``max_turns``, calls :meth:`AgentAdapter.next_turn`:
  Codex sends ``turn/start`` on the same thread and answers ``SAME_PROCESS``; Claude answers
  ``NEW_PROCESS`` and is launched again with ``--resume <resume_token()>`` once the current
  process has exited. A one-shot command agent never emits ``TURN_ENDED``: its process exit
  ends its single turn.
* :meth:`AgentAdapter.interrupt` runs before the process group is killed (clock or budget
  stop): Codex sends ``turn/interrupt``; Claude in ``-p`` mode has no control channel, so the
  group's SIGTERM is its interrupt. The supervisor then waits up to ``wind_down_s`` for the
  process to exit before SIGTERM/SIGKILL of the group.
* :meth:`AgentAdapter.refine_stop` runs after the session: the agent's own words can say more
  than the supervisor's :class:`AgentStop` (a failed turn that was "not logged in" is
  ``UNAVAILABLE``; Claude's own turn cap is ``TURN_LIMIT``; exit 127 is a missing binary).

The adapters: :mod:`~activities.agent.codex`, :mod:`~activities.agent.claude`,
:mod:`~activities.agent.presets` (gemini, opencode, aider on the command adapter) and the
command adapter below; :mod:`~activities.agent.selection` picks one for ``agent.kind``.
"""

from __future__ import annotations

import abc
from collections.abc import Coroutine, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol, assert_never

from activities.agent.events import (
    AgentEvent,
    EventKind,
    UsageMode,
    UsageReading,
    raw_event,
)
from activities.agent.jsonline import parse_object
from activities.agent.usage import matches, reading_from_fields, token_count
from jidoka.config import UsageFields
from jidoka.models import RateLimitInfo
from jidoka.outcomes import AgentStop

SCRIPTED_COMMAND = '"$JIDOKA_PYTHON" -m activities.agent.scripted_agent'
"""``bash -l`` resets PATH on Debian, so the scripted agent is found through JIDOKA_PYTHON."""


class StdinMode(StrEnum):
    PROMPT = "prompt"
    """The prompt is written to stdin, then stdin is closed (one-shot CLIs)."""
    PROTOCOL = "protocol"
    """stdin stays open for the adapter's protocol lines (Codex app-server, Claude stream-json
    input)."""
    CLOSED = "closed"
    """stdin is /dev/null (the prompt travels in argv or a file)."""


@dataclass(frozen=True)
class Launch:
    command: str
    """Run as ``bash -lc <command>`` in the workspace, in a new process group."""
    stdin: StdinMode
    env: Mapping[str, str] = field(default_factory=dict[str, str])
    """Adapter additions; the worker's secrets are stripped from these too."""


@dataclass(frozen=True)
class TurnContext:
    number: int
    """1-based turn within the session."""
    text: str
    """The full prompt on turn 1; the continuation guidance on later turns."""
    workspace: str
    resume_token: str | None = None


@dataclass(frozen=True)
class StopOverride:
    """How the session ended, said better than the supervisor could (see ``refine_stop``)."""

    stop: AgentStop
    detail: str
    """The whole human line; it names the setting to change, like every stop detail."""


COMMAND_NOT_FOUND = 127
NOT_EXECUTABLE = 126


def launch_failure(exit_code: int | None, what: str, install: str) -> StopOverride | None:
    """bash's own exit codes for a command it could not run: the agent is not installed on
    this worker, and retrying the attempt cannot change that."""
    if exit_code == COMMAND_NOT_FOUND:
        return StopOverride(
            AgentStop.UNAVAILABLE,
            f"agent unavailable: {what} was not found on this worker (exit 127); {install}",
        )
    if exit_code == NOT_EXECUTABLE:
        return StopOverride(
            AgentStop.UNAVAILABLE,
            f"agent unavailable: {what} is not executable on this worker (exit 126); {install}",
        )
    return None


class NextTurn(StrEnum):
    SAME_PROCESS = "same_process"
    """The adapter already asked the running process for the next turn."""
    NEW_PROCESS = "new_process"
    """Launch again (with :meth:`AgentAdapter.resume_token`) once the current process exits."""


class AgentIO(Protocol):
    """The adapter's handle on the running process. Writes are queued, never block the caller."""

    def send(self, text: str) -> None:
        """Queue ``text`` (a newline is added if missing) for the process's stdin."""
        ...

    def close_stdin(self) -> None:
        """Close stdin once everything queued before has been written."""
        ...

    def spawn(self, work: Coroutine[Any, Any, None]) -> None:
        """Run slow work (a host-side tool call) without stalling the supervisor; cancelled when
        the process ends."""
        ...


class AgentAdapter(abc.ABC):
    name: str = "agent"
    wind_down_s: float = 0.0
    """After :meth:`interrupt`, how long the agent may take to exit before the group kill."""

    @abc.abstractmethod
    def launch(self, turn: TurnContext) -> Launch: ...

    async def begin(self, io: AgentIO, turn: TurnContext, launch: Launch) -> None:
        match launch.stdin:
            case StdinMode.PROMPT:
                io.send(turn.text)
                io.close_stdin()
            case StdinMode.PROTOCOL | StdinMode.CLOSED:
                pass
            case _:
                assert_never(launch.stdin)

    @abc.abstractmethod
    def parse(self, line: str) -> list[AgentEvent]:
        """Events from one stdout line (without its newline). Never raises."""

    def parse_stderr(self, line: str) -> list[AgentEvent]:
        """Stderr is diagnostics for every agent we know: raw activity, kept as a tail."""
        return [raw_event(line, "stderr")]

    async def respond(self, event: AgentEvent, io: AgentIO) -> None:
        """Answer server->client requests. One-shot CLIs have none."""
        return None

    async def next_turn(self, io: AgentIO, turn: TurnContext) -> NextTurn:
        return NextTurn.NEW_PROCESS

    async def interrupt(self, io: AgentIO) -> None:
        """Ask the agent to stop its turn before the supervisor kills the group."""
        return None

    def resume_token(self) -> str | None:
        """Thread/session id for a later continuation and for post-mortems."""
        return None

    def refine_stop(self, stop: AgentStop, exit_code: int | None) -> StopOverride | None:
        """After the session: replace the supervisor's stop when the agent said more (an auth
        failure, its own turn or spend cap, a missing binary). None keeps the stop as is."""
        return None


# ------------------------------------------------------------------------------------------
# The command adapter: any CLI speaking Jidoka's line protocol, or JSON lines described by
# ``agent.usage``.
# ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CommandProfile:
    """How to read one family of command agents: a command, a usage field map, the JSON
    shapes that count as progress. ``agent.preset`` (gemini, opencode, aider) builds on it in
    :mod:`activities.agent.presets`."""

    command: str
    usage: UsageFields | None = None
    """Where usage hides in the agent's own JSON events (``agent.usage``)."""
    progress_match: tuple[Mapping[str, str], ...] = ()
    """JSON lines matching any of these dotted-path maps count as progress."""
    env: Mapping[str, str] = field(default_factory=dict[str, str])


class CommandAdapter(AgentAdapter):
    """Jidoka's command protocol: stdout lines that are JSON objects with an ``event`` key.

    * ``{"event": "usage", "input_tokens": N, "output_tokens": N, "total_tokens": N}``: the
      session's *cumulative* usage (``total_tokens`` may be left out: input + output;
      ``cached_input_tokens``, the part of the input read from a cache, may be added);
    * ``{"event": "progress", "message": "..."}``: resets the progress clock;
    * ``{"event": "rate_limit", "resets_at": "<ISO 8601>"|null, "used_percent": x,
      "exhausted": bool}``: the provider is limiting the agent;
    * anything else, and every stderr line: raw activity (resets the silence clock only).
    """

    name = "command"

    def __init__(self, profile: CommandProfile) -> None:
        self.profile = profile

    def launch(self, turn: TurnContext) -> Launch:
        return Launch(command=self.profile.command, stdin=StdinMode.PROMPT, env=self.profile.env)

    def parse(self, line: str) -> list[AgentEvent]:
        obj = parse_object(line)
        if obj is None:
            return [raw_event(line)]
        native = _native_event(obj)
        if native is not None:
            return [native]
        if self.profile.usage is not None:
            reading = reading_from_fields(obj, self.profile.usage)
            if reading is not None:
                return [AgentEvent(EventKind.USAGE, obj, usage=reading)]
        if any(matches(obj, shape) for shape in self.profile.progress_match):
            return [AgentEvent(EventKind.PROGRESS, obj)]
        return [raw_event(line)]


def _native_event(obj: dict[str, object]) -> AgentEvent | None:
    match obj.get("event"):
        case "progress":
            message = obj.get("message")
            return AgentEvent(
                EventKind.PROGRESS, obj, message=message if isinstance(message, str) else ""
            )
        case "usage":
            input_tokens = token_count(obj.get("input_tokens", 0))
            output_tokens = token_count(obj.get("output_tokens", 0))
            cached_input_tokens = token_count(obj.get("cached_input_tokens", 0))
            total = obj.get("total_tokens")
            total_tokens = None if total is None else token_count(total)
            if (
                input_tokens is None
                or output_tokens is None
                or cached_input_tokens is None
                or (total is not None and total_tokens is None)
            ):
                return None  # malformed counts: raw activity, never a guess
            reading = UsageReading(
                input_tokens=input_tokens,
                output_tokens=output_tokens,
                total_tokens=total_tokens,
                cached_input_tokens=cached_input_tokens,
                mode=UsageMode.CUMULATIVE,
            )
            return AgentEvent(EventKind.USAGE, obj, usage=reading)
        case "rate_limit":
            return AgentEvent(EventKind.RATE_LIMIT, obj, rate_limit=_rate_limit(obj))
        case _:
            return None


def _rate_limit(obj: dict[str, object]) -> RateLimitInfo:
    resets_at: datetime | None = None
    raw_reset = obj.get("resets_at")
    if isinstance(raw_reset, str):
        try:
            resets_at = datetime.fromisoformat(raw_reset)
        except ValueError:
            resets_at = None
    used = obj.get("used_percent")
    used_percent: float | None = None
    if isinstance(used, int | float) and not isinstance(used, bool):
        try:
            used_percent = float(used)
        except OverflowError:  # an integer past the largest float
            used_percent = None
    return RateLimitInfo(
        resets_at=resets_at,
        used_percent=used_percent,
        exhausted=obj.get("exhausted") is True,
        source="command",
    )
