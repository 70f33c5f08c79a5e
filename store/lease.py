"""One poller per history database: the lease that ``wardtui serve``, ``wardtui poll`` and the
dashboard hold for their whole run, and that readers look at without taking.

Two pollers writing one database wrote conflicting outages (each opens and closes its own)
and each ran the rollups. So a poller takes the database's lease before it opens the store,
and a second one is refused (:class:`LeaseRefused`, naming the holder). Readers (``history``,
``outages``, ``report``, ``snmp``, ``db``, ``doctor``) never take it; :func:`lease_holder`
says who holds it and changes nothing.

- **SQLite**: ``flock`` on a file beside the database, ``PATH.lease``, which also holds the
  holder's description (JSON). Not a ``flock`` on the database file itself: it does work
  beside SQLite's POSIX locks on a local Linux filesystem (separate lock types: tried here,
  another process wrote through SQLite while the file was flocked), but reading the holder
  means opening the database file with a second descriptor, and closing any descriptor of a
  file drops *all* the POSIX locks the process holds on it (SQLite's "How to corrupt" 2.2;
  tried here too: a process inside BEGIN IMMEDIATE opened and closed the file, and another
  process got the write lock at once) - a reader in the dashboard's process would drop its
  store's locks;
  on NFS ``flock`` is emulated with POSIX locks and would lock SQLite out; and the database
  file would have to exist before its schema is checked. The kernel drops the lock when the
  holder dies, whatever its content says.
- **PostgreSQL**: a session advisory lock (``pg_try_advisory_lock``) on a connection of its
  own, held open for the whole run on a loop of its own (a daemon thread: the dashboard
  checks the lease on one loop before it draws and polls on another, and a busy engine loop
  must not delay noticing a lost connection). The holder writes the ``poller_lease`` row with
  its session's pid; a reader believes the row only when that pid is the one ``pg_locks``
  shows holding the lock. The server drops the lock with the session (a killed poller's
  socket closes at once).

Losing the lease (PostgreSQL: its connection fails) is logged loudly and shows as the gauge
``store_lease_lost``. While it is not held the poller must not write (the runtime pauses its
history writer: rows wait in memory and the spool as for a database that fails); the lease is
tried again every :data:`WATCH_EVERY` seconds. Taken again, writes resume. Taken by another
poller meanwhile, this one keeps polling and writes nothing until that one stops: the history
then has one writer, and this one's rows stay in its spool for its next start.

**A cluster** (``wardtui serve --cluster``, issue 16; docs/CLUSTER.md) is several pollers of one
database on purpose, each writing only the shards it holds, every write fenced by its shard's
epoch (store/fencing.py). Its members take the same advisory lock *shared*
(``pg_try_advisory_lock_shared``, ``Lease(shared=True)``): members share it, while a
non-cluster poller's exclusive lock and a member's shared one exclude each other, both ways. So
a plain ``wardtui serve`` started by mistake beside a cluster is still refused (naming the
cluster), and a cluster member beside a plain poller too. Members write no ``poller_lease`` row
(it has room for one holder): a refusal counts them from ``pg_locks``. Maintenance (rollups,
retention) must run once per database, not once per member: the member that also holds a
second, exclusive advisory lock (:data:`MAINTAIN_KEY`, tried at each watch) runs it
(:attr:`Lease.maintains`). SQLite has no cluster (refused before any lease is taken).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import logging
import os
import socket
import threading
from collections.abc import Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import pool, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from poller.text import clean
from store.db import sqlite_file
from store.dburl import CONNECT_TIMEOUT, cause, connect_args
from store.schema import display_url

log = logging.getLogger(__name__)

LEASE_KEY = 0x776172646C656173
"""``pg_try_advisory_lock``'s key for the poller lease ("wardleas"); advisory locks are per
database, so one key serves every database. Not :data:`store.schema.MIGRATION_LOCK`."""
MAINTAIN_KEY = LEASE_KEY + 1
"""The exclusive advisory lock a cluster member holds while it runs maintenance for the database."""
WATCH_EVERY = 5.0
"""Seconds between checks of a held PostgreSQL lease's connection, and between attempts to take
a lost one again."""
KINDS = ("serve", "poll", "dashboard")
RELEASE_TIMEOUT = 1.0
"""Seconds a release or a dropped connection waits for the server before it drops the socket:
a stop must not wait on a hung database for the lease too (the writer already waited)."""
_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class Holder:
    """Who holds a lease, as the holder described itself (``pid`` None: it has not said)."""

    host: str
    pid: int | None
    kind: str
    since: datetime | None
    members: int = 0  # kind "cluster": how many cluster members hold the lease (shared)

    def describe(self) -> str:
        """``wardtui serve on HOST (pid N) since 2026-12-05 17:40:02 UTC``, cleaned: it was read
        from a file or a row, not written by this process."""
        if self.kind == CLUSTER and self.pid is None:
            return f"a cluster of {self.members} wardtui serve --cluster poller(s)"
        if self.pid is None:
            return "another wardtui (which one is not recorded)"
        since = f" since {self.since.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC" if self.since else ""
        return f"wardtui {clean(self.kind)} on {clean(self.host)} (pid {self.pid}){since}"

    def to_json(self) -> str:
        return json.dumps({"host": self.host, "pid": self.pid, "kind": self.kind,
                           "since": self.since.isoformat() if self.since else None})

    @classmethod
    def from_json(cls, data: str) -> Holder:
        """The holder a lease file describes; :data:`UNKNOWN` for anything else."""
        try:
            raw = json.loads(data)
            since = datetime.fromisoformat(raw["since"]) if raw.get("since") else None
            pid = raw["pid"]
            if not isinstance(pid, int) or isinstance(pid, bool):
                return UNKNOWN
            return cls(host=str(raw.get("host", "")), pid=pid, kind=str(raw.get("kind", "")),
                       since=since if since is None or since.tzinfo else since.replace(tzinfo=UTC))
        except (ValueError, TypeError, KeyError, AttributeError):
            return UNKNOWN


UNKNOWN = Holder(host="", pid=None, kind="", since=None)
"""The lease is held but its holder has not (yet) described itself, or the description is
not the holder's (a row left by a killed poller)."""
CLUSTER = "cluster"
"""The kind of a cluster member's lease (``wardtui serve --cluster``): shared with the others."""


