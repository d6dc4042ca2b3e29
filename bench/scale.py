"""Scale: 1,000 queued issues, 50 concurrent scripted agents, one line, on this machine.

One embedded dev server (SQLite), ``--workers`` worker processes (``jidoka worker``, real
subprocesses, each its own host) and one line over a local board of ``--issues`` issues whose
scripted agent ships at once (``push_on_ship: false``). Measured:

* **dispatch latency**: from a slot freeing (an issue's agent ended) to the next agent starting,
  p50 and p95. Estimated from the histories: the k-th agent end after the line filled up is
  matched with the (k + concurrency)-th agent start;
* **tracker requests per line tick**: the line's tracker activities over its ticks;
* **worker and server peak RSS** (``VmHWM`` of each process);
* **the line's history across continue-as-new**: runs, events and KB of the longest run, and
  the size of the state it carries (the last continue-as-new input);
* issues per minute, and history events and KB per issue (the line's share included).

Benchmarks report; tests never assert wall-clock times. Targets in ``TARGETS``; the last line is
machine-readable and printed even when a target is missed (exit code 1 then).

Usage: ``python bench/scale.py [--issues 1000] [--concurrency 50] [--workers 1]``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from temporalio.client import Client, WorkflowHandle, WorkflowHistory  # noqa: E402
from temporalio.service import RPCError  # noqa: E402

from jidoka.keys import issue_workflow_id, line_workflow_id, workspace_key  # noqa: E402
from jidoka.payloads import LineStatus  # noqa: E402
from jidoka.workflow_file import load_workflow  # noqa: E402
from runtime import history  # noqa: E402
from runtime.devserver import DevServerSettings, connect_when_ready, embedded_server  # noqa: E402
from starter import start_line  # noqa: E402

sys.path.insert(0, str(ROOT / "bench"))
from line_throughput import build_line, free_port, process_peak_rss_mb  # noqa: E402

TARGETS = {
    "dispatch_p95_s": ("<=", 5.0),
    "worker_rss_mb": ("<=", 512.0),
    "server_rss_mb": ("<=", 1024.0),
    "line_run_stored_kb": ("<=", 2048.0),
}
"""A free slot filled within seconds at the 95th percentile; memory as for the throughput bench;
no run of the line's history above 2 MB as Temporal counts it (the stored events: Temporal warns
at 10 MB and refuses at 50 MB of the same measure, and the line continues as new past 2 MB of
it). The JSON export of the largest run is printed beside it (``line_run_json_kb``), about 3x
larger: every payload base64-encoded, and indented."""

TRACKER_ACTIVITIES = ("tracker_dispatch_plan", "tracker_fetch_by_ids", "tracker_states_by_ids")
"""The line's reads of the tracker: candidates and the states of its running issues."""
JIDOKA = Path(sys.executable).parent / "jidoka"


