"""The ``jidoka`` console script run as a user runs it: a subprocess with a clean environment."""

from __future__ import annotations

import asyncio
import signal
import uuid

from temporalio.testing import WorkflowEnvironment

from tests.support.linekit import LineKit
from tests.support.paths import JIDOKA
from tests.support.workerproc import child_environ


def cli_env(dev_env: WorkflowEnvironment | None, **extra: str) -> dict[str, str]:
    """This process's environment without ``TEMPORAL_*``/``JIDOKA_*``, pointed at ``dev_env``
    (when given) through ``TEMPORAL_ADDRESS``, plus ``extra``."""
    env = child_environ()
    if dev_env is not None:
        env["TEMPORAL_ADDRESS"] = dev_env.client.service_client.config.target_host
    env.update(extra)
    return env


async def jidoka(*args: str, env: dict[str, str], timeout: float = 120) -> tuple[int, str, str]:
    """Run ``jidoka *args`` to its end: exit code, stdout, stderr."""
    process = await asyncio.create_subprocess_exec(
        JIDOKA, *args, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout)
    return process.returncode or 0, out.decode(), err.decode()


def isolated(kit: LineKit) -> dict[str, str]:
    """Each run gets its own task queue and host, so tests never share workers."""
    return {"JIDOKA_TASK_QUEUE": f"cli-{kit.line}", "JIDOKA_HOST_ID": f"cli-{uuid.uuid4().hex[:8]}"}


async def read_until(stream: asyncio.StreamReader, marker: str, timeout: float = 60) -> str:
    """Lines from ``stream`` up to the first containing ``marker`` (all of them, joined)."""
    seen: list[str] = []

    async def scan() -> str:
        while True:
            line = (await stream.readline()).decode()
            if not line:
                raise AssertionError(f"stream ended before {marker!r}: {''.join(seen)}")
            seen.append(line)
            if marker in line:
                return "".join(seen)

    return await asyncio.wait_for(scan(), timeout)


async def interrupt(process: asyncio.subprocess.Process) -> int:
    """Ctrl-C: SIGINT, then the exit code."""
    process.send_signal(signal.SIGINT)
    return await asyncio.wait_for(process.wait(), 60)
