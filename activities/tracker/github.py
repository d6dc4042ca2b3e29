"""GitHub Issues adapter (REST v3), scoped to one repository (``tracker.repo``).

GitHub issues have two native states (open, closed with a ``state_reason``); a line needs
more. The mapping, configured in WORKFLOW.md and described in docs/trackers.md#states:

* an **open** issue is in the state whose label (``tracker.state_labels``) it carries; exactly
  one state label, several is a malformed record; no state label means
  ``tracker.default_open_state`` (or: not this line's issue, when that is unset);
* a **closed** issue is in the state whose ``tracker.closed_states`` reason equals its
  ``state_reason``; any other closed issue is not this line's issue;
* pull requests (which the issues API also lists) are never issues.

``id`` is the issue number as a string, ``identifier`` is ``<repo-name>#<number>``.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar, assert_never
from urllib.parse import quote

import httpx

from activities.tracker.base import TrackerError, TrackerErrorCategory
from activities.tracker.http import (
    ApiClient,
    Clock,
    ConditionalCache,
    RateLimitSnapshot,
    RetryPolicy,
    Sleep,
    as_list,
    as_object,
    clean_labels,
    gather_bounded,
    non_empty_str,
    parse_epoch,
    parse_int,
    parse_timestamp,
    utc_now,
)
from activities.tracker.labels import (
    Listing,
    MalformedRecordError,
    Placement,
    StateMap,
    StatePlacement,
    label_names,
    label_priority,
    listings,
)
from activities.tracker.remote import RemoteTracker
from jidoka.config import GitHubTrackerConfig
from jidoka.models import BlockerRef, Issue

logger = logging.getLogger("jidoka.tracker.github")

API_VERSION = "2022-11-28"
PAGE_SIZE = 100
"""GitHub's maximum ``per_page``."""
MAX_OPEN_PAGES = 100
"""10,000 open issues in the requested states: past that, the line's scope is too wide."""
MAX_CLOSED_PAGES = 10
"""Closed listings (startup cleanup) read the 1,000 most recently updated closed issues only:
a repository's whole closed history is unbounded and older issues need no cleanup."""
BY_ID_CONCURRENCY = 8
"""GitHub has no batch read by number; reconciliation reads issues concurrently, few at once
(GitHub's secondary limits punish bursts of concurrent requests)."""

_BLOCKER_LINE = re.compile(r"(?im)^[ \t>*+-]*(?:blocked[ \t]+by|depends[ \t]+on)\b(?P<refs>.*)$")
_ISSUE_REF = re.compile(r"(?<![\w/])(?:(?P<repo>[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+))?#(?P<number>\d+)")
_MARKER_SAFE = "._:/#@+=-"

T = TypeVar("T")


def marker_tag(marker: str) -> str:
    """The hidden idempotency key appended to every comment Jidoka writes. Characters outside
    a plain set are percent-encoded, so no marker can close the HTML comment early."""
    if not marker:
        raise ValueError("a comment marker must not be empty")
    return f"<!-- jidoka:{quote(marker, safe=_MARKER_SAFE)} -->"


# --------------------------------------------------------------------------------------------
# State mapping (pure)
# --------------------------------------------------------------------------------------------


def github_states(config: GitHubTrackerConfig) -> StateMap:
    """Open states by label; closed states by ``state_reason``, none without one."""
    return StateMap.build(
        state_labels=config.state_labels,
        default_open_state=config.default_open_state,
        closed_reasons=dict(config.closed_states),
    )


# --------------------------------------------------------------------------------------------
# Normalisation (pure)
# --------------------------------------------------------------------------------------------


