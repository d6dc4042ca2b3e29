"""The review loop's watch: wait for the change request to change, read it, and ask the
policy (:func:`jidoka.review.next_step`) what its reading calls for.

Waiting is a durable timer (``review.poll_interval_s``) cut short by the ``review_changed``
signal (a webhook relay, or the line seeing a person's move on the board): no worker is busy
while an issue is in review, and a worker, server or process restart loses nothing. What to do
with the step is the issue workflow's decision; this module only watches. Deterministic code
only (it runs inside the issue workflow).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import assert_never

from temporalio import workflow

from workflows.forge_calls import ForgeCalls
from workflows.tracker_calls import ReadFailed, Unreadable

with workflow.unsafe.imports_passed_through():
    from jidoka import review
    from jidoka.config import ReviewConfig, WorkflowConfig
    from jidoka.payloads import ReviewChanged
    from jidoka.review import ChangeRequest, RequestState, ReviewLedger, Step, StepKind


@dataclass(frozen=True)
class Reading:
    step: Step
    request: ChangeRequest


class ReviewWatch:
    def __init__(self, issue_id: str) -> None:
        self._forge = ForgeCalls(issue_id)
        self._changed = False

    def hear(self, changed: ReviewChanged, ledger: ReviewLedger | None) -> str | None:
        """Take a ``review_changed`` signal; a notice when it is ignored (and why)."""
        if ledger is None or ledger.reworking:
            return "review_changed ignored: the issue is not watching a change request now"
        if changed.url and changed.url.rstrip("/") != ledger.url.rstrip("/"):
            return (
                f"review_changed ignored: it names {changed.url[:200]}, "
                f"not this issue's change request ({ledger.url})"
            )
        self._changed = True
        return None

    async def wait(self, config: ReviewConfig, interrupted: Callable[[], bool]) -> None:
        """Until the next poll, a ``review_changed`` signal, or ``interrupted``."""
        with contextlib.suppress(TimeoutError):
            await workflow.wait_condition(
                lambda: self._changed or interrupted(),
                timeout=timedelta(seconds=config.poll_interval_s),
                timeout_summary="review poll",
            )
        self._changed = False

    async def read(self, config: WorkflowConfig, ledger: ReviewLedger) -> Reading | ReadFailed:
        """One reading and what it calls for. A forge that does not answer is waited out,
        up to ``review.max_time``; a refused read is the caller's to halt on."""
        assert config.review is not None
        found = await self._forge.read(config, url=ledger.url, shipped_head=ledger.shipped_head)
        if isinstance(found, ReadFailed):
            match found.kind:
                case Unreadable.GONE:
                    found = ChangeRequest(url=ledger.url, state=RequestState.GONE, head_sha="")
                case Unreadable.UNREACHABLE:
                    if not review.time_in_review_capped(ledger, config.review, workflow.now()):
                        return found
                    found = ChangeRequest(
                        url=ledger.url, state=RequestState.OPEN, head_sha=ledger.shipped_head
                    )
                case Unreadable.REFUSED:
                    return found
                case _:
                    assert_never(found.kind)
        step = review.next_step(found, ledger, config.review, workflow.now())
        return Reading(step=step, request=found)

    async def merge(self, config: WorkflowConfig, ledger: ReviewLedger, step: Step) -> bool | str:
        assert step.kind is StepKind.MERGE and step.merge_sha is not None
        return await self._forge.merge(config, url=ledger.url, sha=step.merge_sha)
