"""A Jidoka worker: the shared task queue (workflows, tracker and config activities) plus this
host's own queue (everything that touches a workspace on this disk).

Run it with ``jidoka worker`` (or ``python worker.py``); configure the connection with Temporal's
environment configuration (``TEMPORAL_ADDRESS``, ``TEMPORAL_NAMESPACE``, ``TEMPORAL_API_KEY``,
TLS settings or a ``temporal.toml`` profile) and the host with ``JIDOKA_HOST_ID``.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar

from temporalio.activity import _Definition as ActivityDefinition  # pyright: ignore[reportPrivateUsage]
from temporalio.client import Client
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig
from temporalio.worker import Worker
from temporalio.workflow import _Definition as WorkflowDefinition  # pyright: ignore[reportPrivateUsage]

from activities.agent.results import recover_agent_result
from activities.agent.run import run_agent
from activities.agent.slots import AGENT_SLOTS, DEFAULT_MAX_AGENTS
from activities.config import load_workflow_config, reload_workflow_config
from activities.evidence import collect_evidence
from activities.forge.activities import forge_merge, forge_read
from activities.hooks import run_hook
from activities.line import LineActivities
from activities.metrics import watch_slots
from activities.tracker.activities import (
    tracker_comment,
    tracker_dispatch_plan,
    tracker_fetch_by_ids,
    tracker_fetch_issue,
    tracker_publish,
    tracker_states_by_ids,
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
from jidoka import metrics
from jidoka.keys import SHARED_TASK_QUEUE
from runtime.temporal import connect
from workflows.issue import IssueWorkflow
from workflows.line import LineWorkflow

WORKFLOWS: Sequence[type] = (IssueWorkflow, LineWorkflow)
_T = TypeVar("_T", bound=Callable[..., Any])


def host_identity(environ: dict[str, str] | None = None) -> HostIdentity:
    env = os.environ if environ is None else environ
    return HostIdentity(host_id=env.get("JIDOKA_HOST_ID") or socket.gethostname())


def shared_activities(client: Client, host: HostIdentity) -> list[Callable[..., Any]]:
    line = LineActivities(client)
    return [
        line.start_issue_workflows,
        line.check_issue_workflows,
        line.reset_stale_claims,
        cleanup_workspaces,
        load_workflow_config,
        reload_workflow_config,
        tracker_fetch_issue,
        tracker_dispatch_plan,
        tracker_fetch_by_ids,
        tracker_states_by_ids,
        tracker_transition,
        tracker_comment,
        tracker_publish,
        forge_read,
        forge_merge,
        HostActivities(host).claim_host,
    ]


HOST_ACTIVITIES: Sequence[Callable[..., Any]] = (
    prepare_workspace,
    run_hook,
    run_agent,
    recover_agent_result,
    collect_evidence,
    preserve_work,
    push_branch,
    remove_workspace,
)


class SettingsError(ValueError):
    """A ``JIDOKA_*`` setting that cannot be used, named with its variable."""


@dataclass(frozen=True)
class WorkerSettings:
    """The worker's runtime contract (see deploy/README.md)."""

    task_queue: str = SHARED_TASK_QUEUE
    host: HostIdentity | None = None
    max_agents: int = DEFAULT_MAX_AGENTS
    metrics_bind: str | None = None
    graceful_shutdown: timedelta = timedelta(seconds=60)
    max_concurrent_host_activities: int = 64

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> WorkerSettings:
        env = os.environ if environ is None else environ
        return cls(
            task_queue=env.get("JIDOKA_TASK_QUEUE") or SHARED_TASK_QUEUE,
            host=host_identity(dict(env)),
            max_agents=_positive_int(env, "JIDOKA_MAX_AGENTS", DEFAULT_MAX_AGENTS),
            metrics_bind=env.get("JIDOKA_METRICS_BIND") or None,
            graceful_shutdown=timedelta(seconds=_positive_int(env, "JIDOKA_SHUTDOWN_GRACE_S", 60)),
        )


def _positive_int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not a whole number") from None
    if value < 1:
        raise SettingsError(f"{name}={raw!r} must be at least 1")
    return value


STICKY_PICKUP = timedelta(seconds=3)
"""How long a workflow task waits on the queue of the worker that last ran the workflow before
any worker may take it (the SDK's default is 10 s). A worker that died leaves its workflows
waiting that long at their next event; a live worker takes its tasks in milliseconds, and one
that is merely busy only costs the next worker a replay of the history."""


