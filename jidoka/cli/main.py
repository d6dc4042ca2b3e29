"""Entry point of the ``jidoka`` console script."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence

from jidoka import __version__
from jidoka.cli import check, demo, issue, line, run, server, why
from jidoka.cli.errors import CliError


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
    server.add_parsers(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Callable[[argparse.Namespace], int] | None = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return 2
    try:
        return handler(args)
    except CliError as error:
        print(f"jidoka: {error.message}", file=sys.stderr)
        if error.detail:
            print(error.detail, file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt:
        print("jidoka: interrupted", file=sys.stderr)
        return 130


def entry() -> None:
    """The console script. ``os._exit`` skips interpreter teardown, where the Temporal SDK's
    native threads can abort the process (sdk-python#300) after the work is done: the exit code
    must be the command's, not a crash's."""
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    entry()
