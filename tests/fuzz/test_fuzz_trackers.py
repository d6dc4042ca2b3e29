"""GitHub and Linear payloads, fuzzed: whatever the API (or a proxy, or a changed schema)
answers, an adapter gives a normalised :class:`Issue` or its own typed error, never a
KeyError, TypeError or OverflowError escaping into the activity.

* The normalisers, pure: :func:`activities.tracker.github.decode_issue` (an Issue, None for a
  pull request or an issue in none of the line's states, or ``MalformedRecordError``) and
  :func:`activities.tracker.linear.decode_issue` (an Issue or ``MalformedRecordError``), on
  the documented payloads of ``tests/fixtures`` mutated, and on random JSON. An issue they give
  is normalised (labels trimmed, lowercase, unique; priorities in range; aware timestamps)
  and survives the JSON round trip of a Temporal payload.
* The adapters whole, behind ``httpx.MockTransport``: any status, headers (rate limits,
  ``Link``, ``Retry-After``, garbage) and body (mutated pages, invalid JSON, deep nesting,
  huge numbers) give issues or a :class:`TrackerError`.

The bodies are written by Python's JSON encoder (NaN, Infinity, 1e400 included, as a server
could send them); text is valid Unicode, as any UTF-8 body is (a lone surrogate escape: see the
``xfail`` test at the end).
"""

from __future__ import annotations

import copy
import json
import string
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest
from hypothesis import event, given
from hypothesis import strategies as st
from hypothesis.strategies import DrawFn

from activities.tracker import github, linear
from activities.tracker.base import TrackerClient, TrackerError
from activities.tracker.github import GitHubTracker, github_states
from activities.tracker.http import RetryPolicy
from activities.tracker.linear import LinearTracker
from jidoka.config import GitHubTrackerConfig, LinearTrackerConfig
from jidoka.models import Issue
from tests.fuzz.support import (
    bounded,
    bounded_async,
    deep,
    flipped,
    fuzzing,
    json_values,
    mutated,
    wire,
)
from tests.support.paths import FIXTURES
from tests.support.secret_scan import register_secret

GITHUB_ISSUE: dict[str, Any] = json.loads((FIXTURES / "github" / "issue.json").read_text())
GITHUB_PULL: dict[str, Any] = json.loads(
    (FIXTURES / "github" / "pull_request_as_issue.json").read_text()
)
LINEAR_PAGE: dict[str, Any] = json.loads((FIXTURES / "linear" / "issues_page.json").read_text())
LINEAR_NODES: list[dict[str, Any]] = LINEAR_PAGE["data"]["issues"]["nodes"]
LINEAR_LAST_PAGE = copy.deepcopy(LINEAR_PAGE)
LINEAR_LAST_PAGE["data"]["issues"]["pageInfo"] = {"hasNextPage": False, "endCursor": None}

GITHUB_CONFIG = GitHubTrackerConfig.model_validate(
    {
        "kind": "github",
        "repo": "octo-org/widgets",
        "active_states": ["Todo", "In Progress"],
        "working_state": "In Progress",
        "terminal_states": ["Done", "Cancelled"],
        "done_state": "Done",
        "state_labels": {"Todo": "jidoka:todo", "In Progress": "jidoka:in-progress"},
        "default_open_state": "Backlog",
        "backlog_states": ["Backlog"],
        "closed_states": {"Done": "completed", "Cancelled": "not_planned"},
        "priority_labels": {"P1": 1, "p2": 2, "Bug": 3},
    }
)
GITHUB_STATES = github_states(GITHUB_CONFIG)
LINEAR_CONFIG = LinearTrackerConfig.model_validate(
    {
        "kind": "linear",
        "project_slug": "f3a9c2b71e04",
        "active_states": ["Todo", "In Progress"],
        "terminal_states": ["Done"],
        "done_state": "Done",
    }
)
TOKEN = register_secret("ghp_FuzzT0kenValue_0123456789abcdefABCD")

