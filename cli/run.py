"""``jidoka run [WORKFLOW.md]``: the main job.

Without ``TEMPORAL_ADDRESS`` it starts the embedded dev server (database under ``.jidoka/`` next
to the WORKFLOW.md, Web UI address printed). A server already on the port is used when it is a
live ``jidoka server``, or a Temporal server jidoka did not start (said so); an orphaned one
(the jidoka that started it is gone) or another run's embedded server is refused, naming it.
It runs a worker in this process, starts (or joins) the line, and follows it. ``--until-idle``
exits when nothing is left to do, or when the line halts (unless ``--resume-with`` resumes it),
printing a summary of every issue. An issue in review (``review:`` in WORKFLOW.md) waits on
people, not on the line: ``--until-idle`` may end while issues are in review, and the summary
lists them as in review with what carries them on. SIGINT or SIGTERM stop it in order: the
summary, then the worker's graceful shutdown (agents killed and recorded after the grace),
then the embedded server; exit code 130 or 143.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
from collections.abc import AsyncGenerator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from temporalio.client import Client, WorkflowHandle, WorkflowUpdateFailedError
from temporalio.runtime import Runtime
from temporalio.service import RPCError

from cli.common import (
    StopSignals,
    client_or_fail,
    execute_update,
    load_or_fail,
    operator_name,
    table,
    web_ui,
)
from cli.errors import CliError, SubParsers
from cli.line_view import read_line_status
from cli.money import attempts_total_text
from cli.render import ISSUE_HEADERS, halt_line, issue_row, resume_commands
from jidoka.config import PricingConfig
from jidoka.models import LoadedWorkflow, RunningEntry
from jidoka.outcomes import Phase
from jidoka.payloads import IssueStatus, LineStatus, ResumeRequest, ResumeResult
from runtime.devserver import (
    DevServerError,
    DevServerSettings,
    Holder,
    connect_when_ready,
    embedded_server,
    port_open,
    who_holds,
)
from runtime.temporal import register_search_attributes
from starter import start_line
from worker import SettingsError, WorkerSettings, metrics_runtime, running_worker

if TYPE_CHECKING:
    from worker import WorkerSettings

EXIT_HALTED = 3
POLL_S = 1.0

HoldOpen = Callable[[LineStatus], Awaitable[bool]]
"""Awaited with the line's status at every poll of the follow; while it returns True,
``--until-idle`` does not end on an idle line (see :func:`run_line`)."""
AtEnd = Callable[["Connection"], Awaitable[None]]
"""Awaited once the follow has ended and the summary is printed, while the server and this
worker still answer (``jidoka demo`` writes its report there); not after a stop signal."""


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
    ui_url: str | None
    """None for a headless ``jidoka server``, or a cluster whose Web UI is not known
    (``JIDOKA_UI_URL`` names it)."""
    where: str


@contextlib.asynccontextmanager
async def temporal_for(
    loaded: LoadedWorkflow,
    port: int,
    ui_port: int,
    say: TextIO,
    runtime: Runtime | None = None,
) -> AsyncGenerator[Connection, None]:
    """A cluster when TEMPORAL_ADDRESS is set; else a local server, started if none runs.

    A server already on the port is used only when it is meant to be shared: a live
    ``jidoka server``, or a Temporal server jidoka did not start (said plainly). An orphan
    (its jidoka is gone) or another run's embedded server is refused with what to do."""
    if os.environ.get("TEMPORAL_ADDRESS"):
        client = await client_or_fail(runtime)
        await _ensure_search_attributes(client, say)
        yield Connection(
            client=client, ui_url=web_ui(client).url, where=os.environ["TEMPORAL_ADDRESS"]
        )
        return
    settings = DevServerSettings(
        db_path=Path(loaded.base_dir) / ".jidoka" / "temporal.db", port=port, ui_port=ui_port
    )
    if port_open(settings.ip, port):
        holder = who_holds(settings.ip, port)
        record = holder.record
        if holder.kind is Holder.SHARED and record is not None:
            where = (
                f"the jidoka server on {settings.address} (pid {record.owner_pid}, "
                f"database {record.db_path})"
            )
            ui_url = f"http://localhost:{record.ui_port}" if record.ui_port else None
        elif holder.kind is Holder.FOREIGN:
            print(
                f"jidoka: the Temporal server already on {settings.address} was not started by "
                f"jidoka; using it (the line's history goes to its database, not "
                f"{settings.db_path})",
                file=say,
            )
            where = f"the Temporal server on {settings.address} (not started by jidoka)"
            ui_url = settings.ui_url
        else:
            raise CliError(holder.busy_message())
        client = await _connect_or_fail(settings.address, runtime)
        await _ensure_search_attributes(client, say)
        yield Connection(client=client, ui_url=ui_url, where=where)
        return
    try:
        async with embedded_server(settings, owner="jidoka run") as server:
            client = await _connect_or_fail(server.settings.address, runtime)
            yield Connection(
                client=client,
                ui_url=settings.ui_url,
                where=f"the embedded dev server (database {settings.db_path})",
            )
    except DevServerError as error:
        raise CliError(error.message, detail=error.detail) from None


