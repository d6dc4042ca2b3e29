"""Evidence: what the orchestrator measures itself after an attempt
(docs/agents.md#the-verdict-file).

The verdict file is untrusted input written by the agent: it must be a regular file inside the
workspace (no symlink anywhere on the way), at most 64 KiB, valid JSON, an object with known
fields only. Git facts are read from the work branch ref, not from HEAD, so an agent that
switched branches cannot make another branch's commits count.
"""

from __future__ import annotations

import asyncio
import errno
import hashlib
import json
import os
import stat
from pathlib import Path

from pydantic import ValidationError
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.git import gitops
from activities.git.hygiene import restore_workspace_config
from activities.git.sealed import SealedRepo
from activities.heartbeats import heartbeating
from activities.host_state import sealed_repository
from jidoka import closing
from jidoka.models import (
    PROTECTED_LIMIT,
    Evidence,
    GitEvidence,
    PathChange,
    Verdict,
    VerdictReading,
    WorkspaceInfo,
)
from jidoka.paths import first_match
from jidoka.payloads import EvidenceInput

MAX_VERDICT_BYTES = 64 * 1024
MAX_LISTED_PATHS = 50


def read_verdict(workspace_path: str) -> VerdictReading:
    """Read ``.jidoka/verdict.json`` without following symlinks at any step."""
    try:
        root_fd = os.open(workspace_path, os.O_RDONLY | os.O_DIRECTORY)
    except OSError as error:
        return VerdictReading(present=False, error=f"workspace unreadable: {error.strerror}")
    try:
        try:
            dir_fd = os.open(
                gitops.JIDOKA_DIR, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=root_fd
            )
        except FileNotFoundError:
            return VerdictReading(present=False)
        except OSError as error:
            if error.errno in (errno.ELOOP, errno.ENOTDIR):
                return VerdictReading(present=True, error="'.jidoka' is not a plain directory")
            return VerdictReading(present=True, error=f"'.jidoka' unreadable: {error.strerror}")
        try:
            return _read_verdict_in(dir_fd)
        finally:
            os.close(dir_fd)
    finally:
        os.close(root_fd)


def _read_verdict_in(dir_fd: int) -> VerdictReading:
    name = "verdict.json"
    try:
        info = os.lstat(name, dir_fd=dir_fd)
    except FileNotFoundError:
        return VerdictReading(present=False)
    if stat.S_ISLNK(info.st_mode):
        return VerdictReading(present=True, error="verdict file is a symlink")
    if not stat.S_ISREG(info.st_mode):
        return VerdictReading(present=True, error="verdict file is not a regular file")
    if info.st_size > MAX_VERDICT_BYTES:
        return VerdictReading(
            present=True, error=f"verdict file is {info.st_size} bytes (limit {MAX_VERDICT_BYTES})"
        )
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=dir_fd)
    except OSError as error:
        return VerdictReading(present=True, error=f"verdict file unreadable: {error.strerror}")
    with os.fdopen(fd, "rb") as handle:
        raw = handle.read(MAX_VERDICT_BYTES + 1)
    if len(raw) > MAX_VERDICT_BYTES:
        return VerdictReading(present=True, error="verdict file grew past the limit while read")
    return parse_verdict(raw)


def parse_verdict(raw: bytes) -> VerdictReading:
    try:
        data = json.loads(raw.decode("utf-8"))
    # ValueError: JSONDecodeError, UnicodeDecodeError, and a number of over 4,300 digits
    except ValueError as error:
        return VerdictReading(present=True, error=f"not valid JSON: {error}"[:1000])
    except RecursionError:
        return VerdictReading(present=True, error="not a verdict: nested too deeply")
    if not isinstance(data, dict):
        return VerdictReading(present=True, error="the verdict must be a JSON object")
    try:
        verdict = Verdict.model_validate(data, strict=True)
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'verdict'}: {e['msg']}"
            for e in error.errors(include_url=False)
        )
        return VerdictReading(present=True, error=f"invalid verdict: {problems}"[:1000])
    return VerdictReading(present=True, verdict=verdict)


def protected_changes(
    sealed: SealedRepo, base: str, head: str, globs: list[str]
) -> list[PathChange]:
    """The net diff's paths that ``judge.protected_paths`` protects, with their content at
    the head: a mode change or a deletion counts as much as an edit."""
    if not globs or base == head:
        return []
    found: list[PathChange] = []
    for path, blob in sealed.changed_paths(base, head):
        glob = first_match(path, globs)
        if glob is not None:
            found.append(PathChange(path=path, glob=glob, blob=blob))
    return found


def git_evidence(workspace: WorkspaceInfo, protected_globs: list[str] | None = None) -> GitEvidence:
    """The work branch's facts, read in the sealed repository at a pinned head: what the agent
    does to its own repository (replace objects, grafts, hooks, a ref moved later) changes
    nothing here. Only what is uncommitted, and which branch is checked out, comes from the
    workspace itself (advice for the next attempt: uncommitted work never ships)."""
    path = workspace.path
    restore_workspace_config(path)
    sealed = SealedRepo(sealed_repository(path))
    sealed.ensure()
    head = sealed.seal_workspace(path, workspace.branch) or workspace.base_sha
    uncommitted = gitops.uncommitted_paths(path)
    protected = protected_changes(sealed, workspace.base_sha, head, protected_globs or [])
    return GitEvidence(
        base_sha=workspace.base_sha,
        head_sha=head,
        branch=workspace.branch,
        commits_ahead=sealed.commits_between(workspace.base_sha, head),
        diff=sealed.content_diff(workspace.base_sha, head),
        uncommitted_paths=uncommitted[:MAX_LISTED_PATHS],
        uncommitted_count=len(uncommitted),
        on_branch=gitops.current_branch(path) == workspace.branch,
        protected=protected[:PROTECTED_LIMIT],
        protected_count=len(protected),
        closing=closing_references(sealed, workspace.base_sha, head),
    )


def closing_references(sealed: SealedRepo, base: str, head: str) -> list[str]:
    """What the work's commit messages close; messages too many or too long to read whole are
    a finding of their own (a reference could hide past the cut)."""
    messages = sealed.commit_messages(base, head)
    if messages is None:
        return [closing.UNREAD]
    return closing.references(messages)


def workflow_changed(input: EvidenceInput) -> bool:
    """WORKFLOW.md is not what the attempt started with: an attempt may not ship under judges
    that moved while it ran."""
    if not input.workflow_path or not input.workflow_digest:
        return False
    try:
        raw = Path(input.workflow_path).read_bytes()
    except OSError:
        return True
    return hashlib.sha256(raw).hexdigest() != input.workflow_digest


def gather(input: EvidenceInput) -> Evidence:
    workspace = input.workspace
    return Evidence(
        verdict=read_verdict(workspace.path),
        git=git_evidence(workspace, input.protected_paths),
        workflow_changed=workflow_changed(input),
    )


@activity.defn(name="collect_evidence")
async def collect_evidence(input: EvidenceInput) -> Evidence:
    """Verdict reading and git facts for the attempt that just ended (``verify`` runs apart,
    only when the verdict claims a ship and the git gate passed)."""
    async with heartbeating():
        try:
            return await asyncio.to_thread(gather, input)
        except gitops.GitError as error:
            raise ApplicationError(
                f"cannot read the evidence: {error}", type="WorkspaceFailed"
            ) from None
