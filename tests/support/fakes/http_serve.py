"""Serving an in-process fake over real HTTP: the fakes answer ``httpx.Request`` objects (so a
test can also use them as a ``MockTransport``), and this turns one into a local server on an
ephemeral port, for code that must reach it by URL (a worker's activities, a git client)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx

Handle = Callable[[httpx.Request], httpx.Response]

_HOP_BY_HOP = {"content-length", "transfer-encoding", "connection", "keep-alive"}


def _handler(handle: Handle, name: str) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self._serve()

        def do_POST(self) -> None:
            self._serve()

        def do_PATCH(self) -> None:
            self._serve()

        def do_PUT(self) -> None:
            self._serve()

        def do_DELETE(self) -> None:
            self._serve()

        def log_message(self, format: str, *args: object) -> None:
            pass

        def _serve(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            request = httpx.Request(
                self.command,
                f"http://{self.headers.get('Host', '127.0.0.1')}{self.path}",
                headers=list(self.headers.items()),
                content=body,
            )
            try:
                response = handle(request)
                content = response.read()
            except Exception as error:  # a bug in the fake answers 500, like a broken server
                response = httpx.Response(500, json={"message": f"fake {name}: {error!r}"})
                content = response.read()
            self.send_response(response.status_code)
            for key, value in response.headers.multi_items():
                if key.lower() not in _HOP_BY_HOP:
                    self.send_header(key, value)
            self.send_header("Content-Length", str(len(content)))
            self.end_headers()
            self.wfile.write(content)

    return Handler


@contextmanager
def serve_over_http(handle: Handle, name: str) -> Iterator[str]:
    """Serve ``handle`` on ``127.0.0.1`` (an ephemeral port) in a thread; yields its base URL
    (``http://127.0.0.1:<port>``)."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(handle, name))
    thread = threading.Thread(target=httpd.serve_forever, name=f"fake-{name}", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)
