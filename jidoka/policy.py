"""Pure policy: evidence -> outcome -> decision, the transition guard, candidate selection,
backoff and the line's guards. No I/O, no clock (``now`` is an argument), no randomness, so the
same function runs in workflows, in activities and in unit tests.

Every ``match`` over a closed set ends in ``assert_never``: pyright proves each case handled.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import assert_never

from jidoka import cost
from jidoka.config import HALT_VERDICT, SandboxMode, WorkflowConfig
from jidoka.models import (
    AgentRunResult,
    AttemptRecord,
    Decision,
    Evidence,
    GitEvidence,
    HookResult,
    Issue,
    IssueCounters,
    JudgeFindings,
    ShipEvidence,
    VerdictReading,
)
from jidoka.outcomes import (
    AgentStop,
    DecisionKind,
    HaltCategory,
    Outcome,
    Phase,
    ReconcileAction,
)


def norm_state(state: str) -> str:
    return state.strip().lower()


def in_states(state: str, states: Iterable[str]) -> bool:
    key = norm_state(state)
    return any(norm_state(s) == key for s in states)


def ready_state(config: WorkflowConfig) -> str | None:
    """The first active state that is not the working state: where an issue waits to be picked
    up (a stale claim is reset there). None when the working state is the only active one."""
    working = config.tracker.working_state
    for state in config.tracker.active_states:
        if working is None or norm_state(state) != norm_state(working):
            return state
    return None


def work_state(config: WorkflowConfig) -> str:
    """Where an issue goes when work on it resumes (after a pause, say)."""
    tracker = config.tracker
    return tracker.working_state or ready_state(config) or tracker.active_states[0]


# ---------------------------------------------------------------------------------------------
# Evidence -> outcome
# ---------------------------------------------------------------------------------------------


def verdict_route(reading: VerdictReading, config: WorkflowConfig) -> str | None:
    """The state a valid, known, non-HALT verdict routes to; None otherwise."""
    if reading.verdict is None or reading.error is not None:
        return None
    return config.verdicts.get(reading.verdict.verdict)


def claims_ship(reading: VerdictReading, config: WorkflowConfig) -> bool:
    route = verdict_route(reading, config)
    return route is not None and norm_state(route) == norm_state(config.tracker.done_state)


def git_gate(git: GitEvidence) -> Outcome | None:
    """The part of the done gate git can answer. None: passed (verify decides the rest)."""
    if git.commits_ahead < 1 or git.diff.empty:
        return Outcome.NO_PROGRESS
    if git.uncommitted_count > 0 or not git.on_branch:
        return Outcome.UNCOMMITTED_WORK
    return None


def rework_gate(evidence: Evidence, config: WorkflowConfig, review_head: str | None) -> bool:
    """A rework round's ship claim whose head is still ``review_head`` (the head in review):
    it added no work, and reshipping it would only restart the review of the same change."""
    return (
        review_head is not None
        and claims_ship(evidence.verdict, config)
        and evidence.git.head_sha == review_head
    )


def needs_verify(
    evidence: Evidence, config: WorkflowConfig, judge: JudgeFindings | None = None
) -> bool:
    """Run ``hooks.verify`` only for a ship claim that passed the git gate and changed no
    protected path without consent."""
    return (
        config.hooks.verify is not None
        and claims_ship(evidence.verdict, config)
        and git_gate(evidence.git) is None
        and not (judge is not None and (judge.protected or judge.protected_more))
    )


def evaluate_verdict(
    evidence: Evidence, config: WorkflowConfig, judge: JudgeFindings | None = None
) -> Outcome:
    """Outcome of an attempt whose agent ended well enough for its verdict to be read.
    ``judge``: what in it weakens the judge without consent (:func:`jidoka.judge.findings`)."""
    reading = evidence.verdict
    if not reading.present:
        return Outcome.VERDICT_MISSING
    if reading.error is not None or reading.verdict is None:
        return Outcome.VERDICT_INVALID
    token = reading.verdict.verdict
    if token == HALT_VERDICT:
        return Outcome.HALT_REQUESTED
    route = config.verdicts.get(token)
    if route is None:
        return Outcome.VERDICT_UNKNOWN
    if in_states(route, config.tracker.paused_states):
        return Outcome.AWAITING_ANSWERS
    if norm_state(route) != norm_state(config.tracker.done_state):
        # Config validation rejects any other route; refuse to guess if one slipped through.
        return Outcome.VERDICT_UNKNOWN
    gate = git_gate(evidence.git)
    if gate is not None:
        return gate
    if judge is not None and (judge.protected or judge.protected_more):
        return Outcome.PROTECTED_PATHS
    if judge is not None and judge.closing:
        return Outcome.CLOSING_KEYWORDS
    outcome = (
        Outcome.SHIPPED
        if config.hooks.verify is None
        else _verify_outcome(evidence.verify, evidence.git.head_sha)
    )
    if outcome is Outcome.SHIPPED and judge is not None and judge.tests:
        return Outcome.TESTS_WEAKENED
    if outcome is Outcome.SHIPPED and evidence.workflow_changed:
        return Outcome.WORKFLOW_CHANGED
    return outcome


def _verify_outcome(verify: HookResult | None, head_sha: str) -> Outcome:
    """``verify`` counts only when it ran on the pinned head (a fresh checkout of it)."""
    if verify is None or not verify.ran or verify.sha != head_sha:
        return Outcome.VERIFY_FAILED
    if verify.timed_out:
        return Outcome.HOOK_TIMEOUT
    return Outcome.SHIPPED if verify.ok else Outcome.VERIFY_FAILED


def classify_attempt(
    agent: AgentRunResult,
    evidence: Evidence | None,
    config: WorkflowConfig,
    judge: JudgeFindings | None = None,
) -> Outcome:
    """One attempt's outcome from the supervisor's report and the gathered evidence.

    The agent's exit status never decides success: a present verdict is always judged on
    evidence; without one, how the process ended says which failure it was.
    """
    verdict_present = evidence is not None and evidence.verdict.present
    match agent.stop:
        case AgentStop.TOKEN_BUDGET | AgentStop.FIRST_COMMIT_BUDGET | AgentStop.ISSUE_WALL_TIME:
            return Outcome.BUDGET_EXCEEDED
        case AgentStop.CANCELLED:
            return Outcome.CANCELLED
        case AgentStop.WORKER_SHUTDOWN:
            return Outcome.WORKER_LOST
        case AgentStop.UNAVAILABLE:
            return Outcome.AGENT_UNAVAILABLE
        case AgentStop.PROMPT_INVALID:
            return Outcome.PROMPT_INVALID
        case AgentStop.SLOT_TIMEOUT:
            return Outcome.SLOT_TIMEOUT
        case AgentStop.RATE_LIMITED:
            return Outcome.RATE_LIMITED
        case AgentStop.EXITED:
            if evidence is not None and verdict_present:
                return evaluate_verdict(evidence, config, judge)
            return Outcome.VERDICT_MISSING if agent.exit_code == 0 else Outcome.AGENT_FAILED
        case AgentStop.FAILED:
            if evidence is not None and verdict_present:
                return evaluate_verdict(evidence, config, judge)
            return Outcome.AGENT_FAILED
        case AgentStop.TURN_LIMIT:
            if evidence is not None and verdict_present:
                return evaluate_verdict(evidence, config, judge)
            return Outcome.TURN_LIMIT
        case AgentStop.PROGRESS_STALL | AgentStop.SILENCE_STALL | AgentStop.WALL_CLOCK:
            if evidence is not None and verdict_present:
                return evaluate_verdict(evidence, config, judge)
            return Outcome.AGENT_STALLED
        case _:
            assert_never(agent.stop)


# ---------------------------------------------------------------------------------------------
# Outcome -> decision
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DecisionContext:
    """Facts the decision needs beyond the outcome. ``counters`` already include the attempt."""

    counters: IssueCounters
    verdict_token: str | None = None
    verdict_route: str | None = None
    guidance: str | None = None
    rate_limit_delay_s: float = 0.0
    agent_stop: AgentStop | None = None
    detail: str = ""
    """What the supervisor or the hook said, appended to halt reasons."""
    hook: str | None = None
    """The hook that failed or timed out, when one did."""


BUDGET_RULES: dict[AgentStop, str] = {
    AgentStop.TOKEN_BUDGET: "budgets.max_tokens",
    AgentStop.FIRST_COMMIT_BUDGET: "budgets.max_tokens_before_first_commit",
    AgentStop.ISSUE_WALL_TIME: "budgets.max_wall_time",
}


JUDGE_STOPS: dict[Outcome, tuple[HaltCategory, str]] = {
    Outcome.PROTECTED_PATHS: (
        HaltCategory.PROTECTED_PATHS,
        "judge.protected_paths (docs/judge.md#protected-paths)",
    ),
    Outcome.TESTS_WEAKENED: (
        HaltCategory.TESTS_WEAKENED,
        "judge.test_report (docs/judge.md#the-test-ratchet)",
    ),
    Outcome.CLOSING_KEYWORDS: (
        HaltCategory.CLOSING_KEYWORDS,
        "closing keywords (docs/judge.md#closing-keywords): only the guarded transition closes",
    ),
}
"""The outcomes that hold work for a person's consent (``decide`` accept), and their halt."""


