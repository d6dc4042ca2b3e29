"""The secrets scan of the whole test session: no secret a test configures ever reaches a
workflow history, a log line or a file the session leaves behind.

Jidoka's rule (docs/trust-boundary.md): a secret (a value WORKFLOW.md names as ``$NAME``, a
tracker's ``api_key``, ``agent.env: {NAME: $NAME}``, a token in the worker's environment) never
enters a payload, a log or a workspace. Single tests check it where they think to look; this
scan checks it everywhere, for every test, at the end of the session:

* tests and fixtures :func:`register_secret` every secret value they configure (and
  :func:`allow_secret_in` the files where they put it themselves, such as a script playing an
  agent that found a token); :func:`install_session_secret` adds one of the session's own, in
  the worker's environment, which a real line hands to its agent (``tests/test_secret_scan.py``);
* the sources are the history of every workflow on each session server (read as protobuf
  bytes, so payloads are seen as they are stored: in clear), every log record of the session
  (kept in a temporary file by a root handler), and every file under pytest's ``basetemp`` and
  ``JIDOKA_STATE_DIR``, git's loose objects decompressed (pack files are counted, not read:
  the suite's repositories are local clones and small fetches, whose objects stay loose);
* each secret is looked for in clear and base64-encoded (standard and URL-safe alphabets), at
  each of the three byte alignments it can have inside a longer encoded text;
* each source first shows a canary planted in it (a non-secret string), so a source the scan
  cannot read fails the session instead of passing it vacuously.

A finding names the secret masked (never in clear), the source and the place.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from temporalio import workflow
from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import History
from temporalio.api.workflowservice.v1 import (
    GetWorkflowExecutionHistoryRequest,
    ListClosedWorkflowExecutionsRequest,
    ListOpenWorkflowExecutionsRequest,
)
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode
from temporalio.worker import Worker

MIN_SECRET_LENGTH = 8
"""Shorter values (and their base64 cores) would be found by chance in ordinary bytes."""
SESSION_SECRET_ENV = "SECRET_SCAN_MODEL_KEY"
"""The session's own secret, in the worker's environment from the start of the session. Not a
``JIDOKA_*`` name: worker processes started by tests inherit it like a real credential."""
HISTORY_CONCURRENCY = 20
"""Histories fetched at a time: enough to keep the server busy, few enough for 2 cores."""
CHUNK = 16 << 20
"""Large files and the log are read this many bytes at a time (with an overlap): memory stays
bounded whatever the session wrote."""
BATCH = 4 << 20
"""Small files are searched this many bytes at a time: one search per batch, not per file."""
LOCATIONS_SHOWN = 10
"""Per secret and source in the report; the rest are counted."""

_TO_CANONICAL = bytes.maketrans(b"-_", b"+/")
"""URL-safe base64 mapped onto the standard alphabet: one search finds both encodings (a hit
is then confirmed on the original bytes)."""
_RECORD = b"\x1e"
"""Starts every log record in the log file."""
_TEST_MARK = b"\x1d"
"""Starts the line naming the test that runs from there on."""
_PLAIN_RECORD_KEYS = frozenset(
    vars(logging.LogRecord("", 0, "", 0, "", None, None)).keys() | {"message", "asctime"}
)

CAPTURED_LOGGERS = {
    "jidoka": logging.DEBUG,
    "activities": logging.DEBUG,
    "workflows": logging.DEBUG,
    "runtime": logging.DEBUG,
    "cli": logging.DEBUG,
    "worker": logging.DEBUG,
    "starter": logging.DEBUG,
    "temporalio.activity": logging.INFO,
    "temporalio.workflow": logging.INFO,
    "httpx": logging.INFO,
}
"""Loggers whose records the session keeps below the root's WARNING: Jidoka's own, the
workflow and activity loggers it writes through, and ``httpx``'s request lines (the trackers'
traffic, URLs included). Not the rest of ``temporalio`` at DEBUG: it dumps every activation
(what histories hold), at a cost. A failing test's captured log shows these records too."""


# -------------------------------------------------------------------------------------------
# The registry
# -------------------------------------------------------------------------------------------


