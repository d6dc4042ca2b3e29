"""A git smart-HTTP server: ``git http-backend`` run as a CGI by an in-process HTTP server (a
thread) that demands HTTP Basic auth with the token as the password, like GitHub does.

``credentials_seen`` records every ``user:password`` a client sent (decoded), so tests can
prove the token really was in play without it appearing anywhere else.
"""

from __future__ import annotations

import base64
import io
import os
import shutil
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from activities.git.credentials import TOKEN_USERNAME

REAL_GIT = shutil.which("git") or "git"
REPO_NAME = "widgets.git"


@dataclass
class GitServer:
    root: Path
    """``GIT_PROJECT_ROOT``: bare repositories live directly under it."""
    token: str
    name: str = REPO_NAME
    credentials_seen: list[str] = field(default_factory=list[str])
    httpd: ThreadingHTTPServer | None = None

    @property
    def bare(self) -> Path:
        """The served bare repository."""
        return self.root / self.name

    @property
    def url(self) -> str:
        assert self.httpd is not None
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/{self.name}"

    def sha(self, ref: str) -> str | None:
        """The commit ``ref`` (``refs/heads/...``) names in the served repository, if any."""
        result = subprocess.run(
            [REAL_GIT, "--git-dir", str(self.bare), "rev-parse", "--verify", "-q", ref],
            capture_output=True,
            text=True,
            check=False,
        )
        return result.stdout.strip() or None


def _read_chunked(stream: io.BufferedIOBase) -> bytes:
    body = b""
    while True:
        size = int(stream.readline().split(b";")[0].strip() or b"0", 16)
        if size == 0:
            stream.readline()
            return body
        body += stream.read(size)
        stream.readline()


def _handler(server: GitServer) -> type[BaseHTTPRequestHandler]:
    expected = "Basic " + base64.b64encode(f"{TOKEN_USERNAME}:{server.token}".encode()).decode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self._serve()

        def do_POST(self) -> None:
            self._serve()

        def log_message(self, format: str, *args: object) -> None:
            pass

        def _send(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
            self.send_response(status)
            for name, value in headers:
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _serve(self) -> None:
            if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                body = _read_chunked(self.rfile)
            else:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            auth = self.headers.get("Authorization")
            if auth is not None:
                server.credentials_seen.append(base64.b64decode(auth.split()[-1]).decode())
            if auth != expected:
                self._send(
                    401,
                    [("WWW-Authenticate", 'Basic realm="jidoka-test"')],
                    b"authentication required\n",
                )
                return
            path, _, query = self.path.partition("?")
            env = {
                "PATH": os.environ.get("PATH", ""),
                "GIT_PROJECT_ROOT": str(server.root),
                "GIT_HTTP_EXPORT_ALL": "1",
                "GATEWAY_INTERFACE": "CGI/1.1",
                "SERVER_PROTOCOL": "HTTP/1.1",
                "REQUEST_METHOD": self.command,
                "PATH_INFO": path,
                "QUERY_STRING": query,
                "CONTENT_TYPE": self.headers.get("Content-Type", ""),
                "CONTENT_LENGTH": str(len(body)),
                "REMOTE_USER": TOKEN_USERNAME,  # enables receive-pack (push)
                "REMOTE_ADDR": "127.0.0.1",
            }
            if encoding := self.headers.get("Content-Encoding"):
                env["HTTP_CONTENT_ENCODING"] = encoding
            if protocol := self.headers.get("Git-Protocol"):
                env["GIT_PROTOCOL"] = protocol
            cgi = subprocess.run(
                [REAL_GIT, "http-backend"], input=body, env=env, capture_output=True, check=False
            )
            out = cgi.stdout
            split = out.find(b"\r\n\r\n")
            head, payload = (out[:split], out[split + 4 :]) if split >= 0 else out.split(b"\n\n", 1)
            status, headers = 200, []
            for line in head.splitlines():
                name, _, value = line.decode("latin-1").partition(":")
                if name.lower() == "status":
                    status = int(value.split()[0])
                else:
                    headers.append((name, value.strip()))
            self._send(status, headers, payload)

    return Handler


@contextmanager
def serve_git(
    root: Path, token: str, *, source: Path | None = None, name: str = REPO_NAME
) -> Iterator[GitServer]:
    """Serve ``root/<name>`` (a bare repository: a mirror of ``source`` when given, else
    empty on ``main``) on ``127.0.0.1`` in a thread, behind Basic auth with ``token``."""
    root.mkdir(parents=True, exist_ok=True)
    if source is not None:
        subprocess.run(
            [REAL_GIT, "clone", "-q", "--bare", str(source), str(root / name)],
            check=True,
            capture_output=True,
        )
    else:
        subprocess.run(
            [REAL_GIT, "init", "-q", "--bare", "-b", "main", str(root / name)],
            check=True,
            capture_output=True,
        )
    server = GitServer(root=root, token=token, name=name)
    server.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(server))
    thread = threading.Thread(target=server.httpd.serve_forever, name="git-server", daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.httpd.shutdown()
        server.httpd.server_close()
        thread.join(timeout=5)
