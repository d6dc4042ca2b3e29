"""An in-memory GitLab (REST v4): issues, notes, issue links and merge requests of one project.

Objects are built in GitLab's documented shapes (docs.gitlab.com/api/issues, /notes,
/issue_links, /merge_requests) and served the way GitLab serves them:

* the project is addressed by its numeric id or its URL-encoded path (``acme%2Fwidgets``);
  an unencoded path is another route, hence a 404, as on GitLab;
* offset pagination (``per_page`` up to 100, ``page``) with ``X-Page``, ``X-Per-Page``,
  ``X-Next-Page`` (empty on the last page), ``X-Prev-Page``, ``X-Total``, ``X-Total-Pages`` and
  a ``Link`` header (``pagination`` picks which of the two a test gets);
* ``RateLimit-*`` headers on every answer, weak ``ETag``s and 304s on GETs;
* issue updates with ``add_labels``/``remove_labels``/``labels`` and ``state_event``, scoped
  labels exclusive per scope when ``scoped_labels`` (GitLab Premium and Ultimate);
* merge request creation answering 409 "Another open merge request already exists for this
  source branch", as GitLab does;
* what the review loop reads of a merge request (docs.gitlab.com/api/merge_requests, /jobs,
  /pipelines, /commits, /merge_request_approvals, /discussions, /members, /users): its
  ``head_pipeline`` and that pipeline's jobs (retried ones left out), a job's log as
  ``text/plain``, commit statuses at a sha, ``approvals`` (``approved_by`` with
  ``approved_at``), ``reviewers`` (``state``), diff ``versions`` (a new one each time the head
  moves, newest first), ``discussions``, ``members/all/:user_id``, ``GET /user`` (the
  token's user) and ``repository/branches/:branch``;
* a merge request's head (``sha``) is its branch's tip when ``head_of`` (or ``branches``)
  knows it, as on GitLab once it has caught up with a push;
* the merge pinned to a head: 405 "Method Not Allowed" unless ``detailed_merge_status`` is
  ``mergeable`` (GitLab checks mergeability first), 409 "SHA does not match HEAD of source
  branch", 401 when the token's user may not merge (``can_merge``);
* errors in GitLab's shapes (:func:`error_response`).

Two ways to reach it: ``fake.transport`` (an ``httpx.MockTransport``) for unit tests, and
:func:`serve_gitlab` (real HTTP on ``127.0.0.1``) for tests whose activities make requests.

With ``token`` set, every request must carry ``Authorization: Bearer <token>`` or
``PRIVATE-TOKEN: <token>`` (else GitLab's 401).
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import UTC, datetime, timedelta
from typing import Any, Literal
from urllib.parse import quote, unquote

import httpx

from tests.support.fakes.http_serve import serve_over_http

PROJECT = "acme/platform/widgets"
PROJECT_ID = 42
BASE_URL = "https://gitlab.example.com"
NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
USER = {
    "id": 7,
    "username": "jidoka-bot",
    "name": "Jidoka",
    "state": "active",
    "avatar_url": None,
    "web_url": f"{BASE_URL}/jidoka-bot",
}


def _stamp(when: datetime) -> str:
    return when.isoformat().replace("+00:00", "Z")


def make_issue(
    iid: int,
    *,
    title: Any = "An issue",
    labels: list[str] | None = None,
    state: str = "opened",
    description: str | None = "",
    project: str = PROJECT,
    project_id: int = PROJECT_ID,
    created_at: datetime = NOW - timedelta(days=2),
    updated_at: datetime = NOW - timedelta(hours=1),
    moved_to_id: int | None = None,
) -> dict[str, Any]:
    """An issue as ``GET /projects/:id/issues/:issue_iid`` returns it."""
    web_url = f"{BASE_URL}/{project}/-/issues/{iid}"
    obj: dict[str, Any] = {
        "id": project_id * 1000 + iid,
        "iid": iid,
        "project_id": project_id,
        "title": title,
        "description": description,
        "state": state,
        "created_at": _stamp(created_at),
        "updated_at": _stamp(updated_at),
        "closed_at": _stamp(updated_at) if state == "closed" else None,
        "closed_by": USER if state == "closed" else None,
        "labels": list(labels or []),
        "milestone": None,
        "assignees": [],
        "author": USER,
        "type": "ISSUE",
        "issue_type": "issue",
        "assignee": None,
        "user_notes_count": 0,
        "merge_requests_count": 0,
        "upvotes": 0,
        "downvotes": 0,
        "due_date": None,
        "confidential": False,
        "discussion_locked": None,
        "web_url": web_url,
        "time_stats": {
            "time_estimate": 0,
            "total_time_spent": 0,
            "human_time_estimate": None,
            "human_total_time_spent": None,
        },
        "task_completion_status": {"count": 0, "completed_count": 0},
        "has_tasks": False,
        "_links": {
            "self": f"{BASE_URL}/api/v4/projects/{project_id}/issues/{iid}",
            "notes": f"{BASE_URL}/api/v4/projects/{project_id}/issues/{iid}/notes",
            "award_emoji": f"{BASE_URL}/api/v4/projects/{project_id}/issues/{iid}/award_emoji",
            "project": f"{BASE_URL}/api/v4/projects/{project_id}",
        },
        "references": {"short": f"#{iid}", "relative": f"#{iid}", "full": f"{project}#{iid}"},
        "subscribed": False,
        "moved_to_id": moved_to_id,
        "service_desk_reply_to": None,
    }
    return obj


def make_link(issue: dict[str, Any], link_type: str = "is_blocked_by") -> dict[str, Any]:
    """``issue`` as ``GET /projects/:id/issues/:issue_iid/links`` lists it: the linked issue
    with the link's fields, ``link_type`` seen from the issue asked about."""
    fields = [
        "id",
        "iid",
        "project_id",
        "title",
        "state",
        "created_at",
        "updated_at",
        "labels",
        "assignees",
        "assignee",
        "author",
        "description",
        "milestone",
        "user_notes_count",
        "due_date",
        "web_url",
        "confidential",
    ]
    link = {key: issue.get(key) for key in fields}
    link.update(
        issue_link_id=issue["id"] + 500_000,
        link_type=link_type,
        link_created_at=_stamp(NOW),
        link_updated_at=_stamp(NOW),
    )
    return link


