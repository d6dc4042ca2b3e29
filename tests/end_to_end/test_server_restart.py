"""Nothing is lost when the Temporal server dies: the embedded dev server (persistent SQLite
database, as ``jidoka server`` and ``jidoka run`` start it) is SIGKILLed while an agent is
running, then started again on the same database. The worker reconnects by itself, the running
attempt's result is delivered, and the line finishes every issue exactly once."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

from temporalio.client import Client

from activities.agent.transcript import transcript_path
from jidoka.outcomes import Phase
from runtime.devserver import (
    DevServerSettings,
    connect_when_ready,
    start_dev_server,
    stop_dev_server,
)
from tests.support.linekit import eventually, factory, make_line, start_line, wait_for_phase
from tests.support.ports import free_port
from workflows.issue import IssueWorkflow
from workflows.line import LineWorkflow


async def test_a_server_killed_mid_run_and_restarted_loses_nothing(tmp_path: Path) -> None:
    settings = DevServerSettings(
        db_path=tmp_path / ".jidoka" / "temporal.db", port=free_port(), headless=True
    )
    settings.db_path.parent.mkdir(parents=True)
    # Slow agents, so the server dies while one is certainly running.
    kit = make_line(
        tmp_path,
        {
            "concurrency": {"max_agents": 1},
            "agent": {"stall_timeout_s": 30, "env": {"JIDOKA_SCRIPTED_PACE": "0.4"}},
        },
    )
    kit.add_issue("K-1", "ship", priority=1)
    kit.add_issue("K-2", "ship", priority=2)
    server = await start_dev_server(settings)
    try:
        client: Client = await connect_when_ready(settings.address)
        async with factory(client) as f:
            handle = await start_line(f, kit)
            first = client.get_workflow_handle(kit.workflow_id("K-1"))
            await wait_for_phase(first, Phase.RUNNING_AGENT, what="K-1's agent running")
            os.killpg(server.process.pid, signal.SIGKILL)
            server.process.wait(timeout=30)
            server = await start_dev_server(settings)  # same database file
            status = await eventually(
                lambda: handle.query(LineWorkflow.status),
                lambda s: len(s.finished) == 2,
                timeout=120,
                what="both issues finished after the restart",
            )
            k1 = await first.query(IssueWorkflow.status)
            await handle.terminate("test done")
    finally:
        stop_dev_server(server)
    assert {f.identifier: f.phase for f in status.finished} == {
        "K-1": Phase.SHIPPED,
        "K-2": Phase.SHIPPED,
    }
    # The attempt that was running when the server died is the one that shipped.
    assert k1.counters.attempts == 1 and k1.counters.failures == 0
    for identifier in ("K-1", "K-2"):
        text = kit.issue_text(identifier)
        assert kit.state_of(identifier) == "Done"
        assert text.count("**Jidoka: shipped**") == 1, text


HEARTBEAT_S = 3


async def test_an_outage_longer_than_the_heartbeat_timeout_costs_the_agent_nothing(
    tmp_path: Path,
) -> None:
    settings = DevServerSettings(
        db_path=tmp_path / ".jidoka" / "temporal.db", port=free_port(), headless=True
    )
    settings.db_path.parent.mkdir(parents=True)
    # The agent finishes while the server is down, and the outage outlasts the heartbeat
    # timeout: the server sees a lost worker when it comes back.
    kit = make_line(
        tmp_path,
        {
            "agent": {"stall_timeout_s": 30, "env": {"JIDOKA_SCRIPTED_PACE": "0.5"}},
            "timeouts": {"heartbeat_s": HEARTBEAT_S, "host_start_s": 30},
        },
    )
    kit.add_issue("O-1", "ship")
    server = await start_dev_server(settings)
    try:
        client: Client = await connect_when_ready(settings.address)
        async with factory(client) as f:
            handle = await start_line(f, kit)
            issue = client.get_workflow_handle(kit.workflow_id("O-1"))
            await wait_for_phase(issue, Phase.RUNNING_AGENT, what="O-1's agent running")
            os.killpg(server.process.pid, signal.SIGKILL)
            server.process.wait(timeout=30)
            down_at = asyncio.get_running_loop().time()
            # The outage: the agent ends during it (its transcript's summary is written), and
            # it lasts twice the heartbeat timeout.
            transcript = transcript_path(kit.workspace("O-1"), 1)
            await eventually(
                lambda: asyncio.to_thread(transcript.read_text),
                lambda text: '"kind": "summary"' in text,
                what="O-1's agent finished during the outage",
            )
            await asyncio.sleep(down_at + 2 * HEARTBEAT_S - asyncio.get_running_loop().time())
            server = await start_dev_server(settings)
            status = await eventually(
                lambda: handle.query(LineWorkflow.status),
                lambda s: len(s.finished) == 1,
                timeout=120,
                what="O-1 finished after the outage",
            )
            o1 = await issue.query(IssueWorkflow.status)
            await handle.terminate("test done")
    finally:
        stop_dev_server(server)
    assert [(e.identifier, e.phase) for e in status.finished] == [("O-1", Phase.SHIPPED)]
    # Not one of the agent's attempts went to the outage: either the finished run was
    # recovered from its host, or the lost one was charged to the infrastructure budget.
    assert o1.counters.failures == 0, o1.counters
    assert o1.counters.attempts == 1 or o1.counters.infra_failures >= 1, o1.counters
    assert kit.issue_text("O-1").count("**Jidoka: shipped**") == 1