# --------------------------------------------------------------------------------------------
# The normalisers
# --------------------------------------------------------------------------------------------


def on_the_wire(value: object) -> object:
    """What the client would decode from this value sent as JSON."""
    return json.loads(wire(value))


@st.composite
def github_payloads(draw: DrawFn) -> object:
    match draw(st.integers(0, 5)):
        case 0 | 1 | 2:
            seed = draw(st.sampled_from([GITHUB_ISSUE, GITHUB_PULL]))
            return on_the_wire(draw(mutated(seed)))
        case 3:
            issue = copy.deepcopy(GITHUB_ISSUE)
            issue["labels"] = draw(
                st.lists(
                    st.sampled_from(["jidoka:todo", "JIDOKA:TODO ", "jidoka:in-progress", "p1"])
                    | st.text(max_size=8)
                    | json_values,
                    max_size=4,
                ).map(lambda names: [{"name": n} if isinstance(n, str) else n for n in names])
            )
            issue["state"] = draw(st.sampled_from(["open", "closed", "OPEN", None]))
            issue["state_reason"] = draw(
                st.sampled_from(["completed", "not_planned", "reopened", None, 1])
            )
            issue["body"] = draw(
                st.sampled_from(
                    [
                        "Blocked by #1, #2\n> depends on other/repo#3",
                        "blocked by " + ", ".join(f"#{n}" for n in range(500)),
                        "depends on #" + "9" * 5_000,
                        "blocked by octo-org/widgets#0",
                    ]
                )
                | st.text(max_size=50)
            )
            return on_the_wire(issue)
        case 4:
            return on_the_wire(draw(json_values))
        case _:
            return on_the_wire([draw(mutated(GITHUB_ISSUE))])


@st.composite
def linear_nodes(draw: DrawFn) -> object:
    match draw(st.integers(0, 3)):
        case 0 | 1 | 2:
            return on_the_wire(draw(mutated(draw(st.sampled_from(LINEAR_NODES)))))
        case _:
            return on_the_wire(draw(json_values))


def check_issue(issue: Issue) -> None:
    assert issue.id.strip() and issue.identifier.strip() and issue.title.strip()
    assert issue.state.strip()
    assert all(label and label == label.strip().lower() for label in issue.labels)
    assert len(set(issue.labels)) == len(issue.labels)
    assert issue.priority is None or type(issue.priority) is int
    for moment in (issue.created_at, issue.updated_at):
        assert moment is None or moment.utcoffset() is not None
    for ref in issue.blocked_by:
        assert ref.id or ref.identifier
    assert Issue.model_validate_json(issue.model_dump_json()) == issue


@fuzzing(ci_examples=150)
@given(raw=github_payloads())
def test_any_github_issue_payload_normalises_or_is_malformed(raw: object) -> None:
    try:
        issue = bounded(lambda: github.decode_issue(raw, GITHUB_CONFIG, GITHUB_STATES))
    except github.MalformedRecordError as error:
        event("malformed")
        assert str(error)
        return
    if issue is None:
        event("skipped")
        return
    event("issue")
    check_issue(issue)
    assert issue.id.isdigit() and issue.identifier == f"widgets#{issue.id}"
    assert issue.state in {"Todo", "In Progress", "Backlog", "Done", "Cancelled"}
    assert issue.priority in (None, 1, 2, 3)
    assert bounded(lambda: github.with_blocker_states([issue, issue]))


@fuzzing(ci_examples=200)
@given(raw=linear_nodes())
def test_any_linear_issue_node_normalises_or_is_malformed(raw: object) -> None:
    try:
        issue = bounded(lambda: linear.decode_issue(raw))
    except linear.MalformedRecordError as error:
        event("malformed")
        assert str(error)
        return
    event("issue")
    check_issue(issue)
    assert issue.priority in (None, 1, 2, 3, 4)


# --------------------------------------------------------------------------------------------
# The adapters, over HTTP
# --------------------------------------------------------------------------------------------

