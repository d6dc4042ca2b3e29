"""The worker's own state on its host: what the worker trusts, kept out of every workspace.

The agent can write anything in its workspace, so nothing the worker later relies on lives
there: the sealed repository evidence is read from, the record of the agent's process group,
the "``after_create`` ran" marker, the transcripts, the agents' private homes and the verify
checkouts all live under ``JIDOKA_STATE_DIR`` (default ``~/.local/state/jidoka``), in a folder
per workspace. The sandbox hides this folder from agents and hooks.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

STATE_ENV = "JIDOKA_STATE_DIR"


def state_root() -> Path:
    configured = os.environ.get(STATE_ENV)
    root = Path(configured) if configured else Path.home() / ".local" / "state" / "jidoka"
    root.mkdir(parents=True, exist_ok=True, mode=0o700)
    return root.resolve()


def workspace_state(workspace: str | Path) -> Path:
    """The worker's folder for one workspace (named after it, unique per path)."""
    path = Path(os.path.realpath(workspace))
    digest = hashlib.sha256(str(path).encode()).hexdigest()[:12]
    folder = state_root() / "workspaces" / f"{path.name}-{digest}"
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    return folder


def claim_workspace(workspace: str | Path, identifier: str) -> str | None:
    """Record ``identifier`` as the issue this workspace is for, the first time; the identifier
    of another issue already recorded for it, else None. Two identifiers can map to one key
    (``A/B`` is kept as ``A_B-<hash>``, which is also a valid identifier of its own): their work
    must never share a workspace or a branch."""
    owner = workspace_state(workspace) / "issue"
    try:
        recorded = owner.read_text(encoding="utf-8")
    except FileNotFoundError:
        owner.write_text(identifier, encoding="utf-8")
        return None
    return None if recorded == identifier else recorded


def sealed_repository(workspace: str | Path) -> Path:
    return workspace_state(workspace) / "sealed.git"


def transcripts(workspace: str | Path) -> Path:
    folder = workspace_state(workspace) / "attempts"
    folder.mkdir(exist_ok=True)
    return folder


def agent_home(workspace: str | Path) -> Path:
    """The home of the workspace's agent in the sandbox: kept across its turns and attempts
    (an agent CLI's sessions live there), never shared with a hook."""
    folder = workspace_state(workspace) / "home"
    folder.mkdir(exist_ok=True, mode=0o700)
    return folder
