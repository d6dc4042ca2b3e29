"""What every tracker reached over HTTP shares (GitHub, GitLab, Jira, Linear): one client
whose last reported rate limit is the tracker's, closed with it, and candidates that are the
issues in the line's active states."""

from __future__ import annotations

from typing import Generic, Protocol, TypeVar

from activities.tracker.base import TrackerClient
from activities.tracker.http import RateLimitSnapshot
from jidoka.config import TrackerStates
from jidoka.models import Issue


class Connection(Protocol):
    @property
    def rate_limit(self) -> RateLimitSnapshot | None: ...

    async def aclose(self) -> None: ...


ApiT = TypeVar("ApiT", bound=Connection)
ConfigT = TypeVar("ConfigT", bound=TrackerStates)


class RemoteTracker(TrackerClient, Generic[ApiT, ConfigT]):
    """A :class:`TrackerClient` over one HTTP client (``_api``) and its WORKFLOW.md section
    (``_config``), both set by the adapter's constructor."""

    _api: ApiT
    _config: ConfigT

    @property
    def rate_limit(self) -> RateLimitSnapshot | None:
        """The budget the provider last reported (headers or its own fields), as the client
        read it."""
        return self._api.rate_limit

    async def aclose(self) -> None:
        await self._api.aclose()

    async def fetch_candidate_issues(self) -> list[Issue]:
        return await self.fetch_issues_by_states(self._config.active_states)