header_text = st.text(alphabet=string.ascii_letters + string.digits + " -_.:,;=/<>\"'", max_size=24)
RATE_HEADERS = ["x-ratelimit-remaining", "x-ratelimit-limit", "x-ratelimit-reset", "retry-after"]
RATE_VALUES = ["0", "-1", "1e400", "nan", "inf", "9" * 5_000, "Wed, 21 Oct 2015 07:28:00 GMT", ""]
LINKS = [
    '<https://api.github.com/repositories/1/issues?page=2>; rel="next"',
    '<https://api.github.com/repos/octo-org/widgets/issues?page=2>; rel="next"',
    '<https://evil.example/steal>; rel="next"',
    '<http://api.github.com/x>; rel="next"',
    '<http://[::1>; rel="next"',
    '<//evil.example/x>; rel="next"',
    '</relative?page=3>; rel="next"',
    '<>; rel="next"',
    'rel="next"',
    "<https://api.github.com/x?page=1>; rel=next, <https://api.github.com/x?page=1>; rel=last",
]
STATUSES = [*[200] * 12, 201, 304, 400, 401, 403, 404, 409, 410, 422, 429, 500, 502, 301]


@st.composite
def bodies(draw: DrawFn, page: object) -> bytes:
    match draw(st.integers(0, 7)):
        case 0 | 1 | 2 | 3:
            return wire(draw(mutated(page)))
        case 4:
            return wire(draw(json_values))
        case 5:
            return deep(draw(st.sampled_from([50, 999, 5_000, 100_000]))).encode()
        case 6:
            return draw(flipped(wire(page)))
        case _:
            return draw(st.sampled_from([b"", b"null", b"<html>502</html>", b"1" * 5_000]))


@st.composite
def responses(draw: DrawFn, page: object) -> list[httpx.Response]:
    """The answers to the adapter's requests, in order (the last one repeats)."""
    answers: list[httpx.Response] = []
    for _ in range(draw(st.integers(1, 4))):
        headers: dict[str, str] = {}
        for name in draw(st.lists(st.sampled_from(RATE_HEADERS), max_size=3, unique=True)):
            headers[name] = draw(st.sampled_from(RATE_VALUES) | header_text)
        if draw(st.integers(0, 3)) == 0:
            headers["link"] = draw(st.sampled_from(LINKS) | header_text)
        if draw(st.integers(0, 4)) == 0:
            headers["etag"] = draw(header_text)
        status = draw(st.sampled_from(STATUSES))
        answers.append(httpx.Response(status, headers=headers, content=draw(bodies(page))))
    return answers


def transport(answers: list[httpx.Response]) -> httpx.MockTransport:
    sent: list[int] = []

    def handle(request: httpx.Request) -> httpx.Response:
        index = min(len(sent), len(answers) - 1)
        sent.append(index)
        if len(sent) > 500:
            raise AssertionError("more than 500 requests for one read")
        answer = answers[index]
        return httpx.Response(answer.status_code, headers=answer.headers, content=answer.content)

    return httpx.MockTransport(handle)


async def _no_sleep(_seconds: float) -> None:
    return None


def read_all(client: TrackerClient, reads: list[Callable[[], Awaitable[object]]]) -> None:
    """Every read gives what it promises or a TrackerError; the client is closed after."""

    async def run() -> list[object]:
        outcomes: list[object] = []
        try:
            for read in reads:
                try:
                    outcomes.append(await read())
                except TrackerError as error:
                    outcomes.append(error)
        finally:
            await client.aclose()
        return outcomes

    for outcome in bounded_async(run, limit_s=10):
        if isinstance(outcome, TrackerError):
            event(f"tracker error: {outcome.category.value}")
            assert outcome.message and len(outcome.message) < 2_000
            assert TOKEN not in outcome.message
            continue
        event("read")
        for issue in outcome if isinstance(outcome, list) else [outcome]:  # pyright: ignore[reportUnknownVariableType]
            assert isinstance(issue, Issue)
            check_issue(issue)


