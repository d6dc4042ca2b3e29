"""A Jidoka worker: the shared task queue (workflows, tracker and config activities) plus this
host's own queue (everything that touches a workspace on this disk).

Run it with ``jidoka worker`` (or ``python worker.py``); configure the connection with Temporal's
environment configuration (``TEMPORAL_ADDRESS``, ``TEMPORAL_NAMESPACE``, ``TEMPORAL_API_KEY``,
TLS settings or a ``temporal.toml`` profile) and the host with ``JIDOKA_HOST_ID``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from temporalio.client import Client
from temporalio.worker import Worker

from activities.agent.run import run_agent
from activities.config import load_workflow_config
from activities.evidence import collect_evidence
from activities.hooks import run_hook
from activities.line import LineActivities
from activities.tracker.activities import (
    tracker_comment,
    tracker_fetch_by_ids,
    tracker_fetch_by_states,
    tracker_fetch_candidates,
    tracker_fetch_issue,
    tracker_publish,
    tracker_transition,
)
from activities.workspace import (
    HostActivities,
    HostIdentity,
    cleanup_workspaces,
    prepare_workspace,
    preserve_work,
    push_branch,
    remove_workspace,
)
from jidoka.keys import SHARED_TASK_QUEUE
from workflows.issue import IssueWorkflow
from workflows.line import LineWorkflow

WORKFLOWS: Sequence[type] = (IssueWorkflow, LineWorkflow)


def host_identity(environ: dict[str, str] | None = None) -> HostIdentity:
    env = os.environ if environ is None else environ
    return HostIdentity(host_id=env.get("JIDOKA_HOST_ID") or socket.gethostname())


def shared_activities(client: Client, host: HostIdentity) -> list[Callable[..., Any]]:
    line = LineActivities(client)
    return [
        line.start_issue_workflows,
        line.closed_issue_workflows,
        line.reset_stale_claims,
        cleanup_workspaces,
        load_workflow_config,
        tracker_fetch_issue,
        tracker_fetch_candidates,
        tracker_fetch_by_ids,
        tracker_fetch_by_states,
        tracker_transition,
        tracker_comment,
        tracker_publish,
        HostActivities(host).claim_host,
    ]


HOST_ACTIVITIES: Sequence[Callable[..., Any]] = (
    prepare_workspace,
    run_hook,
    run_agent,
    collect_evidence,
    preserve_work,
    push_branch,
    remove_workspace,
)


@dataclass(frozen=True)
class WorkerSettings:
    task_queue: str = SHARED_TASK_QUEUE
    host: HostIdentity | None = None
    max_concurrent_host_activities: int = 64
    graceful_shutdown: timedelta = timedelta(seconds=30)


@contextlib.asynccontextmanager
async def running_worker(
    client: Client, settings: WorkerSettings | None = None
) -> AsyncIterator[HostIdentity]:
    """Both workers of this process, started and stopped together."""
    settings = settings or WorkerSettings()
    host = settings.host or host_identity()
    shared = Worker(
        client,
        task_queue=settings.task_queue,
        workflows=list(WORKFLOWS),
        activities=shared_activities(client, host),
        graceful_shutdown_timeout=settings.graceful_shutdown,
    )
    pinned = Worker(
        client,
        task_queue=host.queue,
        activities=list(HOST_ACTIVITIES),
        max_concurrent_activities=settings.max_concurrent_host_activities,
        graceful_shutdown_timeout=settings.graceful_shutdown,
    )
    async with shared, pinned:
        yield host


async def main() -> None:
    from jidoka.runtime.temporal import connect

    client = await connect()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with running_worker(client) as host:
        print(f"jidoka worker: queues {SHARED_TASK_QUEUE} and {host.queue}", flush=True)
        await stop.wait()


if __name__ == "__main__":
    asyncio.run(main())