def _with_detail(reason: str, detail: str) -> str:
    return f"{reason}: {detail}" if detail else reason


def failure_backoff_s(failures: int, config: WorkflowConfig) -> float:
    """The retry delay after ``failures`` failures: ``min(base * 2^(failures-1), max)``."""
    exponent = max(failures - 1, 0)
    return float(min(config.backoff.base_s * (2**exponent), config.backoff.max_s))


def decide(outcome: Outcome, ctx: DecisionContext, config: WorkflowConfig) -> Decision:
    """The one place outcomes become decisions. Only SHIPPED yields SHIP."""
    budgets = config.budgets
    counters = ctx.counters
    match outcome:
        case Outcome.SHIPPED:
            return Decision(
                kind=DecisionKind.SHIP,
                reason="verdict, commits, net diff, clean tree and verify all present",
                rule=f"verdicts.{ctx.verdict_token} -> tracker.done_state",
                target_state=config.tracker.done_state,
            )
        case Outcome.AWAITING_ANSWERS:
            return Decision(
                kind=DecisionKind.PAUSE,
                reason="the agent needs answers from a person",
                rule=f"verdicts.{ctx.verdict_token} -> tracker.paused_states",
                target_state=ctx.verdict_route,
            )
        case Outcome.HALT_REQUESTED:
            return _halt(
                HaltCategory.HALT_PRODUCTION,
                "the agent pulled the andon cord (HALT)",
                "verdict HALT (reserved)",
            )
        case Outcome.VERDICT_MISSING:
            return _halt(
                HaltCategory.VERDICT_MISSING,
                "the agent wrote no verdict: never guess intent",
                "verdict contract (docs/agents.md#the-verdict-file)",
            )
        case Outcome.VERDICT_INVALID:
            return _halt(
                HaltCategory.VERDICT_INVALID,
                "the verdict file is not a valid verdict",
                "verdict contract (docs/agents.md#the-verdict-file)",
            )
        case Outcome.VERDICT_UNKNOWN:
            return _halt(
                HaltCategory.VERDICT_UNKNOWN,
                f"verdict {ctx.verdict_token!r} is not in this line's alphabet",
                "verdicts (closed alphabet, no fallback route)",
            )
        case Outcome.NO_PROGRESS:
            return _halt(
                HaltCategory.NO_PROGRESS,
                "the agent claimed success but there is no commit or no net diff",
                "done gate (docs/workflow-file.md#the-done-gate): commits and a non-empty diff are required",
            )
        case Outcome.UNCOMMITTED_WORK | Outcome.VERIFY_FAILED | Outcome.TURN_LIMIT:
            if counters.continuations < budgets.max_continuations:
                return Decision(
                    kind=DecisionKind.CONTINUE,
                    reason=f"{outcome.value}: continuation "
                    f"{counters.continuations + 1} of {budgets.max_continuations}",
                    rule="budgets.max_continuations",
                    delay_s=float(config.backoff.continuation_s),
                    guidance=ctx.guidance,
                )
            return _halt(
                HaltCategory.BUDGET_EXCEEDED,
                f"{outcome.value} after {counters.continuations} continuations",
                "budgets.max_continuations",
            )
        case Outcome.WORKER_LOST:
            if counters.infra_failures < budgets.max_infra_failures:
                delay = failure_backoff_s(counters.infra_failures, config)
                return Decision(
                    kind=DecisionKind.RETRY,
                    reason=f"worker_lost: infrastructure fault {counters.infra_failures} of "
                    f"{budgets.max_infra_failures} (not charged to the agent), retry in "
                    f"{delay:.0f}s",
                    rule="budgets.max_infra_failures, backoff",
                    delay_s=delay,
                    guidance=ctx.guidance,
                )
            return _halt(
                HaltCategory.INFRASTRUCTURE,
                _with_detail(
                    f"worker_lost: {counters.infra_failures} attempts lost to the infrastructure",
                    ctx.detail,
                ),
                "budgets.max_infra_failures",
            )
        case Outcome.SLOT_TIMEOUT:
            return _halt(
                HaltCategory.INFRASTRUCTURE,
                _with_detail("no agent slot freed on the issue's host in time", ctx.detail),
                "timeouts.slot_wait_s",
            )
        case Outcome.WORKFLOW_CHANGED:
            return _halt(
                HaltCategory.WORKFLOW_CHANGED,
                "WORKFLOW.md changed while the attempt ran: a person confirms the new rules "
                "before this work can ship",
                "judges do not move (docs/trust-boundary.md#judges-that-do-not-move)",
            )
        case Outcome.NO_NEW_WORK:
            return _halt(
                HaltCategory.REVIEW_NO_NEW_WORK,
                "the rework round claimed done without a commit beyond the head in review",
                "review (docs/review.md#rework-rounds): a round must add work",
            )
        case Outcome.PROTECTED_PATHS | Outcome.TESTS_WEAKENED | Outcome.CLOSING_KEYWORDS:
            category, rule = JUDGE_STOPS[outcome]
            return _halt(category, _with_detail("held for a person", ctx.detail), rule)
        case Outcome.ORCHESTRATOR_ERROR:
            return _halt(
                HaltCategory.ORCHESTRATOR_ERROR,
                _with_detail("one of Jidoka's own steps failed unexpectedly", ctx.detail),
                "no silent stop (docs/operations.md#no-silent-stop): an unexpected error halts the issue",
            )
        case (
            Outcome.AGENT_FAILED
            | Outcome.AGENT_STALLED
            | Outcome.HOOK_FAILED
            | Outcome.RATE_LIMITED
            | Outcome.WORKSPACE_FAILED
        ):
            if counters.failures < budgets.max_attempts:
                delay = max(failure_backoff_s(counters.failures, config), ctx.rate_limit_delay_s)
                return Decision(
                    kind=DecisionKind.RETRY,
                    reason=f"{outcome.value}: failure {counters.failures} of "
                    f"{budgets.max_attempts}, retry in {delay:.0f}s",
                    rule="budgets.max_attempts, backoff",
                    delay_s=delay,
                    guidance=ctx.guidance,
                )
            category = _failure_category(outcome)
            return _halt(
                category,
                _with_detail(f"{outcome.value}: {counters.failures} failed attempts", ctx.detail),
                "budgets.max_attempts",
            )
        case Outcome.AGENT_UNAVAILABLE:
            return _halt(
                HaltCategory.AGENT_ERROR,
                _with_detail("the agent cannot run, retrying cannot help", ctx.detail),
                "agent",
            )
        case Outcome.PROMPT_INVALID:
            return _halt(
                HaltCategory.CONFIG_INVALID,
                "the prompt template failed for this issue",
                "WORKFLOW.md body",
            )
        case Outcome.CONFIG_INVALID:
            return _halt(
                HaltCategory.CONFIG_INVALID,
                "a setting cannot be used on this worker (e.g. an unset $VAR)",
                "WORKFLOW.md front matter",
            )
        case Outcome.HOOK_TIMEOUT:
            hook = ctx.hook or "a hook"
            rule = "hooks.verify_timeout_s" if ctx.hook == "verify" else "hooks.timeout_s"
            return _halt(
                HaltCategory.HOOK_TIMEOUT,
                f"{hook} timed out; the line stops, the work is kept and nothing is marked exhausted",
                rule,
            )
        case Outcome.BUDGET_EXCEEDED:
            rule = BUDGET_RULES.get(ctx.agent_stop, "budgets") if ctx.agent_stop else "budgets"
            if ctx.agent_stop is AgentStop.TOKEN_BUDGET and money_binds(ctx.counters, config):
                rule = "budgets.max_cost"
            return _halt(
                HaltCategory.BUDGET_EXCEEDED,
                _with_detail("a budget was exhausted mid-run", ctx.detail),
                rule,
            )
        case Outcome.CANCELLED:
            return Decision(
                kind=DecisionKind.RELEASE,
                reason="cancelled (reconciliation or operator): work preserved",
                rule="reconciliation (docs/architecture.md#the-lines-tick)",
            )
        case _:
            assert_never(outcome)


