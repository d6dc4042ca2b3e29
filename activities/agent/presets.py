"""Presets on the command adapter: ``agent.kind: command`` + ``agent.preset``.

A preset is a default command, a reader for the agent's own output (which lines are progress,
where usage hides) and the meaning of its exit codes. The process is one-shot: its exit ends
its only turn. The output shapes are those of the versions named below (the table in
docs/agents.md#command-agents-and-presets-agentkind-command).

======== ============================================================ =====================
preset   default command (stdin is /dev/null)                          usage
======== ============================================================ =====================
gemini   ``gemini -p "<prompt>" -o stream-json --approval-mode yolo      ``result.stats``
         --skip-trust`` (@google/gemini-cli 0.61.0)                      (final)
opencode ``opencode run --format json --auto "<prompt>"``                ``step_finish
         (opencode-ai 1.18.33)                                           .part.tokens`` (delta)
aider    ``aider --message-file <prompt file> --yes-always --no-stream   "Tokens: 12k sent,
         --no-pretty --no-check-update`` (aider-chat 0.86.2)             345 received." (delta)
======== ============================================================ =====================

``<prompt>`` is ``"$(cat "$JIDOKA_PROMPT_FILE")"``: one argument, so at most 128 KiB on Linux.
``agent.command`` replaces the default command (the reader stays); ``agent.usage`` replaces the
preset's usage paths. Gemini's exit codes: 41 (not authenticated) -> unavailable, 53 (its own
session turn cap) -> turn limit. ``--skip-trust`` matters: in an untrusted folder Gemini silently
downgrades yolo to asking, and asking would wait for nobody.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Literal

from activities.agent import jsonline
from activities.agent.adapters import (
    AgentAdapter,
    Launch,
    StdinMode,
    StopOverride,
    TurnContext,
    launch_failure,
)
from activities.agent.events import AgentEvent, EventKind, UsageMode, UsageReading, raw_event
from activities.agent.jsonline import JsonObject
from activities.agent.usage import reading_from_fields
from jidoka.config import AgentConfig, UsageFields
from jidoka.outcomes import AgentStop

PresetName = Literal["gemini", "opencode", "aider"]
PROMPT_ARG = '"$(cat "$JIDOKA_PROMPT_FILE")"'

Reader = Callable[[str, JsonObject | None], list[AgentEvent]]
"""One stdout line (and its JSON object, if it is one) -> events."""


@dataclass(frozen=True)
class Preset:
    name: PresetName
    version: str
    """The version whose output shapes the reader follows."""
    command: str
    read: Reader
    install: str
    exit_stops: Mapping[int, StopOverride] = field(default_factory=dict[int, StopOverride])


# -- gemini -------------------------------------------------------------------------------------


def read_gemini(line: str, event: JsonObject | None) -> list[AgentEvent]:
    match jsonline.text(event, "type") if event is not None else None:
        case None:
            return [raw_event(line)]
        case "init":
            return [AgentEvent(EventKind.SESSION_STARTED, event or {})]
        case "message":
            return [AgentEvent(EventKind.MESSAGE, event or {})]
        case "tool_use" | "tool_result":
            return [AgentEvent(EventKind.TOOL, event or {})]
        case "error":  # non-fatal by Gemini's own account; the exit code says if it was
            return [AgentEvent(EventKind.WARNING, event or {}, message=_error_text(event))]
        case "result":
            events = [AgentEvent(EventKind.PROGRESS, event or {}, message="result")]
            stats = jsonline.obj(event, "stats")
            if stats is not None:
                reading = UsageReading(
                    input_tokens=jsonline.count(stats, "input_tokens"),
                    output_tokens=jsonline.count(stats, "output_tokens"),
                    total_tokens=jsonline.count(stats, "total_tokens") or None,
                    mode=UsageMode.FINAL,  # the run's total, reported once at the end
                    scope="gemini",
                )
                events.append(AgentEvent(EventKind.USAGE, event or {}, usage=reading))
            return events
        case _:
            return [raw_event(line)]


def _error_text(event: JsonObject | None) -> str:
    return (
        jsonline.text(event, "message")
        or jsonline.text(jsonline.obj(event, "error"), "message")
        or ""
    )


# -- opencode -----------------------------------------------------------------------------------


def read_opencode(line: str, event: JsonObject | None) -> list[AgentEvent]:
    match jsonline.text(event, "type") if event is not None else None:
        case None:
            return [raw_event(line)]
        case "step_start":
            return [AgentEvent(EventKind.TURN_STARTED, event or {})]
        case "text":
            return [AgentEvent(EventKind.MESSAGE, event or {})]
        case "tool_use":
            return [AgentEvent(EventKind.TOOL, event or {})]
        case "error":
            return [AgentEvent(EventKind.WARNING, event or {}, message=_error_text(event))]
        case "step_finish":
            events = [AgentEvent(EventKind.PROGRESS, event or {}, message="step finished")]
            tokens = jsonline.obj(jsonline.obj(event, "part"), "tokens")
            if tokens is not None:
                cache = jsonline.obj(tokens, "cache")
                reading = UsageReading(
                    # Prompt tokens including cache reads and writes, output including
                    # reasoning: what the provider bills, like the Codex and Claude readers.
                    input_tokens=jsonline.count(tokens, "input")
                    + jsonline.count(cache, "read")
                    + jsonline.count(cache, "write"),
                    output_tokens=jsonline.count(tokens, "output")
                    + jsonline.count(tokens, "reasoning"),
                    mode=UsageMode.DELTA,  # one step's tokens: they add up
                    scope="opencode",
                )
                events.append(AgentEvent(EventKind.USAGE, event or {}, usage=reading))
            return events
        case _:
            return [raw_event(line)]


# -- aider --------------------------------------------------------------------------------------

_COUNT = r"([\d.,]+)\s*([kKmM]?)"
AIDER_TOKENS = re.compile(
    rf"Tokens:\s*{_COUNT}\s+sent(?:,\s*[\d.,]+\s*[kKmM]?\s+cache \w+)*,\s*{_COUNT}\s+received"
)
"""``Tokens: 12k sent, 1.2k cache hit, 345 received. Cost: $0.01 message, $0.03 session.``
(cache hits and writes are part of "sent")."""
_SCALE = {"": 1, "k": 1_000, "m": 1_000_000}


def aider_tokens(number: str, suffix: str) -> int | None:
    try:
        value = float(number.replace(",", ""))
    except ValueError:
        return None
    if not math.isfinite(value):  # "1e999", or more digits than a float holds
        return None
    return round(value * _SCALE[suffix.lower()])


def read_aider(line: str, event: JsonObject | None) -> list[AgentEvent]:
    """Aider has no machine-readable output: every printed line is activity of a text agent
    (progress), and the tokens line of each message is a usage delta."""
    if not line.strip():
        return [raw_event(line)]
    found = AIDER_TOKENS.search(line)
    if found is not None:
        sent = aider_tokens(found.group(1), found.group(2))
        received = aider_tokens(found.group(3), found.group(4))
        if sent is not None and received is not None:
            reading = UsageReading(
                input_tokens=sent, output_tokens=received, mode=UsageMode.DELTA, scope="aider"
            )
            return [AgentEvent(EventKind.USAGE, {"line": line}, usage=reading)]
    return [AgentEvent(EventKind.MESSAGE, {"line": line}, message=line.strip()[:200])]


# -- the presets ----------------------------------------------------------------------------------

PRESETS: Mapping[PresetName, Preset] = {
    "gemini": Preset(
        name="gemini",
        version="0.61.0",
        command=f"gemini -p {PROMPT_ARG} -o stream-json --approval-mode yolo --skip-trust",
        read=read_gemini,
        install="install it with `npm install -g @google/gemini-cli@0.61.0` or set agent.command",
        exit_stops={
            41: StopOverride(
                AgentStop.UNAVAILABLE,
                "agent unavailable: gemini is not authenticated (exit 41); set GEMINI_API_KEY "
                "through agent.env",
            ),
            53: StopOverride(
                AgentStop.TURN_LIMIT,
                "gemini stopped at its own session turn cap (exit 53; maxSessionTurns in its "
                "settings)",
            ),
        },
    ),
    "opencode": Preset(
        name="opencode",
        version="1.18.33",
        command=f"opencode run --format json --auto {PROMPT_ARG}",
        read=read_opencode,
        install="install it with `npm install -g opencode-ai@1.18.33` or set agent.command",
    ),
    "aider": Preset(
        name="aider",
        version="0.86.2",
        command=(
            'aider --message-file "$JIDOKA_PROMPT_FILE" --yes-always --no-stream --no-pretty '
            "--no-check-update"
        ),
        read=read_aider,
        install="install it with `pip install aider-chat==0.86.2` or set agent.command",
    ),
}


class PresetAdapter(AgentAdapter):
    def __init__(self, preset: PresetName, agent: AgentConfig) -> None:
        self.preset = PRESETS[preset]
        self.name = f"command:{preset}"
        self._command = agent.command or self.preset.command
        self._usage: UsageFields | None = agent.usage

    def launch(self, turn: TurnContext) -> Launch:
        # The prompt travels in argv or a file; stdin is /dev/null so that nothing can sit
        # waiting on it (a login prompt, a confirmation).
        return Launch(command=self._command, stdin=StdinMode.CLOSED)

    def parse(self, line: str) -> list[AgentEvent]:
        event = jsonline.parse_object(line)
        events = self.preset.read(line, event)
        if self._usage is None:
            return events
        # agent.usage replaces the preset's paths: its reading, never both (double counting).
        events = [e for e in events if e.kind is not EventKind.USAGE]
        reading = reading_from_fields(event, self._usage) if event is not None else None
        if reading is not None:
            events.append(AgentEvent(EventKind.USAGE, event or {}, usage=reading))
        return events or [raw_event(line)]

    def refine_stop(self, stop: AgentStop, exit_code: int | None) -> StopOverride | None:
        if stop is not AgentStop.EXITED or exit_code is None:
            return None  # Jidoka's own clocks and budgets already say the right thing
        missing = launch_failure(exit_code, self.preset.name, self.preset.install)
        return missing or self.preset.exit_stops.get(exit_code)
