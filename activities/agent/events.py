"""Normalised agent events: what every adapter turns its agent's output into.

The supervisor never looks at an agent's wire format. It reads these events, and only a few of
their fields: whether an event is *progress* (resets the progress clock), token usage, a
rate-limit snapshot, and the end of a turn. Everything else is kept for the transcript.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import assert_never

from jidoka.models import RateLimitInfo


class EventKind(StrEnum):
    """The closed set of event kinds every adapter translates its agent's output into."""

    SESSION_STARTED = "session_started"
    TURN_STARTED = "turn_started"
    MESSAGE = "message"
    TOOL = "tool"
    PROGRESS = "progress"
    USAGE = "usage"
    TURN_ENDED = "turn_ended"
    RATE_LIMIT = "rate_limit"
    RETRYING = "retrying"
    """Transient errors the agent retries by itself ("Reconnecting..."): never progress."""
    REQUEST = "request"
    """A server->client request the adapter must answer (approvals, tool calls, user input)."""
    WARNING = "warning"
    RAW = "raw"
    """Anything unparsed: counts as output for the silence clock, nothing more."""

    @property
    def is_progress(self) -> bool:
        """Only events that show the agent moving forward reset the progress clock: retry noise
        and warnings never do, so an agent stuck retrying is stopped by that clock."""
        match self:
            case (
                EventKind.SESSION_STARTED
                | EventKind.TURN_STARTED
                | EventKind.MESSAGE
                | EventKind.TOOL
                | EventKind.PROGRESS
                | EventKind.USAGE
                | EventKind.TURN_ENDED
            ):
                return True
            case (
                EventKind.RATE_LIMIT
                | EventKind.RETRYING
                | EventKind.REQUEST
                | EventKind.WARNING
                | EventKind.RAW
            ):
                return False
            case _:
                assert_never(self)


class UsageMode(StrEnum):
    """How a usage reading relates to the ones before it, within its ``scope``."""

    CUMULATIVE = "cumulative"
    """The running total so far (Codex ``thread/tokenUsage/updated``, the command protocol)."""
    DELTA = "delta"
    """An increment to add (OpenCode ``step_finish``, a usage field map with cumulative: false)."""
    FINAL = "final"
    """The authoritative total of the scope; replaces whatever was counted for it."""


@dataclass(frozen=True)
class UsageReading:
    input_tokens: int = 0
    output_tokens: int = 0
    total_tokens: int | None = None
    """None: the agent reported no total, so input + output is used."""
    cached_input_tokens: int = 0
    """The part of ``input_tokens`` read from the provider's cache."""
    mode: UsageMode = UsageMode.CUMULATIVE
    scope: str = "session"
    """What the reading accumulates over: a thread, a turn, a message id (for de-duplication)."""

    @property
    def total(self) -> int:
        if self.total_tokens is not None:
            return self.total_tokens
        return self.input_tokens + self.output_tokens


class TurnStatus(StrEnum):
    COMPLETED = "completed"
    FAILED = "failed"
    INTERRUPTED = "interrupted"


@dataclass(frozen=True)
class AgentEvent:
    kind: EventKind
    data: Mapping[str, object] = field(default_factory=dict[str, object])
    """What the transcript records (the parsed JSON object, or ``{"line": text}``)."""
    message: str = ""
    """A short human-readable summary, if the event has one."""
    usage: UsageReading | None = None
    rate_limit: RateLimitInfo | None = None
    turn_status: TurnStatus | None = None
    """Set on ``TURN_ENDED`` only."""

    @property
    def progress(self) -> bool:
        return self.kind.is_progress


def raw_event(line: str, stream: str = "stdout") -> AgentEvent:
    return AgentEvent(EventKind.RAW, {"stream": stream, "line": line})
