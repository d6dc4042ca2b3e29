"""Jidoka's own metrics (``jidoka_*``, docs/metrics.md) on the worker's Prometheus endpoint.

Everything is real: a ``jidoka worker`` process with ``JIDOKA_METRICS_BIND`` (its metrics
Runtime serves the whole process, so the worker runs in its own, as deployed, never in the test
process's shared one), the session's dev server, a line on a local board with ``pricing:``, the
scripted agent, and an HTTP scrape of ``/metrics``. The replay and slot checks give their own
Runtime with Prometheus to a replayer and to a set of slots, on ports of their own.

What is proven:

* the figures scraped are the issues' own: tokens by kind and by outcome as their attempts
  report them, the money hand-computed from that usage at the configured prices (in millionths),
  one ship, the attempts by outcome, the agent time and slot wait of each attempt, the host's
  slots all free again;
* a halt is counted once where it was raised: an issue's ``no_progress`` halt, which the line
  records too, is one halt; an operator's halt of the line is one more;
* labels are the catalog's (and the SDK's own), never an issue identifier;
* the host's slot gauges follow its slots: capacity, held, waiting, and free again;
* replaying every recorded history (``tests/histories/``) through a Runtime with Prometheus
  records no ``jidoka_*`` figure: the workflows' meter is the SDK's replay-safe one.
"""

from __future__ import annotations

import asyncio
import re
import urllib.request
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from activities.agent.slots import AgentSlots
from activities.metrics import watch_slots
from cli.report import build_report
from jidoka import metrics
from jidoka.keys import line_workflow_id
from jidoka.models import AttemptRecord, TokenUsage
from jidoka.outcomes import HaltCategory, HaltSource, Outcome, Phase
from jidoka.payloads import HaltRequest, IssueStatus, LineWorkflowInput
from jidoka.report import Window
from tests.histories import load, recorded
from tests.support.linekit import LineKit, eventually, issue_status, line_status, make_line
from tests.support.ports import free_port
from tests.support.workerproc import worker_fleet
from worker import WORKFLOWS, metrics_runtime
from workflows.line import LineWorkflow

DEADLINE_S = 90.0

PRICES = {"input": 1.0, "cached_input": 0.1, "output": 4.0}
"""Per million tokens, in USD."""

SDK_LABELS = {"service_name", "namespace", "task_queue", "workflow_type", "activity_type", "le"}
"""What the SDK adds to a figure (and ``le``, a histogram bucket's bound)."""


# ---------------------------------------------------------------------------------------------
# Reading /metrics
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sample:
    name: str
    labels: dict[str, str]
    value: float


_SAMPLE = re.compile(r"^([A-Za-z_:][A-Za-z0-9_:]*)(?:\{(.*)\})?\s+(\S+)$")
_LABEL = re.compile(r'([A-Za-z_][A-Za-z0-9_]*)="((?:[^"\\]|\\.)*)"')


def scrape(port: int) -> list[Sample]:
    """Every sample of the Prometheus text at ``http://127.0.0.1:<port>/metrics``."""
    url = f"http://127.0.0.1:{port}/metrics"
    with urllib.request.urlopen(url, timeout=10) as response:
        assert response.status == 200
        text = response.read().decode()
    samples: list[Sample] = []
    for line in text.splitlines():
        match = _SAMPLE.match(line)
        if match is not None:
            labels = dict(_LABEL.findall(match.group(2) or ""))
            samples.append(Sample(match.group(1), labels, float(match.group(3))))
    return samples


def total(samples: Iterable[Sample], name: str, **labels: str) -> float:
    """The sum of the samples of ``name`` whose labels include ``labels`` (0 when none)."""
    return sum(
        s.value
        for s in samples
        if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
    )


