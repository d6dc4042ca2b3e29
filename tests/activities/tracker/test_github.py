"""GitHub Issues adapter against an in-memory GitHub behind ``httpx.MockTransport``.

The fake (``tests/support/fakes/github_server.py``) keeps issues, labels, comments and pull requests as
REST v3 objects built from the documented shapes in ``tests/fixtures/github/``, serves them with
``Link`` pagination, ETags and rate-limit headers, and applies writes, so tests assert on what
GitHub would end up holding.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from activities.tracker.base import TrackerError, TrackerErrorCategory
from activities.tracker.github import GitHubTracker, marker_tag
from activities.tracker.http import ConditionalCache, RetryPolicy
from jidoka.config import GitHubTrackerConfig, WorkflowConfig
from jidoka.models import Issue
from jidoka.workflow_file import semantic_problems
from tests.support.fakes.github_server import (
    NOW,
    REPO,
    FakeGitHub,
    fixture,
    label,
    make_issue,
    make_pr_issue,
)
from tests.support.secret_scan import register_secret

TOKEN = register_secret("ghp_S3cretT0kenValue_0123456789abcdefABCD")


def config(**overrides: Any) -> GitHubTrackerConfig:
    values: dict[str, Any] = {
        "kind": "github",
        "repo": REPO,
        "active_states": ["Todo", "In Progress"],
        "working_state": "In Progress",
        "paused_states": ["Awaiting Answers"],
        "backlog_states": ["Backlog"],
        "terminal_states": ["Done", "Cancelled"],
        "done_state": "Done",
        "state_labels": {
            "Todo": "jidoka:todo",
            "In Progress": "jidoka:in-progress",
            "Awaiting Answers": "jidoka:awaiting-answers",
        },
        "closed_states": {"Done": "completed", "Cancelled": "not_planned"},
        "priority_labels": {"P1": 1, "p2": 2, "p3": 3},
    }
    values.update(overrides)
    return GitHubTrackerConfig.model_validate(values)


@pytest.fixture
def gh() -> FakeGitHub:
    return FakeGitHub()


def tracker(gh: FakeGitHub, cfg: GitHubTrackerConfig | None = None, **kw: Any) -> GitHubTracker:
    kw.setdefault("retry", RetryPolicy(attempts=3, first_delay_s=0.0))
    return GitHubTracker(cfg or config(), TOKEN, transport=gh.transport, clock=lambda: NOW, **kw)


def ids(issues: list[Issue]) -> list[str]:
    return sorted((i.id for i in issues), key=int)


# --------------------------------------------------------------------------------------------
# Reads
# --------------------------------------------------------------------------------------------


async def test_listing_follows_link_pagination_and_sends_github_headers(gh: FakeGitHub) -> None:
    gh.page_size = 2
    for n in range(1, 6):
        gh.issues[n] = make_issue(n, labels=["jidoka:todo"])
    issues = await tracker(gh).fetch_issues_by_states(["Todo"])
    assert ids(issues) == ["1", "2", "3", "4", "5"]
    listing = [r for r in gh.requests if r.url.path.endswith("/issues")]
    assert len(listing) == 3
    assert [r.url.params.get("page") for r in listing] == [None, "2", "3"]
    first = listing[0]
    assert first.url.params["state"] == "open"
    assert first.url.params["labels"] == "jidoka:todo"
    assert first.url.params["per_page"] == "100"
    assert first.headers["authorization"] == f"Bearer {TOKEN}"
    assert first.headers["accept"] == "application/vnd.github+json"
    assert first.headers["x-github-api-version"] == "2022-11-28"


async def test_candidates_map_labels_to_states_and_skip_pull_requests(gh: FakeGitHub) -> None:
    gh.issues[1] = make_issue(1, labels=["jidoka:todo"])
    gh.issues[2] = make_issue(2, labels=["JIDOKA:In-Progress", "bug"])
    gh.issues[3] = make_pr_issue(3, labels=["jidoka:todo"])
    gh.issues[4] = make_issue(4, labels=["jidoka:awaiting-answers"])
    gh.issues[5] = make_issue(5, labels=[])
    issues = await tracker(gh).fetch_candidate_issues()
    assert {i.id: i.state for i in issues} == {"1": "Todo", "2": "In Progress"}
    # One listing per labelled active state: GitHub's label filter is an AND.
    assert sorted(r.url.params["labels"] for r in gh.requests) == [
        "jidoka:in-progress",
        "jidoka:todo",
    ]


async def test_default_open_state_takes_unlabelled_open_issues(gh: FakeGitHub) -> None:
    gh.issues[1] = make_issue(1, labels=["enhancement"])
    gh.issues[2] = make_issue(2, labels=["jidoka:todo"])
    cfg = config(default_open_state="Backlog")
    issues = await tracker(gh, cfg).fetch_issues_by_states(["Backlog", "Todo"])
    assert {i.id: i.state for i in issues} == {"1": "Backlog", "2": "Todo"}
    # Unlabelled issues can only be found by listing every open issue: one listing.
    assert len(gh.requests) == 1
    assert "labels" not in gh.requests[0].url.params


async def test_unlabelled_open_issue_is_not_the_lines_without_default(gh: FakeGitHub) -> None:
    gh.issues[1] = make_issue(1, labels=["enhancement"])
    client = tracker(gh)
    assert await client.fetch_issues_by_ids(["1"]) == []
    with pytest.raises(TrackerError) as caught:
        await client.fetch_issue("1")
    assert caught.value.category is TrackerErrorCategory.NOT_FOUND


async def test_closed_issues_map_by_state_reason(gh: FakeGitHub) -> None:
    gh.issues[1] = make_issue(1, state="closed", state_reason="completed")
    gh.issues[2] = make_issue(2, state="closed", state_reason="not_planned")
    gh.issues[3] = make_issue(3, state="closed", state_reason="duplicate")
    gh.issues[4] = make_issue(4, state="closed", state_reason=None)
    gh.issues[5] = make_issue(5, labels=["jidoka:todo"])
    issues = await tracker(gh).fetch_issues_by_states(["Done", "Cancelled"])
    assert {i.id: i.state for i in issues} == {"1": "Done", "2": "Cancelled"}
    assert [r.url.params["state"] for r in gh.requests] == ["closed"]


async def test_issue_is_normalised(gh: FakeGitHub) -> None:
    raw = fixture("issue.json")  # number 1347, labels Bug + jidoka:todo, blockers in the body
    raw["labels"].extend([label(" P2 "), label("p3"), label("bug")])
    gh.issues[1347] = raw
    gh.issues[1300] = make_issue(1300, labels=["jidoka:in-progress"])
    issues = await tracker(gh).fetch_candidate_issues()
    issue = next(i for i in issues if i.id == "1347")
    assert issue.identifier == "widgets#1347"
    assert issue.title == "Found a bug"
    assert issue.state == "Todo"
    assert issue.url == "https://github.com/octo-org/widgets/issues/1347"
    assert issue.labels == ["bug", "jidoka:todo", "p2", "p3"]
    assert issue.priority == 2
    assert issue.created_at == datetime(2011, 4, 22, 13, 33, 48, tzinfo=UTC)
    assert issue.description is not None and issue.description.startswith("I'm having")
    blockers = {b.identifier: (b.id, b.state) for b in issue.blocked_by}
    assert blockers == {
        "widgets#1300": ("1300", "In Progress"),  # fetched together: state known
        "octo-org/other#7": (None, None),  # another repository: identifier only
        "widgets#1301": ("1301", None),  # not fetched: state unknown
    }


async def test_malformed_records_are_omitted_from_lists_but_fatal_by_id(
    gh: FakeGitHub, caplog: pytest.LogCaptureFixture
) -> None:
    gh.issues[1] = make_issue(1, labels=["jidoka:todo"])
    gh.issues[2] = make_issue(2, title=None, labels=["jidoka:todo"])
    gh.issues[3] = make_issue(3, labels=["jidoka:todo", "jidoka:in-progress"])
    client = tracker(gh)
    with caplog.at_level(logging.WARNING, logger="jidoka.tracker"):
        issues = await client.fetch_candidate_issues()
    assert ids(issues) == ["1"]
    assert "#2: no title" in caplog.text
    assert "#3: several open-state labels" in caplog.text
    for bad in ("2", "3"):
        with pytest.raises(TrackerError) as caught:
            await client.fetch_issue(bad)
        assert caught.value.category is TrackerErrorCategory.MALFORMED_ISSUE
        with pytest.raises(TrackerError) as caught:
            await client.fetch_issues_by_ids(["1", bad])
        assert caught.value.category is TrackerErrorCategory.MALFORMED_ISSUE


async def test_empty_inputs_make_no_request(gh: FakeGitHub) -> None:
    client = tracker(gh)
    assert await client.fetch_issues_by_states([]) == []
    assert await client.fetch_issues_by_ids([]) == []
    # States this line cannot represent on GitHub hold nothing: no request either.
    assert await client.fetch_issues_by_states(["Nowhere"]) == []
    assert gh.requests == []


async def test_by_ids_omits_gone_and_out_of_scope_issues(gh: FakeGitHub) -> None:
    gh.issues[1] = make_issue(1, labels=["jidoka:in-progress"])
    gh.issues[2] = make_pr_issue(2, labels=["jidoka:todo"])
    gh.issues[3] = make_issue(3, state="closed", state_reason="duplicate")
    gh.issues[4] = make_issue(4, state="closed", state_reason="completed")
    found = await tracker(gh).fetch_issues_by_ids(["1", "2", "3", "4", "99", "1", "not-a-number"])
    assert {i.id: i.state for i in found} == {"1": "In Progress", "4": "Done"}
    # Input ids are a set: issue 1 is read once.
    assert sum(r.url.path.endswith("/issues/1") for r in gh.requests) == 1


async def test_by_ids_is_all_or_nothing(gh: FakeGitHub) -> None:
    for n in range(1, 5):
        gh.issues[n] = make_issue(n, labels=["jidoka:todo"])

    def broken(request: httpx.Request) -> httpx.Response | None:
        if request.url.path.endswith("/issues/3"):
            return httpx.Response(502, json={"message": "Server Error"})
        return None

    gh.override = broken
    with pytest.raises(TrackerError) as caught:
        await tracker(gh).fetch_issues_by_ids(["1", "2", "3", "4"])
    assert caught.value.category is TrackerErrorCategory.API_STATUS
    assert caught.value.retryable


async def test_etag_turns_a_304_into_the_cached_body(gh: FakeGitHub) -> None:
    gh.page_size = 1
    gh.issues[1] = make_issue(1, labels=["jidoka:todo"])
    gh.issues[2] = make_issue(2, labels=["jidoka:todo"])
    cache = ConditionalCache()
    first = await tracker(gh, cache=cache).fetch_candidate_issues()
    remaining = gh.remaining
    before = len(gh.requests)
    # A new client sharing the cache, as a worker would keep one per line.
    second_client = tracker(gh, cache=cache)
    second = await second_client.fetch_candidate_issues()
    assert second == first
    again = gh.requests[before:]
    assert again and all("if-none-match" in r.headers for r in again)
    assert gh.not_modified == len(again)
    assert gh.remaining == remaining  # 304s cost no rate limit
    # A changed issue changes the ETag: the new body is served and used.
    gh.issues[2]["title"] = "Renamed"
    third = await second_client.fetch_candidate_issues()
    assert {i.id: i.title for i in third}["2"] == "Renamed"


async def test_a_link_header_sent_with_a_304_is_followed(gh: FakeGitHub) -> None:
    gh.issues[1] = make_issue(1, labels=["jidoka:todo"])
    gh.issues[2] = make_issue(2, labels=["jidoka:todo"])
    client = tracker(gh)
    assert ids(await client.fetch_issues_by_states(["Todo"])) == ["1", "2"]

    def page_two_appears(request: httpx.Request) -> httpx.Response | None:
        if request.url.params.get("page") == "2":
            return httpx.Response(200, json=[make_issue(3, labels=["jidoka:todo"])])
        next_url = request.url.copy_merge_params({"page": "2"})
        return httpx.Response(304, headers={"Link": f'<{next_url}>; rel="next"'})

    gh.override = page_two_appears
    assert ids(await client.fetch_issues_by_states(["Todo"])) == ["1", "2", "3"]


# --------------------------------------------------------------------------------------------
# Errors and rate limits
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "body", "category", "retryable"),
    [
        (401, "error_bad_credentials.json", TrackerErrorCategory.AUTH, False),
        (403, "error_forbidden.json", TrackerErrorCategory.AUTH, False),
        (404, "error_not_found.json", TrackerErrorCategory.NOT_FOUND, False),
        (409, "error_server.json", TrackerErrorCategory.CONFLICT, False),
        (422, "error_validation_failed.json", TrackerErrorCategory.UNPROCESSABLE, False),
        (500, "error_server.json", TrackerErrorCategory.API_STATUS, True),
        (503, "error_server.json", TrackerErrorCategory.API_STATUS, True),
        (418, "error_server.json", TrackerErrorCategory.API_STATUS, False),
    ],
)
async def test_http_statuses_map_to_categories(
    gh: FakeGitHub, status: int, body: str, category: TrackerErrorCategory, retryable: bool
) -> None:
    gh.override = lambda request: httpx.Response(status, json=fixture(body))
    with pytest.raises(TrackerError) as caught:
        await tracker(gh).fetch_issue("1")
    assert caught.value.category is category
    assert caught.value.retryable is retryable
    assert caught.value.retry_after_s is None
    assert f"HTTP {status}" in str(caught.value)
    # Reads are retried in-process on 5xx only.
    assert len(gh.requests) == (3 if status >= 500 else 1)


async def test_unprocessable_names_githubs_reason(gh: FakeGitHub) -> None:
    gh.override = lambda request: httpx.Response(422, json=fixture("error_validation_failed.json"))
    with pytest.raises(TrackerError) as caught:
        await tracker(gh).fetch_issue("1")
    assert "No commits between main and jidoka/widgets-1347" in str(caught.value)


async def test_a_transient_5xx_is_absorbed_by_the_in_process_retry(gh: FakeGitHub) -> None:
    gh.issues[1] = make_issue(1, labels=["jidoka:todo"])
    failures = [httpx.Response(502, json={"message": "Server Error"})]
    gh.override = lambda request: failures.pop() if failures else None
    issue = await tracker(gh).fetch_issue("1")
    assert issue.id == "1"
    assert len(gh.requests) == 2


async def test_transport_failure_is_a_retryable_request_error(gh: FakeGitHub) -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    gh.override = refuse
    sleeps: list[float] = []

    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)

    client = tracker(gh, retry=RetryPolicy(attempts=3, first_delay_s=0.5), sleep=sleep)
    with pytest.raises(TrackerError) as caught:
        await client.fetch_candidate_issues()
    assert caught.value.category is TrackerErrorCategory.API_REQUEST
    assert caught.value.retryable
    assert sleeps == [0.5, 1.0]


async def test_writes_that_create_are_not_resent(gh: FakeGitHub) -> None:
    gh.issues[1] = make_issue(1, labels=["jidoka:todo"])

    def flaky_post(request: httpx.Request) -> httpx.Response | None:
        if request.method == "POST":
            raise httpx.ReadTimeout("timed out", request=request)
        return None

    gh.override = flaky_post
    client = tracker(gh)
    issue = await client.fetch_issue("1")
    with pytest.raises(TrackerError) as caught:
        await client.add_comment(issue, "hello", "m1")
    assert caught.value.category is TrackerErrorCategory.API_REQUEST
    assert sum(r.method == "POST" for r in gh.requests) == 1


async def test_non_json_and_wrong_shapes_are_unknown_payloads(gh: FakeGitHub) -> None:
    gh.override = lambda request: httpx.Response(200, text="<html>proxy login</html>")
    with pytest.raises(TrackerError) as caught:
        await tracker(gh).fetch_issue("1")
    assert caught.value.category is TrackerErrorCategory.UNKNOWN_PAYLOAD
    gh.override = lambda request: httpx.Response(200, json={"items": []})
    with pytest.raises(TrackerError) as caught:
        await tracker(gh).fetch_candidate_issues()
    assert caught.value.category is TrackerErrorCategory.UNKNOWN_PAYLOAD


async def test_primary_rate_limit_waits_for_the_reset(gh: FakeGitHub) -> None:
    reset = NOW + timedelta(seconds=120)
    gh.override = lambda request: httpx.Response(
        403,
        json=fixture("error_primary_rate_limit.json"),
        headers={
            "X-RateLimit-Limit": "5000",
            "X-RateLimit-Remaining": "0",
            "X-RateLimit-Reset": str(int(reset.timestamp())),
            "X-RateLimit-Resource": "core",
        },
    )
    client = tracker(gh)
    with pytest.raises(TrackerError) as caught:
        await client.fetch_candidate_issues()
    error = caught.value
    assert error.category is TrackerErrorCategory.RATE_LIMITED
    assert error.retryable
    assert error.retry_after_s == pytest.approx(121.0)
    # Not hammered: a rate limit is the caller's to wait out.
    assert len(gh.requests) == 1
    snapshot = client.rate_limit
    assert snapshot is not None
    assert (snapshot.remaining, snapshot.limit, snapshot.resource) == (0, 5000, "core")
    assert snapshot.reset_at == reset
    assert snapshot.exhausted


@pytest.mark.parametrize(
    ("status", "headers", "expected_wait"),
    [
        (403, {"Retry-After": "30"}, 30.0),
        (429, {"Retry-After": "7"}, 7.0),
        (429, {"Retry-After": "Fri, 02 Jan 2026 03:05:05 GMT"}, 60.0),
        (403, {}, 60.0),  # secondary limit without headers: "wait at least one minute"
    ],
)
async def test_secondary_rate_limits(
    gh: FakeGitHub, status: int, headers: dict[str, str], expected_wait: float
) -> None:
    gh.override = lambda request: httpx.Response(
        status, json=fixture("error_secondary_rate_limit.json"), headers=headers
    )
    with pytest.raises(TrackerError) as caught:
        await tracker(gh).fetch_issue("1")
    assert caught.value.category is TrackerErrorCategory.RATE_LIMITED
    assert caught.value.retryable
    assert caught.value.retry_after_s == pytest.approx(expected_wait)


async def test_rate_limit_snapshot_follows_successful_answers(gh: FakeGitHub) -> None:
    gh.issues[1] = make_issue(1, labels=["jidoka:todo"])
    client = tracker(gh)
    assert client.rate_limit is None
    await client.fetch_issue("1")
    snapshot = client.rate_limit
    assert snapshot is not None
    assert snapshot.remaining == gh.remaining
    assert snapshot.observed_at == NOW
    assert not snapshot.exhausted
    assert snapshot.wait_s(NOW) is None


async def test_pagination_never_carries_the_token_to_another_host(gh: FakeGitHub) -> None:
    def evil(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            200, json=[], headers={"Link": '<https://evil.example/steal?page=2>; rel="next"'}
        )

    gh.override = evil
    with pytest.raises(TrackerError) as caught:
        await tracker(gh).fetch_candidate_issues()
    assert caught.value.category is TrackerErrorCategory.UNKNOWN_PAYLOAD
    assert all(r.url.host == "api.github.com" for r in gh.requests)


async def test_a_looping_next_link_is_a_pagination_error(gh: FakeGitHub) -> None:
    def loop(request: httpx.Request) -> httpx.Response:
        page = 2 if request.url.params.get("page") != "2" else 1
        next_url = request.url.copy_merge_params({"page": str(page)})
        return httpx.Response(200, json=[], headers={"Link": f'<{next_url}>; rel="next"'})

    gh.override = loop
    with pytest.raises(TrackerError) as caught:
        await tracker(gh).fetch_issues_by_states(["Todo"])
    assert caught.value.category is TrackerErrorCategory.MISSING_PAGINATION_CURSOR
    assert len(gh.requests) < 10


# --------------------------------------------------------------------------------------------
# Writes
# --------------------------------------------------------------------------------------------


async def test_set_state_swaps_state_labels_and_is_idempotent(gh: FakeGitHub) -> None:
    gh.issues[7] = make_issue(7, labels=["bug", "jidoka:todo"])
    client = tracker(gh)
    issue = await client.fetch_issue("7")
    updated = await client.set_state(issue, "in progress")
    assert updated.state == "In Progress"
    assert sorted(x["name"] for x in gh.issues[7]["labels"]) == ["bug", "jidoka:in-progress"]
    # The new label goes on before the old one comes off.
    assert gh.writes() == [
        f"POST /repos/{REPO}/issues/7/labels",
        f"DELETE /repos/{REPO}/issues/7/labels/jidoka:todo",
    ]
    before = len(gh.writes())
    again = await client.set_state(updated, "In Progress")
    assert again.state == "In Progress"
    assert len(gh.writes()) == before


async def test_set_state_to_a_closed_state_closes_with_its_reason(gh: FakeGitHub) -> None:
    gh.issues[7] = make_issue(7, labels=["bug", "jidoka:in-progress"])
    client = tracker(gh)
    done = await client.set_state(await client.fetch_issue("7"), "Done")
    assert done.state == "Done"
    raw = gh.issues[7]
    assert (raw["state"], raw["state_reason"]) == ("closed", "completed")
    assert [x["name"] for x in raw["labels"]] == ["bug"]
    writes = gh.writes()
    assert writes[0] == f"PATCH /repos/{REPO}/issues/7"  # closed first, then labels dropped
    assert json.loads(gh.requests[-2].content) == {"state": "closed", "state_reason": "completed"}
    before = len(gh.writes())
    assert (await client.set_state(done, "Done")).state == "Done"
    assert len(gh.writes()) == before


async def test_set_state_changes_the_reason_of_a_closed_issue(gh: FakeGitHub) -> None:
    gh.issues[7] = make_issue(7, state="closed", state_reason="completed")
    client = tracker(gh)
    cancelled = await client.set_state(await client.fetch_issue("7"), "Cancelled")
    assert cancelled.state == "Cancelled"
    assert (gh.issues[7]["state"], gh.issues[7]["state_reason"]) == ("closed", "not_planned")


async def test_set_state_reopens_a_closed_issue_into_a_labelled_state(gh: FakeGitHub) -> None:
    gh.issues[7] = make_issue(7, state="closed", state_reason="completed")
    client = tracker(gh)
    todo = await client.set_state(await client.fetch_issue("7"), "Todo")
    assert todo.state == "Todo"
    raw = gh.issues[7]
    assert raw["state"] == "open"
    assert [x["name"] for x in raw["labels"]] == ["jidoka:todo"]


async def test_set_state_to_the_default_open_state_drops_state_labels(gh: FakeGitHub) -> None:
    gh.issues[7] = make_issue(7, labels=["jidoka:todo", "bug"])
    client = tracker(gh, config(default_open_state="Backlog"))
    backlog = await client.set_state(await client.fetch_issue("7"), "Backlog")
    assert backlog.state == "Backlog"
    assert [x["name"] for x in gh.issues[7]["labels"]] == ["bug"]


async def test_set_state_to_an_unmapped_state_writes_nothing(gh: FakeGitHub) -> None:
    gh.issues[7] = make_issue(7, labels=["jidoka:todo"])
    client = tracker(gh)
    issue = await client.fetch_issue("7")
    with pytest.raises(TrackerError) as caught:
        await client.set_state(issue, "Backlog")  # declared, but not mapped in this profile
    assert caught.value.category is TrackerErrorCategory.UNPROCESSABLE
    assert gh.writes() == []


async def test_add_comment_is_idempotent_by_marker_across_pages(gh: FakeGitHub) -> None:
    gh.page_size = 2
    gh.issues[7] = make_issue(7, labels=["jidoka:todo"])
    client = tracker(gh)
    issue = await client.fetch_issue("7")
    for n in range(3):
        assert await client.add_comment(issue, f"note {n}", f"note-{n}")
    posted = gh.comments[7][0]["body"]
    assert posted == "note 0\n\n<!-- jidoka:note-0 -->"
    # The marker of note-2 sits on the second page of comments.
    assert not await client.add_comment(issue, "note 2 again", "note-2")
    assert len(gh.comments[7]) == 3
    listing = [r for r in gh.requests if r.method == "GET" and r.url.path.endswith("/comments")]
    assert listing[-1].url.params.get("page") == "2"


def test_marker_tags_cannot_close_the_html_comment_early() -> None:
    assert marker_tag("jidoka-issue-demo-X_1:ship") == "<!-- jidoka:jidoka-issue-demo-X_1:ship -->"
    tag = marker_tag("evil --> <script>")
    assert tag.count("-->") == 1 and tag.endswith(" -->")
    assert marker_tag("a b") != marker_tag("a_b")


async def test_publish_branch_opens_one_pull_request_and_links_it_once(gh: FakeGitHub) -> None:
    gh.issues[7] = make_issue(7, labels=["jidoka:in-progress"])
    client = tracker(gh, config(pull_request_base="develop", draft_pull_requests=True))
    issue = await client.fetch_issue("7")
    url = await client.publish_branch(
        issue, branch="jidoka/widgets_7", base_branch="main", title="Fix #7", body="v1"
    )
    assert url == f"https://github.com/{REPO}/pull/2000"
    assert len(gh.pulls) == 1
    pull = gh.pulls[0]
    assert (pull["base"]["ref"], pull["head"]["ref"], pull["draft"]) == (
        "develop",
        "jidoka/widgets_7",
        True,
    )
    lookup = next(r for r in gh.requests if r.url.path.endswith("/pulls") and r.method == "GET")
    assert lookup.url.params["head"] == "octo-org:jidoka/widgets_7"
    assert lookup.url.params["state"] == "open"
    # Again, with a new body: the same pull request, its body updated, still one link.
    again = await client.publish_branch(
        issue, branch="jidoka/widgets_7", base_branch="main", title="Fix #7", body="v2"
    )
    assert again == url
    assert len(gh.pulls) == 1
    assert gh.pulls[0]["body"] == "v2"
    links = [c for c in gh.comments[7] if url in c["body"]]
    assert len(links) == 1
    assert "<!-- jidoka:pr:jidoka/widgets_7 -->" in links[0]["body"]
    # A third identical call writes nothing at all.
    before = len(gh.writes())
    await client.publish_branch(
        issue, branch="jidoka/widgets_7", base_branch="main", title="Fix #7", body="v2"
    )
    assert len(gh.writes()) == before


async def test_publish_branch_uses_the_workspace_base_by_default(gh: FakeGitHub) -> None:
    gh.issues[7] = make_issue(7, labels=["jidoka:in-progress"])
    client = tracker(gh)
    await client.publish_branch(
        await client.fetch_issue("7"), branch="b", base_branch="trunk", title="t", body="b"
    )
    assert (gh.pulls[0]["base"]["ref"], gh.pulls[0]["draft"]) == ("trunk", False)


async def test_publish_branch_reuses_a_pull_request_created_concurrently(gh: FakeGitHub) -> None:
    gh.issues[7] = make_issue(7, labels=["jidoka:in-progress"])
    client = tracker(gh)
    issue = await client.fetch_issue("7")
    lookups = 0

    def race(request: httpx.Request) -> httpx.Response | None:
        nonlocal lookups
        if request.method == "GET" and request.url.path.endswith("/pulls"):
            lookups += 1
            if lookups == 1:
                # Someone else opens the pull request between our lookup and our create.
                gh.pulls.append(fixture("pull_request.json"))
                gh.pulls[0]["head"].update(ref="new-topic")
                return httpx.Response(200, json=[])
        return None

    gh.override = race
    url = await client.publish_branch(
        issue, branch="new-topic", base_branch="main", title="t", body="b"
    )
    assert url == "https://github.com/octo-org/widgets/pull/1350"
    assert len(gh.pulls) == 1


async def test_publish_branch_surfaces_a_real_validation_failure(gh: FakeGitHub) -> None:
    gh.issues[7] = make_issue(7, labels=["jidoka:in-progress"])
    client = tracker(gh)
    issue = await client.fetch_issue("7")

    def no_commits(request: httpx.Request) -> httpx.Response | None:
        if request.method == "POST" and request.url.path.endswith("/pulls"):
            return httpx.Response(422, json=fixture("error_validation_failed.json"))
        return None

    gh.override = no_commits
    with pytest.raises(TrackerError) as caught:
        await client.publish_branch(issue, branch="b", base_branch="main", title="t", body="b")
    assert caught.value.category is TrackerErrorCategory.UNPROCESSABLE
    assert "No commits between" in caught.value.message
    assert gh.comments.get(7, []) == []


# --------------------------------------------------------------------------------------------
# The token stays secret
# --------------------------------------------------------------------------------------------


async def test_token_never_appears_in_errors_logs_or_reprs(
    gh: FakeGitHub, caplog: pytest.LogCaptureFixture
) -> None:
    leaked: list[str] = []

    def echo(request: httpx.Request) -> httpx.Response:
        # A misbehaving proxy that echoes the credentials it received.
        auth = request.headers["authorization"]
        leaked.append(auth)
        if request.url.path.endswith("/issues/1"):
            return httpx.Response(401, json={"message": f"Bad credentials: {auth}"})
        if request.url.path.endswith("/issues/2"):
            raise httpx.ConnectError(f"proxy refused {auth}", request=request)
        return httpx.Response(500, text=f"upstream failed for {auth}")

    gh.override = echo
    client = tracker(gh)
    errors: list[TrackerError] = []
    with caplog.at_level(logging.DEBUG):
        for issue_id in ("1", "2", "3"):
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


async def test_even_a_short_token_is_scrubbed(gh: FakeGitHub) -> None:
    short = "tk42x"  # below the Scrubber's minimum length: scrubbed all the same
    gh.override = lambda request: httpx.Response(
        401, json={"message": f"bad: {request.headers['authorization']}"}
    )
    client = GitHubTracker(config(), short, transport=gh.transport)
    with pytest.raises(TrackerError) as caught:
        await client.fetch_issue("1")
    assert short not in str(caught.value)
    assert "Bearer ***" in str(caught.value)


# --------------------------------------------------------------------------------------------
# WORKFLOW.md cross-key rules of the GitHub profile
# --------------------------------------------------------------------------------------------


def _problems(**tracker: Any) -> list[str]:
    tracker.setdefault("default_open_state", "Backlog")
    raw: dict[str, Any] = {
        "line": "demo",
        "tracker": config(**tracker).model_dump(mode="json"),
        "workspace": {"repo": "https://github.com/octo-org/widgets.git"},
        "agent": {"kind": "scripted"},
        "verdicts": {"DONE": "Done", "AWAITING_ANSWERS": "Awaiting Answers"},
    }
    return [f"{p.path}: {p.message}" for p in semantic_problems(WorkflowConfig.model_validate(raw))]


def test_the_default_test_profile_is_valid() -> None:
    assert _problems() == []


def test_every_declared_state_needs_a_github_representation() -> None:
    problems = _problems(closed_states={"Done": "completed"})
    assert problems == [
        "tracker.terminal_states: 'Cancelled' has no GitHub representation: no issue could be in it"
    ]
    problems = _problems(default_open_state=None)
    assert [p.split(":")[0] for p in problems] == ["tracker.backlog_states"]


def test_ambiguous_github_mappings_are_rejected() -> None:
    shared_label = _problems(
        state_labels={
            "Todo": "jidoka:todo",
            "In Progress": "JIDOKA:TODO",
            "Awaiting Answers": "jidoka:awaiting-answers",
        }
    )
    assert any("tracker.state_labels.In Progress" in p for p in shared_label)
    shared_reason = _problems(closed_states={"Done": "completed", "Cancelled": "completed"})
    assert any("tracker.closed_states.Cancelled" in p for p in shared_reason)
    both = _problems(
        state_labels={
            "Todo": "jidoka:todo",
            "In Progress": "jidoka:in-progress",
            "Awaiting Answers": "jidoka:awaiting-answers",
            "Done": "jidoka:done",
        }
    )
    assert any("tracker.state_labels.Done" in p for p in both)
    comma = _problems(
        state_labels={
            "Todo": "to,do",
            "In Progress": "jidoka:in-progress",
            "Awaiting Answers": "jidoka:awaiting-answers",
        }
    )
    assert any("tracker.state_labels.Todo" in p and "comma" in p for p in comma)
    closed_default = _problems(default_open_state="Done")
    assert any(p.startswith("tracker.default_open_state") for p in closed_default)
