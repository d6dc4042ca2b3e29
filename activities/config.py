"""Reading WORKFLOW.md happens in an activity: a file on the worker's disk is I/O, and a reload
must never make a workflow non-deterministic. Invalid files fail non-retryably with every
problem attached, so the caller can keep its last good config and show why."""

from __future__ import annotations

import asyncio
import hashlib

from temporalio import activity
from temporalio.exceptions import ApplicationError

from jidoka.models import LoadedWorkflow
from jidoka.payloads import LoadWorkflowInput, ReloadedWorkflow, ReloadWorkflowInput
from jidoka.workflow_file import WorkflowFileError, load_workflow

CONFIG_INVALID = "ConfigInvalid"


@activity.defn(name="load_workflow_config")
async def load_workflow_config(input: LoadWorkflowInput) -> LoadedWorkflow:
    return await _load(input.path)


@activity.defn(name="reload_workflow_config")
async def reload_workflow_config(input: ReloadWorkflowInput) -> ReloadedWorkflow:
    """The config, or only its fingerprint when the caller already holds the same one. The
    fingerprint covers the loaded result, not just the file's bytes: what the load resolves
    (paths, the environment) can change while the file does not."""
    loaded = await _load(input.path)
    fingerprint = hashlib.sha256(loaded.model_dump_json().encode()).hexdigest()
    if fingerprint == input.known_fingerprint:
        return ReloadedWorkflow(fingerprint=fingerprint)
    return ReloadedWorkflow(fingerprint=fingerprint, workflow=loaded)


async def _load(path: str) -> LoadedWorkflow:
    try:
        return await asyncio.to_thread(load_workflow, path)
    except WorkflowFileError as error:
        summary = "; ".join(p.render().replace("\n", " ") for p in error.problems[:5])
        raise ApplicationError(
            f"{path}: {summary}",
            [p.model_dump() for p in error.problems],
            type=CONFIG_INVALID,
            non_retryable=True,
        ) from None
