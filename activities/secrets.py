"""Secret resolution and scrubbing, for activities only.

Config payloads carry ``$VAR`` references: no secret ever enters a payload
(docs/architecture.md#where-a-type-goes). The activity that needs a value resolves it here,
and any text it returns (hook output, agent messages, tracker errors) goes through
:class:`Scrubber` first.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping

from temporalio.exceptions import ApplicationError

from jidoka.config import WorkflowConfig, is_env_ref, secret_env_names

MIN_SECRET_LENGTH = 6
"""Shorter values are not scrubbed: replacing every 'a' would make output unreadable."""


class MissingSecretError(ApplicationError):
    def __init__(self, name: str) -> None:
        super().__init__(
            f"environment variable {name} is not set (or empty) on this worker",
            type="MissingSecret",
            non_retryable=True,
        )


def resolve_secret(reference: str, environ: Mapping[str, str] | None = None) -> str:
    """``$NAME`` -> the value of NAME. Raises a non-retryable error naming the variable."""
    env = os.environ if environ is None else environ
    if not is_env_ref(reference):
        raise ApplicationError(
            "secret settings must be $VAR references", type="ConfigInvalid", non_retryable=True
        )
    name = reference[1:]
    value = env.get(name, "")
    if not value:
        raise MissingSecretError(name)
    return value


class Scrubber:
    """Replaces known secret values in text with ``***``."""

    def __init__(self, secrets: Iterable[str]) -> None:
        self._secrets = sorted(
            {s for s in secrets if len(s) >= MIN_SECRET_LENGTH}, key=len, reverse=True
        )

    @classmethod
    def for_config(
        cls, config: WorkflowConfig, environ: Mapping[str, str] | None = None
    ) -> Scrubber:
        env = os.environ if environ is None else environ
        names = set(secret_env_names(config))
        names.update(n for n in DEFAULT_SECRET_NAMES if n in env)
        return cls(env[n] for n in names if env.get(n))

    def __call__(self, text: str) -> str:
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, "***")
        return text


DEFAULT_SECRET_NAMES = (
    "GITHUB_TOKEN",
    "GH_TOKEN",
    "LINEAR_API_KEY",
    "JIRA_API_TOKEN",
    "GITLAB_TOKEN",
    "TEMPORAL_API_KEY",
)
"""Always withheld from agents and hooks, whatever the tracker: a worker's own credentials."""


def withheld_names(config: WorkflowConfig) -> list[str]:
    """Names removed from every agent's and hook's environment."""
    return sorted(set(secret_env_names(config)) | set(DEFAULT_SECRET_NAMES))
