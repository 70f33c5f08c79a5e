"""The spool on a real filesystem that fills up while the database is down (a 64 KiB tmpfs):
history at risk is shown, rows wait in memory, and when the database returns every row is
stored once, in order, with every outage closed by its own UP.

(The adversary's run: a 2 MB filesystem as --spool, PostgreSQL down 70 s, ended with duplicate
outages, outages with the wrong end and availability of -31 %.)
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sqlite3
import subprocess
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from poller.bus import EventBus
from poller.events import CheckResult, State, Transition
from store.history import HistoryStore
from store.spool import Spool
from store.writer import StoreWriter

T0 = datetime(2026, 12, 5, 3, 0, tzinfo=UTC)
DEVICES = [f"pay-{i}" for i in range(5)]


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 64 KiB tmpfs (root only: under CI=true this test must run)."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        why = "mounting a small tmpfs needs root"
        if os.environ.get("CI") == "true":
            pytest.fail(why + " (CI=true: this test must run)", pytrace=False)
        pytest.skip(why)
    mountpoint = tmp_path / "small"
    mountpoint.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k,mode=0700", "tmpfs", str(mountpoint)], check=True)
    try:
        yield mountpoint
    finally:
        subprocess.run(["umount", "-l", str(mountpoint)], check=False)


def events_of(minute: int) -> tuple[list[Transition], list[CheckResult]]:
    """One minute of five devices: each goes down then up once in it (its own start), and a
    check every second each."""
    transitions: list[Transition] = []
    base = T0 + timedelta(minutes=minute)
    for n, device in enumerate(DEVICES):
        start = base + timedelta(seconds=5 + n)
        transitions += [
            Transition(device, "127.0.0.1", State.UP, State.DOWN, start + timedelta(seconds=2), start, None),
            Transition(device, "127.0.0.1", State.DOWN, State.UP, start + timedelta(seconds=30), start, 0.3),
        ]
    checks = [CheckResult(device, "127.0.0.1", base + timedelta(seconds=s, milliseconds=n), 1, 1, 0.3,
                          State.UP) for s in range(60) for n, device in enumerate(DEVICES)]
    return transitions, checks


async def wait_until(predicate: Callable[[], bool], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)


async def test_a_spool_whose_disk_fills_keeps_the_history_right(small_disk: Path, tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'history.db'}"
    store = HistoryStore(url, busy_timeout=0.05)
    await store.open()
    spool = Spool(small_disk / "spool")
    bus = EventBus()
    writer = StoreWriter(store, bus.subscribe("store", maxsize=10**6), flush_interval=0.05, batch_size=500,
                         retry_delay=0.05, max_retry_delay=0.1, spool_after=0.1, stop_attempts=1,
                         spool=spool)
    writer.SPOOL_RETRY_S = 0.2
    lock = sqlite3.connect(str(tmp_path / "history.db"), isolation_level=None)
    lock.execute("BEGIN EXCLUSIVE")  # the database is down
    published: list[Transition | CheckResult] = []
    writer.start()
    try:
        minute = 0
        while writer.spool_full is None:  # until the spool's disk is full
            assert minute < 40, "the spool never filled a 64 KiB disk"
            transitions, checks = events_of(minute)
            for event in [*transitions, *checks]:
                bus.publish(event)
            published += [*transitions, *checks]
            minute += 1
            await asyncio.sleep(0.15)
        assert writer.gauges()["store_spool_full"] == 1 and spool.rows > 0
        for extra in range(minute, minute + 3):  # newer rows, kept in memory
            transitions, checks = events_of(extra)
            for event in [*transitions, *checks]:
                bus.publish(event)
            published += [*transitions, *checks]
        await asyncio.sleep(0.5)
        assert writer.gauges()["store_spool_full"] == 1
        lock.execute("COMMIT")  # the database is back
        lock.close()
        await wait_until(lambda: spool.empty and writer.queue_depth == 0)
    finally:
        await writer.stop()
        spool.close()
    assert writer.dropped_samples == 0 and writer.gauges()["store_spool_full"] == 0
    stored = await store.transitions()
    outages = await store.outages()
    counted = await store.count_checks()
    await store.close()
    expected = [e for e in published if isinstance(e, Transition)]
    assert sorted((t.device, t.at, t.to_state) for t in stored) == sorted(
        (t.device, t.at, t.to_state) for t in expected)
    assert counted == len(published) - len(expected)
    assert sorted((o.device, o.start, o.end) for o in outages) == sorted(
        (t.device, t.down_since, t.at) for t in expected if t.to_state is State.UP)
