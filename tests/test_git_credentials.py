"""``push_branch`` against a real git smart-HTTP server (``tests/fakes/git_server.py``: ``git
http-backend`` run as a CGI by an in-process HTTP server that demands HTTP Basic auth, like
GitHub does).

Where the token could leak, we look: the argv of every git command (through a ``git`` wrapper
first on PATH), every child process git starts (``GIT_TRACE``), the workspace's
``.git/config``, and the text of errors.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from activities.tracker.git_credentials import (
    TOKEN_ENV,
    TOKEN_USERNAME,
    GitPushError,
    push_branch,
    push_command,
    push_environment,
)
from tests.fakes.git_server import REAL_GIT, GitServer, serve_git

TOKEN = "ghs_PushT0kenThatMustNeverLeak_0123456789"
BRANCH = "jidoka/widgets_7"


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(
        [REAL_GIT, *args], cwd=cwd, check=True, capture_output=True, text=True
    ).stdout.strip()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[GitServer]:
    with serve_git(tmp_path / "srv", TOKEN) as srv:
        yield srv


# --------------------------------------------------------------------------------------------
# The pushing side: a workspace, and an environment that records every argv
# --------------------------------------------------------------------------------------------


@dataclass
class Workspace:
    path: Path
    env: dict[str, str]
    argv_log: Path
    trace_log: Path

    def head(self) -> str:
        return git(self.path, "rev-parse", f"refs/heads/{BRANCH}")

    def commit(self, name: str) -> None:
        (self.path / name).write_text(f"{name}\n")
        git(self.path, "add", name)
        git(self.path, "commit", "-q", "-m", f"add {name}")

    def recorded(self) -> str:
        argv = self.argv_log.read_text() if self.argv_log.exists() else ""
        trace = self.trace_log.read_text() if self.trace_log.exists() else ""
        return argv + trace


@pytest.fixture
def workspace(tmp_path: Path) -> Workspace:
    path = tmp_path / "ws"
    path.mkdir()
    git(path, "init", "-q", "-b", "main")
    (path / "calc.py").write_text("def add(a, b):\n    return a + b\n")
    git(path, "add", "-A")
    git(path, "commit", "-q", "-m", "initial")
    git(path, "checkout", "-q", "-b", BRANCH)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    argv_log = tmp_path / "argv.log"
    wrapper = bin_dir / "git"
    wrapper.write_text(
        f'#!/bin/sh\nprintf "%s\\n" "git $*" >> "{argv_log}"\nexec "{REAL_GIT}" "$@"\n'
    )
    wrapper.chmod(0o755)
    home = tmp_path / "home"
    home.mkdir()
    trace_log = tmp_path / "trace.log"
    env = {
        **os.environ,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
        "HOME": str(home),
        "GIT_CONFIG_GLOBAL": str(home / ".gitconfig"),
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_TRACE": str(trace_log),
    }
    ws = Workspace(path=path, env=env, argv_log=argv_log, trace_log=trace_log)
    ws.commit("feature.py")
    return ws


def remote_head(server: GitServer) -> str | None:
    result = subprocess.run(
        [
            *(REAL_GIT, "--git-dir", str(server.bare)),
            *("rev-parse", "--verify", "-q", f"refs/heads/{BRANCH}"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    return result.stdout.strip() or None


# --------------------------------------------------------------------------------------------
# Tests
# --------------------------------------------------------------------------------------------


async def test_push_with_the_token_lands_the_branch_and_leaks_nothing(
    server: GitServer, workspace: Workspace
) -> None:
    config_before = (workspace.path / ".git" / "config").read_text()
    await push_branch(
        str(workspace.path), BRANCH, remote_url=server.url, token=TOKEN, env=workspace.env
    )
    assert remote_head(server) == workspace.head()
    # The server saw the token, as the password of the expected user: the helper answered.
    assert f"{TOKEN_USERNAME}:{TOKEN}" in server.credentials_seen
    recorded = workspace.recorded()
    assert "push" in recorded  # the wrapper and the trace really recorded the push...
    assert TOKEN_ENV in recorded  # ...and the helper, which names the variable only
    assert TOKEN not in recorded
    config_after = (workspace.path / ".git" / "config").read_text()
    assert config_after == config_before
    assert TOKEN not in config_after


async def test_pushing_again_is_fine_whether_or_not_there_is_news(
    server: GitServer, workspace: Workspace
) -> None:
    for _ in range(2):  # the second push has nothing to send: "Everything up-to-date"
        await push_branch(
            str(workspace.path), BRANCH, remote_url=server.url, token=TOKEN, env=workspace.env
        )
    workspace.commit("more.py")
    await push_branch(
        str(workspace.path), BRANCH, remote_url=server.url, token=TOKEN, env=workspace.env
    )
    assert remote_head(server) == workspace.head()


async def test_a_wrong_token_fails_with_a_typed_error_and_no_prompt(
    server: GitServer, workspace: Workspace
) -> None:
    wrong = "ghs_WrongT0kenAlsoSecret_9876543210"
    with pytest.raises(GitPushError) as caught:
        await push_branch(
            str(workspace.path),
            BRANCH,
            remote_url=server.url,
            token=wrong,
            env=workspace.env,
            timeout_s=60,
        )
    error = caught.value
    assert error.auth_failed
    assert not error.retryable
    assert error.exit_code not in (0, None)
    assert f"{TOKEN_USERNAME}:{wrong}" in server.credentials_seen  # it really was tried
    for text in (str(error), error.output_tail, error.message, workspace.recorded()):
        assert wrong not in text
    assert remote_head(server) is None


async def test_without_a_token_git_fails_instead_of_prompting(
    server: GitServer, workspace: Workspace
) -> None:
    with pytest.raises(GitPushError) as caught:
        await push_branch(
            str(workspace.path),
            BRANCH,
            remote_url=server.url,
            token=None,
            env=workspace.env,
            timeout_s=60,
        )
    assert caught.value.auth_failed
    assert remote_head(server) is None


async def test_helpers_and_askpass_of_the_worker_are_not_consulted(
    server: GitServer, workspace: Workspace, tmp_path: Path
) -> None:
    # A worker whose git config holds a helper answering other credentials, and whose
    # environment names an askpass program: neither may answer in place of the token.
    Path(workspace.env["GIT_CONFIG_GLOBAL"]).write_text(
        "[credential]\n"
        '\thelper = "!f() { echo username=someone-else; echo password=hunter22; }; f"\n'
    )
    asked = tmp_path / "askpass-called"
    askpass = tmp_path / "askpass.sh"
    askpass.write_text(f"#!/bin/sh\ntouch {asked}\necho nope\n")
    askpass.chmod(0o755)
    env = {**workspace.env, "GIT_ASKPASS": str(askpass), "SSH_ASKPASS": str(askpass)}
    await push_branch(str(workspace.path), BRANCH, remote_url=server.url, token=TOKEN, env=env)
    assert remote_head(server) == workspace.head()
    assert not any("someone-else" in c for c in server.credentials_seen)
    assert not asked.exists()


async def test_no_token_pushes_to_a_local_remote(tmp_path: Path, workspace: Workspace) -> None:
    bare = tmp_path / "local.git"
    git(tmp_path, "init", "-q", "--bare", "-b", "main", str(bare))
    await push_branch(
        str(workspace.path), BRANCH, remote_url=str(bare), token=None, env=workspace.env
    )
    assert git(bare, "rev-parse", f"refs/heads/{BRANCH}") == workspace.head()


async def test_a_rejected_push_is_neither_auth_nor_transient(
    server: GitServer, workspace: Workspace
) -> None:
    await push_branch(
        str(workspace.path), BRANCH, remote_url=server.url, token=TOKEN, env=workspace.env
    )
    git(workspace.path, "reset", "-q", "--hard", "HEAD~1")
    workspace.commit("diverged.py")
    with pytest.raises(GitPushError) as caught:
        await push_branch(
            str(workspace.path), BRANCH, remote_url=server.url, token=TOKEN, env=workspace.env
        )
    assert not caught.value.auth_failed
    assert not caught.value.retryable
    assert "rejected" in caught.value.output_tail
    assert TOKEN not in str(caught.value)


async def test_an_unreachable_remote_is_transient(workspace: Workspace) -> None:
    with pytest.raises(GitPushError) as caught:
        await push_branch(
            str(workspace.path),
            BRANCH,
            remote_url="http://127.0.0.1:9/widgets.git",
            token=TOKEN,
            env=workspace.env,
            timeout_s=60,
        )
    assert caught.value.retryable
    assert not caught.value.auth_failed


async def test_credentials_in_the_remote_url_are_refused_unsent(workspace: Workspace) -> None:
    with pytest.raises(GitPushError) as caught:
        await push_branch(
            str(workspace.path),
            BRANCH,
            remote_url=f"https://x-access-token:{TOKEN}@github.com/octo-org/widgets.git",
            token=None,
            env=workspace.env,
        )
    assert TOKEN not in str(caught.value)
    assert "embedded credentials" in str(caught.value)
    assert not workspace.argv_log.exists()  # git never ran


def test_the_push_argv_names_the_variable_never_a_value() -> None:
    url = "https://github.com/octo-org/widgets.git"
    argv = push_command(url, BRANCH, with_token=True)
    assert argv[-3:] == ["--", url, f"refs/heads/{BRANCH}:refs/heads/{BRANCH}"]
    helper = next(a for a in argv if a.startswith("credential.helper=!"))
    assert f"${TOKEN_ENV}" in helper
    # The first helper entry is empty: it clears helpers configured elsewhere.
    assert argv.index("credential.helper=") < argv.index(helper)
    assert "credential.helper" not in " ".join(push_command(url, BRANCH, with_token=False))


def test_the_push_environment_withholds_askpass_and_never_prompts() -> None:
    base = {"PATH": "/usr/bin", "GIT_ASKPASS": "/x", "SSH_ASKPASS": "/y", TOKEN_ENV: "stale"}
    env = push_environment(base, TOKEN)
    assert env["GIT_TERMINAL_PROMPT"] == "0"
    assert env[TOKEN_ENV] == TOKEN
    assert "GIT_ASKPASS" not in env and "SSH_ASKPASS" not in env
    # Without a token, a token left in the worker's environment is not passed on either.
    assert TOKEN_ENV not in push_environment(base, None)
