"""LineWorkflow on the real dev server: dispatch order and limits, reconciliation on tracker
edits, the andon lock, guards, config reloads and continue-as-new."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import (
    Client,
    WorkflowExecutionDescription,
    WorkflowHistory,
    WorkflowUpdateFailedError,
)
from temporalio.contrib.pydantic import pydantic_data_converter

from jidoka import search_attributes as sa
from jidoka.outcomes import HaltCategory, HaltSource, Outcome, Phase
from jidoka.payloads import HaltRequest, IssueReport, LineStatus, ResumeRequest, ResumeResult
from runtime.history import steps
from tests.histories import assert_replays
from tests.support.git import run_git
from tests.support.linekit import (
    eventually,
    factory,
    line_status,
    live_line_status,
    make_line,
    retry_and_resume,
    start_line,
    ticks_later,
    wait_for_phase,
)
from workflows.issue import IssueWorkflow
from workflows.line import LineWorkflow


def finished_phases(status: LineStatus) -> dict[str, Phase]:
    return {f.identifier: f.phase for f in status.finished}


async def test_dispatch_order_and_concurrency(client: Client, tmp_path: Path) -> None:
    kit = make_line(
        tmp_path,
        {"concurrency": {"max_agents": 2}, "agent": {"env": {"JIDOKA_SCRIPTED_PACE": "0.15"}}},
    )
    kit.add_issue("L-5", "ship", priority=3)
    kit.add_issue("L-4", "ship", priority=1, created_at="2026-01-02T00:00:00Z")
    kit.add_issue("L-3", "ship", priority=1, created_at="2026-01-01T00:00:00Z")
    kit.add_issue("L-2", "ship")  # no priority: last
    kit.add_issue("L-1", "ship", priority=2)
    async with factory(client) as f:
        handle = await start_line(f, kit)
        peak = 0

        async def watch() -> LineStatus:
            nonlocal peak
            status = await line_status(handle)
            peak = max(peak, len([e for e in status.running if not e.phase.is_parked]))
            return status

        status = await eventually(watch, lambda s: len(s.finished) == 5, what="all shipped")
        await handle.terminate("test done")
    assert peak <= 2
    order = [f.identifier for f in sorted(status.finished, key=lambda f: f.finished_at)]
    dispatched = sorted(status.finished, key=lambda f: f.finished_at)
    assert {f.phase for f in dispatched} == {Phase.SHIPPED}
    # Highest priority first, oldest first among equals; unprioritised last.
    assert order.index("L-3") < order.index("L-1") and order.index("L-4") < order.index("L-5")
    assert order[-1] in ("L-2", "L-5")
    assert all(kit.state_of(i) == "Done" for i in ("L-1", "L-2", "L-3", "L-4", "L-5"))


async def test_a_halt_verdict_stops_all_new_dispatch_until_resumed_with_a_root_cause(
    client: Client, tmp_path: Path
) -> None:
    kit = make_line(tmp_path, {"concurrency": {"max_agents": 1}})
    kit.add_issue("H-1", "halt", priority=1)
    kit.add_issue("H-2", "ship", priority=2)
    kit.add_issue("H-3", "ship", priority=3)
    async with factory(client) as f:
        handle = await start_line(f, kit)
        status = await eventually(
            lambda: line_status(handle), lambda s: s.halted, what="line halted"
        )
        assert status.open_halts[0].category is HaltCategory.HALT_PRODUCTION
        assert status.open_halts[0].source is HaltSource.AGENT
        assert status.open_halts[0].issue_identifier == "H-1"
        # Nothing new is dispatched while halted.
        await handle.signal(LineWorkflow.refresh)
        await asyncio.sleep(2.5)
        assert kit.state_of("H-2") == "Todo" and kit.state_of("H-3") == "Todo"
        # A resume without a root cause is refused visibly, by signal and by update.
        await handle.signal(LineWorkflow.resume, ResumeRequest(operator="ops"))
        status = await eventually(
            lambda: line_status(handle), lambda s: s.notice is not None, what="refusal notice"
        )
        assert status.halted and "root_cause" in (status.notice or "")
        with pytest.raises(WorkflowUpdateFailedError):
            await handle.execute_update(
                LineWorkflow.resume_update, ResumeRequest(root_cause="", operator="ops")
            )
        described = await handle.describe()
        assert described.typed_search_attributes.get(sa.HALTED) is True
        result = await handle.execute_update(
            "resume",
            ResumeRequest(root_cause="staging db restored", operator="ops"),
            result_type=ResumeResult,
        )
        assert isinstance(result, ResumeResult) and result.accepted
        status = await eventually(
            lambda: line_status(handle),
            lambda s: {"H-2", "H-3"} <= {f.identifier for f in s.finished},
            what="the rest shipped",
        )
        await handle.terminate("test done")
    assert kit.state_of("H-2") == "Done" and kit.state_of("H-3") == "Done"
    assert kit.state_of("H-1") == "In Progress"  # the halted issue waits for its own decision
    resolved = status.halts[0]
    assert resolved.root_cause == "staging db restored" and resolved.resolved_by == "ops"


async def test_operator_halt_signal_and_issue_gating(client: Client, tmp_path: Path) -> None:
    kit = make_line(tmp_path, {"concurrency": {"max_agents": 1}})
    kit.add_issue("O-1", "ship")
    async with factory(client) as f:
        handle = await start_line(f, kit)
        await handle.signal(LineWorkflow.halt, HaltRequest(reason="deploy freeze", operator="ops"))
        status = await eventually(lambda: line_status(handle), lambda s: s.halted, what="halted")
        assert status.open_halts[0].source is HaltSource.OPERATOR
        await asyncio.sleep(2)
        assert kit.state_of("O-1") == "Todo"
        await handle.signal(
            LineWorkflow.resume, ResumeRequest(root_cause="freeze lifted", operator="ops")
        )
        await eventually(
            lambda: line_status(handle), lambda s: len(s.finished) == 1, what="shipped after resume"
        )
        await handle.terminate("test done")
    assert kit.state_of("O-1") == "Done"


async def test_reconciliation_cancels_on_tracker_edits(client: Client, tmp_path: Path) -> None:
    kit = make_line(
        tmp_path, {"agent": {"stall_timeout_s": 60, "silence_timeout_s": 60, "turn_timeout_s": 120}}
    )
    kit.add_issue("R-1", "spawn-and-stall")
    kit.add_issue("R-2", "spawn-and-stall")
    async with factory(client) as f:
        handle = await start_line(f, kit)
        await eventually(
            lambda: live_line_status(client, handle),
            lambda s: len([e for e in s.running if e.phase is Phase.RUNNING_AGENT]) == 2,
            what="both agents running",
        )
        # A person closes R-1 and parks R-2 somewhere the line does not work on.
        kit.set_state("R-1", "Cancelled")
        kit.set_state("R-2", "Someday")
        status = await eventually(
            lambda: line_status(handle), lambda s: len(s.finished) == 2, what="both released"
        )
        await handle.terminate("test done")
    assert finished_phases(status) == {"R-1": Phase.RELEASED, "R-2": Phase.RELEASED}
    assert not kit.workspace("R-1").exists()  # terminal: preserved, then cleaned
    assert kit.workspace("R-2").exists()  # not active: stopped, workspace kept
    assert kit.state_of("R-1") == "Cancelled" and kit.state_of("R-2") == "Someday"


async def test_a_done_state_nobody_shipped_halts_the_line_once_a_second_read_confirms_it(
    client: Client, tmp_path: Path
) -> None:
    """The tracker is read inside the line's workflow task, so an issue's report of its own
    move can still be on its way when the read already sees the move (seen at 200 issues: a
    ship read as "done without a ship", and the line halted). A stopping state is acted on
    when the next reconciliation, after a timer that lets the reports in, sees it again
    (``policy.confirm_stop``): a person's Done still halts the line, a few seconds later."""
    patient = {"stall_timeout_s": 60, "silence_timeout_s": 60, "turn_timeout_s": 120}
    kit = make_line(tmp_path, {"agent": patient, "polling": {"interval_s": 30}})
    kit.add_issue("U-1", "spawn-and-stall")
    async with factory(client) as f:
        handle = await start_line(f, kit)
        await eventually(
            lambda: live_line_status(client, handle),
            lambda s: [e.phase for e in s.running] == [Phase.RUNNING_AGENT],
            what="the agent running",
        )
        before = (await line_status(handle)).ticks
        kit.set_state("U-1", "Done")
        # One refresh: the line reads Done once, then confirms it by itself, well before its
        # 30 s polling interval.
        await handle.signal(LineWorkflow.refresh)
        halted = await eventually(
            lambda: line_status(handle), lambda s: s.halted, timeout=20, what="halt"
        )
        await handle.terminate("test done")
        await client.get_workflow_handle(kit.workflow_id("U-1")).terminate("test done")
    assert [h.category for h in halted.open_halts] == [HaltCategory.DONE_WITHOUT_SHIP]
    assert halted.ticks >= before + 2, "acted on the first read"
    assert [(e.identifier, e.cancel_sent, e.unconfirmed) for e in halted.running] == [
        ("U-1", True, None)
    ]


