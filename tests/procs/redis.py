"""Private Redis servers for tests: started, killed, restarted and paused by the test that owns them."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import redis

from tests.ports import free_port


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


class LoopbackRedis:
    """A private redis-server on a free loopback port (tests/ports.py), nothing saved: killed,
    restarted empty on the same port, paused with SIGSTOP and continued. ``password``: it asks
    for one (``requirepass``); ``workdir``: its working directory (default: the test's)."""

    def __init__(self, password: str | None = None, workdir: Path | None = None) -> None:
        if shutil.which("redis-server") is None:
            pytest.fail("redis-server is not installed", pytrace=False)
        self.port = free_port()
        self.password = password
        self.workdir = workdir
        self.proc: subprocess.Popen[bytes] | None = None
        self.paused = False

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}"

    def start(self) -> None:
        argv = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                "--appendonly", "no"]
        if self.workdir is not None:
            argv += ["--dir", str(self.workdir)]
        if self.password:
            argv += ["--requirepass", self.password]
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        client = redis.Redis(host="127.0.0.1", port=self.port, password=self.password,
                             socket_connect_timeout=0.5, socket_timeout=0.5)
        deadline = time.monotonic() + 5
        try:
            while True:
                try:
                    # Ours, not another test run's server that took the port meanwhile.
                    if client.info("server")["process_id"] == self.proc.pid:
                        return
                except (redis.RedisError, OSError):
                    pass
                assert self.proc.poll() is None and time.monotonic() < deadline, \
                    f"redis-server did not start on port {self.port}"
                time.sleep(0.02)
        finally:
            client.close()

    def kill(self) -> None:
        if self.proc is not None:
            if self.paused:
                self.resume()
            self.proc.kill()
            self.proc.wait()
            self.proc = None

    def pause(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGSTOP)
        self.paused = True

    def resume(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGCONT)
        self.paused = False

    def keys_present(self) -> list[bytes]:
        client = redis.Redis(host="127.0.0.1", port=self.port, password=self.password, socket_timeout=1)
        try:
            return sorted(client.keys("*"))
        finally:
            client.close()


@contextmanager
def loopback_redis() -> Iterator[LoopbackRedis]:
    server = LoopbackRedis()
    server.start()
    try:
        yield server
    finally:
        server.kill()