def _blockers(body: str | None, repo: str) -> list[BlockerRef]:
    """``blocked by #12`` / ``depends on #12, other/repo#3`` lines of the body."""
    if not body:
        return []
    repo_name = repo.split("/", 1)[1]
    refs: dict[str, BlockerRef] = {}
    for line in _BLOCKER_LINE.finditer(body):
        for ref in _ISSUE_REF.finditer(line.group("refs")):
            other = ref.group("repo")
            number = ref.group("number")
            if other is None or other.casefold() == repo.casefold():
                blocker = BlockerRef(id=number, identifier=f"{repo_name}#{number}")
            else:
                blocker = BlockerRef(identifier=f"{other}#{number}")
            refs.setdefault(blocker.identifier or "", blocker)
    return list(refs.values())


def decode_issue(raw: object, config: GitHubTrackerConfig, states: StateMap) -> Issue | None:
    """One REST issue object -> an Issue; None for pull requests and issues outside the line's
    states. Raises :class:`MalformedRecordError` when a required field is unusable."""
    obj = as_object(raw)
    if obj is None:
        raise MalformedRecordError("not a JSON object")
    number = obj.get("number")
    if not isinstance(number, int) or isinstance(number, bool) or number <= 0:
        raise MalformedRecordError(f"no usable number ({number!r})")
    if "pull_request" in obj:
        return None
    title = non_empty_str(obj.get("title"))
    if title is None:
        raise MalformedRecordError(f"#{number}: no title")
    native_state = obj.get("state")
    if native_state not in ("open", "closed"):
        raise MalformedRecordError(f"#{number}: unknown state {native_state!r}")
    raw_labels = as_list(obj.get("labels"))
    if raw_labels is None:
        raise MalformedRecordError(f"#{number}: labels is not a list")
    labels = clean_labels(label_names(raw_labels))
    reason = obj.get("state_reason")
    try:
        state = states.state_of(
            is_open=native_state == "open",
            labels=labels,
            reason=reason if isinstance(reason, str) else None,
        )
    except MalformedRecordError as error:
        raise MalformedRecordError(f"#{number}: {error}") from None
    if state is None:
        return None
    body = obj.get("body")
    description = body if isinstance(body, str) else None
    return Issue(
        id=str(number),
        identifier=f"{config.repo.split('/', 1)[1]}#{number}",
        title=title,
        description=description,
        priority=label_priority(labels, config.priority_labels),
        state=state,
        url=non_empty_str(obj.get("html_url")),
        labels=labels,
        blocked_by=_blockers(description, config.repo),
        created_at=parse_timestamp(obj.get("created_at")),
        updated_at=parse_timestamp(obj.get("updated_at")),
    )


def with_blocker_states(issues: list[Issue]) -> list[Issue]:
    """Fill blocker states from the issues fetched together; others stay unknown (None)."""
    known = {issue.identifier: issue.state for issue in issues}
    result: list[Issue] = []
    for issue in issues:
        if not any(b.identifier in known for b in issue.blocked_by):
            result.append(issue)
            continue
        blockers = [
            b.model_copy(update={"state": known[b.identifier]}) if b.identifier in known else b
            for b in issue.blocked_by
        ]
        result.append(issue.model_copy(update={"blocked_by": blockers}))
    return result


def read_rate_limit(headers: httpx.Headers, now: datetime) -> RateLimitSnapshot | None:
    remaining = parse_int(headers.get("x-ratelimit-remaining"))
    if remaining is None:
        return None
    return RateLimitSnapshot(
        remaining=remaining,
        limit=parse_int(headers.get("x-ratelimit-limit")),
        reset_at=parse_epoch(headers.get("x-ratelimit-reset")),
        observed_at=now,
        resource=headers.get("x-ratelimit-resource"),
    )


# --------------------------------------------------------------------------------------------
# The client
# --------------------------------------------------------------------------------------------


