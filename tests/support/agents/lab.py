"""A line's folder for adapter tests: an origin repository, one issue's workspace on its work
branch, a real WORKFLOW.md, and the ``run_agent`` activity through ``ActivityEnvironment``.

Agents run as ``bash -lc <command>``, and a login shell resets PATH (``/etc/profile`` on
Debian). :meth:`Lab.login_home` builds a HOME whose ``.bash_profile`` puts a folder of fake
executables first on PATH, so tests run the adapters' *default* commands (``codex app-server``,
``gemini -p ...``) against fakes named like the real CLIs.

Agents run in the sandbox, as on a real line: the lab's WORKFLOW.md binds that home, the
``tools`` folder (scripts a test writes) and the fakes read-only, and ``records`` (where fakes
write what they saw) writable; everything else in the lab's folder is out of the agent's sight.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from temporalio.testing import ActivityEnvironment

from activities.agent.run import run_agent
from activities.evidence import gather
from activities.git.gitops import reset_workspace_config
from jidoka.models import AgentRunResult, Issue, LoadedWorkflow, WorkspaceInfo
from jidoka.outcomes import Outcome
from jidoka.payloads import AgentRunInput, EvidenceInput
from jidoka.policy import classify_attempt
from jidoka.workflow_file import load_workflow
from tests.support.agents.codex_install import CACHE as CODEX_CACHE
from tests.support.git import make_origin, run_git
from tests.support.secret_scan import register_secret

AGENTS = Path(__file__).parent
TRANSCRIPTS = AGENTS / "transcripts"
PROMPT = "You are working on {{ issue.identifier }}: {{ issue.title }}\n\n{{ issue.description }}"
TRACKER_SECRET_NAME = "LINEAR_TEST_TRACKER_KEY"
"""A tracker's own ``api_key`` reference (not one of the default names): withheld too."""
GITHUB_TOKEN = register_secret("ghp_AgentTestOnlyToken0123456789")
TRACKER_KEY = register_secret("lin_api_AgentTestOnlyKey0123456789")
"""The worker's secrets in the ``tracker_secrets`` fixture: no agent may ever see them."""


