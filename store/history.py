"""The history store: devices, transitions, outages, checks and rollups, and SNMP (``store.snmp``),
in SQLite (aiosqlite) or PostgreSQL (asyncpg).

Reads and transitions go through SQLAlchemy Core on both. Raw checks go to SQLite with
``executemany`` and to PostgreSQL with binary COPY (``copy_records_to_table``) into the day
partitions of ``checks``, which the store creates as rows for a new day arrive.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Iterable, Sequence
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

import asyncpg
from sqlalchemy import Table, event, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.exc import StatementError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.sql import ColumnElement, Select

from poller.events import CheckResult, State, Transition
from poller.inventory import Device
from store import partitions, snmp
from store.dburl import CONNECT_TIMEOUT
from store.files import prepare_sqlite
from store.models import checks_table, devices_table, outages_table, transitions_table
from store.records import Check, IfRate, IfRollup, Outage, Rollup, SnmpEvent, SnmpLatest
from store.schema import display_url, ensure_current
from store.spool_records import PollRecord, SnmpEventIn

_devices = devices_table
_transitions = transitions_table
_outages = outages_table
_checks = checks_table
_DEVICE_FIELDS = ("address", "branch", "region", "type", "parent")
_COPY_COLUMNS = ("device_id", "at", "sent", "received", "rtt_ms")
# PostgreSQL types of the COPY'd columns, for inserting the same records from arrays instead.
_PG_TYPES = {"checks": ("int4", "timestamptz", "int4", "int4", "float8"),
             "if_rates": ("int4", "int4", "timestamptz", "float8", "float8")}
_ROLLUP_FIELDS = ("bucket", "checks", "sent", "received", "rtt_min", "rtt_avg", "rtt_max", "rtt_p95",
                  "jitter_ms", "up_s", "down_s")


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets screens read while the writer writes; NORMAL sync in WAL mode can lose the
    # last transactions on power loss but never corrupts, and is what makes commits cheap.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _not_a_cancelled_close(record: logging.LogRecord) -> bool:
    # The pool logs the close that HistoryStore.close cancelled as an error with a traceback.
    return not (record.exc_info and isinstance(record.exc_info[1], asyncio.CancelledError))


class HistoryStore:
    """Async access to the history database; call :meth:`open` first, :meth:`close` last.

    ``chunk_rows`` bounds how many rows are bound per ``executemany``: SQLAlchemy binds
    parameters on the event loop's thread, so smaller chunks keep each slice of loop time
    short while the inserts of one batch still share one transaction. ``busy_timeout`` is how
    long SQLite waits for its write lock, and how long a PostgreSQL connect may take
    (:data:`store.dburl.CONNECT_TIMEOUT`).
    """

    def __init__(self, url: str, *, busy_timeout: float = CONNECT_TIMEOUT, chunk_rows: int = 1000,
                 command_timeout: float = 60.0) -> None:
        self.url = url
        self.busy_timeout = busy_timeout
        self.command_timeout = command_timeout
        self.chunk_rows = chunk_rows
        self._engine: AsyncEngine | None = None
        self._ids: dict[str, int] = {}  # device name -> DeviceRow.id, only ids committed
        self._days: dict[str, set[datetime]] = {}  # PostgreSQL: table -> days whose partition exists
        self._oldest_written: datetime | None = None  # checks: see take_oldest_written()
        self._oldest_snmp: datetime | None = None  # the same for if_rates
        self._turns: asyncio.Lock | None = None  # SQLite: writers take turns, see writing()

    async def __aenter__(self) -> HistoryStore:
        await self.open()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.close()

    async def open(self) -> None:
        """Connect, check the schema revision (migrating an empty database) and load the device ids.

        Raises :class:`store.schema.SchemaError` when the database is behind, ahead of or
        foreign to this wardtui's migrations.
        """
        if self._engine is not None:
            return
        backend = make_url(self.url).get_backend_name()
        if backend == "sqlite":
            prepare_sqlite(self.url)  # 0600, not the umask's 0644
            engine = create_async_engine(self.url, connect_args={"timeout": self.busy_timeout})
            event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        elif backend == "postgresql":
            # pre_ping: after the server restarts, pooled connections are dead; find out before
            # a write fails on one. The timeout bounds a connect to a server that is not there.
            # command_timeout: a database that hangs counts as failing (spool), not as a writer
            # that waits for ever while samples pile up behind it.
            engine = create_async_engine(self.url, pool_pre_ping=True, connect_args={
                "timeout": self.busy_timeout, "command_timeout": self.command_timeout})
        else:
            raise ValueError(f"unsupported database {backend!r}: use SQLite or PostgreSQL")
        try:
            async with engine.begin() as conn:
                await conn.run_sync(ensure_current, display_url(self.url))
        except BaseException:
            await engine.dispose()
            raise
        self._engine = engine
        self._turns = asyncio.Lock()
        await self._load_ids()

    async def close(self, *, polite: bool = True, timeout: float = 2.0) -> None:
        """Close the connections, or if that takes ``timeout`` seconds (or not ``polite``), let
        go of them: a server that hangs never answers asyncpg's goodbye, which then waits its
        command timeout (60 s) per connection."""
        if self._engine is None:
            return
        engine, self._engine = self._engine, None
        if polite:
            task = asyncio.ensure_future(engine.dispose())
            done, _ = await asyncio.wait({task}, timeout=timeout)
            if done:
                return task.result()
            pool_log = logging.getLogger(f"sqlalchemy.pool.impl.{type(engine.sync_engine.pool).__name__}")
            pool_log.addFilter(_not_a_cancelled_close)
            try:
                task.cancel()
                await asyncio.wait({task})
            finally:
                pool_log.removeFilter(_not_a_cancelled_close)
        await engine.dispose(close=False)

    @contextlib.asynccontextmanager
    async def writing(self) -> AsyncIterator[AsyncConnection]:
        """A write transaction. On SQLite, which has one write lock, the writers of this store
        (the history writer, rollups, retention) take turns in arrival order: left to SQLite's
        busy handler, which polls with sleeps, a writer lost every race to back-to-back rollup
        transactions and the history queue grew by seconds of checks."""
        if self.dialect == "sqlite" and self._turns is not None:
            async with self._turns, self.engine.begin() as conn:
                yield conn
        else:
            async with self.engine.begin() as conn:
                yield conn

    @property
    def dialect(self) -> str:
        """``"sqlite"`` or ``"postgresql"``."""
        return self.engine.dialect.name

    @property
    def engine(self) -> AsyncEngine:
        if self._engine is None:
            raise RuntimeError("HistoryStore is not open: await store.open() first")
        return self._engine

    # -- writes ---------------------------------------------------------------------------

    async def sync_devices(self, devices: Iterable[Device]) -> None:
        """Insert new inventory devices and update changed ones; never deletes history."""
        now = datetime.now(UTC)
        rows = [
            {"name": d.name, "address": d.address, "branch": d.branch, "region": d.region,
             "type": d.type, "parent": d.parent, "first_seen": now}
            for d in devices
        ]
        if rows:
            stmt = self.upsert(_devices)
            stmt = stmt.on_conflict_do_update(
                index_elements=["name"], set_={f: stmt.excluded[f] for f in _DEVICE_FIELDS}
            )
            async with self.writing() as conn:
                await conn.execute(stmt, rows)
        await self._load_ids()

    async def write_checks(self, results: Sequence[CheckResult]) -> None:
        """Insert ``results``: COPY on PostgreSQL, Core ``executemany`` in one transaction on SQLite."""
        if not results:
            return
        try:
            ids = self._ids
            records = [(ids[r.device], r.at, r.sent, r.received, r.rtt_ms) for r in results]
        except KeyError:  # a device the inventory never gave: create its row first
            ids = await self._device_ids((r.device, r.address) for r in results)
            records = [(ids[r.device], r.at, r.sent, r.received, r.rtt_ms) for r in results]
        # One pass for the time range: these per-row costs are most of the writer's CPU.
        oldest = newest = records[0][1]
        for record in records:
            at = record[1]
            if at < oldest:
                oldest = at
            elif at > newest:
                newest = at
        if self.dialect == "postgresql":
            if any(r[1].tzinfo is None for r in records):
                # COPY bypasses UTCDateTime, and asyncpg would read a naive time as local time.
                raise StatementError("naive datetime: check times need a timezone (UTC)", "COPY checks",
                                     None, ValueError("naive datetime"))
            first, last = partitions.day_of(oldest), partitions.day_of(newest)
            days = {first} if first == last else {partitions.day_of(r[1]) for r in records}
            async with self.engine.connect() as conn:
                await self.ensure_partitions(conn, "checks", days)
                await self.copy_records(conn, "checks", _COPY_COLUMNS, records)
        else:
            stmt = self.upsert(_checks).on_conflict_do_nothing()  # a check stored before: kept once
            step = max(1, self.chunk_rows)
            columns = _COPY_COLUMNS
            async with self.writing() as conn:
                for i in range(0, len(records), step):
                    chunk = records[i : i + step]
                    await conn.execute(stmt, [dict(zip(columns, r, strict=True)) for r in chunk])
        self.note_written("checks", oldest)

    async def ensure_partitions(self, conn: AsyncConnection, table: str, days: set[datetime]) -> None:
        """PostgreSQL: create the day partitions of ``table`` this store has not seen yet, and
        commit (before a COPY: DDL must not sit in the data's transaction, holding its lock)."""
        known = self._days.setdefault(table, set())
        if not days <= known:
            await partitions.ensure(conn, table, days - known)
            await conn.commit()
            known |= days

    async def copy_records(self, conn: AsyncConnection, table: str, columns: Sequence[str],
                           records: Sequence[tuple[Any, ...]]) -> None:
        """PostgreSQL: binary COPY of ``records`` into ``table`` on ``conn`` (in its transaction,
        if one is open; the caller commits).

        COPY cannot skip rows the table already holds (a spool replayed again after a crash, a
        write retried after its commit's answer was lost): when one is there (its key), the
        COPY is undone (a savepoint) and the records inserted with ON CONFLICT DO NOTHING."""
        raw = await conn.get_raw_connection()
        driver: Any = raw.driver_connection
        try:
            try:
                async with driver.transaction():  # a savepoint in an open transaction
                    await driver.copy_records_to_table(table, records=records, columns=columns,
                                                       timeout=self.command_timeout)
            except asyncpg.UniqueViolationError:
                types = _PG_TYPES[table]
                arrays = [[record[i] for record in records] for i in range(len(columns))]
                await driver.execute(
                    f"INSERT INTO {table} ({', '.join(columns)}) SELECT * FROM unnest("
                    + ", ".join(f"${i + 1}::{t}[]" for i, t in enumerate(types))
                    + ") ON CONFLICT DO NOTHING", *arrays, timeout=self.command_timeout)
        except asyncpg.CheckViolationError:
            # "no partition of relation found for row": one was dropped behind our back.
            self._days.pop(table, None)
            raise
        except (OSError, TimeoutError, asyncpg.InterfaceError, asyncpg.PostgresConnectionError):
            # The connection is gone; SQLAlchemy did not see it fail, so tell the pool.
            await conn.invalidate()
            raise

    def note_written(self, table: str, oldest: datetime) -> None:
        """Rows of the raw ``table`` as old as ``oldest`` were written (see take_oldest_written)."""
        if table == "checks":
            if self._oldest_written is None or oldest < self._oldest_written:
                self._oldest_written = oldest
        elif self._oldest_snmp is None or oldest < self._oldest_snmp:
            self._oldest_snmp = oldest

    def oldest_written(self, table: str = "checks") -> datetime | None:
        """What :meth:`take_oldest_written` would return, leaving it there: raw rows retention
        must keep, as no rollup has read them yet."""
        return self._oldest_written if table == "checks" else self._oldest_snmp

    def take_oldest_written(self, table: str = "checks") -> datetime | None:
        """The earliest ``at`` among rows of the raw ``table`` (``checks`` or ``if_rates``) written
        since the last call (rollups use it to recompute buckets that rows replayed late changed)."""
        if table == "checks":
            oldest, self._oldest_written = self._oldest_written, None
        else:
            oldest, self._oldest_snmp = self._oldest_snmp, None
        return oldest

    def forget_partitions(self) -> None:
        """Partitions were dropped: create them again if rows for their days arrive."""
        self._days.clear()

    # -- SNMP (store/snmp.py) -------------------------------------------------------------

    async def write_snmp_polls(self, polls: Sequence[PollRecord]) -> None:
        """Latest system facts and interfaces, interface rates, and poll outcomes (answered or
        failed) of ``polls``, in one transaction."""
        await snmp.write_polls(self, polls)

    async def write_snmp_events(self, events: Sequence[SnmpEventIn]) -> None:
        """Reboots, interface changes and agent changes, in one transaction."""
        await snmp.write_events(self, events)

    async def snmp_latest(self, device: str) -> SnmpLatest | None:
        """What the latest answered SNMP poll of ``device`` read and how polling it went; None if
        it never was polled."""
        return await snmp.latest(self, device)

    async def if_rates(self, device: str, ifindex: int | None = None, since: datetime | None = None,
                       until: datetime | None = None) -> list[IfRate]:
        """Raw interface rates of ``device`` in ``[since, until)``."""
        return await snmp.rates(self, device, ifindex, since, until)

    async def if_rollups(self, device: str, tier: str, ifindex: int | None = None,
                         since: datetime | None = None, until: datetime | None = None) -> list[IfRollup]:
        """Interface rollups of ``device`` in the ``"1m"`` or ``"1h"`` tier."""
        return await snmp.rollups(self, device, tier, ifindex, since, until)

    async def snmp_events(self, device: str | None = None,
                          since: datetime | None = None) -> list[SnmpEvent]:
        """Stored SNMP events in time order."""
        return await snmp.events(self, device, since)

    async def write_transition(self, transition: Transition) -> None:
        """Record one transition with its outage change, in its own transaction."""
        await self.write_transitions([transition])

    async def write_transitions(self, transitions: Sequence[Transition]) -> None:
        """Record ``transitions`` in order, in one transaction, each with its outage change.

        Written twice (a spool replayed again after a crash), a transition or an outage is
        stored once: a transition's key is its device, time and new state, an outage's its
        device and start. To DOWN opens the outage that starts at ``down_since`` (unless it is
        there, or another one is open: a restart re-detecting a device that was already down
        keeps the original). To UP from DOWN closes the outage it ends, the one that starts at
        its ``down_since``, not whichever is open: replayed late, it must not close a newer one.
        UNKNOWN -> UP closes the open outage that started before it, if any (one written after
        the start read the open outages, e.g. from the spool). The rows go in one
        ``executemany``: a start brings thousands of UNKNOWN -> UP at once, and a statement per
        row cost ~1 ms each."""
        if not transitions:
            return
        ids = await self._device_ids((t.device, t.address) for t in transitions)
        rows = [{"device_id": ids[t.device], "from_state": t.from_state.value, "to_state": t.to_state.value,
                 "at": t.at, "down_since": t.down_since, "rtt_ms": t.rtt_ms} for t in transitions]
        async with self.writing() as conn:
            await conn.execute(self.upsert(_transitions).on_conflict_do_nothing(), rows)
            # One query for the whole burst, as a start brings one such transition per device.
            first_up = {ids[t.device] for t in transitions
                        if t.to_state is State.UP and t.from_state is State.UNKNOWN}
            if first_up:
                first_up &= set((await conn.execute(select(_outages.c.device_id).where(
                    _outages.c.end.is_(None), _outages.c.device_id.in_(first_up)))).scalars())
            opened = self.upsert(_outages).on_conflict_do_nothing()
            for t in transitions:  # in order: a device may go down and up within one burst
                device_id = ids[t.device]
                if t.to_state is State.DOWN:
                    await conn.execute(opened, {"device_id": device_id, "start": t.down_since or t.at})
                elif t.to_state is State.UP and t.from_state is State.DOWN and t.down_since is not None:
                    await self._close_outage(conn, device_id, t.down_since, t.at)
                elif t.to_state is State.UP and (t.from_state is State.DOWN or device_id in first_up):
                    await self._close_open_outage(conn, device_id, t.at)

    async def _close_outage(self, conn: AsyncConnection, device_id: int, start: datetime,
                            end: datetime) -> None:
        """End the outage of ``device_id`` that started at ``start``; at ``start`` if ``end`` is
        before it (the wall clock stepped back while the device was down: the UP transition keeps
        the time the clock gave it, the outage never lasts less than nothing)."""
        end = max(end, start)
        o = _outages.c
        closed = await conn.execute(update(_outages).where(
            o.device_id == device_id, o.start == start, o.end.is_(None)).values(end=end))
        if closed.rowcount:
            return
        if await conn.scalar(select(o.id).where(o.device_id == device_id, o.start == start)) is not None:
            return  # closed before: this UP is written again
        if await self._close_open_outage(conn, device_id, end):
            return  # an outage opened another way (seeded at a start) that this UP ends
        # Its DOWN never reached the database (dropped or refused): the UP says when it began.
        await conn.execute(self.upsert(_outages).on_conflict_do_nothing(),
                           {"device_id": device_id, "start": start, "end": end})

    async def _close_open_outage(self, conn: AsyncConnection, device_id: int, end: datetime) -> bool:
        """End the open outage of ``device_id`` if it started by ``end``; whether there was one."""
        o = _outages.c
        closed = await conn.execute(update(_outages).where(
            o.device_id == device_id, o.end.is_(None), o.start <= end).values(end=end))
        return bool(closed.rowcount)

    # -- reads ----------------------------------------------------------------------------

    async def open_outages(self) -> dict[str, datetime]:
        """Device name -> start of its still-open outage."""
        stmt = (
            select(_devices.c.name, _outages.c.start)
            .join(_devices, _devices.c.id == _outages.c.device_id)
            .where(_outages.c.end.is_(None))
        )
        async with self.engine.connect() as conn:
            return {name: start for name, start in (await conn.execute(stmt)).all()}

    async def transitions(self, device: str | None = None,
                          since: datetime | None = None) -> list[Transition]:
        """Transitions in time order, of one device or all, at or after ``since``."""
        t, d = _transitions, _devices
        stmt = select(d.c.name, d.c.address, t.c.from_state, t.c.to_state, t.c.at,
                      t.c.down_since, t.c.rtt_ms).join(d, d.c.id == t.c.device_id)
        stmt = _filter(stmt, device, None if since is None else t.c.at >= since).order_by(t.c.at, t.c.id)
        async with self.engine.connect() as conn:
            rows = (await conn.execute(stmt)).all()
        return [
            Transition(device=r.name, address=r.address, from_state=State(r.from_state),
                       to_state=State(r.to_state), at=r.at, down_since=r.down_since,
                       rtt_ms=r.rtt_ms)
            for r in rows
        ]

    async def outages(self, device: str | None = None,
                      since: datetime | None = None) -> list[Outage]:
        """Outages by start time, of one device or all, still open or ended at or after ``since``."""
        o, d = _outages, _devices
        stmt = select(d.c.name, o.c.start, o.c.end).join(d, d.c.id == o.c.device_id)
        overlaps = None if since is None else o.c.end.is_(None) | (o.c.end >= since)
        stmt = _filter(stmt, device, overlaps).order_by(o.c.start, o.c.id)
        async with self.engine.connect() as conn:
            rows = (await conn.execute(stmt)).all()
        return [Outage(device=r.name, start=r.start, end=r.end) for r in rows]

    async def checks(self, device: str, since: datetime | None = None,
                     until: datetime | None = None) -> list[Check]:
        """Stored checks of ``device`` in time order, in ``[since, until)``.

        The 24-hour view of one device reads 8,640 rows at a 10 s interval: by the cached device
        id (no join), into named tuples, and on PostgreSQL straight from the driver.
        """
        device_id = self._ids.get(device)
        if device_id is None:
            return []
        if self.dialect == "postgresql":
            return await self._fetch_checks(device, device_id, since, until)
        c = _checks
        stmt = select(c.c.at, c.c.sent, c.c.received, c.c.rtt_ms).where(c.c.device_id == device_id)
        if since is not None:
            stmt = stmt.where(c.c.at >= since)
        if until is not None:
            stmt = stmt.where(c.c.at < until)
        async with self.engine.connect() as conn:
            rows = (await conn.execute(stmt.order_by(c.c.at))).all()
        return [Check(device, *row) for row in rows]

    async def _fetch_checks(self, device: str, device_id: int, since: datetime | None,
                            until: datetime | None) -> list[Check]:
        # The driver's own fetch on a pooled connection: asyncpg returns aware UTC datetimes,
        # so SQLAlchemy's row and type processing (as long as the query itself) is not needed.
        sql = "SELECT at, sent, received, rtt_ms FROM checks WHERE device_id = $1"
        args: list[object] = [device_id]
        for op, bound in ((">=", since), ("<", until)):
            if bound is not None:
                args.append(bound)
                sql += f" AND at {op} ${len(args)}"
        async with self.engine.connect() as conn:
            raw = await conn.get_raw_connection()
            rows = await raw.driver_connection.fetch(sql + " ORDER BY at", *args)  # type: ignore[union-attr]
        return [Check(device, r[0], r[1], r[2], r[3]) for r in rows]

    async def rollups(self, device: str, tier: str, since: datetime | None = None,
                      until: datetime | None = None) -> list[Rollup]:
        """Rollups of ``device`` in the ``"1m"`` or ``"1h"`` tier, by bucket, for buckets that
        start in ``[since, until)``."""
        r, d = self.table(f"rollup_{tier}"), _devices
        stmt = select(d.c.name, *(r.c[f] for f in _ROLLUP_FIELDS)).join(d, d.c.id == r.c.device_id)
        stmt = _filter(stmt, device, None if since is None else r.c.bucket >= since)
        if until is not None:
            stmt = stmt.where(r.c.bucket < until)
        async with self.engine.connect() as conn:
            rows = (await conn.execute(stmt.order_by(r.c.bucket))).all()
        return [Rollup(r[0], tier, *r[1:]) for r in rows]

    def device_ids(self) -> list[int]:
        """The ids of every device the history knows (as of :meth:`open` or the last write)."""
        return list(self._ids.values())

    def device_id(self, device: str) -> int | None:
        """The id of ``device`` (as of :meth:`open` or the last write), None if unknown."""
        return self._ids.get(device)

    def device_names(self) -> frozenset[str]:
        """Every device the history knows (as of :meth:`open` or the last write)."""
        return frozenset(self._ids)

    async def count_checks(self, device: str | None = None) -> int:
        stmt = select(func.count()).select_from(_checks)
        if device is not None:
            stmt = stmt.join(_devices, _devices.c.id == _checks.c.device_id).where(
                _devices.c.name == device
            )
        async with self.engine.connect() as conn:
            return int(await conn.scalar(stmt) or 0)

    # -- device ids -----------------------------------------------------------------------

    async def _load_ids(self) -> None:
        async with self.engine.connect() as conn:
            rows = (await conn.execute(select(_devices.c.name, _devices.c.id))).all()
        self._ids = {name: id_ for name, id_ in rows}

    async def _device_ids(self, pairs: Iterable[tuple[str, str]]) -> dict[str, int]:
        """The ids of the named devices, creating rows for any the inventory never gave."""
        ids = self._ids
        missing = {name: address for name, address in pairs if name not in ids}
        if not missing:
            return ids
        now = datetime.now(UTC)
        stmt = self.upsert(_devices).on_conflict_do_nothing(index_elements=["name"])
        rows = [{"name": n, "address": a, "first_seen": now} for n, a in missing.items()]
        async with self.writing() as conn:
            await conn.execute(stmt, rows)
        # Cache only committed ids: SQLite reuses the rowids of a rolled-back insert.
        await self._load_ids()
        return self._ids

    def upsert(self, table: Table) -> sqlite.Insert | postgresql.Insert:
        """An INSERT that can take ON CONFLICT, which both dialects spell the same way."""
        if self.dialect == "postgresql":
            return postgresql.insert(table)
        return sqlite.insert(table)

    @staticmethod
    def table(name: str) -> Table:
        return _devices.metadata.tables[name]


def _filter(stmt: Select[Any], device: str | None,
            cond: ColumnElement[bool] | None) -> Select[Any]:
    if device is not None:
        stmt = stmt.where(_devices.c.name == device)
    if cond is not None:
        stmt = stmt.where(cond)
    return stmt
