"""Reading one JSON line from an agent as untrusted input, with typed accessors.

Agents speak JSON lines whose shapes drift between versions. Every adapter reads them through
these helpers, so that a missing key or a value of the wrong type yields ``None`` (and the line
becomes raw activity), never an exception inside the supervisor.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import cast

from activities.jsontext import loads

JsonObject = Mapping[str, object]


def parse_object(line: str) -> dict[str, object] | None:
    """The JSON object on ``line``, or None when the line is not exactly one JSON object."""
    text = line.strip()
    if not text.startswith("{"):
        return None
    try:
        value = loads(text)
    except (ValueError, RecursionError):  # RecursionError: nested deeper than Python recurses
        return None
    return cast(dict[str, object], value) if isinstance(value, dict) else None


def obj(value: object, key: str) -> JsonObject | None:
    """``value[key]`` when ``value`` is an object and the entry is an object too."""
    if not isinstance(value, Mapping):
        return None
    found = cast(Mapping[str, object], value).get(key)
    return cast(JsonObject, found) if isinstance(found, Mapping) else None


def text(value: object, key: str) -> str | None:
    if not isinstance(value, Mapping):
        return None
    found = cast(Mapping[str, object], value).get(key)
    return found if isinstance(found, str) else None


def number(value: object, key: str) -> float | None:
    """A JSON number (bools are not numbers here, whatever Python thinks)."""
    if not isinstance(value, Mapping):
        return None
    found = cast(Mapping[str, object], value).get(key)
    if isinstance(found, bool) or not isinstance(found, int | float):
        return None
    try:
        return float(found)
    except OverflowError:  # an integer past the largest float
        return None


def count(value: object, key: str) -> int:
    """A non-negative integer count; anything else counts as 0 (usage fields are optional)."""
    found = number(value, key)
    if found is None or found < 0 or not found.is_integer():
        return 0
    return int(found)


def flag(value: object, key: str) -> bool:
    """True only for a JSON ``true``: a missing or odd value is never an error flag's "yes"."""
    if not isinstance(value, Mapping):
        return False
    return cast(Mapping[str, object], value).get(key) is True


def items(value: object, key: str) -> list[object]:
    if not isinstance(value, Mapping):
        return []
    found = cast(Mapping[str, object], value).get(key)
    return cast(list[object], found) if isinstance(found, list) else []
