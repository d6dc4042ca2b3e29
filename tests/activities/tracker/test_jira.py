"""Jira adapter against an in-memory Jira behind ``httpx.MockTransport``.

The fake (``tests/support/fakes/jira_server.py``) keeps issues, workflow transitions and comments
in Jira's documented REST shapes (Cloud v3 or Data Center v2), pages searches the way each does,
validates ADF comment bodies, and answers errors with Jira's error collection; so these tests
assert on what Jira would end up holding. Same contract checks as the GitHub and Linear tests,
plus the Markdown -> ADF / wiki rendering of Jidoka's comment shapes.
"""

from __future__ import annotations

import base64
import json
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from activities.tracker import jira
from activities.tracker.base import TrackerError, TrackerErrorCategory
from activities.tracker.http import RetryPolicy
from activities.tracker.jira import (
    JiraTracker,
    JiraTrackerConfig,
    adf_to_text,
    has_marker,
    markdown_to_adf,
    markdown_to_wiki,
    marker_anchor,
    marker_url,
    search_jql,
)
from jidoka.comments import (
    abandon_comment,
    answer_comment,
    halt_comment,
    questions_comment,
    ship_comment,
    stuck_comment,
)
from jidoka.models import DiffStat, HaltRecord, Issue, ShipEvidence, TestComparison, TestSample
from jidoka.outcomes import HaltCategory, HaltScope, HaltSource, Outcome
from tests.support.fakes.jira_server import (
    NOW,
    PROJECT,
    SITE,
    FakeJira,
    adf,
    adf_problems,
    blocked_by,
    blocks,
    error_body,
    issue_id,
    link,
    make_comment,
    make_issue,
    relates_to,
    serve_jira,
)
from tests.support.secret_scan import register_secret

EMAIL = "jidoka-bot@acme.example"
TOKEN = register_secret("ATATT3xFfGF0S3cretJiraT0kenValue0123456789abcdef")
CREDENTIAL = base64.b64encode(f"{EMAIL}:{TOKEN}".encode()).decode()
MARKER = "jidoka-issue-demo-ENG-1:ship"


def config(**overrides: Any) -> JiraTrackerConfig:
    values: dict[str, Any] = {
        "kind": "jira",
        "base_url": SITE,
        "project_key": PROJECT,
        "active_states": ["To Do", "In Progress"],
        "working_state": "In Progress",
        "terminal_states": ["Done", "Cancelled"],
        "done_state": "Done",
    }
    values.update(overrides)
    return JiraTrackerConfig.model_validate(values)


@pytest.fixture
def fake() -> FakeJira:
    return FakeJira(email=EMAIL, token=TOKEN)


@pytest.fixture
def dc() -> FakeJira:
    return FakeJira(deployment="data_center", token=TOKEN, email=EMAIL)


def tracker(fake: FakeJira, cfg: JiraTrackerConfig | None = None, **kw: Any) -> JiraTracker:
    kw.setdefault("retry", RetryPolicy(attempts=3, first_delay_s=0.0))
    email = kw.pop("email", EMAIL)
    if cfg is None:
        cfg = config(deployment=fake.deployment)
    return JiraTracker(cfg, email, TOKEN, transport=fake.transport, clock=lambda: NOW, **kw)


def keys(issues: list[Issue]) -> list[str]:
    return sorted((i.identifier for i in issues), key=lambda k: int(k.split("-")[1]))


def searches(fake: FakeJira) -> list[dict[str, Any]]:
    return fake.bodies("/search/jql") + fake.bodies("/rest/api/2/search")


# --------------------------------------------------------------------------------------------
# Configuration
# --------------------------------------------------------------------------------------------


def test_config_defaults() -> None:
    cfg = config(base_url=SITE + "/")
    assert cfg.base_url == SITE
    assert cfg.email == "$JIRA_EMAIL"
    assert cfg.api_token == "$JIRA_API_TOKEN"
    assert cfg.deployment == "cloud"
    assert cfg.priority_map == {"Highest": 1, "High": 2, "Medium": 3, "Low": 4, "Lowest": 5}
    assert cfg.jql is None
    # Written as in WORKFLOW.md: only the keys the file set travel in payloads.
    assert set(cfg.model_dump()) == {
        "kind",
        "base_url",
        "project_key",
        "active_states",
        "working_state",
        "terminal_states",
        "done_state",
    }


@pytest.mark.parametrize(
    ("overrides", "complaint"),
    [
        ({"project_key": None}, "project_key, tracker.jql, or both"),
        ({"jql": "labels = x ORDER BY created DESC"}, "ORDER BY"),
        ({"base_url": "http://acme.atlassian.net"}, "https://"),
        ({"base_url": "https://acme.atlassian.net/?x=1"}, "without query"),
        ({"project_key": "E-NG"}, "not a Jira project key"),
        ({"api_token": "ATATT3xFfGF0plain"}, "api_token"),
        ({"email": "me@example.com"}, "email"),
        ({"deployment": "server"}, "deployment"),
        ({"unknown": 1}, "unknown"),
    ],
)
def test_config_rejects(overrides: dict[str, Any], complaint: str) -> None:
    with pytest.raises(ValidationError) as caught:
        config(**overrides)
    assert complaint in str(caught.value)


def test_config_accepts_jql_alone_and_http_to_this_machine() -> None:
    cfg = config(project_key=None, jql="labels = jidoka", base_url="http://127.0.0.1:8080/jira")
    assert cfg.project_key is None
    assert cfg.base_url == "http://127.0.0.1:8080/jira"


def test_the_listing_jql_quotes_values_and_ands_the_configured_filter() -> None:
    cfg = config(jql='labels = jidoka OR labels = "ai"')
    assert search_jql(cfg, ["To Do", 'Won\'t "Do"', "Back\\slash"]) == (
        'project = "ENG" AND status in ("To Do", "Won\'t \\"Do\\"", "Back\\\\slash") '
        'AND (labels = jidoka OR labels = "ai") ORDER BY key ASC'
    )
    assert search_jql(config(project_key=None, jql="labels = x"), ["Done"]) == (
        'status in ("Done") AND (labels = x) ORDER BY key ASC'
    )


# --------------------------------------------------------------------------------------------
# Reads
# --------------------------------------------------------------------------------------------


async def test_candidates_search_the_project_in_active_states(fake: FakeJira) -> None:
    fake.add(make_issue(1), make_issue(2, state="In Progress"), make_issue(3, state="Done"))
    fake.add(make_issue(4, project="OPS"))
    issues = await tracker(fake).fetch_candidate_issues()
    assert keys(issues) == ["ENG-1", "ENG-2"]
    (request,) = fake.requests
    assert (request.method, str(request.url)) == ("POST", f"{SITE}/rest/api/3/search/jql")
    assert request.headers["authorization"] == f"Basic {CREDENTIAL}"
    assert request.headers["accept"] == "application/json"
    assert json.loads(request.content) == {
        "jql": 'project = "ENG" AND status in ("To Do", "In Progress") ORDER BY key ASC',
        "maxResults": 100,
        "fields": jira.FIELDS,
    }


