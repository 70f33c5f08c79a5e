"""Rollups, retention and partitions (store.rollup, store.maintenance) on SQLite and PostgreSQL.

Every expected number below is worked out by hand in the comment beside it, from the
definitions in store/rollup.py: ``rtt_p95`` interpolates linearly between the closest ranks
of the sorted replied RTTs (position ``0.95 * (n - 1)``), ``jitter_ms`` is the mean absolute
difference of consecutive replied RTTs in time order, ``down_s`` the part of the bucket under
an outage and ``up_s`` the rest.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import astuple
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from poller.events import CheckResult, State, Transition
from store import HistoryStore, partitions
from store.maintenance import Maintenance
from store.queries import Retention
from store.records import Rollup
from tests.integration.postgres import pg_url  # noqa: F401

T = datetime(2026, 11, 3, 8, 0, tzinfo=UTC)  # on the hour
S = timedelta(seconds=1)
M = timedelta(minutes=1)
H = timedelta(hours=1)
D = timedelta(days=1)


@pytest.fixture
async def store(db_url: str) -> AsyncIterator[HistoryStore]:
    """A new history store, migrated to head, on each engine."""
    async with HistoryStore(db_url) as s:
        yield s


def check(at: datetime, rtt: float | None, *, device: str = "r1", sent: int = 1,
          received: int | None = None) -> CheckResult:
    got = (0 if rtt is None else 1) if received is None else received
    return CheckResult(device, "10.0.0.1", at, sent, got, rtt, State.UP if got else State.DOWN)


def down(at: datetime, since: datetime, device: str = "r1") -> Transition:
    return Transition(device, "10.0.0.1", State.UP, State.DOWN, at, since, None)


def up(at: datetime, device: str = "r1") -> Transition:
    return Transition(device, "10.0.0.1", State.DOWN, State.UP, at, None, 1.0)


def maintenance(store: HistoryStore, **kwargs: Any) -> Maintenance:
    return Maintenance(store, settle=timedelta(0), **kwargs)


def values(r: Rollup) -> tuple[Any, ...]:
    """(bucket, checks, sent, received, rtt_min, rtt_avg, rtt_max, rtt_p95, jitter_ms, up_s, down_s)"""
    return astuple(r)[2:]


def approx(*expected: Any) -> Any:
    return pytest.approx(expected, abs=1e-9)


async def rollups(store: HistoryStore, tier: str, device: str = "r1") -> list[tuple[Any, ...]]:
    return [values(r) for r in await store.rollups(device, tier)]


async def partition_days(store: HistoryStore, table: str) -> set[datetime]:
    async with store.engine.connect() as conn:
        return set(await partitions.existing(conn, table))


async def count(store: HistoryStore, table: str) -> int:
    async with store.engine.connect() as conn:
        return int(await conn.scalar(select(func.count()).select_from(store.table(table))) or 0)


# -- minute buckets --------------------------------------------------------------------------


async def test_minute_rollups_by_hand(store: HistoryStore) -> None:
    await store.write_checks([
        # minute T: RTTs 10, 30, 20, 40 in time order
        check(T, 10.0), check(T + 15 * S, 30.0), check(T + 30 * S, 20.0), check(T + 45 * S, 40.0),
        # minute T+1m: a check lost on all 3 probes and one that needed 2 for a reply
        check(T + M, 5.0), check(T + M + 10 * S, None, sent=3), check(T + M + 20 * S, 9.0),
        check(T + M + 30 * S, 6.0, sent=2),
        # minute T+2m: nothing came back
        check(T + 2 * M, None), check(T + 2 * M + 30 * S, None),
        # minute T+3m: one reply
        check(T + 3 * M + 59 * S, 7.0),
        # minute T+4m is not complete at `now` below: not rolled up yet
        check(T + 4 * M, 1.0),
    ])
    report = await maintenance(store).run_once(now=T + 4 * M + 30 * S)
    assert report.rolled["1m"] == 4 and report.watermarks["1m"] == T + 4 * M
    assert await rollups(store, "1m") == [
        # sorted 10,20,30,40: p95 at rank 0.95*3 = 2.85 -> 30 + 0.85*(40-30) = 38.5;
        # avg 100/4 = 25; jitter (|30-10| + |20-30| + |40-20|) / 3 = 50/3
        approx(T, 4, 4, 4, 10.0, 25.0, 40.0, 38.5, 50 / 3, 60.0, 0.0),
        # 4 checks, sent 1+3+1+2 = 7, received 3; replied RTTs 5, 9, 6 (the lost check is
        # skipped, not a break): sorted 5,6,9, rank 0.95*2 = 1.9 -> 6 + 0.9*(9-6) = 8.7;
        # avg 20/3; jitter (|9-5| + |6-9|) / 2 = 3.5
        approx(T + M, 4, 7, 3, 5.0, 20 / 3, 9.0, 8.7, 3.5, 60.0, 0.0),
        # no reply: every RTT figure is NULL
        approx(T + 2 * M, 2, 2, 0, None, None, None, None, None, 60.0, 0.0),
        # one reply: p95 is that RTT, jitter needs two
        approx(T + 3 * M, 1, 1, 1, 7.0, 7.0, 7.0, 7.0, None, 60.0, 0.0),
    ]
    assert await store.rollups("r1", "1m", since=T + M, until=T + 3 * M) == [
        r for r in await store.rollups("r1", "1m") if T + M <= r.bucket < T + 3 * M]
    assert [r.loss_pct for r in await store.rollups("r1", "1m")] == approx(0.0, 400 / 7, 100.0, 0.0)


async def test_outages_split_a_minute_into_down_and_up_seconds(store: HistoryStore) -> None:
    # r1 down from T+1m15s (noticed at T+1m20s) to T+1m45s: 30 s of minute T+1m.
    await store.write_transitions([down(T + M + 20 * S, T + M + 15 * S), up(T + M + 45 * S)])
    # r2 down since T+30s and still down: half of minute T, then all of the minutes after.
    await store.write_transitions([down(T + 35 * S, T + 30 * S, "r2")])
    await store.write_checks([
        check(at, 1.0 if device == "r1" else None, device=device)
        for device in ("r1", "r2") for at in (T, T + M, T + 2 * M)
    ])
    await maintenance(store).run_once(now=T + 3 * M)
    # r1: minute T untouched; minute T+1m: down 45 - 15 = 30 s, up 60 - 30 = 30 s
    assert [(r[0], r[-2], r[-1]) for r in await rollups(store, "1m", "r1")] == [
        (T, 60.0, 0.0), (T + M, 30.0, 30.0), (T + 2 * M, 60.0, 0.0)]
    # r2: minute T: down 60 - 30 = 30 s; then the open outage covers each whole minute
    assert [(r[0], r[-2], r[-1]) for r in await rollups(store, "1m", "r2")] == [
        (T, 30.0, 30.0), (T + M, 0.0, 60.0), (T + 2 * M, 0.0, 60.0)]
    for r in await store.rollups("r2", "1m"):
        assert r.up_s + r.down_s == 60.0
    assert [r.availability_pct for r in await store.rollups("r2", "1m")] == approx(50.0, 0.0, 0.0)


# -- hour buckets ----------------------------------------------------------------------------


async def test_hourly_rollups_come_from_the_raw_checks(store: HistoryStore) -> None:
    await store.write_checks([
        # hour T: RTTs 10, 20 (minute 0), 100 (minute 10), lost (minute 30), 30 (minute 59)
        check(T, 10.0), check(T + 30 * S, 20.0), check(T + 10 * M, 100.0),
        check(T + 30 * M, None, sent=3), check(T + H - S, 30.0),
        # hour T+1h is not over at `now`: only its minutes are rolled up
        check(T + H, 50.0),
    ])
    # r1 down from T+20m to T+21m30s: 90 s of hour T
    await store.write_transitions([down(T + 20 * M + 5 * S, T + 20 * M), up(T + 21 * M + 30 * S)])
    # r2: checks in hour T, down since T+59m (still open): 60 s of hour T are down
    await store.write_checks([check(T + 5 * M, 2.0, device="r2"), check(T + 59 * M, None, device="r2")])
    await store.write_transitions([down(T + 59 * M, T + 59 * M, "r2")])

    report = await maintenance(store).run_once(now=T + H + 5 * M)
    assert report.watermarks == {"1m": T + H + 5 * M, "1h": T + H}
    assert report.rolled == {"1m": 5 + 2, "1h": 2}
    assert await rollups(store, "1h") == [
        # 5 checks, sent 1+1+1+3+1 = 7, received 4; replied RTTs in time order 10, 20, 100, 30:
        # min 10, avg 160/4 = 40, max 100; sorted 10,20,30,100: rank 0.95*3 = 2.85 ->
        # 30 + 0.85*(100-30) = 89.5; jitter (10 + 80 + 70) / 3 = 160/3; down 90 s, up 3510 s
        approx(T, 5, 7, 4, 10.0, 40.0, 100.0, 89.5, 160 / 3, 3510.0, 90.0),
    ]
    # The same hour from its minutes would be different: the p95 of the minutes' p95s (19.5,
    # 100, 30) or their mean would not give 89.5.
    # Only minutes with a check have a bucket (none for the outage's minutes 20 and 21).
    minutes = await rollups(store, "1m")
    assert [m[0] for m in minutes] == [T, T + 10 * M, T + 30 * M, T + 59 * M, T + H]
    # minute T: RTTs 10, 20: rank 0.95*1 -> 10 + 0.95*10 = 19.5; jitter 10
    assert minutes[0] == approx(T, 2, 2, 2, 10.0, 15.0, 20.0, 19.5, 10.0, 60.0, 0.0)
    assert minutes[2] == approx(T + 30 * M, 1, 3, 0, None, None, None, None, None, 60.0, 0.0)
    # r2: replied RTT 2 only; down 3600 - 59*60 = 60 s
    assert await rollups(store, "1h", "r2") == [
        approx(T, 2, 2, 1, 2.0, 2.0, 2.0, 2.0, None, 3540.0, 60.0)]


async def test_minute_buckets_under_an_outage_that_spans_their_edges(store: HistoryStore) -> None:
    # down from T+10m+50s to T+12m+10s: minute 10 has 10 s down, 11 all 60, 12 has 10 s
    await store.write_transitions([down(T + 10 * M + 50 * S, T + 10 * M + 50 * S),
                                   up(T + 12 * M + 10 * S)])
    await store.write_checks([check(T + m * M, None) for m in (10, 11, 12)])
    await maintenance(store).run_once(now=T + 13 * M)
    assert [(r[0], r[-2], r[-1]) for r in await rollups(store, "1m")] == [
        (T + 10 * M, 50.0, 10.0), (T + 11 * M, 0.0, 60.0), (T + 12 * M, 50.0, 10.0)]


# -- running again ---------------------------------------------------------------------------


async def test_late_rows_move_the_watermark_back_and_their_buckets_are_recomputed(
    store: HistoryStore,
) -> None:
    await store.write_checks([check(T, 10.0), check(T + M, 20.0), check(T + 2 * M, 30.0),
                              check(T + H + M, 1.0)])
    m = maintenance(store)
    first = await m.run_once(now=T + H + 2 * M)
    assert first.rolled == {"1m": 4, "1h": 1}
    assert await rollups(store, "1h") == [approx(T, 3, 3, 3, 10.0, 20.0, 30.0, 29.0, 10.0, 3600.0, 0.0)]

    # Rows of minute T arrive late (replayed from the spool), after both tiers passed them.
    await store.write_checks([check(T + 20 * S, 40.0), check(T + 40 * S, None)])
    second = await m.run_once(now=T + H + 2 * M)
    # Both watermarks went back to T, so every minute since and the hour are written again.
    assert second.rolled == {"1m": 4, "1h": 1}
    assert second.watermarks == {"1m": T + H + 2 * M, "1h": T + H}
    # minute T now: RTTs 10, 40 (the lost check counts, not its RTT): sorted 10,40, rank 0.95
    # -> 10 + 0.95*30 = 38.5; avg 25; jitter 30
    assert (await rollups(store, "1m"))[0] == approx(T, 3, 3, 2, 10.0, 25.0, 40.0, 38.5, 30.0, 60.0, 0.0)
    # hour T: RTTs in time order 10, 40, 20, 30: sorted 10,20,30,40: p95 38.5; avg 25;
    # jitter (30 + 20 + 10) / 3 = 20
    assert await rollups(store, "1h") == [approx(T, 5, 5, 4, 10.0, 25.0, 40.0, 38.5, 20.0, 3600.0, 0.0)]
    # The untouched minutes are the same as before.
    assert (await rollups(store, "1m"))[1:] == [
        approx(T + M, 1, 1, 1, 20.0, 20.0, 20.0, 20.0, None, 60.0, 0.0),
        approx(T + 2 * M, 1, 1, 1, 30.0, 30.0, 30.0, 30.0, None, 60.0, 0.0),
        approx(T + H + M, 1, 1, 1, 1.0, 1.0, 1.0, 1.0, None, 60.0, 0.0),
    ]


async def test_running_twice_is_idempotent(store: HistoryStore) -> None:
    await store.write_checks([check(T + k * 7 * S, float(k % 5)) for k in range(600)])  # 70 minutes
    await store.write_transitions([down(T + 3 * M, T + 3 * M), up(T + 4 * M)])
    now = T + H + 15 * M
    m = maintenance(store, retention_period=0)
    first = await m.run_once(now=now)
    assert first.rolled == {"1m": 70, "1h": 1}
    before = (await store.rollups("r1", "1m"), await store.rollups("r1", "1h"))
    again = await m.run_once(now=now)
    assert again.rolled == {"1m": 0, "1h": 0} and again.watermarks == first.watermarks
    # A new maintenance (a restart) starts from the stored watermarks.
    fresh = await maintenance(store).run_once(now=now)
    assert fresh.rolled == {"1m": 0, "1h": 0} and fresh.watermarks == first.watermarks
    assert (await store.rollups("r1", "1m"), await store.rollups("r1", "1h")) == before
    assert (await count(store, "rollup_1m"), await count(store, "rollup_1h")) == (70, 1)
    assert await store.count_checks() == 600


# -- partitions and retention ----------------------------------------------------------------


async def test_todays_and_tomorrows_partitions_are_made_ahead(pg_url: str) -> None:  # noqa: F811
    """PostgreSQL only: SQLite has no partitions."""
    now = datetime(2026, 11, 13, 23, 59, 59, tzinfo=UTC)
    async with HistoryStore(pg_url) as store:
        assert await partition_days(store, "checks") == set()  # a new database has none
        await maintenance(store).run_once(now=now)
        today = datetime(2026, 11, 13, tzinfo=UTC)
        for table in ("checks", "rollup_1m"):
            assert await partition_days(store, table) == {today, today + D}
        async with store.engine.connect() as conn:
            assert set((await partitions.existing(conn, "checks")).values()) == {
                "checks_p20261113", "checks_p20261114"}
        # The next day's pass makes the day after.
        await maintenance(store).run_once(now=now + S)
        assert await partition_days(store, "checks") == {today, today + D, today + 2 * D}


async def test_retention_drops_old_tiers_and_keeps_the_rest(store: HistoryStore) -> None:
    now = datetime(2026, 11, 13, 12, 0, tzinfo=UTC)
    old, older = now - 10 * D, now - 100 * D  # 2026-11-03 12:00 and 2026-08-05 12:00
    m = maintenance(store, retention_period=0, window=timedelta(days=30), budget=30.0)
    # As it would have happened: rows written and rolled up as time went by ...
    await store.write_checks([check(older, 1.0), check(older + 30 * S, 3.0)])
    await store.write_transitions([down(older + 5 * S, older), up(older + 40 * S)])
    await m.run_once(now=older + H + 5 * M)
    await store.write_checks([check(old, 2.0)])
    await store.write_transitions([down(old + 5 * S, old)])  # still down
    await m.run_once(now=old + H + 5 * M)
    await store.write_checks([check(now - 5 * M, 4.0)])
    report = await m.run_once(now=now)

    # raw: 7 days -> only the last row is left
    assert [c.at for c in await store.checks("r1")] == [now - 5 * M]
    # 1-minute: 90 days -> the minute of 100 days ago is gone, that of 10 days ago stays
    assert [r.bucket for r in await store.rollups("r1", "1m")] == [old, now - 5 * M]
    # 1-hour: kept for ever
    assert [r.bucket for r in await store.rollups("r1", "1h")] == [older, old, now - H]
    assert (await store.rollups("r1", "1h"))[0].jitter_ms == 2.0  # |3 - 1|, as rolled up then
    # transitions and outages are never removed
    assert [t.at for t in await store.transitions("r1")] == [older + 5 * S, older + 40 * S, old + 5 * S]
    assert [(o.start, o.end) for o in await store.outages("r1")] == [(older, older + 40 * S), (old, None)]

    if store.dialect == "postgresql":
        today = datetime(2026, 11, 13, tzinfo=UTC)
        # Every raw day ending on or before now - 7 days is dropped, today's and tomorrow's made.
        assert await partition_days(store, "checks") == {today, today + D}
        assert await partition_days(store, "rollup_1m") == {
            partitions.day_of(old), partitions.day_of(old) + D, today, today + D}
        # (the minute rollups of 100 days ago went on the second pass on SQLite, which
        # deletes by bucket; PostgreSQL keeps a day until all of it is past 90 days)
        assert report.dropped_partitions == ["checks_p20261103", "checks_p20261104",
                                             "rollup_1m_p20260805", "rollup_1m_p20260806"]
        assert report.deleted_rows == 0
        # A row for a dropped day can still be written: its partition is made again.
        await store.write_checks([check(old + M, 5.0)])
        assert len(await store.checks("r1")) == 2
    else:
        assert report.deleted_rows == 1  # the raw row of 10 days ago
        assert report.dropped_partitions == []


async def test_raw_rows_the_hourly_rollup_has_not_read_are_kept(store: HistoryStore) -> None:
    now = datetime(2026, 11, 13, 12, 0, tzinfo=UTC)
    old = now - 10 * D
    await store.write_checks([check(old, 10.0), check(old + 10 * M, 20.0), check(now - M, 1.0)])
    # No time to roll anything up: the watermarks stay at the first check, 10 days ago, so the
    # rows past raw retention stay too.
    stalled = await maintenance(store, budget=0).run_once(now=now)
    assert stalled.watermarks == {"1m": old, "1h": old}
    assert stalled.dropped_partitions == [] and stalled.deleted_rows == 0
    assert len(await store.checks("r1")) == 3
    if store.dialect == "postgresql":
        assert partitions.day_of(old) in await partition_days(store, "checks")

    # Once the hourly rollup has read them, they go.
    done = await maintenance(store, budget=30.0).run_once(now=now)
    assert done.watermarks == {"1m": now, "1h": now}
    assert [c.at for c in await store.checks("r1")] == [now - M]
    # old's hour: RTTs 10, 20: rank 0.95 -> 10 + 0.95*10 = 19.5; jitter 10
    assert (await rollups(store, "1h"))[0] == approx(old, 2, 2, 2, 10.0, 15.0, 20.0, 19.5, 10.0, 3600.0, 0.0)
    if store.dialect == "postgresql":
        assert partitions.day_of(old) not in await partition_days(store, "checks")
        assert partitions.day_of(old) in await partition_days(store, "rollup_1m")


async def test_no_retention_keeps_everything(store: HistoryStore) -> None:
    now = datetime(2026, 11, 13, 12, 0, tzinfo=UTC)
    await store.write_checks([check(now - 400 * D, 1.0), check(now - M, 2.0)])
    keep_all = Retention(raw=None, minute=None, hour=None)
    m = maintenance(store, retention=keep_all, window=timedelta(days=30), budget=60.0)
    report = await m.run_once(now=now)
    assert report.dropped_partitions == [] and report.deleted_rows == 0
    assert await store.count_checks() == 2
    assert [r.bucket for r in await store.rollups("r1", "1m")] == [now - 400 * D, now - M]


async def test_a_window_off_the_bucket_bounds_never_splits_a_bucket(store: HistoryStore) -> None:
    # Each pass covers at most 90 s: a window ending mid-minute must not roll up half a minute.
    await store.write_checks([check(T, 1.0), check(T + 30 * S, 2.0), check(T + 65 * S, 3.0),
                              check(T + 100 * S, 5.0), check(T + 130 * S, 8.0)])
    await maintenance(store, window=timedelta(seconds=90)).run_once(now=T + 3 * M)
    assert await rollups(store, "1m") == [
        # minute T: RTTs 1, 2 -> p95 1 + 0.95*1 = 1.95, jitter 1
        approx(T, 2, 2, 2, 1.0, 1.5, 2.0, 1.95, 1.0, 60.0, 0.0),
        # minute T+1m: RTTs 3, 5 -> p95 3 + 0.95*2 = 4.9, jitter 2
        approx(T + M, 2, 2, 2, 3.0, 4.0, 5.0, 4.9, 2.0, 60.0, 0.0),
        approx(T + 2 * M, 1, 1, 1, 8.0, 8.0, 8.0, 8.0, None, 60.0, 0.0),
    ]


class FakeClocks:
    """A wall clock an operator (or NTP) can step, and a monotonic clock that only moves on."""

    def __init__(self, wall: datetime) -> None:
        self.wall, self.ticks = wall, 1000.0

    def run(self, seconds: float) -> None:
        self.wall += timedelta(seconds=seconds)
        self.ticks += seconds

    def step(self, by: timedelta) -> None:
        self.wall += by


async def test_a_forward_clock_step_beyond_raw_retention_drops_nothing_unread(store: HistoryStore) -> None:
    """The wall clock jumps 10 days ahead (--keep-raw 7d): today's raw rows, and a row written
    after the rollup had passed its minute, stay; the late row is rolled up."""
    today = datetime(2026, 11, 13, 9, 0, tzinfo=UTC)
    clocks = FakeClocks(today + 30 * M)
    m = maintenance(store, retention_period=0, budget=60.0, clock=lambda: clocks.wall,
                    ticks=lambda: clocks.ticks)
    await store.write_checks([check(today + i * M, 1.0) for i in range(30)])
    first = await m.run_once()
    assert first.watermarks["1m"] == today + 30 * M and first.kept_at == today + 30 * M
    clocks.run(60)
    clocks.step(10 * D)
    for _ in range(3):  # the rollups catch up over the empty days; retention runs each time
        ahead = await m.run_once()
        clocks.run(15)
    assert len(await store.checks("r1")) == 30
    assert ahead.deleted_rows == 0 and ahead.dropped_partitions == []
    assert ahead.watermarks["1h"] >= today + 10 * D  # rollups follow the wall clock ...
    assert ahead.kept_at == today + 30 * M + 90 * S  # ... retention the time that really passed
    # A row stamped before the step, written after it (it waited in the writer's queue).
    await store.write_checks([check(today + 30 * M + 10 * S, 7.0)])
    late = await m.run_once()
    assert late.deleted_rows == 0 and late.dropped_partitions == []
    assert len(await store.checks("r1")) == 31
    assert (today + 30 * M, 7.0) in [(r.bucket, r.rtt_max) for r in await store.rollups("r1", "1m")]
    if store.dialect == "postgresql":
        assert partitions.day_of(today) in await partition_days(store, "checks")


async def test_rows_written_between_a_rollup_and_retention_are_kept(store: HistoryStore) -> None:
    """Rows replayed late (older than the hourly watermark) that arrive after the pass's rollups
    and before its retention: no rollup has read them, so retention must not drop them."""
    now = datetime(2026, 11, 13, 12, 0, tzinfo=UTC)
    old = now - 10 * D
    m = maintenance(store, retention_period=0, window=timedelta(days=30), budget=30.0)
    await store.write_checks([check(old, 1.0), check(now - M, 2.0)])
    await m.run_once(now=now)  # rolls up both; the old row goes (past raw retention)
    roll_up = m._roll_up

    async def roll_up_then_replay(*args: Any) -> None:
        await roll_up(*args)
        await store.write_checks([check(now - 3 * D, 5.0)])  # past the hourly watermark

    m._roll_up = roll_up_then_replay  # type: ignore[method-assign]
    report = await m.run_once(now=now + 9 * D)  # raw retention now reaches 2 days ago
    assert now - 3 * D in [c.at for c in await store.checks("r1")]
    assert report.deleted_rows + len(report.dropped_partitions) == 0