def github_api(
    endpoint: str,
    token: str,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
    retry: RetryPolicy | None = None,
    cache: ConditionalCache | None = None,
    sleep: Sleep = asyncio.sleep,
    clock: Clock = utc_now,
) -> ApiClient:
    """The REST client every GitHub adapter uses (the tracker, the forge): one token, scrubbed
    from every error, the API version pinned, the rate limit read from each answer."""
    return ApiClient(
        provider="github",
        base_url=endpoint,
        headers={
            "Authorization": f"Bearer {token}",
            "Accept": "application/vnd.github+json",
            "X-GitHub-Api-Version": API_VERSION,
            "User-Agent": "jidoka",
        },
        secrets=[token],
        read_rate_limit=read_rate_limit,
        transport=transport,
        retry=retry,
        cache=cache,
        sleep=sleep,
        clock=clock,
    )


async def github_pages(
    api: ApiClient,
    url: str,
    params: dict[str, str | int],
    *,
    max_pages: int,
    truncate: bool,
    conditional: bool = True,
    key: str | None = None,
) -> AsyncIterator[list[object]]:
    """Each page of a listing, following ``Link: rel="next"`` (a link that loops back is an
    error). Past ``max_pages``: stop quietly when ``truncate``, else an error. ``key``: the
    listing is an object holding its array under that key (check runs, statuses)."""
    followed: set[str] = set()
    reply = await api.request("GET", url, params=params, safe=True, conditional=conditional)
    pages = 1
    while True:
        body = reply.body
        if key is not None:
            holder = as_object(body)
            body = holder.get(key) if holder is not None else None
        page = as_list(body)
        if page is None:
            raise api.error(
                TrackerErrorCategory.UNKNOWN_PAYLOAD, f"GET {url}: expected a JSON array"
            )
        yield page
        next_url = reply.next_url
        if next_url is None:
            return
        if next_url in followed:
            raise api.error(
                TrackerErrorCategory.MISSING_PAGINATION_CURSOR,
                f"GET {url}: the next-page link loops back",
            )
        if pages >= max_pages:
            if truncate:
                logger.info("%s: stopped after %d pages (by design)", url, pages)
                return
            raise api.error(
                TrackerErrorCategory.MISSING_PAGINATION_CURSOR,
                f"GET {url}: more than {max_pages} pages; narrow the line's states",
            )
        followed.add(next_url)
        reply = await api.request("GET", next_url, safe=True, conditional=conditional)
        pages += 1