class LeaseRefused(Exception):
    """Another poller holds the database's lease; the message names it and what to do instead."""

    def __init__(self, label: str, holder: Holder, cluster: bool = False) -> None:
        if cluster:
            tail = ("; a cluster member shares the database only with other --cluster pollers: stop "
                    "that one first")
        elif holder.kind == CLUSTER:
            tail = ("; start this one with --cluster (and the cluster's --redis and --site) to join "
                    "it, or run readers: wardtui history/outages/report")
        else:
            tail = ("; attach to it instead: wardtui --redis URL (or run readers: wardtui "
                    "history/outages/report)")
        super().__init__(f"the history database {label} is polled by {holder.describe()}{tail}")
        self.holder = holder


def me(kind: str) -> Holder:
    """This process as a lease holder of ``kind``, since now."""
    return Holder(host=socket.gethostname(), pid=os.getpid(), kind=kind,
                  since=datetime.now(UTC).replace(microsecond=0))


def lease_file(url: str) -> Path | None:
    """``PATH.lease`` for a SQLite database file; None for anything else (PostgreSQL, memory)."""
    path = sqlite_file(url)
    return None if path is None else path.with_name(path.name + ".lease")


def _is_postgres(url: str) -> bool:
    return url.startswith("postgresql")


class Lease:
    """The lease of the database at ``url`` (a URL as :func:`store.db.database_url` makes it)
    for a poller of ``kind`` (``serve``, ``poll`` or ``dashboard``).

    A SQLite database in memory has no lease: every process has its own. ``shared``: a cluster
    member's lease (PostgreSQL only; see the module's docstring).
    """

    def __init__(self, url: str, kind: str, *, watch_every: float = WATCH_EVERY,
                 shared: bool = False) -> None:
        if shared and not _is_postgres(url):
            raise ValueError("a shared (cluster) lease needs PostgreSQL")
        self.url = url
        self.kind = kind
        self.shared = shared
        self.label = display_url(url)
        self.watch_every = watch_every
        self.file = lease_file(url)
        self.needed = self.file is not None or _is_postgres(url)
        self.holder: Holder | None = None  # this process's description, once taken
        self._fd: int | None = None
        self._keeper: _PgKeeper | None = None

    @property
    def held(self) -> bool:
        """Whether this process holds the lease now (always, for a database that needs none)."""
        if not self.needed:
            return True
        if self._keeper is not None:
            return self._keeper.held
        return self._fd is not None

    @property
    def maintains(self) -> bool:
        """Whether this process may run maintenance (rollups, retention): it holds the lease
        and, for a cluster member, the maintenance lock too."""
        if not self.shared:
            return self.held
        return self._keeper is not None and self._keeper.held and self._keeper.maintains

    @property
    def lost(self) -> bool:
        """Taken, and not held now (PostgreSQL: its connection failed, or another took it)."""
        return self.holder is not None and not self.held

    @property
    def taken_by(self) -> Holder | None:
        """Who took the lease while this process had lost it (PostgreSQL), if anyone."""
        return self._keeper.taken_by if self._keeper is not None else None

    def gauges(self) -> dict[str, float]:
        """``store_lease_lost``: 1 while a lease this process took is not held."""
        return {"store_lease_lost": float(self.lost)} if self.holder is not None else {}

    async def acquire(self) -> None:
        """Take the lease; :class:`LeaseRefused` when another poller holds it. A PostgreSQL
        server that cannot be reached raises what the driver raised (``OSError``,
        ``SQLAlchemyError``). Taking it twice is a no-op."""
        if not self.needed or self.holder is not None:
            return
        holder = me(self.kind)
        if self.file is not None:
            self._fd = await _take_file(self.file, holder, self.label)
        else:
            keeper = _PgKeeper(self.url, holder, self.label, self.watch_every, self.shared)
            try:
                refused = await keeper.call(keeper.take())
            except BaseException:
                await keeper.stop()
                raise
            if refused is not None:
                await keeper.stop()
                raise LeaseRefused(self.label, refused, cluster=self.shared)
            self._keeper = keeper
        self.holder = holder

    async def record(self) -> None:
        """Write the holder's row once the schema has it (PostgreSQL; a new database gets its
        tables after the lease is taken). Nothing for SQLite: its file already says."""
        if self._keeper is not None and not self.shared:
            await self._keeper.call(self._keeper.write_row())

    async def release(self) -> None:
        """Let the lease go (safe to call more than once, and when it was never taken)."""
        if self._fd is not None:
            fd, self._fd = self._fd, None
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)  # the lock is the truth; an empty file is also no stale story
            os.close(fd)  # closing the only descriptor drops the flock
        if self._keeper is not None:
            keeper, self._keeper = self._keeper, None
            await keeper.call(keeper.let_go())
            await keeper.stop()
        self.holder = None


