"""The notification outbox in the history database (``notification_outbox``), SQLite or PostgreSQL.

:class:`SqlOutbox` is an :class:`~poller.notify.outbox.Outbox` whose working set is a
:class:`~poller.notify.outbox.MemoryOutbox` (what is pending, in order: the delivery loop never
reads the database) and whose every change is written first, then applied in memory:

- ``put`` commits its rows before it returns (and before the delivery can send them);
- ``mark_sent`` commits before the next message goes: a message is sent twice only if the
  process died between the receiver's answer and that commit, and then with the same key;
- changes made while another is being written wait for it and then go together, in order, in
  one transaction (each call still returns only once its own is written);
- while the database fails (an error, or no answer within ``db_timeout``), changes go to an
  fsync'd spool (:mod:`store.outbox_spool`) instead, and the delivery goes on from memory;
  every ``retry_s`` the spool is replayed into the table, oldest first, and only when it is
  empty are changes written to the database directly again (so order holds). Only the first
  change after the database fails waits for it (``db_timeout`` at most); the next ones go
  straight to the spool until the replay loop finds the database answering again. A message sent
  while the database was down is replayed as sent, not sent again;
- replay is idempotent: rows are inserted by key (``ON CONFLICT DO NOTHING``) and a status
  changes only from ``pending``, so a change applied twice (a crash between a segment's commit
  and its deletion, a write that timed out but committed) changes nothing;
- if the spool cannot take a change either (disk full), it waits in memory (``unsaved`` in the
  stats, ``notify_unsaved`` in the gauges) and is written before anything newer.

:meth:`SqlOutbox.open` replays what a previous run left in the spool (the database must answer
then), then loads the pending rows of its site in put order. :func:`delete_delivered` is the
retention maintenance applies (store/maintenance.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Executable, and_, delete, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from poller.notify.model import Notification
from poller.notify.outbox import (
    GroupKey,
    MemoryOutbox,
    OutboxStats,
    Pending,
    clean_error,
    utcnow,
)
from store.database import Database
from store.dburl import cause
from store.models import notification_outbox_table as _t
from store.outbox_spool import OutboxSpool, Record

log = logging.getLogger(__name__)


def group_key(n: Notification) -> str:
    """The (route's) group as stored: JSON of its label pairs; test messages apart (``test:``),
    so that they are never taken for a group's latest message."""
    text = json.dumps([list(pair) for pair in n.group], separators=(",", ":"))
    return f"test:{text}" if n.status == "test" else text


class SqlOutbox:
    """The outbox of ``site`` in the database ``db`` (opened by its owner), spooling to
    ``spool_dir`` (a directory of its own: not the history spool's) while the database fails."""

    def __init__(self, db: Database, spool_dir: Path, *, site: str = "",
                 clock: Callable[[], datetime] = utcnow, db_timeout: float = 5.0,
                 retry_s: float = 5.0, segment_bytes: int = 1024 * 1024) -> None:
        self.db = db
        self.spool_dir = spool_dir
        self.site = site
        self.clock = clock
        self.db_timeout = db_timeout
        self.retry_s = retry_s
        self.segment_bytes = segment_bytes
        self.memory = MemoryOutbox()
        self.spool: OutboxSpool | None = None
        self.failing: str | None = None  # why the database failed, while it does
        self.spooled = 0  # changes written to the spool (cumulative)
        self.replayed = 0  # changes replayed from the spool into the database (cumulative)
        self._backlog: list[Record] = []  # changes neither the database nor the spool took yet
        self._incoming: list[Record] = []  # changes waiting for the lock (see _write)
        self._queued = 0  # changes handed to _write (cumulative)
        self._taken = 0  # of those, changes taken into a flush
        self._spool_error: str | None = None
        self._lock = asyncio.Lock()  # one change at a time: order in the database is put order
        self._hung: set[asyncio.Task[None]] = set()  # writes that timed out and still run
        self._replayer: asyncio.Task[None] | None = None

    # -- opening and closing ----------------------------------------------------------------

    async def open(self) -> None:
        """Lock the spool, replay what it holds (raises if the database does not answer), load
        the pending messages; then replay in the background whenever the database fails."""
        self.spool = await asyncio.to_thread(OutboxSpool, self.spool_dir, segment_bytes=self.segment_bytes)
        try:
            if not self.spool.empty:
                log.warning("notify outbox: replaying %d changes left in the spool %s", self.spool.rows,
                            self.spool_dir)
                while (oldest := await asyncio.to_thread(self.spool.oldest)) is not None:
                    async with self.db.writing() as conn:
                        await self._apply(conn, oldest[1])
                    self.replayed += len(oldest[1])
                    await asyncio.to_thread(self.spool.discard, oldest[0])
            await self._load()
        except BaseException:
            self.spool.close()
            self.spool = None
            raise
        self._replayer = asyncio.create_task(self._replay_loop(), name="wardtui-notify-outbox-replay")

    async def close(self) -> None:
        """Stop replaying; write (or spool) what waits in memory; release the spool."""
        if self._replayer is not None:
            self._replayer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._replayer
            self._replayer = None
        if (self._backlog or self._incoming) and self.spool is not None:
            async with self._lock:
                self._take()
                await self._flush()
        if self._hung:  # writes that timed out: a last chance to finish, then cancelled
            _done, late = await asyncio.wait(list(self._hung), timeout=self.db_timeout)
            for task in late:
                task.cancel()
        if self.spool is not None:
            self.spool.close()
            self.spool = None

    async def _load(self) -> None:
        async with self.db.engine.connect() as conn:
            rows = (await conn.execute(
                select(_t.c.body, _t.c.attempts, _t.c.next_attempt, _t.c.last_error)
                .where(_t.c.site == self.site, _t.c.status == "pending").order_by(_t.c.id))).all()
            latest = select(func.max(_t.c.id)).where(_t.c.site == self.site, ~_t.c.group_key.like("test:%")) \
                .group_by(_t.c.route, _t.c.group_key)
            groups = (await conn.execute(select(_t.c.body).where(_t.c.id.in_(latest)))).all()
        for body, attempts, next_attempt, last_error in rows:
            self.memory.load(Pending(Notification.from_dict(body), attempts, next_attempt, last_error))
        for (body,) in groups:
            self.memory.note_latest(Notification.from_dict(body))

    # -- the Outbox protocol ----------------------------------------------------------------

    async def put(self, notifications: Sequence[Notification]) -> None:
        fresh = list({n.key: n for n in notifications if not self.memory.holds(n.key)}.values())
        if not fresh:
            return
        await self._write([{"k": "n", "site": self.site, "body": n.to_dict()} for n in fresh])
        self.memory.put_now(fresh)

    async def due(self, receiver: str, now: datetime, limit: int) -> Sequence[Pending]:
        return self.memory.due_now(receiver, now, limit)

    async def pending(self, receiver: str, limit: int) -> Sequence[Pending]:
        return self.memory.pending_now(receiver, limit)

    def receivers(self) -> set[str]:
        return self.memory.receivers()

    async def mark_sent(self, key: str, at: datetime) -> None:
        await self._write([{"k": "s", "key": key, "at": at.isoformat()}])
        self.memory.settle_now(key, "sent")

    async def mark_retry(self, key: str, attempts: int, next_at: datetime, error: str) -> None:
        await self._write([{"k": "r", "key": key, "attempts": attempts, "next": next_at.isoformat(),
                            "error": clean_error(error)}])
        self.memory.retry_now(key, attempts, next_at, error)

    async def mark_failed(self, key: str, error: str) -> None:
        await self._write([{"k": "f", "key": key, "error": clean_error(error)}])
        self.memory.settle_now(key, "failed")

    async def summarise(self, older: Sequence[str], into: Notification) -> None:
        await self._write([{"k": "x", "older": list(older), "key": into.key, "body": into.to_dict()}])
        self.memory.summarise_now(older, into)

    def stats(self) -> OutboxStats:
        s = self.memory.stats()
        return OutboxStats(queued=s.queued, sent=s.sent, failed=s.failed, summarised=s.summarised,
                           oldest=s.oldest, unsaved=len(self._backlog),
                           spooled=self.spool.rows if self.spool is not None else 0)

    async def latest_per_group(self) -> dict[GroupKey, Notification]:
        return await self.memory.latest_per_group()

    def watch(self, callback: Callable[[str], None]) -> None:
        self.memory.watch(callback)

    # -- writing: the database, else the spool, else memory ----------------------------------

    async def _write(self, records: list[Record]) -> None:
        """Write ``records`` (database, else spool, else memory) before returning. Changes that
        wait for the lock meanwhile (other receivers', or other groups' sends) go together in
        the next transaction, in the order they came: each caller still returns only once its
        own are written, and the first of them to get the lock writes them all."""
        self._incoming.extend(records)
        self._queued += len(records)
        mine = self._queued
        async with self._lock:
            if self._taken >= mine:
                return  # written with an earlier caller's
            self._take()
            await self._flush()

    def _take(self) -> None:
        self._backlog.extend(self._incoming)
        self._incoming = []
        self._taken = self._queued

    async def _flush(self, *, probe: bool = False) -> None:
        """Under the lock: the spool into the database, then the backlog; what the database does
        not take goes to the spool (after what is there), and what neither takes stays. While
        the database fails, only the replay loop (``probe``) tries it: a change never waits for
        a database known to be down."""
        if (self.failing is None or probe) and await self._replay_spool() \
                and (not self._backlog or await self._to_database(self._backlog)):
            self._backlog = []
            return
        if self._backlog and self.spool is not None:
            try:
                await asyncio.to_thread(self.spool.append, self._backlog)
            except OSError as exc:
                why = exc.strerror or str(exc)
                if self._spool_error is None:
                    log.error("notify outbox: neither the database (%s) nor the spool %s (%s) takes "
                              "changes: %d kept in memory until one does", self.failing, self.spool_dir,
                              why, len(self._backlog))
                self._spool_error = why
                return
            if self._spool_error is not None:
                log.warning("notify outbox: the spool %s takes changes again", self.spool_dir)
                self._spool_error = None
            self.spooled += len(self._backlog)
            self._backlog = []

    async def _replay_spool(self) -> bool:
        """Apply the spool to the database, a segment per transaction; True once it is empty."""
        spool = self.spool
        while spool is not None and not spool.empty:
            oldest = await asyncio.to_thread(spool.oldest)
            if oldest is None:
                break
            seq, records = oldest
            if not await self._to_database(records):
                return False
            await asyncio.to_thread(spool.discard, seq)
            self.replayed += len(records)
            if spool.empty:
                log.warning("notify outbox: the spool is replayed (%d changes in all)", self.replayed)
        return True

    async def _to_database(self, records: list[Record]) -> bool:
        """One transaction; False (and the database counts as failing for ``retry_s``) if it
        failed or took over ``db_timeout``. A write that timed out is left to finish: if it
        commits after all, what replaces it is applied again, which changes nothing."""
        task = asyncio.ensure_future(self._commit(list(records)))
        try:
            await asyncio.wait_for(asyncio.shield(task), self.db_timeout)
        except Exception as error:
            if task.done():
                self._failed(error)
            else:
                self._hung.add(task)
                task.add_done_callback(self._forget)
                self._failed(TimeoutError(f"no answer within {self.db_timeout:g} s"))
            return False
        if self.failing is not None:
            log.warning("notify outbox: the database takes changes again")
            self.failing = None
        return True

    async def _commit(self, records: list[Record]) -> None:
        async with self.db.writing() as conn:
            await self._apply(conn, records)

    def _forget(self, task: asyncio.Task[None]) -> None:
        self._hung.discard(task)
        if not task.cancelled():
            task.exception()  # retrieved: it was counted as a failure when it timed out

    def _failed(self, exc: BaseException) -> None:
        why = cause(exc) if not isinstance(exc, TimeoutError) else str(exc) or "timed out"
        if self.failing is None:
            log.warning("notify outbox: the database failed (%s): changes go to the spool %s and are "
                        "replayed when it answers", clean_error(why), self.spool_dir)
        self.failing = clean_error(why)

    async def _replay_loop(self) -> None:
        """Every ``retry_s``, while changes wait: does the database answer (asked outside the
        lock, so that changes meanwhile go to the spool at once)? Then replay."""
        while True:
            await asyncio.sleep(self.retry_s)
            if not self._backlog and (self.spool is None or self.spool.empty):
                continue
            if not await self._answers():  # (also while a change is being tried: not behind it)
                continue
            async with self._lock:
                await self._flush(probe=True)

    async def _answers(self) -> bool:
        async def ask() -> None:
            async with self.db.engine.connect() as conn:
                await conn.execute(select(1))

        task = asyncio.ensure_future(ask())
        try:
            await asyncio.wait_for(asyncio.shield(task), self.db_timeout)
        except Exception:
            if not task.done():
                task.add_done_callback(self._forget)
                self._hung.add(task)
            return False
        return True

    # -- applying changes (the same for a direct write and a replay) -------------------------

    async def _apply(self, conn: AsyncConnection, records: list[Record]) -> None:
        for statement, params in self._statements(records):
            await conn.execute(statement, params)

    def _statements(self, records: list[Record]) -> list[tuple[Executable, Any]]:
        """The statements (and their parameters) that apply ``records``, in order; consecutive
        puts in one ``executemany``."""
        out: list[tuple[Executable, Any]] = []
        i = 0
        while i < len(records):
            if records[i]["k"] == "n":
                j = i
                while j < len(records) and records[j]["k"] == "n":
                    j += 1
                out.append((self.db.upsert(_t).on_conflict_do_nothing(index_elements=["key"]),
                            [_row(r) for r in records[i:j]]))
                i = j
                continue
            out += _change(records[i])
            i += 1
        return out


def _row(record: Record) -> dict[str, Any]:
    n = Notification.from_dict(record["body"])
    return {"key": n.key, "site": record["site"], "route": n.route, "receiver": n.receiver,
            "group_key": group_key(n), "status": "pending", "body": record["body"], "created": n.created,
            "attempts": 0, "next_attempt": None, "last_error": None, "sent_at": None}


def _change(r: Record) -> list[tuple[Executable, Any]]:
    pending = _t.c.status == "pending"
    kind = r["k"]
    if kind == "s":
        return [(update(_t).where(_t.c.key == r["key"], pending).values(
            status="sent", sent_at=datetime.fromisoformat(r["at"]), attempts=_t.c.attempts + 1,
            next_attempt=None), None)]
    if kind == "r":
        return [(update(_t).where(_t.c.key == r["key"], pending).values(
            attempts=r["attempts"], next_attempt=datetime.fromisoformat(r["next"]),
            last_error=clean_error(r["error"])), None)]
    if kind == "f":
        return [(update(_t).where(_t.c.key == r["key"], pending).values(
            status="failed", attempts=_t.c.attempts + 1, next_attempt=None,
            last_error=clean_error(r["error"])), None)]
    if kind == "x":
        out: list[tuple[Executable, Any]] = []
        if r["older"]:
            out.append((update(_t).where(_t.c.key.in_(r["older"]), pending).values(
                status="summarised", next_attempt=None,
                last_error=clean_error(f"summarised into {r['key']}")), None))
        out.append((update(_t).where(_t.c.key == r["key"], pending).values(body=r["body"]), None))
        return out
    raise ValueError(f"unknown outbox change {kind!r}")


async def delete_delivered(conn: AsyncConnection, sent_before: datetime | None,
                           failed_before: datetime | None) -> int:
    """Retention: delete sent and summarised rows created before ``sent_before``, failed ones
    before ``failed_before`` (None: kept), but never a (site, route, group)'s newest row, which
    a restart needs to send the recoveries of what it notified. Pending rows are never deleted."""
    done: list[Any] = []
    if sent_before is not None:
        done.append(and_(_t.c.status.in_(("sent", "summarised")), _t.c.created < sent_before))
    if failed_before is not None:
        done.append(and_(_t.c.status == "failed", _t.c.created < failed_before))
    if not done:
        return 0
    newest = select(func.max(_t.c.id)).group_by(_t.c.site, _t.c.route, _t.c.group_key)
    result = await conn.execute(delete(_t).where(or_(*done), _t.c.id.not_in(newest)))
    return int(result.rowcount or 0)
