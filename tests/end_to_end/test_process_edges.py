"""The edges of the ``jidoka`` processes, as an operator meets them: signals, a SIGKILL, a port
already taken, ``--json`` piped into another program.

Everything is real: the installed console script in its own session, the dev server it starts,
the scripted agent and its grandchild. Every process a test starts carries a tag in its
environment (handed down to the dev server, the agents and their children), which is how a
test proves that nothing survived, and how its cleanup kills whatever did.

Proven here:

* ``jidoka server`` stopped by SIGTERM or SIGINT exits 0, its dev server is gone, the port is
  free and its record is removed; SIGKILLed, its dev server follows it (parent-death signal);
* ``jidoka run`` stopped by SIGTERM while an agent (and its grandchild) runs: it still prints
  the summary, exits 143, the attempt is recorded as ``worker_shutdown``, no process is left
  behind, and the next run starts on the same port; stopped while its server starts, likewise;
  SIGKILLed while an agent works, its server and agent die with it and the next run ships
  every issue once;
* an orphaned server on the port (the jidoka that started it is gone) is reported by
  ``jidoka run`` and ``jidoka server`` in one line naming its pid, never used;
* a live ``jidoka server`` is used by ``jidoka run`` and named; a Temporal server jidoka did not
  start is used and said to be foreign;
* ``jidoka run --json``: stdout is one JSON document; the SDK Core's own warnings (a server
  gone away) go to stderr, never into stdout.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import signal
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import pytest
from temporalio.testing import WorkflowEnvironment

from activities.agent.transcript import transcript_path
from runtime.devserver import (
    DevServerSettings,
    port_open,
    read_record,
    start_dev_server,
    stop_dev_server,
    write_record,
)
from tests.support.linekit import LineKit, eventually, make_line
from tests.support.paths import JIDOKA
from tests.support.ports import free_port
from tests.support.workerproc import TAG_VAR, ProcInfo, child_environ, live_processes, tagged

pytestmark = pytest.mark.slow

T = TypeVar("T")

DEADLINE_S = 120.0
"""Upper bound of every wait: it fails a test that hangs, it never times a run."""

PATIENT_AGENT = {"stall_timeout_s": 600, "silence_timeout_s": 600, "turn_timeout_s": 900}
"""The stalling agent must still be running when the test signals jidoka."""


# ---------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------


@pytest.fixture
def tmp_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """This test's TMPDIR, for its jidoka processes and for itself: server records (kept under
    the temporary directory) never mix with a developer's or another test's."""
    path = tmp_path / "tmp"
    path.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(path))
    return path


@dataclass
class Jidoka:
    """One ``jidoka`` process in its own session, its stdout and stderr in files."""

    process: subprocess.Popen[bytes]
    out_path: Path
    err_path: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def out(self) -> str:
        return self.out_path.read_text(errors="replace")

    def err(self) -> str:
        return self.err_path.read_text(errors="replace")

    def output(self) -> str:
        return f"--- stdout\n{self.out()[-3000:]}\n--- stderr\n{self.err()[-3000:]}"

    async def exit_code(self, timeout: float = DEADLINE_S) -> int:
        deadline = asyncio.get_running_loop().time() + timeout
        while (code := self.process.poll()) is None:
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"jidoka {self.pid} still running\n{self.output()}")
            await asyncio.sleep(0.05)
        return code


class Processes:
    """Starts jidoka processes for one test and kills, at the end, whatever carries its tag."""

    def __init__(self, tmp_path: Path, tmp_dir: Path) -> None:
        self.tag = uuid.uuid4().hex
        self.logs = tmp_path / "logs"
        self.logs.mkdir(exist_ok=True)
        self.tmp_dir = tmp_dir
        self.started: list[Jidoka] = []

    def env(self, **extra: str) -> dict[str, str]:
        env = child_environ()
        env.update({TAG_VAR: self.tag, "TMPDIR": str(self.tmp_dir)})
        env.update(extra)
        return env

    def start(self, *args: str, env: dict[str, str] | None = None) -> Jidoka:
        name = f"{len(self.started)}-{args[0]}"
        out_path, err_path = self.logs / f"{name}.out", self.logs / f"{name}.err"
        with out_path.open("wb") as out, err_path.open("wb") as err:
            process = subprocess.Popen(
                [JIDOKA, *args],
                env=env or self.env(),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                start_new_session=True,
            )
        jidoka = Jidoka(process, out_path, err_path)
        self.started.append(jidoka)
        return jidoka

    async def run(self, *args: str, env: dict[str, str] | None = None) -> tuple[int, Jidoka]:
        jidoka = self.start(*args, env=env)
        return await jidoka.exit_code(), jidoka

    def survivors(self) -> list[ProcInfo]:
        return tagged(self.tag)

    def kill_all(self) -> None:
        for jidoka in self.started:
            if jidoka.process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(jidoka.pid, signal.SIGKILL)
                jidoka.process.wait(timeout=10)
        own_group = os.getpgrp()
        for info in self.survivors():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                if info.pgid != own_group:
                    os.killpg(info.pgid, signal.SIGKILL)
                os.kill(info.pid, signal.SIGKILL)


@pytest.fixture
def processes(tmp_path: Path, tmp_dir: Path) -> Iterator[Processes]:
    started = Processes(tmp_path, tmp_dir)
    try:
        yield started
    finally:
        started.kill_all()


async def poll(check: Callable[[], T], accept: Callable[[T], bool], what: str) -> T:
    async def probe() -> T:
        return check()

    return await eventually(probe, accept, timeout=DEADLINE_S, what=what, interval=0.1)


async def until_output(jidoka: Jidoka, marker: str) -> str:
    def seen() -> str:
        if jidoka.process.poll() is not None:
            raise AssertionError(f"jidoka exited before {marker!r}\n{jidoka.output()}")
        return jidoka.out() + jidoka.err()

    return await poll(seen, lambda text: marker in text, repr(marker))


def dev_servers(processes: Processes) -> list[ProcInfo]:
    return [p for p in processes.survivors() if "start-dev" in p.cmdline]


async def nothing_left(processes: Processes) -> None:
    """No process of the test survives (the dead are reaped by their parents, or by init)."""
    await poll(processes.survivors, lambda left: left == [], "no process left behind")


def summaries(transcript: Path) -> list[str]:
    """The ``stop`` of every summary line of an attempt's transcript."""
    entries = [json.loads(line) for line in transcript.read_text().splitlines() if line]
    return [e["data"].get("stop", "") for e in entries if e["kind"] == "summary"]


