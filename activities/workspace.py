"""Workspace activities: everything that touches an issue's git workspace on its host.

Except ``claim_host`` (shared queue: it tells the workflow which host picked the work up), these
run on the host's own task queue (docs/architecture.md#host-task-queues), so the workspace, the
agent run, the evidence and the hooks of one issue all happen on the same disk.

Safety invariants: workspace keys are sanitised, every path is checked to stay under the
workspace root, an existing directory that is not our workspace is never deleted, and work is
never reset or cleaned: abandoning preserves it on an ``abandoned/`` branch.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.agent.leftovers import reap_leftover
from activities.git import gitops
from activities.git.access import RepoAccess, repo_access
from activities.git.credentials import redact_url
from activities.git.hygiene import remember_origin, restore_workspace_config
from activities.git.sealed import (
    BASE_REF,
    LIFE_BASE_REF,
    PRESERVED_REF,
    REMOTE_WORK_REF,
    WANT_REF,
    SealedRepo,
)
from activities.heartbeats import heartbeating
from activities.hooks import run_hook_script
from activities.host_state import claim_workspace, sealed_repository, workspace_state
from activities.secrets import Scrubber
from activities.tracker.activities import tracker_session
from activities.workspace_files import open_jidoka_dir
from jidoka.keys import (
    InvalidIdentifierError,
    WorkspaceEscapeError,
    host_task_queue,
    work_branch,
    workspace_key,
    workspace_path,
)
from jidoka.models import LoadedWorkflow, WorkspaceInfo
from jidoka.outcomes import HookName
from jidoka.payloads import (
    CleanupInput,
    CleanupResult,
    HostClaim,
    PrepareWorkspaceInput,
    PreserveInput,
    PreserveResult,
    PushInput,
    PushResult,
    RemoveWorkspaceInput,
    RemoveWorkspaceResult,
)
from jidoka.workflow_file import resolve_path

logger = logging.getLogger(__name__)

ARCHIVE_DIR = os.path.join(gitops.JIDOKA_DIR, "archive")
VERDICT_FILE = os.path.join(gitops.JIDOKA_DIR, "verdict.json")


class ErrorType:
    """``ApplicationError.type`` values the issue workflow maps to outcomes."""

    WORKSPACE_INVALID = "WorkspaceInvalid"
    WORKSPACE_FAILED = "WorkspaceFailed"
    HOOK_FAILED = "HookFailed"
    HOOK_TIMEOUT = "HookTimeout"
    CONFIG_INVALID = "ConfigInvalid"


@dataclass(frozen=True)
class HostIdentity:
    host_id: str

    @property
    def queue(self) -> str:
        return host_task_queue(self.host_id)


class HostActivities:
    """Activities that need to know which host runs them."""

    def __init__(self, host: HostIdentity) -> None:
        self._host = host

    @activity.defn(name="claim_host")
    async def claim_host(self) -> HostClaim:
        """Runs on the shared queue: whichever worker picks it up becomes the issue's host."""
        return HostClaim(host_id=self._host.host_id, host_queue=self._host.queue)


def _environ() -> dict[str, str]:
    return dict(os.environ)


def workspace_root(workflow: LoadedWorkflow) -> str:
    try:
        return resolve_path(workflow.config.workspace.root, workflow.base_dir, _environ())
    except KeyError as missing:
        raise ApplicationError(
            f"workspace.root refers to ${missing.args[0]}, which is not set on this worker",
            type=ErrorType.CONFIG_INVALID,
            non_retryable=True,
        ) from None


def locate(workflow: LoadedWorkflow, identifier: str) -> tuple[str, str, str]:
    """(root, key, path) for an issue, refusing anything outside the root."""
    root = workspace_root(workflow)
    try:
        key = workspace_key(identifier)
        path = workspace_path(root, key)
    except (InvalidIdentifierError, WorkspaceEscapeError) as error:
        raise ApplicationError(
            str(error), type=ErrorType.WORKSPACE_INVALID, non_retryable=True
        ) from None
    return root, key, path


