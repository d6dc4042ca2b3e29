"""Entry point of the ``jidoka`` console script."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import sys
from collections.abc import Callable, Generator, Sequence

import temporalio.activity
import temporalio.exceptions
from temporalio.runtime import (
    LogForwardingConfig,
    LoggingConfig,
    Runtime,
    TelemetryConfig,
    TelemetryFilter,
)

from cli import check, demo, issue, line, report, run, server, why
from cli.errors import CliError
from cli.terminal import inert_streams
from jidoka import __version__


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="jidoka",
        description="Durable orchestrator for AI coding agents: nothing ships without evidence; "
        "anything abnormal stops the line.",
    )
    parser.add_argument("--version", action="version", version=f"jidoka {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    run.add_parser(subparsers)
    demo.add_parser(subparsers)
    check.add_parser(subparsers)
    line.add_parser(subparsers)
    issue.add_parser(subparsers)
    why.add_parser(subparsers)
    report.add_parser(subparsers)
    server.add_parsers(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Callable[[argparse.Namespace], int] | None = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return 2
    route_core_logs()
    quiet_cancellations()
    try:
        with document_stdout(bool(getattr(args, "json", False))), inert_streams():
            return handler(args)
    except CliError as error:
        print(f"jidoka: {error.message}", file=sys.stderr)
        if error.detail:
            print(error.detail, file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt:
        print("jidoka: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (``| head``): nobody is left to tell, and what is still
        # buffered for stdout must not fail again on the way out.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        return 141


def route_core_logs() -> None:
    """The Temporal SDK Core writes its own log lines straight to stdout, in the middle of a
    summary or a JSON document: forward them to Python logging instead, which writes to
    stderr (same levels as the SDK's default: Core warnings, other crates' errors)."""
    logging_config = LoggingConfig(
        filter=TelemetryFilter(core_level="WARN", other_level="ERROR"),
        forwarding=LogForwardingConfig(logger=logging.getLogger("temporalio.core")),
    )
    Runtime.set_default(
        Runtime(telemetry=TelemetryConfig(logging=logging_config)), error_if_already_set=False
    )


class _CancellationWithoutTraceback(logging.Filter):
    """An activity cancelled (a worker's shutdown stopping an agent, a cancelled issue) is an
    outcome the attempt records, not a crash: the SDK's warning keeps its line, without the
    traceback of the cancellation."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, (asyncio.CancelledError, temporalio.exceptions.CancelledError)):
            record.msg = f"{record.msg} ({type(exc).__name__}: {exc})"
            record.exc_info = None
            record.exc_text = None
        return True


def quiet_cancellations() -> None:
    temporalio.activity.logger.logger.addFilter(_CancellationWithoutTraceback())


@contextlib.contextmanager
def document_stdout(enabled: bool) -> Generator[None, None, None]:
    """With ``--json``, stdout carries one document and nothing else. ``sys.stdout`` keeps the
    real stdout for the document that the command prints; file descriptor 1 itself, which
    native code and child processes write to behind Python's back, points at stderr."""
    if not enabled:
        yield
        return
    real = sys.stdout
    real.flush()
    document_fd = os.dup(1)
    os.dup2(2, 1)
    try:
        with open(
            document_fd, "w", encoding=real.encoding, errors=real.errors, closefd=False
        ) as document:
            sys.stdout = document
            yield
    finally:
        sys.stdout = real
        os.dup2(document_fd, 1)
        os.close(document_fd)


def entry() -> None:
    """The console script. ``os._exit`` skips interpreter teardown, where the Temporal SDK's
    native threads can abort the process (sdk-python#300) after the work is done: the exit code
    must be the command's, not a crash's."""
    code = main()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except BrokenPipeError:
            code = code or 141
    os._exit(code)


if __name__ == "__main__":
    entry()
