"""Stable names: workspace keys, work branches, workflow IDs and task queues."""

from __future__ import annotations

import hashlib
import os
import re

SHARED_TASK_QUEUE = "jidoka"
"""Workflows and host-independent activities (tracker, config, starts)."""

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")
_MAX_KEY = 64


class InvalidIdentifierError(ValueError):
    """An issue identifier that cannot name a workspace (empty or blank)."""


class WorkspaceEscapeError(ValueError):
    """A workspace path that would resolve outside the workspace root."""


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:8]


def workspace_key(identifier: str) -> str:
    """Directory and branch-safe key for an issue identifier.

    Characters outside ``[A-Za-z0-9._-]`` become ``_``; names git or the filesystem would
    refuse (``..``, a leading ``.`` or ``-``, a trailing ``.`` or ``.lock``) are defused; long
    identifiers are cut. Whenever the key differs from the identifier, a stable hash of the
    identifier is appended so that ``A/B`` and ``A_B`` never share a workspace.
    """
    if not identifier or not identifier.strip():
        raise InvalidIdentifierError("issue identifier is empty")
    key = _UNSAFE.sub("_", identifier)
    key = key.replace("..", "__")
    key = re.sub(r"^[.-]", "_", key)
    if key.endswith(".lock") or key.endswith("."):
        key = key + "_"
    key = key[:_MAX_KEY]
    if key != identifier:
        key = f"{key.rstrip('.')}-{_digest(identifier)}"
    return key


def workspace_path(root: str, key: str) -> str:
    """Absolute workspace path for ``key`` under ``root``; refuses anything that escapes it
    (including through a symlink planted inside the root)."""
    if not key or "/" in key or key in (".", ".."):
        raise WorkspaceEscapeError(f"invalid workspace key {key!r}")
    real_root = os.path.realpath(root)
    candidate = os.path.realpath(os.path.join(real_root, key))
    if os.path.dirname(candidate) != real_root:
        raise WorkspaceEscapeError(
            f"workspace for {key!r} resolves to {candidate}, outside the root {real_root}"
        )
    return candidate


def work_branch(prefix: str, key: str) -> str:
    return f"{prefix}{key}"


def line_workflow_id(line: str) -> str:
    return f"jidoka-line-{line}"


def issue_workflow_id(line: str, key: str) -> str:
    return f"jidoka-issue-{line}-{key}"


def host_task_queue(host_id: str) -> str:
    """The task queue of one worker host: activities that touch its workspaces run there."""
    return f"jidoka-host-{_UNSAFE.sub('_', host_id)}"