def start_workers(
    address: str, queue: str, count: int, concurrency: int, state: Path
) -> list[subprocess.Popen[bytes]]:
    workers: list[subprocess.Popen[bytes]] = []
    per_worker = max(concurrency // count, 1)
    for n in range(count):
        env = {
            **os.environ,
            "TEMPORAL_ADDRESS": address,
            "JIDOKA_TASK_QUEUE": queue,
            "JIDOKA_HOST_ID": f"scale-{n}",
            "JIDOKA_MAX_AGENTS": str(per_worker),
            "JIDOKA_STATE_DIR": str(state / f"worker-{n}"),
        }
        workers.append(
            subprocess.Popen(
                [str(JIDOKA), "worker"],
                cwd=ROOT,
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
        )
    return workers


def stop(processes: list[subprocess.Popen[bytes]]) -> None:
    for process in processes:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
    for process in processes:
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)


def percentile(values: list[float], fraction: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(int(fraction * len(ordered)), len(ordered) - 1)]


def agent_window(run: WorkflowHistory) -> tuple[datetime, datetime] | None:
    """When the issue's agent ran: its ``run_agent`` activity started and completed."""
    for step in history.steps(run.events):
        if step.name == "run_agent" and step.started_at and step.ended_at and step.result:
            return step.started_at, step.ended_at
    return None


def dispatch_latencies(windows: list[tuple[datetime, datetime]], concurrency: int) -> list[float]:
    """The k-th agent end after the line filled up, matched with the (k + concurrency)-th start:
    how long a freed slot stayed empty (agent time excluded)."""
    starts = sorted(start for start, _ in windows)
    ends = sorted(end for _, end in windows)
    return [
        max((starts[k + concurrency] - ends[k]).total_seconds(), 0.0)
        for k in range(len(ends))
        if k + concurrency < len(starts)
    ]


async def line_runs(client: Client, workflow_id: str) -> list[WorkflowHistory]:
    runs: list[WorkflowHistory] = []
    async for execution in client.list_workflows(f"WorkflowId = '{workflow_id}'"):
        runs.append(
            await client.get_workflow_handle(workflow_id, run_id=execution.run_id).fetch_history()
        )
    return runs


async def measure(args: argparse.Namespace, scratch: Path) -> dict[str, float]:
    workflow_md = build_line(scratch / "line", args.issues, args.concurrency, "scale")
    board = workflow_md.parent / "board"
    loaded = load_workflow(workflow_md)
    settings = DevServerSettings(
        db_path=scratch / "temporal.db", port=free_port(), ui_port=free_port(), headless=True
    )
    queue = f"scale-{uuid.uuid4().hex[:6]}"
    async with embedded_server(settings) as server:
        client = await connect_when_ready(settings.address)
        workers = start_workers(
            settings.address, queue, args.workers, args.concurrency, scratch / "state"
        )
        try:
            started = time.monotonic()
            handle = await start_line(client, loaded, queue)
            status = await wait_until_done(handle, board, args.issues, started)
            wall = time.monotonic() - started
            worker_rss = max(process_peak_rss_mb(w.pid) for w in workers)
        finally:
            stop(workers)
        server_rss = process_peak_rss_mb(server.process.pid)
        unshipped = args.issues - shipped_on_board(board)
        issue_ids = [
            issue_workflow_id(loaded.config.line, workspace_key(f"B-{n}"))
            for n in range(1, args.issues + 1)
        ]
        runs = await line_runs(client, line_workflow_id(loaded.config.line))
        windows: list[tuple[datetime, datetime]] = []
        issue_events = issue_bytes = 0
        gate = asyncio.Semaphore(20)

        async def read(workflow_id: str) -> None:
            nonlocal issue_events, issue_bytes
            async with gate:
                history = await client.get_workflow_handle(workflow_id).fetch_history()
            issue_events += len(history.events)
            issue_bytes += len(history.to_json())
            window = agent_window(history)
            if window is not None:
                windows.append(window)

        await asyncio.gather(*(read(workflow_id) for workflow_id in issue_ids))
        await handle.terminate("bench done")
    tracker_calls = sum(
        1 for run in runs for step in history.steps(run.events) if step.name in TRACKER_ACTIVITIES
    )
    latencies = dispatch_latencies(windows, args.concurrency)
    run_kb = [len(run.to_json()) / 1024 for run in runs]
    stored_kb = [sum(event.ByteSize() for event in run.events) / 1024 for run in runs]
    line_events = sum(len(run.events) for run in runs)
    line_bytes = sum(len(run.to_json()) for run in runs)
    if unshipped:
        print(f"NOT SHIPPED: {unshipped} issue(s); halts: {status.open_halts}", file=sys.stderr)
    return {
        "issues": float(args.issues),
        "unshipped": float(unshipped),
        "issues_per_min": args.issues / wall * 60,
        "dispatch_p50_s": statistics.median(latencies) if latencies else 0.0,
        "dispatch_p95_s": percentile(latencies, 0.95),
        "tracker_requests_per_tick": tracker_calls / max(status.ticks, 1),
        "worker_rss_mb": worker_rss,
        "server_rss_mb": server_rss,
        "line_runs": float(len(runs)),
        "line_run_stored_kb": max(stored_kb, default=0.0),
        "line_run_json_kb": max(run_kb, default=0.0),
        "status_query_failures": float(len(QUERY_TIMEOUTS)),
        "events_per_issue": (issue_events + line_events) / args.issues,
        "history_kb_per_issue": (issue_bytes + line_bytes) / args.issues / 1024,
    }


QUERY_TIMEOUTS: list[float] = []
"""When the line's status query timed out (a busy machine): counted, not fatal."""


def shipped_on_board(board: Path) -> int:
    """Issues the board shows done (the line's own list keeps only the last 500 finished)."""
    return sum(1 for card in board.glob("*.md") if "\nstate: Done\n" in card.read_text())


async def wait_until_done(
    handle: WorkflowHandle[object, object], board: Path, issues: int, started: float
) -> LineStatus:
    shown = 0.0
    while True:
        try:
            status = await handle.query("status", result_type=LineStatus)
        except RPCError as error:
            QUERY_TIMEOUTS.append(time.monotonic() - started)
            print(f"status query failed ({error}); asking again", file=sys.stderr)
            await asyncio.sleep(2)
            continue
        done = shipped_on_board(board)
        settled = status.idle and not status.running and not status.candidates_waiting
        if done >= issues or settled:
            return status
        if time.monotonic() - shown > 30:
            shown = time.monotonic()
            print(
                f"{shown - started:.0f}s: {done} done on the board, {len(status.running)} running",
                file=sys.stderr,
            )
        await asyncio.sleep(2)


def missed(measured: dict[str, float]) -> list[str]:
    misses = [
        f"{name}={measured[name]:.1f} (target {op} {bound:g})"
        for name, (op, bound) in TARGETS.items()
        if not (measured[name] >= bound if op == ">=" else measured[name] <= bound)
    ]
    if measured["unshipped"]:
        misses.append(f"unshipped={measured['unshipped']:.0f} (target 0)")
    return misses


async def main() -> int:
    # A SIGTERM unwinds like an error, so the workers and the server are stopped on the way out.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--issues", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    for name, value in (("NAME", "bench"), ("EMAIL", "bench@jidoka.invalid")):
        os.environ.setdefault(f"GIT_AUTHOR_{name}", value)
        os.environ.setdefault(f"GIT_COMMITTER_{name}", value)
    with tempfile.TemporaryDirectory(prefix="jidoka-scale-") as scratch:
        measured = await measure(args, Path(scratch))
    for miss in missed(measured):
        print(f"TARGET MISSED: {miss}", file=sys.stderr)
    print(
        f"workers={args.workers} concurrency={args.concurrency} "
        + " ".join(f"{name}={value:.2f}" for name, value in measured.items())
    )
    return 1 if missed(measured) else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
