"""Codex app-server notifications -> normalised events (docs/agents.md#codex-agentkind-codex).

Pure translation, no I/O: which notifications are progress, how token usage and rate limits
read, and how ``turn/completed`` is classified. ``turn/completed`` is *not* success by itself:
0.169.0 reports failure and interruption through it too, in ``turn.status``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import assert_never, cast

from activities.agent import jsonline
from activities.agent.events import EventKind, TurnStatus, UsageMode, UsageReading
from activities.agent.jsonline import JsonObject
from jidoka.models import RateLimitInfo

_PROGRESS_METHODS = frozenset(
    {
        "turn/diff/updated",
        "turn/plan/updated",
        "hook/started",
        "hook/completed",
        "command/exec/outputDelta",
        "process/outputDelta",
        "thread/compacted",
    }
)
_LOG_METHODS = frozenset({"warning", "configWarning", "deprecationNotice", "guardianWarning"})
_TOOL_ITEMS = frozenset(
    {
        "commandExecution",
        "fileChange",
        "mcpToolCall",
        "dynamicToolCall",
        "collabAgentToolCall",
        "webSearch",
        "imageView",
        "imageGeneration",
        "functionCallOutput",
    }
)


def notification_kind(method: str, params: JsonObject) -> EventKind:
    """The event kind of a notification other than ``turn/completed`` (which needs the thread
    to be ours) and the two with payloads (usage, rate limits)."""
    if method == "turn/started":
        return EventKind.TURN_STARTED
    if method in ("item/started", "item/completed"):
        item_type = jsonline.text(jsonline.obj(params, "item"), "type")
        return EventKind.TOOL if item_type in _TOOL_ITEMS else EventKind.MESSAGE
    if method.startswith("item/") or method in _PROGRESS_METHODS:
        return EventKind.PROGRESS  # deltas: output streaming in is work happening
    if method == "error":
        # With no network Codex says "Reconnecting..." every few seconds forever: that is
        # noise for the progress clock. A final error is followed by turn/completed.
        return EventKind.RETRYING if jsonline.flag(params, "willRetry") else EventKind.WARNING
    if method in _LOG_METHODS:
        return EventKind.WARNING
    return EventKind.RAW


# -- tokens ----------------------------------------------------------------------------------


def token_usage(params: JsonObject) -> UsageReading | None:
    """``thread/tokenUsage/updated``: the thread's cumulative total (never ``last``, which is
    the increment already inside the total). Spend is input + output: ``totalTokens`` may be
    normalised to the context window, so it is not a measure of spend."""
    thread = jsonline.text(params, "threadId")
    total = jsonline.obj(jsonline.obj(params, "tokenUsage"), "total")
    if thread is None or total is None:
        return None
    return UsageReading(
        input_tokens=jsonline.count(total, "inputTokens"),
        output_tokens=jsonline.count(total, "outputTokens"),
        cached_input_tokens=jsonline.count(total, "cachedInputTokens"),
        mode=UsageMode.CUMULATIVE,
        scope=f"codex-thread:{thread}",
    )


# -- rate limits ------------------------------------------------------------------------------


class RateLimits:
    """The account's rate-limit windows, merged from sparse ``account/rateLimits/updated``
    notifications (a missing window does not clear the one seen before)."""

    def __init__(self) -> None:
        self._windows: dict[str, JsonObject] = {}

    def update(self, params: JsonObject) -> RateLimitInfo | None:
        snapshot = jsonline.obj(params, "rateLimits")
        if snapshot is None:
            return None
        for name in ("primary", "secondary"):
            window = jsonline.obj(snapshot, name)
            if window is not None:
                self._windows[name] = window
        reached = jsonline.text(snapshot, "rateLimitReachedType")
        return self.info(exhausted=reached is not None)

    def info(self, *, exhausted: bool = False) -> RateLimitInfo:
        """The current picture; ``exhausted`` forces it (a turn failed on a usage limit)."""
        windows = [
            (jsonline.number(w, "usedPercent") or 0.0, _epoch(jsonline.number(w, "resetsAt")))
            for w in self._windows.values()
        ]
        full = [(used, resets) for used, resets in windows if used >= 100]
        if full:
            # Work resumes when the last full window resets, not the first.
            known = [resets for _, resets in full if resets is not None]
            resets_at = max(known) if known else None
        elif windows:
            resets_at = max(windows, key=lambda window: window[0])[1]
        else:
            resets_at = None
        return RateLimitInfo(
            resets_at=resets_at,
            used_percent=max(used for used, _ in windows) if windows else None,
            exhausted=exhausted or bool(full),
            source="codex",
        )


def _epoch(seconds: float | None) -> datetime | None:
    if seconds is None or seconds <= 0:
        return None
    try:
        return datetime.fromtimestamp(seconds, UTC)
    except (OverflowError, OSError, ValueError):
        return None


# -- turn completion --------------------------------------------------------------------------


class Failure(StrEnum):
    """What a failed turn's ``codexErrorInfo`` means for the attempt."""

    RATE_LIMITED = "rate_limited"
    """usageLimitExceeded / rateLimitExceeded: wait for the reset, then retry."""
    UNAUTHORIZED = "unauthorized"
    """Not logged in, or the key was refused: retrying cannot help."""
    OTHER = "other"