async def test_pagination_follows_next_page_tokens(fake: FakeJira) -> None:
    fake.page_size = 2
    fake.add(*(make_issue(n) for n in range(1, 6)))
    issues = await tracker(fake).fetch_issues_by_states(["To Do"])
    assert keys(issues) == ["ENG-1", "ENG-2", "ENG-3", "ENG-4", "ENG-5"]
    assert [body.get("nextPageToken") for body in searches(fake)] == [None, "page-2", "page-4"]


@pytest.mark.parametrize(
    "pages",
    [
        [{"issues": [], "isLast": False}],
        [{"issues": [], "nextPageToken": "t1"}, {"issues": [], "nextPageToken": "t1"}],
    ],
)
async def test_a_broken_page_token_is_a_pagination_error(
    fake: FakeJira, pages: list[dict[str, Any]]
) -> None:
    answers = iter(pages)
    fake.override = lambda request: httpx.Response(200, json=next(answers))
    with pytest.raises(TrackerError) as caught:
        await tracker(fake).fetch_candidate_issues()
    assert caught.value.category is TrackerErrorCategory.MISSING_PAGINATION_CURSOR


async def test_too_many_pages_is_an_error_not_a_truncation(
    fake: FakeJira, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(jira, "MAX_PAGES", 2)
    fake.page_size = 1
    fake.add(*(make_issue(n) for n in range(1, 4)))
    with pytest.raises(TrackerError) as caught:
        await tracker(fake).fetch_candidate_issues()
    assert caught.value.category is TrackerErrorCategory.MISSING_PAGINATION_CURSOR


async def test_an_issue_is_normalised(fake: FakeJira) -> None:
    blocker = make_issue(7, state="In Progress")
    other_blocker = make_issue(8, state="Done", project="OPS")
    blocked = make_issue(9)
    related = make_issue(10)
    description = {
        "type": "doc",
        "version": 1,
        "content": [
            {
                "type": "heading",
                "attrs": {"level": 2},
                "content": [{"type": "text", "text": "Goal"}],
            },
            {
                "type": "paragraph",
                "content": [
                    {"type": "text", "text": "Fix "},
                    {"type": "text", "text": "login()", "marks": [{"type": "code"}]},
                    {"type": "text", "text": " now", "marks": [{"type": "strong"}]},
                ],
            },
        ],
    }
    fake.add(
        make_issue(
            1,
            summary="Fix the login button",
            description=description,
            priority_name="High",
            labels=["Frontend", " bug ", "frontend"],
            links=[
                blocked_by(blocker),
                blocked_by(other_blocker),
                blocks(blocked),
                relates_to(related),
            ],
            created=datetime(2024, 5, 1, 10, 0, tzinfo=UTC),
            updated=datetime(2024, 5, 2, 8, 30, 15, tzinfo=UTC),
        )
    )
    (issue,) = await tracker(fake).fetch_candidate_issues()
    assert issue.id == issue_id(1) == "10001"
    assert issue.identifier == "ENG-1"
    assert issue.title == "Fix the login button"
    assert issue.description == "## Goal\n\nFix `login()`** now**"
    assert issue.state == "To Do"
    assert issue.priority == 2
    assert issue.labels == ["frontend", "bug"]
    assert issue.url == f"{SITE}/browse/ENG-1"
    assert issue.branch_name is None
    assert issue.created_at == datetime(2024, 5, 1, 10, 0, tzinfo=UTC)
    assert issue.updated_at == datetime(2024, 5, 2, 8, 30, 15, tzinfo=UTC)
    # Only "is blocked by" (the inward side of Blocks); "blocks" and "relates to" are not.
    assert [(b.id, b.identifier, b.state) for b in issue.blocked_by] == [
        ("10007", "ENG-7", "In Progress"),
        ("10008", "OPS-8", "Done"),
    ]


async def test_a_renamed_blocks_link_type_is_recognised_by_its_inward_words(
    fake: FakeJira,
) -> None:
    blocker = make_issue(2)
    fake.add(make_issue(1, links=[link(blocker, "inward", name="Blocker", inward="Is Blocked By")]))
    (issue,) = await tracker(fake).fetch_issues_by_states(["To Do"])
    assert [b.identifier for b in issue.blocked_by] == ["ENG-2"]


@pytest.mark.parametrize(
    ("name", "priority_map", "expected"),
    [
        ("Highest", None, 1),
        ("lowest", None, 5),
        ("Blocker", None, None),
        (None, None, None),
        ("P0", {"P0": 0, "p1": 1}, 0),
        ("P1", {"P0": 0, "p1": 1}, 1),
        ("Medium", {"P0": 0}, None),
    ],
)
async def test_priority_comes_from_the_priority_map(
    fake: FakeJira, name: str | None, priority_map: dict[str, int] | None, expected: int | None
) -> None:
    fake.add(make_issue(1, priority_name=name))
    cfg = config(priority_map=priority_map) if priority_map is not None else config()
    (issue,) = await tracker(fake, cfg).fetch_candidate_issues()
    assert issue.priority == expected


async def test_the_configured_jql_narrows_listings(fake: FakeJira) -> None:
    fake.add(
        make_issue(1, labels=["jidoka"]),
        make_issue(2),
        make_issue(3, project="OPS", labels=["jidoka"]),
    )
    client = tracker(fake, config(jql="labels = jidoka"))
    assert keys(await client.fetch_candidate_issues()) == ["ENG-1"]
    jql_only = tracker(fake, config(project_key=None, jql="labels = jidoka"))
    assert keys(await jql_only.fetch_candidate_issues()) == ["ENG-1", "OPS-3"]
    assert searches(fake)[-1]["jql"] == (
        'status in ("To Do", "In Progress") AND (labels = jidoka) ORDER BY key ASC'
    )


async def test_a_state_jira_does_not_know_is_unprocessable_with_jiras_words(
    fake: FakeJira,
) -> None:
    with pytest.raises(TrackerError) as caught:
        await tracker(fake).fetch_issues_by_states(["To Do", "Shipped"])
    assert caught.value.category is TrackerErrorCategory.UNPROCESSABLE
    assert "The value 'Shipped' does not exist for the field 'status'." in str(caught.value)
    assert not caught.value.retryable


async def test_malformed_records_are_omitted_from_lists_but_fatal_by_id(
    fake: FakeJira, caplog: pytest.LogCaptureFixture
) -> None:
    fake.add(make_issue(1), make_issue(2, summary=""), make_issue(3, state=None), make_issue(4))
    del fake.issues[issue_id(4)]["key"]
    fake.issues[issue_id(5)] = {"id": issue_id(5), "key": "ENG-5", "fields": "broken"}
    client = tracker(fake)
    with caplog.at_level(logging.WARNING, logger="jidoka.tracker"):
        issues = await client.fetch_candidate_issues()
    assert keys(issues) == ["ENG-1"]
    assert "ENG-2: no summary" in caplog.text
    assert "ENG-3: no status name" in caplog.text
    assert "no id or key" in caplog.text
    assert "ENG-5: no fields" in caplog.text
    for bad in (2, 3, 4, 5):
        with pytest.raises(TrackerError) as caught:
            await client.fetch_issue(issue_id(bad))
        assert caught.value.category is TrackerErrorCategory.MALFORMED_ISSUE
        with pytest.raises(TrackerError) as caught:
            await client.fetch_issues_by_ids([issue_id(1), issue_id(bad)])
        assert caught.value.category is TrackerErrorCategory.MALFORMED_ISSUE


async def test_by_ids_bulk_fetches_and_omits_gone_and_moved_issues(fake: FakeJira) -> None:
    fake.add(make_issue(1), make_issue(2, state="Done"), make_issue(3, project="OPS"))
    wanted = [issue_id(n) for n in (1, 2, 3, 4)] + [issue_id(1), " "]
    found = await tracker(fake).fetch_issues_by_ids(wanted)
    assert {i.identifier: i.state for i in found} == {"ENG-1": "To Do", "ENG-2": "Done"}
    (body,) = fake.bodies("/issue/bulkfetch")
    assert body == {"issueIdsOrKeys": [issue_id(n) for n in (1, 2, 3, 4)], "fields": jira.FIELDS}


async def test_by_ids_are_fetched_a_hundred_at_a_time(fake: FakeJira) -> None:
    fake.add(*(make_issue(n) for n in range(1, 251)))
    found = await tracker(fake).fetch_issues_by_ids([issue_id(n) for n in range(1, 251)])
    assert len(found) == 250
    assert [len(b["issueIdsOrKeys"]) for b in fake.bodies("/issue/bulkfetch")] == [100, 100, 50]


async def test_a_bulk_fetch_issue_error_is_retryable_never_gone(fake: FakeJira) -> None:
    fake.override = lambda request: httpx.Response(
        200,
        json={"issues": [], "issueErrors": [{"id": "10001", "errorMessage": "try again later"}]},
    )
    with pytest.raises(TrackerError) as caught:
        await tracker(fake).fetch_issues_by_ids([issue_id(1)])
    assert caught.value.category is TrackerErrorCategory.API_STATUS
    assert caught.value.retryable
    assert "10001: try again later" in str(caught.value)


async def test_fetch_issue_reads_one_issue_and_checks_its_project(fake: FakeJira) -> None:
    fake.add(make_issue(1), make_issue(2, project="OPS"))
    client = tracker(fake)
    issue = await client.fetch_issue(issue_id(1))
    assert issue.identifier == "ENG-1"
    request = fake.requests[-1]
    assert (request.method, request.url.path) == ("GET", "/rest/api/3/issue/10001")
    assert request.url.params["fields"] == ",".join(jira.FIELDS)
    for missing in (issue_id(2), issue_id(404)):
        with pytest.raises(TrackerError) as caught:
            await client.fetch_issue(missing)
        assert caught.value.category is TrackerErrorCategory.NOT_FOUND
    with pytest.raises(TrackerError) as caught:
        await client.fetch_issue(issue_id(404))
    assert "Issue does not exist" in str(caught.value)


async def test_empty_inputs_make_no_request(fake: FakeJira) -> None:
    client = tracker(fake)
    assert await client.fetch_issues_by_states([]) == []
    assert await client.fetch_issues_by_states(["", "  "]) == []
    assert await client.fetch_issues_by_ids([]) == []
    assert await client.fetch_issues_by_ids([" "]) == []
    assert fake.requests == []


# --------------------------------------------------------------------------------------------
# Transitions
# --------------------------------------------------------------------------------------------


async def test_set_state_posts_the_transition_to_the_wanted_status(fake: FakeJira) -> None:
    fake.add(make_issue(1))
    client = tracker(fake)
    moved = await client.set_state(await client.fetch_issue(issue_id(1)), "in progress")
    assert moved.state == "In Progress"
    assert fake.state_of("ENG-1") == "In Progress"
    assert fake.bodies("/transitions") == [{"transition": {"id": "21"}}]
    assert fake.paths()[1:] == [
        "GET /rest/api/3/issue/10001",
        "GET /rest/api/3/issue/10001/transitions",
        "POST /rest/api/3/issue/10001/transitions",
        "GET /rest/api/3/issue/10001",
    ]


async def test_set_state_to_the_current_state_writes_nothing(fake: FakeJira) -> None:
    fake.add(make_issue(1, state="In Progress"))
    client = tracker(fake)
    issue = await client.set_state(await client.fetch_issue(issue_id(1)), " IN PROGRESS ")
    assert issue.state == "In Progress"
    assert fake.writes() == []
    assert not any(r.url.path.endswith("/transitions") for r in fake.requests)


async def test_a_state_the_workflow_cannot_reach_is_refused_naming_the_options(
    fake: FakeJira,
) -> None:
    fake.add(make_issue(1))  # To Do offers Start Progress and Cancel, not Done
    client = tracker(fake)
    with pytest.raises(TrackerError) as caught:
        await client.set_state(await client.fetch_issue(issue_id(1)), "Done")
    error = caught.value
    assert error.category is TrackerErrorCategory.UNPROCESSABLE
    assert not error.retryable
    assert "no transition from 'To Do' to 'Done'" in error.message
    assert "'Start Progress' -> 'In Progress', 'Cancel' -> 'Cancelled'" in error.message
    assert fake.writes() == []
    assert fake.state_of("ENG-1") == "To Do"


async def test_unavailable_transitions_are_not_offered(fake: FakeJira) -> None:
    fake.add(make_issue(1))
    fake.override = lambda request: (
        httpx.Response(
            200,
            json={
                "transitions": [
                    {
                        "id": "21",
                        "name": "Start",
                        "to": {"name": "In Progress"},
                        "isAvailable": False,
                    },
                    {"id": "x", "name": "Broken"},
                ]
            },
        )
        if request.url.path.endswith("/transitions")
        else None
    )
    client = tracker(fake)
    with pytest.raises(TrackerError) as caught:
        await client.set_state(await client.fetch_issue(issue_id(1)), "In Progress")
    assert "available: none" in caught.value.message


@pytest.mark.parametrize(
    ("status", "body", "category"),
    [
        (
            400,
            error_body(errors={"resolution": "Resolution is required."}),
            TrackerErrorCategory.UNPROCESSABLE,
        ),
        (409, error_body("The issue was updated by someone else."), TrackerErrorCategory.CONFLICT),
        (422, error_body("A workflow validator failed."), TrackerErrorCategory.UNPROCESSABLE),
    ],
)
async def test_a_transition_jira_refuses_is_reported_with_its_reason(
    fake: FakeJira, status: int, body: dict[str, Any], category: TrackerErrorCategory
) -> None:
    fake.add(make_issue(1))
    fake.override = lambda request: (
        httpx.Response(status, json=body)
        if request.method == "POST" and request.url.path.endswith("/transitions")
        else None
    )
    client = tracker(fake)
    with pytest.raises(TrackerError) as caught:
        await client.set_state(await client.fetch_issue(issue_id(1)), "In Progress")
    assert caught.value.category is category
    reason = (body["errorMessages"] or ["resolution: Resolution is required."])[0]
    assert reason in caught.value.message


async def test_a_transition_is_sent_once_even_on_a_server_error(fake: FakeJira) -> None:
    fake.add(make_issue(1))
    fake.override = lambda request: (
        httpx.Response(502, text="bad gateway")
        if request.method == "POST" and request.url.path.endswith("/transitions")
        else None
    )
    client = tracker(fake)
    with pytest.raises(TrackerError) as caught:
        await client.set_state(await client.fetch_issue(issue_id(1)), "In Progress")
    assert caught.value.retryable
    assert fake.writes() == ["POST /rest/api/3/issue/10001/transitions"]


async def test_a_transition_that_lands_elsewhere_is_reported(fake: FakeJira) -> None:
    fake.add(make_issue(1))

    def post_function(request: httpx.Request) -> httpx.Response | None:
        if request.method == "POST" and request.url.path.endswith("/transitions"):
            fake.issues[issue_id(1)]["fields"]["status"] = make_issue(1, state="In Review")[
                "fields"
            ]["status"]
            return httpx.Response(204)
        return None

    fake.override = post_function
    client = tracker(fake)
    with pytest.raises(TrackerError) as caught:
        await client.set_state(await client.fetch_issue(issue_id(1)), "In Progress")
    assert caught.value.category is TrackerErrorCategory.UNPROCESSABLE
    assert "led to 'In Review'" in caught.value.message


# --------------------------------------------------------------------------------------------
# Comments
# --------------------------------------------------------------------------------------------


async def test_add_comment_posts_adf_once_per_marker(fake: FakeJira) -> None:
    fake.add(make_issue(1))
    fake.comments[issue_id(1)] = [make_comment(1, adf("Looks good", "ship it"))]
    client = tracker(fake)
    issue = await client.fetch_issue(issue_id(1))
    assert await client.add_comment(issue, "**Jidoka: shipped** → Done", MARKER)
    stored = fake.comments[issue_id(1)][-1]["body"]
    assert adf_problems(stored) == []
    assert stored["content"][0] == {
        "type": "paragraph",
        "content": [
            {"type": "text", "text": "Jidoka: shipped", "marks": [{"type": "strong"}]},
            {"type": "text", "text": " → Done"},
        ],
    }
    assert stored["content"][-1] == {
        "type": "paragraph",
        "content": [
            {
                "type": "text",
                "text": "\u200b",
                "marks": [
                    {
                        "type": "link",
                        "attrs": {
                            "href": "https://jidoka.invalid/comment-marker/"
                            "jidoka-issue-demo-ENG-1%3Aship"
                        },
                    }
                ],
            }
        ],
    }
    assert not await client.add_comment(issue, "**Jidoka: shipped** again", MARKER)
    assert len(fake.comments[issue_id(1)]) == 2
    assert fake.writes() == ["POST /rest/api/3/issue/10001/comment"]
    listing = next(
        r for r in fake.requests if r.method == "GET" and r.url.path.endswith("/comment")
    )
    assert dict(listing.url.params) == {"startAt": "0", "maxResults": "100", "orderBy": "created"}


async def test_add_comment_finds_a_marker_on_a_later_page(fake: FakeJira) -> None:
    fake.comment_page_size = 1
    fake.add(make_issue(1))
    fake.comments[issue_id(1)] = [
        make_comment(1, adf("a")),
        make_comment(2, adf("b")),
        make_comment(3, markdown_to_adf("done", "m")),
    ]
    client = tracker(fake)
    assert not await client.add_comment(await client.fetch_issue(issue_id(1)), "x", "m")
    listings = [r for r in fake.requests if r.url.path.endswith("/comment")]
    assert [r.url.params["startAt"] for r in listings] == ["0", "1", "2"]


def test_the_marker_is_found_however_jira_reshaped_it() -> None:
    url = marker_url("m:1")
    as_card = {"type": "doc", "content": [{"type": "inlineCard", "attrs": {"url": url}}]}
    as_text = adf(f"see {url}")
    assert has_marker(markdown_to_adf("x", "m:1"), "m:1")
    assert has_marker(as_card, "m:1")
    assert has_marker(as_text, "m:1")
    assert has_marker(f"done\n\n{marker_anchor('m:1')}", "m:1")
    assert not has_marker(markdown_to_adf("x", "m:2"), "m:1")
    assert not has_marker(markdown_to_adf("x", "m:10"), "m:1")  # no prefix match
    assert not has_marker(adf("jidoka m:1"), "m:1")
    assert not has_marker(None, "m:1")


def test_markers_are_percent_encoded_and_never_empty() -> None:
    assert marker_url("a b/c}|=") == "https://jidoka.invalid/comment-marker/a%20b%2Fc%7D%7C%3D"
    assert marker_anchor("a}b|c") == "{anchor:jidoka-a%7Db%7Cc}"
    with pytest.raises(ValueError, match="must not be empty"):
        marker_url("")


async def test_comment_creation_is_never_resent(fake: FakeJira) -> None:
    fake.add(make_issue(1))
    fake.override = lambda request: (
        httpx.Response(503, text="unavailable") if request.method == "POST" else None
    )
    client = tracker(fake)
    with pytest.raises(TrackerError) as caught:
        await client.add_comment(await client.fetch_issue(issue_id(1)), "hello", "m")
    assert caught.value.retryable
    assert fake.writes() == ["POST /rest/api/3/issue/10001/comment"]


async def test_an_empty_marker_is_refused_before_any_request(fake: FakeJira) -> None:
    issue = Issue(id=issue_id(1), identifier="ENG-1", title="x", state="To Do")
    with pytest.raises(ValueError, match="must not be empty"):
        await tracker(fake).add_comment(issue, "hello", "")
    assert fake.requests == []


# --------------------------------------------------------------------------------------------
# Markdown -> ADF (Jidoka's comment shapes)
# --------------------------------------------------------------------------------------------


def _evidence() -> ShipEvidence:
    return ShipEvidence(
        outcome=Outcome.SHIPPED,
        branch="jidoka/ENG-1",
        base_sha="a" * 12,
        head_sha="b" * 12,
        commits_ahead=2,
        diff=DiffStat(files_changed=3, insertions=40, deletions=2),
        uncommitted_count=0,
        verify_configured=True,
        verify_passed=True,
        verified_sha="b" * 12,
        tokens_total=12345,
        summary="Fixed **it**: `login()` now\n# works\n- really <!-- x -->",
        pushed_to="origin",
        pull_request_url="https://github.com/acme/app/pull/7",
        protected=["tests/** (allowed by allow:tests/**)"],
        tests=TestComparison(
            base_sha="a" * 12,
            head_sha="b" * 12,
            added=TestSample(count=2, ids=["tests/test_a.py::test_x", "tests/test_b.py::test_`y`"]),
        ),
    )


def _halt() -> HaltRecord:
    return HaltRecord(
        category=HaltCategory.PROTECTED_PATHS,
        reason="changed tests/test_login.py\nwithout consent",
        source=HaltSource.ORCHESTRATOR,
        scope=HaltScope.ISSUE,
        at=NOW,
    )


COMMENTS = {
    "ship": lambda: ship_comment(_evidence(), "Done", "make test"),
    "questions": lambda: questions_comment(
        ["Which `db`?", "**Really**?\n\n1. yes\n2. no"], "Blocked", "wf-1"
    ),
    "answer": lambda: answer_comment("Use postgres\n```sql\nselect 1;\n```", "ada"),
    "halt": lambda: halt_comment(_halt(), "wf-1"),
    "abandon": lambda: abandon_comment("no longer needed", "jidoka/ENG-1", "3 commits"),
    "stuck": lambda: stuck_comment("wf-1", 5),
}


@pytest.mark.parametrize("name", sorted(COMMENTS))
def test_every_comment_shape_renders_to_valid_adf(name: str) -> None:
    document = markdown_to_adf(COMMENTS[name](), MARKER)
    assert adf_problems(document) == []
    assert has_marker(document, MARKER)
    # Nothing Markdown-only is left over where it was markup.
    text = json.dumps(document)
    assert "**Jidoka" not in text


@pytest.mark.parametrize("name", sorted(COMMENTS))
async def test_every_comment_shape_is_accepted_by_jira(fake: FakeJira, name: str) -> None:
    fake.add(make_issue(1))
    client = tracker(fake)
    assert await client.add_comment(await client.fetch_issue(issue_id(1)), COMMENTS[name](), MARKER)


def test_the_ship_comment_renders_as_people_read_it() -> None:
    document = markdown_to_adf(ship_comment(_evidence(), "Done", "make test"))
    kinds = [node["type"] for node in document["content"]]  # type: ignore[index]
    assert kinds == ["paragraph", "bulletList", "paragraph", "blockquote"]
    bullets = document["content"][1]["content"]  # type: ignore[index]
    first = bullets[0]["content"][0]["content"]
    assert first[:2] == [
        {"type": "text", "text": "branch "},
        {"type": "text", "text": "jidoka/ENG-1", "marks": [{"type": "code"}]},
    ]
    # "- tests: ..." carries its nested "  - added (2): ..." list.
    tests_item = next(
        b for b in bullets if b["content"][0]["content"][0]["text"].startswith("tests")
    )
    nested = tests_item["content"][1]
    assert nested["type"] == "bulletList"
    added = nested["content"][0]["content"][0]["content"]
    assert added[0] == {"type": "text", "text": "added (2): "}
    assert {
        "type": "text",
        "text": "tests/test_b.py::test_'y'",
        "marks": [{"type": "code"}],
    } in added
    link = next(b for b in bullets if "pull request" in json.dumps(b))
    assert {
        "type": "text",
        "text": "https://github.com/acme/app/pull/7",
        "marks": [{"type": "link", "attrs": {"href": "https://github.com/acme/app/pull/7"}}],
    } in link["content"][0]["content"]
    # The agent's words stay words: escapes undone, no bold, no code, no heading.
    quote = document["content"][3]  # type: ignore[index]
    assert quote["content"][0] == {
        "type": "paragraph",
        "content": [
            {"type": "text", "text": "Fixed **it**: `login()` now"},
            {"type": "hardBreak"},
            {"type": "text", "text": "# works"},
        ],
    }


def test_markdown_to_adf_blocks() -> None:
    source = "\n".join(
        [
            "## Title **bold**",
            "",
            "line one",
            "line two with ``a ` tick`` and `unclosed",
            "",
            "1. first",
            "2. second",
            "   - inner",
            "",
            "```python",
            "def f():",
            "    return '**not bold**'",
            "```",
            "",
            "> quoted",
            "> > nested",
            "> ## heading in a quote",
        ]
    )
    document = markdown_to_adf(source)
    assert adf_problems(document) == []
    assert document["content"] == [
        {
            "type": "heading",
            "attrs": {"level": 2},
            "content": [
                {"type": "text", "text": "Title "},
                {"type": "text", "text": "bold", "marks": [{"type": "strong"}]},
            ],
        },
        {
            "type": "paragraph",
            "content": [
                {"type": "text", "text": "line one"},
                {"type": "hardBreak"},
                {"type": "text", "text": "line two with "},
                {"type": "text", "text": "a ` tick", "marks": [{"type": "code"}]},
                {"type": "text", "text": " and `unclosed"},
            ],
        },
        {
            "type": "orderedList",
            "attrs": {"order": 1},
            "content": [
                {
                    "type": "listItem",
                    "content": [
                        {"type": "paragraph", "content": [{"type": "text", "text": "first"}]}
                    ],
                },
                {
                    "type": "listItem",
                    "content": [
                        {"type": "paragraph", "content": [{"type": "text", "text": "second"}]},
                        {
                            "type": "bulletList",
                            "content": [
                                {
                                    "type": "listItem",
                                    "content": [
                                        {
                                            "type": "paragraph",
                                            "content": [{"type": "text", "text": "inner"}],
                                        }
                                    ],
                                }
                            ],
                        },
                    ],
                },
            ],
        },
        {
            "type": "codeBlock",
            "attrs": {"language": "python"},
            "content": [{"type": "text", "text": "def f():\n    return '**not bold**'"}],
        },
        {
            "type": "blockquote",
            "content": [
                {"type": "paragraph", "content": [{"type": "text", "text": "quoted"}]},
                {"type": "paragraph", "content": [{"type": "text", "text": "nested"}]},
                {
                    "type": "paragraph",
                    "content": [
                        {
                            "type": "text",
                            "text": "heading in a quote",
                            "marks": [{"type": "strong"}],
                        }
                    ],
                },
            ],
        },
    ]


@pytest.mark.parametrize(
    ("source", "content"),
    [
        (
            "\\`not code\\` \\*\\*not bold\\*\\*",
            [{"type": "text", "text": "`not code` **not bold**"}],
        ),
        ("**unclosed bold", [{"type": "text", "text": "**unclosed bold"}]),
        ("a ** b", [{"type": "text", "text": "a ** b"}]),
        (
            "**bold `code` bold**",
            [
                {"type": "text", "text": "bold ", "marks": [{"type": "strong"}]},
                {"type": "text", "text": "code", "marks": [{"type": "code"}]},
                {"type": "text", "text": " bold", "marks": [{"type": "strong"}]},
            ],
        ),
        ("`` ` ``", [{"type": "text", "text": "`", "marks": [{"type": "code"}]}]),
        ("``", [{"type": "text", "text": "``"}]),
        ("<!- - x - ->", [{"type": "text", "text": "<!- - x - ->"}]),
    ],
)
def test_markdown_inline_edge_cases(source: str, content: list[dict[str, Any]]) -> None:
    document = markdown_to_adf(source)
    assert document["content"] == [{"type": "paragraph", "content": content}]
    assert adf_problems(document) == []


def test_an_unclosed_fence_runs_to_the_end_and_an_empty_body_still_carries_the_marker() -> None:
    assert markdown_to_adf("```\ncode")["content"] == [
        {"type": "codeBlock", "content": [{"type": "text", "text": "code"}]}
    ]
    empty = markdown_to_adf("", "m")
    assert adf_problems(empty) == []
    assert has_marker(empty, "m")


def test_a_comment_past_jiras_limit_falls_back_to_a_cut_plain_block() -> None:
    body = "\n".join(f"- item `{n}` with **bold**" for n in range(3000))
    document = markdown_to_adf(body, MARKER)
    assert len(json.dumps(document, ensure_ascii=False)) <= jira.COMMENT_CHARS
    assert adf_problems(document) == []
    assert has_marker(document, MARKER)
    block = document["content"][0]  # type: ignore[index]
    assert block["type"] == "codeBlock"
    assert block["content"][0]["text"].startswith("- item `0` with **bold**")
    assert block["content"][0]["text"].endswith("[Jidoka: cut to fit Jira's comment limit]")


async def test_a_long_comment_is_still_accepted_by_jira(fake: FakeJira) -> None:
    fake.add(make_issue(1))
    client = tracker(fake)
    body = "Findings:\n\n" + "\n".join(f"- `{n}` é" for n in range(5000))
    assert await client.add_comment(await client.fetch_issue(issue_id(1)), body, MARKER)


# --------------------------------------------------------------------------------------------
# ADF -> text (descriptions)
# --------------------------------------------------------------------------------------------


def test_adf_descriptions_read_as_markdown() -> None:
    document = {
        "type": "doc",
        "version": 1,
        "content": [
            {
                "type": "heading",
                "attrs": {"level": 3},
                "content": [{"type": "text", "text": "Steps"}],
            },
            {
                "type": "orderedList",
                "attrs": {"order": 3},
                "content": [
                    {
                        "type": "listItem",
                        "content": [
                            {"type": "paragraph", "content": [{"type": "text", "text": "open"}]}
                        ],
                    },
                    {
                        "type": "listItem",
                        "content": [
                            {"type": "paragraph", "content": [{"type": "text", "text": "click"}]},
                            {
                                "type": "bulletList",
                                "content": [
                                    {
                                        "type": "listItem",
                                        "content": [
                                            {
                                                "type": "paragraph",
                                                "content": [{"type": "text", "text": "twice"}],
                                            }
                                        ],
                                    }
                                ],
                            },
                        ],
                    },
                ],
            },
            {
                "type": "taskList",
                "attrs": {"localId": "t"},
                "content": [
                    {
                        "type": "taskItem",
                        "attrs": {"localId": "1", "state": "DONE"},
                        "content": [{"type": "text", "text": "done"}],
                    },
                    {
                        "type": "taskItem",
                        "attrs": {"localId": "2", "state": "TODO"},
                        "content": [{"type": "text", "text": "todo"}],
                    },
                ],
            },
            {
                "type": "codeBlock",
                "attrs": {"language": "sh"},
                "content": [{"type": "text", "text": "make ```x```"}],
            },
            {
                "type": "blockquote",
                "content": [
                    {
                        "type": "paragraph",
                        "content": [
                            {"type": "mention", "attrs": {"id": "abc", "text": "@Ada"}},
                            {"type": "text", "text": " said "},
                            {"type": "emoji", "attrs": {"shortName": ":tada:", "text": "🎉"}},
                            {"type": "hardBreak"},
                            {
                                "type": "text",
                                "text": "docs",
                                "marks": [{"type": "link", "attrs": {"href": "https://x.example"}}],
                            },
                            {"type": "text", "text": " "},
                            {"type": "inlineCard", "attrs": {"url": "https://y.example"}},
                            {"type": "text", "text": " "},
                            {"type": "status", "attrs": {"text": "BLOCKED", "color": "red"}},
                            {"type": "text", "text": " "},
                            {"type": "date", "attrs": {"timestamp": "1767323045000"}},
                        ],
                    }
                ],
            },
            {"type": "rule"},
            {
                "type": "table",
                "content": [
                    {
                        "type": "tableRow",
                        "content": [
                            {
                                "type": "tableHeader",
                                "content": [
                                    {
                                        "type": "paragraph",
                                        "content": [{"type": "text", "text": "a"}],
                                    }
                                ],
                            },
                            {
                                "type": "tableHeader",
                                "content": [
                                    {
                                        "type": "paragraph",
                                        "content": [{"type": "text", "text": "b|c"}],
                                    }
                                ],
                            },
                        ],
                    },
                    {
                        "type": "tableRow",
                        "content": [
                            {
                                "type": "tableCell",
                                "content": [
                                    {
                                        "type": "paragraph",
                                        "content": [{"type": "text", "text": "1"}],
                                    }
                                ],
                            },
                            {
                                "type": "tableCell",
                                "content": [{"type": "paragraph", "content": []}],
                            },
                        ],
                    },
                ],
            },
            {
                "type": "mediaSingle",
                "content": [{"type": "media", "attrs": {"id": "m", "type": "file"}}],
            },
            {
                "type": "unknownFutureNode",
                "content": [{"type": "paragraph", "content": [{"type": "text", "text": "kept"}]}],
            },
        ],
    }
    assert adf_to_text(document) == "\n".join(
        [
            "### Steps",
            "",
            "3. open",
            "4. click",
            "   - twice",
            "",
            "- [x] done",
            "- [ ] todo",
            "",
            "````sh",
            "make ```x```",
            "````",
            "",
            "> @Ada said 🎉",
            "> [docs](https://x.example) https://y.example [BLOCKED] 2026-01-02",
            "",
            "---",
            "",
            "| a | b\\|c |",
            "|---|---|",
            "| 1 |  |",
            "",
            "[attachment]",
            "",
            "kept",
        ]
    )


def test_adf_reading_is_bounded() -> None:
    huge = adf(*("x" * 1000 for _ in range(200)))
    text = adf_to_text(huge)
    assert len(text) < jira.DESCRIPTION_CHARS + 2 * 200 + 200  # text, separators, the note
    assert text.endswith("see the issue in Jira]")
    deep: dict[str, Any] = {"type": "paragraph", "content": [{"type": "text", "text": "bottom"}]}
    for _ in range(500):
        deep = {"type": "blockquote", "content": [deep]}
    assert "bottom" not in adf_to_text({"type": "doc", "content": [deep]})
    assert adf_to_text(None) == ""
    assert adf_to_text({"type": "doc", "content": "nope"}) == ""


async def test_a_bounded_description_fits_a_payload(fake: FakeJira) -> None:
    fake.add(make_issue(1, description=adf(*("y" * 5000 for _ in range(100)))))
    (issue,) = await tracker(fake).fetch_candidate_issues()
    bounded = issue.bounded()
    assert bounded.description is not None
    assert bounded.description_cut > 0
    assert len(bounded.description) < 70_000


# --------------------------------------------------------------------------------------------
# Errors and rate limits
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "category"),
    [
        (400, TrackerErrorCategory.UNPROCESSABLE),
        (401, TrackerErrorCategory.AUTH),
        (403, TrackerErrorCategory.AUTH),
        (404, TrackerErrorCategory.NOT_FOUND),
        (409, TrackerErrorCategory.CONFLICT),
        (422, TrackerErrorCategory.UNPROCESSABLE),
        (418, TrackerErrorCategory.API_STATUS),
    ],
)
async def test_http_statuses_map_to_categories_quoting_jira(
    fake: FakeJira, status: int, category: TrackerErrorCategory
) -> None:
    fake.override = lambda request: httpx.Response(
        status, json=error_body(f"Jira says {status}", errors={"jql": "field problem"})
    )
    with pytest.raises(TrackerError) as caught:
        await tracker(fake).fetch_candidate_issues()
    assert caught.value.category is category
    assert not caught.value.retryable
    assert len(fake.requests) == 1
    if status != 418:
        assert f"Jira says {status}; jql: field problem" in caught.value.message


