"""What every command shares: the connection, naming a line or an issue, time and tables."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import Generator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO, TypeVar
from urllib.parse import quote

from pydantic import BaseModel
from temporalio.client import Client, WorkflowHandle
from temporalio.runtime import Runtime
from temporalio.service import RPCError, RPCStatusCode

from cli.errors import CliError
from jidoka.config import WorkflowConfig
from jidoka.keys import issue_workflow_id, line_workflow_id, workspace_key
from jidoka.models import LoadedWorkflow
from jidoka.workflow_file import WorkflowFileError, load_workflow
from runtime.devserver import ServerRecord, read_record
from runtime.temporal import DEFAULT_ADDRESS, connect

T = TypeVar("T")


def add_target_arguments(parser: argparse.ArgumentParser) -> None:
    """``[WORKFLOW.md]`` or ``--line NAME``: which line a command is about."""
    parser.add_argument(
        "workflow", nargs="?", default=None, help="the line's WORKFLOW.md (default ./WORKFLOW.md)"
    )
    parser.add_argument("--line", help="the line's name, instead of reading a WORKFLOW.md")


def add_json_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print data as JSON")


def operator_name(explicit: str | None) -> str:
    return explicit or os.environ.get("JIDOKA_OPERATOR") or os.environ.get("USER") or "operator"


def load_or_fail(path: str) -> LoadedWorkflow:
    try:
        return load_workflow(path)
    except WorkflowFileError as error:
        listed = "\n".join(f"  {p.path}: {p.message}" for p in error.problems)
        raise CliError(
            f"{path} is not a valid WORKFLOW.md ({len(error.problems)} problem(s)); "
            "run 'jidoka check' for hints",
            detail=listed,
        ) from None


def line_config(args: argparse.Namespace) -> WorkflowConfig | None:
    """The line's WORKFLOW.md, when the command is given one (or finds ./WORKFLOW.md); None
    with ``--line NAME``, which names the line without reading any file."""
    if getattr(args, "line", None):
        return None
    path = getattr(args, "workflow", None) or "WORKFLOW.md"
    if not Path(path).exists():
        raise CliError(f"no {path} here: pass the line's WORKFLOW.md or --line NAME")
    return load_or_fail(path).config


async def started_workflow_path(client: Client, workflow_id: str) -> str | None:
    """The ``workflow_path`` in the start input of a line or issue workflow's latest run: None
    when there is no such workflow, ``""`` when its input names none."""
    try:
        async for event in client.get_workflow_handle(workflow_id).fetch_history_events(
            page_size=1
        ):
            payloads = event.workflow_execution_started_event_attributes.input.payloads
            decoded = await client.data_converter.decode(payloads, [dict[str, Any]])
            started: object = decoded[0] if decoded else None
            path = started.get("workflow_path") if isinstance(started, dict) else None
            return path if isinstance(path, str) else ""
    except RPCError as error:
        if error.status is RPCStatusCode.NOT_FOUND:
            return None
        raise
    return None


def load_quietly(path: str | None) -> WorkflowConfig | None:
    """A WORKFLOW.md's config if it can be read here; None for another host's path, a file
    since removed or now invalid (the caller then says what it cannot know)."""
    if not path:
        return None
    try:
        return load_workflow(path).config
    except (WorkflowFileError, OSError):
        return None


async def started_config(client: Client, workflow_id: str) -> WorkflowConfig | None:
    """The WORKFLOW.md a line or issue workflow was started with, when that file can be read
    here: for ``--line NAME``, which names no file. None when it cannot (another host's path,
    a file since removed or now invalid, no such workflow)."""
    try:
        return load_quietly(await started_workflow_path(client, workflow_id))
    except (RPCError, ValueError, TypeError):
        return None


def line_name(args: argparse.Namespace) -> str:
    config = line_config(args)
    return config.line if config is not None else str(args.line)


def line_id(args: argparse.Namespace) -> str:
    return line_workflow_id(line_name(args))


def issue_id_for(line: str, identifier: str) -> str:
    return issue_workflow_id(line, workspace_key(identifier))


def temporal_address() -> str:
    return os.environ.get("TEMPORAL_ADDRESS") or DEFAULT_ADDRESS


UI_URL_VARIABLE = "JIDOKA_UI_URL"
"""Where the Web UI of the server the CLI talks to is, when Jidoka cannot know it."""

CLOUD_UI = "https://cloud.temporal.io"
_CLOUD_HOSTS = (".tmprl.cloud", ".api.temporal.io")
_LOCAL_HOSTS = ("localhost", "127.0.0.1", "0.0.0.0", "::1", "")  # noqa: S104


@dataclass(frozen=True)
class WebUi:
    """The Web UI that serves the histories of the server the CLI connected to, or why it is
    not known (then no link is printed: a guessed one would lead to another server)."""

    url: str | None
    why_not: str = ""

    def link(self, workflow_id: str, namespace: str = "default") -> str:
        """The workflow's page, or ``unknown (why)``."""
        if self.url is None:
            return f"unknown ({self.why_not})"
        return (
            f"{self.url}/namespaces/{quote(namespace, safe='')}"
            f"/workflows/{quote(workflow_id, safe='')}"
        )


def _host_and_port(target: str) -> tuple[str, int | None]:
    host, _, port = target.rpartition(":")
    if not host or "]" in port:  # no port at all (a bare host, or a bare IPv6 address)
        return target.strip("[]"), None
    return host.strip("[]"), int(port) if port.isdigit() else None


