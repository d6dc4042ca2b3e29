"""A Linear line's review loop: Linear has no pull requests, so ``review.github`` names the
GitHub repository its work is reviewed in. The ship opens (or reuses) the pull request there and
links it on the issue once; the watch reads and merges it there. Against the fake GitHub over
real HTTP; the issue side is the local board standing in for Linear (the same tracker contract),
since the pull request is the part this adds."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from activities.forge.activities import forge_merge, forge_read
from activities.tracker.activities import publish_for_review
from activities.tracker.local import LocalBoard
from jidoka.config import LocalTrackerConfig, WorkflowConfig, secret_env_names
from jidoka.payloads import ForgeMergeInput, ForgeReadInput, PublishInput
from jidoka.review import RequestState
from jidoka.workflow_file import WorkflowFileError, load_workflow
from tests.support.fakes.github_server import FakeGitHub, make_review, serve_github
from tests.support.linekit import LineKit, make_line
from tests.support.secret_scan import register_secret

REPO = "acme/widgets"
BRANCH = "jidoka/ENG-7"
HEAD = "c" * 40


def linear_line(tmp_path: Path, review: dict[str, Any]) -> LineKit:
    kit = make_line(tmp_path)
    kit.front_matter["tracker"] = {
        "kind": "linear",
        "project_slug": "eng",
        "active_states": ["Todo", "In Progress"],
        "working_state": "In Progress",
        "paused_states": ["Awaiting Answers"],
        "terminal_states": ["Done", "Cancelled"],
        "done_state": "Done",
    }
    kit.front_matter["review"] = review
    kit.write()
    return kit


@pytest.fixture
def token(monkeypatch: pytest.MonkeyPatch) -> str:
    value = register_secret("ghp_linear_review_token_0123456789")
    monkeypatch.setenv("GITHUB_TOKEN", value)
    return value


@pytest.fixture
def github(token: str) -> Iterator[tuple[FakeGitHub, str]]:
    fake = FakeGitHub(REPO, token=token)
    with serve_github(fake) as endpoint:
        yield fake, endpoint


def config_for(tmp_path: Path, endpoint: str) -> WorkflowConfig:
    review = {"state": "In Review", "merge": "auto", "github": {"repo": REPO, "endpoint": endpoint}}
    return load_workflow(linear_line(tmp_path, review).workflow_md).config


def test_a_linear_review_needs_the_repository_its_pull_requests_live_in(tmp_path: Path) -> None:
    kit = linear_line(tmp_path, {"state": "In Review"})
    with pytest.raises(WorkflowFileError) as raised:
        load_workflow(kit.workflow_md)
    assert "review.github" in "\n".join(p.render() for p in raised.value.problems)


def test_only_a_linear_line_names_a_review_repository(tmp_path: Path) -> None:
    kit = make_line(tmp_path, {"review": {"state": "In Review", "github": {"repo": REPO}}})
    with pytest.raises(WorkflowFileError) as raised:
        load_workflow(kit.workflow_md)
    assert "only a Linear or Jira line" in "\n".join(p.render() for p in raised.value.problems)


def test_the_review_token_is_a_secret_of_the_line(tmp_path: Path) -> None:
    config = config_for(tmp_path, "http://127.0.0.1:1")
    assert {"GITHUB_TOKEN", "LINEAR_API_KEY"} <= set(secret_env_names(config))


async def test_the_ship_opens_the_pull_request_once_and_links_it_once(
    tmp_path: Path, github: tuple[FakeGitHub, str]
) -> None:
    fake, endpoint = github
    config = config_for(tmp_path, endpoint)
    # The issue's side: a board issue stands in for the Linear one (same tracker contract).
    kit = make_line(tmp_path / "board-side")
    kit.add_issue("ENG-7", "ship")
    board = LocalBoard(
        LocalTrackerConfig.model_validate({**kit.front_matter["tracker"], "board": str(kit.board)})
    )
    issue = await board.fetch_issue("ENG-7")
    publish = PublishInput(
        config=config, issue=issue, branch=BRANCH, title="ENG-7: ship work", body="evidence"
    )
    first = await publish_for_review(board, publish)
    again = await publish_for_review(board, publish.model_copy(update={"body": "evidence, again"}))
    assert first is not None and first == again
    [pull] = fake.pulls
    assert pull["html_url"] == first and pull["head"]["ref"] == BRANCH
    assert pull["base"]["ref"] == "main" and pull["body"] == "evidence, again"
    assert kit.issue_text("ENG-7").count(f"Pull request: {first}") == 1


async def test_the_watch_reads_and_merges_in_the_review_repository(
    tmp_path: Path, github: tuple[FakeGitHub, str]
) -> None:
    fake, endpoint = github
    config = config_for(tmp_path, endpoint)
    fake.add_pull(12, head_sha=HEAD, mergeable=True)
    fake.reviews[12] = [make_review(1, "lead", "APPROVED", HEAD)]
    url = f"https://github.com/{REPO}/pull/12"
    request = await forge_read(
        ForgeReadInput(config=config, issue_id="ENG-7", url=url, shipped_head=HEAD)
    )
    assert (request.state, request.head_sha, request.mergeable) == (RequestState.OPEN, HEAD, True)
    assert [r.author for r in request.reviews] == ["lead"]
    merged = await forge_merge(ForgeMergeInput(config=config, issue_id="ENG-7", url=url, sha=HEAD))
    assert merged is True
    pull = fake.pull(12)
    assert pull is not None and pull["merged"] is True
