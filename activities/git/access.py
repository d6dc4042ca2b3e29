"""How a line reaches its repository over the network (clone, fetch, push).

For a GitHub line the token comes from the tracker's ``$VAR`` and reaches git only through the
inline credential helper of :mod:`activities.git.credentials`: never in a URL, argv,
``.git/config`` or a log. It is offered over HTTPS, and over plain HTTP to this machine only
(``localhost``, a loopback address: a local mirror or proxy, a test server), never in clear
text across a network. A GitLab line's token, and the ``review.gitlab`` token of a Linear or
Jira line reviewed on GitLab, reach git the same way, for the configured GitLab host only.
Other lines use the repository as configured, with the worker's own git credentials (SSH
keys, a credential manager).

The location always comes from WORKFLOW.md, never from a workspace's ``origin`` (the agent can
rewrite that), and only the sealed repository (:mod:`activities.git.sealed`) talks to it.
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass
from urllib.parse import urlsplit

from temporalio.exceptions import ApplicationError

from activities.git.credentials import TOKEN_ENV, credential_options
from activities.secrets import resolve_secret
from jidoka.config import (
    GitHubTrackerConfig,
    GitLabTrackerConfig,
    JiraTrackerConfig,
    LinearTrackerConfig,
    WorkflowConfig,
)
from jidoka.models import LoadedWorkflow
from jidoka.workflow_file import is_url, resolve_path


@dataclass(frozen=True)
class RepoAccess:
    remote: str
    """What to push to and fetch from: the configured URL or path (``workspace.repo``)."""
    token: str | None = None

    def git_options(self) -> list[str]:
        return credential_options() if self.token is not None else []

    def token_env(self) -> dict[str, str]:
        """Set on the one git process that needs it (the helper reads it by name)."""
        return {TOKEN_ENV: self.token} if self.token is not None else {}


def repo_access(workflow: LoadedWorkflow) -> RepoAccess:
    config: WorkflowConfig = workflow.config
    source = repo_source(workflow)
    offer = _token_offer(config)
    if offer is None:
        return RepoAccess(remote=source)
    api_key, host_of = offer
    if not (is_url(source) and carries_token(source)):
        # A path, an SSH URL, plain HTTP to another host: the worker's own git credentials
        # apply, never the API token.
        return RepoAccess(remote=source)
    if host_of is not None and not _same_host(source, host_of):
        # A GitLab token is offered to the configured GitLab only, never to another host.
        return RepoAccess(remote=source)
    return RepoAccess(remote=source, token=resolve_secret(api_key))


def _token_offer(config: WorkflowConfig) -> tuple[str, str | None] | None:
    """The token git may be offered (its ``$VAR``), and the URL whose host alone may get it
    (None: any host over HTTPS, as a GitHub line's); None when git gets no token.

    A GitHub or GitLab line offers its tracker's token; a Linear or Jira line reviewed on
    GitLab (``review.gitlab``) offers that project's token to that instance: its repository
    is the review project's, pushed to over HTTPS with the same token. A Linear or Jira line
    reviewed on GitHub (``review.github``) uses the worker's own git credentials."""
    tracker = config.tracker
    if isinstance(tracker, GitHubTrackerConfig):
        return tracker.api_key, None
    if isinstance(tracker, GitLabTrackerConfig):
        return tracker.api_key, tracker.base_url
    gitlab = config.review.gitlab if config.review is not None else None
    if isinstance(tracker, LinearTrackerConfig | JiraTrackerConfig) and gitlab is not None:
        return gitlab.api_key, gitlab.base_url
    return None


def _same_host(url: str, base_url: str) -> bool:
    return (urlsplit(url).hostname or "").lower() == (urlsplit(base_url).hostname or "").lower()


def repo_source(workflow: LoadedWorkflow) -> str:
    """``workspace.repo`` as this worker reaches it: a URL, or an absolute path."""
    repo = workflow.config.workspace.repo
    if is_url(repo):
        return repo
    try:
        return resolve_path(repo, workflow.base_dir, os.environ)
    except KeyError as missing:
        raise ApplicationError(
            f"workspace.repo refers to ${missing.args[0]}, which is not set on this worker",
            type="ConfigInvalid",
            non_retryable=True,
        ) from None


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
