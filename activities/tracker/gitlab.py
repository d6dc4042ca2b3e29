# pyright: strict
"""GitLab issues adapter (REST v4), scoped to one project (``tracker.project``).

GitLab issues have two native states (``opened``, ``closed``) and no close reason; a line
needs more. The mapping (WORKFLOW.md keys of :class:`GitLabTrackerConfig`):

* the native state picks the *group* of states, the labels pick the state within it:
  an **open** issue is in the open state whose label (``tracker.state_labels``) it carries,
  else in ``tracker.default_open_state`` (unset: not this line's issue); a **closed** issue is
  in the closed state (``tracker.closed_states``) whose label it carries, else in the *first*
  closed state. Labels of the other group are ignored: closing an issue in GitLab's UI leaves
  its labels on, and it must still read as closed;
* two state labels of the same group on one issue is a malformed record;
* a closed issue GitLab moved to another project (``moved_to_id``) is not this line's issue.

Scoped labels (``jidoka::in-progress``) are ordinary labels to this adapter: every move names
both the label to add and the state labels to remove in one ``PUT``, whether or not GitLab
keeps one label per scope (a Premium feature; on Free the ``::`` is just part of the name).
Where GitLab does, putting the state labels in one scope makes two state labels on an issue
impossible, but also means any *other* label of that scope is dropped whenever a state label
is added: :func:`jidoka.workflow_file.gitlab_mapping_problems` refuses such a profile.

``id`` is the issue's ``iid`` (its number within the project) as a string, ``identifier`` is
``<project name>#<iid>``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar
from urllib.parse import quote, urlsplit

import httpx

from activities.jsontext import loads
from activities.tracker.base import TrackerError, TrackerErrorCategory
from activities.tracker.github import marker_tag
from activities.tracker.http import (
    MESSAGE_CHARS,
    SECONDARY_LIMIT_WAIT_S,
    ApiClient,
    Clock,
    ConditionalCache,
    RateLimitSnapshot,
    Reply,
    RetryPolicy,
    Sleep,
    TailReply,
    as_list,
    as_object,
    clean_labels,
    gather_bounded,
    non_empty_str,
    parse_epoch,
    parse_int,
    parse_retry_after,
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
from jidoka.config import (
    GitLabTrackerConfig,
)
from jidoka.models import BlockerRef, Issue

logger = logging.getLogger("jidoka.tracker.gitlab")

PAGE_SIZE = 100
"""GitLab's maximum ``per_page``."""
MAX_OPEN_PAGES = 100
"""10,000 open issues in the requested states: past that, the line's scope is too wide."""
MAX_CLOSED_PAGES = 10
"""Closed listings (startup cleanup) read the 1,000 most recently updated closed issues only."""
MAX_NOTE_PAGES = 100
BY_ID_BATCH = 100
"""``iids[]`` per listing request: one page of :data:`PAGE_SIZE` holds them all."""
LINKS_CONCURRENCY = 8
"""Blockers cost one request per open issue (GitLab lists links per issue only); a few at once."""
OPEN_BLOCKER = "opened"
"""The state of a blocker that is open but in none of the line's states: GitLab's own word,
never a terminal state, so such a blocker blocks (policy: a known non-terminal state blocks)."""
ERROR_STATUSES = (400, 401, 403, 404, 409, 422, 429)
"""Answers this adapter classifies itself: GitLab's error bodies are not GitHub's (``message``
may be a string, a list or an object of field errors; ``error`` is another spelling), and its
rate limit is a 429 with ``RateLimit-Reset``. 5xx, redirects and transport failures stay with
:class:`~activities.tracker.http.ApiClient` (bounded retries of safe requests)."""

T = TypeVar("T")


def api_url(base_url: str) -> str:
    """``https://gitlab.example.com`` -> ``https://gitlab.example.com/api/v4``; a base URL
    already ending in ``/api/v4`` (a common way to write it) is taken as is."""
    base = base_url.strip().rstrip("/")
    if base.endswith("/api/v4"):
        base = base[: -len("/api/v4")]
    return f"{base}/api/v4"


# --------------------------------------------------------------------------------------------
# State mapping (pure)
# --------------------------------------------------------------------------------------------


