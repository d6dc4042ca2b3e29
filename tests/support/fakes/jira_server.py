"""An in-memory Jira: the issues, workflow transitions and comments of a site, answered with the
documented REST shapes of Jira Cloud (v3: ``search/jql`` with ``nextPageToken``, ``bulkfetch``,
ADF bodies) or Jira Data Center (v2: ``search`` with ``startAt``, wiki-markup bodies).

It applies writes, so tests assert on what Jira would end up holding, and refuses what Jira
refuses: JQL naming an unknown field, status or project (HTTP 400 with ``errorMessages``), a
transition the issue's current status does not offer, a comment body that is not valid ADF on
Cloud (or over 32,767 characters). Errors use Jira's error collection
(``{"errorMessages": [...], "errors": {...}}``). Two ways to reach it:

* ``fake.transport``: an ``httpx.MockTransport``, for the adapter's unit tests;
* :func:`serve_jira`: a real HTTP server on ``127.0.0.1`` (a thread), for tests whose activities
  make real requests to ``tracker.base_url``.

With ``token`` set, every request must carry the credentials (Basic ``email:token``, or
``Bearer <token>`` when ``email`` is None), else 401.

A record that lacks a status, or its ``fields`` object (a broken payload a test planted), passes
the filters that need them, so tests can watch the adapter leave it out.
"""

from __future__ import annotations

import base64
import copy
import json
import re
import threading
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from datetime import UTC, datetime, timedelta
from typing import Any, Literal
from urllib.parse import unquote

import httpx

from tests.support.fakes.http_serve import serve_over_http

SITE = "https://acme.atlassian.net"
PROJECT = "ENG"
NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
COMMENT_LIMIT = 32_767

Deployment = Literal["cloud", "data_center"]

# --------------------------------------------------------------------------------------------
# Documented shapes
# --------------------------------------------------------------------------------------------

STATUS_CATEGORIES = {
    "new": {"id": 2, "key": "new", "colorName": "blue-gray", "name": "To Do"},
    "indeterminate": {
        "id": 4,
        "key": "indeterminate",
        "colorName": "yellow",
        "name": "In Progress",
    },
    "done": {"id": 3, "key": "done", "colorName": "green", "name": "Done"},
}

STATUS_IDS = {
    "Backlog": "10000",
    "To Do": "10001",
    "In Progress": "3",
    "In Review": "10002",
    "Done": "10003",
    "Cancelled": "10004",
}

DEFAULT_WORKFLOW: dict[str, list[tuple[str, str, str]]] = {
    "Backlog": [("11", "Select for development", "To Do")],
    "To Do": [("21", "Start Progress", "In Progress"), ("91", "Cancel", "Cancelled")],
    "In Progress": [
        ("31", "Stop Progress", "To Do"),
        ("41", "Ask for review", "In Review"),
        ("51", "Finish", "Done"),
        ("91", "Cancel", "Cancelled"),
    ],
    "In Review": [("61", "Back to work", "In Progress"), ("51", "Finish", "Done")],
    "Done": [("71", "Reopen", "To Do")],
    "Cancelled": [("71", "Reopen", "To Do")],
}
"""Status -> transitions it offers: (transition id, transition name, target status)."""


def jira_time(when: datetime) -> str:
    """Jira's timestamp format: ``2026-01-02T03:04:05.000+0000``."""
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000+0000")


def status(name: str, site: str = SITE) -> dict[str, Any]:
    lowered = name.casefold()
    category = (
        "done"
        if lowered in ("done", "cancelled", "closed")
        else "indeterminate"
        if lowered in ("in progress", "in review")
        else "new"
    )
    status_id = STATUS_IDS.get(name, str(20000 + sum(map(ord, name))))
    return {
        "self": f"{site}/rest/api/3/status/{status_id}",
        "description": "",
        "iconUrl": f"{site}/images/icons/statuses/generic.png",
        "name": name,
        "id": status_id,
        "statusCategory": {
            "self": f"{site}/rest/api/3/statuscategory/{STATUS_CATEGORIES[category]['id']}",
            **STATUS_CATEGORIES[category],
        },
    }


