"""History when things go wrong: a spool left by a stop, a reader holding locks, rollups that fail."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy.exc import DBAPIError

from poller.events import CheckResult, State, Transition
from store import HistoryStore, maintenance, partitions
from store.maintenance import Maintenance
from store.spool import Spool
from tests.fakes import FakeProber, make_devices
from tests.integration.postgres import pg_url  # noqa: F401
from wardtui.runtime import Options, Runtime

NOW = datetime.now(UTC).replace(microsecond=0)


@pytest.fixture
async def store(db_url: str) -> AsyncIterator[HistoryStore]:
    async with HistoryStore(db_url) as s:
        yield s


def check(device: str, at: datetime) -> CheckResult:
    return CheckResult(device, "127.0.0.1", at, 1, 1, 1.0, State.UP)


async def test_an_outage_left_in_the_spool_by_a_stop_is_closed_by_the_next_run(
        db_url: str, tmp_path: Path) -> None:
    """The database was down when dev1 went DOWN and wardtui stopped; dev1 recovered meanwhile.
    The next start writes the spooled DOWN before it reads open outages, so dev1 starts DOWN
    and its first answer closes the outage."""
    devices = make_devices(2, interval=0.1)
    went_down = datetime.now(UTC) - timedelta(minutes=5)
    with Spool(tmp_path / "spool") as spool:
        spool.append([Transition("dev1", devices[1].address, State.UP, State.DOWN, went_down,
                                 went_down - timedelta(seconds=3), None)], [])
    runtime = Runtime(Options(db=db_url, interval=0.1, confirm_spacing=0.02, spool=tmp_path / "spool"),
                      prober=FakeProber(), devices=devices)
    await runtime.start()
    try:
        await runtime.engine.run(0.5)
    finally:
        await runtime.close()
    async with HistoryStore(db_url) as store:
        outages = await store.outages("dev1")
        transitions = await store.transitions("dev1")
    assert len(outages) == 1 and outages[0].start == went_down - timedelta(seconds=3)
    assert outages[0].end is not None, "the outage replayed from the spool was never closed"
    assert [(t.from_state, t.to_state) for t in transitions] == [(State.UP, State.DOWN),
                                                                 (State.DOWN, State.UP)]


async def test_retention_runs_even_when_rollups_keep_failing(store: HistoryStore,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    old = NOW - timedelta(days=10)
    await store.write_checks([check("r1", old), check("r1", NOW - timedelta(minutes=5))])

    async def broken(*_args: object) -> int:
        raise TimeoutError("statement timeout")

    monkeypatch.setattr(maintenance, "roll_up", broken)
    job = Maintenance(store, settle=timedelta(0))
    with pytest.raises(TimeoutError):
        await job.run_once(NOW)
    # Raw rows the hourly rollup has not read are kept, whatever the retention says ...
    assert await store.count_checks() == 2
    # ... but the failing window shrinks, down to one bucket, so a too-big catch-up gets through.
    assert job._window == timedelta(minutes=30)
    monkeypatch.undo()
    job._retention_at = 0.0
    report = await job.run_once(NOW)
    assert report.rolled["1m"] > 0
    # Each pass catches up for at most its budget (2 s): on a loaded machine the ten days take
    # more passes to reach the old row's hour. Retention must then drop it.
    for _ in range(50):
        job._retention_at = 0.0
        await job.run_once(NOW)
        hour_done = job._done["1h"]
        if hour_done is not None and hour_done > old + timedelta(hours=1):
            break
    job._retention_at = 0.0
    await job.run_once(NOW)
    assert await store.count_checks() == 1  # the 10-day-old row, now rolled up, is gone


async def test_dropping_a_partition_behind_a_long_reader_gives_up_instead_of_stalling_writes(
        pg_url: str) -> None:  # noqa: F811
    old = NOW - timedelta(days=10)
    async with HistoryStore(pg_url) as store:
        await store.write_checks([check("r1", old), check("r1", NOW)])
        reader = await asyncpg.connect(pg_url.replace("+asyncpg", ""))
        try:
            await reader.execute("BEGIN; SELECT count(*) FROM checks")  # a report, holding its locks
            started = time.monotonic()
            with pytest.raises(DBAPIError, match="lock timeout"):
                async with store.engine.begin() as conn:
                    await partitions.drop_before(conn, "checks", NOW - timedelta(days=7))
            assert time.monotonic() - started < 10
            # Writers were never queued behind the drop: a COPY goes through while the reader is open.
            await asyncio.wait_for(store.write_checks([check("r1", NOW + timedelta(seconds=1))]), 10)
        finally:
            await reader.close()
        async with store.engine.begin() as conn:  # the reader gone, the next pass drops it
            assert await partitions.drop_before(conn, "checks", NOW - timedelta(days=7)) == [
                partitions.partition_name("checks", old)]


async def test_rollups_done_in_device_slices_equal_one_statement(store: HistoryStore) -> None:
    start = NOW.replace(second=0) - timedelta(minutes=10)
    await store.write_checks([CheckResult(f"r{d}", "127.0.0.1", start + timedelta(seconds=7 * i), 1,
                                          int(i % 5 != 0), float((i * d) % 11) if i % 5 else None, State.UP)
                              for d in range(1, 4) for i in range(60)])

    async def rolled(step: int) -> list[object]:
        async with store.engine.begin() as conn:
            for table in ("rollup_1m", "rollup_state"):
                await conn.execute(store.table(table).delete())
        store.note_written("checks", start)  # as after the writes above, for a fresh Maintenance
        await Maintenance(store, settle=timedelta(0), sqlite_devices_per_step=step).run_once(NOW)
        return [r for d in range(1, 4) for r in await store.rollups(f"r{d}", "1m")]

    sliced, whole = await rolled(1), await rolled(5000)
    assert len(whole) >= 3 * 7 and sliced == whole
