"""Jidoka's own ``.git/config`` for a workspace, put back before Jidoka runs git there.

The agent owns its workspace's repository and may plant anything in its config (``insteadOf``
pointing a push elsewhere, a clean filter running a command, an fsmonitor, includes). Jidoka
remembers the repository's location when it creates the workspace (in the worker's state) and
writes its own config back each time before it touches the workspace.
"""

from __future__ import annotations

from activities.git import gitops
from activities.host_state import workspace_state


def remember_origin(path: str, origin: str) -> None:
    (workspace_state(path) / "origin").write_text(origin, encoding="utf-8")


def restore_workspace_config(path: str) -> None:
    remembered = workspace_state(path) / "origin"
    origin = remembered.read_text(encoding="utf-8") if remembered.is_file() else path
    gitops.reset_workspace_config(path, origin)
