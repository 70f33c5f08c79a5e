"""Loopback ports for the servers tests start (redis-server, PostgreSQL, snmpd, snmpsim, HTTP).

Asking the kernel for a free port (bind to port 0, close, hand the number to a server) races:
between the close and the server's bind, another process may take the port, and under
pytest-xdist the other processes are the other workers, which ask the kernel the same way and
start the same servers. A test's redis-server that fails to bind goes unnoticed when the
readiness check reaches another worker's server on that port instead.

So ports come from below the kernel's ephemeral range (``net.ipv4.ip_local_port_range`` is
32768-60999 here: the kernel never hands these out by itself), a block of its own per xdist
worker (``gw0``, ``gw1``, ...), each port handed out once per worker process, in turn, and only if
it binds right now (on TCP and on UDP): a port some other program holds is skipped.
"""

from __future__ import annotations

import itertools
import os
import re
import socket
import threading

BASE = 20000  # ports BASE .. BASE + BLOCK * WORKERS - 1, under the ephemeral range
BLOCK = 800
WORKERS = 15  # up to 20000 + 800 * 15 = 32000 < 32768


def worker_index() -> int:
    """0 for ``gw0`` (and without xdist), 1 for ``gw1``, ..."""
    match = re.fullmatch(r"gw(\d+)", os.environ.get("PYTEST_XDIST_WORKER", ""))
    return int(match.group(1)) if match else 0


_lock = threading.Lock()
_next = itertools.cycle(range(BLOCK))


def _binds(host: str, port: int) -> bool:
    for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
        with socket.socket(socket.AF_INET, kind) as s:
            if kind == socket.SOCK_STREAM:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind((host, port))
            except OSError:
                return False
    return True


def free_port(host: str = "127.0.0.1") -> int:
    """A port of this worker's block that is free for TCP and UDP on ``host`` right now."""
    base = BASE + BLOCK * (worker_index() % WORKERS)
    with _lock:
        for _ in range(BLOCK):
            port = base + next(_next)
            if _binds(host, port):
                return port
    raise OSError(f"no free port in {base}-{base + BLOCK - 1} on {host}")
