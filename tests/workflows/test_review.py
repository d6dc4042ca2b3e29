"""The review loop after the ship, on the local board, end to end on the dev server: real git,
the scripted agent as a real subprocess, a person's edits of the board file as the review.

On the board a person sends shipped work back by moving the issue to an active state with a
comment, and merges by moving it to the done state. The ``review_changed`` signal (what a
webhook relay sends, and what the line sends when it sees a person's move) wakes the watch
instead of its poll (``review.poll_interval_s`` is at least 30 s)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from temporalio.client import Client, WorkflowHandle

from jidoka import search_attributes as sa
from jidoka.outcomes import HaltCategory, OperatorDecision, Outcome, Phase
from jidoka.payloads import DecideRequest, IssueResult, IssueStatus, ReviewChanged
from runtime.history import steps
from tests.histories import assert_replays
from tests.support.linekit import (
    LineKit,
    eventually,
    factory,
    issue_status,
    live_line_status,
    make_line,
    start_line,
    wait_for_phase,
)
from workflows.issue import IssueWorkflow

TIMEOUT = 60
REVIEW = {"review": {"state": "Human Review", "poll_interval_s": 30, "max_rounds": 2}}


def person_says(kit: LineKit, identifier: str, author: str, body: str, *, state: str) -> None:
    """A person moves the issue to ``state`` and comments, by editing its file."""
    kit.set_state(identifier, state)
    path = kit.board / f"{identifier}.md"
    text = path.read_text()
    if "## Comments" not in text:
        text += "\n## Comments\n"
    path.write_text(text + f"\n### 2026-12-03T10:00:00Z · {author}\n{body}\n")


async def in_review(handle: WorkflowHandle[IssueWorkflow, IssueResult], rounds: int) -> IssueStatus:
    return await eventually(
        lambda: issue_status(handle),
        lambda s: (
            s.phase in (Phase.IN_REVIEW, Phase.HALTED)
            and (s.phase is Phase.HALTED or (s.review is not None and s.review.rounds == rounds))
        ),
        timeout=TIMEOUT,
        what=f"in review after {rounds} round(s)",
    )


async def nudge(handle: WorkflowHandle[Any, Any]) -> None:
    await handle.signal(IssueWorkflow.review_changed, ReviewChanged(source="test"))


async def test_a_person_sends_the_work_back_then_merges_it(client: Client, tmp_path: Path) -> None:
    kit = make_line(tmp_path, REVIEW)
    kit.add_issue("R-1", "ship")
    async with factory(client) as f:
        handle = await f.start_issue(kit, "R-1")
        shipped = await in_review(handle, 0)
        assert shipped.phase is Phase.IN_REVIEW, shipped.halt
        assert kit.state_of("R-1") == "Human Review"
        assert shipped.review is not None and shipped.ship is not None
        first_head = shipped.review.shipped_head
        assert first_head == shipped.ship.head_sha

        person_says(kit, "R-1", "alice", "Please name the zebra flag.", state="Todo")
        await nudge(handle)
        reworked = await in_review(handle, 1)
        assert reworked.phase is Phase.IN_REVIEW, reworked.halt
        assert reworked.review is not None and reworked.review.shipped_head != first_head
        assert reworked.counters.attempts == 2
        assert kit.state_of("R-1") == "Human Review"
        prompt = (kit.workspace("R-1") / ".jidoka" / "prompt.md").read_text()
        assert "Please name the zebra flag." in prompt and "(alice)" in prompt

        # Sent back again without a new comment: the old one is never sent twice.
        kit.set_state("R-1", "Todo")
        await nudge(handle)
        again = await in_review(handle, 2)
        assert again.phase is Phase.IN_REVIEW, again.halt
        prompt = (kit.workspace("R-1") / ".jidoka" / "prompt.md").read_text()
        assert "zebra" not in prompt and "Changes requested by: alice." in prompt

        kit.set_state("R-1", "Done")
        await nudge(handle)
        result = await asyncio.wait_for(handle.result(), TIMEOUT)
        history = await handle.fetch_history()
        described = await handle.describe()
    assert result.phase is Phase.SHIPPED and result.outcome is Outcome.SHIPPED
    assert kit.state_of("R-1") == "Done"
    text = kit.issue_text("R-1")
    assert text.count("Jidoka: rework round") == 2 and "Jidoka: merged" in text
    assert "rework rounds: 2" in text and "merged by: a person" in text
    assert described.typed_search_attributes.get(sa.REVIEW_ROUNDS) == 2
    ran = [step.name for step in steps(history.events)]
    assert "forge_read" in ran and "forge_merge" not in ran
    await assert_replays(history)


async def test_a_round_that_adds_nothing_halts_and_is_never_reshipped(
    client: Client, tmp_path: Path
) -> None:
    kit = make_line(tmp_path, REVIEW)
    kit.add_issue("R-2", "ship-once")
    async with factory(client) as f:
        handle = await f.start_issue(kit, "R-2")
        shipped = await in_review(handle, 0)
        assert shipped.review is not None
        person_says(kit, "R-2", "bob", "Rename the file.", state="Todo")
        await nudge(handle)
        status = await wait_for_phase(handle, Phase.HALTED, timeout=TIMEOUT)
        assert status.halt is not None
        assert status.halt.category is HaltCategory.REVIEW_NO_NEW_WORK
        assert status.last_outcome is Outcome.NO_NEW_WORK
        # Still the first head in review: nothing was pushed or reshipped for the empty round.
        assert status.review is not None and status.review.reworking
        assert kit.issue_text("R-2").count("Jidoka: shipped") == 1
        await handle.terminate("test done")


async def test_the_rounds_cap_halts_and_a_retry_watches_again_until_closed(
    client: Client, tmp_path: Path
) -> None:
    kit = make_line(tmp_path, {"review": {"state": "Human Review", "max_rounds": 1}})
    kit.add_issue("R-3", "ship")
    async with factory(client) as f:
        handle = await f.start_issue(kit, "R-3")
        await in_review(handle, 0)
        person_says(kit, "R-3", "carol", "Add a test.", state="Todo")
        await nudge(handle)
        await in_review(handle, 1)
        person_says(kit, "R-3", "carol", "Still missing a test.", state="Todo")
        await nudge(handle)
        halted = await wait_for_phase(handle, Phase.HALTED, timeout=TIMEOUT)
        assert halted.halt is not None
        assert halted.halt.category is HaltCategory.REVIEW_ROUNDS_CAP
        assert halted.counters.attempts == 2  # no third agent run past the cap

        await handle.execute_update(
            IssueWorkflow.decide,
            DecideRequest(
                decision=OperatorDecision.RETRY, root_cause="one more round", operator="ops"
            ),
        )
        watching = await in_review(handle, 1)
        assert watching.phase is Phase.IN_REVIEW and watching.review is not None
        # The caps start again; the total stays for the evidence.
        assert watching.review.rounds_toward_cap == 0 and watching.review.rounds == 1
        assert not watching.review.reworking
        # Watching again, not working: the retry ran no agent (the feedback that hit the cap
        # is sent at the next reading, as round 1 of the fresh caps).
        assert watching.counters.attempts == 2

        kit.set_state("R-3", "Cancelled")
        await nudge(handle)
        result = await asyncio.wait_for(handle.result(), TIMEOUT)
    assert result.phase is Phase.RELEASED
    assert kit.state_of("R-3") == "Cancelled"
    assert result.preserved_branch is not None


async def test_a_signal_for_another_change_request_is_ignored_visibly(
    client: Client, tmp_path: Path
) -> None:
    kit = make_line(tmp_path, REVIEW)
    kit.add_issue("R-4", "ship")
    async with factory(client) as f:
        handle = await f.start_issue(kit, "R-4")
        await in_review(handle, 0)
        await handle.signal(
            IssueWorkflow.review_changed,
            ReviewChanged(url="https://github.com/someone/else/pull/9"),
        )
        status = await eventually(
            lambda: issue_status(handle),
            lambda s: s.config_error is not None,
            what="the notice",
        )
        assert status.config_error is not None and "someone/else/pull/9" in status.config_error
        assert status.phase is Phase.IN_REVIEW
        await handle.terminate("test done")


async def test_the_line_forwards_a_persons_move_and_gives_the_slot_to_the_next_issue(
    client: Client, tmp_path: Path
) -> None:
    kit = make_line(tmp_path, {**REVIEW, "concurrency": {"max_agents": 1}})
    kit.add_issue("R-5", "ship", priority=1)
    kit.add_issue("R-6", "ship", priority=2)
    async with factory(client) as f:
        line = await start_line(f, kit)
        # One agent slot: R-6 runs only because R-5, in review, holds none.
        await eventually(
            lambda: live_line_status(client, line),
            lambda s: (
                {e.identifier: e.phase for e in s.running}
                == {"R-5": Phase.IN_REVIEW, "R-6": Phase.IN_REVIEW}
            ),
            timeout=TIMEOUT,
            what="both issues in review",
        )
        # No signal from the test: the line sees the move and wakes the issue.
        kit.set_state("R-5", "Done")
        await eventually(
            lambda: live_line_status(client, line),
            lambda s: any(e.identifier == "R-5" for e in s.finished),
            timeout=TIMEOUT,
            what="R-5 done",
        )
        assert kit.state_of("R-5") == "Done" and "Jidoka: merged" in kit.issue_text("R-5")
        assert kit.state_of("R-6") == "Human Review"
        await line.terminate("test done")


async def test_review_removed_from_workflow_md_while_in_review_halts_and_says_so(
    client: Client, tmp_path: Path
) -> None:
    kit = make_line(tmp_path, REVIEW)
    kit.add_issue("R-7", "ship")
    async with factory(client) as f:
        handle = await f.start_issue(kit, "R-7")
        await in_review(handle, 0)
        del kit.front_matter["review"]
        kit.write()
        await nudge(handle)
        halted = await wait_for_phase(handle, Phase.HALTED, timeout=TIMEOUT)
        assert halted.halt is not None and halted.halt.category is HaltCategory.CONFIG_INVALID
        assert "review: section left WORKFLOW.md" in halted.halt.reason
        assert kit.state_of("R-7") == "Human Review"  # nothing closed on the way

        kit.front_matter.update(REVIEW)
        kit.write()
        await handle.execute_update(
            IssueWorkflow.decide,
            DecideRequest(
                decision=OperatorDecision.RETRY, root_cause="put it back", operator="ops"
            ),
        )
        watching = await in_review(handle, 0)
        assert watching.phase is Phase.IN_REVIEW
        await handle.terminate("test done")
