"""The history database itself: engine and dialect, write turns, upserts, COPY into day
partitions, what raw rows were written, and the device-id cache. Every store module builds on it.

:mod:`store.checks` (ICMP) and :mod:`store.snmp` read and write through a :class:`Database`;
:class:`store.history.HistoryStore` composes the three.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import asyncpg
from sqlalchemy import Table, event, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, StatementError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from poller.inventory import Device
from store import partitions
from store.dburl import CONNECT_TIMEOUT
from store.files import prepare_sqlite
from store.models import devices_table
from store.schema import display_url, ensure_current

_devices = devices_table
_DEVICE_FIELDS = ("address", "branch", "region", "type", "parent")
# PostgreSQL types of the COPY'd columns, for inserting the same records from arrays instead.
_PG_TYPES = {"checks": ("int4", "timestamptz", "int4", "int4", "float8"),
             "if_rates": ("int4", "int4", "timestamptz", "float8", "float8")}


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets screens read while the writer writes; NORMAL sync in WAL mode can lose the
    # last transactions on power loss but never corrupts, and is what makes commits cheap.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def sqlite_time(at: datetime) -> str:
    """``at`` as SQLAlchemy's DateTime (under sqlmodel's UTCDateTime) stores it in SQLite: UTC,
    no offset, always six digits of microseconds. A naive ``at`` is ValueError, as UTCDateTime
    refuses it (the row's meaning would depend on the machine's time zone)."""
    if at.tzinfo is not UTC:
        if at.utcoffset() is None:
            raise ValueError(f"naive datetime {at!r}: times need a timezone (UTC)")
        at = at.astimezone(UTC)
    return at.isoformat(" ", "microseconds")[:26]


def _not_a_cancelled_close(record: logging.LogRecord) -> bool:
    # The pool logs the close that Database.close cancelled as an error with a traceback.
    return not (record.exc_info and isinstance(record.exc_info[1], asyncio.CancelledError))


class Database:
    """The connection to the history database; call :meth:`open` first, :meth:`close` last.

    ``chunk_rows`` bounds how many rows are bound per SQLAlchemy ``executemany`` (transitions,
    outages, SNMP rows): SQLAlchemy binds parameters on the event loop's thread, so smaller
    chunks keep each slice of loop time short while the inserts of one batch still share one
    transaction. Raw checks bypass it (:meth:`insert_rows_sqlite`, COPY on PostgreSQL).
    ``busy_timeout`` is how long SQLite waits for its write lock, and how long a PostgreSQL
    connect may take (:data:`store.dburl.CONNECT_TIMEOUT`).
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
        await self.load_ids()

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

    def upsert(self, table: Table) -> sqlite.Insert | postgresql.Insert:
        """An INSERT that can take ON CONFLICT, which both dialects spell the same way."""
        if self.dialect == "postgresql":
            return postgresql.insert(table)
        return sqlite.insert(table)

    @staticmethod
    def table(name: str) -> Table:
        return _devices.metadata.tables[name]

    # -- COPY into day partitions ---------------------------------------------------------

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

    async def insert_rows_sqlite(self, conn: AsyncConnection, table: str, columns: Sequence[str],
                                 records: Iterable[tuple[Any, ...]]) -> None:
        """SQLite: ``INSERT ... ON CONFLICT DO NOTHING`` of ``records`` (values as the driver
        takes them: times as :func:`sqlite_time` text) on ``conn``, in its transaction, in one
        ``executemany`` on aiosqlite's thread, which also draws ``records`` (a generator there
        keeps the rows' conversion off the event loop).

        What SQLAlchemy's ``executemany`` does per row (a dict, its type processors, a slice of
        the loop per ``chunk_rows``, and a round trip through the loop per slice) made the
        history writer fall behind at 100,000 devices: ~10,000 rows a second, each slice waiting
        for the loop between two of the engine's bursts."""
        raw = await conn.get_raw_connection()
        driver: Any = raw.driver_connection
        marks = ", ".join("?" for _ in columns)
        sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks}) ON CONFLICT DO NOTHING"
        try:
            await driver.executemany(sql, records)
        except sqlite3.Error as exc:  # as SQLAlchemy would have raised it: locked, full, refused
            raise DBAPIError.instance(sql, None, exc, sqlite3.Error) from exc
        except ValueError as exc:  # a row's value (a naive time) refused while drawing the rows
            raise StatementError(str(exc), sql, None, exc) from exc

    def forget_partitions(self) -> None:
        """Partitions were dropped: create them again if rows for their days arrive."""
        self._days.clear()

    # -- raw rows written, for rollups and retention --------------------------------------

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

    # -- devices and their ids ------------------------------------------------------------

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
        await self.load_ids()

    def ids(self) -> Mapping[str, int]:
        """Device name -> id, of every device the history knows (as of :meth:`open` or the last
        write): only committed ids. Read it, never keep it: a write replaces it."""
        return self._ids

    def device_id(self, device: str) -> int | None:
        """The id of ``device`` (as of :meth:`open` or the last write), None if unknown."""
        return self._ids.get(device)

    def device_ids(self) -> list[int]:
        """The ids of every device the history knows (as of :meth:`open` or the last write)."""
        return list(self._ids.values())

    def device_names(self) -> frozenset[str]:
        """Every device the history knows (as of :meth:`open` or the last write)."""
        return frozenset(self._ids)

    async def ensure_ids(self, pairs: Iterable[tuple[str, str]]) -> Mapping[str, int]:
        """The ids of the named devices ((name, address) pairs), creating rows, in a transaction
        of their own, for any the inventory never gave."""
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
        await self.load_ids()
        return self._ids

    async def load_ids(self) -> None:
        """Read every device's id again (the cache holds only what is committed)."""
        async with self.engine.connect() as conn:
            rows = (await conn.execute(select(_devices.c.name, _devices.c.id))).all()
        self._ids = {name: id_ for name, id_ in rows}
