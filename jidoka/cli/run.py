"""``jidoka run [WORKFLOW.md]``: the main job.

Without ``TEMPORAL_ADDRESS`` it uses the Temporal server already listening on localhost, or
starts the embedded dev server (database under ``.jidoka/`` next to the WORKFLOW.md, Web UI
address printed). It runs a worker in this process, starts (or joins) the line, and follows it.
``--until-idle`` exits when nothing is left to do, or when the line halts (unless
``--resume-with`` resumes it), printing a summary of every issue.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

from temporalio.client import Client, WorkflowHandle, WorkflowUpdateFailedError
from temporalio.service import RPCError

from jidoka.cli.common import (
    client_or_fail,
    execute_update,
    load_or_fail,
    operator_name,
    table,
    web_ui_url,
)
from jidoka.cli.errors import CliError, SubParsers
from jidoka.cli.render import ISSUE_HEADERS, halt_line, issue_row, resume_commands
from jidoka.models import LoadedWorkflow, ResumeRequest, ResumeResult
from jidoka.outcomes import Phase
from jidoka.payloads import IssueStatus, LineStatus, RunningEntry
from jidoka.runtime.devserver import (
    DevServerError,
    DevServerSettings,
    connect_when_ready,
    embedded_server,
    port_open,
)
from jidoka.runtime.temporal import register_search_attributes

EXIT_HALTED = 3
POLL_S = 1.0


def add_parser(subparsers: SubParsers) -> None:
    parser = subparsers.add_parser(
        "run",
        help="run a production line (embedded Temporal when TEMPORAL_ADDRESS is unset)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("workflow", nargs="?", default="WORKFLOW.md")
    parser.add_argument("--until-idle", action="store_true", help="exit when idle or halted")
    parser.add_argument("--json", action="store_true", help="print the final summary as JSON")
    parser.add_argument(
        "--resume-with",
        metavar="ROOT_CAUSE",
        help="resume every halt with this root cause instead of stopping (non-interactive)",
    )
    parser.add_argument("--operator", help="who resumes (default $USER)")
    parser.add_argument("--max-resumes", type=int, default=10, help="cap on --resume-with resumes")
    parser.add_argument("--port", type=int, default=7233, help="embedded server port")
    parser.add_argument("--ui-port", type=int, default=8233, help="embedded Web UI port")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    return asyncio.run(run_line(args))


@dataclass
class Connection:
    client: Client
    ui_url: str
    where: str


@contextlib.asynccontextmanager
async def temporal_for(
    loaded: LoadedWorkflow, port: int, ui_port: int, say: TextIO
) -> AsyncGenerator[Connection, None]:
    """A cluster when TEMPORAL_ADDRESS is set; else a local server, started if none runs."""
    if os.environ.get("TEMPORAL_ADDRESS"):
        client = await client_or_fail()
        await _ensure_search_attributes(client, say)
        yield Connection(client=client, ui_url=web_ui_url(), where=os.environ["TEMPORAL_ADDRESS"])
        return
    if port_open("127.0.0.1", port):
        client = await connect_when_ready(f"127.0.0.1:{port}")
        await _ensure_search_attributes(client, say)
        yield Connection(
            client=client,
            ui_url=f"http://localhost:{ui_port}",
            where=f"the server already on 127.0.0.1:{port}",
        )
        return
    settings = DevServerSettings(
        db_path=Path(loaded.base_dir) / ".jidoka" / "temporal.db", port=port, ui_port=ui_port
    )
    try:
        async with embedded_server(settings) as server:
            client = await connect_when_ready(server.settings.address)
            yield Connection(
                client=client,
                ui_url=settings.ui_url,
                where=f"the embedded dev server (database {settings.db_path})",
            )
    except DevServerError as error:
        raise CliError(str(error)) from None


async def _ensure_search_attributes(client: Client, say: TextIO) -> None:
    try:
        added = await register_search_attributes(client)
    except RPCError as error:
        print(
            f"note: could not register search attributes ({error.message}); see 'jidoka setup'",
            file=say,
        )
        return
    if added:
        print(f"registered search attributes: {', '.join(added)}", file=say)


async def run_line(args: argparse.Namespace) -> int:
    from starter import start_line
    from worker import WorkerSettings, running_worker

    loaded = load_or_fail(args.workflow)
    say = sys.stderr if args.json else sys.stdout
    async with temporal_for(loaded, args.port, args.ui_port, say) as connection:
        settings = WorkerSettings.from_env()
        print(f"jidoka: line {loaded.config.line} on {connection.where}", file=say)
        print(f"jidoka: Web UI {connection.ui_url}/namespaces/default/workflows", file=say)
        async with running_worker(connection.client, settings):
            handle = await start_line(connection.client, loaded, settings.task_queue)
            follower = Follower(
                handle=handle,
                line=loaded.config.line,
                out=say,
                resume_with=args.resume_with,
                operator=operator_name(args.operator),
                max_resumes=args.max_resumes,
            )
            try:
                code = await follower.follow(
                    until_idle=args.until_idle,
                    exit_on_halt=args.until_idle and not getattr(args, "wait_when_halted", False),
                )
            except (KeyboardInterrupt, asyncio.CancelledError):
                code = 130
            status = await query_line(handle)
            issues = await issue_statuses(connection.client, status)
        if args.json:
            print(json.dumps(summary_json(status, issues), indent=2, default=str))
        else:
            print(summary_text(status, issues))
        print(
            f"jidoka: Web UI {connection.ui_url}/namespaces/default/workflows"
            f"?query=JidokaLine%3D%22{loaded.config.line}%22",
            file=say,
        )
    return code


async def query_line(handle: WorkflowHandle[object, object]) -> LineStatus:
    return await handle.query("status", result_type=LineStatus)


@dataclass
class Follower:
    """Prints the line's progress and handles halts (auto-resume, or stop)."""

    handle: WorkflowHandle[object, object]
    line: str
    out: TextIO
    resume_with: str | None
    operator: str
    max_resumes: int

    async def follow(self, *, until_idle: bool, exit_on_halt: bool) -> int:
        progress = Progress(self.out)
        resumes = 0
        announced_halts = 0
        idle_ticks: int | None = None
        while True:
            status = await query_line(self.handle)
            progress.update(status)
            if status.halted:
                idle_ticks = None
                if len(status.halts) > announced_halts:
                    announced_halts = len(status.halts)
                    self._announce_halt(status)
                if self.resume_with and resumes < self.max_resumes:
                    resumes += 1
                    await self._resume(self.resume_with)
                elif exit_on_halt:
                    return EXIT_HALTED
            elif until_idle and status.idle:
                if idle_ticks is None:
                    idle_ticks = status.ticks
                elif status.ticks > idle_ticks:
                    return 0
            else:
                idle_ticks = None
            await asyncio.sleep(POLL_S)

    def _announce_halt(self, status: LineStatus) -> None:
        print("", file=self.out)
        print("■ THE LINE STOPPED (andon):", file=self.out)
        for halt in status.open_halts:
            print(f"    {halt_line(halt)}", file=self.out)
        print(
            "  Nothing new is dispatched. Find the cause, then resume with a root cause:",
            file=self.out,
        )
        for command in resume_commands(self.line, status.workflow_id):
            print(f"    {command}", file=self.out)
        print("", file=self.out)

    async def _resume(self, root_cause: str) -> None:
        try:
            await execute_update(
                self.handle,
                "resume",
                ResumeRequest(root_cause=root_cause, operator=self.operator),
                ResumeResult,
            )
        except WorkflowUpdateFailedError as error:
            print(f"jidoka: resume refused: {error.cause or error}", file=self.out)
            return
        print(f"▶ resumed by {self.operator}: {root_cause}", file=self.out)


