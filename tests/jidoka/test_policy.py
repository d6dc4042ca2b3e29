"""Pure policy, without Temporal: evidence -> outcome -> decision, caps, the transition guard,
candidate selection, reconciliation and the line's guards."""

from __future__ import annotations

import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jidoka import policy
from jidoka.config import WorkflowConfig
from jidoka.models import (
    AgentRunResult,
    BlockerRef,
    DiffStat,
    Evidence,
    GitEvidence,
    HookResult,
    Issue,
    IssueCounters,
    ShipEvidence,
    TokenUsage,
    Verdict,
    VerdictReading,
)
from jidoka.outcomes import AgentStop, DecisionKind, HaltCategory, Outcome, Phase, ReconcileAction
from jidoka.workflow_file import load_workflow
from tests.support.linekit import make_line

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> WorkflowConfig:
    kit = make_line(
        tmp_path_factory.mktemp("policy"),
        {
            "budgets": {"max_attempts": 3, "max_continuations": 2},
            "backoff": {"base_s": 10, "max_s": 300},
        },
    )
    return load_workflow(kit.workflow_md).config


def git(commits: int = 1, files: int = 1, dirty: int = 0, on_branch: bool = True) -> GitEvidence:
    return GitEvidence(
        base_sha="a" * 40,
        head_sha="b" * 40,
        branch="jidoka/T-1",
        commits_ahead=commits,
        diff=DiffStat(files_changed=files, insertions=files),
        uncommitted_paths=[f"f{i}" for i in range(dirty)],
        uncommitted_count=dirty,
        on_branch=on_branch,
    )


def reading(token: str | None = "DONE", error: str | None = None) -> VerdictReading:
    if token is None and error is None:
        return VerdictReading(present=False)
    if error is not None:
        return VerdictReading(present=True, error=error)
    return VerdictReading(present=True, verdict=Verdict(verdict=token or "", questions=["why?"]))


def evidence(
    token: str | None = "DONE",
    *,
    git_facts: GitEvidence | None = None,
    verify: HookResult | None = None,
    error: str | None = None,
) -> Evidence:
    return Evidence(verdict=reading(token, error), git=git_facts or git(), verify=verify)


def agent(stop: AgentStop = AgentStop.EXITED, exit_code: int | None = 0) -> AgentRunResult:
    return AgentRunResult(stop=stop, exit_code=exit_code, usage=TokenUsage(total_tokens=100))


HEAD = "b" * 40
VERIFY_OK = HookResult(name="verify", ran=True, ok=True, exit_code=0, sha=HEAD)
VERIFY_FAIL = HookResult(
    name="verify", ran=True, ok=False, exit_code=1, output_tail="FAILED", sha=HEAD
)
VERIFY_TIMEOUT = HookResult(name="verify", ran=True, ok=False, timed_out=True, sha=HEAD)
VERIFY_OK_ELSEWHERE = HookResult(name="verify", ran=True, ok=True, exit_code=0, sha="c" * 40)


# --------------------------------------------------------------------------------------------
# Evidence -> outcome
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ev", "expected"),
    [
        (evidence(verify=VERIFY_OK), Outcome.SHIPPED),
        (evidence(verify=VERIFY_FAIL), Outcome.VERIFY_FAILED),
        (evidence(verify=VERIFY_TIMEOUT), Outcome.HOOK_TIMEOUT),
        (evidence(verify=None), Outcome.VERIFY_FAILED),  # verify configured but never ran
        # verify passed, but not on the pinned head: it proves nothing about what would ship
        (evidence(verify=VERIFY_OK_ELSEWHERE), Outcome.VERIFY_FAILED),
        (evidence(git_facts=git(commits=0, files=0)), Outcome.NO_PROGRESS),
        (evidence(git_facts=git(commits=2, files=0)), Outcome.NO_PROGRESS),  # commit then revert
        (evidence(git_facts=git(dirty=2), verify=VERIFY_OK), Outcome.UNCOMMITTED_WORK),
        (evidence(git_facts=git(on_branch=False), verify=VERIFY_OK), Outcome.UNCOMMITTED_WORK),
        (evidence("HALT"), Outcome.HALT_REQUESTED),
        (evidence("AWAITING_ANSWERS"), Outcome.AWAITING_ANSWERS),
        (evidence("MAYBE"), Outcome.VERDICT_UNKNOWN),
        (evidence(None), Outcome.VERDICT_MISSING),
        (evidence(error="not valid JSON"), Outcome.VERDICT_INVALID),
    ],
)
def test_verdicts_are_judged_on_evidence(
    config: WorkflowConfig, ev: Evidence, expected: Outcome
) -> None:
    assert policy.classify_attempt(agent(), ev, config) is expected