def gitlab_states(config: GitLabTrackerConfig) -> StateMap:
    """Open states by label; closed states by label, else the first closed state (GitLab has
    no close reason)."""
    return StateMap.build(
        state_labels=config.state_labels,
        default_open_state=config.default_open_state,
        closed_reasons=dict.fromkeys(config.closed_states),
        default_closed=config.closed_states[0] if config.closed_states else None,
    )


# --------------------------------------------------------------------------------------------
# Normalisation (pure)
# --------------------------------------------------------------------------------------------


def _positive_int(value: object) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    return None


def _project_path_of(obj: dict[str, object]) -> str | None:
    """``group/sub/app`` of an issue: from ``references.full`` (``group/sub/app#12``), else
    from ``web_url`` (``https://host/group/sub/app/-/issues/12``)."""
    references = as_object(obj.get("references"))
    full = non_empty_str(references.get("full")) if references is not None else None
    if full is not None and "#" in full:
        return full.rsplit("#", 1)[0]
    url = non_empty_str(obj.get("web_url"))
    if url is None:
        return None
    path = urlsplit(url).path.strip("/")
    for marker in ("/-/issues/", "/issues/"):
        if marker in f"/{path}":
            return f"/{path}".split(marker, 1)[0].strip("/") or None
    return None


def project_name(config: GitLabTrackerConfig, obj: dict[str, object]) -> str:
    """The project's own name (the last part of its path), for identifiers. A line configured
    by numeric id learns the path from the issue itself."""
    if not config.project.isdigit():
        return config.project.rsplit("/", 1)[-1]
    path = _project_path_of(obj)
    return path.rsplit("/", 1)[-1] if path else config.project


def decode_issue(raw: object, config: GitLabTrackerConfig, states: StateMap) -> Issue | None:
    """One REST issue object -> an Issue (blockers not yet read); None for issues outside the
    line's states. Raises :class:`MalformedRecordError` when a required field is unusable."""
    obj = as_object(raw)
    if obj is None:
        raise MalformedRecordError("not a JSON object")
    iid = _positive_int(obj.get("iid"))
    if iid is None:
        raise MalformedRecordError(f"no usable iid ({obj.get('iid')!r})")
    title = non_empty_str(obj.get("title"))
    if title is None:
        raise MalformedRecordError(f"#{iid}: no title")
    native_state = obj.get("state")
    if native_state not in ("opened", "closed"):
        raise MalformedRecordError(f"#{iid}: unknown state {native_state!r}")
    raw_labels = as_list(obj.get("labels"))
    if raw_labels is None:
        raise MalformedRecordError(f"#{iid}: labels is not a list")
    labels = clean_labels(label_names(raw_labels))
    if native_state == "closed" and obj.get("moved_to_id") is not None:
        return None  # moved to another project: it lives on there, not in this line
    try:
        state = states.state_of(is_open=native_state == "opened", labels=labels)
    except MalformedRecordError as error:
        raise MalformedRecordError(f"#{iid}: {error}") from None
    if state is None:
        return None
    description = obj.get("description")
    return Issue(
        id=str(iid),
        identifier=f"{project_name(config, obj)}#{iid}",
        title=title,
        description=description if isinstance(description, str) else None,
        priority=label_priority(labels, config.priority_labels),
        state=state,
        url=non_empty_str(obj.get("web_url")),
        labels=labels,
        created_at=parse_timestamp(obj.get("created_at")),
        updated_at=parse_timestamp(obj.get("updated_at")),
    )


