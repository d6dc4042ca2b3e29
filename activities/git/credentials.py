"""How a token reaches git over HTTPS without touching the command line, the remote URL, the
repository's config or the logs.

How: git asks credential helpers for a username and password when the server answers 401. We
give git one helper, defined inline with ``-c credential.helper=...``, whose *text* names an
environment variable (``JIDOKA_GIT_TOKEN``) and whose *output* is the token. That variable is set
on the git process only, so the token lives in that process's environment and in the helper's
stdout pipe to git, nowhere else: not in argv (``ps``, ``GIT_TRACE``), not in ``.git/config``, not
in the URL git prints in its errors. Whatever git prints is scrubbed all the same.
"""

from __future__ import annotations

from urllib.parse import urlsplit

TOKEN_ENV = "JIDOKA_GIT_TOKEN"
"""Set on the git process only; the helper script refers to it by name."""
TOKEN_USERNAME = "x-access-token"
"""The username GitHub expects with an installation or personal access token."""
CREDENTIAL_HELPER = (
    '!f() { test "$1" = get || exit 0; '
    f"printf 'username=%s\\n' '{TOKEN_USERNAME}'; "
    f"printf 'password=%s\\n' \"${TOKEN_ENV}\"; }}; f"
)
"""Answers git's ``get`` with the token from the environment; ignores ``store``/``erase`` (there
is nothing to store: the token comes from the worker's secret every time)."""


def redact_url(url: str) -> str:
    """``https://user:secret@host/x`` -> ``https://***@host/x``, for messages."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"***@{host}" + (f":{parts.port}" if parts.port else "")
    return parts._replace(netloc=netloc).geturl()


def credential_options() -> list[str]:
    """``-c`` options that make git take the token from ``JIDOKA_GIT_TOKEN`` (set on that one
    git process only, see :class:`activities.git.access.RepoAccess`): clone, fetch and push."""
    return [
        # An empty value first clears every helper from the user's or system config (a
        # keychain could otherwise answer with other credentials, or store ours).
        "-c",
        "credential.helper=",
        "-c",
        f"credential.helper={CREDENTIAL_HELPER}",
        "-c",
        "core.askPass=",
    ]