def run_args(kit: LineKit, port: int, ui_port: int, *extra: str) -> list[str]:
    return ["run", str(kit.workflow_md), "--port", str(port), "--ui-port", str(ui_port), *extra]


def line_env(processes: Processes, kit: LineKit, **extra: str) -> dict[str, str]:
    return processes.env(
        JIDOKA_TASK_QUEUE=f"edges-{kit.line}",
        JIDOKA_HOST_ID=f"edges-{uuid.uuid4().hex[:8]}",
        **extra,
    )


# ---------------------------------------------------------------------------------------------
# jidoka server
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
async def test_a_signal_stops_jidoka_server_and_its_dev_server_and_frees_the_port(
    processes: Processes, tmp_path: Path, signum: signal.Signals
) -> None:
    port, ui_port = free_port(), free_port()
    server = processes.start(
        "server", "--db", str(tmp_path / "t.db"), "--port", str(port), "--ui-port", str(ui_port)
    )
    await until_output(server, "Ctrl-C to stop")
    (dev,) = dev_servers(processes)
    assert dev.pgid == dev.pid, "the dev server runs in its own process group"
    record = read_record(port)
    assert record is not None and (record.server_pid, record.owner_pid) == (dev.pid, server.pid)

    server.process.send_signal(signum)
    code = await server.exit_code(30)

    assert code == 0, server.output()
    assert "jidoka server: stopped" in server.out()
    assert not port_open("127.0.0.1", port) and not port_open("127.0.0.1", ui_port)
    assert dev.pid not in {p.pid for p in live_processes()}
    await nothing_left(processes)
    assert read_record(port) is None


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
async def test_a_sigkilled_jidoka_server_takes_its_dev_server_with_it(
    processes: Processes, tmp_path: Path
) -> None:
    port = free_port()
    server = processes.start(
        "server", "--db", str(tmp_path / "t.db"), "--port", str(port), "--headless"
    )
    await until_output(server, "Ctrl-C to stop")
    assert len(dev_servers(processes)) == 1

    server.process.kill()  # no handler runs: only the kernel can tell the dev server
    await server.exit_code(10)

    await nothing_left(processes)
    await poll(lambda: port_open("127.0.0.1", port), lambda busy: not busy, "the port freed")
    # The record outlived both; the next start on the port sees a dead server and replaces it.
    second = processes.start(
        "server", "--db", str(tmp_path / "t.db"), "--port", str(port), "--headless"
    )
    await until_output(second, "Ctrl-C to stop")
    second.process.send_signal(signal.SIGTERM)
    assert await second.exit_code(30) == 0, second.output()


# ---------------------------------------------------------------------------------------------
# jidoka run
# ---------------------------------------------------------------------------------------------