def make_note(note_id: int, body: str, *, system: bool = False) -> dict[str, Any]:
    return {
        "id": note_id,
        "type": None,
        "body": body,
        "attachment": None,
        "author": USER,
        "created_at": _stamp(NOW + timedelta(seconds=note_id)),
        "updated_at": _stamp(NOW + timedelta(seconds=note_id)),
        "system": system,
        "noteable_id": 1,
        "noteable_type": "Issue",
        "resolvable": False,
        "confidential": False,
        "internal": False,
        "noteable_iid": 1,
    }


def make_merge_request(
    iid: int,
    *,
    source_branch: str,
    target_branch: str = "main",
    title: str = "A change",
    description: str = "",
    state: str = "opened",
    project: str = PROJECT,
    project_id: int = PROJECT_ID,
    source_project_id: int | None = None,
    base_url: str = BASE_URL,
) -> dict[str, Any]:
    """A merge request as ``GET /projects/:id/merge_requests`` lists it."""
    draft = bool(re.match(r"(?i)^\s*(\[draft\]|\(draft\)|draft:|draft\s-\s|draft\s|draft$)", title))
    return {
        "id": project_id * 10000 + iid,
        "iid": iid,
        "project_id": project_id,
        "title": title,
        "description": description,
        "state": state,
        "created_at": _stamp(NOW),
        "updated_at": _stamp(NOW),
        "merged_by": None,
        "merged_at": None,
        "closed_by": None,
        "closed_at": None,
        "target_branch": target_branch,
        "source_branch": source_branch,
        "user_notes_count": 0,
        "upvotes": 0,
        "downvotes": 0,
        "author": USER,
        "assignees": [],
        "reviewers": [],
        "source_project_id": source_project_id if source_project_id is not None else project_id,
        "target_project_id": project_id,
        "labels": [],
        "draft": draft,
        "work_in_progress": draft,
        "milestone": None,
        "merge_when_pipeline_succeeds": False,
        "merge_status": "checking",
        "detailed_merge_status": "checking",
        "sha": hashlib.sha1(f"{source_branch}".encode()).hexdigest(),
        "merge_commit_sha": None,
        "squash_commit_sha": None,
        "draft_title_prefix": None,
        "should_remove_source_branch": None,
        "force_remove_source_branch": False,
        "web_url": f"{base_url}/{project}/-/merge_requests/{iid}",
        "references": {"short": f"!{iid}", "relative": f"!{iid}", "full": f"{project}!{iid}"},
        "has_conflicts": False,
        "blocking_discussions_resolved": True,
        "head_pipeline": None,
    }


# --------------------------------------------------------------------------------------------
# What the review loop reads of a merge request
# --------------------------------------------------------------------------------------------


def make_user(user_id: int, username: str) -> dict[str, Any]:
    """A user as GitLab embeds one (``UserBasic``: authors, approvers, reviewers)."""
    return {
        "id": user_id,
        "username": username,
        "name": username.title(),
        "state": "active",
        "locked": False,
        "avatar_url": None,
        "web_url": f"{BASE_URL}/{username}",
    }


def make_member(user: dict[str, Any], access_level: int = 30) -> dict[str, Any]:
    """``GET /projects/:id/members/all/:user_id``: the user with their role in the project
    (10 Guest, 15 Planner, 20 Reporter, 30 Developer, 40 Maintainer, 50 Owner)."""
    return {
        **user,
        "access_level": access_level,
        "created_at": _stamp(NOW - timedelta(days=30)),
        "expires_at": None,
        "membership_state": "active",
    }


