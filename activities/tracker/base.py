"""The tracker adapter contract shared by the local board, GitHub and Linear (docs/trackers.md).

Adapters do I/O and normalisation only. Policy (which transition is allowed) lives in
:mod:`jidoka.policy` and is applied by the tracker activities around these calls.

Contract every adapter honours:

* reads return normalised :class:`~jidoka.models.Issue` values (labels lowercase, priority an
  int or None, timestamps parsed);
* an empty id or state list makes no request and returns ``[]``;
* a malformed record is logged and left out of *lists* (candidates, by states), but a by-id
  read (:meth:`fetch_issue`, :meth:`fetch_issues_by_ids`) of it raises
  ``TrackerError(MALFORMED_ISSUE)``;
* writes are idempotent: :meth:`add_comment` skips a comment whose ``marker`` is already on the
  issue, :meth:`set_state` to the state the issue is already in is a no-op;
* failures raise :class:`TrackerError` with a category from :class:`TrackerErrorCategory`
  (docs/trackers.md#errors-both-adapters), ``retryable`` set for transient ones (network,
  5xx, rate limits with ``retry_after_s``).
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from enum import StrEnum

from jidoka.models import Issue


class TrackerErrorCategory(StrEnum):
    UNSUPPORTED_TRACKER_KIND = "unsupported_tracker_kind"
    MISSING_API_KEY = "missing_tracker_api_key"
    MISSING_PROJECT = "missing_tracker_project_slug"
    API_REQUEST = "tracker_api_request"
    API_STATUS = "tracker_api_status"
    AUTH = "tracker_auth"
    NOT_FOUND = "tracker_not_found"
    RATE_LIMITED = "tracker_rate_limited"
    GRAPHQL_ERRORS = "tracker_graphql_errors"
    UNKNOWN_PAYLOAD = "tracker_unknown_payload"
    MISSING_PAGINATION_CURSOR = "tracker_missing_pagination_cursor"
    MALFORMED_ISSUE = "tracker_malformed_issue"
    CONFLICT = "tracker_conflict"
    UNPROCESSABLE = "tracker_unprocessable"


class TrackerError(Exception):
    def __init__(
        self,
        category: TrackerErrorCategory,
        message: str,
        *,
        retryable: bool = False,
        retry_after_s: float | None = None,
    ) -> None:
        super().__init__(f"{category.value}: {message}")
        self.category = category
        self.message = message
        self.retryable = retryable
        self.retry_after_s = retry_after_s


class MalformedRecordError(Exception):
    """An issue payload that cannot be normalised: left out of lists, an error by id."""


class TrackerClient(abc.ABC):
    """One tracker, scoped to one line's project/board/repository."""

    @abc.abstractmethod
    async def fetch_candidate_issues(self) -> list[Issue]:
        """Issues in the line's active states."""

    @abc.abstractmethod
    async def fetch_issues_by_states(self, states: Sequence[str]) -> list[Issue]:
        """Issues in any of ``states`` (startup cleanup, stale claim reset)."""

    @abc.abstractmethod
    async def fetch_issues_by_ids(self, issue_ids: Sequence[str]) -> list[Issue]:
        """Current issues for ``issue_ids`` in one batch (reconciliation). Issues that no
        longer exist are absent from the result; malformed ones raise."""

    @abc.abstractmethod
    async def fetch_issue(self, issue_id: str) -> Issue:
        """One issue by id; raises ``NOT_FOUND`` or ``MALFORMED_ISSUE``."""

    @abc.abstractmethod
    async def set_state(self, issue: Issue, target_state: str) -> Issue:
        """Move ``issue`` to ``target_state`` and return it as now stored. The caller has
        already checked the move with the transition guard against this live ``issue``."""

    @abc.abstractmethod
    async def add_comment(self, issue: Issue, body: str, marker: str) -> bool:
        """Append a comment carrying ``marker`` (an idempotency key). Returns False when a
        comment with that marker already exists (nothing written)."""

    async def publish_branch(
        self, issue: Issue, *, branch: str, base_branch: str, title: str, body: str
    ) -> str | None:
        """Make a pushed work branch reviewable (GitHub: open or reuse a pull request).
        Returns its URL, or None for trackers with nothing to publish."""
        del issue, branch, base_branch, title, body
        return None

    async def aclose(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""
