"""HistoryStore against real databases, SQLite files and PostgreSQL: outages, reopening, UTC
round-trips, devices, checks (COPY into day partitions on PostgreSQL)."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy import select
from sqlalchemy.exc import StatementError

from poller.events import CheckResult, State, Transition
from poller.inventory import Device
from store import HistoryStore, checks, database_url, partitions
from store.models import devices_table
from tests.integration.postgres import pg_url  # noqa: F401

T0 = datetime(2026, 11, 3, 8, 0, 0, 123456, tzinfo=UTC)


def down(device: str, at: datetime, since: datetime | None = None) -> Transition:
    return Transition(device, "10.0.0.1", State.UP, State.DOWN, at, since, None)


def up(device: str, at: datetime) -> Transition:
    return Transition(device, "10.0.0.1", State.DOWN, State.UP, at, None, 1.25)


def check(device: str, at: datetime, received: int = 1) -> CheckResult:
    return CheckResult(device, "10.0.0.1", at, 1, received, 0.5 if received else None,
                       State.UP if received else State.DOWN)


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "data" / "history.db"


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, db_path: Path) -> str:
    """The same test on a new SQLite file and on a new PostgreSQL database."""
    if request.param == "sqlite":
        return database_url(str(db_path))
    return str(request.getfixturevalue("pg_url"))


@pytest.fixture
async def store(db_url: str) -> AsyncIterator[HistoryStore]:
    async with HistoryStore(db_url) as s:
        yield s


@pytest.fixture
async def sqlite_store(db_path: Path) -> AsyncIterator[HistoryStore]:
    async with HistoryStore(database_url(str(db_path))) as s:
        yield s


async def test_down_opens_an_outage_and_up_closes_it(store: HistoryStore) -> None:
    await store.write_transition(down("r1", T0 + timedelta(seconds=5), since=T0))
    assert await store.open_outages() == {"r1": T0}
    await store.write_transition(up("r1", T0 + timedelta(seconds=65)))
    assert await store.open_outages() == {}
    [outage] = await store.outages("r1")
    assert (outage.start, outage.end) == (T0, T0 + timedelta(seconds=65))
    assert outage.duration(datetime.now(UTC)) == timedelta(seconds=65)
    states = [(t.from_state, t.to_state) for t in await store.transitions("r1")]
    assert states == [(State.UP, State.DOWN), (State.DOWN, State.UP)]


async def test_outage_start_defaults_to_transition_time(store: HistoryStore) -> None:
    await store.write_transition(down("r1", T0))
    assert await store.open_outages() == {"r1": T0}


async def test_second_down_keeps_the_original_outage(store: HistoryStore) -> None:
    await store.write_transition(down("r1", T0 + timedelta(seconds=3), since=T0))
    later = Transition("r1", "10.0.0.1", State.UNKNOWN, State.DOWN, T0 + timedelta(hours=1),
                       T0 + timedelta(hours=1), None)
    await store.write_transition(later)
    assert await store.open_outages() == {"r1": T0}
    assert len(await store.outages("r1")) == 1
    assert len(await store.transitions("r1")) == 2


async def test_open_outage_survives_reopening_the_store(db_url: str) -> None:
    url = db_url
    async with HistoryStore(url) as first:
        await first.write_transition(down("r1", T0 + timedelta(seconds=5), since=T0))
        await first.write_transition(down("r2", T0))
        await first.write_transition(up("r2", T0 + timedelta(seconds=30)))
    async with HistoryStore(url) as second:
        assert await second.open_outages() == {"r1": T0}
        await second.write_transition(up("r1", T0 + timedelta(minutes=10)))
        [outage] = await second.outages("r1")
        assert outage.end == T0 + timedelta(minutes=10)


async def test_datetimes_round_trip_as_aware_utc(store: HistoryStore) -> None:
    plus2 = timezone(timedelta(hours=2))
    local = datetime(2026, 11, 3, 10, 0, 0, 999999, tzinfo=plus2)
    await store.write_transition(down("r1", local, since=local - timedelta(seconds=1)))
    await store.write_checks([check("r1", local)])
    [t] = await store.transitions()
    [c] = await store.checks("r1")
    for value in (t.at, c.at, (await store.open_outages())["r1"]):
        assert value.tzinfo is not None and value.utcoffset() == timedelta(0)
    assert t.at == local and c.at == local
    assert t.at.hour == 8 and t.at.microsecond == 999999


async def test_naive_datetimes_are_refused(store: HistoryStore) -> None:
    with pytest.raises(StatementError, match="timezone"):
        await store.write_checks([check("r1", datetime(2026, 11, 3, 8, 0))])
    with pytest.raises(StatementError, match="timezone"):
        await store.write_transition(down("r1", datetime(2026, 11, 3, 8, 0)))


async def test_since_filters(store: HistoryStore) -> None:
    await store.write_transition(down("r1", T0))
    await store.write_transition(up("r1", T0 + timedelta(minutes=1)))
    await store.write_transition(down("r1", T0 + timedelta(minutes=5)))
    await store.write_checks([check("r1", T0 + timedelta(seconds=s)) for s in range(10)])
    assert len(await store.transitions(since=T0 + timedelta(minutes=1))) == 2
    assert [o.start for o in await store.outages(since=T0 + timedelta(minutes=2))] == [
        T0 + timedelta(minutes=5)
    ]
    assert len(await store.outages(since=T0 + timedelta(seconds=30))) == 2
    checks = await store.checks("r1", since=T0 + timedelta(seconds=7))
    assert [c.at for c in checks] == [T0 + timedelta(seconds=s) for s in (7, 8, 9)]


async def test_sync_devices_upserts_and_keeps_first_seen(store: HistoryStore) -> None:
    dev = Device(name="r1", address="10.0.0.1", branch="b1", region="north", type="router")
    await store.sync_devices([dev])
    d = devices_table
    query = select(d.c.name, d.c.address, d.c.branch, d.c.parent, d.c.first_seen)
    async with store.engine.connect() as conn:
        [(first_seen,)] = (await conn.execute(select(d.c.first_seen))).all()
    await store.sync_devices([Device(name="r1", address="10.0.0.9", branch="b2",
                                     region="north", type="router", parents=("core",))])
    async with store.engine.connect() as conn:
        rows = (await conn.execute(query)).all()
    assert [tuple(r[:4]) for r in rows] == [("r1", "10.0.0.9", "b2", "core")]
    assert rows[0][4] == first_seen


async def test_unknown_device_in_checks_is_created(store: HistoryStore) -> None:
    await store.write_checks([check("new", T0), check("new", T0 + timedelta(seconds=1), 0)])
    checks = await store.checks("new")
    assert [(c.ok, c.loss_pct) for c in checks] == [(True, 0.0), (False, 100.0)]
    assert await store.count_checks() == 2


async def test_sqlite_runs_in_wal_mode(sqlite_store: HistoryStore, db_path: Path) -> None:
    await sqlite_store.write_checks([check("r1", T0)])
    with sqlite3.connect(db_path) as con:
        assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


async def test_checks_across_midnight_go_to_their_days(store: HistoryStore) -> None:
    midnight = datetime(2026, 11, 4, tzinfo=UTC)
    times = [midnight - timedelta(microseconds=1), midnight, midnight + timedelta(days=1, hours=3)]
    await store.write_checks([check("r1", at) for at in times])  # one batch, three days
    assert [c.at for c in await store.checks("r1")] == times
    assert [c.at for c in await store.checks("r1", since=midnight, until=times[2])] == [midnight]
    assert await store.count_checks("r1") == 3 and await store.count_checks("nobody") == 0
    if store.dialect == "postgresql":
        async with store.engine.connect() as conn:
            assert set((await partitions.existing(conn, "checks")).values()) == {
                "checks_p20261103", "checks_p20261104", "checks_p20261105"}


async def test_a_partition_dropped_behind_the_stores_back_is_made_again(pg_url: str) -> None:  # noqa: F811
    """PostgreSQL only: SQLite has no partitions."""
    async with HistoryStore(pg_url) as store:
        await store.write_checks([check("r1", T0)])
        async with store.engine.begin() as conn:
            assert await partitions.drop_before(conn, "checks", T0 + timedelta(days=1)) == [
                "checks_p20261103"]
        # The store still thinks the day's partition is there: that write fails ...
        with pytest.raises(asyncpg.CheckViolationError, match="no partition"):
            await store.write_checks([check("r1", T0 + timedelta(seconds=1))])
        # ... and the next one makes it again.
        await store.write_checks([check("r1", T0 + timedelta(seconds=2))])
        assert [c.at for c in await store.checks("r1")] == [T0 + timedelta(seconds=2)]
        # After forget_partitions() (what retention calls) not even one write is lost.
        async with store.engine.begin() as conn:
            await partitions.drop_before(conn, "checks", T0 + timedelta(days=1))
        store.forget_partitions()
        await store.write_checks([check("r1", T0 + timedelta(seconds=3))])
        assert await store.count_checks() == 1


async def test_a_clock_stepped_back_never_ends_an_outage_before_it_began(store: HistoryStore) -> None:
    """The wall clock steps back 1 h while r1 is down: its UP (which names the outage it ends,
    as the engine's do) is stamped before the outage's start. The outage ends at its start
    (never a negative duration); the transition keeps the time the clock gave it, and an
    outage closed normally is untouched. Replayed, nothing changes."""
    stepped = T0 - timedelta(hours=1)
    ups = [Transition("r1", "10.0.0.1", State.DOWN, State.UP, stepped, T0, 1.0),
           Transition("r2", "10.0.0.1", State.DOWN, State.UP, T0 + timedelta(seconds=20), T0, 1.0)]
    # r3: its DOWN never reached the database; the UP alone says when the outage began.
    lone = Transition("r3", "10.0.0.1", State.DOWN, State.UP, stepped, T0, 1.0)
    for _ in range(2):
        await store.write_transitions([down("r1", T0 + timedelta(seconds=5), since=T0),
                                       down("r2", T0, since=T0)])
        await store.write_transitions([*ups, lone])
    outages = {o.device: o for o in await store.outages()}
    assert (outages["r1"].start, outages["r1"].end) == (T0, T0)
    assert outages["r1"].duration(T0) == timedelta(0)
    assert (outages["r2"].start, outages["r2"].end) == (T0, T0 + timedelta(seconds=20))
    assert (outages["r3"].start, outages["r3"].end) == (T0, T0)
    assert len(await store.outages()) == 3
    assert sorted(t.at for t in await store.transitions("r1")) == [stepped, T0 + timedelta(seconds=5)]
    assert await store.open_outages() == {}


async def test_last_states_are_each_device_s_state_after_its_latest_transition(
        store: HistoryStore, monkeypatch: pytest.MonkeyPatch) -> None:
    """What a cluster member seeds a taken-over shard's devices from (wardtui/cluster.py)."""
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    await store.write_transitions([
        Transition("a", "127.0.0.1", State.UNKNOWN, State.UP, t0, None, 1.0),
        Transition("b", "127.0.0.2", State.UNKNOWN, State.UP, t0, None, 1.0),
        down("a", t0 + timedelta(seconds=5)),
        up("a", t0 + timedelta(seconds=9)),
        down("b", t0 + timedelta(seconds=7)),
        Transition("c", "127.0.0.3", State.UNKNOWN, State.UNREACHABLE, t0, t0, None),
    ])
    assert await store.last_states(["a", "b", "c", "never"]) == {
        "a": State.UP, "b": State.DOWN, "c": State.UNREACHABLE}
    assert await store.last_states(["b"]) == {"b": State.DOWN}
    assert await store.last_states([]) == {}
    store.db.chunk_rows = 1  # a chunk a device: the same answer
    monkeypatch.setattr(checks, "NAMES_PER_READ", 1)
    assert await store.last_states(["a", "b", "c", "never"]) == {
        "a": State.UP, "b": State.DOWN, "c": State.UNREACHABLE}


async def test_transitions_of_named_devices_since_a_time_in_time_order(
        store: HistoryStore, monkeypatch: pytest.MonkeyPatch) -> None:
    """A cluster member's takeover reads its shards' flapping windows so (wardtui/cluster.py)."""
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    await store.write_transitions([
        Transition("a", "127.0.0.1", State.UNKNOWN, State.UP, t0, None, 1.0),
        Transition("b", "127.0.0.2", State.UNKNOWN, State.UP, t0 + timedelta(seconds=1), None, 1.0),
        Transition("c", "127.0.0.3", State.UNKNOWN, State.UP, t0 + timedelta(seconds=2), None, 1.0),
        down("a", t0 + timedelta(seconds=5)),
        down("b", t0 + timedelta(seconds=4)),
        down("c", t0 + timedelta(seconds=6)),
        up("a", t0 + timedelta(seconds=9)),
    ])
    for chunk in (1000, 1):
        store.db.chunk_rows = chunk
        monkeypatch.setattr(checks, "NAMES_PER_READ", chunk)
        got = await store.transitions_of(["a", "b", "never"], since=t0 + timedelta(seconds=1))
        assert [(t.device, t.to_state, (t.at - t0).seconds) for t in got] == [
            ("b", State.UP, 1), ("b", State.DOWN, 4), ("a", State.DOWN, 5), ("a", State.UP, 9)], chunk
    assert await store.transitions_of([], since=t0) == []
