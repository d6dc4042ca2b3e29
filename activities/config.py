"""Reading WORKFLOW.md happens in an activity: a file on the worker's disk is I/O, and a reload
must never make a workflow non-deterministic. Invalid files fail non-retryably with every
problem attached, so the caller can keep its last good config and show why."""

from __future__ import annotations

import asyncio

from temporalio import activity
from temporalio.exceptions import ApplicationError

from jidoka.models import LoadedWorkflow
from jidoka.payloads import LoadWorkflowInput
from jidoka.workflow_file import WorkflowFileError, load_workflow

CONFIG_INVALID = "ConfigInvalid"


@activity.defn(name="load_workflow_config")
async def load_workflow_config(input: LoadWorkflowInput) -> LoadedWorkflow:
    try:
        return await asyncio.to_thread(load_workflow, input.path)
    except WorkflowFileError as error:
        summary = "; ".join(p.render().replace("\n", " ") for p in error.problems[:5])
        raise ApplicationError(
            f"{input.path}: {summary}",
            [p.model_dump() for p in error.problems],
            type=CONFIG_INVALID,
            non_retryable=True,
        ) from None
