"""How Jidoka answers Codex's server->client requests: the headless approval and user-input
policy (docs/agents.md#codex-agentkind-codex), for ``@openai/codex`` 0.169.0.

Nobody watches an attempt, so every request gets an immediate answer from a fixed rule, and an
unknown one gets a JSON-RPC error: no turn can wait forever on us.

=================================  ==========================================================
request                            answer
=================================  ==========================================================
command approval (v2 and legacy)   accept for the session when ``agent.codex.sandbox`` is
                                   ``workspace-write``, the command runs inside the workspace
                                   and asks for no network (unless ``network_access``);
                                   decline otherwise (the agent goes on without it)
file-change approval (v2, legacy)  accept for the session when the sandbox is
                                   ``workspace-write`` and every path (``grantRoot``, patched
                                   files) is inside the workspace; decline otherwise
permissions request                grant nothing (``permissions: {}``): the sandbox stays as
                                   configured
user input, MCP elicitation        ``agent.codex.user_input: fail`` (default): refuse, and the
                                   attempt fails at once with the questions in its detail;
                                   ``answer``: reply that no operator is available and that
                                   the agent should decide, or write AWAITING_ANSWERS
dynamic tool call                  ``success: false``: Jidoka advertises no dynamic tools
anything else                      JSON-RPC error -32601 "unsupported by jidoka"
=================================  ==========================================================

``agent.codex.approval_policy`` decides how often Codex asks (``never``, the default, asks
nothing: the table is then a safety net); the table decides the answer. Under ``on-request``
an accepted command may be one the model wants to run outside the sandbox: keep ``never``
unless the worker itself is disposable.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import assert_never

from activities.agent import jsonline, jsonrpc
from activities.agent.jsonline import JsonObject
from activities.agent.jsonrpc import Request
from jidoka.config import CodexSettings

NO_OPERATOR_ANSWER = (
    "No operator is available to answer questions during this run. Decide for yourself and "
    "continue. If you cannot continue without a human, write the verdict AWAITING_ANSWERS "
    "(or the verdict your instructions give for questions) with your questions in "
    "`.jidoka/verdict.json`, then stop."
)
UNSUPPORTED = "unsupported by jidoka"


@dataclass(frozen=True)
class Answer:
    line: str
    """The reply to write to the app-server's stdin."""
    summary: str
    """What was decided, for the transcript."""
    fail: str | None = None
    """Set when the request ends the attempt as a failure; the detail operators read."""


def answer(request: Request, settings: CodexSettings, workspace: Path) -> Answer:
    """The reply to one server request. Total: every method gets an answer."""
    params = request.params
    match request.method:
        case "item/commandExecution/requestApproval":
            ok, why = _command_allowed(params, settings, workspace)
            return _decision(request, "acceptForSession" if ok else "decline", why)
        case "item/fileChange/requestApproval":
            ok, why = _paths_allowed(_grant_root(params), settings, workspace)
            return _decision(request, "acceptForSession" if ok else "decline", why)
        case "execCommandApproval":
            ok, why = _command_allowed(params, settings, workspace)
            return _decision(request, "approved_for_session" if ok else _denied(why), why)
        case "applyPatchApproval":
            paths = [*_grant_root(params), *_patched_paths(params)]
            ok, why = _paths_allowed(paths, settings, workspace)
            return _decision(request, "approved_for_session" if ok else _denied(why), why)
        case "item/permissions/requestApproval":
            reply = jsonrpc.result(request.id, {"permissions": {}, "scope": "turn"})
            return Answer(reply, "granted no extra permissions")
        case "item/tool/requestUserInput":
            return _user_input(request, settings)
        case "mcpServer/elicitation/request":
            return _elicitation(request, settings)
        case "item/tool/call":
            tool = jsonline.text(params, "tool") or "?"
            message = f"Jidoka advertises no dynamic tools; '{tool}' is unknown."
            reply = jsonrpc.result(
                request.id,
                {"success": False, "contentItems": [{"type": "inputText", "text": message}]},
            )
            return Answer(reply, f"unknown dynamic tool '{tool}': success false")
        case _:
            # account/chatgptAuthTokens/refresh, attestation/generate, and whatever a later
            # version adds: an error is an answer, silence would hang the turn.
            reply = jsonrpc.error(request.id, jsonrpc.METHOD_NOT_FOUND, UNSUPPORTED)
            return Answer(reply, f"{request.method}: unsupported, JSON-RPC error")