def _failure_category(outcome: Outcome) -> HaltCategory:
    if outcome is Outcome.HOOK_FAILED:
        return HaltCategory.HOOK_FAILED
    if outcome is Outcome.WORKSPACE_FAILED:
        return HaltCategory.WORKSPACE_ERROR
    return HaltCategory.AGENT_ERROR


def _halt(category: HaltCategory, reason: str, rule: str) -> Decision:
    return Decision(kind=DecisionKind.HALT, reason=reason, rule=rule, halt_category=category)


def budget_gate(counters: IssueCounters, config: WorkflowConfig) -> Decision | None:
    """Checked before every attempt: a halt when no budget is left to start one."""
    budgets = config.budgets
    if counters.tokens.total_tokens >= budgets.max_tokens:
        return _halt(
            HaltCategory.BUDGET_EXCEEDED,
            f"{counters.tokens.total_tokens} tokens used of {budgets.max_tokens}",
            "budgets.max_tokens",
        )
    if (
        not counters.has_commit
        and counters.tokens_before_first_commit >= budgets.max_tokens_before_first_commit
    ):
        return _halt(
            HaltCategory.BUDGET_EXCEEDED,
            f"{counters.tokens_before_first_commit} tokens spent without a first commit "
            f"(cap {budgets.max_tokens_before_first_commit})",
            "budgets.max_tokens_before_first_commit",
        )
    if counters.agent_seconds >= config.max_wall_time_s():
        return _halt(
            HaltCategory.BUDGET_EXCEEDED,
            f"{counters.agent_seconds:.0f}s of agent time used of {config.max_wall_time_s()}s",
            "budgets.max_wall_time",
        )
    if cost.cost_cap_reached(counters.cost, budgets.max_cost):
        currency = config.pricing.currency if config.pricing is not None else "USD"
        return _halt(
            HaltCategory.BUDGET_EXCEEDED,
            f"{cost.money_text(counters.cost, currency)} spent of "
            f"{cost.money_text(budgets.max_cost, currency)}",
            "budgets.max_cost",
        )
    return None