def base_name(name: str) -> str:
    """A histogram's series (``_bucket``, ``_sum``, ``_count``) under the histogram's name."""
    histograms = {m.name for m in metrics.ALL if m.kind is metrics.Kind.HISTOGRAM}
    for suffix in ("_bucket", "_sum", "_count"):
        if name.endswith(suffix) and name.removesuffix(suffix) in histograms:
            return name.removesuffix(suffix)
    return name


def jidoka_samples(samples: Iterable[Sample]) -> list[Sample]:
    return [s for s in samples if s.name.startswith("jidoka_")]


async def scraped(port: int) -> list[Sample]:
    return await asyncio.to_thread(scrape, port)


# ---------------------------------------------------------------------------------------------
# The figures the issues' own status gives
# ---------------------------------------------------------------------------------------------


def kinds_of(usage: TokenUsage) -> dict[str, int]:
    """Tokens by the metric's kinds: ``input`` is the fresh part of the prompt."""
    return {
        "input": usage.input_tokens - usage.cached_input_tokens,
        "cached_input": usage.cached_input_tokens,
        "output": usage.output_tokens,
    }


def hand_cost(usage: TokenUsage) -> float:
    """What ``usage`` costs at :data:`PRICES`, computed here rather than by the code under test."""
    kinds = kinds_of(usage)
    return (
        kinds["input"] * PRICES["input"]
        + kinds["cached_input"] * PRICES["cached_input"]
        + kinds["output"] * PRICES["output"]
    ) / 1_000_000


def attempts_of(*statuses: IssueStatus) -> list[AttemptRecord]:
    return [a for s in statuses for a in s.attempts]


# ---------------------------------------------------------------------------------------------
# A line at work, scraped
# ---------------------------------------------------------------------------------------------