@activity.defn(name="prepare_workspace")
async def prepare_workspace(input: PrepareWorkspaceInput) -> WorkspaceInfo:
    """Create (clone) or reuse the issue's workspace on the work branch; run ``after_create``
    once; archive a stale verdict so that only this attempt's verdict can count (unless the
    attempt judges an earlier run again, whose verdict it is)."""
    async with heartbeating():
        return await _prepare_workspace(input)


async def _prepare_workspace(input: PrepareWorkspaceInput) -> WorkspaceInfo:
    workflow = input.workflow
    config = workflow.config.workspace
    root, key, path = locate(workflow, input.issue.identifier)
    other = await asyncio.to_thread(claim_workspace, path, input.issue.identifier)
    if other is not None:
        raise ApplicationError(
            f"the workspace {key!r} is already the workspace of issue {other!r}: the identifiers "
            f"{other!r} and {input.issue.identifier!r} map to one workspace key and one branch; "
            "rename one of the issues",
            type=ErrorType.WORKSPACE_INVALID,
            non_retryable=True,
        )
    branch = work_branch(config.branch_prefix, key)
    if not gitops.branch_ref_ok(branch):
        raise ApplicationError(
            f"work branch {branch!r} is not a valid git branch name (workspace.branch_prefix)",
            type=ErrorType.CONFIG_INVALID,
            non_retryable=True,
        )
    os.makedirs(root, exist_ok=True)
    reaped = await asyncio.to_thread(reap_leftover, Path(path))
    if reaped is not None:
        activity.logger.warning(
            "killed agent group %s left running in %s by a lost worker", reaped, path
        )
    access = repo_access(workflow)
    sealed = SealedRepo(sealed_repository(path))
    await asyncio.to_thread(_refresh_sealed, sealed, access, config.base_branch, branch)
    created_now = False
    if not os.path.lexists(path):
        await asyncio.to_thread(_create_workspace, path, access.remote)
        created_now = True
    elif not gitops.is_repository(path):
        raise ApplicationError(
            f"{path} exists but is not a git workspace; refusing to touch it",
            type=ErrorType.WORKSPACE_INVALID,
            non_retryable=True,
        )
    remember_origin(path, access.remote)
    try:
        base_sha = await asyncio.to_thread(
            _checkout_work_branch, sealed, path, branch, config.base_branch, input.base_sha
        )
    except gitops.GitError as error:
        raise ApplicationError(
            f"cannot prepare the workspace: {error}", type=ErrorType.WORKSPACE_FAILED
        ) from None
    info = WorkspaceInfo(
        path=path,
        key=key,
        branch=branch,
        base_sha=base_sha,
        host_queue=activity.info().task_queue,
        created_now=created_now,
    )
    if not _created_marker(path).exists():
        await _after_create(workflow, info, input)
    if not input.rejudge:
        await asyncio.to_thread(_archive_stale_verdict, path)
    return info


def _refresh_sealed(sealed: SealedRepo, access: RepoAccess, base_branch: str, branch: str) -> None:
    """The only fetch from the repository, made with Jidoka's config (the only place a
    credential is offered): the base branch, and the work branch when one was pushed."""
    sealed.ensure()
    options, env = access.git_options(), access.token_env()
    try:
        sealed.fetch(
            access.remote, [f"+refs/heads/{base_branch}:{BASE_REF}"], options=options, env=env
        )
    except gitops.GitError as error:
        missing = "couldn't find remote ref" in error.stderr
        raise ApplicationError(
            f"the repository has no branch '{base_branch}' (workspace.base_branch)"
            if missing
            else f"cannot fetch workspace.repo: {redact_url(str(error))}",
            type=ErrorType.WORKSPACE_FAILED,
            non_retryable=missing,
        ) from None
    try:
        sealed.fetch(
            access.remote, [f"+refs/heads/{branch}:{REMOTE_WORK_REF}"], options=options, env=env
        )
    except gitops.GitError as error:
        if "couldn't find remote ref" not in error.stderr:
            raise ApplicationError(
                f"cannot fetch workspace.repo: {redact_url(str(error))}",
                type=ErrorType.WORKSPACE_FAILED,
            ) from None
        with contextlib.suppress(gitops.GitError):
            sealed.git("update-ref", "-d", REMOTE_WORK_REF)


