"""The session's secrets scan (``tests/support/secret_scan.py``): its pieces, fast, on secrets
of their own (unknown to the session's scan, so planting them fails nothing); and a real line
that hands the session's own secret to its agent, which the session's scan then looks for
everywhere.
"""

from __future__ import annotations

import base64
import io
import logging
import subprocess
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from temporalio.client import Client

from activities.agent.adapters import SCRIPTED_COMMAND
from activities.host_state import transcripts
from tests.support import secret_scan
from tests.support.linekit import eventually, factory, make_line, start_line
from tests.support.secret_scan import (
    SESSION_SECRET_ENV,
    Matcher,
    Secret,
    SessionScan,
    encoded_forms,
    mask,
    needles_for,
)


def a_secret(*allowed: Path) -> Secret:
    """A fresh token-shaped secret; ``allowed``: files the test itself puts it in."""
    return Secret(
        value=f"ghp_{uuid.uuid4().hex}{uuid.uuid4().hex[:4]}",
        origin="tests/test_secret_scan.py",
        allowed_in={p.resolve() for p in allowed},
    )


def found(secret: Secret, blob: bytes) -> list[str]:
    return [needle.form for needle, _ in Matcher(needles_for([secret], {})).find(blob)]


# -- forms, matching, masking -----------------------------------------------------------------


@pytest.mark.parametrize("prefix", ["", "a", "ab", "x-access-token:", '{"auth": "Bearer '])
@pytest.mark.parametrize("encode", [base64.b64encode, base64.urlsafe_b64encode])
def test_a_secret_is_found_base64_encoded_at_any_offset(
    prefix: str, encode: Callable[[bytes], bytes]
) -> None:
    secret = a_secret()
    encoded = encode((prefix + secret.value + '"}').encode())
    assert found(secret, b"noise " + encoded + b" noise")
    assert found(secret, f"header: {prefix}{secret.value}".encode()) == ["in clear"]
    assert not found(a_secret(), b"noise " + encoded + b" noise")  # another secret: not there


def test_every_form_is_long_enough_to_mean_something() -> None:
    forms = encoded_forms("12345678")  # the shortest secret the registry accepts
    assert len(forms) == 4
    assert all(len(variant) >= 8 for variants in forms.values() for variant in variants)


def test_a_secret_cut_by_a_chunk_boundary_is_found(monkeypatch: pytest.MonkeyPatch) -> None:
    secret = a_secret()
    monkeypatch.setattr(secret_scan, "CHUNK", 7)
    stream = io.BytesIO(b"x" * 5 + secret.value.encode() + b"y" * 30)
    hits = Matcher(needles_for([secret], {})).find_in_stream(stream)
    assert [(needle.form, position) for needle, position in hits] == [("in clear", 5)]


def test_a_mask_tells_secrets_apart_and_never_shows_one() -> None:
    for value in ("ghp_" + "a1b2c3d4" * 5, "short-secret", "sk-0123456789abcdefghij"):
        shown = mask(value)
        assert value not in shown
        assert not any(value[i : i + 6] in shown for i in range(len(value) - 5))
        assert f"({len(value)} chars" in shown
    assert mask("ghp_" + "a" * 36) != mask("ghp_" + "b" * 36)


def test_registering_needs_a_value_long_enough_to_scan() -> None:
    with pytest.raises(AssertionError, match="cannot be scanned"):
        secret_scan.register_secret("short")


# -- the scan of a session, on folders of its own ------------------------------------------


def session_scan(tmp_path: Path, *secrets: Secret) -> SessionScan:
    scan = SessionScan(lambda: secrets)
    scan.start_logs()
    scan.plant_files(tmp_path / "basetemp", tmp_path / "state")
    return scan


def hash_object(repo: Path, text: str) -> None:
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    subprocess.run(
        ["git", "hash-object", "-w", "--stdin"],
        cwd=repo,
        input=text.encode(),
        check=True,
        capture_output=True,
    )


def test_a_clean_session_shows_every_canary_and_passes(tmp_path: Path) -> None:
    secret = a_secret()
    scan = session_scan(tmp_path, secret)
    (tmp_path / "basetemp" / "notes.txt").write_text("nothing to see\n")
    assert scan.finish() is None
    assert scan.canaries_seen == set(scan.canaries)
    assert {"log at start", "log at end", "basetemp files", "state files", "git objects"} <= set(
        scan.canaries
    )
    assert scan.stats.files >= 3 and scan.stats.git_objects >= 1
    assert not scan.folder.exists()  # the kept log is gone


def test_a_source_not_read_fails_the_scan(tmp_path: Path) -> None:
    scan = session_scan(tmp_path)
    (tmp_path / "state" / f"secret-scan-canary-{scan.nonce}.txt").unlink()
    logging.getLogger().removeHandler(scan.keeper)  # as a test replacing root's handlers would
    report = scan.finish()
    assert report is not None
    assert "did not read state files" in report
    assert "did not read log at end" in report
    assert "did not read basetemp files" not in report


