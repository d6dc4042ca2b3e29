"""An issue in review as an operator sees it from a terminal: real subprocesses on the dev
server, a real line whose issue shipped into review on the local board."""

from __future__ import annotations

import json
from pathlib import Path

from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from cli.line_view import read_line_view
from jidoka.outcomes import Phase
from tests.support.cli import cli_env, jidoka
from tests.support.linekit import eventually, factory, make_line, start_line


async def test_status_issue_and_why_show_an_issue_in_review(
    client: Client, dev_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    kit = make_line(tmp_path, {"review": {"state": "Human Review", "poll_interval_s": 30}})
    kit.add_issue("V-1", "ship")
    env = cli_env(dev_env)
    line = ["--line", kit.line]
    async with factory(client) as f:
        handle = await start_line(f, kit)
        workflow_id = kit.workflow_id("V-1")
        # The rounds come from the same visibility query as the live phases; it may lag.
        await eventually(
            lambda: read_line_view(client, handle),
            lambda v: (
                [e.phase for e in v.status.running] == [Phase.IN_REVIEW]
                and v.review_rounds == {workflow_id: 0}
            ),
            timeout=60,
            what="V-1 in review, its rounds visible",
        )

        code, out, err = await jidoka("line", "status", *line, env=env)
        assert code == 0, err
        assert "1 in review (waiting on people, no agent slot held)" in out
        (row,) = [r for r in out.splitlines() if r.strip().startswith("V-1 ")]
        assert "in_review for " in row and ", 0 rework rounds" in row

        code, out, err = await jidoka("line", "status", *line, "--json", env=env)
        assert code == 0, err
        (entry,) = json.loads(out)["running"]
        assert entry["phase"] == "in_review" and entry["review_rounds"] == 0

        code, out, err = await jidoka("issue", "status", "V-1", *line, env=env)
        assert code == 0, err
        assert "  review: file://" in out and "0 rework rounds; 0 tokens in review" in out
        assert "    now: " in out

        code, out, err = await jidoka("why", "V-1", *line, env=env)
        assert code == 0, err
        assert "— in_review" in out.splitlines()[0]
        assert "Why in review? Because attempt 1 ended with shipped" in out
        await handle.terminate("test done")