async def test_wrong_credentials_are_an_auth_error(fake: FakeJira) -> None:
    client = JiraTracker(config(), EMAIL, "ATATT3-the-wrong-token", transport=fake.transport)
    with pytest.raises(TrackerError) as caught:
        await client.fetch_candidate_issues()
    assert caught.value.category is TrackerErrorCategory.AUTH
    assert "You are not authenticated" in caught.value.message
    assert fake.unauthorized == 1


async def test_a_429_is_retryable_after_retry_after(fake: FakeJira) -> None:
    fake.override = lambda request: httpx.Response(
        429,
        json=error_body("Rate limit exceeded."),
        headers={
            "Retry-After": "17",
            "X-RateLimit-Limit": "1000",
            "X-RateLimit-Remaining": "0",
            "X-RateLimit-Reset": "2026-01-02T03:05Z",
            "RateLimit-Reason": "jira-quota-global-based",
        },
    )
    client = tracker(fake)
    with pytest.raises(TrackerError) as caught:
        await client.fetch_candidate_issues()
    error = caught.value
    assert error.category is TrackerErrorCategory.RATE_LIMITED
    assert error.retryable
    assert error.retry_after_s == pytest.approx(17.0)
    assert len(fake.requests) == 1  # never slept through in-process
    snapshot = client.rate_limit
    assert snapshot is not None
    assert (snapshot.remaining, snapshot.limit, snapshot.resource) == (
        0,
        1000,
        "jira-quota-global-based",
    )
    assert snapshot.reset_at == datetime(2026, 1, 2, 3, 5, tzinfo=UTC)


