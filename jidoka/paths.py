"""Path globs for protected paths (``judge.protected_paths``) and an issue's ``allow:`` labels.

The rules people already know from ``.gitignore``: ``*`` and ``?`` stay within one folder,
``**`` crosses folders (``tests/**`` is everything under ``tests``), and a glob without a ``/``
matches that name in any folder (``conftest.py`` is every ``conftest.py``; ``/conftest.py`` only
the top one). A glob that matches a folder matches everything in it. Paths are the
repository-relative paths git prints, with ``/`` separators. Pure: used by the evidence activity
and by policy alike.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import lru_cache


@lru_cache(maxsize=512)
def _compile(glob: str, ignore_case: bool) -> re.Pattern[str]:
    pattern = glob.strip()
    anywhere = "/" not in pattern.rstrip("/")
    pattern = pattern.removeprefix("./").lstrip("/").rstrip("/").removesuffix("/**")
    parts: list[str] = []
    i = 0
    while i < len(pattern):
        char = pattern[i]
        if pattern.startswith("**/", i):
            parts.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("**", i):
            parts.append(".*")
            i += 2
        elif char == "*":
            parts.append("[^/]*")
            i += 1
        elif char == "?":
            parts.append("[^/]")
            i += 1
        else:
            parts.append(re.escape(char))
            i += 1
    body = "".join(parts)
    if anywhere:
        body = f"(?:.*/)?{body}"
    return re.compile(f"{body}(?:/.*)?", re.IGNORECASE if ignore_case else 0)


def matches(path: str, glob: str, *, ignore_case: bool = False) -> bool:
    """Whether ``path`` (or a folder above it) matches ``glob``."""
    return _compile(glob, ignore_case).fullmatch(path) is not None


def first_match(path: str, globs: Iterable[str], *, ignore_case: bool = False) -> str | None:
    """The first glob ``path`` matches, or None."""
    for glob in globs:
        if matches(path, glob, ignore_case=ignore_case):
            return glob
    return None
