"""The line's per-tick re-read of WORKFLOW.md (``reload_workflow_config``): the config travels
back only when it differs from the one the line holds, and "differs" covers what the load
resolves from the file, not just its bytes."""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.config import CONFIG_INVALID, reload_workflow_config
from jidoka.payloads import ReloadWorkflowInput
from tests.support.linekit import make_line


async def reload(path: Path, known: str | None) -> tuple[str, bool]:
    reloaded = await ActivityEnvironment().run(
        reload_workflow_config, ReloadWorkflowInput(path=str(path), known_fingerprint=known)
    )
    return reloaded.fingerprint, reloaded.workflow is not None


async def test_an_unchanged_file_comes_back_as_its_fingerprint_only(tmp_path: Path) -> None:
    kit = make_line(tmp_path)
    fingerprint, sent = await reload(kit.workflow_md, None)
    assert sent
    assert await reload(kit.workflow_md, fingerprint) == (fingerprint, False)
    # Any other fingerprint (a line that continued as new holds none) gets the config.
    assert await reload(kit.workflow_md, "0" * 64) == (fingerprint, True)


async def test_an_edit_comes_back_whole(tmp_path: Path) -> None:
    kit = make_line(tmp_path)
    before, _ = await reload(kit.workflow_md, None)
    kit.workflow_md.write_text(
        kit.workflow_md.read_text().replace("interval_s: 1", "interval_s: 2"), encoding="utf-8"
    )
    after, sent = await reload(kit.workflow_md, before)
    assert sent and after != before


async def test_the_fingerprint_covers_what_the_load_resolves_not_only_the_bytes(
    tmp_path: Path,
) -> None:
    """The same bytes in another folder are another config: relative paths (the board, the
    workspaces, the repository) resolve against the file's folder."""
    first = make_line(tmp_path / "a")
    second = make_line(tmp_path / "b")
    second.workflow_md.write_bytes(first.workflow_md.read_bytes())
    fingerprint, _ = await reload(first.workflow_md, None)
    other, sent = await reload(second.workflow_md, fingerprint)
    assert sent and other != fingerprint


async def test_an_invalid_file_fails_as_the_first_load_does(tmp_path: Path) -> None:
    kit = make_line(tmp_path)
    kit.workflow_md.write_text(kit.workflow_md.read_text().replace("  done_state: Done\n", ""))
    with pytest.raises(ApplicationError) as raised:
        await reload(kit.workflow_md, None)
    assert raised.value.type == CONFIG_INVALID and raised.value.non_retryable
    assert "tracker.done_state" in str(raised.value)
