"""``jidoka issue status|halt|resume|answer|decide ISSUE``: one issue of a line."""

from __future__ import annotations

import argparse
import asyncio
import json

from temporalio.client import WorkflowHandle, WorkflowUpdateFailedError
from temporalio.service import RPCError

from cli.common import (
    add_json_argument,
    add_target_arguments,
    client_or_fail,
    execute_update,
    issue_id_for,
    line_config,
    line_name,
    operator_name,
    rpc_failure,
    started_config,
    web_ui,
)
from cli.errors import CliError, SubParsers
from cli.money import currency_of
from cli.render import issue_status_text
from jidoka import search_attributes as sa
from jidoka.outcomes import HaltCategory, HaltSource, OperatorDecision
from jidoka.payloads import AnswerRequest, DecideRequest, DecideResult, HaltRequest, IssueStatus


def add_parser(subparsers: SubParsers) -> None:
    issue = subparsers.add_parser("issue", help="one issue: status, halt, resume, answer, decide")
    actions = issue.add_subparsers(dest="action", metavar="ACTION", required=True)

    def target(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("issue", help="the issue identifier, e.g. DEMO-3")
        add_target_arguments(parser)

    status = actions.add_parser("status", help="phase, attempts, evidence, halt")
    target(status)
    add_json_argument(status)
    status.set_defaults(handler=run_status)

    halt = actions.add_parser("halt", help="stop this issue before its next attempt")
    target(halt)
    halt.add_argument("--reason", required=True)
    halt.add_argument("--operator")
    halt.set_defaults(handler=run_halt)

    resume = actions.add_parser("resume", help="retry a halted issue (needs a root cause)")
    target(resume)
    resume.add_argument("--root-cause", required=True)
    resume.add_argument("--operator")
    resume.set_defaults(handler=run_resume)

    answer = actions.add_parser("answer", help="answer a paused issue's questions")
    target(answer)
    answer.add_argument("--answer", required=True, help="the answers, in one text")
    answer.add_argument("--operator")
    answer.set_defaults(handler=run_answer)

    decide = actions.add_parser(
        "decide",
        help="retry, abandon or (after a judge stop) accept a halted issue",
        description="retry: run the agent again (with --note: what it should do differently). "
        "abandon: keep the work on a branch and stop. accept: only after a protected_paths, "
        "tests_weakened or closing_keywords stop, consent to what was held; the same work is "
        "judged again and may ship, your root cause recorded.",
    )
    target(decide)
    decide.add_argument("decision", choices=[d.value for d in OperatorDecision])
    decide.add_argument("--root-cause", required=True)
    decide.add_argument("--note", help="retry: a note for the agent's next prompt")
    decide.add_argument("--operator")
    decide.set_defaults(handler=run_decide)


async def _handle(args: argparse.Namespace) -> WorkflowHandle[object, object]:
    client = await client_or_fail()
    return client.get_workflow_handle(issue_id_for(line_name(args), args.issue))


def run_status(args: argparse.Namespace) -> int:
    async def go() -> int:
        client = await client_or_fail()
        config = line_config(args)
        line = config.line if config is not None else line_name(args)
        handle = client.get_workflow_handle(issue_id_for(line, args.issue))
        try:
            status = await handle.query("status", result_type=IssueStatus)
            if args.json:
                print(json.dumps(status.model_dump(mode="json"), indent=2))
                return 0
            config = config or await started_config(client, handle.id)
            if config is not None:
                priced = config.pricing is not None
            else:  # no WORKFLOW.md readable: it holds JidokaCost only on a priced line
                description = await handle.describe()
                priced = description.typed_search_attributes.get(sa.COST) is not None
        except RPCError as error:
            raise rpc_failure(error, handle.id) from None
        currency = currency_of(config.pricing if config is not None else None)
        link = web_ui(client).link(handle.id, client.namespace)
        print(issue_status_text(status, link=link, currency=currency if priced else None))
        return 0

    return asyncio.run(go())


def run_halt(args: argparse.Namespace) -> int:
    async def go() -> int:
        handle = await _handle(args)
        operator = operator_name(args.operator)
        request = HaltRequest(
            reason=args.reason,
            category=HaltCategory.HALT_PRODUCTION,
            source=HaltSource.OPERATOR,
            operator=operator,
        )
        try:
            await handle.signal("halt", request)
        except RPCError as error:
            raise rpc_failure(error, handle.id) from None
        print(f"{args.issue}: halt requested by {operator} (takes effect before its next attempt)")
        return 0

    return asyncio.run(go())


async def _decide(args: argparse.Namespace, decision: OperatorDecision) -> int:
    handle = await _handle(args)
    request = DecideRequest(
        decision=decision,
        root_cause=args.root_cause,
        operator=operator_name(args.operator),
        note=getattr(args, "note", None),
    )
    try:
        result = await execute_update(handle, "decide", request, DecideResult)
    except WorkflowUpdateFailedError as error:
        cause = error.cause
        raise CliError(
            f"{args.issue}: refused: {getattr(cause, 'message', None) or cause}"
        ) from None
    except RPCError as error:
        raise rpc_failure(error, handle.id) from None
    print(f"{args.issue}: {result.message}")
    return 0


def run_resume(args: argparse.Namespace) -> int:
    return asyncio.run(_decide(args, OperatorDecision.RETRY))


def run_decide(args: argparse.Namespace) -> int:
    return asyncio.run(_decide(args, OperatorDecision(args.decision)))


def run_answer(args: argparse.Namespace) -> int:
    async def go() -> int:
        handle = await _handle(args)
        try:
            status = await handle.query("status", result_type=IssueStatus)
            if status.phase.value != "paused":
                raise CliError(
                    f"{args.issue} is not waiting for answers (phase {status.phase.value})"
                )
            await handle.signal(
                "answer", AnswerRequest(answer=args.answer, operator=operator_name(args.operator))
            )
        except RPCError as error:
            raise rpc_failure(error, handle.id) from None
        print(f"{args.issue}: answer delivered; it resumes work")
        return 0

    return asyncio.run(go())