@pytest.mark.slow
async def test_the_worker_exports_the_lines_own_figures(client: Client, tmp_path: Path) -> None:
    kit: LineKit = make_line(
        tmp_path, {"pricing": {"model": "demo-model", "models": {"demo-model": PRICES}}}
    )
    kit.add_issue("M-1", "ship")
    port = free_port()
    async with worker_fleet(client, tmp_path / "logs") as fleet:
        await fleet.start(
            f"metrics-{uuid.uuid4().hex[:6]}",
            {"JIDOKA_METRICS_BIND": f"127.0.0.1:{port}", "JIDOKA_MAX_AGENTS": "2"},
        )
        line = await client.start_workflow(
            LineWorkflow.run,
            LineWorkflowInput(workflow_path=str(kit.workflow_md)),
            id=line_workflow_id(kit.line),
            task_queue=fleet.task_queue,
        )
        # One issue ships first, then one hallucinates its success and halts the line.
        await eventually(
            lambda: line_status(line),
            lambda s: any(f.identifier == "M-1" for f in s.finished),
            timeout=DEADLINE_S,
            what="M-1 shipped",
        )
        kit.add_issue("M-2", "hallucinate")
        await line.signal(LineWorkflow.refresh)
        await eventually(
            lambda: line_status(line),
            lambda s: s.halted and any(h.category is HaltCategory.NO_PROGRESS for h in s.halts),
            timeout=DEADLINE_S,
            what="the line halted by M-2",
        )
        # An operator pulls the cord of the halted line too: a halt of its own.
        await line.signal(
            LineWorkflow.halt,
            HaltRequest(reason="test: stop everything", source=HaltSource.OPERATOR, operator="ops"),
        )
        await eventually(
            lambda: line_status(line),
            lambda s: sum(h.category is HaltCategory.HALT_PRODUCTION for h in s.halts) == 1,
            timeout=DEADLINE_S,
            what="the operator's halt recorded",
        )
        shipped = await issue_status(client.get_workflow_handle(kit.workflow_id("M-1")))
        halted = await issue_status(client.get_workflow_handle(kit.workflow_id("M-2")))
        samples = await scraped(port)
        # The report of the same line, read from its histories while the worker answers.
        now = datetime.now(UTC)
        report = await build_report(
            client, kit.line, Window(since=now - timedelta(hours=1), until=now), now=now
        )
        await line.terminate("test over")

    assert shipped.phase is Phase.SHIPPED and shipped.last_outcome is Outcome.SHIPPED
    assert halted.phase is Phase.HALTED and halted.last_outcome is Outcome.NO_PROGRESS
    attempts = attempts_of(shipped, halted)
    assert [a.outcome for a in attempts] == [Outcome.SHIPPED, Outcome.NO_PROGRESS]
    ours = {"line": kit.line}

    # Tokens: by kind, as the attempts reported them, and by the outcome they bought.
    for kind in ("input", "cached_input", "output"):
        expected = sum(kinds_of(a.usage)[kind] for a in attempts if a.usage is not None)
        assert expected > 0, kind
        assert total(samples, metrics.TOKENS.name, kind=kind, **ours) == expected, kind
    reported = shipped.counters.tokens.total_tokens + halted.counters.tokens.total_tokens
    assert total(samples, metrics.TOKENS.name, **ours) == reported
    for status, outcome in ((shipped, "shipped"), (halted, "no_progress")):
        spent = total(samples, metrics.TOKENS.name, outcome=outcome, **ours)
        assert spent == status.counters.tokens.total_tokens, outcome
    assert (
        total(samples, metrics.TOKENS.name, model="demo-model", agent_kind="scripted") == reported
    )

    # Money: hand-computed from the usage at the configured prices, in millionths.
    for attempt in attempts:
        assert attempt.usage is not None and attempt.cost is not None
        assert attempt.cost == pytest.approx(hand_cost(attempt.usage), abs=1e-9)
    micros = sum(round(hand_cost(a.usage) * 1_000_000) for a in attempts if a.usage is not None)
    assert micros > 0
    assert total(samples, metrics.COST.name, currency="USD", **ours) == micros
    assert total(samples, metrics.COST.name, outcome="shipped", **ours) == round(
        hand_cost(shipped.counters.tokens) * 1_000_000
    )
    assert shipped.counters.cost + halted.counters.cost == pytest.approx(micros / 1e6, abs=2e-6)
    assert total(samples, metrics.COST_UNKNOWN.name, **ours) == 0

    # Attempts, ships, halts (each once, where it was raised).
    assert total(samples, metrics.ATTEMPTS.name, outcome="shipped", **ours) == 1
    assert total(samples, metrics.ATTEMPTS.name, outcome="no_progress", **ours) == 1
    assert total(samples, metrics.ATTEMPTS.name, **ours) == 2
    assert total(samples, metrics.SHIPS.name, **ours) == 1
    assert total(samples, metrics.HALTS.name, category="no_progress", **ours) == 1
    assert total(samples, metrics.HALTS.name, category="halt_production", **ours) == 1
    assert total(samples, metrics.HALTS.name, **ours) == 2

    # Time: each attempt's agent seconds and slot wait, as its record has them.
    seconds = metrics.AGENT_SECONDS.name
    assert total(samples, f"{seconds}_count", **ours) == 2
    assert total(samples, f"{seconds}_sum", **ours) == pytest.approx(
        sum(a.agent_seconds for a in attempts), abs=0.01
    )
    assert total(samples, f"{seconds}_bucket", le="+Inf", outcome="shipped", **ours) == 1
    wait = metrics.SLOT_WAIT.name
    assert total(samples, f"{wait}_count", activity_type="run_agent", **ours) == 2
    assert total(samples, f"{wait}_sum", **ours) == pytest.approx(
        sum(a.slot_wait_s for a in attempts), abs=0.01
    )
    # The host's slots: its capacity, all free again, nobody waiting.
    assert total(samples, metrics.SLOTS_CAPACITY.name) == 2
    assert total(samples, metrics.SLOTS_IN_USE.name) == 0
    assert total(samples, metrics.SLOT_WAITERS.name) == 0

    # `jidoka report --json` tells the same figures from the histories.
    spend = report.spend
    assert spend.total.tokens == total(samples, metrics.TOKENS.name, **ours) == reported
    assert spend.value.tokens == total(samples, metrics.TOKENS.name, outcome="shipped", **ours)
    assert spend.waste_by_outcome and all(
        entry.spend.tokens
        == total(samples, metrics.TOKENS.name, outcome=entry.outcome.value, **ours)
        for entry in spend.waste_by_outcome
    )
    assert spend.total.cost.amount is not None
    assert round(spend.total.cost.amount * 1_000_000) == total(samples, metrics.COST.name, **ours)
    assert report.throughput.shipped == total(samples, metrics.SHIPS.name, **ours) == 1
    assert {bar.label: bar.count for bar in report.stops.by_category} == {
        "no_progress": total(samples, metrics.HALTS.name, category="no_progress", **ours),
        "halt_production": total(samples, metrics.HALTS.name, category="halt_production", **ours),
    }

    # Only the catalog's names and labels, never an issue.
    catalog = {m.name: m for m in metrics.ALL}
    exported = jidoka_samples(samples)
    assert {base_name(s.name) for s in exported} == set(catalog) - {metrics.COST_UNKNOWN.name}
    for sample in exported:
        allowed = set(catalog[base_name(sample.name)].labels) | SDK_LABELS
        assert set(sample.labels) <= allowed, sample
        for value in sample.labels.values():
            assert "M-1" not in value and "M-2" not in value, sample