def _create_workspace(path: str, origin: str) -> None:
    """An empty repository next to the final path, then renamed: a crash never leaves half a
    workspace. Its objects come from the sealed repository (no credential ever reaches it)."""
    scratch = os.path.join(
        os.path.dirname(path), f".{os.path.basename(path)}.new-{uuid.uuid4().hex[:8]}"
    )
    try:
        gitops.run_git(["init", "--quiet", scratch])
        gitops.reset_workspace_config(scratch, origin)
        os.rename(scratch, path)
    finally:
        if os.path.exists(scratch):
            shutil.rmtree(scratch, ignore_errors=True)
    remember_origin(path, origin)


def _checkout_work_branch(
    sealed: SealedRepo, path: str, branch: str, base_branch: str, known_base: str | None
) -> str:
    """Put the workspace on the work branch and return the base commit.

    A branch that does not exist yet starts from the pushed work branch when there is one
    (another host worked on it, or an earlier life of the issue shipped), else from the base
    branch. The base recorded by the first attempt is kept for the issue's whole life; a new
    life of the issue (a workflow started again after a ship or a release) counts only what
    comes after where it starts: work already there never ships twice.
    """
    restore_workspace_config(path)
    gitops.exclude_jidoka_dir(path)
    refspecs = [f"+{BASE_REF}:refs/remotes/origin/{base_branch}"]
    if sealed.rev(REMOTE_WORK_REF) is not None:
        refspecs.append(f"+{REMOTE_WORK_REF}:refs/remotes/origin/{branch}")
    if known_base is not None and sealed.has(known_base):
        sealed.git("update-ref", WANT_REF, known_base)
        refspecs.append(f"+{WANT_REF}:refs/jidoka/base")
    gitops.git(path, "fetch", "--quiet", "--no-tags", str(sealed.git_dir), *refspecs)
    local = gitops.rev_parse(path, f"refs/heads/{branch}")
    if local is None:
        remote_work = gitops.rev_parse(path, f"refs/remotes/origin/{branch}")
        remote_base = gitops.rev_parse(path, f"refs/remotes/origin/{base_branch}")
        start = remote_work or remote_base
        assert start is not None  # the sealed repository holds the base branch
        gitops.git(path, "checkout", "-q", "-B", branch, start)
    elif gitops.current_branch(path) != branch and not gitops.uncommitted_paths(path):
        gitops.git(path, "checkout", "-q", branch)
    if known_base is not None:
        if gitops.rev_parse(path, known_base) is None:
            raise ApplicationError(
                f"base commit {known_base} is not in this workspace's repository",
                type=ErrorType.WORKSPACE_FAILED,
                non_retryable=True,
            )
        base = known_base
    else:
        base = gitops.git(path, "rev-parse", f"refs/heads/{branch}")
    # The sealed repository keeps the base, whatever the agent does to the workspace's history.
    gitops.git(path, "update-ref", "refs/jidoka/base", base)
    sealed.fetch(path, [f"+refs/jidoka/base:{LIFE_BASE_REF}"])
    return base


async def _after_create(
    workflow: LoadedWorkflow, info: WorkspaceInfo, input: PrepareWorkspaceInput
) -> None:
    script = workflow.config.hooks.after_create
    if script:
        result = await run_hook_script(
            workflow,
            info,
            HookName.AFTER_CREATE,
            script=script,
            attempt=input.attempt,
            identifier=input.issue.identifier,
        )
        if not result.ok:
            # ``after_create`` failing is fatal to creation: nothing of the agent's is here yet,
            # so remove the fresh clone and let the next attempt start over.
            if info.created_now:
                await asyncio.to_thread(shutil.rmtree, info.path, True)
            kind = ErrorType.HOOK_TIMEOUT if result.timed_out else ErrorType.HOOK_FAILED
            raise ApplicationError(
                f"after_create {'timed out' if result.timed_out else 'failed'}",
                result.model_dump(mode="json"),
                type=kind,
                non_retryable=True,
            )
    await asyncio.to_thread(_mark_created, info.path)


def _created_marker(path: str) -> Path:
    return workspace_state(path) / "after_create-done"


def _mark_created(path: str) -> None:
    _created_marker(path).write_text("after_create done\n", encoding="utf-8")


