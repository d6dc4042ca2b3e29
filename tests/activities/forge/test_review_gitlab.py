"""A Linear or Jira line reviewed on GitLab (``review.gitlab``): the ship opens (or reuses) the
merge request in that project, its description linking the issue and closing nothing, and
links it on the issue once; the watch reads and merges it there. Against the fake GitLab over
real HTTP; the issue side is the local board standing in for Linear (the same tracker
contract), since the merge request is the part this adds. The whole Jira + GitLab run is
tests/end_to_end/test_jira_gitlab_review.py."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from temporalio.exceptions import ApplicationError

from activities.forge.activities import forge_merge, forge_read, make_forge
from activities.tracker.activities import publish_for_review
from activities.tracker.local import LocalBoard
from jidoka.config import LocalTrackerConfig, WorkflowConfig
from jidoka.payloads import ForgeMergeInput, ForgeReadInput, PublishInput
from jidoka.review import RequestState
from jidoka.workflow_file import load_workflow
from tests.support.fakes import gitlab_server
from tests.support.fakes.gitlab_server import FakeGitLab, serve_gitlab
from tests.support.linekit import make_line
from tests.support.secret_scan import register_secret

BRANCH = "jidoka/ENG-7"
HEAD = "c" * 40
ISSUE_URL = "https://linear.app/acme/issue/ENG-7/ship-work"


def linear_config(tmp_path: Path, gitlab: dict[str, Any]) -> WorkflowConfig:
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
    kit.front_matter["review"] = {"state": "In Review", "merge": "auto", "gitlab": gitlab}
    kit.write()
    return load_workflow(kit.workflow_md).config


@pytest.fixture
def token(monkeypatch: pytest.MonkeyPatch) -> str:
    value = register_secret("glpat-review-project-0123456789")
    monkeypatch.setenv("REVIEW_GITLAB_TOKEN", value)
    return value


@pytest.fixture
def gitlab(token: str) -> Iterator[tuple[FakeGitLab, str]]:
    fake = FakeGitLab(token=token)
    with serve_gitlab(fake) as endpoint:
        fake.base_url = endpoint
        yield fake, endpoint


def review_gitlab(endpoint: str, **more: Any) -> dict[str, Any]:
    return {
        "project": gitlab_server.PROJECT,
        "base_url": endpoint,
        "api_key": "$REVIEW_GITLAB_TOKEN",
        **more,
    }


async def test_the_ship_opens_the_merge_request_once_and_links_it_once(
    tmp_path: Path, gitlab: tuple[FakeGitLab, str]
) -> None:
    fake, endpoint = gitlab
    config = linear_config(tmp_path, review_gitlab(endpoint, target="develop", draft=True))
    kit = make_line(tmp_path / "board-side")
    kit.add_issue("ENG-7", "ship")
    board = LocalBoard(
        LocalTrackerConfig.model_validate({**kit.front_matter["tracker"], "board": str(kit.board)})
    )
    issue = (await board.fetch_issue("ENG-7")).model_copy(update={"url": ISSUE_URL})
    publish = PublishInput(
        config=config, issue=issue, branch=BRANCH, title="ENG-7: ship work", body="evidence"
    )
    first = await publish_for_review(board, publish)
    again = await publish_for_review(board, publish.model_copy(update={"body": "evidence, again"}))
    assert first is not None and first == again
    [merge_request] = fake.merge_requests
    assert merge_request["web_url"] == first
    assert first == f"{endpoint}/{gitlab_server.PROJECT}/-/merge_requests/1"
    assert (merge_request["source_branch"], merge_request["target_branch"]) == (BRANCH, "develop")
    assert merge_request["title"] == "Draft: ENG-7: ship work" and merge_request["draft"]
    # The reship brought the description up to date; it links the issue and closes nothing.
    assert merge_request["description"] == f"evidence, again\n\nRelated to {ISSUE_URL}"
    assert kit.issue_text("ENG-7").count(f"Merge request: {first}") == 1
    creates = [w for w in fake.writes() if w.startswith("POST") and w.endswith("/merge_requests")]
    assert len(creates) == 1, fake.writes()
    # Nothing was written to the issues of the review project.
    assert fake.issues == {} and fake.notes == {}


async def test_the_watch_reads_and_merges_in_the_review_project(
    tmp_path: Path, gitlab: tuple[FakeGitLab, str]
) -> None:
    fake, endpoint = gitlab
    config = linear_config(tmp_path, review_gitlab(endpoint))
    dana = fake.add_member(21, "dana", access_level=30)
    merge_request = fake.add_merge_request(12, sha=HEAD, source_branch=BRANCH)
    merge_request["detailed_merge_status"] = "mergeable"
    fake.approve(12, dana)
    url = merge_request["web_url"]
    request = await forge_read(
        ForgeReadInput(config=config, issue_id="ENG-7", url=url, shipped_head=HEAD)
    )
    assert (request.state, request.head_sha, request.mergeable) == (RequestState.OPEN, HEAD, True)
    assert [r.author for r in request.reviews] == ["dana"]
    merged = await forge_merge(ForgeMergeInput(config=config, issue_id="ENG-7", url=url, sha=HEAD))
    assert merged is True
    assert merge_request["state"] == "merged"


def test_a_review_without_a_forge_names_both_keys(tmp_path: Path) -> None:
    """WORKFLOW.md refuses it; a config that got past it anyway fails, naming where to look."""
    config = linear_config(tmp_path, review_gitlab("https://gitlab.example.com"))
    assert config.review is not None
    bare = config.review.model_copy(update={"gitlab": None})
    with pytest.raises(ApplicationError) as raised:
        make_forge(config.model_copy(update={"review": bare}), bare)
    assert "review.github" in str(raised.value) and "review.gitlab" in str(raised.value)
    assert raised.value.type == "ConfigInvalid" and raised.value.non_retryable
