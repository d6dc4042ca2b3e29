"""Has the work branch got a commit beyond the base yet?

The first-commit budget ("no more than N tokens before the agent commits anything") needs this
answer while the agent runs. Git is asked at most once per ``min_interval_s`` (usage events can
arrive every few milliseconds; a git process per event would be the waste we are measuring),
earlier only when a few ``stat`` calls show the repository's refs changed (so the tokens counted
"before the first commit" stop at the commit, not up to a second later), and once on demand
when the budget is about to stop the agent. Once seen, never asked again: commits beyond the
base do not disappear in a way that should re-arm the budget.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path

GIT_TIMEOUT_S = 10.0


class FirstCommitProbe:
    def __init__(
        self, workspace: Path, base_sha: str, branch: str, *, min_interval_s: float = 1.0
    ) -> None:
        self._workspace = workspace
        self._range = f"{base_sha}..refs/heads/{branch}"
        self._interval = min_interval_s
        self._last: float | None = None
        self._refs = _RefWatch(workspace, branch)
        self._fingerprint = self._refs.fingerprint()
        self.seen = False
        self.error: str | None = None
        """Why the last check could not answer (branch missing, git failed); None if it did."""

    def next_due(self) -> float | None:
        """Monotonic time of the next periodic check; None once a commit has been seen."""
        if self.seen:
            return None
        return time.monotonic() if self._last is None else self._last + self._interval

    async def check(self, *, force: bool = False) -> bool:
        if self.seen:
            return True
        now = time.monotonic()
        fingerprint = self._refs.fingerprint()
        changed = fingerprint != self._fingerprint
        recent = self._last is not None and now - self._last < self._interval
        if recent and not (force or changed):
            return False
        self._last, self._fingerprint = now, fingerprint
        self.seen = await self._count() > 0
        return self.seen

    async def _count(self) -> int:
        try:
            proc = await asyncio.create_subprocess_exec(
                "git",
                "rev-list",
                "--count",
                self._range,
                cwd=self._workspace,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
        except OSError as error:  # no git on this worker: the budget cannot see commits
            self.error = f"cannot run git: {error.strerror or error}"
            return 0
        try:
            out, err = await asyncio.wait_for(proc.communicate(), timeout=GIT_TIMEOUT_S)
        except TimeoutError:
            await _reap(proc)
            self.error = f"git rev-list did not answer within {GIT_TIMEOUT_S:g} s"
            return 0
        except BaseException:  # cancellation: never leave git behind
            await _reap(proc)
            raise
        if proc.returncode != 0:
            self.error = err.decode("utf-8", "replace").strip()[:500] or "git rev-list failed"
            return 0
        self.error = None
        text = out.decode().strip()
        return int(text) if text.isdigit() else 0


async def _reap(proc: asyncio.subprocess.Process) -> None:
    with contextlib.suppress(ProcessLookupError):
        proc.kill()
    with contextlib.suppress(Exception):
        await asyncio.wait_for(proc.wait(), timeout=5)


class _RefWatch:
    """Cheap change detection on a repository's refs: stats, no subprocess.

    Any commit updates ``logs/HEAD`` (the reflog, on by default in work trees) and the branch's
    loose ref; ``packed-refs`` covers a ``git pack-refs``. A missed change costs precision only:
    the periodic check still runs.
    """

    def __init__(self, workspace: Path, branch: str) -> None:
        git_dir = _git_dir(workspace)
        common = git_dir
        if (git_dir / "commondir").is_file():  # a linked worktree keeps refs in the main repo
            common = (git_dir / (git_dir / "commondir").read_text().strip()).resolve()
        self._paths = [
            git_dir / "logs" / "HEAD",
            common / "refs" / "heads" / branch,
            common / "packed-refs",
        ]

    def fingerprint(self) -> tuple[tuple[int, int] | None, ...]:
        stamps: list[tuple[int, int] | None] = []
        for path in self._paths:
            try:
                stat = path.stat()
            except OSError:
                stamps.append(None)
            else:
                stamps.append((stat.st_mtime_ns, stat.st_size))
        return tuple(stamps)


def _git_dir(workspace: Path) -> Path:
    dot_git = workspace / ".git"
    if dot_git.is_file():  # "gitdir: <path>" in worktrees and submodules
        text = dot_git.read_text(encoding="utf-8", errors="replace").strip()
        if text.startswith("gitdir:"):
            return (workspace / text.removeprefix("gitdir:").strip()).resolve()
    return dot_git