def decode_blocker(
    raw: object,
    *,
    project_id: int | None,
    config: GitLabTrackerConfig,
    states: StateMap,
) -> BlockerRef | None:
    """One entry of ``GET .../issues/:iid/links`` whose ``link_type`` is ``is_blocked_by`` ->
    a blocker; None for other links and unusable entries.

    Its state is what this line's mapping reads from its native state and labels (any
    project: labels are read the same way); an open issue the mapping does not place reads
    :data:`OPEN_BLOCKER`, so it blocks. A closed one reads as a closed state, which never
    blocks, or as unknown (no closed states configured)."""
    obj = as_object(raw)
    if obj is None or obj.get("link_type") != "is_blocked_by":
        return None
    iid = _positive_int(obj.get("iid"))
    native = obj.get("state")
    if iid is None or native not in ("opened", "closed"):
        return None
    labels = clean_labels(label_names(as_list(obj.get("labels")) or []))
    try:
        state = states.state_of(is_open=native == "opened", labels=labels)
    except MalformedRecordError:
        state = None
    if state is None and native == "opened":
        state = OPEN_BLOCKER
    if project_id is not None and obj.get("project_id") == project_id:
        return BlockerRef(id=str(iid), identifier=f"{project_name(config, obj)}#{iid}", state=state)
    path = _project_path_of(obj)
    if path is None:
        return BlockerRef(identifier=f"project {obj.get('project_id')}#{iid}", state=state)
    return BlockerRef(identifier=f"{path}#{iid}", state=state)


def gitlab_message(body: object) -> str:
    """The human part of a GitLab error body, which comes in several shapes:
    ``{"message": "404 Not found"}``, ``{"message": ["Another open merge request ..."]}``,
    ``{"message": {"title": ["can't be blank"]}}``, ``{"error": "title is missing"}``
    (with ``error_description`` from the OAuth layer)."""
    parts: list[str] = []

    def flatten(value: object, prefix: str = "") -> None:
        if isinstance(value, str) and value.strip():
            parts.append(f"{prefix}{value.strip()}")
            return
        items = as_list(value)
        if items is not None:
            for item in items:
                flatten(item, prefix)
            return
        obj = as_object(value)
        if obj is not None:
            for key, item in obj.items():
                flatten(item, f"{prefix}{key} ")

    if isinstance(body, str):
        flatten(body)
    obj = as_object(body)
    if obj is not None:
        for key in ("message", "error", "error_description"):
            flatten(obj.get(key))
    return "; ".join(parts)[:MESSAGE_CHARS]


def read_rate_limit(headers: httpx.Headers, now: datetime) -> RateLimitSnapshot | None:
    """GitLab's ``RateLimit-*`` headers (sent by GitLab.com and instances with user and IP
    rate limits on); ``RateLimit-Name`` names the throttle."""
    remaining = parse_int(headers.get("ratelimit-remaining"))
    if remaining is None:
        return None
    return RateLimitSnapshot(
        remaining=remaining,
        limit=parse_int(headers.get("ratelimit-limit")),
        reset_at=parse_epoch(headers.get("ratelimit-reset")),
        observed_at=now,
        resource=headers.get("ratelimit-name"),
    )


def retry_after_s(headers: httpx.Headers, now: datetime) -> float:
    """How long to wait after a 429: ``Retry-After`` (seconds or an HTTP date), else
    ``RateLimit-Reset`` (epoch seconds) or ``RateLimit-ResetTime`` (an HTTP date) plus one
    second (resets are whole seconds and clocks drift), else one minute."""
    wait = parse_retry_after(headers.get("retry-after"), now)
    if wait is not None:
        return wait
    reset = parse_epoch(headers.get("ratelimit-reset"))
    if reset is not None:
        return max(0.0, (reset - now).total_seconds()) + 1.0
    reset_in = parse_retry_after(headers.get("ratelimit-resettime"), now)
    if reset_in is not None:
        return reset_in + 1.0
    return SECONDARY_LIMIT_WAIT_S


# --------------------------------------------------------------------------------------------
# The REST client (shared with the GitLab forge, activities/forge/gitlab.py)
# --------------------------------------------------------------------------------------------