def test_the_exit_code_never_decides_success(config: WorkflowConfig) -> None:
    # A crash after a proper DONE with commits still ships: evidence, not exit status.
    assert (
        policy.classify_attempt(agent(exit_code=1), evidence(verify=VERIFY_OK), config)
        is Outcome.SHIPPED
    )
    # A clean exit without a verdict is a missing verdict, a crash without one a failure.
    assert (
        policy.classify_attempt(agent(exit_code=0), evidence(None), config)
        is Outcome.VERDICT_MISSING
    )
    assert (
        policy.classify_attempt(agent(exit_code=3), evidence(None), config) is Outcome.AGENT_FAILED
    )


@pytest.mark.parametrize(
    ("stop", "expected"),
    [
        (AgentStop.TOKEN_BUDGET, Outcome.BUDGET_EXCEEDED),
        (AgentStop.FIRST_COMMIT_BUDGET, Outcome.BUDGET_EXCEEDED),
        (AgentStop.ISSUE_WALL_TIME, Outcome.BUDGET_EXCEEDED),
        (AgentStop.PROGRESS_STALL, Outcome.AGENT_STALLED),
        (AgentStop.SILENCE_STALL, Outcome.AGENT_STALLED),
        (AgentStop.WALL_CLOCK, Outcome.AGENT_STALLED),
        (AgentStop.TURN_LIMIT, Outcome.TURN_LIMIT),
        (AgentStop.FAILED, Outcome.AGENT_FAILED),
        (AgentStop.UNAVAILABLE, Outcome.AGENT_UNAVAILABLE),
        (AgentStop.PROMPT_INVALID, Outcome.PROMPT_INVALID),
        (AgentStop.RATE_LIMITED, Outcome.RATE_LIMITED),
        (AgentStop.CANCELLED, Outcome.CANCELLED),
    ],
)
def test_stops_without_a_verdict(
    config: WorkflowConfig, stop: AgentStop, expected: Outcome
) -> None:
    assert policy.classify_attempt(agent(stop, exit_code=None), evidence(None), config) is expected


def test_budget_stops_win_over_a_written_verdict(config: WorkflowConfig) -> None:
    outcome = policy.classify_attempt(
        agent(AgentStop.TOKEN_BUDGET), evidence(verify=VERIFY_OK), config
    )
    assert outcome is Outcome.BUDGET_EXCEEDED


# --------------------------------------------------------------------------------------------
# Outcome -> decision, caps
# --------------------------------------------------------------------------------------------


def test_every_outcome_has_an_explicit_decision_and_only_shipped_ships(
    config: WorkflowConfig,
) -> None:
    for outcome in Outcome:
        decision = policy.decide(
            outcome, policy.DecisionContext(counters=IssueCounters(), verdict_token="DONE"), config
        )
        assert decision.rule, outcome
        assert (decision.kind is DecisionKind.SHIP) == (outcome is Outcome.SHIPPED), outcome
        if decision.kind is DecisionKind.HALT:
            assert decision.halt_category is not None


