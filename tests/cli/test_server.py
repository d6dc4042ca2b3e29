"""``jidoka server`` as a user runs it: the embedded dev server keeps its workflows across
restarts, serves the Web UI (where the CLI's links lead) and registers Jidoka's search
attributes."""

from __future__ import annotations

import asyncio
import urllib.request
import uuid
from pathlib import Path

import pytest
from temporalio.api.operatorservice.v1 import ListSearchAttributesRequest
from temporalio.client import Client, WorkflowExecutionStatus

from cli.common import web_ui
from tests.support.cli import cli_env, interrupt, read_until
from tests.support.paths import JIDOKA
from tests.support.ports import free_port


async def test_server_keeps_workflows_across_restarts_with_ui_and_search_attributes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("JIDOKA_UI_URL", raising=False)
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
            # The links the CLI prints lead to this server's UI, on the port it was given.
            assert web_ui(client).url == f"http://localhost:{ui_port}"
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
