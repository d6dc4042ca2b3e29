"""The scripted agent, run as the real subprocess the supervisor runs, on real git repositories.

Each scenario is checked by its observable effect: commits on the work branch, files, the
verdict file, its stdout events and exit code. Stall scenarios are checked to keep running (and
to stay silent or noisy as promised), then killed.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from activities.agent.scripted_agent import HALT_REASON, QUESTIONS, SCENARIOS
from tests.support.git import make_origin, run_git

ISSUE = "DEMO-1"


class Repo:
    """A clone on its work branch, with the base commit remembered."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.base = run_git(path, "rev-parse", "HEAD")

    def commits(self) -> int:
        return int(run_git(self.path, "rev-list", "--count", f"{self.base}..HEAD"))

    def net_diff(self) -> str:
        return run_git(self.path, "diff", "--stat", self.base, "HEAD", "--", ".", ":!.jidoka")

    def dirty(self) -> list[str]:
        status = run_git(self.path, "status", "--porcelain", "--untracked-files=all")
        return [line[3:] for line in status.splitlines() if not line[3:].startswith(".jidoka/")]

    def verdict_text(self) -> str | None:
        path = self.path / ".jidoka" / "verdict.json"
        return path.read_text() if path.exists() else None

    def verdict(self) -> dict[str, Any]:
        text = self.verdict_text()
        assert text is not None, "no verdict written"
        return json.loads(text)

    def unittest(self, timeout: float = 20) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "unittest", "discover", "-q"],
            check=False,
            cwd=self.path,
            capture_output=True,
            text=True,
            timeout=timeout,
        )


@pytest.fixture
def repo(tmp_path: Path) -> Repo:
    origin = make_origin(tmp_path / "origin")
    workspace = tmp_path / "workspace"
    run_git(tmp_path, "clone", "-q", str(origin), str(workspace))
    run_git(workspace, "checkout", "-q", "-b", "jidoka/DEMO-1")
    return Repo(workspace)


def agent_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("JIDOKA_")}
    env.update({"JIDOKA_ISSUE": ISSUE, "JIDOKA_ATTEMPT": "1", "JIDOKA_SCRIPTED_PACE": "0"})
    env.update(extra)
    return env


