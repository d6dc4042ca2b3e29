"""Workers as separate OS processes, the way a deployment runs them (``jidoka worker``), for
tests that kill them; and a view of ``/proc`` to prove what they leave behind.

Every process a fleet starts carries ``WORKERPROC_TAG=<uuid>`` in its environment, and so does
everything those workers start (agents, hooks, grandchildren): a worker hands its environment
down minus secrets and its own ``JIDOKA_*`` settings. The tag is how a test finds survivors,
and how :meth:`WorkerFleet.close` kills every one of them, whatever the test did.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

from temporalio.client import Client

from activities.host_state import STATE_ENV, workspace_state
from activities.process import group_alive
from jidoka.keys import host_task_queue
from tests.support.paths import JIDOKA

TAG_VAR = "WORKERPROC_TAG"
"""Not ``JIDOKA_*``: a worker strips its own settings from what agents inherit, not this."""
READY_S = 90.0
"""How long a worker may take to import, connect and start polling on a busy machine."""


# ---------------------------------------------------------------------------------------------
# /proc
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ProcInfo:
    pid: int
    ppid: int
    pgid: int
    state: str
    cmdline: tuple[str, ...]


def _proc_info(pid: int) -> ProcInfo | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        raw_cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: split after its last ")".
    fields = stat.rsplit(")", 1)[-1].split()
    cmdline = tuple(part.decode(errors="replace") for part in raw_cmdline.split(b"\0") if part)
    return ProcInfo(
        pid=pid, ppid=int(fields[1]), pgid=int(fields[2]), state=fields[0], cmdline=cmdline
    )


def live_processes() -> list[ProcInfo]:
    """Every process that still runs. Zombies are dead: this machine's init reaps orphans only
    now and then, and ``kill(pid, 0)`` would still succeed on them."""
    found: list[ProcInfo] = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            info = _proc_info(int(entry.name))
            if info is not None and info.state not in ("Z", "X"):
                found.append(info)
    return found


def group_members(pgid: int) -> list[ProcInfo]:
    """The live processes of one process group."""
    return [p for p in live_processes() if p.pgid == pgid]


def tagged(tag: str) -> list[ProcInfo]:
    """Live processes whose environment carries ``WORKERPROC_TAG=<tag>``."""
    needle = f"{TAG_VAR}={tag}".encode()
    found: list[ProcInfo] = []
    for info in live_processes():
        try:
            environ = Path(f"/proc/{info.pid}/environ").read_bytes()
        except OSError:
            continue
        if needle in environ.split(b"\0"):
            found.append(info)
    return found


async def wait_group_gone(pgid: int, timeout: float = 5) -> None:
    """Fail unless the process group ``pgid`` is gone within ``timeout`` (its zombies are
    reaped by PID 1 in its own time)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while group_alive(pgid) and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.05)
    assert not group_alive(pgid)


def child_environ() -> dict[str, str]:
    """This process's environment for a jidoka process a test starts: no ``TEMPORAL_*`` or
    ``JIDOKA_*`` of the test run's, except where worker state lives (``JIDOKA_STATE_DIR``), so
    the test reads the records and transcripts the child writes."""
    return {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("TEMPORAL_", "JIDOKA_")) or k == STATE_ENV
    }