def priority(name: str, site: str = SITE) -> dict[str, Any]:
    ids = {"Highest": "1", "High": "2", "Medium": "3", "Low": "4", "Lowest": "5"}
    priority_id = ids.get(name, "10000")
    return {
        "self": f"{site}/rest/api/3/priority/{priority_id}",
        "iconUrl": f"{site}/images/icons/priorities/{name.lower()}.svg",
        "name": name,
        "id": priority_id,
    }


def error_body(*messages: str, errors: dict[str, str] | None = None) -> dict[str, Any]:
    """Jira's error collection."""
    return {"errorMessages": list(messages), "errors": errors or {}}


def adf(*paragraphs: str) -> dict[str, Any]:
    """An ADF document of plain paragraphs."""
    return {
        "type": "doc",
        "version": 1,
        "content": [
            {"type": "paragraph", "content": [{"type": "text", "text": p}] if p else []}
            for p in paragraphs
        ],
    }


def issue_id(number: int) -> str:
    return str(10000 + number)


def make_issue(
    number: int,
    *,
    summary: str | None = None,
    state: str | None = "To Do",
    project: str = PROJECT,
    description: Any = None,
    priority_name: str | None = "Medium",
    labels: list[str] | None = None,
    links: list[dict[str, Any]] | None = None,
    created: datetime = NOW - timedelta(days=2),
    updated: datetime = NOW - timedelta(hours=1),
    site: str = SITE,
) -> dict[str, Any]:
    """An issue as ``GET /rest/api/3/issue/{id}`` returns it (every field this fake knows)."""
    key = f"{project}-{number}"
    return {
        "expand": "renderedFields,names,schema,operations,editmeta,changelog,versionedRepresentations",
        "id": issue_id(number),
        "self": f"{site}/rest/api/3/issue/{issue_id(number)}",
        "key": key,
        "fields": {
            "summary": summary if summary is not None else f"Issue {number}",
            "description": description,
            "status": status(state, site) if state is not None else None,
            "priority": priority(priority_name, site) if priority_name else None,
            "labels": list(labels or []),
            "issuelinks": list(links or []),
            "created": jira_time(created),
            "updated": jira_time(updated),
            "project": {
                "self": f"{site}/rest/api/3/project/{project}",
                "id": str(10000 + sum(map(ord, project))),
                "key": project,
                "name": f"Project {project}",
                "projectTypeKey": "software",
            },
            "issuetype": {"id": "10001", "name": "Task", "subtask": False},
        },
    }


def _linked(other: dict[str, Any]) -> dict[str, Any]:
    fields = other["fields"]
    return {
        "id": other["id"],
        "key": other["key"],
        "self": other["self"],
        "fields": {
            "summary": fields.get("summary"),
            "status": fields.get("status"),
            "priority": fields.get("priority"),
            "issuetype": fields.get("issuetype"),
        },
    }


def link(
    other: dict[str, Any],
    direction: Literal["inward", "outward"],
    *,
    name: str = "Blocks",
    inward: str = "is blocked by",
    outward: str = "blocks",
) -> dict[str, Any]:
    """An entry of ``fields.issuelinks``: the other issue under ``inwardIssue`` reads as
    "<this> is blocked by <other>" for a Blocks link, under ``outwardIssue`` as "<this> blocks
    <other>" (developer.atlassian.com, "Jira issue linking model")."""
    return {
        "id": str(30000 + int(other["id"])),
        "self": f"{SITE}/rest/api/3/issueLink/{30000 + int(other['id'])}",
        "type": {
            "id": "10000",
            "name": name,
            "inward": inward,
            "outward": outward,
            "self": f"{SITE}/rest/api/3/issueLinkType/10000",
        },
        f"{direction}Issue": _linked(other),
    }


def blocked_by(other: dict[str, Any]) -> dict[str, Any]:
    return link(other, "inward")


def blocks(other: dict[str, Any]) -> dict[str, Any]:
    return link(other, "outward")


def relates_to(other: dict[str, Any]) -> dict[str, Any]:
    return link(other, "outward", name="Relates", inward="relates to", outward="relates to")


