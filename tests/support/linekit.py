"""Builds real production lines for tests: a WORKFLOW.md, a local board, an origin repository
(a tiny Python project whose own unittest suite is the ``verify`` hook), all in a tmp folder."""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import re
import subprocess
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

import yaml
from temporalio.client import Client, WorkflowHandle
from temporalio.service import RPCError, RPCStatusCode

from activities.workspace import HostIdentity
from cli.line_view import read_line_status
from jidoka.keys import issue_workflow_id, line_workflow_id, workspace_key
from jidoka.outcomes import OperatorDecision, Phase
from jidoka.payloads import (
    DecideRequest,
    IssueResult,
    IssueStatus,
    IssueWorkflowInput,
    LineStatus,
    LineWorkflowInput,
    ResumeRequest,
    ResumeResult,
)
from tests.support.git import make_origin, run_git
from tests.support.workerproc import TAG_VAR
from worker import WorkerSettings, running_worker
from workflows.issue import IssueWorkflow
from workflows.line import LineWorkflow

T = TypeVar("T")

VERIFY = '"$JIDOKA_PYTHON" -m unittest discover -q'


def base_front_matter(line: str) -> dict[str, Any]:
    return {
        "line": line,
        "tracker": {
            "kind": "local",
            "board": "./board",
            "active_states": ["Todo", "In Progress"],
            "working_state": "In Progress",
            "paused_states": ["Awaiting Answers"],
            "terminal_states": ["Done", "Cancelled"],
            "done_state": "Done",
        },
        "workspace": {"root": "./workspaces", "repo": "./origin", "base_branch": "main"},
        "hooks": {"verify": VERIFY, "timeout_s": 10},
        "agent": {
            "kind": "scripted",
            "stall_timeout_s": 2,
            "silence_timeout_s": 6,
            "turn_timeout_s": 30,
        },
        "verdicts": {"DONE": "Done", "AWAITING_ANSWERS": "Awaiting Answers"},
        "budgets": {
            "max_attempts": 2,
            "max_continuations": 1,
            "max_tokens": 200_000,
            "max_tokens_before_first_commit": 30_000,
        },
        "backoff": {"base_s": 1, "max_s": 2, "continuation_s": 0},
        "concurrency": {"max_agents": 4},
        "polling": {"interval_s": 1},
        "timeouts": {"heartbeat_s": 5, "host_start_s": 10},
        # Agents see no variable of the worker's unless passed: the tag lets a test find the
        # processes a line started, sandboxed ones included.
        "sandbox": {"pass_env": [TAG_VAR]},
    }


