"""Money on a real priced line, as an operator reads it from a terminal: real subprocesses on
the dev server, a line with ``pricing:`` whose one issue shipped (its workflow closed) and
another waits for answers (still running). The currency is the WORKFLOW.md's: the one given,
or with ``--line NAME`` the one the line was started with, when it can be read."""

from __future__ import annotations

import json
from pathlib import Path

from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from cli.line_view import read_line_view
from jidoka.outcomes import Phase
from tests.cli.histories.record import PRICED
from tests.support.cli import cli_env, jidoka
from tests.support.linekit import (
    deep_merge,
    eventually,
    factory,
    make_line,
    start_line,
    wait_for_phase,
)

# PRICED, in EUR here: per million tokens, input 100, cached input 25, output 400. The scripted
# agent reports 3,000 tokens a step (2,400 in, 1,200 of them cached, 600 out): 1,200 x 100 +
# 1,200 x 25 + 600 x 400 = 390,000 / 1e6 = 0.39 a step. "ship" takes two steps in one attempt
# (0.78); "ask" one step, then waits (0.39). The line: 1.17.
IN_EUROS = deep_merge(PRICED, {"pricing": {"currency": "EUR"}})


async def test_status_and_issue_status_show_money_on_a_priced_line(
    client: Client, dev_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    kit = make_line(tmp_path, IN_EUROS)
    kit.add_issue("P-1", "ship")
    kit.add_issue("P-2", "ask")
    env = cli_env(dev_env)
    async with factory(client) as f:
        handle = await start_line(f, kit)
        asking = client.get_workflow_handle(kit.workflow_id("P-2"))
        await wait_for_phase(asking, Phase.PAUSED, what="P-2 paused")
        # Visibility lags behind the workflows: wait until it holds both issues' money.
        await eventually(
            lambda: read_line_view(client, handle, priced=True),
            lambda v: (
                v.cost is not None
                and round(v.cost.known, 2) == 1.17
                and [e.identifier for e in v.status.running] == ["P-2"]
            ),
            what="both issues' cost visible",
        )

        # The WORKFLOW.md given, or (--line NAME) the one the line was started with.
        for target in ([str(kit.workflow_md)], ["--line", kit.line]):
            code, out, err = await jidoka("line", "status", *target, env=env)
            assert code == 0, err
            assert "  cost: 1.17 EUR in total\n" in out
            (row,) = [r for r in out.splitlines() if r.strip().startswith("P-2 ")]
            assert " 3,000   0.39 EUR " in row
            code, out, err = await jidoka("issue", "status", "P-2", *target, env=env)
            assert code == 0, err
            assert "  cost: 0.39 EUR\n" in out
            assert "  attempts:\n    1: awaiting_answers — 3,000 tokens, 0.39 EUR" in out
        code, out, err = await jidoka("line", "status", "--line", kit.line, "--json", env=env)
        assert code == 0, err
        data = json.loads(out)
        assert data["cost"]["currency"] == "EUR" and round(data["cost"]["known"], 2) == 1.17
        assert data["cost"]["unknown_issues"] == 0
        assert [round(e["cost"], 2) for e in data["running"]] == [0.39]

        # No WORKFLOW.md readable here: visibility still says the line is priced (the issues
        # hold JidokaCost), and the amounts are shown without guessing their currency (this
        # line is in euros: a "$" would be a lie).
        kit.workflow_md.rename(kit.root / "moved.md")
        code, out, err = await jidoka("line", "status", "--line", kit.line, env=env)
        assert code == 0, err
        assert "  cost: 1.17 (currency unknown) in total\n" in out and "$" not in out
        code, out, err = await jidoka("issue", "status", "P-2", "--line", kit.line, env=env)
        assert code == 0, err
        assert "  cost: 0.39 (currency unknown)\n" in out and "$" not in out
        await handle.terminate("test done")