async def test_an_invalid_edit_keeps_the_last_good_config(client: Client, tmp_path: Path) -> None:
    kit = make_line(tmp_path, {"agent": {"env": {"JIDOKA_SCRIPTED_PACE": "0.6"}}})
    kit.add_issue("C-1", "ship")
    async with factory(client) as f:
        handle = await start_line(f, kit)
        issue = client.get_workflow_handle(kit.workflow_id("C-1"))
        await wait_for_phase(issue, Phase.RUNNING_AGENT, what="C-1 running")
        good = kit.workflow_md.read_text()
        kit.workflow_md.write_text(good.replace("  done_state: Done\n", ""))
        await handle.signal(LineWorkflow.refresh)
        status = await eventually(
            lambda: line_status(handle),
            lambda s: s.config_error is not None,
            what="config error shown",
        )
        # A new issue while the file is bad (after a tick that read it, so no tick in flight
        # still holds the good config).
        kit.add_issue("C-2", "ship")
        await handle.signal(LineWorkflow.refresh)
        await ticks_later(handle, 2)
        assert "tracker.done_state" in (status.config_error or "")
        described = await handle.describe()
        assert described.typed_search_attributes.get(sa.CONFIG_INVALID) is True
        # What runs keeps the last good config, but its judges moved under it: it may not ship
        # without a person; and nothing new starts from a bad file.
        status = await eventually(
            lambda: line_status(handle), lambda s: s.halted, what="C-1 stopped by the edit"
        )
        c1 = await issue.query(IssueWorkflow.status)
        assert c1.last_outcome is Outcome.WORKFLOW_CHANGED
        assert [h.category for h in status.open_halts] == [HaltCategory.WORKFLOW_CHANGED]
        assert kit.state_of("C-1") == "In Progress" and kit.state_of("C-2") == "Todo"
        kit.workflow_md.write_text(good)
        await retry_and_resume(issue, handle, "a bad edit, reverted")
        await eventually(
            lambda: line_status(handle),
            lambda s: len(s.finished) == 2,
            what="C-1 and C-2 shipped once fixed",
        )
        described = await handle.describe()
        assert described.typed_search_attributes.get(sa.CONFIG_INVALID) is False
        await handle.terminate("test done")
    assert kit.state_of("C-1") == "Done" and kit.state_of("C-2") == "Done"


