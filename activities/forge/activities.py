"""Forge activities: the only place the review loop reads or merges a change request.

A forge is where a shipped issue's change request lives: GitHub's pull requests for a GitHub
tracker (and for Linear and Jira lines, in ``review.github``), GitLab's merge requests for a
GitLab tracker (and for Linear and Jira lines, in ``review.gitlab``), the board itself for the
local board (review there is a person's edit). All answer the same two questions, so the
workflow never knows which one it watches; another forge plugs in as one more case of
:func:`make_forge`. Errors leave typed, as the tracker activities' do: a refused token halts,
an outage is retried, nothing leaks a secret.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Protocol, assert_never

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.forge.board import BoardForge
from activities.forge.github import GitHubForge, review_repository_forge
from activities.forge.gitlab import GitLabForge, review_project_forge
from activities.secrets import resolve_secret
from activities.tracker.activities import etag_cache, make_tracker, typed_tracker_errors
from activities.tracker.local import LocalBoard
from jidoka.config import (
    GitHubTrackerConfig,
    GitLabTrackerConfig,
    JiraTrackerConfig,
    LinearTrackerConfig,
    LocalTrackerConfig,
    ReviewConfig,
    WorkflowConfig,
)
from jidoka.payloads import ForgeMergeInput, ForgeReadInput
from jidoka.review import ChangeRequest


class Forge(Protocol):
    async def read(self, issue_id: str, url: str, shipped_head: str) -> ChangeRequest: ...

    async def merge(self, issue_id: str, url: str, sha: str) -> bool:
        """Merge pinned to ``sha``: False when the forge refuses (the head moved)."""
        ...

    async def aclose(self) -> None: ...


class _PullRequests:
    """GitHub: the change request is the pull request the ship opened."""

    def __init__(self, forge: GitHubForge) -> None:
        self._forge = forge

    async def read(self, issue_id: str, url: str, shipped_head: str) -> ChangeRequest:
        return await self._forge.read(url)

    async def merge(self, issue_id: str, url: str, sha: str) -> bool:
        return await self._forge.merge(url, sha)

    async def aclose(self) -> None:
        await self._forge.aclose()


class _MergeRequests:
    """GitLab: the change request is the merge request the ship opened. The shipped head goes
    along: GitLab moves a merge request's head to a push seconds after it, and the forge tells
    that lag from someone else's push by the branch's tip."""

    def __init__(self, forge: GitLabForge) -> None:
        self._forge = forge

    async def read(self, issue_id: str, url: str, shipped_head: str) -> ChangeRequest:
        return await self._forge.read(url, shipped_head=shipped_head)

    async def merge(self, issue_id: str, url: str, sha: str) -> bool:
        return await self._forge.merge(url, sha)

    async def aclose(self) -> None:
        await self._forge.aclose()


class _Board:
    """The local board: a person's move of the issue is the review, done is the merge."""

    def __init__(self, forge: BoardForge) -> None:
        self._forge = forge

    async def read(self, issue_id: str, url: str, shipped_head: str) -> ChangeRequest:
        return await self._forge.read(issue_id, shipped_head=shipped_head, url=url)

    async def merge(self, issue_id: str, url: str, sha: str) -> bool:
        # Nothing to merge on a board: moving the issue to done is a person's merge, and the
        # loop only ever asks for one with ``review.merge: auto``, which waits on approvals a
        # board never gives. Refusing keeps the rule: Jidoka closes nothing a person did not.
        return False

    async def aclose(self) -> None:
        return None


def make_forge(config: WorkflowConfig, review: ReviewConfig) -> Forge:
    tracker = config.tracker
    match tracker:
        case LocalTrackerConfig():
            board = make_tracker(config)
            assert isinstance(board, LocalBoard)
            return _Board(BoardForge(board, tracker, review))
        case GitHubTrackerConfig():
            return _PullRequests(
                GitHubForge(
                    tracker.repo,
                    resolve_secret(tracker.api_key),
                    endpoint=tracker.endpoint,
                    cache=etag_cache(tracker),
                )
            )
        case LinearTrackerConfig() | JiraTrackerConfig():
            pulls = review_repository_forge(config)
            if pulls is not None:
                return _PullRequests(pulls)
            merges = review_project_forge(config)
            if merges is not None:
                return _MergeRequests(merges)
            raise ApplicationError(
                f"a {tracker.kind.value} line's review needs review.github (the GitHub "
                "repository its pull requests live in) or review.gitlab (the GitLab project its "
                "merge requests live in); WORKFLOW.md refuses it without",
                type="ConfigInvalid",
                non_retryable=True,
            )
        case GitLabTrackerConfig():
            return _MergeRequests(
                GitLabForge(
                    tracker.project,
                    resolve_secret(tracker.api_key),
                    base_url=tracker.base_url,
                    cache=etag_cache(tracker),
                )
            )
        case _:
            assert_never(tracker)


@contextlib.asynccontextmanager
async def forge_session(config: WorkflowConfig) -> AsyncIterator[Forge]:
    if config.review is None:
        raise ApplicationError(
            "the review loop ran without a review: section",
            type="ConfigInvalid",
            non_retryable=True,
        )
    with typed_tracker_errors(config):
        forge = make_forge(config, config.review)
        try:
            yield forge
        finally:
            await forge.aclose()


@activity.defn(name="forge_read")
async def forge_read(input: ForgeReadInput) -> ChangeRequest:
    """One reading of the change request: its state, head, checks at that head, reviews,
    comments and mergeability, each bounded by the forge's adapter."""
    async with forge_session(input.config) as forge:
        return await forge.read(input.issue_id, input.url, input.shipped_head)


@activity.defn(name="forge_merge")
async def forge_merge(input: ForgeMergeInput) -> bool:
    """Merge pinned to the head the loop judged: False is the forge's refusal (the head
    moved, a conflict appeared), which the workflow turns into a halt, never a retry."""
    async with forge_session(input.config) as forge:
        return await forge.merge(input.issue_id, input.url, input.sha)