def make_pipeline(
    pipeline_id: int,
    sha: str,
    *,
    status: str = "running",
    ref: str = "main",
    project_id: int = PROJECT_ID,
    project: str = PROJECT,
) -> dict[str, Any]:
    """A pipeline as a merge request's ``head_pipeline`` holds it."""
    return {
        "id": pipeline_id,
        "iid": pipeline_id,
        "project_id": project_id,
        "sha": sha,
        "ref": ref,
        "status": status,
        "source": "merge_request_event",
        "created_at": _stamp(NOW),
        "updated_at": _stamp(NOW),
        "web_url": f"{BASE_URL}/{project}/-/pipelines/{pipeline_id}",
    }


def make_job(
    job_id: int,
    name: str,
    status: str = "success",
    *,
    pipeline: dict[str, Any] | None = None,
    stage: str = "test",
    allow_failure: bool = False,
    failure_reason: str | None = None,
    retried: bool = False,
    project: str = PROJECT,
) -> dict[str, Any]:
    """A job as ``GET /projects/:id/pipelines/:pipeline_id/jobs`` lists it (``retried`` is
    the fake's own mark: GitLab lists a retried job only with ``include_retried``)."""
    finished = status in ("success", "failed", "canceled", "skipped")
    job: dict[str, Any] = {
        "id": job_id,
        "name": name,
        "stage": stage,
        "status": status,
        "ref": (pipeline or {}).get("ref", "main"),
        "tag": False,
        "coverage": None,
        "allow_failure": allow_failure,
        "created_at": _stamp(NOW),
        "started_at": _stamp(NOW) if status not in ("created", "pending", "manual") else None,
        "finished_at": _stamp(NOW) if finished else None,
        "erased_at": None,
        "duration": 1.5 if finished else None,
        "queued_duration": 0.1,
        "user": USER,
        "commit": {"id": (pipeline or {}).get("sha"), "short_id": None, "title": "A commit"},
        "pipeline": {
            key: (pipeline or {}).get(key) for key in ("id", "project_id", "ref", "sha", "status")
        },
        "web_url": f"{BASE_URL}/{project}/-/jobs/{job_id}",
        "artifacts": [],
        "runner": None,
        "tag_list": [],
        "_retried": retried,
    }
    if status == "failed":
        job["failure_reason"] = failure_reason or "script_failure"
    return job


def make_commit_status(
    status_id: int,
    name: str,
    status: str,
    sha: str,
    *,
    description: Any = None,
    allow_failure: bool = False,
) -> dict[str, Any]:
    """``GET /projects/:id/repository/commits/:sha/statuses``: external CI's statuses (and
    GitLab's own jobs, which it lists there too)."""
    return {
        "id": status_id,
        "sha": sha,
        "ref": "main",
        "status": status,
        "name": name,
        "target_url": f"https://ci.example.com/builds/{status_id}",
        "description": description,
        "created_at": _stamp(NOW),
        "started_at": _stamp(NOW),
        "finished_at": _stamp(NOW) if status in ("success", "failed", "canceled") else None,
        "allow_failure": allow_failure,
        "coverage": None,
        "pipeline_id": None,
        "author": USER,
    }


def make_position(
    path: str, new_line: int | None, *, old_line: int | None = None
) -> dict[str, Any]:
    """A diff note's ``position`` (a text line of the diff)."""
    return {
        "base_sha": "b" * 40,
        "start_sha": "b" * 40,
        "head_sha": "c" * 40,
        "old_path": path,
        "new_path": path,
        "position_type": "text",
        "old_line": old_line,
        "new_line": new_line,
        "line_range": None,
    }


def make_mr_note(
    note_id: int,
    body: Any,
    author: dict[str, Any],
    *,
    system: bool = False,
    resolvable: bool = False,
    resolved: bool = False,
    position: dict[str, Any] | None = None,
    noteable_iid: int = 1,
) -> dict[str, Any]:
    """A note of a merge request's discussion; a diff note carries its ``position``."""
    note: dict[str, Any] = {
        "id": note_id,
        "type": "DiffNote" if position is not None else ("DiscussionNote" if resolvable else None),
        "body": body,
        "attachment": None,
        "author": author,
        "created_at": _stamp(NOW + timedelta(seconds=note_id)),
        "updated_at": _stamp(NOW + timedelta(seconds=note_id)),
        "system": system,
        "noteable_id": noteable_iid,
        "noteable_type": "MergeRequest",
        "project_id": PROJECT_ID,
        "resolvable": resolvable,
        "confidential": False,
        "internal": False,
        "noteable_iid": noteable_iid,
        "commands_changes": {},
    }
    if resolvable:
        note.update(resolved=resolved, resolved_by=USER if resolved else None)
        note["resolved_at"] = _stamp(NOW) if resolved else None
    if position is not None:
        note["position"] = position
    return note