async def test_continue_as_new_keeps_running_issues_halts_and_budgets(
    client: Client, tmp_path: Path
) -> None:
    kit = make_line(
        tmp_path,
        {
            "agent": {"stall_timeout_s": 60, "silence_timeout_s": 60, "turn_timeout_s": 120},
            "concurrency": {"max_agents": 2},
        },
    )
    kit.add_issue("N-1", "ship")
    kit.add_issue("N-2", "spawn-and-stall")
    async with factory(client) as f:
        handle = await start_line(f, kit, history_limit=60)
        first_run = (await handle.describe()).run_id
        await eventually(
            lambda: line_status(handle),
            lambda s: len(s.finished) == 1 and s.fleet.tokens_total > 0,
            what="N-1 shipped",
        )
        await handle.signal(
            LineWorkflow.halt, HaltRequest(reason="keep me across runs", operator="ops")
        )
        await eventually(lambda: line_status(handle), lambda s: s.halted, what="halted")
        before = await line_status(handle)

        async def refreshed() -> WorkflowExecutionDescription:
            await handle.signal(LineWorkflow.refresh)  # each tick grows the history
            return await client.get_workflow_handle(handle.id).describe()

        described = await eventually(
            refreshed, lambda d: d.run_id != first_run, what="continued as new"
        )
        assert described.run_id != first_run
        after = await client.get_workflow_handle(handle.id).query(LineWorkflow.status)
        assert after.halted and after.open_halts[0].reason == "keep me across runs"
        assert [e.identifier for e in after.running] == ["N-2"]
        assert after.fleet.tokens_total == before.fleet.tokens_total > 0
        assert {e.identifier for e in after.finished} == {"N-1"}
        await client.get_workflow_handle(handle.id).terminate("test done")
        await client.get_workflow_handle(kit.workflow_id("N-2")).terminate("test done")