def _archive_stale_verdict(path: str) -> None:
    """Move an earlier verdict aside so only this attempt's can count (links never followed)."""
    jidoka_fd = open_jidoka_dir(path)
    try:
        with contextlib.suppress(FileNotFoundError):
            os.rename(
                "verdict.json",
                f"verdict-{uuid.uuid4().hex[:12]}.old.json",
                src_dir_fd=jidoka_fd,
                dst_dir_fd=jidoka_fd,
            )
    finally:
        os.close(jidoka_fd)


@activity.defn(name="preserve_work")
async def preserve_work(input: PreserveInput) -> PreserveResult:
    """Keep whatever the agent produced on ``abandoned/<key>-<stamp>`` (commits and uncommitted
    changes alike) and push it to ``origin`` when possible. Never resets, never cleans."""
    workspace = input.workspace
    if not gitops.is_repository(workspace.path):
        return PreserveResult(branch=None, detail="no workspace on this host")
    async with heartbeating():
        return await asyncio.to_thread(_preserve, input)


def _preserve(input: PreserveInput) -> PreserveResult:
    workspace = input.workspace
    path = workspace.path
    restore_workspace_config(path)
    head = gitops.rev_parse(path, f"refs/heads/{workspace.branch}") or gitops.rev_parse(
        path, "HEAD"
    )
    ahead = (
        int(gitops.git(path, "rev-list", "--count", f"{workspace.base_sha}..{head}") or "0")
        if head is not None and gitops.rev_parse(path, workspace.base_sha) is not None
        else 0
    )
    dirty = bool(gitops.uncommitted_paths(path))
    if ahead == 0 and not dirty:
        return PreserveResult(branch=None, detail="nothing to preserve: no commit, clean tree")
    snapshot = gitops.snapshot_commit(path, f"jidoka: preserved work ({input.reason})")
    if snapshot is None:
        return PreserveResult(branch=None, detail="no HEAD commit")
    branch = f"abandoned/{workspace.key}-{input.stamp}"
    gitops.git(path, "branch", "-f", branch, snapshot.sha)
    pushed = False
    detail = "preserved locally"
    try:
        sealed = SealedRepo(sealed_repository(path))
        sealed.ensure()
        sealed.fetch(path, [f"+refs/heads/{branch}:{PRESERVED_REF}"])
        access = repo_access(input.workflow)
        sealed.git(
            "push",
            "--quiet",
            "--",
            access.remote,
            f"{snapshot.sha}:refs/heads/{branch}",
            options=access.git_options(),
            env=access.token_env(),
        )
        pushed = True
        detail = "preserved and pushed to the repository"
    except gitops.GitError as error:
        # Best effort: the local branch already holds the work.
        scrub = Scrubber.for_config(input.workflow.config)
        detail = f"preserved locally; push failed: {scrub(redact_url(str(error)))}"
    return PreserveResult(branch=branch, sha=snapshot.sha, pushed=pushed, detail=detail)


@activity.defn(name="push_branch")
async def push_branch(input: PushInput) -> PushResult:
    """Push exactly the pinned head SHA the evidence was read at, from the sealed repository,
    with a lease (the branch must be where this issue last left it): never the workspace's
    branch, which the agent could still move."""
    async with heartbeating():
        return await asyncio.to_thread(_push, input)


def _push(input: PushInput) -> PushResult:
    workspace = input.workspace
    sealed = SealedRepo(sealed_repository(workspace.path))
    if not sealed.has(input.sha):
        raise ApplicationError(
            f"the shipped commit {input.sha} is not in the sealed repository",
            type=ErrorType.WORKSPACE_FAILED,
            non_retryable=True,
        )
    access = repo_access(input.workflow)
    lease = sealed.rev(REMOTE_WORK_REF) or ""
    branch = workspace.branch
    try:
        sealed.git(
            "push",
            "--quiet",
            f"--force-with-lease=refs/heads/{branch}:{lease}",
            "--",
            access.remote,
            f"{input.sha}:refs/heads/{branch}",
            options=access.git_options(),
            env=access.token_env(),
        )
    except gitops.GitError as error:
        scrub = Scrubber.for_config(input.workflow.config)
        raise ApplicationError(
            f"push failed: {scrub(redact_url(str(error)))}", type=ErrorType.WORKSPACE_FAILED
        ) from None
    sealed.git("update-ref", REMOTE_WORK_REF, input.sha)
    return PushResult(remote=redact_url(access.remote), sha=input.sha)


