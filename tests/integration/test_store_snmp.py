"""SNMP in the history store, on real databases (a SQLite file and PostgreSQL): the migration, the
latest tables, interface rates and their rollups and retention, events, the writer through a
database outage, and ``wardtui snmp``."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import inspect, text
from sqlalchemy.engine import make_url

from poller.bus import EventBus
from poller.events import (
    CheckResult,
    InterfaceChange,
    InterfaceStat,
    Reboot,
    SnmpAgentChange,
    SnmpFailure,
    SnmpPoll,
    State,
)
from store import HistoryStore, partitions, schema
from store.maintenance import Maintenance
from store.queries import Retention, interface_history, latest_snmp
from store.rollup import HOUR, MINUTE
from store.spool import Spool
from store.writer import StoreWriter
from tests.integration.postgres import PrivateCluster
from tests.integration.test_cli_errors import assert_no_traceback, run
from tests.integration.test_store_migrations import HEAD, history_rows, insert_history, on

S, M, H, D = (timedelta(seconds=1), timedelta(minutes=1), timedelta(hours=1), timedelta(days=1))
NOW = datetime.now(UTC).replace(microsecond=0)
SNMP_TABLES = {"snmp_system", "snmp_interfaces", "if_rates", "if_rollup_1m", "if_rollup_1h", "snmp_events"}


def iface(ifindex: int, in_bps: float | None = 1000.0, out_bps: float | None = 2000.0, *,
          oper: str = "up", name: str | None = None, errors: int = 0) -> InterfaceStat:
    return InterfaceStat(ifindex, name or f"ge-0/0/{ifindex}", f"to site {ifindex}", "up", oper,
                         10**9, in_bps, out_bps, errors, errors + 1, errors + 2, errors + 3, True)


def poll(device: str, at: datetime, *interfaces: InterfaceStat, uptime: float = 1000.0) -> SnmpPoll:
    return SnmpPoll(device, "127.0.0.2", at, f"{device}.example", "Test OS 1.0", "1.3.6.1.4.1.8072.3.2.10",
                    uptime, interfaces)


@pytest.fixture
async def store(db_url: str) -> AsyncIterator[HistoryStore]:
    async with HistoryStore(db_url) as s:
        yield s


def dialect_of(url: str) -> str:
    return make_url(url).get_backend_name()


# -- the migration -------------------------------------------------------------------------


async def test_upgrade_from_0002_keeps_the_history_and_adds_the_snmp_tables(db_url: str) -> None:
    await schema.upgrade(db_url, "0002")
    await on(db_url, insert_history)
    before = await on(db_url, history_rows)
    assert not SNMP_TABLES & await on(db_url, lambda c: set(inspect(c).get_table_names()))

    assert (await schema.upgrade(db_url)).current == (HEAD,)
    assert await on(db_url, history_rows) == before
    assert await on(db_url, lambda c: set(inspect(c).get_table_names())) >= SNMP_TABLES
    assert await on(db_url, schema.differences) == []
    if dialect_of(db_url) == "postgresql":
        parents = await on(db_url, lambda c: {r[0] for r in c.execute(text(
            "SELECT c.relname FROM pg_partitioned_table p JOIN pg_class c ON c.oid = p.partrelid"))})
        assert {"checks", "rollup_1m", "if_rates", "if_rollup_1m"} <= parents
    # The store opens it and writes SNMP rows for the devices that were there.
    async with HistoryStore(db_url) as store:
        await store.write_snmp_polls([poll("r1", NOW, iface(1))])
        assert (await store.snmp_latest("r1")) is not None

    down = await schema.downgrade(db_url, "0002")
    assert down.current == ("0002",)
    assert not SNMP_TABLES & await on(db_url, lambda c: set(inspect(c).get_table_names()))
    assert await on(db_url, history_rows) == before


async def test_upgrade_from_0003_keeps_the_snmp_rows_and_adds_poll_outcomes(db_url: str) -> None:
    await schema.upgrade(db_url, "0003")
    await on(db_url, insert_history)
    await on(db_url, lambda c: c.execute(text(
        "INSERT INTO snmp_system (device_id, polled_at, sys_name, sys_descr, sys_object_id, uptime_s) "
        "SELECT id, :at, 'r', 'd', '1.3.6.1', 42.0 FROM devices"), {"at": NOW}))
    before = await on(db_url, history_rows)
    assert (await schema.upgrade(db_url)).current == (HEAD,)
    assert await on(db_url, schema.differences) == []
    assert await on(db_url, history_rows) == before
    assert await on(db_url, lambda c: c.execute(text(
        "SELECT uptime_s, missing FROM snmp_system")).all()) == [(42.0, None)] * len(before["devices"])
    async with HistoryStore(db_url) as store:  # an agent without sysUpTime, and failed polls
        await store.write_snmp_polls([
            SnmpPoll("r1", "10.0.0.1", NOW, "", "", "1.3.6.1.4.1.705.1", None, (),
                     ("sysUpTime", "interface table")),
            SnmpFailure("r2", "10.0.0.2", NOW, "timeout", "no answer within 2 s (1 retries)")])
        ups, silent = await store.snmp_latest("r1"), await store.snmp_latest("r2")
    assert ups is not None and ups.system is not None and ups.system.uptime_s is None
    assert ups.system.missing == ("sysUpTime", "interface table")
    assert silent is not None and silent.system is not None and silent.system.uptime_s == 42.0
    assert silent.status is not None
    assert (silent.status.polls, silent.status.answered, silent.status.outcome) == (1, 0, "timeout")
    # Down again: the rows an older wardtui cannot hold (no uptime) go, the others stay.
    assert (await schema.downgrade(db_url, "0003")).current == ("0003",)
    names = await on(db_url, lambda c: {r[0] for r in c.execute(text(
        "SELECT d.name FROM snmp_system s JOIN devices d ON d.id = s.device_id"))})
    assert names == {"r2"}


# -- latest tables and rates ----------------------------------------------------------------


async def test_polls_fill_the_latest_tables_and_an_interface_that_goes_away_leaves_them(
        store: HistoryStore) -> None:
    await store.write_snmp_polls([
        poll("r1", NOW, iface(1), iface(2, None, None), iface(3, 5.0, None)),
        poll("r2", NOW, iface(7)),
    ])
    latest = await latest_snmp(store, "r1")
    assert latest is not None
    assert (latest.device, latest.address, latest.polled_at) == ("r1", "127.0.0.2", NOW)
    assert latest.system.name == "r1.example" and latest.system.uptime_s == 1000.0
    assert [i.ifindex for i in latest.interfaces] == [1, 2, 3]
    first = latest.interfaces[0]
    assert (first.name, first.alias, first.speed_bps, first.in_bps, first.out_bps) == (
        "ge-0/0/1", "to site 1", 10**9, 1000.0, 2000.0)
    assert (first.in_errors, first.out_errors, first.in_discards, first.out_discards) == (0, 1, 2, 3)
    assert latest.interfaces[1].in_bps is None and latest.interfaces[1].counters_64

    # The next poll: interface 3 is gone, 2 went down, counters grew past 2**32.
    later = NOW + M
    await store.write_snmp_polls([poll("r1", later, iface(1, 10.0, 20.0), iface(2, oper="down",
                                                                               errors=2**33),
                                       uptime=1060.0)])
    latest = await latest_snmp(store, "r1")
    assert latest is not None and latest.polled_at == later and latest.system.uptime_s == 1060.0
    assert [(i.ifindex, i.oper, i.in_bps) for i in latest.interfaces] == [
        (1, "up", 10.0), (2, "down", 1000.0)]
    assert latest.interfaces[1].in_errors == 2**33
    other = await latest_snmp(store, "r2")
    assert other is not None and [i.ifindex for i in other.interfaces] == [7]  # untouched

    # Rates: every poll's interfaces that had a rate in some direction; none for interface 2's
    # first poll (no rate either way).
    rates = await store.if_rates("r1")
    assert [(r.at, r.ifindex, r.in_bps, r.out_bps) for r in rates] == [
        (NOW, 1, 1000.0, 2000.0), (NOW, 3, 5.0, None), (later, 1, 10.0, 20.0), (later, 2, 1000.0, 2000.0)]
    assert [r.at for r in await store.if_rates("r1", 1, since=later)] == [later]
    assert await latest_snmp(store, "nobody") is None


async def test_a_late_poll_never_takes_the_latest_tables_back_in_time(store: HistoryStore) -> None:
    await store.write_snmp_polls([poll("r1", NOW, iface(1, 50.0), iface(2))])
    # A poll from before (replayed late) arrives after it, with an interface since removed.
    await store.write_snmp_polls([poll("r1", NOW - M, iface(1, 1.0), iface(3), uptime=1.0)])
    latest = await latest_snmp(store, "r1")
    assert latest is not None and latest.polled_at == NOW and latest.system.uptime_s == 1000.0
    assert [(i.ifindex, i.in_bps) for i in latest.interfaces] == [(1, 50.0), (2, 1000.0)]
    # ... but its rates are history all the same.
    assert len(await store.if_rates("r1")) == 4
    # Two polls of one device in one batch: the newer one is the latest.
    await store.write_snmp_polls([poll("r2", NOW + M, iface(1), iface(2)), poll("r2", NOW, iface(9))])
    latest = await latest_snmp(store, "r2")
    assert latest is not None and [i.ifindex for i in latest.interfaces] == [1, 2]


async def test_snmp_events_are_stored_in_order(store: HistoryStore) -> None:
    booted = NOW - 30 * S
    await store.write_snmp_events([
        SnmpAgentChange("r1", "127.0.0.2", NOW - M, answering=False, reason="timeout"),
        SnmpAgentChange("r1", "127.0.0.2", NOW - 40 * S, answering=True, reason="answers again"),
        Reboot("r1", "127.0.0.2", NOW, 30.0, 86400.0, booted),
        InterfaceChange("r1", "127.0.0.2", NOW + S, 3, "ge-0/0/3", "up", "down"),
        InterfaceChange("r2", "127.0.0.3", NOW + S, 1, "eth0", "down", "up"),
    ])
    events = await store.snmp_events("r1")
    assert [(e.kind, e.at, e.from_state, e.to_state) for e in events] == [
        ("agent", NOW - M, "answering", "silent"), ("agent", NOW - 40 * S, "silent", "answering"),
        ("reboot", NOW, None, None), ("interface", NOW + S, "up", "down")]
    assert events[0].detail == "timeout"
    assert events[2].detail is not None and booted.isoformat() in events[2].detail
    assert (events[3].ifindex, events[3].ifname) == (3, "ge-0/0/3")
    assert len(await store.snmp_events()) == 5
    assert [e.device for e in await store.snmp_events(since=NOW + S)] == ["r1", "r2"]


# -- rollups and retention ------------------------------------------------------------------


async def test_interface_rollups_per_minute_and_hour(store: HistoryStore) -> None:
    t = HOUR.floor(NOW) - 3 * H  # a complete hour, three hours back
    # ifindex 1: minute t has in 100/300/200 and out 10/-/30; minute t+1 has in 1000 only.
    # ifindex 2: no rate at all (never stored). r2: one sample, in the second hour.
    await store.write_snmp_polls([
        poll("r1", t, iface(1, 100.0, 10.0), iface(2, None, None)),
        poll("r1", t + 20 * S, iface(1, 300.0, None), iface(2, None, None)),
        poll("r1", t + 40 * S, iface(1, 200.0, 30.0)),
        poll("r1", t + M, iface(1, 1000.0, None)),
        poll("r2", t + H + 5 * M, iface(4, 8.0, 9.0)),
    ])
    await store.write_checks([CheckResult("r1", "127.0.0.2", t, 1, 1, 1.0, State.UP)])
    report = await Maintenance(store, settle=timedelta(0), budget=30.0).run_once(NOW)
    assert report.watermarks["if_1m"] == MINUTE.floor(NOW) and report.watermarks["if_1h"] == HOUR.floor(NOW)
    assert report.rolled["if_1m"] == 3 and report.rolled["if_1h"] == 2
    assert report.rolled["1m"] == 1  # the checks' own rollups go on beside them

    minutes = await store.if_rollups("r1", "1m")
    assert [(r.bucket, r.ifindex, r.samples) for r in minutes] == [(t, 1, 3), (t + M, 1, 1)]
    first, second = minutes
    assert (first.in_avg, first.in_max, first.out_avg, first.out_max) == (200.0, 300.0, 20.0, 30.0)
    # p95 interpolated as percentile_cont: in 200 + 0.9 (300 - 200); out 10 + 0.95 (30 - 10)
    assert first.in_p95 == pytest.approx(290.0) and first.out_p95 == pytest.approx(29.0)
    assert (second.in_avg, second.in_max, second.in_p95) == (1000.0, 1000.0, 1000.0)
    assert (second.out_avg, second.out_max, second.out_p95) == (None, None, None)

    [hour] = await store.if_rollups("r1", "1h")
    assert (hour.bucket, hour.samples, hour.in_avg, hour.in_max) == (t, 4, 400.0, 1000.0)
    assert hour.in_p95 == pytest.approx(300.0 + 0.85 * 700.0)  # ranks 2 and 3 of 100/200/300/1000
    assert (hour.out_avg, hour.out_max) == (20.0, 30.0) and hour.out_p95 == pytest.approx(29.0)
    assert [(r.bucket, r.samples, r.in_avg) for r in await store.if_rollups("r2", "1h")] == [(t + H, 1, 8.0)]

    # A rate replayed late moves the watermarks back, and its buckets are computed again.
    await store.write_snmp_polls([poll("r1", t + 50 * S, iface(1, 400.0, 50.0))])
    await Maintenance(store, settle=timedelta(0), budget=30.0).run_once(NOW)
    first = (await store.if_rollups("r1", "1m", ifindex=1))[0]
    assert (first.samples, first.in_avg, first.in_max, first.out_max) == (4, 250.0, 400.0, 50.0)
    assert (await store.if_rollups("r1", "1h"))[0].samples == 5

    # The tiers by span, as for checks.
    raw = await interface_history(store, "r1", t - M, t + H, ifindex=1)
    assert raw.tier == "raw" and len(raw) == 5 and not raw.rollups
    week = await interface_history(store, "r1", NOW - 3 * D, NOW)
    assert week.tier == "1m" and [r.bucket for r in week.rollups] == [t, t + M]
    month = await interface_history(store, "r1", NOW - 30 * D, NOW)
    assert month.tier == "1h" and [r.samples for r in month.rollups] == [5]


async def test_retention_drops_old_interface_rates_and_keeps_rollups_and_events(store: HistoryStore) -> None:
    now = datetime(2026, 11, 13, 12, 0, tzinfo=UTC)
    old = now - 10 * D
    job = Maintenance(store, Retention(raw=7 * D, minute=90 * D, hour=None), settle=timedelta(0),
                      retention_period=0, window=timedelta(days=30), budget=30.0)
    await store.write_snmp_polls([poll("r1", old, iface(1, 5.0, 6.0)),
                                  poll("r1", old + 30 * S, iface(1, 7.0))])
    await store.write_snmp_events([Reboot("r1", "127.0.0.2", old, 3.0, 9000.0, old - 3 * S)])
    await job.run_once(now=old + H + 5 * M)  # rolled up as time went by
    await store.write_snmp_polls([poll("r1", now - 5 * M, iface(1, 1.0, 2.0))])
    report = await job.run_once(now=now)

    assert [r.at for r in await store.if_rates("r1")] == [now - 5 * M]
    assert [(r.bucket, r.samples, r.in_avg) for r in await store.if_rollups("r1", "1m")] == [
        (old, 2, 6.0), (now - 5 * M, 1, 1.0)]
    assert [r.bucket for r in await store.if_rollups("r1", "1h")] == [old, now - H]
    assert [e.kind for e in await store.snmp_events("r1")] == ["reboot"]  # never dropped
    latest = await latest_snmp(store, "r1")
    assert latest is not None and latest.polled_at == now - 5 * M
    if store.dialect == "postgresql":
        assert partitions.partition_name("if_rates", old) in report.dropped_partitions
        async with store.engine.connect() as conn:
            days = set(await partitions.existing(conn, "if_rates"))
        assert partitions.day_of(old) not in days and partitions.day_of(now) in days
        # A rate for a dropped day can still be written: its partition is made again.
        await store.write_snmp_polls([poll("r1", old + M, iface(1, 3.0))])
        assert len(await store.if_rates("r1")) == 2
    else:
        assert report.deleted_rows == 2  # the two raw rates of 10 days ago


# -- the writer through a database outage ---------------------------------------------------


class Outage:
    """Make the history database fail and come back: SQLite locked by another writer, or a
    private PostgreSQL server killed and started again."""

    def __init__(self, url: str, cluster: PrivateCluster | None) -> None:
        self.url, self.cluster = url, cluster
        self._lock: sqlite3.Connection | None = None

    def down(self) -> None:
        if self.cluster is not None:
            self.cluster.kill()
            return
        self._lock = sqlite3.connect(str(make_url(self.url).database), isolation_level=None)
        self._lock.execute("BEGIN EXCLUSIVE")

    def up(self) -> None:
        if self.cluster is not None:
            self.cluster.start()
        elif self._lock is not None:
            self._lock.execute("COMMIT")
            self._lock.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def outage(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Outage]:
    if request.param == "sqlite":
        yield Outage(f"sqlite+aiosqlite:///{tmp_path / 'history.db'}", None)
        return
    cluster: PrivateCluster = request.getfixturevalue("private_pg")
    yield Outage(cluster.url, cluster)


async def wait_until(predicate: Callable[[], bool], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        await asyncio.sleep(0.02)


async def test_the_writer_spools_snmp_rows_while_the_database_is_down_and_replays_them(
        outage: Outage, tmp_path: Path) -> None:
    # SQLite: how long a write waits for the lock the outage holds. PostgreSQL: the connect timeout;
    # its outage is a killed server (refused at once), and 50 ms was too short for a first connect
    # on a busy machine (seen in a full run).
    store = HistoryStore(outage.url, busy_timeout=0.05 if outage.cluster is None else 5.0)
    await store.open()
    bus = EventBus()
    spool = Spool(tmp_path / "spool")
    writer = StoreWriter(store, bus.subscribe("store", maxsize=10**6), flush_interval=0.05, batch_size=200,
                         retry_delay=0.05, max_retry_delay=0.2, spool_after=0.2, stop_attempts=1,
                         spool=spool)
    polls = [poll(f"r{d}", NOW + i * M, *(iface(k, 100.0 * i + k, 1.0) for k in range(1, 6 - i % 2)))
             for i in range(12) for d in range(5)]
    events = [InterfaceChange(f"r{i}", "127.0.0.2", NOW + i * S, 5, "ge-0/0/5", "up", "down")
              for i in range(5)]
    events.append(Reboot("r0", "127.0.0.2", NOW + 5 * M, 10.0, 5000.0, NOW + 5 * M - 10 * S))
    writer.start()
    try:
        for p in polls[:10]:
            bus.publish(p)
        await wait_until(lambda: writer.written_polls == 10)
        await asyncio.to_thread(outage.down)
        for p in polls[10:]:
            bus.publish(p)
        for e in events:
            bus.publish(e)
        await wait_until(lambda: spool.rows == len(polls) - 10 + len(events))
        assert list((tmp_path / "spool").glob("*.spool"))
        gauges = writer.gauges()
        assert gauges["store_failing"] == 1.0 and gauges["store_snmp_pending"] == 0
        await asyncio.to_thread(outage.up)
        await wait_until(lambda: spool.empty and writer.written_polls == len(polls), timeout=60)
    finally:
        await writer.stop()
        spool.close()
    try:
        assert writer.dropped_samples == 0 and writer.lost_at_stop == 0
        assert writer.written_snmp_events == len(events)
        rates = [r for d in range(5) for r in await store.if_rates(f"r{d}")]
        assert len(rates) == sum(len(p.interfaces) for p in polls)  # each exactly once
        latest = await store.snmp_latest("r3")
        assert latest is not None and latest.polled_at == NOW + 11 * M
        assert [i.ifindex for i in latest.interfaces] == [1, 2, 3, 4]  # the last poll had 4
        stored = await store.snmp_events()
        assert [(e.device, e.kind, e.at) for e in stored] == [(e.device, "interface" if isinstance(
            e, InterfaceChange) else "reboot", e.at) for e in sorted(events, key=lambda e: e.at)]
    finally:
        await store.close()


# -- wardtui snmp ---------------------------------------------------------------------------


def _seed(url: str) -> None:
    async def fill() -> None:
        async with HistoryStore(url) as store:
            await store.write_checks([CheckResult("icmp-only", "127.0.0.9", NOW, 1, 1, 1.0, State.UP)])
            await store.write_snmp_polls([
                poll("north-b001-rtr", NOW - M, iface(1), iface(2)),
                poll("north-b001-rtr", NOW, iface(1, 123456789.0, None, name="Gi0/1"),
                     iface(2, None, None, oper="down"), uptime=90061.0)])
    asyncio.run(fill())


def _cli_url(url: str) -> str:
    return url.replace("sqlite+aiosqlite://", "sqlite://").replace("postgresql+asyncpg://", "postgresql://")


def test_wardtui_snmp_prints_the_latest_poll(db_url: str, tmp_path: Path) -> None:
    _seed(db_url)
    url = _cli_url(db_url)
    proc = run("snmp", "north-b001-rtr", "--json", "--db", url, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    record = json.loads(proc.stdout)
    assert record == {
        "device": "north-b001-rtr", "address": "127.0.0.2", "polled_at": NOW.isoformat(),
        "system": {"name": "north-b001-rtr.example", "descr": "Test OS 1.0",
                   "object_id": "1.3.6.1.4.1.8072.3.2.10", "uptime_s": 90061.0, "missing": []},
        "polling": {"polls": 2, "answered": 2, "last_poll_at": NOW.isoformat(), "last_outcome": "answered",
                    "last_detail": None, "last_answer_at": NOW.isoformat()},
        "interfaces": [
            {"ifindex": 1, "name": "Gi0/1", "alias": "to site 1", "admin": "up", "oper": "up",
             "speed_bps": 10**9, "in_bps": 123456789.0, "out_bps": None, "in_errors": 0, "out_errors": 1,
             "in_discards": 2, "out_discards": 3},
            {"ifindex": 2, "name": "ge-0/0/2", "alias": "to site 2", "admin": "up", "oper": "down",
             "speed_bps": 10**9, "in_bps": None, "out_bps": None, "in_errors": 0, "out_errors": 1,
             "in_discards": 2, "out_discards": 3}]}

    # The table for people: a header, the system facts, aligned columns.
    proc = run("--db", url, "snmp", "north-b001-rtr", cwd=tmp_path)  # --db before the subcommand too
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("north-b001-rtr (127.0.0.2), polled ")
    assert "up 1d01h" in lines[1]
    header = next(line for line in lines if line.startswith("ifindex"))
    rows = lines[lines.index(header) + 1:]
    assert [r.split()[:5] for r in rows] == [["1", "Gi0/1", "to", "site", "1"],
                                             ["2", "ge-0/0/2", "to", "site", "2"]]
    assert "123M" in rows[0] and "1G" in rows[0] and "down" in rows[1]
    # Columns line up: every row's "speed" value ends where the header's "speed" does.
    end = header.index("speed") + len("speed")
    assert all(r[end - 2:end] == "1G" for r in rows)


async def test_poll_outcomes_are_counted_once_and_the_newest_kept(store: HistoryStore) -> None:
    """Polls are written in the order they were made (the spool goes in before newer rows), so a
    batch with nothing newer than the stored status was written before (a spool replayed again
    after a crash): its polls are not counted twice, and the newest outcome stays."""
    timeout = SnmpFailure("r1", "127.0.0.2", NOW, "timeout", "no answer within 2 s (1 retries)")
    first = [poll("r1", NOW - 2 * M, iface(1)), poll("r1", NOW - M, iface(1)), timeout]
    await store.write_snmp_polls(first)
    await store.write_snmp_polls(first[:2])  # written again
    latest = await store.snmp_latest("r1")
    assert latest is not None and latest.status is not None and latest.system is not None
    s = latest.status
    assert (s.polls, s.answered, s.outcome, s.detail) == (3, 2, "timeout", "no answer within 2 s (1 retries)")
    assert (s.polled_at, s.answered_at, latest.polled_at) == (NOW, NOW - M, NOW - M)
    await store.write_snmp_polls([poll("r1", NOW + M, iface(1))])  # it answers again
    latest = await store.snmp_latest("r1")
    assert latest is not None and latest.status is not None
    assert (latest.status.polls, latest.status.outcome, latest.status.detail) == (4, "answered", None)
    assert latest.status.answered_at == latest.status.polled_at == NOW + M


def test_wardtui_snmp_says_how_the_polls_since_the_last_answer_went(db_url: str, tmp_path: Path) -> None:
    async def fill() -> None:
        async with HistoryStore(db_url) as store:
            await store.write_snmp_polls([
                poll("r1", NOW - M, iface(1)),
                *(SnmpFailure("r1", "127.0.0.2", NOW - k * S, "timeout", "no answer within 2 s (1 retries)")
                  for k in (20, 10, 0)),
                SnmpFailure("silent", "127.0.0.3", NOW, "authentication",
                            "the agent refused the credentials: \x1b]0;owned\x07")])
    asyncio.run(fill())
    url = _cli_url(db_url)
    r1 = run("snmp", "r1", "--db", url, cwd=tmp_path)
    assert r1.returncode == 0, r1.stderr
    assert "polls:  4 (1 answered, the last at " in r1.stdout
    assert ", timeout: no answer within 2 s (1 retries)" in r1.stdout
    assert "ge-0/0/1" in r1.stdout  # the last answer's interfaces are still shown
    silent = run("snmp", "silent", "--db", url, cwd=tmp_path)
    assert silent.returncode == 0, silent.stderr
    assert silent.stdout.startswith("silent (127.0.0.3): no SNMP answer in the history\n")
    assert "polls:  1 (never answered)" in silent.stdout
    assert "authentication: the agent refused the credentials: \ufffd]0;owned\ufffd" in silent.stdout
    assert "\x1b" not in silent.stdout and "never been polled" not in silent.stdout


def test_wardtui_snmp_errors(db_url: str, tmp_path: Path) -> None:
    _seed(db_url)
    url = _cli_url(db_url)
    for device, expected in (("nobody", "no device named 'nobody'"),
                             ("icmp-only", "'icmp-only' has no SNMP data")):
        proc = run("snmp", device, "--db", url, cwd=tmp_path)
        assert proc.returncode == 2, proc.stderr
        assert_no_traceback(proc)
        assert expected in proc.stderr and proc.stdout == ""


def test_wardtui_snmp_without_a_database(tmp_path: Path) -> None:
    proc = run("snmp", "r1", "--db", f"sqlite:///{tmp_path / 'none.db'}", cwd=tmp_path)
    assert proc.returncode == 1 and "no history at" in proc.stderr
    assert not (tmp_path / "none.db").exists()  # never created by a read
    proc = run("snmp", "r1", "--db", "postgresql://u:hunter2@127.0.0.1:1/x", cwd=tmp_path)
    assert proc.returncode == 1
    assert_no_traceback(proc)
    assert "cannot open the history database postgresql://u:***@127.0.0.1:1/x" in proc.stderr
    assert "hunter2" not in proc.stderr
    proc = run("snmp", "r1", "--db", "mysql://x/y", cwd=tmp_path)
    assert proc.returncode == 2 and "unsupported database URL scheme" in proc.stderr
