"""The Codex adapter: ``codex app-server`` over JSON-RPC on stdio, pinned to
``@openai/codex@0.169.0`` (docs/agents.md#codex-agentkind-codex).

One process per attempt, one thread per process, one turn per supervisor turn:

1. launch ``codex app-server`` (default; ``agent.command`` replaces it) with ``CODEX_HOME``
   set to ``<workspace>/.jidoka/codex-home`` unless the user set ``CODEX_HOME`` (in
   ``agent.env`` or the worker's environment). Codex keeps sqlite state, rollouts and logs
   there: a per-workspace home keeps one issue's sessions apart from every other issue's and
   from the operator's own ``~/.codex``, is removed with the workspace, and sits outside the
   diff that counts as progress. Credentials then come from the environment
   (``CODEX_API_KEY`` / ``OPENAI_API_KEY`` through ``agent.env``), or point ``CODEX_HOME`` at
   a logged-in home;
2. ``initialize`` (``capabilities.experimentalApi``) -> ``initialized`` -> ``thread/start``
   (cwd = workspace, ``approvalPolicy`` and ``sandbox`` from ``agent.codex``) -> ``turn/start``
   with the rendered prompt. The handshake is driven by the responses, never pipelined, and
   must finish within ``agent.codex.read_timeout_s`` (else stdin is closed and the attempt
   fails);
3. continuation turns: ``turn/start`` on the same thread with the short continuation guidance
   while no verdict file exists, up to ``budgets.max_turns`` (counted by the supervisor);
4. ``turn/completed`` is classified by ``turn.status`` and ``turn.error.codexErrorInfo``, never
   as success by default; every server request is answered (:mod:`codex_requests`);
5. on a stall or budget stop: ``turn/interrupt``, a short grace, then the supervisor's wind-down
   and group kill.

The resume token is the thread id (rollouts persist in ``CODEX_HOME`` for post-mortems). Each
attempt starts a new thread: resuming an old one across attempts would tie an issue to one
host's ``CODEX_HOME`` for little gain, since the prompt already carries the guidance.
"""

from __future__ import annotations

import asyncio
import itertools
import re
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path
from typing import assert_never

from activities.agent import codex_events, codex_requests, jsonline, jsonrpc
from activities.agent.adapters import (
    AgentAdapter,
    AgentIO,
    Launch,
    NextTurn,
    StdinMode,
    StopOverride,
    TurnContext,
    launch_failure,
)
from activities.agent.codex_events import Failure, RateLimits
from activities.agent.events import AgentEvent, EventKind, TurnStatus, raw_event
from activities.agent.jsonrpc import Notification, Request, RequestId, Response
from jidoka.config import AgentConfig, CodexSettings
from jidoka.outcomes import AgentStop

CODEX_VERSION = "0.169.0"
CODEX_PACKAGE = f"@openai/codex@{CODEX_VERSION}"
DEFAULT_COMMAND = "codex app-server"
CODEX_HOME_DIR = ".jidoka/codex-home"
INTERRUPT_GRACE_S = 1.0
"""The supervisor closes stdin right after :meth:`CodexAdapter.interrupt`, and Codex exits on
EOF without finishing the turn. This grace lets it answer ``turn/interrupt`` and send
``turn/completed`` (observed: ~10 ms) so the transcript shows how the turn ended."""
INSTALL_HINT = f"install it with `npm install -g {CODEX_PACKAGE}` or set agent.command"

_USER_AGENT_VERSION = re.compile(r"^[^/\s]+/(\S+)")


def _client_version() -> str:
    try:
        return metadata.version("jidoka")
    except metadata.PackageNotFoundError:
        return "0"


