"""Rollups, retention and partitions: a task beside the writer that keeps the history in shape.

Every ``period`` seconds it

1. creates today's and tomorrow's day partitions (PostgreSQL), so midnight never waits on DDL;
2. rolls up every complete minute since the 1-minute watermark (``rollup_state``), then every
   complete hour since the hourly one: a minute is complete ``settle`` after it ends, by when
   its checks have been written. Checks written later (replayed from the spool) move the
   watermarks back to their bucket, so those buckets are computed again. Interface rates
   (``if_rates``) are rolled up the same way, with watermarks of their own (``if_1m``, ``if_1h``);
3. applies retention, at most every ``retention_period``: drops raw day partitions and 1-minute
   day partitions (PostgreSQL) or deletes rows (SQLite) older than the tier keeps, for checks
   and interface rates alike. Raw rows are never dropped before the hourly rollup has read
   them, nor rows written since the last rollup, whatever the clock says. Transitions, outages
   and SNMP events are never touched. The notification outbox's sent and summarised rows go
   after ``Retention.notify_sent`` (7 days), its failed ones after ``notify_failed`` (30 days),
   except each group's newest row; pending rows never (store/outbox.py).

Retention counts time on a steady clock: the wall clock, except that a step forward is not
taken (the time since the last reading is counted by the monotonic clock instead) until the
next start. A clock set days ahead by mistake would otherwise drop today's raw rows (the
rollups would have run ahead over empty buckets, so even the hourly watermark did not hold
them). A step back is followed at once: retention then only waits longer. Rollups follow the
wall clock, as the rows they read are stamped by it.

It runs on the writer's loop and only waits on the database: on PostgreSQL the work is SQL.
A failure is logged and retried next period; rollups resume from their watermark.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from store import partitions
from store.dburl import cause, is_connection_error
from store.history import HistoryStore
from store.models import rollup_state_table
from store.outbox import delete_delivered
from store.queries import Retention
from store.rollup import FAMILIES, Family, Tier, roll_up

log = logging.getLogger(__name__)
_state = rollup_state_table
_STEP = timedelta(seconds=1)  # the wall clock ahead of the counted time by more: a step forward


@dataclass(slots=True)
class MaintenanceReport:
    """What one pass did (for logs, gauges and tests)."""

    rolled: dict[str, int] = field(default_factory=dict)  # tier -> rollup rows written
    dropped_partitions: list[str] = field(default_factory=list)
    deleted_rows: int = 0
    deleted_notifications: int = 0  # outbox rows past their retention
    watermarks: dict[str, datetime] = field(default_factory=dict)  # tiers that have rows
    kept_at: datetime | None = None  # the time retention acted on (see Maintenance.steady_now)


class Maintenance:
    def __init__(self, store: HistoryStore, retention: Retention | None = None, *,
                 settle: timedelta = timedelta(seconds=30), period: float = 15.0,
                 retention_period: float = 600.0, window: timedelta = timedelta(hours=1),
                 budget: float = 2.0, sqlite_devices_per_step: int = 5000,
                 clock: Callable[[], datetime] | None = None,
                 ticks: Callable[[], float] = time.monotonic,
                 may_run: Callable[[], bool] = lambda: True) -> None:
        self.store = store
        self.may_run = may_run  # False while another poller may hold the database (store/lease.py)
        self.clock = clock or (lambda: datetime.now(UTC))  # the wall clock (tests inject one)
        self.ticks = ticks  # seconds on a clock that never steps (time.monotonic)
        self._anchor: tuple[datetime, float] | None = None  # (wall, ticks) of the last trusted reading
        self._ahead = False  # the wall clock is ahead of the counted time (logged once per step)
        self.retention = retention or Retention()
        self.settle = settle
        self.period = period
        self.retention_period = retention_period
        self.window = window  # the most one rollup statement covers
        self._window = window  # what the next one covers: halved after a failure, regrown after
        self.budget = budget  # seconds of catching up per pass, so a stop is never kept waiting
        self.sqlite_devices_per_step = sqlite_devices_per_step
        self.failures = 0
        self.last_error: str | None = None
        self._done: dict[str, datetime | None] = {}
        self._retention_at = 0.0
        self._task: asyncio.Task[None] | None = None

    # -- the task -------------------------------------------------------------------------

    def start(self) -> asyncio.Task[None]:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="wardtui-store-maintenance")
        return self._task

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while True:
            if not self.may_run():  # rollups and retention belong to the lease's holder
                await asyncio.sleep(self.period)
                continue
            try:
                await self.run_once()
            except Exception as exc:  # the database is down or slow: try again next period
                self.failures += 1
                if self.last_error is None and is_connection_error(exc):
                    # The database is down: one line, not a chain of tracebacks.
                    log.warning("history maintenance failed, will retry: %s", cause(exc))
                elif self.last_error is None:
                    log.warning("history maintenance failed, will retry", exc_info=exc)
                self.last_error = f"{type(exc).__name__}: {exc}"
            else:
                if self.last_error is not None:
                    log.warning("history maintenance resumed")
                self.last_error = None
            await asyncio.sleep(self.period)

    # -- one pass -------------------------------------------------------------------------

    async def run_once(self, now: datetime | None = None) -> MaintenanceReport:
        """One pass. ``now``, when given, is taken as it is for everything (tests drive time
        with it); by default rollups follow the wall clock and retention the steady one."""
        if now is None:
            now = self.clock()
            kept_at = self.steady_now(now)
        else:
            kept_at = now
        report = MaintenanceReport(kept_at=kept_at)
        engine = self.store.engine
        if self.store.dialect == "postgresql":
            async with engine.begin() as conn:
                snmp_in_use = bool(await partitions.existing(conn, "if_rates"))
                for table in partitions.PARTITIONED:
                    if snmp_in_use or table not in partitions.IN_USE_ONLY:
                        await partitions.ensure(conn, table, (now, now + partitions.DAY))
        await self._load_watermarks()
        failure: Exception | None = None
        try:
            await self._roll_up(now, kept_at, report)
        except Exception as exc:  # retention must not wait for rollups that keep failing
            failure = exc
        if time.monotonic() >= self._retention_at:
            await self._apply_retention(kept_at, report)
            self._retention_at = time.monotonic() + self.retention_period
        report.watermarks = {tier: done for tier, done in self._done.items() if done is not None}
        if failure is not None:
            raise failure
        return report

    def steady_now(self, wall: datetime) -> datetime:
        """The time retention acts on, given the wall clock's ``wall``: ``wall`` itself, unless
        the wall clock stepped forward since the last reading it was trusted at; then that
        reading plus the seconds the monotonic clock counted since. A step back (or no step) is
        trusted at once."""
        ticks = self.ticks()
        if self._anchor is not None:
            at, then = self._anchor
            counted = at + timedelta(seconds=ticks - then)
            if wall - counted > _STEP:
                if not self._ahead:
                    self._ahead = True
                    log.warning("the wall clock stepped %s ahead of the time counted since %s; "
                                "retention keeps to the counted time until wardtui restarts",
                                wall - counted, at.isoformat(timespec="seconds"))
                return counted
        self._anchor, self._ahead = (wall, ticks), False
        return wall

    async def _roll_up(self, now: datetime, kept_at: datetime, report: MaintenanceReport) -> None:
        # Checks first, then interface rates; one budget for both (a stop waits for one pass).
        deadline = time.monotonic() + self.budget
        for family in FAMILIES:
            await self._roll_up_family(family, now, kept_at, deadline, report)

    async def _roll_up_family(self, family: Family, now: datetime, kept_at: datetime, deadline: float,
                              report: MaintenanceReport) -> None:
        minute, hour = family.minute, family.hour
        if self._note_late_rows(family, kept_at):
            # Rows written late moved the watermarks back: remember that across a restart.
            async with self.store.writing() as conn:
                for tier in (minute, hour):
                    done = self._done.get(tier.name)
                    if done is not None:
                        await self._save_watermark(conn, tier, done)
        if self._done.get(minute.name) is None:
            return  # no raw row yet (an ICMP-only or SNMP-only installation): nothing to report
        report.rolled[minute.name] = await self._catch_up(minute, minute.floor(now - self.settle), deadline)
        minute_done = self._done[minute.name]
        if minute_done is not None:
            report.rolled[hour.name] = await self._catch_up(hour, hour.floor(minute_done), deadline)

    async def _load_watermarks(self) -> None:
        if self._done:
            return
        async with self.store.engine.connect() as conn:
            stored = dict((await conn.execute(select(_state.c.tier, _state.c.done_until))).all())
            firsts: dict[str, datetime | None] = {}
            for family in FAMILIES:
                if family.minute.name not in stored or family.hour.name not in stored:
                    firsts[family.source] = await self._first_row(conn, family)
        for family in FAMILIES:
            first = firsts.get(family.source)
            for tier in (family.minute, family.hour):
                start = None if first is None else tier.floor(first)
                self._done[tier.name] = stored.get(tier.name) or start

    async def _first_row(self, conn: AsyncConnection, family: Family) -> datetime | None:
        """Where rollups start on a database that has never had them: its earliest raw row."""
        table = self.store.table(family.source)
        at = table.c[family.time_column]
        if conn.dialect.name == "postgresql":
            # min(at) over every partition would read them all; the earliest day is enough.
            days = sorted(await partitions.existing(conn, family.source))
            for day in days:
                first = await conn.scalar(select(func.min(at)).where(at >= day, at < day + partitions.DAY))
                if first is not None:
                    return first  # type: ignore[no-any-return]
            return None
        return await conn.scalar(select(func.min(at)))  # type: ignore[no-any-return]

    def _note_late_rows(self, family: Family, now: datetime) -> bool:
        """Move the family's watermarks back to the oldest raw row written since the last pass;
        True if one moved back (not when it was only set for the first time). ``now`` is the
        time retention acts on."""
        oldest = self.store.take_oldest_written(family.source)
        if oldest is None:
            return False
        moved = False
        if self.retention.raw is not None and self._done.get(family.minute.name) is not None:
            # Late rows older than raw retention: the rest of their day's raw rows are gone, and
            # recomputing those buckets from the late rows alone would spoil good rollups.
            oldest = max(oldest, now - self.retention.raw)
        for tier in (family.minute, family.hour):
            done = self._done.get(tier.name)
            if done is None:
                self._done[tier.name] = tier.floor(oldest)
            elif oldest < done:
                self._done[tier.name] = tier.floor(oldest)
                moved = True
        return moved

    async def _catch_up(self, tier: Tier, target: datetime, deadline: float) -> int:
        done = self._done.get(tier.name)
        written = 0
        while done is not None and done < target and time.monotonic() < deadline:
            # On a bucket bound: a window ending mid-bucket would upsert a part of that bucket,
            # and the next window would replace it with the other part.
            end = min(target, tier.floor(done + max(self._window, tier.step)))
            try:
                written += await self._roll_up_window(tier, done, end)
            except Exception:
                # Perhaps too big for the statement timeout (a long catch-up of many devices):
                # try half as much next time, down to one bucket.
                self._window = max(tier.step, self._window / 2)
                raise
            done = self._done[tier.name] = end
            self._window = min(self.window, self._window * 2)
        return written

    async def _roll_up_window(self, tier: Tier, start: datetime, end: datetime) -> int:
        """One window, and then its watermark. On SQLite a rollup holds the only write lock (a
        minute of 50,000 devices took 2.7 s): done 5,000 devices per transaction (0.4 s each,
        3.8 s in all), taking turns with the writer's inserts (``Database.writing``). A
        window cut short is simply done again. Interface rates are ~20 rows a device where checks
        are ~6 a minute, so their slices hold a tenth of the devices."""
        written = 0
        if self.store.dialect == "postgresql":
            async with self.store.writing() as conn:
                written += await roll_up(conn, tier, start, end)
                await self._save_watermark(conn, tier, end)
            return written
        step = self.sqlite_devices_per_step
        if tier.source == "if_rates":
            step = max(1, step // 10)
        for first in range(0, max(self.store.device_ids(), default=0) + 1, step):
            async with self.store.writing() as conn:
                written += await roll_up(conn, tier, start, end, (first, first + step))
        async with self.store.writing() as conn:
            await self._save_watermark(conn, tier, end)
        return written

    async def _save_watermark(self, conn: AsyncConnection, tier: Tier, done: datetime) -> None:
        stmt = self.store.upsert(_state)
        await conn.execute(stmt.on_conflict_do_update(index_elements=["tier"],
                                                      set_={"done_until": stmt.excluded.done_until}),
                           {"tier": tier.name, "done_until": done})

    async def _apply_retention(self, now: datetime, report: MaintenanceReport) -> None:
        keep = self.retention
        plans: list[tuple[str, str, datetime]] = []
        for family in FAMILIES:
            hour_done = self._done.get(family.hour.name)
            if keep.raw is not None:
                cutoff = now - keep.raw
                if hour_done is not None:  # raw rows the hourly rollup has not read yet stay
                    cutoff = min(cutoff, hour_done)
                written = self.store.oldest_written(family.source)
                if written is not None:  # ... and so do rows written since this pass's rollup
                    cutoff = min(cutoff, family.hour.floor(written))
                plans.append((family.source, family.time_column, cutoff))
            if keep.minute is not None:
                plans.append((family.minute.table.name, "bucket", now - keep.minute))
            if keep.hour is not None:
                plans.append((family.hour.table.name, "bucket", now - keep.hour))
        postgres = self.store.dialect == "postgresql"
        for table, column, cutoff in plans:
            async with self.store.writing() as conn:
                if postgres and table in partitions.PARTITIONED:
                    dropped = await partitions.drop_before(conn, table, cutoff)
                    report.dropped_partitions += dropped
                else:
                    t = self.store.table(table)
                    result = await conn.execute(delete(t).where(t.c[column] < cutoff))
                    report.deleted_rows += int(result.rowcount or 0)
        if keep.notify_sent is not None or keep.notify_failed is not None:
            async with self.store.writing() as conn:
                report.deleted_notifications = await delete_delivered(
                    conn, None if keep.notify_sent is None else now - keep.notify_sent,
                    None if keep.notify_failed is None else now - keep.notify_failed)
        if report.dropped_partitions:
            self.store.forget_partitions()
            log.info("history retention dropped %s", ", ".join(report.dropped_partitions))
