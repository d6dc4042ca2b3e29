"""Git, the way Jidoka runs it: a subprocess with a minimal environment and safe settings,
off the event loop (activities call these through ``asyncio.to_thread``).

Workspaces are written by the agent, so nothing of theirs may steer the git Jidoka runs: hooks
and fsmonitor are off, the system and user config are not read, replace objects are ignored,
only known protocols are allowed, redirects are not followed, and no variable of the worker's
reaches git or anything git starts (a credential, an ``*_TOKEN``) unless passed on purpose.
The repository's own ``.git/config`` is replaced by Jidoka's before Jidoka runs git in a
workspace (:func:`reset_workspace_config`).

Pathspecs exclude ``.jidoka/`` wherever progress is measured: what the orchestrator writes there
(the prompt, the verdict) is never evidence of work.
"""

from __future__ import annotations

import contextlib
import functools
import os
import stat
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

JIDOKA_DIR = ".jidoka"
EXCLUDE_JIDOKA = f":(exclude){JIDOKA_DIR}"
TIMEOUT_S = 900.0
"""No git command Jidoka runs may hang a worker."""

SAFE_OPTIONS: tuple[str, ...] = (
    "-c", "core.hooksPath=/dev/null",
    "-c", "core.fsmonitor=false",
    "-c", "core.sshCommand=ssh",
    "-c", "core.askPass=",
    "-c", "credential.helper=",
    "-c", "protocol.allow=never",
    "-c", "protocol.file.allow=always",
    "-c", "protocol.https.allow=always",
    "-c", "protocol.http.allow=always",
    "-c", "protocol.ssh.allow=always",
    "-c", "http.followRedirects=false",
    "-c", "uploadpack.allowAnySHA1InWant=false",
)  # fmt: skip
"""Command-line settings win over any config file: what a planted config could turn on is
turned off for every git command Jidoka runs."""

PASSED_ENV = ("PATH", "HOME", "SSH_AUTH_SOCK", "LANG", "TZ")
"""What git gets of the worker's environment: enough to find itself and the worker's SSH keys."""


class GitError(Exception):
    """A git command failed; ``stderr`` is git's own message."""

    def __init__(self, command: str, stderr: str) -> None:
        super().__init__(f"git {command}: {stderr.strip()[-2000:]}")
        self.stderr = stderr


def safe_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    env = {name: os.environ[name] for name in PASSED_ENV if name in os.environ}
    env.update(
        {
            "LC_ALL": "C",
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_CONFIG_GLOBAL": os.devnull,
            "GIT_TERMINAL_PROMPT": "0",
            "GIT_ASKPASS": "true",
            "GIT_NO_REPLACE_OBJECTS": "1",
            "GIT_OPTIONAL_LOCKS": "0",
            "GIT_ATTR_NOSYSTEM": "1",
        }
    )
    if extra:
        env.update(extra)
    return env