class CodexAdapter(AgentAdapter):
    name = "codex"
    wind_down_s = 5.0

    def __init__(self, agent: AgentConfig, environ: Mapping[str, str]) -> None:
        self._settings: CodexSettings = agent.codex
        self._command = agent.command or DEFAULT_COMMAND
        # A CODEX_HOME of the user's (agent.env wins over the worker's) is left alone.
        self._own_home = "CODEX_HOME" not in agent.env and not environ.get("CODEX_HOME")
        self._ids = itertools.count(1)
        self._pending: dict[RequestId, str] = {}
        """Our requests awaiting a response: id -> method."""
        self._outbox: list[str] = []
        """Replies decided while parsing, written by :meth:`respond` (parse has no I/O)."""
        self._workspace = Path(".")
        self._first_turn = ""
        self._thread_id: str | None = None
        self._turn_id: str | None = None
        self._turn_active = False
        self._turns_started = 0
        self._started = False
        """The first ``turn/start`` was accepted: the handshake is over."""
        self._startup_timed_out = False
        self._rate_limits = RateLimits()
        self._override: StopOverride | None = None
        """Why the attempt failed, when the agent's words said more than "failed"."""

    # -- the process ----------------------------------------------------------------------------

    def launch(self, turn: TurnContext) -> Launch:
        env: dict[str, str] = {}
        if self._own_home:
            home = Path(turn.workspace) / CODEX_HOME_DIR
            home.mkdir(parents=True, exist_ok=True)
            env["CODEX_HOME"] = str(home)
        return Launch(command=self._command, stdin=StdinMode.PROTOCOL, env=env)

    async def begin(self, io: AgentIO, turn: TurnContext, launch: Launch) -> None:
        self._workspace = Path(turn.workspace)
        self._first_turn = turn.text
        client = {"name": "jidoka", "title": "Jidoka", "version": _client_version()}
        io.send(self._request("initialize", {"clientInfo": client, "capabilities": _CAPS}))
        io.spawn(self._startup_watchdog(io))

    async def _startup_watchdog(self, io: AgentIO) -> None:
        """``read_timeout_s`` for the handshake: a server that never answers gets its stdin
        closed (its cue to exit), so the attempt ends now rather than at the stall clock."""
        await asyncio.sleep(self._settings.read_timeout_s)
        if not self._started and self._override is None:
            self._startup_timed_out = True
            io.close_stdin()

    async def next_turn(self, io: AgentIO, turn: TurnContext) -> NextTurn:
        io.send(self._turn_start(turn.text))
        return NextTurn.SAME_PROCESS

    async def interrupt(self, io: AgentIO) -> None:
        if self._thread_id is None or self._turn_id is None or not self._turn_active:
            return  # nothing in flight: the group kill is all there is to do
        params = {"threadId": self._thread_id, "turnId": self._turn_id}
        io.send(self._request("turn/interrupt", params))
        await asyncio.sleep(INTERRUPT_GRACE_S)

    async def respond(self, event: AgentEvent, io: AgentIO) -> None:
        for line in self._outbox:
            io.send(line)
        self._outbox.clear()

    def resume_token(self) -> str | None:
        return self._thread_id

    def refine_stop(self, stop: AgentStop, exit_code: int | None) -> StopOverride | None:
        if stop is AgentStop.FAILED:
            return self._override
        if stop is not AgentStop.EXITED:
            return None  # our own clocks and budgets already say the right thing
        if (missing := launch_failure(exit_code, "codex", INSTALL_HINT)) is not None:
            return missing
        if self._startup_timed_out:
            return StopOverride(
                AgentStop.FAILED,
                "codex did not finish initialize/thread/start/turn/start within "
                f"{self._settings.read_timeout_s} s (agent.codex.read_timeout_s)",
            )
        if self._thread_id is None:
            return StopOverride(
                AgentStop.FAILED, f"codex exited with code {exit_code} before a thread started"
            )
        if self._turn_active:
            return StopOverride(
                AgentStop.FAILED,
                f"codex exited with code {exit_code} during turn {self._turns_started} "
                "without turn/completed",
            )
        return None

    # -- outgoing ---------------------------------------------------------------------------------

    def _request(self, method: str, params: Mapping[str, object]) -> str:
        ident = next(self._ids)
        self._pending[ident] = method
        return jsonrpc.request(ident, method, params)

    def _thread_start(self) -> str:
        settings = self._settings
        params: dict[str, object] = {
            "cwd": str(self._workspace),
            "approvalPolicy": settings.approval_policy,
            "sandbox": settings.sandbox,
            # Persisted in the per-workspace CODEX_HOME: a rollout to read after the fact.
            "ephemeral": False,
        }
        if settings.model is not None:
            params["model"] = settings.model
        return self._request("thread/start", params)

    def _turn_start(self, text: str) -> str:
        assert self._thread_id is not None
        self._turns_started += 1
        self._turn_active = True
        self._turn_id = None
        params: dict[str, object] = {
            "threadId": self._thread_id,
            "input": [{"type": "text", "text": text}],
            "cwd": str(self._workspace),
            "approvalPolicy": self._settings.approval_policy,
            "sandboxPolicy": sandbox_policy(self._settings),
        }
        return self._request("turn/start", params)

    # -- incoming ---------------------------------------------------------------------------------

    def parse(self, line: str) -> list[AgentEvent]:
        raw = jsonline.parse_object(line)
        message = None if raw is None else jsonrpc.decode_object(raw)
        match message:
            case None:
                return [raw_event(line)]
            case Response():
                return self._on_response(message, raw or {}, line)
            case Request():
                return self._on_request(message, raw or {})
            case Notification():
                return self._on_notification(message, raw or {}, line)
            case _:
                assert_never(message)

    def _on_response(
        self, response: Response, data: Mapping[str, object], line: str
    ) -> list[AgentEvent]:
        method = self._pending.pop(response.id, None)
        if method is None:
            return [raw_event(line)]
        if response.error is not None:
            if method == "turn/interrupt":  # the turn had ended meanwhile: nothing to stop
                return [AgentEvent(EventKind.WARNING, data, message=response.error_message)]
            return self._fail(data, f"codex refused {method}: {response.error_message}")
        match method:
            case "initialize":
                self._outbox.append(jsonrpc.notification("initialized"))
                self._outbox.append(self._thread_start())
                events = [AgentEvent(EventKind.PROGRESS, data, message="codex initialized")]
                agent = jsonline.text(response.result, "userAgent") or ""
                found = _USER_AGENT_VERSION.match(agent)
                if found and found.group(1) != CODEX_VERSION:
                    drift = f"codex {found.group(1)} is not the pinned {CODEX_VERSION}"
                    events.append(AgentEvent(EventKind.WARNING, data, message=drift))
                return events
            case "thread/start":
                thread = jsonline.text(jsonline.obj(response.result, "thread"), "id")
                if thread is None:
                    return self._fail(data, "codex answered thread/start without a thread id")
                self._thread_id = thread
                self._outbox.append(self._turn_start(self._first_turn))
                return [AgentEvent(EventKind.SESSION_STARTED, data, message=f"thread {thread}")]
            case "turn/start":
                turn = jsonline.text(jsonline.obj(response.result, "turn"), "id")
                self._turn_id = self._turn_id or turn
                self._started = True
                return [AgentEvent(EventKind.PROGRESS, data, message=f"turn {turn} accepted")]
            case _:
                return [AgentEvent(EventKind.RAW, data)]

    def _on_request(self, request: Request, data: Mapping[str, object]) -> list[AgentEvent]:
        answer = codex_requests.answer(request, self._settings, self._workspace)
        self._outbox.append(answer.line)
        event = AgentEvent(EventKind.REQUEST, data, message=answer.summary)
        if answer.fail is None:
            return [event]
        return [event, *self._fail(data, answer.fail)]

    def _on_notification(
        self, note: Notification, data: Mapping[str, object], line: str
    ) -> list[AgentEvent]:
        params = note.params
        match note.method:
            case "thread/tokenUsage/updated":
                reading = codex_events.token_usage(params)
                if reading is None:
                    return [raw_event(line)]
                return [AgentEvent(EventKind.USAGE, data, usage=reading)]
            case "account/rateLimits/updated":
                info = self._rate_limits.update(params)
                if info is None:
                    return [raw_event(line)]
                return [AgentEvent(EventKind.RATE_LIMIT, data, rate_limit=info)]
            case "turn/completed":
                return self._on_turn_completed(params, data)
            case "turn/started":
                if jsonline.text(params, "threadId") == self._thread_id:
                    turn = jsonline.text(jsonline.obj(params, "turn"), "id")
                    self._turn_id = self._turn_id or turn
                return [AgentEvent(EventKind.TURN_STARTED, data)]
            case method:
                kind = codex_events.notification_kind(method, params)
                if kind is EventKind.RAW:
                    return [raw_event(line)]
                return [AgentEvent(kind, data, message=_summary(params))]

    def _on_turn_completed(
        self, params: jsonline.JsonObject, data: Mapping[str, object]
    ) -> list[AgentEvent]:
        end = codex_events.turn_end(params)
        if end is None:
            return [AgentEvent(EventKind.WARNING, data, message="turn/completed without a turn")]
        ours = end.thread_id == self._thread_id and self._turn_id in (None, end.turn_id)
        if not ours:
            return [AgentEvent(EventKind.PROGRESS, data)]  # a sub-agent's thread, an old turn
        self._turn_active = False
        match end.status:
            case TurnStatus.COMPLETED | TurnStatus.INTERRUPTED:
                return [AgentEvent(EventKind.TURN_ENDED, data, end.message, turn_status=end.status)]
            case TurnStatus.FAILED:
                failed = AgentEvent(
                    EventKind.TURN_ENDED, data, end.message, turn_status=TurnStatus.FAILED
                )
                match end.failure:
                    case Failure.RATE_LIMITED:
                        # The supervisor reads an exhausted limit before a failed turn as
                        # RATE_LIMITED, and gates the line until resets_at.
                        limit = self._rate_limits.info(exhausted=True)
                        exhausted = AgentEvent(EventKind.RATE_LIMIT, data, rate_limit=limit)
                        return [exhausted, failed]
                    case Failure.UNAUTHORIZED:
                        self._override = StopOverride(
                            AgentStop.UNAVAILABLE,
                            f"agent unavailable: codex is not authorized ({end.message}); "
                            "give it CODEX_API_KEY through agent.env, or point CODEX_HOME at "
                            "a logged-in home",
                        )
                        return [failed]
                    case Failure.OTHER | None:
                        return [failed]
                    case _:
                        assert_never(end.failure)
            case _:
                assert_never(end.status)

    def _fail(self, data: Mapping[str, object], detail: str) -> list[AgentEvent]:
        """End the attempt now as a failure: a TURN_ENDED the supervisor cannot continue."""
        self._override = self._override or StopOverride(AgentStop.FAILED, detail)
        return [AgentEvent(EventKind.TURN_ENDED, data, detail, turn_status=TurnStatus.FAILED)]


_CAPS = {"experimentalApi": True}


def sandbox_policy(settings: CodexSettings) -> dict[str, object]:
    """``agent.codex.sandbox`` + ``network_access`` as 0.169.0's per-turn ``sandboxPolicy``."""
    match settings.sandbox:
        case "workspace-write":
            return {"type": "workspaceWrite", "networkAccess": settings.network_access}
        case "read-only":
            return {"type": "readOnly", "networkAccess": settings.network_access}
        case "danger-full-access":
            return {"type": "dangerFullAccess"}
        case _:
            assert_never(settings.sandbox)


def _summary(params: jsonline.JsonObject) -> str:
    """A short human line for warnings and retry noise."""
    error = jsonline.obj(params, "error")
    if error is not None:
        return jsonline.text(error, "message") or ""
    return jsonline.text(params, "message") or jsonline.text(params, "summary") or ""
