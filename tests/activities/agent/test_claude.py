"""The Claude Code adapter through the ``run_agent`` activity, against a fake ``claude`` that
replays stream-json transcripts (the captured not-logged-in run of Claude Code 2.1.197, and
synthetic ones in the same shapes). Real processes, real git, real WORKFLOW.md; no mocks.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from activities.agent.claude import ClaudeAdapter
from activities.agent.events import UsageMode
from activities.agent.run import CONTINUATION_GUIDANCE
from activities.agent.usage import UsageMeter
from jidoka.config import AgentConfig
from jidoka.outcomes import AgentKind, AgentStop, Outcome
from jidoka.workflow_file import WorkflowFileError
from tests.support.agents.lab import (
    AGENTS,
    GITHUB_TOKEN,
    TRACKER_KEY,
    TRACKER_SECRET_NAME,
    TRANSCRIPTS,
    Lab,
    records,
)

FAKE = AGENTS / "fake_claude.py"
NOT_LOGGED_IN = TRANSCRIPTS / "claude-stream-json-notloggedin.jsonl"


def fake_claude(
    lab: Lab, scripts: list[str], exits: str = "0", **claude: Any
) -> tuple[dict[str, Any], Path]:
    record = lab.records / "claude-invocations.ndjson"
    agent: dict[str, Any] = {
        "kind": "claude",
        "command": f'"$JIDOKA_PYTHON" {FAKE}',
        "env": {
            "FAKE_CLAUDE_RECORD": str(record),
            "FAKE_CLAUDE_SCRIPTS": ",".join(str(TRANSCRIPTS / s) for s in scripts),
            "FAKE_CLAUDE_EXIT": exits,
        },
    }
    if claude:
        agent["claude"] = claude
    return agent, record


async def test_not_logged_in_is_unavailable_whatever_the_subtype_says(lab: Lab) -> None:
    # The default command (`claude`, found on the login shell's PATH) replays the real capture:
    # subtype "success", is_error true, exit 1.
    record = lab.records / "claude-invocations.ndjson"
    home = lab.login_home({"claude": lab.python_tool(FAKE)})
    env = {
        "HOME": str(home),
        "FAKE_CLAUDE_RECORD": str(record),
        "FAKE_CLAUDE_SCRIPTS": str(NOT_LOGGED_IN),
        "FAKE_CLAUDE_EXIT": "1",
    }
    workflow = lab.workflow({"kind": "claude", "env": env})
    result = await lab.run(lab.input(workflow))

    assert result.stop is AgentStop.UNAVAILABLE, result.detail
    assert result.exit_code == 1
    assert "not logged in" in result.detail and "Not logged in · Please run /login" in result.detail
    assert lab.outcome(result, workflow.config) is Outcome.AGENT_UNAVAILABLE
    assert result.resume_token == "32c5bd63-66e5-41fe-b198-603b9cb081bd"
    [call] = records(record)
    assert call["argv"] == [
        "-p",
        "--output-format",
        "stream-json",
        "--verbose",
        "--permission-mode",
        "acceptEdits",
        "--allowedTools",
        "Bash",
        "Edit",
        "Write",
        "Read",
        "Glob",
        "Grep",
        "--disallowedTools",
        "AskUserQuestion",
    ]
    assert call["stdin"] == (lab.path / ".jidoka" / "prompt.md").read_text()


async def test_success_counts_each_message_once_and_ships(lab: Lab) -> None:
    agent, record = fake_claude(
        lab,
        ["claude-success.jsonl"],
        model="claude-sonnet-5",
        max_turns=30,
        max_budget_usd=2.5,
        allowed_tools=["Bash(git *)", "Edit"],
    )
    workflow = lab.workflow(agent)
    # msg_01 arrives twice with the same usage: counted twice, the session would pass 3000
    # mid-run (1150 + 1150 + 1210 prompt tokens) and stop on the token budget.
    result = await lab.run(lab.input(workflow, budget_tokens=3000))

    assert result.stop is AgentStop.EXITED, result.detail
    assert result.exit_code == 0, result.stderr_tail
    # result.usage is the authoritative total and replaces the per-message deltas.
    assert (result.usage.input_tokens, result.usage.output_tokens) == (2360, 120)
    assert result.usage.total_tokens == 2480
    assert result.turns == 1
    assert lab.outcome(result, workflow.config) is Outcome.SHIPPED
    [call] = records(record)
    argv = call["argv"]
    assert argv[argv.index("--max-turns") + 1] == "30"
    assert argv[argv.index("--model") + 1] == "claude-sonnet-5"
    assert argv[argv.index("--max-budget-usd") + 1] == "2.5"
    assert argv[argv.index("--allowedTools") + 1 : argv.index("--allowedTools") + 3] == [
        "Bash(git *)",
        "Edit",
    ]
    ended = [r for r in lab.transcript(result) if r["kind"] == "turn_ended"]
    assert ended[0]["data"]["total_cost_usd"] == 0.0421
    assert ended[0]["data"]["num_turns"] == 3


def test_usage_readings_deduplicate_by_message_id_and_the_result_replaces_them() -> None:
    adapter = ClaudeAdapter(AgentConfig(kind=AgentKind.CLAUDE))
    meter = UsageMeter()
    modes: list[UsageMode] = []
    for line in (TRANSCRIPTS / "claude-success.jsonl").read_text().splitlines():
        if '"fake"' in line:
            continue
        for event in adapter.parse(line):
            if event.usage is not None:
                modes.append(event.usage.mode)
                meter.add(event.usage)
                if event.usage.mode is UsageMode.DELTA:
                    assert meter.total <= 1150 + 20 + 1210 + 80
    assert modes == [UsageMode.DELTA, UsageMode.DELTA, UsageMode.FINAL]
    assert meter.total == 2480
    # The cached part of the prompt, priced apart: the result's figure, not the deltas'.
    assert meter.usage.cached_input_tokens == 2200 and meter.reported
    assert adapter.cost_usd == 0.0421 and adapter.agent_turns == 3


async def test_error_max_turns_is_the_turn_limit(lab: Lab) -> None:
    agent, _ = fake_claude(lab, ["claude-max-turns.jsonl"], exits="1", max_turns=5)
    workflow = lab.workflow(agent)
    result = await lab.run(lab.input(workflow))

    assert result.stop is AgentStop.TURN_LIMIT, result.detail
    assert "agent.claude.max_turns = 5" in result.detail and "5 agentic turns" in result.detail
    assert lab.outcome(result, workflow.config) is Outcome.TURN_LIMIT
    assert result.usage.total_tokens == 730


async def test_error_max_budget_usd_is_budget_exceeded(lab: Lab) -> None:
    agent, _ = fake_claude(lab, ["claude-max-budget.jsonl"], exits="1", max_budget_usd=0.5)
    workflow = lab.workflow(agent)
    result = await lab.run(lab.input(workflow))

    assert result.stop is AgentStop.TOKEN_BUDGET, result.detail
    assert "$0.5127" in result.detail and "agent.claude.max_budget_usd" in result.detail
    assert lab.outcome(result, workflow.config) is Outcome.BUDGET_EXCEEDED


async def test_rate_limit_rejection_is_rate_limited(lab: Lab) -> None:
    agent, _ = fake_claude(lab, ["claude-rate-limited.jsonl"], exits="1")
    workflow = lab.workflow(agent)
    result = await lab.run(lab.input(workflow))

    assert result.stop is AgentStop.RATE_LIMITED, result.detail
    assert result.rate_limit is not None and result.rate_limit.exhausted
    assert result.rate_limit.resets_at is not None
    assert result.rate_limit.resets_at.timestamp() == 1_900_000_000
    assert lab.outcome(result, workflow.config) is Outcome.RATE_LIMITED


async def test_continuation_resumes_the_session(lab: Lab) -> None:
    agent, record = fake_claude(lab, ["claude-continue-1.jsonl", "claude-continue-2.jsonl"])
    workflow = lab.workflow(agent)
    result = await lab.run(lab.input(workflow))

    assert result.stop is AgentStop.EXITED, result.detail
    assert result.turns == 2
    assert result.usage.total_tokens == (300 + 40) + (350 + 60)
    first, second = records(record)
    assert "--resume" not in first["argv"]
    assert "DEMO-1" in first["stdin"]
    session = "5f0c2d7e-2222-4a2b-9c3d-000000000002"
    assert second["argv"][-2:] == ["--resume", session]
    assert second["stdin"].strip() == CONTINUATION_GUIDANCE
    assert result.resume_token == session
    assert lab.outcome(result, workflow.config) is Outcome.SHIPPED


async def test_bypass_permissions_is_refused(lab: Lab) -> None:
    with pytest.raises(WorkflowFileError) as refused:
        lab.workflow({"kind": "claude", "claude": {"permission_mode": "bypassPermissions"}})
    assert "permission_mode" in str(refused.value)

    workflow = lab.workflow(
        {"kind": "claude", "command": f'"$JIDOKA_PYTHON" {FAKE} --dangerously-skip-permissions'}
    )
    result = await lab.run(lab.input(workflow))
    assert result.stop is AgentStop.UNAVAILABLE
    assert "dangerously-skip-permissions" in result.detail
    assert result.turns == 0 and result.transcript_path is None


async def test_missing_claude_binary_is_unavailable(lab: Lab) -> None:
    workflow = lab.workflow({"kind": "claude", "command": "no-such-claude-jidoka"})
    result = await lab.run(lab.input(workflow))
    assert result.stop is AgentStop.UNAVAILABLE
    assert "exit 127" in result.detail and "@anthropic-ai/claude-code" in result.detail


async def test_tracker_secrets_never_reach_claude(lab: Lab, tracker_secrets: None) -> None:
    agent, record = fake_claude(lab, ["claude-success.jsonl"])
    workflow = lab.workflow(agent, linear=True)
    result = await lab.run(lab.input(workflow))

    assert result.stop is AgentStop.EXITED, result.detail
    [call] = records(record)
    assert "GITHUB_TOKEN" not in call["env"] and TRACKER_SECRET_NAME not in call["env"]
    assert "FAKE_CLAUDE_RECORD" in call["env"]  # agent.env does reach it
    transcript = Path(result.transcript_path or "").read_text()
    assert GITHUB_TOKEN not in transcript and TRACKER_KEY not in transcript
    assert json.loads(transcript.splitlines()[-1])["kind"] == "summary"
