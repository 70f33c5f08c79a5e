"""Private Redis servers for tests: started, killed and restarted by the test that owns them."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest


@contextmanager
def unix_redis(directory: Path) -> Iterator[Path]:
    """A private redis-server on a unix socket only: the service inside the lab's namespace
    reaches it there (127.0.0.1 in a namespace is the namespace's own loopback)."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.fail("redis-server is not installed", pytrace=False)
    socket_path = directory / "redis.sock"
    proc = subprocess.Popen([binary, "--port", "0", "--unixsocket", str(socket_path),
                             "--unixsocketperm", "700", "--save", "", "--appendonly", "no"],
                            stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 5
        while not socket_path.exists():
            assert time.monotonic() < deadline, "redis-server did not start"
            time.sleep(0.05)
        yield socket_path
    finally:
        proc.kill()
        proc.wait()