@dataclass(frozen=True)
class AttemptBudget:
    """What one attempt may still spend; the supervisor enforces it mid-run."""

    tokens: int
    tokens_before_first_commit: int | None
    """None once the branch has a commit: that guard no longer applies."""
    wall_s: float
    max_turns: int


def attempt_budget(counters: IssueCounters, config: WorkflowConfig) -> AttemptBudget:
    budgets = config.budgets
    first_commit_left = (
        None
        if counters.has_commit
        else max(budgets.max_tokens_before_first_commit - counters.tokens_before_first_commit, 0)
    )
    issue_wall_left = max(config.max_wall_time_s() - counters.agent_seconds, 0.0)
    tokens_left = max(budgets.max_tokens - counters.tokens.total_tokens, 0)
    money_tokens = money_token_cap(counters, config)
    return AttemptBudget(
        tokens=tokens_left if money_tokens is None else min(tokens_left, money_tokens),
        tokens_before_first_commit=first_commit_left,
        wall_s=min(float(config.agent.turn_timeout_s), issue_wall_left),
        max_turns=budgets.max_turns,
    )


def money_token_cap(counters: IssueCounters, config: WorkflowConfig) -> int | None:
    """The tokens ``budgets.max_cost`` still pays for, each priced at the model's dearest
    kind, so the supervisor can stop an attempt mid-run before it overspends; None without a
    money budget or a price."""
    budgets = config.budgets
    if budgets.max_cost is None:
        return None
    prices = cost.prices_for(config.pricing, config.agent_model())
    if prices is None:
        return None
    dearest = max(prices.input, prices.output, prices.cached_input or 0.0)
    if dearest <= 0:
        return None
    left = max(budgets.max_cost - counters.cost, 0.0)
    return int(left * cost.PER / dearest)


