"""Record the issue histories ``jidoka why`` is tested on (``tests/cli/test_why*.py``).

Run from the repository root::

    .venv/bin/python -m tests.cli.histories.record                    # every history
    .venv/bin/python -m tests.cli.histories.record issue_line_stops   # some of them

Like ``tests/histories/record.py`` (a throwaway dev server, the real worker, the scripted agent,
a local board and real git in a temporary folder):

* ``issue_review``: the review loop. An issue ships into review, a person sends it back (a
  rework round), sends it back again past ``review.max_rounds`` (a ``review_rounds_cap``
  halt), an operator retries, and a person merges it (moves it to done).
* ``issue_line_stops``: one issue's story among others', on a priced line (``pricing:``), like
  the demo's DEMO-4. It asks questions and waits (paused) while another issue halts the line
  (its agent's ``HALT``), a third halts it again (``no_progress``) and an operator halts it
  once more; each stop is resumed with a root cause. Then the answer comes and it ships: two
  attempts, each with its tokens and its cost.

Re-record when a history changes shape; the tests only decode and tell them.
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from temporalio.client import Client, WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from jidoka.outcomes import HaltCategory, HaltSource, OperatorDecision, Phase
from jidoka.payloads import (
    AnswerRequest,
    DecideRequest,
    HaltRequest,
    ResumeRequest,
    ReviewChanged,
)
from runtime.temporal import search_attribute_keys, temporal_cli_path
from tests.cli.histories import HISTORY_DIR
from tests.histories.record import _clean_environment  # pyright: ignore[reportPrivateUsage]
from tests.support.linekit import (
    LineKit,
    eventually,
    factory,
    issue_status,
    make_line,
    resume_leaving_the_issue_halted,
    start_line,
    wait_for_phase,
)
from workflows.issue import IssueWorkflow
from workflows.line import LineWorkflow

TIMEOUT = 90.0
REVIEW = {"review": {"state": "Human Review", "poll_interval_s": 30, "max_rounds": 1}}
PRICES = {"input": 100.0, "cached_input": 25.0, "output": 400.0}
"""Per million tokens: dear on purpose, so one scripted attempt costs round cents."""
PRICED: dict[str, Any] = {
    "pricing": {"currency": "USD", "model": "scripted-1", "models": {"scripted-1": PRICES}},
}


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


async def issue_line_stops(client: Client, root: Path) -> WorkflowHistory:
    kit = make_line(root, PRICED)
    kit.add_issue("S-1", "ask", title="Round the totals")
    # Not on the line until moved to Todo: each stops the line when the story wants it to.
    kit.add_issue("S-2", "halt", state="Backlog", title="Migrate the staging data")
    kit.add_issue("S-3", "hallucinate", state="Backlog", title="Claim the export")
    async with factory(client) as f:
        line = await start_line(f, kit)
        story = client.get_workflow_handle_for(IssueWorkflow.run, kit.workflow_id("S-1"))
        await wait_for_phase(story, Phase.PAUSED, timeout=TIMEOUT, what="S-1 paused")

        async def reaches_the_story(halted: bool) -> None:
            await eventually(
                lambda: issue_status(story),
                lambda s: s.line_halted is halted,
                timeout=TIMEOUT,
                what=f"S-1 told the line is {'halted' if halted else 'resumed'}",
            )

        async def another_issue_stops_the_line(identifier: str, root_cause: str) -> None:
            kit.set_state(identifier, "Todo")
            other = client.get_workflow_handle(kit.workflow_id(identifier))
            await wait_for_phase(other, Phase.HALTED, timeout=TIMEOUT, what=f"{identifier} halted")
            await reaches_the_story(True)
            await resume_leaving_the_issue_halted(line, other, root_cause, timeout=TIMEOUT)
            await reaches_the_story(False)
            await other.execute_update(
                IssueWorkflow.decide,
                DecideRequest(
                    decision=OperatorDecision.ABANDON, root_cause=root_cause, operator="ops"
                ),
            )

        await another_issue_stops_the_line("S-2", "staging database restored")
        await another_issue_stops_the_line("S-3", "the agent claimed work it never committed")
        await line.signal(
            LineWorkflow.halt,
            HaltRequest(reason="deploy freeze", source=HaltSource.OPERATOR, operator="ops"),
        )
        await reaches_the_story(True)
        await line.execute_update(
            LineWorkflow.resume_update, ResumeRequest(root_cause="freeze lifted", operator="ops")
        )
        await reaches_the_story(False)
        await story.signal(
            IssueWorkflow.answer, AnswerRequest(answer="behind a flag; 3.11+", operator="ops")
        )
        result = await asyncio.wait_for(story.result(), TIMEOUT)
        history = await story.fetch_history()
        await line.terminate("recorded")
    _expect(result.phase is Phase.SHIPPED, f"ended {result.phase}")
    _expect(result.counters.attempts == 2, f"{result.counters.attempts} attempts")
    _expect(result.counters.cost_unknown == 0, f"{result.counters.cost_unknown} unknown")
    return history


SCENARIOS: dict[str, Callable[[Client, Path], Awaitable[WorkflowHistory]]] = {
    "issue_review": issue_review,
    "issue_line_stops": issue_line_stops,
}


async def record(out: Path, names: list[str] | None = None) -> list[Path]:
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
    written: list[Path] = []
    try:
        for name in names or list(SCENARIOS):
            with tempfile.TemporaryDirectory(prefix=f"jidoka-record-{name}-") as scratch:
                history = await SCENARIOS[name](env.client, Path(scratch))
            path = out / f"{name}.json"
            path.write_text(history.to_json() + "\n", encoding="utf-8")
            print(f"{path}: {len(history.events)} events")
            written.append(path)
    finally:
        await env.shutdown()
    return written


def main() -> int:
    names = sys.argv[1:]
    unknown = [name for name in names if name not in SCENARIOS]
    if unknown:
        raise SystemExit(f"record: no history named {', '.join(unknown)}; known: {list(SCENARIOS)}")
    asyncio.run(record(HISTORY_DIR, names))
    sys.stdout.flush()
    os._exit(0)  # skip interpreter teardown, where the SDK's native threads can abort


if __name__ == "__main__":
    sys.exit(main())
