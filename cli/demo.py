"""``jidoka demo`` (what ``make demo`` runs): a fresh copy of examples/demo under .jidoka/demo,
its sample project turned into a git repository, and ``jidoka run --until-idle`` on it.

The demo line halts several times on purpose (a hallucinated success, an agent's HALT, a token
burn, a hook timeout). Each time it prints the halt and the exact commands to resume it; by
default the demo then resumes by itself with a root cause (``--resume-with``), or waits for you
to resume it from another terminal with ``--interactive``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import subprocess
import sys
from pathlib import Path

from cli.errors import CliError, SubParsers
from cli.run import run_line

DEFAULT_ROOT_CAUSE = (
    "demo: each halt comes from the scripted scenario written in the issue; reviewed and accepted"
)


def repository_root() -> Path:
    return Path(__file__).resolve().parents[1]


def add_parser(subparsers: SubParsers) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="run the demo line (examples/demo) until it is idle",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--dir", default=None, help="where to build the demo (default .jidoka/demo)"
    )
    parser.add_argument(
        "--interactive", action="store_true", help="wait for you to resume each halt yourself"
    )
    parser.add_argument("--resume-with", default=DEFAULT_ROOT_CAUSE, metavar="ROOT_CAUSE")
    parser.add_argument("--json", action="store_true", help="print the final summary as JSON")
    parser.add_argument("--port", type=int, default=7233)
    parser.add_argument("--ui-port", type=int, default=8233)
    parser.set_defaults(handler=run)


def prepare(target: Path) -> Path:
    """A fresh demo folder: WORKFLOW.md, the board, a new git repository of the sample project."""
    source = repository_root() / "examples" / "demo"
    if not (source / "WORKFLOW.md").is_file():
        raise CliError(f"the demo lives in a checkout of the repository; {source} not found")
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    shutil.copy2(source / "WORKFLOW.md", target / "WORKFLOW.md")
    shutil.copytree(source / "board", target / "board")
    repo = target / "sample-repo"
    shutil.copytree(source / "sample-repo", repo)
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "Jidoka Demo",
        "GIT_AUTHOR_EMAIL": "demo@jidoka.invalid",
        "GIT_COMMITTER_NAME": "Jidoka Demo",
        "GIT_COMMITTER_EMAIL": "demo@jidoka.invalid",
    }
    for command in (
        ["init", "-q", "-b", "main"],
        ["add", "-A"],
        ["commit", "-q", "-m", "calc: initial"],
    ):
        subprocess.run(["git", *command], cwd=repo, check=True, env=env, capture_output=True)
    return target / "WORKFLOW.md"


def run(args: argparse.Namespace) -> int:
    target = Path(args.dir) if args.dir else Path.cwd() / ".jidoka" / "demo"
    workflow = prepare(target.resolve())
    # Under --json, stdout is the summary document alone: what a person reads goes to stderr.
    say = sys.stderr if args.json else sys.stdout
    print(f"jidoka demo: a fresh line in {workflow.parent}", file=say)
    run_args = argparse.Namespace(
        workflow=str(workflow),
        until_idle=True,
        json=args.json,
        resume_with=None if args.interactive else args.resume_with,
        operator="demo",
        max_resumes=10,
        port=args.port,
        ui_port=args.ui_port,
        wait_when_halted=args.interactive,
    )
    code = asyncio.run(run_line(run_args))
    print(
        "\nThe line's histories stay in "
        f"{workflow.parent / '.jidoka' / 'temporal.db'}. To explore them later:\n"
        f"  jidoka run {workflow}            # the Web UI and a worker again (the line resumes)\n"
        f"  jidoka why DEMO-2 --line demo    # from another terminal while it runs",
        file=say,
    )
    return code