def money_binds(counters: IssueCounters, config: WorkflowConfig) -> bool:
    """Whether ``budgets.max_cost`` is the tighter of the two token caps an attempt gets, so
    a token-budget stop is named after the money."""
    money_tokens = money_token_cap(counters, config)
    tokens_left = max(config.budgets.max_tokens - counters.tokens.total_tokens, 0)
    return money_tokens is not None and money_tokens < tokens_left


def attempt_cost(agent: AgentRunResult, config: WorkflowConfig) -> float | None:
    """What the attempt cost; None when unknown (no price, no usage reported)."""
    return cost.attempt_cost(
        agent.usage, agent.usage_reported, config.pricing, config.agent_model()
    )


def record_usage(
    counters: IssueCounters, agent: AgentRunResult, spent: float | None = None
) -> IssueCounters:
    """Counters after an attempt's tokens, money, turns and time (the attempt itself counted
    before). ``spent`` None: the attempt's cost is unknown, and the total becomes a lower
    bound."""
    return counters.model_copy(
        update={
            "cost": round(counters.cost + (spent or 0.0), 9),
            "cost_unknown": counters.cost_unknown + (1 if spent is None else 0),
            "tokens": counters.tokens.plus(agent.usage),
            "tokens_before_first_commit": counters.tokens_before_first_commit
            + agent.tokens_before_first_commit,
            "turns": counters.turns + agent.turns,
            "agent_seconds": counters.agent_seconds + agent.duration_s,
            "has_commit": counters.has_commit or agent.first_commit_seen,
        }
    )


def count_outcome(counters: IssueCounters, outcome: Outcome) -> IssueCounters:
    """Charge an outcome to the cap it belongs to."""
    match outcome:
        case (
            Outcome.AGENT_FAILED
            | Outcome.AGENT_STALLED
            | Outcome.HOOK_FAILED
            | Outcome.RATE_LIMITED
            | Outcome.WORKSPACE_FAILED
        ):
            return counters.model_copy(update={"failures": counters.failures + 1})
        case Outcome.WORKER_LOST:
            return counters.model_copy(update={"infra_failures": counters.infra_failures + 1})
        case Outcome.UNCOMMITTED_WORK | Outcome.VERIFY_FAILED | Outcome.TURN_LIMIT:
            return counters
        case (
            Outcome.SHIPPED
            | Outcome.NO_PROGRESS
            | Outcome.VERDICT_MISSING
            | Outcome.VERDICT_INVALID
            | Outcome.VERDICT_UNKNOWN
            | Outcome.HALT_REQUESTED
            | Outcome.AWAITING_ANSWERS
            | Outcome.AGENT_UNAVAILABLE
            | Outcome.HOOK_TIMEOUT
            | Outcome.PROMPT_INVALID
            | Outcome.CONFIG_INVALID
            | Outcome.BUDGET_EXCEEDED
            | Outcome.SLOT_TIMEOUT
            | Outcome.ORCHESTRATOR_ERROR
            | Outcome.WORKFLOW_CHANGED
            | Outcome.PROTECTED_PATHS
            | Outcome.TESTS_WEAKENED
            | Outcome.CLOSING_KEYWORDS
            | Outcome.NO_NEW_WORK
            | Outcome.CANCELLED
        ):
            return counters
        case _:
            assert_never(outcome)


def count_continuation(counters: IssueCounters, decision: Decision) -> IssueCounters:
    if decision.kind is DecisionKind.CONTINUE:
        return counters.model_copy(update={"continuations": counters.continuations + 1})
    return counters


