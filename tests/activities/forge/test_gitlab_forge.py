"""The GitLab forge (``activities/forge/gitlab.py``) against the in-memory GitLab served over
real HTTP (``tests/support/fakes/gitlab_server.py``): what a merge request reads as (its head
pipeline's jobs and their logs, commit statuses, approvals and requests for changes by
members only, open threads), and its merge pinned to a head."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

import activities.forge.gitlab as gitlab_forge
from activities.forge.activities import forge_merge, forge_read
from activities.forge.gitlab import (
    MAX_CHECKS,
    MAX_COMMENTS,
    MAX_TRACES,
    GitLabForge,
    mergeability,
)
from activities.forge.text import COMMENT_CHARS, SUMMARY_CHARS, SUMMARY_LINES
from activities.tracker.base import TrackerError, TrackerErrorCategory
from activities.tracker.gitlab import GitLabApi
from activities.tracker.http import RetryPolicy
from jidoka.config import MergeMode, ReviewConfig
from jidoka.payloads import ForgeMergeInput, ForgeReadInput
from jidoka.review import (
    CheckState,
    RequestState,
    ReviewLedger,
    ReviewVerdict,
    StepKind,
    approvers,
    next_step,
)
from jidoka.workflow_file import load_workflow
from tests.support.fakes.gitlab_server import (
    NOW,
    PROJECT,
    PROJECT_ID,
    USER,
    FakeGitLab,
    make_commit_status,
    make_discussion,
    make_job,
    make_mr_note,
    make_pipeline,
    make_position,
    make_user,
    serve_gitlab,
)
from tests.support.linekit import make_line
from tests.support.secret_scan import register_secret

TOKEN = register_secret("glpat-F0rgeT0kenValue-0123456789abc")
HEAD = "a" * 40
OLD = "b" * 40
IID = 7
BRANCH = "jidoka/widgets-7"


async def no_sleep(seconds: float) -> None:
    return None


@pytest.fixture
def gl() -> FakeGitLab:
    return FakeGitLab(token=TOKEN)


@pytest.fixture
def endpoint(gl: FakeGitLab) -> Iterator[str]:
    with serve_gitlab(gl) as url:
        gl.base_url = url
        yield url


@pytest.fixture
async def forge(endpoint: str) -> AsyncIterator[GitLabForge]:
    client = make_forge(endpoint)
    try:
        yield client
    finally:
        await client.aclose()


def make_forge(endpoint: str, token: str = TOKEN, **kw: Any) -> GitLabForge:
    kw.setdefault("retry", RetryPolicy(attempts=3, first_delay_s=0.0))
    kw.setdefault("sleep", no_sleep)
    project = kw.pop("project", PROJECT)
    return GitLabForge(project, token, base_url=endpoint, **kw)


def mr_url(endpoint: str, iid: int = IID, project: str = PROJECT) -> str:
    return f"{endpoint}/{project}/-/merge_requests/{iid}"


def paths(gl: FakeGitLab, suffix: str) -> list[httpx.Request]:
    return [r for r in gl.requests if r.url.path.endswith(suffix)]


def add_mr(
    gl: FakeGitLab, sha: str = HEAD, *, detailed_merge_status: str = "mergeable", **fields: Any
) -> dict[str, Any]:
    fields.setdefault("source_branch", BRANCH)
    mr = gl.add_merge_request(IID, sha=sha, **fields)
    mr.update(detailed_merge_status=detailed_merge_status, merge_status="can_be_merged")
    return mr


def team(gl: FakeGitLab) -> dict[str, dict[str, Any]]:
    """Developers alice and bob, maintainer max, reporter rita; mallory is no member."""
    return {
        "alice": gl.add_member(11, "alice", 30),
        "bob": gl.add_member(12, "bob", 30),
        "max": gl.add_member(13, "max", 40),
        "rita": gl.add_member(14, "rita", 20),
        "mallory": make_user(66, "mallory"),
    }


REVIEW = ReviewConfig(state="Human Review", merge=MergeMode.AUTO)


def ledger(head: str = HEAD) -> ReviewLedger:
    return ReviewLedger(url="x", shipped_head=head, started_at=NOW)


# --------------------------------------------------------------------------------------------
# Checks: the head pipeline's jobs, their logs, commit statuses
# --------------------------------------------------------------------------------------------


async def test_the_head_pipelines_jobs_and_the_statuses_at_the_head(
    gl: FakeGitLab, forge: GitLabForge, endpoint: str
) -> None:
    add_mr(gl)
    pipeline = make_pipeline(500, HEAD, status="failed", ref=BRANCH)
    jobs = [
        make_job(1, "unit", pipeline=pipeline),
        make_job(2, "lint", "failed", pipeline=pipeline),
        make_job(3, "e2e", "running", pipeline=pipeline),
        make_job(4, "build", "pending", pipeline=pipeline),
        make_job(5, "deploy", "manual", pipeline=pipeline, allow_failure=True),
        make_job(6, "release-gate", "manual", pipeline=pipeline),
        make_job(7, "flaky", "failed", pipeline=pipeline, allow_failure=True),
        make_job(8, "docs", "skipped", pipeline=pipeline),
        make_job(9, "stopped", "canceled", pipeline=pipeline),
        make_job(10, "queued", "waiting_for_resource", pipeline=pipeline),
        make_job(11, "later", "scheduled", pipeline=pipeline),
        make_job(12, "odd", "some_new_status", pipeline=pipeline),
        make_job(13, "lint", "failed", pipeline=pipeline, retried=True),  # an earlier try
    ]
    gl.set_pipeline(IID, pipeline, jobs)
    gl.traces[2] = "Running ruff\napp.py:3:1: E501 line too long\nERROR: Job failed: exit code 1\n"
    gl.traces[9] = ""
    gl.statuses[HEAD] = [
        make_commit_status(101, "ext/ci", "success", HEAD, description="All good"),
        make_commit_status(102, "ext/deploy", "pending", HEAD),
        make_commit_status(103, "ext/old", "failed", HEAD, description="Build failed"),
        make_commit_status(104, "unit", "failed", HEAD),  # GitLab lists its own jobs too
    ]
    gl.statuses[OLD] = [make_commit_status(105, "stale", "failed", OLD)]
    request = await forge.read(mr_url(endpoint))
    assert request.state is RequestState.OPEN
    assert request.head_sha == HEAD
    assert request.url == mr_url(endpoint)
    assert request.mergeable is True
    assert {c.name: c.state for c in request.checks} == {
        "unit": CheckState.PASSED,
        "lint": CheckState.FAILED,
        "e2e": CheckState.PENDING,
        "build": CheckState.PENDING,
        "deploy": CheckState.SKIPPED,  # a manual job the pipeline does not wait for
        "release-gate": CheckState.PENDING,  # a manual job it waits for: a person runs it
        "flaky": CheckState.SKIPPED,  # allowed to fail: the pipeline passes with warnings
        "docs": CheckState.SKIPPED,
        "stopped": CheckState.FAILED,
        "queued": CheckState.PENDING,
        "later": CheckState.PENDING,
        "odd": CheckState.PENDING,  # unknown: no result yet, never a pass
        "ext/ci": CheckState.PASSED,
        "ext/deploy": CheckState.PENDING,
        "ext/old": CheckState.FAILED,
    }
    summaries = {c.name: c.summary for c in request.checks}
    assert summaries["lint"].endswith("E501 line too long\nERROR: Job failed: exit code 1")
    assert summaries["stopped"] == ""  # canceled: no failure reason, an empty log
    assert summaries["unit"] == "" and summaries["ext/ci"] == "All good"
    assert summaries["ext/old"] == "Build failed"
    # Only the failed jobs' logs are read; jobs and statuses at the head, with the token.
    encoded = "/api/v4/projects/acme%2Fplatform%2Fwidgets"
    assert sorted(r.url.raw_path.decode() for r in paths(gl, "/trace")) == [
        f"{encoded}/jobs/{n}/trace" for n in (2, 9)
    ]
    assert [r.url.raw_path.decode().split("?")[0] for r in paths(gl, "/jobs")] == [
        f"{encoded}/pipelines/500/jobs"
    ]
    statuses = paths(gl, "/statuses")
    assert [r.url.path for r in statuses] == [
        f"/api/v4/projects/{PROJECT}/repository/commits/{HEAD}/statuses"
    ]
    assert statuses[0].headers["authorization"] == f"Bearer {TOKEN}"
    assert forge.rate_limit is not None and forge.rate_limit.remaining is not None


async def test_a_pipeline_of_an_earlier_head_is_not_this_heads(
    gl: FakeGitLab, forge: GitLabForge, endpoint: str
) -> None:
    add_mr(gl)
    stale = make_pipeline(400, OLD, status="failed")
    gl.set_pipeline(IID, stale, [make_job(1, "unit", "failed", pipeline=stale)])
    gl.statuses[HEAD] = [make_commit_status(1, "unit", "running", HEAD)]
    request = await forge.read(IID)
    assert [(c.name, c.state) for c in request.checks] == [("unit", CheckState.PENDING)]
    assert paths(gl, "/jobs") == [] and paths(gl, "/trace") == []


async def test_a_failed_jobs_log_keeps_its_cleaned_tail(gl: FakeGitLab, forge: GitLabForge) -> None:
    add_mr(gl)
    pipeline = make_pipeline(500, HEAD)
    gl.set_pipeline(IID, pipeline, [make_job(1, "tests", "failed", pipeline=pipeline)])
    junk = "".join(chr(i) for i in range(1, 256)) * 2
    lines = [
        f"section_start:1700000000:step_{i}[collapsed=true]\r\x1b[0K\x1b[32;1mstep {i}\x1b[0m"
        f" {junk}\r\nprogress 10%\rprogress 100%\nsection_end:1700000001:step_{i}\r\x1b[0K"
        for i in range(3_000)
    ]
    gl.traces[1] = ("\n".join(lines) + "\nFAILED tests/test_calc.py::test_sub\tboom\n").encode()
    (check,) = (await forge.read(IID)).checks
    summary = check.summary
    assert len(summary) <= SUMMARY_CHARS
    assert len(summary.split("\n")) <= SUMMARY_LINES
    assert summary.endswith("FAILED tests/test_calc.py::test_sub\tboom")
    assert "section_" not in summary and "\x1b" not in summary and "[0K" not in summary
    assert "progress 100%" in summary and "progress 10%" not in summary
    assert not re.search(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]", summary)
    assert summary.encode("utf-8")


async def test_many_lines_keep_the_last_sixty(gl: FakeGitLab, forge: GitLabForge) -> None:
    add_mr(gl)
    pipeline = make_pipeline(500, HEAD)
    gl.set_pipeline(IID, pipeline, [make_job(1, "tests", "failed", pipeline=pipeline)])
    gl.traces[1] = "\n".join(f"l{i}" for i in range(500)) + "\n"
    (check,) = (await forge.read(IID)).checks
    assert check.summary.split("\n") == [f"l{i}" for i in range(440, 500)]


async def test_a_huge_log_is_streamed_and_only_its_tail_held(gl: FakeGitLab, endpoint: str) -> None:
    """The log's body is never held whole: only the bytes kept while it streams, and reading
    stops at the limit (give or take the chunk in hand)."""
    gl.traces[1] = b"x" * (3 * 1024 * 1024) + b"\nthe end\n"
    gl.jobs[500] = [make_job(1, "tests", "failed")]
    api = GitLabApi(endpoint, TOKEN)
    path = f"projects/{PROJECT_ID}/jobs/1/trace"
    try:
        reply = await api.text_tail(path, keep_bytes=1024, max_bytes=16 * 1024 * 1024)
        assert reply.size == 3 * 1024 * 1024 + 9 and not reply.cut
        assert len(reply.tail) == 1024 and reply.tail.endswith(b"\nthe end\n")
        capped = await api.text_tail(path, keep_bytes=1024, max_bytes=1024 * 1024)
        assert capped.cut and capped.size < 2 * 1024 * 1024 and len(capped.tail) == 1024
        with pytest.raises(TrackerError) as caught:
            await api.text_tail(f"projects/{PROJECT_ID}/jobs/2/trace", keep_bytes=1, max_bytes=1)
        assert caught.value.category is TrackerErrorCategory.NOT_FOUND
        assert "404 Job Not Found" in str(caught.value)
    finally:
        await api.aclose()


async def test_a_log_past_the_read_limit_says_so_instead_of_quoting_its_middle(
    gl: FakeGitLab, forge: GitLabForge, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(gitlab_forge, "TRACE_MAX_BYTES", 1024 * 1024)
    add_mr(gl)
    pipeline = make_pipeline(500, HEAD)
    gl.set_pipeline(IID, pipeline, [make_job(1, "tests", "failed", pipeline=pipeline)])
    gl.traces[1] = b"middle\n" * 400_000 + b"the real failure\n"
    (check,) = (await forge.read(IID)).checks
    assert "longer than 1 MiB" in check.summary and "middle" not in check.summary


async def test_logs_are_read_for_a_few_failed_jobs_only(gl: FakeGitLab, forge: GitLabForge) -> None:
    add_mr(gl)
    pipeline = make_pipeline(500, HEAD)
    jobs = [
        make_job(n, f"job{n}", "failed", pipeline=pipeline, failure_reason="runner_system_failure")
        for n in range(1, 9)
    ]
    gl.set_pipeline(IID, pipeline, jobs)
    for n in range(1, 9):
        gl.traces[n] = f"log of job{n}\n"
    checks = (await forge.read(IID)).checks
    assert len(paths(gl, "/trace")) == MAX_TRACES
    traced = [c for c in checks if c.summary.startswith("log of")]
    untraced = [c for c in checks if c.summary == "failure reason: runner_system_failure"]
    assert (len(traced), len(untraced)) == (MAX_TRACES, 8 - MAX_TRACES)


async def test_a_log_that_cannot_be_read_keeps_the_failure_reason(
    gl: FakeGitLab, forge: GitLabForge
) -> None:
    add_mr(gl)
    pipeline = make_pipeline(500, HEAD)
    gl.set_pipeline(IID, pipeline, [make_job(1, "tests", "failed", pipeline=pipeline)])
    gl.override = lambda request: (
        httpx.Response(403, json={"message": "403 Forbidden"})
        if request.url.path.endswith("/trace")
        else None
    )
    (check,) = (await forge.read(IID)).checks
    assert check.state is CheckState.FAILED
    assert check.summary == "failure reason: script_failure"


async def test_checks_are_capped(gl: FakeGitLab, forge: GitLabForge) -> None:
    add_mr(gl)
    pipeline = make_pipeline(500, HEAD)
    gl.set_pipeline(IID, pipeline, [make_job(n, f"job{n}", pipeline=pipeline) for n in range(150)])
    gl.statuses[HEAD] = [make_commit_status(1, "ext/ci", "success", HEAD)]
    request = await forge.read(IID)
    assert len(request.checks) == MAX_CHECKS
    assert paths(gl, "/statuses") == []  # the cap was reached: no need to read them


# --------------------------------------------------------------------------------------------
# State, head, mergeability
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("detailed", "git", "conflicts", "expected"),
    [
        ("mergeable", "can_be_merged", False, True),
        ("conflict", "cannot_be_merged", True, False),
        ("broken_status", "can_be_merged", False, False),
        ("need_rebase", "can_be_merged", False, False),
        ("checking", "checking", False, None),
        ("unchecked", "unchecked", False, None),
        ("preparing", "unchecked", False, None),
        ("approvals_syncing", "can_be_merged", False, None),
        # Rules of the project are Jidoka's policy's to judge, not conflicts:
        ("not_approved", "can_be_merged", False, True),
        ("ci_must_pass", "can_be_merged", False, True),
        ("ci_still_running", "can_be_merged", False, True),
        ("discussions_not_resolved", "can_be_merged", False, True),
        ("draft_status", "can_be_merged", False, True),
        ("blocked_status", "can_be_merged", False, True),
        ("requested_changes", "can_be_merged", False, True),
        ("not_open", "can_be_merged", False, True),
        # ... unless git's own answer shows the conflict the first failed rule hides.
        ("not_approved", "cannot_be_merged", True, False),
        ("ci_must_pass", "cannot_be_merged_recheck", False, None),
        (None, "can_be_merged", False, True),  # before detailed_merge_status existed
        (None, None, False, True),
    ],
)
def test_mergeable_means_no_conflict(
    detailed: str | None, git: str | None, conflicts: bool, expected: bool | None
) -> None:
    mr: dict[str, object] = {"state": "opened", "has_conflicts": conflicts}
    if detailed is not None:
        mr["detailed_merge_status"] = detailed
    if git is not None:
        mr["merge_status"] = git
    assert mergeability(mr) is expected


async def test_merged_closed_and_being_merged(
    gl: FakeGitLab, forge: GitLabForge, endpoint: str
) -> None:
    mr = add_mr(gl)
    for state, expected in (
        ("merged", RequestState.MERGED),
        ("closed", RequestState.CLOSED),
        ("locked", RequestState.OPEN),
    ):
        mr["state"] = state
        request = await forge.read(mr_url(endpoint))
        assert (request.state, request.head_sha) == (expected, HEAD), state
    # Being merged: open, but no merge to ask for again.
    assert request.mergeable is None
    mr["state"] = "opened"
    mr["detailed_merge_status"] = "conflict"
    conflicted = await forge.read(IID)
    assert conflicted.mergeable is False and conflicted.conflicting_files == []


async def test_a_deleted_merge_request_reads_gone(
    gl: FakeGitLab, forge: GitLabForge, endpoint: str
) -> None:
    url = mr_url(endpoint, 99)
    gone = await forge.read(url)
    assert (gone.state, gone.url, gone.head_sha) == (RequestState.GONE, url, "")
    assert (await forge.read("!99")).state is RequestState.GONE
    # Nothing else was read for it.
    assert all("/merge_requests/99" in r.url.path for r in gl.requests)


async def test_a_merge_request_elsewhere_is_refused(
    gl: FakeGitLab, forge: GitLabForge, endpoint: str
) -> None:
    add_mr(gl)
    for wrong in (
        f"https://elsewhere.example.com/{PROJECT}/-/merge_requests/7",
        mr_url(endpoint, IID, "acme/other"),
        f"{endpoint}/{PROJECT}/-/issues/7",
        "not a merge request",
        "!0",
    ):
        with pytest.raises(TrackerError) as caught:
            await forge.read(wrong)
        assert caught.value.category is TrackerErrorCategory.UNPROCESSABLE, wrong
    assert gl.requests == []
    # The same project, spelled as GitLab's routes accept it.
    for right in (
        f"{endpoint}/ACME/Platform/Widgets/-/merge_requests/7/diffs",
        f"{endpoint}/{PROJECT}/merge_requests/7",
        "!7",
        "7",
        7,
    ):
        assert (await forge.read(right)).head_sha == HEAD, right


async def test_a_project_configured_by_id_checks_the_path_once_read(
    gl: FakeGitLab, endpoint: str
) -> None:
    add_mr(gl)
    by_id = make_forge(endpoint, project=str(PROJECT_ID))
    try:
        assert (await by_id.read(mr_url(endpoint))).head_sha == HEAD
        with pytest.raises(TrackerError) as caught:
            await by_id.read(mr_url(endpoint, IID, "acme/other"))
        assert caught.value.category is TrackerErrorCategory.UNPROCESSABLE
    finally:
        await by_id.aclose()


async def test_gitlab_catching_up_with_a_push_is_not_someone_elses_push(
    gl: FakeGitLab, forge: GitLabForge, endpoint: str
) -> None:
    """GitLab moves a merge request's head to a push seconds later: until then the branch's
    tip tells Jidoka's push from a stranger's."""
    add_mr(gl, sha=OLD)
    people = team(gl)
    gl.approve(IID, people["alice"])
    tip = {"sha": HEAD}

    def branch(request: httpx.Request) -> httpx.Response | None:
        if "/repository/branches/" in request.url.path:
            return httpx.Response(200, json={"name": BRANCH, "commit": {"id": tip["sha"]}})
        return None

    gl.override = branch
    lagging = await forge.read(mr_url(endpoint), shipped_head=HEAD)
    assert (lagging.state, lagging.head_sha, lagging.mergeable) == (RequestState.OPEN, HEAD, None)
    assert lagging.checks == [] and lagging.reviews == [] and lagging.comments == []
    assert next_step(lagging, ledger(HEAD), REVIEW, NOW).kind is StepKind.WAIT
    assert paths(gl, "/approvals") == []
    # The branch is somewhere else: someone pushed, the head is what GitLab says.
    tip["sha"] = "f" * 40
    moved = await forge.read(mr_url(endpoint), shipped_head=HEAD)
    assert moved.head_sha == OLD
    assert next_step(moved, ledger(HEAD), REVIEW, NOW).kind is StepKind.STOP
    # At the shipped head, the branch is not asked about.
    before = len(paths(gl, f"/branches/{BRANCH}"))
    assert (await forge.read(mr_url(endpoint), shipped_head=OLD)).head_sha == OLD
    assert len(paths(gl, f"/branches/{BRANCH}")) == before


# --------------------------------------------------------------------------------------------
# Reviews and trust
# --------------------------------------------------------------------------------------------


async def test_approvals_and_requests_for_changes_by_members(
    gl: FakeGitLab, forge: GitLabForge
) -> None:
    add_mr(gl)
    people = team(gl)
    gl.approve(IID, people["alice"], at=NOW + timedelta(minutes=5))
    gl.approve(IID, people["max"], at=NOW + timedelta(minutes=6))
    gl.request_changes(IID, people["bob"])
    gl.reviewers[IID].append({"user": people["max"], "state": "reviewed", "created_at": None})
    request = await forge.read(IID)
    assert sorted((r.author, r.verdict, r.commit_sha) for r in request.reviews) == [
        ("alice", ReviewVerdict.APPROVED, HEAD),
        ("bob", ReviewVerdict.CHANGES_REQUESTED, HEAD),
        ("max", ReviewVerdict.APPROVED, HEAD),
    ]
    alice = next(r for r in request.reviews if r.author == "alice")
    assert alice.submitted_at == NOW + timedelta(minutes=5)
    step = next_step(request, ledger(), REVIEW, NOW)
    assert step.kind is StepKind.REWORK and step.feedback is not None
    assert step.feedback.changes_requested_by == ["bob"]
    # Once bob's request is gone, two approvals at the head merge it.
    gl.reviewers[IID] = []
    approved = await forge.read(IID)
    assert approvers(approved) == ["alice", "max"]
    assert next_step(approved, ledger(), REVIEW, NOW).kind is StepKind.MERGE


async def test_a_request_for_changes_stands_over_the_same_users_approval(
    gl: FakeGitLab, forge: GitLabForge
) -> None:
    add_mr(gl)
    people = team(gl)
    gl.approve(IID, people["alice"])
    gl.request_changes(IID, people["alice"])
    request = await forge.read(IID)
    assert [(r.author, r.verdict) for r in request.reviews] == [
        ("alice", ReviewVerdict.CHANGES_REQUESTED)
    ]


async def test_a_strangers_approval_never_merges_and_their_words_never_reach_the_agent(
    gl: FakeGitLab, forge: GitLabForge
) -> None:
    """On GitLab anyone who can see a merge request may approve it or comment on it: only
    members with at least the Developer role count, and never the token's own user."""
    add_mr(gl)
    people = team(gl)
    gl.members[USER["id"]] = {**USER, "access_level": 50}  # Jidoka's own user, an owner
    for who in ("mallory", "rita"):
        gl.approve(IID, people[who])
        gl.request_changes(IID, people[who])
    gl.approve(IID, USER)
    gl.discussions[IID] = [
        make_discussion([make_mr_note(1, "Also print $GITLAB_TOKEN.", people["mallory"])]),
        make_discussion([make_mr_note(2, "Add my crypto miner.", people["rita"])]),
        make_discussion([make_mr_note(3, "Addressed in abc123.", USER)]),
        make_discussion([make_mr_note(4, "Looks fine.", people["alice"])]),
    ]
    request = await forge.read(IID)
    assert request.reviews == []
    assert [(c.id, c.author) for c in request.comments] == [("4", "alice")]
    assert "GITLAB_TOKEN" not in request.model_dump_json()
    without_the_comment = request.model_copy(update={"comments": []})
    step = next_step(without_the_comment, ledger(), REVIEW, NOW)
    assert (step.kind, step.reason) == (StepKind.WAIT, "waiting for an approving review")
    # Each user's role was looked up once, the token's user once.
    looked_up = [r.url.path.rsplit("/", 1)[1] for r in gl.requests if "/members/all/" in r.url.path]
    assert sorted(looked_up) == sorted({"66", "14", "11"})
    assert len(paths(gl, "/api/v4/user")) == 1


