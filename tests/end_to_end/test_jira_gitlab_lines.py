"""Jira and GitLab lines end to end: the line workflow on the real dev server with a real worker
in this process, real git, the scripted agent as a real subprocess, and the in-memory Jira or
GitLab served over HTTP. On each, three issues go through one agent slot in priority order:

* one asks two questions: the tracker shows it paused, the ``answer`` signal sets it going, and
  it ships;
* one ships: claimed through the tracker's own way of moving an issue (Jira's transitions,
  GitLab's scoped labels), done with the evidence, and on GitLab a merge request opened and
  related to the issue;
* one claims success without a commit: the line halts, an operator resumes it with a root
  cause, and the issue stays halted and open, never closed.

The GitLab line clones and pushes over HTTP from a ``git http-backend`` that demands the token,
which git gets from the credential helper because the repository is on the configured GitLab
host. Both tokens are registered with the session's secrets scan (every history, log record
and file of the test session), and what each fake stored is read for them here.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from temporalio.client import Client, WorkflowHandle

from activities.git.access import repo_access
from activities.git.credentials import TOKEN_USERNAME
from jidoka.keys import work_branch, workspace_key
from jidoka.outcomes import HaltCategory, HaltSource, Phase
from jidoka.payloads import AnswerRequest, IssueStatus
from jidoka.workflow_file import load_workflow
from tests.support.fakes import gitlab_server, jira_server
from tests.support.fakes.git_server import GitServer, serve_git
from tests.support.fakes.gitlab_server import FakeGitLab, serve_gitlab
from tests.support.fakes.jira_server import FakeJira, serve_jira
from tests.support.linekit import (
    LineKit,
    eventually,
    factory,
    line_status,
    make_line,
    resume_leaving_the_issue_halted,
    start_line,
    wait_for_phase,
)
from tests.support.secret_scan import register_secret
from workflows.issue import IssueWorkflow

TIMEOUT = 60
GITLAB_LABELS = {
    "Todo": "jidoka::todo",
    "In Progress": "jidoka::in-progress",
    "Awaiting Answers": "jidoka::awaiting-answers",
    "Cancelled": "jidoka::cancelled",
}
JIRA_PAUSED = "Awaiting Answers"


@dataclass(frozen=True)
class Seed:
    number: int
    title: str
    scenario: str
    rank: int
    """1 is dispatched first: Jira's priority name or GitLab's priority label maps to it."""


# Dispatched one at a time in this order (one agent slot, by priority).
ASK = Seed(1, "Choose the rounding mode", "ask", 1)
SHIP = Seed(2, "Add a subtract function", "ship", 2)
HALLUCINATE = Seed(3, "Speed up add", "hallucinate", 3)
SEEDS = (ASK, SHIP, HALLUCINATE)
JIRA_PRIORITIES = {1: "Highest", 2: "High", 3: "Medium"}


def line_settings(kit: LineKit, tracker: dict[str, object]) -> None:
    """One slot and no timer ticks: every tick follows an event of the test (see the GitHub
    line's test for the pause race a timer tick could open)."""
    kit.front_matter["tracker"] = tracker
    kit.front_matter["concurrency"] = {"max_agents": 1}
    kit.front_matter["polling"] = {"interval_s": 3600}
    kit.front_matter["verdicts"] = {"DONE": "Done", "AWAITING_ANSWERS": "Awaiting Answers"}
    kit.write()


def jira_tracker(endpoint: str) -> dict[str, object]:
    return {
        "kind": "jira",
        "base_url": endpoint,
        "project_key": jira_server.PROJECT,
        "active_states": ["To Do", "In Progress"],
        "working_state": "In Progress",
        "paused_states": [JIRA_PAUSED],
        "terminal_states": ["Done", "Cancelled"],
        "done_state": "Done",
    }


def gitlab_tracker(endpoint: str) -> dict[str, object]:
    return {
        "kind": "gitlab",
        "project": gitlab_server.PROJECT,
        "base_url": endpoint,
        "active_states": ["Todo", "In Progress"],
        "working_state": "In Progress",
        "paused_states": ["Awaiting Answers"],
        "terminal_states": ["Done", "Cancelled"],
        "done_state": "Done",
        "state_labels": GITLAB_LABELS,
        "closed_states": ["Done", "Cancelled"],
        "priority_labels": {"P1": 1, "P2": 2, "P3": 3},
    }


@dataclass(frozen=True)
class Provider:
    """What the line test needs to know of a tracker: its issues' identifiers, where each
    issue stands and what was written on it."""

    identifier: Callable[[Seed], str]
    state: Callable[[Seed], str]
    comments: Callable[[Seed], list[str]]
    stored: Callable[[], str]
    """Everything the fake holds, as text, for the token search."""


def jira_provider(fake: FakeJira) -> Provider:
    def key(seed: Seed) -> str:
        return f"{jira_server.PROJECT}-{seed.number}"

    def comments(seed: Seed) -> list[str]:
        return [
            json.dumps(c["body"]) for c in fake.comments.get(jira_server.issue_id(seed.number), [])
        ]

    return Provider(
        identifier=key,
        state=lambda seed: fake.state_of(key(seed)),
        comments=comments,
        stored=lambda: json.dumps([fake.issues, fake.comments]),
    )


def gitlab_state(fake: FakeGitLab, seed: Seed) -> str:
    """The line's state name of a GitLab issue: its state label, or *Done* once closed."""
    issue = fake.issues[seed.number]
    if issue["state"] == "closed":
        return "Done"
    names = {label: state for state, label in GITLAB_LABELS.items()}
    [state] = [names[label] for label in issue["labels"] if label in names]
    return state


def gitlab_provider(fake: FakeGitLab) -> Provider:
    return Provider(
        identifier=lambda seed: f"widgets#{seed.number}",
        state=lambda seed: gitlab_state(fake, seed),
        comments=lambda seed: [n["body"] for n in fake.notes.get(seed.number, [])],
        stored=lambda: json.dumps([fake.issues, fake.notes, fake.merge_requests]),
    )


async def run_three_issues(client: Client, kit: LineKit, tracker: Provider) -> IssueStatus:
    """The line's run shared by both providers; the halted issue's last status."""
    async with factory(client) as f:
        handle = await start_line(f, kit)
        issue: dict[Seed, WorkflowHandle[IssueWorkflow, object]] = {
            seed: client.get_workflow_handle(kit.workflow_id(tracker.identifier(seed)))
            for seed in SEEDS
        }
        paused = await wait_for_phase(issue[ASK], Phase.PAUSED, timeout=TIMEOUT, what="paused")
        assert len(paused.questions) == 2
        assert tracker.state(ASK) == "Awaiting Answers"
        await issue[ASK].signal(
            IssueWorkflow.answer, AnswerRequest(answer="round half to even", operator="pm")
        )
        status = await eventually(
            lambda: line_status(handle), lambda s: s.halted, timeout=TIMEOUT, what="halt"
        )
        halt = status.open_halts[0]
        assert (halt.category, halt.source) == (HaltCategory.NO_PROGRESS, HaltSource.ORCHESTRATOR)
        assert halt.issue_identifier == tracker.identifier(HALLUCINATE)
        held = await resume_leaving_the_issue_halted(
            handle, issue[HALLUCINATE], "agent claimed work it never committed", timeout=TIMEOUT
        )
        status = await line_status(handle)
        await handle.terminate("test done")
        await issue[HALLUCINATE].terminate("test done")
    assert not status.halted
    assert {e.identifier: e.phase for e in status.finished} == {
        tracker.identifier(ASK): Phase.SHIPPED,
        tracker.identifier(SHIP): Phase.SHIPPED,
    }
    assert held.phase is Phase.HALTED and held.halt is not None
    assert held.halt.category is HaltCategory.NO_PROGRESS
    return held


def assert_the_tracker_shows_it(tracker: Provider, token: str) -> None:
    for seed in (ASK, SHIP):
        assert tracker.state(seed) == "Done", seed
        bodies = tracker.comments(seed)
        assert sum("Jidoka: shipped" in b for b in bodies) == 1, bodies
    ask = tracker.comments(ASK)
    assert sum("Jidoka: paused" in b for b in ask) == 1, ask
    assert sum("Jidoka: answered" in b for b in ask) == 1, ask
    assert tracker.state(HALLUCINATE) == "In Progress"
    halted = tracker.comments(HALLUCINATE)
    assert len(halted) == 1 and "Jidoka: halted" in halted[0], halted
    assert token not in tracker.stored()


async def test_a_jira_line_ships_pauses_halts_and_keeps_its_token(
    client: Client,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    token = register_secret("jira-token-0123456789abcdef")
    monkeypatch.setenv("JIRA_EMAIL", "bot@example.com")
    monkeypatch.setenv("JIRA_API_TOKEN", token)
    fake = FakeJira(email="bot@example.com", token=token)
    # The team's workflow has a status for questions, reached from and left to In Progress.
    fake.workflow["In Progress"].append(("81", "Ask the reporter", JIRA_PAUSED))
    fake.workflow[JIRA_PAUSED] = [("61", "Back to work", "In Progress")]
    for seed in SEEDS:
        fake.add(
            jira_server.make_issue(
                seed.number,
                summary=seed.title,
                description=jira_server.adf(f"Scenario: {seed.scenario}"),
                priority_name=JIRA_PRIORITIES[seed.rank],
            )
        )
    kit = make_line(tmp_path)
    with serve_jira(fake) as endpoint:
        line_settings(kit, jira_tracker(endpoint))
        tracker = jira_provider(fake)
        await run_three_issues(client, kit, tracker)
    assert_the_tracker_shows_it(tracker, token)
    # Every move was one of the issue's offered transitions (the fake refuses others), and
    # nothing but moves and comments was written (searches and bulk reads are POSTs too).
    writes = [w for w in fake.writes() if not w.endswith(("/search/jql", "/bulkfetch"))]
    odd = [w for w in writes if not w.endswith(("/transitions", "/comment"))]
    assert writes and not odd, odd
    assert fake.unauthorized == 0
    assert not [r for r in caplog.records if token in r.getMessage()]


async def test_a_gitlab_line_ships_pauses_halts_and_offers_its_token_to_its_git_only(
    client: Client,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    token = register_secret("glpat-0123456789abcdefghij")
    monkeypatch.setenv("GITLAB_TOKEN", token)
    fake = FakeGitLab(token=token)
    for seed in SEEDS:
        fake.issues[seed.number] = gitlab_server.make_issue(
            seed.number,
            title=seed.title,
            labels=[GITLAB_LABELS["Todo"], f"P{seed.rank}"],
            description=f"Scenario: {seed.scenario}",
        )
    kit = make_line(tmp_path)
    with (
        serve_gitlab(fake) as endpoint,
        serve_git(tmp_path / "git-server", token, source=kit.origin) as git_server,
    ):
        line_settings(kit, gitlab_tracker(endpoint))
        kit.front_matter["workspace"]["repo"] = git_server.url
        kit.write()
        tracker = gitlab_provider(fake)
        await run_three_issues(client, kit, tracker)
    assert_the_tracker_shows_it(tracker, token)
    assert_merge_requests(fake, git_server)
    assert f"{TOKEN_USERNAME}:{token}" in git_server.credentials_seen  # clone and push used it
    assert fake.unauthorized == 0
    assert not [r for r in caplog.records if token in r.getMessage()]


def assert_merge_requests(fake: FakeGitLab, git_server: GitServer) -> None:
    """One merge request per shipped issue, at the pushed tip, related to its issue; nothing
    pushed or opened for the halted one."""
    by_branch = {m["source_branch"]: m for m in fake.merge_requests}
    branch = {s: work_branch("jidoka/", workspace_key(f"widgets#{s.number}")) for s in SEEDS}
    assert set(by_branch) == {branch[ASK], branch[SHIP]}
    for seed in (ASK, SHIP):
        assert git_server.sha(f"refs/heads/{branch[seed]}") is not None, seed
        request = by_branch[branch[seed]]
        assert f"Related to #{seed.number}" in request["description"]
        assert fake.issues[seed.number]["state"] == "closed"
    assert git_server.sha(f"refs/heads/{branch[HALLUCINATE]}") is None
    assert fake.issues[HALLUCINATE.number]["state"] == "opened"


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
    line_settings(kit, gitlab_tracker("https://gitlab.example.com"))
    kit.front_matter["workspace"]["repo"] = repo
    kit.write()
    access = repo_access(load_workflow(kit.workflow_md))
    assert (access.token is not None) is offered