# -- SQLite: flock on PATH.lease -----------------------------------------------------------

TAKE_ATTEMPTS = 5
"""Tries, 50 ms apart, before a SQLite lease counts as held by another: a reader
(:func:`lease_holder`) holds a shared lock on the file for a moment."""


async def _take_file(path: Path, holder: Holder, label: str) -> int:
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        for attempt in range(TAKE_ATTEMPTS):
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if attempt == TAKE_ATTEMPTS - 1:
                    raise LeaseRefused(label, _read_file_holder(fd)) from None
                await asyncio.sleep(0.05)
        os.ftruncate(fd, 0)
        os.pwrite(fd, holder.to_json().encode() + b"\n", 0)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _read_file_holder(fd: int) -> Holder:
    data = os.pread(fd, 4096, 0).decode(errors="replace").strip()
    return Holder.from_json(data) if data else UNKNOWN


def _file_holder(path: Path) -> Holder | None:
    """Who holds the lease file at ``path`` (None: nobody), without taking it or creating it."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    try:
        holder = _read_file_holder(fd)  # read first: a holder writes after it locks
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return holder
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None  # nobody holds it: whatever the file says is over
    finally:
        os.close(fd)


# -- PostgreSQL: a session advisory lock on a connection of its own -------------------------

_LOCK_HOLDER = text(
    "SELECT l.pid, l.mode FROM pg_locks l JOIN pg_database d ON d.oid = l.database "
    "WHERE d.datname = current_database() AND l.locktype = 'advisory' AND l.granted "
    "AND l.classid::bigint = :hi AND l.objid::bigint = :lo AND l.objsubid = 1 AND l.pid <> pg_backend_pid()")
_ROW = text("SELECT host, pid, kind, since, backend_pid FROM poller_lease WHERE id = 1")
_WRITE_ROW = text(
    "INSERT INTO poller_lease (id, host, pid, kind, since, backend_pid) "
    "VALUES (1, :host, :pid, :kind, :since, pg_backend_pid()) ON CONFLICT (id) DO UPDATE SET "
    "host = excluded.host, pid = excluded.pid, kind = excluded.kind, since = excluded.since, "
    "backend_pid = excluded.backend_pid")

_FORGET_ROW = text("DELETE FROM poller_lease WHERE backend_pid = pg_backend_pid()")


def _engine(url: str) -> AsyncEngine:
    # Autocommit: the lease's connection must not sit "idle in transaction" for days.
    return create_async_engine(url, poolclass=pool.NullPool, connect_args=connect_args(url),
                               isolation_level="AUTOCOMMIT")


async def _pg_holder(conn: AsyncConnection) -> Holder | None:
    """Who holds the lease of ``conn``'s database: None when nobody does; the row only when the
    session that wrote it is the one holding the lock."""
    held = (await conn.execute(_LOCK_HOLDER, {"hi": LEASE_KEY >> 32, "lo": LEASE_KEY & 0xFFFFFFFF})).all()
    if not held:
        return None
    shared = [row for row in held if row.mode == "ShareLock"]
    if shared:  # cluster members (store it as one holder: a lease is shared or exclusive, not both)
        return Holder(host="", pid=None, kind=CLUSTER, since=None, members=len(shared))
    found = held[0]
    if (await conn.execute(text("SELECT to_regclass('poller_lease')"))).scalar() is None:
        return UNKNOWN
    row = (await conn.execute(_ROW)).first()
    if row is None or row.backend_pid != found.pid:
        return UNKNOWN
    return Holder(host=str(row.host), pid=int(row.pid), kind=str(row.kind), since=row.since)


class _PgKeeper:
    """The lease's connection and its watch, on an event loop of their own (a daemon thread)."""

    def __init__(self, url: str, holder: Holder, label: str, watch_every: float,
                 shared: bool = False) -> None:
        self.url = url
        self.holder = holder
        self.label = label
        self.watch_every = watch_every
        self.shared = shared
        self.held = False
        self.maintains = False  # shared: this member holds MAINTAIN_KEY (runs maintenance)
        self.taken_by: Holder | None = None
        self._engine: AsyncEngine | None = None
        self._conn: AsyncConnection | None = None
        self._watch: asyncio.Task[None] | None = None
        self._failing = False  # attempts to take it again fail: said once
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="wardtui-lease", daemon=True)
        self._thread.start()

    async def call(self, coro: Coroutine[Any, Any, _T]) -> _T:
        """Run ``coro`` on the keeper's loop and wait for it from the caller's."""
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, self.loop))

    async def stop(self) -> None:
        await self.call(self._cancel_watch())
        self.loop.call_soon_threadsafe(self.loop.stop)
        await asyncio.get_running_loop().run_in_executor(None, self._thread.join, 5.0)
        if not self._thread.is_alive():
            self.loop.close()

    async def _cancel_watch(self) -> None:
        if self._watch is not None:
            self._watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watch
            self._watch = None

    # -- on the keeper's loop ------------------------------------------------------------

    async def take(self) -> Holder | None:
        """Take the lock on a new connection: None when taken, else who holds it."""
        engine = _engine(self.url)
        conn: AsyncConnection | None = None
        taken = False
        try:
            conn = await engine.connect()
            try_lock = "pg_try_advisory_lock_shared" if self.shared else "pg_try_advisory_lock"
            got = (await conn.execute(text(f"SELECT {try_lock}(:key)"), {"key": LEASE_KEY})).scalar()
            if not got:
                return await _pg_holder(conn) or UNKNOWN
            taken = True
        finally:
            if not taken:
                if conn is not None:
                    with contextlib.suppress(Exception):
                        await conn.close()
                await engine.dispose()
        self._engine, self._conn, self.held = engine, conn, True
        if self.shared:
            await self._try_maintenance()
        else:
            await self.write_row()
        self._start_watch()
        return None

    def _start_watch(self) -> None:
        if self._watch is None:
            self._watch = asyncio.create_task(self._watch_loop(), name="wardtui-lease-watch")

    async def _try_maintenance(self) -> None:
        """A cluster member: take the maintenance lock if no other member holds it (on the
        lease's connection: it ends with the session, as the lease does)."""
        if self._conn is None or self.maintains:
            return
        lock = text("SELECT pg_try_advisory_lock(:key)")
        got = (await self._conn.execute(lock, {"key": MAINTAIN_KEY})).scalar()
        if got:
            self.maintains = True
            log.info("this cluster member runs the history database's maintenance (rollups, retention)")

    async def write_row(self) -> bool:
        """Describe the holder in ``poller_lease``; False while the table is not there yet."""
        if self._conn is None:
            return False
        try:
            await self._conn.execute(_WRITE_ROW, {"host": self.holder.host, "pid": self.holder.pid,
                                                  "kind": self.holder.kind, "since": self.holder.since})
        except SQLAlchemyError as exc:
            log.debug("poller lease of %s not described yet: %s", self.label, cause(exc))
            return False
        return True

    async def let_go(self) -> None:
        """Forget the row and unlock, politely; a server that does not answer within
        :data:`RELEASE_TIMEOUT` gets its connection dropped, which ends the lock as well."""
        await self._cancel_watch()
        if self._conn is not None:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(RELEASE_TIMEOUT):
                    await self._conn.execute(_FORGET_ROW)
                    await self._conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": LEASE_KEY})
        await self._drop_connection()

    async def _drop_connection(self) -> None:
        self.held = False
        self.maintains = False
        conn, engine, self._conn, self._engine = self._conn, self._engine, None, None
        if conn is not None:
            try:
                async with asyncio.timeout(RELEASE_TIMEOUT):
                    await conn.close()
            except Exception:  # a hung or dead server: drop the socket without a goodbye
                with contextlib.suppress(Exception):
                    await conn.invalidate()
        if engine is not None:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(RELEASE_TIMEOUT):
                    await engine.dispose()

    async def _watch_loop(self) -> None:
        while True:
            await asyncio.sleep(self.watch_every)
            if self.held:
                await self._check()
                if self.held and self.shared and not self.maintains:
                    with contextlib.suppress(Exception):  # the next watch tries again
                        async with asyncio.timeout(CONNECT_TIMEOUT):
                            await self._try_maintenance()
            else:
                await self._take_again()

    async def _check(self) -> None:
        try:
            async with asyncio.timeout(CONNECT_TIMEOUT):
                assert self._conn is not None
                await self._conn.execute(text("SELECT 1"))
        except Exception as exc:
            log.error("LOST the poller lease of the history database %s: its connection failed (%s); "
                      "history writes wait (memory, then the spool) until it is taken again, tried "
                      "every %g s", self.label, cause(exc), self.watch_every)
            await self._drop_connection()

    async def _take_again(self) -> None:
        try:
            async with asyncio.timeout(CONNECT_TIMEOUT * 2):
                holder = await self.take()
        except Exception as exc:
            if not self._failing:
                log.warning("cannot take the poller lease of %s again yet: %s", self.label, cause(exc))
            self._failing = True
            return
        self._failing = False
        if holder is None:
            log.warning("took the poller lease of the history database %s again: history writes resume",
                        self.label)
            self.taken_by = None
        elif holder != self.taken_by:
            self.taken_by = holder
            ours = holder.pid == self.holder.pid and holder.host == self.holder.host
            log.error("the poller lease of the history database %s is held by %s%s: this wardtui "
                      "polls on but writes no history until it can take the lease again", self.label,
                      holder.describe(),
                      " (this process's old session, still open on the server)" if ours else "")


async def lease_holder(url: str) -> Holder | None:
    """Who holds the lease of the database at ``url`` (as :func:`store.db.database_url` makes
    it): None when nobody does. Takes nothing, writes nothing, creates no file. A PostgreSQL
    server that cannot be reached raises what the driver raised."""
    path = lease_file(url)
    if path is not None:
        return _file_holder(path)
    if not _is_postgres(url):
        return None
    engine = _engine(url)
    try:
        async with engine.connect() as conn:
            return await _pg_holder(conn)
    finally:
        await engine.dispose()