def make_comment(comment_id: int, body: Any, *, author: str = "Ada") -> dict[str, Any]:
    """A comment as ``GET .../comment`` lists it."""
    user = {
        "accountId": f"5b10a2844c20165700ede2{comment_id:02d}",
        "displayName": author,
        "active": True,
    }
    return {
        "self": f"{SITE}/rest/api/3/issue/10010/comment/{comment_id}",
        "id": str(comment_id),
        "author": user,
        "body": body,
        "updateAuthor": user,
        "created": jira_time(NOW),
        "updated": jira_time(NOW),
        "jsdPublic": True,
    }


# --------------------------------------------------------------------------------------------
# ADF validation (the part of the schema Jidoka's comments touch)
# --------------------------------------------------------------------------------------------

_BLOCK_CHILDREN = {
    "doc": {"paragraph", "heading", "bulletList", "orderedList", "codeBlock", "blockquote", "rule"},
    "blockquote": {"paragraph", "bulletList", "orderedList", "codeBlock"},
    "listItem": {"paragraph", "bulletList", "orderedList", "codeBlock"},
    "bulletList": {"listItem"},
    "orderedList": {"listItem"},
}
_INLINE_PARENTS = {"paragraph", "heading"}
_MARKS = {"strong", "em", "code", "link", "strike"}


def adf_problems(document: Any) -> list[str]:
    """Why Jira would refuse ``document`` as a comment body, per the ADF schema rules that
    matter here; empty when it is valid."""
    problems: list[str] = []
    if not isinstance(document, dict) or document.get("type") != "doc":
        return ["the body is not an ADF doc"]
    if document.get("version") != 1:
        problems.append("doc.version must be 1")

    def walk(node: Any, parent: str, path: str) -> None:
        if not isinstance(node, dict) or not isinstance(node.get("type"), str):
            problems.append(f"{path}: not a node")
            return
        kind = node["type"]
        if parent in _BLOCK_CHILDREN and kind not in _BLOCK_CHILDREN[parent]:
            problems.append(f"{path}: {kind} is not allowed in {parent}")
        if parent in _INLINE_PARENTS and kind not in ("text", "hardBreak"):
            problems.append(f"{path}: {kind} is not inline")
        if parent == "codeBlock" and (kind != "text" or node.get("marks")):
            problems.append(f"{path}: a code block holds unmarked text only")
        if kind == "text":
            if not isinstance(node.get("text"), str) or not node["text"]:
                problems.append(f"{path}: a text node needs non-empty text")
            marks = [m.get("type") for m in node.get("marks", []) if isinstance(m, dict)]
            if any(m not in _MARKS for m in marks):
                problems.append(f"{path}: unknown mark in {marks}")
            if "code" in marks and set(marks) - {"code", "link"}:
                problems.append(f"{path}: code combines with link only, not {marks}")
            for mark in node.get("marks", []):
                if mark.get("type") == "link" and not str(
                    (mark.get("attrs") or {}).get("href", "")
                ).startswith(("http://", "https://")):
                    problems.append(f"{path}: a link needs an absolute href")
        if kind == "listItem":
            first = (node.get("content") or [{}])[0]
            if first.get("type") not in ("paragraph", "codeBlock"):
                problems.append(f"{path}: a list item starts with a paragraph or code block")
        if kind == "heading" and not 1 <= (node.get("attrs") or {}).get("level", 0) <= 6:
            problems.append(f"{path}: heading level out of 1..6")
        content = node.get("content", [])
        if kind in ("bulletList", "orderedList", "blockquote", "listItem") and not content:
            problems.append(f"{path}: {kind} needs content")
        for index, child in enumerate(content):
            walk(child, kind, f"{path}.{kind}[{index}]")

    for index, child in enumerate(document.get("content", [])):
        walk(child, "doc", f"doc[{index}]")
    return problems


# --------------------------------------------------------------------------------------------
# JQL (the clauses the adapter and its tests write)
# --------------------------------------------------------------------------------------------


class JqlError(Exception):
    pass


_TOKEN = re.compile(
    r'\s*(?:(?P<string>"(?:[^"\\]|\\.)*")|(?P<op>!=|=|\(|\)|,)|(?P<word>[^\s=!(),"]+))'
)