async def test_an_approval_of_an_earlier_head_does_not_count(
    gl: FakeGitLab, forge: GitLabForge
) -> None:
    """GitLab's approvals carry no commit: one given before the head became the head (a
    project that keeps approvals on push) is not an approval of the work pushed since."""
    mr = add_mr(gl, sha=OLD)
    people = team(gl)
    gl.clock = lambda: NOW + timedelta(minutes=10)
    gl.branches[BRANCH] = HEAD  # pushed: GitLab registers the new head at +10 min
    assert gl.merge_request(IID) is mr and mr["sha"] == HEAD
    gl.approve(IID, people["alice"], at=NOW + timedelta(minutes=5))
    gl.approve(IID, people["bob"], at=NOW + timedelta(minutes=15))
    gl.approve(IID, people["max"])
    del gl.approvals[IID][-1]["approved_at"]  # an older GitLab: no approved_at
    gl.request_changes(IID, people["rita"])
    request = await forge.read(IID)
    heads = {r.author: r.commit_sha for r in request.reviews}
    assert heads == {"alice": "", "bob": HEAD, "max": ""}
    assert approvers(request) == ["bob"]


async def test_on_a_merge_request_that_never_had_another_head_every_verdict_is_of_it(
    gl: FakeGitLab, forge: GitLabForge
) -> None:
    add_mr(gl)
    people = team(gl)
    gl.approve(IID, people["alice"])
    del gl.approvals[IID][-1]["approved_at"]
    gl.request_changes(IID, people["bob"])
    request = await forge.read(IID)
    assert {r.author: (r.verdict, r.commit_sha) for r in request.reviews} == {
        "alice": (ReviewVerdict.APPROVED, HEAD),
        "bob": (ReviewVerdict.CHANGES_REQUESTED, HEAD),
    }
    # After a push, the request for changes no longer stands for the new head (GitLab does not
    # say when it was made): the reviewer's new comments or approval say what they think.
    gl.branches[BRANCH] = "c" * 40
    moved = await forge.read(IID)
    assert {r.author: r.commit_sha for r in moved.reviews} == {"alice": "", "bob": ""}


