"""One human line per way an agent session can end, naming the rule that ended it.

Operators read this in the tracker comment and in ``jidoka why``; it names the WORKFLOW.md key
they would change, so the five-whys walk ends at a policy, not at "the agent stopped".
"""

from __future__ import annotations

import signal
from dataclasses import dataclass
from typing import assert_never

from jidoka.models import RateLimitInfo
from jidoka.outcomes import AgentStop


@dataclass(frozen=True)
class StopFacts:
    elapsed_s: float = 0.0
    exit_code: int | None = None
    tokens: int = 0
    turns: int = 0
    max_turns: int = 0
    progress_s: float = 0.0
    silence_s: float = 0.0
    wall_s: float = 0.0
    budget_tokens: int = 0
    budget_first_commit: int | None = None
    branch: str = ""
    since_output_s: float = 0.0
    last_stderr: str = ""
    rate_limit: RateLimitInfo | None = None
    message: str = ""
    """The stop's own explanation (adapter failure text, launch error, template error)."""


def describe_stop(stop: AgentStop, facts: StopFacts) -> str:
    match stop:
        case AgentStop.EXITED:
            text = f"agent {_exit_phrase(facts.exit_code)} after {facts.elapsed_s:.1f} s"
            if facts.exit_code != 0 and facts.last_stderr:
                text += f": {facts.last_stderr}"
            return text
        case AgentStop.FAILED:
            return f"agent reported a failed turn: {facts.message or 'no reason given'}"
        case AgentStop.TURN_LIMIT:
            return (
                f"agent used {facts.turns} of {facts.max_turns} turns without finishing "
                "(budgets.max_turns)"
            )
        case AgentStop.PROGRESS_STALL:
            return (
                f"no progress event for {facts.progress_s:g} s (agent.stall_timeout_s); "
                f"last output of any kind {facts.since_output_s:.1f} s before the stop"
            )
        case AgentStop.SILENCE_STALL:
            return f"no output at all for {facts.silence_s:g} s (agent.silence_timeout_s)"
        case AgentStop.WALL_CLOCK:
            return f"stopped at the per-attempt cap of {facts.wall_s:g} s (agent.turn_timeout_s)"
        case AgentStop.ISSUE_WALL_TIME:
            if facts.wall_s <= 0:
                return "the issue's wall time is spent (budgets.max_wall_time); nothing launched"
            return (
                f"stopped after {facts.wall_s:g} s, all the wall time the issue had left "
                "(budgets.max_wall_time)"
            )
        case AgentStop.TOKEN_BUDGET:
            if facts.tokens <= facts.budget_tokens:
                return "the issue's token budget is spent (budgets.max_tokens); nothing launched"
            return (
                f"used {facts.tokens} tokens, over the {facts.budget_tokens} this session had "
                "left (budgets.max_tokens)"
            )
        case AgentStop.FIRST_COMMIT_BUDGET:
            return (
                f"used {facts.tokens} tokens without a commit on {facts.branch}, over the "
                f"{facts.budget_first_commit} allowed (budgets.max_tokens_before_first_commit)"
            )
        case AgentStop.RATE_LIMITED:
            resets = facts.rate_limit.resets_at if facts.rate_limit else None
            when = f"; it resets at {resets.isoformat()}" if resets else ""
            return (
                f"agent {_exit_phrase(facts.exit_code)} after reporting an exhausted rate "
                f"limit{when}"
            )
        case AgentStop.UNAVAILABLE:
            return f"agent unavailable: {facts.message}"
        case AgentStop.PROMPT_INVALID:
            return f"prompt could not be rendered: {facts.message}"
        case AgentStop.SLOT_TIMEOUT:
            return f"{facts.message} (timeouts.slot_wait_s; JIDOKA_MAX_AGENTS on the host)"
        case AgentStop.WORKER_SHUTDOWN:
            return "the worker shut down and its grace period ran out: the agent was stopped"
        case AgentStop.CANCELLED:
            return f"cancelled: {facts.message or 'the activity was cancelled'}"
        case _:
            assert_never(stop)


def _exit_phrase(code: int | None) -> str:
    if code is not None and code < 0:  # asyncio reports death by signal N as -N
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with code {code}"
