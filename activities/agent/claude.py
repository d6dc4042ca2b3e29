"""The Claude Code adapter: ``claude -p --output-format stream-json --verbose``, one process per
turn, the prompt on stdin (docs/agents.md#claude-code-agentkind-claude; shapes verified with
Claude Code 2.1.197).

* launch: ``<agent.command or claude> -p --output-format stream-json --verbose
  --permission-mode M [--max-turns N] [--allowedTools ...] [--disallowedTools ...] [--model X]
  [--max-budget-usd Y] [--resume SESSION]`` from ``agent.claude``. ``agent.command`` names
  the executable (e.g. ``npx -y @anthropic-ai/claude-code@2.1.197``); Jidoka appends the flags;
* continuation: a new process per turn with ``--resume <session_id>`` and the continuation
  guidance on stdin; ``--max-budget-usd`` and ``--max-turns`` therefore apply per process;
* failure comes from ``result.is_error`` and the exit code, never from ``subtype`` alone: the
  not-logged-in run says ``subtype: "success"`` with ``is_error: true`` and exits 1;
* ``bypassPermissions`` is refused (not an allowed ``permission_mode``, and refused in
  ``agent.command``): Claude Code refuses it as root anyway, and Jidoka's posture is the
  allow-list below, not "allow everything".

In ``-p`` mode Claude never waits for an approval: a tool outside ``--allowedTools`` is denied,
the model is told, and the denial is listed in ``result.permission_denials``.
``AskUserQuestion`` is disallowed by default, so nothing can wait for a human. Without a control
channel the interrupt is the group's SIGTERM.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from activities.agent import jsonline
from activities.agent.adapters import (
    AgentAdapter,
    AgentIO,
    Launch,
    StdinMode,
    StopOverride,
    TurnContext,
    launch_failure,
)
from activities.agent.events import AgentEvent, EventKind, TurnStatus, UsageMode, UsageReading
from activities.agent.events import raw_event as raw
from activities.agent.jsonline import JsonObject
from jidoka.config import AgentConfig, ClaudeSettings
from jidoka.models import RateLimitInfo
from jidoka.outcomes import AgentStop

CLAUDE_CODE_VERSION = "2.1.197"
"""The version whose stream-json was captured
(tests/support/agents/transcripts/claude-stream-json-notloggedin.jsonl)."""
DEFAULT_COMMAND = "claude"
INSTALL_HINT = (
    f"install it with `npm install -g @anthropic-ai/claude-code@{CLAUDE_CODE_VERSION}` "
    "or set agent.command"
)
REFUSED_IN_COMMAND = ("bypassPermissions", "dangerously-skip-permissions")
"""Flags that would switch every permission check off; refused in ``agent.command``."""
_UNAVAILABLE_ERRORS = {
    "authentication_failed": "claude is not logged in or its key was refused",
    "billing_error": "claude's account cannot be billed",
}


def refused_command(command: str | None) -> str | None:
    """Why ``agent.command`` cannot be used for Claude, or None."""
    for flag in REFUSED_IN_COMMAND:
        if command is not None and flag in command:
            return (
                f"agent.command contains '{flag}': Jidoka runs Claude with "
                "agent.claude.permission_mode and allowed_tools, never with every check off "
                "(Claude Code refuses it as root anyway)"
            )
    return None


def claude_flags(settings: ClaudeSettings, resume: str | None) -> list[str]:
    flags = ["-p", "--output-format", "stream-json", "--verbose"]
    flags += ["--permission-mode", settings.permission_mode]
    if settings.max_turns is not None:
        flags += ["--max-turns", str(settings.max_turns)]
    if settings.allowed_tools:
        flags += ["--allowedTools", *settings.allowed_tools]
    if settings.disallowed_tools:
        flags += ["--disallowedTools", *settings.disallowed_tools]
    if settings.model is not None:
        flags += ["--model", settings.model]
    if settings.max_budget_usd is not None:
        flags += ["--max-budget-usd", f"{settings.max_budget_usd:g}"]
    if resume is not None:
        flags += ["--resume", resume]
    return flags


@dataclass(frozen=True)
class _Result:
    subtype: str
    is_error: bool
    text: str
    num_turns: int
    cost_usd: float | None


class ClaudeAdapter(AgentAdapter):
    name = "claude"
    wind_down_s = 5.0
    """After ``result`` the CLI exits by itself: wait for its exit code."""

    def __init__(self, agent: AgentConfig) -> None:
        self._settings = agent.claude
        self._executable = agent.command or DEFAULT_COMMAND
        self._session_id: str | None = None
        self._scope = "claude-turn:1"
        self._counted: dict[str, tuple[int, int, int]] = {}
        """Per API message id: the usage already counted (lines repeat a message's usage)."""
        self._anonymous = 0
        self._result: _Result | None = None
        self._unavailable: str | None = None
        self._rate_limit: RateLimitInfo | None = None
        self.cost_usd = 0.0
        """Sum of ``total_cost_usd`` over this attempt's processes (transcript and tests)."""
        self.agent_turns = 0
        """Sum of ``num_turns``: Claude's own agentic turns, not the supervisor's."""

    async def interrupt(self, io: AgentIO) -> None:
        # ``-p`` mode has no control channel: the group's SIGTERM is the interrupt, and
        # waiting for a hung process to exit by itself would only delay it.
        self.wind_down_s = 0.0

    def launch(self, turn: TurnContext) -> Launch:
        # A fresh process per turn: what the last one said no longer decides anything.
        self._scope = f"claude-turn:{turn.number}"
        self._counted.clear()
        self._result = None
        self._unavailable = None
        # Resume within the attempt only: across attempts the prompt carries the guidance,
        # and a session id from another host's ~/.claude would fail the launch.
        resume = turn.resume_token if turn.number > 1 else None
        flags = claude_flags(self._settings, resume)
        command = " ".join([self._executable, *(shlex.quote(flag) for flag in flags)])
        return Launch(command=command, stdin=StdinMode.PROMPT)

    def resume_token(self) -> str | None:
        return self._session_id

    # -- events -----------------------------------------------------------------------------------

    def parse(self, line: str) -> list[AgentEvent]:
        event = jsonline.parse_object(line)
        if event is None:
            return [raw(line)]
        session = jsonline.text(event, "session_id")
        if session:
            self._session_id = session
        match jsonline.text(event, "type"):
            case "system":
                return [self._system(event, line)]
            case "assistant":
                return self._assistant(event)
            case "user":
                return [AgentEvent(EventKind.TOOL, event, message="tool result")]
            case "stream_event":
                return [AgentEvent(EventKind.PROGRESS, event)]
            case "rate_limit_event":
                return [self._rate_limit_event(event)]
            case "result":
                return self._on_result(event)
            case _:
                return [raw(line)]

    def _system(self, event: JsonObject, line: str) -> AgentEvent:
        match jsonline.text(event, "subtype"):
            case "init":
                model = jsonline.text(event, "model") or "?"
                return AgentEvent(EventKind.SESSION_STARTED, event, message=f"model {model}")
            case "api_retry":
                return AgentEvent(EventKind.RETRYING, event, message="API retry")  # not progress
            case _:
                return raw(line)

    def _assistant(self, event: JsonObject) -> list[AgentEvent]:
        message = jsonline.obj(event, "message")
        content = jsonline.items(message, "content")
        uses_tool = any(jsonline.text(part, "type") == "tool_use" for part in content)
        events = [AgentEvent(EventKind.TOOL if uses_tool else EventKind.MESSAGE, event)]
        error = jsonline.text(event, "error")
        if error in _UNAVAILABLE_ERRORS:
            self._unavailable = _UNAVAILABLE_ERRORS[error]
        elif error == "rate_limit":
            events.append(self._exhausted(event))
        reading = self._message_usage(message)
        if reading is not None:
            events.append(AgentEvent(EventKind.USAGE, event, usage=reading))
        return events

    def _message_usage(self, message: JsonObject | None) -> UsageReading | None:
        """The part of this message's usage not counted yet (a DELTA in the turn's scope)."""
        usage = jsonline.obj(message, "usage")
        if usage is None:
            return None
        now = (
            _prompt_tokens(usage),
            jsonline.count(usage, "output_tokens"),
            jsonline.count(usage, "cache_read_input_tokens"),
        )
        key = jsonline.text(message, "id")
        if key is None:  # no id, no way to de-duplicate: count it once as it is
            self._anonymous += 1
            key = f"anonymous-{self._anonymous}"
        before = self._counted.get(key, (0, 0, 0))
        self._counted[key] = (
            max(before[0], now[0]),
            max(before[1], now[1]),
            max(before[2], now[2]),
        )
        delta = tuple(max(n - b, 0) for n, b in zip(now, before, strict=True))
        if delta[:2] == (0, 0):
            return None
        return UsageReading(
            input_tokens=delta[0],
            output_tokens=delta[1],
            cached_input_tokens=delta[2],
            mode=UsageMode.DELTA,
            scope=self._scope,
        )

    def _rate_limit_event(self, event: JsonObject) -> AgentEvent:
        # Shape from the SDKs (not verified against a live account): rate_limit_info.status is
        # "allowed" | "allowed_warning" | "rejected", resetsAt in epoch seconds.
        info = jsonline.obj(event, "rate_limit_info")
        resets = jsonline.number(info, "resetsAt")
        self._rate_limit = RateLimitInfo(
            resets_at=_epoch(resets),
            used_percent=jsonline.number(info, "utilization"),
            exhausted=jsonline.text(info, "status") == "rejected",
            source="claude",
        )
        return AgentEvent(EventKind.RATE_LIMIT, event, rate_limit=self._rate_limit)

    def _exhausted(self, event: JsonObject) -> AgentEvent:
        known = self._rate_limit or RateLimitInfo(source="claude")
        self._rate_limit = known.model_copy(update={"exhausted": True})
        return AgentEvent(EventKind.RATE_LIMIT, event, rate_limit=self._rate_limit)

    def _on_result(self, event: JsonObject) -> list[AgentEvent]:
        subtype = jsonline.text(event, "subtype") or "?"
        result = _Result(
            subtype=subtype,
            # An error subtype is never a success, whatever is_error says; "success" is one
            # only when is_error is false (the not-logged-in run has both "success" and true).
            is_error=jsonline.flag(event, "is_error") or subtype.startswith("error"),
            text=jsonline.text(event, "result") or "",
            num_turns=jsonline.count(event, "num_turns"),
            cost_usd=jsonline.number(event, "total_cost_usd"),
        )
        self._result = result
        self.agent_turns += result.num_turns
        self.cost_usd += result.cost_usd or 0.0
        events: list[AgentEvent] = []
        usage = jsonline.obj(event, "usage")
        if usage is not None:
            # The process's authoritative total replaces the deltas counted in its scope.
            final = UsageReading(
                input_tokens=_prompt_tokens(usage),
                output_tokens=jsonline.count(usage, "output_tokens"),
                cached_input_tokens=jsonline.count(usage, "cache_read_input_tokens"),
                mode=UsageMode.FINAL,
                scope=self._scope,
            )
            events.append(AgentEvent(EventKind.USAGE, event, usage=final))
        cost = f", ${result.cost_usd:.4f}" if result.cost_usd is not None else ""
        summary = f"{subtype}, {result.num_turns} agentic turns{cost}"
        if result.is_error:
            text = f"claude result {summary}: {result.text}" if result.text else summary
            events.append(
                AgentEvent(EventKind.TURN_ENDED, event, text, turn_status=TurnStatus.FAILED)
            )
        else:
            events.append(
                AgentEvent(EventKind.TURN_ENDED, event, summary, turn_status=TurnStatus.COMPLETED)
            )
        return events

    # -- after the session ------------------------------------------------------------------------

    def refine_stop(self, stop: AgentStop, exit_code: int | None) -> StopOverride | None:
        settings = self._settings
        result = self._result
        if stop is AgentStop.EXITED:
            if (missing := launch_failure(exit_code, "claude", INSTALL_HINT)) is not None:
                return missing
            if result is None and exit_code == 0:
                return StopOverride(
                    AgentStop.FAILED, "claude exited with code 0 without a result line"
                )
            return None  # a non-zero exit keeps the supervisor's detail: it quotes stderr
        if stop is not AgentStop.FAILED or result is None:
            return None
        if self._unavailable is not None:
            return StopOverride(
                AgentStop.UNAVAILABLE,
                f"agent unavailable: {self._unavailable} ({result.text or result.subtype}); set "
                "ANTHROPIC_API_KEY through agent.env or log in as the worker's user",
            )
        match result.subtype:
            case "error_max_turns":
                # Claude's own cap, not budgets.max_turns: TURN_LIMIT, so the decision is a
                # continuation (a fresh attempt with guidance), like Jidoka's own turn limit.
                return StopOverride(
                    AgentStop.TURN_LIMIT,
                    f"claude stopped at its own cap after {result.num_turns} agentic turns "
                    f"(agent.claude.max_turns = {settings.max_turns})",
                )
            case "error_max_budget_usd":
                # A spend cap the operator set: the same family as the token budgets, so the
                # outcome is budget_exceeded and the issue waits for a person, not a retry that
                # would spend the same money again.
                spent = f"${result.cost_usd:.4f}" if result.cost_usd is not None else "its"
                return StopOverride(
                    AgentStop.TOKEN_BUDGET,
                    f"claude spent {spent} of the ${settings.max_budget_usd:g} it may spend per "
                    "process (agent.claude.max_budget_usd)",
                )
            case _:
                return None


def _prompt_tokens(usage: Mapping[str, object]) -> int:
    """Every prompt token the model read: fresh, cache writes and cache reads (like Codex's
    ``inputTokens``, which include cached input)."""
    return (
        jsonline.count(usage, "input_tokens")
        + jsonline.count(usage, "cache_creation_input_tokens")
        + jsonline.count(usage, "cache_read_input_tokens")
    )


def _epoch(seconds: float | None) -> datetime | None:
    """``resetsAt`` as a moment; None when absent or past what a datetime holds (year 9999)."""
    if seconds is None or not seconds > 0:
        return None
    try:
        return datetime.fromtimestamp(seconds, UTC)
    except (OverflowError, OSError, ValueError):
        return None