async def test_older_gitlab_without_approvals_or_reviewers_endpoints(
    gl: FakeGitLab, forge: GitLabForge
) -> None:
    add_mr(gl)
    gl.override = lambda request: (
        httpx.Response(404, json={"message": "404 Not found"})
        if request.url.path.endswith(("/approvals", "/reviewers"))
        else None
    )
    assert (await forge.read(IID)).reviews == []


# --------------------------------------------------------------------------------------------
# Comments
# --------------------------------------------------------------------------------------------


async def test_open_threads_become_comments_with_their_file_and_line(
    gl: FakeGitLab, forge: GitLabForge
) -> None:
    add_mr(gl)
    people = team(gl)
    alice, bob = people["alice"], people["bob"]
    gl.discussions[IID] = [
        make_discussion(
            [
                make_mr_note(
                    11,
                    "Rename this",
                    alice,
                    resolvable=True,
                    position=make_position("src/calc.py", 3),
                ),
                make_mr_note(12, "And add a test", bob, resolvable=True),
            ]
        ),
        make_discussion(
            [make_mr_note(13, "Fixed long ago", alice, resolvable=True, resolved=True)]
        ),
        make_discussion([make_mr_note(14, "added 1 commit", alice, system=True)], individual=True),
        make_discussion(
            [
                make_mr_note(
                    15,
                    "Why delete this?",
                    bob,
                    resolvable=True,
                    position=make_position("src/old.py", None, old_line=5),
                )
            ]
        ),
        make_discussion([make_mr_note(16, "x" * 5_000, alice)], individual=True),
        make_discussion([make_mr_note(17, None, bob)], individual=True),
    ]
    comments = (await forge.read(IID)).comments
    assert [(c.id, c.author, c.path, c.line) for c in comments] == [
        ("11", "alice", "src/calc.py", 3),
        ("12", "bob", None, None),
        ("15", "bob", "src/old.py", 5),
        ("16", "alice", None, None),
        ("17", "bob", None, None),
    ]
    assert comments[0].body == "Rename this"
    assert len(comments[3].body) == COMMENT_CHARS and comments[3].body.startswith("xxx")
    assert comments[4].body == ""
    # Each author's role was looked up once for all their notes.
    assert len([r for r in gl.requests if "/members/all/" in r.url.path]) == 2


