"""``jidoka check [PATH]``: validate a WORKFLOW.md and print every problem with its key path."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from activities.sandbox import probe
from cli.errors import SubParsers
from jidoka.config import LocalTrackerConfig, SandboxMode
from jidoka.cost import pricing_warnings
from jidoka.judge import config_warnings
from jidoka.models import LoadedWorkflow, Problem
from jidoka.policy import config_risks
from jidoka.workflow_file import WorkflowFileError, env_reference_names, load_workflow


def add_parser(subparsers: SubParsers) -> None:
    parser = subparsers.add_parser(
        "check",
        help="validate a WORKFLOW.md",
        description="Validate a WORKFLOW.md and print every problem with its key path. "
        "Exit 0 when valid, 1 when not.",
    )
    parser.add_argument("path", nargs="?", default="WORKFLOW.md")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.set_defaults(handler=run)


def notes(loaded: LoadedWorkflow) -> list[str]:
    """Things about this machine, not the file: unset variables, missing folders."""
    found: list[str] = []
    for name in env_reference_names(loaded.config):
        if not os.environ.get(name):
            found.append(f"${name} is not set in this environment (workers will need it)")
    tracker = loaded.config.tracker
    if (
        isinstance(tracker, LocalTrackerConfig)
        and "$" not in tracker.board
        and not Path(tracker.board).is_dir()
    ):
        found.append(f"tracker.board folder {tracker.board} does not exist yet")
    if loaded.config.sandbox.mode is SandboxMode.BWRAP and (problem := probe()) is not None:
        found.append(
            f"the sandbox cannot start on this machine ({problem}): agents would end "
            "agent_unavailable"
        )
    return found


def run(args: argparse.Namespace) -> int:
    path: str = args.path
    try:
        loaded = load_workflow(path)
    except WorkflowFileError as error:
        return _report_problems(path, error.problems, as_json=args.json)
    config = loaded.config
    machine_notes = notes(loaded)
    risks = config_risks(config)
    warnings = config_warnings(config) + pricing_warnings(config)
    if args.json:
        print(
            json.dumps(
                {
                    "path": loaded.path,
                    "valid": True,
                    "line": config.line,
                    "problems": [],
                    "notes": machine_notes,
                    "risks": risks,
                    "warnings": warnings,
                }
            )
        )
        return 0
    print(f"ok: {loaded.path}")
    print(
        f"  line {config.line}: tracker {config.tracker.kind.value}, "
        f"agent {config.agent.kind.value}, done state '{config.tracker.done_state}', "
        f"verdicts {', '.join(config.verdicts)}"
    )
    for note in machine_notes:
        print(f"  note: {note}")
    for risk in risks:
        print(f"  risk: {risk}")
    for warning in warnings:
        print(f"  warning: {warning}")
    return 0


def _report_problems(path: str, problems: list[Problem], *, as_json: bool) -> int:
    if as_json:
        print(
            json.dumps(
                {
                    "path": path,
                    "valid": False,
                    "problems": [p.model_dump() for p in problems],
                    "notes": [],
                    "risks": [],
                    "warnings": [],
                }
            )
        )
        return 1
    print(f"invalid: {path} ({len(problems)} problem{'s' if len(problems) != 1 else ''})")
    for problem in problems:
        print(f"  {problem.path}: {problem.message}")
        if problem.hint:
            print(f"      hint: {problem.hint}")
    return 1
