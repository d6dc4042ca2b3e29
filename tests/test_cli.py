"""The ``jidoka`` console as a user runs it: real subprocesses against the real dev server."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sys
import urllib.request
import uuid
from pathlib import Path

from temporalio.api.operatorservice.v1 import ListSearchAttributesRequest
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.testing import WorkflowEnvironment

from jidoka.outcomes import Phase
from tests.linekit import LineKit, eventually, factory, make_line, start_line
from workflows.issue import IssueWorkflow
from workflows.line import LineWorkflow

JIDOKA = str(Path(sys.executable).with_name("jidoka"))


def cli_env(dev_env: WorkflowEnvironment | None, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TEMPORAL_", "JIDOKA_"))}
    if dev_env is not None:
        env["TEMPORAL_ADDRESS"] = dev_env.client.service_client.config.target_host
    env.update(extra)
    return env


async def jidoka(*args: str, env: dict[str, str], timeout: float = 120) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        JIDOKA, *args, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout)
    return process.returncode or 0, out.decode(), err.decode()


def isolated(kit: LineKit) -> dict[str, str]:
    """Each run gets its own task queue and host, so tests never share workers."""
    return {"JIDOKA_TASK_QUEUE": f"cli-{kit.line}", "JIDOKA_HOST_ID": f"cli-{uuid.uuid4().hex[:8]}"}


async def test_run_until_idle_resumes_with_a_root_cause_and_prints_json(
    dev_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    kit = make_line(tmp_path, {"concurrency": {"max_agents": 1}})
    kit.add_issue("R-1", "ship", priority=1)
    kit.add_issue("R-2", "hallucinate", priority=2)
    kit.add_issue("R-3", "ship", priority=3)
    code, out, err = await jidoka(
        "run",
        str(kit.workflow_md),
        "--until-idle",
        "--json",
        "--resume-with",
        "scripted scenario",
        "--operator",
        "ci",
        env=cli_env(dev_env, **isolated(kit)),
    )
    assert code == 0, err
    summary = json.loads(out)
    phases = {i["identifier"]: i["phase"] for i in summary["issues"]}
    assert phases == {"R-1": "shipped", "R-2": "halted", "R-3": "shipped"}
    halts = summary["line"]["halts"]
    assert halts[0]["category"] == "no_progress" and halts[0]["root_cause"] == "scripted scenario"
    assert halts[0]["resolved_by"] == "ci"
    assert "THE LINE STOPPED" in err and "jidoka line resume" in err  # progress went to stderr


async def test_run_until_idle_stops_at_a_halt_and_says_how_to_resume(
    dev_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    kit = make_line(tmp_path)
    kit.add_issue("S-1", "halt")
    code, out, _ = await jidoka(
        "run", str(kit.workflow_md), "--until-idle", env=cli_env(dev_env, **isolated(kit))
    )
    assert code == 3
    assert "THE LINE STOPPED" in out
    assert (
        f"temporal workflow update execute --workflow-id jidoka-line-{kit.line} --name resume"
        in out
    )
    assert "S-1 is halted" in out and "jidoka issue decide S-1" in out


async def test_operator_commands_drive_a_running_line(
    client: Client, dev_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    kit = make_line(tmp_path, {"concurrency": {"max_agents": 1}})
    kit.add_issue("O-1", "hallucinate", priority=1)
    kit.add_issue("O-2", "ask", priority=2)
    env = cli_env(dev_env)
    line = ["--line", kit.line]
    async with factory(client) as f:
        handle = await start_line(f, kit)
        await eventually(
            lambda: handle.query(LineWorkflow.status), lambda s: s.halted, what="halted"
        )

        code, out, _ = await jidoka("line", "status", *line, env=env)
        assert (
            code == 0
            and "HALTED" in out
            and "no_progress" in out
            and "resume with a root cause" in out
        )
        code, out, _ = await jidoka("line", "status", str(kit.workflow_md), "--json", env=env)
        assert json.loads(out)["halted"] is True

        # The andon lock refuses a resume without a root cause, in one clear line.
        code, _, err = await jidoka("line", "resume", *line, "--root-cause", " ", env=env)
        assert code == 1 and "resume refused" in err and "Traceback" not in err

        code, out, _ = await jidoka("why", "O-1", *line, env=env)
        assert code == 0
        assert "Why halted (no_progress)?" in out and "Rule: done gate" in out
        assert "verdict DONE; 0 commit(s)" in out and "/workflows/" in out

        code, out, _ = await jidoka(
            "line", "resume", *line, "--root-cause", "agent lied", "--operator", "ops", env=env
        )
        assert code == 0 and "resumed by ops" in out
        issue = client.get_workflow_handle(kit.workflow_id("O-2"))
        await eventually(
            lambda: issue.query(IssueWorkflow.status),
            lambda s: s.phase is Phase.PAUSED,
            what="O-2 paused",
        )

        code, out, _ = await jidoka("issue", "status", "O-2", *line, env=env)
        assert code == 0 and "paused" in out and "questions:" in out
        code, out, _ = await jidoka(
            "issue", "answer", "O-2", *line, "--answer", "banker's rounding", env=env
        )
        assert code == 0
        await eventually(
            lambda: issue.query(IssueWorkflow.status),
            lambda s: s.phase is Phase.SHIPPED,
            what="O-2 shipped",
        )

        code, _, err = await jidoka(
            "issue", "decide", "O-1", *line, "abandon", "--root-cause", "", env=env
        )
        assert code == 1 and "refused" in err
        code, out, _ = await jidoka(
            "issue",
            "decide",
            "O-1",
            *line,
            "abandon",
            "--root-cause",
            "bad agent",
            "--operator",
            "ops",
            env=env,
        )
        assert code == 0 and "abandon accepted" in out
        first = client.get_workflow_handle(kit.workflow_id("O-1"))
        await eventually(
            lambda: first.query(IssueWorkflow.status),
            lambda s: s.phase is Phase.ABANDONED,
            what="abandoned",
        )
        code, out, _ = await jidoka("why", "O-1", *line, env=env)
        assert "abandoned" in out and "Operator ops decided abandon: bad agent" in out

        code, out, _ = await jidoka(
            "line", "halt", *line, "--reason", "freeze", "--operator", "ops", env=env
        )
        assert code == 0
        await eventually(
            lambda: handle.query(LineWorkflow.status), lambda s: s.halted, what="operator halt"
        )
        code, out, _ = await jidoka("line", "refresh", *line, env=env)
        assert code == 0
        await handle.terminate("test done")


async def test_errors_are_one_line(dev_env: WorkflowEnvironment, tmp_path: Path) -> None:
    env = cli_env(dev_env)
    code, _, err = await jidoka("line", "status", "--line", "no-such-line", env=env)
    assert (
        code == 1
        and err.startswith("jidoka: no workflow jidoka-line-no-such-line")
        and "Traceback" not in err
    )
    code, _, err = await jidoka("line", "status", env={**env, "TEMPORAL_ADDRESS": "127.0.0.1:1"})
    assert code == 1 and "Traceback" not in err
    code, _, err = await jidoka(
        "issue", "status", "X-1", "--line", "nope", env={**env, "TEMPORAL_ADDRESS": "127.0.0.1:1"}
    )
    assert code == 1 and "cannot reach Temporal" in err and "Traceback" not in err


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def test_run_starts_the_embedded_server_when_no_address_is_set(tmp_path: Path) -> None:
    kit = make_line(tmp_path)
    kit.add_issue("E-1", "ship")
    port, ui_port = free_port(), free_port()
    code, out, err = await jidoka(
        "run",
        str(kit.workflow_md),
        "--until-idle",
        "--port",
        str(port),
        "--ui-port",
        str(ui_port),
        env=cli_env(None, **isolated(kit)),
        timeout=180,
    )
    assert code == 0, out + err
    assert "embedded dev server" in out and f"http://localhost:{ui_port}" in out
    assert (kit.root / ".jidoka" / "temporal.db").is_file()
    assert kit.state_of("E-1") == "Done"


async def read_until(stream: asyncio.StreamReader, marker: str, timeout: float = 60) -> str:
    """Lines from ``stream`` up to the first containing ``marker`` (all of them, joined)."""
    seen: list[str] = []

    async def scan() -> str:
        while True:
            line = (await stream.readline()).decode()
            if not line:
                raise AssertionError(f"stream ended before {marker!r}: {''.join(seen)}")
            seen.append(line)
            if marker in line:
                return "".join(seen)

    return await asyncio.wait_for(scan(), timeout)


async def interrupt(process: asyncio.subprocess.Process) -> int:
    process.send_signal(signal.SIGINT)
    return await asyncio.wait_for(process.wait(), 60)


async def test_server_keeps_workflows_across_restarts_with_ui_and_search_attributes(
    tmp_path: Path,
) -> None:
    db = tmp_path / ".jidoka" / "temporal.db"
    port, ui_port = free_port(), free_port()
    args = ["server", "--db", str(db), "--port", str(port), "--ui-port", str(ui_port)]
    workflow_id = f"persisted-{uuid.uuid4().hex[:6]}"
    for life in ("first", "second"):
        server = await asyncio.create_subprocess_exec(
            JIDOKA, *args, env=cli_env(None), stdout=asyncio.subprocess.PIPE
        )
        try:
            assert server.stdout is not None
            banner = await read_until(server.stdout, "search attributes registered")
            assert f"Web UI at http://localhost:{ui_port}" in banner
            client = await Client.connect(f"127.0.0.1:{port}")
            if life == "first":
                # No worker serves this queue: the workflow simply waits, in the database.
                await client.start_workflow("NobodyServesThis", id=workflow_id, task_queue="none")
                names = await client.operator_service.list_search_attributes(
                    ListSearchAttributesRequest(namespace="default")
                )
                assert {"JidokaLine", "JidokaHalted", "JidokaPhase"} <= set(names.custom_attributes)
            else:
                described = await client.get_workflow_handle(workflow_id).describe()
                assert described.status is WorkflowExecutionStatus.RUNNING
            ui = await asyncio.to_thread(
                urllib.request.urlopen, f"http://localhost:{ui_port}/", timeout=30
            )
            assert ui.status == 200
        finally:
            if server.returncode is None:
                assert await interrupt(server) == 0
    assert db.is_file()


async def test_line_watch_follows_the_status_until_interrupted(
    client: Client, dev_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    kit = make_line(tmp_path)
    kit.add_issue("W-1", "hallucinate")
    async with factory(client) as f:
        handle = await start_line(f, kit)
        await eventually(
            lambda: handle.query(LineWorkflow.status), lambda s: s.halted, what="halted"
        )
        watch = await asyncio.create_subprocess_exec(
            JIDOKA,
            "line",
            "watch",
            "--line",
            kit.line,
            "--interval",
            "0.2",
            env=cli_env(dev_env),
            stdout=asyncio.subprocess.PIPE,
        )
        try:
            assert watch.stdout is not None
            # Two frames: the watch keeps following, it does not print once and exit.
            frames = await read_until(watch.stdout, "HALTED")
            frames += await read_until(watch.stdout, "HALTED")
        finally:
            code = await interrupt(watch)
        await handle.terminate("test done")
    assert code == 0
    assert "no_progress" in frames and "W-1" in frames
    assert "\033[2J" not in frames  # piped output carries no screen-clearing codes
