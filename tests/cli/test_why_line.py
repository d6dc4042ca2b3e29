"""``jidoka why`` tells one issue's story, among the others' on its line, and what it cost.

On a recorded history (``histories/issue_line_stops.json``, like the demo's DEMO-4 on a priced
line): the issue asks questions and waits while another issue halts the line (its agent's
``HALT``), a third halts it again (``no_progress``) and an operator halts it once more, each
stop resumed with a root cause; then it is answered and ships in its second attempt. Decoded
the way ``jidoka why`` decodes a history; records built here for what it does not hold (this
issue's own halt reaching it through the line, unknown costs)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from temporalio.contrib.pydantic import pydantic_data_converter

from cli.story import (
    ActivityRecord,
    ConfigRecord,
    DecisionRecord,
    HaltedRecord,
    MessageRecord,
    Record,
    Story,
    tell,
)
from cli.why import add_run
from jidoka.config import PricingConfig, TokenPrices
from jidoka.models import AgentRunResult, Decision, HaltRecord, Issue, IssueCounters, TokenUsage
from jidoka.outcomes import (
    AgentStop,
    DecisionKind,
    HaltCategory,
    HaltScope,
    HaltSource,
    Outcome,
    Phase,
)
from jidoka.payloads import HaltRequest, ResumeRequest
from tests.cli.histories import load

AT = datetime(2026, 12, 3, 10, 0, tzinfo=UTC)
MEANWHILE = "Meanwhile on the line (line-wide stops, not this issue's own unless said):"


async def recorded() -> str:
    story = Story(workflow_id="jidoka-issue-x-S-1", url="http://ui/S-1")
    await add_run(story, pydantic_data_converter, load("issue_line_stops").events)
    return tell(story)


def sections(told: str) -> tuple[list[str], list[str], list[str]]:
    """The chain, the line's stops, the ending: the story's three parts."""
    lines = told.splitlines()
    start = lines.index(MEANWHILE)
    end = lines.index("", start)
    return lines[:start], lines[start + 1 : end], lines[end + 1 :]


async def test_other_issues_stops_are_told_once_as_the_lines_not_in_the_chain() -> None:
    told = await recorded()
    chain, meanwhile, ending = sections(told)
    # The issue's own story: its attempts, its pause and the answer, nothing of the others.
    assert chain[0] == "S-1 \"Round the totals\" — shipped (tracker state 'Done')"
    assert "Answer from ops: behind a flag; 3.11+" in chain
    assert not [line for line in chain if "halt" in line.lower() or "resume" in line.lower()]
    assert not [line for line in chain if "S-2" in line or "S-3" in line]
    # Each line-wide stop once, in its order, marked as another's and with its resume.
    assert len(meanwhile) == 3, told
    second, third, operator = meanwhile
    for line in meanwhile:
        assert line.startswith("  2026-")
    assert (
        "the line halted for another issue, S-2 (halt_production by agent): the staging "
        "database is corrupted; stop all work; resumed by ops: staging database restored"
    ) in second
    assert (
        "the line halted for another issue, S-3 (no_progress by orchestrator): " in third
        and third.endswith("; resumed by ops: the agent claimed work it never committed")
    )
    assert operator.endswith(
        "the line halted by an operator: deploy freeze; resumed by ops: freeze lifted"
    )
    assert told.count("S-2") == 1 and told.count("S-3") == 1
    # Why it is where it is does not change: its own decision.
    assert ending[0].startswith("Why shipped? Because attempt 2 ended with shipped")


async def test_each_attempt_names_its_tokens_and_cost_and_the_end_the_total() -> None:
    told = await recorded()
    # pricing (per million tokens): input 100, cached input 25, output 400 (USD). The scripted
    # agent reports 3,000 tokens per step: 2,400 in (1,200 of them cached) and 600 out.
    # Attempt 1 (one step): 1,200 x 100 + 1,200 x 25 + 600 x 400 = 390,000 / 1e6 = $0.39.
    # Attempt 2 (two steps, cumulative 6,000 tokens): twice that, $0.78. In all $1.17.
    agents = [line for line in told.splitlines() if line.startswith("  agent: ")]
    assert len(agents) == 2
    assert ", 3,000 tokens, $0.39 — " in agents[0]
    assert ", 6,000 tokens, $0.78 — " in agents[1]
    assert "\nSpent: 9,000 tokens over 2 attempt(s); cost $1.17.\nWeb UI: http://ui/S-1" in told


def line_halt(identifier: str | None, category: HaltCategory, reason: str) -> HaltRequest:
    return HaltRequest(
        reason=reason,
        category=category,
        source=HaltSource.ORCHESTRATOR,
        scope=HaltScope.LINE,
        issue_identifier=identifier,
    )


def story(records: list[Record], phase: Phase, **fields: object) -> Story:
    told = Story(workflow_id="jidoka-issue-x-A-1", url="http://ui/A-1", records=records)
    told.phase = phase
    for name, value in fields.items():
        setattr(told, name, value)
    return told


FETCHED = ActivityRecord(
    at=AT,
    name="tracker_fetch_issue",
    result=Issue(id="A-1", identifier="A-1", title="t", state="In Progress"),
)


def test_its_own_halt_through_the_line_and_a_stop_never_resumed() -> None:
    decision = Decision(
        kind=DecisionKind.HALT,
        reason="the agent claimed success but there is no commit",
        rule="done gate",
        halt_category=HaltCategory.NO_PROGRESS,
    )
    records: list[Record] = [
        FETCHED,
        DecisionRecord(at=AT, attempt=1, outcome=Outcome.NO_PROGRESS, decision=decision),
        HaltedRecord(at=AT),
        MessageRecord(
            at=AT,
            name="halt",
            payload=line_halt("A-1", HaltCategory.NO_PROGRESS, decision.reason),
        ),
        MessageRecord(
            at=AT + timedelta(minutes=1),
            name="resume",
            payload=ResumeRequest(root_cause="agent lied", operator="ops", scope=HaltScope.LINE),
        ),
        MessageRecord(
            at=AT + timedelta(minutes=2),
            name="halt",
            payload=line_halt(None, HaltCategory.BUDGET_EXCEEDED, "fleet budget spent"),
        ),
    ]
    told = tell(story(records, Phase.HALTED))
    _, meanwhile, _ = sections(told)
    assert meanwhile == [
        "  2026-12-03T10:00:00+00:00 the line halted for this issue's own halt (no_progress by "
        "orchestrator, told above); resumed by ops: agent lied",
        "  2026-12-03T10:02:00+00:00 the line halted (budget_exceeded by orchestrator): fleet "
        "budget spent; not resumed while this history ran",
    ]
    assert "Why halted (no_progress)? Because attempt 1 ended with no_progress" in told


def test_a_resume_whose_halt_is_not_in_the_history_is_told_as_such() -> None:
    records: list[Record] = [
        FETCHED,
        MessageRecord(
            at=AT,
            name="resume",
            payload=ResumeRequest(root_cause="freeze lifted", operator="", scope=HaltScope.LINE),
        ),
    ]
    _, meanwhile, _ = sections(tell(story(records, Phase.RUNNING_AGENT)))
    assert meanwhile == [
        "  2026-12-03T10:00:00+00:00 the line was halted (its halt is not in this history); "
        "resumed by an operator: freeze lifted"
    ]


def test_a_line_halt_does_not_hide_why_the_issue_halted_next() -> None:
    """The issue's own halt after a line-wide one is told: the line's stop explains nothing
    of it."""
    halt = HaltRecord(
        category=HaltCategory.REVIEW_ROUNDS_CAP,
        reason="2 rework round(s) done, review.max_rounds is 2",
        source=HaltSource.ORCHESTRATOR,
        scope=HaltScope.ISSUE,
        at=AT + timedelta(minutes=1),
    )
    records: list[Record] = [
        FETCHED,
        MessageRecord(
            at=AT, name="halt", payload=line_halt("B-7", HaltCategory.HOOK_TIMEOUT, "verify hung")
        ),
        HaltedRecord(at=AT + timedelta(minutes=1)),
    ]
    told = tell(story(records, Phase.HALTED, halts=[halt]))
    chain, meanwhile, _ = sections(told)
    assert (
        "Halted (review_rounds_cap) by orchestrator: 2 rework round(s) done, review.max_rounds is 2"
    ) in chain
    assert meanwhile == [
        "  2026-12-03T10:00:00+00:00 the line halted for another issue, B-7 (hook_timeout by "
        "orchestrator): verify hung; not resumed while this history ran"
    ]


# -- money: unknown is said, never zero ---------------------------------------------------------

PRICED = PricingConfig(
    currency="EUR",
    models={"m-1": TokenPrices(input=100.0, cached_input=25.0, output=400.0)},
)
USAGE = TokenUsage(
    input_tokens=2_400, cached_input_tokens=1_200, output_tokens=600, total_tokens=3_000
)


def agent(usage: TokenUsage = USAGE, *, reported: bool = True) -> ActivityRecord:
    result = AgentRunResult(
        stop=AgentStop.EXITED, exit_code=0, usage=usage, usage_reported=reported
    )
    return ActivityRecord(at=AT, name="run_agent", result=result)


def test_unknown_costs_are_said_and_the_total_is_a_lower_bound() -> None:
    records: list[Record] = [
        ConfigRecord(at=AT, pricing=PRICED, model="m-1"),
        agent(),  # 0.39 EUR, as above
        agent(TokenUsage(), reported=False),
        ConfigRecord(at=AT, pricing=PRICED, model="m-2"),  # WORKFLOW.md changed the model
        agent(),
        ConfigRecord(at=AT, pricing=PRICED, model=None),
        agent(),
    ]
    told = tell(story(records, Phase.RUNNING_AGENT))
    agents = [line for line in told.splitlines() if line.startswith("  agent: ")]
    assert [line.split(", ", 1)[1] for line in agents] == [
        "3,000 tokens, 0.39 EUR",
        "tokens not reported, cost unknown: the agent reported no usage",
        "3,000 tokens, cost unknown: no price for model m-2",
        "3,000 tokens, cost unknown: no model named for the agent (pricing.model)",
    ]
    assert (
        "Spent: 9,000 tokens over 4 attempt(s); cost ≥ 0.39 EUR (3 attempt(s) of unknown " in told
    )
    # The issue's counters, when the story has them, are the total its budgets counted.
    counters = IssueCounters(attempts=5, cost=1.17, cost_unknown=2)
    counters.tokens.total_tokens = 12_000
    told = tell(story(records, Phase.RUNNING_AGENT, counters=counters))
    assert "Spent: 12,000 tokens over 5 attempt(s); cost ≥ 1.17 EUR (2 attempt(s) of" in told
    nothing_known = IssueCounters(attempts=2, cost=0.0, cost_unknown=2)
    told = tell(story(records[:3], Phase.RUNNING_AGENT, counters=nothing_known))
    assert "; cost unknown (2 attempt(s) of unknown cost)." in told
    assert "0.00" not in told


def test_a_line_without_prices_tells_tokens_only() -> None:
    records: list[Record] = [ConfigRecord(at=AT, pricing=None, model=None), agent()]
    told = tell(story(records, Phase.RUNNING_AGENT))
    assert "  agent: exited (exit 0) after 0.0s, 3,000 tokens" in told
    assert "cost" not in told and "$" not in told
    assert "Spent: 3,000 tokens over 1 attempt(s)." in told
