"""GitHub pull requests as the review loop sees them (REST v3), scoped to one repository.

:meth:`GitHubForge.read` turns a pull request, its checks (check runs and legacy commit
statuses at its head), its reviews and its review comments into one
:class:`~jidoka.review.ChangeRequest`; :meth:`GitHubForge.merge` merges it pinned to the head
the loop judged. The HTTP plumbing (timeouts, bounded retries, rate limits, the mapping of
failures to :class:`~activities.tracker.base.TrackerError` categories, token scrubbing) is the
tracker's own :class:`~activities.tracker.http.ApiClient`, set up as the GitHub tracker sets it.

Everything GitHub sends is untrusted and bounded before it becomes a model: lists are capped,
check output keeps its tail only, comment bodies their head only, control characters are
replaced.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar
from urllib.parse import urlsplit

import httpx

from activities.forge.text import (
    COMMENT_CHARS,
    NAME_CHARS,
    SUMMARY_CHARS,
    SUMMARY_LINES,
    bounded_body,
    bounded_name,
    bounded_path,
    clean_text,
    login_of,
    output_tail,
    positive_int,
)
from activities.secrets import resolve_secret
from activities.tracker.base import TrackerError, TrackerErrorCategory
from activities.tracker.github import (
    PAGE_SIZE,
    PullRequestDraft,
    github_api,
    github_pages,
    open_pull_request,
)
from activities.tracker.http import (
    Clock,
    ConditionalCache,
    RateLimitSnapshot,
    RetryPolicy,
    Sleep,
    as_object,
    non_empty_str,
    parse_timestamp,
    utc_now,
)
from jidoka.config import WorkflowConfig
from jidoka.review import (
    ChangeRequest,
    Check,
    CheckState,
    RequestState,
    Review,
    ReviewComment,
    ReviewVerdict,
)

__all__ = [
    # The text bounds live in activities/forge/text.py (the GitLab forge shares them); named
    # here too, as they always were.
    "COMMENT_CHARS",
    "DEFAULT_ENDPOINT",
    "MAX_CHECKS",
    "MAX_COMMENTS",
    "MAX_PAGES",
    "MAX_REVIEWS",
    "NAME_CHARS",
    "SUMMARY_CHARS",
    "SUMMARY_LINES",
    "TRUSTED_ASSOCIATIONS",
    "GitHubForge",
    "bounded_body",
    "clean_text",
    "decode_check_run",
    "decode_review",
    "decode_review_comment",
    "decode_status",
    "output_tail",
    "request_state",
    "review_repository_forge",
]

logger = logging.getLogger("jidoka.forge.github")

T = TypeVar("T")

DEFAULT_ENDPOINT = "https://api.github.com"
MAX_CHECKS = 100
"""Check runs and commit statuses together, at one head."""
MAX_REVIEWS = 200
"""The latest ones: a reviewer's latest verdict is the one that counts."""
MAX_COMMENTS = 200
"""The latest ones: older comments were sent to the agent already, or are stale."""
MAX_PAGES = 20
"""A listing read past this many pages is cut (logged): 2,000 reviews on one pull request."""
_PULL_URL = re.compile(r"^/(?P<owner>[^/]+)/(?P<name>[^/]+)/pulls?/(?P<number>\d+)(?:/.*)?$")

_VERDICTS = {
    "APPROVED": ReviewVerdict.APPROVED,
    "CHANGES_REQUESTED": ReviewVerdict.CHANGES_REQUESTED,
    "COMMENTED": ReviewVerdict.COMMENTED,
    "DISMISSED": ReviewVerdict.DISMISSED,
}
_STATUS_STATES = {
    "pending": CheckState.PENDING,
    "success": CheckState.PASSED,
    "failure": CheckState.FAILED,
    "error": CheckState.FAILED,
}


# --------------------------------------------------------------------------------------------
# Normalisation (pure)
# --------------------------------------------------------------------------------------------


def request_state(pull: dict[str, object]) -> RequestState | None:
    if pull.get("merged") is True or non_empty_str(pull.get("merged_at")) is not None:
        return RequestState.MERGED
    match pull.get("state"):
        case "open":
            return RequestState.OPEN
        case "closed":
            return RequestState.CLOSED
        case _:
            return None


