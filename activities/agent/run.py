"""The ``run_agent`` activity: one agent session (= one attempt) in the issue's workspace.

It runs on the host that holds the workspace (the workspace's own task queue). Everything that
can be decided before launching is decided here, and reported as an :class:`AgentStop` rather
than raised, so the issue workflow records it as an outcome instead of retrying blindly:

* the prompt renders (else ``PROMPT_INVALID``); it is written to ``.jidoka/prompt.md`` and,
  for command agents, delivered on stdin;
* the workspace exists, is a directory inside the workspace root, and is the cwd of the agent
  (else ``UNAVAILABLE``);
* an adapter exists for ``agent.kind`` and every ``$NAME`` in ``agent.env`` is set (else
  ``UNAVAILABLE``, naming the variable, never a value).

Then :class:`~activities.agent.supervisor.Supervisor` runs the session. Environment given to the
agent: the worker's, minus every withheld secret and any ``JIDOKA_*`` variable of the worker's
own, plus ``agent.env``, plus ``JIDOKA_ISSUE``, ``JIDOKA_ISSUE_ID``, ``JIDOKA_ATTEMPT``,
``JIDOKA_WORKSPACE``, ``JIDOKA_BRANCH``, ``JIDOKA_BASE_SHA``, ``JIDOKA_PYTHON`` (this worker's
interpreter: ``bash -l`` may reset PATH), ``JIDOKA_WORKFLOW_DIR`` and ``JIDOKA_PROMPT_FILE``.
Scripted agents also get ``JIDOKA_SCENARIO`` when ``agent.scenario`` is set.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path

from temporalio import activity
from temporalio.service import RPCError

from activities.agent.adapters import AgentAdapter
from activities.agent.probe import FirstCommitProbe
from activities.agent.results import FINISHED_RUNS
from activities.agent.selection import Unavailable, select_adapter
from activities.agent.session import Budgets, Clocks, Continuation, SessionReport, SessionSpec
from activities.agent.slots import AGENT_SLOTS, SlotTimeout
from activities.agent.stops import StopFacts, describe_stop
from activities.agent.supervisor import HEARTBEAT_EVERY_S, Supervisor
from activities.agent.transcript import Transcript, transcript_path
from activities.heartbeats import heartbeat_every
from activities.host_state import agent_home
from activities.metrics import slot_waited
from activities.sandbox import SandboxUnavailable, confinement
from activities.secrets import Scrubber, withheld_names
from activities.workspace_files import write_jidoka_file
from jidoka.config import is_env_ref
from jidoka.models import AgentRunResult
from jidoka.outcomes import AgentStop
from jidoka.payloads import AgentRunInput, AgentStarted
from jidoka.prompt import (
    PROMPT_PATH,
    VERDICT_PATH,
    PromptError,
    full_prompt,
    render_prompt,
    verdict_contract,
)

CONTINUATION_GUIDANCE = (
    f"Your turn ended, but `{VERDICT_PATH}` does not exist yet. Continue the work; when it is "
    "done and committed, write the verdict file as described in the first message."
)


@activity.defn(name="run_agent")
async def run_agent(input: AgentRunInput) -> AgentRunResult:
    started = time.monotonic()
    config = input.workflow.config
    agent = config.agent
    scrub: Callable[[str], str] = Scrubber.for_config(config)

    def early(stop: AgentStop, message: str = "", facts: StopFacts | None = None) -> AgentRunResult:
        detail = scrub(describe_stop(stop, facts or StopFacts(message=message)))
        return AgentRunResult(
            stop=stop, detail=" ".join(detail.split()), duration_s=time.monotonic() - started
        )

    try:
        # Off the event loop: a heavy template must never stall this worker's heartbeats.
        body = await asyncio.to_thread(
            render_prompt, input.workflow.prompt_template, input.issue, input.template_attempt
        )
    except PromptError as error:
        return early(AgentStop.PROMPT_INVALID, str(error))
    prompt = full_prompt(body, verdict_contract(config), input.guidance)

    # Nothing left to spend: launching would only start a process to kill it.
    if input.wall_s <= 0:
        return early(AgentStop.ISSUE_WALL_TIME, facts=StopFacts(wall_s=input.wall_s))
    if input.budget_tokens <= 0:
        return early(AgentStop.TOKEN_BUDGET, facts=StopFacts(budget_tokens=input.budget_tokens))

    workspace = _checked_workspace(input)
    if isinstance(workspace, str):
        return early(AgentStop.UNAVAILABLE, workspace)
    adapter = select_adapter(agent, os.environ)
    if isinstance(adapter, Unavailable):
        return early(AgentStop.UNAVAILABLE, adapter.reason)
    agent_env = _resolve_agent_env(agent.env, os.environ)
    if isinstance(agent_env, str):
        return early(AgentStop.UNAVAILABLE, agent_env)
    resolved, secrets = agent_env
    if secrets:
        scrub = _chain(scrub, Scrubber(secrets))

    prompt_file = workspace / PROMPT_PATH
    write_jidoka_file(str(workspace), PROMPT_PATH.rsplit("/", 1)[-1], prompt)
    pinned = {
        **resolved,
        "JIDOKA_ISSUE": input.issue.identifier,
        "JIDOKA_ISSUE_ID": input.issue.id,
        "JIDOKA_ATTEMPT": str(input.attempt),
        "JIDOKA_WORKSPACE": str(workspace),
        "JIDOKA_BRANCH": input.workspace.branch,
        "JIDOKA_BASE_SHA": input.workspace.base_sha,
        "JIDOKA_PYTHON": sys.executable,
        "JIDOKA_PROMPT_FILE": str(prompt_file),
    }
    try:
        confine = confinement(
            input.workflow, str(workspace), pinned=pinned, home=agent_home(workspace)
        )
    except SandboxUnavailable as error:
        return early(AgentStop.UNAVAILABLE, str(error))

    spec = SessionSpec(
        workspace=workspace,
        prompt=prompt,
        branch=input.workspace.branch,
        base_env=confine.env,
        withheld=frozenset(withheld_names(config)),
        pinned_env=pinned,
        confinement=confine,
        clocks=Clocks(
            progress_s=agent.stall_timeout_s,
            silence_s=agent.silence_timeout_s,
            wall_s=input.wall_s,
            # The issue's remaining time, not the per-attempt cap, was the binding limit.
            wall_stop=AgentStop.ISSUE_WALL_TIME
            if input.wall_s < agent.turn_timeout_s
            else AgentStop.WALL_CLOCK,
        ),
        budgets=Budgets(
            tokens=input.budget_tokens,
            tokens_before_first_commit=input.budget_tokens_before_first_commit,
            max_turns=input.max_turns,
        ),
        resume_token=input.resume_token,
    )
    path = transcript_path(str(workspace), input.attempt)
    transcript = Transcript(path, scrub)
    waited = 0.0
    try:
        async with AGENT_SLOTS.hold(activity.heartbeat, timeout_s=input.slot_wait_s) as waited:
            slot_waited(config.line, agent.kind.value, waited)
            if _worker_shutting_down():
                # The slot came free because the worker is stopping: starting an agent now
                # would outlive the shutdown. The attempt is the infrastructure's, retried.
                return early(AgentStop.WORKER_SHUTDOWN)
            notice = asyncio.create_task(_tell_workflow_the_agent_started(input.attempt, waited))
            agent_started = time.monotonic()
            try:
                report = await _supervise(
                    input,
                    adapter,
                    spec=spec,
                    workspace=workspace,
                    prompt_file=prompt_file,
                    transcript=transcript,
                    scrub=scrub,
                )
            finally:
                notice.cancel()
    except SlotTimeout as error:
        slot_waited(config.line, agent.kind.value, error.waited_s)
        result = early(AgentStop.SLOT_TIMEOUT, str(error))
        return result.model_copy(update={"duration_s": 0.0, "slot_wait_s": error.waited_s})
    except asyncio.CancelledError:
        if not _worker_shutting_down():
            raise
        # SIGTERM and the grace ran out: the group is already killed; record why, so the
        # workflow sees an outcome (worker_lost) instead of a vanished attempt.
        transcript.record("summary", {"stop": AgentStop.WORKER_SHUTDOWN.value})
        return early(AgentStop.WORKER_SHUTDOWN)
    finally:
        transcript.close()
    result = AgentRunResult(
        stop=report.stop,
        exit_code=report.exit_code,
        usage=report.usage,
        usage_reported=report.usage_reported,
        tokens_before_first_commit=report.tokens_before_first_commit,
        first_commit_seen=report.first_commit_seen,
        turns=report.turns,
        detail=report.detail,
        stderr_tail=report.stderr_tail,
        resume_token=report.resume_token,
        rate_limit=report.rate_limit,
        transcript_path=str(path),
        duration_s=round(time.monotonic() - agent_started, 3),
        slot_wait_s=round(waited, 3),
    )
    FINISHED_RUNS.remember(activity.info().workflow_id or "", input.attempt, result)
    return result


async def _tell_workflow_the_agent_started(attempt: int, waited_s: float) -> None:
    """Best effort: the issue's phase moves from waiting for a slot to running as it happens;
    if this signal is lost, it moves when the activity completes."""
    workflow_id = activity.info().workflow_id
    try:
        client = activity.client()
    except RuntimeError:  # run outside a worker (the bench's plain loop): nobody to tell
        return
    if workflow_id is None:
        return
    try:
        await client.get_workflow_handle(workflow_id).signal(
            "agent_started", AgentStarted(attempt=attempt, slot_wait_s=round(waited_s, 3))
        )
    except RPCError as error:
        activity.logger.warning("could not tell %s the agent started: %s", workflow_id, error)


def _worker_shutting_down() -> bool:
    try:
        return activity.is_worker_shutdown()
    except RuntimeError:
        return False


async def _supervise(
    input: AgentRunInput,
    adapter: AgentAdapter,
    *,
    spec: SessionSpec,
    workspace: Path,
    prompt_file: Path,
    transcript: Transcript,
    scrub: Callable[[str], str],
) -> SessionReport:
    transcript.record(
        "start",
        {
            "issue": input.issue.identifier,
            "attempt": input.attempt,
            "adapter": adapter.name,
            "prompt_file": str(prompt_file),
            "prompt_chars": len(spec.prompt),
        },
    )
    report = await Supervisor(
        adapter,
        spec,
        probe=FirstCommitProbe(workspace, input.workspace.base_sha, input.workspace.branch),
        transcript=transcript,
        scrub=scrub,
        heartbeat=activity.heartbeat,
        continuation=_verdict_continuation(workspace),
        heartbeat_every_s=heartbeat_every(HEARTBEAT_EVERY_S),
    ).run()
    # The agent's own words can say more than the supervisor's stop: "not logged in" is
    # UNAVAILABLE, Claude's own turn cap is TURN_LIMIT, exit 127 is a missing binary.
    refined = adapter.refine_stop(report.stop, report.exit_code)
    if refined is None:
        return report
    detail = " ".join(scrub(refined.detail).split())
    transcript.record("refined", {"stop": refined.stop.value, "detail": detail})
    return dataclasses.replace(report, stop=refined.stop, detail=detail)


def _checked_workspace(input: AgentRunInput) -> Path | str:
    """The workspace as the agent's cwd, or why it cannot be: an absolute path to an existing
    directory inside the workspace root, whose ``.jidoka`` is not a symlink."""
    raw = Path(input.workspace.path)
    if not raw.is_absolute():
        return f"workspace path {raw} is not absolute"
    try:
        path = raw.resolve(strict=True)
    except OSError:
        return f"workspace {raw} does not exist on this worker"
    if not path.is_dir():
        return f"workspace {raw} is not a directory"
    if (path / ".jidoka").is_symlink():  # our prompt and transcript must land in the workspace
        return f"{raw}/.jidoka is a symlink; Jidoka writes there and refuses to follow it"
    root_setting = os.path.expandvars(input.workflow.config.workspace.root)
    if "$" not in root_setting:  # an unset $VAR root is the workspace activity's to report
        root = Path(root_setting).expanduser().resolve()
        if path == root or root not in path.parents:
            return f"workspace {raw} is not inside the workspace root {root}"
    return path


def _resolve_agent_env(
    entries: Mapping[str, str], environ: Mapping[str, str]
) -> tuple[dict[str, str], list[str]] | str:
    """``agent.env`` with ``$NAME`` values read from this worker's environment.

    Returns the variables and the values that came from references (scrubbed from output like
    any secret), or a message naming the first unset variable (never a value)."""
    resolved: dict[str, str] = {}
    secrets: list[str] = []
    for key, value in entries.items():
        if is_env_ref(value):
            name = value[1:]
            found = environ.get(name, "")
            if not found:
                return f"agent.env.{key} refers to ${name}, which is not set on this worker"
            resolved[key] = found
            secrets.append(found)
        else:
            resolved[key] = value
    return resolved, secrets


def _chain(first: Callable[[str], str], second: Callable[[str], str]) -> Callable[[str], str]:
    return lambda text: second(first(text))


def _verdict_continuation(workspace: Path) -> Continuation:
    """Multi-turn agents (Codex, Claude) get another turn while no verdict file exists."""

    async def continuation(turns_done: int) -> str | None:
        return None if (workspace / VERDICT_PATH).exists() else CONTINUATION_GUIDANCE

    return continuation
