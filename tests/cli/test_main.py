"""The console's entry point: a failure is one line on stderr and a non-zero exit, never a
traceback."""

from __future__ import annotations

from pathlib import Path

from temporalio.testing import WorkflowEnvironment

from tests.support.cli import cli_env, jidoka


async def test_errors_are_one_line(dev_env: WorkflowEnvironment, tmp_path: Path) -> None:
    env = cli_env(dev_env)
    code, _, err = await jidoka("line", "status", "--line", "no-such-line", env=env)
    assert (
        code == 1
        and err.startswith("jidoka: no workflow jidoka-line-no-such-line")
        and "Traceback" not in err
    )
    code, _, err = await jidoka("line", "status", env={**env, "TEMPORAL_ADDRESS": "127.0.0.1:1"})
    assert code == 1 and "Traceback" not in err
    code, _, err = await jidoka(
        "issue", "status", "X-1", "--line", "nope", env={**env, "TEMPORAL_ADDRESS": "127.0.0.1:1"}
    )
    assert code == 1 and "cannot reach Temporal" in err and "Traceback" not in err
