"""How a line reaches its repository over the network (clone, fetch, push).

For a GitHub line the token comes from the tracker's ``$VAR`` and reaches git only through the
inline credential helper of :mod:`activities.git.credentials`: never in a URL, argv,
``.git/config`` or a log. It is offered over HTTPS, and over plain HTTP to this machine only
(``localhost``, a loopback address: a local mirror or proxy, a test server), never in clear
text across a network. Other lines use the repository as configured, with the worker's own git
credentials (SSH keys, a credential manager).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from urllib.parse import urlsplit

from activities.git.credentials import TOKEN_ENV, credential_options
from activities.secrets import resolve_secret
from jidoka.config import GitHubTrackerConfig, WorkflowConfig
from jidoka.models import LoadedWorkflow
from jidoka.workflow_file import is_url


@dataclass(frozen=True)
class RepoAccess:
    remote: str
    """What to push to and fetch from: ``origin``, or the URL the token is offered to."""
    token: str | None = None

    def git_options(self) -> list[str]:
        return credential_options() if self.token is not None else []

    def token_env(self) -> dict[str, str]:
        """Set on the one git process that needs it (the helper reads it by name)."""
        return {TOKEN_ENV: self.token} if self.token is not None else {}


def repo_access(workflow: LoadedWorkflow) -> RepoAccess:
    config: WorkflowConfig = workflow.config
    tracker = config.tracker
    if not isinstance(tracker, GitHubTrackerConfig):
        return RepoAccess(remote="origin")
    repo = config.workspace.repo
    if not (is_url(repo) and carries_token(repo)):
        # A path, an SSH URL, plain HTTP to another host: the worker's own git credentials
        # apply, never the API token.
        return RepoAccess(remote="origin")
    return RepoAccess(remote=repo, token=resolve_secret(tracker.api_key))


def carries_token(url: str) -> bool:
    """Whether the token may be offered to ``url``: HTTPS anywhere, plain HTTP to a loopback
    host only (the token would otherwise cross a network in clear text)."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme == "https":
        return True
    if scheme != "http" or not parts.hostname:
        return False
    if parts.hostname.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(parts.hostname).is_loopback
    except ValueError:
        return False
