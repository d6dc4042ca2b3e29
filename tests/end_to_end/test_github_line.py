"""A GitHub line end to end, then the secret-leak scan (no secret ever enters a
payload).

The line runs on the real dev server with a real worker (in this process) against two real
local servers that both demand the token: the in-memory GitHub served over HTTP (Bearer) and a
``git http-backend`` holding the origin repository (Basic, as GitHub's git does). Three issues
cover every kind of tracker and git traffic: one ships (clone and push with the token, a pull
request, labels moved to the review state, evidence comments), one asks, is answered through
the ``answer`` signal and ships, one hallucinates success and halts the line, which an
operator resumes with a root cause while that issue stays halted and open.

Then every place the token could end up is read: the full history of every workflow of the
line (payloads decoded: ``to_json`` keeps them base64-encoded, so a plain text scan of it would
pass vacuously), every log record, every file under the workspaces (agent transcripts, prompts,
hook output, ``.git/config``) and their git objects, what GitHub stored (issues, comments, pull
requests) and the served bare repository (config, refs, objects). The token must be nowhere,
in clear or base64-encoded; each source must first show a canary known to be in it, so an
empty or unreadable source cannot pass.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import re
import secrets
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import Client

from activities.git.access import carries_token
from activities.git.credentials import TOKEN_USERNAME
from activities.tracker.github import marker_tag
from jidoka.keys import work_branch, workspace_key
from jidoka.outcomes import HaltCategory, HaltSource, Phase
from jidoka.payloads import AnswerRequest, IssueStatus
from tests.support.fakes.git_server import REAL_GIT, serve_git
from tests.support.fakes.github_server import FakeGitHub, make_issue, serve_github
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

REPO = "acme/widgets"
TIMEOUT = 45
LABELS = {
    "Todo": "jidoka:todo",
    "In Progress": "jidoka:in-progress",
    "Awaiting Answers": "jidoka:awaiting-answers",
    "In Review": "jidoka:in-review",
}


@dataclass(frozen=True)
class Seed:
    number: int
    title: str
    scenario: str
    priority: str

    @property
    def identifier(self) -> str:
        return f"widgets#{self.number}"

    @property
    def branch(self) -> str:
        return work_branch("jidoka/", workspace_key(self.identifier))


# Dispatched one at a time in this order (priority labels, one agent slot): see the test.
ASK = Seed(1, "Choose the rounding mode", "ask", "P1")
SHIP = Seed(2, "Add a subtract function", "ship", "P2")
HALLUCINATE = Seed(3, "Speed up add", "hallucinate", "P3")
NOT_OURS = 4
"""An open issue without a state label: not the line's (no ``default_open_state``)."""


def github_line(kit: LineKit, endpoint: str, repo_url: str) -> None:
    """Turn a linekit line into a GitHub line, the way a team would set one up: shipping opens
    a pull request and moves the issue to *In Review* (a labelled, open handoff state); merging
    the pull request closes it later (*Done*, outside the line's hands)."""
    fm = kit.front_matter
    fm["tracker"] = {
        "kind": "github",
        "repo": REPO,
        "endpoint": endpoint,
        "api_key": "$GITHUB_TOKEN",
        "active_states": ["Todo", "In Progress"],
        "working_state": "In Progress",
        "paused_states": ["Awaiting Answers"],
        "terminal_states": ["Done", "Cancelled"],
        "done_state": "In Review",
        "state_labels": LABELS,
        "closed_states": {"Done": "completed", "Cancelled": "not_planned"},
        "priority_labels": {"P1": 1, "P2": 2, "P3": 3},
    }
    fm["workspace"]["repo"] = repo_url
    # One issue at a time, and no timer ticks: the line ticks at start, after a resume and
    # after each issue's final report only, so every tick follows an event of the test. A
    # timer tick can race with an issue's own pause: IssueWorkflow._pause writes the paused
    # state before it reports PAUSED, and a reconciliation in between reads "Awaiting Answers"
    # on an issue the line still believes is running, and cancels it (a known orchestrator
    # race, not what this test is about).
    fm["concurrency"] = {"max_agents": 1}
    fm["polling"] = {"interval_s": 3600}
    # Whatever a hook (or an agent: same environment rules) can see lands in the workspace,
    # which the scan reads: a token passed on to them would show there.
    fm["hooks"]["before_run"] = 'env > ".jidoka/hook-env-$JIDOKA_ATTEMPT.txt"'
    fm["verdicts"] = {"DONE": "In Review", "AWAITING_ANSWERS": "Awaiting Answers"}
    kit.write()


# --------------------------------------------------------------------------------------------
# The scan
# --------------------------------------------------------------------------------------------


