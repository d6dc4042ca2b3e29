"""The shipped Temporal binaries start offline with Jidoka's search attributes registered."""

from __future__ import annotations

from temporalio.api.operatorservice.v1 import ListSearchAttributesRequest
from temporalio.testing import WorkflowEnvironment

from jidoka import search_attributes
from runtime.temporal import register_search_attributes


async def _custom_attributes(env: WorkflowEnvironment) -> set[str]:
    response = await env.client.operator_service.list_search_attributes(
        ListSearchAttributesRequest(namespace=env.client.namespace)
    )
    return set(response.custom_attributes)


async def test_dev_server_has_search_attributes(dev_env: WorkflowEnvironment) -> None:
    names = await _custom_attributes(dev_env)
    assert {key.name for key in search_attributes.ALL} <= names


async def test_registration_is_idempotent_on_a_real_cluster(dev_env: WorkflowEnvironment) -> None:
    assert await register_search_attributes(dev_env.client) == []