@dataclass
class Lab:
    root: Path
    workspace: WorkspaceInfo
    clocks: Mapping[str, Any] = field(
        default_factory=lambda: {"stall_timeout_s": 5, "silence_timeout_s": 10}
    )
    """The agent's clocks, unless a test's ``agent`` section sets them."""
    description: str = "Write the change note."
    """The issue's description (the scripted agent reads its scenario from it)."""
    wall_s: float = 60.0

    @property
    def path(self) -> Path:
        return Path(self.workspace.path)

    @property
    def records(self) -> Path:
        """Writable by agents: fakes record what they received here."""
        return self.root / "records"

    @property
    def tools(self) -> Path:
        """Readable by agents: scripts a test writes for its agent."""
        return self.root / "tools"

    def sandbox(self, **settings: Any) -> dict[str, Any]:
        return {
            "read_only": [
                str(self.root / "home"),
                str(self.tools),
                str(AGENTS),
                str(CODEX_CACHE),
            ],
            "writable": [str(self.records)],
            **settings,
        }

    def workflow(
        self,
        agent: Mapping[str, Any],
        *,
        linear: bool = False,
        prompt: str = PROMPT,
        sandbox: Mapping[str, Any] | None = None,
    ) -> LoadedWorkflow:
        states: dict[str, Any] = {
            "active_states": ["Todo", "In Progress"],
            "paused_states": ["Awaiting Answers"],
            "terminal_states": ["Done", "Cancelled"],
            "done_state": "Done",
        }
        tracker: dict[str, Any] = (
            {
                "kind": "linear",
                "project_slug": "demo",
                "api_key": f"${TRACKER_SECRET_NAME}",
                **states,
            }
            if linear
            else {"kind": "local", "board": "./board", **states}
        )
        front = {
            "line": "test",
            "tracker": tracker,
            "workspace": {"root": "./workspaces", "repo": "./origin"},
            "agent": {**self.clocks, **agent},
            "verdicts": {"DONE": "Done", "AWAITING_ANSWERS": "Awaiting Answers"},
            "sandbox": dict(sandbox) if sandbox is not None else self.sandbox(),
        }
        path = self.root / "WORKFLOW.md"
        path.write_text(f"---\n{yaml.safe_dump(front)}---\n{prompt}\n")
        return load_workflow(path)

    def input(self, workflow: LoadedWorkflow, **overrides: Any) -> AgentRunInput:
        fields: dict[str, Any] = {
            "workflow": workflow,
            "issue": Issue(
                id="issue-id-1",
                identifier="DEMO-1",
                title="Add a change note",
                description=self.description,
                state="In Progress",
            ),
            "attempt": 1,
            "workspace": self.workspace,
            "budget_tokens": 1_000_000,
            "budget_tokens_before_first_commit": None,
            "wall_s": self.wall_s,
            "max_turns": 3,
        }
        fields.update(overrides)
        return AgentRunInput(**fields)

    async def run(
        self, input: AgentRunInput, env: ActivityEnvironment | None = None
    ) -> AgentRunResult:
        """The ``run_agent`` activity, in ``env`` (a fresh ``ActivityEnvironment`` if none)."""
        return await (env or ActivityEnvironment()).run(run_agent, input)

    def outcome(self, result: AgentRunResult, config: Any) -> Outcome:
        """How the workflow would judge this attempt, from the evidence in the workspace."""
        return classify_attempt(result, gather(EvidenceInput(workspace=self.workspace)), config)

    def transcript(self, result: AgentRunResult) -> list[dict[str, Any]]:
        assert result.transcript_path is not None
        lines = Path(result.transcript_path).read_text().splitlines()
        return [json.loads(line) for line in lines]

    def login_home(self, executables: Mapping[str, str]) -> Path:
        """A HOME whose login shell finds ``executables`` (name -> script text) first."""
        home = self.root / "home"
        bin_dir = home / "bin"
        bin_dir.mkdir(parents=True, exist_ok=True)
        for name, script in executables.items():
            tool = bin_dir / name
            tool.write_text(script)
            tool.chmod(0o755)
        (home / ".bash_profile").write_text(f'export PATH="{bin_dir}:$PATH"\n')
        return home

    def python_tool(self, script: Path) -> str:
        """A shell script that runs ``script`` with this interpreter, passing its argv on."""
        return f'#!/bin/bash\nexec "{sys.executable}" "{script}" "$@"\n'


def make_lab(tmp_path: Path, **settings: Any) -> Lab:
    """``settings``: :class:`Lab` fields (``clocks``, ``description``, ``wall_s``)."""
    origin = make_origin(tmp_path / "origin", with_tests=False)
    for folder in ("board", "records", "tools"):
        (tmp_path / folder).mkdir()
    workspace = tmp_path / "workspaces" / "DEMO-1"
    workspace.parent.mkdir()
    run_git(tmp_path, "clone", "-q", str(origin), str(workspace))
    run_git(workspace, "checkout", "-q", "-b", "jidoka/DEMO-1")
    # Like the workspace activity: Jidoka's own files never show up as work.
    with (workspace / ".git" / "info" / "exclude").open("a") as exclude:
        exclude.write(".jidoka/\n")
    reset_workspace_config(str(workspace), str(origin))  # the workspace's config is Jidoka's
    info = WorkspaceInfo(
        path=str(workspace),
        key="DEMO-1",
        branch="jidoka/DEMO-1",
        base_sha=run_git(workspace, "rev-parse", "HEAD"),
        host_queue="test-host",
    )
    return Lab(root=tmp_path, workspace=info, **settings)


def records(path: Path) -> list[dict[str, Any]]:
    """A fake's record file: one JSON object per line."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
