"""Tracker activities: the only place the orchestrator reads or writes the tracker.

Each builds a client from the line's config (resolving ``$VAR`` secrets here, never earlier),
maps ``TrackerError`` to a typed ``ApplicationError`` (transient ones retryable, with the
provider's ``Retry-After`` as the next retry delay), and scrubs secrets from every message.

``tracker_transition`` is the poka-yoke boundary: it reads the issue's live state and refuses,
as a non-retryable ``TransitionRefused``, any move the transition guard rejects.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from typing import assert_never

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.forge.github import review_repository_forge
from activities.forge.gitlab import review_project_forge
from activities.secrets import Scrubber, resolve_secret
from activities.tracker.base import TrackerClient, TrackerError, TrackerErrorCategory
from activities.tracker.github import (
    GitHubTracker,
    PullRequestDraft,
    pull_request_comment,
    pull_request_marker,
)
from activities.tracker.gitlab import (
    GitLabTracker,
    MergeRequestDraft,
    merge_request_comment,
    merge_request_marker,
    tracker_issue_reference,
)
from activities.tracker.http import ConditionalCache
from activities.tracker.jira import JiraTracker
from activities.tracker.linear import LinearTracker
from activities.tracker.local import LocalBoard
from jidoka.config import (
    GitHubTrackerConfig,
    GitLabTrackerConfig,
    JiraTrackerConfig,
    LinearTrackerConfig,
    LocalTrackerConfig,
    WorkflowConfig,
)
from jidoka.models import Issue
from jidoka.payloads import (
    CommentInput,
    DispatchPlan,
    DispatchQuery,
    PublishInput,
    TrackerIssueInput,
    TrackerQuery,
    TransitionInput,
    TransitionResult,
)
from jidoka.policy import (
    RunningIssue,
    eligible,
    norm_state,
    select_for_dispatch,
    transition_refusal,
)
from jidoka.workflow_file import resolve_path

TRANSITION_REFUSED = "TransitionRefused"
TRACKER_NOT_FOUND = TrackerErrorCategory.NOT_FOUND.value


_ETAG_CACHES: dict[str, ConditionalCache] = {}
"""One conditional-request cache per GitHub repository per worker process: clients are short
lived (one per activity), the cache is what makes unchanged polls free of rate limit."""


def make_tracker(config: WorkflowConfig, base_dir: str | None = None) -> TrackerClient:
    tracker = config.tracker
    match tracker:
        case LocalTrackerConfig():
            if "$" in tracker.board:
                try:
                    board = resolve_path(tracker.board, base_dir or os.getcwd(), os.environ)
                except KeyError as missing:
                    raise ApplicationError(
                        f"tracker.board refers to ${missing.args[0]}, not set on this worker",
                        type="ConfigInvalid",
                        non_retryable=True,
                    ) from None
                tracker = tracker.model_copy(update={"board": board})
            return LocalBoard(tracker)
        case GitHubTrackerConfig():
            return GitHubTracker(
                tracker, resolve_secret(tracker.api_key), cache=etag_cache(tracker)
            )
        case LinearTrackerConfig():
            return LinearTracker(tracker, resolve_secret(tracker.api_key))
        case JiraTrackerConfig():
            return JiraTracker(
                tracker, resolve_secret(tracker.email), resolve_secret(tracker.api_token)
            )
        case GitLabTrackerConfig():
            return GitLabTracker(
                tracker, resolve_secret(tracker.api_key), cache=etag_cache(tracker)
            )
        case _:
            assert_never(tracker)


@contextlib.contextmanager
def typed_tracker_errors(config: WorkflowConfig) -> Iterator[None]:
    """A ``TrackerError`` leaves as an ``ApplicationError`` of its category (transient ones
    retryable after the provider's ``Retry-After``), its message scrubbed of secrets."""
    try:
        yield
    except TrackerError as error:
        raise ApplicationError(
            Scrubber.for_config(config)(str(error)),
            type=error.category.value,
            non_retryable=not error.retryable,
            next_retry_delay=(
                timedelta(seconds=error.retry_after_s) if error.retry_after_s else None
            ),
        ) from None


def etag_cache(tracker: GitHubTrackerConfig | GitLabTrackerConfig) -> ConditionalCache:
    """The conditional-request cache of a tracker's repository or project, one per worker
    process, shared by its tracker and forge clients."""
    if isinstance(tracker, GitLabTrackerConfig):
        key = f"{tracker.base_url}/{tracker.project}"
    else:
        key = f"{tracker.endpoint}/{tracker.repo}"
    return _ETAG_CACHES.setdefault(key, ConditionalCache())


@contextlib.asynccontextmanager
async def tracker_session(config: WorkflowConfig) -> AsyncIterator[TrackerClient]:
    with typed_tracker_errors(config):
        client = make_tracker(config)
        try:
            yield client
        finally:
            await client.aclose()


# Every issue leaves these activities bounded (``Issue.bounded``/``slim``): whatever the
# tracker holds, no result can grow past Temporal's payload limit and stall a line.


@activity.defn(name="tracker_fetch_issue")
async def tracker_fetch_issue(input: TrackerIssueInput) -> Issue:
    async with tracker_session(input.config) as tracker:
        return (await tracker.fetch_issue(input.issue_id)).bounded()


@activity.defn(name="tracker_dispatch_plan")
async def tracker_dispatch_plan(input: DispatchQuery) -> DispatchPlan:
    """The candidates the line can start now, chosen here so that only they travel back:
    the number of active issues is unbounded, the line's free slots are not."""
    async with tracker_session(input.config) as tracker:
        candidates = await tracker.fetch_candidate_issues()
    running = [
        RunningIssue(issue_id=r.issue_id, state=r.state, parked=r.parked) for r in input.running
    ]
    chosen = select_for_dispatch(candidates, running, input.config)
    chosen_ids = {issue.id for issue in chosen}
    running_ids = {r.issue_id for r in input.running}
    waiting = sum(
        1
        for issue in candidates
        if issue.id not in chosen_ids and eligible(issue, running_ids, input.config)
    )
    return DispatchPlan(chosen=[issue.slim() for issue in chosen], waiting=waiting)


@activity.defn(name="tracker_fetch_by_ids")
async def tracker_fetch_by_ids(input: TrackerQuery) -> list[Issue]:
    """Reconciliation reads states only: the issues come back without their descriptions."""
    if not input.issue_ids:
        return []
    async with tracker_session(input.config) as tracker:
        return [issue.slim() for issue in await tracker.fetch_issues_by_ids(input.issue_ids)]


@activity.defn(name="tracker_states_by_ids")
async def tracker_states_by_ids(input: TrackerQuery) -> dict[str, str]:
    """Reconciliation's read: each issue's state by its id, nothing else (the line asks every
    tick, for every running issue). An issue the tracker no longer shows is absent."""
    if not input.issue_ids:
        return {}
    async with tracker_session(input.config) as tracker:
        return {
            issue.id: issue.state for issue in await tracker.fetch_issues_by_ids(input.issue_ids)
        }


async def guarded_transition(tracker: TrackerClient, input: TransitionInput) -> TransitionResult:
    """Read the live issue, apply the transition guard, write state then comment. A retry of
    a write that already landed only completes its comment."""
    current = await tracker.fetch_issue(input.issue_id)
    target, expected = norm_state(input.target_state), norm_state(input.expected_state)
    if norm_state(current.state) == target and target != expected:
        if input.comment:
            await tracker.add_comment(current, input.comment, input.idempotency_key)
        return TransitionResult(
            issue=current.bounded(),
            already_applied=True,
            moved_from=input.expected_state,
            with_evidence=input.evidence is not None,
        )
    refusal = transition_refusal(
        current=current,
        expected_state=input.expected_state,
        target_state=input.target_state,
        evidence=input.evidence,
        config=input.config,
    )
    if refusal is not None:
        raise ApplicationError(
            refusal,
            {"issue": current.identifier, "state": current.state, "target": input.target_state},
            type=TRANSITION_REFUSED,
            non_retryable=True,
        )
    updated = await tracker.set_state(current, input.target_state)
    if input.comment:
        await tracker.add_comment(updated, input.comment, input.idempotency_key)
    return TransitionResult(
        issue=updated.bounded(),
        moved_from=input.expected_state,
        with_evidence=input.evidence is not None,
    )


@activity.defn(name="tracker_transition")
async def tracker_transition(input: TransitionInput) -> TransitionResult:
    """The poka-yoke boundary: a guarded, compare-and-set state change plus its comment."""
    async with tracker_session(input.config) as tracker:
        return await guarded_transition(tracker, input)


@activity.defn(name="tracker_comment")
async def tracker_comment(input: CommentInput) -> bool:
    async with tracker_session(input.config) as tracker:
        issue = await tracker.fetch_issue(input.issue_id)
        return await tracker.add_comment(issue, input.body, input.idempotency_key)


@activity.defn(name="tracker_publish")
async def tracker_publish(input: PublishInput) -> str | None:
    """Make the pushed work branch reviewable: a pull request on GitHub, a merge request on
    GitLab, or the change request in the forge a Linear or Jira line is reviewed in
    (``review.github``, ``review.gitlab``); None elsewhere."""
    async with tracker_session(input.config) as tracker:
        url = await tracker.publish_branch(
            input.issue,
            branch=input.branch,
            base_branch=input.config.workspace.base_branch,
            title=input.title,
            body=input.body,
        )
        return url if url is not None else await publish_for_review(tracker, input)


async def publish_for_review(tracker: TrackerClient, input: PublishInput) -> str | None:
    """A Linear or Jira line with ``review.github`` or ``review.gitlab``: the pull or merge
    request opened (or reused) there, and its link commented on the issue once."""
    opened = await open_for_review(input)
    if opened is None:
        return None
    url, comment, marker = opened
    await tracker.add_comment(input.issue, comment, marker)
    return url


async def open_for_review(input: PublishInput) -> tuple[str, str, str] | None:
    """The change request opened (or reused) in the review forge: its URL, and the comment
    linking it on the issue with that comment's marker. None without a review forge."""
    review = input.config.review
    base = input.config.workspace.base_branch
    pulls = review_repository_forge(input.config)
    if pulls is not None:
        assert review is not None and review.github is not None
        try:
            url = await pulls.open(
                PullRequestDraft(
                    branch=input.branch,
                    base=review.github.base or base,
                    title=input.title,
                    body=input.body,
                    draft=review.github.draft,
                )
            )
        finally:
            await pulls.aclose()
        return url, pull_request_comment(url), pull_request_marker(input.branch)
    merges = review_project_forge(input.config)
    if merges is not None:
        assert review is not None and review.gitlab is not None
        try:
            url = await merges.open(
                MergeRequestDraft(
                    branch=input.branch,
                    target=review.gitlab.target or base,
                    title=input.title,
                    description=tracker_issue_reference(input.body, input.issue),
                    draft=review.gitlab.draft,
                )
            )
        finally:
            await merges.aclose()
        return url, merge_request_comment(url), merge_request_marker(input.branch)
    return None