async def agent_grandchild(processes: Processes) -> ProcInfo:
    """The scripted agent's ``sleep 1000`` (spawn-and-stall), once it runs."""
    found = await poll(
        lambda: [p for p in processes.survivors() if p.cmdline == ("sleep", "1000")],
        lambda procs: len(procs) == 1,
        "the agent's grandchild sleep",
    )
    return found[0]


async def test_sigterm_stops_jidoka_run_with_its_agents_and_server_and_the_port_is_reusable(
    processes: Processes, tmp_path: Path
) -> None:
    kit = make_line(tmp_path, {"agent": PATIENT_AGENT})
    kit.add_issue("T-1", "spawn-and-stall")
    port, ui_port = free_port(), free_port()
    env = line_env(processes, kit, JIDOKA_SHUTDOWN_GRACE_S="2")

    first = processes.start(*run_args(kit, port, ui_port, "--until-idle"), env=env)
    sleeper = await agent_grandchild(processes)
    (dev,) = dev_servers(processes)
    agent_group = [p for p in processes.survivors() if p.pgid == sleeper.pgid]
    assert sleeper.pgid not in (first.pid, dev.pid) and len(agent_group) >= 2  # bash, agent...

    first.process.send_signal(signal.SIGTERM)
    code = await first.exit_code(60)

    assert code == 143, first.output()
    assert "stopping; running agents get up to 2s" in first.err()
    assert "Summary of line" in first.out() and "T-1" in first.out()
    assert "Traceback" not in first.err()
    await nothing_left(processes)
    assert not port_open("127.0.0.1", port)
    assert read_record(port) is None
    # Killed by the worker's shutdown, not abandoned: the attempt says so.
    assert "worker_shutdown" in summaries(transcript_path(kit.workspace("T-1"), 1))

    # The same port again: an embedded server starts (no "port in use"), the line carries on.
    second = processes.start(*run_args(kit, port, ui_port, "--until-idle"), env=env)
    await until_output(second, "▶ T-1 dispatched")
    assert "the embedded dev server" in second.out(), second.output()
    second.process.send_signal(signal.SIGTERM)
    assert await second.exit_code(60) == 143, second.output()
    await nothing_left(processes)


async def test_a_sigkilled_jidoka_run_takes_its_server_and_agents_with_it_and_the_next_run_ships_all(
    processes: Processes, tmp_path: Path
) -> None:
    """The laptop case: ``jidoka run`` (worker and embedded server in one) killed outright
    while an agent works. Nothing survives it (the kernel tells the server and the agent's
    sandbox), and the next ``jidoka run`` on the same folder carries the line on from the
    server's database: every issue ships, once."""
    kit = make_line(tmp_path, {"agent": {"env": {"JIDOKA_SCRIPTED_PACE": "1.5"}}})
    kit.add_issue("K-1", "ship")
    kit.add_issue("K-2", "ship")
    port, ui_port = free_port(), free_port()
    env = line_env(processes, kit)

    first = processes.start(*run_args(kit, port, ui_port, "--until-idle"), env=env)
    await until_output(first, "running_agent")
    first.process.kill()
    assert await first.exit_code(10) == -signal.SIGKILL
    await nothing_left(processes)

    second = processes.start(*run_args(kit, port, ui_port, "--until-idle", "--json"), env=env)
    assert await second.exit_code(DEADLINE_S) == 0, second.output()
    await nothing_left(processes)
    summary = json.loads(second.out())
    issues = {i["identifier"]: i for i in summary["issues"]}
    assert {name: i["phase"] for name, i in issues.items()} == {"K-1": "shipped", "K-2": "shipped"}
    assert kit.state_of("K-1") == "Done" and kit.state_of("K-2") == "Done"
    for identifier in ("K-1", "K-2"):
        assert kit.issue_text(identifier).count("Jidoka: shipped") == 1, identifier
    assert {i["outcome"] for i in issues.values()} == {"shipped"}


async def test_sigterm_while_jidoka_run_starts_its_server_leaves_nothing_behind(
    processes: Processes, tmp_path: Path
) -> None:
    kit = make_line(tmp_path)
    kit.add_issue("S-1", "ship")
    port, ui_port = free_port(), free_port()
    run = processes.start(
        *run_args(kit, port, ui_port, "--until-idle"), env=line_env(processes, kit)
    )
    await poll(lambda: dev_servers(processes), bool, "the dev server spawned")

    run.process.send_signal(signal.SIGTERM)

    assert await run.exit_code(60) == 143, run.output()
    assert "Traceback" not in run.err()
    await nothing_left(processes)
    assert not port_open("127.0.0.1", port)
    assert read_record(port) is None


