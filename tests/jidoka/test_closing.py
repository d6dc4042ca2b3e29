"""Closing keywords: an agent must not get other issues closed by the forge (``Fixes #12`` in a
commit message or in a text Jidoka writes lands on the default branch and closes #12, behind
the guarded transition and without evidence)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from jidoka import closing, comments, judge, policy
from jidoka.models import (
    Consent,
    DiffStat,
    Evidence,
    GitEvidence,
    Issue,
    VerdictReading,
)
from jidoka.outcomes import JUDGE_STOP_CATEGORIES, Outcome
from tests.jidoka.test_judge import config, ship_proof


@pytest.mark.parametrize(
    ("text", "found"),
    [
        ("Fixes #12", ["#12"]),
        ("fix #12", ["#12"]),
        ("CLOSED: #3", ["#3"]),
        ("closes: acme/app#3 and #4", ["acme/app#3", "#4"]),
        ("Closes issue #5, #6", ["#5", "#6"]),
        ("Resolves ENG-12", ["ENG-12"]),
        ("Implemented https://github.com/a/b/issues/7", ["https://github.com/a/b/issues/7"]),
        ("Fixing https://gitlab.com/g/p/-/issues/8", ["https://gitlab.com/g/p/-/issues/8"]),
        ("resolving group/sub/project#9", ["group/sub/project#9"]),
        # Not closing: no keyword before the reference, or not a keyword at all.
        ("Fix rounding (#12)", []),
        ("See #12; prefixed #3; fixture #9; closet #4", []),
        ("resolves eng-12", []),  # a Jira key is upper case
        ("Closes the file", []),
    ],
)
def test_closing_references_are_found_as_the_forges_read_them(text: str, found: list[str]) -> None:
    assert closing.references(text) == found


def test_references_are_bounded_and_counted_once() -> None:
    text = " ".join(f"Fixes #{n}" for n in range(100)) + " Fixes #1"
    found = closing.references(text)
    assert len(found) == closing.MAX_REFERENCES and len(set(found)) == len(found)


@pytest.mark.parametrize(
    ("reference", "identifier", "url", "own"),
    [
        ("#12", "widgets#12", None, True),
        ("#13", "widgets#12", None, False),
        ("acme/widgets#12", "widgets#12", None, True),
        ("acme/other#12", "widgets#12", None, False),
        ("https://github.com/acme/widgets/issues/12", "widgets#12", None, True),
        ("https://github.com/acme/widgets/issues/13", "widgets#12", None, False),
        ("ENG-12", "ENG-12", None, True),
        ("ENG-13", "ENG-12", None, False),
        ("#12", "ENG-12", None, False),  # on a Jira line, #12 is the repository's issue 12
        ("https://x.example/browse/ENG-12", "ENG-12", "https://x.example/browse/ENG-12", True),
        ("#1", None, None, False),
    ],
)
def test_only_the_issue_worked_on_may_be_named(
    reference: str, identifier: str | None, url: str | None, own: bool
) -> None:
    assert closing.refers_to(reference, identifier, url) is own


def test_inert_text_reads_the_same_and_closes_nothing() -> None:
    text = "Fixes #1, closes #2 and Resolves ENG-7. Fixed the bug; fixes\n#3."
    made = closing.inert(text)
    assert made.replace(closing.ZERO_WIDTH, "") == text
    assert closing.references(made) == []
    assert "Fixed the bug" in made  # a keyword that names no issue is left as written


def test_what_jidoka_writes_for_the_agent_closes_nothing() -> None:
    proof = ship_proof(summary="Done. Fixes #1, closes acme/widgets#2, resolves ENG-7.")
    body = comments.ship_comment(proof, "Done", "pytest")
    assert "Done." in body and closing.references(body) == []


def evidence(*refs: str) -> Evidence:
    return Evidence(
        verdict=VerdictReading(present=True),
        git=GitEvidence(
            base_sha="a" * 40,
            head_sha="b" * 40,
            branch="jidoka/widgets-12",
            commits_ahead=1,
            diff=DiffStat(files_changed=1),
            closing=list(refs),
        ),
    )


def issue(identifier: str) -> Issue:
    return Issue(id="12", identifier=identifier, title="t", state="Todo")


def test_the_judge_holds_work_that_closes_other_issues_until_a_person_consents() -> None:
    cfg = config()
    found = judge.findings(evidence("#12", "#13", "ENG-7"), cfg, issue("widgets#12"), [])
    assert found.closing == ["#13", "ENG-7"] and not found.empty
    assert "- #13" in judge.describe(found) and "closing keyword" in judge.describe(found)
    assert "Reword those commits" in judge.send_back_guidance(found, None)
    consent = Consent(
        at=datetime(2026, 12, 3, tzinfo=UTC),
        operator="ops",
        root_cause="#13 is this work's duplicate",
        attempt=1,
        head_sha="b" * 40,
        closing=["#13", "ENG-7"],
    )
    assert judge.findings(evidence("#13", "ENG-7"), cfg, issue("widgets#12"), [consent]).empty
    # Its own issue, named by the agent, is no finding.
    assert judge.findings(evidence("#12"), cfg, issue("widgets#12"), []).empty


def test_closing_keywords_are_a_judge_stop_like_the_others() -> None:
    assert Outcome.CLOSING_KEYWORDS in policy.JUDGE_STOPS
    assert {category for category, _ in policy.JUDGE_STOPS.values()} == JUDGE_STOP_CATEGORIES
