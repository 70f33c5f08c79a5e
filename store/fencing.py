"""Fencing epochs of cluster shards: a takeover raises the shard's epoch in PostgreSQL, and a
write of the shard's history commits only in a transaction that found the writer's epoch still
current and kept it so until the commit (issue 16 item 3; docs/CLUSTER.md, "Fencing epochs").

A Redis lease says who *should* poll a shard; it cannot stop a poller that lost it without
knowing (paused, partitioned, or after a Redis failover lost the key) from writing. The epoch
can: it lives in the database the writes go to, and is checked in their transaction.

The lock protocol (PostgreSQL, READ COMMITTED, the engine's default):

- :meth:`Fencing.take`: ``INSERT ... ON CONFLICT DO UPDATE SET epoch = epoch + 1 RETURNING
  epoch``, a transaction of its own. Its update takes the row's ``FOR NO KEY UPDATE`` lock.
- :meth:`Fencing.check_in` (inside the write's transaction, before its writes): ``SELECT epoch
  ... FOR SHARE``. ``FOR SHARE`` conflicts with the take's lock, so the two never interleave:
  a take waits until an in-flight fenced write ends (committed before the new epoch exists:
  the new owner, which reads the shard's state after its take, sees it); a check-in that meets
  a take in progress waits for it, then reads the new epoch (READ COMMITTED re-reads a row
  updated meanwhile) and is refused. Writers of one epoch share the lock and do not wait for
  each other. (``FOR KEY SHARE`` would not do: it does not conflict with an update that leaves
  the key alone, so a take would pass it.) A conditional ``UPDATE ... WHERE epoch = E`` would
  fence as well, but would serialise every writer of a shard and write a row version per batch.
- A writer paused inside its transaction (SIGSTOP) would hold the row and so stall the takeover:
  the transaction sets ``idle_in_transaction_session_timeout`` (``idle_limit``) first, so the
  server ends such a session, rolling its writes back, and the take goes on. Woken, the writer
  finds its connection gone; its retry checks in again and is refused.

A refused write raises :class:`Fenced` and is counted; nothing of its transaction is committed.
The poller then stands down from the shard (the wiring, not this module, does that).
"""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select, text
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection

from poller.text import clean
from store.database import Database
from store.models import shard_epochs_table as _t
from store.schema import display_url

IDLE_LIMIT = 5.0
"""Seconds a fenced transaction may sit idle between two statements before the server ends its
session: the longest a paused writer can hold a takeover back. Well under the lease TTL (10 s),
far over the milliseconds between a live writer's statements."""
NOTIFIER_SHARD = -1
"""The shard number under which the notifier's lease (issue 16 item 5) is fenced: its writes
(the outbox) check in like a shard's. Device shards are numbered from 0."""


class ClusterNeedsPostgres(Exception):
    """Fencing (and so ``wardtui serve --cluster``) asked of a database that is not PostgreSQL;
    the message says what to use instead."""


class Fenced(Exception):
    """A write was refused: the writer's epoch of ``shard`` is no longer the database's, because
    another poller took the shard over (``current`` and ``owner``: the database's epoch and the
    poller that took it; None when the shard was never taken). ``shards``: every shard of the
    refused write that is stale. Nothing of the write's transaction is committed."""

    def __init__(self, site: str, shard: int, held: int, current: int | None, owner: str | None,
                 shards: tuple[int, ...] = ()) -> None:
        self.site = site
        self.shard = shard
        self.held = held
        self.current = current
        self.owner = owner
        self.shards = shards or (shard,)
        if current is None:
            now = "which was never taken"
        else:
            now = f"taken over at epoch {current} by {clean(owner or '')!r}"
        more = f" (stale shards: {', '.join(map(str, self.shards))})" if len(self.shards) > 1 else ""
        super().__init__(f"write refused: this poller holds shard {shard} of site {clean(site)!r} at "
                         f"epoch {held}, {now}{more}; it stands down from the shard")


@dataclass(frozen=True, slots=True)
class ShardEpoch:
    """A shard's row in ``shard_epochs``: its epoch, and who took it when (the server's clock)."""

    site: str
    shard: int
    epoch: int
    owner: str
    taken_at: datetime


def require_postgres(url: str) -> None:
    """Raise :class:`ClusterNeedsPostgres` unless ``url`` is a PostgreSQL database: what
    ``wardtui serve --cluster`` says before it opens anything."""
    backend = make_url(url).get_backend_name()
    if backend != "postgresql":
        what = "SQLite" if backend == "sqlite" else backend
        raise ClusterNeedsPostgres(
            f"a cluster needs a PostgreSQL history database (--db postgresql://USER@HOST/DB): "
            f"{display_url(url)} is {what}, which cannot fence the writes of several pollers "
            "(each write must check its shard's epoch in its own transaction, on one server "
            "every poller writes to); without --cluster, one wardtui serve polls every device")