class GitHubTracker(RemoteTracker[ApiClient, GitHubTrackerConfig]):
    def __init__(
        self,
        config: GitHubTrackerConfig,
        token: str,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        retry: RetryPolicy | None = None,
        cache: ConditionalCache | None = None,
        sleep: Sleep = asyncio.sleep,
        clock: Clock = utc_now,
    ) -> None:
        self._config = config
        self._owner, self._name = config.repo.split("/", 1)
        self._states = github_states(config)
        self._api = github_api(
            config.endpoint,
            token,
            transport=transport,
            retry=retry,
            cache=cache,
            sleep=sleep,
            clock=clock,
        )

    def __repr__(self) -> str:
        return f"GitHubTracker(repo={self._config.repo!r}, endpoint={self._config.endpoint!r})"

    # -- reads -------------------------------------------------------------------------------

    async def fetch_issues_by_states(self, states: Sequence[str]) -> list[Issue]:
        wanted = self._states.wanted(states)
        if not wanted:
            return []
        found: dict[str, Issue] = {}
        for listing in self._listings(wanted.values()):
            for raw in await self._list_issues(listing):
                issue = self._decode_listed(raw)
                if issue is not None and issue.state in wanted:
                    found.setdefault(issue.id, issue)
        return with_blocker_states(list(found.values()))

    async def fetch_issues_by_ids(self, issue_ids: Sequence[str]) -> list[Issue]:
        numbers = list(dict.fromkeys(n for n in map(_issue_number, issue_ids) if n is not None))
        if not numbers:
            return []

        async def one(number: int) -> Issue | None:
            try:
                raw = await self._get_issue(number)
            except TrackerError as error:
                if error.category is TrackerErrorCategory.NOT_FOUND:
                    return None
                raise
            return self._decode_strict(raw)

        results = await gather_bounded([one(n) for n in numbers], BY_ID_CONCURRENCY)
        return with_blocker_states([issue for issue in results if issue is not None])

    async def fetch_issue(self, issue_id: str) -> Issue:
        number = _issue_number(issue_id)
        if number is None:
            raise self._api.error(
                TrackerErrorCategory.NOT_FOUND, f"{issue_id!r} is not a GitHub issue number"
            )
        issue = self._decode_strict(await self._get_issue(number))
        if issue is None:
            raise self._api.error(
                TrackerErrorCategory.NOT_FOUND,
                f"#{number} is a pull request or in none of this line's states",
            )
        return issue

    # -- writes ------------------------------------------------------------------------------

    async def set_state(self, issue: Issue, target_state: str) -> Issue:
        target = self._states.placement(target_state)
        if target is None:
            raise self._api.error(
                TrackerErrorCategory.UNPROCESSABLE,
                f"state {target_state!r} has no GitHub mapping "
                "(tracker.state_labels, tracker.closed_states, tracker.default_open_state)",
            )
        number = self._require_number(issue)
        raw = as_object(await self._get_issue(number))
        if raw is None:
            raise self._api.error(TrackerErrorCategory.UNKNOWN_PAYLOAD, f"#{number}: not an object")
        raw = dict(raw)
        labels = clean_labels(label_names(as_list(raw.get("labels")) or []))
        is_open = raw.get("state") == "open"
        match target.placement:
            case Placement.LABELLED:
                assert target.label is not None
                # The new label goes on before anything comes off: interrupted here, the issue
                # carries two state labels, which reads as malformed (reconciliation keeps the
                # run going) instead of as "no state" (which could end the run). A retry of
                # this call finishes the job.
                if target.label.strip().lower() not in labels:
                    raw["labels"] = await self._add_label(number, target.label)
                if not is_open:
                    raw = await self._patch_issue(
                        number, {"state": "open", "state_reason": "reopened"}
                    )
                raw["labels"] = await self._remove_state_labels(
                    number, raw, keep=target.label.strip().lower()
                )
            case Placement.OPEN_DEFAULT:
                if not is_open:
                    raw = await self._patch_issue(
                        number, {"state": "open", "state_reason": "reopened"}
                    )
                raw["labels"] = await self._remove_state_labels(number, raw, keep=None)
            case Placement.CLOSED:
                assert target.reason is not None
                # Close first, then drop state labels: a closed issue's state comes from its
                # reason alone, so an interruption between the two is harmless, and a later
                # reopen does not resurrect a stale state label.
                if not is_open and raw.get("state_reason") != target.reason:
                    # GitHub ignores state_reason unless the state changes.
                    await self._patch_issue(number, {"state": "open", "state_reason": "reopened"})
                    is_open = True
                if is_open:
                    raw = await self._patch_issue(
                        number, {"state": "closed", "state_reason": target.reason}
                    )
                raw["labels"] = await self._remove_state_labels(number, raw, keep=None)
            case _:
                assert_never(target.placement)
        stored = self._decode_strict(raw)
        if stored is None or stored.state != target.state:
            raise self._api.error(
                TrackerErrorCategory.UNKNOWN_PAYLOAD,
                f"#{number} does not read as {target.state!r} after the update",
            )
        return stored

    async def add_comment(self, issue: Issue, body: str, marker: str) -> bool:
        tag = marker_tag(marker)
        number = self._require_number(issue)
        # Not conditional: comments are appended at the end, so an unchanged (304) last page
        # would hide a page that appeared after it; and this read guards a write.
        comments = await self._paginate(
            self._path(f"issues/{number}/comments"),
            {"per_page": PAGE_SIZE},
            max_pages=MAX_OPEN_PAGES,
            truncate=False,
            conditional=False,
        )
        for comment in comments:
            obj = as_object(comment)
            text = obj.get("body") if obj is not None else None
            if isinstance(text, str) and tag in text:
                return False
        # Not retried in-process: a create whose answer was lost must not become two comments.
        await self._api.request(
            "POST",
            self._path(f"issues/{number}/comments"),
            json={"body": f"{body}\n\n{tag}"},
            safe=False,
        )
        return True

    async def publish_branch(
        self, issue: Issue, *, branch: str, base_branch: str, title: str, body: str
    ) -> str | None:
        url = await open_pull_request(
            self._api,
            self._owner,
            self._name,
            PullRequestDraft(
                branch=branch,
                base=self._config.pull_request_base or base_branch,
                title=title,
                body=body,
                draft=self._config.draft_pull_requests,
            ),
        )
        await self.add_comment(issue, pull_request_comment(url), marker=pull_request_marker(branch))
        return url

    # -- internals ---------------------------------------------------------------------------

    def _path(self, tail: str) -> str:
        return f"repos/{self._owner}/{self._name}/{tail}"

    def _require_number(self, issue: Issue) -> int:
        number = _issue_number(issue.id)
        if number is None:
            raise self._api.error(
                TrackerErrorCategory.NOT_FOUND, f"{issue.id!r} is not a GitHub issue number"
            )
        return number

    def _listings(self, wanted: Iterable[StatePlacement]) -> list[Listing]:
        return listings(
            wanted,
            open_filter="open",
            max_open_pages=MAX_OPEN_PAGES,
            max_closed_pages=MAX_CLOSED_PAGES,
        )

    async def _list_issues(self, listing: Listing) -> list[object]:
        params: dict[str, str | int] = {
            "state": listing.state,
            "per_page": PAGE_SIZE,
            "sort": "updated",
            "direction": "desc",
        }
        if listing.label is not None:
            params["labels"] = listing.label
        return await self._paginate(
            self._path("issues"), params, max_pages=listing.max_pages, truncate=listing.truncate
        )

    async def _paginate(
        self,
        url: str,
        params: dict[str, str | int],
        *,
        max_pages: int,
        truncate: bool,
        conditional: bool = True,
    ) -> list[object]:
        """Every page of a listing. Issue listings are sorted by most recent update, so any
        change reaches the first page: a 304 there means the listing as a whole is unchanged."""
        items: list[object] = []
        async for page in github_pages(
            self._api,
            url,
            params,
            max_pages=max_pages,
            truncate=truncate,
            conditional=conditional,
        ):
            items.extend(page)
        return items

    async def _get_issue(self, number: int) -> object:
        reply = await self._api.request(
            "GET", self._path(f"issues/{number}"), safe=True, conditional=True
        )
        return reply.body

    async def _patch_issue(self, number: int, changes: dict[str, str]) -> dict[str, object]:
        reply = await self._api.request(
            "PATCH", self._path(f"issues/{number}"), json=changes, safe=True
        )
        obj = as_object(reply.body)
        if obj is None:
            raise self._api.error(
                TrackerErrorCategory.UNKNOWN_PAYLOAD, f"PATCH #{number}: expected an issue"
            )
        return dict(obj)

    async def _add_label(self, number: int, label: str) -> list[object]:
        reply = await self._api.request(
            "POST", self._path(f"issues/{number}/labels"), json={"labels": [label]}, safe=True
        )
        return self._label_list(reply.body, number)

    async def _remove_state_labels(
        self, number: int, raw: dict[str, object], *, keep: str | None
    ) -> list[object]:
        current = as_list(raw.get("labels")) or []
        for label in self._states.state_labels_in(clean_labels(label_names(current))):
            if label == keep:
                continue
            reply = await self._api.request(
                "DELETE",
                self._path(f"issues/{number}/labels/{quote(label, safe='')}"),
                safe=True,
                passthrough=(404,),
            )
            if reply.status == 404:
                # Already gone (a retried call): the remaining list is ours to compute.
                current = [n for n in current if _label_key(n) != label]
            else:
                current = self._label_list(reply.body, number)
        return current

    def _label_list(self, body: object, number: int) -> list[object]:
        labels = as_list(body)
        if labels is None:
            raise self._api.error(
                TrackerErrorCategory.UNKNOWN_PAYLOAD, f"#{number} labels: expected a JSON array"
            )
        return labels

    def _decode_listed(self, raw: object) -> Issue | None:
        try:
            return decode_issue(raw, self._config, self._states)
        except MalformedRecordError as error:
            logger.warning("github %s: skipping a malformed issue: %s", self._config.repo, error)
            return None

    def _decode_strict(self, raw: object) -> Issue | None:
        try:
            return decode_issue(raw, self._config, self._states)
        except MalformedRecordError as error:
            raise self._api.error(TrackerErrorCategory.MALFORMED_ISSUE, str(error)) from None