def continuation_guidance(outcome: Outcome, evidence: Evidence | None) -> str | None:
    """What the next attempt is told about why it runs (built from evidence, not claims)."""
    match outcome:
        case Outcome.VERIFY_FAILED:
            output = evidence.verify.output_tail if evidence and evidence.verify else ""
            return (
                "Your previous attempt claimed the work was done, but the project's verify "
                "command failed. Fix the cause, commit, and write the verdict again.\n\n"
                "Verify output (tail):\n```\n" + output + "\n```"
            )
        case Outcome.UNCOMMITTED_WORK:
            paths = evidence.git.uncommitted_paths if evidence else []
            listed = "\n".join(f"- {p}" for p in paths[:20])
            branch = evidence.git.branch if evidence else "the work branch"
            return (
                "Your previous attempt claimed the work was done, but the working tree was not "
                f"clean or not on `{branch}`. Commit what belongs to the change on that branch, "
                "remove what does not, then write the verdict again.\n" + listed
            )
        case Outcome.TURN_LIMIT:
            return (
                "Your previous session reached its turn limit before writing a verdict. "
                "Continue from the current state of the branch; finish and write the verdict."
            )
        case (
            Outcome.AGENT_FAILED
            | Outcome.AGENT_STALLED
            | Outcome.WORKER_LOST
            | Outcome.HOOK_FAILED
            | Outcome.RATE_LIMITED
            | Outcome.WORKSPACE_FAILED
        ):
            return (
                f"The previous attempt ended with {outcome.value}. Check the state of the "
                "branch and continue; write the verdict when done."
            )
        case (
            Outcome.SHIPPED
            | Outcome.NO_PROGRESS
            | Outcome.VERDICT_MISSING
            | Outcome.VERDICT_INVALID
            | Outcome.VERDICT_UNKNOWN
            | Outcome.HALT_REQUESTED
            | Outcome.AWAITING_ANSWERS
            | Outcome.AGENT_UNAVAILABLE
            | Outcome.HOOK_TIMEOUT
            | Outcome.PROMPT_INVALID
            | Outcome.CONFIG_INVALID
            | Outcome.BUDGET_EXCEEDED
            | Outcome.SLOT_TIMEOUT
            | Outcome.ORCHESTRATOR_ERROR
            | Outcome.WORKFLOW_CHANGED
            | Outcome.PROTECTED_PATHS
            | Outcome.TESTS_WEAKENED
            | Outcome.CLOSING_KEYWORDS
            | Outcome.NO_NEW_WORK
            | Outcome.CANCELLED
        ):
            return None
        case _:
            assert_never(outcome)


# ---------------------------------------------------------------------------------------------
# What a decision carries: its wording, a halt's facts, a ship's proof
# ---------------------------------------------------------------------------------------------

Facts = dict[str, str | int | bool | None]


def failed_hook(record: AttemptRecord, evidence: Evidence | None) -> str | None:
    """The hook that failed or timed out in this attempt, for the decision's wording."""
    if evidence is not None and evidence.verify is not None and not evidence.verify.ok:
        return "verify"
    if record.hook_failure:
        return record.hook_failure.split(":", 1)[0]
    return None


def halt_reason(decision: Decision, outcome: Outcome, evidence: Evidence | None) -> str:
    """The agent's own words when it pulled the cord; the decision's otherwise."""
    if outcome is Outcome.HALT_REQUESTED and evidence and evidence.verdict.verdict:
        return evidence.verdict.verdict.halt_reason or decision.reason
    return decision.reason


def halt_facts(
    decision: Decision, outcome: Outcome, evidence: Evidence | None, agent: AgentRunResult | None
) -> Facts:
    """What a halt record keeps of the attempt that led to it."""
    facts: Facts = {"outcome": outcome.value, "rule": decision.rule}
    if agent is not None:
        facts["agent_stop"] = agent.stop.value
        facts["tokens"] = agent.usage.total_tokens
    if evidence is not None:
        facts["commits_ahead"] = evidence.git.commits_ahead
        facts["files_changed"] = evidence.git.diff.files_changed
    return facts


def ship_evidence(
    evidence: Evidence,
    config: WorkflowConfig,
    counters: IssueCounters,
    protected: Sequence[str] = (),
) -> ShipEvidence:
    """The proof a ship carries to the tracker (checked again at the tracker boundary).
    ``protected``: the protected paths it changes, each with who allowed it."""
    verdict = evidence.verdict.verdict
    priced = config.pricing is not None
    return ShipEvidence(
        outcome=Outcome.SHIPPED,
        branch=evidence.git.branch,
        base_sha=evidence.git.base_sha,
        head_sha=evidence.git.head_sha,
        commits_ahead=evidence.git.commits_ahead,
        diff=evidence.git.diff,
        uncommitted_count=evidence.git.uncommitted_count,
        verify_configured=config.hooks.verify is not None,
        verify_passed=evidence.verify.ok if evidence.verify is not None else None,
        verified_sha=evidence.verify.sha if evidence.verify is not None else None,
        tokens_total=counters.tokens.total_tokens,
        cost=counters.cost if priced else None,
        cost_unknown_attempts=counters.cost_unknown if priced else 0,
        currency=config.pricing.currency if config.pricing is not None else None,
        summary=verdict.summary if verdict else "",
        protected=list(protected),
        tests=evidence.verify.tests if evidence.verify is not None else None,
    )


# ---------------------------------------------------------------------------------------------
# The tracker-write boundary (poka-yoke)
# ---------------------------------------------------------------------------------------------


def ship_evidence_problems(evidence: ShipEvidence | None, config: WorkflowConfig) -> list[str]:
    """Everything missing from a claimed proof of shipping. Empty: the proof holds."""
    if evidence is None:
        return ["no evidence attached"]
    problems: list[str] = []
    if evidence.outcome is not Outcome.SHIPPED:
        problems.append(f"outcome is {evidence.outcome.value}, not shipped")
    if evidence.commits_ahead < 1:
        problems.append("no commit beyond the base")
    if evidence.diff.empty:
        problems.append("empty net diff")
    if evidence.uncommitted_count > 0:
        problems.append(f"{evidence.uncommitted_count} uncommitted path(s)")
    if config.hooks.verify is not None and evidence.verify_passed is not True:
        problems.append("hooks.verify did not pass")
    if config.hooks.verify is not None and evidence.verified_sha != evidence.head_sha:
        problems.append("hooks.verify did not run on the shipped commit")
    if config.hooks.verify is not None and config.judge.test_report and evidence.tests is None:
        problems.append("no test report comparison (judge.test_report)")
    return problems


