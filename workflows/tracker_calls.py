"""The issue's own tracker reads and writes, as the issue workflow makes them.

The rule of this module: make the call and classify what came back. A read that fails comes
back as an :class:`Unreadable` with its kind (gone, refused, unreachable); a write that fails
raises :class:`TrackerWriteFailed` with the halt category it deserves. What to do about either
is the workflow's decision. Deterministic code only (it runs inside the issue workflow).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum

from temporalio import workflow
from temporalio.exceptions import ActivityError

from workflows.common import TRACKER_RETRY, cause_message, cause_type, is_permanent, run_step

with workflow.unsafe.imports_passed_through():
    from activities.tracker.activities import (
        TRACKER_NOT_FOUND,
        TRANSITION_REFUSED,
        tracker_comment,
        tracker_fetch_issue,
        tracker_publish,
        tracker_transition,
    )
    from jidoka.config import WorkflowConfig
    from jidoka.models import Issue, ShipEvidence
    from jidoka.outcomes import HaltCategory
    from jidoka.payloads import (
        CommentInput,
        PublishInput,
        TrackerIssueInput,
        TransitionInput,
        TransitionResult,
    )


class Unreadable(StrEnum):
    GONE = "gone"
    """The tracker says the issue does not exist (any more)."""
    REFUSED = "refused"
    """The tracker refuses the read for good: credentials, scope, a malformed record."""
    UNREACHABLE = "unreachable"
    """The tracker did not answer in time: try again later."""


@dataclass(frozen=True)
class ReadFailed:
    kind: Unreadable
    message: str


def read_failure(error: ActivityError) -> ReadFailed:
    """What a failed read of the tracker or the forge means: gone, refused for good, or
    unreachable for now."""
    message = cause_message(error)
    if cause_type(error) == TRACKER_NOT_FOUND:
        return ReadFailed(Unreadable.GONE, message)
    if is_permanent(error):
        return ReadFailed(Unreadable.REFUSED, message)
    return ReadFailed(Unreadable.UNREACHABLE, message)


class TrackerWriteFailed(Exception):
    """A state change that did not land: refused by the guard, or the tracker failed."""

    def __init__(self, category: HaltCategory, message: str) -> None:
        super().__init__(message)
        self.category = category


class TrackerCalls:
    """One issue's tracker activities. ``idempotency`` prefixes every write's key (the
    workflow's ID), so a retried write never lands twice."""

    def __init__(self, issue_id: str, idempotency: str) -> None:
        self._issue_id = issue_id
        self._idempotency = idempotency

    async def read(self, config: WorkflowConfig) -> Issue | ReadFailed:
        try:
            return await run_step(
                tracker_fetch_issue,
                TrackerIssueInput(config=config, issue_id=self._issue_id),
                start_to_close=timedelta(seconds=60),
                retry_policy=TRACKER_RETRY,
            )
        except ActivityError as error:
            return read_failure(error)

    async def transition(
        self,
        config: WorkflowConfig,
        *,
        expected: str,
        target: str,
        comment: str | None,
        key: str,
        evidence: ShipEvidence | None = None,
    ) -> TransitionResult:
        """The guarded, compare-and-set state change (plus its comment)."""
        try:
            return await run_step(
                tracker_transition,
                TransitionInput(
                    config=config,
                    issue_id=self._issue_id,
                    expected_state=expected,
                    target_state=target,
                    evidence=evidence,
                    comment=comment,
                    idempotency_key=f"{self._idempotency}:{key}",
                ),
                start_to_close=timedelta(seconds=120),
                retry_policy=TRACKER_RETRY,
            )
        except ActivityError as error:
            if cause_type(error) == TRANSITION_REFUSED:
                raise TrackerWriteFailed(
                    HaltCategory.TRANSITION_REFUSED, cause_message(error)
                ) from None
            raise TrackerWriteFailed(
                HaltCategory.OTHER, f"tracker write failed: {cause_message(error)}"
            ) from None

    async def comment(self, config: WorkflowConfig, body: str, *, key: str) -> None:
        """Best effort: a comment that cannot be written is logged, never a reason to stop."""
        try:
            await run_step(
                tracker_comment,
                CommentInput(
                    config=config,
                    issue_id=self._issue_id,
                    body=body,
                    idempotency_key=f"{self._idempotency}:{key}",
                ),
                start_to_close=timedelta(seconds=60),
                retry_policy=TRACKER_RETRY,
            )
        except ActivityError as error:
            workflow.logger.warning("could not comment (%s): %s", key, cause_message(error))

    async def publish(
        self, config: WorkflowConfig, issue: Issue, *, branch: str, title: str, body: str
    ) -> str | None:
        """Make the pushed branch reviewable (a pull request on GitHub): its URL, or None.
        Raises ActivityError when the tracker failed."""
        return await run_step(
            tracker_publish,
            PublishInput(config=config, issue=issue.slim(), branch=branch, title=title, body=body),
            start_to_close=timedelta(seconds=120),
            retry_policy=TRACKER_RETRY,
        )
