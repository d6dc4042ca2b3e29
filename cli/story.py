"""The five whys: an issue's history, told as the chain of attempts, evidence and decisions that
led to where it is, ending at the rule that decided. Pure: the CLI decodes the history into
these records; this module only tells the story (and is tested without Temporal)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from pydantic import BaseModel

from jidoka import ratchet
from jidoka.models import (
    AgentRunResult,
    Decision,
    Evidence,
    HookResult,
    Issue,
    IssueCounters,
    WorkspaceInfo,
)
from jidoka.outcomes import DecisionKind, Outcome, Phase
from jidoka.payloads import (
    AnswerRequest,
    CancelRequest,
    DecideRequest,
    HaltRequest,
    HookInput,
    IssueResult,
    PreserveResult,
    PushResult,
    ResumeRequest,
    TransitionInput,
    TransitionResult,
)
from jidoka.policy import count_outcome


@dataclass(frozen=True)
class ActivityRecord:
    at: datetime
    name: str
    input: BaseModel | None = None
    result: BaseModel | str | None = None
    failure: str | None = None


@dataclass(frozen=True)
class DecisionRecord:
    at: datetime
    attempt: int
    outcome: Outcome
    decision: Decision


@dataclass(frozen=True)
class MessageRecord:
    at: datetime
    name: str
    payload: BaseModel | None
    kind: str = "signal"


@dataclass(frozen=True)
class TimerRecord:
    at: datetime
    seconds: float
    summary: str = ""


Record = ActivityRecord | DecisionRecord | MessageRecord | TimerRecord


@dataclass
class Story:
    workflow_id: str
    url: str
    records: list[Record] = field(default_factory=list[Record])
    result: IssueResult | None = None
    phase: Phase | None = None
    """Current phase when the workflow still runs (from the status query or search attribute)."""


def _agent_line(agent: AgentRunResult) -> str:
    code = f" (exit {agent.exit_code})" if agent.exit_code is not None else ""
    waited = f" (after waiting {agent.slot_wait_s:.1f}s for a slot)" if agent.slot_wait_s else ""
    return (
        f"agent: {agent.stop.value}{code} after {agent.duration_s:.1f}s{waited}, "
        f"{agent.usage.total_tokens:,} tokens — {agent.detail}".rstrip(" —")
    )


def _charges(decisions: list[DecisionRecord]) -> str | None:
    """Which cap each failed attempt was charged to: the agent's, or the infrastructure's."""
    counters = IssueCounters()
    for record in decisions:
        counters = count_outcome(counters, record.outcome)
    if not counters.failures and not counters.infra_failures:
        return None
    return (
        f"Charged: {counters.failures} failed attempt(s) to the agent (budgets.max_attempts), "
        f"{counters.infra_failures} lost to the infrastructure (budgets.max_infra_failures, "
        "never the agent's)"
    )


def _evidence_line(evidence: Evidence) -> str:
    reading = evidence.verdict
    if reading.verdict is not None:
        verdict = f"verdict {reading.verdict.verdict}"
    elif reading.error:
        verdict = f"verdict file rejected ({reading.error})"
    else:
        verdict = "no verdict file"
    git = evidence.git
    tree = (
        "clean tree"
        if git.uncommitted_count == 0
        else f"{git.uncommitted_count} uncommitted path(s)"
    )
    return (
        f"evidence: {verdict}; {git.commits_ahead} commit(s) on {git.branch} beyond "
        f"{git.base_sha[:10]}; net diff {git.diff.files_changed} file(s) "
        f"+{git.diff.insertions}/-{git.diff.deletions}; {tree}"
    )


def _hook_line(hook: HookResult) -> str:
    if hook.timed_out:
        state = "timed out"
    elif hook.ok:
        state = "passed"
    else:
        state = f"failed (exit {hook.exit_code})"
    tail = hook.output_tail.strip().splitlines()[-1:] if hook.output_tail.strip() else []
    return f"{hook.name}: {state}" + (f" — {tail[0][:160]}" if tail and not hook.ok else "")


def _judge_lines(evidence: Evidence) -> list[str]:
    """The protected paths an attempt changed and what the ratchet found, one line each."""
    lines = [
        f"  protected path changed: {change.path} ({change.glob})"
        for change in evidence.git.protected
    ]
    more = evidence.git.protected_count - len(evidence.git.protected)
    if more > 0:
        lines.append(f"  protected paths changed: {more} more")
    return lines


def _tests_lines(hook: HookResult) -> list[str]:
    if hook.tests is None:
        return []
    return [f"  tests: {ratchet.summary(hook.tests)}"] + [
        f"  test ratchet: {finding}" for finding in ratchet.findings(hook.tests)
    ]


def tell(story: Story) -> str:
    """The chain, in plain words."""
    lines: list[str] = []
    title = ""
    attempt_open = 0
    last_decision: DecisionRecord | None = None
    last_evidence: Evidence | None = None
    decisions: list[DecisionRecord] = []
    for record in story.records:
        match record:
            case ActivityRecord(name="tracker_fetch_issue", result=Issue() as issue) if not title:
                title = f'{issue.identifier} "{issue.title}"'
            case ActivityRecord(name="prepare_workspace", result=WorkspaceInfo() as ws):
                attempt_open += 1
                lines.append(
                    f"Attempt {attempt_open} (workspace {ws.path}, branch {ws.branch}, base {ws.base_sha[:10]}):"
                )
            case ActivityRecord(name="run_agent", result=AgentRunResult() as agent):
                lines.append("  " + _agent_line(agent))
            case ActivityRecord(
                name="run_hook", input=HookInput() as hook_input, result=HookResult() as hook
            ):
                if hook.ran:
                    lines.append(f"  {hook_input.hook.value} hook: " + _hook_line(hook))
                    lines += _tests_lines(hook)
            case ActivityRecord(name="collect_evidence", result=Evidence() as evidence):
                last_evidence = evidence
                lines.append("  " + _evidence_line(evidence))
                lines += _judge_lines(evidence)
            case ActivityRecord(
                name="tracker_transition",
                input=TransitionInput() as move,
                result=TransitionResult(),
            ):
                lines.append(
                    f"Tracker: moved from '{move.expected_state}' to '{move.target_state}'"
                    + (" with the evidence comment" if move.evidence else "")
                )
            case ActivityRecord(
                name="tracker_transition",
                input=None,
                result=TransitionResult(moved_from=str() as moved_from) as moved,
            ):
                lines.append(
                    f"Tracker: moved from '{moved_from}' to '{moved.issue.state}'"
                    + (" with the evidence comment" if moved.with_evidence else "")
                )
            case ActivityRecord(name="push_branch", result=PushResult() as pushed):
                lines.append(f"  pushed {pushed.sha[:10]} to {pushed.remote}")
            case ActivityRecord(name="preserve_work", result=PreserveResult() as kept):
                lines.append(f"Work preserved: {kept.branch or 'nothing to keep'} ({kept.detail})")
            case ActivityRecord(failure=str() as failure, name=name):
                lines.append(f"  {name} failed: {failure}")
            case DecisionRecord():
                last_decision = record
                decisions.append(record)
                lines.append(
                    f"  outcome: {record.outcome.value} → decision: {record.decision.kind.value}"
                    f" — {record.decision.reason} [rule: {record.decision.rule}]"
                )
            case TimerRecord(seconds=seconds, summary=summary):
                lines.append(f"  waited {seconds:.0f}s ({summary or 'timer'})")
            case MessageRecord(name="halt", payload=HaltRequest() as halt):
                who = halt.operator or halt.source.value
                lines.append(f"Signal halt from {who}: {halt.reason}")
            case MessageRecord(name="resume", payload=ResumeRequest() as resume):
                lines.append(
                    f"Signal resume from {resume.operator or 'the line'}: {resume.root_cause or '(no root cause)'}"
                )
            case MessageRecord(name="decide", payload=DecideRequest() as decide):
                lines.append(
                    f"Operator {decide.operator} decided {decide.decision.value}: {decide.root_cause}"
                    + (f" (note for the agent: {decide.note[:200]})" if decide.note else "")
                )
            case MessageRecord(name="answer", payload=AnswerRequest() as answer):
                lines.append(
                    f"Answer from {answer.operator or 'an operator'}: {answer.answer[:200]}"
                )
            case MessageRecord(name="cancel", payload=CancelRequest() as cancel):
                lines.append(f"Cancel from the {cancel.source.value}: {cancel.reason}")
            case _:
                pass
    header = f"{title or story.workflow_id} — {describe_state(story)}"
    ending = conclusion(story, last_decision, last_evidence)
    charges = _charges(decisions)
    if charges:
        ending.append(charges)
    return "\n".join([header, "", *lines, "", *ending, f"Web UI: {story.url}"])


def describe_state(story: Story) -> str:
    if story.result is not None:
        return f"{story.result.phase.value} (tracker state '{story.result.tracker_state}')"
    return f"{story.phase.value if story.phase else 'running'}"


def conclusion(story: Story, last: DecisionRecord | None, evidence: Evidence | None) -> list[str]:
    """Why it is where it is, ending at the rule of WORKFLOW.md that decided."""
    phase = story.result.phase if story.result else story.phase
    if last is None:
        return [
            f"Why? No attempt has been judged yet (phase {phase.value if phase else 'unknown'})."
        ]
    decision = last.decision
    because = f"attempt {last.attempt} ended with {last.outcome.value}: {decision.reason}"
    if evidence is not None and last.outcome in (
        Outcome.SHIPPED,
        Outcome.NO_PROGRESS,
        Outcome.UNCOMMITTED_WORK,
        Outcome.VERIFY_FAILED,
    ):
        because += f" ({_evidence_line(evidence).removeprefix('evidence: ')})"
    match decision.kind:
        case DecisionKind.SHIP:
            why = f"Why shipped? Because {because}."
        case DecisionKind.HALT if last.outcome in (
            Outcome.PROTECTED_PATHS,
            Outcome.TESTS_WEAKENED,
        ):
            category = decision.halt_category.value if decision.halt_category else "halt"
            why = (
                f"Why halted ({category})? Because attempt {last.attempt} would weaken its judge. "
                "It waits for an operator to accept the change (with a root cause), send it "
                "back to the agent (retry, with a note) or abandon it."
            )
        case DecisionKind.HALT:
            category = decision.halt_category.value if decision.halt_category else "halt"
            why = (
                f"Why halted ({category})? Because {because}. "
                "It waits for an operator to retry or abandon it."
            )
        case DecisionKind.PAUSE:
            why = (
                f"Why paused? Because {because}. It waits for an answer, "
                "or for the issue to be moved back to an active state."
            )
        case DecisionKind.CONTINUE | DecisionKind.RETRY:
            why = f"Why another attempt? Because {because}."
        case DecisionKind.ABANDON | DecisionKind.RELEASE:
            why = f"Why stopped? Because {because}."
    if phase is Phase.ABANDONED:
        why = "Why abandoned? An operator decided so after: " + because + "."
    return [why, *_stop_lines(last), f"Rule: {decision.rule}"]


def _stop_lines(last: DecisionRecord) -> list[str]:
    """A judge stop, explained one finding per line."""
    if last.outcome not in (Outcome.PROTECTED_PATHS, Outcome.TESTS_WEAKENED):
        return []
    return [f"  {line}" for line in last.decision.reason.splitlines() if line.startswith("- ")]
