"""The review loop's policy (``jidoka.review``): what one reading of a change request calls for,
and the ``review:`` section of WORKFLOW.md."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError

from jidoka.config import MergeMode, ReviewConfig, secret_env_names
from jidoka.review import (
    MAX_BRIEF_CHARS,
    MAX_ITEMS,
    ChangeRequest,
    Check,
    CheckState,
    Feedback,
    RequestState,
    Review,
    ReviewComment,
    ReviewLedger,
    ReviewVerdict,
    StepKind,
    StopReason,
    addressed_after,
    caps_afresh,
    next_step,
    reshipped,
    review_state_problem,
    rework_brief,
    round_tokens_left,
)
from jidoka.workflow_file import WorkflowFileError, env_reference_names, load_workflow
from tests.support.linekit import make_line

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
HEAD = "a" * 40


def request(**changes: object) -> ChangeRequest:
    base: dict[str, object] = {
        "url": "https://forge.example/pr/7",
        "state": RequestState.OPEN,
        "head_sha": HEAD,
        "checks": [Check(name="ci", state=CheckState.PASSED)],
        "reviews": [],
        "comments": [],
        "mergeable": True,
    }
    return ChangeRequest.model_validate({**base, **changes})


def review(
    verdict: ReviewVerdict, *, author: str = "ana", sha: str = HEAD, minutes: int = 1
) -> Review:
    return Review(
        author=author, verdict=verdict, commit_sha=sha, submitted_at=T0 + timedelta(minutes=minutes)
    )


LEDGER = ReviewLedger(url="https://github.com/o/r/pull/1", shipped_head=HEAD, started_at=T0)
AUTO = ReviewConfig(state="Human Review", merge=MergeMode.AUTO)
MANUAL = ReviewConfig(state="Human Review")
NOW = T0 + timedelta(hours=1)


# ---------------------------------------------------------------------------------------------
# How it ended, and whether it is still ours
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("state", "kind"),
    [(RequestState.MERGED, StepKind.MERGED), (RequestState.CLOSED, StepKind.CLOSED)],
)
def test_a_merge_or_a_close_ends_the_loop_whatever_else_it_shows(
    state: RequestState, kind: StepKind
) -> None:
    failing = request(state=state, checks=[Check(name="ci", state=CheckState.FAILED)])
    assert next_step(failing, LEDGER, AUTO, NOW).kind is kind


def test_a_request_the_forge_no_longer_shows_stops_the_line() -> None:
    step = next_step(request(state=RequestState.GONE), LEDGER, AUTO, NOW)
    assert (step.kind, step.stop) == (StepKind.STOP, StopReason.GONE)


def test_a_head_someone_else_pushed_is_no_longer_judged_as_ours() -> None:
    moved = request(head_sha="b" * 40, reviews=[review(ReviewVerdict.APPROVED, sha="b" * 40)])
    step = next_step(moved, LEDGER, AUTO, NOW)
    assert (step.kind, step.stop) == (StepKind.STOP, StopReason.HEAD_MOVED)
    assert "bbbbbbbbbbbb" in step.reason and "aaaaaaaaaaaa" in step.reason


# ---------------------------------------------------------------------------------------------
# Ready, waiting, merging
# ---------------------------------------------------------------------------------------------


def test_approved_and_green_at_the_shipped_head_merges_it_pinned_when_auto() -> None:
    ready = request(reviews=[review(ReviewVerdict.APPROVED)])
    step = next_step(ready, LEDGER, AUTO, NOW)
    assert (step.kind, step.merge_sha) == (StepKind.MERGE, HEAD)
    # Manual: ready, and a person merges.
    manual = next_step(ready, LEDGER, MANUAL, NOW)
    assert manual.kind is StepKind.WAIT and manual.reason.startswith("ready")


@pytest.mark.parametrize(
    ("changes", "waiting_for"),
    [
        ({"checks": [Check(name="ci", state=CheckState.PENDING)]}, "waiting for checks: ci"),
        ({"reviews": []}, "waiting for an approving review"),
        ({"mergeable": None}, "mergeability"),
        # An approval of another head is not an approval of this work.
        ({"reviews": [review(ReviewVerdict.APPROVED, sha="c" * 40)]}, "approving review"),
    ],
)
def test_not_yet_ready_waits_and_says_for_what(
    changes: dict[str, object], waiting_for: str
) -> None:
    reviews: object = changes.get("reviews", [review(ReviewVerdict.APPROVED)])
    step = next_step(request(**{**changes, "reviews": reviews}), LEDGER, AUTO, NOW)
    assert step.kind is StepKind.WAIT
    assert waiting_for in step.reason


def test_a_required_check_that_has_not_reported_at_the_head_is_waited_for() -> None:
    config = ReviewConfig(state="Human Review", merge=MergeMode.AUTO, required_checks=["ci", "e2e"])
    step = next_step(request(reviews=[review(ReviewVerdict.APPROVED)]), LEDGER, config, NOW)
    assert step.kind is StepKind.WAIT and "e2e" in step.reason
    # Checks nobody requires do not hold the merge.
    extra = request(
        reviews=[review(ReviewVerdict.APPROVED)],
        checks=[
            Check(name="ci", state=CheckState.PASSED),
            Check(name="e2e", state=CheckState.SKIPPED),
            Check(name="lint-nightly", state=CheckState.FAILED),
        ],
    )
    assert next_step(extra, LEDGER, config, NOW).kind is StepKind.MERGE


def test_a_later_request_for_changes_outweighs_an_earlier_approval_and_a_dismissal_clears_it() -> (
    None
):
    blocked = [
        review(ReviewVerdict.APPROVED, minutes=1),
        review(ReviewVerdict.CHANGES_REQUESTED, minutes=2),
    ]
    assert next_step(request(reviews=blocked), LEDGER, AUTO, NOW).kind is StepKind.REWORK
    cleared = [
        review(ReviewVerdict.CHANGES_REQUESTED, author="bo", minutes=1),
        review(ReviewVerdict.DISMISSED, author="bo", minutes=2),
        review(ReviewVerdict.APPROVED, minutes=3),
        review(ReviewVerdict.COMMENTED, minutes=4),
    ]
    assert next_step(request(reviews=cleared), LEDGER, AUTO, NOW).kind is StepKind.MERGE


# ---------------------------------------------------------------------------------------------
# Rework: exactly what to fix, never twice, always capped
# ---------------------------------------------------------------------------------------------


def test_a_failing_check_sends_the_agent_back_with_its_name_and_output() -> None:
    failing = Check(name="ci", state=CheckState.FAILED, summary="E   assert 2 == 3")
    step = next_step(request(checks=[failing]), LEDGER, AUTO, NOW)
    assert step.kind is StepKind.REWORK and step.feedback is not None
    assert step.feedback.failed_checks == [failing]
    assert step.failure_signature is not None and "failing checks: ci" in step.reason


def test_review_comments_and_conflicts_are_the_feedback_and_are_never_sent_twice() -> None:
    comments = [
        ReviewComment(id="c1", author="ana", body="rename this", path="calc.py", line=3),
        ReviewComment(id="c2", author="ana", body="and add a test"),
    ]
    conflicted = request(comments=comments, mergeable=False, conflicting_files=["calc.py"])
    step = next_step(conflicted, LEDGER, AUTO, NOW)
    assert step.kind is StepKind.REWORK and step.feedback is not None
    assert [c.id for c in step.feedback.comments] == ["c1", "c2"]
    assert step.feedback.conflicting_files == ["calc.py"]
    after = addressed_after(LEDGER, step)
    assert (after.rounds, after.addressed) == (1, ["c1", "c2"])
    # The same comments again, conflict resolved: nothing left to send, so the loop waits.
    again = next_step(request(comments=comments), after, AUTO, NOW)
    assert again.kind is StepKind.WAIT
    # A new comment is the only one sent.
    newer = [*comments, ReviewComment(id="c3", author="bo", body="typo")]
    third = next_step(request(comments=newer), after, AUTO, NOW)
    assert third.feedback is not None and [c.id for c in third.feedback.comments] == ["c3"]


def test_a_conflict_the_forge_does_not_detail_is_still_a_rework() -> None:
    step = next_step(request(mergeable=False), LEDGER, AUTO, NOW)
    assert step.kind is StepKind.REWORK and step.feedback is not None
    assert step.feedback.conflicting_files == ["(the forge names no file)"]


def test_the_same_check_failing_the_same_way_after_a_round_stops_the_line() -> None:
    failing = [Check(name="ci", state=CheckState.FAILED, summary="E   assert 2 == 3")]
    first = next_step(request(checks=failing), LEDGER, AUTO, NOW)
    ledger = reshipped(addressed_after(LEDGER, first), "d" * 40, tokens=5_000)
    again = next_step(request(checks=failing, head_sha="d" * 40), ledger, AUTO, NOW)
    assert (again.kind, again.stop) == (StepKind.STOP, StopReason.SAME_FAILURE)
    # Failing differently is progress of a kind: another round.
    other = [Check(name="ci", state=CheckState.FAILED, summary="E   assert 3 == 4")]
    assert (
        next_step(request(checks=other, head_sha="d" * 40), ledger, AUTO, NOW).kind
        is StepKind.REWORK
    )


def test_reviews_of_the_head_before_a_rework_no_longer_count() -> None:
    blocked = request(reviews=[review(ReviewVerdict.CHANGES_REQUESTED)])
    first = next_step(blocked, LEDGER, AUTO, NOW)
    assert first.kind is StepKind.REWORK
    ledger = reshipped(addressed_after(LEDGER, first), "e" * 40, tokens=1)
    reworked = request(head_sha="e" * 40, reviews=blocked.reviews)
    step = next_step(reworked, ledger, AUTO, NOW)
    assert step.kind is StepKind.WAIT and "approving review" in step.reason
    assert ledger.tokens == 1


@pytest.mark.parametrize(
    ("ledger", "config", "stop"),
    [
        (LEDGER.model_copy(update={"rounds": 3}), AUTO, StopReason.ROUNDS_CAP),
        (
            LEDGER.model_copy(update={"tokens": 50_000}),
            ReviewConfig(state="Human Review", max_tokens=50_000),
            StopReason.TOKENS_CAP,
        ),
    ],
)
def test_a_round_past_a_cap_stops_the_line_instead(
    ledger: ReviewLedger, config: ReviewConfig, stop: StopReason
) -> None:
    step = next_step(
        request(checks=[Check(name="ci", state=CheckState.FAILED)]), ledger, config, NOW
    )
    assert (step.kind, step.stop) == (StepKind.STOP, stop)


def test_time_in_review_is_capped_even_while_waiting() -> None:
    config = ReviewConfig(state="Human Review", max_time="2d")
    waiting = request(checks=[Check(name="ci", state=CheckState.PENDING)])
    assert next_step(waiting, LEDGER, config, T0 + timedelta(days=1)).kind is StepKind.WAIT
    step = next_step(waiting, LEDGER, config, T0 + timedelta(days=2, seconds=1))
    assert (step.kind, step.stop) == (StepKind.STOP, StopReason.TIME_CAP)


# ---------------------------------------------------------------------------------------------
# The review section (its own model until the loop is wired into WORKFLOW.md)
# ---------------------------------------------------------------------------------------------


def test_the_review_section_has_safe_defaults() -> None:
    config = ReviewConfig.model_validate({"state": "Human Review"})
    assert (config.merge, config.max_rounds, config.max_tokens, config.max_time_s()) == (
        MergeMode.MANUAL,
        3,
        None,
        7 * 86400,
    )


@pytest.mark.parametrize(
    ("section", "field"),
    [
        ({"state": "Human Review", "merge": "yolo"}, "merge"),
        ({"state": "Human Review", "max_time": "soon"}, "max_time"),
        ({"state": "Human Review", "poll_interval_s": 1}, "poll_interval_s"),
        ({"state": "Human Review", "max_rounds": 0}, "max_rounds"),
        ({"merge": "auto"}, "state"),
    ],
)
def test_a_bad_review_section_is_refused_naming_the_key(
    section: dict[str, object], field: str
) -> None:
    with pytest.raises(ValidationError) as raised:
        ReviewConfig.model_validate(section)
    assert [e["loc"][0] for e in raised.value.errors()] == [field]


def test_a_review_state_where_issues_end_is_refused(tmp_path: Path) -> None:
    tracker = load_workflow(make_line(tmp_path).workflow_md).config.tracker
    assert review_state_problem(ReviewConfig(state="Human Review"), tracker) is None
    problem = review_state_problem(ReviewConfig(state="done"), tracker)
    assert problem is not None and "'done' is a state where issues end" in problem


def test_workflow_md_takes_a_review_section(tmp_path: Path) -> None:
    kit = make_line(tmp_path, {"review": {"state": "Human Review", "merge": "auto"}})
    config = load_workflow(kit.workflow_md).config
    assert config.review is not None and config.review.merge is MergeMode.AUTO
    assert config.shipped_state() == "Human Review"


@pytest.mark.parametrize(
    ("state", "wanted"),
    [("done", "a state where issues end"), ("Todo", "already an active, paused or backlog")],
)
def test_workflow_md_refuses_a_review_state_that_is_not_its_own(
    tmp_path: Path, state: str, wanted: str
) -> None:
    kit = make_line(tmp_path, {"review": {"state": state}})
    with pytest.raises(WorkflowFileError) as raised:
        load_workflow(kit.workflow_md)
    rendered = "\n".join(p.render() for p in raised.value.problems)
    assert "review.state" in rendered and wanted in rendered


# ---------------------------------------------------------------------------------------------
# The rework round's brief
# ---------------------------------------------------------------------------------------------


def test_the_brief_says_exactly_what_to_fix_with_files_and_lines() -> None:
    feedback = Feedback(
        failed_checks=[Check(name="ci", state=CheckState.FAILED, summary="collected 3\nE  2 != 3")],
        changes_requested_by=["ana"],
        comments=[
            ReviewComment(id="1", author="ana", body="rename this", path="calc.py", line=3),
            ReviewComment(id="2", author="bo", body="add a test\nfor zero"),
        ],
        conflicting_files=["calc.py"],
    )
    brief = rework_brief(feedback, "https://forge.example/pr/7")
    assert "https://forge.example/pr/7" in brief
    assert "- ci\n    collected 3\n    E  2 != 3" in brief
    assert "Changes requested by: ana." in brief
    assert "- calc.py:3 (ana): rename this" in brief
    assert "- (the change as a whole) (bo): add a test\n    for zero" in brief
    assert "conflicts with the base in: calc.py" in brief


def test_the_brief_is_bounded_and_inert_whatever_the_forge_sends() -> None:
    noisy = "\x00\x1b[31mBOOM\x07\n" + "\n".join(f"line {n}" for n in range(100_000))
    feedback = Feedback(
        failed_checks=[
            Check(name=f"job-{n}", state=CheckState.FAILED, summary=noisy) for n in range(30)
        ],
        comments=[
            ReviewComment(id=str(n), author="ana", body="x" * 50_000, path="a.py", line=n)
            for n in range(40)
        ],
    )
    brief = rework_brief(feedback, "https://forge.example/pr/7")
    assert len(brief) <= MAX_BRIEF_CHARS + 100
    assert "\x00" not in brief and "\x1b" not in brief and "\x07" not in brief
    # The end of a log is kept, where the failure is; the beginning is cut.
    assert "line 99999" in brief and "line 10\n" not in brief
    assert brief.endswith("[... the rest is cut: see the change request]")
    few = rework_brief(
        Feedback(
            comments=[
                ReviewComment(id=str(n), author="ana", body="short", path="a.py") for n in range(25)
            ]
        ),
        "u",
    )
    assert "- ... and 5 more comment(s), on the change request" in few
    assert few.count("(ana): short") == MAX_ITEMS


def test_a_rework_round_may_spend_only_what_the_review_cap_leaves() -> None:
    capped = ReviewConfig(state="Human Review", max_tokens=10_000)
    ledger = LEDGER.model_copy(
        update={"tokens": 6_000, "reworking": True, "round_tokens_from": 50_000}
    )
    assert round_tokens_left(ledger, capped, 51_000) == 3_000
    assert round_tokens_left(ledger, capped, 60_000) == 0  # never negative
    assert round_tokens_left(ledger, MANUAL, 51_000) is None  # no review cap
    assert round_tokens_left(ledger.model_copy(update={"reworking": False}), capped, 0) is None
    assert round_tokens_left(None, capped, 0) is None


def test_a_retry_starts_the_caps_again_and_keeps_the_totals() -> None:
    capped = LEDGER.model_copy(update={"rounds": 3, "tokens": 9_000, "last_failure": "x"})
    feedback = request(comments=[ReviewComment(id="c9", author="rev", body="One more thing.")])
    assert next_step(feedback, capped, MANUAL, NOW).stop is StopReason.ROUNDS_CAP
    later = NOW + timedelta(days=30)
    fresh = caps_afresh(capped, later)
    assert (fresh.rounds, fresh.tokens, fresh.rounds_toward_cap, fresh.last_failure) == (
        3,
        9_000,
        0,
        None,
    )
    step = next_step(feedback, fresh, MANUAL, later)
    assert step.kind is StepKind.REWORK  # not the time cap either: the clock started again
    assert addressed_after(fresh, step).rounds_toward_cap == 1


def test_workflow_md_takes_jira_and_gitlab_lines_and_says_where_review_needs_more(
    tmp_path: Path,
) -> None:
    """Jira has no pull requests: its review needs review.github or review.gitlab. GitLab
    reviews its own merge requests, and review.state is a label there, as on GitHub."""
    jira = {
        "kind": "jira",
        "base_url": "https://acme.atlassian.net",
        "project_key": "ENG",
        "active_states": ["To Do", "In Progress"],
        "terminal_states": ["Done"],
        "done_state": "Done",
    }
    gitlab = {
        "kind": "gitlab",
        "project": "acme/widgets",
        "active_states": ["Todo"],
        "terminal_states": ["Done"],
        "done_state": "Done",
        "state_labels": {"Todo": "jidoka::todo"},
        "closed_states": ["Done"],
    }
    for tracker in (jira, gitlab):
        kit = make_line(tmp_path / tracker["kind"])
        kit.front_matter["tracker"] = tracker
        kit.front_matter["verdicts"] = {"DONE": "Done"}
        kit.write()
        config = load_workflow(kit.workflow_md).config
        assert config.tracker.kind == tracker["kind"]
        kit.front_matter["review"] = {"state": "In Review"}
        kit.write()
        with pytest.raises(WorkflowFileError) as raised:
            load_workflow(kit.workflow_md)
        rendered = "\n".join(p.render() for p in raised.value.problems)
        if tracker["kind"] == "jira":
            assert "review.github" in rendered, rendered
        else:
            assert "on GitLab an open issue's state is its label" in rendered, rendered
            assert "jidoka::in-review" in rendered, rendered
            assert len(raised.value.problems) == 1, rendered
    gitlab["state_labels"] = {"Todo": "jidoka::todo", "In Review": "jidoka::in-review"}
    kit = make_line(tmp_path / "gitlab-labelled")
    kit.front_matter["tracker"] = gitlab
    kit.front_matter["verdicts"] = {"DONE": "Done"}
    kit.front_matter["review"] = {"state": "In Review", "merge": "auto"}
    kit.write()
    config = load_workflow(kit.workflow_md).config
    assert config.review is not None and config.review.state == "In Review"
    assert config.shipped_state() == "In Review"


JIRA = {
    "kind": "jira",
    "base_url": "https://acme.atlassian.net",
    "project_key": "ENG",
    "active_states": ["To Do", "In Progress"],
    "terminal_states": ["Done"],
    "done_state": "Done",
}
LINEAR = {
    "kind": "linear",
    "project_slug": "eng",
    "active_states": ["Todo", "In Progress"],
    "terminal_states": ["Done"],
    "done_state": "Done",
}
GITLAB_TRACKER = {
    "kind": "gitlab",
    "project": "acme/widgets",
    "active_states": ["Todo"],
    "terminal_states": ["Done"],
    "done_state": "Done",
    "state_labels": {"Todo": "jidoka::todo", "In Review": "jidoka::in-review"},
    "closed_states": ["Done"],
}
GITHUB_TRACKER = {
    "kind": "github",
    "repo": "acme/widgets",
    "active_states": ["Todo"],
    "terminal_states": ["Done"],
    "done_state": "Done",
    "state_labels": {"Todo": "jidoka:todo", "In Review": "jidoka:in-review"},
    "closed_states": {"Done": "completed"},
}


def review_line(
    tmp_path: Path, tracker: dict[str, object] | None, review: dict[str, object]
) -> Path:
    """A line's WORKFLOW.md with ``review`` (``tracker`` None: the local board)."""
    kit = make_line(tmp_path)
    if tracker is not None:
        kit.front_matter["tracker"] = tracker
        kit.front_matter["verdicts"] = {"DONE": "Done"}
    kit.front_matter["review"] = review
    kit.write()
    return kit.workflow_md