def _decision(request: Request, decision: str | Mapping[str, object], why: str) -> Answer:
    reply = jsonrpc.result(request.id, {"decision": decision})
    shown = decision if isinstance(decision, str) else next(iter(decision))
    return Answer(reply, f"{request.method}: {shown} ({why})")


def _denied(why: str) -> Mapping[str, object]:
    # 0.169.0's legacy ReviewDecision spells a decline as an object with a reason.
    return {"denied": {"rejection": f"declined by jidoka's headless policy: {why}"}}


def _command_allowed(
    params: JsonObject, settings: CodexSettings, workspace: Path
) -> tuple[bool, str]:
    if settings.sandbox != "workspace-write":
        return False, f"sandbox is {settings.sandbox}, approvals are only given in workspace-write"
    if jsonline.text(params, "kind") == "humanCommand":
        return False, "a humanCommand approval needs a person"
    if jsonline.obj(params, "networkApprovalContext") is not None and not settings.network_access:
        return False, "network access is off (agent.codex.network_access)"
    cwd = jsonline.text(params, "cwd")
    if cwd is not None and not _inside(cwd, workspace):
        return False, f"runs in {cwd}, outside the workspace"
    return True, "inside the workspace-write posture"


def _paths_allowed(paths: list[str], settings: CodexSettings, workspace: Path) -> tuple[bool, str]:
    if settings.sandbox != "workspace-write":
        return False, f"sandbox is {settings.sandbox}, approvals are only given in workspace-write"
    outside = [path for path in paths if not _inside(path, workspace)]
    if outside:
        return False, f"{outside[0]} is outside the workspace"
    return True, "inside the workspace-write posture"


def _grant_root(params: JsonObject) -> list[str]:
    root = jsonline.text(params, "grantRoot")
    return [root] if root else []


def _patched_paths(params: JsonObject) -> list[str]:
    changes = jsonline.obj(params, "fileChanges")
    return [str(path) for path in changes] if changes is not None else []


def _inside(path: str, workspace: Path) -> bool:
    """Whether ``path`` (absolute, or relative to the workspace) stays inside the workspace,
    following symlinks that exist: a link out of the workspace is outside."""
    root = workspace.resolve()
    try:
        target = (root / path).resolve() if not os.path.isabs(path) else Path(path).resolve()
    # ValueError: a NUL, or a lone surrogate (not encodable); RuntimeError: a symlink loop
    except (ValueError, OSError, RuntimeError):
        return False
    return target == root or root in target.parents


def _questions(params: JsonObject) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    for item in jsonline.items(params, "questions"):
        ident = jsonline.text(item, "id")
        if ident is not None:
            found.append((ident, jsonline.text(item, "question") or ""))
    return found


def _user_input(request: Request, settings: CodexSettings) -> Answer:
    questions = _questions(request.params)
    asked = "; ".join(f"{q!r}" for _, q in questions) or "no question text"
    match settings.user_input:
        case "answer":
            answers = {ident: {"answers": [NO_OPERATOR_ANSWER]} for ident, _ in questions}
            reply = jsonrpc.result(request.id, {"answers": answers})
            return Answer(reply, f"user input ({asked}): answered that no operator is available")
        case "fail":
            reply = jsonrpc.error(
                request.id, jsonrpc.SERVER_ERROR, "no operator is available; the attempt ends"
            )
            return Answer(
                reply,
                f"user input ({asked}): refused, the attempt fails",
                fail=(
                    f"codex asked for user input ({asked}) and no operator is available: the "
                    "attempt fails (agent.codex.user_input: fail; 'answer' replies with a fixed "
                    "text instead)"
                ),
            )
        case _:
            assert_never(settings.user_input)


def _elicitation(request: Request, settings: CodexSettings) -> Answer:
    server = jsonline.text(request.params, "serverName") or "?"
    message = jsonline.text(request.params, "message") or "no message"
    match settings.user_input:
        case "answer":
            # An elicitation wants content shaped by the MCP server's schema; a fixed text
            # cannot be that, so the closest honest answer is to decline it.
            reply = jsonrpc.result(request.id, {"action": "decline", "content": None})
            return Answer(reply, f"MCP elicitation from {server} ({message!r}): declined")
        case "fail":
            reply = jsonrpc.result(request.id, {"action": "cancel", "content": None})
            return Answer(
                reply,
                f"MCP elicitation from {server} ({message!r}): cancelled, the attempt fails",
                fail=(
                    f"MCP server {server} asked for user input ({message!r}) and no operator "
                    "is available: the attempt fails (agent.codex.user_input: fail)"
                ),
            )
        case _:
            assert_never(settings.user_input)