async def test_fleet_budget_pulls_the_quota_wall(client: Client, tmp_path: Path) -> None:
    kit = make_line(
        tmp_path,
        {"concurrency": {"max_agents": 1}, "budgets": {"fleet": {"tokens_per_hour": 1000}}},
    )
    kit.add_issue("Q-1", "ship", priority=1)
    kit.add_issue("Q-2", "ship", priority=2)
    async with factory(client) as f:
        handle = await start_line(f, kit)
        status = await eventually(
            lambda: line_status(handle), lambda s: s.halted, what="quota wall"
        )
        await handle.terminate("test done")
    assert status.open_halts[0].category is HaltCategory.QUOTA_WALL
    assert status.fleet.tokens_last_hour >= 1000
    assert kit.state_of("Q-2") == "Todo"


async def test_loop_detector_halts_a_bouncing_issue(client: Client, tmp_path: Path) -> None:
    kit = make_line(tmp_path, {"guards": {"loop": {"max_dispatches": 1, "window_s": 3600}}})
    kit.add_issue("B-1", "ship")
    async with factory(client) as f:
        handle = await start_line(f, kit)
        await eventually(
            lambda: line_status(handle), lambda s: len(s.finished) == 1, what="first ship"
        )
        kit.set_state("B-1", "Todo")  # someone (or an automation) reopens it
        await handle.signal(LineWorkflow.refresh)
        status = await eventually(
            lambda: line_status(handle), lambda s: s.halted, what="loop detected"
        )
        await handle.terminate("test done")
    assert status.open_halts[0].category is HaltCategory.LOOP_DETECTED
    assert status.open_halts[0].issue_identifier == "B-1"


async def test_startup_resets_stale_claims_and_cleans_terminal_workspaces(
    client: Client, tmp_path: Path
) -> None:
    kit = make_line(tmp_path)
    kit.add_issue("S-1", "ship", state="In Progress")  # claimed by a run that no longer exists
    kit.add_issue("S-2", "ship", state="Done")
    stale = kit.workspace("S-2")
    run_git(stale.parent if stale.parent.exists() else tmp_path, "--version")
    stale.parent.mkdir(parents=True, exist_ok=True)
    run_git(stale.parent, "clone", "-q", str(kit.origin), stale.name)
    run_git(stale, "checkout", "-q", "-b", "jidoka/S-2")
    (stale / "unpushed.txt").write_text("work nobody pushed\n")
    run_git(stale, "add", "-A")
    run_git(stale, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "unpushed")
    async with factory(client) as f:
        handle = await start_line(f, kit)
        status = await eventually(
            lambda: line_status(handle), lambda s: len(s.finished) == 1, what="S-1 shipped"
        )
        await handle.terminate("test done")
    assert kit.state_of("S-1") == "Done"
    assert "claim reset" in kit.issue_text("S-1")
    assert not stale.exists()
    preserved = run_git(kit.origin, "branch", "--list", "abandoned/S-2-*")
    assert preserved, status.startup_report