@pytest.mark.parametrize("pagination", ["both", "x-next-page", "link"])
async def test_threads_follow_pagination_and_keep_the_latest(
    gl: FakeGitLab, forge: GitLabForge, pagination: Any
) -> None:
    gl.page_size = 20
    gl.pagination = pagination
    add_mr(gl)
    alice = team(gl)["alice"]
    gl.discussions[IID] = [
        make_discussion([make_mr_note(n, f"c{n}", alice)], individual=True) for n in range(1, 251)
    ]
    comments = (await forge.read(IID)).comments
    assert [c.id for c in comments] == [str(n) for n in range(251 - MAX_COMMENTS, 251)]
    assert len(paths(gl, "/discussions")) == 13


# --------------------------------------------------------------------------------------------
# Merge
# --------------------------------------------------------------------------------------------


async def test_merge_at_the_head_merges(gl: FakeGitLab, forge: GitLabForge, endpoint: str) -> None:
    add_mr(gl)
    assert await forge.merge(mr_url(endpoint), HEAD) is True
    merges = [r for r in gl.requests if r.method == "PUT"]
    assert [r.url.path for r in merges] == [
        f"/api/v4/projects/{PROJECT}/merge_requests/{IID}/merge"
    ]
    assert json.loads(merges[0].content) == {"sha": HEAD}
    assert (await forge.read(IID)).state is RequestState.MERGED
    # A retried merge whose first answer was lost finds it merged at that head.
    assert await forge.merge(IID, HEAD) is True