@dataclass
class Secret:
    value: str
    origin: str
    """Where it was first registered (``path:line``): what the report points a reader to."""
    allowed_in: set[Path] = field(default_factory=set[Path])
    """Files the test itself put the value in (resolved paths)."""

    @property
    def masked(self) -> str:
        return mask(self.value)


_SECRETS: dict[str, Secret] = {}


def _caller(depth: int) -> str:
    frame = sys._getframe(depth + 1)
    path = Path(frame.f_code.co_filename)
    try:
        shown = path.relative_to(Path.cwd())
    except ValueError:
        shown = path
    return f"{shown}:{frame.f_lineno}"


def register_secret(value: str, *, allowed_in: Iterable[Path] = ()) -> str:
    """Declare ``value`` a secret of this session (a token, an API key a test configures);
    returns it, so a constant can be declared and registered at once."""
    assert len(value) >= MIN_SECRET_LENGTH, f"a secret of {len(value)} chars cannot be scanned"
    secret = _SECRETS.setdefault(value, Secret(value=value, origin=_caller(1)))
    secret.allowed_in.update(Path(os.path.realpath(p)) for p in allowed_in)
    return value


def allow_secret_in(value: str, *paths: Path) -> None:
    """The test itself wrote ``value`` into ``paths`` (an agent script holding a token it
    "found", an agent's dump of the environment WORKFLOW.md gave it): not a leak there."""
    assert value in _SECRETS, "register the secret before allowing it somewhere"
    _SECRETS[value].allowed_in.update(Path(os.path.realpath(p)) for p in paths)


def registered_secrets() -> list[Secret]:
    return list(_SECRETS.values())


def install_session_secret() -> str:
    """The session's own secret, set in this process's environment (the worker's) and
    registered; the same value however often it is asked for."""
    value = os.environ.get(SESSION_SECRET_ENV, "")
    if value not in _SECRETS:
        value = f"sk-scan-{uuid.uuid4().hex}{uuid.uuid4().hex[:8]}"
        os.environ[SESSION_SECRET_ENV] = value
        register_secret(value)
        _SECRETS[value].origin = f"the session's own, ${SESSION_SECRET_ENV} of the worker"
    return value


def mask(value: str) -> str:
    """A secret as a report may show it: a prefix of a long one (``ghp_``, ``sk-``: its
    kind), its length and a digest to tell two apart; never enough to use it."""
    digest = hashlib.sha256(value.encode()).hexdigest()[:10]
    prefix = value[:4] if len(value) >= 20 else ""
    return f"{prefix}…({len(value)} chars, sha256:{digest})"


# -------------------------------------------------------------------------------------------
# Forms and matching
# -------------------------------------------------------------------------------------------


