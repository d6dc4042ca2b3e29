"""Token accounting: readings in, one honest session total out.

Agents report usage in three ways: running totals, increments, and a final figure. Counting a
running total twice, or adding a final figure on top of the increments it already covers, is
how budgets silently drift. :class:`UsageMeter` keeps one figure per
*scope* and sums the scopes; adapters choose the scope (a thread, a turn, a message id).
"""

from __future__ import annotations

from collections.abc import Mapping

from activities.agent.events import UsageMode, UsageReading
from jidoka.config import UsageFields
from jidoka.models import TokenUsage


class UsageMeter:
    def __init__(self) -> None:
        self._scopes: dict[str, TokenUsage] = {}

    def add(self, reading: UsageReading) -> None:
        new = TokenUsage(
            input_tokens=reading.input_tokens,
            output_tokens=reading.output_tokens,
            total_tokens=reading.total,
            cached_input_tokens=reading.cached_input_tokens,
        )
        old = self._scopes.get(reading.scope, TokenUsage())
        match reading.mode:
            case UsageMode.CUMULATIVE:
                # Field-wise max: a late or re-sent snapshot never lowers what was counted.
                self._scopes[reading.scope] = TokenUsage(
                    input_tokens=max(old.input_tokens, new.input_tokens),
                    output_tokens=max(old.output_tokens, new.output_tokens),
                    total_tokens=max(old.total_tokens, new.total_tokens),
                    cached_input_tokens=max(old.cached_input_tokens, new.cached_input_tokens),
                )
            case UsageMode.DELTA:
                self._scopes[reading.scope] = old.plus(new)
            case UsageMode.FINAL:
                self._scopes[reading.scope] = new

    @property
    def reported(self) -> bool:
        """Whether the agent reported any usage at all (zero tokens may be unknown, not
        free)."""
        return bool(self._scopes)

    @property
    def usage(self) -> TokenUsage:
        total = TokenUsage()
        for scope in self._scopes.values():
            total = total.plus(scope)
        return total

    @property
    def total(self) -> int:
        return self.usage.total_tokens


_MISSING = object()


def dotted(value: object, path: str) -> object:
    """``dotted({"a": {"b": 1}}, "a.b") == 1``; a missing key gives ``_MISSING``.

    Integer parts index lists (``content.0.usage``), so paths reach into arrays too.
    """
    current = value
    for part in path.split("."):
        if isinstance(current, Mapping):
            mapping: Mapping[object, object] = current  # type: ignore[assignment]
            if part not in mapping:
                return _MISSING
            current = mapping[part]
        elif isinstance(current, list) and part.isdigit():
            items: list[object] = current  # type: ignore[assignment]
            index = int(part)
            if index >= len(items):
                return _MISSING
            current = items[index]
        else:
            return _MISSING
    return current


def _as_text(value: object) -> str:
    # YAML gives ``match`` values as strings; compare JSON scalars in their JSON spelling.
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    return str(value)


def matches(event: Mapping[str, object], required: Mapping[str, str]) -> bool:
    """True when every dotted path in ``required`` holds the required value."""
    for path, wanted in required.items():
        found = dotted(event, path)
        if found is _MISSING or _as_text(found) != wanted:
            return False
    return True


def token_count(value: object) -> int | None:
    """A non-negative token count from a JSON value (int, integral float, digit string)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value >= 0 else None
    if isinstance(value, float) and value.is_integer() and value >= 0:
        return int(value)
    # isdigit() holds for "²" and other digits int() refuses; over 4,300 digits int() refuses too
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 4_300:
        return int(value)
    return None


def reading_from_fields(
    event: Mapping[str, object], fields: UsageFields, scope: str = "session"
) -> UsageReading | None:
    """A usage reading from a JSON event described by ``agent.usage``, or None if the event is
    not a usage event (``match`` fails, or none of the token paths holds a count)."""
    if not matches(event, fields.match):
        return None
    counts: dict[str, int | None] = {}
    for name, path in (
        ("input", fields.input_tokens),
        ("output", fields.output_tokens),
        ("total", fields.total_tokens),
        ("cached", fields.cached_input_tokens),
    ):
        counts[name] = token_count(dotted(event, path)) if path else None
    if all(count is None for count in counts.values()):
        return None
    return UsageReading(
        input_tokens=counts["input"] or 0,
        output_tokens=counts["output"] or 0,
        total_tokens=counts["total"],
        cached_input_tokens=counts["cached"] or 0,
        mode=UsageMode.CUMULATIVE if fields.cumulative else UsageMode.DELTA,
        scope=scope,
    )