async def test_a_429_without_retry_after_waits_for_the_reset(fake: FakeJira) -> None:
    fake.override = lambda request: httpx.Response(
        429,
        headers={"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "2026-01-02T03:06Z"},
    )
    with pytest.raises(TrackerError) as caught:
        await tracker(fake).fetch_candidate_issues()
    # Reset at 03:06:00, now 03:04:05: 115 s, plus one for clock drift.
    assert caught.value.retry_after_s == pytest.approx(116.0)


async def test_a_403_with_retry_after_is_a_rate_limit(fake: FakeJira) -> None:
    fake.override = lambda request: httpx.Response(403, headers={"Retry-After": "5"})
    with pytest.raises(TrackerError) as caught:
        await tracker(fake).fetch_candidate_issues()
    assert caught.value.category is TrackerErrorCategory.RATE_LIMITED
    assert caught.value.retry_after_s == pytest.approx(5.0)


async def test_rate_limit_snapshot_follows_successful_answers(fake: FakeJira) -> None:
    fake.add(make_issue(1))
    client = tracker(fake)
    assert client.rate_limit is None
    await client.fetch_candidate_issues()
    snapshot = client.rate_limit
    assert snapshot is not None
    assert (snapshot.remaining, snapshot.limit) == (949, 1000)
    assert snapshot.reset_at == NOW.replace(second=0) + timedelta(minutes=1)
    assert not snapshot.exhausted


async def test_server_errors_are_retried_then_reported_retryable(fake: FakeJira) -> None:
    fake.override = lambda request: httpx.Response(503, text="upstream unavailable")
    with pytest.raises(TrackerError) as caught:
        await tracker(fake).fetch_candidate_issues()
    assert caught.value.category is TrackerErrorCategory.API_STATUS
    assert caught.value.retryable
    assert len(fake.requests) == 3


async def test_a_transient_5xx_is_absorbed(fake: FakeJira) -> None:
    fake.add(make_issue(1))
    failures = iter([httpx.Response(502, text="bad gateway")])
    fake.override = lambda request: next(failures, None)
    assert keys(await tracker(fake).fetch_candidate_issues()) == ["ENG-1"]
    assert len(fake.requests) == 2


async def test_transport_failure_is_a_retryable_request_error(fake: FakeJira) -> None:
    def drop(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    fake.override = drop
    with pytest.raises(TrackerError) as caught:
        await tracker(fake).fetch_candidate_issues()
    assert caught.value.category is TrackerErrorCategory.API_REQUEST
    assert caught.value.retryable


@pytest.mark.parametrize(
    "response",
    [
        httpx.Response(200, text="<html>login</html>"),
        httpx.Response(200, json={"issues": "nope"}),
        httpx.Response(200, json=[]),
    ],
)
async def test_unusable_answers_are_unknown_payloads(
    fake: FakeJira, response: httpx.Response
) -> None:
    fake.override = lambda request: response
    with pytest.raises(TrackerError) as caught:
        await tracker(fake).fetch_candidate_issues()
    assert caught.value.category is TrackerErrorCategory.UNKNOWN_PAYLOAD


def test_credentials_are_required_up_front() -> None:
    with pytest.raises(TrackerError) as caught:
        JiraTracker(config(), "", TOKEN)
    assert caught.value.category is TrackerErrorCategory.MISSING_API_KEY
    with pytest.raises(TrackerError) as caught:
        JiraTracker(config(), EMAIL, "")
    assert caught.value.category is TrackerErrorCategory.MISSING_API_KEY


async def test_token_never_appears_in_errors_logs_or_reprs(
    fake: FakeJira, caplog: pytest.LogCaptureFixture
) -> None:
    seen: list[str] = []

    def echo(request: httpx.Request) -> httpx.Response:
        auth = request.headers["authorization"]
        seen.append(auth)
        if len(seen) == 1:
            return httpx.Response(
                400, json=error_body(f"bad auth {auth} for {EMAIL} token {TOKEN}")
            )
        return httpx.Response(500, text=f"oops {auth} {TOKEN}")

    fake.override = echo
    client = tracker(fake)
    errors: list[TrackerError] = []
    with caplog.at_level(logging.DEBUG):
        for _ in range(2):
            with pytest.raises(TrackerError) as caught:
                await client.fetch_candidate_issues()
            errors.append(caught.value)
    assert seen and all(a == f"Basic {CREDENTIAL}" for a in seen)
    assert "***" in str(errors[0])
    for error in errors:
        for secret in (TOKEN, CREDENTIAL, EMAIL):
            assert secret not in str(error)
            assert secret not in error.message
    assert caplog.records
    for secret in (TOKEN, CREDENTIAL):
        assert secret not in caplog.text
    for secret in (TOKEN, CREDENTIAL, EMAIL):
        assert secret not in repr(client)


# --------------------------------------------------------------------------------------------
# Data Center (REST v2)
# --------------------------------------------------------------------------------------------


async def test_data_center_searches_v2_with_start_at_pages(dc: FakeJira) -> None:
    dc.page_size = 2
    dc.add(*(make_issue(n, description="h2. Wiki *markup*") for n in range(1, 6)))
    issues = await tracker(dc).fetch_candidate_issues()
    assert keys(issues) == ["ENG-1", "ENG-2", "ENG-3", "ENG-4", "ENG-5"]
    assert issues[0].description == "h2. Wiki *markup*"  # v2: wiki text, as written
    assert [b["startAt"] for b in searches(dc)] == [0, 2, 4]
    assert {r.url.path for r in dc.requests} == {"/rest/api/2/search"}


async def test_data_center_reads_by_id_one_by_one(dc: FakeJira) -> None:
    dc.add(make_issue(1), make_issue(2), make_issue(3, project="OPS"))
    found = await tracker(dc).fetch_issues_by_ids([issue_id(n) for n in (1, 2, 3, 4)])
    assert keys(found) == ["ENG-1", "ENG-2"]
    assert sorted(r.url.path for r in dc.requests) == [
        f"/rest/api/2/issue/{issue_id(n)}" for n in (1, 2, 3, 4)
    ]


async def test_data_center_by_id_reads_are_all_or_nothing(dc: FakeJira) -> None:
    dc.add(make_issue(1), make_issue(2))
    dc.override = lambda request: (
        httpx.Response(401, json=error_body("Unauthorized"))
        if request.url.path.endswith(issue_id(2))
        else None
    )
    with pytest.raises(TrackerError) as caught:
        await tracker(dc).fetch_issues_by_ids([issue_id(1), issue_id(2)])
    assert caught.value.category is TrackerErrorCategory.AUTH


async def test_data_center_transitions_and_wiki_comments(dc: FakeJira) -> None:
    dc.add(make_issue(1))
    client = tracker(dc)
    moved = await client.set_state(await client.fetch_issue(issue_id(1)), "In Progress")
    assert moved.state == "In Progress"
    body = "**Jidoka: paused** → Blocked\n\n- run `make test`\n  - nested_item\n\n> a *quote*"
    assert await client.add_comment(moved, body, MARKER)
    stored = dc.comments[issue_id(1)][-1]["body"]
    assert stored == (
        "*Jidoka: paused* → Blocked\n\n"
        "* run {{make test}}\n"
        "** nested\\_item\n\n"
        "{quote}\na \\*quote\\*\n{quote}\n\n"
        "{anchor:jidoka-jidoka-issue-demo-ENG-1%3Aship}"
    )
    assert not await client.add_comment(moved, body, MARKER)
    assert dc.writes() == [
        "POST /rest/api/2/issue/10001/transitions",
        "POST /rest/api/2/issue/10001/comment",
    ]


def test_wiki_rendering_of_code_blocks_headings_and_backslashes() -> None:
    source = "# Title\n\n```\n{noformat} *x*\n```\n\npath C:\\\\dir\\\\*\n\n1. one\n2. two"
    assert markdown_to_wiki(source) == (
        "h1. Title\n\n"
        "{noformat}\n{ noformat} *x*\n{noformat}\n\n"
        "path C:\\dir\\\u200b\\*\n\n"
        "# one\n# two"
    )
    long = markdown_to_wiki("x" * 40_000, MARKER)
    assert len(long) <= jira.COMMENT_CHARS
    assert long.endswith(marker_anchor(MARKER))


async def test_data_center_personal_access_tokens_are_bearer() -> None:
    fake = FakeJira(deployment="data_center", token=TOKEN, email=None)
    fake.add(make_issue(1))
    client = tracker(fake, email="")
    assert keys(await client.fetch_candidate_issues()) == ["ENG-1"]
    assert fake.requests[0].headers["authorization"] == f"Bearer {TOKEN}"
    assert fake.unauthorized == 0


# --------------------------------------------------------------------------------------------
# Over real HTTP
# --------------------------------------------------------------------------------------------


async def test_the_fake_serves_the_adapter_over_real_http() -> None:
    fake = FakeJira(email=EMAIL, token=TOKEN)
    fake.add(make_issue(1), make_issue(2, state="In Progress"))
    with serve_jira(fake) as base_url:
        client = JiraTracker(config(base_url=base_url), EMAIL, TOKEN)
        try:
            issues = await client.fetch_candidate_issues()
            assert keys(issues) == ["ENG-1", "ENG-2"]
            assert issues[0].url == f"{base_url}/browse/ENG-1"
            moved = await client.set_state(issues[0], "In Progress")
            assert await client.add_comment(moved, "**Jidoka: started**", "start")
            assert not await client.add_comment(moved, "**Jidoka: started**", "start")
        finally:
            await client.aclose()
    assert fake.state_of("ENG-1") == "In Progress"
    assert len(fake.comments[issue_id(1)]) == 1
    assert fake.unauthorized == 0
