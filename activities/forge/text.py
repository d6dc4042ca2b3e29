"""Bounding untrusted text from a forge (pure): check output keeps its tail, comment bodies
their head, names a short prefix, and control characters are replaced. Shared by the GitHub
and GitLab forges: whatever a forge sends becomes a model, and parts of it a prompt."""

from __future__ import annotations

import re

from activities.tracker.http import as_object, non_empty_str

SUMMARY_LINES = 60
SUMMARY_CHARS = 4_000
COMMENT_CHARS = 2_000
NAME_CHARS = 200
PATH_CHARS = 1_000

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff]")
"""Control characters other than tab and newline, and lone surrogates (JSON can carry them,
UTF-8 cannot)."""


def clean_text(text: str) -> str:
    """Line ends made ``\\n``; other control characters replaced by U+FFFD."""
    return _CONTROL.sub("\ufffd", text.replace("\r\n", "\n"))


def output_tail(*parts: object) -> str:
    """A check's output (``output.summary`` then ``output.text``): the last
    :data:`SUMMARY_LINES` lines and at most :data:`SUMMARY_CHARS` characters, cleaned. Values
    that are not strings (null, missing, numbers) are skipped; a huge one is cut before any
    work is done on it."""
    texts = [p for p in parts if isinstance(p, str) and p.strip()]
    if not texts:
        return ""
    # The tail is all that is kept: never split megabytes into lines. Twice the budget leaves
    # room for the CRLFs cleaning folds.
    budget = 2 * SUMMARY_CHARS
    text = "\n".join(t[-budget:] for t in texts)[-budget:]
    lines = clean_text(text).strip("\n").split("\n")
    tail = "\n".join(lines[-SUMMARY_LINES:])
    return tail[-SUMMARY_CHARS:]


def bounded_body(value: object) -> str:
    """A review comment's body: its head, at most :data:`COMMENT_CHARS` characters."""
    if not isinstance(value, str):
        return ""
    text = clean_text(value[: COMMENT_CHARS + 1])
    if len(text) > COMMENT_CHARS:
        text = text[: COMMENT_CHARS - 1] + "\u2026"
    return text


def bounded_name(value: object, fallback: str) -> str:
    """A check's or a user's name: stripped, cleaned, at most :data:`NAME_CHARS` characters;
    ``fallback`` when it is not a non-empty string."""
    text = non_empty_str(value)
    return clean_text(text.strip())[:NAME_CHARS] if text is not None else fallback


def bounded_path(value: object) -> str | None:
    """A file path a comment is on, cleaned and cut; None when there is none."""
    path = non_empty_str(value)
    return clean_text(path)[:PATH_CHARS] if path is not None else None


def positive_int(value: object) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    return None


def login_of(user: object, key: str = "login", fallback: str = "ghost") -> str:
    """A user's login (``key``) from a user object; ``fallback`` for a deleted account."""
    obj = as_object(user)
    return bounded_name(obj.get(key) if obj is not None else None, fallback)