def transition_refusal(
    *,
    current: Issue,
    expected_state: str,
    target_state: str,
    evidence: ShipEvidence | None,
    config: WorkflowConfig,
) -> str | None:
    """Why a state transition must not happen, or None when it may. Pure; the tracker write
    activity applies it after reading the issue's live state (compare-and-set)."""
    tracker = config.tracker
    declared = (
        list(tracker.active_states)
        + list(tracker.paused_states)
        + list(tracker.terminal_states)
        + list(tracker.backlog_states)
        + [tracker.done_state]
        + ([config.review.state] if config.review is not None else [])
    )
    if not in_states(target_state, declared):
        return f"'{target_state}' is not a declared state"
    if in_states(target_state, tracker.backlog_states):
        return f"'{target_state}' is a backlog state: only operators move issues there"
    if norm_state(current.state) != norm_state(expected_state):
        return (
            f"expected the issue in '{expected_state}' but it is in '{current.state}' "
            "(changed by someone else): refusing to overwrite"
        )
    closing = norm_state(target_state) == norm_state(tracker.done_state) or in_states(
        target_state, tracker.terminal_states
    )
    if not closing:
        return None
    if in_states(current.state, tracker.paused_states):
        return f"refusing to close a paused issue (state '{current.state}')"
    paused_labels = {label.lower() for label in tracker.paused_labels}
    flagged = sorted(paused_labels.intersection(label.lower() for label in current.labels))
    if flagged:
        return f"refusing to close an issue labelled {', '.join(flagged)}"
    if norm_state(target_state) != norm_state(tracker.done_state):
        return f"'{target_state}' closes without shipping: only the done state is ever written"
    problems = ship_evidence_problems(evidence, config)
    if problems:
        return "refusing to close without shipped evidence: " + "; ".join(problems)
    return None


# ---------------------------------------------------------------------------------------------
# Candidate selection (docs/architecture.md#the-lines-tick, step 4)
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunningIssue:
    issue_id: str
    state: str
    parked: bool
    """Paused or halted: waits on a human and holds no agent slot."""


def sort_candidates(issues: Iterable[Issue]) -> list[Issue]:
    """Priority ascending (none last), oldest first (none last), identifier."""
    return sorted(
        issues,
        key=lambda i: (
            i.priority is None,
            i.priority if i.priority is not None else 0,
            i.created_at is None,
            i.created_at.timestamp() if i.created_at is not None else 0.0,
            i.identifier,
        ),
    )


def blocked(issue: Issue, config: WorkflowConfig) -> bool:
    """A blocker known to be in a non-terminal state blocks dispatch.

    Blockers are best effort: one whose state the tracker did not report (a closed GitHub
    issue outside the page, a deleted board file) does not block, or it would block forever.
    """
    closed = [*config.tracker.terminal_states, config.tracker.done_state]
    return any(
        ref.state is not None and not in_states(ref.state, closed) for ref in issue.blocked_by
    )


def eligible(issue: Issue, running_ids: set[str], config: WorkflowConfig) -> bool:
    tracker = config.tracker
    if not (issue.id and issue.identifier and issue.title and issue.state):
        return False
    if not in_states(issue.state, tracker.active_states) or in_states(
        issue.state, tracker.terminal_states
    ):
        return False
    if tracker.working_state is not None and norm_state(issue.state) == norm_state(
        tracker.working_state
    ):
        return False
    if issue.id in running_ids:
        return False
    labels = {label.lower() for label in issue.labels}
    if any(required.lower() not in labels for required in tracker.required_labels):
        return False
    return not blocked(issue, config)


def select_for_dispatch(
    candidates: Sequence[Issue], running: Sequence[RunningIssue], config: WorkflowConfig
) -> list[Issue]:
    """Eligible candidates in dispatch order, within global and per-state slots."""
    busy = [r for r in running if not r.parked]
    running_ids = {r.issue_id for r in running}
    slots = max(config.concurrency.max_agents - len(busy), 0)
    per_state: dict[str, int] = {}
    for entry in busy:
        key = norm_state(entry.state)
        per_state[key] = per_state.get(key, 0) + 1
    limits = {norm_state(k): v for k, v in config.concurrency.by_state.items()}
    chosen: list[Issue] = []
    for issue in sort_candidates(candidates):
        if slots <= 0:
            break
        if not eligible(issue, running_ids, config):
            continue
        key = norm_state(issue.state)
        limit = limits.get(key)
        if limit is not None and per_state.get(key, 0) >= limit:
            continue
        chosen.append(issue)
        running_ids.add(issue.id)
        slots -= 1
        per_state[key] = per_state.get(key, 0) + 1
    return chosen


# ---------------------------------------------------------------------------------------------
# Reconciliation and the line's guards (docs/architecture.md#the-lines-tick)
# ---------------------------------------------------------------------------------------------