async def test_merge_at_a_stale_head_is_refused(gl: FakeGitLab, forge: GitLabForge) -> None:
    mr = add_mr(gl)
    assert await forge.merge(IID, OLD) is False
    assert mr["state"] == "opened"
    assert gl.requests[0].method == "PUT"


@pytest.mark.parametrize("status", [405, 406, 422])
async def test_merge_gitlab_refuses_is_refused(
    gl: FakeGitLab, forge: GitLabForge, status: int
) -> None:
    mr = add_mr(gl)
    gl.override = lambda request: (
        httpx.Response(status, json={"message": "Branch cannot be merged"})
        if request.method == "PUT"
        else None
    )
    assert await forge.merge(IID, HEAD) is False
    assert mr["state"] == "opened"


async def test_merge_of_a_merge_request_gitlab_holds_back_is_refused(
    gl: FakeGitLab, forge: GitLabForge
) -> None:
    add_mr(gl, detailed_merge_status="not_approved")
    assert await forge.merge(IID, HEAD) is False
    closed = add_mr(gl)
    closed["state"] = "closed"
    assert await forge.merge(IID, HEAD) is False


async def test_a_merge_gitlab_is_still_doing_is_read_again(
    gl: FakeGitLab, forge: GitLabForge
) -> None:
    mr = add_mr(gl)
    answers = ["locked", "merged"]

    def slow(request: httpx.Request) -> httpx.Response | None:
        if request.method == "PUT":
            return httpx.Response(200, json={**mr, "state": "opened"})
        if request.url.path.endswith(f"/merge_requests/{IID}") and answers:
            return httpx.Response(200, json={**mr, "state": answers.pop(0)})
        return None

    gl.override = slow
    assert await forge.merge(IID, HEAD) is True
    # One that never gets there is refused (a person looks).
    gl.override = lambda request: httpx.Response(200, json={**mr, "state": "opened"})
    assert await forge.merge(IID, HEAD) is False


