"""What a supervised session is given and what it reports: plain values, no behaviour.

Kept apart from :mod:`activities.agent.supervisor` so that callers (the ``run_agent`` activity,
tests, future adapters' tests) can build a session without reading the machinery.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from activities.sandbox import Confinement
from jidoka.models import RateLimitInfo, TokenUsage
from jidoka.outcomes import AgentStop

Continuation = Callable[[int], Awaitable[str | None]]
"""Called after a completed turn with the number of turns so far: guidance for another turn,
or None when the session is complete."""
Heartbeat = Callable[[Mapping[str, object]], None]


@dataclass(frozen=True)
class Clocks:
    progress_s: float
    silence_s: float
    wall_s: float
    wall_stop: AgentStop
    """``WALL_CLOCK`` or ``ISSUE_WALL_TIME``: which limit ``wall_s`` came from."""


@dataclass(frozen=True)
class Budgets:
    tokens: int
    tokens_before_first_commit: int | None
    max_turns: int


@dataclass(frozen=True)
class SessionSpec:
    workspace: Path
    prompt: str
    branch: str
    base_env: Mapping[str, str]
    withheld: frozenset[str]
    """Secret names stripped from the agent's environment, whatever adds them."""
    pinned_env: Mapping[str, str]
    """Set last, over the base and the adapter's additions (``JIDOKA_*``, ``agent.env``)."""
    clocks: Clocks
    budgets: Budgets
    resume_token: str | None = None
    confinement: Confinement = field(default_factory=Confinement)
    """How the agent's processes run: the sandbox (when on) wraps every launch."""


@dataclass(frozen=True)
class SessionReport:
    stop: AgentStop
    exit_code: int | None
    usage: TokenUsage
    usage_reported: bool
    tokens_before_first_commit: int
    first_commit_seen: bool
    turns: int
    detail: str
    stderr_tail: str
    rate_limit: RateLimitInfo | None
    resume_token: str | None
    duration_s: float