def deep_merge(base: dict[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    merged = copy.deepcopy(base)
    for key, value in overrides.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)  # type: ignore[arg-type]
        elif value is None:
            merged.pop(key, None)
        else:
            merged[key] = value
    return merged


@dataclass
class LineKit:
    root: Path
    line: str
    front_matter: dict[str, Any]
    prompt: str = "Work on {{ issue.identifier }}: {{ issue.title }}\n\n{{ issue.description }}\n"

    @property
    def workflow_md(self) -> Path:
        return self.root / "WORKFLOW.md"

    @property
    def board(self) -> Path:
        return self.root / "board"

    @property
    def origin(self) -> Path:
        return self.root / "origin"

    def write(self) -> None:
        text = "---\n" + yaml.safe_dump(self.front_matter, sort_keys=False) + "---\n" + self.prompt
        self.workflow_md.write_text(text)

    def add_issue(
        self,
        identifier: str,
        scenario: str,
        *,
        state: str = "Todo",
        title: str | None = None,
        priority: int | None = None,
        labels: list[str] | None = None,
        blocked_by: list[str] | None = None,
        created_at: str | None = None,
    ) -> Path:
        meta: dict[str, Any] = {"title": title or f"{scenario} work", "state": state}
        if priority is not None:
            meta["priority"] = priority
        if labels:
            meta["labels"] = labels
        if blocked_by:
            meta["blocked_by"] = blocked_by
        if created_at:
            meta["created_at"] = created_at
        path = self.board / f"{identifier}.md"
        path.write_text(
            "---\n" + yaml.safe_dump(meta, sort_keys=False) + f"---\nScenario: {scenario}\n"
        )
        return path

    def issue_text(self, identifier: str) -> str:
        return (self.board / f"{identifier}.md").read_text()

    def state_of(self, identifier: str) -> str:
        text = self.issue_text(identifier)
        front = text.split("---", 2)[1]
        return str(yaml.safe_load(front)["state"])

    def set_state(self, identifier: str, state: str) -> None:
        """A person moves the issue to ``state`` by editing its file."""
        path = self.board / f"{identifier}.md"
        text = path.read_text()
        path.write_text(text.replace(f"state: {self.state_of(identifier)}", f"state: {state}", 1))

    def workspace(self, identifier: str) -> Path:
        return self.root / "workspaces" / workspace_key(identifier)

    def workflow_id(self, identifier: str) -> str:
        return issue_workflow_id(self.line, workspace_key(identifier))


KITS: list[LineKit] = []
"""Every line built by this test session, for the after-test proof check (conftest)."""

_SHIP_CLAIM = re.compile(
    r"branch `([^`]+)`: \d+ commit\(s\) beyond `([0-9a-f]{7,40})`, tip `([0-9a-f]{7,40})`"
    r"(, pushed to )?.*?\n- verify: (?:passed at `([0-9a-f]{7,40})`)?",
    re.DOTALL,
)


def unproven_ships(kit: LineKit) -> list[str]:
    """Every "shipped" comment on the board whose proof does not hold.

    The claim names a branch, a base and a tip; the tip must exist (in the origin it was
    pushed to, or in the issue's workspace), be at least one commit beyond the base, and change
    something outside ``.jidoka/``. Pushed, the last ship of a branch is origin's branch tip.
    Verified, it was at that very tip. Anything else is a
    closed issue without proof: the product's worst bug.
    """
    problems: list[str] = []
    if not kit.board.is_dir():
        return problems
    for card in sorted(kit.board.glob("*.md")):
        claims = _SHIP_CLAIM.findall(card.read_text(errors="replace"))
        for index, (branch, base, tip, pushed, verified) in enumerate(claims):
            where = [kit.origin, kit.workspace(card.stem)]
            repo = next((r for r in where if _has_commit(r, tip)), None)
            if repo is None:
                problems.append(f"{card.name}: shipped tip {tip} exists nowhere")
                continue
            ahead = int(run_git(repo, "rev-list", "--count", f"{base}..{tip}"))
            changed = run_git(
                repo, "diff", "--name-only", base, tip, "--", ".", ":(exclude).jidoka"
            )
            if ahead < 1 or not changed:
                problems.append(
                    f"{card.name}: shipped {base}..{tip} has {ahead} commit(s), diff {changed!r}"
                )
            if verified and verified != tip:
                problems.append(f"{card.name}: shipped {tip} but verify passed at {verified}")
            if pushed:
                problems += _pushed_problems(
                    kit, card.name, branch, tip, last=index == len(claims) - 1
                )
    return problems


def _pushed_problems(kit: LineKit, card: str, branch: str, tip: str, *, last: bool) -> list[str]:
    """The last ship of a branch is origin's tip of it. (An earlier ship's branch may have been
    rewritten since by people, so only its commits' existence is checked.)"""
    if not last:
        return []
    found = subprocess.run(
        ["git", "rev-parse", "--verify", "-q", f"refs/heads/{branch}"],
        cwd=kit.origin,
        capture_output=True,
        text=True,
        check=False,
    )
    origin_tip = found.stdout.strip()
    if not origin_tip:
        return [f"{card}: shipped {tip} to {branch}, which origin does not have"]
    if origin_tip != tip:
        return [f"{card}: shipped {tip} but origin's {branch} is {origin_tip}"]
    return []


def _has_commit(repo: Path, sha: str) -> bool:
    if not (repo / ".git").exists() and not (repo / "HEAD").exists():
        return False
    found = subprocess.run(
        ["git", "cat-file", "-e", f"{sha}^{{commit}}"], cwd=repo, capture_output=True, check=False
    )
    return found.returncode == 0


def make_line(tmp_path: Path, overrides: Mapping[str, Any] | None = None) -> LineKit:
    line = f"t{uuid.uuid4().hex[:8]}"
    kit = LineKit(root=tmp_path / "line", line=line, front_matter=base_front_matter(line))
    KITS.append(kit)
    kit.root.mkdir(parents=True)
    kit.board.mkdir()
    make_origin(kit.origin)
    if overrides:
        kit.front_matter = deep_merge(kit.front_matter, overrides)
        kit.line = str(kit.front_matter["line"])
    kit.write()
    return kit


@dataclass
class Factory:
    """A worker serving a unique task queue and host, for one test."""

    client: Client
    task_queue: str
    host: HostIdentity

    async def start_issue(
        self, kit: LineKit, identifier: str, *, line_workflow_id: str | None = None
    ) -> WorkflowHandle[IssueWorkflow, IssueResult]:
        return await self.client.start_workflow(
            IssueWorkflow.run,
            IssueWorkflowInput(
                workflow_path=str(kit.workflow_md),
                issue_id=identifier,
                line_workflow_id=line_workflow_id,
            ),
            id=kit.workflow_id(identifier),
            task_queue=self.task_queue,
        )


TEST_SHUTDOWN_GRACE = timedelta(seconds=1)
"""How long a test's worker lets running activities finish when the test leaves it (a
deployment's default, ``JIDOKA_SHUTDOWN_GRACE_S``, is 60 s)."""


@asynccontextmanager
async def factory(
    client: Client,
    *,
    host_id: str | None = None,
    max_agents: int | None = None,
    replace: Sequence[Callable[..., Any]] = (),
) -> AsyncIterator[Factory]:
    """A real worker; ``max_agents``: agent slots on its host; ``replace``: activities standing
    in for the real ones of the same name (to make one step fail or wait).

    Leaving the block stops it with a grace of :data:`TEST_SHUTDOWN_GRACE`: by then the test
    has read everything it asserts, and an agent still running (a stalled one whose workflow
    the test terminated) is killed instead of being waited for."""
    task_queue = f"jidoka-test-{uuid.uuid4().hex[:8]}"
    host = HostIdentity(host_id=host_id or f"host-{uuid.uuid4().hex[:8]}")
    settings = WorkerSettings(
        task_queue=task_queue, host=host, graceful_shutdown=TEST_SHUTDOWN_GRACE
    )
    if max_agents is not None:
        settings = dataclasses.replace(settings, max_agents=max_agents)
    async with running_worker(client, settings, replace=replace):
        yield Factory(client=client, task_queue=task_queue, host=host)


async def start_line(
    f: Factory, kit: LineKit, *, history_limit: int | None = None
) -> WorkflowHandle[LineWorkflow, None]:
    return await f.client.start_workflow(
        LineWorkflow.run,
        LineWorkflowInput(workflow_path=str(kit.workflow_md), history_limit=history_limit),
        id=line_workflow_id(kit.line),
        task_queue=f.task_queue,
    )


async def eventually(
    probe: Callable[[], Awaitable[T]],
    accept: Callable[[T], bool],
    *,
    timeout: float = 60,
    what: str = "condition",
    interval: float = 0.25,
    any_rpc_error: bool = False,
) -> T:
    """Poll ``probe`` until ``accept`` holds (never a fixed sleep), or fail saying what.

    A probe failing with NOT_FOUND (a workflow not started yet) is polled again; with
    ``any_rpc_error`` so is any RPC error (a query while a dead worker's sticky queue is given
    up). The last value, or error, is shown when the deadline passes."""
    deadline = asyncio.get_running_loop().time() + timeout
    last: object = None
    while True:
        try:
            value = await probe()
        except RPCError as error:
            if not any_rpc_error and error.status is not RPCStatusCode.NOT_FOUND:
                raise
            last = error
        else:
            if accept(value):
                return value
            last = value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"{what} not reached in {timeout}s; last: {last!r}"[:6000])
        await asyncio.sleep(interval)