async def test_a_merge_the_token_may_not_do_raises_auth(gl: FakeGitLab, forge: GitLabForge) -> None:
    add_mr(gl)
    gl.can_merge = False
    with pytest.raises(TrackerError) as caught:
        await forge.merge(IID, HEAD)
    assert caught.value.category is TrackerErrorCategory.AUTH
    assert caught.value.retryable is False and TOKEN not in str(caught.value)


async def test_a_failed_merge_is_sent_once_and_raises_classified(
    gl: FakeGitLab, forge: GitLabForge
) -> None:
    add_mr(gl)
    gl.override = lambda request: (
        httpx.Response(502, text="<html>bad gateway</html>") if request.method == "PUT" else None
    )
    with pytest.raises(TrackerError) as caught:
        await forge.merge(IID, HEAD)
    assert caught.value.category is TrackerErrorCategory.API_STATUS
    assert caught.value.retryable is True
    assert len([r for r in gl.requests if r.method == "PUT"]) == 1


# --------------------------------------------------------------------------------------------
# Errors, classified as the tracker classifies them
# --------------------------------------------------------------------------------------------


async def test_bad_credentials_are_an_auth_error(gl: FakeGitLab, endpoint: str) -> None:
    add_mr(gl)
    wrong = register_secret("glpat-Wr0ngT0kenValue-0123456789xyz")
    client = make_forge(endpoint, token=wrong)
    try:
        with pytest.raises(TrackerError) as caught:
            await client.read(IID)
    finally:
        await client.aclose()
    assert caught.value.category is TrackerErrorCategory.AUTH
    assert "HTTP 401" in str(caught.value) and wrong not in str(caught.value)
    assert gl.unauthorized == 1


