"""Nothing lost: a real PostgreSQL server is killed for a minute while wardtui polls, then started again.

The devices' states change while the database is down; every transition, every outage and
every check must be in the database afterwards, in order, exactly once.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from poller.events import CheckResult, State, Transition
from store.history import HistoryStore
from tests.fakes import FakeProber, make_devices
from tests.integration.postgres import PrivateCluster, checks_written
from wardtui.runtime import Options, Runtime

OUTAGE_S = 60.0


async def wait_until(predicate: object, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        await asyncio.sleep(0.1)


async def test_killing_postgresql_for_a_minute_loses_no_transition(private_pg: PrivateCluster,
                                                                  tmp_path: Path) -> None:
    devices = make_devices(12, interval=0.5)
    prober = FakeProber()
    runtime = Runtime(Options(db=private_pg.url, interval=0.5, timeout=0.2, confirm_probes=1,
                              confirm_spacing=0.05, spool=tmp_path / "spool"),
                      prober=prober, devices=devices)
    truth = runtime.engine.bus.subscribe("truth", maxsize=10**7)
    await runtime.start()
    assert runtime.writer is not None and runtime.spool is not None
    engine_run = asyncio.create_task(runtime.engine.run())
    failing_seen = False

    async def flip(names: list[int], down: bool) -> None:
        for i in names:
            (prober.down.add if down else prober.down.discard)(devices[i].address)
        await asyncio.sleep(1.5)  # confirmation and a check or two

    try:
        await asyncio.sleep(2)
        await flip([0, 1], down=True)  # before the kill: written directly
        await asyncio.to_thread(private_pg.kill)
        killed = time.monotonic()
        # While the database is down: devices go down, come back, go down again.
        await flip([2, 3, 4], down=True)
        await flip([0, 2], down=False)
        await flip([5], down=True)
        await flip([5], down=False)
        await flip([3], down=False)
        while time.monotonic() - killed < OUTAGE_S:
            gauges = runtime.engine.last_gauges
            failing_seen |= bool(gauges and gauges.extra.get("store_failing"))
            await asyncio.sleep(0.5)
        assert runtime.spool.rows > 0, "a minute of rows should be waiting in the spool"
        assert failing_seen, "the dashboard's gauges never showed the database failing"
        await asyncio.to_thread(private_pg.start)
        await wait_until(lambda: runtime.spool is not None and runtime.spool.empty, timeout=60)
        await flip([1, 4], down=False)  # after the restart: written directly again
        await flip([6], down=True)
    finally:
        runtime.engine.stop()
        await engine_run
        lost = await runtime.close()
    assert lost == 0

    events = truth.drain()
    transitions = [e for e in events if isinstance(e, Transition)]
    checks = [e for e in events if isinstance(e, CheckResult)]
    assert len([t for t in transitions if t.to_state is State.DOWN]) >= 7
    store = HistoryStore(private_pg.url)
    await store.open()
    try:
        stored = await store.transitions()
        assert sorted(stored, key=_key) == sorted(transitions, key=_key)
        for device in {t.device for t in transitions}:  # per device, in the order they happened
            assert [t for t in stored if t.device == device] == [t for t in transitions if t.device == device]
        assert await store.count_checks() == len(checks)
        outages = await store.outages()
        downs = [t for t in transitions if t.to_state is State.DOWN]
        assert sorted((o.device, o.start) for o in outages) == sorted((t.device, t.down_since) for t in downs)
        still_down = {o.device for o in outages if o.end is None}
        assert still_down == {d.name for d in devices if d.address in prober.down}
    finally:
        await store.close()


def _key(t: Transition) -> tuple[str, object]:
    return (t.device, t.at)


def test_sigterm_with_the_database_down_keeps_history_for_the_next_start(private_pg: PrivateCluster,
                                                                          tmp_path: Path) -> None:
    """``wardtui poll`` on loopback: PostgreSQL dies, SIGTERM arrives, the rows wait in the spool,
    and the next run writes them before its own."""
    inventory = tmp_path / "net.csv"
    inventory.write_text("name,address,branch,region,type\n" + "".join(
        f"r{i},127.0.3.{i},b1,north,router\n" for i in range(1, 6)), encoding="utf-8")
    spool = tmp_path / "spool"
    url = private_pg.url.replace("+asyncpg", "")
    command = [sys.executable, "-m", "wardtui", "poll", "--jsonl", "--checks", "--inventory", str(inventory),
               "--interval", "0.5", "--db", url, "--spool", str(spool)]
    env = {**os.environ, "XDG_DATA_HOME": str(tmp_path / "data")}
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    lines: list[str] = []  # stdout as it comes, read beside the waits below

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()

    def printed_checks() -> int:
        return sum('"check"' in line for line in list(lines))

    def wait(what: str, done: Callable[[], bool], timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while not done():
            if proc.poll() is not None:
                pytest.fail(f"wardtui poll exited early: {proc.stderr.read() if proc.stderr else ''}")
            assert time.monotonic() < deadline, f"timed out waiting for {what}"
            time.sleep(0.1)

    # Rows reach the database while it is up (not only the spool) ...
    wait("checks written to PostgreSQL", lambda: checks_written(url) > 0)
    private_pg.kill()
    # ... then four rounds of checks (5 devices) are made with the database down.
    after_kill = printed_checks()
    wait("checks made with the database down", lambda: printed_checks() >= after_kill + 4 * 5)
    proc.send_signal(signal.SIGTERM)
    assert proc.stderr is not None
    err = proc.stderr.read()  # to its end: the process has exited (stdout is the reader's)
    proc.wait(timeout=60)
    reader.join(timeout=10)
    assert proc.returncode == 0, err
    assert "kept in the spool" in err
    first_run = [json.loads(line) for line in lines]
    checks = [r for r in first_run if r["type"] == "check"]

    private_pg.start()
    second = subprocess.run([*command[:-4], "--db", url, "--spool", str(spool), "--duration", "2"],
                            capture_output=True, text=True, env=env, timeout=60, check=False)
    assert second.returncode == 0, second.stderr
    second_checks = [json.loads(line) for line in second.stdout.splitlines() if '"check"' in line]

    assert checks_written(url) == len(checks) + len(second_checks)
    assert not list(spool.glob("*.spool"))

