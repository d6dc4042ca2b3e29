"""An in-memory GitHub (REST v3): issues, labels, comments and pull requests of one repository,
with what the review loop reads of a pull request (check runs and commit statuses at a sha,
reviews, review comments, ``mergeable``) and its merge pinned to a head sha.

It keeps GitHub's objects as built from the documented shapes in ``tests/fixtures/github/``,
serves them with ``Link`` pagination, ETags (304s cost no rate limit) and rate-limit headers,
and applies writes, so tests assert on what GitHub would end up holding. Two ways to reach it:

* ``fake.transport``: an ``httpx.MockTransport``, for the adapter's unit tests;
* :func:`serve_github`: a real HTTP server on ``127.0.0.1`` (a thread), for end-to-end tests
  whose activities make real requests to ``tracker.endpoint``.

With ``token`` set, every request must carry ``Authorization: Bearer <token>`` (else 401, the
documented "Bad credentials" answer).
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import unquote

import httpx

from tests.support.fakes.http_serve import serve_over_http
from tests.support.paths import FIXTURES as ALL_FIXTURES

FIXTURES = ALL_FIXTURES / "github"
REPO = "octo-org/widgets"
API = "https://api.github.com"
NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def fixture(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


def label(name: str, repo: str = REPO) -> dict[str, Any]:
    obj = fixture("label.json")
    obj["name"] = name
    obj["url"] = f"{API}/repos/{repo}/labels/{name}"
    return obj


def make_issue(
    number: int,
    *,
    title: str | None = "An issue",
    labels: list[str] | None = None,
    state: str = "open",
    state_reason: str | None = None,
    body: str | None = "",
    repo: str = REPO,
) -> dict[str, Any]:
    obj = fixture("issue.json")
    obj.update(
        number=number,
        id=number * 10,
        title=title,
        state=state,
        state_reason=state_reason,
        body=body,
        html_url=f"https://github.com/{repo}/issues/{number}",
        labels=[label(n, repo) for n in (labels or [])],
    )
    if title is None:
        del obj["title"]
    return obj


def make_pr_issue(number: int, labels: list[str], repo: str = REPO) -> dict[str, Any]:
    obj = fixture("pull_request_as_issue.json")
    obj.update(number=number, labels=[label(n, repo) for n in labels])
    return obj


def make_pull(
    number: int,
    *,
    head_sha: str,
    branch: str | None = None,
    state: str = "open",
    merged: bool = False,
    mergeable: bool | None = None,
    repo: str = REPO,
) -> dict[str, Any]:
    """A pull request as ``GET /repos/{o}/{r}/pulls/{n}`` returns it."""
    owner = repo.split("/", 1)[0]
    ref = branch or f"jidoka/pr-{number}"
    obj = fixture("pull_request.json")
    obj.update(
        number=number,
        id=number * 10,
        url=f"{API}/repos/{repo}/pulls/{number}",
        html_url=f"https://github.com/{repo}/pull/{number}",
        state="closed" if merged else state,
        merged=merged,
        merged_at=NOW.isoformat() if merged else None,
        mergeable=mergeable,
    )
    obj["head"].update(ref=ref, label=f"{owner}:{ref}", sha=head_sha)
    obj["head"]["user"]["login"] = owner
    return obj


def make_check_run(
    name: str,
    *,
    status: str = "completed",
    conclusion: str | None = "success",
    summary: Any = None,
    text: Any = None,
    output: Any = "default",
) -> dict[str, Any]:
    """A check run as ``GET /repos/{o}/{r}/commits/{sha}/check-runs`` lists it; ``output``
    replaces the whole ``output`` object (None, a wrong shape) when given."""
    return {
        "id": int(hashlib.sha256(name.encode()).hexdigest()[:8], 16),
        "name": name,
        "status": status,
        "conclusion": conclusion if status == "completed" else None,
        "started_at": "2026-01-02T03:00:00Z",
        "completed_at": "2026-01-02T03:04:00Z" if status == "completed" else None,
        "output": (
            {"title": name, "summary": summary, "text": text, "annotations_count": 0}
            if output == "default"
            else output
        ),
        "app": {"slug": "github-actions"},
    }


def make_status(context: str, state: str, description: str | None = None) -> dict[str, Any]:
    """A legacy commit status, as the combined status lists it."""
    return {
        "context": context,
        "state": state,
        "description": description,
        "target_url": f"https://ci.example.com/{context}",
        "created_at": "2026-01-02T03:00:00Z",
        "updated_at": "2026-01-02T03:04:00Z",
    }


def make_review(
    review_id: int,
    login: str,
    state: str,
    commit_id: str,
    *,
    submitted_at: datetime | None = NOW,
    body: str = "",
    association: str = "COLLABORATOR",
) -> dict[str, Any]:
    """A pull request review; a PENDING one has no ``submitted_at``."""
    obj: dict[str, Any] = {
        "id": review_id,
        "user": {"login": login, "id": review_id, "type": "User", "site_admin": False},
        "body": body,
        "state": state,
        "commit_id": commit_id,
        "author_association": association,
    }
    if state != "PENDING" and submitted_at is not None:
        obj["submitted_at"] = submitted_at.isoformat().replace("+00:00", "Z")
    return obj


def make_review_comment(
    comment_id: int,
    login: str,
    body: Any,
    *,
    path: str | None = "src/app.py",
    line: int | None = 10,
    original_line: int | None = None,
    commit_id: str = "",
    created_at: datetime = NOW,
    association: str = "COLLABORATOR",
) -> dict[str, Any]:
    """A pull request review comment (on a line of the diff)."""
    return {
        "id": comment_id,
        "author_association": association,
        "user": {"login": login, "id": comment_id, "type": "User", "site_admin": False},
        "body": body,
        "path": path,
        "line": line,
        "original_line": original_line if original_line is not None else line,
        "commit_id": commit_id,
        "created_at": created_at.isoformat().replace("+00:00", "Z"),
        "updated_at": created_at.isoformat().replace("+00:00", "Z"),
    }


class FakeGitHub:
    """Just enough of GitHub's REST API for the adapter, with GitHub's documented behaviour."""

    def __init__(self, repo: str = REPO, *, now: datetime = NOW, token: str | None = None) -> None:
        self.repo = repo
        self.owner = repo.split("/", 1)[0]
        self.now = now
        self.token = token
        self.issues: dict[int, dict[str, Any]] = {}
        self.comments: dict[int, list[dict[str, Any]]] = {}
        self.pulls: list[dict[str, Any]] = []
        # What the review loop reads, set by tests: check runs and commit statuses by commit
        # sha, reviews and review comments by pull request number.
        self.check_runs: dict[str, list[dict[str, Any]]] = {}
        self.statuses: dict[str, list[dict[str, Any]]] = {}
        self.reviews: dict[int, list[dict[str, Any]]] = {}
        self.review_comments: dict[int, list[dict[str, Any]]] = {}
        self.requests: list[httpx.Request] = []
        self.unauthorized = 0
        self.page_size = 100
        self.remaining = 4999
        self.reset_epoch = int((now + timedelta(hours=1)).timestamp())
        self.not_modified = 0
        self.override: Callable[[httpx.Request], httpx.Response | None] | None = None
        self.base = f"/repos/{repo}"
        self.lock = threading.Lock()
        self.head_of: Callable[[str], str | None] | None = None
        """Where pushed branches live: a pull request's head is its branch's tip, as on
        GitHub (None: the head is what the test set)."""

    @property
    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    def writes(self) -> list[str]:
        return [f"{r.method} {r.url.path}" for r in self.requests if r.method != "GET"]

    def label_names(self, number: int) -> list[str]:
        return [x["name"] for x in self.issues[number]["labels"]]

    def add_pull(self, number: int, *, head_sha: str, **fields: Any) -> dict[str, Any]:
        """A pull request (:func:`make_pull`), replacing any with that number."""
        pull = make_pull(number, head_sha=head_sha, repo=self.repo, **fields)
        self.pulls = [p for p in self.pulls if p["number"] != number]
        self.pulls.append(pull)
        return pull

    def pull(self, number: int) -> dict[str, Any] | None:
        pull = next((p for p in self.pulls if p["number"] == number), None)
        if pull is not None and self.head_of is not None and pull["state"] == "open":
            tip = self.head_of(pull["head"]["ref"])
            if tip is not None:
                pull["head"]["sha"] = tip
        return pull

    # -- plumbing ----------------------------------------------------------------------------

    def _headers(self) -> dict[str, str]:
        return {
            "X-RateLimit-Limit": "5000",
            "X-RateLimit-Remaining": str(self.remaining),
            "X-RateLimit-Reset": str(self.reset_epoch),
            "X-RateLimit-Resource": "core",
        }

    def _json(
        self,
        request: httpx.Request,
        body: Any,
        status: int = 200,
        link: str | None = None,
    ) -> httpx.Response:
        content = json.dumps(body).encode()
        headers = self._headers()
        if request.method == "GET" and status == 200:
            etag = f'W/"{hashlib.sha256(content).hexdigest()[:16]}"'
            headers["ETag"] = etag
            if request.headers.get("if-none-match") == etag:
                # Documented: a 304 does not count against the primary rate limit. The ETag
                # covers the body only, and a 304 need not repeat the Link header.
                self.not_modified += 1
                return httpx.Response(304, headers=headers)
            if link:
                headers["Link"] = link
        self.remaining -= 1
        headers["X-RateLimit-Remaining"] = str(self.remaining)
        headers["Content-Type"] = "application/json; charset=utf-8"
        return httpx.Response(status, content=content, headers=headers)

    def _page(
        self,
        request: httpx.Request,
        items: list[Any],
        key: str | None = None,
        extra: dict[str, Any] | None = None,
    ) -> httpx.Response:
        """One page of ``items``; with ``key``, the page is an object holding them under that
        key (with ``total_count`` and ``extra``), as check runs and statuses are listed."""
        page = int(request.url.params.get("page", "1"))
        start = (page - 1) * self.page_size
        chunk = items[start : start + self.page_size]
        link = None
        if start + self.page_size < len(items):
            next_url = request.url.copy_merge_params({"page": str(page + 1)})
            last = (len(items) + self.page_size - 1) // self.page_size
            last_url = request.url.copy_merge_params({"page": str(last)})
            link = f'<{next_url}>; rel="next", <{last_url}>; rel="last"'
        if key is not None:
            return self._json(
                request, {**(extra or {}), "total_count": len(items), key: chunk}, link=link
            )
        return self._json(request, chunk, link=link)

    def _error(self, request: httpx.Request, status: int, name: str) -> httpx.Response:
        return self._json(request, fixture(name), status=status)

    # -- routes ------------------------------------------------------------------------------

    def handle(self, request: httpx.Request) -> httpx.Response:
        with self.lock:
            self.requests.append(request)
            if self.token is not None and request.headers.get("authorization") != (
                f"Bearer {self.token}"
            ):
                self.unauthorized += 1
                return self._error(request, 401, "error_bad_credentials.json")
            if self.override is not None:
                answer = self.override(request)
                if answer is not None:
                    return answer
            return self._route(request)

    def _route(self, request: httpx.Request) -> httpx.Response:
        path = unquote(request.url.path)
        method = request.method
        if not path.startswith(self.base + "/"):
            return self._error(request, 404, "error_not_found.json")
        tail = path[len(self.base) + 1 :]
        if tail == "issues" and method == "GET":
            return self._page(request, self._filtered(request))
        if m := re.fullmatch(r"issues/(\d+)", tail):
            issue = self.issues.get(int(m.group(1)))
            if issue is None:
                return self._error(request, 404, "error_not_found.json")
            if method == "PATCH":
                self._patch_issue(issue, json.loads(request.content))
            return self._json(request, issue)
        if m := re.fullmatch(r"issues/(\d+)/labels", tail):
            issue = self.issues[int(m.group(1))]
            for name in json.loads(request.content)["labels"]:
                if name.lower() not in {x["name"].lower() for x in issue["labels"]}:
                    issue["labels"].append(label(name, self.repo))
            return self._json(request, issue["labels"])
        if m := re.fullmatch(r"issues/(\d+)/labels/(.+)", tail):
            issue = self.issues[int(m.group(1))]
            name = m.group(2)
            kept = [x for x in issue["labels"] if x["name"].lower() != name.lower()]
            if len(kept) == len(issue["labels"]):
                return self._json(
                    request,
                    {"message": "Label does not exist", "documentation_url": "x"},
                    status=404,
                )
            issue["labels"] = kept
            return self._json(request, kept)
        if m := re.fullmatch(r"issues/(\d+)/comments", tail):
            comments = self.comments.setdefault(int(m.group(1)), [])
            if method == "GET":
                return self._page(request, comments)
            comment = fixture("comment.json")
            comment.update(id=len(comments) + 1, body=json.loads(request.content)["body"])
            comments.append(comment)
            return self._json(request, comment, status=201)
        if tail == "pulls" and method == "GET":
            head = request.url.params.get("head")
            found = [
                p
                for p in self.pulls
                if p["state"] == request.url.params.get("state", "open")
                and f"{p['head']['user']['login']}:{p['head']['ref']}" == head
            ]
            return self._json(request, found)
        if tail == "pulls" and method == "POST":
            return self._open_pull(request)
        if (m := re.fullmatch(r"pulls/(\d+)", tail)) and method == "PATCH":
            pull = next(p for p in self.pulls if p["number"] == int(m.group(1)))
            pull.update(json.loads(request.content))
            return self._json(request, pull)
        if (m := re.fullmatch(r"pulls/(\d+)", tail)) and method == "GET":
            pull = self.pull(int(m.group(1)))
            if pull is None:
                return self._error(request, 404, "error_not_found.json")
            return self._json(request, pull)
        if (m := re.fullmatch(r"pulls/(\d+)/merge", tail)) and method == "PUT":
            return self._merge(request, int(m.group(1)))
        if (m := re.fullmatch(r"pulls/(\d+)/reviews", tail)) and method == "GET":
            if self.pull(int(m.group(1))) is None:
                return self._error(request, 404, "error_not_found.json")
            return self._page(request, self.reviews.get(int(m.group(1)), []))
        if (m := re.fullmatch(r"pulls/(\d+)/comments", tail)) and method == "GET":
            if self.pull(int(m.group(1))) is None:
                return self._error(request, 404, "error_not_found.json")
            comments = list(self.review_comments.get(int(m.group(1)), []))
            # Documented: ``direction`` is ignored without ``sort``; ascending by default.
            if request.url.params.get("sort") in ("created", "updated"):
                comments.sort(key=lambda c: (c[f"{request.url.params['sort']}_at"], c["id"]))
                if request.url.params.get("direction", "desc") == "desc":
                    comments.reverse()
            return self._page(request, comments)
        if (m := re.fullmatch(r"commits/([0-9a-fA-F]+)/check-runs", tail)) and method == "GET":
            return self._page(request, self.check_runs.get(m.group(1), []), key="check_runs")
        if (m := re.fullmatch(r"commits/([0-9a-fA-F]+)/status", tail)) and method == "GET":
            statuses = self.statuses.get(m.group(1), [])
            extra = {"state": _combined_state(statuses), "sha": m.group(1)}
            return self._page(request, statuses, key="statuses", extra=extra)
        return self._error(request, 404, "error_not_found.json")

    def _merge(self, request: httpx.Request, number: int) -> httpx.Response:
        """Documented answers: 405 when the pull request is not mergeable (closed, merged,
        conflicting), 409 when ``sha`` is not its head any more."""
        pull = self.pull(number)
        if pull is None:
            return self._error(request, 404, "error_not_found.json")
        payload = json.loads(request.content or b"{}")
        if pull["state"] != "open" or pull["merged"] or pull["mergeable"] is False:
            return self._json(
                request,
                {"message": "Pull Request is not mergeable", "documentation_url": "x"},
                status=405,
            )
        sha = payload.get("sha")
        if sha is not None and sha != pull["head"]["sha"]:
            return self._json(
                request,
                {
                    "message": "Head branch was modified. Review and try the merge again.",
                    "documentation_url": "x",
                },
                status=409,
            )
        merge_sha = hashlib.sha256(f"merge:{number}:{pull['head']['sha']}".encode()).hexdigest()
        merge_sha = merge_sha[:40]
        pull.update(
            state="closed",
            merged=True,
            mergeable=None,
            merged_at=self.now.isoformat(),
            closed_at=self.now.isoformat(),
            merge_commit_sha=merge_sha,
        )
        return self._json(
            request,
            {"sha": merge_sha, "merged": True, "message": "Pull Request successfully merged"},
        )

    def _open_pull(self, request: httpx.Request) -> httpx.Response:
        payload = json.loads(request.content)
        if any(p["head"]["ref"] == payload["head"] for p in self.pulls):
            return self._error(request, 422, "error_pull_exists.json")
        pull = fixture("pull_request.json")
        number = 2000 + len(self.pulls)
        pull.update(
            number=number,
            html_url=f"https://github.com/{self.repo}/pull/{number}",
            title=payload["title"],
            body=payload["body"],
            draft=payload["draft"],
        )
        pull["head"].update(ref=payload["head"], label=f"{self.owner}:{payload['head']}")
        pull["head"]["user"]["login"] = self.owner
        pull["base"].update(ref=payload["base"], label=f"{self.owner}:{payload['base']}")
        self.pulls.append(pull)
        return self._json(request, pull, status=201)

    def _filtered(self, request: httpx.Request) -> list[dict[str, Any]]:
        state = request.url.params.get("state", "open")
        wanted = [x.lower() for x in request.url.params.get("labels", "").split(",") if x]
        found: list[dict[str, Any]] = []
        for number in sorted(self.issues):
            issue = self.issues[number]
            names = {x["name"].lower() for x in issue["labels"]}
            if state != "all" and issue["state"] != state:
                continue
            if all(w in names for w in wanted):
                found.append(issue)
        return found

    def _patch_issue(self, issue: dict[str, Any], changes: dict[str, Any]) -> None:
        new_state = changes.get("state")
        if new_state is not None and new_state != issue["state"]:
            issue["state"] = new_state
            # Documented: state_reason is ignored unless the state changes.
            issue["state_reason"] = changes.get("state_reason")
            issue["closed_at"] = self.now.isoformat() if new_state == "closed" else None


def _combined_state(statuses: list[dict[str, Any]]) -> str:
    """Documented: failure if any is error or failure, pending if none or any pending."""
    states = {s.get("state") for s in statuses}
    if states & {"error", "failure"}:
        return "failure"
    if not states or "pending" in states:
        return "pending"
    return "success"


# --------------------------------------------------------------------------------------------
# Served over real HTTP
# --------------------------------------------------------------------------------------------


def serve_github(fake: FakeGitHub) -> AbstractContextManager[str]:
    """Serve ``fake`` on ``127.0.0.1`` (an ephemeral port) in a thread; yields the endpoint
    (``http://127.0.0.1:<port>``) to put in ``tracker.endpoint``."""
    return serve_over_http(fake.handle, "GitHub")
