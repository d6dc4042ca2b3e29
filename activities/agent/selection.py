"""Choosing the adapter for a line's ``agent`` section (``agent.kind`` and ``agent.preset``).

Kept apart from :mod:`activities.agent.adapters` because it knows every adapter, while each
adapter module only knows the contract.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import assert_never

from activities.agent.adapters import SCRIPTED_COMMAND, AgentAdapter, CommandAdapter, CommandProfile
from activities.agent.claude import ClaudeAdapter, refused_command
from activities.agent.codex import CodexAdapter
from activities.agent.presets import PresetAdapter
from jidoka.config import AgentConfig
from jidoka.outcomes import AgentKind


@dataclass(frozen=True)
class Unavailable:
    """This worker cannot run the configured agent; ``reason`` says why, for humans."""

    reason: str


def select_adapter(agent: AgentConfig, environ: Mapping[str, str]) -> AgentAdapter | Unavailable:
    """``environ`` is the worker's environment (Codex leaves a ``CODEX_HOME`` found there)."""
    match agent.kind:
        case AgentKind.COMMAND:
            return _command_adapter(agent)
        case AgentKind.SCRIPTED:
            # The scenario travels in the environment, so a custom agent.command sees it too.
            env = {"JIDOKA_SCENARIO": agent.scenario} if agent.scenario else {}
            return CommandAdapter(
                CommandProfile(command=agent.command or SCRIPTED_COMMAND, env=env)
            )
        case AgentKind.CODEX:
            return CodexAdapter(agent, environ)
        case AgentKind.CLAUDE:
            refused = refused_command(agent.command)
            return ClaudeAdapter(agent) if refused is None else Unavailable(refused)
        case _:
            assert_never(agent.kind)


def _command_adapter(agent: AgentConfig) -> AgentAdapter | Unavailable:
    match agent.preset:
        case None:
            if agent.command is None:
                return Unavailable("agent.command is required when agent.kind is 'command'")
            return CommandAdapter(CommandProfile(command=agent.command, usage=agent.usage))
        case "gemini" | "opencode" | "aider":
            return PresetAdapter(agent.preset, agent)
        case _:
            assert_never(agent.preset)
