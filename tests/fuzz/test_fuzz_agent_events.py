"""Agent output, fuzzed: every line an agent prints reaches an adapter's ``parse``, and the
agent (and the model driving it) decides what is in it.

The supervisor calls ``parse`` on each stdout line, ``parse_stderr`` on each stderr line,
records every event in the transcript, then lets the adapter answer (``respond``). None of it
is guarded: an exception there ends the session with a traceback. So, for every adapter (Codex,
Claude, the command protocol, its presets, a usage field map):

* ``parse`` never raises; it gives a non-empty list of events, each with a usage reading of
  non-negative counts if any, a rate-limit snapshot that encodes as JSON, a turn status on
  ``TURN_ENDED`` only;
* the events can be written to a transcript and answered;
* fed as a session (a realistic protocol exchange, mutated), the adapter keeps going and its
  usage meter stays non-negative.

The lines: arbitrary text, random JSON, the documented shapes of each agent mutated (fields of
other types, huge numbers, NaN, timestamps past year 9999), deep nesting, long lines, lone
surrogate escapes (Node's ``JSON.stringify`` writes one for half of an emoji cut short), NUL
in paths. The JSON-RPC and JSON-line helpers underneath get the same lines.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

import pytest
from hypothesis import event, given
from hypothesis import strategies as st
from hypothesis.strategies import DrawFn

from activities.agent import jsonline, jsonrpc
from activities.agent.adapters import AgentAdapter, TurnContext
from activities.agent.codex import CodexAdapter
from activities.agent.events import AgentEvent, EventKind
from activities.agent.selection import select_adapter
from activities.agent.transcript import Transcript
from activities.agent.usage import UsageMeter
from jidoka.config import AgentConfig
from jidoka.models import RateLimitInfo, TokenUsage
from tests.fuzz.support import NASTY_TEXT, bounded, deep, fuzzing, json_values, mutated

AGENTS: dict[str, dict[str, Any]] = {
    "claude": {"kind": "claude"},
    "codex": {"kind": "codex"},
    "command": {"kind": "command", "command": "agent"},
    "usage-map": {
        "kind": "command",
        "command": "agent",
        "usage": {
            "match": {"type": "result"},
            "input_tokens": "stats.input_tokens",
            "output_tokens": "usage.0.output",
            "total_tokens": "stats.total",
            "cumulative": True,
        },
    },
    "gemini": {"kind": "command", "preset": "gemini"},
    "opencode": {"kind": "command", "preset": "opencode"},
    "aider": {"kind": "command", "preset": "aider"},
    "scripted": {"kind": "scripted"},
}

# --------------------------------------------------------------------------------------------
# The documented shapes
# --------------------------------------------------------------------------------------------

CLAUDE: list[dict[str, Any]] = [
    {"type": "system", "subtype": "init", "session_id": "s-1", "model": "claude-x"},
    {"type": "system", "subtype": "api_retry", "attempt": 1},
    {
        "type": "assistant",
        "session_id": "s-1",
        "message": {
            "id": "m-1",
            "content": [{"type": "tool_use", "name": "Bash"}, {"type": "text", "text": "hi"}],
            "usage": {
                "input_tokens": 10,
                "output_tokens": 5,
                "cache_creation_input_tokens": 2,
                "cache_read_input_tokens": 100,
            },
        },
        "error": "rate_limit",
    },
    {"type": "user", "message": {"content": [{"type": "tool_result", "content": "ok"}]}},
    {"type": "stream_event", "event": {"type": "content_block_delta"}},
    {
        "type": "rate_limit_event",
        "rate_limit_info": {"status": "rejected", "resetsAt": 1900000000, "utilization": 100},
    },
    {
        "type": "result",
        "subtype": "error_max_turns",
        "is_error": True,
        "num_turns": 3,
        "result": "stopped",
        "total_cost_usd": 0.25,
        "usage": {"input_tokens": 20, "output_tokens": 9},
    },
]
CODEX: list[dict[str, Any]] = [
    {"id": 1, "result": {"userAgent": "codex_cli_rs/0.1.0 (Linux)"}},
    {"id": 2, "result": {"thread": {"id": "th-1"}}},
    {"id": 3, "result": {"turn": {"id": "tu-1"}}},
    {"id": 4, "error": {"code": -1, "message": "no"}},
    {"method": "turn/started", "params": {"threadId": "th-1", "turn": {"id": "tu-1"}}},
    {"method": "item/started", "params": {"item": {"type": "commandExecution"}}},
    {"method": "item/agentMessage/delta", "params": {"delta": "x"}},
    {
        "method": "thread/tokenUsage/updated",
        "params": {
            "threadId": "th-1",
            "tokenUsage": {"total": {"inputTokens": 100, "outputTokens": 7}},
        },
    },
    {
        "method": "account/rateLimits/updated",
        "params": {
            "rateLimits": {
                "primary": {"usedPercent": 100, "resetsAt": 1900000000},
                "secondary": {"usedPercent": 20, "resetsAt": 1900000500},
                "rateLimitReachedType": "primary",
            }
        },
    },
    {"method": "error", "params": {"willRetry": True, "error": {"message": "Reconnecting"}}},
    {"method": "warning", "params": {"message": "careful"}},
    {
        "id": 90,
        "method": "item/commandExecution/requestApproval",
        "params": {"cwd": "/tmp", "command": "ls", "networkApprovalContext": None},
    },
    {
        "id": "r-2",
        "method": "applyPatchApproval",
        "params": {"grantRoot": "src", "fileChanges": {"src/a.py": {}, "../../etc/x": {}}},
    },
    {"id": 91, "method": "item/fileChange/requestApproval", "params": {"grantRoot": "/"}},
    {"id": 92, "method": "item/tool/requestUserInput", "params": {"questions": [{"id": "q"}]}},
    {"id": 93, "method": "item/tool/call", "params": {"tool": "x"}},
    {"id": 94, "method": "mcpServer/elicitation/request", "params": {"message": "?"}},
    {
        "method": "turn/completed",
        "params": {
            "threadId": "th-1",
            "turn": {
                "id": "tu-1",
                "status": "failed",
                "error": {"message": "limit", "codexErrorInfo": "usageLimitExceeded"},
            },
        },
    },
]
COMMAND: list[dict[str, Any]] = [
    {"event": "usage", "input_tokens": 10, "output_tokens": 5, "total_tokens": 15},
    {"event": "progress", "message": "working"},
    {"event": "rate_limit", "resets_at": "2030-01-01T00:00:00Z", "used_percent": 99.5},
    {"type": "result", "stats": {"input_tokens": 10, "total": 12}, "usage": [{"output": 2}]},
    {"type": "result", "status": "success", "stats": {"input_tokens": 5, "output_tokens": 1}},
    {"type": "error", "severity": "warning", "message": "Loop detection is on"},
    {"type": "tool_use", "tool_name": "write_file", "parameters": {"file_path": "a"}},
    {
        "type": "step_finish",
        "part": {"type": "step-finish", "tokens": {"input": 1, "output": 2, "cache": {}}},
    },
    {"type": "text", "part": {"type": "text", "text": "Done."}},
]
AIDER = [
    "Tokens: 12k sent, 1.2k cache hit, 345 received. Cost: $0.01 message, $0.03 session.",
    "Tokens: " + "9" * 400 + " sent, 1 received.",
    "Tokens: 1e999k sent, nan received.",
    "Applied edit to calc.py",
]
SHAPES = [*CLAUDE, *CODEX, *COMMAND]
WILD = [
    '{"id": 1, "method": "item/fileChange/requestApproval", "params": {"grantRoot": "a\\u0000b"}}',
    '{"id": 2, "method": "applyPatchApproval", "params": {"fileChanges": {"\\ud800": {}}}}',
    '{"type": "rate_limit_event", "rate_limit_info": {"resetsAt": 1e300}}',
    '{"type": "rate_limit_event", "rate_limit_info": {"resetsAt": ' + "9" * 400 + "}}",
    '{"type": "result", "total_cost_usd": ' + "9" * 400 + ', "num_turns": 1e308}',
    '{"event": "usage", "input_tokens": "²", "output_tokens": "' + "9" * 5_000 + '"}',
    '{"event": "rate_limit", "used_percent": ' + "9" * 400 + ', "resets_at": "9999-12-31"}',
    '{"type": "assistant", "message": {"id": "m", "content": "\\ud83d", "usage": {}}}',
    '{"type": "result", "subtype": "error", "result": "cut \\ud83d"}',
    '{"id": "\\udfff", "method": "item/tool/call", "params": {}}',
]


@st.composite
def lines(draw: DrawFn) -> str:
    """One line of agent output."""
    match draw(st.integers(0, 9)):
        case 0 | 1 | 2:
            return json.dumps(draw(mutated(draw(st.sampled_from(SHAPES)))))
        case 3:
            return json.dumps(draw(st.sampled_from(SHAPES)))
        case 4:
            return draw(st.sampled_from(WILD + AIDER))
        case 5:
            return json.dumps(draw(json_values))
        case 6:
            depth = draw(st.sampled_from([10, 500, 999, 1_001, 3_000, 100_000]))
            return '{"type": "result", "event": "usage", "usage": ' + deep(depth) + "}"
        case 7:
            line = json.dumps(draw(st.sampled_from(SHAPES)))
            return line[: draw(st.integers(0, len(line)))] + draw(st.sampled_from(NASTY_TEXT))
        case 8:
            return draw(st.sampled_from(["", " ", "{", "{}", "[]", "{" * 10_000, "x" * 200_000]))
        case _:
            return draw(st.text(max_size=80))


# --------------------------------------------------------------------------------------------
# Driving an adapter as the supervisor does
# --------------------------------------------------------------------------------------------


class FakeIO:
    """What the supervisor gives ``respond`` and ``begin``: lines to the agent's stdin."""

    def __init__(self) -> None:
        self.sent: list[str] = []

    def send(self, text: str) -> None:
        self.sent.append(text)

    def close_stdin(self) -> None:
        return None

    def spawn(self, work: Coroutine[Any, Any, None]) -> None:
        work.close()  # the startup watchdog: no clock runs here