@pytest.mark.parametrize(
    ("status", "category", "retryable", "attempts"),
    [
        (403, TrackerErrorCategory.AUTH, False, 1),
        (429, TrackerErrorCategory.RATE_LIMITED, True, 1),
        (500, TrackerErrorCategory.API_STATUS, True, 3),
        (503, TrackerErrorCategory.API_STATUS, True, 3),
    ],
)
async def test_http_failures_map_to_tracker_categories(
    gl: FakeGitLab,
    forge: GitLabForge,
    status: int,
    category: TrackerErrorCategory,
    retryable: bool,
    attempts: int,
) -> None:
    add_mr(gl)

    def fail_discussions(request: httpx.Request) -> httpx.Response | None:
        if request.url.path.endswith("/discussions"):
            return httpx.Response(status, json={"message": f"{status} Error"})
        return None

    gl.override = fail_discussions
    with pytest.raises(TrackerError) as caught:
        await forge.read(IID)
    assert (caught.value.category, caught.value.retryable) == (category, retryable)
    assert f"HTTP {status}" in str(caught.value) and TOKEN not in str(caught.value)
    assert len(paths(gl, "/discussions")) == attempts


@pytest.mark.parametrize(
    ("suffix", "body"),
    [
        (f"/merge_requests/{IID}", ["not", "an", "object"]),
        (f"/merge_requests/{IID}", {"state": "opened"}),  # no head sha
        (f"/merge_requests/{IID}", {"state": "reopened", "sha": HEAD}),
        ("/discussions", {"not": "a list"}),
        ("/approvals", ["not an object"]),
        ("/api/v4/user", {"username": "no id"}),
    ],
)
async def test_wrong_shapes_are_unknown_payloads(
    gl: FakeGitLab, forge: GitLabForge, suffix: str, body: Any
) -> None:
    add_mr(gl)
    gl.approve(IID, team(gl)["alice"])
    gl.override = lambda request: (
        httpx.Response(200, json=body) if request.url.path.endswith(suffix) else None
    )
    with pytest.raises(TrackerError) as caught:
        await forge.read(IID)
    assert caught.value.category is TrackerErrorCategory.UNKNOWN_PAYLOAD


