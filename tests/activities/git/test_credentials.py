"""The push the ``push_branch`` activity makes (``gitops.remote_git`` with a line's
:class:`RepoAccess`), against a real git smart-HTTP server (``tests/support/fakes/git_server.py``: ``git
http-backend`` run as a CGI by an in-process HTTP server that demands HTTP Basic auth, like
GitHub does).

Where the token could leak, we look: the argv of every git command (through a ``git`` wrapper
first on PATH), every child process git starts (``GIT_TRACE``), the workspace's
``.git/config``, and the text of errors.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from activities.git import gitops
from activities.git.access import RepoAccess
from activities.git.credentials import TOKEN_ENV, TOKEN_USERNAME, credential_options
from tests.support.fakes.git_server import REAL_GIT, GitServer, serve_git
from tests.support.git import make_origin, run_git
from tests.support.secret_scan import register_secret

TOKEN = register_secret("ghs_PushT0kenThatMustNeverLeak_0123456789")
BRANCH = "jidoka/widgets_7"


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
        return run_git(self.path, "rev-parse", f"refs/heads/{BRANCH}")

    def commit(self, name: str) -> None:
        (self.path / name).write_text(f"{name}\n")
        run_git(self.path, "add", name)
        run_git(self.path, "commit", "-q", "-m", f"add {name}")

    def recorded(self) -> str:
        argv = self.argv_log.read_text() if self.argv_log.exists() else ""
        trace = self.trace_log.read_text() if self.trace_log.exists() else ""
        return argv + trace


@pytest.fixture
def workspace(tmp_path: Path) -> Workspace:
    path = make_origin(tmp_path / "ws", with_tests=False)
    run_git(path, "checkout", "-q", "-b", BRANCH)
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


# --------------------------------------------------------------------------------------------
# Tests
# --------------------------------------------------------------------------------------------


def push(workspace: Workspace, remote: str, token: str | None) -> None:
    """What ``activities.workspace.push_branch`` runs, in a recording environment."""
    access = RepoAccess(remote=remote, token=token)
    gitops.remote_git(
        str(workspace.path),
        "push",
        "-q",
        "--",
        access.remote,
        f"refs/heads/{BRANCH}:refs/heads/{BRANCH}",
        options=access.git_options(),
        env={**workspace.env, **access.token_env()},
    )


def test_push_with_the_token_lands_the_branch_and_leaks_nothing(
    server: GitServer, workspace: Workspace
) -> None:
    config_before = (workspace.path / ".git" / "config").read_text()
    push(workspace, server.url, TOKEN)
    assert server.sha(f"refs/heads/{BRANCH}") == workspace.head()
    # The server saw the token, as the password of the expected user: the helper answered.
    assert f"{TOKEN_USERNAME}:{TOKEN}" in server.credentials_seen
    recorded = workspace.recorded()
    assert "push" in recorded  # the wrapper and the trace really recorded the push...
    assert TOKEN_ENV in recorded  # ...and the helper, which names the variable only
    assert TOKEN not in recorded
    config_after = (workspace.path / ".git" / "config").read_text()
    assert config_after == config_before
    assert TOKEN not in config_after


def test_pushing_again_is_fine_whether_or_not_there_is_news(
    server: GitServer, workspace: Workspace
) -> None:
    for _ in range(2):  # the second push has nothing to send: "Everything up-to-date"
        push(workspace, server.url, TOKEN)
    workspace.commit("more.py")
    push(workspace, server.url, TOKEN)
    assert server.sha(f"refs/heads/{BRANCH}") == workspace.head()


def test_a_wrong_token_fails_without_a_prompt_and_without_the_token(
    server: GitServer, workspace: Workspace
) -> None:
    wrong = register_secret("ghs_WrongT0kenAlsoSecret_9876543210")
    with pytest.raises(gitops.GitError) as caught:
        push(workspace, server.url, wrong)
    assert f"{TOKEN_USERNAME}:{wrong}" in server.credentials_seen  # it really was tried
    for text in (str(caught.value), caught.value.stderr, workspace.recorded()):
        assert wrong not in text
    assert server.sha(f"refs/heads/{BRANCH}") is None


def test_without_a_token_git_fails_instead_of_prompting(
    server: GitServer, workspace: Workspace
) -> None:
    with pytest.raises(gitops.GitError):
        push(workspace, server.url, None)
    assert server.sha(f"refs/heads/{BRANCH}") is None


def test_helpers_and_askpass_of_the_worker_are_not_consulted(
    server: GitServer, workspace: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
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
    monkeypatch.setenv("GIT_ASKPASS", str(askpass))
    monkeypatch.setenv("SSH_ASKPASS", str(askpass))
    workspace.env.pop("GIT_ASKPASS", None)
    workspace.env.pop("SSH_ASKPASS", None)
    push(workspace, server.url, TOKEN)
    assert server.sha(f"refs/heads/{BRANCH}") == workspace.head()
    assert not any("someone-else" in c for c in server.credentials_seen)
    assert not asked.exists()


def test_no_token_pushes_to_a_local_remote(tmp_path: Path, workspace: Workspace) -> None:
    bare = tmp_path / "local.git"
    run_git(tmp_path, "init", "-q", "--bare", "-b", "main", str(bare))
    push(workspace, str(bare), None)
    assert run_git(bare, "rev-parse", f"refs/heads/{BRANCH}") == workspace.head()


def test_a_rejected_push_fails_and_says_so_without_the_token(
    server: GitServer, workspace: Workspace
) -> None:
    push(workspace, server.url, TOKEN)
    run_git(workspace.path, "reset", "-q", "--hard", "HEAD~1")
    workspace.commit("diverged.py")
    with pytest.raises(gitops.GitError) as caught:
        push(workspace, server.url, TOKEN)
    assert "rejected" in caught.value.stderr
    assert TOKEN not in str(caught.value)


def test_the_credential_options_name_the_variable_never_a_value() -> None:
    options = credential_options()
    helper = next(o for o in options if o.startswith("credential.helper=!"))
    assert f"${TOKEN_ENV}" in helper
    # The first helper entry is empty: it clears helpers configured elsewhere.
    assert options.index("credential.helper=") < options.index(helper)
    assert RepoAccess(remote="origin").git_options() == []
    assert RepoAccess(remote="origin").token_env() == {}