def adapter(name: str, workspace: str) -> AgentAdapter:
    chosen = select_adapter(AgentConfig.model_validate(AGENTS[name]), {})
    assert isinstance(chosen, AgentAdapter), chosen
    if isinstance(chosen, CodexAdapter):
        turn = TurnContext(number=1, text="Do it", workspace=workspace)
        launch = chosen.launch(turn)
        asyncio.run(chosen.begin(FakeIO(), turn, launch))  # ids 1 (initialize) onward pending
    return chosen


def check_event(item: AgentEvent) -> None:
    assert isinstance(item, AgentEvent)
    assert isinstance(item.kind, EventKind)
    assert isinstance(item.message, str)
    assert (item.turn_status is not None) <= (item.kind is EventKind.TURN_ENDED)
    if item.usage is not None:
        usage = item.usage
        assert usage.input_tokens >= 0 and usage.output_tokens >= 0 and usage.total >= 0
        assert type(usage.input_tokens) is int and type(usage.output_tokens) is int
    if item.rate_limit is not None:
        assert isinstance(item.rate_limit, RateLimitInfo)
        RateLimitInfo.model_validate_json(item.rate_limit.model_dump_json())


def feed(adapter_: AgentAdapter, transcript: Transcript, text: str, stream: str) -> None:
    """One line through the adapter, the transcript and the answer, as the supervisor does."""
    events = adapter_.parse_stderr(text) if stream == "stderr" else adapter_.parse(text)
    assert isinstance(events, list)
    if stream == "stdout":
        assert events, "a stdout line gave no event"
    for item in events:
        check_event(item)
        if item.kind is EventKind.RAW:
            transcript.record(str(item.data.get("stream", stream)), {"line": item.data["line"]})
        else:
            transcript.record(item.kind.value, item.data)
        asyncio.run(adapter_.respond(item, FakeIO()))


