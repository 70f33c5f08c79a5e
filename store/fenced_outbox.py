"""The outbox of a cluster's notifier: every write fenced by the notifier lease's epoch
(``NOTIFIER_SHARD`` in ``shard_epochs``; store/fencing.py; docs/CLUSTER.md, "The notifier lease").

A member that takes the notifier lease raises the epoch first, then opens this outbox (which
reads the pending messages and each group's latest one: after the take, so every write of an
older holder has committed or never will). From then on each transaction of the outbox checks
the epoch in (``FOR SHARE``) before it writes: a holder that lost the lease without knowing
(paused, partitioned, a Redis failover) finds its writes refused, drops them, counts them and
stands down (``on_refused``); from then on it writes and delivers nothing (a message whose put
was refused is in memory: it is never sent). What it had put and not sent is in the table for
the new holder; what it sent and could not mark sent is sent again by the new holder with the
same key (the outbox's at most one repeat).

The spool (database down) keeps changes of this tenure only: they are replayed under its epoch,
or refused if another member took the notifier meanwhile. A spool left by an earlier tenure is
discarded when a tenure opens (its epoch is stale: written now it would bypass the fence).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path

from poller.notify.outbox import Pending
from store.database import Database
from store.fencing import NOTIFIER_SHARD, Fenced, Fencing
from store.outbox import SqlOutbox
from store.outbox_spool import OutboxSpool, Record

log = logging.getLogger(__name__)


class FencedOutbox(SqlOutbox):
    """:class:`SqlOutbox` whose transactions check in ``epoch`` of the notifier's pseudo-shard."""

    def __init__(self, db: Database, spool_dir: Path, fencing: Fencing, epoch: int,
                 on_refused: Callable[[Fenced], None], *, site: str = "", **kwargs: float) -> None:
        super().__init__(db, spool_dir, site=site, **kwargs)  # type: ignore[arg-type]
        self.fencing = fencing
        self.epoch = epoch
        self.on_refused = on_refused
        self.refused = 0  # changes dropped because the database refused their epoch
        self.stale = False  # refused once: this tenure writes and delivers nothing more
        self.discarded = 0  # changes of an earlier tenure's spool, discarded at open

    async def open(self) -> None:
        spool = await asyncio.to_thread(OutboxSpool, self.spool_dir, segment_bytes=self.segment_bytes)
        try:
            while (oldest := await asyncio.to_thread(spool.oldest)) is not None:
                self.discarded += len(oldest[1])
                await asyncio.to_thread(spool.discard, oldest[0])
        finally:
            spool.close()
        if self.discarded:
            log.warning("notify outbox: %d changes spooled under an earlier notifier epoch discarded "
                        "(this member now holds epoch %d)", self.discarded, self.epoch)
        await super().open()

    async def due(self, receiver: str, now: datetime, limit: int) -> Sequence[Pending]:
        """Nothing once stale: a message whose put was refused is in memory (the put returned),
        and must not be sent; the new holder sends what is in the table."""
        return [] if self.stale else await super().due(receiver, now, limit)

    async def pending(self, receiver: str, limit: int) -> Sequence[Pending]:
        return [] if self.stale else await super().pending(receiver, limit)

    async def _commit(self, records: list[Record]) -> None:
        if self.stale:
            self.refused += len(records)
            return
        try:
            async with self.fencing.fenced({NOTIFIER_SHARD: self.epoch}) as conn:
                await self._apply(conn, records)
        except Fenced as exc:
            # Not a database failure: never spooled, never retried. Dropped, and the member
            # stands down from the notifier (the new holder works from the table).
            self.stale = True
            self.refused += len(records)
            log.error("notify outbox: %d changes refused: %s", len(records), exc)
            self.on_refused(exc)
