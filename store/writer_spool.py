"""The store writer's spool side: spilling rows to disk, the spool-full state, replaying oldest first.

``StoreWriter`` decides when (the database has failed long enough, or older rows are on disk)
and owns the rows in memory and the writes; this class owns what the spool is doing: whether
it is still usable, whether its disk is full (and when to try again), how far a batch's replay
got, and the counts of rows moved each way.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence

from poller.events import CheckResult, Transition
from store.spool import Spool, SpoolBatch, SpoolError
from store.spool_records import PollRecord, SnmpEventIn

log = logging.getLogger("store.writer")  # the writer's log: operators and tests know its messages

ReplayStep = Callable[[SpoolBatch], Awaitable[bool]]


class WriterSpool:
    """A writer's use of its (optional) spool.

    A spool that fails (unreadable record, a commit that cannot be recorded, a file moved away)
    is given up for the run: what it holds stays on disk. A spool whose disk is full stays the
    spool (``full`` says why), and appending is tried again after ``retry_s`` seconds.
    """

    def __init__(self, spool: Spool | None) -> None:
        self.spool = spool
        self.broken = False  # the spool failed: not used again in this run (logged)
        self.full: str | None = None  # why the last append failed (disk full), until one passes
        self.spooled_rows = 0  # rows moved to the spool (cumulative)
        self.replayed_rows = 0  # rows written to the database from the spool (cumulative)
        self._retry_at = 0.0  # loop time before which a full spool is not appended to again
        # (spool batch, how many of its replay steps are in the database): a retried batch
        # writes only what its failed attempt did not (see replay)
        self._replayed: tuple[tuple[object, int], int] | None = None

    @property
    def usable(self) -> bool:
        return self.spool is not None and not self.broken

    @property
    def pending(self) -> bool:
        """Whether a usable spool holds rows not yet replayed."""
        return self.usable and self.spool is not None and not self.spool.empty

    @property
    def rows(self) -> int:
        return self.spool.rows if self.spool is not None else 0

    def waiting_for_room(self, now: float) -> bool:
        """Whether the disk was full and it is too early to try appending again."""
        return self.full is not None and now < self._retry_at

    def give_up(self, why: str) -> None:
        """The spool failed (unreadable record, disk full, file moved away): stop using it.

        What it holds stays on disk for an operator; new rows wait in memory, bounded as
        without a spool, and are written directly once the database answers.
        """
        self.broken = True
        directory = self.spool.directory if self.spool is not None else "?"
        log.error("history writer: the spool %s failed (%s); it is no longer used and what it "
                  "holds stays there; new rows are kept in memory", directory, why)

    def all_written(self) -> None:
        """Everything that waited is in the database: a full spool puts nothing at risk any more."""
        if self.full is not None:
            log.warning("history writer: everything that waited is written; the spool %s will be "
                        "tried again if the database fails", self.spool.directory if self.spool else "?")
            self.full = None

    async def spill(self, transitions: list[Transition], checks: list[CheckResult],
                    polls: list[PollRecord], events: list[SnmpEventIn], *,
                    retry_s: float, max_pending: int) -> bool:
        """Append the rows, fsync'd, off the loop; False if it failed (the spool is as it was:
        all or nothing) and the rows must stay in memory.

        A full disk sets ``full`` (logged once: history at risk) and the next attempt waits
        ``retry_s`` seconds; a spool error gives the spool up."""
        assert self.spool is not None
        try:
            await asyncio.to_thread(self.spool.append, transitions, checks, polls, events)
        except SpoolError as exc:
            self.give_up(f"cannot append: {exc}")
            return False
        except OSError as exc:
            why = exc.strerror or str(exc)
            if self.full is None:
                log.error("history writer: history at risk: the spool %s is full (%s); rows wait in "
                          "memory (up to %d checks, then the oldest are dropped and counted) and "
                          "are spooled or written when there is room", self.spool.directory, why,
                          max_pending)
            self.full = why
            self._retry_at = asyncio.get_running_loop().time() + retry_s
            return False
        if self.full is not None:
            log.warning("history writer: the spool %s takes rows again", self.spool.directory)
            self.full = None
        self.spooled_rows += len(transitions) + len(checks) + len(polls) + len(events)
        return True

    def append_now(self, transitions: list[Transition], checks: list[CheckResult],
                   polls: list[PollRecord], events: list[SnmpEventIn]) -> str | None:
        """Append synchronously (a stop that could not finish); the error, or None once kept.
        What the spool's cap drops is counted by the spool."""
        assert self.spool is not None
        rows = len(transitions) + len(checks) + len(polls) + len(events)
        try:
            dropped = self.spool.append(transitions, checks, polls, events)
        except (OSError, SpoolError) as exc:
            return f"spool: {exc}"
        self.spooled_rows += rows - dropped
        return None

    async def replay(self, batch_size: int, steps: Sequence[ReplayStep]) -> bool:
        """Write the spool to the database, oldest first, each batch through ``steps`` in order;
        False if a step failed (the database: try again later).

        Each step is remembered once done, so a batch retried after a later step failed does not
        write the earlier ones twice. A crash between a batch's write and its commit in the
        spool writes it again, which adds nothing: the database recognises rows it holds by
        their keys (a device and a time). A spool that cannot be read or committed is given up.
        """
        spool = self.spool
        if spool is None or spool.empty or self.broken:
            return True
        batches = spool.batches(batch_size)
        while True:
            try:
                batch: SpoolBatch | None = await asyncio.to_thread(next, batches, None)
            except (OSError, SpoolError) as exc:
                self.give_up(f"cannot read: {exc}")
                return True
            if batch is None:
                return True
            key = (batch.segment, batch.start)
            done = self._replayed[1] if self._replayed and self._replayed[0] == key else 0
            for step, write in enumerate(steps, 1):
                if step > done:
                    if not await write(batch):
                        return False
                    self._replayed = (key, step)
            self.replayed_rows += batch.rows
            try:
                await asyncio.to_thread(spool.commit, batch)
            except (OSError, SpoolError) as exc:
                self.give_up(f"cannot record replay progress: {exc}")
                return True
            self._replayed = None
            if spool.empty:
                log.warning("history writer: spool replayed (%d rows in all)", self.replayed_rows)
