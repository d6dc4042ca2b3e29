"""A line's facts built by hand for ``jidoka report``'s tests: every figure they lead to is
worked out in tests/jidoka/test_report.py, next to its assertion.

The window is two days from ``T0``. Times are ``T0 + hours``.

==== ================================================================================= =======
 id  story                                                                             source
==== ================================================================================= =======
 A   1 attempt, shipped (1000 tokens, $0.10, 600 s, 30 s slot wait); 1h -> 3h           result
 B   verify_failed (2000, $0.20, 900 s), then shipped (1500, $0.15, 700 s, 60 s wait);  result
     2h -> 10h
 C   1 attempt, shipped, no usage reported (500 tokens, cost unknown, 300 s); 5h -> 29h result
 D   no_progress at 6h (800, $0.08, 200 s): halted 7h, retried 7h30 ("agent claimed     status
     success without commits"); no_progress again at 8h (600, $0.06, 150 s): halted
     9h30, still halted
 E   asked questions at 8h (300, $0.03, 100 s; ended 8h30): still paused                status
 F   wrote HALT at 12h (400, $0.04, 120 s): halted 13h, abandoned 19h ("Staging DB was  result
     corrupted."); 12h -> 20h
 G   running its first attempt, not judged yet (700 tokens, $0.07, 90 s); from 44h      status
 U   running, no worker answered its status query; from 45h                             unread
 X   terminated, no result; 1h -> 2h                                                    no_result
 H   finished before the window: left out                                               result
==== ================================================================================= =======

The line's halts: the echoes of D's two halts and F's, a ``loop_detected`` of its own
(30h -> 31h, "flaky tracker"), and an operator's halt at 40h, still open. D also keeps a copy of
the loop halt (a line-wide halt reaches every issue).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from jidoka.models import (
    AttemptRecord,
    Decision,
    HaltRecord,
    IssueCounters,
    TokenUsage,
)
from jidoka.outcomes import (
    AgentStop,
    DecisionKind,
    HaltCategory,
    HaltScope,
    HaltSource,
    Outcome,
    Phase,
)
from jidoka.report import FactsSource, IssueFacts, Window

T0 = datetime(2026, 12, 1, tzinfo=UTC)
WINDOW = Window(since=T0, until=T0 + timedelta(days=2))


def at(hours: float, seconds: float = 0) -> datetime:
    return T0 + timedelta(hours=hours, seconds=seconds)


def attempt(
    number: int,
    start: float,
    outcome: Outcome,
    tokens: int,
    cost: float | None,
    agent_s: float,
    *,
    decision: DecisionKind = DecisionKind.CONTINUE,
    slot_wait_s: float = 0.0,
    ended: float | None = None,
    usage: TokenUsage | None = None,
) -> AttemptRecord:
    return AttemptRecord(
        number=number,
        started_at=at(start),
        ended_at=at(ended) if ended is not None else None,
        agent_stop=AgentStop.EXITED,
        tokens=tokens,
        usage=usage,
        model="demo-model" if cost is not None else None,
        cost=cost,
        agent_seconds=agent_s,
        slot_wait_s=slot_wait_s,
        outcome=outcome,
        decision=Decision(kind=decision, reason="r", rule="rule"),
    )


def counters(
    attempts: int, tokens: int, cost: float, agent_s: float, unknown: int = 0
) -> IssueCounters:
    return IssueCounters(
        attempts=attempts,
        tokens=TokenUsage(total_tokens=tokens),
        cost=cost,
        cost_unknown=unknown,
        agent_seconds=agent_s,
    )


def halt(
    category: HaltCategory,
    issue: str | None,
    start: float,
    *,
    seconds: float = 0,
    scope: HaltScope = HaltScope.ISSUE,
    resolved: float | None = None,
    root_cause: str | None = None,
    source: HaltSource = HaltSource.ORCHESTRATOR,
) -> HaltRecord:
    return HaltRecord(
        category=category,
        reason="why",
        source=source,
        scope=scope,
        issue_identifier=issue,
        at=at(start, seconds),
        resolved_at=at(resolved) if resolved is not None else None,
        root_cause=root_cause,
    )


AGENT_CLAIMED = "agent claimed success without commits"
STAGING = "Staging DB was corrupted."

LOOP = halt(
    HaltCategory.LOOP_DETECTED,
    None,
    30,
    scope=HaltScope.LINE,
    resolved=31,
    root_cause="flaky tracker",
)


def line_halts() -> list[HaltRecord]:
    line = HaltScope.LINE
    return [
        halt(
            HaltCategory.NO_PROGRESS,
            "D",
            7,
            seconds=1,
            scope=line,
            resolved=7.75,
            root_cause=AGENT_CLAIMED,
        ),
        halt(
            HaltCategory.NO_PROGRESS,
            "D",
            9.5,
            seconds=1,
            scope=line,
            resolved=10,
            root_cause="Agent claimed success  without commits.",
        ),
        halt(
            HaltCategory.HALT_PRODUCTION,
            "F",
            13,
            seconds=2,
            scope=line,
            resolved=14,
            root_cause="staging db was corrupted",
        ),
        LOOP,
        halt(HaltCategory.OTHER, None, 40, scope=line, source=HaltSource.OPERATOR),
    ]


def issue(identifier: str, source: FactsSource, **fields: object) -> IssueFacts:
    return IssueFacts(
        identifier=identifier,
        workflow_id=f"jidoka-issue-t-{identifier}",
        url=f"http://ui.invalid/namespaces/default/workflows/jidoka-issue-t-{identifier}",
        source=source,
        **fields,  # type: ignore[arg-type]
    )


def issues() -> list[IssueFacts]:
    result, status = FactsSource.RESULT, FactsSource.STATUS
    a_usage = TokenUsage(
        input_tokens=800, output_tokens=200, total_tokens=1000, cached_input_tokens=400
    )
    return [
        issue(
            "A",
            result,
            phase=Phase.SHIPPED,
            started_at=at(1),
            finished_at=at(3),
            attempts=[
                attempt(
                    1,
                    1,
                    Outcome.SHIPPED,
                    1000,
                    0.10,
                    600,
                    decision=DecisionKind.SHIP,
                    slot_wait_s=30,
                    usage=a_usage,
                )
            ],
            counters=counters(1, 1000, 0.10, 600).model_copy(update={"tokens": a_usage}),
        ),
        issue(
            "B",
            result,
            phase=Phase.SHIPPED,
            started_at=at(2),
            finished_at=at(10),
            attempts=[
                attempt(1, 2, Outcome.VERIFY_FAILED, 2000, 0.20, 900),
                attempt(
                    2,
                    4,
                    Outcome.SHIPPED,
                    1500,
                    0.15,
                    700,
                    decision=DecisionKind.SHIP,
                    slot_wait_s=60,
                ),
            ],
            counters=counters(2, 3500, 0.35, 1600),
        ),
        issue(
            "C",
            result,
            phase=Phase.SHIPPED,
            started_at=at(5),
            finished_at=at(29),
            attempts=[attempt(1, 5, Outcome.SHIPPED, 500, None, 300, decision=DecisionKind.SHIP)],
            counters=counters(1, 500, 0.0, 300, unknown=1),
        ),
        issue(
            "D",
            status,
            phase=Phase.HALTED,
            started_at=at(6),
            attempts=[
                attempt(1, 6, Outcome.NO_PROGRESS, 800, 0.08, 200, decision=DecisionKind.HALT),
                attempt(2, 8, Outcome.NO_PROGRESS, 600, 0.06, 150, decision=DecisionKind.HALT),
            ],
            counters=counters(2, 1400, 0.14, 350),
            halts=[
                halt(HaltCategory.NO_PROGRESS, "D", 7, resolved=7.5, root_cause=AGENT_CLAIMED),
                halt(HaltCategory.NO_PROGRESS, "D", 9.5),
                LOOP,
            ],
        ),
        issue(
            "E",
            status,
            phase=Phase.PAUSED,
            started_at=at(8),
            attempts=[
                attempt(
                    1,
                    8,
                    Outcome.AWAITING_ANSWERS,
                    300,
                    0.03,
                    100,
                    decision=DecisionKind.PAUSE,
                    ended=8.5,
                )
            ],
            counters=counters(1, 300, 0.03, 100),
        ),
        issue(
            "F",
            result,
            phase=Phase.ABANDONED,
            started_at=at(12),
            finished_at=at(20),
            attempts=[
                attempt(1, 12, Outcome.HALT_REQUESTED, 400, 0.04, 120, decision=DecisionKind.HALT)
            ],
            counters=counters(1, 400, 0.04, 120),
            halts=[halt(HaltCategory.HALT_PRODUCTION, "F", 13, resolved=19, root_cause=STAGING)],
        ),
        issue(
            "G",
            status,
            phase=Phase.RUNNING_AGENT,
            started_at=at(44),
            counters=counters(1, 700, 0.07, 90),
        ),
        issue("U", FactsSource.UNREAD, phase=Phase.RUNNING_AGENT, started_at=at(45)),
        issue(
            "X", FactsSource.NO_RESULT, closed_as="terminated", started_at=at(1), finished_at=at(2)
        ),
        issue(
            "H",
            result,
            phase=Phase.SHIPPED,
            started_at=at(-72),
            finished_at=at(-48),
            attempts=[attempt(1, -72, Outcome.SHIPPED, 9000, 0.9, 900, decision=DecisionKind.SHIP)],
            counters=counters(1, 9000, 0.9, 900),
        ),
    ]