@fuzzing(ci_examples=150)
@given(
    name=st.sampled_from(sorted(AGENTS)),
    line=lines(),
    stream=st.sampled_from(["stdout"] * 4 + ["stderr"]),
)
def test_any_line_parses_into_events_the_supervisor_can_use(
    name: str, line: str, stream: str
) -> None:
    with tempfile.TemporaryDirectory(prefix="jidoka-fuzz-") as workspace:
        chosen = adapter(name, workspace)
        transcript = Transcript(Path(workspace) / "transcript.jsonl", scrub=lambda text: text)
        try:
            bounded(lambda: feed(chosen, transcript, line, stream))
        finally:
            transcript.close()
        # the transcript stays JSON lines, whatever the agent printed (split on "\n" only:
        # U+2028 is written as it is, and str.splitlines() would cut there)
        for written in transcript.path.read_text(encoding="utf-8").split("\n")[:-1]:
            assert isinstance(json.loads(written), dict)
    event(name)


@st.composite
def sessions(draw: DrawFn) -> tuple[str, list[str]]:
    """An agent and a few dozen lines in its own protocol, some mutated or wild."""
    name = draw(st.sampled_from(sorted(AGENTS)))
    shapes = {"claude": CLAUDE, "codex": CODEX}.get(name, COMMAND)
    script: list[str] = []
    for _ in range(draw(st.integers(1, 25))):
        match draw(st.integers(0, 5)):
            case 0 | 1 | 2:
                script.append(json.dumps(draw(st.sampled_from(shapes))))
            case 3:
                script.append(json.dumps(draw(mutated(draw(st.sampled_from(shapes))))))
            case _:
                script.append(draw(lines()))
    return name, script