class Progress:
    """One line per change: dispatches, phases, finishes, config problems."""

    def __init__(self, out: TextIO) -> None:
        self._out = out
        self._seen: dict[str, tuple[str, int]] = {}
        self._finished: set[str] = set()
        self._config_error: str | None = None

    def update(self, status: LineStatus) -> None:
        for entry in status.running:
            self._entry(entry)
        for item in status.finished:
            if item.issue_id not in self._finished:
                self._finished.add(item.issue_id)
                mark = "✔" if item.phase.value == "shipped" else "✖"
                outcome = f" ({item.outcome.value})" if item.outcome else ""
                self._say(
                    f"{mark} {item.identifier} {item.phase.value}{outcome}, {item.tokens:,} tokens"
                )
        if status.config_error != self._config_error:
            self._config_error = status.config_error
            if status.config_error:
                self._say(
                    f"! WORKFLOW.md invalid (last good config kept, no new dispatch): {status.config_error}"
                )
            else:
                self._say("✔ WORKFLOW.md valid again")

    def _entry(self, entry: RunningEntry) -> None:
        key = (entry.phase.value, entry.attempt)
        if self._seen.get(entry.issue_id) == key:
            return
        if entry.issue_id not in self._seen:
            self._say(f"▶ {entry.identifier} dispatched")
        self._seen[entry.issue_id] = key
        detail = f" (attempt {entry.attempt}, {entry.tokens:,} tokens)" if entry.attempt else ""
        outcome = (
            f" after {entry.last_outcome.value}"
            if entry.last_outcome and entry.phase.value in ("backing_off", "halted", "paused")
            else ""
        )
        self._say(f"  {entry.identifier}: {entry.phase.value}{outcome}{detail}")

    def _say(self, text: str) -> None:
        stamp = datetime.now(UTC).astimezone().strftime("%H:%M:%S")
        print(f"{stamp} {text}", file=self._out, flush=True)


