"""Agents left behind by a worker that died (SIGKILL, OOM, a lost container).

Agents run in their own process group. In the sandbox they die with the worker (bubblewrap's
parent-death signal ends their PID namespace); without it they survive it. The supervisor
records each agent's group in the worker's own state (never in the workspace, which the agent
could rewrite); before the next attempt in that workspace (``prepare_workspace``), a recorded
group that is still alive is killed, so two agents never work in one workspace and a dead
worker's agent stops spending. A record is trusted only for a group above 1 that is not the
worker's own, whose leader's start time still matches.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path

from activities.host_state import workspace_state
from activities.process import group_alive


def _record(workspace: Path) -> Path:
    return workspace_state(workspace) / "agent.pgid"


def _start_time(pid: int) -> str | None:
    """The process's start time (clock ticks since boot, ``/proc/<pid>/stat`` field 22):
    together with the pid it names one process, even after pids are reused."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may contain spaces and parentheses: split after its ")".
    fields = stat.rsplit(")", 1)[-1].split()
    return fields[19] if len(fields) > 19 else None


def record_group(workspace: Path, pgid: int) -> None:
    _record(workspace).write_text(f"{pgid} {_start_time(pgid) or '-'}\n", encoding="utf-8")


def clear_group(workspace: Path, pgid: int) -> None:
    path = _record(workspace)
    with contextlib.suppress(OSError, ValueError):
        if int(path.read_text().split()[0]) == pgid:
            path.unlink()


def reap_leftover(workspace: Path, grace_s: float = 3.0) -> int | None:
    """Kill the group recorded in the workspace if it still runs; returns its id if it did."""
    path = _record(workspace)
    try:
        raw_pgid, recorded_start = path.read_text().split()[:2]
        pgid = int(raw_pgid)
    except (OSError, ValueError):
        return None
    current_start = _start_time(pgid)
    # A group gone, or the pid now naming another process, or a record that could name the
    # worker itself: nothing to kill.
    ours = (
        pgid > 1
        and pgid != os.getpgrp()
        and current_start is not None
        and recorded_start == current_start
    )
    try:
        if ours:
            os.killpg(pgid, signal.SIGTERM)
    except (ProcessLookupError, PermissionError):
        ours = False
    if not ours:
        path.unlink(missing_ok=True)
        return None
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline and group_alive(pgid):
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)
    path.unlink(missing_ok=True)
    return pgid