def simulate(outcomes: list[Outcome], config: WorkflowConfig) -> list[DecisionKind]:
    """Drive counters the way the issue workflow does, until a decision stops the loop."""
    counters = IssueCounters()
    kinds: list[DecisionKind] = []
    for outcome in outcomes:
        counters = policy.count_outcome(counters, outcome)
        decision = policy.decide(
            outcome, policy.DecisionContext(counters=counters, verdict_token="DONE"), config
        )
        counters = policy.count_continuation(counters, decision)
        kinds.append(decision.kind)
        if decision.kind not in (DecisionKind.CONTINUE, DecisionKind.RETRY):
            break
    return kinds


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from([o for o in Outcome if o is not Outcome.SHIPPED]), max_size=40))
def test_no_sequence_without_shipped_ever_ships(outcomes: list[Outcome]) -> None:
    config = _property_config()
    assert DecisionKind.SHIP not in simulate(outcomes, config)


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from(list(Outcome)), min_size=1, max_size=60))
def test_nothing_loops_without_a_cap(outcomes: list[Outcome]) -> None:
    config = _property_config()
    kinds = simulate(outcomes, config)
    budgets = config.budgets
    # Agent failures and infrastructure faults have a cap each; neither is unbounded.
    assert kinds.count(DecisionKind.RETRY) <= (budgets.max_attempts - 1) + (
        budgets.max_infra_failures - 1
    )
    assert kinds.count(DecisionKind.CONTINUE) <= budgets.max_continuations
    bound = budgets.max_attempts + budgets.max_infra_failures + budgets.max_continuations
    assert len(kinds) <= bound


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(list(Outcome)), min_size=1, max_size=60))
def test_infrastructure_faults_never_use_up_the_agents_attempts(outcomes: list[Outcome]) -> None:
    counters = IssueCounters()
    for outcome in outcomes:
        after = policy.count_outcome(counters, outcome)
        if outcome is Outcome.WORKER_LOST:
            assert after.failures == counters.failures
            assert after.infra_failures == counters.infra_failures + 1
        else:
            assert after.infra_failures == counters.infra_failures
        counters = after


def test_lost_workers_retry_then_halt_as_infrastructure(config: WorkflowConfig) -> None:
    kinds = simulate([Outcome.WORKER_LOST] * 20, config)
    assert kinds == [DecisionKind.RETRY] * (config.budgets.max_infra_failures - 1) + [
        DecisionKind.HALT
    ]
    counters = IssueCounters(infra_failures=config.budgets.max_infra_failures)
    decision = policy.decide(Outcome.WORKER_LOST, policy.DecisionContext(counters=counters), config)
    assert decision.halt_category is HaltCategory.INFRASTRUCTURE
    assert decision.rule == "budgets.max_infra_failures"
    # Two lost hosts in a row leave every agent attempt for the agent.
    counters = IssueCounters()
    for _ in range(2):
        counters = policy.count_outcome(counters, Outcome.WORKER_LOST)
    assert counters.failures == 0


def test_a_slot_timeout_or_an_orchestrator_error_halts_with_its_own_category(
    config: WorkflowConfig,
) -> None:
    for outcome, category in (
        (Outcome.SLOT_TIMEOUT, HaltCategory.INFRASTRUCTURE),
        (Outcome.ORCHESTRATOR_ERROR, HaltCategory.ORCHESTRATOR_ERROR),
    ):
        decision = policy.decide(
            outcome, policy.DecisionContext(counters=IssueCounters(), detail="why"), config
        )
        assert decision.kind is DecisionKind.HALT
        assert decision.halt_category is category
        assert "why" in decision.reason


_PROPERTY_CONFIG: list[WorkflowConfig] = []


def _property_config() -> WorkflowConfig:
    if not _PROPERTY_CONFIG:
        folder = Path(tempfile.mkdtemp())
        kit = make_line(folder, {"budgets": {"max_attempts": 3, "max_continuations": 2}})
        _PROPERTY_CONFIG.append(load_workflow(kit.workflow_md).config)
    return _PROPERTY_CONFIG[0]


def test_failures_back_off_exponentially_up_to_the_cap(config: WorkflowConfig) -> None:
    assert [policy.failure_backoff_s(n, config) for n in (1, 2, 3, 6, 10)] == [10, 20, 40, 300, 300]


def test_retry_waits_for_a_rate_limit_reset(config: WorkflowConfig) -> None:
    counters = IssueCounters(failures=1)
    decision = policy.decide(
        Outcome.RATE_LIMITED,
        policy.DecisionContext(counters=counters, rate_limit_delay_s=900),
        config,
    )
    assert decision.kind is DecisionKind.RETRY and decision.delay_s == 900


def test_budget_gate(config: WorkflowConfig) -> None:
    assert policy.budget_gate(IssueCounters(), config) is None
    spent = IssueCounters(tokens=TokenUsage(total_tokens=config.budgets.max_tokens))
    gate = policy.budget_gate(spent, config)
    assert gate is not None and gate.halt_category is HaltCategory.BUDGET_EXCEEDED
    assert gate.rule == "budgets.max_tokens"
    burn = IssueCounters(tokens_before_first_commit=config.budgets.max_tokens_before_first_commit)
    gate = policy.budget_gate(burn, config)
    assert gate is not None and gate.rule == "budgets.max_tokens_before_first_commit"
    # Once a commit exists, tokens spent before it no longer block.
    assert policy.budget_gate(burn.model_copy(update={"has_commit": True}), config) is None


