"""Timers and caps of the issue and line workflows, with realistic (long) settings, on the real
time-skipping test server (``ts_env``): backoffs of minutes and pauses of days pass in moments
because the server jumps to the next timer whenever no activity is in flight. The agents are real
scripted subprocesses, so their own clocks (seconds) run in real time.

What is proven, each from the workflow history and the workflow's own status:

* a failing agent waits the retry backoff (``policy.failure_backoff_s``, doubling up to
  ``backoff.max_s``) before each new attempt, never runs more than ``budgets.max_attempts``
  attempts, and then halts (``agent_error``, rule ``budgets.max_attempts``); a halt then waits for
  an operator indefinitely (a month passes, nothing runs, nothing fails);
* a verify failure continues after ``backoff.continuation_s`` at most ``budgets.max_continuations``
  times, then halts (``budget_exceeded``, rule ``budgets.max_continuations``);
* a paused issue waits days for its answers, polling the tracker every ``polling.interval_s``
  without starting an attempt, and ships once answered;
* the line ticks every ``polling.interval_s``, and its loop detector forgets a dispatch once it
  is older than ``guards.loop.window_s`` but halts the line on a bounce inside the window.

The expected waits and caps are computed with the pure policy functions from the same
WORKFLOW.md, never copied by hand.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TypeVar

from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle, WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment

from jidoka import policy
from jidoka.config import WorkflowConfig
from jidoka.keys import line_workflow_id
from jidoka.models import IssueCounters
from jidoka.outcomes import DecisionKind, HaltCategory, Outcome, Phase
from jidoka.payloads import AnswerRequest, IssueResult, IssueStatus, LineStatus
from jidoka.workflow_file import load_workflow
from runtime.history import steps
from tests.histories import assert_replays
from tests.support.git import run_git
from tests.support.linekit import (
    Factory,
    LineKit,
    eventually,
    factory,
    issue_status,
    line_status,
    make_line,
    start_line,
)
from workflows.issue import IssueWorkflow
from workflows.line import LineWorkflow

T = TypeVar("T")

REAL_TIMEOUT = 60.0
"""Seconds of real time any one wait may take (agents and git are real)."""
STEP = timedelta(minutes=1)
"""How far the clock moves at a time while a workflow works through its timers."""


# ---------------------------------------------------------------------------------------------
# Reading timers and attempts out of a history
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Timer:
    event_id: int
    seconds: float
    summary: str
    fired: bool


def _summary(event: HistoryEvent) -> str:
    if not event.user_metadata.HasField("summary"):
        return ""
    value = pydantic_data_converter.payload_converter.from_payload(event.user_metadata.summary, str)
    return str(value)


def timers(history: WorkflowHistory) -> list[Timer]:
    """Every timer the workflow started, with its duration, summary and whether it fired."""
    fired = {
        e.timer_fired_event_attributes.started_event_id
        for e in history.events
        if e.HasField("timer_fired_event_attributes")
    }
    return [
        Timer(
            event_id=e.event_id,
            seconds=e.timer_started_event_attributes.start_to_fire_timeout.ToTimedelta().total_seconds(),
            summary=_summary(e),
            fired=e.event_id in fired,
        )
        for e in history.events
        if e.HasField("timer_started_event_attributes")
    ]


@dataclass(frozen=True)
class ActivityStart:
    event_id: int
    scheduled_at: datetime


def scheduled(history: WorkflowHistory, activity: str) -> list[ActivityStart]:
    return [
        ActivityStart(event_id=step.event_id, scheduled_at=step.scheduled_at)
        for step in steps(history.events)
        if step.name == activity
    ]


def timers_between(all_timers: list[Timer], first: int, last: int) -> list[Timer]:
    return [t for t in all_timers if first < t.event_id < last]


def assert_waits_between_agent_runs(
    history: WorkflowHistory, summary: str, expected: list[float]
) -> None:
    """Between consecutive agent runs exactly one timer of ``summary`` ran to the end with the
    expected duration, and the next run started no earlier than that duration later."""
    runs = scheduled(history, "run_agent")
    assert len(runs) == len(expected) + 1, (len(runs), expected)
    every = timers(history)
    for index, wait in enumerate(expected):
        before, after = runs[index], runs[index + 1]
        between = timers_between(every, before.event_id, after.event_id)
        assert [(t.summary, t.seconds, t.fired) for t in between] == [(summary, wait, True)], (
            f"between attempts {index + 1} and {index + 2}: {between}"
        )
        assert after.scheduled_at - before.scheduled_at >= timedelta(seconds=wait)
    assert not timers_between(every, runs[-1].event_id, 1 << 62), "a wait after the last attempt"


# ---------------------------------------------------------------------------------------------
# Driving the time-skipping server
# ---------------------------------------------------------------------------------------------


async def advance_until(
    env: WorkflowEnvironment,
    probe: Callable[[], Awaitable[T]],
    accept: Callable[[T], bool],
    *,
    step: timedelta,
    what: str,
) -> T:
    """Move the server's clock ``step`` at a time (it fires every timer due meanwhile and waits
    for the activities they lead to) until ``accept(probe())``.

    Stepping, rather than awaiting the result with time skipping unlocked, keeps the clock from
    racing ahead once the workflow only waits for a person: unlocked with no timer left, the
    test server jumps straight to the default 10-year run timeout.
    """
    deadline = asyncio.get_running_loop().time() + REAL_TIMEOUT
    while True:
        value = await probe()
        if accept(value):
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"{what} not reached in {REAL_TIMEOUT}s; last: {value!r}"[:4000])
        await env.sleep(step)


@contextlib.asynccontextmanager
async def terminated_on_exit(client: Client, *workflow_ids: str) -> AsyncIterator[None]:
    """Terminate these workflows on the way out, passed or failed. The clock is shared by the
    whole session, and the test server never skips past a workflow task nobody picks up: one
    workflow left behind with a timer and no worker would freeze time for every later test."""
    try:
        yield
    finally:
        for workflow_id in workflow_ids:
            with contextlib.suppress(RPCError):  # already closed
                await client.get_workflow_handle(workflow_id).terminate("test done")


async def wait_for(probe: Callable[[], Awaitable[T]], accept: Callable[[T], bool], what: str) -> T:
    return await eventually(probe, accept, timeout=REAL_TIMEOUT, what=what)


def config_of(kit: LineKit) -> WorkflowConfig:
    return load_workflow(kit.workflow_md).config


# ---------------------------------------------------------------------------------------------
# What the pure policy predicts
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Prediction:
    waits: list[float]
    """Timer durations between attempts, in order."""
    final_kind: DecisionKind
    final_category: HaltCategory | None
    final_rule: str

    @property
    def attempts(self) -> int:
        return len(self.waits) + 1


def predict_repeated(outcome: Outcome, config: WorkflowConfig) -> Prediction:
    """Feed the same outcome to ``policy.decide`` attempt after attempt, counting like the
    workflow does, until it stops retrying or continuing."""
    counters = IssueCounters()
    waits: list[float] = []
    for attempt in range(1, 100):
        counters = policy.count_outcome(counters.model_copy(update={"attempts": attempt}), outcome)
        decision = policy.decide(outcome, policy.DecisionContext(counters=counters), config)
        counters = policy.count_continuation(counters, decision)
        if decision.kind not in (DecisionKind.RETRY, DecisionKind.CONTINUE):
            return Prediction(waits, decision.kind, decision.halt_category, decision.rule)
        waits.append(decision.delay_s)
    raise AssertionError(f"policy never stops on {outcome}")


# ---------------------------------------------------------------------------------------------
# IssueWorkflow
# ---------------------------------------------------------------------------------------------


async def start_until_halted(
    ts_env: WorkflowEnvironment, f: Factory, kit: LineKit, identifier: str
) -> tuple[WorkflowHandle[IssueWorkflow, IssueResult], IssueStatus, WorkflowHistory]:
    """Start one issue and skip time until it halts; its handle, status and history."""
    handle = await f.start_issue(kit, identifier)
    status = await advance_until(
        ts_env,
        lambda: issue_status(handle),
        lambda s: s.phase is Phase.HALTED,
        step=STEP,
        what="halted",
    )
    return handle, status, await handle.fetch_history()


async def test_failing_agent_backs_off_exponentially_then_halts_at_max_attempts_and_stays_halted(
    ts_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    kit = make_line(
        tmp_path, {"budgets": {"max_attempts": 4}, "backoff": {"base_s": 300, "max_s": 1000}}
    )
    kit.add_issue("TS-1", "crash")
    config = config_of(kit)
    predicted = predict_repeated(Outcome.AGENT_FAILED, config)
    # The waits are the backoff formula for failure counts 1..max_attempts-1, and this config
    # reaches the max_s clamp (300, 600, then 1000 instead of 1200).
    assert predicted.waits == [
        policy.failure_backoff_s(n, config) for n in range(1, config.budgets.max_attempts)
    ]
    assert predicted.waits[-1] == config.backoff.max_s < 2 * predicted.waits[-2]
    assert predicted.attempts == config.budgets.max_attempts
    assert predicted.final_kind is DecisionKind.HALT

    async with (
        factory(ts_env.client) as f,
        terminated_on_exit(ts_env.client, kit.workflow_id("TS-1")),
    ):
        handle, status, history = await start_until_halted(ts_env, f, kit, "TS-1")
        assert_waits_between_agent_runs(history, "retry backoff", predicted.waits)
        assert status.counters.attempts == status.counters.failures == predicted.attempts
        assert [a.outcome for a in status.attempts] == [Outcome.AGENT_FAILED] * predicted.attempts
        assert status.halt is not None
        assert status.halt.category is predicted.final_category is HaltCategory.AGENT_ERROR
        assert status.halt.evidence["rule"] == predicted.final_rule == "budgets.max_attempts"

        # A halt waits for a person, however long: a month later nothing more ran.
        halted_at = await ts_env.get_current_time()
        await ts_env.sleep(timedelta(days=30))
        assert await ts_env.get_current_time() - halted_at >= timedelta(days=30)
        later = await issue_status(handle)
        assert later.phase is Phase.HALTED and later.counters.attempts == predicted.attempts
        assert (await handle.describe()).status is WorkflowExecutionStatus.RUNNING
        assert len(scheduled(await handle.fetch_history(), "run_agent")) == predicted.attempts
        assert kit.state_of("TS-1") == "In Progress"


async def test_verify_failures_continue_after_continuation_s_until_max_continuations(
    ts_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    kit = make_line(
        tmp_path,
        {"budgets": {"max_continuations": 2}, "backoff": {"continuation_s": 1800}},
    )
    kit.add_issue("TS-2", "breaks-tests")
    config = config_of(kit)
    predicted = predict_repeated(Outcome.VERIFY_FAILED, config)
    assert predicted.waits == [float(config.backoff.continuation_s)] * (
        config.budgets.max_continuations
    )

    async with (
        factory(ts_env.client) as f,
        terminated_on_exit(ts_env.client, kit.workflow_id("TS-2")),
    ):
        _, status, history = await start_until_halted(ts_env, f, kit, "TS-2")
    assert_waits_between_agent_runs(history, "continue backoff", predicted.waits)
    assert status.counters.attempts == predicted.attempts
    assert status.counters.continuations == config.budgets.max_continuations
    assert status.counters.failures == 0
    assert [a.outcome for a in status.attempts] == [Outcome.VERIFY_FAILED] * predicted.attempts
    assert status.halt is not None
    assert status.halt.category is predicted.final_category is HaltCategory.BUDGET_EXCEEDED
    assert status.halt.evidence["rule"] == predicted.final_rule == "budgets.max_continuations"
    assert kit.state_of("TS-2") == "In Progress"


async def test_paused_issue_waits_days_polling_the_tracker_then_ships_once_answered(
    ts_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    interval_s = 6 * 3600
    kit = make_line(tmp_path, {"polling": {"interval_s": interval_s}})
    kit.add_issue("TS-3", "ask")
    wait = timedelta(days=3, hours=1)
    polls_expected = int(wait.total_seconds() // interval_s)
    async with (
        factory(ts_env.client) as f,
        terminated_on_exit(ts_env.client, kit.workflow_id("TS-3")),
    ):
        handle = await f.start_issue(kit, "TS-3")
        await wait_for(lambda: issue_status(handle), lambda s: s.phase is Phase.PAUSED, "paused")
        before = await handle.fetch_history()
        paused_at = await ts_env.get_current_time()

        await ts_env.sleep(wait)

        assert await ts_env.get_current_time() - paused_at >= wait
        # Days of tracker polls (local activities) between timers replay as they ran.
        await assert_replays(await handle.fetch_history())
        status = await issue_status(handle)
        assert status.phase is Phase.PAUSED and status.counters.attempts == 1
        assert len(status.questions) == 2
        assert kit.state_of("TS-3") == "Awaiting Answers"
        during = await handle.fetch_history()
        # Time stood still until the sleep (nothing fired before it); then one tracker poll per
        # interval, each behind a timer of polling.interval_s, and no attempt.
        assert not [t for t in timers(before) if t.fired]
        paused_timers = timers(during)
        assert {(t.seconds, t.summary) for t in paused_timers} == {
            (float(interval_s), "poll the tracker while paused")
        }
        assert len([t for t in paused_timers if t.fired]) == polls_expected
        polls = [
            s for s in scheduled(during, "tracker_fetch_issue") if s.event_id > len(before.events)
        ]
        assert len(polls) == polls_expected
        assert len(scheduled(during, "run_agent")) == 1

        await handle.signal(
            IssueWorkflow.answer, AnswerRequest(answer="behind a flag", operator="pm")
        )
        result = await asyncio.wait_for(handle.result(), REAL_TIMEOUT)
        final = await issue_status(handle)
    assert result.phase is Phase.SHIPPED and result.outcome is Outcome.SHIPPED
    assert kit.state_of("TS-3") == "Done"
    assert [a.outcome for a in final.attempts] == [Outcome.AWAITING_ANSWERS, Outcome.SHIPPED]
    first, second = final.attempts
    assert first.ended_at is not None and second.started_at - first.ended_at >= wait
    assert "behind a flag" in kit.issue_text("TS-3")


async def test_review_watches_for_days_at_its_cadence_then_halts_at_its_time_cap(
    ts_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    poll_s = 6 * 3600
    review = {"state": "Human Review", "poll_interval_s": poll_s, "max_time": "2d"}
    kit = make_line(tmp_path, {"review": review})
    kit.add_issue("TS-R", "ship")
    wait = timedelta(days=1, hours=1)
    async with (
        factory(ts_env.client) as f,
        terminated_on_exit(ts_env.client, kit.workflow_id("TS-R")),
    ):
        handle = await f.start_issue(kit, "TS-R")
        # The first reading comes at once, the next ones at the poll.
        await wait_for(
            lambda: issue_status(handle),
            lambda s: (
                s.phase is Phase.IN_REVIEW
                and s.review_waiting is not None
                and s.review_waiting.startswith("waiting")
            ),
            "in review, read once",
        )
        before = await handle.fetch_history()
        assert len(scheduled(before, "forge_read")) == 1

        await ts_env.sleep(wait)

        during = await handle.fetch_history()
        status = await issue_status(handle)
        # A day of watching: one read per poll, each behind its timer, no agent, no worker
        # busy between; the board waits for a person's review.
        assert status.phase is Phase.IN_REVIEW and status.counters.attempts == 1
        assert status.review_waiting == "waiting for an approving review"
        reads = [s for s in scheduled(during, "forge_read") if s.event_id > len(before.events)]
        assert len(reads) == int(wait.total_seconds() // poll_s)
        watch_timers = [t for t in timers(during) if t.event_id > len(before.events)]
        assert {(t.seconds, t.summary) for t in watch_timers} == {(float(poll_s), "review poll")}
        assert len(scheduled(during, "run_agent")) == 1
        await assert_replays(during)

        halted = await advance_until(
            ts_env,
            lambda: issue_status(handle),
            lambda s: s.phase is Phase.HALTED,
            step=timedelta(hours=6),
            what="the time cap",
        )
        assert halted.halt is not None
        assert halted.halt.category is HaltCategory.REVIEW_TIME_CAP
        assert halted.review is not None
        assert halted.halt.at - halted.review.started_at >= timedelta(days=2)
        assert kit.state_of("TS-R") == "Human Review"  # a halt closes nothing
        await assert_replays(await handle.fetch_history())


# ---------------------------------------------------------------------------------------------
# LineWorkflow
# ---------------------------------------------------------------------------------------------


async def test_line_ticks_every_interval_and_its_loop_window_forgets_old_dispatches(
    ts_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    interval_s = 3600
    window_s = 24 * 3600
    kit = make_line(
        tmp_path,
        {
            "polling": {"interval_s": interval_s},
            "guards": {"loop": {"max_dispatches": 1, "window_s": window_s}},
        },
    )
    kit.add_issue("TS-4", "ship")

    async with (
        factory(ts_env.client) as f,
        terminated_on_exit(ts_env.client, line_workflow_id(kit.line), kit.workflow_id("TS-4")),
    ):
        line = await start_line(f, kit)

        def shipped_after(moment: datetime) -> Callable[[LineStatus], bool]:
            return lambda s: any(
                e.identifier == "TS-4" and e.phase is Phase.SHIPPED and e.finished_at > moment
                for e in s.finished
            )

        first = await wait_for(
            lambda: line_status(line), shipped_after(datetime.min.replace(tzinfo=UTC)), "ship 1"
        )
        first_dispatch = await ts_env.get_current_time()
        # The tick the final report asked for has run: from here on only the timer ticks.
        settled = await wait_for(lambda: line_status(line), lambda s: s.idle, "idle after ship 1")

        # A day and more without work: one tick per interval, each behind a timer of interval_s.
        idle = timedelta(seconds=window_s + interval_s + interval_s // 2)
        ticks_before = settled.ticks
        history_before = len((await line.fetch_history()).events)
        await ts_env.sleep(idle)
        idle_status = await line_status(line)
        assert idle_status.ticks - ticks_before == int(idle.total_seconds() // interval_s)
        tick_timers = [t for t in timers(await line.fetch_history()) if t.event_id > history_before]
        assert {(t.seconds, t.summary) for t in tick_timers} == {(float(interval_s), "next tick")}
        assert not idle_status.halted

        # Reopened after the window: the first dispatch is forgotten, the issue runs again. (The
        # shipped change was reverted upstream and the host recycled, so it starts afresh.)
        shutil.rmtree(kit.workspace("TS-4"))
        run_git(kit.origin, "branch", "-D", "jidoka/TS-4")
        assert await ts_env.get_current_time() - first_dispatch > timedelta(seconds=window_s)
        kit.set_state("TS-4", "Todo")  # a person reopens it
        reopened_at = max(e.finished_at for e in first.finished)
        await line.signal(LineWorkflow.refresh)
        second = await wait_for(
            lambda: line_status(line),
            lambda s: s.halted or shipped_after(reopened_at)(s),
            "ship 2 after the window",
        )
        assert not second.halted, second.open_halts
        assert kit.state_of("TS-4") == "Done"

        # Reopened again inside the window: the loop detector halts the line, no third run.
        kit.set_state("TS-4", "Todo")  # a person reopens it
        await line.signal(LineWorkflow.refresh)
        halted = await wait_for(
            lambda: line_status(line),
            lambda s: s.halted or any(e.identifier == "TS-4" for e in s.running),
            "loop detected",
        )
        assert halted.halted, "dispatched a third time inside the loop window"
        await ts_env.sleep(timedelta(hours=2))
        after = await line_status(line)
    assert [h.category for h in halted.open_halts] == [HaltCategory.LOOP_DETECTED]
    assert halted.open_halts[0].issue_identifier == "TS-4"
    assert after.halted and kit.state_of("TS-4") == "Todo"
    assert not any(e.identifier == "TS-4" for e in after.running)
