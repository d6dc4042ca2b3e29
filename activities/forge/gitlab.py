# pyright: strict
"""GitLab merge requests as the review loop sees them (REST v4), scoped to one project.

:meth:`GitLabForge.read` turns a merge request, the jobs of its head pipeline and the commit
statuses at its head, its approvals and requests for changes, and its open discussions into one
:class:`~jidoka.review.ChangeRequest`; :meth:`GitLabForge.merge` merges it pinned to the head
the loop judged. The HTTP plumbing is the tracker's own
:class:`~activities.tracker.gitlab.GitLabApi` (GitLab's error bodies, 429s and pagination).

What GitLab's answers mean here (docs/review.md#on-gitlab):

* **mergeable** means "no conflict": Jidoka's own policy decides approvals and checks, so a
  merge request GitLab holds back for a rule of the project (approvals, a pipeline, open
  threads, a draft) still reads as mergeable unless git cannot merge it.
  ``detailed_merge_status`` reports only the first check that fails, which can hide a
  conflict behind a rule, so the rules fall back to git's own answer (``has_conflicts``,
  ``merge_status``).
* **approvals and requests for changes** carry no commit on GitLab. One counts at the head
  only when it is known to be of that head: given after GitLab registered the head (the
  approval's ``approved_at`` against the head's diff version), or on a merge request that
  never had another head. An approval of an earlier head (a project that keeps approvals on
  push) does not merge the work Jidoka pushed since.
* **trust**: GitLab has no ``author_association``. Only project members with at least the
  Developer role count (``members/all/:user_id``, looked up once per user per reading): a
  stranger's approval never merges, a stranger's comment never reaches the agent. The token's
  own user counts for nothing: its notes are Jidoka's own, and it never approves its own work.

Everything GitLab sends is untrusted and bounded before it becomes a model: lists are capped,
a failed job's log is streamed and only its tail kept (at most :data:`MAX_TRACES` of them),
comment bodies keep their head, control characters and terminal escapes are removed.
"""

from __future__ import annotations

import asyncio
import logging
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import quote, urlsplit

import httpx

