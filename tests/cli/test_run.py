"""``jidoka run`` as a user runs it: a real subprocess, on the session's dev server or on the
embedded one it starts."""

from __future__ import annotations

import asyncio
import json
import urllib.request
from pathlib import Path

from temporalio.testing import WorkflowEnvironment

from tests.support.cli import cli_env, isolated, jidoka
from tests.support.linekit import make_line
from tests.support.ports import free_port


async def last_scrape(url: str, seen: list[str]) -> None:
    """Scrape ``url`` until cancelled, keeping the last answer: the run's endpoint lives only
    as long as the run."""
    while True:
        try:
            text = await asyncio.to_thread(_read, url)
        except OSError:
            text = None
        if text is not None:
            seen.append(text)
        await asyncio.sleep(0.1)


def _read(url: str) -> str:
    with urllib.request.urlopen(url, timeout=2) as response:
        return response.read().decode()


async def test_run_until_idle_resumes_with_a_root_cause_and_prints_json(
    dev_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    prices = {"house-model": {"input": 1.0, "output": 4.0}}
    kit = make_line(
        tmp_path,
        {"concurrency": {"max_agents": 1}, "pricing": {"model": "house-model", "models": prices}},
    )
    kit.add_issue("R-1", "ship", priority=1)
    kit.add_issue("R-2", "hallucinate", priority=2)
    kit.add_issue("R-3", "ship", priority=3)
    bind = f"127.0.0.1:{free_port()}"
    scrapes: list[str] = []
    scraper = asyncio.create_task(last_scrape(f"http://{bind}/metrics", scrapes))
    try:
        code, out, err = await jidoka(
            "run",
            str(kit.workflow_md),
            "--until-idle",
            "--json",
            "--resume-with",
            "scripted scenario",
            "--operator",
            "ci",
            env=cli_env(dev_env, **isolated(kit), JIDOKA_METRICS_BIND=bind),
        )
    finally:
        scraper.cancel()
    assert code == 0, err
    summary = json.loads(out)
    phases = {i["identifier"]: i["phase"] for i in summary["issues"]}
    assert phases == {"R-1": "shipped", "R-2": "halted", "R-3": "shipped"}
    # Money in the summary: each issue's known cost, none unknown (the model is priced).
    assert summary["currency"] == "USD"
    assert all(i["cost"] > 0 and i["cost_unknown_attempts"] == 0 for i in summary["issues"])
    # The run's own worker exported Jidoka's metrics while it ran, as `jidoka worker` does.
    assert f"metrics on http://{bind}/metrics" in err
    shipped = [
        sum(float(row.split()[-1]) for row in text.splitlines() if row.startswith("jidoka_ships"))
        for text in scrapes
    ]
    assert shipped and max(shipped) == 2, shipped[-3:]
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
