"""The files Jidoka writes inside a workspace (the prompt, archived verdicts), written so that
nothing the agent planted is followed: a link at ``.jidoka`` or at a file's name is removed and
replaced, never written through (the agent could otherwise point a write of the worker's at
any file its user can reach)."""

from __future__ import annotations

import contextlib
import os
import stat

from activities.git import gitops


def open_jidoka_dir(workspace: str) -> int:
    """A descriptor of the workspace's ``.jidoka/``, created when missing."""
    root_fd = os.open(workspace, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    try:
        name = gitops.JIDOKA_DIR
        with contextlib.suppress(FileNotFoundError):
            info = os.lstat(name, dir_fd=root_fd)
            if not stat.S_ISDIR(info.st_mode):
                os.unlink(name, dir_fd=root_fd)
        with contextlib.suppress(FileExistsError):
            os.mkdir(name, 0o755, dir_fd=root_fd)
        return os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=root_fd)
    finally:
        os.close(root_fd)


def write_jidoka_file(workspace: str, name: str, text: str) -> None:
    """Write ``.jidoka/<name>`` in the workspace: a fresh file, renamed into place."""
    dir_fd = open_jidoka_dir(workspace)
    try:
        gitops.write_at(dir_fd, name, text)
    finally:
        os.close(dir_fd)
