"""The Web UI link the CLI prints (``jidoka why``, ``jidoka issue status``) leads to the UI of
the server it read the history from, or says it is not known; never a guess. The record of a
dev server jidoka started is what tells its UI's port (``runtime/devserver.py``); the same
check on a real ``jidoka server`` is in ``test_server.py``."""

from __future__ import annotations

import dataclasses

from cli.common import WebUi, web_ui_for
from runtime.devserver import ServerRecord

RECORD = ServerRecord(
    server_pid=1,
    server_started=None,
    owner_pid=1,
    owner_started=None,
    owner="jidoka server",
    shared=True,
    ip="127.0.0.1",
    port=7300,
    ui_port=8300,
    db_path="/tmp/t.db",
    log_path="/tmp/t.log",
    started_at="2026-12-03T10:00:00+00:00",
)


def test_a_dev_server_jidoka_started_links_to_its_own_ui_port() -> None:
    for target in ("localhost:7300", "127.0.0.1:7300"):
        ui = web_ui_for(target, explicit=None, record=RECORD)
        assert ui == WebUi("http://localhost:8300")
    assert (
        ui.link("jidoka-issue-demo-DEMO-2", "default")
        == "http://localhost:8300/namespaces/default/workflows/jidoka-issue-demo-DEMO-2"
    )


def test_a_headless_one_says_it_has_no_ui() -> None:
    headless = dataclasses.replace(RECORD, ui_port=None)
    ui = web_ui_for("localhost:7300", explicit=None, record=headless)
    assert ui.url is None
    assert ui.link("w") == (
        "unknown (the jidoka server dev server at localhost:7300 runs headless, without a Web UI)"
    )


def test_a_server_jidoka_did_not_start_is_unknown_unless_named() -> None:
    for target, record in (
        ("localhost:7233", None),  # a `temporal server start-dev` of its own
        ("temporal.internal:7233", RECORD),  # another host: a local record says nothing of it
        ("localhost:7233", RECORD),  # another port
    ):
        ui = web_ui_for(target, explicit=None, record=record)
        assert ui.url is None, target
        assert f"the Temporal server at {target} was not started by jidoka" in ui.link("w")
        assert "set JIDOKA_UI_URL" in ui.link("w")
    named = web_ui_for("temporal.internal:7233", explicit="https://ui.internal/", record=None)
    assert named.link("w", "prod") == "https://ui.internal/namespaces/prod/workflows/w"


def test_temporal_cloud_links_to_the_cloud_ui() -> None:
    ui = web_ui_for("acme.a1b2c.tmprl.cloud:7233", explicit=None, record=None)
    assert ui.link("w", "acme.a1b2c") == (
        "https://cloud.temporal.io/namespaces/acme.a1b2c/workflows/w"
    )