@activity.defn(name="remove_workspace")
async def remove_workspace(input: RemoveWorkspaceInput) -> RemoveWorkspaceResult:
    """Run ``before_remove`` (its failure is ignored) and delete the workspace.
    Callers preserve the work first."""
    _, key, path = locate(input.workflow, input.identifier)
    if not os.path.isdir(path):
        return RemoveWorkspaceResult(removed=False, path=path)
    if not gitops.is_repository(path):
        raise ApplicationError(
            f"{path} is not a git workspace; refusing to delete it",
            type=ErrorType.WORKSPACE_INVALID,
            non_retryable=True,
        )
    hook_note: str | None = None
    script = input.workflow.config.hooks.before_remove
    if script:
        info = WorkspaceInfo(
            path=path, key=key, branch="", base_sha="", host_queue=activity.info().task_queue
        )
        result = await run_hook_script(
            input.workflow,
            info,
            HookName.BEFORE_REMOVE,
            script=script,
            attempt=0,
            identifier=input.identifier,
        )
        hook_note = "ok" if result.ok else ("timed out" if result.timed_out else "failed")
    async with heartbeating():
        await asyncio.to_thread(shutil.rmtree, path)
    return RemoveWorkspaceResult(removed=True, path=path, before_remove=hook_note)


@activity.defn(name="cleanup_workspaces")
async def cleanup_workspaces(input: CleanupInput) -> CleanupResult:
    """Startup cleanup of the workspaces of terminal issues on this host
    (docs/architecture.md#the-lines-tick): preserve any unpushed work on an ``abandoned/``
    branch first, then remove."""
    result = CleanupResult()
    identifiers = input.identifiers
    if identifiers is None:
        identifiers = await _terminal_identifiers(input.workflow)
    for identifier in identifiers:
        try:
            _, key, path = locate(input.workflow, identifier)
        except ApplicationError as error:
            result.failed[identifier] = str(error.message)
            continue
        if not os.path.isdir(path):
            continue
        if not gitops.is_repository(path):
            result.failed[identifier] = "not a git workspace; left alone"
            continue
        try:
            info = await asyncio.to_thread(_describe_existing, input.workflow, path, key)
            preserved = await asyncio.to_thread(
                _preserve,
                PreserveInput(
                    workflow=input.workflow, workspace=info, stamp=input.stamp, reason="cleanup"
                ),
            )
        except gitops.GitError as error:
            result.failed[identifier] = f"could not preserve, left alone: {error}"
            continue
        if preserved.branch is not None:
            result.preserved[identifier] = preserved.branch
            if not preserved.pushed:
                # The only copy is inside the workspace: keep it rather than lose work.
                result.failed[identifier] = f"kept: {preserved.detail}"
                continue
        removal = await remove_workspace(
            RemoveWorkspaceInput(workflow=input.workflow, identifier=identifier)
        )
        if removal.removed:
            result.removed.append(identifier)
    return result


async def _terminal_identifiers(workflow: LoadedWorkflow) -> list[str]:
    tracker_config = workflow.config.tracker
    states = [*tracker_config.terminal_states, tracker_config.done_state]
    async with tracker_session(workflow.config) as tracker:
        return [issue.identifier for issue in await tracker.fetch_issues_by_states(states)]


def _describe_existing(workflow: LoadedWorkflow, path: str, key: str) -> WorkspaceInfo:
    """A WorkspaceInfo for a workspace found on disk (its base: the merge-base with the base
    branch; the work branch as preserved: whatever is checked out)."""
    config = workflow.config.workspace
    branch = gitops.current_branch(path) or work_branch(config.branch_prefix, key)
    remote_base = gitops.rev_parse(path, f"refs/remotes/origin/{config.base_branch}")
    base = (
        gitops.git(path, "merge-base", remote_base, "HEAD")
        if remote_base is not None
        else gitops.rev_parse(path, "HEAD") or ""
    )
    return WorkspaceInfo(
        path=path, key=key, branch=branch, base_sha=base, host_queue=activity.info().task_queue
    )
