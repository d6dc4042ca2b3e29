"""``jidoka line status|halt|resume|refresh|watch``: the andon lock from a terminal."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys

from temporalio.client import Client, WorkflowHandle, WorkflowUpdateFailedError
from temporalio.service import RPCError

from cli.common import (
    add_json_argument,
    add_target_arguments,
    client_or_fail,
    execute_update,
    line_config,
    line_id,
    line_name,
    operator_name,
    rpc_failure,
    started_config,
)
from cli.errors import CliError, SubParsers
from cli.line_view import LineView, read_line_view
from cli.money import currency_of
from cli.render import line_status_text
from cli.terminal import control
from jidoka.config import WorkflowConfig
from jidoka.outcomes import HaltCategory, HaltSource
from jidoka.payloads import HaltRequest, ResumeRequest, ResumeResult


def add_parser(subparsers: SubParsers) -> None:
    line = subparsers.add_parser("line", help="a production line: status, halt, resume, ...")
    actions = line.add_subparsers(dest="action", metavar="ACTION", required=True)

    status = actions.add_parser("status", help="halted or not and why, running issues, budgets")
    add_target_arguments(status)
    add_json_argument(status)
    status.set_defaults(handler=run_status)

    halt = actions.add_parser("halt", help="pull the andon cord: nothing new is dispatched")
    add_target_arguments(halt)
    halt.add_argument("--reason", required=True, help="why the line must stop")
    halt.add_argument("--operator", help="who pulls the cord (default $USER)")
    halt.set_defaults(handler=run_halt)

    resume = actions.add_parser("resume", help="release the andon cord with a root cause")
    add_target_arguments(resume)
    resume.add_argument("--root-cause", required=True, help="what was wrong (required)")
    resume.add_argument("--operator", help="who decided (default $USER)")
    resume.set_defaults(handler=run_resume)

    refresh = actions.add_parser("refresh", help="tick now instead of at the next poll")
    add_target_arguments(refresh)
    refresh.set_defaults(handler=run_refresh)

    watch = actions.add_parser("watch", help="follow the line's status until Ctrl-C")
    add_target_arguments(watch)
    watch.add_argument("--interval", type=float, default=2.0)
    watch.set_defaults(handler=run_watch)


async def _handle(args: argparse.Namespace) -> WorkflowHandle[object, object]:
    client = await client_or_fail()
    return client.get_workflow_handle(line_id(args))


async def line_view(
    client: Client, handle: WorkflowHandle[object, object], config: WorkflowConfig | None
) -> LineView:
    """``config``: the line's WORKFLOW.md (whether the line is priced, in which currency): the
    one the command was given, else the one the line was started with if readable here; None
    when neither is (visibility then tells whether the line is priced, and the currency is
    taken to be USD)."""
    try:
        return await read_line_view(
            client,
            handle,
            priced=None if config is None else config.pricing is not None,
            currency=currency_of(config.pricing if config is not None else None),
        )
    except RPCError as error:
        raise rpc_failure(error, handle.id) from None


def view_text(view: LineView) -> str:
    return line_status_text(view.status, review_rounds=view.review_rounds, money=view)


def run_status(args: argparse.Namespace) -> int:
    async def go() -> int:
        client = await client_or_fail()
        handle = client.get_workflow_handle(line_id(args))
        config = line_config(args) or await started_config(client, handle.id)
        view = await line_view(client, handle, config)
        print(json.dumps(view.json(), indent=2) if args.json else view_text(view))
        return 0

    return asyncio.run(go())


def run_halt(args: argparse.Namespace) -> int:
    async def go() -> int:
        handle = await _handle(args)
        operator = operator_name(args.operator)
        try:
            await handle.signal(
                "halt",
                HaltRequest(
                    reason=args.reason,
                    category=HaltCategory.HALT_PRODUCTION,
                    source=HaltSource.OPERATOR,
                    operator=operator,
                ),
            )
        except RPCError as error:
            raise rpc_failure(error, handle.id) from None
        print(f"line {line_name(args)} halted by {operator}: {args.reason}")
        return 0

    return asyncio.run(go())


def run_resume(args: argparse.Namespace) -> int:
    async def go() -> int:
        handle = await _handle(args)
        request = ResumeRequest(root_cause=args.root_cause, operator=operator_name(args.operator))
        try:
            result = await execute_update(handle, "resume", request, ResumeResult)
        except WorkflowUpdateFailedError as error:
            cause = error.cause
            raise CliError(f"resume refused: {getattr(cause, 'message', None) or cause}") from None
        except RPCError as error:
            raise rpc_failure(error, handle.id) from None
        print(result.message)
        return 0

    return asyncio.run(go())


def run_refresh(args: argparse.Namespace) -> int:
    async def go() -> int:
        handle = await _handle(args)
        try:
            await handle.signal("refresh")
        except RPCError as error:
            raise rpc_failure(error, handle.id) from None
        print(f"line {line_name(args)}: tick requested")
        return 0

    return asyncio.run(go())


def run_watch(args: argparse.Namespace) -> int:
    async def go() -> int:
        client = await client_or_fail()
        handle = client.get_workflow_handle(line_id(args))
        config = line_config(args) or await started_config(client, handle.id)
        # On a terminal each frame replaces the last; piped (a log, `tee`), frames follow one
        # another without escape codes.
        clear = "\033[2J\033[H" if sys.stdout.isatty() else ""
        while True:
            view = await line_view(client, handle, config)
            frame = view_text(view)
            if clear:
                control(clear)
            print(frame if clear else f"{frame}\n", flush=True)
            await asyncio.sleep(args.interval)

    try:
        return asyncio.run(go())
    except KeyboardInterrupt:
        return 0