async def test_tracker_requests_per_tick_do_not_grow_with_running_issues(
    client: Client, tmp_path: Path
) -> None:
    kit = make_line(
        tmp_path,
        {
            "agent": {"stall_timeout_s": 60, "silence_timeout_s": 60, "turn_timeout_s": 120},
            "concurrency": {"max_agents": 6},
        },
    )
    for n in range(6):
        kit.add_issue(f"P-{n}", "spawn-and-stall")
    async with factory(client) as f:
        handle = await start_line(f, kit)
        # The host has fewer agent slots than the line dispatches: the rest wait, visibly.
        busy = (Phase.RUNNING_AGENT, Phase.WAITING_FOR_SLOT)
        await eventually(
            lambda: live_line_status(client, handle),
            lambda s: len([e for e in s.running if e.phase in busy]) == 6,
            what="six running or waiting for a slot",
        )
        await ticks_later(handle, 3)
        history = await handle.fetch_history()
        await handle.terminate("test done")
        for n in range(6):
            await client.get_workflow_handle(kit.workflow_id(f"P-{n}")).terminate("test done")
    ran = [step.name for step in steps(history.events)]
    tracker_calls = [name for name in ran if name.startswith("tracker_")]
    ticks_seen = ran.count("reload_workflow_config")
    # Per tick: one batch refresh by ids and one candidate fetch, whatever the number running.
    assert len(tracker_calls) <= 2 * ticks_seen + 1
    assert tracker_calls.count("tracker_fetch_issue") == 0


@pytest.mark.parametrize("identifier", ["W-1"])
async def test_paused_issue_wakes_when_moved_back(
    client: Client, tmp_path: Path, identifier: str
) -> None:
    kit = make_line(tmp_path)
    kit.add_issue(identifier, "ask")
    async with factory(client) as f:
        handle = await start_line(f, kit)
        issue = client.get_workflow_handle(kit.workflow_id(identifier))
        await wait_for_phase(issue, Phase.PAUSED, what="paused")
        kit.set_state(identifier, "Todo")  # a person answered in the tracker and moved it back
        await eventually(
            lambda: line_status(handle), lambda s: len(s.finished) == 1, what="shipped after wake"
        )
        await handle.terminate("test done")
    assert kit.state_of(identifier) == "Done"


async def test_an_exhausted_rate_limit_gates_dispatch_until_it_resets(
    client: Client, tmp_path: Path
) -> None:
    kit = make_line(tmp_path)
    kit.add_issue("R-1", "rate-limited")
    async with factory(client) as f:
        handle = await start_line(f, kit)
        gated = await eventually(
            lambda: line_status(handle),
            lambda s: s.rate_gate_until is not None,
            what="the rate-limit gate",
        )
        gate = gated.rate_gate_until
        assert gate is not None
        kit.add_issue("R-2", "ship")  # arrives while the provider is limiting the fleet
        await handle.signal(LineWorkflow.refresh)
        status = await eventually(
            lambda: line_status(handle), lambda s: len(s.finished) == 2, what="both shipped"
        )
        r1 = await client.get_workflow_handle(kit.workflow_id("R-1")).query(IssueWorkflow.status)
        r2 = await client.get_workflow_handle(kit.workflow_id("R-2")).describe()
        await handle.terminate("test done")
    assert finished_phases(status) == {"R-1": Phase.SHIPPED, "R-2": Phase.SHIPPED}
    assert [a.outcome for a in r1.attempts] == [Outcome.RATE_LIMITED, Outcome.SHIPPED]
    # Neither the limited issue's retry nor the newcomer started before the reset time.
    assert r1.attempts[1].started_at >= gate
    assert r2.start_time >= gate
    assert kit.state_of("R-1") == kit.state_of("R-2") == "Done"


CYCLES = 8


async def test_a_resume_right_after_a_halt_reaches_every_issue_after_the_halt(
    client: Client, tmp_path: Path
) -> None:
    kit = make_line(
        tmp_path,
        {
            "agent": {"stall_timeout_s": 120, "silence_timeout_s": 120, "turn_timeout_s": 300},
            "concurrency": {"max_agents": 6},
        },
    )
    identifiers = [f"H-{n}" for n in range(1, 7)]
    for identifier in identifiers:
        kit.add_issue(identifier, "silent-stall")  # agents that stay running
    async with factory(client) as f:
        handle = await start_line(f, kit)
        issues = [client.get_workflow_handle(kit.workflow_id(i)) for i in identifiers]

        async def phases() -> list[Phase]:
            return [(await h.query(IssueWorkflow.status)).phase for h in issues]

        agent_step = {Phase.RUNNING_AGENT, Phase.WAITING_FOR_SLOT}  # two slots on this host
        await eventually(
            phases, lambda p: set(p) <= agent_step, what="six issues in their agent step"
        )
        # Back to back, cycle after cycle: each resume arrives while its halt is still being
        # sent issue by issue, and must never overtake it at any issue.
        for cycle in range(CYCLES):
            await handle.signal(
                LineWorkflow.halt,
                HaltRequest(reason=f"freeze {cycle}", source=HaltSource.OPERATOR, operator="ops"),
            )
            await handle.signal(
                LineWorkflow.resume, ResumeRequest(root_cause="false alarm", operator="ops")
            )

        async def delivered() -> int:
            history = await handle.fetch_history()
            return sum(
                1
                for e in history.events
                if e.event_type == EventType.EVENT_TYPE_EXTERNAL_WORKFLOW_EXECUTION_SIGNALED
            )

        # Every broadcast delivered (six halts and six resumes a cycle): nothing is in flight.
        await eventually(delivered, lambda n: n == 12 * CYCLES, what="broadcasts delivered")
        status = await line_status(handle)
        left_halted = [
            identifier
            for identifier, h in zip(identifiers, issues, strict=True)
            if (await h.query(IssueWorkflow.status)).line_halted
        ]
        await handle.terminate("test done")
        for h in issues:
            await h.terminate("test done")
    assert not status.halted
    assert left_halted == [], "halted on a running line"
    assert [h.root_cause for h in status.halts] == ["false alarm"] * CYCLES