def problems_of(workflow_md: Path) -> list[str]:
    with pytest.raises(WorkflowFileError) as raised:
        load_workflow(workflow_md)
    return [p.render() for p in raised.value.problems]


@pytest.mark.parametrize("tracker", [JIRA, LINEAR], ids=["jira", "linear"])
def test_a_jira_or_linear_line_is_reviewed_in_a_gitlab_project(
    tmp_path: Path, tracker: dict[str, object]
) -> None:
    """``review.gitlab`` is the twin of ``review.github``: its defaults, a numeric project id
    (YAML reads it as a number), and its token a secret of the line that ``jidoka check``
    looks for."""
    config = load_workflow(
        review_line(
            tmp_path / "path", tracker, {"state": "In Review", "gitlab": {"project": "a/b/c"}}
        )
    ).config
    assert config.review is not None and config.review.github is None
    gitlab = config.review.gitlab
    assert gitlab is not None
    assert (gitlab.project, gitlab.base_url, gitlab.api_key) == (
        "a/b/c",
        "https://gitlab.com",
        "$GITLAB_TOKEN",
    )
    assert (gitlab.target, gitlab.draft) == (None, False)
    assert "GITLAB_TOKEN" in secret_env_names(config)
    custom = {
        "project": 1234,
        "base_url": "https://gitlab.example.com",
        "api_key": "$REVIEW_GITLAB_TOKEN",
        "target": "develop",
        "draft": True,
    }
    config = load_workflow(
        review_line(tmp_path / "id", tracker, {"state": "In Review", "gitlab": custom})
    ).config
    assert config.review is not None and config.review.gitlab is not None
    assert config.review.gitlab.project == "1234"
    assert config.review.gitlab.target == "develop" and config.review.gitlab.draft
    assert "REVIEW_GITLAB_TOKEN" in secret_env_names(config)
    assert "GITLAB_TOKEN" not in secret_env_names(config)
    assert "REVIEW_GITLAB_TOKEN" in env_reference_names(config)


