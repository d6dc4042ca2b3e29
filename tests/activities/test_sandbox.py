"""The sandbox agents and hooks run in (``activities/sandbox.py``), tried from inside: real
bubblewrap from the wheel, a real line folder, real processes. What must be out of sight is,
what must be writable is, the environment is an allow-list, the network is off unless allowed,
and a sandbox that cannot start never falls back to none."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from activities import sandbox
from activities.host_state import agent_home, state_root
from activities.process import group_alive
from activities.sandbox import SANDBOX_HOME, SandboxUnavailable, confinement
from jidoka.models import LoadedWorkflow
from tests.support.agents.lab import Lab, make_lab
from tests.support.secret_scan import register_secret


@pytest.fixture
def lab(tmp_path: Path) -> Lab:
    return make_lab(tmp_path)


def inside(
    lab: Lab,
    workflow: LoadedWorkflow,
    script: str,
    *,
    environ: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    confine = confinement(
        workflow,
        lab.workspace.path,
        pinned={"JIDOKA_PYTHON": sys.executable},
        home=agent_home(lab.path),
        environ=environ,
    )
    return subprocess.run(
        confine.argv(["bash", "-c", script]),
        cwd=lab.workspace.path,
        env=confine.env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_only_the_workspace_is_in_reach(lab: Lab) -> None:
    workflow = lab.workflow({"kind": "command", "command": "true"}, sandbox={})
    sibling = lab.root / "workspaces" / "DEMO-2"
    sibling.mkdir()
    (sibling / "secret.txt").write_text("the other issue's work\n")
    (lab.root / "board" / "DEMO-1.md").write_text("---\nstate: Todo\n---\n")
    (state_root() / "planted-by-the-worker").write_text("worker state\n")
    script = f"""
        cat {lab.root / "WORKFLOW.md"} || echo no-workflow
        ls {lab.root / "board"} | grep -q DEMO-1 && echo board-visible || echo no-board
        cat {sibling / "secret.txt"} || echo no-sibling
        cat {state_root() / "planted-by-the-worker"} || echo no-state
        echo mine > written.txt && echo workspace-writable
        echo x > {sibling / "pwned.txt"} || echo sibling-refused
        touch /etc/jidoka-sandbox-test || echo system-read-only
        echo temp > /tmp/jidoka-sandbox-test && echo private-tmp
        echo "home=$HOME"; echo kept > "$HOME/.kept"
        ls /proc | grep -c '^[0-9]'
    """
    done = inside(lab, workflow, script)

    out = done.stdout.split()
    for word in ("no-workflow", "no-board", "no-sibling", "no-state", "workspace-writable"):
        assert word in out, done.stdout + done.stderr
    assert "sibling-refused" in out and "system-read-only" in out and "private-tmp" in out
    assert "the other issue's work" not in done.stdout and "line: test" not in done.stdout
    assert (lab.path / "written.txt").read_text() == "mine\n"
    assert not (sibling / "pwned.txt").exists()
    assert not Path("/etc/jidoka-sandbox-test").exists()
    assert not Path("/tmp/jidoka-sandbox-test").exists()
    # The agent's home is its own, in the worker's state, kept for its next turn.
    assert f"home={SANDBOX_HOME}" in out
    assert (agent_home(lab.path) / ".kept").read_text() == "kept\n"
    assert int(out[-1]) < 10  # its own PID namespace: a handful of processes, not the host's


def test_the_environment_is_an_allow_list(lab: Lab) -> None:
    environ = {
        **os.environ,
        "GITHUB_TOKEN": register_secret("ghp_NeverInsideTheSandbox0000"),
        "ORDINARY_NAME": "not-a-secret-but-not-passed",
        "PASSED_ON": "passed",
    }
    workflow = lab.workflow(
        {"kind": "command", "command": "true"}, sandbox={"pass_env": ["PASSED_ON"]}
    )
    done = inside(lab, workflow, "env", environ=environ)

    names = {line.split("=", 1)[0] for line in done.stdout.splitlines() if "=" in line}
    assert "PASSED_ON=passed" in done.stdout
    assert "ghp_NeverInsideTheSandbox0000" not in done.stdout
    assert "not-a-secret-but-not-passed" not in done.stdout
    assert names - {"PWD", "SHLVL", "_", "OLDPWD"} == {
        "PATH",
        "HOME",
        "USER",
        "TMPDIR",
        "JIDOKA_PYTHON",
        "PASSED_ON",
        *(n for n in ("LANG", "LC_ALL", "LC_CTYPE", "TERM", "TZ") if n in environ),
    }


@pytest.mark.parametrize("network", [False, True])
def test_the_network_is_a_setting(lab: Lab, network: bool) -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        workflow = lab.workflow(
            {"kind": "command", "command": "true"}, sandbox={"network": network}
        )
        connect = f"import socket; socket.create_connection(('127.0.0.1', {port}), 5)"
        done = inside(lab, workflow, f'"$JIDOKA_PYTHON" -c "{connect}" && echo reached')
    assert ("reached" in done.stdout) is network, done.stderr


def test_a_sandbox_that_cannot_start_never_falls_back_to_none(
    lab: Lab, monkeypatch: pytest.MonkeyPatch
) -> None:
    workflow = lab.workflow({"kind": "command", "command": "true"}, sandbox={})
    monkeypatch.setattr(sandbox, "probe", lambda: "user namespaces are disabled")
    with pytest.raises(SandboxUnavailable, match=r"user namespaces are disabled.*sandbox: none"):
        confinement(workflow, lab.workspace.path, pinned={})
    # Said as plainly by the agent activity: unavailable, never run unconfined.
    none = lab.workflow({"kind": "command", "command": "true"}, sandbox={"mode": "none"})
    assert confinement(none, lab.workspace.path, pinned={}).sandbox is None


def test_a_group_of_zombies_is_not_alive() -> None:
    # Exited but not reaped: the pid (and its group) still exists as a zombie.
    child = subprocess.Popen(["true"], start_new_session=True)
    stat = Path(f"/proc/{child.pid}/stat")
    while stat.read_text().rsplit(")", 1)[1].split()[0] != "Z":
        pass
    os.killpg(child.pid, 0)  # the signal still finds the group...
    assert not group_alive(child.pid)  # ...but nothing in it runs
    child.wait()
    sleeper = subprocess.Popen(["sleep", "30"], start_new_session=True)
    try:
        assert group_alive(sleeper.pid)
    finally:
        sleeper.kill()
        sleeper.wait()