def reports_sent(history: WorkflowHistory) -> list[IssueReport]:
    """The ``issue_report`` signals an issue's history shows it sent to its line."""
    sent: list[IssueReport] = []
    for event in history.events:
        if event.HasField("signal_external_workflow_execution_initiated_event_attributes"):
            attrs = event.signal_external_workflow_execution_initiated_event_attributes
            if attrs.signal_name == "issue_report":
                (report,) = pydantic_data_converter.payload_converter.from_payloads(
                    attrs.input.payloads, [IssueReport]
                )
                assert isinstance(report, IssueReport)
                sent.append(report)
    return sent


@pytest.mark.parametrize("fleet_budget", [False, True], ids=["no-fleet-budget", "fleet-budget"])
async def test_an_issue_reports_to_its_line_only_what_the_line_acts_on(
    client: Client, tmp_path: Path, fleet_budget: bool
) -> None:
    """Each report is a signal, paid for in both histories. An issue whose first attempt breaks
    the tests and whose second ships sends its ship (before its own move to the done state,
    which the line must not read as a person's edit) and its end; both attempts' tokens ride
    with the ship, or reach the line attempt by attempt when a fleet budget counts them. The
    progress in between is in its search attribute, and the operator's view shows it."""
    budgets = {"budgets": {"fleet": {"tokens_per_hour": 10_000_000}}} if fleet_budget else {}
    verify = 'sleep 1; "$JIDOKA_PYTHON" -m unittest discover -q'
    kit = make_line(tmp_path, {"hooks": {"verify": verify}, **budgets})
    kit.add_issue("S-1", "breaks-tests-then-fixes")
    async with factory(client) as f:
        handle = await start_line(f, kit)
        live = await eventually(
            lambda: live_line_status(client, handle),
            lambda s: any(e.phase is Phase.VERIFYING for e in s.running),
            what="the operator's view shows the issue verifying",
        )
        heard = await line_status(handle)
        status = await eventually(
            lambda: line_status(handle), lambda s: len(s.finished) == 1, what="shipped"
        )
        issue = await client.get_workflow_handle(kit.workflow_id("S-1")).fetch_history()
        await handle.terminate("test done")
    assert [e.phase for e in live.running] == [Phase.VERIFYING]
    # The line itself never heard of the verification: no signal was spent on it.
    assert [e.phase for e in heard.running] != [Phase.VERIFYING]
    shipped = status.finished[0]
    assert shipped.phase is Phase.SHIPPED
    await assert_replays(issue)
    sent = reports_sent(issue)
    ship, end = sent[-2:]
    assert (ship.phase, ship.moving_to, ship.attempt) == (Phase.SHIPPING, "Done", 2)
    assert end.phase is Phase.SHIPPED and end.final
    assert sum(r.tokens_delta for r in sent) == shipped.tokens > 0
    with_tokens = [r for r in sent if r.tokens_delta > 0]
    if fleet_budget:
        assert len(with_tokens) == 2, sent  # one per attempt, as each ended
    else:
        assert [r.phase for r in sent] == [Phase.SHIPPING, Phase.SHIPPED]
        assert len(with_tokens) == 1, sent
