"""Container health check of a Jidoka worker: is its metrics endpoint accepting connections?

The Temporal SDK serves Prometheus metrics on ``JIDOKA_METRICS_BIND`` (``host:port``) for as long
as the worker process lives, so a refused connection means the worker is gone or never started.
With ``JIDOKA_METRICS_BIND`` unset there is nothing to probe and the check passes.

Exit status 0 = healthy, 1 = unhealthy (what Docker's HEALTHCHECK expects).
"""

from __future__ import annotations

import os
import socket
import sys

WILDCARDS = ("", "0.0.0.0", "::", "[::]")  # noqa: S104 - names of "all interfaces", not a bind


def probe_target(bind: str) -> tuple[str, int]:
    """Where to connect for a bind address: a wildcard host is probed on the loopback."""
    host, separator, port = bind.rpartition(":")
    if not separator or not port.isdigit():
        raise ValueError(f"JIDOKA_METRICS_BIND={bind!r} is not host:port")
    if host in WILDCARDS:
        host = "::1" if host.startswith(("::", "[")) else "127.0.0.1"
    return host.strip("[]"), int(port)


def main() -> int:
    bind = os.environ.get("JIDOKA_METRICS_BIND", "").strip()
    if not bind:
        return 0
    try:
        target = probe_target(bind)
        with socket.create_connection(target, timeout=3):
            return 0
    except (OSError, ValueError) as error:
        sys.stderr.write(f"jidoka healthcheck: metrics endpoint {bind}: {error}\n")
        return 1


if __name__ == "__main__":
    sys.exit(main())
