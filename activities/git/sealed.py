"""The sealed repository: where Jidoka reads what an agent committed, and ships it from.

One bare repository per workspace, in the worker's own state (never inside a workspace, never
visible to the agent). After the agent has stopped, the work branch's objects are fetched into
it; from then on everything that judges or ships the attempt happens there, with Jidoka's own
config: no replace objects, no grafts, no hooks, no ``insteadOf``. The head is pinned by SHA:
the commits and the content diff are counted at that SHA, ``verify`` runs in a checkout of that
SHA, and the push sends exactly that SHA.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

from activities.git import gitops
from jidoka.models import DiffStat

HEAD_REF = "refs/jidoka/head"
BASE_REF = "refs/jidoka/base"
REMOTE_WORK_REF = "refs/jidoka/remote-work"
"""Where the work branch was at the repository when last seen: the push's lease."""
LIFE_BASE_REF = "refs/jidoka/life-base"
"""The issue's base, kept here whatever the agent does to the workspace's history."""
WANT_REF = "refs/jidoka/want"
PRESERVED_REF = "refs/jidoka/preserved"
MESSAGE_COMMITS = 500
"""Commit messages read for closing keywords: the newest this many of the work."""
MESSAGE_BYTES = 1_000_000
"""And at most this much of them."""


class SealedRepo:
    def __init__(self, git_dir: Path) -> None:
        self.git_dir = git_dir

    def git(
        self, *args: str, options: Sequence[str] = (), env: Mapping[str, str] | None = None
    ) -> str:
        return gitops.run_git(["--git-dir", str(self.git_dir), *args], options=options, env=env)

    def ensure(self) -> None:
        if not (self.git_dir / "HEAD").is_file():
            self.git_dir.parent.mkdir(parents=True, exist_ok=True)
            gitops.run_git(["init", "--quiet", "--bare", str(self.git_dir)])

    def rev(self, ref: str) -> str | None:
        try:
            return self.git("rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}")
        except gitops.GitError:
            return None

    def fetch(
        self,
        source: str,
        refspecs: Sequence[str],
        *,
        options: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.git("fetch", "--quiet", "--no-tags", "--no-write-fetch-head", "--", source, *refspecs,
                 options=options, env=env)  # fmt: skip

    def seal_workspace(self, workspace: str, branch: str) -> str | None:
        """Fetch the work branch's objects from the workspace; the pinned head SHA, or None
        when the branch does not exist there."""
        try:
            self.fetch(os.path.abspath(workspace), [f"+refs/heads/{branch}:{HEAD_REF}"])
        except gitops.GitError as error:
            if "couldn't find remote ref" in error.stderr:
                self.git("update-ref", "-d", HEAD_REF)
                return None
            raise
        return self.rev(HEAD_REF)

    def has(self, sha: str) -> bool:
        try:
            self.git("cat-file", "-e", f"{sha}^{{commit}}")
        except gitops.GitError:
            return False
        return True

    def commits_between(self, base: str, head: str) -> int:
        return int(self.git("rev-list", "--count", f"{base}..{head}") or "0")

    def commit_messages(
        self,
        base: str,
        head: str,
        *,
        max_commits: int = MESSAGE_COMMITS,
        max_bytes: int = MESSAGE_BYTES,
    ) -> str | None:
        """The messages of the commits ``base..head`` (newest first), read as a stream; None
        when they are more than ``max_commits`` commits or ``max_bytes`` in all, so a commit
        message of any size costs this worker no more than that, and nothing hides behind
        the cut."""
        if self.commits_between(base, head) > max_commits:
            return None
        argv = [
            "git", *gitops.SAFE_OPTIONS, "--git-dir", str(self.git_dir),
            "log", "--no-decorate", "--format=%B%x00", f"{base}..{head}",
        ]  # fmt: skip
        with subprocess.Popen(
            argv,
            env=gitops.safe_env(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        ) as process:
            assert process.stdout is not None
            data = process.stdout.read(max_bytes + 1)
            process.kill()
        if len(data) > max_bytes:
            return None
        return data.decode("utf-8", "replace").replace("\x00", "\n")

    def content_diff(self, base: str, head: str) -> DiffStat:
        """Files whose content changed between ``base`` and ``head`` outside ``.jidoka/``: a
        mode change or an empty new file is not a change of content."""
        output = self.git(
            "diff", "--numstat", "--no-renames", "--no-ext-diff", "--no-textconv",
            base, head, "--", ".", gitops.EXCLUDE_JIDOKA,
        )  # fmt: skip
        files = insertions = deletions = 0
        for line in output.splitlines():
            parts = line.split("\t", 2)
            if len(parts) != 3:
                continue
            added, removed = parts[0], parts[1]
            if added == "-" or removed == "-":  # binary: its content changed
                files += 1
                continue
            if int(added) + int(removed) > 0:
                files += 1
                insertions += int(added)
                deletions += int(removed)
        return DiffStat(files_changed=files, insertions=insertions, deletions=deletions)

    def changed_paths(self, base: str, head: str) -> list[tuple[str, str]]:
        """Every path the net diff ``base..head`` touches (content, mode, type; a rename is
        its two paths) with its object id at ``head`` (``""``: deleted there)."""
        output = self.git(
            "diff", "--raw", "-z", "--no-abbrev", "--no-renames", "--no-ext-diff",
            "--no-textconv", base, head,
        )  # fmt: skip
        fields = output.split("\0")
        changes: list[tuple[str, str]] = []
        for meta, path in zip(fields[0::2], fields[1::2], strict=False):
            parts = meta.split()
            if len(parts) < 5 or not path:
                continue
            new_blob = parts[3]
            changes.append((path, "" if set(new_blob) == {"0"} else new_blob))
        return changes

    def checkout(self, sha: str, destination: Path) -> None:
        """A fresh work tree of exactly ``sha`` (its own ``.git``: what runs there cannot
        change this repository's refs)."""
        if destination.exists():
            shutil.rmtree(destination)
        gitops.run_git(
            ["clone", "--quiet", "--no-checkout", "--shared", str(self.git_dir), str(destination)]
        )
        gitops.run_git(["-C", str(destination), "checkout", "--quiet", "--detach", sha])