async def _connect_or_fail(address: str, runtime: Runtime | None = None) -> Client:
    try:
        return await connect_when_ready(address, runtime=runtime)
    except RuntimeError as error:
        raise CliError(
            f"cannot reach Temporal at {address}: {str(error).splitlines()[0]}"
        ) from None


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


async def run_line(
    args: argparse.Namespace, *, hold_open: HoldOpen | None = None, at_end: AtEnd | None = None
) -> int:
    """The run, stopped in order by SIGINT or SIGTERM: the follow ends, the summary is still
    printed, the worker shuts down (agents get the grace, then are killed and their attempts
    recorded), then the embedded server stops. Exit code 128 + the signal's number.

    ``hold_open`` is for a caller that acts on the line while it runs (``jidoka demo``'s
    scripted reviewer): it is awaited with the line's status at every poll, and while it
    returns True an idle line does not end ``--until-idle`` (a halt still does, as without it).
    A user's run has none, so ``--until-idle`` keeps its meaning: nothing left for the line to
    do. An issue in review is waiting on people, not on the line (it holds no agent slot), so
    the run may end with issues in review; the summary lists them, and ``jidoka run`` again
    carries them on when their change request is merged, closed or sent back."""

    loaded = load_or_fail(args.workflow)
    say = sys.stderr if args.json else sys.stdout
    try:
        settings = WorkerSettings.from_env()
    except SettingsError as error:
        raise CliError(str(error)) from None
    grace = int(settings.graceful_shutdown.total_seconds())
    stop = StopSignals(
        stopping=f"jidoka: {{signal}}: stopping; running agents get up to {grace}s "
        "(JIDOKA_SHUTDOWN_GRACE_S), then are killed and their attempts recorded",
        again=f"jidoka: already stopping (agents get up to {grace}s)",
    )
    with stop.installed():
        stop.arm()
        try:
            return await _run_line(
                args, loaded, settings, say, stop, hold_open=hold_open, at_end=at_end
            )
        except asyncio.CancelledError:
            if not stop.requested.is_set():
                raise
            stop.disarm()
            print("jidoka: stopped before the line was followed", file=sys.stderr)
            return stop.exit_code


