"""Validates what Jidoka writes to ``codex app-server`` against the JSON schema that the pinned
binary generates for itself (``codex app-server generate-json-schema``).

* a request must match its ``ClientRequest`` variant, and every top-level ``params`` key must be
  declared there (the schema allows unknown keys; a drifted field such as
  ``turn/start.title`` is exactly what this catches);
* a notification must match ``ClientNotification``;
* a reply to a server request must match that request's ``*Response.json``, or be a JSON-RPC
  error; a reply to a method the schema does not know must be error -32601.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from jsonschema import Draft7Validator


def _load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())


class CodexSchema:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._client_requests = _load(directory / "ClientRequest.json")
        self._client_notifications = _load(directory / "ClientNotification.json")
        self._server_requests = _load(directory / "ServerRequest.json")
        self._error = _load(directory / "JSONRPCError.json")

    @staticmethod
    def _variant(root: Mapping[str, Any], method: str) -> dict[str, Any] | None:
        for entry in root["oneOf"]:
            if method in entry["properties"]["method"]["enum"]:
                return {"definitions": root.get("definitions", {}), **entry}
        return None

    @staticmethod
    def _errors(schema: Mapping[str, Any], value: Any) -> list[str]:
        validator = Draft7Validator(schema)
        return [
            f"{'/'.join(str(p) for p in error.absolute_path) or '<root>'}: {error.message}"
            for error in validator.iter_errors(value)
        ]

    def client_message(
        self, message: Mapping[str, Any], server_methods: Mapping[Any, str]
    ) -> list[str]:
        """Problems with one message the client sent (empty: valid). ``server_methods`` maps the
        ids of the server's requests to their methods, to check replies."""
        method = message.get("method")
        if "jsonrpc" in message:
            return ["0.169.0 speaks JSON-RPC without the 'jsonrpc' field"]
        if method is not None and "id" in message:
            variant = self._variant(self._client_requests, method)
            if variant is None:
                return [f"{method}: not a ClientRequest of this version"]
            problems = self._errors(variant, message)
            ref = variant["properties"]["params"]["$ref"].rsplit("/", 1)[-1]
            declared = self._client_requests["definitions"][ref].get("properties", {})
            problems += [
                f"{method}: param '{key}' is not in {ref}"
                for key in message.get("params", {})
                if key not in declared
            ]
            return problems
        if method is not None:
            return self._errors(self._client_notifications, message)
        if "id" not in message:
            return ["neither a request, a notification nor a response"]
        answered = server_methods.get(message["id"])
        if answered is None:
            return [f"a response to {message['id']!r}, which the server never asked"]
        variant = self._variant(self._server_requests, answered)
        if "error" in message:
            problems = self._errors(self._error, message)
            if variant is None and message["error"].get("code") != -32601:
                problems.append(f"{answered}: unknown methods get -32601")
            return problems
        if variant is None:
            return [f"{answered} is not a ServerRequest of this version: expected an error"]
        params_ref = variant["properties"]["params"]["$ref"].rsplit("/", 1)[-1]
        response = params_ref.removesuffix("Params") + "Response.json"
        return [
            f"{answered}: {problem}"
            for problem in self._errors(_load(self.directory / response), message.get("result"))
        ]

    def server_request(self, message: Mapping[str, Any]) -> list[str]:
        """Problems with a request a fake server sent (keeps the fakes honest)."""
        variant = self._variant(self._server_requests, message["method"])
        if variant is None:
            return []  # deliberately unknown methods are allowed
        return [f"{message['method']}: {problem}" for problem in self._errors(variant, message)]
