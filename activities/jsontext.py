"""JSON from outside (a tracker's answer, an agent's line), made safe to carry on.

``json.loads`` accepts a lone surrogate escape (``"\\ud83d"``, half of an emoji cut in two,
which JavaScript writes without complaint); the string it gives cannot be encoded as UTF-8, so
not into a Temporal payload, a transcript or a comment. Each one becomes U+FFFD here, once, at
the edge.
"""

from __future__ import annotations

import json

REPLACEMENT = "\ufffd"


def _clean(text: str) -> str:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "".join(REPLACEMENT if "\ud800" <= c <= "\udfff" else c for c in text)
    return text


def loads(text: str | bytes) -> object:
    """``json.loads`` with every string (keys included) encodable as UTF-8. Raises what
    ``json.loads`` raises (``ValueError``, ``RecursionError``)."""
    value: object = json.loads(text)
    if isinstance(value, str):
        return _clean(value)
    stack: list[object] = [value]
    while stack:  # iterative: a document json.loads could read nests as deep as it likes
        current = stack.pop()
        if isinstance(current, dict):
            mapping: dict[str, object] = current  # pyright: ignore[reportUnknownVariableType]
            for key in list(mapping):
                item = mapping[key]
                if isinstance(item, str):
                    item = _clean(item)
                elif isinstance(item, dict | list):
                    stack.append(item)
                clean_key = _clean(key)
                if clean_key != key:
                    del mapping[key]
                mapping[clean_key] = item
        elif isinstance(current, list):
            sequence: list[object] = current  # pyright: ignore[reportUnknownVariableType]
            for index, item in enumerate(sequence):
                if isinstance(item, str):
                    sequence[index] = _clean(item)
                elif isinstance(item, dict | list):
                    stack.append(item)
    return value
