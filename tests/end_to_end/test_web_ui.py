"""The README's Web UI filters, asked of the Web UI's own HTTP API (the dev server's UI), each
finding exactly the workflows an operator expects. Memos carry the issue's title and URL."""

from __future__ import annotations

import base64
import json
import re
import urllib.parse
from pathlib import Path

import httpx
from temporalio.client import Client

from jidoka.outcomes import Phase
from tests.support.linekit import eventually, factory, make_line, start_line
from tests.support.paths import README
from tests.support.ports import UI_PORT
from workflows.line import LineWorkflow


def readme_filters() -> dict[str, str]:
    """The "question | filter" table of the README's Web UI section."""
    section = README.read_text().split("## The Web UI", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| ([^|]+?) \| `([^`]+)` \|$", section, flags=re.MULTILINE)
    return dict(rows)


async def ui_workflows(query: str) -> list[dict[str, object]]:
    url = f"http://127.0.0.1:{UI_PORT}/api/v1/namespaces/default/workflows?query={urllib.parse.quote(query)}"
    async with httpx.AsyncClient(timeout=10) as http:
        response = await http.get(url)
    response.raise_for_status()
    executions: list[dict[str, object]] = response.json().get("executions", [])
    return executions


def ids(executions: list[dict[str, object]]) -> set[str]:
    return {str(e["execution"]["workflowId"]) for e in executions}  # type: ignore[index]


def memo_value(execution: dict[str, object], key: str) -> str:
    field = execution["memo"]["fields"][key]  # type: ignore[index]
    return json.loads(base64.b64decode(field["data"]))  # type: ignore[index]


async def test_operators_find_what_they_look_for_with_one_filter(
    client: Client, tmp_path: Path
) -> None:
    filters = readme_filters()
    assert {"every halted issue", "every issue of line X", "every issue that shipped"} <= set(
        filters
    )
    kit = make_line(tmp_path, {"concurrency": {"max_agents": 1}})
    kit.add_issue("U-1", "ship", priority=1, title="Ship the thing")
    kit.add_issue("U-2", "hallucinate", priority=2, title="Pretend to ship")
    async with factory(client) as f:
        handle = await start_line(f, kit)
        status = await eventually(
            lambda: handle.query(LineWorkflow.status), lambda s: s.halted, what="halted"
        )
        assert [e.phase for e in status.finished] == [Phase.SHIPPED]
        shipped, halted = kit.workflow_id("U-1"), kit.workflow_id("U-2")

        of_line = filters["every issue of line X"].replace('"X"', f'"{kit.line}"')
        found = await eventually(
            lambda: ui_workflows(of_line), lambda e: ids(e) == {shipped, halted}, what="line filter"
        )
        titles = {memo_value(e, "title") for e in found}
        assert titles == {"Ship the thing", "Pretend to ship"}
        assert all(memo_value(e, "url").startswith("file://") for e in found)

        await eventually(
            lambda: ui_workflows(filters["every halted issue"]),
            lambda e: halted in ids(e) and shipped not in ids(e),
            what="halted filter",
        )
        await eventually(
            lambda: ui_workflows(filters["every issue that shipped"]),
            lambda e: shipped in ids(e) and halted not in ids(e),
            what="shipped filter",
        )
        await eventually(
            lambda: ui_workflows(filters["every halted line"]),
            lambda e: handle.id in ids(e),
            what="halted line filter",
        )
        await handle.terminate("test done")
        await client.get_workflow_handle(halted).terminate("test done")