def test_attempt_budget_is_what_is_left(config: WorkflowConfig) -> None:
    counters = IssueCounters(tokens=TokenUsage(total_tokens=1000), tokens_before_first_commit=400)
    budget = policy.attempt_budget(counters, config)
    assert budget.tokens == config.budgets.max_tokens - 1000
    assert budget.tokens_before_first_commit == config.budgets.max_tokens_before_first_commit - 400


# --------------------------------------------------------------------------------------------
# The transition guard
# --------------------------------------------------------------------------------------------


def issue(state: str = "In Progress", labels: list[str] | None = None) -> Issue:
    return Issue(id="T-1", identifier="T-1", title="t", state=state, labels=labels or [])


def ship(**changes: object) -> ShipEvidence:
    base = ShipEvidence(
        outcome=Outcome.SHIPPED,
        branch="jidoka/T-1",
        base_sha="a" * 40,
        head_sha="b" * 40,
        commits_ahead=1,
        diff=DiffStat(files_changed=1, insertions=1),
        uncommitted_count=0,
        verify_configured=True,
        verify_passed=True,
        verified_sha="b" * 40,
        tokens_total=10,
    )
    return base.model_copy(update=changes)


@pytest.mark.parametrize(
    ("current", "expected", "target", "proof", "refusal"),
    [
        (issue(), "In Progress", "Done", ship(), None),
        (issue(), "In Progress", "Done", None, "without shipped evidence"),
        (issue(), "In Progress", "Done", ship(commits_ahead=0), "no commit"),
        (issue(), "In Progress", "Done", ship(verified_sha="c" * 40), "not run on the shipped"),
        (issue(), "In Progress", "Done", ship(diff=DiffStat()), "empty net diff"),
        (issue(), "In Progress", "Done", ship(verify_passed=False), "verify"),
        (issue(), "In Progress", "Done", ship(outcome=Outcome.NO_PROGRESS), "not shipped"),
        (issue("Awaiting Answers"), "Awaiting Answers", "Done", ship(), "paused issue"),
        (issue(labels=["awaiting-answers"]), "In Progress", "Done", ship(), "labelled"),
        (issue("Todo"), "In Progress", "Done", ship(), "changed by someone else"),
        (issue(), "In Progress", "Cancelled", ship(), "closes without shipping"),
        (issue(), "In Progress", "Backlog", None, "not a declared state"),
        (issue(), "In Progress", "Awaiting Answers", None, None),
        (issue("Todo"), "Todo", "In Progress", None, None),
    ],
)
def test_transition_guard(
    config: WorkflowConfig,
    current: Issue,
    expected: str,
    target: str,
    proof: ShipEvidence | None,
    refusal: str | None,
) -> None:
    result = policy.transition_refusal(
        current=current, expected_state=expected, target_state=target, evidence=proof, config=config
    )
    if refusal is None:
        assert result is None
    else:
        assert result is not None and refusal in result


def test_backlog_moves_are_refused(tmp_path: Path) -> None:
    kit = make_line(tmp_path, {"tracker": {"backlog_states": ["Icebox"]}})
    config = load_workflow(kit.workflow_md).config
    refusal = policy.transition_refusal(
        current=issue(),
        expected_state="In Progress",
        target_state="Icebox",
        evidence=None,
        config=config,
    )
    assert refusal is not None and "backlog" in refusal


# --------------------------------------------------------------------------------------------
# Candidate selection and reconciliation
# --------------------------------------------------------------------------------------------


def candidate(
    ident: str,
    *,
    priority: int | None = None,
    age_days: int | None = None,
    state: str = "Todo",
    labels: list[str] | None = None,
    blockers: list[BlockerRef] | None = None,
) -> Issue:
    return Issue(
        id=ident,
        identifier=ident,
        title=ident,
        state=state,
        priority=priority,
        created_at=None if age_days is None else NOW - timedelta(days=age_days),
        labels=labels or [],
        blocked_by=blockers or [],
    )


