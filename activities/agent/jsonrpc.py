"""The JSON-RPC dialect of ``codex app-server``: framing only.

One JSON object per line, JSON-RPC 2.0 *without* the ``"jsonrpc"`` field. Three shapes:
request ``{"id", "method", "params"}``, response ``{"id", "result" | "error"}`` and notification
``{"method", "params"}``. Either side sends requests: a message with both ``id`` and ``method``
is a request the receiver must answer, whatever its method, or the sender waits forever.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import cast

from activities.agent.jsonline import JsonObject, parse_object

RequestId = int | str

METHOD_NOT_FOUND = -32601
"""JSON-RPC's "method not found": our answer to any server request we do not support."""
SERVER_ERROR = -32000
"""Implementation-defined error: a request we understood and refuse (no operator present)."""


@dataclass(frozen=True)
class Request:
    id: RequestId
    method: str
    params: JsonObject = field(default_factory=dict[str, object])


@dataclass(frozen=True)
class Notification:
    method: str
    params: JsonObject = field(default_factory=dict[str, object])


@dataclass(frozen=True)
class Response:
    id: RequestId
    result: object = None
    error: JsonObject | None = None

    @property
    def error_message(self) -> str:
        if self.error is None:
            return ""
        message = self.error.get("message")
        return message if isinstance(message, str) else json.dumps(self.error)


Message = Request | Notification | Response


def decode(line: str) -> Message | None:
    """The message on ``line``, or None for anything else (diagnostics, partial JSON)."""
    raw = parse_object(line)
    return None if raw is None else decode_object(raw)


def decode_object(raw: Mapping[str, object]) -> Message | None:
    method = raw.get("method")
    ident = raw.get("id")
    has_id = isinstance(ident, int | str) and not isinstance(ident, bool)
    params = raw.get("params")
    params_obj: JsonObject = (
        cast(JsonObject, params) if isinstance(params, Mapping) else dict[str, object]()
    )
    if isinstance(method, str):
        if has_id:
            return Request(cast(RequestId, ident), method, params_obj)
        return Notification(method, params_obj)
    if has_id and ("result" in raw or "error" in raw):
        error = raw.get("error")
        return Response(
            cast(RequestId, ident),
            raw.get("result"),
            cast(JsonObject, error) if isinstance(error, Mapping) else None,
        )
    return None


def _line(message: Mapping[str, object]) -> str:
    return json.dumps(message, ensure_ascii=False, separators=(",", ":"))


def request(ident: RequestId, method: str, params: Mapping[str, object]) -> str:
    return _line({"id": ident, "method": method, "params": params})


def notification(method: str, params: Mapping[str, object] | None = None) -> str:
    return _line({"method": method} if params is None else {"method": method, "params": params})


def result(ident: RequestId, value: Mapping[str, object]) -> str:
    return _line({"id": ident, "result": value})


def error(ident: RequestId, code: int, message: str) -> str:
    return _line({"id": ident, "error": {"code": code, "message": message}})