def recorded_agent_group(workspace: Path) -> int | None:
    """The agent process group the supervisor recorded in the worker's state, if any."""
    try:
        return int((workspace_state(workspace) / "agent.pgid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


# ---------------------------------------------------------------------------------------------
# Worker processes
# ---------------------------------------------------------------------------------------------


@dataclass
class WorkerProcess:
    host_id: str
    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def queue(self) -> str:
        """This host's own task queue (where its workspaces' activities run)."""
        return host_task_queue(self.host_id)

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def running(self) -> bool:
        return self.process.poll() is None

    def sigkill(self) -> None:
        """SIGKILL the worker process itself (not its agents: they run in their own groups)."""
        os.kill(self.pid, signal.SIGKILL)
        self.process.wait(timeout=30)

    def sigterm(self) -> None:
        os.kill(self.pid, signal.SIGTERM)

    async def exit_code(self, timeout: float) -> int:
        """Wait (polling, the event loop stays free) until the process has exited."""
        deadline = asyncio.get_running_loop().time() + timeout
        while (code := self.process.poll()) is None:
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(
                    f"worker {self.host_id} still running {timeout}s after the signal; "
                    f"log:\n{self.log()[-4000:]}"
                )
            await asyncio.sleep(0.1)
        return code


@dataclass
class WorkerFleet:
    """Starts ``jidoka worker`` processes for one test; :meth:`close` leaves none behind."""

    address: str
    namespace: str
    task_queue: str
    logs: Path
    tag: str = field(default_factory=lambda: uuid.uuid4().hex)
    workers: list[WorkerProcess] = field(default_factory=list[WorkerProcess])

    def environment(self, host_id: str, extra: Mapping[str, str]) -> dict[str, str]:
        env = child_environ()
        env.update(
            {
                "TEMPORAL_ADDRESS": self.address,
                "TEMPORAL_NAMESPACE": self.namespace,
                "JIDOKA_TASK_QUEUE": self.task_queue,
                "JIDOKA_HOST_ID": host_id,
                "PYTHONUNBUFFERED": "1",
                TAG_VAR: self.tag,
            }
        )
        env.update(extra)
        return env

    def spawn(self, host_id: str, extra_env: Mapping[str, str] | None = None) -> WorkerProcess:
        self.logs.mkdir(parents=True, exist_ok=True)
        log_path = self.logs / f"{host_id}-{len(self.workers)}.log"
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                [JIDOKA, "worker"],
                env=self.environment(host_id, extra_env or {}),
                cwd=self.logs,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        worker = WorkerProcess(host_id=host_id, process=process, log_path=log_path)
        self.workers.append(worker)
        return worker

    async def ready(self, worker: WorkerProcess) -> WorkerProcess:
        """Wait until the worker says it serves its queues (printed once both poll)."""
        banner = f"jidoka worker {worker.host_id}: queues"
        deadline = asyncio.get_running_loop().time() + READY_S
        while banner not in worker.log():
            if not worker.running():
                raise AssertionError(
                    f"worker {worker.host_id} exited with {worker.process.returncode} before "
                    f"serving; log:\n{worker.log()[-4000:]}"
                )
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"worker {worker.host_id} not serving after {READY_S}s")
            await asyncio.sleep(0.1)
        return worker

    async def start(
        self, host_id: str, extra_env: Mapping[str, str] | None = None
    ) -> WorkerProcess:
        return await self.ready(self.spawn(host_id, extra_env))

    def logs_text(self) -> str:
        return "\n".join(f"--- {w.log_path.name} ---\n{w.log()[-3000:]}" for w in self.workers)

    def close(self) -> None:
        """SIGKILL every worker's group, then every process that carries the tag (agents and
        their grandchildren run in groups of their own), until none is left."""
        for worker in self.workers:
            if worker.running():
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(worker.pid, signal.SIGKILL)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    worker.process.wait(timeout=10)
        for _ in range(50):
            left = tagged(self.tag)
            if not left:
                return
            for info in left:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(info.pid, signal.SIGKILL)
            for worker in self.workers:  # reap our direct children
                with contextlib.suppress(subprocess.TimeoutExpired):
                    worker.process.wait(timeout=0.1)


def server_address(client: Client) -> str:
    return client.service_client.config.target_host


@asynccontextmanager
async def worker_fleet(client: Client, logs: Path) -> AsyncIterator[WorkerFleet]:
    """Workers for one test on a task queue of its own, all killed on the way out."""
    fleet = WorkerFleet(
        address=server_address(client),
        namespace=client.namespace,
        task_queue=f"jidoka-proc-{uuid.uuid4().hex[:8]}",
        logs=logs,
    )
    try:
        yield fleet
    except BaseException:
        # The workers' own words are the first thing to read when a test fails.
        sys.stderr.write(fleet.logs_text())
        raise
    finally:
        fleet.close()
