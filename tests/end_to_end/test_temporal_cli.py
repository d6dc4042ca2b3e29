"""The README's Temporal CLI recipes, run verbatim with the real ``temporal`` binary against the
real dev server; the exported history is replayed with ``Replayer``. Only the task queue and the
WORKFLOW.md path differ from the README (each test has its own worker)."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shlex
from pathlib import Path

from temporalio.client import Client, WorkflowHistory
from temporalio.testing import WorkflowEnvironment

from jidoka.outcomes import HaltSource, Phase
from jidoka.payloads import LineStatus
from tests.histories import replayer
from tests.support.linekit import eventually, factory, make_line, wait_for_phase
from tests.support.paths import README
from workflows.line import LineWorkflow


def recipes() -> dict[str, str]:
    """``# recipe: NAME`` blocks of the README: the command that follows, continuations joined."""
    found: dict[str, str] = {}
    lines = README.read_text().splitlines()
    for index, line in enumerate(lines):
        match = re.match(r"# recipe: (\S+)$", line.strip())
        if not match:
            continue
        command: list[str] = []
        for follow in lines[index + 1 :]:
            if not follow.strip() or follow.startswith("```"):
                break
            command.append(follow.rstrip().removesuffix("\\").strip())
        found[match.group(1)] = " ".join(command)
    return found


def test_the_readme_lists_every_recipe_the_issue_asks_for() -> None:
    assert set(recipes()) >= {
        "start-line",
        "start-issue",
        "query-status",
        "halt-line",
        "resume-line-refused",
        "resume-line",
        "halt-issue",
        "resume-issue",
        "halt-every-running-issue",
        "export-history",
        "review-changed",
    }


async def temporal(
    cli: str, name: str, *, address: str, queue: str, workflow: Path
) -> tuple[int, str, str]:
    command = recipes()[name]
    command = command.replace("--task-queue jidoka ", f"--task-queue {queue} ")
    command = command.replace("/path/to/WORKFLOW.md", str(workflow))
    argv = shlex.split(command)
    assert argv[0] == "temporal"
    process = await asyncio.create_subprocess_exec(
        cli,
        *argv[1:],
        "--address",
        address,
        env={**os.environ, "TEMPORAL_CLI_SHOW_STACKS": "0"},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    return process.returncode or 0, out.decode(), err.decode()


async def test_every_recipe_against_a_real_server(
    client: Client, dev_env: WorkflowEnvironment, temporal_cli: str, tmp_path: Path
) -> None:
    kit = make_line(tmp_path, {"line": "demo", "concurrency": {"max_agents": 1}})
    kit.add_issue("DEMO-1", "ask")
    address = dev_env.client.service_client.config.target_host
    async with factory(client) as f:

        async def run(name: str) -> tuple[int, str, str]:
            return await temporal(
                temporal_cli, name, address=address, queue=f.task_queue, workflow=kit.workflow_md
            )

        # One issue, started by hand: it asks questions and pauses.
        code, out, err = await run("start-issue")
        assert code == 0, err
        issue = client.get_workflow_handle(kit.workflow_id("DEMO-1"))
        await wait_for_phase(issue, Phase.PAUSED, what="paused")
        code, _, err = await run("halt-issue")
        assert code == 0, err
        status = await wait_for_phase(issue, Phase.HALTED, what="halted")
        assert status.halt is not None and status.halt.source is HaltSource.OPERATOR
        code, _, err = await run("resume-issue")
        assert code == 0, err
        status = await wait_for_phase(issue, Phase.SHIPPED, what="shipped after resume")
        assert status.halts[0].root_cause == "checked it"

        # The exported history replays on the current code (determinism guard).
        code, out, err = await run("export-history")
        assert code == 0, err
        history = json.loads(out)
        assert history["events"]
        replay = await replayer().replay_workflow(
            WorkflowHistory.from_json(kit.workflow_id("DEMO-1"), out)
        )
        assert replay.replay_failure is None

        # A line, started by hand; its status queried; halted and resumed.
        kit.add_issue("DEMO-2", "ask")
        code, _, err = await run("start-line")
        assert code == 0, err
        line = client.get_workflow_handle("jidoka-line-demo")
        second = client.get_workflow_handle(kit.workflow_id("DEMO-2"))
        await wait_for_phase(second, Phase.PAUSED, what="DEMO-2 paused")
        code, out, err = await run("query-status")
        assert code == 0, err
        assert '"halted": false' in out.replace(" ", "").replace(
            '"halted":false', '"halted": false'
        )

        code, _, err = await run("halt-line")
        assert code == 0, err
        await eventually(
            lambda: line.query(LineWorkflow.status), lambda s: s.halted, what="line halted"
        )
        code, out, err = await run("resume-line-refused")
        assert code != 0 and "root_cause" in (out + err)
        status_line: LineStatus = await line.query(LineWorkflow.status)
        assert status_line.halted
        code, out, err = await run("resume-line")
        assert code == 0, err
        status_line = await line.query(LineWorkflow.status)
        assert not status_line.halted and status_line.halts[-1].root_cause == "freeze lifted"

        # One batch signal halts every running issue of the line, found by search attribute.
        code, out, err = await run("halt-every-running-issue")
        assert code == 0, out + err
        status = await wait_for_phase(second, Phase.HALTED, what="batch halt")
        assert status.halt is not None and status.halt.reason == "stop everything"
        await line.terminate("test done")
        await client.get_workflow_handle(kit.workflow_id("DEMO-2")).terminate("test done")


async def test_the_review_changed_recipe_wakes_an_issue_in_review(
    client: Client, dev_env: WorkflowEnvironment, temporal_cli: str, tmp_path: Path
) -> None:
    """The webhook relay's signal: the issue reads its change request at once (the board's
    done state is the merge), not at its next poll (30 s at the least)."""
    kit = make_line(tmp_path, {"line": "demo", "review": {"state": "Human Review"}})
    kit.add_issue("DEMO-1", "ship")
    address = dev_env.client.service_client.config.target_host
    async with factory(client) as f:

        async def run(name: str) -> tuple[int, str, str]:
            return await temporal(
                temporal_cli, name, address=address, queue=f.task_queue, workflow=kit.workflow_md
            )

        code, _, err = await run("start-issue")
        assert code == 0, err
        issue = client.get_workflow_handle(kit.workflow_id("DEMO-1"))
        await wait_for_phase(issue, Phase.IN_REVIEW, what="in review")
        kit.set_state("DEMO-1", "Done")
        code, _, err = await run("review-changed")
        assert code == 0, err
        status = await wait_for_phase(issue, Phase.SHIPPED, what="merged", timeout=20)
        assert status.review is not None and "Jidoka: merged" in kit.issue_text("DEMO-1")
