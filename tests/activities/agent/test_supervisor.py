"""The ``run_agent`` activity against real agents: real subprocesses, real git repositories, a
real WORKFLOW.md, run through ``temporalio.testing.ActivityEnvironment``. No mocks.

Clocks are kept at 1-3 s so the file runs in well under a minute.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from temporalio.testing import ActivityEnvironment

from activities.agent.adapters import (
    AgentAdapter,
    AgentIO,
    Launch,
    NextTurn,
    StdinMode,
    TurnContext,
)
from activities.agent.events import AgentEvent, EventKind, TurnStatus, UsageMode, UsageReading
from activities.agent.probe import FirstCommitProbe
from activities.agent.session import Budgets, Clocks, SessionSpec
from activities.agent.supervisor import Supervisor
from activities.agent.transcript import Transcript, transcript_path
from activities.host_state import state_root
from activities.process import group_alive
from activities.sandbox import SANDBOX_HOME, SANDBOX_TMP
from jidoka.models import BlockerRef, Issue
from jidoka.outcomes import AgentStop
from tests.support.agents.lab import Lab, make_lab
from tests.support.git import run_git
from tests.support.secret_scan import allow_secret_in, register_secret
from tests.support.workerproc import group_members, wait_group_gone

GITHUB_TOKEN = register_secret("ghp_TestOnlyTokenValue1234567890")
MODEL_KEY = register_secret("sk-test-model-key-abcdef123456")


@pytest.fixture
def lab(tmp_path: Path) -> Lab:
    """Clocks of 3 s, and an issue whose prompt names the scripted agent's ``ship`` scenario."""
    return make_lab(
        tmp_path,
        clocks={"stall_timeout_s": 3, "silence_timeout_s": 3},
        description="Scenario: ship",
        wall_s=30.0,
    )


