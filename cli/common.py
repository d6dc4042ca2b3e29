"""What every command shares: the connection, naming a line or an issue, time and tables."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import Generator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO, TypeVar

from pydantic import BaseModel
from temporalio.client import Client, WorkflowHandle
from temporalio.service import RPCError, RPCStatusCode

from cli.errors import CliError
from jidoka.keys import issue_workflow_id, line_workflow_id, workspace_key
from jidoka.models import LoadedWorkflow
from jidoka.workflow_file import WorkflowFileError, load_workflow
from runtime.temporal import DEFAULT_ADDRESS, DEFAULT_UI_PORT, connect

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


def line_name(args: argparse.Namespace) -> str:
    if getattr(args, "line", None):
        return str(args.line)
    path = getattr(args, "workflow", None) or "WORKFLOW.md"
    if not Path(path).exists():
        raise CliError(f"no {path} here: pass the line's WORKFLOW.md or --line NAME")
    return load_or_fail(path).config.line


def line_id(args: argparse.Namespace) -> str:
    return line_workflow_id(line_name(args))


def issue_id_for(line: str, identifier: str) -> str:
    return issue_workflow_id(line, workspace_key(identifier))


def temporal_address() -> str:
    return os.environ.get("TEMPORAL_ADDRESS") or DEFAULT_ADDRESS


def web_ui_url() -> str:
    """Where the Web UI is: ``JIDOKA_UI_URL``, else the dev server's next to the address."""
    explicit = os.environ.get("JIDOKA_UI_URL")
    if explicit:
        return explicit.rstrip("/")
    host = temporal_address().rsplit(":", 1)[0]
    if host in ("127.0.0.1", "0.0.0.0", ""):  # noqa: S104
        host = "localhost"
    return f"http://{host}:{DEFAULT_UI_PORT}"


def workflow_url(workflow_id: str, namespace: str = "default") -> str:
    return f"{web_ui_url()}/namespaces/{namespace}/workflows/{workflow_id}"


async def client_or_fail() -> Client:
    try:
        return await connect()
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
