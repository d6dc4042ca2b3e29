# pyright: strict
"""Closing keywords: the words that make a forge close an issue by itself (pure).

GitHub and GitLab close an issue when a change request whose description, or a commit whose
message, says ``Fixes #12`` (``Closes``, ``Resolves``, ``Implements``, and their forms) lands
on the default branch; GitLab's Jira integration does the same for ``Resolves ENG-12``. That
close happens behind Jidoka's guarded transition and without its evidence. An agent writes
commit messages and the summary Jidoka quotes, so:

* every text of the agent's that Jidoka writes to a forge is made inert (:func:`inert`): the
  keyword keeps its look but no longer matches;
* the commit messages of the work are read for closing references (:func:`references`), and
  one that names any issue other than the one worked on holds the work for a person
  (:func:`others`).
"""

from __future__ import annotations

import re

ZERO_WIDTH = "\u200b"

_KEYWORD = r"(?:clos(?:e|es|ed|ing)|fix(?:|es|ed|ing)|resolv(?:e|es|ed|ing)|implement(?:|s|ed|ing))"
_REFERENCE = (
    r"(?:https?://\S+?/(?:-/)?issues/\d+"  # an issue's URL (GitHub, GitLab)
    r"|(?:[\w.-]+/)*[\w.-]+#\d+"  # owner/repo#12, group/sub/project#12
    r"|#\d+"  # #12
    r"|(?-i:[A-Z][A-Z0-9_]+-\d+))"  # ENG-12 (a Jira key, through GitLab's Jira integration)
)
_CLOSING = re.compile(
    rf"\b(?P<keyword>{_KEYWORD})\b\s*:?\s*(?:issues?\s+)?"
    rf"(?P<refs>{_REFERENCE}(?:\s*(?:,|and|&)?\s*{_REFERENCE})*)",
    re.IGNORECASE,
)
_ONE_REFERENCE = re.compile(_REFERENCE, re.IGNORECASE)
MAX_REFERENCES = 20
UNREAD = "(commit messages too many or too long to read whole)"
"""Stands for the references of messages Jidoka could not read: held like a reference, since
one could hide past the cut."""


def references(text: str) -> list[str]:
    """The issue references ``text`` closes (``#12``, ``acme/app#3``, ``ENG-12``, a URL), each
    once, in order; at most :data:`MAX_REFERENCES`."""
    found: dict[str, None] = {}
    for match in _CLOSING.finditer(text):
        for ref in _ONE_REFERENCE.findall(match.group("refs")):
            found.setdefault(ref, None)
            if len(found) >= MAX_REFERENCES:
                return list(found)
    return list(found)


def refers_to(reference: str, identifier: str | None, url: str | None) -> bool:
    """Whether ``reference`` names the issue with this ``identifier`` (``widgets#12``,
    ``ENG-12``) or ``url``: an agent's "Fixes #12" on issue 12 closes nothing else."""
    if reference == UNREAD:
        return False
    if url and reference.rstrip("/") == url.rstrip("/"):
        return True
    if not identifier:
        return False
    if reference.casefold() == identifier.casefold():
        return True
    number = re.fullmatch(r".*#(\d+)", identifier)
    if number is None:
        return False
    own = number.group(1)
    if reference == f"#{own}":
        return True
    name = identifier.rsplit("#", 1)[0]
    tail = re.fullmatch(r"(?:.*/)?([\w.-]+)#(\d+)", reference)
    if tail is not None:
        return tail.group(1).casefold() == name.casefold() and tail.group(2) == own
    issue_url = re.fullmatch(r"https?://\S+?/([\w.-]+)/(?:-/)?issues/(\d+)", reference)
    return (
        issue_url is not None
        and issue_url.group(1).casefold() == name.casefold()
        and issue_url.group(2) == own
    )


def others(text: str, identifier: str | None, url: str | None) -> list[str]:
    """The closing references in ``text`` to issues other than this one."""
    return [ref for ref in references(text) if not refers_to(ref, identifier, url)]


def inert(text: str) -> str:
    """``text`` with each closing keyword that names an issue broken by a zero-width space
    after its first letter: it reads the same, and no forge closes anything it names. A
    keyword that names no issue ("Fixed the bug") is left as written."""

    def broken(match: re.Match[str]) -> str:
        keyword = match.group("keyword")
        return keyword[0] + ZERO_WIDTH + match.group(0)[1:]

    return _CLOSING.sub(broken, text)
