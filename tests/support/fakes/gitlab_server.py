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
        "web_url": f"{BASE_URL}/{project}/-/merge_requests/{iid}",
        "references": {"short": f"!{iid}", "relative": f"!{iid}", "full": f"{project}!{iid}"},
        "has_conflicts": False,
        "blocking_discussions_resolved": True,
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

    @property
    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

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
            mr = next((x for x in self.merge_requests if x["iid"] == int(m.group(1))), None)
            if mr is None:
                return self._error(request, 404)
            if method == "PUT":
                changes = json.loads(request.content or b"{}")
                mr.update({k: v for k, v in changes.items() if k in ("title", "description")})
            return self._json(request, mr)
        return self._error(request, 404, {"message": "404 Not Found"})

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
        )
        self.merge_requests.append(mr)
        return self._json(request, mr, status=201)


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
