"""The config travels in most activity inputs, so it travels as written: only the keys the file
set, the defaults restored on arrival, nothing lost on the way."""

from __future__ import annotations

import json

from jidoka.config import WorkflowConfig
from jidoka.models import LoadedWorkflow
from jidoka.workflow_file import load_workflow
from tests.support.linekit import base_front_matter
from tests.support.workflow_md import EXAMPLE


def test_a_config_serializes_what_the_file_set_and_round_trips() -> None:
    config = WorkflowConfig.model_validate(base_front_matter("x"))
    sent = json.loads(config.model_dump_json())
    assert "guards" not in sent and "sandbox" in sent  # never set vs set by the file
    assert "claude" not in sent["agent"] and "max_turns" not in sent["budgets"]
    back = WorkflowConfig.model_validate(sent)
    assert back == config
    assert back.budgets.max_turns == 20 and back.guards.loop.max_dispatches == 3


def test_a_loaded_workflow_round_trips_with_what_the_loader_resolved() -> None:
    loaded = load_workflow(EXAMPLE)
    back = LoadedWorkflow.model_validate_json(loaded.model_dump_json())
    assert back == loaded
    # Paths the loader resolved are set by it, so they travel resolved.
    assert back.config.workspace.root == loaded.config.workspace.root