async def line_status(handle: WorkflowHandle[Any, Any]) -> LineStatus:
    """The line's own ``status`` query: each running issue's phase as the line last heard it
    (an issue reports only the phases the line acts on)."""
    return await handle.query(LineWorkflow.status)


async def live_line_status(client: Client, handle: WorkflowHandle[Any, Any]) -> LineStatus:
    """What ``jidoka line status`` shows: the line's status with each running issue's live
    phase (preparing, running the agent, verifying) read from visibility."""
    return await read_line_status(client, handle)


async def refreshed_status(handle: WorkflowHandle[Any, Any]) -> LineStatus:
    """Ask the line for a tick now (``refresh``, as ``jidoka line refresh`` does), then read its
    status: a probe for what the line looks at only every few ticks (its sweep of issue
    workflows that closed without a report or are stuck), without waiting for its clock."""
    await handle.signal(LineWorkflow.refresh)
    return await line_status(handle)


async def ticks_later(handle: WorkflowHandle[Any, Any], ticks: int) -> LineStatus:
    """The line's status once it has begun ``ticks`` more ticks (so the ones before have run to
    their end)."""
    start = (await line_status(handle)).ticks
    return await eventually(
        lambda: line_status(handle),
        lambda status: status.ticks >= start + ticks,
        what=f"{ticks} more ticks",
    )