def test_leaks_are_reported_masked_with_where_they_are(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    secret = a_secret()
    scan = session_scan(tmp_path, secret)
    scan.mark_test(request.node.nodeid)
    (tmp_path / "basetemp" / "prompt.md").write_text(f"the key is {secret.value}\n")
    hash_object(tmp_path / "state" / "sealed", f"token={secret.value}\n")
    basic = base64.b64encode(f"x-access-token:{secret.value}".encode()).decode()
    logging.getLogger("activities.tracker.http").debug("Authorization: Basic %s", basic)
    report = scan.finish()

    assert report is not None and secret.value not in report and basic not in report
    assert f"secret {secret.masked} (registered at tests/test_secret_scan.py)" in report
    assert f"in clear, file: {tmp_path / 'basetemp' / 'prompt.md'}, byte 11" in report
    assert "in clear, file: " in report and "(git object)" in report
    logged = [f for f in scan.findings if f.source == "log"]
    assert [f.form for f in logged] == ["base64 at offset 0"]  # len("x-access-token:") % 3
    assert "(DEBUG activities.tracker.http)" in logged[0].where
    assert f"during {request.node.nodeid}" in logged[0].where


def test_a_file_the_test_put_the_secret_in_is_not_a_leak(tmp_path: Path) -> None:
    script = tmp_path / "basetemp" / "agent.py"
    secret = a_secret(script)
    scan = session_scan(tmp_path, secret)
    script.write_text(f"print('found a token: {secret.value}')\n")
    assert scan.finish() is None


async def test_a_history_holding_a_secret_is_found(client: Client) -> None:
    secret = a_secret()
    scan = SessionScan(lambda: [secret])
    try:
        basic = base64.b64encode(f"x-access-token:{secret.value}".encode()).decode()
        probe = await client.start_workflow(
            "SecretScanProbe",
            {"headers": {"Authorization": f"Basic {basic}"}},
            id=f"secret-scan-probe-{uuid.uuid4().hex[:8]}",
            task_queue=f"secret-scan-probe-{uuid.uuid4().hex[:8]}",
        )
        await probe.terminate("probe")
        canary = await scan.plant_history_canary(client, "dev server")
        assert probe.first_execution_run_id is not None
        await scan.scan_runs(
            client, "dev server", [(probe.id, probe.first_execution_run_id), canary]
        )
    finally:
        scan.stop()
    assert scan.canaries_seen == {"history on the dev server"}
    [finding] = scan.findings
    assert (finding.form, finding.source) == ("base64 at offset 0", "history")
    assert f"workflow {probe.id}" in finding.where
    assert "EVENT_TYPE_WORKFLOW_EXECUTION_STARTED" in finding.where


# -- the session's own secret through a real line -----------------------------------------------

ECHOING_AGENT = (
    # An agent that shows its model key, as a CLI might in a progress line or an error: Jidoka
    # scrubs it from what it keeps. Then the scripted agent does the work.
    'printf \'{"event": "progress", "message": "model key %s"}\\n\' "$MODEL_API_KEY"; '
    'echo "model key: $MODEL_API_KEY" >&2; '
    f"exec {SCRIPTED_COMMAND}"
)


async def test_a_line_hands_the_session_secret_to_its_agent_and_keeps_it_nowhere(
    client: Client, tmp_path: Path
) -> None:
    """The session's secret (in this worker's environment, registered by conftest) goes to the
    agent through ``agent.env: {MODEL_API_KEY: $SECRET_SCAN_MODEL_KEY}``; the session's scan
    then looks for it in this line's histories, the logs, the workspace and the worker's
    state. Here: the agent really had it (its transcript shows it scrubbed), and it ships."""
    value = secret_scan.install_session_secret()
    kit = make_line(
        tmp_path,
        {"agent": {"command": ECHOING_AGENT, "env": {"MODEL_API_KEY": f"${SESSION_SECRET_ENV}"}}},
    )
    kit.add_issue("SCAN-1", "ship")
    async with factory(client) as f:
        handle = await start_line(f, kit)

        async def state() -> str:
            return kit.state_of("SCAN-1")

        await eventually(state, lambda s: s == "Done", what="SCAN-1 shipped")
        history = await client.get_workflow_handle(kit.workflow_id("SCAN-1")).fetch_history()
        await handle.terminate("test done")

    [transcript] = transcripts(kit.workspace("SCAN-1")).glob("*.ndjson")
    text = transcript.read_text()
    assert "model key ***" in text  # the agent printed the real value: it was handed over
    assert value not in text
    events = b"".join(event.SerializeToString() for event in history.events)
    assert not Matcher(needles_for(secret_scan.registered_secrets(), {})).find(events)