def play(
    repo: Repo,
    scenario: str | None,
    *,
    attempt: int = 1,
    prompt: str = "",
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    args = [sys.executable, "-m", "activities.agent.scripted_agent"]
    if scenario is not None:
        args += ["--scenario", scenario]
    return subprocess.run(
        args,
        check=False,
        cwd=repo.path,
        input=prompt,
        capture_output=True,
        text=True,
        timeout=30,
        env=env or agent_env(JIDOKA_ATTEMPT=str(attempt)),
    )


def events(stdout: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]


def usage_totals(stdout: str) -> list[int]:
    return [e["total_tokens"] for e in events(stdout) if e["event"] == "usage"]


# -- the happy path and its lies -------------------------------------------------------------------


def test_ship_commits_a_change_note_and_says_done(repo: Repo) -> None:
    done = play(repo, "ship")
    assert done.returncode == 0, done.stderr
    assert repo.commits() == 1
    assert (repo.path / "changes" / "DEMO-1.md").read_text().startswith("# DEMO-1")
    assert "changes/DEMO-1.md" in repo.net_diff()
    assert repo.dirty() == []
    assert repo.verdict() == {
        "verdict": "DONE",
        "summary": "Added changes/DEMO-1.md.",
        "questions": [],
        "halt_reason": None,
    }
    totals = usage_totals(done.stdout)
    assert totals == sorted(totals) and totals[-1] >= 1000, "usage must be cumulative"
    assert any(e["event"] == "progress" for e in events(done.stdout))


def test_hallucinate_claims_success_without_a_commit(repo: Repo) -> None:
    done = play(repo, "hallucinate")
    assert done.returncode == 0
    assert "all tests pass" in done.stdout
    assert repo.verdict()["verdict"] == "DONE"
    assert repo.commits() == 0
    assert repo.dirty() == []


def test_commit_then_revert_leaves_an_empty_net_diff(repo: Repo) -> None:
    done = play(repo, "commit-then-revert")
    assert done.returncode == 0, done.stderr
    assert repo.commits() == 2
    assert repo.net_diff() == ""
    assert repo.verdict()["verdict"] == "DONE"


def test_no_verdict_commits_but_writes_no_verdict(repo: Repo) -> None:
    done = play(repo, "no-verdict")
    assert done.returncode == 0
    assert repo.commits() == 1
    assert repo.verdict_text() is None


def test_unknown_verdict(repo: Repo) -> None:
    assert play(repo, "unknown-verdict").returncode == 0
    assert repo.commits() == 1
    assert repo.verdict()["verdict"] == "MAYBE"


def test_invalid_verdict(repo: Repo) -> None:
    assert play(repo, "invalid-verdict").returncode == 0
    assert repo.verdict_text() == "{not json"
    with pytest.raises(json.JSONDecodeError):
        repo.verdict()


def test_halt_pulls_the_cord_with_a_reason(repo: Repo) -> None:
    assert play(repo, "halt").returncode == 0
    verdict = repo.verdict()
    assert verdict["verdict"] == "HALT"
    assert (
        verdict["halt_reason"]
        == HALT_REASON
        == ("the staging database is corrupted; stop all work")
    )
    assert repo.commits() == 0


def test_ask_waits_for_answers_then_ships(repo: Repo) -> None:
    assert play(repo, "ask", attempt=1).returncode == 0
    first = repo.verdict()
    assert first["verdict"] == "AWAITING_ANSWERS"
    assert first["questions"] == QUESTIONS and len(QUESTIONS) == 2
    assert repo.commits() == 0

    assert play(repo, "ask", attempt=2).returncode == 0
    assert repo.verdict()["verdict"] == "DONE"
    assert repo.commits() == 1


def test_uncommitted_leaves_work_in_the_tree(repo: Repo) -> None:
    assert play(repo, "uncommitted").returncode == 0
    assert repo.commits() == 0
    assert repo.dirty() == ["changes/DEMO-1.md"]
    assert repo.verdict()["verdict"] == "DONE"


def test_crash_exits_3_with_stderr_and_no_verdict(repo: Repo) -> None:
    done = play(repo, "crash")
    assert done.returncode == 3
    assert "the model provider closed the stream" in done.stderr
    assert [e["event"] for e in events(done.stdout)].count("progress") == 1
    assert repo.verdict_text() is None


def test_rate_limited_reports_an_exhausted_limit_then_ships_on_a_later_attempt(
    repo: Repo,
) -> None:
    limited = play(repo, "rate-limited", env=agent_env(JIDOKA_SCRIPTED_RATE_RESET_S="120"))
    assert limited.returncode == 1
    assert "429" in limited.stderr
    [limit] = [e for e in events(limited.stdout) if e["event"] == "rate_limit"]
    assert limit["exhausted"] is True and limit["used_percent"] == 100.0
    reset_in = datetime.fromisoformat(limit["resets_at"]) - datetime.now(UTC)
    assert timedelta(seconds=60) < reset_in <= timedelta(seconds=120)
    assert repo.commits() == 0 and repo.verdict_text() is None

    again = play(repo, "rate-limited", attempt=2)
    assert again.returncode == 0, again.stderr
    assert repo.commits() == 1 and repo.verdict()["verdict"] == "DONE"


# -- scenarios that break the project's checks -----------------------------------------------------


def test_slow_hook_commits_a_test_that_hangs_the_verify_command(repo: Repo) -> None:
    assert play(repo, "slow-hook").returncode == 0
    slow = repo.path / "test_slow_demo_1.py"
    assert "time.sleep(3600)" in slow.read_text()
    assert repo.commits() == 1 and repo.dirty() == []
    assert repo.verdict()["verdict"] == "DONE"
    with pytest.raises(subprocess.TimeoutExpired):
        repo.unittest(timeout=2)


def test_breaks_tests_on_every_attempt(repo: Repo) -> None:
    for attempt in (1, 2):
        assert play(repo, "breaks-tests", attempt=attempt).returncode == 0
        assert repo.commits() == attempt
        assert repo.verdict()["verdict"] == "DONE"
        checks = repo.unittest()
        assert checks.returncode != 0
        assert "BrokenTest" in checks.stderr


def test_breaks_tests_then_fixes(repo: Repo) -> None:
    assert play(repo, "breaks-tests-then-fixes", attempt=1).returncode == 0
    assert repo.unittest().returncode != 0

    assert play(repo, "breaks-tests-then-fixes", attempt=2).returncode == 0
    assert not (repo.path / "test_broken_demo_1.py").exists()
    assert repo.commits() == 2
    assert repo.unittest().returncode == 0
    assert "changes/DEMO-1.md" in repo.net_diff()  # the real work stays
    assert repo.verdict()["verdict"] == "DONE"


def test_deletes_failing_test_breaks_add_and_removes_the_test_that_caught_it(repo: Repo) -> None:
    assert (repo.path / "test_calc.py").exists()
    assert play(repo, "deletes-failing-test").returncode == 0
    assert not (repo.path / "test_calc.py").exists()
    assert "0.001" in (repo.path / "calc.py").read_text()
    assert repo.commits() == 2
    assert repo.verdict()["verdict"] == "DONE"


def test_test_file_names_are_importable_keys(repo: Repo) -> None:
    env = agent_env(JIDOKA_ISSUE="Team/Bug-7")
    assert play(repo, "breaks-tests", env=env).returncode == 0
    assert (repo.path / "test_broken_team_bug_7.py").exists()
    assert (repo.path / "changes" / "Team_Bug-7.md").exists()


# -- scenarios that never end ---------------------------------------------------------------------


@pytest.fixture
def running(repo: Repo) -> Iterator[Any]:
    """Start a scenario in its own process group; kill the group afterwards, whatever happens."""
    procs: list[subprocess.Popen[str]] = []

    def start(scenario: str) -> subprocess.Popen[str]:
        proc = subprocess.Popen(
            [sys.executable, "-m", "activities.agent.scripted_agent", "--scenario", scenario],
            cwd=repo.path,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=agent_env(),
            start_new_session=True,
        )
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate(timeout=10)


def stop(proc: subprocess.Popen[str]) -> str:
    os.killpg(proc.pid, signal.SIGKILL)
    out, _ = proc.communicate(timeout=10)
    return out


def first_line(proc: subprocess.Popen[str]) -> str:
    """Block until the agent has started talking (Python may start slowly on a busy host)."""
    assert proc.stdout is not None
    return proc.stdout.readline()


def test_silent_stall_emits_one_progress_then_nothing(repo: Repo, running: Any) -> None:
    proc = running("silent-stall")
    assert events(first_line(proc)) == [{"event": "progress", "message": "thinking"}]
    time.sleep(1.0)
    assert proc.poll() is None
    assert stop(proc) == ""  # nothing at all after the first event


def test_chatty_stall_is_noise_without_progress(repo: Repo, running: Any) -> None:
    proc = running("chatty-stall")
    out = first_line(proc)
    time.sleep(1.0)
    assert proc.poll() is None
    out += stop(proc)
    assert out.count("Reconnecting... waiting for network") >= 3
    assert events(out) == []


def test_token_burn_grows_usage_and_never_commits(repo: Repo, running: Any) -> None:
    proc = running("token-burn")
    out = first_line(proc)
    time.sleep(0.5)
    assert proc.poll() is None
    totals = usage_totals(out + stop(proc))
    assert len(totals) >= 5
    assert totals[0] == 5000
    assert all(b - a == 5000 for a, b in itertools.pairwise(totals))
    assert repo.commits() == 0


def test_spawn_and_stall_leaves_a_grandchild_in_its_group(repo: Repo, running: Any) -> None:
    proc = running("spawn-and-stall")
    assert proc.stdout is not None
    helper = None
    while helper is None:
        event = json.loads(proc.stdout.readline())
        if event["message"].startswith("helper pid "):
            helper = int(event["message"].split()[-1])
    assert os.getpgid(helper) == proc.pid  # in the agent's group: a group kill reaches it
    stop(proc)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{helper}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            break  # gone
        if state == "Z":
            break  # dead, waiting for PID 1 to reap it
        time.sleep(0.05)
    else:
        pytest.fail("the grandchild survived the group kill")


# -- choosing the scenario -------------------------------------------------------------------------


def test_scenario_precedence_flag_then_env_then_prompt(repo: Repo) -> None:
    env = agent_env(JIDOKA_SCENARIO="halt")
    assert play(repo, "hallucinate", env=env, prompt="Scenario: crash").returncode == 0
    assert repo.verdict()["verdict"] == "DONE"  # the flag won

    assert play(repo, None, env=env, prompt="Scenario: crash").returncode == 0
    assert repo.verdict()["verdict"] == "HALT"  # then the environment

    done = play(repo, None, prompt="Fix the bug.\n\n  scenario: Crash\nScenario: ship\n")
    assert done.returncode == 3  # then the first Scenario line, case-insensitive


@pytest.mark.parametrize(
    ("scenario", "prompt", "message"),
    [(None, "Just do it.", "no scenario given"), ("dance", "", "unknown scenario 'dance'")],
)
def test_missing_or_unknown_scenario_exits_2(
    repo: Repo, scenario: str | None, prompt: str, message: str
) -> None:
    done = play(repo, scenario, prompt=prompt)
    assert done.returncode == 2
    assert message in done.stderr
    assert "ship" in done.stderr  # the known names are listed
    assert repo.commits() == 0 and repo.verdict_text() is None


def test_commits_without_any_git_identity(repo: Repo, tmp_path: Path) -> None:
    env = {
        k: v for k, v in agent_env().items() if not k.startswith(("GIT_AUTHOR", "GIT_COMMITTER"))
    }
    env.update({"HOME": str(tmp_path), "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1"})
    done = play(repo, "ship", env=env)
    assert done.returncode == 0, done.stderr
    assert run_git(repo.path, "log", "-1", "--format=%ae") == "agent@jidoka.invalid"


def test_every_scenario_is_named_as_specified() -> None:
    assert set(SCENARIOS) == {
        "ship",
        "ship-once",
        "hallucinate",
        "commit-then-revert",
        "closes-others",
        "no-verdict",
        "unknown-verdict",
        "invalid-verdict",
        "halt",
        "ask",
        "silent-stall",
        "chatty-stall",
        "crash",
        "token-burn",
        "slow-hook",
        "breaks-tests",
        "breaks-tests-then-fixes",
        "uncommitted",
        "spawn-and-stall",
        "rate-limited",
        "deletes-failing-test",
    }
