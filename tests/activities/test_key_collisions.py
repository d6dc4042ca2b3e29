"""Two issues whose names collide never run as one.

Keys and workflow IDs are derived from identifiers and line names, and two of them can collide
(found by the fuzz campaign, ``tests/fuzz/test_fuzz_keys.py``): ``A/B`` is kept as
``A_B-<hash>``, itself a valid identifier; the lines ``demo`` and ``demo-ENG`` give issue
``ENG-1`` of one and issue ``1`` of the other the same workflow ID. Changing the schemes would
rename every running workflow, workspace and branch, so instead each collision is refused, for
good and by name, where it would bite: preparing a workspace another issue owns, and starting a
workflow that another issue's already is.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from temporalio.client import Client
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.line import WORKFLOW_ID_TAKEN, LineActivities
from activities.workspace import ErrorType, prepare_workspace
from jidoka.keys import issue_workflow_id, workspace_key
from jidoka.models import Issue
from jidoka.payloads import IssueToStart, PrepareWorkspaceInput, StartIssuesInput
from jidoka.workflow_file import load_workflow
from tests.support.linekit import make_line


def issue(identifier: str) -> Issue:
    return Issue(id=identifier, identifier=identifier, title="t", state="Todo")


async def test_an_identifier_spelled_like_another_issues_key_cannot_take_its_workspace(
    tmp_path: Path,
) -> None:
    kit = make_line(tmp_path)
    loaded = load_workflow(kit.workflow_md)
    env = ActivityEnvironment()
    first = await env.run(
        prepare_workspace, PrepareWorkspaceInput(workflow=loaded, issue=issue("A/B"), attempt=1)
    )
    impostor = workspace_key("A/B")
    assert workspace_key(impostor) == first.key  # the collision itself
    with pytest.raises(ApplicationError) as refused:
        await env.run(
            prepare_workspace,
            PrepareWorkspaceInput(workflow=loaded, issue=issue(impostor), attempt=1),
        )
    assert refused.value.type == ErrorType.WORKSPACE_INVALID and refused.value.non_retryable
    assert "'A/B'" in str(refused.value) and "rename one of the issues" in str(refused.value)
    # The owner itself comes back to its workspace as before.
    again = await env.run(
        prepare_workspace, PrepareWorkspaceInput(workflow=loaded, issue=issue("A/B"), attempt=2)
    )
    assert again.path == first.path


async def test_a_start_that_would_join_another_lines_issue_fails_by_name(
    client: Client, tmp_path: Path
) -> None:
    base = f"c{uuid.uuid4().hex[:6]}"
    first_line, second_line = base, f"{base}-ENG"
    workflow_id = issue_workflow_id(first_line, "ENG-1")
    assert workflow_id == issue_workflow_id(second_line, "1")  # the collision itself
    kit = make_line(tmp_path, {"line": first_line})
    loaded = load_workflow(kit.workflow_md)
    activities = LineActivities(client)
    queue = f"nobody-{uuid.uuid4().hex[:6]}"  # nothing runs them: only the starts matter

    def starting(line: str, identifier: str) -> StartIssuesInput:
        return StartIssuesInput(
            workflow_path=str(kit.workflow_md),
            workflow=loaded,
            line=line,
            line_workflow_id=f"jidoka-line-{line}",
            task_queue=queue,
            issues=[IssueToStart(issue=issue(identifier), workflow_id=workflow_id)],
            line_halted=False,
        )

    env = ActivityEnvironment()
    try:
        await env.run(activities.start_issue_workflows, starting(first_line, "ENG-1"))
        # Starting it again (a retried start, a restarted line) joins it, as always.
        await env.run(activities.start_issue_workflows, starting(first_line, "ENG-1"))
        with pytest.raises(ApplicationError) as refused:
            await env.run(activities.start_issue_workflows, starting(second_line, "1"))
    finally:
        await client.get_workflow_handle(workflow_id).terminate("test done")
    assert refused.value.type == WORKFLOW_ID_TAKEN and refused.value.non_retryable
    message = str(refused.value)
    assert f"issue 'ENG-1' of line {first_line!r}" in message
    assert f"issue '1' of line {second_line!r}" in message
