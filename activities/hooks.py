"""Workspace hooks (``after_create``, ``before_run``, ``after_run``, ``before_remove``) plus
``verify``: shell scripts from WORKFLOW.md, run in the workspace, in their own process group,
with a timeout and a truncated, scrubbed output tail.

Hooks run code the agent may have written (tests, build scripts), so they run like agents: in
the sandbox (when on), with the allow-listed environment and never a secret.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import sys

from temporalio import activity

from activities.git import gitops
from activities.git.sealed import SealedRepo
from activities.heartbeats import heartbeat_every
from activities.host_state import sealed_repository, state_root, workspace_state
from activities.process import child_environment, run_shell
from activities.sandbox import SandboxUnavailable, confinement
from activities.secrets import Scrubber, withheld_names
from activities.test_baseline import (
    REPORT_ENV,
    Tests,
    cache_path,
    cached,
    clear_report,
    load_report,
    store,
)
from jidoka import ratchet
from jidoka.models import HookResult, LoadedWorkflow, TestComparison, WorkspaceInfo
from jidoka.outcomes import HookName
from jidoka.payloads import HookInput

HEARTBEAT_EVERY_S = 5.0


def hook_pinned_env(workspace: WorkspaceInfo, attempt: int, identifier: str) -> dict[str, str]:
    return {
        "JIDOKA_ISSUE": identifier,
        "JIDOKA_ATTEMPT": str(attempt),
        "JIDOKA_WORKSPACE": workspace.path,
        "JIDOKA_BRANCH": workspace.branch,
        "JIDOKA_BASE_SHA": workspace.base_sha,
        "JIDOKA_PYTHON": sys.executable,
    }


def hook_timeout_s(workflow: LoadedWorkflow, hook: HookName) -> int:
    if hook is HookName.VERIFY:
        return workflow.config.verify_timeout_s()
    return workflow.config.hooks.timeout_s


def hook_script(workflow: LoadedWorkflow, hook: HookName) -> str | None:
    hooks = workflow.config.hooks
    match hook:
        case HookName.AFTER_CREATE:
            return hooks.after_create
        case HookName.BEFORE_RUN:
            return hooks.before_run
        case HookName.AFTER_RUN:
            return hooks.after_run
        case HookName.BEFORE_REMOVE:
            return hooks.before_remove
        case HookName.VERIFY:
            return hooks.verify


async def run_hook_script(
    workflow: LoadedWorkflow,
    workspace: WorkspaceInfo,
    hook: HookName,
    *,
    script: str,
    attempt: int,
    identifier: str,
    extra_env: dict[str, str] | None = None,
) -> HookResult:
    """Run one hook, heartbeating while it runs when inside an activity."""
    timeout = hook_timeout_s(workflow, hook)
    pinned = {**hook_pinned_env(workspace, attempt, identifier), **(extra_env or {})}
    try:
        confine = confinement(workflow, workspace.path, pinned=pinned)
    except SandboxUnavailable as error:
        return HookResult(name=hook.value, ran=False, ok=False, output_tail=str(error))
    env = child_environment(base=confine.env, strip=withheld_names(workflow.config))
    task = asyncio.create_task(
        run_shell(script, cwd=workspace.path, env=env, timeout_s=timeout, wrap=confine.argv)
    )
    try:
        while True:
            done, _ = await asyncio.wait({task}, timeout=heartbeat_every(HEARTBEAT_EVERY_S))
            if done:
                break
            with contextlib.suppress(RuntimeError):
                activity.heartbeat({"hook": hook.value})
    except asyncio.CancelledError:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        raise
    result = task.result()
    scrub = Scrubber.for_config(workflow.config)
    return HookResult(
        name=hook.value,
        ran=True,
        ok=result.exit_code == 0 and not result.timed_out,
        timed_out=result.timed_out,
        exit_code=result.exit_code,
        duration_s=round(result.duration_s, 3),
        output_tail=scrub(result.output_tail),
    )


@activity.defn(name="run_hook")
async def run_hook(input: HookInput) -> HookResult:
    """``before_run``, ``after_run``, ``verify`` (and the others, for operators). A hook that is
    not configured reports ``ran=False, ok=True``."""
    script = hook_script(input.workflow, input.hook)
    if not script:
        return HookResult(name=input.hook.value, ran=False, ok=True)
    if not os.path.isdir(input.workspace.path):
        return HookResult(
            name=input.hook.value,
            ran=False,
            ok=False,
            output_tail=f"workspace {input.workspace.path} does not exist on this host",
        )
    if input.hook is HookName.VERIFY and input.sha is not None:
        return await _verify_at(input, script, input.sha)
    return await run_hook_script(
        input.workflow,
        input.workspace,
        input.hook,
        script=script,
        attempt=input.attempt,
        identifier=input.issue_identifier,
    )


async def _verify_at(input: HookInput, script: str, sha: str) -> HookResult:
    """``verify`` in a fresh checkout of exactly ``sha`` from the sealed repository: what the
    agent left in its working tree (a file fixed only there, a skip-worktree trick) cannot make
    it pass; its result belongs to that commit. With ``judge.test_report``, a passing run's
    report is compared with the base's (the test ratchet)."""
    report = input.workflow.config.judge.test_report
    result, head_tests, head_problem = await _verify_in_checkout(input, script, sha, "verify")
    if report is None or not result.ok:
        return result
    base_sha = input.workspace.base_sha
    base_tests, base_problem = await _base_tests(input, script, report)
    comparison: TestComparison = ratchet.compare(
        base_tests,
        head_tests,
        base_sha=base_sha,
        head_sha=sha,
        base_problem=base_problem,
        head_problem=head_problem,
    )
    return result.model_copy(update={"tests": comparison})


