"""A Jira line whose code lives on GitLab, end to end: ``review.gitlab`` names the project its
merge requests are opened in. The issue workflow on the real dev server, a real worker in this
process, real git pushed over HTTP to a ``git http-backend`` that demands the GitLab token, the
scripted agent as a real subprocess, and both the in-memory Jira and the in-memory GitLab served
over HTTP at once. A merge request's head is its branch's tip on the git server, as on GitLab
once it has caught up with a push.

The first test is the Jira + GitLab team's "done when": the issue is claimed and shipped
through the team's own Jira transitions into its review status, the merge request is opened in
the GitLab project and linked on the Jira issue once; a failed pipeline job sends it through a
rework round (back to work and into review again, the same merge request at the new tip, still
one link), then a member's approval and a green pipeline merge it pinned to the head Jidoka
shipped, and the Jira issue moves to Done with the evidence. Git is offered the review
project's token because the repository is on that GitLab's host, and only there (the second
test), never in clear text off this machine.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from temporalio.client import Client

from activities.git.access import repo_access
from activities.git.credentials import TOKEN_USERNAME
from activities.tracker.jira import adf_to_text
from jidoka.outcomes import Phase
from jidoka.payloads import IssueResult
from jidoka.workflow_file import load_workflow
from runtime.history import steps
from tests.histories import assert_replays
from tests.support.fakes import gitlab_server, jira_server
from tests.support.fakes.git_server import GitServer, serve_git
from tests.support.fakes.gitlab_server import FakeGitLab, serve_gitlab
from tests.support.fakes.jira_server import FakeJira, serve_jira
from tests.support.linekit import LineKit, factory, make_line
from tests.support.review_kit import in_review, pipeline_at, webhook
from tests.support.secret_scan import register_secret

NUMBER = 7
KEY = f"{jira_server.PROJECT}-{NUMBER}"
TIMEOUT = 60
CODE_REVIEW = "Code Review"
"""The team's review status: a status of its own, reached and left through its transitions."""
JIRA_EMAIL = "bot@example.com"


@dataclass(frozen=True)
class Tokens:
    jira: str
    gitlab: str


@pytest.fixture
def tokens(monkeypatch: pytest.MonkeyPatch) -> Tokens:
    jira = register_secret(f"jira-{secrets.token_hex(12)}")
    gitlab = register_secret(f"glpat-{secrets.token_hex(12)}")
    # The worker runs in this process.
    monkeypatch.setenv("JIRA_EMAIL", JIRA_EMAIL)
    monkeypatch.setenv("JIRA_API_TOKEN", jira)
    monkeypatch.setenv("GITLAB_TOKEN", gitlab)
    return Tokens(jira=jira, gitlab=gitlab)


def jira(token: str) -> FakeJira:
    """ENG-7 to do, in a workflow whose review status is the team's own: reached from In
    Progress, left back to work or, once merged, to Done."""
    fake = FakeJira(email=JIRA_EMAIL, token=token)
    fake.workflow["In Progress"].append(("45", "Send to code review", CODE_REVIEW))
    fake.workflow[CODE_REVIEW] = [
        ("62", "Changes needed", "In Progress"),
        ("52", "Merged", "Done"),
    ]
    fake.add(
        jira_server.make_issue(
            NUMBER,
            summary="Add a subtract function",
            description=jira_server.adf("Please do it.", "Scenario: ship"),
        )
    )
    return fake


def gitlab(token: str, git_server: GitServer) -> FakeGitLab:
    fake = FakeGitLab(token=token, now=datetime.now(UTC))
    fake.clock = lambda: datetime.now(UTC)
    fake.head_of = lambda branch: git_server.sha(f"refs/heads/{branch}")
    return fake


