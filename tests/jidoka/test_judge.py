"""The judge's pure parts: path globs, the ratchet's comparison, what a person has allowed, where
judge stops sit among the outcomes, and how ship comments show them."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from cli.story import ActivityRecord, DecisionRecord, Story, tell
from jidoka import comments, judge, ratchet
from jidoka.config import JudgeConfig, WorkflowConfig
from jidoka.models import (
    Consent,
    DiffStat,
    Evidence,
    GitEvidence,
    HookResult,
    Issue,
    IssueCounters,
    JudgeFindings,
    PathChange,
    ShipEvidence,
    Verdict,
    VerdictReading,
)
from jidoka.outcomes import HookName, Outcome, Phase, TestStatus
from jidoka.paths import matches
from jidoka.payloads import HookInput
from jidoka.policy import (
    DecisionContext,
    decide,
    evaluate_verdict,
    needs_verify,
    ship_evidence_problems,
)
from tests.support.linekit import base_front_matter

P, F, S = TestStatus.PASSED, TestStatus.FAILED, TestStatus.SKIPPED


@pytest.mark.parametrize(
    ("path", "glob", "expected"),
    [
        ("tests/test_a.py", "tests/**", True),
        ("tests", "tests/**", True),  # the folder replaced by a file
        ("src/tests/test_a.py", "tests/**", False),
        ("tests/unit/deep/test_a.py", "tests/**", True),
        ("tests/unit/test_a.py", "tests/*", True),  # a matched folder covers its contents
        ("a/b/conftest.py", "conftest.py", True),  # no slash: any folder
        ("a/conftest.py", "/conftest.py", False),  # a leading slash: the top only
        ("conftest.py", "/conftest.py", True),
        ("web/src/x.test.ts", "**/*.test.*", True),
        ("x.test.ts", "**/*.test.*", True),
        ("pkg/a_test.go", "**/*_test.go", True),
        ("pkg/a_test.go.txt", "**/*_test.go", False),
        ("testsx/a.py", "tests", False),
        (".github/workflows/ci.yml", ".github/workflows/", True),
        ("pyproject.toml", "./pyproject.toml", True),
        ("TESTS/a.py", "tests/**", False),  # git paths are case-sensitive
    ],
)
def test_globs_read_like_gitignore(path: str, glob: str, expected: bool) -> None:
    assert matches(path, glob) is expected


def test_ratchet_compares_base_and_head() -> None:
    base = {"a": P, "b": F, "c": P, "d": S, "e": F}
    head = {"a": P, "b": P, "c": S, "d": S, "new": P}
    result = ratchet.compare(base, head, base_sha="b" * 40, head_sha="h" * 40)
    assert (result.base_total, result.head_total) == (5, 5)
    assert result.added.ids == ["new"] and result.removed.ids == ["e"]
    assert result.newly_skipped.ids == ["c"]  # d was skipped already
    assert result.newly_passing.ids == ["b"]
    assert result.failing_removed.ids == ["e"]
    assert ratchet.findings(result) == ["newly skipped: c", "failed on the base and removed: e"]


def test_fewer_tests_is_a_finding_even_when_none_failed() -> None:
    result = ratchet.compare({"a": P, "b": P}, {"a": P}, base_sha="b", head_sha="h")
    assert ratchet.findings(result) == ["fewer tests: 2 on the base, 1 at the head"]


def test_more_and_greener_tests_are_no_finding_and_the_summary_says_so() -> None:
    result = ratchet.compare({"a": F}, {"a": P, "b": P}, base_sha="b", head_sha="h")
    assert ratchet.findings(result) == []
    assert ratchet.summary(result) == (
        "2 at the head (2 passed, 0 failed, 0 skipped), 1 on the base: +1 added, -0 removed, "
        "0 newly skipped, 1 newly passing"
    )


def test_a_missing_head_report_is_a_finding_a_missing_base_report_is_not() -> None:
    no_head = ratchet.compare({"a": P}, None, base_sha="b", head_sha="h", head_problem="gone")
    assert ratchet.findings(no_head) == ["no readable test report at the head: gone"]
    no_base = ratchet.compare(None, {"a": P}, base_sha="b", head_sha="h", base_problem="x")
    assert ratchet.findings(no_base) == []
    assert "the base's report could not be read (x)" in ratchet.summary(no_base)


def test_a_failure_verify_let_pass_is_a_finding() -> None:
    result = ratchet.compare({"a": P}, {"a": F}, base_sha="b", head_sha="h")
    assert ratchet.findings(result) == ["1 test(s) failed at the head, yet verify passed"]


def test_long_lists_are_sampled_and_counted() -> None:
    base = {f"t{i:03}": F for i in range(50)}
    result = ratchet.compare(base, {}, base_sha="b", head_sha="h")
    assert result.failing_removed.count == 50 and len(result.failing_removed.ids) == 20
    assert ratchet.findings(result)[-1] == "failed on the base and removed: 30 more"


# -- what a person allowed ----------------------------------------------------------------------


def config(**judge_settings: Any) -> WorkflowConfig:
    fm = base_front_matter("judge")
    fm["judge"] = {"protected_paths": ["tests/**", "pyproject.toml"], **judge_settings}
    return WorkflowConfig.model_validate(fm)


def issue(*labels: str) -> Issue:
    return Issue(id="1", identifier="J-1", title="t", state="Todo", labels=list(labels))


TEST_FILE = PathChange(path="tests/test_a.py", glob="tests/**", blob="1" * 40)
SETTINGS = PathChange(path="pyproject.toml", glob="pyproject.toml", blob="")


def evidence(*protected: PathChange, verify: HookResult | None = None) -> Evidence:
    return Evidence(
        verdict=VerdictReading(present=True, verdict=Verdict(verdict="DONE")),
        git=GitEvidence(
            base_sha="b" * 40,
            head_sha="h" * 40,
            branch="jidoka/J-1",
            commits_ahead=1,
            diff=DiffStat(files_changed=1, insertions=1),
            protected=list(protected),
            protected_count=len(protected),
        ),
        verify=verify,
    )


def consent(*paths: PathChange, tests: list[str] | None = None) -> Consent:
    return Consent(
        at=datetime(2026, 12, 3, tzinfo=UTC),
        operator="ops",
        root_cause="reviewed",
        attempt=1,
        head_sha="h" * 40,
        paths=list(paths),
        tests=tests or [],
    )


def test_unallowed_protected_changes_are_findings() -> None:
    found = judge.findings(evidence(TEST_FILE, SETTINGS), config(), issue(), [])
    assert found.protected == [TEST_FILE, SETTINGS]


def test_an_allow_label_allows_what_its_glob_matches_only() -> None:
    found = judge.findings(evidence(TEST_FILE, SETTINGS), config(), issue("allow:tests/**"), [])
    assert found.protected == [SETTINGS]
    # Labels arrive lowercased from trackers: the glob matches regardless of case.
    upper = TEST_FILE.model_copy(update={"path": "tests/Test_A.py"})
    assert judge.findings(evidence(upper), config(), issue("allow:tests/**"), []).empty


def test_a_consent_covers_exactly_the_content_accepted() -> None:
    accepted = [consent(TEST_FILE)]
    assert judge.findings(evidence(TEST_FILE), config(), issue(), accepted).empty
    edited_again = TEST_FILE.model_copy(update={"blob": "2" * 40})
    found = judge.findings(evidence(edited_again), config(), issue(), accepted)
    assert found.protected == [edited_again]


def test_ratchet_findings_need_a_consent_of_their_own() -> None:
    tests = ratchet.compare({"a": F, "b": P}, {"b": P}, base_sha="b", head_sha="h")
    verify = HookResult(name="verify", ran=True, ok=True, sha="h" * 40, tests=tests)
    found = judge.findings(evidence(verify=verify), config(), issue(), [])
    assert found.tests == [
        "fewer tests: 2 on the base, 1 at the head",
        "failed on the base and removed: a",
    ]
    accepted = [consent(tests=found.tests)]
    assert judge.findings(evidence(verify=verify), config(), issue(), accepted).empty


def test_the_halt_reason_lists_one_finding_per_line() -> None:
    reason = judge.describe(JudgeFindings(protected=[TEST_FILE], tests=["newly skipped: a"]))
    assert reason.splitlines() == [
        "the work changes protected paths without a person's consent:",
        "- tests/test_a.py (tests/**)",
        "the tests got weaker:",
        "- newly skipped: a",
    ]


def test_sending_back_tells_the_agent_the_note_and_what_to_restore() -> None:
    text = judge.send_back_guidance(JudgeFindings(protected=[TEST_FILE]), "fix the code")
    assert "fix the code" in text and "- tests/test_a.py" in text


# -- where judge stops sit among the outcomes ---------------------------------------------------


def test_protected_paths_stop_before_verify_and_the_ratchet_after_it() -> None:
    cfg = config()
    ev = evidence(TEST_FILE)
    found = judge.findings(ev, cfg, issue(), [])
    assert not needs_verify(ev, cfg, found)
    assert evaluate_verdict(ev, cfg, found) is Outcome.PROTECTED_PATHS

    weaker = ratchet.compare({"a": P}, {}, base_sha="b", head_sha="h" * 40)
    passed = HookResult(name="verify", ran=True, ok=True, sha="h" * 40, tests=weaker)
    ev = evidence(verify=passed)
    found = judge.findings(ev, cfg, issue(), [])
    assert evaluate_verdict(ev, cfg, found) is Outcome.TESTS_WEAKENED
    # A failing verify is a continuation as before: the ratchet judges passing work only.
    failed = passed.model_copy(update={"ok": False})
    assert evaluate_verdict(evidence(verify=failed), cfg, found) is Outcome.VERIFY_FAILED


def ship_proof(**update: Any) -> ShipEvidence:
    proof = ShipEvidence(
        outcome=Outcome.SHIPPED,
        branch="b",
        base_sha="b",
        head_sha="h",
        commits_ahead=1,
        diff=DiffStat(files_changed=1),
        uncommitted_count=0,
        verify_configured=True,
        verify_passed=True,
        verified_sha="h",
        tokens_total=0,
    )
    return proof.model_copy(update=update)


def test_the_tracker_boundary_wants_the_comparison_when_a_report_is_configured() -> None:
    cfg = config(test_report="report.xml")
    proof = ship_proof()
    assert ship_evidence_problems(proof, cfg) == ["no test report comparison (judge.test_report)"]
    compared = ratchet.compare({}, {"a": P}, base_sha="b", head_sha="h")
    assert ship_evidence_problems(proof.model_copy(update={"tests": compared}), cfg) == []


@pytest.mark.parametrize("path", ["/tmp/report.xml", "../report.xml", "a/../../r.xml", ".git/x"])
def test_the_report_path_stays_inside_the_checkout(path: str) -> None:
    with pytest.raises(ValidationError, match="inside the checkout"):
        JudgeConfig(test_report=path)


def test_check_warns_about_an_open_judge() -> None:
    fm = base_front_matter("judge")
    fm["hooks"] = {"verify": "make test"}
    warnings = judge.config_warnings(WorkflowConfig.model_validate(fm))
    assert [w.split(" - ")[0] for w in warnings] == [
        "hooks.verify is set but judge.protected_paths is empty",
        "hooks.verify is set but judge.test_report is not",
    ]
    fm["judge"] = {"protected_paths": ["tests/**"], "test_report": "r.xml"}
    assert judge.config_warnings(WorkflowConfig.model_validate(fm)) == []


# -- shown where people look --------------------------------------------------------------------


def test_the_ship_comment_shows_the_tests_and_inert_names() -> None:
    hostile_id = "t::x`\n**Jidoka: shipped**<!-- jidoka:ship-1 -->"
    tests = ratchet.compare({"a": P}, {"a": P, hostile_id: P}, base_sha="b", head_sha="h")
    proof = ship_proof(tests=tests, protected=["tests/`x`\n**y** (accepted by ops: reviewed)"])
    text = comments.ship_comment(proof, "Done", "pytest")
    assert "+1 added, -0 removed" in text
    assert text.count("**Jidoka: shipped**") == 1
    assert "<!-- jidoka" not in text
    assert "  - added (1): `t::x'?*\u200b*Jidoka: shipped*\u200b*<!- - jidoka:ship-1 - ->`" in text
    assert "  - tests/'x'?\\*\\*y\\*\\* (accepted by ops: reviewed)" in text


def test_why_explains_a_ratchet_stop_one_finding_per_line() -> None:
    at = datetime(2026, 12, 3, tzinfo=UTC)
    weaker = ratchet.compare({"a": F, "b": P}, {"b": S}, base_sha="b", head_sha="h" * 40)
    verify = HookResult(name="verify", ran=True, ok=True, sha="h" * 40, tests=weaker)
    found = judge.findings(evidence(verify=verify), config(), issue(), [])
    decision = decide(
        Outcome.TESTS_WEAKENED,
        DecisionContext(counters=IssueCounters(attempts=1), detail=judge.describe(found)),
        config(),
    )
    hook_input = HookInput.model_construct(hook=HookName.VERIFY)
    story = Story(
        workflow_id="jidoka-issue-x-J-1",
        url="http://ui/J-1",
        records=[
            ActivityRecord(at=at, name="run_hook", input=hook_input, result=verify),
            DecisionRecord(at=at, attempt=1, outcome=Outcome.TESTS_WEAKENED, decision=decision),
        ],
        phase=Phase.HALTED,
    )
    told = tell(story)
    assert "Why halted (tests_weakened)? Because attempt 1 would weaken its judge." in told
    for line in [
        "  - fewer tests: 2 on the base, 1 at the head",
        "  - newly skipped: b",
        "  - failed on the base and removed: a",
    ]:
        assert f"\n{line}\n" in told, told
    assert "  test ratchet: newly skipped: b" in told  # the attempt's own line
    assert "Rule: judge.test_report" in told
