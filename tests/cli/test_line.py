"""``jidoka line`` (and the ``issue`` and ``why`` commands an operator uses beside it) as a user
runs them: real subprocesses driving a running line on the real dev server."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from jidoka.outcomes import Phase
from tests.support.cli import cli_env, interrupt, jidoka, read_until
from tests.support.linekit import eventually, factory, make_line, start_line, wait_for_phase
from tests.support.paths import JIDOKA
from tests.support.ports import UI_PORT
from workflows.line import LineWorkflow


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
        assert "verdict DONE; 0 commit(s)" in out
        # The test's server was not started by jidoka: its UI is not guessed, but named.
        target = env["TEMPORAL_ADDRESS"]
        assert f"Web UI: unknown (the Temporal server at {target} was not started by" in out
        named = {**env, "JIDOKA_UI_URL": f"http://localhost:{UI_PORT}"}
        code, out, _ = await jidoka("why", "O-1", *line, env=named)
        assert code == 0
        workflow_id = kit.workflow_id("O-1")
        assert (
            f"Web UI: http://localhost:{UI_PORT}/namespaces/default/workflows/{workflow_id}" in out
        )

        code, out, _ = await jidoka(
            "line", "resume", *line, "--root-cause", "agent lied", "--operator", "ops", env=env
        )
        assert code == 0 and "resumed by ops" in out
        issue = client.get_workflow_handle(kit.workflow_id("O-2"))
        await wait_for_phase(issue, Phase.PAUSED, what="O-2 paused")

        code, out, _ = await jidoka("issue", "status", "O-2", *line, env=env)
        assert code == 0 and "paused" in out and "questions:" in out
        code, out, _ = await jidoka(
            "issue", "answer", "O-2", *line, "--answer", "banker's rounding", env=env
        )
        assert code == 0
        await wait_for_phase(issue, Phase.SHIPPED, what="O-2 shipped")

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
        await wait_for_phase(first, Phase.ABANDONED, what="abandoned")
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