async def issue_status(handle: WorkflowHandle[Any, Any]) -> IssueStatus:
    """The issue workflow's own ``status`` query."""
    return await handle.query(IssueWorkflow.status)


async def wait_for_phase(
    handle: WorkflowHandle[Any, Any], *phases: Phase, timeout: float = 60, what: str | None = None
) -> IssueStatus:
    """Poll the issue's status until its phase is one of ``phases``; that status."""
    return await eventually(
        lambda: issue_status(handle),
        lambda status: status.phase in phases,
        timeout=timeout,
        what=what or "phase " + " or ".join(phase.value for phase in phases),
    )


def board_text(kit: LineKit, identifier: str) -> Callable[[], Awaitable[str]]:
    """A probe for :func:`eventually`: the issue's file on the board, as it is now."""

    async def read() -> str:
        return kit.issue_text(identifier)

    return read


async def retry_and_resume(
    issue: WorkflowHandle[Any, Any], line: WorkflowHandle[Any, Any], root_cause: str
) -> None:
    """An operator's answer to an issue halt: retry the issue, then resume its line (once the
    issue's halt has reached it)."""
    await eventually(lambda: line_status(line), lambda s: s.halted, what="the line halted")
    await issue.execute_update(
        IssueWorkflow.decide,
        DecideRequest(decision=OperatorDecision.RETRY, root_cause=root_cause, operator="ops"),
    )
    await line.execute_update(
        LineWorkflow.resume_update, ResumeRequest(root_cause=root_cause, operator="ops")
    )


async def resume_leaving_the_issue_halted(
    line: WorkflowHandle[Any, Any],
    issue: WorkflowHandle[Any, Any],
    root_cause: str,
    *,
    timeout: float = 60,
) -> IssueStatus:
    """An operator resumes a line an issue halted, with a root cause, and leaves the issue
    halted for its own decision; the issue's status once the resume has reached it.

    The resume is sent once the halt has reached the issue: the line's halt and resume
    broadcasts interleave, so a resume sent while the halt is still being broadcast can reach
    an issue before the halt does and leave it gated (a known orchestrator race)."""
    await eventually(
        lambda: issue.query(IssueWorkflow.status),
        lambda s: s.phase is Phase.HALTED and s.line_halted,
        timeout=timeout,
        what="the halt reached the issue",
    )
    resumed = await line.execute_update(
        "resume", ResumeRequest(root_cause=root_cause, operator="ops"), result_type=ResumeResult
    )
    assert isinstance(resumed, ResumeResult) and resumed.accepted, resumed
    return await eventually(
        lambda: issue.query(IssueWorkflow.status),
        lambda s: not s.line_halted,
        timeout=timeout,
        what="the resume reached the issue",
    )


def resuming(handle: WorkflowHandle[Any, Any]) -> Callable[[], Awaitable[LineStatus]]:
    """A status probe that resumes the line whenever an issue halted it (every issue halt
    halts the line), so that the other issues run on; halted issues stay halted."""

    async def probe() -> LineStatus:
        status = await line_status(handle)
        if status.halted:
            await handle.signal(
                LineWorkflow.resume,
                ResumeRequest(root_cause="test: these issues halt on purpose", operator="test"),
            )
        return status

    return probe


def settled(identifiers: Sequence[str]) -> Callable[[LineStatus], bool]:
    """Every issue shipped, released, abandoned or halted for a person."""

    def check(status: LineStatus) -> bool:
        done = {f.identifier for f in status.finished}
        halted = {e.identifier for e in status.running if e.phase is Phase.HALTED}
        return set(identifiers) <= done | halted

    return check
