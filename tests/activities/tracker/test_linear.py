"""Linear adapter against an in-memory Linear GraphQL endpoint behind ``httpx.MockTransport``.

The fake answers the adapter's documents (matched by identity with the module constants) from
issue nodes shaped like Linear's ``issues`` connection (``tests/fixtures/linear/``), with cursor
pagination, Linear's rate-limit headers, and its habit of answering errors with HTTP 400.
"""

from __future__ import annotations

import copy
import json
import logging
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from activities.tracker import linear
from activities.tracker.base import TrackerError, TrackerErrorCategory
from activities.tracker.http import RetryPolicy
from activities.tracker.linear import LinearTracker, marker_tag
from jidoka.config import LinearTrackerConfig
from tests.support.paths import FIXTURES as ALL_FIXTURES
from tests.support.secret_scan import register_secret

FIXTURES = ALL_FIXTURES / "linear"
TOKEN = register_secret("lin_api_S3cretT0kenValue0123456789abcdefABCDEF")
ENDPOINT = "https://api.linear.app/graphql"
SLUG = "f3a9c2b71e04"
TEAM_ID = "2b3f9c1e-7d44-4c8e-9a55-0f1d2e3c4b5a"
NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def fixture(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


def node(
    n: int,
    *,
    state: str = "Todo",
    project: str = SLUG,
    team_key: str = "ENG",
    **changes: Any,
) -> dict[str, Any]:
    obj = copy.deepcopy(fixture("issues_page.json")["data"]["issues"]["nodes"][1])
    obj.update(
        id=f"00000000-0000-4000-8000-{n:012d}",
        identifier=f"{team_key}-{n}",
        title=f"Issue {n}",
        state={"name": state},
        project={"slugId": project},
        team={"id": TEAM_ID, "key": team_key},
    )
    obj.update(changes)
    return obj


def config(**overrides: Any) -> LinearTrackerConfig:
    values: dict[str, Any] = {
        "kind": "linear",
        "project_slug": SLUG,
        "active_states": ["Todo", "In Progress"],
        "working_state": "In Progress",
        "terminal_states": ["Done", "Canceled"],
        "done_state": "Done",
    }
    values.update(overrides)
    return LinearTrackerConfig.model_validate(values)


class FakeLinear:
    def __init__(self) -> None:
        self.issues: dict[str, dict[str, Any]] = {}
        self.comments: dict[str, list[str]] = {}
        self.states: list[dict[str, str]] = fixture("workflow_states.json")["data"][
            "workflowStates"
        ]["nodes"]
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.requests: list[httpx.Request] = []
        self.page_size = 50
        self.remaining = 2499
        self.override: Callable[[httpx.Request], httpx.Response | None] | None = None

    @property
    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    def add(self, *nodes: dict[str, Any]) -> None:
        for n in nodes:
            self.issues[n["id"]] = n

    def names(self) -> list[str]:
        return [name for name, _ in self.calls]

    def headers(self) -> dict[str, str]:
        reset_ms = int((NOW + timedelta(minutes=30)).timestamp() * 1000)
        return {
            "X-RateLimit-Requests-Limit": "2500",
            "X-RateLimit-Requests-Remaining": str(self.remaining),
            "X-RateLimit-Requests-Reset": str(reset_ms),
            "X-Complexity": "120",
            "X-RateLimit-Complexity-Limit": "3000000",
            "X-RateLimit-Complexity-Remaining": "2999000",
            "X-RateLimit-Complexity-Reset": str(reset_ms),
        }

    def answer(self, data: Any, status: int = 200) -> httpx.Response:
        self.remaining -= 1
        return httpx.Response(status, json=data, headers=self.headers())

    def page(self, items: list[dict[str, Any]], variables: dict[str, Any]) -> dict[str, Any]:
        assert variables["first"] == linear.PAGE_SIZE
        start = 0
        if variables.get("after"):
            start = next(i for i, x in enumerate(items) if x["id"] == variables["after"]) + 1
        chunk = items[start : start + self.page_size]
        more = start + self.page_size < len(items)
        return {
            "nodes": chunk,
            "pageInfo": {"hasNextPage": more, "endCursor": chunk[-1]["id"] if chunk else None},
        }

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if self.override is not None:
            canned = self.override(request)
            if canned is not None:
                return canned
        body = json.loads(request.content)
        query, variables = body["query"], body["variables"]
        documents = {
            linear.ISSUES_BY_STATES_QUERY: "by_states",
            linear.ISSUES_BY_STATES_IN_TEAM_QUERY: "by_states_in_team",
            linear.ISSUES_BY_IDS_QUERY: "by_ids",
            linear.WORKFLOW_STATES_QUERY: "states",
            linear.ISSUE_UPDATE_MUTATION: "issue_update",
            linear.ISSUE_COMMENTS_QUERY: "comments",
            linear.COMMENT_CREATE_MUTATION: "comment_create",
        }
        name = documents[query]
        self.calls.append((name, variables))
        issues = list(self.issues.values())
        if name in ("by_states", "by_states_in_team"):
            found = [
                i
                for i in issues
                if i["project"]["slugId"] == variables["projectSlug"]
                # A node without a state stands for a broken payload: let it through.
                and (i["state"] is None or i["state"]["name"] in variables["stateNames"])
                and (name == "by_states" or i["team"]["key"] == variables["teamKey"])
            ]
            return self.answer({"data": {"issues": self.page(found, variables)}})
        if name == "by_ids":
            found = [i for i in issues if i["id"] in variables["ids"]]
            return self.answer({"data": {"issues": self.page(found, variables)}})
        if name == "states":
            assert variables == {"teamId": TEAM_ID}
            return self.answer({"data": {"workflowStates": {"nodes": self.states}}})
        if name == "issue_update":
            issue = self.issues[variables["id"]]
            state = next(s for s in self.states if s["id"] == variables["stateId"])
            issue["state"] = {"name": state["name"]}
            return self.answer({"data": {"issueUpdate": {"success": True, "issue": issue}}})
        if name == "comments":
            bodies = [
                {"id": f"c{i}", "body": b} for i, b in enumerate(self.comments[variables["id"]])
            ]
            connection = self.page(bodies, variables)
            connection["nodes"] = [{"body": c["body"]} for c in connection["nodes"]]
            return self.answer({"data": {"issue": {"comments": connection}}})
        if name == "comment_create":
            self.comments.setdefault(variables["issueId"], []).append(variables["body"])
            return self.answer(fixture("comment_create.json"))
        raise AssertionError(name)


@pytest.fixture
def fake() -> FakeLinear:
    return FakeLinear()


def tracker(fake: FakeLinear, cfg: LinearTrackerConfig | None = None, **kw: Any) -> LinearTracker:
    kw.setdefault("retry", RetryPolicy(attempts=3, first_delay_s=0.0))
    return LinearTracker(cfg or config(), TOKEN, transport=fake.transport, clock=lambda: NOW, **kw)


# --------------------------------------------------------------------------------------------
# The documents (test the exact fields and variable types the contract needs)
# --------------------------------------------------------------------------------------------


def declared_variables(document: str) -> dict[str, str]:
    header = re.search(r"^(?:query|mutation)\s+\w+\s*\((.*?)\)\s*\{", document, re.S | re.M)
    assert header, document
    return dict(re.findall(r"\$(\w+)\s*:\s*([\w\[\]!]+)", header.group(1)))


def used_variables(document: str) -> set[str]:
    body = document[document.index("{", document.index(")")) :]
    return set(re.findall(r"\$(\w+)", body))


ALL_DOCUMENTS = [
    linear.ISSUES_BY_STATES_QUERY,
    linear.ISSUES_BY_STATES_IN_TEAM_QUERY,
    linear.ISSUES_BY_IDS_QUERY,
    linear.WORKFLOW_STATES_QUERY,
    linear.ISSUE_UPDATE_MUTATION,
    linear.ISSUE_COMMENTS_QUERY,
    linear.COMMENT_CREATE_MUTATION,
]


@pytest.mark.parametrize("document", ALL_DOCUMENTS)
def test_documents_are_well_formed(document: str) -> None:
    assert document.count("{") == document.count("}")
    assert document.count("(") == document.count(")")
    assert set(declared_variables(document)) == used_variables(document)
    if "...JidokaIssue" in document:
        assert "fragment JidokaIssue on Issue" in document


def test_documents_pin_the_contract_variable_types() -> None:
    assert declared_variables(linear.ISSUES_BY_IDS_QUERY) == {
        "ids": "[ID!]!",
        "first": "Int!",
        "after": "String",
    }
    assert "filter: { id: { in: $ids } }" in linear.ISSUES_BY_IDS_QUERY
    assert declared_variables(linear.ISSUES_BY_STATES_QUERY) == {
        "projectSlug": "String!",
        "stateNames": "[String!]!",
        "first": "Int!",
        "after": "String",
    }
    for document in (linear.ISSUES_BY_STATES_QUERY, linear.ISSUES_BY_STATES_IN_TEAM_QUERY):
        assert "project: { slugId: { eq: $projectSlug } }" in document
        assert "state: { name: { in: $stateNames } }" in document
        assert "pageInfo { hasNextPage endCursor }" in document
    assert "team: { key: { eq: $teamKey } }" in linear.ISSUES_BY_STATES_IN_TEAM_QUERY
    assert declared_variables(linear.WORKFLOW_STATES_QUERY) == {"teamId": "ID!"}
    assert declared_variables(linear.ISSUE_UPDATE_MUTATION) == {
        "id": "String!",
        "stateId": "String!",
    }
    assert "issueUpdate(id: $id, input: { stateId: $stateId })" in linear.ISSUE_UPDATE_MUTATION
    assert declared_variables(linear.COMMENT_CREATE_MUTATION) == {
        "issueId": "String!",
        "body": "String!",
    }


def test_issue_fragment_selects_every_normalised_field() -> None:
    fragment = " ".join(linear.ISSUE_FIELDS.split())
    for field in (
        "id",
        "identifier",
        "title",
        "description",
        "priority",
        "branchName",
        "url",
        "createdAt",
        "updatedAt",
        "state { name }",
        "labels(first: 25) { nodes { name } }",
        "inverseRelations(first: 25) { nodes { type issue { id identifier state { name } } } }",
        "project { slugId }",
        "team { id key }",
    ):
        assert re.search(rf"(?<![\w]){re.escape(field)}(?![\w])", fragment), field


def test_a_page_of_issues_stays_under_linears_complexity_limit() -> None:
    # Linear's scoring: 0.1 per property, 1 per object, connections multiply by `first`.
    labels = linear.LABELS_PER_ISSUE * (1 + 0.1)
    relations = linear.BLOCKERS_PER_ISSUE * (1 + 0.1 + 1 + 0.2 + 1 + 0.1)
    issue = 1 + 9 * 0.1 + (1 + 0.1) + (1 + 0.2) + (1 + 0.1) + labels + relations
    assert linear.PAGE_SIZE * (issue + 1) < 10_000


# --------------------------------------------------------------------------------------------
# Reads
# --------------------------------------------------------------------------------------------


async def test_candidates_query_the_project_in_active_states(fake: FakeLinear) -> None:
    fake.add(node(1), node(2, state="In Progress"), node(3, state="Done"))
    fake.add(node(4, project="other-project"))
    issues = await tracker(fake).fetch_candidate_issues()
    assert sorted(i.identifier for i in issues) == ["ENG-1", "ENG-2"]
    request = fake.requests[0]
    assert request.method == "POST"
    assert str(request.url) == ENDPOINT
    # Linear API keys are sent as they are, without "Bearer".
    assert request.headers["authorization"] == TOKEN
    assert fake.calls[0] == (
        "by_states",
        {"projectSlug": SLUG, "stateNames": ["Todo", "In Progress"], "first": 50, "after": None},
    )


async def test_team_key_narrows_the_scope(fake: FakeLinear) -> None:
    fake.add(node(1), node(2, team_key="OPS"))
    issues = await tracker(fake, config(team_key="ENG")).fetch_candidate_issues()
    assert [i.identifier for i in issues] == ["ENG-1"]
    assert fake.calls[0][0] == "by_states_in_team"
    assert fake.calls[0][1]["teamKey"] == "ENG"


async def test_pagination_follows_end_cursors(fake: FakeLinear) -> None:
    fake.page_size = 2
    fake.add(*(node(n) for n in range(1, 6)))
    issues = await tracker(fake).fetch_issues_by_states(["Todo"])
    assert len(issues) == 5
    afters = [variables["after"] for _, variables in fake.calls]
    assert afters == [None, node(2)["id"], node(4)["id"]]


async def test_has_next_page_without_cursor_is_a_pagination_error(fake: FakeLinear) -> None:
    fake.override = lambda request: httpx.Response(
        200,
        json={
            "data": {
                "issues": {
                    "nodes": [node(1)],
                    "pageInfo": {"hasNextPage": True, "endCursor": None},
                }
            }
        },
    )
    with pytest.raises(TrackerError) as caught:
        await tracker(fake).fetch_candidate_issues()
    assert caught.value.category is TrackerErrorCategory.MISSING_PAGINATION_CURSOR


async def test_recorded_page_is_normalised(fake: FakeLinear) -> None:
    page = fixture("issues_page.json")
    page["data"]["issues"]["pageInfo"] = {"hasNextPage": False, "endCursor": None}
    fake.override = lambda request: httpx.Response(200, json=page)
    issues = await tracker(fake).fetch_candidate_issues()
    first, second = issues
    assert first.id == "9cfb482a-81e3-4154-b5b9-2c805e70a02d"
    assert first.identifier == "ENG-123"
    assert first.state == "Todo"
    assert first.priority == 2
    assert first.labels == ["bug", "frontend"]
    assert first.branch_name == "alice/eng-123-fix-the-login-button"
    assert first.url == "https://linear.app/acme/issue/ENG-123/fix-the-login-button"
    assert first.created_at == datetime(2024, 5, 1, 10, 0, tzinfo=UTC)
    assert first.updated_at == datetime(2024, 5, 2, 8, 30, 15, 123000, tzinfo=UTC)
    # Only "blocks" relations are blockers; "related" is not.
    assert [(b.identifier, b.state) for b in first.blocked_by] == [("ENG-100", "In Progress")]
    assert second.priority is None  # Linear 0 = no priority
    assert second.description is None
    assert second.labels == []


@pytest.mark.parametrize(
    ("raw", "expected"),
    [(1, 1), (4.0, 4), (0, None), (2.5, None), (7, None), ("2", None), (True, None), (None, None)],
)
async def test_priority_is_an_int_from_1_to_4_or_none(
    fake: FakeLinear, raw: object, expected: int | None
) -> None:
    fake.add(node(1, priority=raw))
    (issue,) = await tracker(fake).fetch_candidate_issues()
    assert issue.priority == expected


async def test_malformed_nodes_are_omitted_from_lists_but_fatal_by_id(
    fake: FakeLinear, caplog: pytest.LogCaptureFixture
) -> None:
    fake.add(node(1), node(2, title=""), node(3, identifier=None), node(4))
    fake.issues[node(4)["id"]]["state"] = None
    client = tracker(fake)
    with caplog.at_level(logging.WARNING, logger="jidoka.tracker"):
        issues = await client.fetch_candidate_issues()
    assert [i.identifier for i in issues] == ["ENG-1"]
    assert "ENG-2: no title" in caplog.text
    assert "no id or identifier" in caplog.text
    assert "ENG-4: no state name" in caplog.text
    for bad in (2, 3, 4):
        with pytest.raises(TrackerError) as caught:
            await client.fetch_issues_by_ids([node(1)["id"], node(bad)["id"]])
        assert caught.value.category is TrackerErrorCategory.MALFORMED_ISSUE
        with pytest.raises(TrackerError) as caught:
            await client.fetch_issue(node(bad)["id"])
        assert caught.value.category is TrackerErrorCategory.MALFORMED_ISSUE


async def test_by_ids_sends_the_ids_and_omits_issues_out_of_scope(fake: FakeLinear) -> None:
    fake.add(node(1), node(2, state="Done"), node(3, project="elsewhere"))
    wanted = [node(n)["id"] for n in (1, 2, 3, 4)] + [node(1)["id"]]
    found = await tracker(fake).fetch_issues_by_ids(wanted)
    assert sorted(i.identifier for i in found) == ["ENG-1", "ENG-2"]
    assert fake.calls[0][1]["ids"] == [node(n)["id"] for n in (1, 2, 3, 4)]


async def test_fetch_issue_of_a_missing_issue_is_not_found(fake: FakeLinear) -> None:
    with pytest.raises(TrackerError) as caught:
        await tracker(fake).fetch_issue("00000000-0000-4000-8000-000000000404")
    assert caught.value.category is TrackerErrorCategory.NOT_FOUND


async def test_empty_inputs_make_no_request(fake: FakeLinear) -> None:
    client = tracker(fake)
    assert await client.fetch_issues_by_states([]) == []
    assert await client.fetch_issues_by_ids([]) == []
    assert fake.requests == []


# --------------------------------------------------------------------------------------------
# Writes
# --------------------------------------------------------------------------------------------


async def test_set_state_looks_up_the_state_id_once_and_updates(fake: FakeLinear) -> None:
    fake.add(node(1), node(2))
    client = tracker(fake)
    first = await client.set_state(await client.fetch_issue(node(1)["id"]), "in progress")
    assert first.state == "In Progress"
    assert fake.issues[node(1)["id"]]["state"] == {"name": "In Progress"}
    update = next(v for name, v in fake.calls if name == "issue_update")
    assert update == {"id": node(1)["id"], "stateId": "a0000000-0000-4000-8000-000000000003"}
    await client.set_state(await client.fetch_issue(node(2)["id"]), "Done")
    assert fake.names().count("states") == 1  # cached per team
    assert fake.issues[node(2)["id"]]["state"] == {"name": "Done"}


async def test_set_state_to_the_current_state_writes_nothing(fake: FakeLinear) -> None:
    fake.add(node(1, state="In Progress"))
    client = tracker(fake)
    issue = await client.set_state(await client.fetch_issue(node(1)["id"]), "In Progress")
    assert issue.state == "In Progress"
    assert "issue_update" not in fake.names()
    assert "states" not in fake.names()


async def test_set_state_to_a_state_the_team_lacks_is_unprocessable(fake: FakeLinear) -> None:
    fake.add(node(1))
    client = tracker(fake)
    await client.set_state(await client.fetch_issue(node(1)["id"]), "In Progress")
    with pytest.raises(TrackerError) as caught:
        await client.set_state(await client.fetch_issue(node(1)["id"]), "Shipped")
    assert caught.value.category is TrackerErrorCategory.UNPROCESSABLE
    # An unknown name reloads the team's states once (it may have been added since).
    assert fake.names().count("states") == 2
    assert fake.names().count("issue_update") == 1


async def test_add_comment_is_idempotent_by_marker(fake: FakeLinear) -> None:
    fake.add(node(1))
    fake.comments[node(1)["id"]] = [c["body"] for c in _fixture_comments()]
    client = tracker(fake)
    issue = await client.fetch_issue(node(1)["id"])
    assert await client.add_comment(issue, "Shipped: PR #12", "jidoka-issue-demo-ENG-1:ship")
    assert fake.comments[issue.id][-1] == (
        "Shipped: PR #12\n\n`jidoka:jidoka-issue-demo-ENG-1:ship`"
    )
    assert not await client.add_comment(issue, "Shipped again", "jidoka-issue-demo-ENG-1:ship")
    assert len(fake.comments[issue.id]) == 3
    assert fake.names().count("comment_create") == 1


async def test_add_comment_finds_a_marker_on_a_later_page(fake: FakeLinear) -> None:
    fake.page_size = 1
    fake.add(node(1))
    fake.comments[node(1)["id"]] = ["a", "b", f"done\n\n{marker_tag('m')}"]
    client = tracker(fake)
    assert not await client.add_comment(await client.fetch_issue(node(1)["id"]), "x", "m")
    assert fake.names().count("comments") == 3


def _fixture_comments() -> list[dict[str, Any]]:
    return fixture("comments_page.json")["data"]["issue"]["comments"]["nodes"]


# --------------------------------------------------------------------------------------------
# Errors and rate limits
# --------------------------------------------------------------------------------------------


async def test_ratelimited_error_on_http_400_uses_the_reset_header(fake: FakeLinear) -> None:
    reset = NOW + timedelta(seconds=90)
    fake.override = lambda request: httpx.Response(
        400,
        json=fixture("error_ratelimited.json"),
        headers={
            "X-RateLimit-Requests-Limit": "2500",
            "X-RateLimit-Requests-Remaining": "0",
            "X-RateLimit-Requests-Reset": str(int(reset.timestamp() * 1000)),
        },
    )
    client = tracker(fake)
    with pytest.raises(TrackerError) as caught:
        await client.fetch_candidate_issues()
    assert caught.value.category is TrackerErrorCategory.RATE_LIMITED
    assert caught.value.retryable
    assert caught.value.retry_after_s == pytest.approx(91.0)
    assert len(fake.requests) == 1
    snapshot = client.rate_limit
    assert snapshot is not None
    assert (snapshot.remaining, snapshot.resource, snapshot.reset_at) == (0, "requests", reset)


async def test_http_429_is_a_rate_limit_too(fake: FakeLinear) -> None:
    fake.override = lambda request: httpx.Response(429, headers={"Retry-After": "12"})
    with pytest.raises(TrackerError) as caught:
        await tracker(fake).fetch_candidate_issues()
    assert caught.value.category is TrackerErrorCategory.RATE_LIMITED
    assert caught.value.retry_after_s == pytest.approx(12.0)


@pytest.mark.parametrize(
    ("status", "body", "category", "retryable"),
    [
        (400, "error_authentication.json", TrackerErrorCategory.AUTH, False),
        (401, "error_authentication.json", TrackerErrorCategory.AUTH, False),
        (400, "error_validation.json", TrackerErrorCategory.GRAPHQL_ERRORS, False),
        (200, "error_validation.json", TrackerErrorCategory.GRAPHQL_ERRORS, False),
    ],
)
async def test_graphql_errors_map_to_categories(
    fake: FakeLinear, status: int, body: str, category: TrackerErrorCategory, retryable: bool
) -> None:
    fake.override = lambda request: httpx.Response(status, json=fixture(body))
    with pytest.raises(TrackerError) as caught:
        await tracker(fake).fetch_candidate_issues()
    assert caught.value.category is category
    assert caught.value.retryable is retryable
    assert json.loads((FIXTURES / body).read_text())["errors"][0]["message"] in str(caught.value)


async def test_partial_data_with_errors_is_still_an_error(fake: FakeLinear) -> None:
    page = fixture("issues_page.json")
    page["errors"] = fixture("error_validation.json")["errors"]
    fake.override = lambda request: httpx.Response(200, json=page)
    with pytest.raises(TrackerError) as caught:
        await tracker(fake).fetch_candidate_issues()
    assert caught.value.category is TrackerErrorCategory.GRAPHQL_ERRORS


@pytest.mark.parametrize(
    ("response", "category"),
    [
        (httpx.Response(200, json={"data": None}), TrackerErrorCategory.UNKNOWN_PAYLOAD),
        (httpx.Response(200, text="not json"), TrackerErrorCategory.UNKNOWN_PAYLOAD),
        (httpx.Response(200, json={"data": {"issues": {}}}), TrackerErrorCategory.UNKNOWN_PAYLOAD),
        (httpx.Response(400, text="Bad Request"), TrackerErrorCategory.API_STATUS),
        (httpx.Response(404, text="nope"), TrackerErrorCategory.NOT_FOUND),
    ],
)
async def test_unusable_answers(
    fake: FakeLinear, response: httpx.Response, category: TrackerErrorCategory
) -> None:
    fake.override = lambda request: response
    with pytest.raises(TrackerError) as caught:
        await tracker(fake).fetch_candidate_issues()
    assert caught.value.category is category
    assert not caught.value.retryable


async def test_server_errors_are_retried_then_reported_retryable(fake: FakeLinear) -> None:
    fake.override = lambda request: httpx.Response(503, text="upstream unavailable")
    with pytest.raises(TrackerError) as caught:
        await tracker(fake).fetch_candidate_issues()
    assert caught.value.category is TrackerErrorCategory.API_STATUS
    assert caught.value.retryable
    assert len(fake.requests) == 3


async def test_comment_creation_is_never_resent(fake: FakeLinear) -> None:
    fake.add(node(1))
    fake.comments[node(1)["id"]] = []
    client = tracker(fake)
    issue = await client.fetch_issue(node(1)["id"])

    def fail_mutation(request: httpx.Request) -> httpx.Response | None:
        if json.loads(request.content)["query"] == linear.COMMENT_CREATE_MUTATION:
            return httpx.Response(502, text="bad gateway")
        return None

    fake.override = fail_mutation
    with pytest.raises(TrackerError) as caught:
        await client.add_comment(issue, "hello", "m")
    assert caught.value.retryable
    creates = [
        r for r in fake.requests if json.loads(r.content)["query"] == linear.COMMENT_CREATE_MUTATION
    ]
    assert len(creates) == 1


async def test_transport_failure_is_a_retryable_request_error(fake: FakeLinear) -> None:
    def drop(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=request)

    fake.override = drop
    with pytest.raises(TrackerError) as caught:
        await tracker(fake).fetch_candidate_issues()
    assert caught.value.category is TrackerErrorCategory.API_REQUEST
    assert caught.value.retryable


async def test_rate_limit_snapshot_is_the_tighter_budget(fake: FakeLinear) -> None:
    fake.add(node(1))
    client = tracker(fake)
    await client.fetch_candidate_issues()
    snapshot = client.rate_limit
    assert snapshot is not None
    # 2498/2500 requests left is tighter than 2,999,000/3,000,000 complexity points.
    assert (snapshot.resource, snapshot.remaining, snapshot.limit) == ("requests", 2498, 2500)
    assert snapshot.reset_at == NOW + timedelta(minutes=30)


async def test_token_never_appears_in_errors_logs_or_reprs(
    fake: FakeLinear, caplog: pytest.LogCaptureFixture
) -> None:
    seen: list[str] = []

    def echo(request: httpx.Request) -> httpx.Response:
        auth = request.headers["authorization"]
        seen.append(auth)
        if len(seen) == 1:
            return httpx.Response(400, json={"errors": [{"message": f"key {auth} is not valid"}]})
        return httpx.Response(500, text=f"oops {auth}")

    fake.override = echo
    client = tracker(fake)
    errors: list[TrackerError] = []
    with caplog.at_level(logging.DEBUG):
        for _ in range(2):
            with pytest.raises(TrackerError) as caught:
                await client.fetch_candidate_issues()
            errors.append(caught.value)
    assert seen and all(a == TOKEN for a in seen)
    assert "***" in str(errors[0])
    for error in errors:
        assert TOKEN not in str(error)
        assert TOKEN not in error.message
    assert caplog.records
    assert TOKEN not in caplog.text
    assert TOKEN not in repr(client)


async def test_an_exhausted_endpoint_budget_sets_the_wait(fake: FakeLinear) -> None:
    reset = NOW + timedelta(seconds=40)
    headers = {
        **fake.headers(),
        "X-RateLimit-Endpoint-Requests-Limit": "100",
        "X-RateLimit-Endpoint-Requests-Remaining": "0",
        "X-RateLimit-Endpoint-Requests-Reset": str(int(reset.timestamp() * 1000)),
        "X-RateLimit-Endpoint-Name": "issueCreate",
    }
    fake.override = lambda request: httpx.Response(
        400, json=fixture("error_ratelimited.json"), headers=headers
    )
    client = tracker(fake)
    with pytest.raises(TrackerError) as caught:
        await client.fetch_candidate_issues()
    assert caught.value.retry_after_s == pytest.approx(41.0)
    assert client.rate_limit is not None and client.rate_limit.resource == "endpoint"