async def test_an_orphaned_server_on_the_port_is_reported_and_never_used(
    processes: Processes, tmp_path: Path
) -> None:
    kit = make_line(tmp_path)
    kit.add_issue("O-1", "ship")
    port, ui_port = free_port(), free_port()
    settings = DevServerSettings(db_path=tmp_path / "orphan.db", port=port, headless=True)
    server = await start_dev_server(settings, owner="jidoka run")
    try:
        # Its owner dies without stopping it (a SIGKILL where no parent-death signal exists):
        # the record names a process that is gone.
        gone = subprocess.Popen(["true"])
        gone.wait()
        record = read_record(port)
        assert record is not None and record.server_pid == server.process.pid
        write_record(dataclasses.replace(record, owner_pid=gone.pid, owner_started=None))

        code, run = await processes.run(*run_args(kit, port, ui_port, "--until-idle"))
        errors = run.err().strip().splitlines()
        assert code == 1, run.output()
        assert len(errors) == 1 and "Traceback" not in run.err(), run.output()
        assert errors[0].startswith(f"jidoka: port {port} is held by an orphaned")
        assert f"pid {server.process.pid}" in errors[0]
        assert f"kill {server.process.pid}" in errors[0]
        assert run.out() == ""  # the line was not started on it

        code, again = await processes.run(
            "server", "--db", str(tmp_path / "t.db"), "--port", str(port), "--headless"
        )
        assert code == 1 and again.err().strip() == errors[0], again.output()
        assert server.process.poll() is None  # reported, not touched
    finally:
        stop_dev_server(server)


async def test_run_uses_a_live_jidoka_server_by_name_and_a_foreign_server_says_so(
    processes: Processes, dev_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    kit = make_line(tmp_path)
    kit.add_issue("L-1", "ship")
    port, ui_port = free_port(), free_port()
    server = processes.start(
        "server", "--db", str(tmp_path / "shared.db"), "--port", str(port), "--headless"
    )
    await until_output(server, "Ctrl-C to stop")

    code, run = await processes.run(
        *run_args(kit, port, ui_port, "--until-idle"), env=line_env(processes, kit)
    )
    assert code == 0, run.output()
    assert f"on the jidoka server on 127.0.0.1:{port} (pid {server.pid}" in run.out()
    assert "Web UI" not in run.out()  # that server is headless: no address to give
    assert kit.state_of("L-1") == "Done"
    server.process.send_signal(signal.SIGTERM)
    assert await server.exit_code(30) == 0, server.output()

    # The session's dev server was not started by jidoka: it is used, and said to be foreign.
    foreign_port = int(dev_env.client.service_client.config.target_host.rsplit(":", 1)[1])
    other = make_line(tmp_path / "other")
    code, run = await processes.run(
        *run_args(other, foreign_port, free_port(), "--until-idle"),
        env=line_env(processes, other),
    )
    assert code == 0, run.output()
    assert "was not started by jidoka" in run.out()
    assert "(not started by jidoka)" in run.out()
    await nothing_left(processes)


async def test_run_json_prints_one_json_document_on_stdout(
    processes: Processes, tmp_path: Path
) -> None:
    kit = make_line(tmp_path)
    kit.add_issue("J-1", "ship")
    port, ui_port = free_port(), free_port()

    code, run = await processes.run(
        *run_args(kit, port, ui_port, "--until-idle", "--json"), env=line_env(processes, kit)
    )

    assert code == 0, run.output()
    document = json.loads(run.out())  # one document, nothing before or after it
    assert [(i["identifier"], i["phase"]) for i in document["issues"]] == [("J-1", "shipped")]
    assert document["line"]["line"] == kit.line
    # Everything meant for people went to stderr.
    assert "embedded dev server" in run.err() and "J-1 shipped" in run.err()
    await nothing_left(processes)


async def test_under_json_the_sdk_cores_own_warnings_go_to_stderr_not_stdout(
    processes: Processes, tmp_path: Path
) -> None:
    """The SDK Core logs a warning each time it retries a call to a server that went away; its
    console logger writes to stdout, so without routing they land where the document goes."""
    kit = make_line(tmp_path, {"agent": PATIENT_AGENT})
    kit.add_issue("W-1", "spawn-and-stall")
    port, ui_port = free_port(), free_port()
    run = processes.start(
        *run_args(kit, port, ui_port, "--until-idle", "--json"),
        env=line_env(processes, kit, JIDOKA_SHUTDOWN_GRACE_S="1"),
    )
    await agent_grandchild(processes)
    (dev,) = dev_servers(processes)

    os.killpg(dev.pgid, signal.SIGKILL)  # the server dies under the running line
    code = await run.exit_code()

    assert code == 1, run.output()
    assert run.out() == ""  # no document without a summary, and nothing else either
    assert "[sdk_core::" in run.err() and "retried" in run.err()
    assert "jidoka: lost the line" in run.err() and "Traceback" not in run.err()
    await nothing_left(processes)
