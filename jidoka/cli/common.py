"""What every command shares: the connection, naming a line or an issue, time and tables."""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel
from temporalio.client import Client, WorkflowHandle
from temporalio.service import RPCError, RPCStatusCode

from jidoka.cli.errors import CliError
from jidoka.keys import issue_workflow_id, line_workflow_id, workspace_key
from jidoka.models import LoadedWorkflow
from jidoka.runtime.temporal import DEFAULT_ADDRESS, DEFAULT_UI_PORT, connect
from jidoka.workflow_file import WorkflowFileError, load_workflow

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