def reconcile_action(
    tracker_state: str | None,
    phase: Phase,
    config: WorkflowConfig,
    *,
    moving_to: str | None = None,
) -> ReconcileAction:
    """What the line does with a running issue given its live tracker state.

    ``moving_to`` is the state the issue said it is moving itself to: seeing it is the issue's
    own doing (a pause, a ship) arriving before the issue's next report, not a person's edit."""
    tracker = config.tracker
    if phase.is_final or phase in (Phase.SHIPPING,):
        return ReconcileAction.KEEP
    if phase is Phase.IN_REVIEW:
        # Every state is the issue's to read now: done is a merge on the local board, a
        # terminal state a closed request, an active one a person asking for a rework round.
        return ReconcileAction.REVIEW_WATCHED
    if (
        tracker_state is not None
        and moving_to is not None
        and norm_state(tracker_state) == norm_state(moving_to)
    ):
        return ReconcileAction.KEEP
    if tracker_state is None:
        return ReconcileAction.CANCEL_KEEP_WORKSPACE
    done = norm_state(tracker_state) == norm_state(tracker.done_state)
    if done and not phase.is_parked:
        # Done with no ship of ours, while an attempt was under way: someone or something
        # (an agent with the tracker's token) closed it without proof.
        return ReconcileAction.DONE_WITHOUT_SHIP
    if done or in_states(tracker_state, tracker.terminal_states):
        return ReconcileAction.CANCEL_AND_CLEAN
    if in_states(tracker_state, tracker.active_states):
        return ReconcileAction.WAKE_PAUSED if phase is Phase.PAUSED else ReconcileAction.KEEP
    if in_states(tracker_state, tracker.paused_states) and phase is Phase.PAUSED:
        return ReconcileAction.KEEP
    return ReconcileAction.CANCEL_KEEP_WORKSPACE


@dataclass(frozen=True)
class Confirmation:
    act: bool
    """Act on the reconciliation's action now."""
    unconfirmed: str | None
    """What the issue's entry keeps for the next reconciliation to confirm."""


def confirm_stop(
    action: ReconcileAction, tracker_state: str | None, unconfirmed: str | None
) -> Confirmation:
    """Whether a reconciliation acts now. Keeping an issue or waking a paused one, yes. A state
    that would stop it (cancel, release, done without a ship) only when the previous
    reconciliation saw the same state: the line reads the tracker inside its own workflow
    task, so the issue's report of its own move can still be on its way while the read already
    sees the move. ``unconfirmed`` is what the previous one saw ("" for an issue gone from the
    tracker)."""
    match action:
        case ReconcileAction.KEEP | ReconcileAction.WAKE_PAUSED | ReconcileAction.REVIEW_WATCHED:
            return Confirmation(act=True, unconfirmed=None)
        case (
            ReconcileAction.CANCEL_AND_CLEAN
            | ReconcileAction.CANCEL_KEEP_WORKSPACE
            | ReconcileAction.DONE_WITHOUT_SHIP
        ):
            seen = tracker_state if tracker_state is not None else ""
            if unconfirmed == seen:
                return Confirmation(act=True, unconfirmed=None)
            return Confirmation(act=False, unconfirmed=seen)
        case _:
            assert_never(action)


def dispatches_in_window(times: Sequence[datetime], now: datetime, window_s: int) -> int:
    start = now - timedelta(seconds=window_s)
    return sum(1 for t in times if t > start)


def loop_detected(times: Sequence[datetime], now: datetime, config: WorkflowConfig) -> bool:
    """True when dispatching once more would exceed ``guards.loop.max_dispatches``."""
    guard = config.guards.loop
    return dispatches_in_window(times, now, guard.window_s) >= guard.max_dispatches


def fleet_tokens_last_hour(ledger: Iterable[tuple[datetime, int]], now: datetime) -> int:
    start = now - timedelta(hours=1)
    return sum(tokens for at, tokens in ledger if at > start)


def quota_wall(
    ledger: Iterable[tuple[datetime, int]], now: datetime, config: WorkflowConfig
) -> bool:
    cap = config.budgets.fleet.tokens_per_hour
    return cap is not None and fleet_tokens_last_hour(ledger, now) >= cap


def extend_gate(current: datetime | None, resets_at: datetime | None) -> datetime | None:
    """The rate-limit gate: the latest deadline wins; a gate is never shortened."""
    if resets_at is None:
        return current
    if current is None or resets_at > current:
        return resets_at
    return current


def config_risks(config: WorkflowConfig) -> list[str]:
    """What this WORKFLOW.md lets an agent reach that the default would not: shown by
    ``jidoka check`` and the line's status, so a weaker boundary is never a silent one."""
    sandbox = config.sandbox
    match sandbox.mode:
        case SandboxMode.NONE:
            return [
                "sandbox: none - agents and hooks run as the worker's user, unconfined: they "
                "can read WORKFLOW.md, the board, other workspaces and the worker's state, and "
                "see the worker's processes"
            ]
        case SandboxMode.BWRAP:
            risks: list[str] = []
            if config.sandbox_network():
                risks.append(
                    "sandbox network on - the agent can reach whatever this host can, local "
                    "services (the embedded Temporal server) included"
                )
            if sandbox.writable:
                risks.append(
                    "sandbox.writable - every agent of the line can change "
                    + ", ".join(sandbox.writable)
                )
            return risks
        case _:
            assert_never(sandbox.mode)
