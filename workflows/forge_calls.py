"""The review loop's forge reads and merges, as the issue workflow makes them.

Like :mod:`workflows.tracker_calls`: make the call and classify what came back. A read that
fails comes back as a :class:`~workflows.tracker_calls.ReadFailed` (gone, refused,
unreachable); a merge comes back merged or refused. What to do about either is the workflow's
decision. Deterministic code only (it runs inside the issue workflow).
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError

from workflows.common import TRACKER_RETRY, cause_message, run_local
from workflows.tracker_calls import ReadFailed, read_failure

with workflow.unsafe.imports_passed_through():
    from activities.forge.activities import forge_merge, forge_read
    from jidoka.config import WorkflowConfig
    from jidoka.payloads import ForgeMergeInput, ForgeReadInput
    from jidoka.review import ChangeRequest

MERGE_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=2),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=30),
    maximum_attempts=4,
)
"""A merge is retried only for a transport failure: the forge refusing it (the head moved) is
an answer, not an error, and a retried merge that already landed answers merged."""


class ForgeCalls:
    """One issue's change request on its forge."""

    def __init__(self, issue_id: str) -> None:
        self._issue_id = issue_id

    async def read(
        self, config: WorkflowConfig, *, url: str, shipped_head: str
    ) -> ChangeRequest | ReadFailed:
        try:
            return await run_local(
                forge_read,
                ForgeReadInput(
                    config=config, issue_id=self._issue_id, url=url, shipped_head=shipped_head
                ),
                start_to_close=timedelta(seconds=120),
                retry_policy=TRACKER_RETRY,
            )
        except ActivityError as error:
            return read_failure(error)

    async def merge(self, config: WorkflowConfig, *, url: str, sha: str) -> bool | str:
        """True: merged at ``sha``. False: the forge refused. A string: the merge failed
        (the error), and nobody knows more than that."""
        try:
            return await run_local(
                forge_merge,
                ForgeMergeInput(config=config, issue_id=self._issue_id, url=url, sha=sha),
                start_to_close=timedelta(seconds=120),
                retry_policy=MERGE_RETRY,
            )
        except ActivityError as error:
            return cause_message(error)
