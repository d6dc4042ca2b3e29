"""An in-memory GitHub (REST v3): issues, labels, comments and pull requests of one repository.

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
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote

import httpx

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
        self.requests: list[httpx.Request] = []
        self.unauthorized = 0
        self.page_size = 100
        self.remaining = 4999
        self.reset_epoch = int((now + timedelta(hours=1)).timestamp())
        self.not_modified = 0
        self.override: Callable[[httpx.Request], httpx.Response | None] | None = None
        self.base = f"/repos/{repo}"
        self.lock = threading.Lock()

    @property
    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    def writes(self) -> list[str]:
        return [f"{r.method} {r.url.path}" for r in self.requests if r.method != "GET"]

    def label_names(self, number: int) -> list[str]:
        return [x["name"] for x in self.issues[number]["labels"]]

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

    def _page(self, request: httpx.Request, items: list[Any]) -> httpx.Response:
        page = int(request.url.params.get("page", "1"))
        start = (page - 1) * self.page_size
        chunk = items[start : start + self.page_size]
        link = None
        if start + self.page_size < len(items):
            next_url = request.url.copy_merge_params({"page": str(page + 1)})
            last = (len(items) + self.page_size - 1) // self.page_size
            last_url = request.url.copy_merge_params({"page": str(last)})
            link = f'<{next_url}>; rel="next", <{last_url}>; rel="last"'
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
        return self._error(request, 404, "error_not_found.json")

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


# --------------------------------------------------------------------------------------------
# Served over real HTTP
# --------------------------------------------------------------------------------------------

_HOP_BY_HOP = {"content-length", "transfer-encoding", "connection", "keep-alive"}


def _handler(fake: FakeGitHub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self._serve()

        def do_POST(self) -> None:
            self._serve()

        def do_PATCH(self) -> None:
            self._serve()

        def do_PUT(self) -> None:
            self._serve()

        def do_DELETE(self) -> None:
            self._serve()

        def log_message(self, format: str, *args: object) -> None:
            pass

        def _serve(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            request = httpx.Request(
                self.command,
                f"http://{self.headers.get('Host', '127.0.0.1')}{self.path}",
                headers=list(self.headers.items()),
                content=body,
            )
            try:
                response = fake.handle(request)
                content = response.read()
            except Exception as error:  # a bug in the fake answers 500, like a broken server
                response = httpx.Response(500, json={"message": f"fake GitHub: {error!r}"})
                content = response.read()
            self.send_response(response.status_code)
            for name, value in response.headers.multi_items():
                if name.lower() not in _HOP_BY_HOP:
                    self.send_header(name, value)
            self.send_header("Content-Length", str(len(content)))
            self.end_headers()
            self.wfile.write(content)

    return Handler


@contextmanager
def serve_github(fake: FakeGitHub) -> Iterator[str]:
    """Serve ``fake`` on ``127.0.0.1`` (an ephemeral port) in a thread; yields the endpoint
    (``http://127.0.0.1:<port>``) to put in ``tracker.endpoint``."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(fake))
    thread = threading.Thread(target=httpd.serve_forever, name="fake-github", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)