# ---------------------------------------------------------------------------------------------
# Replay records nothing
# ---------------------------------------------------------------------------------------------


async def test_replaying_the_recorded_histories_records_no_figure() -> None:
    port = free_port()
    runtime = metrics_runtime(f"127.0.0.1:{port}")
    replayer = Replayer(
        workflows=list(WORKFLOWS), data_converter=pydantic_data_converter, runtime=runtime
    )
    histories = recorded()
    assert histories
    for path in histories:  # ships, halts, resumes: every step that records a figure live
        result = await replayer.replay_workflow(load(path), raise_on_replay_failure=False)
        assert result.replay_failure is None, f"{path.name}: {result.replay_failure}"
    assert jidoka_samples(await scraped(port)) == []
    # The same endpoint shows a figure recorded live: the empty scrape above means something.
    runtime.metric_meter.create_counter(metrics.SHIPS.name).add(1, {"line": "control"})
    assert total(await scraped(port), metrics.SHIPS.name, line="control") == 1


# ---------------------------------------------------------------------------------------------
# The host's slots
# ---------------------------------------------------------------------------------------------


async def test_the_slot_gauges_follow_the_hosts_slots() -> None:
    port = free_port()
    runtime = metrics_runtime(f"127.0.0.1:{port}")
    slots = AgentSlots(2)
    watch_slots(slots, runtime.metric_meter)

    async def gauges() -> tuple[float, float, float]:
        samples = await scraped(port)
        return (
            total(samples, metrics.SLOTS_CAPACITY.name),
            total(samples, metrics.SLOTS_IN_USE.name),
            total(samples, metrics.SLOT_WAITERS.name),
        )

    assert await gauges() == (2, 0, 0)  # a host that has run nothing shows its free slots
    release = asyncio.Event()
    entered: list[int] = []

    async def agent(n: int) -> None:
        async with slots.hold(lambda *_: None):
            entered.append(n)
            await release.wait()

    agents = [asyncio.create_task(agent(n)) for n in range(3)]
    while len(entered) < 2:
        await asyncio.sleep(0.01)
    assert await gauges() == (2, 2, 1)  # both slots held, one attempt waiting
    release.set()
    await asyncio.gather(*agents)
    assert await gauges() == (2, 0, 0)
    slots.resize(4)
    assert await gauges() == (4, 0, 0)
