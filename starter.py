"""Start a line (or one issue) from Python: ``python starter.py WORKFLOW.md [--issue ID]``.

Starts are idempotent: the workflow ID is derived from the line (and the issue), and an open run
with that ID is joined (``USE_EXISTING``), never duplicated. The connection comes from Temporal's
environment configuration (``TEMPORAL_ADDRESS``, ...). ``jidoka run`` uses :func:`start_line`.
"""

from __future__ import annotations

import argparse
import asyncio
import os

from temporalio.client import Client, WorkflowHandle
from temporalio.common import (
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
)

from jidoka import search_attributes as sa
from jidoka.keys import SHARED_TASK_QUEUE, issue_workflow_id, line_workflow_id, workspace_key
from jidoka.models import LoadedWorkflow
from jidoka.payloads import IssueWorkflowInput, LineWorkflowInput
from jidoka.workflow_file import load_workflow
from runtime.temporal import connect


async def start_line(
    client: Client, loaded: LoadedWorkflow, task_queue: str = SHARED_TASK_QUEUE
) -> WorkflowHandle[object, object]:
    return await client.start_workflow(
        "LineWorkflow",
        LineWorkflowInput(workflow_path=loaded.path),
        id=line_workflow_id(loaded.config.line),
        task_queue=task_queue,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        search_attributes=TypedSearchAttributes([SearchAttributePair(sa.LINE, loaded.config.line)]),
        static_summary=f"line {loaded.config.line}",
    )


async def start_issue(
    client: Client, loaded: LoadedWorkflow, issue_id: str, task_queue: str = SHARED_TASK_QUEUE
) -> WorkflowHandle[object, object]:
    """One issue without a line (halts stay with the issue; nothing else is dispatched)."""
    return await client.start_workflow(
        "IssueWorkflow",
        IssueWorkflowInput(workflow_path=loaded.path, issue_id=issue_id),
        id=issue_workflow_id(loaded.config.line, workspace_key(issue_id)),
        task_queue=task_queue,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        search_attributes=TypedSearchAttributes(
            [
                SearchAttributePair(sa.LINE, loaded.config.line),
                SearchAttributePair(sa.ISSUE, issue_id),
            ]
        ),
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("workflow", nargs="?", default="WORKFLOW.md")
    parser.add_argument("--issue", help="start only this issue")
    args = parser.parse_args()
    loaded = load_workflow(args.workflow)
    client = await connect()
    queue = os.environ.get("JIDOKA_TASK_QUEUE") or SHARED_TASK_QUEUE
    handle = (
        await start_issue(client, loaded, args.issue, queue)
        if args.issue
        else await start_line(client, loaded, queue)
    )
    print(f"started {handle.id} on task queue {queue}")


if __name__ == "__main__":
    asyncio.run(main())