def web_ui_for(target: str, *, explicit: str | None, record: ServerRecord | None) -> WebUi:
    """The Web UI of the server at ``target`` (``host:port``, as the client connected):
    ``explicit`` (``JIDOKA_UI_URL``) when set; Temporal Cloud's; the one a jidoka-started dev
    server on that port was given (``record``, by port: ``jidoka server`` / ``jidoka run``);
    otherwise unknown, said so."""
    if explicit:
        return WebUi(explicit.rstrip("/"))
    host, port = _host_and_port(target)
    if host.endswith(_CLOUD_HOSTS):
        return WebUi(CLOUD_UI)
    if record is not None and record.port == port and (host in _LOCAL_HOSTS or host == record.ip):
        if record.ui_port is None:
            return WebUi(
                None,
                f"the {record.owner} dev server at {target} runs headless, without a Web UI",
            )
        ui_host = "localhost" if record.ip in _LOCAL_HOSTS else record.ip
        return WebUi(f"http://{ui_host}:{record.ui_port}")
    return WebUi(
        None,
        f"the Temporal server at {target} was not started by jidoka, so its Web UI's address "
        f"is not known here; set {UI_URL_VARIABLE} to it",
    )


def web_ui(client: Client) -> WebUi:
    """The Web UI of the server ``client`` is connected to (see :func:`web_ui_for`)."""
    target = client.service_client.config.target_host
    _, port = _host_and_port(target)
    record = read_record(port) if port is not None else None
    if record is not None and not record.server_alive:
        record = None
    return web_ui_for(target, explicit=os.environ.get(UI_URL_VARIABLE), record=record)


async def client_or_fail(runtime: Runtime | None = None) -> Client:
    """The client of the configured cluster. ``runtime``: the process's SDK runtime when it
    exports metrics (``jidoka run`` with ``JIDOKA_METRICS_BIND``)."""
    try:
        return await connect(runtime=runtime)
    except RuntimeError as error:
        raise CliError(
            f"cannot reach Temporal at {temporal_address()}: {str(error).splitlines()[0]}",
            detail="start one with 'jidoka server' (or 'jidoka run'), or set TEMPORAL_ADDRESS",
        ) from None


async def execute_update(
    handle: WorkflowHandle[Any, Any], name: str, arg: BaseModel, result_type: type[T]
) -> T:
    """An update by name with a typed result (refusals raise WorkflowUpdateFailedError)."""
    result = await handle.execute_update(name, arg, result_type=result_type)  # pyright: ignore[reportUnknownMemberType]
    if not isinstance(result, result_type):
        raise CliError(f"unexpected answer to '{name}': {result!r}")
    return result


def rpc_failure(error: RPCError, workflow_id: str) -> CliError:
    if error.status is RPCStatusCode.NOT_FOUND:
        return CliError(f"no workflow {workflow_id} (is the line running? is the name right?)")
    return CliError(f"Temporal refused: {error.message}")


def ago(moment: datetime | None, now: datetime | None = None) -> str:
    if moment is None:
        return "-"
    seconds = int(((now or datetime.now(UTC)) - moment).total_seconds())
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{(seconds % 3600) // 60:02d}m"


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    cells = [[str(h) for h in headers]] + [[_cell(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = [
        "  ".join(value.ljust(widths[i]) for i, value in enumerate(row)).rstrip() for row in cells
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _cell(value: object) -> str:
    if value is None:
        return "-"
    text = str(value).replace("\n", " ")
    return text if len(text) <= 70 else text[:69] + "…"


class StopSignals:
    """SIGINT and SIGTERM as a request to stop in order, instead of the default death that
    leaves the dev server and the agents running behind us.

    The first signal sets :attr:`requested` and cancels the armed task (the caller turns that
    into an orderly shutdown); later ones only repeat that a stop is under way, so the cleanup
    itself (the worker's shutdown, stopping the dev server) is never cut short."""

    def __init__(self, stopping: str, again: str, out: TextIO | None = None) -> None:
        """``stopping`` is said on the first signal (``{signal}`` names it), ``again`` on later
        ones."""
        self.signum: int | None = None
        self.requested = asyncio.Event()
        self._stopping = stopping
        self._again = again
        self._out = out
        self._target: asyncio.Task[Any] | None = None
        self._cancelled = False

    @property
    def exit_code(self) -> int:
        """The shell's convention for a death by signal: 130 for SIGINT, 143 for SIGTERM."""
        return 128 + (self.signum or signal.SIGINT)

    @contextlib.contextmanager
    def installed(self) -> Generator[StopSignals, None, None]:
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, self._received, signum)
        try:
            yield self
        finally:
            for signum in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(signum)

    def arm(self) -> None:
        """The first signal cancels the current task (at once, if one already came)."""
        self._target = asyncio.current_task()
        if self.signum is not None:
            self._cancel()

    def disarm(self) -> None:
        """Signals no longer cancel. Call it after catching the CancelledError a signal caused:
        it takes that cancellation back, so the cleanup that follows runs normally."""
        if self._cancelled and self._target is not None:
            self._target.uncancel()
        self._target = None
        self._cancelled = False

    def _received(self, signum: int) -> None:
        out = self._out or sys.stderr
        if self.signum is not None:
            print(self._again, file=out, flush=True)
            return
        self.signum = signum
        self.requested.set()
        print(self._stopping.format(signal=signal.Signals(signum).name), file=out, flush=True)
        self._cancel()

    def _cancel(self) -> None:
        if self._target is not None and not self._target.done() and not self._cancelled:
            self._cancelled = self._target.cancel()