async def issue_statuses(client: Client, status: LineStatus) -> list[IssueStatus]:
    workflow_ids = [e.workflow_id for e in status.running] + [
        f.workflow_id for f in status.finished
    ]
    statuses: list[IssueStatus] = []
    for workflow_id in dict.fromkeys(workflow_ids):
        try:
            statuses.append(
                await client.get_workflow_handle(workflow_id).query(
                    "status", result_type=IssueStatus
                )
            )
        except RPCError:
            continue
    return sorted(statuses, key=lambda s: s.identifier or s.issue_id)


def summary_text(status: LineStatus, issues: list[IssueStatus]) -> str:
    lines = [
        "",
        f"Summary of line {status.line}: {'HALTED' if status.halted else 'running' if not status.idle else 'idle'}",
    ]
    if issues:
        lines.append(table(ISSUE_HEADERS, [issue_row(s) for s in issues]))
    else:
        lines.append("(no issue was dispatched)")
    for halt in status.halts:
        resolved = (
            f" — resumed by {halt.resolved_by}: {halt.root_cause}"
            if halt.resolved_at
            else " — OPEN"
        )
        lines.append(f"halt: {halt_line(halt)}{resolved}")
    lines.append(f"tokens: {status.fleet.tokens_total:,}")
    lines += next_steps(status, issues)
    return "\n".join(lines)


def next_steps(status: LineStatus, issues: list[IssueStatus]) -> list[str]:
    """What a person can do now, with the exact commands."""
    line = status.line or "?"
    steps: list[str] = []
    if status.halted:
        steps.append(
            f"The line is halted: resume it with a root cause ({resume_commands(line, status.workflow_id)[0]})."
        )
    for s in issues:
        name = s.identifier or s.issue_id
        if s.phase is Phase.HALTED:
            steps.append(f"{name} is halted: read 'jidoka why {name} --line {line}', then")
            steps.append(
                f'    jidoka issue decide {name} --line {line} retry|abandon --root-cause "<what was wrong>"'
            )
        elif s.phase is Phase.PAUSED:
            steps.append(
                f'{name} waits for answers: jidoka issue answer {name} --line {line} --answer "<answers>"'
            )
    return ["", "Next steps:", *[f"  {step}" for step in steps]] if steps else []


def summary_json(status: LineStatus, issues: list[IssueStatus]) -> dict[str, object]:
    return {
        "line": status.model_dump(mode="json"),
        "issues": [
            {
                "identifier": s.identifier,
                "title": s.title,
                "state": s.tracker_state,
                "phase": s.phase.value,
                "outcome": s.last_outcome.value if s.last_outcome else None,
                "evidence": s.last_evidence.model_dump(mode="json") if s.last_evidence else None,
                "halt": s.halt.model_dump(mode="json") if s.halt else None,
                "tokens": s.counters.tokens.total_tokens,
                "workflow_id": s.workflow_id,
                "ship": s.ship.model_dump(mode="json") if s.ship else None,
            }
            for s in issues
        ],
    }
