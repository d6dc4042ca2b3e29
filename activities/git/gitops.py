"""Git operations on a workspace, through GitPython, off the event loop.

Every function is synchronous and small; activities call them via ``asyncio.to_thread``.
Pathspecs exclude ``.jidoka/`` wherever progress is measured: what the orchestrator writes
there (prompt, transcripts, the verdict) is never evidence of work.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from git import Git, Repo
from git.exc import GitCommandError

from jidoka.models import DiffStat

JIDOKA_DIR = ".jidoka"
EXCLUDE_JIDOKA = f":(exclude){JIDOKA_DIR}"
_SHORTSTAT = re.compile(
    r"(?P<files>\d+) files? changed"
    r"(?:, (?P<ins>\d+) insertions?\(\+\))?"
    r"(?:, (?P<del>\d+) deletions?\(-\))?"
)


class GitError(Exception):
    """A git command failed; ``stderr`` is git's own message."""

    def __init__(self, command: str, stderr: str) -> None:
        super().__init__(f"git {command}: {stderr.strip()[-2000:]}")
        self.stderr = stderr


def _env() -> dict[str, str]:
    # Never let git stop and ask a question on a worker.
    return {"GIT_TERMINAL_PROMPT": "0", "GIT_ASKPASS": "true", "LC_ALL": "C"}


def git(path: str, *args: str, env: Mapping[str, str] | None = None) -> str:
    repo = Repo(path)
    try:
        merged = _env()
        if env:
            merged.update(env)
        output = repo.git.execute(
            ["git", *args], with_extended_output=False, env=merged, strip_newline_in_stdout=True
        )
    except GitCommandError as error:
        raise GitError(" ".join(args[:2]), str(error.stderr or error)) from None
    finally:
        repo.close()
    return str(output)


def clone(
    source: str,
    destination: str,
    *,
    options: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
) -> None:
    """``git clone --no-checkout``; ``options``/``env`` carry the credential helper and its
    token for private HTTPS repositories (see :mod:`activities.git.access`)."""
    merged = {**os.environ, **_env(), **(env or {})}
    try:
        Git().execute(
            ["git", *options, "clone", "--quiet", "--no-checkout", "--", source, destination],
            env=merged,
        )
    except GitCommandError as error:
        raise GitError("clone", str(error.stderr or error)) from None


def remote_git(
    path: str, *args: str, options: Sequence[str] = (), env: Mapping[str, str] | None = None
) -> str:
    """A git command that talks to a remote (fetch, push), with credential options first."""
    return git(path, *options, *args, env=env)


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
    return all(part and not part.startswith(".") for part in name.split("/"))


def exclude_jidoka_dir(path: str) -> None:
    """Keep ``.jidoka/`` out of ``git add -A`` without touching tracked files."""
    exclude = os.path.join(path, ".git", "info", "exclude")
    os.makedirs(os.path.dirname(exclude), exist_ok=True)
    line = f"/{JIDOKA_DIR}/"
    existing = ""
    if os.path.exists(exclude):
        with open(exclude, encoding="utf-8") as handle:
            existing = handle.read()
    if line not in existing.splitlines():
        with open(exclude, "a", encoding="utf-8") as handle:
            handle.write(("" if existing.endswith("\n") or not existing else "\n") + line + "\n")


def commits_ahead(path: str, base_sha: str, branch: str) -> int:
    if rev_parse(path, f"refs/heads/{branch}") is None:
        return 0
    return int(git(path, "rev-list", "--count", f"{base_sha}..refs/heads/{branch}") or "0")


def net_diff(path: str, base_sha: str, branch: str) -> DiffStat:
    if rev_parse(path, f"refs/heads/{branch}") is None:
        return DiffStat()
    output = git(
        path, "diff", "--shortstat", base_sha, f"refs/heads/{branch}", "--", ".", EXCLUDE_JIDOKA
    )
    match = _SHORTSTAT.search(output)
    if not match:
        return DiffStat()
    return DiffStat(
        files_changed=int(match.group("files")),
        insertions=int(match.group("ins") or 0),
        deletions=int(match.group("del") or 0),
    )


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