def run_git(
    args: Sequence[str],
    *,
    cwd: str | None = None,
    env: Mapping[str, str] | None = None,
    options: Sequence[str] = (),
    timeout_s: float = TIMEOUT_S,
) -> str:
    """``git <safe options> <options> <args>``; its stdout, stripped of the final newline."""
    argv = ["git", *SAFE_OPTIONS, *options, *args]
    try:
        done = subprocess.run(
            argv,
            cwd=cwd,
            env=safe_env(env),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=timeout_s,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise GitError(" ".join(args[:2]), f"timed out after {timeout_s:.0f}s") from None
    except OSError as error:
        raise GitError(" ".join(args[:2]), str(error)) from None
    if done.returncode != 0:
        raise GitError(" ".join(args[:2]), done.stderr.decode("utf-8", "replace"))
    return done.stdout.decode("utf-8", "replace").removesuffix("\n")


def git(path: str, *args: str, env: Mapping[str, str] | None = None) -> str:
    """A git command in the work tree at ``path``."""
    return run_git(["-C", path, *args], env=env)


def clone(
    source: str,
    destination: str,
    *,
    options: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
) -> None:
    """``git clone --no-checkout``; ``options``/``env`` carry the credential helper and its
    token for private HTTPS repositories (see :mod:`activities.git.access`)."""
    run_git(
        ["clone", "--quiet", "--no-checkout", "--", source, destination], env=env, options=options
    )


def remote_git(
    path: str, *args: str, options: Sequence[str] = (), env: Mapping[str, str] | None = None
) -> str:
    """A git command that talks to a remote (fetch, push), with credential options first."""
    return run_git(["-C", path, *args], env=env, options=options)


def reset_workspace_config(path: str, origin: str) -> None:
    """Replace the workspace's ``.git/config`` (the agent may have planted ``insteadOf``,
    filters, an fsmonitor, includes...) with Jidoka's own, and drop the other files through
    which a repository can steer git. Refuses a workspace whose ``.git`` is not a plain
    directory (a link or a file pointing elsewhere)."""
    git_dir = os.path.join(path, ".git")
    info = os.lstat(git_dir)
    if not stat.S_ISDIR(info.st_mode):
        raise GitError("config", f"{git_dir} is not a plain directory; refusing to use it")
    config = (
        "[core]\n\trepositoryformatversion = 0\n\tfilemode = true\n\tbare = false\n"
        "\tlogallrefupdates = true\n"
        f'[remote "origin"]\n\turl = {_config_value(origin)}\n'
        "\tfetch = +refs/heads/*:refs/remotes/origin/*\n"
    )
    name, email = agent_identity()
    config += f"[user]\n\tname = {_config_value(name)}\n\temail = {_config_value(email)}\n"
    write_file_nofollow(git_dir, "config", config)
    for relative in ("info/attributes", "info/grafts", "objects/info/alternates", "commondir"):
        target = os.path.join(git_dir, relative)
        if os.path.lexists(target) and not os.path.isdir(target):
            os.unlink(target)


DEFAULT_IDENTITY = ("Jidoka agent", "jidoka-agent@localhost")


@functools.cache
def agent_identity() -> tuple[str, str]:
    """Who the agent's commits are by: the worker user's own git identity (its global
    config), else :data:`DEFAULT_IDENTITY`. Written into each workspace's config because the
    agent's home in the sandbox has no git config of its own."""
    found: list[str] = []
    for key in ("user.name", "user.email"):
        done = subprocess.run(
            ["git", "config", "--global", "--get", key],
            capture_output=True,
            text=True,
            check=False,
            env={**safe_env(), "GIT_CONFIG_GLOBAL": str(Path.home() / ".gitconfig")},
        )
        found.append(done.stdout.strip() if done.returncode == 0 else "")
    name, email = found
    if not name or not email or any(c in name + email for c in "\n\r\0"):
        return DEFAULT_IDENTITY
    return name, email


def write_file_nofollow(directory: str, name: str, text: str) -> None:
    """Write ``directory/name`` without following a link at ``name`` (a planted link is
    replaced, never written through)."""
    dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    try:
        write_at(dir_fd, name, text)
    finally:
        os.close(dir_fd)


def write_at(dir_fd: int, name: str, text: str) -> None:
    """Write ``name`` in the open folder ``dir_fd``: a fresh file (a stale or planted one of
    the same temporary name is removed first), renamed over whatever ``name`` was."""
    temporary = f".{name}.jidoka-{os.getpid()}"
    with contextlib.suppress(FileNotFoundError):
        os.unlink(temporary, dir_fd=dir_fd)
    fd = os.open(
        temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644, dir_fd=dir_fd
    )
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.replace(temporary, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)


def _config_value(value: str) -> str:
    if any(c in value for c in "\n\r\0"):
        raise GitError("config", "a repository location may not contain line breaks")
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


def is_repository(path: str) -> bool:
    return os.path.isdir(os.path.join(path, ".git"))


def rev_parse(path: str, ref: str) -> str | None:
    try:
        return git(path, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}")
    except GitError:
        return None


def branch_ref_ok(name: str) -> bool:
    """``git check-ref-format --branch`` without a repository."""
    if not name or name.startswith("-") or ".." in name or name.endswith((".lock", ".", "/")):
        return False
    if any(c in name for c in " ~^:?*[\\") or "//" in name or "@{" in name:
        return False
    if name == "HEAD" or any(ord(c) < 32 or ord(c) == 127 for c in name):
        return False
    return all(
        part and not part.startswith(".") and not part.endswith(".lock") for part in name.split("/")
    )


def exclude_jidoka_dir(path: str) -> None:
    """Keep ``.jidoka/`` out of ``git add -A`` without touching tracked files (a link planted
    at ``.git/info`` or its ``exclude`` is replaced, never written through)."""
    info = os.path.join(path, ".git", "info")
    if os.path.islink(info):
        os.unlink(info)
    os.makedirs(info, exist_ok=True)
    line = f"/{JIDOKA_DIR}/"
    existing = read_file_nofollow(info, "exclude")
    if line not in existing.splitlines():
        separator = "" if existing.endswith("\n") or not existing else "\n"
        write_file_nofollow(info, "exclude", existing + separator + line + "\n")


def read_file_nofollow(directory: str, name: str, limit: int = 1024 * 1024) -> str:
    """The text of ``directory/name``, or "" when it is missing or not a plain file."""
    dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=dir_fd)
    except OSError:
        return ""
    finally:
        os.close(dir_fd)
    with os.fdopen(fd, "rb") as handle:
        if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
            return ""
        return handle.read(limit).decode("utf-8", "replace")


