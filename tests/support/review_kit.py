"""Steps the review loop's end-to-end tests share: waiting for an issue in review after some
rounds, a webhook relay's signal, a merge request's pipeline at a head."""

from __future__ import annotations

from typing import Any

from temporalio.client import WorkflowHandle

from jidoka.outcomes import Phase
from jidoka.payloads import IssueStatus, ReviewChanged
from tests.support.fakes.gitlab_server import FakeGitLab, make_job, make_pipeline
from tests.support.linekit import eventually, issue_status
from workflows.issue import IssueWorkflow

TIMEOUT = 60


async def in_review(
    handle: WorkflowHandle[Any, Any], rounds: int, timeout: float = TIMEOUT
) -> IssueStatus:
    """The issue's status once it waits in review after ``rounds`` rework rounds (a halt on
    the way fails, naming it)."""
    status = await eventually(
        lambda: issue_status(handle),
        lambda s: (
            s.phase is Phase.HALTED
            or (s.phase is Phase.IN_REVIEW and s.review is not None and s.review.rounds == rounds)
        ),
        timeout=timeout,
        what=f"in review after {rounds} round(s)",
    )
    assert status.phase is Phase.IN_REVIEW, status.halt
    assert status.review is not None
    return status


async def webhook(handle: WorkflowHandle[Any, Any], url: str) -> None:
    """What a webhook relay sends: the change request changed, read it now."""
    await handle.signal(IssueWorkflow.review_changed, ReviewChanged(url=url))


def pipeline_at(fake: FakeGitLab, pipeline_id: int, head: str, ci: str, log: str = "") -> None:
    """A pipeline of merge request !1 at ``head`` whose one job, ``ci``, ended ``ci``."""
    pipeline = make_pipeline(pipeline_id, head, status=ci)
    fake.set_pipeline(1, pipeline, [make_job(pipeline_id + 1, "ci", ci, pipeline=pipeline)])
    fake.traces[pipeline_id + 1] = log
