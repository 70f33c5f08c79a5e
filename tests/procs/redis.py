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

    def __init__(self, password: str | None = None, workdir: Path | None = None,
                 extra: list[str] | None = None) -> None:
        if shutil.which("redis-server") is None:
            pytest.fail("redis-server is not installed", pytrace=False)
        self.port = free_port()
        self.password = password
        self.workdir = workdir
        self.extra = list(extra or [])
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
        argv += self.extra
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


class SentinelGroup:
    """A private primary, one replica and three Sentinels (``redis-server --sentinel``) on free
    loopback ports, with short timings: a primary silent for ``down_after`` ms is down, and the
    Sentinels promote the replica within a few seconds. ``url``: the redis+sentinel:// URL."""

    def __init__(self, workdir: Path, service: str = "wardtui-test", password: str | None = None,
                 down_after: int = 1000) -> None:
        self.service = service
        self.password = password
        self.workdir = workdir
        self.primary = LoopbackRedis(password, workdir)
        auth = ["--masterauth", password] if password else []
        self.replica = LoopbackRedis(password, workdir, auth)
        self.replica.extra += ["--replicaof", "127.0.0.1", str(self.primary.port)]
        self.sentinels: list[subprocess.Popen[bytes]] = []
        self.sentinel_ports = [free_port() for _ in range(3)]
        self.down_after = down_after

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        hosts = ",".join(f"127.0.0.1:{p}" for p in self.sentinel_ports)
        return f"redis+sentinel://{auth}{hosts}/{self.service}"

    def start(self) -> None:
        self.primary.start()
        self.replica.start()
        for n, port in enumerate(self.sentinel_ports):
            conf = self.workdir / f"sentinel{n}.conf"
            lines = [f"port {port}", "bind 127.0.0.1", f"dir {self.workdir}",
                     f"sentinel monitor {self.service} 127.0.0.1 {self.primary.port} 2",
                     f"sentinel down-after-milliseconds {self.service} {self.down_after}",
                     f"sentinel failover-timeout {self.service} 5000",
                     f"sentinel parallel-syncs {self.service} 1"]
            if self.password:
                lines.append(f"sentinel auth-pass {self.service} {self.password}")
            conf.write_text("\n".join(lines) + "\n", encoding="utf-8")
            self.sentinels.append(subprocess.Popen(["redis-server", str(conf), "--sentinel"],
                                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        # Ready: every Sentinel knows the primary, the replica (its link up) and the two others.
        deadline = time.monotonic() + 20
        while not self._ready():
            assert time.monotonic() < deadline, "the Sentinels did not find each other and the replica"
            assert all(p.poll() is None for p in self.sentinels), "a redis-sentinel exited"
            time.sleep(0.1)

    def _ask(self, port: int) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=port, socket_connect_timeout=0.5, socket_timeout=0.5)

    def _ready(self) -> bool:
        for port in self.sentinel_ports:
            client = self._ask(port)
            try:
                state = client.sentinel_master(self.service)
            except (redis.RedisError, OSError):
                return False
            finally:
                client.close()
            if state.get("num-other-sentinels") != 2 or state.get("num-slaves") != 1:
                return False
        replica = redis.Redis(host="127.0.0.1", port=self.replica.port, password=self.password,
                              socket_timeout=0.5)
        try:
            return replica.info("replication").get("master_link_status") == "up"
        except (redis.RedisError, OSError):
            return False
        finally:
            replica.close()

    def primary_port(self) -> int | None:
        """The primary's port as a majority of the Sentinels name it now (None: no majority)."""
        said: list[int] = []
        for port in self.sentinel_ports:
            client = self._ask(port)
            try:
                addr = client.sentinel_get_master_addr_by_name(self.service)
            except (redis.RedisError, OSError):
                continue
            finally:
                client.close()
            if addr:
                said.append(int(addr[1]))
        for port in set(said):
            if said.count(port) >= 2:
                return port
        return None

    def stop(self) -> None:
        for proc in self.sentinels:
            proc.kill()
            proc.wait()
        self.sentinels.clear()
        self.replica.kill()
        self.primary.kill()


@contextmanager
def sentinel_group(workdir: Path, password: str | None = None) -> Iterator[SentinelGroup]:
    group = SentinelGroup(workdir, password=password)
    try:
        group.start()
        yield group
    finally:
        group.stop()