@fuzzing(ci_examples=80)
@given(answers=st.one_of(responses(GITHUB_ISSUE), responses([GITHUB_ISSUE, GITHUB_PULL])))
def test_the_github_adapter_survives_any_answer(answers: list[httpx.Response]) -> None:
    client = GitHubTracker(
        GITHUB_CONFIG,
        TOKEN,
        transport=transport(answers),
        retry=RetryPolicy(attempts=2, first_delay_s=0.0),
        sleep=_no_sleep,
    )
    read_all(
        client,
        [
            lambda: client.fetch_issue("1347"),
            lambda: client.fetch_issues_by_states(["Todo", "Backlog", "Done"]),
            lambda: client.fetch_issues_by_ids(["1347", "#7", "x"]),
        ],
    )


@fuzzing(ci_examples=80)
@given(answers=st.one_of(responses(LINEAR_LAST_PAGE), responses(LINEAR_PAGE)))
def test_the_linear_adapter_survives_any_answer(answers: list[httpx.Response]) -> None:
    client = LinearTracker(
        LINEAR_CONFIG,
        "lin_api_fuzz",
        transport=transport(answers),
        retry=RetryPolicy(attempts=2, first_delay_s=0.0),
        sleep=_no_sleep,
    )
    read_all(
        client,
        [
            lambda: client.fetch_issue("ENG-123"),
            lambda: client.fetch_issues_by_states(["Todo", "In Progress"]),
            lambda: client.fetch_issues_by_ids(["ENG-123", "ENG-124"]),
        ],
    )


# --------------------------------------------------------------------------------------------
# Findings
# --------------------------------------------------------------------------------------------


def test_a_linear_priority_of_infinity_is_no_priority() -> None:
    """Found by this campaign: ``1e400`` is valid JSON (a float infinity in Python), and
    ``int(inf)`` raised OverflowError out of ``decode_issue``."""
    for priority in (float("inf"), float("-inf"), float("nan")):
        node = {**LINEAR_NODES[0], "priority": priority}
        assert linear.decode_issue(node).priority is None


def test_a_deeply_nested_answer_is_a_tracker_error() -> None:
    """Found by this campaign: ``json.loads`` raises RecursionError, not ValueError, on an
    answer nested a few thousand levels deep."""
    client = GitHubTracker(
        GITHUB_CONFIG,
        TOKEN,
        transport=transport([httpx.Response(200, content=deep(100_000).encode())]),
        retry=RetryPolicy(attempts=1),
    )
    with pytest.raises(TrackerError):
        bounded_async(lambda: client.fetch_issue("1347"))


def test_a_lone_surrogate_in_an_answer_gives_an_issue_that_encodes() -> None:
    """Found by this campaign: a lone surrogate escape (half of a cut emoji) in an answer gave
    an Issue that no Temporal payload can carry; the JSON decode replaces it."""
    text = json.dumps(GITHUB_ISSUE).replace('"title": "', '"title": "cut \\ud83d ', 1)
    assert "\\ud83d" in text
    page = httpx.Response(200, content=text.encode())
    client = GitHubTracker(
        GITHUB_CONFIG, TOKEN, transport=transport([page]), retry=RetryPolicy(attempts=1)
    )
    issue = bounded_async(lambda: client.fetch_issue("1347"))
    assert issue.title.startswith("cut \ufffd")
    issue.model_dump_json().encode("utf-8")


def test_a_next_page_link_that_is_no_url_is_a_tracker_error() -> None:
    """Found by this campaign: ``Link: <http://[::1>; rel="next"`` made httpx raise
    InvalidURL out of the listing."""
    page = httpx.Response(200, headers={"link": '<http://[::1>; rel="next"'}, content=b"[]")
    client = GitHubTracker(
        GITHUB_CONFIG, TOKEN, transport=transport([page]), retry=RetryPolicy(attempts=1)
    )
    with pytest.raises(TrackerError):
        bounded_async(lambda: client.fetch_issues_by_states(["Todo"]))