def forbidden_forms(token: str) -> dict[str, str]:
    """The token in clear, in the Basic credentials git sends, and base64-encoded at each of
    the three byte alignments (the part of the encoding that does not depend on neighbours),
    by a name that can be printed (the value itself never is)."""
    forms = {
        "the token": token,
        "git's Basic credentials": base64.b64encode(f"{TOKEN_USERNAME}:{token}".encode()).decode(),
    }
    for shift in range(3):
        encoded = base64.b64encode(b"\0" * shift + token.encode()).decode()
        forms[f"the token in base64 (offset {shift})"] = encoded[(shift * 4 + 2) // 3 : -4]
    return forms


def _decoded(text: str) -> str | None:
    if len(text) < 8 or not re.fullmatch(r"[A-Za-z0-9+/=_-]+", text):
        return None
    try:
        raw = base64.b64decode(text + "=" * (-len(text) % 4), altchars=b"-_", validate=False)
    except (binascii.Error, ValueError):
        return None
    return raw.decode("utf-8", "replace")


def _strings(node: Any) -> Iterator[str]:
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for key, value in node.items():  # pyright: ignore[reportUnknownVariableType]
            yield str(key)  # pyright: ignore[reportUnknownArgumentType]
            yield from _strings(value)
    elif isinstance(node, list):
        for value in node:  # pyright: ignore[reportUnknownVariableType]
            yield from _strings(value)


@dataclass
class Corpus:
    """Every text the scan reads, each with where it came from (``source:detail``)."""

    texts: list[tuple[str, str]] = field(default_factory=list[tuple[str, str]])

    def add(self, where: str, text: str) -> None:
        self.texts.append((where, text))

    def add_json(self, where: str, document: Any) -> None:
        """A JSON document, plus every string in it that decodes as base64 (payloads)."""
        self.add(where, json.dumps(document))
        decoded = [d for s in _strings(document) if (d := _decoded(s)) is not None]
        self.add(f"{where} (base64-decoded)", "\n".join(decoded))

    def add_file(self, where: str, path: Path) -> None:
        self.add(where, path.read_bytes().decode("utf-8", "replace"))

    def find(self, needle: str, source: str | None = None) -> list[str]:
        return [
            where
            for where, text in self.texts
            if needle in text and (source is None or where.startswith(f"{source}:"))
        ]

    def sources(self) -> set[str]:
        return {where.split(":", 1)[0] for where, _ in self.texts}


def git_out(*args: str) -> str:
    return subprocess.run(
        [REAL_GIT, *args], check=True, capture_output=True, text=True, errors="replace"
    ).stdout


def add_tree(corpus: Corpus, source: str, root: Path) -> None:
    """Every file under ``root`` except git's compressed objects, which are read through
    ``git log -p --all`` of each repository found instead."""
    for path in sorted(root.rglob("*")):
        if path.is_file() and not path.is_symlink() and "objects" not in path.parts:
            corpus.add_file(f"{source}:{path.relative_to(root)}", path)
    for git_dir in sorted({*root.rglob("*.git"), *root.rglob(".git")}):
        if git_dir.is_dir() and (git_dir / "HEAD").exists():
            where = f"{source}:{git_dir.relative_to(root)} (git log -p --all)"
            corpus.add(where, git_out("--git-dir", str(git_dir), "log", "-p", "--all"))
            refs = git_out("--git-dir", str(git_dir), "for-each-ref")
            corpus.add(f"{source}:{git_dir.relative_to(root)} (refs)", refs)


async def add_histories(corpus: Corpus, client: Client, line: str, line_id: str) -> set[str]:
    """Every run of every workflow of the line (found by its search attribute) and the line's
    own; returns the workflow ids read."""
    query = f'JidokaLine = "{line}"'

    async def listed() -> list[tuple[str, str | None]]:
        return [(e.id, e.run_id) async for e in client.list_workflows(query)]

    runs = await eventually(
        listed, lambda found: len({i for i, _ in found}) >= 4, what="visibility of all workflows"
    )
    runs.append((line_id, None))
    for workflow_id, run_id in runs:
        history = await client.get_workflow_handle(workflow_id, run_id=run_id).fetch_history()
        assert history.events
        corpus.add(f"history:{workflow_id}/{run_id} (to_json)", history.to_json())
        corpus.add_json(f"history:{workflow_id}/{run_id}", history.to_json_dict())
    return {i for i, _ in runs}


def add_logs(corpus: Corpus, records: list[logging.LogRecord]) -> None:
    formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")
    for n, record in enumerate(records):
        corpus.add(f"log:{n} {record.name}", formatter.format(record) + "\n" + repr(vars(record)))


def add_github(corpus: Corpus, fake: FakeGitHub) -> None:
    corpus.add_json("github:issues", fake.issues)
    corpus.add_json("github:comments", fake.comments)
    corpus.add_json("github:pulls", fake.pulls)


# --------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------


def comments_of(fake: FakeGitHub, number: int) -> list[str]:
    return [c["body"] for c in fake.comments.get(number, [])]


def markers(bodies: list[str]) -> list[str]:
    return [m for body in bodies for m in re.findall(r"<!-- jidoka:[^ ]+ -->", body)]


# --------------------------------------------------------------------------------------------
# Tests
# --------------------------------------------------------------------------------------------


def test_the_token_is_offered_over_https_and_over_http_to_this_machine_only() -> None:
    assert carries_token("https://github.com/acme/widgets.git")
    assert carries_token("http://127.0.0.1:8080/widgets.git")
    assert carries_token("http://localhost/widgets.git")
    assert carries_token("http://[::1]:9/widgets.git")
    assert not carries_token("http://github.com/acme/widgets.git")
    assert not carries_token("http://127.0.0.1.example.com/widgets.git")
    assert not carries_token("ssh://git@github.com/acme/widgets.git")
    assert not carries_token("git@github.com:acme/widgets.git")


def test_the_scan_sees_the_token_however_it_is_encoded() -> None:
    token = f"ghp_{secrets.token_hex(18)}"
    for prefix in ("", "a", "ab", '{"headers": {"Authorization": "Bearer '):
        corpus = Corpus()
        corpus.add_json(
            "probe:json", {"data": base64.b64encode((prefix + token).encode()).decode()}
        )
        assert any(corpus.find(form) for form in forbidden_forms(token).values()), prefix
    basic = base64.b64encode(f"{TOKEN_USERNAME}:{token}".encode()).decode()
    assert basic in forbidden_forms(token).values()


async def test_a_github_line_ships_pauses_halts_and_never_leaks_the_token(
    client: Client,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    token = register_secret(f"ghp_{secrets.token_hex(18)}")
    monkeypatch.setenv("GITHUB_TOKEN", token)  # the worker runs in this process
    kit = make_line(tmp_path)
    fake = FakeGitHub(REPO, now=datetime.now(UTC), token=token)
    for seed in (SHIP, ASK, HALLUCINATE):
        fake.issues[seed.number] = make_issue(
            seed.number,
            title=seed.title,
            labels=[LABELS["Todo"], "enhancement", seed.priority],
            body=f"Please do it.\n\nScenario: {seed.scenario}\n",
            repo=REPO,
        )
    fake.issues[NOT_OURS] = make_issue(
        NOT_OURS, title="Not for the line", labels=["question"], body="Scenario: ship", repo=REPO
    )
    with (
        serve_github(fake) as endpoint,
        serve_git(tmp_path / "git-server", token, source=kit.origin) as git_server,
    ):
        github_line(kit, endpoint, git_server.url)
        async with factory(client) as f:
            handle = await start_line(f, kit)
            issue = {
                seed: client.get_workflow_handle(kit.workflow_id(seed.identifier))
                for seed in (SHIP, ASK, HALLUCINATE)
            }

            # The question pauses its issue in the tracker; the answer signal sets it going.
            paused: IssueStatus = await wait_for_phase(
                issue[ASK], Phase.PAUSED, timeout=TIMEOUT, what="ask paused"
            )
            assert len(paused.questions) == 2
            assert fake.label_names(ASK.number) == [
                "enhancement",
                ASK.priority,
                LABELS["Awaiting Answers"],
            ]
            await issue[ASK].signal(
                IssueWorkflow.answer, AnswerRequest(answer="round half to even", operator="pm")
            )

            # It ships, then the next issue ships, then the hallucinated success halts the line
            # (from the orchestrator's evidence: the agent claimed DONE).
            status = await eventually(
                lambda: line_status(handle), lambda s: s.halted, timeout=TIMEOUT, what="halt"
            )
            halt = status.open_halts[0]
            assert (halt.category, halt.source) == (
                HaltCategory.NO_PROGRESS,
                HaltSource.ORCHESTRATOR,
            )
            assert halt.issue_identifier == HALLUCINATE.identifier
            assert {e.identifier: e.phase for e in status.finished} == {
                ASK.identifier: Phase.SHIPPED,
                SHIP.identifier: Phase.SHIPPED,
            }
            # The operator resumes the line with a root cause; the hallucinated issue stays
            # halted for its own decision.
            held = await resume_leaving_the_issue_halted(
                handle, issue[HALLUCINATE], "agent claimed work it never committed", timeout=TIMEOUT
            )
            status = await line_status(handle)
            await handle.terminate("test done")
            await issue[HALLUCINATE].terminate("test done")
        assert not status.halted
        assert {e.identifier: e.phase for e in status.finished} == {
            SHIP.identifier: Phase.SHIPPED,
            ASK.identifier: Phase.SHIPPED,
        }

        # -- what GitHub and the git server hold -----------------------------------------------
        assert fake.requests and fake.unauthorized == 0  # every API call carried the token
        assert f"{TOKEN_USERNAME}:{token}" in git_server.credentials_seen  # clone/push did too
        pulls = {p["head"]["ref"]: p for p in fake.pulls}
        assert set(pulls) == {SHIP.branch, ASK.branch}
        for seed in (SHIP, ASK):
            sha = git_server.sha(f"refs/heads/{seed.branch}")
            assert sha is not None, f"{seed.branch} was not pushed"
            pull = pulls[seed.branch]
            assert (pull["base"]["ref"], pull["title"]) == (
                "main",
                f"{seed.identifier}: {seed.title}",
            )
            body = pull["body"]
            assert body.startswith("**Jidoka: shipped** → In Review")
            assert f"tip `{sha}`" in body and "verify: passed" in body
            raw = fake.issues[seed.number]
            assert raw["state"] == "open"
            assert fake.label_names(seed.number) == [
                "enhancement",
                seed.priority,
                LABELS["In Review"],
            ]
            bodies = comments_of(fake, seed.number)
            assert len(markers(bodies)) == len(set(markers(bodies))) == len(bodies)
            shipped = [b for b in bodies if b.startswith("**Jidoka: shipped**")]
            assert len(shipped) == 1 and f"tip `{sha}`" in shipped[0]
            assert f"- pull request: {pull['html_url']}" in shipped[0]
            links = [b for b in bodies if b.startswith(f"Pull request: {pull['html_url']}")]
            assert len(links) == 1
            assert marker_tag(f"pr:{seed.branch}") in links[0]
        ask_bodies = comments_of(fake, ASK.number)
        assert sum(b.startswith("**Jidoka: paused**") for b in ask_bodies) == 1
        assert sum(b.startswith("**Jidoka: answered** by pm") for b in ask_bodies) == 1

        # The hallucinated issue: halted, still open and in progress, nothing shipped.
        assert held.phase is Phase.HALTED and held.halt is not None
        assert held.halt.category is HaltCategory.NO_PROGRESS
        assert fake.issues[HALLUCINATE.number]["state"] == "open"
        assert fake.label_names(HALLUCINATE.number) == [
            "enhancement",
            HALLUCINATE.priority,
            LABELS["In Progress"],
        ]
        halted = comments_of(fake, HALLUCINATE.number)
        assert len(halted) == 1 and halted[0].startswith("**Jidoka: halted** (no_progress")
        assert git_server.sha(f"refs/heads/{HALLUCINATE.branch}") is None
        # Not the line's issue: never read as one, never written.
        assert fake.label_names(NOT_OURS) == ["question"] and NOT_OURS not in fake.comments
        assert not [w for w in fake.writes() if f"/issues/{NOT_OURS}" in w]

        # -- the scan ------------------------------------------------------------------------
        corpus = Corpus()
        ids = await add_histories(corpus, client, kit.line, handle.id)
        assert ids == {handle.id, *(h.id for h in issue.values())}
        add_logs(corpus, list(caplog.records))
        add_tree(corpus, "workspace", kit.root / "workspaces")
        corpus.add_file("workflow:WORKFLOW.md", kit.workflow_md)
        add_github(corpus, fake)
        add_tree(corpus, "git-server", git_server.root)

    # Each source is really read: a canary known to be there is found in it.
    canaries = {
        "history": SHIP.title,  # inside payloads only: proves they were decoded
        "log": f"/repos/{REPO}/issues",
        "workspace": SHIP.title,  # the rendered prompt
        "workflow": "$GITHUB_TOKEN",
        "github": SHIP.title,
        "git-server": SHIP.branch,
    }
    assert corpus.sources() == set(canaries)
    for source, canary in canaries.items():
        assert corpus.find(canary, source), f"the scan of {source} does not see {canary!r}"
    # Histories hold the title only inside payloads: without decoding, the scan would be blind.
    assert all("base64-decoded" in w for w in corpus.find(SHIP.title, "history"))
    hook_env = corpus.find(f"JIDOKA_ISSUE={SHIP.identifier}", "workspace")
    assert hook_env, "the hook environment was not captured"
    assert not corpus.find("GITHUB_TOKEN=", "workspace")  # withheld from hooks (and agents)

    leaks = {name: corpus.find(form)[:5] for name, form in forbidden_forms(token).items()}
    assert not any(leaks.values()), f"the token leaked: {leaks}"