@contextlib.asynccontextmanager
async def running_worker(
    client: Client,
    settings: WorkerSettings | None = None,
    *,
    replace: Sequence[Callable[..., Any]] = (),
) -> AsyncIterator[HostIdentity]:
    """Both workers of this process (shared queue, host queue), started and stopped together.
    Leaving the block shuts them down gracefully: no new work, running activities get
    ``graceful_shutdown`` to finish, then are cancelled (agents are killed, their outcome
    recorded as ``worker_shutdown``).

    ``replace``: activities (or workflow classes) that stand in for the ones registered under
    the same names (tests use it to make one step fail, or slow, in a real worker on a real
    server)."""
    settings = settings or WorkerSettings()
    host = settings.host or host_identity()
    AGENT_SLOTS.resize(settings.max_agents)
    watch_slots(
        AGENT_SLOTS, (client.service_client.config.runtime or Runtime.default()).metric_meter
    )
    not_dumpable()
    shared = Worker(
        client,
        task_queue=settings.task_queue,
        workflows=_replaced(WORKFLOWS, replace),
        activities=_replaced(shared_activities(client, host), replace),
        graceful_shutdown_timeout=settings.graceful_shutdown,
        sticky_queue_schedule_to_start_timeout=STICKY_PICKUP,
    )
    pinned = Worker(
        client,
        task_queue=host.queue,
        activities=_replaced(HOST_ACTIVITIES, replace),
        max_concurrent_activities=settings.max_concurrent_host_activities,
        graceful_shutdown_timeout=settings.graceful_shutdown,
    )
    async with shared, pinned:
        yield host


def _replaced(registered: Sequence[_T], replace: Sequence[Callable[..., Any]]) -> list[_T]:
    by_name: dict[str, Any] = {_registered_name(r): r for r in replace}
    return [by_name.get(_registered_name(r), r) for r in registered]


def _registered_name(item: Callable[..., Any]) -> str:
    if isinstance(item, type):
        return WorkflowDefinition.must_from_class(item).name or item.__name__
    definition = ActivityDefinition.from_callable(item)
    return definition.name if definition is not None and definition.name else item.__name__


def not_dumpable() -> None:
    """Linux: no process of the worker's user may read this process's memory or
    ``/proc/<pid>/environ`` (where its secrets are), whatever else it can reach."""
    if sys.platform != "linux":
        return
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)


PR_SET_DUMPABLE = 4


def metrics_runtime(bind: str) -> Runtime:
    """One Runtime per process, exporting for Prometheus at ``/metrics`` the SDK's metrics and
    Jidoka's own (``jidoka_*``, docs/metrics.md), its histograms with their own buckets."""
    return Runtime(
        telemetry=TelemetryConfig(
            metrics=PrometheusConfig(
                bind_address=bind, histogram_bucket_overrides=metrics.bucket_overrides()
            )
        )
    )


async def main(settings: WorkerSettings | None = None) -> None:
    """``jidoka worker``: serve until SIGINT/SIGTERM, then shut down gracefully.

    The handlers come first, so a signal while connecting is a requested stop too (exit 0, never
    a KeyboardInterrupt); a second signal during the grace only says that a stop is under way:
    cutting the shutdown short would leave agents running in their own process groups."""

    settings = settings or WorkerSettings.from_env()
    grace_s = int(settings.graceful_shutdown.total_seconds())
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()

    def request_stop() -> None:
        if stop.is_set():
            print(f"jidoka worker: already stopping; agents get up to {grace_s}s", flush=True)
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, request_stop)
    runtime = metrics_runtime(settings.metrics_bind) if settings.metrics_bind else None
    client = await connect(runtime=runtime)
    if stop.is_set():
        return
    async with running_worker(client, settings) as host:
        print(
            f"jidoka worker {host.host_id}: queues {settings.task_queue} and {host.queue}, "
            f"up to {settings.max_agents} agent(s)"
            + (
                f", metrics on http://{settings.metrics_bind}/metrics"
                if settings.metrics_bind
                else ""
            ),
            flush=True,
        )
        await stop.wait()
        print(
            f"jidoka worker {host.host_id}: stopping; agents get {grace_s}s to finish",
            flush=True,
        )


if __name__ == "__main__":
    asyncio.run(main())
