"""How a line reaches its repository over the network (clone, fetch, push).

For a GitHub line the token comes from the tracker's ``$VAR`` and reaches git only through the
inline credential helper of :mod:`activities.tracker.git_credentials`: never in a URL, argv,
``.git/config`` or a log. Other lines use the repository as configured, with the worker's own
git credentials (SSH keys, a credential manager).
"""

from __future__ import annotations

from dataclasses import dataclass

from activities.secrets import resolve_secret
from activities.tracker.git_credentials import TOKEN_ENV, credential_options
from jidoka.config import GitHubTrackerConfig, WorkflowConfig
from jidoka.models import LoadedWorkflow
from jidoka.workflow_file import is_url


@dataclass(frozen=True)
class RepoAccess:
    remote: str
    """What to push to and fetch from: ``origin`` or an HTTPS URL."""
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
    if not (is_url(repo) and repo.startswith("https://")):
        # A path or an SSH URL: the worker's own git credentials apply, not the API token.
        return RepoAccess(remote="origin")
    return RepoAccess(remote=repo, token=resolve_secret(tracker.api_key))
