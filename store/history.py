"""The history store: devices, transitions, outages, checks and rollups (``store.checks``), and SNMP
(``store.snmp``), in SQLite (aiosqlite) or PostgreSQL (asyncpg), over one ``store.database``.

:class:`HistoryStore` is the face the writer, the runtime, the screens and the commands use: it
opens the :class:`~store.database.Database` and hands each call to the module that does it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Collection, Iterable, Sequence
from datetime import datetime
from types import TracebackType

from sqlalchemy import Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from poller.events import CheckResult, State, Transition
from poller.inventory import Device
from store import checks, snmp
from store.database import Database
from store.dburl import CONNECT_TIMEOUT
from store.records import Check, IfRate, IfRollup, Outage, Rollup, SnmpEvent, SnmpLatest
from store.spool_records import PollRecord, SnmpEventIn


class HistoryStore:
    """Async access to the history database; call :meth:`open` first, :meth:`close` last.

    The arguments are :class:`~store.database.Database`'s (``db``): ``chunk_rows`` bounds the
    rows bound per ``executemany``, ``busy_timeout`` is how long SQLite waits for its write lock
    and a PostgreSQL connect may take, ``command_timeout`` how long a PostgreSQL statement may.
    """

    def __init__(self, url: str, *, busy_timeout: float = CONNECT_TIMEOUT, chunk_rows: int = 1000,
                 command_timeout: float = 60.0) -> None:
        self.db = Database(url, busy_timeout=busy_timeout, chunk_rows=chunk_rows,
                           command_timeout=command_timeout)

    @property
    def url(self) -> str:
        return self.db.url

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
        await self.db.open()

    async def close(self, *, polite: bool = True, timeout: float = 2.0) -> None:
        """Close the connections, or let go of them after ``timeout`` seconds or if not
        ``polite`` (see :meth:`store.database.Database.close`)."""
        await self.db.close(polite=polite, timeout=timeout)

    # -- the database, for maintenance, reports and tests (see store.database) -------------

    def writing(self) -> contextlib.AbstractAsyncContextManager[AsyncConnection]:
        """A write transaction, taken in turns on SQLite (:meth:`store.database.Database.writing`)."""
        return self.db.writing()

    @property
    def dialect(self) -> str:
        """``"sqlite"`` or ``"postgresql"``."""
        return self.db.dialect

    @property
    def engine(self) -> AsyncEngine:
        return self.db.engine

    def upsert(self, table: Table) -> sqlite.Insert | postgresql.Insert:
        """An INSERT that can take ON CONFLICT, which both dialects spell the same way."""
        return self.db.upsert(table)

    @staticmethod
    def table(name: str) -> Table:
        return Database.table(name)

    def oldest_written(self, table: str = "checks") -> datetime | None:
        """Raw rows retention must keep (:meth:`store.database.Database.oldest_written`)."""
        return self.db.oldest_written(table)

    def take_oldest_written(self, table: str = "checks") -> datetime | None:
        """The earliest raw row written since the last call
        (:meth:`store.database.Database.take_oldest_written`)."""
        return self.db.take_oldest_written(table)

    def note_written(self, table: str, oldest: datetime) -> None:
        """Rows of the raw ``table`` as old as ``oldest`` were written (see take_oldest_written)."""
        self.db.note_written(table, oldest)

    def forget_partitions(self) -> None:
        """Partitions were dropped: create them again if rows for their days arrive."""
        self.db.forget_partitions()

    def device_ids(self) -> list[int]:
        """The ids of every device the history knows (as of :meth:`open` or the last write)."""
        return self.db.device_ids()

    def device_id(self, device: str) -> int | None:
        """The id of ``device`` (as of :meth:`open` or the last write), None if unknown."""
        return self.db.device_id(device)

    def device_names(self) -> frozenset[str]:
        """Every device the history knows (as of :meth:`open` or the last write)."""
        return self.db.device_names()

    # -- writes ---------------------------------------------------------------------------

    async def sync_devices(self, devices: Iterable[Device]) -> None:
        """Insert new inventory devices and update changed ones; never deletes history."""
        await self.db.sync_devices(devices)

    async def write_checks(self, results: Sequence[CheckResult]) -> None:
        """Insert ``results``: COPY on PostgreSQL, Core ``executemany`` in one transaction on SQLite."""
        await checks.write_checks(self.db, results)

    async def write_transition(self, transition: Transition) -> None:
        """Record one transition with its outage change, in its own transaction."""
        await checks.write_transitions(self.db, [transition])

    async def write_transitions(self, transitions: Sequence[Transition]) -> None:
        """Record ``transitions`` in order, in one transaction, each with its outage change
        (:func:`store.checks.write_transitions`)."""
        await checks.write_transitions(self.db, transitions)

    async def write_snmp_polls(self, polls: Sequence[PollRecord]) -> None:
        """Latest system facts and interfaces, interface rates, and poll outcomes (answered or
        failed) of ``polls``, in one transaction."""
        await snmp.write_polls(self.db, polls)

    async def write_snmp_events(self, events: Sequence[SnmpEventIn]) -> None:
        """Reboots, interface changes and agent changes, in one transaction."""
        await snmp.write_events(self.db, events)

    # -- reads ----------------------------------------------------------------------------

    async def open_outages(self, unreachable: bool = False) -> dict[str, datetime]:
        """Device name -> start of its still-open outage (``unreachable``: of those still
        unreachable)."""
        return await checks.open_outages(self.db, unreachable)

    async def last_states(self, names: Collection[str]) -> dict[str, State]:
        """Each named device's state after its last recorded transition (never recorded: absent)."""
        return await checks.last_states(self.db, names)

    async def transitions_of(self, names: Collection[str], since: datetime) -> list[Transition]:
        """The named devices' transitions at or after ``since``, in time order."""
        return await checks.transitions_of(self.db, names, since)

    async def transitions(self, device: str | None = None,
                          since: datetime | None = None) -> list[Transition]:
        """Transitions in time order, of one device or all, at or after ``since``."""
        return await checks.transitions(self.db, device, since)

    async def outages(self, device: str | None = None,
                      since: datetime | None = None) -> list[Outage]:
        """Outages by start time, of one device or all, still open or ended at or after ``since``."""
        return await checks.outages(self.db, device, since)

    async def checks(self, device: str, since: datetime | None = None,
                     until: datetime | None = None) -> list[Check]:
        """Stored checks of ``device`` in time order, in ``[since, until)``."""
        return await checks.checks(self.db, device, since, until)

    async def rollups(self, device: str, tier: str, since: datetime | None = None,
                      until: datetime | None = None) -> list[Rollup]:
        """Rollups of ``device`` in the ``"1m"`` or ``"1h"`` tier, by bucket, for buckets that
        start in ``[since, until)``."""
        return await checks.rollups(self.db, device, tier, since, until)

    async def count_checks(self, device: str | None = None) -> int:
        return await checks.count_checks(self.db, device)

    async def snmp_latest(self, device: str) -> SnmpLatest | None:
        """What the latest answered SNMP poll of ``device`` read and how polling it went; None if
        it never was polled."""
        return await snmp.latest(self.db, device)

    async def if_rates(self, device: str, ifindex: int | None = None, since: datetime | None = None,
                       until: datetime | None = None) -> list[IfRate]:
        """Raw interface rates of ``device`` in ``[since, until)``."""
        return await snmp.rates(self.db, device, ifindex, since, until)

    async def if_rollups(self, device: str, tier: str, ifindex: int | None = None,
                         since: datetime | None = None, until: datetime | None = None) -> list[IfRollup]:
        """Interface rollups of ``device`` in the ``"1m"`` or ``"1h"`` tier."""
        return await snmp.rollups(self.db, device, tier, ifindex, since, until)

    async def snmp_events(self, device: str | None = None,
                          since: datetime | None = None) -> list[SnmpEvent]:
        """Stored SNMP events in time order."""
        return await snmp.events(self.db, device, since)