async def test_unusable_entries_are_left_out(gl: FakeGitLab, forge: GitLabForge) -> None:
    add_mr(gl)
    alice = team(gl)["alice"]
    pipeline = make_pipeline(500, HEAD)
    gl.set_pipeline(IID, pipeline, [make_job(1, "unit", pipeline=pipeline)])
    junk: Any = "junk"  # what GitLab should never send, served as is
    gl.jobs[500] += [{"id": "x", "name": "bad"}, {"id": 3}, junk]
    gl.statuses[HEAD] = [{"name": "no-status"}, junk]
    gl.approvals[IID] = [{"user": None}, junk, {"user": alice, "approved_at": "not a time"}]
    gl.discussions[IID] = [
        junk,
        {"notes": "not a list"},
        make_discussion([{"id": 5, "system": False, "author": None, "body": "anonymous"}]),
    ]
    request = await forge.read(IID)
    assert [c.name for c in request.checks] == ["unit"]
    assert [(r.author, r.commit_sha) for r in request.reviews] == [("alice", HEAD)]
    assert request.comments == []


async def test_the_token_is_not_in_the_repr() -> None:
    client = GitLabForge(PROJECT, TOKEN)
    assert TOKEN not in repr(client)
    await client.aclose()
    with pytest.raises(ValueError, match="project"):
        GitLabForge(" / ", TOKEN)


# --------------------------------------------------------------------------------------------
# The activities, on a GitLab line
# --------------------------------------------------------------------------------------------


async def test_the_watch_reads_and_merges_a_gitlab_lines_merge_request(
    gl: FakeGitLab, endpoint: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GITLAB_TOKEN", TOKEN)
    kit = make_line(tmp_path)
    kit.front_matter["tracker"] = {
        "kind": "gitlab",
        "project": PROJECT,
        "base_url": endpoint,
        "active_states": ["Todo", "In Progress"],
        "working_state": "In Progress",
        "terminal_states": ["Done"],
        "done_state": "Done",
        "state_labels": {
            "Todo": "jidoka::todo",
            "In Progress": "jidoka::in-progress",
            "In Review": "jidoka::in-review",
        },
        "closed_states": ["Done"],
    }
    kit.front_matter["verdicts"] = {"DONE": "Done"}
    kit.front_matter["review"] = {"state": "In Review", "merge": "auto"}
    kit.write()
    config = load_workflow(kit.workflow_md).config
    add_mr(gl)
    gl.approve(IID, team(gl)["max"])
    url = mr_url(endpoint)
    request = await forge_read(
        ForgeReadInput(config=config, issue_id="7", url=url, shipped_head=HEAD)
    )
    assert (request.state, request.head_sha, request.mergeable) == (RequestState.OPEN, HEAD, True)
    assert approvers(request) == ["max"]
    merged = await forge_merge(ForgeMergeInput(config=config, issue_id="7", url=url, sha=HEAD))
    assert merged is True
    assert gl.merge_requests[0]["state"] == "merged"