from activities.forge.text import (
    bounded_body,
    bounded_name,
    bounded_path,
    login_of,
    output_tail,
    positive_int,
)
from activities.secrets import resolve_secret
from activities.tracker.base import TrackerError, TrackerErrorCategory
from activities.tracker.gitlab import (
    PAGE_SIZE,
    GitLabApi,
    MergeRequestDraft,
    api_url,
    open_merge_request,
    project_path,
)
from activities.tracker.http import (
    Clock,
    ConditionalCache,
    RateLimitSnapshot,
    RetryPolicy,
    Sleep,
    as_list,
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

logger = logging.getLogger("jidoka.forge.gitlab")

MAX_CHECKS = 100
"""Pipeline jobs and commit statuses together, at one head."""
MAX_REVIEWS = 200
"""Approvals and requests for changes together."""
MAX_COMMENTS = 200
"""The latest ones: older comments were sent to the agent already, or are stale."""
MAX_PAGES = 20
"""A listing read past this many pages is cut (logged): 2,000 discussions on one request."""
MAX_TRACES = 5
"""Failed jobs whose log is read, per reading: the others keep GitLab's failure reason."""
TRACE_KEEP_BYTES = 32 * 1024
"""The end of a log that is kept while it streams: enough for the summary's tail once
terminal escapes are gone."""
TRACE_MAX_BYTES = 16 * 1024 * 1024
"""A log is read no further than this: past it, its end is not reached, and the summary says
so instead of quoting its middle."""
MAX_MEMBER_LOOKUPS = 50
"""Distinct users whose role is looked up per reading; anyone past them does not count."""
DEVELOPER = 30
"""GitLab's access level of the Developer role: the least that counts as a reviewer."""
MERGE_SETTLE_READS = 3
MERGE_SETTLE_S = 1.0
"""A merge GitLab accepted but has not finished is read again this many times, this far
apart, before it counts as refused."""
MERGE_REFUSALS = (405, 406, 409, 422)
"""GitLab's refusals of a merge: 405 not mergeable (draft, closed, a rule of the project),
406 and 422 a conflict (older and newer spellings), 409 the head is not ``sha``."""

NOT_MERGEABLE = frozenset({"conflict", "broken_status", "need_rebase"})
"""``detailed_merge_status`` values git cannot merge as is: fixed on the branch (merge the
base in), which is what a rework round for a conflict does."""
COMPUTING = frozenset({"checking", "unchecked", "preparing", "approvals_syncing"})
"""``detailed_merge_status`` values that are no answer yet."""
_GIT_UNKNOWN = frozenset(
    {"unchecked", "checking", "cannot_be_merged_recheck", "cannot_be_merged_rechecking"}
)
_MERGE_REQUEST_PATH = re.compile(r"^/(?P<project>.+?)/(?:-/)?merge_requests/(?P<iid>\d+)(?:/.*)?$")
_TRACE_SECTION = re.compile(r"section_(?:start|end):\d+:[^\s\x1b]*\r?(?:\x1b\[0?K)?")
"""GitLab's collapsible-section markers in job logs (``section_start:<epoch>:<name>``)."""
_ANSI = re.compile(r"\x1b(?:\[[0-9;?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)?|[@-Z\\-_])")
_OVERWRITTEN = re.compile(r"[^\n]*\r(?!\n)")
"""What a terminal overwrites: a progress line up to its carriage return."""
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


# --------------------------------------------------------------------------------------------
# Normalisation (pure)
# --------------------------------------------------------------------------------------------


def request_state(mr: dict[str, object]) -> RequestState | None:
    """``locked`` is a merge in progress: still open until GitLab says merged."""
    match mr.get("state"):
        case "opened" | "locked":
            return RequestState.OPEN
        case "merged":
            return RequestState.MERGED
        case "closed":
            return RequestState.CLOSED
        case _:
            return None


def mergeability(mr: dict[str, object]) -> bool | None:
    """Whether git can merge the branch as it is (True), cannot (False: a conflict, or a
    rebase a fast-forward project needs), or GitLab has not worked it out yet (None). A rule
    of the project (``not_approved``, ``ci_must_pass``, ``ci_still_running``,
    ``discussions_not_resolved``, ``draft_status``, ``blocked_status``, ``requested_changes``,
    ``not_open`` and the rest) is not a conflict: the answer is then git's own."""
    if mr.get("state") == "locked":
        return None  # being merged
    detailed = mr.get("detailed_merge_status")
    if detailed == "mergeable":
        return True
    if detailed in NOT_MERGEABLE:
        return False
    if detailed in COMPUTING:
        return None
    if mr.get("has_conflicts") is True:
        return False
    git = mr.get("merge_status")
    if git == "cannot_be_merged":
        return False
    if git in _GIT_UNKNOWN:
        return None
    return True


def job_state(status: object, allow_failure: object) -> CheckState:
    """A job's (or commit status's) state. A failure GitLab lets pass (``allow_failure``)
    skips, as the pipeline passes "with warnings"; a manual job the pipeline does not wait for
    skips, one it waits for is pending (a person must run it). A state this adapter does not
    know is pending: no result yet, never a pass."""
    allowed = allow_failure is True
    match status:
        case "success":
            return CheckState.PASSED
        case "failed":
            return CheckState.SKIPPED if allowed else CheckState.FAILED
        case "canceled" | "canceling":
            return CheckState.FAILED
        case "skipped":
            return CheckState.SKIPPED
        case "manual":
            return CheckState.SKIPPED if allowed else CheckState.PENDING
        case _:
            return CheckState.PENDING


@dataclass(frozen=True)
class Job:
    id: int
    check: Check


def decode_job(raw: object) -> Job | None:
    obj = as_object(raw)
    if obj is None:
        return None
    job_id = positive_int(obj.get("id"))
    name = bounded_name(obj.get("name"), "")
    if job_id is None or not name:
        return None
    state = job_state(obj.get("status"), obj.get("allow_failure"))
    reason = bounded_name(obj.get("failure_reason"), "") if state is CheckState.FAILED else ""
    summary = f"failure reason: {reason}" if reason else ""
    return Job(job_id, Check(name=name, state=state, summary=summary))


def decode_status(raw: object) -> Check | None:
    """A commit status (external CI, or a job GitLab lists among them)."""
    obj = as_object(raw)
    if obj is None:
        return None
    name = bounded_name(obj.get("name"), "")
    if not name or not isinstance(obj.get("status"), str):
        return None
    state = job_state(obj.get("status"), obj.get("allow_failure"))
    return Check(name=name, state=state, summary=output_tail(obj.get("description")))


def trace_summary(tail: bytes, *, cut: bool) -> str:
    """A failed job's summary from the end of its log: terminal escapes, GitLab's section
    markers and overwritten progress lines removed, then bounded as any check output."""
    if cut:
        return (
            f"(the job's log is longer than {TRACE_MAX_BYTES // (1024 * 1024)} MiB: its end "
            "was not read; see the job on GitLab)"
        )
    text = tail.decode("utf-8", "replace").replace("\r\n", "\n")
    text = _TRACE_SECTION.sub("", text)
    text = _ANSI.sub("", text)
    text = _OVERWRITTEN.sub("", text)
    return output_tail(text)


@dataclass(frozen=True)
class User:
    id: int
    username: str


def decode_user(raw: object) -> User | None:
    obj = as_object(raw)
    user_id = positive_int(obj.get("id")) if obj is not None else None
    if obj is None or user_id is None:
        return None
    return User(user_id, login_of(obj, key="username", fallback="ghost"))


def _note_position(note: dict[str, object]) -> tuple[str | None, int | None]:
    position = as_object(note.get("position"))
    if position is None:
        return None, None
    path = bounded_path(position.get("new_path")) or bounded_path(position.get("old_path"))
    line = positive_int(position.get("new_line")) or positive_int(position.get("old_line"))
    return path, line


def resolved(discussion: dict[str, object]) -> bool:
    """A thread someone marked resolved: every resolvable note in it is resolved."""
    notes = [n for n in map(as_object, as_list(discussion.get("notes")) or []) if n is not None]
    resolvable = [n for n in notes if n.get("resolvable") is True]
    return bool(resolvable) and all(n.get("resolved") is True for n in resolvable)


@dataclass(frozen=True)
class HeadHistory:
    """When the merge request's current head became its head (its diff versions)."""

    since: datetime | None
    """The oldest diff version at the head: its ``created_at``."""
    only_head: bool
    """Every version GitLab lists is at the head: the merge request never had another."""

    def covers(self, when: datetime | None) -> bool:
        """Whether something done at ``when`` (None: GitLab does not say) was done to the
        current head."""
        if when is not None and self.since is not None:
            return when >= self.since
        return self.only_head


def head_history(versions: list[object], head: str) -> HeadHistory:
    """From ``GET .../versions`` (newest first)."""
    heads: list[tuple[str | None, datetime | None]] = []
    for raw in versions:
        obj = as_object(raw)
        if obj is not None:
            heads.append(
                (non_empty_str(obj.get("head_commit_sha")), parse_timestamp(obj.get("created_at")))
            )
    at_head = [when for sha, when in heads if sha == head]
    since = at_head[-1] if at_head else None
    return HeadHistory(since=since, only_head=bool(heads) and len(at_head) == len(heads))


# --------------------------------------------------------------------------------------------
# The client
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Target:
    iid: int
    url: str
    project: str | None
    """The project path the URL names (None for a bare iid)."""


class GitLabForge:
    """One project's merge requests, one token. ``project`` is a path (``group/sub/app``) or
    a numeric id, as in ``tracker.project``."""

    def __init__(
        self,
        project: str,
        token: str,
        *,
        base_url: str = "https://gitlab.com",
        transport: httpx.AsyncBaseTransport | None = None,
        retry: RetryPolicy | None = None,
        cache: ConditionalCache | None = None,
        sleep: Sleep = asyncio.sleep,
        clock: Clock = utc_now,
    ) -> None:
        project = project.strip().strip("/")
        if not project:
            raise ValueError("project must be a path (group/app) or a numeric id")
        self._project = project
        self._numeric = project.isdigit()
        self._path = project_path(project)
        self._base_url = base_url
        self._web = api_url(base_url).removesuffix("/api/v4")
        self._sleep = sleep
        self._api = GitLabApi(
            base_url, token, transport=transport, retry=retry, cache=cache, sleep=sleep, clock=clock
        )
        self._self: User | None = None
        self._trust: dict[int, bool] = {}

    def __repr__(self) -> str:
        return f"GitLabForge(project={self._project!r}, base_url={self._base_url!r})"

    @property
    def rate_limit(self) -> RateLimitSnapshot | None:
        return self._api.rate_limit

    async def aclose(self) -> None:
        await self._api.aclose()

    # -- reads -------------------------------------------------------------------------------

    async def read(
        self, url_or_iid: str | int, *, shipped_head: str | None = None
    ) -> ChangeRequest:
        """One reading of the merge request. One GitLab no longer shows (404) reads as GONE;
        other failures raise.

        ``shipped_head``: the head Jidoka pushed. GitLab moves a merge request's head to a
        push in the background, seconds later; until it has, the request still shows the head
        before. When the source branch's tip already is ``shipped_head``, that is GitLab
        catching up, not someone else's push: the reading is the shipped head with nothing
        judged yet (no checks, reviews or comments, mergeability unknown), so the loop waits
        for the next one."""
        target = self._target(url_or_iid)
        self._trust = {}  # roles can change between readings: looked up afresh each time
        try:
            mr = await self._get_merge_request(target.iid)
        except TrackerError as error:
            if error.category is TrackerErrorCategory.NOT_FOUND:
                return ChangeRequest(url=target.url, state=RequestState.GONE, head_sha="")
            raise
        web_url = non_empty_str(mr.get("web_url"))
        self._check_project(target, web_url)
        state = request_state(mr)
        head = non_empty_str(mr.get("sha"))
        if state is None or head is None:
            raise self._payload_error(f"!{target.iid}: no usable state or head sha")
        head = head.strip()
        url = web_url or target.url
        if (
            state is RequestState.OPEN
            and shipped_head
            and head != shipped_head
            and await self._branch_tip(mr) == shipped_head
        ):
            logger.info("!%d: GitLab has not moved the head to the push yet", target.iid)
            return ChangeRequest(url=url, state=state, head_sha=shipped_head)
        checks = await self._checks(mr, head)
        reviews = await self._reviews(target.iid, head)
        comments = await self._comments(target.iid)
        return ChangeRequest(
            url=url,
            state=state,
            head_sha=head,
            checks=checks,
            reviews=reviews,
            comments=comments,
            mergeable=mergeability(mr),
        )

    # -- writes ------------------------------------------------------------------------------

    async def open(self, wanted: MergeRequestDraft) -> str:
        """Open the merge request of ``wanted.branch``, or reuse the open one (its description
        brought up to date); its ``web_url``."""
        return await open_merge_request(self._api, self._project, wanted)

    async def merge(self, url_or_iid: str | int, sha: str) -> bool:
        """Merge the merge request if its head is still ``sha``. False when GitLab refuses
        (:data:`MERGE_REFUSALS`: the head moved, a conflict, a rule of the project). A 401 or
        403 raises (the token may not merge: a halt), a 5xx raises retryable. A merge whose
        answer was lost is not resent here (the activity's retry is); a retried call finding
        the request already merged at ``sha`` answers True."""
        iid = self._target(url_or_iid).iid
        reply = await self._api.call(
            "PUT",
            self._mr_path(iid, "merge"),
            json={"sha": sha},
            safe=False,
            answers=MERGE_REFUSALS,
        )
        if reply.status in MERGE_REFUSALS:
            try:
                mr = await self._get_merge_request(iid)
            except TrackerError:
                return False
            return mr.get("state") == "merged" and mr.get("sha") == sha
        answer = as_object(reply.body) or {}
        for attempt in range(MERGE_SETTLE_READS + 1):
            match answer.get("state"):
                case "merged":
                    return True
                case "locked" if attempt == MERGE_SETTLE_READS:
                    return True  # GitLab is merging it: the next reading sees it merged
                case "opened" | "locked":
                    pass
                case _:
                    return False
            if attempt < MERGE_SETTLE_READS:
                await self._sleep(MERGE_SETTLE_S)
                answer = await self._get_merge_request(iid)
        return False

    # -- internals ---------------------------------------------------------------------------

    def _mr_path(self, iid: int, tail: str = "") -> str:
        path = f"{self._path}/merge_requests/{iid}"
        return f"{path}/{tail}" if tail else path

    async def _get_merge_request(self, iid: int) -> dict[str, object]:
        reply = await self._api.call("GET", self._mr_path(iid), safe=True, conditional=True)
        mr = as_object(reply.body)
        if mr is None:
            raise self._payload_error(f"!{iid}: not a JSON object")
        return mr

    def _payload_error(self, message: str) -> TrackerError:
        return self._api.error(TrackerErrorCategory.UNKNOWN_PAYLOAD, message)

    def _refuse(self, text: str, why: str) -> TrackerError:
        return self._api.error(TrackerErrorCategory.UNPROCESSABLE, f"{text[:200]!r} {why}")

    def _target(self, url_or_iid: str | int) -> _Target:
        iid: int | None = None
        if isinstance(url_or_iid, int) and not isinstance(url_or_iid, bool):
            iid = url_or_iid
        elif isinstance(url_or_iid, str):
            text = url_or_iid.strip()
            digits = text.lstrip("!")
            if digits.isascii() and digits.isdigit():
                iid = int(digits)
            elif text.lower().startswith(("http://", "https://")):
                return self._target_of_url(text)
        if iid is None or iid <= 0:
            raise self._refuse(str(url_or_iid), "is not a merge request iid or URL")
        project = self._project if not self._numeric else f"projects/{self._project}"
        return _Target(iid, f"{self._web}/{project}/-/merge_requests/{iid}", None)

    def _target_of_url(self, text: str) -> _Target:
        """``{base_url}/{group/project}/-/merge_requests/{iid}``, on this instance's host and
        (for a project configured by path) of this project."""
        web = urlsplit(self._web)
        given = urlsplit(text)
        if given.netloc.casefold() != web.netloc.casefold():
            raise self._refuse(text, f"is not on {web.netloc}")
        prefix = web.path.rstrip("/")
        path = given.path
        if prefix and not path.startswith(f"{prefix}/"):
            raise self._refuse(text, f"is not under {self._web}")
        match = _MERGE_REQUEST_PATH.match(path[len(prefix) :])
        if match is None or int(match.group("iid")) <= 0:
            raise self._refuse(text, "is not a merge request URL")
        project = match.group("project")
        if not self._numeric and project.casefold() != self._project.casefold():
            raise self._refuse(text, f"is not a merge request of {self._project}")
        return _Target(int(match.group("iid")), text, project)

    def _check_project(self, target: _Target, web_url: str | None) -> None:
        """A project configured by id learns its path from the merge request: a URL naming
        another project is refused once the request is read."""
        if not self._numeric or target.project is None or web_url is None:
            return
        match = _MERGE_REQUEST_PATH.match(urlsplit(web_url).path)
        prefix = urlsplit(self._web).path.rstrip("/")
        actual = match.group("project") if match is not None else None
        if actual is not None and prefix and actual.startswith(prefix.lstrip("/") + "/"):
            actual = actual[len(prefix.lstrip("/")) + 1 :]
        if actual is not None and actual.casefold() != target.project.casefold():
            raise self._refuse(target.url, f"is not a merge request of project {self._project}")

    async def _branch_tip(self, mr: dict[str, object]) -> str | None:
        """The source branch's tip, for a branch of this project (a fork's is not Jidoka's)."""
        branch = non_empty_str(mr.get("source_branch"))
        source, target = mr.get("source_project_id"), mr.get("project_id")
        if branch is None or (isinstance(source, int) and source != target):
            return None
        try:
            reply = await self._api.call(
                "GET", f"{self._path}/repository/branches/{quote(branch, safe='')}", safe=True
            )
        except TrackerError as error:
            if error.category is TrackerErrorCategory.NOT_FOUND:
                return None
            raise
        commit = as_object((as_object(reply.body) or {}).get("commit"))
        tip = non_empty_str(commit.get("id")) if commit is not None else None
        return tip.strip() if tip is not None else None

    async def _listing(self, path: str, *, max_pages: int = MAX_PAGES) -> list[object]:
        return await self._api.pages(path, [], max_pages=max_pages, truncate=True)

    # -- checks ------------------------------------------------------------------------------

    async def _checks(self, mr: dict[str, object], head: str) -> list[Check]:
        """The head pipeline's jobs (when that pipeline ran at the head: a pipeline of an
        earlier head is not this head's), then the commit statuses at the head that are not
        one of those jobs (external CI; GitLab lists its own jobs there too)."""
        jobs: list[Job] = []
        pipeline = as_object(mr.get("head_pipeline"))
        pipeline_id = positive_int(pipeline.get("id")) if pipeline is not None else None
        if pipeline is not None and pipeline_id is not None and pipeline.get("sha") == head:
            raw_jobs = await self._listing(
                f"{self._path}/pipelines/{pipeline_id}/jobs", max_pages=_pages_for(MAX_CHECKS)
            )
            for raw in raw_jobs:
                job = decode_job(raw)
                if job is not None and all(j.check.name != job.check.name for j in jobs):
                    jobs.append(job)
                if len(jobs) >= MAX_CHECKS:
                    break
        checks = await self._with_traces(jobs)
        if len(checks) < MAX_CHECKS:
            names = {c.name for c in checks}
            raw_statuses = await self._listing(
                f"{self._path}/repository/commits/{head}/statuses",
                max_pages=_pages_for(MAX_CHECKS),
            )
            for raw in raw_statuses:
                status = decode_status(raw)
                if status is not None and status.name not in names:
                    names.add(status.name)
                    checks.append(status)
                if len(checks) >= MAX_CHECKS:
                    break
        return checks

    async def _with_traces(self, jobs: list[Job]) -> list[Check]:
        """The jobs' checks, the first :data:`MAX_TRACES` failed ones summarised by the end of
        their log (a log that cannot be read keeps GitLab's failure reason)."""
        checks: list[Check] = []
        traced = 0
        for job in jobs:
            check = job.check
            if check.state is CheckState.FAILED and traced < MAX_TRACES:
                traced += 1
                summary = await self._trace(job)
                if summary:
                    check = check.model_copy(update={"summary": summary})
            checks.append(check)
        return checks

    async def _trace(self, job: Job) -> str:
        try:
            reply = await self._api.text_tail(
                f"{self._path}/jobs/{job.id}/trace",
                keep_bytes=TRACE_KEEP_BYTES,
                max_bytes=TRACE_MAX_BYTES,
            )
        except TrackerError as error:
            if error.category not in (TrackerErrorCategory.NOT_FOUND, TrackerErrorCategory.AUTH):
                raise
            logger.info("job %d: its log cannot be read (%s)", job.id, error.category.value)
            return ""
        return trace_summary(reply.tail, cut=reply.cut)

    # -- reviews -----------------------------------------------------------------------------

    async def _reviews(self, iid: int, head: str) -> list[Review]:
        """Approvals (``approved_by``) and requests for changes (reviewers whose state is
        ``requested_changes``) by trusted users, each at the head when it is known to be of
        the head (:class:`HeadHistory`), else at no head (it does not count)."""
        approvals = await self._optional(self._mr_path(iid, "approvals"))
        approved: list[tuple[User, datetime | None]] = []
        for raw in (as_list(approvals.get("approved_by")) or [])[:MAX_REVIEWS]:
            entry = as_object(raw)
            user = decode_user(entry.get("user")) if entry is not None else None
            if entry is not None and user is not None:
                approved.append((user, parse_timestamp(entry.get("approved_at"))))
        requested: list[tuple[User, datetime | None]] = []
        for raw in (await self._optional_listing(self._mr_path(iid, "reviewers")))[:MAX_REVIEWS]:
            entry = as_object(raw)
            user = decode_user(entry.get("user")) if entry is not None else None
            if entry is not None and user is not None and entry.get("state") == "requested_changes":
                requested.append((user, parse_timestamp(entry.get("created_at"))))
        if not approved and not requested:
            return []
        history = head_history(
            await self._listing(self._mr_path(iid, "versions"), max_pages=1), head
        )
        blocking = {user.id for user, _ in requested}
        reviews: list[Review] = []
        for user, when in approved:
            if user.id in blocking or not await self._trusted(user):
                continue  # a request for changes stands over an approval of the same user
            reviews.append(
                Review(
                    author=user.username,
                    verdict=ReviewVerdict.APPROVED,
                    commit_sha=head if history.covers(when) else "",
                    submitted_at=when or history.since or _EPOCH,
                )
            )
        for user, when in requested:
            if not await self._trusted(user):
                continue
            reviews.append(
                Review(
                    author=user.username,
                    verdict=ReviewVerdict.CHANGES_REQUESTED,
                    # GitLab does not say when changes were requested: the head counts only
                    # when the request never had another.
                    commit_sha=head if history.covers(None) else "",
                    submitted_at=when or history.since or _EPOCH,
                )
            )
        return reviews[:MAX_REVIEWS]

    async def _optional(self, path: str) -> dict[str, object]:
        """An object an older GitLab may not have (404: empty)."""
        try:
            reply = await self._api.call("GET", path, safe=True)
        except TrackerError as error:
            if error.category is TrackerErrorCategory.NOT_FOUND:
                return {}
            raise
        found = as_object(reply.body)
        if found is None:
            raise self._payload_error(f"GET {path}: not a JSON object")
        return found

    async def _optional_listing(self, path: str) -> list[object]:
        """A listing an older GitLab may not have (404: empty)."""
        try:
            return await self._listing(path, max_pages=_pages_for(MAX_REVIEWS))
        except TrackerError as error:
            if error.category is TrackerErrorCategory.NOT_FOUND:
                return []
            raise

    async def _self_user(self) -> User:
        if self._self is None:
            reply = await self._api.call("GET", "user", safe=True)
            user = decode_user(reply.body)
            if user is None:
                raise self._payload_error("GET /user: no usable id")
            self._self = user
        return self._self

    async def _trusted(self, user: User) -> bool:
        """A member of the project with at least the Developer role, and not the token's own
        user. Looked up once per user per reading, at most :data:`MAX_MEMBER_LOOKUPS` users."""
        if user.id == (await self._self_user()).id:
            return False
        known = self._trust.get(user.id)
        if known is not None:
            return known
        if len(self._trust) >= MAX_MEMBER_LOOKUPS:
            logger.info(
                "%s: past %d reviewers looked up: not counted", user.username, MAX_MEMBER_LOOKUPS
            )
            return False
        try:
            reply = await self._api.call("GET", f"{self._path}/members/all/{user.id}", safe=True)
        except TrackerError as error:
            if error.category is not TrackerErrorCategory.NOT_FOUND:
                raise
            trusted = False  # not a member
        else:
            member = as_object(reply.body) or {}
            level = member.get("access_level")
            trusted = (
                isinstance(level, int)
                and not isinstance(level, bool)
                and level >= DEVELOPER
                and member.get("id") == user.id
            )
        self._trust[user.id] = trusted
        return trusted

    # -- comments ----------------------------------------------------------------------------

    async def _comments(self, iid: int) -> list[ReviewComment]:
        """Notes of open threads by trusted users other than Jidoka's own, diff notes with
        their file and line; the latest :data:`MAX_COMMENTS`, oldest first."""
        discussions = await self._listing(self._mr_path(iid, "discussions"))
        comments: list[ReviewComment] = []
        for raw in discussions:
            discussion = as_object(raw)
            if discussion is None or resolved(discussion):
                continue
            for note in map(as_object, as_list(discussion.get("notes")) or []):
                comment = await self._comment(note)
                if comment is not None:
                    comments.append(comment)
        return comments[-MAX_COMMENTS:]

    async def _comment(self, note: dict[str, object] | None) -> ReviewComment | None:
        if note is None or note.get("system") is not False:
            return None  # GitLab's own notes (pushes, approvals, label changes)
        note_id = positive_int(note.get("id"))
        author = decode_user(note.get("author"))
        if note_id is None or author is None or not await self._trusted(author):
            return None
        path, line = _note_position(note)
        return ReviewComment(
            id=str(note_id),
            author=author.username,
            body=bounded_body(note.get("body")),
            path=path,
            line=line if path is not None else None,
        )


def _pages_for(items: int) -> int:
    return max(1, -(-items // PAGE_SIZE))


_REVIEW_CACHES: dict[str, ConditionalCache] = {}
"""One conditional-request cache per review project per worker process, as the tracker's."""


def review_project_forge(config: WorkflowConfig) -> GitLabForge | None:
    """The GitLab project a Linear or Jira line's work is reviewed in (``review.gitlab``), or
    None for any other line. Its token is resolved here, on the worker, never earlier."""
    review = config.review
    if review is None or review.gitlab is None:
        return None
    gitlab = review.gitlab
    cache = _REVIEW_CACHES.setdefault(f"{gitlab.base_url}/{gitlab.project}", ConditionalCache())
    return GitLabForge(
        gitlab.project, resolve_secret(gitlab.api_key), base_url=gitlab.base_url, cache=cache
    )