async def _verify_in_checkout(
    input: HookInput, script: str, sha: str, folder: str
) -> tuple[HookResult, Tests | None, str | None]:
    """Run ``verify`` in a fresh checkout of ``sha``; its result, and the tests of its report
    (or why there are none) when ``judge.test_report`` is set."""
    report = input.workflow.config.judge.test_report
    checkout = workspace_state(input.workspace.path) / folder
    sealed = SealedRepo(sealed_repository(input.workspace.path))
    try:
        await asyncio.to_thread(sealed.checkout, sha, checkout)
    except gitops.GitError as error:
        result = HookResult(
            name=input.hook.value, ran=False, ok=False, sha=sha, output_tail=str(error)[-2000:]
        )
        return result, None, "the commit could not be checked out"
    tests: Tests | None = None
    problem: str | None = None
    try:
        extra: dict[str, str] = {}
        if report is not None:
            await asyncio.to_thread(clear_report, checkout, report)
            extra[REPORT_ENV] = str(checkout / report)
        result = await run_hook_script(
            input.workflow,
            input.workspace.model_copy(update={"path": str(checkout)}),
            input.hook,
            script=script,
            attempt=input.attempt,
            identifier=input.issue_identifier,
            extra_env=extra,
        )
        if report is not None:
            if result.timed_out:
                problem = "verify timed out"
            else:
                tests, problem = await asyncio.to_thread(load_report, checkout, report)
    finally:
        await asyncio.to_thread(shutil.rmtree, checkout, True)
    return result.model_copy(update={"sha": sha}), tests, problem


async def _base_tests(
    input: HookInput, script: str, report: str
) -> tuple[Tests | None, str | None]:
    """The base's tests: from the cache, else from ``verify`` run once at the base (whether
    it passes there does not matter: the issue may be to fix a failing test)."""
    base_sha = input.workspace.base_sha
    path = cache_path(state_root(), base_sha, script, report)
    found = await asyncio.to_thread(cached, path)
    if found is not None:
        return found, None
    _, tests, problem = await _verify_in_checkout(input, script, base_sha, "verify-base")
    if tests is not None:
        await asyncio.to_thread(store, path, tests)
    return tests, problem