@pytest.mark.parametrize("tracker", [JIRA, LINEAR], ids=["jira", "linear"])
def test_a_jira_or_linear_review_names_exactly_one_forge(
    tmp_path: Path, tracker: dict[str, object]
) -> None:
    [neither] = problems_of(review_line(tmp_path / "neither", tracker, {"state": "In Review"}))
    assert neither.startswith("review: ") and "has no pull requests" in neither, neither
    assert "review.github" in neither and "review.gitlab" in neither, neither
    both = {
        "state": "In Review",
        "github": {"repo": "acme/widgets"},
        "gitlab": {"project": "acme/widgets"},
    }
    [twice] = problems_of(review_line(tmp_path / "both", tracker, both))
    assert "review.github and review.gitlab are both set" in twice, twice


@pytest.mark.parametrize(
    "tracker", [GITHUB_TRACKER, GITLAB_TRACKER, None], ids=["github", "gitlab", "local"]
)
def test_a_line_that_reviews_in_its_own_forge_names_no_gitlab_project(
    tmp_path: Path, tracker: dict[str, object] | None
) -> None:
    gitlab_only = {"state": "In Review", "gitlab": {"project": "acme/widgets"}}
    [refused] = problems_of(review_line(tmp_path / "gitlab", tracker, gitlab_only))
    assert refused.startswith("review.gitlab: only a Linear or Jira line names a GitLab project")
    both = {**gitlab_only, "github": {"repo": "acme/widgets"}}
    rendered = problems_of(review_line(tmp_path / "both", tracker, both))
    assert [p.split(":", 1)[0] for p in rendered] == ["review.github", "review.gitlab"], rendered


def test_a_review_gitlab_project_is_a_path_or_an_id_and_its_branch_is_pushed(
    tmp_path: Path,
) -> None:
    bad = {"state": "In Review", "gitlab": {"project": "widgets"}}
    assert any(
        "review.gitlab.project" in p for p in problems_of(review_line(tmp_path / "a", JIRA, bad))
    )
    kit = make_line(tmp_path / "b")
    kit.front_matter["tracker"] = JIRA
    kit.front_matter["verdicts"] = {"DONE": "Done"}
    kit.front_matter["workspace"]["push_on_ship"] = False
    kit.front_matter["review"] = {"state": "In Review", "gitlab": {"project": "acme/widgets"}}
    kit.write()
    [unpushed] = problems_of(kit.workflow_md)
    assert unpushed.startswith("workspace.push_on_ship: a jira line with review.github or "), (
        unpushed
    )