def make_discussion(notes: list[dict[str, Any]], *, individual: bool = False) -> dict[str, Any]:
    """``GET /projects/:id/merge_requests/:iid/discussions``: a thread (``individual_note``: a
    lone comment, not a thread)."""
    first = notes[0]["id"] if notes else 0
    return {
        "id": hashlib.sha1(f"discussion:{first}".encode()).hexdigest(),
        "individual_note": individual,
        "notes": notes,
    }


ERROR_BODIES: dict[int, Any] = {
    400: {"error": "title is missing"},
    401: {"message": "401 Unauthorized"},
    403: {"message": "403 Forbidden"},
    404: {"message": "404 Not found"},
    409: {"message": ["Another open merge request already exists for this source branch: !1"]},
    422: {"message": {"title": ["is too long (maximum is 255 characters)"]}},
    500: {"message": "500 Internal Server Error"},
    502: None,  # the load balancer's HTML page
    503: None,
}


def error_response(status: int, body: Any = "default", **headers: str) -> httpx.Response:
    """GitLab's answer for ``status``: the documented JSON bodies; 429 is plain text
    ("Retry later", from the rate limiter in front of the API); 502/503 an HTML page."""
    if status == 429:
        return httpx.Response(429, text="Retry later\n", headers=headers)
    chosen = ERROR_BODIES.get(status, {"message": f"{status} Error"}) if body == "default" else body
    if chosen is None:
        html = f"<html><body><h1>{status}</h1>GitLab is not responding</body></html>"
        return httpx.Response(status, text=html, headers={"Content-Type": "text/html", **headers})
    return httpx.Response(status, json=chosen, headers=headers)


