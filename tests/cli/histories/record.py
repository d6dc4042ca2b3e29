"""Record the issue histories ``tests/cli/test_why.py`` tells.

Run from the repository root::

    .venv/bin/python -m tests.cli.histories.record

Like ``tests/histories/record.py`` (a throwaway dev server, the real worker, the scripted agent,
a local board and real git in a temporary folder), for the review loop: an issue ships into
review, a person sends it back (a rework round), sends it back again past ``review.max_rounds``
(a ``review_rounds_cap`` halt), an operator retries, and a person merges it (moves it to done).
Re-record when the review loop's history changes shape; the test only decodes and tells it.
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
from pathlib import Path

from temporalio.client import Client, WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from jidoka.outcomes import HaltCategory, OperatorDecision, Phase
from jidoka.payloads import DecideRequest, ReviewChanged
from runtime.temporal import search_attribute_keys, temporal_cli_path
from tests.cli.histories import HISTORY_DIR
from tests.histories.record import _clean_environment  # pyright: ignore[reportPrivateUsage]
from tests.support.linekit import LineKit, eventually, factory, issue_status, make_line
from workflows.issue import IssueWorkflow

TIMEOUT = 90.0
REVIEW = {"review": {"state": "Human Review", "poll_interval_s": 30, "max_rounds": 1}}


def _person_says(kit: LineKit, identifier: str, author: str, body: str, *, state: str) -> None:
    kit.set_state(identifier, state)
    path = kit.board / f"{identifier}.md"
    text = path.read_text()
    if "## Comments" not in text:
        text += "\n## Comments\n"
    path.write_text(text + f"\n### 2026-12-03T10:00:00Z · {author}\n{body}\n")


def _expect(condition: bool, message: str) -> None:
    if not condition:
        raise SystemExit(f"record: scenario did not go as designed: {message}")


async def issue_review(client: Client, root: Path) -> WorkflowHistory:
    kit = make_line(root, REVIEW)
    kit.add_issue("REV-1", "ship")
    async with factory(client) as f:
        handle = await f.start_issue(kit, "REV-1")

        async def phase(wanted: Phase, rounds: int | None = None) -> None:
            await eventually(
                lambda: issue_status(handle),
                lambda s: (
                    s.phase is wanted
                    and (rounds is None or (s.review is not None and s.review.rounds == rounds))
                ),
                timeout=TIMEOUT,
                what=f"{wanted} ({rounds} round(s))",
            )

        async def nudge() -> None:
            await handle.signal(IssueWorkflow.review_changed, ReviewChanged(source="record"))

        await phase(Phase.IN_REVIEW, 0)
        await nudge()  # one reading that finds nothing to do yet
        await eventually(
            lambda: issue_status(handle),
            lambda s: (s.review_waiting or "").startswith("waiting"),
            timeout=TIMEOUT,
            what="a first reading",
        )
        _person_says(kit, "REV-1", "alice", "Please name the zebra flag.", state="Todo")
        await nudge()
        await phase(Phase.IN_REVIEW, 1)
        _person_says(kit, "REV-1", "alice", "Still not named.", state="Todo")
        await nudge()
        await phase(Phase.HALTED)
        halted = await issue_status(handle)
        _expect(
            halted.halt is not None and halted.halt.category is HaltCategory.REVIEW_ROUNDS_CAP,
            f"halt {halted.halt}",
        )
        await handle.execute_update(
            IssueWorkflow.decide,
            DecideRequest(
                decision=OperatorDecision.RETRY, root_cause="one more look", operator="ops"
            ),
        )
        await phase(Phase.IN_REVIEW, 1)  # watching again: the caps start again, the total stays
        kit.set_state("REV-1", "Done")
        await nudge()
        result = await asyncio.wait_for(handle.result(), TIMEOUT)
        history = await handle.fetch_history()
    _expect(result.phase is Phase.SHIPPED, f"ended {result.phase}")
    return history


async def record(out: Path) -> Path:
    _clean_environment()
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=temporal_cli_path(),
        search_attributes=search_attribute_keys(),
        data_converter=pydantic_data_converter,
        dev_server_extra_args=[
            "--dynamic-config-value",
            "frontend.enableUpdateWorkflowExecution=true",
        ],
    )
    try:
        with tempfile.TemporaryDirectory(prefix="jidoka-record-review-") as scratch:
            history = await issue_review(env.client, Path(scratch))
        path = out / "issue_review.json"
        path.write_text(history.to_json() + "\n", encoding="utf-8")
        print(f"{path}: {len(history.events)} events")
    finally:
        await env.shutdown()
    return path


def main() -> int:
    asyncio.run(record(HISTORY_DIR))
    sys.stdout.flush()
    os._exit(0)  # skip interpreter teardown, where the SDK's native threads can abort


if __name__ == "__main__":
    sys.exit(main())