def _tokens(text: str) -> list[str]:
    tokens: list[str] = []
    position = 0
    text = text.rstrip()
    while position < len(text):
        match = _TOKEN.match(text, position)
        if match is None or match.end() == position:
            raise JqlError(f"Error in the JQL Query: unexpected character at {position}")
        tokens.append(match.group(match.lastgroup or "word"))
        position = match.end()
    return tokens


def _value(token: str) -> str:
    if token.startswith('"'):
        return re.sub(
            r"\\(.)", lambda m: {"n": "\n", "t": "\t", "r": "\r"}.get(m[1], m[1]), token[1:-1]
        )
    return token


class Jql:
    """``field = v``, ``field != v``, ``field [not] in (v, ...)``, AND, OR, parentheses and a
    trailing ``ORDER BY key ASC|DESC``; fields project, status, labels, key, id."""

    FIELDS = ("project", "status", "labels", "key", "issuekey", "id")

    def __init__(self, text: str, known: Callable[[str, str], bool]) -> None:
        order = re.search(r"(?i)\border\s+by\s+(\w+)(?:\s+(asc|desc))?\s*$", text)
        self.order: tuple[str, bool] | None = None
        if order is not None:
            self.order = (order.group(1).lower(), (order.group(2) or "asc").lower() == "desc")
            text = text[: order.start()]
        self.tokens = _tokens(text)
        self.position = 0
        self.known = known
        self.tree = self._or() if self.tokens else ("all",)
        if self.position != len(self.tokens):
            raise JqlError(f"Error in the JQL Query: unexpected {self.tokens[self.position]!r}")

    def _peek(self) -> str | None:
        return self.tokens[self.position] if self.position < len(self.tokens) else None

    def _take(self) -> str:
        token = self._peek()
        if token is None:
            raise JqlError("Error in the JQL Query: the query ends too early")
        self.position += 1
        return token

    def _or(self) -> tuple[Any, ...]:
        node = self._and()
        while (self._peek() or "").upper() == "OR":
            self._take()
            node = ("or", node, self._and())
        return node

    def _and(self) -> tuple[Any, ...]:
        node = self._factor()
        while (self._peek() or "").upper() == "AND":
            self._take()
            node = ("and", node, self._factor())
        return node

    def _factor(self) -> tuple[Any, ...]:
        if self._peek() == "(":
            self._take()
            node = self._or()
            if self._take() != ")":
                raise JqlError("Error in the JQL Query: expected ')'")
            return node
        name = _value(self._take()).lower()
        if name not in self.FIELDS:
            raise JqlError(
                f"Field '{name}' does not exist or you do not have permission to view it."
            )
        operator = self._take().lower()
        negate = False
        if operator == "not":
            negate, operator = True, self._take().lower()
        if operator in ("=", "!="):
            values = [_value(self._take())]
            negate = operator == "!="
        elif operator == "in":
            if self._take() != "(":
                raise JqlError("Error in the JQL Query: expected '(' after 'in'")
            values = []
            while True:
                values.append(_value(self._take()))
                separator = self._take()
                if separator == ")":
                    break
                if separator != ",":
                    raise JqlError("Error in the JQL Query: expected ',' or ')'")
        else:
            raise JqlError(f"Error in the JQL Query: unsupported operator {operator!r}")
        for value in values:
            if name in ("status", "project") and not self.known(name, value):
                raise JqlError(f"The value '{value}' does not exist for the field '{name}'.")
        return ("clause", name, values, negate)

    def matches(self, issue: dict[str, Any]) -> bool:
        return self._eval(self.tree, issue)

    def _eval(self, node: tuple[Any, ...], issue: dict[str, Any]) -> bool:
        match node[0]:
            case "all":
                return True
            case "and":
                return self._eval(node[1], issue) and self._eval(node[2], issue)
            case "or":
                return self._eval(node[1], issue) or self._eval(node[2], issue)
            case _:
                _, name, values, negate = node
                fields = issue.get("fields")
                if not isinstance(fields, dict):
                    return True  # a broken record passes, for the adapter to judge
                wanted = {v.casefold() for v in values}
                if name == "status":
                    current = (fields.get("status") or {}).get("name")
                    if current is None:
                        return True  # a broken record passes, for the adapter to judge
                    have = {current.casefold()}
                elif name == "project":
                    have = {str((fields.get("project") or {}).get("key", "")).casefold()}
                elif name == "labels":
                    have = {str(x).casefold() for x in fields.get("labels") or []}
                elif name in ("key", "issuekey"):
                    have = {str(issue.get("key", "")).casefold()}
                else:
                    have = {str(issue.get("id", ""))}
                return bool(have & wanted) != negate