def jira_line(kit: LineKit, *, jira_url: str, gitlab_url: str, repo: str) -> None:
    kit.front_matter["tracker"] = {
        "kind": "jira",
        "base_url": jira_url,
        "project_key": jira_server.PROJECT,
        "active_states": ["To Do", "In Progress"],
        "working_state": "In Progress",
        "terminal_states": ["Done", "Cancelled"],
        "done_state": "Done",
    }
    kit.front_matter["verdicts"] = {"DONE": "Done"}
    kit.front_matter["workspace"]["repo"] = repo
    kit.front_matter["review"] = {
        "state": CODE_REVIEW,
        "merge": "auto",
        "poll_interval_s": 30,
        "max_rounds": 3,
        "required_checks": ["ci"],
        "gitlab": {"project": gitlab_server.PROJECT, "base_url": gitlab_url},
    }
    kit.write()


@dataclass
class Sites:
    jira: FakeJira
    gitlab: FakeGitLab
    git: GitServer
    jira_url: str
    gitlab_url: str


def comments(fake: FakeJira) -> list[str]:
    """The Jira issue's comments as text."""
    return [adf_to_text(c["body"]) for c in fake.comments.get(jira_server.issue_id(NUMBER), [])]


def links(fake: FakeJira, url: str) -> int:
    """The Jira issue's comments linking the merge request at ``url``."""
    return sum(c.startswith("Merge request: ") and url in c for c in comments(fake))


@pytest.fixture
def sites(tmp_path: Path, tokens: Tokens) -> Iterator[tuple[LineKit, Sites]]:
    kit = make_line(tmp_path)
    with serve_git(tmp_path / "git-server", tokens.gitlab, source=kit.origin) as git_server:
        fake_jira = jira(tokens.jira)
        fake_gitlab = gitlab(tokens.gitlab, git_server)
        with serve_jira(fake_jira) as jira_url, serve_gitlab(fake_gitlab) as gitlab_url:
            fake_gitlab.base_url = gitlab_url
            jira_line(kit, jira_url=jira_url, gitlab_url=gitlab_url, repo=git_server.url)
            yield kit, Sites(fake_jira, fake_gitlab, git_server, jira_url, gitlab_url)


