"""Fixtures for the live-feed CLI tests: a unique site on the shared Redis (127.0.0.1:6379, its keys
deleted after), a stand-in service publishing it (tests/integration/feed_service.py), private
redis-server processes (a password, a crash), keys written by hand, and ``wardtui`` runs."""

from __future__ import annotations

import json
import os
import queue
import shutil
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import redis

from poller.events import Event
from poller.feed import ServiceInfo
from poller.inventory import Device
from poller.live import Columns, Keys, encode_event, encode_inventory, encode_snapshot
from tests import ports

REPO = Path(__file__).resolve().parents[2]
SHARED_REDIS = "redis://127.0.0.1:6379"


def _require(what: str, ok: bool) -> None:
    if ok:
        return
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{what} (CI=true: the live-feed tests must run, not skip)", pytrace=False)
    pytest.skip(what)


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "WARDTUI_REDIS"}
    return {**env, "PYTHONPATH": str(REPO), "PYTHONDONTWRITEBYTECODE": "1"}


@pytest.fixture
def feed_site() -> Iterator[str]:
    """A site name no other test uses, on the shared Redis; its keys are deleted afterwards."""
    try:
        client = redis.Redis.from_url(SHARED_REDIS, socket_connect_timeout=2)
        client.ping()
    except (redis.RedisError, OSError) as exc:
        _require(f"no Redis at {SHARED_REDIS}: {exc}", False)
    name = "test-" + uuid.uuid4().hex[:12]
    yield name
    keys = list(client.scan_iter(match=f"wardtui:{{{name}}}:*"))
    if keys:
        client.delete(*keys)
    client.close()


# -- wardtui as a subprocess ------------------------------------------------------------------


def wardtui(*args: str, env: dict[str, str] | None = None,
            timeout: float = 60) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([sys.executable, "-m", "wardtui", *args], cwd=REPO, env={**_env(), **(env or {})},
                          capture_output=True, text=True, timeout=timeout)
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc


class Running:
    """A long-running subprocess whose stdout lines are read as they come."""

    def __init__(self, argv: list[str], env: dict[str, str] | None = None, stdin: bool = False) -> None:
        self.proc = subprocess.Popen(argv, cwd=REPO, env={**_env(), **(env or {})},
                                     stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.stderr_text: list[str] = []
        threading.Thread(target=self._pump, daemon=True).start()
        threading.Thread(target=self._pump_err, daemon=True).start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def _pump_err(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.stderr_text.append(line)

    @property
    def stderr(self) -> str:
        return "".join(self.stderr_text)

    def line(self, timeout: float = 20.0) -> str:
        try:
            line = self.lines.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no line within {timeout} s; stderr: {self.stderr}") from None
        if line is None:
            raise AssertionError(f"the process ended ({self.proc.wait()}); stderr: {self.stderr}")
        return line

    def record(self, timeout: float = 20.0) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.line(timeout))
        return data

    def until(self, predicate: Any, timeout: float = 20.0) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """Records until one matches ``predicate``: (that one, all read)."""
        deadline = time.monotonic() + timeout
        seen: list[dict[str, Any]] = []
        while True:
            record = self.record(max(0.1, deadline - time.monotonic()))
            seen.append(record)
            if predicate(record):
                return record, seen

    def send(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def stop(self, sig: int = 15) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=20)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()


def follow(*args: str, env: dict[str, str] | None = None) -> Running:
    """``wardtui events ARGS`` running."""
    return Running([sys.executable, "-m", "wardtui", "events", *args], env)


class Service(Running):
    """tests/integration/feed_service.py: a publishing engine on a fake prober."""

    def __init__(self, site: str, devices: int = 20, down: int = 0, redis_url: str = SHARED_REDIS,
                 records: Path | None = None) -> None:
        argv = [sys.executable, "-m", "tests.integration.feed_service", "--site", site, "--redis", redis_url,
                "--devices", str(devices), "--down", str(down)]
        if records is not None:
            argv += ["--records", str(records)]
        super().__init__(argv, stdin=True)
        ready = self.line(30)
        assert ready.strip() == "ready", ready

    def state(self) -> dict[str, Any]:
        self.send("state")
        return self.record()

    def stop(self, sig: int = 15) -> int:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        return super().stop(sig)


@pytest.fixture
def service_factory() -> Iterator[Any]:
    started: list[Service] = []

    def start(*args: Any, **kwargs: Any) -> Service:
        service = Service(*args, **kwargs)
        started.append(service)
        return service

    yield start
    for service in started:
        service.stop()


# -- private redis-server processes -----------------------------------------------------------


def free_port() -> int:
    return ports.free_port()  # not the kernel's pick: see tests/ports.py


class PrivateRedis:
    """``redis-server`` on a free loopback port, nothing saved; ``kill()`` and ``start()`` again."""

    def __init__(self, password: str | None = None) -> None:
        self.port = free_port()
        self.password = password
        self.proc: subprocess.Popen[bytes] | None = None
        self.start()

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}"

    def start(self) -> None:
        argv = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                "--appendonly", "no"]
        if self.password:
            argv += ["--requirepass", self.password]
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), 0.2):
                    return
            except OSError:
                time.sleep(0.05)
        raise AssertionError(f"redis-server did not start on port {self.port}")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def private_redis() -> Iterator[Any]:
    _require("redis-server is not installed", shutil.which("redis-server") is not None)
    made: list[PrivateRedis] = []

    def make(password: str | None = None) -> PrivateRedis:
        server = PrivateRedis(password)
        made.append(server)
        return server

    yield make
    for server in made:
        server.kill()


# -- keys written by hand ---------------------------------------------------------------------


def write_site(site: str, devices: list[Device], host: str = "testhost", run: str = "run-1",
               at: datetime | None = None, stream_id: str = "0-0") -> Keys:
    """Heartbeat, inventory and a snapshot (every device up) of ``site``, as a service writes them."""
    keys = Keys(site)
    client = redis.Redis.from_url(SHARED_REDIS)
    at = at or datetime.now(UTC)
    inventory_id, blob = encode_inventory(devices)
    columns = Columns.empty(len(devices))
    for i in range(len(devices)):
        columns.flags[i] = 1  # up
        columns.last_change[i] = at.timestamp() - 60
        columns.last_rtt[i] = 123
    snapshot = encode_snapshot(1, stream_id, at, inventory_id, run, None, columns, None)
    info = ServiceInfo(host, 4242, "9.9", at.isoformat(timespec="seconds"), len(devices),
                       at.isoformat(timespec="milliseconds"))
    client.set(keys.inventory, blob)
    client.set(keys.snapshot, snapshot)
    client.set(keys.service, info.to_json(), ex=60)
    client.close()
    return keys


def stream(keys: Keys, event: Event, n: int, run: str = "run-1", **extra: Any) -> str:
    """Put ``event`` on the site's stream as the service's n-th of ``run``; its entry ID."""
    client = redis.Redis.from_url(SHARED_REDIS)
    entry_id = client.xadd(keys.events, {"e": encode_event(event, n=n, r=run, **extra)})
    client.close()
    return entry_id.decode()