_RATE_LIMIT_ERRORS = frozenset({"usageLimitExceeded", "rateLimitExceeded"})


def error_info_name(info: object) -> str:
    """``"usageLimitExceeded"`` or, for the object variants, their single key."""
    if isinstance(info, str):
        return info
    if isinstance(info, dict) and info:
        return str(next(iter(cast(dict[str, object], info))))
    return ""


def failure_of(info: object) -> Failure:
    name = error_info_name(info)
    if name in _RATE_LIMIT_ERRORS:
        return Failure.RATE_LIMITED
    if name == "unauthorized":
        return Failure.UNAUTHORIZED
    return Failure.OTHER


@dataclass(frozen=True)
class TurnEnd:
    thread_id: str
    turn_id: str
    status: TurnStatus
    message: str
    failure: Failure | None
    """Set for a failed turn."""


def turn_end(params: JsonObject) -> TurnEnd | None:
    thread = jsonline.text(params, "threadId")
    turn = jsonline.obj(params, "turn")
    turn_id = jsonline.text(turn, "id")
    if thread is None or turn is None or turn_id is None:
        return None
    raw_status = jsonline.text(turn, "status") or "?"
    error = jsonline.obj(turn, "error")
    info = error.get("codexErrorInfo") if error is not None else None
    message = jsonline.text(error, "message") or ""
    if details := jsonline.text(error, "additionalDetails"):
        message = f"{message} ({details})" if message else details
    name = error_info_name(info)
    if name:
        message = f"{name}: {message}" if message else name
    status = _status(raw_status)
    match status:
        case TurnStatus.COMPLETED:
            return TurnEnd(thread, turn_id, status, message, None)
        case TurnStatus.INTERRUPTED:
            return TurnEnd(thread, turn_id, status, message or "turn interrupted", None)
        case TurnStatus.FAILED:
            if raw_status != "failed":  # "inProgress" or a status a later version adds
                message = f"turn/completed with status {raw_status!r}" + (
                    f": {message}" if message else ""
                )
            return TurnEnd(thread, turn_id, status, message or "turn failed", failure_of(info))
        case _:
            assert_never(status)


def _status(raw: str) -> TurnStatus:
    """Only the literal ``completed`` is a completed turn; anything unexpected is a failure,
    never a guess in the agent's favour."""
    match raw:
        case "completed":
            return TurnStatus.COMPLETED
        case "interrupted":
            return TurnStatus.INTERRUPTED
        case _:
            return TurnStatus.FAILED