@dataclass(frozen=True)
class _Pull:
    number: int
    url: str
    body: str


@dataclass(frozen=True)
class PullRequestDraft:
    branch: str
    base: str
    title: str
    body: str
    draft: bool = False


def pull_request_comment(url: str) -> str:
    return f"Pull request: {url}"


def pull_request_marker(branch: str) -> str:
    return f"pr:{branch}"


async def open_pull_request(api: ApiClient, owner: str, name: str, wanted: PullRequestDraft) -> str:
    """Open the pull request of ``wanted.branch`` in ``owner/name``, or reuse the open one
    (its description brought up to date); its URL. Shared by the GitHub tracker's ship and by
    a Linear line whose work is reviewed in GitHub pull requests."""
    path = f"repos/{owner}/{name}/pulls"
    pull = await _find_pull(api, path, owner, wanted.branch)
    if pull is None:
        try:
            reply = await api.request(
                "POST",
                path,
                json={
                    "title": wanted.title,
                    "head": wanted.branch,
                    "base": wanted.base,
                    "body": wanted.body,
                    "draft": wanted.draft,
                },
                safe=False,
            )
            pull = _pull_fields(api, reply.body)
        except TrackerError as error:
            # 422 also answers "a pull request already exists" (a concurrent or lost earlier
            # create): reuse that one.
            if error.category is not TrackerErrorCategory.UNPROCESSABLE:
                raise
            pull = await _find_pull(api, path, owner, wanted.branch)
            if pull is None:
                raise
    elif pull.body != wanted.body:
        await api.request("PATCH", f"{path}/{pull.number}", json={"body": wanted.body}, safe=True)
    return pull.url


