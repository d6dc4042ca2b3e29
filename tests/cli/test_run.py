"""``jidoka run`` as a user runs it: a real subprocess, on the session's dev server or on the
embedded one it starts."""

from __future__ import annotations

import json
from pathlib import Path

from temporalio.testing import WorkflowEnvironment

from tests.support.cli import cli_env, isolated, jidoka
from tests.support.linekit import make_line
from tests.support.ports import free_port


async def test_run_until_idle_resumes_with_a_root_cause_and_prints_json(
    dev_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    kit = make_line(tmp_path, {"concurrency": {"max_agents": 1}})
    kit.add_issue("R-1", "ship", priority=1)
    kit.add_issue("R-2", "hallucinate", priority=2)
    kit.add_issue("R-3", "ship", priority=3)
    code, out, err = await jidoka(
        "run",
        str(kit.workflow_md),
        "--until-idle",
        "--json",
        "--resume-with",
        "scripted scenario",
        "--operator",
        "ci",
        env=cli_env(dev_env, **isolated(kit)),
    )
    assert code == 0, err
    summary = json.loads(out)
    phases = {i["identifier"]: i["phase"] for i in summary["issues"]}
    assert phases == {"R-1": "shipped", "R-2": "halted", "R-3": "shipped"}
    halts = summary["line"]["halts"]
    assert halts[0]["category"] == "no_progress" and halts[0]["root_cause"] == "scripted scenario"
    assert halts[0]["resolved_by"] == "ci"
    assert "THE LINE STOPPED" in err and "jidoka line resume" in err  # progress went to stderr


async def test_run_until_idle_stops_at_a_halt_and_says_how_to_resume(
    dev_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    kit = make_line(tmp_path)
    kit.add_issue("S-1", "halt")
    code, out, _ = await jidoka(
        "run", str(kit.workflow_md), "--until-idle", env=cli_env(dev_env, **isolated(kit))
    )
    assert code == 3
    assert "THE LINE STOPPED" in out
    assert (
        f"temporal workflow update execute --workflow-id jidoka-line-{kit.line} --name resume"
        in out
    )
    assert "S-1 is halted" in out and "jidoka issue decide S-1" in out


async def test_run_starts_the_embedded_server_when_no_address_is_set(tmp_path: Path) -> None:
    kit = make_line(tmp_path)
    kit.add_issue("E-1", "ship")
    port, ui_port = free_port(), free_port()
    code, out, err = await jidoka(
        "run",
        str(kit.workflow_md),
        "--until-idle",
        "--port",
        str(port),
        "--ui-port",
        str(ui_port),
        env=cli_env(None, **isolated(kit)),
        timeout=180,
    )
    assert code == 0, out + err
    assert "embedded dev server" in out and f"http://localhost:{ui_port}" in out
    assert (kit.root / ".jidoka" / "temporal.db").is_file()
    assert kit.state_of("E-1") == "Done"