def decode_check_run(raw: object) -> Check | None:
    obj = as_object(raw)
    if obj is None:
        return None
    name = bounded_name(obj.get("name"), "")
    if not name:
        return None
    output = as_object(obj.get("output")) or {}
    summary = output_tail(output.get("summary"), output.get("text"))
    if obj.get("status") != "completed":  # queued, in_progress, waiting, requested, pending
        state = CheckState.PENDING
    else:
        match obj.get("conclusion"):
            case "success":
                state = CheckState.PASSED
            case "neutral" | "skipped":
                state = CheckState.SKIPPED
            case _:  # failure, cancelled, timed_out, action_required, stale, null
                state = CheckState.FAILED
    return Check(name=name, state=state, summary=summary)


def decode_status(raw: object) -> Check | None:
    obj = as_object(raw)
    if obj is None:
        return None
    name = bounded_name(obj.get("context"), "")
    state = _STATUS_STATES.get(str(obj.get("state")))
    if not name or state is None:
        return None
    return Check(name=name, state=state, summary=output_tail(obj.get("description")))


TRUSTED_ASSOCIATIONS = frozenset({"OWNER", "MEMBER", "COLLABORATOR"})
"""Whose reviews and review comments count. On a public repository anyone can review a pull
request: a stranger's approval must not merge it, and a stranger's comment must not become
the agent's instructions (the rework brief is a prompt)."""


def _trusted(obj: dict[str, object]) -> bool:
    return str(obj.get("author_association", "")).upper() in TRUSTED_ASSOCIATIONS


def decode_review(raw: object) -> Review | None:
    """None for a pending (unsubmitted) review, one by someone without a say on the repository
    (:data:`TRUSTED_ASSOCIATIONS`), and for anything unusable."""
    obj = as_object(raw)
    if obj is None or not _trusted(obj):
        return None
    verdict = _VERDICTS.get(str(obj.get("state")))
    submitted_at = parse_timestamp(obj.get("submitted_at"))
    if verdict is None or submitted_at is None:
        return None
    commit = non_empty_str(obj.get("commit_id"))
    return Review(
        author=login_of(obj.get("user")),
        verdict=verdict,
        commit_sha=commit.strip() if commit is not None else "",
        submitted_at=submitted_at,
    )


def decode_review_comment(raw: object) -> ReviewComment | None:
    """None for a comment by someone without a say on the repository, and anything unusable."""
    obj = as_object(raw)
    if obj is None or not _trusted(obj):
        return None
    raw_id = obj.get("id")
    if isinstance(raw_id, bool) or not isinstance(raw_id, int | str) or not str(raw_id).strip():
        return None
    line = positive_int(obj.get("line")) or positive_int(obj.get("original_line"))
    return ReviewComment(
        id=str(raw_id).strip(),
        author=login_of(obj.get("user")),
        body=bounded_body(obj.get("body")),
        path=bounded_path(obj.get("path")),
        line=line,
    )


# --------------------------------------------------------------------------------------------
# The client
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Target:
    number: int
    url: str