def test_dispatch_order_is_priority_then_age_then_identifier(config: WorkflowConfig) -> None:
    issues = [
        candidate("C", priority=None, age_days=9),
        candidate("B", priority=2, age_days=1),
        candidate("A", priority=2, age_days=1),
        candidate("D", priority=1, age_days=None),
        candidate("E", priority=2, age_days=5),
    ]
    chosen = policy.select_for_dispatch(issues, [], config)
    assert [i.identifier for i in chosen] == ["D", "E", "A", "B"]  # max_agents=4


def test_slots_blockers_labels_and_claims(config: WorkflowConfig) -> None:
    running = [
        policy.RunningIssue(issue_id="R1", state="In Progress", parked=False),
        policy.RunningIssue(issue_id="R2", state="In Progress", parked=True),
    ]
    issues = [
        candidate("R1"),
        candidate("W", state="In Progress"),  # a working_state claim is never a candidate
        candidate("X", blockers=[BlockerRef(identifier="Y", state="Todo")]),
        candidate("Z", blockers=[BlockerRef(identifier="Y", state="Done")]),
        candidate("U", blockers=[BlockerRef(identifier="Q", state=None)]),
        candidate("K1"),
        candidate("K2"),
        candidate("K3"),
    ]
    chosen = [i.identifier for i in policy.select_for_dispatch(issues, running, config)]
    # One busy agent of four (the parked one holds no slot): three slots, in identifier order.
    assert chosen == ["K1", "K2", "K3"]
    eligible = {i.identifier for i in issues if policy.eligible(i, {"R1", "R2"}, config)}
    # Running, claimed and blocked issues are out; a done or unknown blocker does not block.
    assert eligible == {"K1", "K2", "K3", "U", "Z"}


def test_per_state_limits_and_required_labels(tmp_path: Path) -> None:
    kit = make_line(
        tmp_path,
        {
            "concurrency": {"max_agents": 10, "by_state": {"Todo": 1}},
            "tracker": {"required_labels": ["Agent"]},
        },
    )
    config = load_workflow(kit.workflow_md).config
    issues = [candidate("A", labels=["agent"]), candidate("B", labels=["agent"]), candidate("C")]
    chosen = policy.select_for_dispatch(issues, [], config)
    assert [i.identifier for i in chosen] == ["A"]


@pytest.mark.parametrize(
    ("state", "phase", "action"),
    [
        # Done while Jidoka works on it and has shipped nothing: never a silent release.
        ("Done", Phase.RUNNING_AGENT, ReconcileAction.DONE_WITHOUT_SHIP),
        ("Done", Phase.BACKING_OFF, ReconcileAction.DONE_WITHOUT_SHIP),
        ("done", Phase.WAITING_FOR_SLOT, ReconcileAction.DONE_WITHOUT_SHIP),
        # Waiting on a person, who closed it: theirs to decide.
        ("Done", Phase.PAUSED, ReconcileAction.CANCEL_AND_CLEAN),
        ("Done", Phase.HALTED, ReconcileAction.CANCEL_AND_CLEAN),
        ("Cancelled", Phase.RUNNING_AGENT, ReconcileAction.CANCEL_AND_CLEAN),
        ("Cancelled", Phase.HALTED, ReconcileAction.CANCEL_AND_CLEAN),
        ("Todo", Phase.RUNNING_AGENT, ReconcileAction.KEEP),
        ("Todo", Phase.PAUSED, ReconcileAction.WAKE_PAUSED),
        ("Awaiting Answers", Phase.PAUSED, ReconcileAction.KEEP),
        ("Awaiting Answers", Phase.RUNNING_AGENT, ReconcileAction.CANCEL_KEEP_WORKSPACE),
        ("Somewhere Else", Phase.RUNNING_AGENT, ReconcileAction.CANCEL_KEEP_WORKSPACE),
        (None, Phase.RUNNING_AGENT, ReconcileAction.CANCEL_KEEP_WORKSPACE),
        ("Done", Phase.SHIPPING, ReconcileAction.KEEP),
        ("Done", Phase.SHIPPED, ReconcileAction.KEEP),
    ],
)
def test_reconciliation(
    config: WorkflowConfig, state: str | None, phase: Phase, action: ReconcileAction
) -> None:
    assert policy.reconcile_action(state, phase, config) is action