class GitLabApi:
    """GitLab's REST v4 on :class:`~activities.tracker.http.ApiClient`: one token (sent as
    ``Authorization: Bearer``, which GitLab accepts for personal, group and project access
    tokens and for OAuth tokens alike), GitLab's error bodies and 429s classified here,
    ``X-Next-Page``/``Link`` pagination."""

    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        retry: RetryPolicy | None = None,
        cache: ConditionalCache | None = None,
        sleep: Sleep = asyncio.sleep,
        clock: Clock = utc_now,
    ) -> None:
        self._clock = clock
        self.api = ApiClient(
            provider="gitlab",
            base_url=api_url(base_url),
            headers={
                "Authorization": f"Bearer {token}",
                "Accept": "application/json",
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

    def __repr__(self) -> str:
        return f"GitLabApi({self.api!r})"

    @property
    def rate_limit(self) -> RateLimitSnapshot | None:
        return self.api.rate_limit

    async def aclose(self) -> None:
        await self.api.aclose()

    def error(
        self, category: TrackerErrorCategory, message: str, *, retryable: bool = False
    ) -> TrackerError:
        return self.api.error(category, message, retryable=retryable)

    async def call(
        self,
        method: str,
        url: str,
        *,
        json: object = None,
        safe: bool,
        conditional: bool = False,
        answers: Collection[int] = (),
    ) -> Reply:
        """One request; a 2xx :class:`Reply` or a ``TrackerError``. ``url`` carries its whole
        query: ``httpx`` would replace, not merge, a query with ``params``, and GitLab's
        ``iids[]`` repeats a key. ``answers``: error statuses that are an answer to the caller
        (a merge's refusal), returned as a :class:`Reply` instead of raised."""
        reply = await self.api.request(
            method,
            url,
            json=json,
            safe=safe,
            conditional=conditional,
            passthrough=(*ERROR_STATUSES, *answers),
        )
        if 200 <= reply.status < 300 or reply.status in answers:
            return reply
        raise self._failure(method, url, reply)

    async def pages(
        self,
        path: str,
        query: Sequence[tuple[str, str | int]],
        *,
        max_pages: int,
        truncate: bool,
    ) -> list[object]:
        """Every item of an offset-paginated listing, ``per_page`` at GitLab's maximum.

        The next page is ``X-Next-Page`` when GitLab sends it (empty on the last page), else
        ``Link: rel="next"``. A page number that does not move forward, or a link that loops
        back, is a pagination error; an empty page ends the listing whatever the headers say
        (GitLab has sent a next page after the last one). Past ``max_pages``: stop quietly
        when ``truncate``, else an error. Not conditional: a 304 would not repeat
        ``X-Next-Page``, and GitLab counts a 304 against its rate limit like any request."""
        base = [(k, v) for k, v in query if k not in ("page", "per_page")]
        base.append(("per_page", PAGE_SIZE))
        url = _with_query(path, base)
        page, pages = 1, 1
        followed: set[str] = set()
        items: list[object] = []
        while True:
            reply = await self.call("GET", url, safe=True)
            batch = as_list(reply.body)
            if batch is None:
                raise self.error(
                    TrackerErrorCategory.UNKNOWN_PAYLOAD, f"GET {path}: expected a JSON array"
                )
            items.extend(batch)
            next_page = reply.headers.get("x-next-page")
            if not batch:
                return items
            if next_page is not None:
                if not next_page.strip():
                    return items
                number = parse_int(next_page)
                if number is None or number <= page:
                    raise self.error(
                        TrackerErrorCategory.MISSING_PAGINATION_CURSOR,
                        f"GET {path}: X-Next-Page {next_page[:20]!r} after page {page}",
                    )
                page, url = number, _with_query(path, [*base, ("page", number)])
            elif reply.next_url is not None:
                if reply.next_url in followed:
                    raise self.error(
                        TrackerErrorCategory.MISSING_PAGINATION_CURSOR,
                        f"GET {path}: the next-page link loops back",
                    )
                followed.add(reply.next_url)
                page, url = page + 1, reply.next_url
            else:
                return items
            if pages >= max_pages:
                if truncate:
                    logger.info("%s: stopped after %d pages (by design)", path, pages)
                    return items
                raise self.error(
                    TrackerErrorCategory.MISSING_PAGINATION_CURSOR,
                    f"GET {path}: more than {max_pages} pages; narrow the line's states",
                )
            pages += 1

    async def text_tail(self, url: str, *, keep_bytes: int, max_bytes: int) -> TailReply:
        """The end of a plain-text body that may be huge (a job's log), streamed so that at
        most ``keep_bytes`` are held (:meth:`ApiClient.read_tail`); failures classified as
        :meth:`call` classifies them."""
        reply = await self.api.read_tail(
            url, keep_bytes=keep_bytes, max_bytes=max_bytes, passthrough=ERROR_STATUSES
        )
        if 200 <= reply.status < 300:
            return reply
        try:
            body: object = loads(reply.tail)
        except (ValueError, RecursionError):
            body = reply.tail.decode("utf-8", "replace")
        raise self._failure("GET", url, Reply(reply.status, reply.headers, body, None))

    def _failure(self, method: str, url: str, reply: Reply) -> TrackerError:
        status = reply.status
        detail = gitlab_message(reply.body) or httpx.codes.get_reason_phrase(status) or "no message"
        where = f"{method} {url.split('?', 1)[0]} -> HTTP {status}: {detail}"
        if status == 429:
            wait = retry_after_s(reply.headers, self._clock())
            return self.api.error(
                TrackerErrorCategory.RATE_LIMITED,
                f"rate limited ({where}); retry in {wait:.0f}s",
                retryable=True,
                retry_after_s=wait,
            )
        if status in (401, 403):
            return self.error(TrackerErrorCategory.AUTH, where)
        if status == 404:
            return self.error(TrackerErrorCategory.NOT_FOUND, where)
        if status == 409:
            return self.error(TrackerErrorCategory.CONFLICT, where)
        return self.error(TrackerErrorCategory.UNPROCESSABLE, where)


def _with_query(path: str, query: Sequence[tuple[str, str | int]]) -> str:
    return f"{path}?{httpx.QueryParams(list(query))}" if query else path


def project_path(project: str) -> str:
    """``projects/<id>``: a numeric id as is, a path URL-encoded (``group%2Fapp``), as GitLab
    requires of a path in the URL."""
    return f"projects/{quote(project, safe='')}"


# --------------------------------------------------------------------------------------------
# Merge requests
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MergeRequestDraft:
    branch: str
    target: str
    title: str
    description: str
    draft: bool = False


@dataclass(frozen=True)
class _MergeRequest:
    iid: int
    url: str
    description: str


def merge_request_comment(url: str) -> str:
    return f"Merge request: {url}"


def merge_request_marker(branch: str) -> str:
    return f"mr:{branch}"


def draft_title(title: str) -> str:
    """GitLab has no draft flag on create: a title starting ``Draft:`` makes the draft."""
    return (
        title if title.lower().startswith(("draft:", "[draft]", "(draft)")) else f"Draft: {title}"
    )


async def open_merge_request(api: GitLabApi, project: str, wanted: MergeRequestDraft) -> str:
    """Open the merge request of ``wanted.branch`` in ``project`` (an id or a path), or reuse
    the open one (its description brought up to date); its ``web_url``."""
    path = f"{project_path(project)}/merge_requests"
    found = await _find_merge_request(api, path, wanted.branch)
    if found is None:
        title = draft_title(wanted.title) if wanted.draft else wanted.title
        try:
            # Not retried in-process: a create whose answer was lost must not become two.
            reply = await api.call(
                "POST",
                path,
                json={
                    "source_branch": wanted.branch,
                    "target_branch": wanted.target,
                    "title": title,
                    "description": wanted.description,
                },
                safe=False,
            )
            found = _merge_request_fields(api, reply.body)
        except TrackerError as error:
            # 409 answers "Another open merge request already exists for this source branch"
            # (a concurrent or lost earlier create): reuse that one.
            if error.category not in (
                TrackerErrorCategory.CONFLICT,
                TrackerErrorCategory.UNPROCESSABLE,
            ):
                raise
            found = await _find_merge_request(api, path, wanted.branch)
            if found is None:
                raise
    elif found.description != wanted.description:
        await api.call(
            "PUT", f"{path}/{found.iid}", json={"description": wanted.description}, safe=True
        )
    return found.url


async def _find_merge_request(api: GitLabApi, path: str, branch: str) -> _MergeRequest | None:
    items = await api.pages(
        path,
        [("source_branch", branch), ("state", "opened")],
        max_pages=1,
        truncate=True,
    )
    for raw in items:
        obj = as_object(raw)
        if obj is None:
            continue
        source, target = obj.get("source_project_id"), obj.get("project_id")
        # A fork's branch of the same name is someone else's merge request.
        if isinstance(source, int) and isinstance(target, int) and source != target:
            continue
        return _merge_request_fields(api, obj)
    return None


def _merge_request_fields(api: GitLabApi, raw: object) -> _MergeRequest:
    obj = as_object(raw)
    iid = _positive_int(obj.get("iid")) if obj is not None else None
    url = non_empty_str(obj.get("web_url")) if obj is not None else None
    if obj is None or iid is None or url is None:
        raise api.error(
            TrackerErrorCategory.UNKNOWN_PAYLOAD, "merge request without iid or web_url"
        )
    description = obj.get("description")
    return _MergeRequest(
        iid=iid, url=url, description=description if isinstance(description, str) else ""
    )


def issue_reference(body: str, iid: int) -> str:
    """The merge request's description: ``body`` and a ``Related to #<iid>`` line.

    Not ``Closes #<iid>``: GitLab closes an issue named that way when the merge request is
    merged into the default branch, behind Jidoka's back. The issue would read as closed
    (the first closed state) without the guarded transition, and the review loop, which
    moves the issue itself when it sees the merge, would find it moved by someone else.
    ``Related to`` still links both ways (GitLab notes the mention on the issue)."""
    return related_to(body, f"#{iid}")


def tracker_issue_reference(body: str, issue: Issue) -> str:
    """The description of a merge request opened for another tracker's issue (a Linear or
    Jira line's ``review.gitlab``): ``body`` and a ``Related to <the issue's URL>`` line
    (its identifier when it has no URL).

    Never ``Closes`` (nor ``Fixes``, ``Resolves``): for the reason :func:`issue_reference`
    gives, and because GitLab's Jira integration moves a Jira issue named after such a word
    (``Closes ENG-7``) when the merge request is merged, behind the guarded transition's
    back as well."""
    return related_to(body, issue.url or issue.identifier or issue.id)


def related_to(body: str, reference: str) -> str:
    line = f"Related to {reference}"
    return f"{body.rstrip()}\n\n{line}" if body.strip() else line


# --------------------------------------------------------------------------------------------
# The client
# --------------------------------------------------------------------------------------------


class GitLabTracker(RemoteTracker[GitLabApi, GitLabTrackerConfig]):
    def __init__(
        self,
        config: GitLabTrackerConfig,
        token: str,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        retry: RetryPolicy | None = None,
        cache: ConditionalCache | None = None,
        sleep: Sleep = asyncio.sleep,
        clock: Clock = utc_now,
    ) -> None:
        self._config = config
        self._project = project_path(config.project)
        self._states = gitlab_states(config)
        self._api = GitLabApi(
            config.base_url,
            token,
            transport=transport,
            retry=retry,
            cache=cache,
            sleep=sleep,
            clock=clock,
        )

    def __repr__(self) -> str:
        return (
            f"GitLabTracker(project={self._config.project!r}, base_url={self._config.base_url!r})"
        )

    # -- reads -------------------------------------------------------------------------------

    async def fetch_issues_by_states(self, states: Sequence[str]) -> list[Issue]:
        wanted = self._states.wanted(states)
        if not wanted:
            return []
        found: dict[str, tuple[Issue, dict[str, object]]] = {}
        for listing in self._listings(wanted.values()):
            for raw in await self._list_issues(listing):
                issue = self._decode_listed(raw)
                if issue is not None and issue.state in wanted and issue.id not in found:
                    found[issue.id] = (issue, as_object(raw) or {})
        return await self._with_blockers(list(found.values()))

    async def fetch_issues_by_ids(self, issue_ids: Sequence[str]) -> list[Issue]:
        iids = list(dict.fromkeys(n for n in map(_issue_iid, issue_ids) if n is not None))
        if not iids:
            return []
        found: dict[int, tuple[Issue, dict[str, object]]] = {}
        for start in range(0, len(iids), BY_ID_BATCH):
            batch = iids[start : start + BY_ID_BATCH]
            raws = await self._api.pages(
                f"{self._project}/issues",
                [("iids[]", iid) for iid in batch],
                max_pages=MAX_OPEN_PAGES,
                truncate=False,
            )
            for raw in raws:
                issue = self._decode_strict(raw)
                if issue is not None and int(issue.id) in batch:
                    found.setdefault(int(issue.id), (issue, as_object(raw) or {}))
        ordered = [found[iid] for iid in iids if iid in found]
        return await self._with_blockers(ordered)

    async def fetch_issue(self, issue_id: str) -> Issue:
        iid = _issue_iid(issue_id)
        if iid is None:
            raise self._api.error(
                TrackerErrorCategory.NOT_FOUND, f"{issue_id!r} is not a GitLab issue iid"
            )
        raw = await self._get_issue(iid)
        issue = self._decode_strict(raw)
        if issue is None:
            raise self._api.error(
                TrackerErrorCategory.NOT_FOUND,
                f"#{iid} is in none of this line's states (or moved to another project)",
            )
        return (await self._with_blockers([(issue, as_object(raw) or {})]))[0]

    # -- writes ------------------------------------------------------------------------------

    async def set_state(self, issue: Issue, target_state: str) -> Issue:
        """One ``PUT`` that adds the target's label, removes every other state label (as
        spelled on the issue) and closes or reopens: GitLab applies it as one update, so no
        interruption can leave an issue half moved. Nothing is written when the issue already
        reads as the target. Blockers are the caller's live issue's: a move changes no link."""
        target = self._states.placement(target_state)
        if target is None:
            raise self._api.error(
                TrackerErrorCategory.UNPROCESSABLE,
                f"state {target_state!r} has no GitLab mapping "
                "(tracker.state_labels, tracker.closed_states, tracker.default_open_state)",
            )
        iid = self._require_iid(issue)
        raw = as_object(await self._get_issue(iid))
        if raw is None:
            raise self._api.error(TrackerErrorCategory.UNKNOWN_PAYLOAD, f"#{iid}: not an object")
        names = label_names(as_list(raw.get("labels")) or [])
        present = {name.lower() for name in names}
        keep = target.label.strip().lower() if target.label is not None else None
        changes: dict[str, str] = {}
        if target.label is not None and keep not in present:
            changes["add_labels"] = target.label.strip()
        stale = [n for n in names if self._states.is_state_label(n) and n.lower() != keep]
        if stale:
            changes["remove_labels"] = ",".join(stale)
        is_open = raw.get("state") == "opened"
        wants_open = target.placement is not Placement.CLOSED
        if is_open != wants_open:
            changes["state_event"] = "reopen" if wants_open else "close"
        stored_raw: object = raw
        if changes:
            reply = await self._api.call(
                "PUT", f"{self._project}/issues/{iid}", json=changes, safe=True
            )
            stored_raw = reply.body
        stored = self._decode_strict(stored_raw)
        if stored is None or stored.state != target.state:
            raise self._api.error(
                TrackerErrorCategory.UNKNOWN_PAYLOAD,
                f"#{iid} does not read as {target.state!r} after the update",
            )
        return stored.model_copy(update={"blocked_by": issue.blocked_by})

    async def add_comment(self, issue: Issue, body: str, marker: str) -> bool:
        """A note ending in ``<!-- jidoka:<marker> -->``, which GitLab's Markdown does not
        render; skipped when a note of the issue already carries that marker."""
        tag = marker_tag(marker)
        iid = self._require_iid(issue)
        path = f"{self._project}/issues/{iid}/notes"
        # Read in full, never conditionally: this read guards a write.
        notes = await self._api.pages(
            path,
            [("sort", "asc"), ("order_by", "created_at")],
            max_pages=MAX_NOTE_PAGES,
            truncate=False,
        )
        for note in notes:
            obj = as_object(note)
            text = obj.get("body") if obj is not None else None
            if isinstance(text, str) and tag in text:
                return False
        # Not retried in-process: a create whose answer was lost must not become two notes.
        await self._api.call("POST", path, json={"body": f"{body}\n\n{tag}"}, safe=False)
        return True

    async def publish_branch(
        self, issue: Issue, *, branch: str, base_branch: str, title: str, body: str
    ) -> str | None:
        """Open (or reuse) the merge request of ``branch``, its description ``body`` with a
        ``Related to #<iid>`` line (:func:`issue_reference` says why not ``Closes``), and make
        sure the issue has one note linking it."""
        iid = self._require_iid(issue)
        url = await open_merge_request(
            self._api,
            self._config.project,
            MergeRequestDraft(
                branch=branch,
                target=self._config.merge_request_target or base_branch,
                title=title,
                description=issue_reference(body, iid),
                draft=self._config.draft_merge_requests,
            ),
        )
        await self.add_comment(issue, merge_request_comment(url), merge_request_marker(branch))
        return url

    # -- internals ---------------------------------------------------------------------------

    def _require_iid(self, issue: Issue) -> int:
        iid = _issue_iid(issue.id)
        if iid is None:
            raise self._api.error(
                TrackerErrorCategory.NOT_FOUND, f"{issue.id!r} is not a GitLab issue iid"
            )
        return iid

    def _listings(self, wanted: Iterable[StatePlacement]) -> list[Listing]:
        return listings(
            wanted,
            open_filter="opened",
            max_open_pages=MAX_OPEN_PAGES,
            max_closed_pages=MAX_CLOSED_PAGES,
        )

    async def _list_issues(self, listing: Listing) -> list[object]:
        query: list[tuple[str, str | int]] = [("state", listing.state)]
        if listing.label is not None:
            query.append(("labels", listing.label.strip()))
        if listing.state == "closed":
            # The most recently updated first: the truncated tail is old history.
            query += [("order_by", "updated_at"), ("sort", "desc")]
        else:
            # Oldest first: an issue updated while pages are read keeps its place (by update
            # time it would jump to page one, already read, and be missed).
            query += [("order_by", "created_at"), ("sort", "asc")]
        return await self._api.pages(
            f"{self._project}/issues",
            query,
            max_pages=listing.max_pages,
            truncate=listing.truncate,
        )

    async def _get_issue(self, iid: int) -> object:
        reply = await self._api.call(
            "GET", f"{self._project}/issues/{iid}", safe=True, conditional=True
        )
        return reply.body

    async def _with_blockers(self, found: list[tuple[Issue, dict[str, object]]]) -> list[Issue]:
        """Issues with their ``is_blocked_by`` links. Read for open issues only: a closed
        issue is never dispatched, so its blockers decide nothing."""

        async def one(issue: Issue, raw: dict[str, object]) -> Issue:
            if raw.get("state") != "opened":
                return issue
            project_id = raw.get("project_id")
            blockers = await self._blockers(
                int(issue.id), project_id if isinstance(project_id, int) else None
            )
            return issue.model_copy(update={"blocked_by": blockers}) if blockers else issue

        return await gather_bounded([one(i, r) for i, r in found], LINKS_CONCURRENCY)

    async def _blockers(self, iid: int, project_id: int | None) -> list[BlockerRef]:
        try:
            reply = await self._api.call(
                "GET", f"{self._project}/issues/{iid}/links", safe=True, conditional=True
            )
        except TrackerError as error:
            if error.category is TrackerErrorCategory.NOT_FOUND:
                return []  # deleted since it was listed: no blockers to read
            raise
        links = as_list(reply.body)
        if links is None:
            raise self._api.error(
                TrackerErrorCategory.UNKNOWN_PAYLOAD, f"#{iid} links: expected a JSON array"
            )
        blockers: dict[str, BlockerRef] = {}
        for raw in links:
            ref = decode_blocker(
                raw, project_id=project_id, config=self._config, states=self._states
            )
            if ref is not None:
                blockers.setdefault(ref.identifier or "", ref)
        return list(blockers.values())

    def _decode_listed(self, raw: object) -> Issue | None:
        try:
            return decode_issue(raw, self._config, self._states)
        except MalformedRecordError as error:
            logger.warning("gitlab %s: skipping a malformed issue: %s", self._config.project, error)
            return None

    def _decode_strict(self, raw: object) -> Issue | None:
        try:
            return decode_issue(raw, self._config, self._states)
        except MalformedRecordError as error:
            raise self._api.error(TrackerErrorCategory.MALFORMED_ISSUE, str(error)) from None


def _issue_iid(issue_id: str) -> int | None:
    text = issue_id.strip().lstrip("#")
    return int(text) if text.isascii() and text.isdigit() and int(text) > 0 else None