def encoded_forms(value: str) -> dict[str, tuple[bytes, ...]]:
    """Every byte string that betrays ``value``, by the name of its form.

    In clear; and base64-encoded, standard and URL-safe. Inside a longer encoded text (a
    ``user:token`` pair, a JSON document, an HTTP header) the encoding of the value depends on
    its offset modulo 3: for each offset, only the characters that depend on the value's bytes
    alone are kept (the first ones may mix in the byte before, the last ones the byte after).
    """
    raw = value.encode()
    forms: dict[str, tuple[bytes, ...]] = {"in clear": (raw,)}
    for offset in range(3):
        encoded = base64.b64encode(b"\0" * offset + raw)
        start = -(-offset * 4 // 3)
        end = (offset + len(raw)) * 8 // 6
        core = encoded[start:end]
        forms[f"base64 at offset {offset}"] = (core, core.translate(bytes.maketrans(b"+/", b"-_")))
    return forms


@dataclass(frozen=True)
class Needle:
    owner: str
    """The secret's value, or the canary's source name."""
    form: str
    key: bytes
    """What is searched for in the canonical bytes."""
    exact: tuple[bytes, ...]
    """What confirms a hit in the original bytes."""


class Matcher:
    """Finds many needles in bytes: one search per needle (C speed, a few GB/s each on this
    suite's files: faster than ``re`` with an alternation of them all, by far), after folding
    the URL-safe alphabet onto the standard one."""

    def __init__(self, needles: Sequence[Needle]) -> None:
        self.needles = list(needles)
        self.longest = max((len(n.key) for n in self.needles), default=1)

    def find(self, blob: bytes) -> list[tuple[Needle, int]]:
        """Each needle present in ``blob``, with its first offset."""
        canonical = blob.translate(_TO_CANONICAL)
        hits: list[tuple[Needle, int]] = []
        for needle in self.needles:
            if needle.key not in canonical:
                continue
            found = [p for p in (blob.find(e) for e in needle.exact) if p >= 0]
            if found:
                hits.append((needle, min(found)))
        return hits

    def find_in_stream(self, stream: BinaryIO) -> list[tuple[Needle, int]]:
        """Like :meth:`find`, chunk by chunk; chunks overlap so that no match is cut."""
        hits: dict[Needle, int] = {}
        overlap = self.longest - 1
        offset = 0
        tail = b""
        while chunk := stream.read(CHUNK):
            blob = tail + chunk
            for needle, position in self.find(blob):
                hits.setdefault(needle, offset - len(tail) + position)
            tail = blob[-overlap:] if overlap else b""
            offset += len(chunk)
        return list(hits.items())


def needles_for(secrets: Iterable[Secret], canaries: dict[str, str]) -> list[Needle]:
    needles: list[Needle] = []
    for secret in secrets:
        for form, exact in encoded_forms(secret.value).items():
            needles.append(Needle(secret.value, form, exact[0].translate(_TO_CANONICAL), exact))
    for source, value in canaries.items():
        raw = value.encode()
        needles.append(Needle(source, "canary", raw.translate(_TO_CANONICAL), (raw,)))
    return needles


# -------------------------------------------------------------------------------------------
# The log
# -------------------------------------------------------------------------------------------


class LogKeeper(logging.Handler):
    """A root handler keeping every record formatted, in a file (memory stays flat): the
    formatted line, its exception and the record's extra fields (what a JSON formatter of a
    deployment would print)."""

    def __init__(self, path: Path) -> None:
        super().__init__(logging.NOTSET)
        self.path = path
        self.records = 0
        self._file = path.open("ab")
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        if self._file.closed:
            return
        try:
            text = self.format(record)
        except Exception as error:  # a bad format string must not hide the record's data
            text = f"{record.levelname} {record.name}: {record.msg!r} % {record.args!r} ({error})"
        extras = {k: v for k, v in vars(record).items() if k not in _PLAIN_RECORD_KEYS}
        if extras:
            text += f"\n  extra: {extras!r}"
        self._file.write(_RECORD + text.encode("utf-8", "backslashreplace") + b"\n")
        self.records += 1

    def mark_test(self, nodeid: str) -> None:
        self.acquire()
        try:
            if not self._file.closed:
                self._file.write(_TEST_MARK + nodeid.encode("utf-8", "backslashreplace") + b"\n")
        finally:
            self.release()

    def flush(self) -> None:
        self.acquire()
        try:
            if not self._file.closed:
                self._file.flush()
        finally:
            self.release()

    def close(self) -> None:
        self.acquire()
        try:
            self._file.close()
        finally:
            self.release()
        super().close()


def log_context(path: Path, position: int) -> str:
    """Where byte ``position`` of the log file is: the record's number, its level and logger,
    and the test that was running."""
    data = path.read_bytes()[: position + 1]
    number = data.count(_RECORD)
    start = data.rfind(_RECORD) + 1
    header = data[start : start + 120].split(b"\n", 1)[0].split(b":", 1)[0].decode(errors="replace")
    mark = data.rfind(_TEST_MARK)
    test = data[mark + 1 :].split(b"\n", 1)[0].decode(errors="replace") if mark >= 0 else None
    return f"log record {number} ({header})" + (f", during {test}" if test else ", before any test")


# -------------------------------------------------------------------------------------------
# The session's scan
# -------------------------------------------------------------------------------------------


@workflow.defn(name="SecretScanCanary", sandboxed=False)
class CanaryWorkflow:
    """Echoes the canary: its history holds it in the input and in the result."""

    @workflow.run
    async def run(self, canary: str) -> str:
        return canary


@dataclass(frozen=True)
class Finding:
    secret: str
    form: str
    source: str
    where: str


@dataclass
class Stats:
    servers: list[str] = field(default_factory=list[str])
    histories: int = 0
    history_bytes: int = 0
    history_s: float = 0.0
    log_records: int = 0
    log_bytes: int = 0
    files: int = 0
    file_bytes: int = 0
    git_objects: int = 0
    packs_not_read: int = 0
    unreadable: int = 0
    files_s: float = 0.0
    total_s: float = 0.0


class SessionScan:
    """One test session's scan: its log keeper, its canaries, its findings. ``secrets``:
    what it looks for (the registry; a test of the scan gives its own)."""

    def __init__(self, secrets: Callable[[], Iterable[Secret]] = registered_secrets) -> None:
        self._secrets_of = secrets
        self.nonce = uuid.uuid4().hex[:12]
        self.folder = Path(tempfile.mkdtemp(prefix="jidoka-secret-scan-"))
        self.keeper = LogKeeper(self.folder / "session.log")
        self.canaries: dict[str, str] = {}
        self.canaries_seen: set[str] = set()
        self.findings: list[Finding] = []
        self.problems: list[str] = []
        self.roots: list[Path] = []
        self.stats = Stats()
        self.summary: list[str] = []
        self._levels: dict[str, int] = {}

    # -- set-up ------------------------------------------------------------------------------

    def canary(self, source: str) -> str:
        """The canary of ``source`` (created on first use): what proves the source was read."""
        return self.canaries.setdefault(
            source, f"secret-scan-canary-{source.replace(' ', '-')}-{self.nonce}"
        )

    def start_logs(self) -> None:
        """Keep every record from now on, and plant the first log canary."""
        root = logging.getLogger()
        root.addHandler(self.keeper)
        for name, level in CAPTURED_LOGGERS.items():
            logger = logging.getLogger(name)
            self._levels[name] = logger.level
            if logger.level == logging.NOTSET or logger.level > level:
                logger.setLevel(level)
        logging.getLogger("tests.secret_scan").warning("start: %s", self.canary("log at start"))

    def mark_test(self, nodeid: str) -> None:
        self.keeper.mark_test(nodeid)

    def plant_files(self, basetemp: Path, state_dir: Path) -> None:
        """The roots to read, each with a canary file; and a canary only a decompressed git
        object holds (written by git itself, then deleted from the worktree)."""
        self.roots = [Path(os.path.realpath(basetemp)), Path(os.path.realpath(state_dir))]
        folder = basetemp / f"secret-scan-{self.nonce}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "canary.txt").write_text(self.canary("basetemp files") + "\n")
        state_dir.mkdir(parents=True, exist_ok=True)
        (state_dir / f"secret-scan-canary-{self.nonce}.txt").write_text(
            self.canary("state files") + "\n"
        )
        repo = folder / "repo"
        subprocess.run(["git", "init", "-q", str(repo)], check=True)
        subprocess.run(
            ["git", "hash-object", "-w", "--stdin"],
            cwd=repo,
            input=self.canary("git objects").encode(),
            check=True,
            capture_output=True,
        )

    async def plant_history_canary(self, client: Client, server: str) -> tuple[str, str]:
        """A workflow that takes the canary as its input and returns it, run to its end by a
        worker of its own: its history holds the canary in payloads, as histories would hold a
        secret. (Not a workflow left for no worker: the time-skipping server never skips past
        a workflow task nobody picked up, even once terminated.) Its workflow and run ids."""
        task_queue = f"secret-scan-canary-{self.nonce}"
        async with Worker(client, task_queue=task_queue, workflows=[CanaryWorkflow]):
            handle = await client.start_workflow(
                CanaryWorkflow.run,
                self.canary(f"history on the {server}"),
                id=f"secret-scan-canary-{self.nonce}",
                task_queue=task_queue,
            )
            await handle.result()
        assert handle.first_execution_run_id is not None
        return handle.id, handle.first_execution_run_id

    # -- the scans ---------------------------------------------------------------------------

    def _secrets(self) -> dict[str, Secret]:
        return {secret.value: secret for secret in self._secrets_of()}

    def _matcher(self, source: str) -> Matcher:
        """Every secret, and the canaries planted in ``source`` (each search costs a pass over
        the bytes: the others' canaries are not looked for where they cannot be)."""
        canaries = {k: v for k, v in self.canaries.items() if _canary_source(k) == source}
        return Matcher(needles_for(self._secrets().values(), canaries))

    def _note(self, needle: Needle, source: str, where: str) -> None:
        """A canary is seen; a secret is a finding."""
        if needle.form == "canary":
            self.canaries_seen.add(needle.owner)
        else:
            self.findings.append(Finding(needle.owner, needle.form, source, where))

    async def scan_server(self, client: Client, server: str) -> None:
        """Every run of every workflow on ``server``, before it shuts down. A server that
        cannot be read is a problem of the report (and its canary goes missing), not an error
        that would skip the server's shutdown."""
        try:
            runs = await _list_runs(client)
        except RPCError as error:
            self.problems.append(f"could not list the workflows of the {server}: {error}")
            return
        await self.scan_runs(client, server, runs)

    async def scan_runs(self, client: Client, server: str, runs: Sequence[tuple[str, str]]) -> None:
        """The histories of ``runs`` (workflow id, run id), :data:`HISTORY_CONCURRENCY` at a
        time."""
        started = time.perf_counter()
        self.stats.servers.append(server)
        matcher = self._matcher("history")
        gate = asyncio.Semaphore(HISTORY_CONCURRENCY)

        async def one(workflow_id: str, run_id: str) -> None:
            async with gate:
                try:
                    await self._scan_history(client, server, workflow_id, run_id, matcher)
                except RPCError as error:
                    if error.status is not RPCStatusCode.NOT_FOUND:  # deleted since: nothing
                        self.problems.append(
                            f"could not read the history of {workflow_id}/{run_id} on the "
                            f"{server}: {error}"
                        )

        await asyncio.gather(*(one(w, r) for w, r in runs))
        self.stats.histories += len(runs)
        self.stats.history_s += time.perf_counter() - started

    async def _scan_history(
        self, client: Client, server: str, workflow_id: str, run_id: str, matcher: Matcher
    ) -> None:
        token = b""
        while True:
            response = await client.workflow_service.get_workflow_execution_history(
                GetWorkflowExecutionHistoryRequest(
                    namespace=client.namespace,
                    execution=WorkflowExecution(workflow_id=workflow_id, run_id=run_id),
                    next_page_token=token,
                )
            )
            blobs = [response.history.SerializeToString()]
            blobs += [blob.data for blob in response.raw_history]
            for blob in blobs:
                self.stats.history_bytes += len(blob)
                for needle, _ in matcher.find(blob):
                    event = _event_of(response.history, needle)
                    where = f"{server}: workflow {workflow_id} (run {run_id}), {event}"
                    self._note(needle, "history", where)
            token = response.next_page_token
            if not token:
                return

    def scan_logs(self) -> None:
        logging.getLogger("tests.secret_scan").warning("end: %s", self.canary("log at end"))
        self.keeper.flush()
        self.stats.log_records = self.keeper.records
        self.stats.log_bytes = self.keeper.path.stat().st_size
        with self.keeper.path.open("rb") as stream:
            hits = self._matcher("log").find_in_stream(stream)
        for needle, position in hits:
            self._note(needle, "log", log_context(self.keeper.path, position))

    def scan_files(self) -> None:
        """Every file under the roots. Small ones are searched together, a batch at a time
        (joined by a NUL byte, which no needle holds, so no match spans two files); a batch
        with a hit is searched again file by file to say where."""
        started = time.perf_counter()
        matcher = self._matcher("file")
        secrets = self._secrets()
        seen: set[tuple[int, int]] = set()
        batch: list[tuple[Path, bool, bytes]] = []
        size = 0
        for root in self.roots:
            for entry in _files(root, self):
                try:
                    info = entry.stat(follow_symlinks=False)
                except OSError:  # gone since it was listed
                    continue
                if (info.st_dev, info.st_ino) in seen:
                    continue  # a hard link (git's local clones): read once
                seen.add((info.st_dev, info.st_ino))
                path = Path(entry.path)
                read = self._read_file(path, info, matcher, secrets)
                if read is not None:
                    batch.append((path, read[0], read[1]))
                    size += len(read[1])
                if size >= BATCH:
                    self._scan_batch(batch, matcher, secrets)
                    batch, size = [], 0
        self._scan_batch(batch, matcher, secrets)
        self.stats.files_s = time.perf_counter() - started

    def _read_file(
        self, path: Path, info: os.stat_result, matcher: Matcher, secrets: dict[str, Secret]
    ) -> tuple[bool, bytes] | None:
        """A small file's bytes (a loose git object's inflated), with whether it is an object;
        None for a file searched on its own (a large one) or not searched (a pack)."""
        kind = _git_kind(path)
        if kind == "pack":
            self.stats.packs_not_read += 1
            return None
        if kind == "pack index":
            return None
        try:
            with path.open("rb") as stream:
                self.stats.files += 1
                self.stats.file_bytes += info.st_size
                if kind == "loose object":
                    self.stats.git_objects += 1
                    return True, _inflate(stream.read())
                if info.st_size <= BATCH:
                    return False, stream.read()
                self._report_file(path, False, matcher.find_in_stream(stream), secrets)
                return None
        except OSError:
            self.stats.unreadable += 1
            return None

    def _scan_batch(
        self, batch: list[tuple[Path, bool, bytes]], matcher: Matcher, secrets: dict[str, Secret]
    ) -> None:
        hits = matcher.find(b"\0".join(data for _, _, data in batch))
        if not hits:
            return
        again = Matcher([needle for needle, _ in hits])
        for path, is_object, data in batch:
            self._report_file(path, is_object, again.find(data), secrets)

    def _report_file(
        self,
        path: Path,
        is_object: bool,
        hits: list[tuple[Needle, int]],
        secrets: dict[str, Secret],
    ) -> None:
        if not hits:
            return
        resolved = Path(os.path.realpath(path))
        for needle, position in hits:
            if needle.form != "canary" and resolved in secrets[needle.owner].allowed_in:
                continue  # the test put it there itself
            where = f"{path} (git object)" if is_object else f"{path}, byte {position}"
            self._note(needle, "file", where)

    # -- the verdict -------------------------------------------------------------------------

    def finish(self) -> str | None:
        """Read the logs and the files (the servers were read as they shut down), check every
        canary, and stop keeping records. The failure report, or None when all is clean."""
        started = time.perf_counter()
        self.scan_logs()
        self.scan_files()
        self.stats.total_s += time.perf_counter() - started + self.stats.history_s
        self.stop()
        for source in sorted(set(self.canaries) - self.canaries_seen):
            self.problems.append(
                f"the scan did not read {source}: its canary {self.canaries[source]!r} was not "
                "found there"
            )
        self.summary = self._summary()
        if not self.findings and not self.problems:
            return None
        return self.report()

    def stop(self) -> None:
        """Stop keeping records and remove the log (it may hold what leaked). Idempotent."""
        logging.getLogger().removeHandler(self.keeper)
        for name, level in self._levels.items():
            logging.getLogger(name).setLevel(level)
        self._levels.clear()
        self.keeper.close()
        shutil.rmtree(self.folder, ignore_errors=True)

    def report(self) -> str:
        lines: list[str] = []
        if self.findings:
            lines.append(f"secret scan: {len(self.findings)} leak(s) of registered secrets")
            by_secret: dict[str, list[Finding]] = {}
            for finding in self.findings:
                by_secret.setdefault(finding.secret, []).append(finding)
            secrets = self._secrets()
            for value, findings in by_secret.items():
                secret = secrets[value]
                lines.append(f"  secret {secret.masked} (registered at {secret.origin}):")
                for finding in findings[:LOCATIONS_SHOWN]:
                    lines.append(f"    {finding.form}, {finding.source}: {finding.where}")
                if len(findings) > LOCATIONS_SHOWN:
                    lines.append(f"    ... and {len(findings) - LOCATIONS_SHOWN} more")
        if self.problems:
            lines.append("secret scan: sources not read")
            lines += [f"  {problem}" for problem in self.problems]
        return "\n".join([*lines, *self.summary])

    def _summary(self) -> list[str]:
        s = self.stats
        servers = ", ".join(s.servers) or "no server"
        return [
            f"secret scan: {len(self._secrets())} secret(s) in {s.total_s:.1f}s; "
            f"{s.histories} histories ({s.history_bytes / 1e6:.1f} MB, {servers}) in "
            f"{s.history_s:.1f}s; {s.log_records} log records ({s.log_bytes / 1e6:.1f} MB); "
            f"{s.files} files ({s.file_bytes / 1e6:.1f} MB, {s.git_objects} git objects "
            f"inflated) in {s.files_s:.1f}s; not read: {s.packs_not_read} git packs, "
            f"{s.unreadable} unreadable files"
        ]


# -------------------------------------------------------------------------------------------
# Helpers
# -------------------------------------------------------------------------------------------


async def _list_runs(client: Client) -> list[tuple[str, str]]:
    """Every run of every workflow: visibility's list; on the time-skipping test server, which
    has no list, the older lists of open and of closed runs."""
    try:
        return [(e.id, e.run_id) async for e in client.list_workflows(page_size=1000)]
    except RPCError as error:
        if error.status is not RPCStatusCode.UNIMPLEMENTED:
            raise
    service = client.workflow_service
    runs: list[tuple[str, str]] = []
    token = b""
    while True:
        opened = await service.list_open_workflow_executions(
            ListOpenWorkflowExecutionsRequest(
                namespace=client.namespace, maximum_page_size=1000, next_page_token=token
            )
        )
        runs += [(e.execution.workflow_id, e.execution.run_id) for e in opened.executions]
        if not (token := opened.next_page_token):
            break
    while True:
        closed = await service.list_closed_workflow_executions(
            ListClosedWorkflowExecutionsRequest(
                namespace=client.namespace, maximum_page_size=1000, next_page_token=token
            )
        )
        runs += [(e.execution.workflow_id, e.execution.run_id) for e in closed.executions]
        if not (token := closed.next_page_token):
            break
    return runs


def _event_of(history: History, needle: Needle) -> str:
    """The event of ``history`` that holds the needle (searched again, event by event: only
    when something was found)."""
    for event in history.events:
        if Matcher([needle]).find(event.SerializeToString()):
            return f"event {event.event_id} ({EventType.Name(event.event_type)})"
    return "in its raw history"


def _files(root: Path, scan: SessionScan) -> Iterator[os.DirEntry[str]]:
    """Every regular file under ``root``, links not followed, the session log left out."""
    stack = [str(root)]
    while stack:
        folder = stack.pop()
        try:
            entries = list(os.scandir(folder))
        except OSError:
            scan.stats.unreadable += 1
            continue
        for entry in entries:
            try:
                if entry.is_dir(follow_symlinks=False):
                    stack.append(entry.path)
                elif entry.is_file(follow_symlinks=False) and entry.path != str(scan.keeper.path):
                    yield entry
            except OSError:
                scan.stats.unreadable += 1


def _canary_source(name: str) -> str:
    """``history``, ``log`` or ``file``: where the canary called ``name`` is planted."""
    return name.split(" ", 1)[0] if name.startswith(("history ", "log ")) else "file"


def _git_kind(path: Path) -> str | None:
    """``loose object``, ``pack``, ``pack index`` for what lives in a git ``objects`` folder;
    None for any other file."""
    parent = path.parent
    hexadecimal = all(c in "0123456789abcdef" for c in parent.name + path.name)
    if parent.parent.name == "objects" and len(parent.name) == 2 and hexadecimal:
        return "loose object" if len(path.name) in (38, 62) else None
    if parent.name == "pack" and parent.parent.name == "objects":
        return "pack" if path.suffix == ".pack" else "pack index"
    return None


def _inflate(data: bytes) -> bytes:
    try:
        return zlib.decompress(data)
    except zlib.error:
        return data