@fuzzing(ci_examples=40)
@given(session=sessions())
def test_a_session_of_any_lines_keeps_a_sound_usage_meter(session: tuple[str, list[str]]) -> None:
    name, script = session
    meter = UsageMeter()
    with tempfile.TemporaryDirectory(prefix="jidoka-fuzz-") as workspace:
        chosen = adapter(name, workspace)
        transcript = Transcript(Path(workspace) / "transcript.jsonl", scrub=lambda text: text)

        def run() -> None:
            for text in script:
                for item in chosen.parse(text):
                    check_event(item)
                    if item.usage is not None:
                        meter.add(item.usage)
                    transcript.record(item.kind.value, item.data)
                    asyncio.run(chosen.respond(item, FakeIO()))

        try:
            bounded(run)
        finally:
            transcript.close()
    usage = meter.usage
    assert min(usage.input_tokens, usage.output_tokens, usage.total_tokens) >= 0
    TokenUsage.model_validate_json(usage.model_dump_json())
    event(name)


@fuzzing(ci_examples=150)
@given(line=lines())
def test_the_json_line_helpers_give_an_object_or_none(line: str) -> None:
    parsed = bounded(lambda: jsonline.parse_object(line))
    assert parsed is None or isinstance(parsed, dict)
    message = bounded(lambda: jsonrpc.decode(line))
    assert message is None or isinstance(
        message, jsonrpc.Request | jsonrpc.Notification | jsonrpc.Response
    )
    if parsed is not None:
        for key in ("usage", "input_tokens", "resetsAt", "total_cost_usd", "num_turns"):
            found = bounded(lambda key=key: jsonline.number(parsed, key))
            assert found is None or isinstance(found, float)
            assert bounded(lambda key=key: jsonline.count(parsed, key)) >= 0


FOUND = [
    *WILD,
    *AIDER,
    '{"usage": ' + deep(100_000) + "}",
    '{"event": "usage", "usage": ' + deep(100_000) + "}",
]
"""Lines that made an adapter raise before this campaign (each adapter gets each line)."""


@pytest.mark.parametrize("name", sorted(AGENTS))
def test_the_lines_that_broke_an_adapter_parse(name: str, tmp_path: Path) -> None:
    chosen = adapter(name, str(tmp_path))
    transcript = Transcript(tmp_path / "transcript.jsonl", scrub=lambda text: text)
    try:
        for line in FOUND:
            feed(chosen, transcript, line, "stdout")
    finally:
        transcript.close()


def test_a_lone_surrogate_in_a_claude_result_gives_encodable_text() -> None:
    """Found by this campaign: the escape reached the events' text, which no payload can carry;
    the JSON decode replaces it."""
    events = adapter("claude", "/nonexistent").parse(
        '{"type": "result", "subtype": "error", "result": "cut \\ud83d"}'
    )
    for item in events:
        item.message.encode("utf-8")