async def _run_line(
    args: argparse.Namespace,
    loaded: LoadedWorkflow,
    settings: WorkerSettings,
    say: TextIO,
    stop: StopSignals,
    *,
    hold_open: HoldOpen | None = None,
    at_end: AtEnd | None = None,
) -> int:
    # JIDOKA_METRICS_BIND: this process's worker exports the SDK's and Jidoka's metrics, as
    # `jidoka worker` does (docs/metrics.md).
    runtime = metrics_runtime(settings.metrics_bind) if settings.metrics_bind else None
    async with temporal_for(loaded, args.port, args.ui_port, say, runtime) as connection:
        print(f"jidoka: line {loaded.config.line} on {connection.where}", file=say)
        if settings.metrics_bind:
            print(f"jidoka: metrics on http://{settings.metrics_bind}/metrics", file=say)
        if connection.ui_url:
            print(f"jidoka: Web UI {connection.ui_url}/namespaces/default/workflows", file=say)
        async with running_worker(connection.client, settings):
            handle = await start_line(connection.client, loaded, settings.task_queue)
            follower = Follower(
                client=connection.client,
                handle=handle,
                line=loaded.config.line,
                out=say,
                resume_with=args.resume_with,
                operator=operator_name(args.operator),
                max_resumes=args.max_resumes,
                hold_open=hold_open,
            )
            try:
                code = await follower.follow(
                    until_idle=args.until_idle,
                    exit_on_halt=args.until_idle and not getattr(args, "wait_when_halted", False),
                )
            except asyncio.CancelledError:
                if not stop.requested.is_set():
                    raise
                code = stop.exit_code
            except RPCError as error:
                raise CliError(f"lost the line: {error.message}") from None
            finally:
                # From here on, however the follow ended, a signal only says that a stop is
                # under way: the cleanup (the worker's shutdown above all) must run whole.
                stop.disarm()
            # The summary is read while this worker can still answer queries, and printed
            # before its shutdown, which may take the whole grace.
            try:
                status = await read_line_status(connection.client, handle)
                issues = await issue_statuses(connection.client, status)
            except RPCError as error:
                raise CliError(f"cannot read the line's status: {error.message}") from None
            pricing = loaded.config.pricing
            if args.json:
                print(
                    json.dumps(summary_json(status, issues, pricing), indent=2, default=str),
                    flush=True,
                )
            else:
                print(summary_text(status, issues, pricing), flush=True)
            if connection.ui_url:
                print(
                    f"jidoka: Web UI {connection.ui_url}/namespaces/default/workflows"
                    f"?query=JidokaLine%3D%22{loaded.config.line}%22",
                    file=say,
                    flush=True,
                )
            if at_end is not None and not stop.requested.is_set():
                await at_end(connection)
            if stop.requested.is_set():
                print(
                    "jidoka: the line keeps its state in Temporal; 'jidoka run' again carries on",
                    file=say,
                    flush=True,
                )
    return code


@dataclass
class Follower:
    """Prints the line's progress and handles halts (auto-resume, or stop)."""

    client: Client
    handle: WorkflowHandle[object, object]
    line: str
    out: TextIO
    resume_with: str | None
    operator: str
    max_resumes: int
    hold_open: HoldOpen | None = None
    """Keeps an idle line followed while it returns True (see :func:`run_line`)."""

    async def follow(self, *, until_idle: bool, exit_on_halt: bool) -> int:
        progress = Progress(self.out)
        resumes = 0
        announced_halts = 0
        idle_ticks: int | None = None
        while True:
            status = await read_line_status(self.client, self.handle)
            progress.update(status)
            held = self.hold_open is not None and await self.hold_open(status)
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
            elif until_idle and status.idle and not held:
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


def spent_text(issues: list[IssueStatus], pricing: PricingConfig) -> str:
    """What the issues of the run cost together, a lower bound while some attempt's is
    unknown."""
    known = sum(s.counters.cost for s in issues)
    unknown = sum(s.counters.cost_unknown for s in issues)
    return attempts_total_text(known, unknown, pricing.currency)


def summary_text(
    status: LineStatus, issues: list[IssueStatus], pricing: PricingConfig | None = None
) -> str:
    state = "HALTED" if status.halted else "running" if not status.idle else "idle"
    in_review = sum(1 for s in issues if s.phase is Phase.IN_REVIEW)
    if in_review:
        state += f", {in_review} in review (waiting on people)"
    lines = ["", f"Summary of line {status.line}: {state}"]
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
    if pricing is not None:
        lines.append(f"cost: {spent_text(issues, pricing)}")
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
        elif s.phase is Phase.IN_REVIEW:
            steps.append(
                f"{name} is in review ({s.tracker_state}): it waits on people; 'jidoka run' "
                "carries it on once its change request is merged, closed or sent back"
            )
            steps.append(f"    where it stands: jidoka why {name} --line {line}")
    return ["", "Next steps:", *[f"  {step}" for step in steps]] if steps else []


def summary_json(
    status: LineStatus, issues: list[IssueStatus], pricing: PricingConfig | None = None
) -> dict[str, object]:
    return {
        "currency": pricing.currency if pricing is not None else None,
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
                # The known part, and how many attempts' cost is unknown (never a false zero).
                "cost": s.counters.cost if pricing is not None else None,
                "cost_unknown_attempts": s.counters.cost_unknown if pricing is not None else None,
                "workflow_id": s.workflow_id,
                "ship": s.ship.model_dump(mode="json") if s.ship else None,
            }
            for s in issues
        ],
    }
