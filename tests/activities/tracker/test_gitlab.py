"""GitLab issues adapter against an in-memory GitLab behind ``httpx.MockTransport``.

The fake (``tests/support/fakes/gitlab_server.py``) keeps issues, notes, issue links and merge
requests in GitLab's documented REST v4 shapes, serves them with ``X-Next-Page``/``Link``
pagination, ETags and ``RateLimit-*`` headers, applies writes (scoped labels exclusive per
scope, as on Premium), and answers errors in GitLab's shapes, so tests assert on what GitLab
would end up holding. The contract checks mirror tests/activities/tracker/test_github.py.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from activities.tracker.base import TrackerError, TrackerErrorCategory
from activities.tracker.github import marker_tag
from activities.tracker.gitlab import (
    OPEN_BLOCKER,
    GitLabTracker,
    GitLabTrackerConfig,
    api_url,
    draft_title,
    gitlab_message,
    issue_reference,
)
from activities.tracker.http import RetryPolicy
from jidoka.config import label_scope
from jidoka.models import Issue
from jidoka.workflow_file import gitlab_mapping_problems
from tests.support.fakes.gitlab_server import (
    BASE_URL,
    NOW,
    PROJECT,
    PROJECT_ID,
    FakeGitLab,
    error_response,
    make_issue,
    make_merge_request,
    make_note,
    serve_gitlab,
)
from tests.support.secret_scan import register_secret

TOKEN = register_secret("glpat-S3cretT0kenValue_0123456789abcd")
ENCODED = "acme%2Fplatform%2Fwidgets"
ISSUES = f"/api/v4/projects/{ENCODED}/issues"


def config(**overrides: Any) -> GitLabTrackerConfig:
    values: dict[str, Any] = {
        "kind": "gitlab",
        "project": PROJECT,
        "base_url": BASE_URL,
        "active_states": ["Todo", "In Progress"],
        "working_state": "In Progress",
        "paused_states": ["Awaiting Answers"],
        "backlog_states": ["Backlog"],
        "terminal_states": ["Done", "Cancelled"],
        "done_state": "Done",
        "default_open_state": "Backlog",
        "state_labels": {
            "Todo": "jidoka::todo",
            "In Progress": "jidoka::in-progress",
            "Awaiting Answers": "jidoka::awaiting-answers",
            "Cancelled": "jidoka::cancelled",
        },
        "closed_states": ["Done", "Cancelled"],
        "priority_labels": {"priority::1": 1, "Priority::2": 2, "priority::3": 3},
    }
    values.update(overrides)
    return GitLabTrackerConfig.model_validate(values)


@pytest.fixture
def gl() -> FakeGitLab:
    return FakeGitLab()


def tracker(gl: FakeGitLab, cfg: GitLabTrackerConfig | None = None, **kw: Any) -> GitLabTracker:
    kw.setdefault("retry", RetryPolicy(attempts=3, first_delay_s=0.0))
    return GitLabTracker(cfg or config(), TOKEN, transport=gl.transport, clock=lambda: NOW, **kw)


def ids(issues: list[Issue]) -> list[str]:
    return sorted((i.id for i in issues), key=int)


def raw_path(request: httpx.Request) -> str:
    return request.url.raw_path.decode().split("?", 1)[0]


def listings(gl: FakeGitLab) -> list[httpx.Request]:
    return [r for r in gl.requests if raw_path(r) == ISSUES]


# --------------------------------------------------------------------------------------------
# Configuration
# --------------------------------------------------------------------------------------------


def test_config_defaults_and_numeric_project() -> None:
    cfg = config(project=1234)  # YAML reads a bare id as an int
    assert cfg.project == "1234"
    assert cfg.api_key == "$GITLAB_TOKEN"
    assert config().base_url == BASE_URL
    minimal = GitLabTrackerConfig.model_validate(
        {
            "kind": "gitlab",
            "project": "group/app",
            "active_states": ["Todo"],
            "terminal_states": ["Done"],
            "done_state": "Done",
        }
    )
    assert minimal.base_url == "https://gitlab.com"
    assert (minimal.merge_request_target, minimal.draft_merge_requests) == (None, False)
    assert minimal.model_dump() == {  # only what the file set travels in payloads
        "kind": "gitlab",
        "project": "group/app",
        "active_states": ["Todo"],
        "terminal_states": ["Done"],
        "done_state": "Done",
    }


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("project", "just-a-name"),
        ("project", "group/app/"),
        ("project", "0"),
        ("project", "group/a b"),
        ("api_key", "glpat-literal-token"),
        ("unknown_key", 1),
    ],
)
def test_config_rejects(field: str, value: Any) -> None:
    with pytest.raises(ValidationError):
        config(**{field: value})


def test_api_url_accepts_a_base_with_or_without_api_v4() -> None:
    assert api_url("https://gitlab.com") == "https://gitlab.com/api/v4"
    assert api_url("https://gitlab.example.com/") == "https://gitlab.example.com/api/v4"
    assert api_url("https://example.com/gitlab/api/v4/") == "https://example.com/gitlab/api/v4"


def test_the_test_profile_has_no_gitlab_mapping_problems() -> None:
    assert gitlab_mapping_problems(config()) == []


def test_mapping_problems_name_their_keys() -> None:
    def paths(**overrides: Any) -> list[str]:
        return [f"{p.path}: {p.message}" for p in gitlab_mapping_problems(config(**overrides))]

    # A closed state after the first needs a label: without one it could never be read.
    unlabelled = paths(state_labels={"Todo": "jidoka::todo", "In Progress": "jidoka::doing"})
    assert any("'Cancelled' has no label" in p for p in unlabelled)
    # A declared state with no representation at all.
    assert any(
        "'Awaiting Answers' has no GitLab representation" in p
        for p in paths(state_labels={"Todo": "a", "In Progress": "b", "Cancelled": "c"})
    )
    shared = paths(
        state_labels={
            "Todo": "jidoka::todo",
            "In Progress": "JIDOKA::TODO",
            "Awaiting Answers": "x",
            "Cancelled": "y",
        }
    )
    assert any(p.startswith("tracker.state_labels.In Progress: label") for p in shared)
    assert any("comma" in p for p in paths(state_labels={**config().state_labels, "Todo": "a,b"}))
    assert any("'Any'" in p for p in paths(state_labels={**config().state_labels, "Todo": "Any"}))
    assert any(p.startswith("tracker.default_open_state") for p in paths(default_open_state="Done"))
    assert any("terminal" in p for p in paths(closed_states=["Done", "Todo"]))
    # Scoped labels: GitLab keeps one label per scope, so a priority label in the state labels'
    # scope would be removed by every move.
    clash = paths(priority_labels={"jidoka::urgent": 1}, paused_labels=["jidoka::paused"])
    assert [p.split(":")[0] for p in clash] == [
        "tracker.priority_labels.jidoka",
        "tracker.paused_labels",
    ]


def test_label_scopes_follow_gitlabs_last_separator_rule() -> None:
    assert label_scope("jidoka::todo") == "jidoka"
    assert label_scope("Team::Platform::Todo") == "team::platform"
    assert label_scope("plain") is None
    assert label_scope("::odd") is None


# --------------------------------------------------------------------------------------------
# Reads
# --------------------------------------------------------------------------------------------


async def test_listing_follows_x_next_page_and_sends_gitlab_requests(gl: FakeGitLab) -> None:
    gl.page_size = 2
    for n in range(1, 6):
        gl.issues[n] = make_issue(n, labels=["jidoka::todo"])
    issues = await tracker(gl).fetch_issues_by_states(["Todo"])
    assert ids(issues) == ["1", "2", "3", "4", "5"]
    pages = listings(gl)
    assert [r.url.params.get("page") for r in pages] == [None, "2", "3"]
    first = pages[0]
    # The project path is URL-encoded, as GitLab requires.
    assert first.url.raw_path.startswith(f"/api/v4/projects/{ENCODED}/issues?".encode())
    assert first.url.host == "gitlab.example.com"
    assert first.url.params["state"] == "opened"
    assert first.url.params["labels"] == "jidoka::todo"
    assert first.url.params["per_page"] == "100"
    assert (first.url.params["order_by"], first.url.params["sort"]) == ("created_at", "asc")
    assert first.headers["authorization"] == f"Bearer {TOKEN}"


async def test_link_pagination_is_followed_when_x_next_page_is_absent(gl: FakeGitLab) -> None:
    gl.page_size = 2
    gl.pagination = "link"
    for n in range(1, 6):
        gl.issues[n] = make_issue(n, labels=["jidoka::todo"])
    assert ids(await tracker(gl).fetch_issues_by_states(["Todo"])) == ["1", "2", "3", "4", "5"]
    assert len(listings(gl)) == 3


async def test_an_x_next_page_that_does_not_advance_is_a_pagination_error(gl: FakeGitLab) -> None:
    gl.override = lambda request: httpx.Response(
        200, json=[make_issue(1, labels=["jidoka::todo"])], headers={"X-Next-Page": "1"}
    )
    with pytest.raises(TrackerError) as caught:
        await tracker(gl).fetch_issues_by_states(["Todo"])
    assert caught.value.category is TrackerErrorCategory.MISSING_PAGINATION_CURSOR
    assert len(gl.requests) == 1


async def test_an_empty_page_ends_a_listing_whatever_the_headers_say(gl: FakeGitLab) -> None:
    gl.override = lambda request: httpx.Response(200, json=[], headers={"X-Next-Page": "2"})
    assert await tracker(gl).fetch_issues_by_states(["Todo"]) == []
    assert len(gl.requests) == 1


async def test_pagination_never_carries_the_token_to_another_host(gl: FakeGitLab) -> None:
    gl.override = lambda request: httpx.Response(
        200,
        json=[make_issue(1, labels=["jidoka::todo"])],
        headers={"Link": '<https://evil.example/steal?page=2>; rel="next"'},
    )
    with pytest.raises(TrackerError) as caught:
        await tracker(gl).fetch_candidate_issues()
    assert caught.value.category is TrackerErrorCategory.UNKNOWN_PAYLOAD
    assert all(r.url.host == "gitlab.example.com" for r in gl.requests)


async def test_candidates_map_labels_to_states(gl: FakeGitLab) -> None:
    gl.issues[1] = make_issue(1, labels=["jidoka::todo"])
    gl.issues[2] = make_issue(2, labels=["bug", "jidoka::in-progress"])
    gl.issues[3] = make_issue(3, labels=["jidoka::awaiting-answers"])
    gl.issues[4] = make_issue(4, labels=[])  # Backlog: not a candidate
    gl.issues[5] = make_issue(5, labels=["jidoka::todo"], state="closed")
    issues = await tracker(gl).fetch_candidate_issues()
    assert {i.id: i.state for i in issues} == {"1": "Todo", "2": "In Progress"}
    # One listing per labelled active state: GitLab's label filter is an AND.
    assert sorted(r.url.params["labels"] for r in listings(gl)) == [
        "jidoka::in-progress",
        "jidoka::todo",
    ]


async def test_default_open_state_takes_open_issues_without_a_state_label(gl: FakeGitLab) -> None:
    gl.issues[1] = make_issue(1, labels=["enhancement"])
    gl.issues[2] = make_issue(2, labels=["jidoka::todo"])
    gl.issues[3] = make_issue(3, labels=["jidoka::cancelled"])  # reopened by a person
    issues = await tracker(gl).fetch_issues_by_states(["Backlog", "Todo"])
    # A closed-state label on an open issue is stale: the issue reads by its open group.
    assert {i.id: i.state for i in issues} == {"1": "Backlog", "2": "Todo", "3": "Backlog"}
    # Unlabelled issues can only be found by listing every open issue: one listing.
    assert len(listings(gl)) == 1
    assert "labels" not in listings(gl)[0].url.params


async def test_without_a_default_an_unlabelled_open_issue_is_not_the_lines(gl: FakeGitLab) -> None:
    gl.issues[1] = make_issue(1, labels=["enhancement"])
    client = tracker(gl, config(default_open_state=None, backlog_states=[]))
    assert await client.fetch_issues_by_ids(["1"]) == []
    with pytest.raises(TrackerError) as caught:
        await client.fetch_issue("1")
    assert caught.value.category is TrackerErrorCategory.NOT_FOUND


async def test_closed_issues_map_by_closed_state_labels(gl: FakeGitLab) -> None:
    gl.issues[1] = make_issue(1, state="closed")  # closed by a person: the first closed state
    gl.issues[2] = make_issue(2, state="closed", labels=["jidoka::cancelled"])
    # Closed in the UI mid-run: its open-state label stays on but means nothing any more.
    gl.issues[3] = make_issue(3, state="closed", labels=["jidoka::in-progress"])
    gl.issues[4] = make_issue(4, state="closed", moved_to_id=9999)  # lives on elsewhere
    gl.issues[5] = make_issue(5, labels=["jidoka::todo"])
    issues = await tracker(gl).fetch_issues_by_states(["Done", "Cancelled"])
    assert {i.id: i.state for i in issues} == {"1": "Done", "2": "Cancelled", "3": "Done"}
    (closed,) = listings(gl)
    assert closed.url.params["state"] == "closed"
    assert (closed.url.params["order_by"], closed.url.params["sort"]) == ("updated_at", "desc")


async def test_issue_is_normalised(gl: FakeGitLab) -> None:
    gl.issues[7] = make_issue(
        7,
        title="Widgets crash on start",
        description="Steps to reproduce...",
        labels=["Bug", "jidoka::todo", " Priority::2 ", "priority::3", "bug"],
        created_at=datetime(2025, 12, 30, 8, 0, tzinfo=UTC),
        updated_at=datetime(2026, 1, 1, 9, 30, tzinfo=UTC),
    )
    issue = await tracker(gl).fetch_issue("7")
    assert issue.id == "7"
    assert issue.identifier == "widgets#7"
    assert issue.title == "Widgets crash on start"
    assert issue.description == "Steps to reproduce..."
    assert issue.state == "Todo"
    assert issue.url == f"{BASE_URL}/{PROJECT}/-/issues/7"
    assert issue.labels == ["bug", "jidoka::todo", "priority::2", "priority::3"]
    assert issue.priority == 2
    assert issue.created_at == datetime(2025, 12, 30, 8, 0, tzinfo=UTC)
    assert issue.updated_at == datetime(2026, 1, 1, 9, 30, tzinfo=UTC)
    assert issue.blocked_by == []
    assert issue.branch_name is None


async def test_blockers_come_from_is_blocked_by_links(gl: FakeGitLab) -> None:
    gl.issues[7] = make_issue(7, labels=["jidoka::todo"])
    gl.issues[8] = make_issue(8, labels=["jidoka::in-progress"])
    gl.issues[9] = make_issue(9, state="closed")
    gl.issues[10] = make_issue(10, labels=["enhancement"])
    gl.issues[11] = make_issue(11, labels=["jidoka::todo"])
    other = make_issue(3, project="acme/lib", project_id=77, labels=["help wanted"])
    other_closed = make_issue(4, project="acme/lib", project_id=77, state="closed")
    gl.link(7, gl.issues[8])
    gl.link(7, gl.issues[9])
    gl.link(7, other)
    gl.link(7, other_closed)
    gl.link(7, gl.issues[11], link_type="relates_to")  # not a blocker
    gl.link(7, gl.issues[10], link_type="blocks")  # 7 blocks 10: not 7's blocker
    issue = await tracker(gl, config(default_open_state=None, backlog_states=[])).fetch_issue("7")
    assert [(b.id, b.identifier, b.state) for b in issue.blocked_by] == [
        ("8", "widgets#8", "In Progress"),  # same project: read by the line's own mapping
        ("9", "widgets#9", "Done"),  # closed: a closed state, which never blocks
        (None, "acme/lib#3", OPEN_BLOCKER),  # open, in none of the line's states: blocks
        (None, "acme/lib#4", "Done"),
    ]


async def test_blockers_are_read_for_open_issues_only(gl: FakeGitLab) -> None:
    gl.issues[1] = make_issue(1, labels=["jidoka::todo"])
    gl.issues[2] = make_issue(2, state="closed")
    gl.issues[3] = make_issue(3, labels=["jidoka::todo"])
    gl.link(1, gl.issues[3])
    found = await tracker(gl).fetch_issues_by_states(["Todo", "Done"])
    assert {i.id: [b.id for b in i.blocked_by] for i in found} == {"1": ["3"], "2": [], "3": []}
    link_reads = sorted(raw_path(r) for r in gl.requests if raw_path(r).endswith("/links"))
    assert link_reads == [f"{ISSUES}/1/links", f"{ISSUES}/3/links"]


async def test_a_project_by_numeric_id_names_issues_from_their_references(gl: FakeGitLab) -> None:
    gl.issues[7] = make_issue(7, labels=["jidoka::todo"])
    issue = await tracker(gl, config(project=PROJECT_ID)).fetch_issue("7")
    assert issue.identifier == "widgets#7"
    assert raw_path(gl.requests[0]) == f"/api/v4/projects/{PROJECT_ID}/issues/7"


async def test_malformed_records_are_omitted_from_lists_but_fatal_by_id(
    gl: FakeGitLab, caplog: pytest.LogCaptureFixture
) -> None:
    gl.issues[1] = make_issue(1, labels=["jidoka::todo"])
    gl.issues[2] = make_issue(2, title="  ", labels=["jidoka::todo"])
    # Two open-state labels: GitLab Free keeps both (scoped labels are a paid feature).
    gl.issues[3] = make_issue(3, labels=["jidoka::todo", "jidoka::in-progress"])
    gl.issues[4] = make_issue(4, labels=["jidoka::todo"])
    gl.issues[4]["labels"] = "jidoka::todo"
    client = tracker(gl)
    with caplog.at_level(logging.WARNING, logger="jidoka.tracker"):
        issues = await client.fetch_candidate_issues()
    assert ids(issues) == ["1"]
    assert "#2: no title" in caplog.text
    assert "#3: several open-state labels" in caplog.text
    assert "#4: labels is not a list" in caplog.text
    for bad in ("2", "3", "4"):
        with pytest.raises(TrackerError) as caught:
            await client.fetch_issue(bad)
        assert caught.value.category is TrackerErrorCategory.MALFORMED_ISSUE
        with pytest.raises(TrackerError) as caught:
            await client.fetch_issues_by_ids(["1", bad])
        assert caught.value.category is TrackerErrorCategory.MALFORMED_ISSUE


async def test_a_listed_record_without_an_iid_is_omitted(
    gl: FakeGitLab, caplog: pytest.LogCaptureFixture
) -> None:
    broken = make_issue(9, labels=["jidoka::todo"])
    broken["iid"] = None
    gl.override = lambda request: (
        httpx.Response(200, json=[broken, make_issue(1, labels=["jidoka::todo"]), "junk"])
        if raw_path(request) == ISSUES
        else None
    )
    gl.issues[1] = make_issue(1, labels=["jidoka::todo"])
    with caplog.at_level(logging.WARNING, logger="jidoka.tracker"):
        assert ids(await tracker(gl).fetch_issues_by_states(["Todo"])) == ["1"]
    assert "no usable iid" in caplog.text
    assert "not a JSON object" in caplog.text


async def test_empty_inputs_make_no_request(gl: FakeGitLab) -> None:
    client = tracker(gl)
    assert await client.fetch_issues_by_states([]) == []
    assert await client.fetch_issues_by_ids([]) == []
    assert await client.fetch_issues_by_ids(["not-an-iid", "0", ""]) == []
    # States this line cannot represent on GitLab hold nothing: no request either.
    assert await client.fetch_issues_by_states(["Nowhere"]) == []
    assert gl.requests == []


async def test_by_ids_is_one_batched_listing_that_omits_gone_and_out_of_scope_issues(
    gl: FakeGitLab,
) -> None:
    gl.issues[1] = make_issue(1, labels=["jidoka::in-progress"])
    gl.issues[2] = make_issue(2, labels=["enhancement"])  # open, no state label: Backlog
    gl.issues[3] = make_issue(3, state="closed", moved_to_id=12)
    gl.issues[4] = make_issue(4, state="closed", labels=["jidoka::cancelled"])
    client = tracker(gl, config(default_open_state=None, backlog_states=[]))
    found = await client.fetch_issues_by_ids(["1", "2", "3", "4", "99", "#1", "x"])
    assert [(i.id, i.state) for i in found] == [("1", "In Progress"), ("4", "Cancelled")]
    (listing,) = listings(gl)
    assert listing.url.params.get_list("iids[]") == ["1", "2", "3", "4", "99"]
    assert "state" not in listing.url.params  # all states: a closed issue is news too


async def test_by_ids_reads_in_batches_of_one_hundred(gl: FakeGitLab) -> None:
    for n in range(1, 151):
        gl.issues[n] = make_issue(n, state="closed")
    found = await tracker(gl).fetch_issues_by_ids([str(n) for n in range(1, 151)])
    assert [i.id for i in found] == [str(n) for n in range(1, 151)]
    assert [len(r.url.params.get_list("iids[]")) for r in listings(gl)] == [100, 50]


async def test_by_ids_is_all_or_nothing(gl: FakeGitLab) -> None:
    for n in range(1, 5):
        gl.issues[n] = make_issue(n, labels=["jidoka::todo"])

    def broken(request: httpx.Request) -> httpx.Response | None:
        if raw_path(request).endswith("/3/links"):
            return error_response(502)
        return None

    gl.override = broken
    with pytest.raises(TrackerError) as caught:
        await tracker(gl).fetch_issues_by_ids(["1", "2", "3", "4"])
    assert caught.value.category is TrackerErrorCategory.API_STATUS
    assert caught.value.retryable


async def test_single_reads_are_conditional(gl: FakeGitLab) -> None:
    gl.issues[1] = make_issue(1, labels=["jidoka::todo"])
    client = tracker(gl)
    first = await client.fetch_issue("1")
    second = await client.fetch_issue("1")
    assert second == first
    assert gl.not_modified == 2  # the issue and its links
    gl.issues[1]["title"] = "Renamed"
    assert (await client.fetch_issue("1")).title == "Renamed"


async def test_non_json_and_wrong_shapes_are_unknown_payloads(gl: FakeGitLab) -> None:
    gl.override = lambda request: httpx.Response(200, text="<html>sign in</html>")
    with pytest.raises(TrackerError) as caught:
        await tracker(gl).fetch_issue("1")
    assert caught.value.category is TrackerErrorCategory.UNKNOWN_PAYLOAD
    gl.override = lambda request: httpx.Response(200, json={"issues": []})
    with pytest.raises(TrackerError) as caught:
        await tracker(gl).fetch_candidate_issues()
    assert caught.value.category is TrackerErrorCategory.UNKNOWN_PAYLOAD


# --------------------------------------------------------------------------------------------
# Errors and rate limits
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "category", "retryable", "says"),
    [
        (400, TrackerErrorCategory.UNPROCESSABLE, False, "title is missing"),
        (401, TrackerErrorCategory.AUTH, False, "401 Unauthorized"),
        (403, TrackerErrorCategory.AUTH, False, "403 Forbidden"),
        (404, TrackerErrorCategory.NOT_FOUND, False, "404 Not found"),
        (409, TrackerErrorCategory.CONFLICT, False, "Another open merge request"),
        (422, TrackerErrorCategory.UNPROCESSABLE, False, "title is too long"),
        (500, TrackerErrorCategory.API_STATUS, True, "500 Internal Server Error"),
        (502, TrackerErrorCategory.API_STATUS, True, "GitLab is not responding"),
        (503, TrackerErrorCategory.API_STATUS, True, "HTTP 503"),
        (418, TrackerErrorCategory.API_STATUS, False, "418 Error"),
    ],
)
async def test_http_statuses_map_to_categories(
    gl: FakeGitLab, status: int, category: TrackerErrorCategory, retryable: bool, says: str
) -> None:
    gl.override = lambda request: error_response(status)
    with pytest.raises(TrackerError) as caught:
        await tracker(gl).fetch_issue("1")
    assert caught.value.category is category
    assert caught.value.retryable is retryable
    assert caught.value.retry_after_s is None
    assert f"HTTP {status}" in str(caught.value)
    assert says in str(caught.value)
    # Reads are retried in-process on 5xx only.
    assert len(gl.requests) == (3 if status >= 500 else 1)


def test_gitlab_messages_in_every_shape() -> None:
    assert gitlab_message({"message": "404 Project Not Found"}) == "404 Project Not Found"
    assert gitlab_message({"message": ["a", "b"]}) == "a; b"
    assert gitlab_message({"message": {"title": ["can't be blank"], "labels": "bad"}}) == (
        "title can't be blank; labels bad"
    )
    assert gitlab_message({"error": "invalid_token", "error_description": "expired"}) == (
        "invalid_token; expired"
    )
    assert gitlab_message(None) == ""
    assert len(gitlab_message({"message": "x" * 5000})) == 300


async def test_a_transient_5xx_is_absorbed_by_the_in_process_retry(gl: FakeGitLab) -> None:
    gl.issues[1] = make_issue(1, labels=["jidoka::todo"])
    failures = [error_response(502)]
    gl.override = lambda request: failures.pop() if failures else None
    assert (await tracker(gl).fetch_issue("1")).id == "1"
    assert len(gl.requests) == 3  # the failed read, its retry, the links


async def test_transport_failure_is_a_retryable_request_error(gl: FakeGitLab) -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    gl.override = refuse
    sleeps: list[float] = []

    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)

    client = tracker(gl, retry=RetryPolicy(attempts=3, first_delay_s=0.5), sleep=sleep)
    with pytest.raises(TrackerError) as caught:
        await client.fetch_candidate_issues()
    assert caught.value.category is TrackerErrorCategory.API_REQUEST
    assert caught.value.retryable
    assert sleeps == [0.5, 1.0]


@pytest.mark.parametrize(
    ("headers", "expected_wait"),
    [
        ({"Retry-After": "30", "RateLimit-Reset": str(int(NOW.timestamp()) + 50)}, 30.0),
        ({"Retry-After": "Fri, 02 Jan 2026 03:05:05 GMT"}, 60.0),
        ({"RateLimit-Reset": str(int(NOW.timestamp()) + 45)}, 46.0),
        ({"RateLimit-ResetTime": "Fri, 02 Jan 2026 03:04:25 GMT"}, 21.0),
        ({}, 60.0),
    ],
)
async def test_rate_limits_wait_as_gitlab_says(
    gl: FakeGitLab, headers: dict[str, str], expected_wait: float
) -> None:
    gl.override = lambda request: error_response(429, **headers)
    client = tracker(gl)
    with pytest.raises(TrackerError) as caught:
        await client.fetch_candidate_issues()
    error = caught.value
    assert error.category is TrackerErrorCategory.RATE_LIMITED
    assert error.retryable
    assert error.retry_after_s == pytest.approx(expected_wait)
    # The plain-text body ("Retry later") is not JSON: the reason phrase stands in for it.
    assert "HTTP 429: Too Many Requests" in error.message
    # Not hammered: a rate limit is the caller's to wait out.
    assert len(gl.requests) == 1


async def test_rate_limit_snapshot_follows_answers(gl: FakeGitLab) -> None:
    gl.issues[1] = make_issue(1, labels=["jidoka::todo"])
    client = tracker(gl)
    assert client.rate_limit is None
    await client.fetch_issue("1")
    snapshot = client.rate_limit
    assert snapshot is not None
    assert (snapshot.remaining, snapshot.limit) == (gl.remaining, 2000)
    assert snapshot.resource == "throttle_authenticated_api"
    assert snapshot.reset_at == NOW + timedelta(minutes=1)
    assert not snapshot.exhausted


# --------------------------------------------------------------------------------------------
# Writes: states
# --------------------------------------------------------------------------------------------


async def test_set_state_swaps_state_labels_in_one_put_and_is_idempotent(gl: FakeGitLab) -> None:
    gl.scoped_labels = False  # GitLab Free: scoped labels are plain labels
    gl.issues[7] = make_issue(7, labels=["bug", "Jidoka::Todo"])  # a person's spelling
    client = tracker(gl)
    issue = await client.fetch_issue("7")
    updated = await client.set_state(issue, "in progress")
    assert updated.state == "In Progress"
    assert gl.label_names(7) == ["bug", "jidoka::in-progress"]
    assert gl.writes() == [f"PUT {ISSUES}/7"]
    put = next(r for r in gl.requests if r.method == "PUT")
    # Removed as spelled on the issue: GitLab matches label titles exactly.
    assert json.loads(put.content) == {
        "add_labels": "jidoka::in-progress",
        "remove_labels": "Jidoka::Todo",
    }
    before = len(gl.writes())
    again = await client.set_state(updated, "In Progress")
    assert again.state == "In Progress"
    assert len(gl.writes()) == before


async def test_set_state_with_exclusive_scoped_labels(gl: FakeGitLab) -> None:
    gl.scoped_labels = True  # Premium: adding jidoka::in-progress drops jidoka::todo itself
    gl.issues[7] = make_issue(7, labels=["priority::1", "jidoka::todo", "team::web"])
    client = tracker(gl)
    issue = await client.fetch_issue("7")
    updated = await client.set_state(issue, "In Progress")
    assert updated.state == "In Progress"
    assert updated.priority == 1
    # Other scopes are untouched; the state scope holds one label.
    assert gl.label_names(7) == ["priority::1", "team::web", "jidoka::in-progress"]
    assert gl.writes() == [f"PUT {ISSUES}/7"]


async def test_set_state_keeps_the_callers_blockers(gl: FakeGitLab) -> None:
    gl.issues[7] = make_issue(7, labels=["jidoka::todo"])
    gl.issues[8] = make_issue(8, labels=["jidoka::todo"])
    gl.link(7, gl.issues[8])
    client = tracker(gl)
    issue = await client.fetch_issue("7")
    reads = len(gl.requests)
    moved = await client.set_state(issue, "In Progress")
    assert moved.blocked_by == issue.blocked_by != []
    assert len(gl.requests) == reads + 2  # the issue re-read and the PUT: no links read


async def test_set_state_to_a_closed_state_closes_with_its_label(gl: FakeGitLab) -> None:
    gl.issues[7] = make_issue(7, labels=["bug", "jidoka::in-progress"])
    client = tracker(gl)
    cancelled = await client.set_state(await client.fetch_issue("7"), "Cancelled")
    assert cancelled.state == "Cancelled"
    assert gl.issues[7]["state"] == "closed"
    assert gl.label_names(7) == ["bug", "jidoka::cancelled"]
    put = next(r for r in gl.requests if r.method == "PUT")
    assert json.loads(put.content) == {
        "add_labels": "jidoka::cancelled",
        "remove_labels": "jidoka::in-progress",
        "state_event": "close",
    }
    before = len(gl.writes())
    assert (await client.set_state(cancelled, "Cancelled")).state == "Cancelled"
    assert len(gl.writes()) == before


async def test_set_state_to_the_unlabelled_closed_state_drops_state_labels(gl: FakeGitLab) -> None:
    gl.issues[7] = make_issue(7, labels=["jidoka::in-progress", "bug"])
    client = tracker(gl)
    done = await client.set_state(await client.fetch_issue("7"), "Done")
    assert done.state == "Done"
    assert (gl.issues[7]["state"], gl.label_names(7)) == ("closed", ["bug"])
    # And from Cancelled to Done: the closed issue stays closed, its label goes.
    gl.issues[8] = make_issue(8, state="closed", labels=["jidoka::cancelled"])
    again = await client.set_state(await client.fetch_issue("8"), "Done")
    assert again.state == "Done"
    put = [r for r in gl.requests if r.method == "PUT"][-1]
    assert json.loads(put.content) == {"remove_labels": "jidoka::cancelled"}


async def test_set_state_reopens_a_closed_issue_into_a_labelled_state(gl: FakeGitLab) -> None:
    gl.issues[7] = make_issue(7, state="closed", labels=["jidoka::cancelled"])
    client = tracker(gl)
    todo = await client.set_state(await client.fetch_issue("7"), "Todo")
    assert todo.state == "Todo"
    assert (gl.issues[7]["state"], gl.label_names(7)) == ("opened", ["jidoka::todo"])
    put = next(r for r in gl.requests if r.method == "PUT")
    assert json.loads(put.content)["state_event"] == "reopen"


async def test_set_state_to_the_default_open_state_drops_state_labels(gl: FakeGitLab) -> None:
    gl.issues[7] = make_issue(7, labels=["jidoka::todo", "bug"])
    client = tracker(gl)
    backlog = await client.set_state(await client.fetch_issue("7"), "Backlog")
    assert backlog.state == "Backlog"
    assert gl.label_names(7) == ["bug"]


async def test_set_state_to_an_unmapped_state_writes_nothing(gl: FakeGitLab) -> None:
    gl.issues[7] = make_issue(7, labels=["jidoka::todo"])
    client = tracker(gl, config(default_open_state=None))
    issue = await client.fetch_issue("7")
    with pytest.raises(TrackerError) as caught:
        await client.set_state(issue, "Backlog")  # declared, but not mapped in this profile
    assert caught.value.category is TrackerErrorCategory.UNPROCESSABLE
    assert gl.writes() == []


async def test_set_state_refuses_an_answer_that_does_not_read_as_the_target(
    gl: FakeGitLab,
) -> None:
    gl.issues[7] = make_issue(7, labels=["jidoka::todo"])
    client = tracker(gl)
    issue = await client.fetch_issue("7")
    # A proxy (or a GitLab without add_labels) answers with the issue unchanged.
    gl.override = lambda request: (
        httpx.Response(200, json=make_issue(7, labels=["jidoka::todo"]))
        if request.method == "PUT"
        else None
    )
    with pytest.raises(TrackerError) as caught:
        await client.set_state(issue, "In Progress")
    assert caught.value.category is TrackerErrorCategory.UNKNOWN_PAYLOAD


# --------------------------------------------------------------------------------------------
# Writes: notes and merge requests
# --------------------------------------------------------------------------------------------


async def test_add_comment_is_idempotent_by_marker_across_pages(gl: FakeGitLab) -> None:
    gl.page_size = 2
    gl.issues[7] = make_issue(7, labels=["jidoka::todo"])
    gl.notes[7] = [make_note(1, "changed the description", system=True)]
    client = tracker(gl)
    issue = await client.fetch_issue("7")
    for n in range(3):
        assert await client.add_comment(issue, f"note {n}", f"note-{n}")
    posted = gl.notes[7][1]["body"]
    assert posted == "note 0\n\n<!-- jidoka:note-0 -->"
    assert marker_tag("note-0") in posted
    # The marker of note-2 sits on the second page of notes.
    assert not await client.add_comment(issue, "note 2 again", "note-2")
    assert len(gl.notes[7]) == 4
    reads = [r for r in gl.requests if r.method == "GET" and raw_path(r).endswith("/notes")]
    assert reads[-1].url.params.get("page") == "2"
    assert reads[-1].url.params["sort"] == "asc"


async def test_a_note_whose_answer_was_lost_is_not_resent(gl: FakeGitLab) -> None:
    gl.issues[1] = make_issue(1, labels=["jidoka::todo"])

    def flaky_post(request: httpx.Request) -> httpx.Response | None:
        if request.method == "POST":
            raise httpx.ReadTimeout("timed out", request=request)
        return None

    gl.override = flaky_post
    client = tracker(gl)
    issue = await client.fetch_issue("1")
    with pytest.raises(TrackerError) as caught:
        await client.add_comment(issue, "hello", "m1")
    assert caught.value.category is TrackerErrorCategory.API_REQUEST
    assert sum(r.method == "POST" for r in gl.requests) == 1


def test_merge_request_descriptions_relate_to_the_issue_without_closing_it() -> None:
    assert issue_reference("Adds the flag.\n", 7) == "Adds the flag.\n\nRelated to #7"
    assert issue_reference("", 7) == "Related to #7"
    assert draft_title("Fix #7") == "Draft: Fix #7"
    assert draft_title("Draft: Fix #7") == "Draft: Fix #7"


async def test_publish_branch_opens_one_merge_request_and_links_it_once(gl: FakeGitLab) -> None:
    gl.issues[7] = make_issue(7, labels=["jidoka::in-progress"])
    client = tracker(gl, config(merge_request_target="develop", draft_merge_requests=True))
    issue = await client.fetch_issue("7")
    url = await client.publish_branch(
        issue, branch="jidoka/widgets_7", base_branch="main", title="Fix #7", body="v1"
    )
    assert url == f"{BASE_URL}/{PROJECT}/-/merge_requests/1"
    (mr,) = gl.merge_requests
    assert (mr["source_branch"], mr["target_branch"]) == ("jidoka/widgets_7", "develop")
    assert (mr["title"], mr["draft"]) == ("Draft: Fix #7", True)
    assert mr["description"] == "v1\n\nRelated to #7"
    assert "Closes" not in mr["description"]
    lookup = next(r for r in gl.requests if raw_path(r).endswith("/merge_requests"))
    assert lookup.method == "GET"
    assert lookup.url.params["source_branch"] == "jidoka/widgets_7"
    assert lookup.url.params["state"] == "opened"
    # Again, with a new body: the same merge request, its description updated, one link.
    again = await client.publish_branch(
        issue, branch="jidoka/widgets_7", base_branch="main", title="Fix #7", body="v2"
    )
    assert again == url
    assert len(gl.merge_requests) == 1
    assert gl.merge_requests[0]["description"] == "v2\n\nRelated to #7"
    links = [n for n in gl.notes[7] if url in n["body"]]
    assert len(links) == 1
    assert marker_tag("mr:jidoka/widgets_7") in links[0]["body"]
    # A third identical call writes nothing at all.
    before = len(gl.writes())
    await client.publish_branch(
        issue, branch="jidoka/widgets_7", base_branch="main", title="Fix #7", body="v2"
    )
    assert len(gl.writes()) == before


async def test_publish_branch_targets_the_workspace_base_by_default(gl: FakeGitLab) -> None:
    gl.issues[7] = make_issue(7, labels=["jidoka::in-progress"])
    client = tracker(gl)
    await client.publish_branch(
        await client.fetch_issue("7"), branch="b", base_branch="trunk", title="t", body="b"
    )
    (mr,) = gl.merge_requests
    assert (mr["target_branch"], mr["title"], mr["draft"]) == ("trunk", "t", False)


async def test_publish_branch_reuses_a_merge_request_created_concurrently(gl: FakeGitLab) -> None:
    gl.issues[7] = make_issue(7, labels=["jidoka::in-progress"])
    client = tracker(gl)
    issue = await client.fetch_issue("7")
    lookups = 0

    def race(request: httpx.Request) -> httpx.Response | None:
        nonlocal lookups
        if request.method == "GET" and raw_path(request).endswith("/merge_requests"):
            lookups += 1
            if lookups == 1:
                # Someone else opens it between our lookup and our create: GitLab answers 409.
                gl.merge_requests.append(make_merge_request(5, source_branch="topic"))
                return httpx.Response(200, json=[], headers={"X-Next-Page": ""})
        return None

    gl.override = race
    url = await client.publish_branch(issue, branch="topic", base_branch="main", title="t", body="")
    assert url == f"{BASE_URL}/{PROJECT}/-/merge_requests/5"
    assert len(gl.merge_requests) == 1
    assert sum(r.method == "POST" and "merge_requests" in raw_path(r) for r in gl.requests) == 1


async def test_publish_branch_ignores_a_forks_branch_of_the_same_name(gl: FakeGitLab) -> None:
    gl.issues[7] = make_issue(7, labels=["jidoka::in-progress"])
    gl.merge_requests.append(make_merge_request(3, source_branch="topic", source_project_id=555))
    client = tracker(gl)
    url = await client.publish_branch(
        await client.fetch_issue("7"), branch="topic", base_branch="main", title="t", body="b"
    )
    assert url == f"{BASE_URL}/{PROJECT}/-/merge_requests/2"
    assert gl.merge_requests[0]["description"] == ""  # the fork's is left alone


async def test_publish_branch_surfaces_a_real_refusal(gl: FakeGitLab) -> None:
    gl.issues[7] = make_issue(7, labels=["jidoka::in-progress"])
    client = tracker(gl)
    issue = await client.fetch_issue("7")
    with pytest.raises(TrackerError) as caught:
        await client.publish_branch(issue, branch="main", base_branch="main", title="t", body="b")
    assert caught.value.category is TrackerErrorCategory.UNPROCESSABLE
    assert "same project/branch" in caught.value.message
    assert gl.notes.get(7, []) == []


# --------------------------------------------------------------------------------------------
# The token stays secret
# --------------------------------------------------------------------------------------------


async def test_token_never_appears_in_errors_logs_or_reprs(
    gl: FakeGitLab, caplog: pytest.LogCaptureFixture
) -> None:
    leaked: list[str] = []

    def echo(request: httpx.Request) -> httpx.Response:
        # A misbehaving proxy that echoes the credentials it received.
        auth = request.headers["authorization"]
        leaked.append(auth)
        if raw_path(request).endswith("/issues/1"):
            return httpx.Response(401, json={"message": f"401 Unauthorized: {auth}"})
        if raw_path(request).endswith("/issues/2"):
            raise httpx.ConnectError(f"proxy refused {auth}", request=request)
        if raw_path(request).endswith("/issues/3"):
            return httpx.Response(500, text=f"upstream failed for {auth}")
        return httpx.Response(429, json={"message": {"error": f"slow down {auth}"}})

    gl.override = echo
    client = tracker(gl)
    errors: list[TrackerError] = []
    with caplog.at_level(logging.DEBUG):
        for issue_id in ("1", "2", "3", "4"):
            with pytest.raises(TrackerError) as caught:
                await client.fetch_issue(issue_id)
            errors.append(caught.value)
    assert leaked and all(TOKEN in a for a in leaked)  # the token really was in play
    assert "***" in str(errors[0])
    for error in errors:
        assert TOKEN not in str(error)
        assert TOKEN not in repr(error)
        assert TOKEN not in error.message
    assert caplog.records  # the client did log (retries), just never the token
    assert TOKEN not in caplog.text
    assert TOKEN not in repr(client)


async def test_even_a_short_token_is_scrubbed(gl: FakeGitLab) -> None:
    short = "tk42x"  # below the Scrubber's minimum length: scrubbed all the same
    gl.override = lambda request: httpx.Response(
        403, json={"message": f"403 Forbidden: {request.headers['authorization']}"}
    )
    client = GitLabTracker(config(), short, transport=gl.transport)
    with pytest.raises(TrackerError) as caught:
        await client.fetch_issue("1")
    assert short not in str(caught.value)
    assert "Bearer ***" in str(caught.value)


async def test_a_wrong_token_is_an_auth_error(gl: FakeGitLab) -> None:
    gl.token = "glpat-the-right-one-000000"
    with pytest.raises(TrackerError) as caught:
        await tracker(gl).fetch_candidate_issues()
    assert caught.value.category is TrackerErrorCategory.AUTH
    assert gl.unauthorized == 1


# --------------------------------------------------------------------------------------------
# Over real HTTP
# --------------------------------------------------------------------------------------------


async def test_the_fake_served_over_http_round_trips_a_move_and_a_merge_request() -> None:
    fake = FakeGitLab(token=TOKEN)
    fake.issues[7] = make_issue(7, labels=["jidoka::todo"])
    with serve_gitlab(fake) as base_url:
        client = GitLabTracker(config(base_url=base_url), TOKEN)
        try:
            (issue,) = await client.fetch_candidate_issues()
            moved = await client.set_state(issue, "In Progress")
            url = await client.publish_branch(
                moved, branch="jidoka/w-7", base_branch="main", title="t", body="b"
            )
        finally:
            await client.aclose()
    assert moved.state == "In Progress"
    assert fake.label_names(7) == ["jidoka::in-progress"]
    assert url == f"{BASE_URL}/{PROJECT}/-/merge_requests/1"
    assert fake.unauthorized == 0
    # The encoded project path survived the trip through a real HTTP server.
    assert all(f"/projects/{ENCODED}/" in raw_path(r) for r in fake.requests)