async def _find_pull(api: ApiClient, path: str, owner: str, branch: str) -> _Pull | None:
    reply = await api.request(
        "GET",
        path,
        params={"head": f"{owner}:{branch}", "state": "open", "per_page": PAGE_SIZE},
        safe=True,
    )
    pulls = as_list(reply.body)
    if pulls is None:
        raise api.error(TrackerErrorCategory.UNKNOWN_PAYLOAD, "pulls: expected an array")
    return _pull_fields(api, pulls[0]) if pulls else None


def _pull_fields(api: ApiClient, raw: object) -> _Pull:
    obj = as_object(raw)
    number = obj.get("number") if obj is not None else None
    url = non_empty_str(obj.get("html_url")) if obj is not None else None
    if obj is None or not isinstance(number, int) or url is None:
        raise api.error(
            TrackerErrorCategory.UNKNOWN_PAYLOAD, "pull request without number or html_url"
        )
    body = obj.get("body")
    return _Pull(number=number, url=url, body=body if isinstance(body, str) else "")


def _issue_number(issue_id: str) -> int | None:
    text = issue_id.strip().lstrip("#")
    return int(text) if text.isascii() and text.isdigit() and int(text) > 0 else None


def _label_key(entry: object) -> str | None:
    obj = as_object(entry)
    name = obj.get("name") if obj is not None else entry
    return name.strip().lower() if isinstance(name, str) else None
