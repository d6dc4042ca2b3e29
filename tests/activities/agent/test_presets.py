"""Presets on the command adapter (gemini, opencode, aider) through the ``run_agent`` activity.

The presets' *default* commands run for real: fakes named ``gemini``, ``opencode`` and
``aider`` sit first on the login shell's PATH and print the documented output shapes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from activities.agent.presets import aider_tokens
from jidoka.outcomes import AgentStop
from tests.support.agents.lab import (
    AGENTS,
    GITHUB_TOKEN,
    TRACKER_KEY,
    TRACKER_SECRET_NAME,
    TRANSCRIPTS,
    Lab,
    records,
)

FAKE = AGENTS / "fake_cli.py"


def preset_agent(
    lab: Lab, preset: str, lines: str | None, exit_code: int = 0, **extra: Any
) -> tuple[dict[str, Any], Path]:
    record = lab.records / f"{preset}-invocations.ndjson"
    home = lab.login_home({preset: lab.python_tool(FAKE)})
    env = {"HOME": str(home), "FAKE_CLI_RECORD": str(record), "FAKE_CLI_EXIT": str(exit_code)}
    if lines is not None:
        env["FAKE_CLI_LINES"] = str(TRANSCRIPTS / lines)
    if "stderr" in extra:
        env["FAKE_CLI_STDERR"] = extra.pop("stderr")
    return {"kind": "command", "preset": preset, "env": env, **extra}, record


async def test_gemini_default_command_and_final_usage(lab: Lab) -> None:
    agent, record = preset_agent(lab, "gemini", "gemini-stream-json.jsonl")
    result = await lab.run(lab.input(lab.workflow(agent)))

    assert result.stop is AgentStop.EXITED, result.detail
    assert result.exit_code == 0
    assert (result.usage.input_tokens, result.usage.output_tokens) == (15000, 800)
    assert result.usage.total_tokens == 15800
    [call] = records(record)
    prompt = (lab.path / ".jidoka" / "prompt.md").read_text()
    assert call["argv"] == [
        "-p",
        prompt.rstrip("\n"),  # $(cat ...) drops trailing newlines
        "-o",
        "stream-json",
        "--approval-mode",
        "yolo",
        "--skip-trust",
    ]
    assert call["stdin"] == ""  # /dev/null: nothing can wait on it
    kinds = [r["kind"] for r in lab.transcript(result)]
    assert {"session_started", "message", "tool", "warning", "usage"} <= set(kinds)


async def test_agent_usage_overrides_the_preset_paths(lab: Lab) -> None:
    usage = {
        "match": {"type": "result"},
        "input_tokens": "stats.input",
        "output_tokens": "stats.output_tokens",
        "cumulative": True,
    }
    agent, _ = preset_agent(lab, "gemini", "gemini-stream-json.jsonl", usage=usage)
    result = await lab.run(lab.input(lab.workflow(agent)))

    assert result.stop is AgentStop.EXITED, result.detail
    # Only the user's paths count (non-cached input), never both readings added up.
    assert (result.usage.input_tokens, result.usage.output_tokens) == (6000, 800)
    assert result.usage.total_tokens == 6800


@pytest.mark.parametrize(
    ("code", "stop", "words"),
    [
        (41, AgentStop.UNAVAILABLE, "not authenticated"),
        (53, AgentStop.TURN_LIMIT, "maxSessionTurns"),
        (1, AgentStop.EXITED, "code 1"),
    ],
)
async def test_gemini_exit_codes(lab: Lab, code: int, stop: AgentStop, words: str) -> None:
    agent, _ = preset_agent(lab, "gemini", None, code, stderr="Please set an Auth method")
    result = await lab.run(lab.input(lab.workflow(agent)))

    assert result.stop is stop, result.detail
    assert words in result.detail
    assert result.exit_code == code


async def test_opencode_sums_step_deltas(lab: Lab) -> None:
    agent, record = preset_agent(lab, "opencode", "opencode-json.jsonl")
    result = await lab.run(lab.input(lab.workflow(agent)))

    assert result.stop is AgentStop.EXITED, result.detail
    # Prompt tokens with cache reads and writes, output with reasoning, step by step.
    assert (result.usage.input_tokens, result.usage.output_tokens) == (4400, 290)
    [call] = records(record)
    assert call["argv"][:4] == ["run", "--format", "json", "--auto"]
    assert "DEMO-1" in call["argv"][4]


async def test_aider_tokens_lines_are_usage_deltas(lab: Lab) -> None:
    agent, record = preset_agent(lab, "aider", "aider-output.txt")
    result = await lab.run(lab.input(lab.workflow(agent), budget_tokens=5_000_000))

    assert result.stop is AgentStop.EXITED, result.detail
    assert (result.usage.input_tokens, result.usage.output_tokens) == (1_512_000, 1579)
    [call] = records(record)
    assert call["argv"][:2] == ["--message-file", str(lab.path / ".jidoka" / "prompt.md")]
    assert "--yes-always" in call["argv"]
    kinds = [r["kind"] for r in lab.transcript(result)]
    assert kinds.count("usage") == 2 and "message" in kinds


def test_aider_token_counts() -> None:
    assert aider_tokens("345", "") == 345
    assert aider_tokens("1.2", "k") == 1200
    assert aider_tokens("12", "k") == 12_000
    assert aider_tokens("1.5", "M") == 1_500_000
    assert aider_tokens("1,234", "") == 1234


async def test_missing_preset_binary_is_unavailable(lab: Lab) -> None:
    workflow = lab.workflow({"kind": "command", "preset": "opencode"})  # no fake on PATH
    result = await lab.run(lab.input(workflow))
    assert result.stop is AgentStop.UNAVAILABLE
    assert "exit 127" in result.detail and "opencode-ai@1.18.33" in result.detail


async def test_tracker_secrets_never_reach_a_preset_agent(lab: Lab, tracker_secrets: None) -> None:
    agent, record = preset_agent(lab, "gemini", "gemini-stream-json.jsonl")
    result = await lab.run(lab.input(lab.workflow(agent, linear=True)))

    assert result.stop is AgentStop.EXITED, result.detail
    [call] = records(record)
    assert "GITHUB_TOKEN" not in call["env"] and TRACKER_SECRET_NAME not in call["env"]
    transcript = Path(result.transcript_path or "").read_text()
    assert GITHUB_TOKEN not in transcript and TRACKER_KEY not in transcript