class Fencing:
    """The fencing epochs of ``site``'s shards in the PostgreSQL database ``db`` (open).

    ``refused_writes`` counts the write transactions refused (:class:`Fenced`),
    ``refused_by_shard`` the refusals per stale shard, ``takeovers`` the takes made here.
    """

    def __init__(self, db: Database, site: str, *, idle_limit: float = IDLE_LIMIT) -> None:
        require_postgres(db.url)
        if idle_limit <= 0:
            raise ValueError("idle_limit must be positive: 0 would let a paused writer stall a takeover")
        self.db = db
        self.site = site
        self.idle_limit = idle_limit
        self.refused_writes = 0
        self.refused_by_shard: Counter[int] = Counter()
        self.takeovers = 0

    async def take(self, shard: int, owner: str) -> int:
        """Take ``shard`` over for ``owner``: its epoch raised by one (1 for a shard never taken)
        in a transaction of its own, which waits for any fenced write in flight on the shard.
        Returns the new epoch; every write of the shard from now on must carry it."""
        async with self.db.engine.begin() as conn:
            return await self.take_on(conn, shard, owner)

    async def take_on(self, conn: AsyncConnection, shard: int, owner: str) -> int:
        """:meth:`take` in the transaction open on ``conn``, which the caller commits: until it
        does, the shard's row stays locked (fenced writes of any epoch wait, then are refused)."""
        insert = postgresql.insert(_t).values(site=self.site, shard=shard, epoch=1, owner=owner,
                                              taken_at=func.clock_timestamp())
        # clock_timestamp(), not now(): the time the row was taken, after any wait for its lock.
        stmt = insert.on_conflict_do_update(
            index_elements=[_t.c.site, _t.c.shard],
            set_={"epoch": _t.c.epoch + 1, "owner": insert.excluded.owner,
                  "taken_at": func.clock_timestamp()},
        ).returning(_t.c.epoch)
        epoch = int((await conn.execute(stmt)).scalar_one())
        self.takeovers += 1
        return epoch

    async def check_in(self, conn: AsyncConnection, shard: int, epoch: int) -> None:
        """In the write transaction open on ``conn``, before its writes: raise :class:`Fenced`
        unless ``shard`` is still at ``epoch``, and keep it there until the transaction ends."""
        await self.check_in_many(conn, {shard: epoch})

    async def check_in_many(self, conn: AsyncConnection, epochs: Mapping[int, int]) -> None:
        """:meth:`check_in` of every shard of ``epochs`` (shard -> epoch held), in one statement,
        locking their rows in shard order. :class:`Fenced` names the first stale shard (and
        every stale one in ``shards``), counted once as a refused write."""
        if not epochs:
            raise ValueError("a fenced write names the shards it writes (none given)")
        # SET LOCAL, as a function: it ends with the transaction, whatever the pool does next.
        await conn.execute(text("SELECT set_config('idle_in_transaction_session_timeout', :ms, true)"),
                           {"ms": str(max(1, round(self.idle_limit * 1000)))})
        c = _t.c
        rows = await conn.execute(
            select(c.shard, c.epoch, c.owner)
            .where(c.site == self.site, c.shard.in_(sorted(epochs)))
            .order_by(c.shard)
            .with_for_update(read=True))
        found: dict[int, tuple[int, str]] = {shard: (epoch, owner) for shard, epoch, owner in rows}
        stale = tuple(shard for shard in sorted(epochs) if found.get(shard, (None, ""))[0] != epochs[shard])
        if stale:
            self._refused(stale)
            first = stale[0]
            current, owner = found.get(first, (None, None))
            raise Fenced(self.site, first, epochs[first], current, owner, stale)

    def fenced(self, epochs: Mapping[int, int], *,
               begin: Callable[[], AbstractAsyncContextManager[AsyncConnection]] | None = None,
               ) -> AbstractAsyncContextManager[AsyncConnection]:
        """A write transaction (``begin``, by default :meth:`Database.writing`) checked in for
        every shard of ``epochs`` before the caller writes on it::

            async with fencing.fenced({3: 17}) as conn:
                await checks.write_transitions_on(db, conn, ids, transitions)

        A stale shard raises :class:`Fenced` before anything is written; the transaction is
        rolled back and nothing the block would have written is committed."""
        return self._fenced(dict(epochs), begin or self.db.writing)

    @contextlib.asynccontextmanager
    async def _fenced(self, epochs: dict[int, int],
                      begin: Callable[[], AbstractAsyncContextManager[AsyncConnection]],
                      ) -> AsyncIterator[AsyncConnection]:
        async with begin() as conn:
            await self.check_in_many(conn, epochs)
            yield conn

    async def epochs(self, shards: Iterable[int] | None = None) -> list[ShardEpoch]:
        """The rows of this site's shards (all, or those of ``shards``), by shard; takes no lock."""
        c = _t.c
        stmt = select(c.site, c.shard, c.epoch, c.owner, c.taken_at).where(c.site == self.site)
        if shards is not None:
            stmt = stmt.where(c.shard.in_(sorted(set(shards))))
        async with self.db.engine.connect() as conn:
            rows = (await conn.execute(stmt.order_by(c.shard))).all()
        return [ShardEpoch(site=r.site, shard=r.shard, epoch=int(r.epoch), owner=r.owner,
                           taken_at=r.taken_at) for r in rows]

    def gauges(self) -> dict[str, float]:
        """``cluster_refused_writes`` and ``cluster_takeovers`` (of this process)."""
        return {"cluster_refused_writes": float(self.refused_writes),
                "cluster_takeovers": float(self.takeovers)}

    def _refused(self, stale: tuple[int, ...]) -> None:
        self.refused_writes += 1
        self.refused_by_shard.update(stale)