def test_line_guards(config: WorkflowConfig) -> None:
    recent = [NOW - timedelta(minutes=m) for m in (1, 5, 10)]
    assert policy.loop_detected(recent, NOW, config)  # 3 dispatches within the hour
    assert not policy.loop_detected(recent[:2], NOW, config)
    old = [NOW - timedelta(hours=2)] * 10
    assert not policy.loop_detected(old, NOW, config)
    gate = policy.extend_gate(None, NOW)
    assert policy.extend_gate(gate, NOW - timedelta(minutes=1)) == NOW  # never shortened
    assert policy.extend_gate(gate, NOW + timedelta(minutes=1)) == NOW + timedelta(minutes=1)


@pytest.mark.parametrize(
    ("state", "moving_to", "action"),
    [
        # The issue's own pause, seen by the line before the issue reports PAUSED.
        ("awaiting answers", "Awaiting Answers", ReconcileAction.KEEP),
        ("Done", "Done", ReconcileAction.KEEP),
        # A person's edit to another state is still a person's edit.
        ("Done", "Awaiting Answers", ReconcileAction.DONE_WITHOUT_SHIP),
        ("Somewhere Else", "Awaiting Answers", ReconcileAction.CANCEL_KEEP_WORKSPACE),
        (None, "Awaiting Answers", ReconcileAction.CANCEL_KEEP_WORKSPACE),
    ],
)
def test_reconciliation_keeps_an_issue_moving_itself(
    config: WorkflowConfig, state: str | None, moving_to: str, action: ReconcileAction
) -> None:
    result = policy.reconcile_action(state, Phase.VERIFYING, config, moving_to=moving_to)
    assert result is action


def test_an_attempt_whose_workflow_file_changed_cannot_ship(config: WorkflowConfig) -> None:
    changed = evidence(verify=VERIFY_OK).model_copy(update={"workflow_changed": True})
    outcome = policy.classify_attempt(agent(), changed, config)
    assert outcome is Outcome.WORKFLOW_CHANGED
    decision = policy.decide(outcome, policy.DecisionContext(counters=IssueCounters()), config)
    assert decision.kind is DecisionKind.HALT
    assert decision.halt_category is HaltCategory.WORKFLOW_CHANGED
    # A change that does not matter to a non-ship (a question, a halt) is judged as usual.
    asked = evidence("AWAITING_ANSWERS").model_copy(update={"workflow_changed": True})
    assert policy.classify_attempt(agent(), asked, config) is Outcome.AWAITING_ANSWERS


# ---------------------------------------------------------------------------------------------
# A stopping state waits for the next reconciliation
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "action",
    [
        ReconcileAction.CANCEL_AND_CLEAN,
        ReconcileAction.CANCEL_KEEP_WORKSPACE,
        ReconcileAction.DONE_WITHOUT_SHIP,
    ],
)
def test_a_stopping_state_is_acted_on_when_two_reconciliations_in_a_row_see_it(
    action: ReconcileAction,
) -> None:
    first = policy.confirm_stop(action, "Done", None)
    assert first == policy.Confirmation(act=False, unconfirmed="Done")
    second = policy.confirm_stop(action, "Done", first.unconfirmed)
    assert second == policy.Confirmation(act=True, unconfirmed=None)
    # Another stopping state is a new sighting, not a confirmation.
    assert policy.confirm_stop(action, "Cancelled", "Done").act is False
    # An issue gone from the tracker is a state of its own, confirmed the same way.
    gone = policy.confirm_stop(action, None, None)
    assert gone == policy.Confirmation(act=False, unconfirmed="")
    assert policy.confirm_stop(action, None, gone.unconfirmed).act is True


@pytest.mark.parametrize("action", [ReconcileAction.KEEP, ReconcileAction.WAKE_PAUSED])
def test_keeping_or_waking_acts_at_once_and_forgets_a_sighting(action: ReconcileAction) -> None:
    """A state seen once and gone by the next read (the issue's own report arrived, or a
    person changed their mind) is forgotten: the next stopping sighting starts over."""
    assert policy.confirm_stop(action, "In Progress", "Done") == policy.Confirmation(
        act=True, unconfirmed=None
    )