def uncommitted_paths(path: str) -> list[str]:
    """Modified, staged or untracked paths outside ``.jidoka/`` (ignored files excluded)."""
    output = git(
        path, "status", "--porcelain=v1", "-z", "--untracked-files=all", "--", ".", EXCLUDE_JIDOKA
    )
    paths: list[str] = []
    entries = output.split("\0")
    index = 0
    while index < len(entries):
        entry = entries[index]
        index += 1
        if len(entry) < 4:
            continue
        status, name = entry[:2], entry[3:]
        if status[0] in "RC":
            index += 1  # the rename's source path follows as its own entry
        paths.append(name)
    return paths


def current_branch(path: str) -> str | None:
    try:
        ref = git(path, "symbolic-ref", "-q", "HEAD")
    except GitError:
        return None
    return ref.removeprefix("refs/heads/") if ref.startswith("refs/heads/") else None


@dataclass(frozen=True)
class Snapshot:
    sha: str
    included_uncommitted: bool


def snapshot_commit(path: str, message: str) -> Snapshot | None:
    """A commit holding the work branch plus every uncommitted change (untracked files too),
    built in a throwaway index: the working tree, the real index and HEAD are not touched."""
    head = rev_parse(path, "HEAD")
    if head is None:
        return None
    if not uncommitted_paths(path):
        return Snapshot(sha=head, included_uncommitted=False)
    with tempfile.TemporaryDirectory() as scratch:
        index_env = {"GIT_INDEX_FILE": os.path.join(scratch, "index")}
        git(path, "read-tree", "HEAD", env=index_env)
        git(path, "add", "-A", "--", ".", EXCLUDE_JIDOKA, env=index_env)
        tree = git(path, "write-tree", env=index_env)
    identity = {
        "GIT_AUTHOR_NAME": "Jidoka",
        "GIT_AUTHOR_EMAIL": "jidoka@localhost",
        "GIT_COMMITTER_NAME": "Jidoka",
        "GIT_COMMITTER_EMAIL": "jidoka@localhost",
    }
    sha = git(path, "commit-tree", tree, "-p", head, "-m", message, env=identity)
    return Snapshot(sha=sha, included_uncommitted=True)
