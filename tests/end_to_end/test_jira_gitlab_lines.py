"""Jira and GitLab issues end to end: the issue workflow on the real dev server with a real
worker in this process, real git, the scripted agent as a real subprocess, and the in-memory
Jira or GitLab served over HTTP. One issue ships (claimed through the tracker's own way of
moving it, closed with the evidence; on GitLab a merge request opened and related to the issue),
and one claims success without commits and halts, never closed."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from temporalio.client import Client

from activities.git.access import repo_access
from jidoka.outcomes import HaltCategory, Phase
from jidoka.workflow_file import load_workflow
from tests.support.fakes import gitlab_server, jira_server
from tests.support.fakes.gitlab_server import FakeGitLab, serve_gitlab
from tests.support.fakes.jira_server import FakeJira, serve_jira
from tests.support.linekit import LineKit, factory, make_line, wait_for_phase
from tests.support.secret_scan import register_secret

TIMEOUT = 60
GITLAB_LABELS = {
    "Todo": "jidoka::todo",
    "In Progress": "jidoka::in-progress",
    "Cancelled": "jidoka::cancelled",
}


def jira_line(kit: LineKit, endpoint: str) -> None:
    kit.front_matter["tracker"] = {
        "kind": "jira",
        "base_url": endpoint,
        "project_key": jira_server.PROJECT,
        "active_states": ["To Do", "In Progress"],
        "working_state": "In Progress",
        "terminal_states": ["Done", "Cancelled"],
        "done_state": "Done",
    }
    kit.front_matter["verdicts"] = {"DONE": "Done"}
    kit.write()


def gitlab_line(kit: LineKit, endpoint: str) -> None:
    kit.front_matter["tracker"] = {
        "kind": "gitlab",
        "project": gitlab_server.PROJECT,
        "base_url": endpoint,
        "active_states": ["Todo", "In Progress"],
        "working_state": "In Progress",
        "terminal_states": ["Done", "Cancelled"],
        "done_state": "Done",
        "state_labels": GITLAB_LABELS,
        "closed_states": ["Done", "Cancelled"],
    }
    kit.front_matter["verdicts"] = {"DONE": "Done"}
    kit.write()


@pytest.mark.parametrize(("scenario", "shipped"), [("ship", True), ("hallucinate", False)])
async def test_a_jira_issue_ships_or_halts(
    client: Client,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    scenario: str,
    shipped: bool,
) -> None:
    token = register_secret("jira-token-0123456789abcdef")
    monkeypatch.setenv("JIRA_EMAIL", "bot@example.com")
    monkeypatch.setenv("JIRA_API_TOKEN", token)
    fake = FakeJira(email="bot@example.com", token=token)
    issue = jira_server.make_issue(
        7, summary="Add a subtract function", description=jira_server.adf(f"Scenario: {scenario}")
    )
    fake.add(issue)
    kit = make_line(tmp_path)
    with serve_jira(fake) as endpoint:
        jira_line(kit, endpoint)
        async with factory(client) as f:
            handle = await f.start_issue(kit, issue["id"])
            if shipped:
                result = await asyncio.wait_for(handle.result(), TIMEOUT)
                assert result.phase is Phase.SHIPPED
            else:
                status = await wait_for_phase(handle, Phase.HALTED, timeout=TIMEOUT)
                assert status.halt is not None
                assert status.halt.category is HaltCategory.NO_PROGRESS
                await handle.terminate("test done")
    key = issue["key"]
    assert fake.state_of(key) == ("Done" if shipped else "In Progress")
    bodies = [str(c["body"]) for c in fake.comments.get(issue["id"], [])]
    assert any(("Jidoka: shipped" if shipped else "Jidoka: halted") in b for b in bodies), bodies


@pytest.mark.parametrize(("scenario", "shipped"), [("ship", True), ("hallucinate", False)])
async def test_a_gitlab_issue_ships_with_a_merge_request_or_halts(
    client: Client,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    scenario: str,
    shipped: bool,
) -> None:
    token = register_secret("glpat-0123456789abcdefghij")
    monkeypatch.setenv("GITLAB_TOKEN", token)
    fake = FakeGitLab(token=token)
    fake.issues[7] = gitlab_server.make_issue(
        7,
        title="Add a subtract function",
        labels=[GITLAB_LABELS["Todo"]],
        description=f"Scenario: {scenario}",
    )
    kit = make_line(tmp_path)
    with serve_gitlab(fake) as endpoint:
        gitlab_line(kit, endpoint)
        async with factory(client) as f:
            handle = await f.start_issue(kit, "7")
            if shipped:
                result = await asyncio.wait_for(handle.result(), TIMEOUT)
                assert result.phase is Phase.SHIPPED
                assert result.ship is not None and result.ship.pull_request_url
            else:
                status = await wait_for_phase(handle, Phase.HALTED, timeout=TIMEOUT)
                assert status.halt is not None
                assert status.halt.category is HaltCategory.NO_PROGRESS
                await handle.terminate("test done")
    stored = fake.issues[7]
    if shipped:
        assert stored["state"] == "closed"
        [merge_request] = fake.merge_requests
        assert f"Related to #{7}" in merge_request["description"]
    else:
        assert stored["state"] == "opened"
        assert GITLAB_LABELS["In Progress"] in stored["labels"]
        assert not fake.merge_requests


@pytest.mark.parametrize(
    ("repo", "offered"),
    [
        ("https://gitlab.example.com/acme/platform/widgets.git", True),
        ("https://GITLAB.example.com/acme/platform/widgets.git", True),
        ("https://elsewhere.example.com/acme/widgets.git", False),
        ("http://gitlab.example.com/acme/widgets.git", False),  # clear text off this machine
    ],
)
def test_a_gitlab_token_is_offered_to_the_configured_host_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, repo: str, offered: bool
) -> None:
    monkeypatch.setenv("GITLAB_TOKEN", register_secret("glpat-host-check-0123456789"))
    kit = make_line(tmp_path)
    gitlab_line(kit, "https://gitlab.example.com")
    kit.front_matter["workspace"]["repo"] = repo
    kit.write()
    access = repo_access(load_workflow(kit.workflow_md))
    assert (access.token is not None) is offered
