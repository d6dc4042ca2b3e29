"""Free TCP ports on this machine, for the servers tests start."""

from __future__ import annotations

import random
import socket
from pathlib import Path

_RANDOM = random.SystemRandom()  # not the ``random`` module's state, which Hypothesis seeds
_LOWEST = 10_000


def _ephemeral_range() -> tuple[int, int]:
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32_768, 60_999


def _bindable(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def free_port() -> int:
    """A port nothing is bound to now, picked below the kernel's ephemeral range: the ports of
    that range are handed to every outgoing connection (and to servers asking for port 0), so
    one picked there can be taken again before the server that is given it binds it."""
    low, _ = _ephemeral_range()
    if low - _LOWEST >= 1_000:
        for _ in range(200):
            port = _RANDOM.randrange(_LOWEST, low)
            if _bindable(port):
                return port
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


UI_PORT = free_port()
"""The session dev server's Web UI (``conftest.dev_env``; tests ask its HTTP API for the
operators' filters)."""
