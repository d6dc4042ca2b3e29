"""A fake ``codex app-server`` speaking 0.169.0's wire format, for adapter tests (stdlib only).

It plays one scenario (``FAKE_CODEX_SCENARIO``) and records, one JSON per line in
``FAKE_CODEX_RECORD``: its environment (``env``), every message it received (``received``),
every message it sent (``sent``) and the reply to each of its own server requests (``reply``,
or ``unanswered`` when none came within ``REPLY_TIMEOUT_S``: a test failure, never a hang).

Server requests carry params that validate against the real ServerRequest schema, so the
replies the tests check are replies to realistic requests.
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import time
from collections import deque
from typing import Any

RECORD = os.environ["FAKE_CODEX_RECORD"]
SCENARIO = os.environ.get("FAKE_CODEX_SCENARIO", "complete")
THREAD = "01a21246-0000-7000-8000-00000000fake"
REPLY_TIMEOUT_S = 5.0
NOISE_EVERY_S = 0.3

STDIN = sys.stdin.fileno()
inbox = bytearray()
pending: deque[dict[str, Any]] = deque()
server_ids = iter(range(100, 10_000))
state: dict[str, Any] = {"turn": None, "turns": 0, "noisy": False, "usage": 0}


def record(kind: str, data: object) -> None:
    with open(RECORD, "a", encoding="utf-8") as handle:
        handle.write(json.dumps({"kind": kind, "data": data}) + "\n")


def send(message: dict[str, Any]) -> None:
    record("sent", message)
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


def notify(method: str, params: dict[str, Any]) -> None:
    send({"method": method, "params": params, "emittedAtMs": int(time.time() * 1000)})


def read(timeout: float | None) -> dict[str, Any] | None:
    """The next message from the client; None on timeout; exits on EOF.

    Reads the raw fd with its own buffer: ``select`` on a buffered ``sys.stdin`` would sleep
    on a line Python already buffered."""
    if pending:
        return pending.popleft()
    deadline = None if timeout is None else time.monotonic() + timeout
    while b"\n" not in inbox:
        left = None if deadline is None else max(deadline - time.monotonic(), 0)
        ready, _, _ = select.select([STDIN], [], [], left)
        if not ready:
            return None
        chunk = os.read(STDIN, 65536)
        if not chunk:
            record("eof", {})
            sys.exit(0)
        inbox.extend(chunk)
    end = inbox.index(b"\n")
    line = bytes(inbox[:end])
    del inbox[: end + 1]
    message = json.loads(line)
    record("received", message)
    return message


def ask(method: str, params: dict[str, Any]) -> dict[str, Any]:
    """A server->client request; blocks until the client answers it (as the real one does)."""
    ident = f"srv-{next(server_ids)}"
    send({"id": ident, "method": method, "params": params})
    deadline = time.monotonic() + REPLY_TIMEOUT_S
    while (left := deadline - time.monotonic()) > 0:
        message = read(left)
        if message is None:
            break
        if message.get("id") == ident and "method" not in message:
            record("reply", {"request": method, "reply": message})
            return message
        pending.append(message)
    record("unanswered", {"request": method, "id": ident})
    sys.exit(3)


def breakdown(total: int) -> dict[str, int]:
    output = total // 4
    return {
        "inputTokens": total - output,
        "cachedInputTokens": (total - output) // 2,
        "cacheWriteInputTokens": 0,
        "outputTokens": output,
        "reasoningOutputTokens": output // 2,
        "totalTokens": total,
    }


def usage(total: int) -> None:
    last = total - state["usage"]
    state["usage"] = total
    notify(
        "thread/tokenUsage/updated",
        {
            "threadId": THREAD,
            "turnId": state["turn"],
            "tokenUsage": {
                "total": breakdown(total),
                "last": breakdown(last),
                "modelContextWindow": 272000,
            },
        },
    )


def turn_object(status: str, error: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"id": state["turn"], "items": [], "status": status, "error": error}


def complete(status: str = "completed", error: dict[str, Any] | None = None) -> None:
    notify("turn/completed", {"threadId": THREAD, "turn": turn_object(status, error)})


def commit_and_write_verdict(name: str) -> None:
    with open(name, "w", encoding="utf-8") as handle:
        handle.write("a change made by the fake codex\n")
    subprocess.run(["git", "add", name], check=True)
    subprocess.run(["git", "commit", "-q", "-m", f"add {name}"], check=True)
    os.makedirs(".jidoka", exist_ok=True)
    with open(".jidoka/verdict.json", "w", encoding="utf-8") as handle:
        json.dump({"verdict": "DONE", "summary": "done by the fake"}, handle)


# -- scenarios: what happens after turn/start -----------------------------------------------------


def every_request() -> None:
    workspace = os.getcwd()
    turn = {"threadId": THREAD, "turnId": state["turn"]}
    now = int(time.time() * 1000)
    ask(
        "item/commandExecution/requestApproval",
        {**turn, "itemId": "cmd-1", "startedAtMs": now, "command": "pytest -q", "cwd": workspace},
    )
    ask(
        "item/commandExecution/requestApproval",
        {**turn, "itemId": "cmd-2", "startedAtMs": now, "command": "rm -rf /etc", "cwd": "/etc"},
    )
    ask("item/fileChange/requestApproval", {**turn, "itemId": "fc-1", "startedAtMs": now})
    ask(
        "item/fileChange/requestApproval",
        {**turn, "itemId": "fc-2", "startedAtMs": now, "grantRoot": "/usr"},
    )
    ask(
        "item/permissions/requestApproval",
        {
            **turn,
            "itemId": "perm-1",
            "startedAtMs": now,
            "cwd": workspace,
            "reason": "needs the network",
            "permissions": {"network": {"enabled": True}},
        },
    )
    ask(
        "item/tool/requestUserInput",
        {
            **turn,
            "itemId": "ask-1",
            "isBlocking": True,
            "questions": [
                {"id": "q1", "header": "Database", "question": "Which database should I use?"},
                {"id": "q2", "header": "Scope", "question": "Also migrate the old data?"},
            ],
        },
    )
    ask(
        "mcpServer/elicitation/request",
        {
            "threadId": THREAD,
            "turnId": state["turn"],
            "serverName": "tracker",
            "mode": "form",
            "message": "Pick a label",
            "requestedSchema": {"type": "object", "properties": {}},
        },
    )
    ask(
        "item/tool/call",
        {**turn, "callId": "call-1", "tool": "tracker_comment", "arguments": {"body": "hi"}},
    )
    ask(
        "execCommandApproval",
        {
            "conversationId": THREAD,
            "callId": "legacy-1",
            "command": ["git", "status"],
            "cwd": workspace,
            "parsedCmd": [],
        },
    )
    ask(
        "applyPatchApproval",
        {
            "conversationId": THREAD,
            "callId": "legacy-2",
            "fileChanges": {"/etc/passwd": {"type": "delete", "content": ""}},
        },
    )
    ask("account/chatgptAuthTokens/refresh", {"reason": "unauthorized"})
    ask("bogus/fromTheFuture", {"anything": 1})
    usage(1000)
    usage(2500)
    usage(2500)  # a repeated snapshot
    usage(4000)
    commit_and_write_verdict("feature.txt")
    complete()


def user_input_only() -> None:
    ask(
        "item/tool/requestUserInput",
        {
            "threadId": THREAD,
            "turnId": state["turn"],
            "itemId": "ask-1",
            "isBlocking": True,
            "questions": [{"id": "q1", "header": "DB", "question": "Which database?"}],
        },
    )
    usage(500)
    complete()


def usage_limit() -> None:
    usage(1200)
    notify(
        "account/rateLimits/updated",
        {
            "rateLimits": {
                "limitId": "codex",
                "primary": {
                    "usedPercent": 100,
                    "windowDurationMins": 300,
                    "resetsAt": 1_900_000_000,
                },
                "secondary": {
                    "usedPercent": 40,
                    "windowDurationMins": 10080,
                    "resetsAt": 1_900_500_000,
                },
                "rateLimitReachedType": None,
            }
        },
    )
    complete(
        "failed",
        {"message": "You've hit your usage limit.", "codexErrorInfo": "usageLimitExceeded"},
    )


def continuation() -> None:
    if state["turns"] == 1:
        usage(1000)
        complete()  # no verdict yet: Jidoka must ask for another turn on this thread
    else:
        usage(1800)
        commit_and_write_verdict("second-turn.txt")
        complete()


SCENARIOS = {
    "requests": every_request,
    "user-input": user_input_only,
    "usage-limit": usage_limit,
    "failed": lambda: complete(
        "failed",
        {
            "message": "stream error",
            "codexErrorInfo": {"responseStreamDisconnected": {"httpStatusCode": 502}},
            "additionalDetails": "upstream closed",
        },
    ),
    "unauthorized": lambda: complete(
        "failed", {"message": "401 Unauthorized", "codexErrorInfo": "unauthorized"}
    ),
    "continue": continuation,
    "hang": lambda: state.update(noisy=True),
    "exit-mid-turn": lambda: sys.exit(0),
}


def noise() -> None:
    notify(
        "error",
        {
            "error": {
                "message": "Reconnecting... waiting for network",
                "codexErrorInfo": {"responseStreamDisconnected": {"httpStatusCode": None}},
                "additionalDetails": "Connection failed: error sending request",
            },
            "willRetry": True,
            "threadId": THREAD,
            "turnId": state["turn"],
        },
    )


def main() -> None:
    record("env", sorted(os.environ))
    record("start", {"argv": sys.argv, "cwd": os.getcwd(), "scenario": SCENARIO})
    while True:
        message = read(NOISE_EVERY_S if state["noisy"] else None)
        if message is None:
            noise()
            continue
        method, ident = message.get("method"), message.get("id")
        if method == "initialize":
            if SCENARIO == "silent-start":
                continue  # never answers: the adapter's read timeout must end this
            send(
                {
                    "id": ident,
                    "result": {
                        "userAgent": "jidoka/0.169.0 (Fake; x86_64) (jidoka; 0.1.0)",
                        "codexHome": os.environ.get("CODEX_HOME"),
                        "platformFamily": "unix",
                        "platformOs": "linux",
                    },
                }
            )
        elif method == "thread/start":
            thread = {"id": THREAD, "status": {"type": "idle"}, "cwd": os.getcwd(), "turns": []}
            send({"id": ident, "result": {"thread": thread, "model": "fake-model"}})
            notify("thread/started", {"thread": thread})
        elif method == "turn/start":
            state["turns"] += 1
            state["turn"] = f"turn-{state['turns']}"
            send({"id": ident, "result": {"turn": turn_object("inProgress")}})
            notify("turn/started", {"threadId": THREAD, "turn": turn_object("inProgress")})
            SCENARIOS[SCENARIO]()
        elif method == "turn/interrupt":
            send({"id": ident, "result": {}})
            state["noisy"] = False
            complete("interrupted")
        elif ident is not None and method is not None:
            send({"id": ident, "error": {"code": -32600, "message": f"unknown {method}"}})


if __name__ == "__main__":
    main()