async def test_a_jira_issue_ships_into_a_gitlab_merge_request_reworks_and_is_merged_and_done(
    client: Client,
    sites: tuple[LineKit, Sites],
    tokens: Tokens,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    kit, at = sites
    dana = at.gitlab.add_member(21, "dana", access_level=30)
    async with factory(client) as f:
        handle = await f.start_issue(kit, KEY)
        shipped = await in_review(handle, 0)
        assert shipped.review is not None
        url, first = shipped.review.url, shipped.review.shipped_head
        # The merge request, opened in the review project at the pushed tip, says where the
        # issue is and closes nothing: a merge must not move the Jira issue behind our back.
        [merge_request] = at.gitlab.merge_requests
        assert url == merge_request["web_url"]
        assert url == f"{at.gitlab_url}/{gitlab_server.PROJECT}/-/merge_requests/1"
        assert merge_request["sha"] == first
        assert merge_request["title"] == f"{KEY}: Add a subtract function"
        assert merge_request["target_branch"] == "main"
        description = merge_request["description"]
        assert description.endswith(f"Related to {at.jira_url}/browse/{KEY}"), description
        assert "Jidoka: shipped" in description
        assert not any(w in description.lower() for w in ("closes", "fixes", "resolves"))
        # On Jira: in the team's review status, the merge request linked once.
        assert at.jira.state_of(KEY) == CODE_REVIEW
        assert links(at.jira, url) == 1

        # A failed job at the shipped head: a rework round, back to work and into review again.
        pipeline_at(at.gitlab, 900, first, "failed", "FAILED test_calc::test_sub\n")
        await webhook(handle, url)
        second = (await in_review(handle, 1)).review
        assert second is not None and second.shipped_head != first
        prompt = (kit.workspace(KEY) / ".jidoka" / "prompt.md").read_text()
        assert "FAILED test_calc::test_sub" in prompt
        # The reship reused the merge request, now at the new tip, and linked it no second time.
        assert at.gitlab.merge_requests == [merge_request]
        assert merge_request["sha"] == second.shipped_head
        assert at.jira.state_of(KEY) == CODE_REVIEW
        assert links(at.jira, url) == 1

        # Green at the new head, approved by a member after the push, mergeable: merged.
        pipeline_at(at.gitlab, 910, second.shipped_head, "success")
        at.gitlab.approve(1, dana)
        merge_request["detailed_merge_status"] = "mergeable"
        await webhook(handle, url)
        result: IssueResult = await asyncio.wait_for(handle.result(), TIMEOUT)
        assert result.phase is Phase.SHIPPED
        history = await handle.fetch_history()
    final = second.shipped_head
    assert merge_request["state"] == "merged"
    merges = [r for r in at.gitlab.requests if r.method == "PUT" and r.url.path.endswith("/merge")]
    assert [json.loads(r.content) for r in merges] == [{"sha": final}]
    # Jira: Done through the team's transitions, with the merge's evidence; the link still once.
    assert at.jira.state_of(KEY) == "Done"
    moves = [b["transition"]["id"] for b in at.jira.bodies("/transitions") if "transition" in b]
    assert moves == ["21", "45", "62", "45", "52"], moves  # work, review, rework, review, merged
    said = comments(at.jira)
    assert links(at.jira, url) == 1, said
    evidence = said[-1]
    assert "Jidoka: merged" in evidence and "merged by: Jidoka, pinned to that head" in evidence
    assert final in evidence and "dana" in evidence and "rework rounds: 1" in evidence, evidence
    ran = [s.name for s in steps(history.events)]
    assert ran.count("forge_merge") == 1 and ran.count("tracker_publish") == 2
    # Git pushed with the review project's token; no token is stored where it does not belong.
    assert f"{TOKEN_USERNAME}:{tokens.gitlab}" in at.git.credentials_seen
    assert all(tokens.jira not in seen for seen in at.git.credentials_seen)
    stored = json.dumps(
        [at.gitlab.merge_requests, at.gitlab.notes, at.jira.issues, at.jira.comments]
    )
    assert tokens.gitlab not in stored and tokens.jira not in stored
    assert at.gitlab.unauthorized == 0 and at.jira.unauthorized == 0
    assert not [r for r in caplog.records if tokens.gitlab in r.getMessage()]
    await assert_replays(history)


@pytest.mark.parametrize(
    ("repo", "offered"),
    [
        ("https://gitlab.example.com/acme/platform/widgets.git", True),
        ("https://GITLAB.example.com/acme/platform/widgets.git", True),
        ("https://elsewhere.example.com/acme/widgets.git", False),
        ("https://acme.atlassian.net/acme/widgets.git", False),  # not even to the Jira site
        ("http://gitlab.example.com/acme/widgets.git", False),  # clear text off this machine
        ("git@gitlab.example.com:acme/widgets.git", False),  # SSH: the worker's own keys
    ],
)
def test_the_review_projects_token_is_offered_to_its_gitlab_host_only(
    tmp_path: Path, tokens: Tokens, repo: str, offered: bool
) -> None:
    kit = make_line(tmp_path)
    jira_line(
        kit,
        jira_url="https://acme.atlassian.net",
        gitlab_url="https://gitlab.example.com",
        repo=repo,
    )
    access = repo_access(load_workflow(kit.workflow_md))
    assert access.token == (tokens.gitlab if offered else None)


def test_a_jira_line_reviewed_on_github_offers_git_no_token(tmp_path: Path, tokens: Tokens) -> None:
    """Unchanged: only the GitLab review project's token is offered, never the Jira token."""
    kit = make_line(tmp_path)
    jira_line(
        kit,
        jira_url="https://acme.atlassian.net",
        gitlab_url="https://gitlab.example.com",
        repo="https://gitlab.example.com/acme/platform/widgets.git",
    )
    kit.front_matter["review"].pop("gitlab")
    kit.front_matter["review"]["github"] = {"repo": "acme/widgets"}
    kit.write()
    assert repo_access(load_workflow(kit.workflow_md)).token is None