class FakeGitLab:
    """Just enough of GitLab's REST API for the adapter, with GitLab's documented behaviour."""

    def __init__(
        self,
        project: str = PROJECT,
        *,
        project_id: int = PROJECT_ID,
        token: str | None = None,
        now: datetime = NOW,
    ) -> None:
        self.project = project
        self.project_id = project_id
        self.token = token
        self.now = now
        self.issues: dict[int, dict[str, Any]] = {}
        self.notes: dict[int, list[dict[str, Any]]] = {}
        self.links: dict[int, list[dict[str, Any]]] = {}
        self.merge_requests: list[dict[str, Any]] = []
        self.requests: list[httpx.Request] = []
        self.unauthorized = 0
        self.page_size = 100
        """The server's own cap on ``per_page`` (GitLab's is 100): lower it to force pages."""
        self.pagination: Literal["both", "x-next-page", "link"] = "both"
        self.scoped_labels = True
        """Premium/Ultimate: adding a scoped label removes the other labels of its scope."""
        self.remaining = 1999
        self.reset_epoch = int((now + timedelta(minutes=1)).timestamp())
        self.not_modified = 0
        self.override: Callable[[httpx.Request], httpx.Response | None] | None = None
        self.lock = threading.Lock()
        # -- what the review loop reads --
        self.base_url = BASE_URL
        """Where the instance's pages are (merge requests' ``web_url``): set it to the served
        URL for a client that checks a merge request's URL against its ``base_url``."""
        self.user: dict[str, Any] = USER
        """The token's own user (``GET /user``)."""
        self.members: dict[int, dict[str, Any]] = {}
        self.pipelines: dict[int, dict[str, Any]] = {}
        self.jobs: dict[int, list[dict[str, Any]]] = {}
        """Pipeline id -> its jobs."""
        self.traces: dict[int, str | bytes] = {}
        """Job id -> its log."""
        self.statuses: dict[str, list[dict[str, Any]]] = {}
        """Sha -> commit statuses."""
        self.approvals: dict[int, list[dict[str, Any]]] = {}
        """Merge request iid -> ``approved_by`` entries."""
        self.reviewers: dict[int, list[dict[str, Any]]] = {}
        self.discussions: dict[int, list[dict[str, Any]]] = {}
        self.versions: dict[int, list[dict[str, Any]]] = {}
        """Merge request iid -> its diff versions, newest first."""
        self.branches: dict[str, str] = {}
        """Branch -> tip, when ``head_of`` is not set."""
        self.head_of: Callable[[str], str | None] | None = None
        """Where pushed branches live: a merge request's head is its branch's tip (None: the
        head is what the test set, or ``branches``)."""
        self.clock: Callable[[], datetime] = lambda: self.now
        """When a new head's version and an approval are stamped."""
        self.can_merge = True
        """False: the token's user may not merge (GitLab's 401)."""

    @property
    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    # -- merge requests as the review loop sees them ------------------------------------------

    def add_merge_request(self, iid: int, *, sha: str, **fields: Any) -> dict[str, Any]:
        """A merge request (:func:`make_merge_request`) at head ``sha``, replacing any with that
        iid, its first diff version recorded."""
        fields.setdefault("source_branch", f"feature-{iid}")
        fields.setdefault("base_url", self.base_url)
        mr = make_merge_request(iid, project=self.project, project_id=self.project_id, **fields)
        mr["sha"] = sha
        self.merge_requests = [m for m in self.merge_requests if m["iid"] != iid]
        self.merge_requests.append(mr)
        self.versions[iid] = []
        self._new_version(mr)
        return mr

    def merge_request(self, iid: int) -> dict[str, Any] | None:
        """The merge request, its head moved to its branch's tip (GitLab having caught up)."""
        mr = next((m for m in self.merge_requests if m["iid"] == iid), None)
        if mr is not None:
            self._follow_branch(mr)
        return mr

    def tip(self, branch: str) -> str | None:
        return self.head_of(branch) if self.head_of is not None else self.branches.get(branch)

    def add_member(self, user_id: int, username: str, access_level: int = 30) -> dict[str, Any]:
        """A user with a role in the project; returns the user as GitLab embeds one."""
        user = make_user(user_id, username)
        self.members[user_id] = make_member(user, access_level)
        return user

    def set_pipeline(self, iid: int, pipeline: dict[str, Any], jobs: list[dict[str, Any]]) -> None:
        """``pipeline`` becomes the merge request's head pipeline, with ``jobs``."""
        self.pipelines[pipeline["id"]] = pipeline
        self.jobs[pipeline["id"]] = jobs
        mr = next(m for m in self.merge_requests if m["iid"] == iid)
        mr["head_pipeline"] = pipeline

    def approve(self, iid: int, user: dict[str, Any], at: datetime | None = None) -> None:
        self.approvals.setdefault(iid, []).append(
            {"user": user, "approved_at": _stamp(at or self.clock())}
        )

    def request_changes(self, iid: int, user: dict[str, Any]) -> None:
        self.reviewers.setdefault(iid, []).append(
            {"user": user, "state": "requested_changes", "created_at": _stamp(self.clock())}
        )

    def _follow_branch(self, mr: dict[str, Any]) -> None:
        if mr["state"] != "opened":
            return
        tip = self.tip(mr["source_branch"])
        if tip is not None and tip != mr["sha"]:
            mr["sha"] = tip
            self._new_version(mr)

    def _new_version(self, mr: dict[str, Any]) -> None:
        versions = self.versions.setdefault(mr["iid"], [])
        versions.insert(
            0,
            {
                "id": mr["id"] * 100 + len(versions) + 1,
                "head_commit_sha": mr["sha"],
                "base_commit_sha": "b" * 40,
                "start_commit_sha": "b" * 40,
                "created_at": _stamp(self.clock()),
                "merge_request_id": mr["id"],
                "state": "collected",
                "real_size": "1",
                "patch_id_sha": None,
            },
        )

    def writes(self) -> list[str]:
        return [f"{r.method} {_raw_path(r)}" for r in self.requests if r.method != "GET"]

    def label_names(self, iid: int) -> list[str]:
        return list(self.issues[iid]["labels"])

    def link(self, iid: int, other: dict[str, Any], link_type: str = "is_blocked_by") -> None:
        self.links.setdefault(iid, []).append(make_link(other, link_type))

    # -- plumbing ----------------------------------------------------------------------------

    def _headers(self) -> dict[str, str]:
        return {
            "RateLimit-Limit": "2000",
            "RateLimit-Observed": str(2000 - self.remaining),
            "RateLimit-Remaining": str(self.remaining),
            "RateLimit-Reset": str(self.reset_epoch),
            "RateLimit-ResetTime": datetime.fromtimestamp(self.reset_epoch, UTC).strftime(
                "%a, %d %b %Y %H:%M:%S GMT"
            ),
            "RateLimit-Name": "throttle_authenticated_api",
        }

    def _json(
        self,
        request: httpx.Request,
        body: Any,
        status: int = 200,
        extra: dict[str, str] | None = None,
    ) -> httpx.Response:
        content = json.dumps(body).encode()
        self.remaining -= 1
        headers = self._headers()
        headers.update(extra or {})
        if request.method == "GET" and status == 200:
            etag = f'W/"{hashlib.sha256(content).hexdigest()[:32]}"'
            headers["ETag"] = etag
            if request.headers.get("if-none-match") == etag:
                # Rack::ConditionalGet: the body goes, the headers stay. Unlike GitHub, the
                # request has been counted by the rate limiter all the same.
                self.not_modified += 1
                return httpx.Response(304, headers=headers)
        headers["Content-Type"] = "application/json"
        return httpx.Response(status, content=content, headers=headers)

    def _page(self, request: httpx.Request, items: list[Any]) -> httpx.Response:
        params = request.url.params
        per_page = min(int(params.get("per_page", "20")), 100, self.page_size)
        page = max(1, int(params.get("page", "1")))
        start = (page - 1) * per_page
        chunk = items[start : start + per_page]
        total_pages = max(1, (len(items) + per_page - 1) // per_page)
        has_next = start + per_page < len(items)
        headers: dict[str, str] = {}
        if self.pagination in ("both", "x-next-page"):
            headers.update(
                {
                    "X-Page": str(page),
                    "X-Per-Page": str(per_page),
                    "X-Next-Page": str(page + 1) if has_next else "",
                    "X-Prev-Page": str(page - 1) if page > 1 else "",
                    "X-Total": str(len(items)),
                    "X-Total-Pages": str(total_pages),
                }
            )
        if self.pagination in ("both", "link"):
            links: list[str] = []
            if page > 1:
                links.append(
                    f'<{request.url.copy_merge_params({"page": str(page - 1)})}>; rel="prev"'
                )
            if has_next:
                links.append(
                    f'<{request.url.copy_merge_params({"page": str(page + 1)})}>; rel="next"'
                )
            links.append(f'<{request.url.copy_merge_params({"page": "1"})}>; rel="first"')
            links.append(
                f'<{request.url.copy_merge_params({"page": str(total_pages)})}>; rel="last"'
            )
            headers["Link"] = ", ".join(links)
        return self._json(request, chunk, extra=headers)

    def _error(self, request: httpx.Request, status: int, body: Any = "default") -> httpx.Response:
        chosen = ERROR_BODIES.get(status) if body == "default" else body
        return self._json(request, chosen, status=status)

    # -- routes ------------------------------------------------------------------------------

    def handle(self, request: httpx.Request) -> httpx.Response:
        with self.lock:
            self.requests.append(request)
            if self.token is not None and self.token not in (
                request.headers.get("private-token"),
                request.headers.get("authorization", "").removeprefix("Bearer "),
            ):
                self.unauthorized += 1
                return self._error(request, 401)
            if self.override is not None:
                answer = self.override(request)
                if answer is not None:
                    return answer
            return self._route(request)

    def _route(self, request: httpx.Request) -> httpx.Response:
        raw = _raw_path(request)
        if raw == "/api/v4/user" and request.method == "GET":
            return self._json(request, self.user)
        match = re.fullmatch(r"/api/v4/projects/([^/]+)(?:/(.*))?", raw)
        if match is None:
            return self._error(request, 404, {"message": "404 Not Found"})
        # The project segment is matched as sent: GitLab needs a path URL-encoded.
        if match.group(1) not in (str(self.project_id), quote(self.project, safe="")):
            return self._error(request, 404, {"message": "404 Project Not Found"})
        tail = unquote(match.group(2) or "")
        method = request.method
        if tail == "issues" and method == "GET":
            return self._page(request, self._filtered(request))
        if m := re.fullmatch(r"issues/(\d+)", tail):
            issue = self.issues.get(int(m.group(1)))
            if issue is None:
                return self._error(request, 404)
            if method == "PUT":
                self._update_issue(issue, json.loads(request.content or b"{}"))
            return self._json(request, issue)
        if m := re.fullmatch(r"issues/(\d+)/notes", tail):
            iid = int(m.group(1))
            if iid not in self.issues:
                return self._error(request, 404)
            notes = self.notes.setdefault(iid, [])
            if method == "GET":
                ordered = sorted(notes, key=lambda n: (n["created_at"], n["id"]))
                if request.url.params.get("sort", "desc") == "desc":  # documented default
                    ordered.reverse()
                return self._page(request, ordered)
            body = json.loads(request.content or b"{}").get("body")
            if not isinstance(body, str) or not body:
                return self._error(request, 400, {"error": "body is missing"})
            note = make_note(len(notes) + 1, body)
            notes.append(note)
            return self._json(request, note, status=201)
        if m := re.fullmatch(r"issues/(\d+)/links", tail):
            iid = int(m.group(1))
            if iid not in self.issues:
                return self._error(request, 404)
            return self._json(request, self.links.get(iid, []))
        if tail == "merge_requests" and method == "GET":
            params = request.url.params
            for mr in self.merge_requests:
                self._follow_branch(mr)
            found = [
                mr
                for mr in self.merge_requests
                if params.get("state", "all") in ("all", mr["state"])
                and params.get("source_branch", mr["source_branch"]) == mr["source_branch"]
            ]
            return self._page(request, sorted(found, key=lambda mr: -mr["iid"]))
        if tail == "merge_requests" and method == "POST":
            return self._open_merge_request(request)
        if (m := re.fullmatch(r"merge_requests/(\d+)", tail)) and method in ("GET", "PUT"):
            mr = self.merge_request(int(m.group(1)))
            if mr is None:
                return self._error(request, 404)
            if method == "PUT":
                changes = json.loads(request.content or b"{}")
                mr.update({k: v for k, v in changes.items() if k in ("title", "description")})
            return self._json(request, mr)
        if m := re.fullmatch(r"merge_requests/(\d+)/(\w+)", tail):
            return self._merge_request_part(request, int(m.group(1)), m.group(2))
        return self._review_route(request, tail)

    def _merge_request_part(self, request: httpx.Request, iid: int, part: str) -> httpx.Response:
        mr = self.merge_request(iid)
        if mr is None:
            return self._error(request, 404)
        match request.method, part:
            case "PUT", "merge":
                return self._merge(request, mr)
            case "GET", "approvals":
                approved = self.approvals.get(iid, [])
                return self._json(
                    request,
                    {
                        key: mr[key]
                        for key in ("id", "iid", "project_id", "title", "description", "state")
                    }
                    | {
                        "created_at": mr["created_at"],
                        "updated_at": mr["updated_at"],
                        "merge_status": mr["merge_status"],
                        "approved": bool(approved),
                        "approvals_required": 0,
                        "approvals_left": 0,
                        "require_password_to_approve": False,
                        "approved_by": approved,
                        "suggested_approvers": [],
                        "approvers": [],
                        "approver_groups": [],
                        "user_has_approved": False,
                        "user_can_approve": True,
                        "approval_rules_left": [],
                        "has_approval_rules": False,
                        "merge_request_approvers_available": False,
                        "multiple_approval_rules_available": False,
                        "invalid_approvers_rules": [],
                    },
                )
            case "GET", "reviewers":
                return self._json(request, self.reviewers.get(iid, []))  # not paginated
            case "GET", "versions":
                return self._page(request, self.versions.get(iid, []))
            case "GET", "discussions":
                return self._page(request, self.discussions.get(iid, []))
            case _:
                return self._error(request, 404, {"message": "404 Not Found"})

    def _review_route(self, request: httpx.Request, tail: str) -> httpx.Response:
        method = request.method
        if (m := re.fullmatch(r"pipelines/(\d+)/jobs", tail)) and method == "GET":
            pipeline_id = int(m.group(1))
            if pipeline_id not in self.pipelines:
                return self._error(request, 404)
            retried = request.url.params.get("include_retried") == "true"
            listed: list[Any] = []
            for job in self.jobs.get(pipeline_id, []):
                if not isinstance(job, dict):  # a test's junk entry, served as is
                    listed.append(job)
                elif retried or not job.get("_retried"):
                    listed.append({k: v for k, v in job.items() if k != "_retried"})
            # Newest first, as GitLab lists them.
            return self._page(request, sorted(listed, key=_newest_first))
        if (m := re.fullmatch(r"jobs/(\d+)/trace", tail)) and method == "GET":
            job_id = int(m.group(1))
            if not any(j["id"] == job_id for jobs in self.jobs.values() for j in jobs):
                return self._error(request, 404, {"message": "404 Job Not Found"})
            trace = self.traces.get(job_id, "")
            content = trace.encode() if isinstance(trace, str) else trace
            self.remaining -= 1
            headers = self._headers()
            headers["Content-Type"] = "text/plain; charset=utf-8"
            headers["Content-Disposition"] = "attachment; filename=job.log"
            return httpx.Response(200, content=content, headers=headers)
        if (m := re.fullmatch(r"repository/commits/([0-9a-fA-F]+)/statuses", tail)) and (
            method == "GET"
        ):
            return self._page(request, self.statuses.get(m.group(1), []))
        if (m := re.fullmatch(r"members/all/(\d+)", tail)) and method == "GET":
            member = self.members.get(int(m.group(1)))
            if member is None:
                return self._error(request, 404, {"message": "404 Not found"})
            return self._json(request, member)
        if (m := re.fullmatch(r"repository/branches/(.+)", tail)) and method == "GET":
            tip = self.tip(m.group(1))
            if tip is None:
                return self._error(request, 404, {"message": "404 Branch Not Found"})
            return self._json(
                request,
                {
                    "name": m.group(1),
                    "commit": {"id": tip, "short_id": tip[:8], "title": "A commit"},
                    "merged": False,
                    "protected": False,
                    "default": False,
                    "developers_can_push": False,
                    "developers_can_merge": False,
                    "can_push": True,
                    "web_url": f"{BASE_URL}/{self.project}/-/tree/{m.group(1)}",
                },
            )
        return self._error(request, 404, {"message": "404 Not Found"})

    def _merge(self, request: httpx.Request, mr: dict[str, Any]) -> httpx.Response:
        """GitLab's order: may this user merge (401), is it mergeable now (405: closed,
        draft, a rule of the project, a conflict), is ``sha`` its head (409)."""
        if not self.can_merge:
            return self._error(request, 401)
        if mr["state"] != "opened" or mr["detailed_merge_status"] != "mergeable":
            return self._error(request, 405, {"message": "405 Method Not Allowed"})
        sha = json.loads(request.content or b"{}").get("sha")
        if sha is not None and sha != mr["sha"]:
            message = f"SHA does not match HEAD of source branch: {mr['sha']}"
            return self._error(request, 409, {"message": message})
        mr.update(
            state="merged",
            merged_by=self.user,
            merge_user=self.user,
            merged_at=_stamp(self.clock()),
            merge_commit_sha=hashlib.sha1(f"merge:{mr['iid']}:{mr['sha']}".encode()).hexdigest(),
            detailed_merge_status="not_open",
        )
        return self._json(request, mr)

    def _filtered(self, request: httpx.Request) -> list[dict[str, Any]]:
        params = request.url.params
        state = params.get("state", "all")
        wanted = [x.strip() for x in params.get("labels", "").split(",") if x.strip()]
        iids = {int(x) for x in params.get_list("iids[]")}
        found: list[dict[str, Any]] = []
        for issue in self.issues.values():
            if state != "all" and issue["state"] != state:
                continue
            if iids and issue["iid"] not in iids:
                continue
            # Label titles match exactly, as GitLab stores them.
            if all(w in issue["labels"] for w in wanted):
                found.append(issue)
        key = params.get("order_by", "created_at")
        found.sort(key=lambda i: (i[key], i["iid"]), reverse=params.get("sort", "desc") == "desc")
        return found

    def _update_issue(self, issue: dict[str, Any], changes: dict[str, Any]) -> None:
        def names(value: Any) -> list[str]:
            items = value.split(",") if isinstance(value, str) else list(value or [])
            return [x.strip() for x in items if x.strip()]

        labels: list[str] = list(issue["labels"])
        if "labels" in changes:
            labels = names(changes["labels"])
        for name in names(changes.get("remove_labels")):
            labels = [x for x in labels if x != name]
        for name in names(changes.get("add_labels")):
            if name in labels:
                continue
            scope = name.rpartition("::")[0] if "::" in name else None
            if self.scoped_labels and scope:
                labels = [x for x in labels if not (x.rpartition("::")[0] == scope and "::" in x)]
            labels.append(name)
        issue["labels"] = labels
        event = changes.get("state_event")
        if event == "close" and issue["state"] == "opened":
            issue.update(state="closed", closed_at=_stamp(self.now), closed_by=USER)
        elif event == "reopen" and issue["state"] == "closed":
            issue.update(state="opened", closed_at=None, closed_by=None)
        issue["updated_at"] = _stamp(self.now)

    def _open_merge_request(self, request: httpx.Request) -> httpx.Response:
        payload = json.loads(request.content or b"{}")
        for key in ("source_branch", "target_branch", "title"):
            if not payload.get(key):
                return self._error(request, 400, {"error": f"{key} is missing"})
        source, target = payload["source_branch"], payload["target_branch"]
        if source == target:
            return self._error(
                request,
                422,
                {"message": ["You can't use same project/branch for source and target"]},
            )
        for mr in self.merge_requests:
            # One open merge request per source project and branch: a fork's is its own.
            ours = mr["source_project_id"] == self.project_id
            if ours and mr["state"] == "opened" and mr["source_branch"] == source:
                message = f"Another open merge request already exists for this source branch: !{mr['iid']}"
                return self._error(request, 409, {"message": [message]})
        mr = make_merge_request(
            len(self.merge_requests) + 1,
            source_branch=source,
            target_branch=target,
            title=payload["title"],
            description=payload.get("description") or "",
            project=self.project,
            project_id=self.project_id,
            base_url=self.base_url,
        )
        tip = self.tip(source)
        if tip is not None:
            mr["sha"] = tip
        self.merge_requests.append(mr)
        self.versions[mr["iid"]] = []
        self._new_version(mr)
        return self._json(request, mr, status=201)


def _newest_first(item: Any) -> int:
    job_id = item.get("id") if isinstance(item, dict) else None
    return -job_id if isinstance(job_id, int) else 0


def _raw_path(request: httpx.Request) -> str:
    """The path as sent (``%2F`` kept): ``request.url.path`` is decoded."""
    return request.url.raw_path.decode("ascii").split("?", 1)[0]


# --------------------------------------------------------------------------------------------
# Served over real HTTP
# --------------------------------------------------------------------------------------------


def serve_gitlab(fake: FakeGitLab) -> AbstractContextManager[str]:
    """Serve ``fake`` on ``127.0.0.1`` (an ephemeral port) in a thread; yields the base URL
    (``http://127.0.0.1:<port>``) to put in ``tracker.base_url``."""
    return serve_over_http(fake.handle, "GitLab")