class GitHubForge:
    """One repository's pull requests, one token. ``self_login`` is the token's own user:
    review comments it wrote (Jidoka's own) are not feedback for the agent."""

    def __init__(
        self,
        repo: str,
        token: str,
        *,
        endpoint: str = DEFAULT_ENDPOINT,
        self_login: str | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        retry: RetryPolicy | None = None,
        cache: ConditionalCache | None = None,
        sleep: Sleep = asyncio.sleep,
        clock: Clock = utc_now,
    ) -> None:
        owner, _, name = repo.partition("/")
        if not owner or not name or "/" in name:
            raise ValueError(f"repo must be owner/name, not {repo!r}")
        self._repo = repo
        self._owner, self._name = owner, name
        self._endpoint = endpoint
        self._self_login = self_login.strip().casefold() if self_login else None
        self._api = github_api(
            endpoint,
            token,
            transport=transport,
            retry=retry,
            cache=cache,
            sleep=sleep,
            clock=clock,
        )

    def __repr__(self) -> str:
        return f"GitHubForge(repo={self._repo!r}, endpoint={self._endpoint!r})"

    @property
    def rate_limit(self) -> RateLimitSnapshot | None:
        return self._api.rate_limit

    async def aclose(self) -> None:
        await self._api.aclose()

    # -- reads -------------------------------------------------------------------------------

    async def read(self, pr_url_or_number: str | int) -> ChangeRequest:
        """One reading of the pull request. A pull request GitHub no longer shows (404, 410,
        or a moved repository's redirect) reads as GONE; other failures raise."""
        target = self._target(pr_url_or_number)
        try:
            pull = await self._get_pull(target.number)
        except TrackerError as error:
            if error.category is TrackerErrorCategory.NOT_FOUND:
                return ChangeRequest(url=target.url, state=RequestState.GONE, head_sha="")
            raise
        state = request_state(pull)
        head = as_object(pull.get("head"))
        head_sha = non_empty_str(head.get("sha")) if head is not None else None
        if state is None or head_sha is None:
            raise self._payload_error(f"pull #{target.number}: no usable state or head sha")
        mergeable = pull.get("mergeable")
        checks = await self._checks(head_sha)
        reviews = await self._reviews(target.number)
        comments = await self._comments(target.number)
        return ChangeRequest(
            url=non_empty_str(pull.get("html_url")) or target.url,
            state=state,
            head_sha=head_sha,
            checks=checks,
            reviews=reviews,
            comments=comments,
            mergeable=mergeable if isinstance(mergeable, bool) else None,
        )

    # -- writes ------------------------------------------------------------------------------

    async def open(self, wanted: PullRequestDraft) -> str:
        """Open the pull request of ``wanted.branch``, or reuse the open one; its URL."""
        return await open_pull_request(self._api, self._owner, self._name, wanted)

    async def merge(self, pr_url_or_number: str | int, sha: str) -> bool:
        """Merge the pull request if its head is still ``sha``. False when GitHub
        refuses: the head moved (409) or it is not mergeable (405). A merge whose answer was
        lost is not resent here (the activity's retry is); a retried call finding the pull
        request already merged at ``sha`` answers True."""
        number = self._target(pr_url_or_number).number
        reply = await self._api.request(
            "PUT",
            self._path(f"pulls/{number}/merge"),
            json={"sha": sha},
            safe=False,
            passthrough=(405, 409),
        )
        if reply.status not in (405, 409):
            return True
        try:
            pull = await self._get_pull(number)
        except TrackerError:
            return False
        head = as_object(pull.get("head"))
        merged = request_state(pull) is RequestState.MERGED
        return merged and head is not None and head.get("sha") == sha

    # -- internals ---------------------------------------------------------------------------

    def _path(self, tail: str) -> str:
        return f"repos/{self._owner}/{self._name}/{tail}"

    async def _get_pull(self, number: int) -> dict[str, object]:
        # Conditional: one object, whose 304 costs no rate limit on a polling cadence.
        reply = await self._api.request(
            "GET", self._path(f"pulls/{number}"), safe=True, conditional=True
        )
        pull = as_object(reply.body)
        if pull is None:
            raise self._payload_error(f"pull #{number}: not a JSON object")
        return pull

    def _payload_error(self, message: str) -> TrackerError:
        return self._api.error(TrackerErrorCategory.UNKNOWN_PAYLOAD, message)

    def _web_base(self) -> str:
        base = self._endpoint.rstrip("/")
        if base == DEFAULT_ENDPOINT:
            return "https://github.com"
        return base.removesuffix("/api/v3")  # GitHub Enterprise Server

    def _target(self, pr_url_or_number: str | int) -> _Target:
        number: int | None = None
        url: str | None = None
        if isinstance(pr_url_or_number, int) and not isinstance(pr_url_or_number, bool):
            number = pr_url_or_number
        elif isinstance(pr_url_or_number, str):
            text = pr_url_or_number.strip()
            digits = text.lstrip("#")
            if digits.isascii() and digits.isdigit():
                number = int(digits)
            elif m := _PULL_URL.match(urlsplit(text).path):
                repo = f"{m.group('owner')}/{m.group('name')}"
                if repo.casefold() != self._repo.casefold():
                    raise self._api.error(
                        TrackerErrorCategory.UNPROCESSABLE,
                        f"{text[:200]!r} is not a pull request of {self._repo}",
                    )
                number, url = int(m.group("number")), text
        if number is None or number <= 0:
            raise self._api.error(
                TrackerErrorCategory.UNPROCESSABLE,
                f"{str(pr_url_or_number)[:200]!r} is not a pull request number or URL",
            )
        return _Target(number, url or f"{self._web_base()}/{self._repo}/pull/{number}")

    async def _checks(self, sha: str) -> list[Check]:
        checks = await self._paginate(
            self._path(f"commits/{sha}/check-runs"),
            {"per_page": PAGE_SIZE, "filter": "latest"},
            decode_check_run,
            key="check_runs",
            max_items=MAX_CHECKS,
        )
        if len(checks) < MAX_CHECKS:
            checks += await self._paginate(
                self._path(f"commits/{sha}/status"),
                {"per_page": PAGE_SIZE},
                decode_status,
                key="statuses",
                max_items=MAX_CHECKS - len(checks),
            )
        return checks

    async def _reviews(self, number: int) -> list[Review]:
        # Listed oldest first, with no way to ask otherwise: read them all (bounded by the
        # page cap) and keep the latest.
        reviews = await self._paginate(
            self._path(f"pulls/{number}/reviews"), {"per_page": PAGE_SIZE}, decode_review
        )
        return reviews[-MAX_REVIEWS:]

    async def _comments(self, number: int) -> list[ReviewComment]:
        # Asked newest first, so reading stops at the cap with the latest in hand; returned
        # oldest first, as GitHub lists them by default.
        def decode(raw: object) -> ReviewComment | None:
            comment = decode_review_comment(raw)
            return None if comment is None or self._is_self(comment.author) else comment

        comments = await self._paginate(
            self._path(f"pulls/{number}/comments"),
            {"per_page": PAGE_SIZE, "sort": "created", "direction": "desc"},
            decode,
            max_items=MAX_COMMENTS,
        )
        return comments[::-1]

    def _is_self(self, login: str) -> bool:
        return self._self_login is not None and login.casefold() == self._self_login

    async def _paginate(
        self,
        url: str,
        params: dict[str, str | int],
        decode: Callable[[object], T | None],
        *,
        key: str | None = None,
        max_items: int | None = None,
    ) -> list[T]:
        """The decoded items of a listing (unusable ones left out), following
        ``Link: rel="next"`` as the tracker does (same origin only, a loop is an error), at
        most :data:`MAX_PAGES` pages or ``max_items`` items. ``key``: the listing is an object
        holding its array under that key (check runs, statuses). Not conditional: these
        listings grow at their end, where a 304 on an unchanged first page would hide a new
        page."""
        items: list[T] = []
        async for page in github_pages(
            self._api,
            url,
            params,
            max_pages=MAX_PAGES,
            truncate=True,
            conditional=False,
            key=key,
        ):
            for raw in page:
                item = decode(raw)
                if item is not None:
                    items.append(item)
                    if max_items is not None and len(items) >= max_items:
                        return items
        return items


_REVIEW_CACHES: dict[str, ConditionalCache] = {}
"""One conditional-request cache per review repository per worker process, as the tracker's."""


def review_repository_forge(config: WorkflowConfig) -> GitHubForge | None:
    """The GitHub repository a Linear or Jira line's work is reviewed in (``review.github``),
    or None for any other line. Its token is resolved here, on the worker, never earlier."""
    review = config.review
    if review is None or review.github is None:
        return None
    github = review.github
    cache = _REVIEW_CACHES.setdefault(f"{github.endpoint}/{github.repo}", ConditionalCache())
    return GitHubForge(
        github.repo, resolve_secret(github.api_key), endpoint=github.endpoint, cache=cache
    )
