"""Push a work branch over HTTPS with a token that never touches the command line, the remote
URL, the repository's config or the logs.

How: git asks credential helpers for a username and password when the server answers 401. We
give git one helper, defined inline with ``-c credential.helper=...``, whose *text* names an
environment variable (``JIDOKA_GIT_TOKEN``) and whose *output* is the token. That variable is set
on the git process only, so the token lives in that process's environment and in the helper's
stdout pipe to git, nowhere else: not in argv (``ps``, ``GIT_TRACE``), not in ``.git/config``, not
in the URL git prints in its errors. Whatever git prints is scrubbed all the same.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Mapping
from urllib.parse import urlsplit

from activities.process import Tail, group_alive, kill_group
from activities.secrets import Scrubber

logger = logging.getLogger("jidoka.git")

TOKEN_ENV = "JIDOKA_GIT_TOKEN"
"""Set on the git process only; the helper script refers to it by name."""
TOKEN_USERNAME = "x-access-token"
"""The username GitHub expects with an installation or personal access token."""
PUSH_TIMEOUT_S = 300.0
OUTPUT_CHARS = 4000

CREDENTIAL_HELPER = (
    '!f() { test "$1" = get || exit 0; '
    f"printf 'username=%s\\n' '{TOKEN_USERNAME}'; "
    f"printf 'password=%s\\n' \"${TOKEN_ENV}\"; }}; f"
)
"""Answers git's ``get`` with the token from the environment; ignores ``store``/``erase`` (there
is nothing to store: the token comes from the worker's secret every time)."""

_WITHHELD_ENV = ("GIT_ASKPASS", "SSH_ASKPASS", TOKEN_ENV)
"""Never inherited: an askpass program could prompt or answer instead of our helper."""

_AUTH_FAILURE = re.compile(
    r"Authentication failed|could not read (Username|Password)|"
    r"returned error: 40[13]|HTTP 40[13]|Invalid username or password|Permission to .* denied",
    re.IGNORECASE,
)
_TRANSIENT_FAILURE = re.compile(
    r"Could not resolve host|Connection refused|Connection reset|Connection timed out|"
    r"Operation timed out|Failed to connect|early EOF|RPC failed|"
    r"returned error: 5\d\d|HTTP 5\d\d|unexpected disconnect|The remote end hung up",
    re.IGNORECASE,
)


class GitPushError(Exception):
    """A push that did not land. ``output_tail`` is git's scrubbed output."""

    def __init__(
        self,
        message: str,
        *,
        exit_code: int | None,
        output_tail: str,
        auth_failed: bool = False,
        retryable: bool = False,
    ) -> None:
        super().__init__(f"{message}\n{output_tail}".rstrip())
        self.message = message
        self.exit_code = exit_code
        self.output_tail = output_tail
        self.auth_failed = auth_failed
        self.retryable = retryable


def redact_url(url: str) -> str:
    """``https://user:secret@host/x`` -> ``https://***@host/x``, for messages."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"***@{host}" + (f":{parts.port}" if parts.port else "")
    return parts._replace(netloc=netloc).geturl()


def push_command(remote_url: str, branch: str, *, with_token: bool) -> list[str]:
    """The argv of the push. It holds no secret by construction: the helper names the
    variable, never its value."""
    refspec = f"refs/heads/{branch}:refs/heads/{branch}"
    config = credential_options() if with_token else []
    return ["git", *config, "push", "--", remote_url, refspec]


def credential_options() -> list[str]:
    """``-c`` options that make git take the token from ``JIDOKA_GIT_TOKEN`` (set it on that
    git process only, see :func:`push_environment`). Used for clone and fetch too."""
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


def push_environment(base: Mapping[str, str], token: str | None) -> dict[str, str]:
    env = {k: v for k, v in base.items() if k not in _WITHHELD_ENV}
    # git must fail rather than wait for a human on a terminal that is not there.
    env["GIT_TERMINAL_PROMPT"] = "0"
    env["GCM_INTERACTIVE"] = "never"
    if token is not None:
        env[TOKEN_ENV] = token
    return env


def _check_inputs(remote_url: str, branch: str, token: str | None) -> None:
    if token is not None and not token:
        raise ValueError("token must be None or non-empty")
    if not branch or branch.startswith("-") or any(c.isspace() for c in branch):
        raise GitPushError(f"not a branch name: {branch!r}", exit_code=None, output_tail="")
    if remote_url.startswith("-"):
        raise GitPushError(
            f"not a remote: {redact_url(remote_url)!r}", exit_code=None, output_tail=""
        )
    if "://" in remote_url and urlsplit(remote_url).password is not None:
        raise GitPushError(
            f"refusing a remote URL with embedded credentials ({redact_url(remote_url)}): "
            "pass the token separately",
            exit_code=None,
            output_tail="",
        )


async def push_branch(
    workspace: str,
    branch: str,
    *,
    remote_url: str,
    token: str | None,
    env: Mapping[str, str],
    timeout_s: float = PUSH_TIMEOUT_S,
) -> None:
    """``git push <remote_url> refs/heads/<branch>:refs/heads/<branch>`` in ``workspace``.

    A plain push: a branch already up to date succeeds without writing; a rejected
    (non-fast-forward) push fails. With ``token``, HTTPS authentication goes through the
    inline credential helper; without, git uses whatever the environment provides (SSH
    keys, a local path). Raises :class:`GitPushError` with git's scrubbed output.
    """
    _check_inputs(remote_url, branch, token)
    scrub = Scrubber([token] if token else [])

    def clean(text: str) -> str:
        text = scrub(text)
        # The Scrubber skips very short values; a token is a secret whatever its length.
        return text.replace(token, "***") if token else text

    argv = push_command(remote_url, branch, with_token=token is not None)
    proc = await asyncio.create_subprocess_exec(
        *argv,
        cwd=workspace,
        env=push_environment(env, token),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        start_new_session=True,
    )
    tail = Tail(OUTPUT_CHARS)

    async def pump() -> None:
        assert proc.stdout is not None
        while chunk := await proc.stdout.read(65536):
            tail.add(chunk.decode("utf-8", "replace"))

    reader = asyncio.create_task(pump())
    try:
        await asyncio.wait_for(proc.wait(), timeout=timeout_s)
    except TimeoutError:
        await kill_group(proc)
        reader.cancel()
        raise GitPushError(
            f"git push of {branch} to {redact_url(remote_url)} timed out after {timeout_s:.0f}s",
            exit_code=None,
            output_tail=clean(tail.text()),
            retryable=True,
        ) from None
    except asyncio.CancelledError:
        await kill_group(proc)
        reader.cancel()
        raise
    if group_alive(proc.pid):
        # A credential helper or remote helper left behind must not outlive the push.
        await kill_group(proc, grace_s=0.5)
    try:
        await asyncio.wait_for(reader, timeout=2)
    except TimeoutError:
        reader.cancel()
    output = clean(tail.text()).strip()
    if proc.returncode == 0:
        logger.info("pushed %s to %s: %s", branch, redact_url(remote_url), output[-300:])
        return
    auth_failed = bool(_AUTH_FAILURE.search(output))
    retryable = not auth_failed and bool(_TRANSIENT_FAILURE.search(output))
    reason = "authentication failed" if auth_failed else f"exit code {proc.returncode}"
    logger.warning("git push of %s failed (%s): %s", branch, reason, output[-300:])
    raise GitPushError(
        f"git push of {branch} to {redact_url(remote_url)} failed ({reason})",
        exit_code=proc.returncode,
        output_tail=output,
        auth_failed=auth_failed,
        retryable=retryable,
    )