@pytest.fixture
def worker_secrets(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("GITHUB_TOKEN", GITHUB_TOKEN)
    monkeypatch.setenv("LINEAR_API_KEY", register_secret("lin_api_TestOnlyKey9876543210"))
    monkeypatch.setenv("JIDOKA_TEST_MODEL_KEY", MODEL_KEY)
    monkeypatch.setenv("JIDOKA_SCENARIO", "leaked-from-the-worker")
    yield


# -- the happy path ----------------------------------------------------------------------------


async def test_ship_exits_zero_counts_usage_once_and_writes_transcript(lab: Lab) -> None:
    workflow = lab.workflow({"kind": "scripted"})
    result = await lab.run(lab.input(workflow))

    assert result.stop is AgentStop.EXITED, result.detail
    assert result.exit_code == 0
    # Two cumulative events (3000, then 6000): summing them would say 9000.
    assert result.usage.total_tokens == 6000
    assert (result.usage.input_tokens, result.usage.output_tokens) == (4800, 1200)
    assert result.usage.cached_input_tokens == 2400 and result.usage_reported
    assert result.first_commit_seen
    # The commit came between the two usage events: the second one is not "before".
    assert result.tokens_before_first_commit == 3000
    assert result.turns == 1
    assert result.duration_s < 10
    assert (lab.path / "changes" / "DEMO-1.md").exists()

    # The scenario came from the prompt, so the prompt reached the agent's stdin.
    prompt = (lab.path / ".jidoka" / "prompt.md").read_text()
    assert "DEMO-1: Add a change note" in prompt
    assert "Scenario: ship" in prompt
    assert ".jidoka/verdict.json" in prompt and "`DONE`" in prompt

    records = lab.transcript(result)
    # In the worker's own state, where the agent cannot rewrite it.
    transcript = Path(result.transcript_path or "")
    assert transcript.is_relative_to(state_root())
    assert not transcript.is_relative_to(lab.path)
    kinds = [r["kind"] for r in records]
    assert kinds[0] == "start" and "launch" in kinds and "stdin" in kinds
    assert kinds.count("usage") == 2 and "progress" in kinds
    assert all("ts" in r for r in records)
    summary = records[-1]
    assert summary["kind"] == "summary"
    assert summary["data"]["stop"] == "exited"
    assert summary["data"]["exit_code"] == 0
    assert summary["data"]["usage"]["total_tokens"] == 6000
    assert summary["data"]["turns"] == 1


async def test_environment_prompt_and_secrets(lab: Lab, worker_secrets: None) -> None:
    agent = lab.tools / "dump_agent.py"
    agent.write_text(
        "import json, os, sys\n"
        "prompt = sys.stdin.read()\n"
        "seen = {'env': dict(os.environ), 'stdin': prompt, 'cwd': os.getcwd()}\n"
        "open(os.path.join(os.environ['JIDOKA_WORKSPACE'], 'seen.json'), 'w').write("
        "json.dumps(seen))\n"
        "print(json.dumps({'event': 'progress', 'message': 'key ' + os.environ['MODEL_KEY']}))\n"
        # An agent that found a token on disk and prints it: the transcript must not keep it.
        f"print('found a token: {GITHUB_TOKEN}', flush=True)\n"
        f"print('fatal: token {GITHUB_TOKEN} rejected', file=sys.stderr)\n"
        "sys.exit(1)\n"
    )
    workflow = lab.workflow(
        {
            "kind": "command",
            "command": f'"$JIDOKA_PYTHON" {agent}',
            "env": {"MODEL_KEY": "$JIDOKA_TEST_MODEL_KEY", "AGENT_MODE": "quiet"},
        }
    )
    # This test's own files hold them: the agent's script, the agent's dump of its environment.
    allow_secret_in(GITHUB_TOKEN, agent)
    allow_secret_in(MODEL_KEY, lab.path / "seen.json")
    result = await lab.run(lab.input(workflow, attempt=2, template_attempt=2))

    assert result.stop is AgentStop.EXITED
    assert result.exit_code == 1
    # It printed no usage: its zero tokens are unknown, not free.
    assert result.usage.total_tokens == 0 and not result.usage_reported
    seen = json.loads((lab.path / "seen.json").read_text())
    env = seen["env"]
    assert env["JIDOKA_ISSUE"] == "DEMO-1"
    assert env["JIDOKA_ISSUE_ID"] == "issue-id-1"
    assert env["JIDOKA_ATTEMPT"] == "2"
    assert env["JIDOKA_WORKSPACE"] == lab.workspace.path
    assert env["JIDOKA_BRANCH"] == "jidoka/DEMO-1"
    assert env["JIDOKA_BASE_SHA"] == lab.workspace.base_sha
    assert env["JIDOKA_PYTHON"] == sys.executable
    assert "JIDOKA_WORKFLOW_DIR" not in env  # where WORKFLOW.md lives is none of its business
    assert env["JIDOKA_PROMPT_FILE"] == str(lab.path / ".jidoka" / "prompt.md")
    assert env["MODEL_KEY"] == MODEL_KEY and env["AGENT_MODE"] == "quiet"
    for withheld in ("GITHUB_TOKEN", "LINEAR_API_KEY", "GH_TOKEN"):
        assert withheld not in env
    assert "JIDOKA_SCENARIO" not in env  # the worker's own JIDOKA_* never leak into agents
    # An allow-list, not a denylist: nothing of the worker's beyond the fixed base.
    allowed = {"PATH", "HOME", "USER", "TMPDIR", "LANG", "LC_ALL", "LC_CTYPE", "TERM", "TZ"}
    unexpected = {
        name
        for name in env
        if name not in allowed
        and not name.startswith("JIDOKA_")
        and name not in ("MODEL_KEY", "AGENT_MODE")
    }
    # bash adds its own (PWD, SHLVL, _, OLDPWD); nothing else may appear.
    assert unexpected <= {"PWD", "SHLVL", "_", "OLDPWD"}, unexpected
    assert env["HOME"] == SANDBOX_HOME and env["TMPDIR"] == SANDBOX_TMP
    assert seen["cwd"] == lab.workspace.path
    assert seen["stdin"] == (lab.path / ".jidoka" / "prompt.md").read_text()

    transcript = Path(result.transcript_path or "").read_text()
    for secret in (GITHUB_TOKEN, MODEL_KEY):
        assert secret not in transcript
        assert secret not in result.detail
        assert secret not in result.stderr_tail
    assert "fatal: token *** rejected" in result.detail
    assert "found a token: ***" in transcript


async def test_unset_agent_env_reference_is_unavailable(lab: Lab) -> None:
    workflow = lab.workflow(
        {"kind": "command", "command": "true", "env": {"API_KEY": "$JIDOKA_TEST_UNSET_VAR"}}
    )
    result = await lab.run(lab.input(workflow))
    assert result.stop is AgentStop.UNAVAILABLE
    assert "JIDOKA_TEST_UNSET_VAR" in result.detail and "agent.env.API_KEY" in result.detail
    assert result.turns == 0


# -- the three clocks ----------------------------------------------------------------------------


async def test_silent_stall_stops_on_the_progress_clock(lab: Lab) -> None:
    workflow = lab.workflow({"kind": "scripted", "scenario": "silent-stall", "stall_timeout_s": 1})
    started = time.monotonic()
    result = await lab.run(lab.input(workflow))
    assert result.stop is AgentStop.PROGRESS_STALL, result.detail
    assert 1.0 <= time.monotonic() - started < 6
    assert "agent.stall_timeout_s" in result.detail
    assert result.exit_code is None


async def test_chatty_stall_noise_does_not_reset_the_progress_clock(lab: Lab) -> None:
    # The raw-silence clock (1 s) is shorter than the progress clock (2 s) and never fires:
    # the agent prints every 0.2 s. Only the progress clock sees that nothing moves.
    workflow = lab.workflow(
        {
            "kind": "scripted",
            "scenario": "chatty-stall",
            "stall_timeout_s": 2,
            "silence_timeout_s": 1,
        }
    )
    result = await lab.run(lab.input(workflow))
    assert result.stop is AgentStop.PROGRESS_STALL, result.detail
    assert 2.0 <= result.duration_s < 7
    records = lab.transcript(result)
    assert sum(1 for r in records if "Reconnecting" in str(r["data"].get("line"))) >= 5


async def test_silence_clock_fires_on_a_silent_agent(lab: Lab) -> None:
    workflow = lab.workflow(
        {"kind": "scripted", "scenario": "silent-stall", "silence_timeout_s": 1}
    )
    result = await lab.run(lab.input(workflow))
    assert result.stop is AgentStop.SILENCE_STALL, result.detail
    assert "agent.silence_timeout_s" in result.detail


async def test_wall_clock_cap(lab: Lab) -> None:
    # token-burn makes progress all the time: only the wall clock can stop it.
    workflow = lab.workflow(
        {"kind": "scripted", "scenario": "token-burn", "stall_timeout_s": 1, "turn_timeout_s": 2}
    )
    result = await lab.run(lab.input(workflow, wall_s=2.0))
    assert result.stop is AgentStop.WALL_CLOCK, result.detail
    assert "agent.turn_timeout_s" in result.detail
    assert 2.0 <= result.duration_s < 7


async def test_issue_wall_time_when_the_issue_budget_binds(lab: Lab) -> None:
    workflow = lab.workflow(
        {"kind": "scripted", "scenario": "token-burn", "stall_timeout_s": 1, "turn_timeout_s": 60}
    )
    beats: list[Any] = []
    env = ActivityEnvironment()
    env.on_heartbeat = lambda *details: beats.append(details)
    result = await lab.run(lab.input(workflow, wall_s=2.5), env)
    assert result.stop is AgentStop.ISSUE_WALL_TIME, result.detail
    assert "budgets.max_wall_time" in result.detail
    assert beats, "no heartbeat while the agent ran"
    detail = beats[0][0]
    assert detail["pid"] > 0 and detail["tokens"] > 0 and "since_progress_s" in detail


# -- budgets ------------------------------------------------------------------------------------


async def test_first_commit_budget_stops_a_token_burner(lab: Lab) -> None:
    workflow = lab.workflow({"kind": "scripted", "scenario": "token-burn"})
    result = await lab.run(lab.input(workflow, budget_tokens_before_first_commit=20_000))
    assert result.stop is AgentStop.FIRST_COMMIT_BUDGET, result.detail
    # Events grow by 5000: the stop comes on the first one past the budget, no later.
    assert 20_000 < result.usage.total_tokens <= 25_000
    assert not result.first_commit_seen
    assert result.tokens_before_first_commit == result.usage.total_tokens
    assert "budgets.max_tokens_before_first_commit" in result.detail


async def test_token_budget_stops_a_token_burner(lab: Lab) -> None:
    workflow = lab.workflow({"kind": "scripted", "scenario": "token-burn"})
    result = await lab.run(lab.input(workflow, budget_tokens=20_000))
    assert result.stop is AgentStop.TOKEN_BUDGET, result.detail
    assert 20_000 < result.usage.total_tokens <= 25_000
    assert "budgets.max_tokens" in result.detail


async def test_first_commit_budget_does_not_fire_once_the_branch_has_a_commit(lab: Lab) -> None:
    (lab.path / "earlier.txt").write_text("from an earlier attempt\n")
    run_git(lab.path, "add", "earlier.txt")
    run_git(lab.path, "commit", "-q", "-m", "earlier attempt")
    workflow = lab.workflow({"kind": "scripted", "scenario": "token-burn"})
    result = await lab.run(
        lab.input(workflow, budget_tokens=40_000, budget_tokens_before_first_commit=10_000)
    )
    assert result.stop is AgentStop.TOKEN_BUDGET, result.detail
    assert result.first_commit_seen
    assert result.tokens_before_first_commit == 0


# -- exits and early stops ------------------------------------------------------------------------


async def test_crash_reports_exit_code_and_stderr(lab: Lab) -> None:
    workflow = lab.workflow({"kind": "scripted", "scenario": "crash"})
    result = await lab.run(lab.input(workflow))
    assert result.stop is AgentStop.EXITED
    assert result.exit_code == 3
    assert "the model provider closed the stream" in result.stderr_tail
    assert "code 3" in result.detail and "closed the stream" in result.detail
    assert result.usage.total_tokens == 3000
    assert not (lab.path / ".jidoka" / "verdict.json").exists()


async def test_unknown_command_is_bash_127(lab: Lab) -> None:
    workflow = lab.workflow({"kind": "command", "command": "no-such-agent-jidoka --go"})
    result = await lab.run(lab.input(workflow))
    assert result.stop is AgentStop.EXITED
    assert result.exit_code == 127
    assert "not found" in result.stderr_tail


async def test_floods_and_huge_lines_neither_block_nor_blow_up(lab: Lab) -> None:
    agent = lab.tools / "flood_agent.py"
    agent.write_text(
        "import json, sys\n"
        "sys.stdout.write('x' * 5_000_000 + '\\n')\n"  # one 5 MB line
        "sys.stdout.write('{not json\\n')\n"
        "for _ in range(20_000):\n"
        "    sys.stderr.write('e' * 99 + '\\n')\n"  # 2 MB of stderr
        "print(json.dumps({'event': 'progress', 'message': 'still here'}), flush=True)\n"
    )
    workflow = lab.workflow({"kind": "command", "command": f'"$JIDOKA_PYTHON" {agent}'})
    result = await lab.run(lab.input(workflow))
    assert result.stop is AgentStop.EXITED, result.detail
    assert result.exit_code == 0
    assert len(result.stderr_tail) < 10_000
    records = lab.transcript(result)
    assert any(r["kind"] == "progress" for r in records)
    huge = next(r for r in records if str(r["data"].get("line", "")).startswith("xxxx"))
    assert "chars cut" in huge["data"]["line"]


async def test_rate_limit_then_nonzero_exit_is_rate_limited(lab: Lab) -> None:
    event = {
        "event": "rate_limit",
        "resets_at": "2030-01-01T00:00:00+00:00",
        "used_percent": 100,
        "exhausted": True,
    }
    workflow = lab.workflow({"kind": "command", "command": f"echo '{json.dumps(event)}'; exit 1"})
    result = await lab.run(lab.input(workflow))
    assert result.stop is AgentStop.RATE_LIMITED, result.detail
    assert result.exit_code == 1
    assert result.rate_limit is not None and result.rate_limit.exhausted
    assert result.rate_limit.resets_at is not None and result.rate_limit.resets_at.year == 2030


async def test_usage_field_map_sums_delta_events(lab: Lab) -> None:
    lines = [
        {"type": "step", "tokens": {"in": 100, "out": 20}},
        {"type": "step", "tokens": {"in": 300, "out": 50}},
        {"type": "other", "tokens": {"in": 999, "out": 999}},
    ]
    command = "; ".join(f"echo '{json.dumps(line)}'" for line in lines)
    workflow = lab.workflow(
        {
            "kind": "command",
            "command": command,
            "usage": {
                "match": {"type": "step"},
                "input_tokens": "tokens.in",
                "output_tokens": "tokens.out",
                "cumulative": False,
            },
        }
    )
    result = await lab.run(lab.input(workflow))
    assert result.stop is AgentStop.EXITED
    assert result.usage.input_tokens == 400
    assert result.usage.output_tokens == 70
    assert result.usage.total_tokens == 470


async def test_template_error_is_prompt_invalid_and_launches_nothing(lab: Lab) -> None:
    # Valid against the sample issue `jidoka check` renders (no blockers), broken for this one.
    prompt = "{% for b in issue.blocked_by %}{{ b.no_such_field }}{% endfor %}"
    workflow = lab.workflow({"kind": "scripted"}, prompt=prompt)
    issue = Issue(
        id="i2",
        identifier="DEMO-1",
        title="Blocked",
        state="Todo",
        blocked_by=[BlockerRef(identifier="DEMO-0")],
    )
    result = await lab.run(lab.input(workflow, issue=issue))
    assert result.stop is AgentStop.PROMPT_INVALID
    assert "template_render_error" in result.detail
    assert result.transcript_path is None
    assert not (lab.path / ".jidoka").exists()


async def test_workspace_invariants(lab: Lab, tmp_path: Path) -> None:
    workflow = lab.workflow({"kind": "scripted"})
    missing = lab.workspace.model_copy(update={"path": str(lab.root / "workspaces" / "GONE")})
    result = await lab.run(lab.input(workflow, workspace=missing))
    assert result.stop is AgentStop.UNAVAILABLE
    assert "does not exist" in result.detail

    outside = tmp_path / "elsewhere"
    outside.mkdir()
    stray = lab.workspace.model_copy(update={"path": str(outside)})
    result = await lab.run(lab.input(workflow, workspace=stray))
    assert result.stop is AgentStop.UNAVAILABLE
    assert "not inside the workspace root" in result.detail


async def test_spent_budgets_launch_nothing(lab: Lab) -> None:
    workflow = lab.workflow({"kind": "scripted", "scenario": "spawn-and-stall"})
    result = await lab.run(lab.input(workflow, wall_s=0.0))
    assert result.stop is AgentStop.ISSUE_WALL_TIME
    assert "nothing launched" in result.detail
    result = await lab.run(lab.input(workflow, budget_tokens=0))
    assert result.stop is AgentStop.TOKEN_BUDGET
    assert "nothing launched" in result.detail
    assert result.turns == 0 and result.transcript_path is None


async def test_no_bash_on_the_worker_is_unavailable(
    lab: Lab, monkeypatch: pytest.MonkeyPatch
) -> None:
    workflow = lab.workflow({"kind": "scripted"})
    empty = lab.root / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    result = await lab.run(lab.input(workflow))
    assert result.stop is AgentStop.UNAVAILABLE
    assert "bash" in result.detail
    assert result.exit_code is None and result.turns == 0


async def test_an_agent_missing_from_the_worker_is_unavailable(lab: Lab) -> None:
    # A command the login shell cannot find (bash exits 127): retrying cannot help.
    workflow = lab.workflow({"kind": "codex", "command": "jidoka-no-such-codex app-server"})
    result = await lab.run(lab.input(workflow))
    assert result.stop is AgentStop.UNAVAILABLE
    assert "not found on this worker (exit 127)" in result.detail


# -- cancellation ---------------------------------------------------------------------------------


async def test_cancel_kills_the_whole_group_and_reraises(lab: Lab) -> None:
    workflow = lab.workflow({"kind": "scripted", "scenario": "spawn-and-stall"})
    env = ActivityEnvironment()
    task = asyncio.create_task(lab.run(lab.input(workflow), env))
    path = transcript_path(lab.path, 1)
    pgid = helper = None
    deadline = time.monotonic() + 10
    while helper is None and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
        for record in map(json.loads, path.read_text().splitlines() if path.exists() else []):
            if record["kind"] == "launch":
                pgid = record["data"]["pid"]
            message = str(record["data"].get("message", ""))
            if message.startswith("helper pid "):
                helper = int(message.rsplit(maxsplit=1)[-1])
    assert pgid is not None and helper is not None, "the agent never started its helper"
    assert group_alive(pgid)
    # The helper's pid above is the one its PID namespace gave it; on the host it is the
    # group's `sleep 1000`.
    sleepers = [p.pid for p in group_members(pgid) if p.cmdline[:2] == ("sleep", "1000")]
    assert len(sleepers) == 1

    env.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    assert group_members(pgid) == []
    assert not Path(f"/proc/{sleepers[0]}").exists()
    await wait_group_gone(pgid)
    summary = json.loads(path.read_text().splitlines()[-1])
    assert summary["kind"] == "summary" and summary["data"]["stop"] == "cancelled"


# -- the adapter contract: a protocol agent plugs in without touching the supervisor ------------

PROTOCOL_AGENT = r"""
import json, os, sys

def send(obj):
    print(json.dumps(obj), flush=True)

usage = 0
first_text = None
for raw in sys.stdin:
    msg = json.loads(raw)
    method = msg.get("method")
    if method == "turn/start":
        text = msg["params"]["text"]
        first_text = first_text or text
        send({"method": "turn/started"})
        if "hang" in text:
            continue  # never completes: the supervisor's clocks must stop it
        send({"id": "req-1", "method": "approve", "params": {"command": "pytest"}})
        reply = json.loads(sys.stdin.readline())
        with open("replies.ndjson", "a") as f:
            f.write(json.dumps(reply) + "\n")
        usage += 1000
        send({"method": "usage", "total": usage})
        if msg["params"]["turn"] == 2 and "never" not in first_text:
            os.makedirs(".jidoka", exist_ok=True)
            open(".jidoka/verdict.json", "w").write('{"verdict": "DONE"}')
        send({"method": "turn/completed", "status": "completed"})
    elif method == "turn/interrupt":
        open("interrupted", "w").write("yes")
        sys.exit(0)
"""


class ProtocolAdapter(AgentAdapter):
    """A miniature Codex-style adapter: JSON lines both ways, requests to answer, turns on one
    process, interrupt before kill."""

    name = "protocol-test"
    wind_down_s = 2.0

    def __init__(self, script: Path) -> None:
        self.script = script

    def launch(self, turn: TurnContext) -> Launch:
        return Launch(f'"$JIDOKA_PYTHON" {self.script}', StdinMode.PROTOCOL)

    async def begin(self, io: AgentIO, turn: TurnContext, launch: Launch) -> None:
        self._start(io, turn)

    def _start(self, io: AgentIO, turn: TurnContext) -> None:
        params = {"text": turn.text, "turn": turn.number}
        io.send(json.dumps({"method": "turn/start", "params": params}))

    def parse(self, line: str) -> list[AgentEvent]:
        msg = json.loads(line)
        match msg.get("method"):
            case "turn/started":
                return [AgentEvent(EventKind.TURN_STARTED, msg)]
            case "approve":
                return [AgentEvent(EventKind.REQUEST, msg)]
            case "usage":
                reading = UsageReading(total_tokens=msg["total"], mode=UsageMode.CUMULATIVE)
                return [AgentEvent(EventKind.USAGE, msg, usage=reading)]
            case "turn/completed":
                return [AgentEvent(EventKind.TURN_ENDED, msg, turn_status=TurnStatus.COMPLETED)]
            case _:
                return []

    async def respond(self, event: AgentEvent, io: AgentIO) -> None:
        if event.kind is EventKind.REQUEST:
            io.send(json.dumps({"id": event.data["id"], "result": {"decision": "accept"}}))

    async def next_turn(self, io: AgentIO, turn: TurnContext) -> NextTurn:
        self._start(io, turn)
        return NextTurn.SAME_PROCESS

    async def interrupt(self, io: AgentIO) -> None:
        io.send(json.dumps({"method": "turn/interrupt"}))


def _protocol_session(lab: Lab, prompt: str, progress_s: float, max_turns: int = 5) -> Supervisor:
    script = lab.tools / "protocol_agent.py"
    script.write_text(PROTOCOL_AGENT)
    verdict = lab.path / ".jidoka" / "verdict.json"

    async def continuation(turns: int) -> str | None:
        return None if verdict.exists() else "continue, and write the verdict"

    spec = SessionSpec(
        workspace=lab.path,
        prompt=prompt,
        branch=lab.workspace.branch,
        base_env=dict(os.environ),
        withheld=frozenset(),
        pinned_env={"JIDOKA_PYTHON": sys.executable},
        clocks=Clocks(progress_s, 10, 20, AgentStop.WALL_CLOCK),
        budgets=Budgets(tokens=1_000_000, tokens_before_first_commit=None, max_turns=max_turns),
    )
    return Supervisor(
        ProtocolAdapter(script),
        spec,
        probe=FirstCommitProbe(lab.path, lab.workspace.base_sha, lab.workspace.branch),
        transcript=Transcript(lab.path / ".jidoka" / "t.ndjson", lambda text: text),
        scrub=lambda text: text,
        heartbeat=lambda details: None,
        continuation=continuation,
    )


async def test_protocol_adapter_runs_two_turns_on_one_process(lab: Lab) -> None:
    report = await _protocol_session(lab, "do the work", progress_s=5).run()
    assert report.stop is AgentStop.EXITED, report.detail
    assert report.turns == 2
    assert report.usage.total_tokens == 2000
    replies = (lab.path / "replies.ndjson").read_text().splitlines()
    assert [json.loads(r)["result"]["decision"] for r in replies] == ["accept", "accept"]


async def test_protocol_adapter_is_interrupted_before_the_kill(lab: Lab) -> None:
    report = await _protocol_session(lab, "hang", progress_s=1).run()
    assert report.stop is AgentStop.PROGRESS_STALL
    assert (lab.path / "interrupted").read_text() == "yes"


async def test_protocol_adapter_stops_at_the_turn_limit(lab: Lab) -> None:
    report = await _protocol_session(lab, "never finish", progress_s=5, max_turns=3).run()
    assert report.stop is AgentStop.TURN_LIMIT, report.detail
    assert report.turns == 3
    assert report.usage.total_tokens == 3000
    assert "budgets.max_turns" in report.detail