def _sort_key(issue: dict[str, Any]) -> tuple[str, int]:
    key = str(issue.get("key") or "")
    project, _, number = key.rpartition("-")
    return (project, int(number) if number.isdigit() else 0)


# --------------------------------------------------------------------------------------------
# The fake
# --------------------------------------------------------------------------------------------


class FakeJira:
    """Just enough of Jira's REST API for the adapter, with Jira's documented behaviour."""

    def __init__(
        self,
        *,
        deployment: Deployment = "cloud",
        site: str = SITE,
        email: str | None = None,
        token: str | None = None,
    ) -> None:
        self.deployment = deployment
        self.version = "3" if deployment == "cloud" else "2"
        self.site = site
        self.email = email
        self.token = token
        self.issues: dict[str, dict[str, Any]] = {}
        """Issue id -> the issue as stored (``make_issue`` shape, or anything a test plants)."""
        self.comments: dict[str, list[dict[str, Any]]] = {}
        self.workflow = copy.deepcopy(DEFAULT_WORKFLOW)
        self.projects = {PROJECT}
        self.requests: list[httpx.Request] = []
        self.page_size = 50
        """The most issues one search page holds, whatever ``maxResults`` asks."""
        self.comment_page_size = 100
        self.unauthorized = 0
        self.remaining = 950
        self.override: Callable[[httpx.Request], httpx.Response | None] | None = None
        self.lock = threading.Lock()
        self._next_comment = 10000

    @property
    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    def add(self, *issues: dict[str, Any]) -> None:
        for issue in issues:
            self.issues[str(issue.get("id"))] = issue
            project = ((issue.get("fields") or {}).get("project") or {}).get("key")
            if project:
                self.projects.add(project)

    def find(self, id_or_key: str) -> dict[str, Any] | None:
        if id_or_key in self.issues:
            return self.issues[id_or_key]
        wanted = id_or_key.casefold()
        return next(
            (i for i in self.issues.values() if str(i.get("key", "")).casefold() == wanted), None
        )

    def state_of(self, id_or_key: str) -> str:
        issue = self.find(id_or_key)
        assert issue is not None
        return issue["fields"]["status"]["name"]

    def writes(self) -> list[str]:
        return [f"{r.method} {r.url.path}" for r in self.requests if r.method not in ("GET",)]

    def paths(self) -> list[str]:
        return [f"{r.method} {r.url.path}" for r in self.requests]

    def bodies(self, path_suffix: str) -> list[Any]:
        """The JSON bodies sent to paths ending with ``path_suffix``."""
        return [
            json.loads(r.content)
            for r in self.requests
            if r.url.path.endswith(path_suffix) and r.content
        ]

    def statuses(self) -> set[str]:
        names = set(self.workflow)
        for transitions in self.workflow.values():
            names.update(target for _, _, target in transitions)
        return names

    # -- plumbing ----------------------------------------------------------------------------

    def headers(self) -> dict[str, str]:
        return {
            "X-RateLimit-Limit": "1000",
            "X-RateLimit-Remaining": str(self.remaining),
            "X-RateLimit-Reset": (NOW + timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%MZ"),
        }

    def answer(self, body: Any, status_code: int = 200) -> httpx.Response:
        self.remaining -= 1
        headers = {**self.headers(), "Content-Type": "application/json;charset=UTF-8"}
        if body is None:
            return httpx.Response(status_code, headers=headers)
        return httpx.Response(status_code, content=json.dumps(body).encode(), headers=headers)

    def error(
        self, status_code: int, *messages: str, errors: dict[str, str] | None = None
    ) -> httpx.Response:
        return self.answer(error_body(*messages, errors=errors), status_code)

    def _authorized(self, request: httpx.Request) -> bool:
        if self.token is None:
            return True
        if self.email is None:
            expected = f"Bearer {self.token}"
        else:
            credential = base64.b64encode(f"{self.email}:{self.token}".encode()).decode()
            expected = f"Basic {credential}"
        return request.headers.get("authorization") == expected

    # -- routes ------------------------------------------------------------------------------

    def handle(self, request: httpx.Request) -> httpx.Response:
        with self.lock:
            self.requests.append(request)
            if not self._authorized(request):
                self.unauthorized += 1
                return self.error(
                    401,
                    "You are not authenticated. Authentication required to perform this operation.",
                )
            if self.override is not None:
                canned = self.override(request)
                if canned is not None:
                    return canned
            return self._route(request)

    def _route(self, request: httpx.Request) -> httpx.Response:
        path = unquote(request.url.path)
        prefix = f"/rest/api/{self.version}/"
        if not path.startswith(prefix):
            return self.error(404, f"null for uri: {request.url}")
        tail = path[len(prefix) :]
        method = request.method
        if tail == "search/jql" and method == "POST" and self.deployment == "cloud":
            return self._search_cloud(json.loads(request.content))
        if tail == "search" and method == "POST" and self.deployment == "data_center":
            return self._search_dc(json.loads(request.content))
        if tail == "issue/bulkfetch" and method == "POST" and self.deployment == "cloud":
            return self._bulk_fetch(json.loads(request.content))
        if m := re.fullmatch(r"issue/([^/]+)", tail):
            issue = self.find(m.group(1))
            if issue is None or method != "GET":
                return self._no_issue()
            fields = request.url.params.get("fields")
            return self.answer(self._view(issue, fields.split(",") if fields else None))
        if m := re.fullmatch(r"issue/([^/]+)/transitions", tail):
            issue = self.find(m.group(1))
            if issue is None:
                return self._no_issue()
            if method == "GET":
                return self.answer(
                    {"expand": "transitions", "transitions": self._transitions(issue)}
                )
            return self._transition(issue, json.loads(request.content))
        if m := re.fullmatch(r"issue/([^/]+)/comment", tail):
            issue = self.find(m.group(1))
            if issue is None:
                return self._no_issue()
            comments = self.comments.setdefault(str(issue["id"]), [])
            if method == "GET":
                return self._comment_page(request, comments)
            return self._add_comment(comments, json.loads(request.content))
        return self.error(404, f"null for uri: {request.url}")

    def _no_issue(self) -> httpx.Response:
        return self.error(404, "Issue does not exist or you do not have permission to see it.")

    def _view(self, issue: dict[str, Any], fields: Sequence[str] | None) -> dict[str, Any]:
        """The issue with only the asked-for fields, as Jira answers a ``fields`` list."""
        view = copy.deepcopy(issue)
        stored = view.get("fields")
        if isinstance(stored, dict) and fields is not None:
            view["fields"] = {k: v for k, v in stored.items() if k in fields}
        return view

    def _select(self, body: dict[str, Any]) -> list[dict[str, Any]] | httpx.Response:
        def known(name: str, value: str) -> bool:
            pool = self.statuses() if name == "status" else self.projects
            return value.casefold() in {x.casefold() for x in pool}

        try:
            query = Jql(body.get("jql") or "", known)
        except JqlError as problem:
            return self.error(400, str(problem))
        found = [i for i in self.issues.values() if query.matches(i)]
        if query.order is not None:
            found.sort(key=_sort_key, reverse=query.order[1])
        fields = body.get("fields")
        return [self._view(i, fields) for i in found]

    def _search_cloud(self, body: dict[str, Any]) -> httpx.Response:
        """``POST /rest/api/3/search/jql``: ``nextPageToken`` pages; the last page has no
        token (the key is absent, JRACLOUD-92184) and ``isLast: true``."""
        selected = self._select(body)
        if isinstance(selected, httpx.Response):
            return selected
        token = body.get("nextPageToken")
        start = 0
        if token is not None:
            if not isinstance(token, str) or not token.startswith("page-"):
                return self.error(400, "The provided next page token is invalid or expired.")
            start = int(token.removeprefix("page-"))
        size = min(int(body.get("maxResults") or 50), self.page_size)
        chunk = selected[start : start + size]
        answer: dict[str, Any] = {"issues": chunk, "isLast": start + size >= len(selected)}
        if not answer["isLast"]:
            answer["nextPageToken"] = f"page-{start + size}"
        return self.answer(answer)

    def _search_dc(self, body: dict[str, Any]) -> httpx.Response:
        """``POST /rest/api/2/search``: ``startAt``/``maxResults``/``total``."""
        selected = self._select(body)
        if isinstance(selected, httpx.Response):
            return selected
        start = int(body.get("startAt") or 0)
        size = min(int(body.get("maxResults") or 50), self.page_size)
        return self.answer(
            {
                "expand": "schema,names",
                "startAt": start,
                "maxResults": size,
                "total": len(selected),
                "issues": selected[start : start + size],
            }
        )

    def _bulk_fetch(self, body: dict[str, Any]) -> httpx.Response:
        """``POST /rest/api/3/issue/bulkfetch``: unknown ids are left out, not errors."""
        wanted = body.get("issueIdsOrKeys") or []
        if len(wanted) > 100:
            return self.error(400, "The number of issues requested exceeds the limit of 100.")
        found: dict[str, dict[str, Any]] = {}
        for id_or_key in wanted:
            issue = self.find(str(id_or_key))
            if issue is not None:
                found[str(issue.get("id"))] = issue
        issues = [
            self._view(found[i], body.get("fields"))
            for i in sorted(found, key=lambda x: int(x) if x.isdigit() else 0)
        ]
        return self.answer({"expand": "", "issues": issues, "issueErrors": []})

    def _transitions(self, issue: dict[str, Any]) -> list[dict[str, Any]]:
        current = ((issue.get("fields") or {}).get("status") or {}).get("name")
        return [
            {
                "id": transition_id,
                "name": name,
                "to": status(target, self.site),
                "hasScreen": False,
                "isGlobal": False,
                "isInitial": False,
                "isAvailable": True,
                "isConditional": False,
                "isLooped": False,
            }
            for transition_id, name, target in self.workflow.get(str(current), [])
        ]

    def _transition(self, issue: dict[str, Any], body: dict[str, Any]) -> httpx.Response:
        wanted = str((body.get("transition") or {}).get("id"))
        offered = {t["id"]: t for t in self._transitions(issue)}
        if wanted not in offered:
            return self.error(400, f"Transition id '{wanted}' is not valid for this issue.")
        issue["fields"]["status"] = offered[wanted]["to"]
        issue["fields"]["updated"] = jira_time(NOW)
        return self.answer(None, 204)

    def _comment_page(
        self, request: httpx.Request, comments: list[dict[str, Any]]
    ) -> httpx.Response:
        start = int(request.url.params.get("startAt", "0"))
        size = min(int(request.url.params.get("maxResults", "5000")), self.comment_page_size)
        return self.answer(
            {
                "comments": comments[start : start + size],
                "maxResults": size,
                "total": len(comments),
                "startAt": start,
            }
        )

    def _add_comment(self, comments: list[dict[str, Any]], body: dict[str, Any]) -> httpx.Response:
        content = body.get("body")
        if self.deployment == "cloud":
            problems = adf_problems(content)
            if problems:
                return self.error(
                    400, errors={"comment": "Comment body is not valid! " + "; ".join(problems)}
                )
            size = len(json.dumps(content, ensure_ascii=False))
        else:
            if not isinstance(content, str):
                return self.error(400, errors={"comment": "Comment body can not be empty!"})
            size = len(content)
        if size > COMMENT_LIMIT:
            return self.error(
                400,
                errors={
                    "comment": "The entered text is too long. It exceeds the allowed limit of "
                    "32,767 characters."
                },
            )
        self._next_comment += 1
        comment = make_comment(self._next_comment, content, author="Jidoka")
        comments.append(comment)
        return self.answer(comment, 201)


# --------------------------------------------------------------------------------------------
# Served over real HTTP
# --------------------------------------------------------------------------------------------


def serve_jira(fake: FakeJira) -> AbstractContextManager[str]:
    """Serve ``fake`` on ``127.0.0.1`` (an ephemeral port) in a thread; yields the base URL
    (``http://127.0.0.1:<port>``) to put in ``tracker.base_url``."""
    return serve_over_http(fake.handle, "Jira")
