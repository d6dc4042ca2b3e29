"""``jidoka why`` on the review loop: every reading of the change request, each rework round and
why, the merge, and a halt the loop made. On a recorded history (``histories/issue_review.json``:
shipped into review, one round, the rounds cap, a retry, merged by a person), decoded the way
``jidoka why`` decodes one, and on records built here for what that history does not hold."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from temporalio.contrib.pydantic import pydantic_data_converter

from cli.story import (
    ActivityRecord,
    DecisionRecord,
    HaltedRecord,
    MessageRecord,
    Record,
    Story,
    TimerRecord,
    tell,
)
from cli.why import add_run
from jidoka.models import Decision, HaltRecord
from jidoka.outcomes import DecisionKind, HaltCategory, HaltScope, HaltSource, Outcome, Phase
from jidoka.payloads import ReviewChanged
from jidoka.review import (
    ChangeRequest,
    Check,
    CheckState,
    RequestState,
    Review,
    ReviewComment,
    ReviewVerdict,
)
from tests.cli.histories import load

AT = datetime(2026, 12, 3, 10, 0, tzinfo=UTC)
HEAD = "c0ffee" * 6 + "beef"
URL = "https://github.com/acme/app/pull/7"
SHIP = Decision(kind=DecisionKind.SHIP, reason="all present", rule="verdicts.DONE -> done")


async def test_why_tells_the_review_loop_of_a_recorded_history() -> None:
    story = Story(workflow_id="jidoka-issue-x-REV-1", url="http://ui/REV-1")
    await add_run(story, pydantic_data_converter, load("issue_review").events)
    told = tell(story)
    lines = told.splitlines()

    def index(pattern: str) -> int:
        found = [i for i, line in enumerate(lines) if re.fullmatch(pattern, line)]
        assert found, f"no line matches {pattern!r} in:\n{told}"
        return found[0]

    url = re.escape("file://") + r"\S+/board/REV-1\.md"
    # Each watch under its heading, with every reading in one line.
    assert sum(1 for line in lines if re.fullmatch(f"Review: the change request {url}", line)) == 2
    first_watch = index(f"Review: the change request {url}")
    assert lines[first_watch - 1].startswith("Tracker: moved from 'In Progress' to 'Human Review'")
    # The first reading comes at once; then the watch waits, woken early by the signal.
    assert lines[first_watch + 1].startswith("  change request read: open at ")
    assert re.fullmatch(
        r"  waited \d\.\ds of 30s \(review poll\), woken early", lines[first_watch + 2]
    )
    assert lines[first_watch + 3] == "  review_changed from record"
    sent_back = index(
        r"  change request read: open at [0-9a-f]{12}; no checks; changes requested by alice; "
        r"1 review comment\(s\); mergeability not computed yet"
    )
    rework = index(
        r"  decision: rework round 1 — changes requested by alice; 1 new review comment\(s\) "
        r"\[rule: review: .*\(review\.max_rounds\)\]"
    )
    capped = index(
        r"  change request read: open at [0-9a-f]{12}; no checks; changes requested by alice; "
        r"2 review comment\(s\); mergeability not computed yet"
    )
    halted = index(
        r"Halted \(review_rounds_cap\) by orchestrator: 1 rework round\(s\) done, "
        r"review\.max_rounds is 1"
    )
    retried = index("Operator ops decided retry: one more look")
    merged = index(r"  change request read: merged at [0-9a-f]{12}")
    assert first_watch < sent_back < rework < capped < halted < retried < merged
    assert not any(re.fullmatch(r"  waited 30s \(review poll\)", line) for line in lines)
    assert re.search(
        rf"Why shipped\? Because attempt \d ended with shipped: .*\n"
        rf"Review: merged by a person after 1 rework round \({url}\)\.\n"
        r"Rule: verdicts\.DONE -> tracker\.done_state\n",
        told,
    ), told


def request(state: RequestState = RequestState.OPEN, **update: object) -> ChangeRequest:
    return ChangeRequest(url=URL, state=state, head_sha=HEAD).model_copy(update=update)


def reading(at: datetime, found: ChangeRequest) -> ActivityRecord:
    return ActivityRecord(at=at, name="forge_read", result=found)


def story(records: list[Record], phase: Phase, **fields: object) -> Story:
    told = Story(workflow_id="jidoka-issue-x-R-1", url="http://ui/R-1", records=records)
    told.phase = phase
    for name, value in fields.items():
        setattr(told, name, value)
    return told


def shipped(at: datetime) -> list[Record]:
    return [DecisionRecord(at=at, attempt=1, outcome=Outcome.SHIPPED, decision=SHIP)]


def test_a_reading_in_one_line_and_readings_alike_told_once() -> None:
    red = request(
        checks=[
            Check(name="ci", state=CheckState.FAILED, summary="boom"),
            Check(name="lint", state=CheckState.PASSED),
            Check(name="e2e", state=CheckState.PENDING),
        ],
        reviews=[
            Review(
                author="bob",
                verdict=ReviewVerdict.APPROVED,
                commit_sha=HEAD,
                submitted_at=AT,
            ),
            Review(
                author="carol",
                verdict=ReviewVerdict.CHANGES_REQUESTED,
                commit_sha=HEAD,
                submitted_at=AT,
            ),
            Review(
                author="dave",
                verdict=ReviewVerdict.CHANGES_REQUESTED,
                commit_sha="0" * 40,  # another head: not a review of this work
                submitted_at=AT,
            ),
        ],
        comments=[ReviewComment(id="1", author="carol", body="why?")],
        mergeable=False,
        conflicting_files=["a.py", "b.py"],
    )
    pending = request(checks=[Check(name="ci", state=CheckState.PENDING)], mergeable=True)
    poll = TimerRecord(at=AT, seconds=300, summary="review poll")
    records: list[Record] = [*shipped(AT), poll, reading(AT, pending)]
    for minutes in (5, 10, 15):  # a quiet watch: the same reading, poll after poll
        later = AT + timedelta(minutes=minutes)
        records += [
            TimerRecord(at=later, seconds=300, summary="review poll"),
            reading(later, pending),
        ]
    records += [
        MessageRecord(at=AT, name="review_changed", payload=ReviewChanged(state="Todo")),
        reading(AT + timedelta(minutes=16), red),
    ]
    told = tell(story(records, Phase.IN_REVIEW, review_waiting="waiting for checks: e2e"))
    assert (
        "Review: the change request https://github.com/acme/app/pull/7\n"
        "  waited 300s (review poll)\n"
        f"  change request read: open at {HEAD[:12]}; 0 of 1 check(s) failing, 1 pending; "
        "0 review comment(s); mergeable (4 readings alike, the last at 2026-12-03T10:15:00+00:00)\n"
        "  review_changed from webhook: state 'Todo'\n"
        f"  change request read: open at {HEAD[:12]}; 1 of 3 check(s) failing (ci), 1 pending; "
        "approved by bob; changes requested by carol; 1 review comment(s); "
        "conflicts with the base (2 file(s))\n"
    ) in told, told
    assert told.count("waited 300s") == 1
    # Still in review: why, where its change request stands, what the watch waits for.
    assert "Why in review? Because attempt 1 ended with shipped: all present." in told
    assert f"Review: {URL}, 0 rework rounds so far; last read: open at {HEAD[:12]}; 1 of 3" in told
    assert "Now: waiting for checks: e2e.\nRule: verdicts.DONE -> done" in told


def test_a_merge_by_jidoka_and_a_refused_one() -> None:
    ready = request(mergeable=True)
    merged = [
        *shipped(AT),
        reading(AT, ready),
        ActivityRecord(at=AT, name="forge_merge", result=True),
    ]
    told = tell(story(merged, Phase.SHIPPED))
    assert "  merge pinned to the shipped head: merged\n" in told
    assert f"Review: merged by Jidoka after 0 rework rounds ({URL})." in told

    halt = HaltRecord(
        category=HaltCategory.REVIEW_MERGE_REFUSED,
        reason=f"the merge pinned to {HEAD} was refused: the head moved",
        source=HaltSource.ORCHESTRATOR,
        scope=HaltScope.ISSUE,
        at=AT,
    )
    refused = [
        *shipped(AT),
        reading(AT, ready),
        ActivityRecord(at=AT, name="forge_merge", result=False),
        HaltedRecord(at=AT + timedelta(seconds=1)),
    ]
    told = tell(story(refused, Phase.HALTED, halts=[halt]))
    assert (
        "  merge pinned to the shipped head: refused by the forge\n"
        f"Halted (review_merge_refused) by orchestrator: the merge pinned to {HEAD} was refused"
    ) in told
    assert "Why halted (review_merge_refused)? Because the merge pinned to" in told
    assert "a retry watches the change request again with the review caps afresh" in told
    assert "Rule: review.merge: auto merges pinned to the shipped head" in told
    assert "Why in review" not in told and "Why shipped" not in told


def test_a_reading_that_failed_and_a_closed_request() -> None:
    records: list[Record] = [
        *shipped(AT),
        ActivityRecord(at=AT, name="forge_read", failure="HTTP 502 from the forge"),
        reading(AT, request(RequestState.CLOSED)),
    ]
    told = tell(story(records, Phase.RELEASED))
    assert "  reading the change request failed: HTTP 502 from the forge" in told
    assert f"  change request read: closed unmerged at {HEAD[:12]}" in told
    assert f"Why released? Because the change request was closed unmerged ({URL})" in told


def test_a_halt_a_decision_already_told_is_not_told_twice() -> None:
    decision = Decision(
        kind=DecisionKind.HALT,
        reason="the rework round claimed done without a commit beyond the head in review",
        rule="review (docs/review.md#rework-rounds): a round must add work",
        halt_category=HaltCategory.REVIEW_NO_NEW_WORK,
    )
    halt = HaltRecord(
        category=HaltCategory.REVIEW_NO_NEW_WORK,
        reason=decision.reason,
        source=HaltSource.ORCHESTRATOR,
        scope=HaltScope.ISSUE,
        at=AT,
    )
    records: list[Record] = [
        DecisionRecord(at=AT, attempt=2, outcome=Outcome.NO_NEW_WORK, decision=decision),
        HaltedRecord(at=AT),
    ]
    told = tell(story(records, Phase.HALTED, halts=[halt]))
    assert "Halted (" not in told
    assert "Why halted (review_no_new_work)? Because attempt 2 ended with no_new_work" in told
    assert "Rule: review (docs/review.md#rework-rounds): a round must add work" in told


def test_a_rework_round_under_way_is_why_another_attempt() -> None:
    rework = Decision(
        kind=DecisionKind.CONTINUE,
        reason="rework round 2: failing checks: ci",
        rule="review: feedback on the change request starts a rework round (review.max_rounds)",
    )
    records: list[Record] = [
        *shipped(AT),
        DecisionRecord(at=AT, attempt=1, outcome=Outcome.SHIPPED, decision=rework),
    ]
    told = tell(story(records, Phase.RUNNING_AGENT))
    assert "  decision: rework round 2 — failing checks: ci [rule: review: feedback" in told
    assert (
        "Why another attempt? Because the change request in review needs work: "
        "rework round 2, for failing checks: ci."
    ) in told
