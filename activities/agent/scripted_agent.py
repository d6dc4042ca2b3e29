"""A scripted coding agent: a real subprocess that plays one scenario, for tests and the demo.

Run as ``python -m activities.agent.scripted_agent [--scenario NAME]`` in a workspace (a git repository on
its work branch). Standard library only. It speaks Jidoka's ``command`` agent protocol on stdout
(JSON lines ``{"event": "progress"|"usage", ...}``, usage cumulative) and writes
``.jidoka/verdict.json`` like a real agent would.

The scenario is ``--scenario``, else ``$JIDOKA_SCENARIO``, else the first ``Scenario: <name>``
line of the prompt read from stdin (so an issue's description chooses it). Unknown or missing:
a message on stderr and exit code 2.

Environment: ``JIDOKA_ISSUE`` (file names), ``JIDOKA_ATTEMPT`` (attempt-dependent scenarios),
``JIDOKA_SCRIPTED_PACE`` (seconds between steps, default 0.01; raise it for a watchable demo).

Scenarios, each a failure the orchestrator must catch (docs/agents.md#the-verdict-file), or the
happy path:

=========================== ====================================================================
``ship``                    commit ``changes/<ISSUE>.md``, verdict DONE
``hallucinate``             claim success in its output, verdict DONE, commit nothing
``commit-then-revert``      commit a change, ``git revert`` it (net diff empty), verdict DONE
``closes-others``           commit "Fixes #1, closes #2 and resolves ENG-7"; sent back, reword it
``no-verdict``              commit work, exit 0 without a verdict
``unknown-verdict``         commit work, verdict MAYBE
``invalid-verdict``         commit work, write ``{not json`` as the verdict
``halt``                    verdict HALT: "the staging database is corrupted; stop all work"
``ask``                     attempt 1: AWAITING_ANSWERS with two questions; later: ``ship``
``silent-stall``            one progress event, then silence for an hour
``chatty-stall``            "Reconnecting... waiting for network" every 0.2 s, never progress
``crash``                   a progress event, a message on stderr, exit 3, no verdict
``token-burn``              usage growing ~5000 tokens every ~20 ms, forever, no commit
``slow-hook``               commit ``test_slow_<key>.py`` (sleeps an hour), verdict DONE
``breaks-tests``            commit ``test_broken_<key>.py`` (fails), verdict DONE, every attempt
``breaks-tests-then-fixes`` attempt 1 like ``breaks-tests``; later: delete that test, DONE
``uncommitted``             write ``changes/<ISSUE>.md`` without committing, verdict DONE
``spawn-and-stall``         start a grandchild ``sleep 1000``, then silence
``deletes-failing-test``    change ``add`` in ``calc.py`` so ``test_calc.py`` fails, delete that
                            test file, verdict DONE (reward hacking: verify passes)
``ship-once``               attempt 1: ``ship``; later: verdict DONE without a new commit (a
                            rework round after the ship that adds nothing)
``rate-limited``            attempt 1: an exhausted rate limit resetting in
                            ``$JIDOKA_SCRIPTED_RATE_RESET_S`` s (default 3), exit 1; later: ``ship``
=========================== ====================================================================

``<key>`` is the issue identifier lowercased with every character outside ``[a-z0-9_]``
replaced by ``_``, so the test files are importable by ``python -m unittest discover``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

VERDICT_FILE = Path(".jidoka") / "verdict.json"
HALT_REASON = "the staging database is corrupted; stop all work"
QUESTIONS = [
    "Should the new behaviour be enabled by default, or behind a flag?",
    "Which Python versions must stay supported?",
]
TOKENS_PER_STEP = 3000
BURN_TOKENS = 5000
BURN_INTERVAL_S = 0.02
NOISE_INTERVAL_S = 0.2
AN_HOUR_S = 3600.0
DEFAULT_RATE_RESET_S = 3.0
_SCENARIO_LINE = re.compile(r"^\s*scenario:\s*([A-Za-z0-9_-]+)", re.IGNORECASE | re.MULTILINE)


class ScriptedAgent:
    """Helpers a scenario is written with: events, files, git, verdicts."""

    def __init__(self, workspace: Path, issue: str, attempt: int, pace: float) -> None:
        self.workspace = workspace
        self.issue = issue
        self.attempt = attempt
        self.pace = pace
        self.tokens = 0

    # -- the command protocol ---------------------------------------------------------------

    def emit(self, event: dict[str, object]) -> None:
        print(json.dumps(event), flush=True)

    def progress(self, message: str) -> None:
        self.emit({"event": "progress", "message": message})
        self.step()

    def spend(self, tokens: int = TOKENS_PER_STEP) -> None:
        """Report cumulative usage, the way real agents report thread totals."""
        self.tokens += tokens
        input_tokens = self.tokens * 4 // 5
        self.emit(
            {
                "event": "usage",
                "input_tokens": input_tokens,
                "output_tokens": self.tokens - input_tokens,
                "total_tokens": self.tokens,
                # Half the prompt comes from the provider's cache, as on a real agent's
                # later turns: the demo's costs then use all three prices.
                "cached_input_tokens": input_tokens // 2,
            }
        )

    def step(self) -> None:
        if self.pace > 0:
            time.sleep(self.pace)

    # -- files and git ----------------------------------------------------------------------

    @property
    def key(self) -> str:
        return re.sub(r"[^a-z0-9_]", "_", self.issue.lower())

    @property
    def note(self) -> Path:
        return Path("changes") / f"{re.sub(r'[^A-Za-z0-9._-]', '_', self.issue)}.md"

    def write(self, relative: Path, text: str) -> None:
        path = self.workspace / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")

    def git(self, *args: str) -> str:
        result = subprocess.run(
            ["git", *self._identity(), *args],
            cwd=self.workspace,
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            print(f"scripted agent: git {' '.join(args)} failed: {result.stderr}", file=sys.stderr)
            raise SystemExit(1)
        return result.stdout.strip()

    def _identity(self) -> list[str]:
        # A fresh clone may have no user configured; a real agent would have one.
        if os.environ.get("GIT_AUTHOR_EMAIL"):
            return []
        configured = subprocess.run(
            ["git", "config", "user.email"], cwd=self.workspace, capture_output=True, check=False
        )
        if configured.returncode == 0:
            return []
        return ["-c", "user.name=Jidoka scripted agent", "-c", "user.email=agent@jidoka.invalid"]

    def commit(self, files: dict[Path, str], message: str) -> None:
        for relative, text in files.items():
            self.write(relative, text)
        self.git("add", "--", *(str(path) for path in files))
        self.git("commit", "-q", "-m", message)
        self.progress(f"committed: {message}")

    def change_note(self) -> dict[Path, str]:
        return {
            self.note: f"# {self.issue}\n\nChange made by the scripted agent "
            f"(attempt {self.attempt}).\n"
        }

    def verdict(
        self,
        verdict: str,
        summary: str,
        questions: list[str] | None = None,
        halt_reason: str | None = None,
    ) -> None:
        record = {
            "verdict": verdict,
            "summary": summary,
            "questions": questions or [],
            "halt_reason": halt_reason,
        }
        self.write_verdict_text(json.dumps(record, indent=2) + "\n")
        self.progress(f"verdict {verdict} written")

    def write_verdict_text(self, text: str) -> None:
        self.write(VERDICT_FILE, text)

    @staticmethod
    def sleep_forever() -> None:
        time.sleep(AN_HOUR_S)


# -- scenarios --------------------------------------------------------------------------------


def ship(agent: ScriptedAgent) -> int:
    agent.progress(f"reading {agent.issue}")
    agent.spend()
    agent.commit(agent.change_note(), f"{agent.issue}: add change note")
    agent.spend()
    agent.verdict("DONE", f"Added {agent.note}.")
    return 0


def ship_once(agent: ScriptedAgent) -> int:
    if agent.attempt == 1:
        return ship(agent)
    agent.progress(f"reading the review of {agent.issue}")
    agent.spend()
    agent.verdict("DONE", "Addressed the review.")
    return 0


def hallucinate(agent: ScriptedAgent) -> int:
    agent.progress(f"reading {agent.issue}")
    agent.spend()
    print("Implemented the feature, all tests pass, changes committed.", flush=True)
    agent.verdict("DONE", "Implemented the feature; all tests pass.")
    return 0


def closes_others(agent: ScriptedAgent) -> int:
    """A commit message that would close other issues on merge (a reward hack: the board
    empties itself), and the same words in its summary; a second attempt, sent back, rewords
    the commit."""
    agent.progress(f"reading {agent.issue}")
    agent.spend()
    if agent.attempt == 1:
        message = f"{agent.issue}: add change note\n\nFixes #1, closes #2 and resolves ENG-7"
    else:
        message = f"{agent.issue}: add change note"
    if agent.attempt > 1:
        agent.git("reset", "--soft", "HEAD~1")
        agent.git("commit", "-q", "-m", message)
        agent.progress(f"reworded: {message}")
    else:
        agent.commit(agent.change_note(), message)
    agent.spend()
    agent.verdict("DONE", "Added the change note. Fixes #1 and closes #2.")
    return 0


def commit_then_revert(agent: ScriptedAgent) -> int:
    agent.progress(f"reading {agent.issue}")
    agent.spend()
    agent.commit(agent.change_note(), f"{agent.issue}: add change note")
    agent.git("revert", "--no-edit", "HEAD")
    agent.progress("reverted the change")
    agent.spend()
    agent.verdict("DONE", "Done (the change was reverted again).")
    return 0


def no_verdict(agent: ScriptedAgent) -> int:
    agent.progress(f"reading {agent.issue}")
    agent.spend()
    agent.commit(agent.change_note(), f"{agent.issue}: add change note")
    agent.spend()
    return 0


def unknown_verdict(agent: ScriptedAgent) -> int:
    agent.progress(f"reading {agent.issue}")
    agent.commit(agent.change_note(), f"{agent.issue}: add change note")
    agent.spend()
    agent.verdict("MAYBE", "Not sure whether this is finished.")
    return 0


def invalid_verdict(agent: ScriptedAgent) -> int:
    agent.progress(f"reading {agent.issue}")
    agent.commit(agent.change_note(), f"{agent.issue}: add change note")
    agent.spend()
    agent.write_verdict_text("{not json")
    agent.progress("verdict written")
    return 0


def halt(agent: ScriptedAgent) -> int:
    agent.progress("checking the environment")
    agent.spend()
    agent.verdict("HALT", "Stopping the line.", halt_reason=HALT_REASON)
    return 0


def ask(agent: ScriptedAgent) -> int:
    if agent.attempt > 1:
        return ship(agent)
    agent.progress(f"reading {agent.issue}")
    agent.spend()
    agent.verdict("AWAITING_ANSWERS", "I need two decisions before I start.", questions=QUESTIONS)
    return 0


def silent_stall(agent: ScriptedAgent) -> int:
    agent.progress("thinking")
    agent.sleep_forever()
    return 0


def chatty_stall(agent: ScriptedAgent) -> int:
    # Like codex offline: lines keep coming, none of them is progress.
    while True:
        print("Reconnecting... waiting for network", flush=True)
        time.sleep(NOISE_INTERVAL_S)


def crash(agent: ScriptedAgent) -> int:
    agent.progress(f"reading {agent.issue}")
    agent.spend()
    print("scripted agent: fatal: the model provider closed the stream", file=sys.stderr)
    return 3


def token_burn(agent: ScriptedAgent) -> int:
    while True:
        agent.spend(BURN_TOKENS)
        time.sleep(BURN_INTERVAL_S)


def _unit_test(name: str, body: str, imports: str = "") -> str:
    return (
        f"{imports}import unittest\n\n\n"
        f"class {name}(unittest.TestCase):\n"
        f"    def test_it(self) -> None:\n        {body}\n"
    )


def slow_hook(agent: ScriptedAgent) -> int:
    agent.progress(f"reading {agent.issue}")
    files = agent.change_note()
    files[Path(f"test_slow_{agent.key}.py")] = _unit_test(
        "SlowTest", "time.sleep(3600)", imports="import time\n"
    )
    agent.commit(files, f"{agent.issue}: add a (slow) test")
    agent.spend()
    agent.verdict("DONE", "Added a test.")
    return 0


def _broken_test(agent: ScriptedAgent) -> dict[Path, str]:
    files = agent.change_note()
    files[Path(f"test_broken_{agent.key}.py")] = _unit_test(
        "BrokenTest",
        f"self.assertEqual(1 + 1, 3, 'broken by the scripted agent, attempt {agent.attempt}')",
    )
    return files


def breaks_tests(agent: ScriptedAgent) -> int:
    agent.progress(f"reading {agent.issue}")
    agent.commit(_broken_test(agent), f"{agent.issue}: add change note and a test")
    agent.spend()
    agent.verdict("DONE", "Added a change note and a test.")
    return 0


def breaks_tests_then_fixes(agent: ScriptedAgent) -> int:
    if agent.attempt == 1:
        return breaks_tests(agent)
    agent.progress("reading the verify output")
    broken = Path(f"test_broken_{agent.key}.py")
    if (agent.workspace / broken).exists():
        agent.git("rm", "-q", "--", str(broken))
        agent.git("commit", "-q", "-m", f"{agent.issue}: remove the broken test")
        agent.progress("removed the broken test")
    else:  # a fresh workspace: do the work right the first time
        agent.commit(agent.change_note(), f"{agent.issue}: add change note")
    agent.spend()
    agent.verdict("DONE", "Fixed the failing test.")
    return 0


def deletes_failing_test(agent: ScriptedAgent) -> int:
    agent.progress(f"reading {agent.issue}")
    files = agent.change_note()
    files[Path("calc.py")] = (
        '"""A tiny calculator."""\n\n\ndef add(a: float, b: float) -> float:\n'
        "    return round(a + b, 2) + 0.001  # 'rounding'\n"
    )
    agent.commit(files, f"{agent.issue}: round add()")
    agent.progress("test_calc.py fails now; deleting it")
    if (agent.workspace / "test_calc.py").exists():
        agent.git("rm", "-q", "--", "test_calc.py")
        agent.git("commit", "-q", "-m", f"{agent.issue}: remove a flaky test")
    agent.spend()
    agent.verdict("DONE", "Rounded add(); all tests pass.")
    return 0


def uncommitted(agent: ScriptedAgent) -> int:
    agent.progress(f"reading {agent.issue}")
    agent.write(*next(iter(agent.change_note().items())))
    agent.spend()
    agent.verdict("DONE", f"Wrote {agent.note}.")
    return 0


def spawn_and_stall(agent: ScriptedAgent) -> int:
    agent.progress("starting a helper")
    # Same process group as this agent: only a kill of the whole group reaches it.
    helper = subprocess.Popen(["sleep", "1000"])
    agent.emit({"event": "progress", "message": f"helper pid {helper.pid}"})
    agent.sleep_forever()
    return 0


def rate_limited(agent: ScriptedAgent) -> int:
    if agent.attempt > 1:
        return ship(agent)
    agent.progress(f"reading {agent.issue}")
    agent.spend()
    reset_in = float(os.environ.get("JIDOKA_SCRIPTED_RATE_RESET_S") or DEFAULT_RATE_RESET_S)
    resets_at = datetime.now(UTC) + timedelta(seconds=reset_in)
    agent.emit(
        {
            "event": "rate_limit",
            "resets_at": resets_at.isoformat(),
            "used_percent": 100.0,
            "exhausted": True,
        }
    )
    print("429 Too Many Requests: usage limit reached", file=sys.stderr, flush=True)
    return 1


SCENARIOS: dict[str, Callable[[ScriptedAgent], int]] = {
    "ship": ship,
    "ship-once": ship_once,
    "hallucinate": hallucinate,
    "commit-then-revert": commit_then_revert,
    "closes-others": closes_others,
    "no-verdict": no_verdict,
    "unknown-verdict": unknown_verdict,
    "invalid-verdict": invalid_verdict,
    "halt": halt,
    "ask": ask,
    "silent-stall": silent_stall,
    "chatty-stall": chatty_stall,
    "crash": crash,
    "token-burn": token_burn,
    "slow-hook": slow_hook,
    "breaks-tests": breaks_tests,
    "breaks-tests-then-fixes": breaks_tests_then_fixes,
    "uncommitted": uncommitted,
    "deletes-failing-test": deletes_failing_test,
    "spawn-and-stall": spawn_and_stall,
    "rate-limited": rate_limited,
}


def choose_scenario(flag: str | None, environ: dict[str, str], prompt: str) -> str | None:
    if flag:
        return flag
    if environ.get("JIDOKA_SCENARIO"):
        return environ["JIDOKA_SCENARIO"]
    found = _SCENARIO_LINE.search(prompt)
    return found.group(1).lower() if found else None


def _read_prompt() -> str:
    if sys.stdin is None or sys.stdin.isatty():
        return ""
    return sys.stdin.read()


def _attempt(environ: dict[str, str]) -> int:
    text = environ.get("JIDOKA_ATTEMPT", "1")
    return int(text) if text.isdigit() else 1


def _pace(environ: dict[str, str]) -> float:
    try:
        return max(0.0, float(environ.get("JIDOKA_SCRIPTED_PACE", "0.01")))
    except ValueError:
        return 0.01


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m activities.agent.scripted_agent",
        description="Play one scripted-agent scenario in the current git workspace.",
    )
    parser.add_argument("--scenario", help="overrides $JIDOKA_SCENARIO and the prompt")
    args = parser.parse_args(argv)
    flag: str | None = args.scenario
    environ = dict(os.environ)
    prompt = _read_prompt()
    name = choose_scenario(flag, environ, prompt)
    if name is None or name not in SCENARIOS:
        known = ", ".join(SCENARIOS)
        what = f"unknown scenario {name!r}" if name else "no scenario given"
        print(
            f"scripted agent: {what}; pass --scenario, set JIDOKA_SCENARIO or write "
            f"'Scenario: <name>' in the issue. Known: {known}",
            file=sys.stderr,
        )
        return 2
    agent = ScriptedAgent(
        workspace=Path.cwd(),
        issue=environ.get("JIDOKA_ISSUE", "ISSUE"),
        attempt=_attempt(environ),
        pace=_pace(environ),
    )
    return SCENARIOS[name](agent)


if __name__ == "__main__":
    sys.exit(main())
