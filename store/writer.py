"""The store writer: an asyncio task that moves engine events from a bus subscription to the store."""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from types import TracebackType
from typing import Protocol, TypeVar

import asyncpg
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError

from poller.bus import Subscription
from poller.events import (
    CheckResult,
    Event,
    InterfaceChange,
    Reboot,
    SnmpAgentChange,
    SnmpFailure,
    SnmpPoll,
    Transition,
)
from store.dburl import cause
from store.spool import Spool, SpoolBatch
from store.spool_records import PollRecord, SnmpEventIn
from store.writer_spool import WriterSpool

log = logging.getLogger(__name__)
_T = TypeVar("_T")


class HistorySink(Protocol):
    """What the writer needs of a store (``HistoryStore`` and, later, a PostgreSQL one)."""

    async def write_checks(self, results: Sequence[CheckResult]) -> None: ...

    async def write_transition(self, transition: Transition) -> None: ...

    async def write_transitions(self, transitions: Sequence[Transition]) -> None: ...

    async def write_snmp_polls(self, polls: Sequence[PollRecord]) -> None: ...

    async def write_snmp_events(self, events: Sequence[SnmpEventIn]) -> None: ...


def _is_transient(exc: Exception) -> bool:
    """Whether retrying the same write later may succeed (locked, full, unreachable database).

    Rows the database refuses (constraint, bad value) or cannot even bind (a naive datetime)
    would fail forever and block everything queued behind them, so they are dropped.
    """
    if isinstance(exc, IntegrityError | DataError):
        return False
    if isinstance(exc, asyncpg.PostgresError):  # raised by COPY, which bypasses SQLAlchemy
        if isinstance(exc, asyncpg.CheckViolationError):
            return "no partition" in str(exc)  # dropped by retention meanwhile: made again on retry
        # A value or a row the database refuses (22, 23) would fail for ever; anything else
        # (connection, resources, shutdown, locks, a permission or table an operator can fix)
        # may pass later, so the rows wait, in memory and then in the spool.
        return (exc.sqlstate or "")[:2] not in {"22", "23"}
    return isinstance(exc, DBAPIError | OSError | TimeoutError | asyncpg.InterfaceError)


class StoreWriter:
    """Consumes ``subscription`` in its own task and writes to ``store``.

    Transitions are written in event order, in bursts of one transaction each; so are SNMP
    events (reboots, interface and agent changes), after them. Samples are batched: check
    results, and SNMP polls weighed by their rows (one per interface plus one), are written when
    ``batch_size`` rows of a kind are pending or when the oldest has waited ``flush_interval``
    seconds. A failed write is logged, counted and retried with exponential backoff.

    While the database fails, rows wait in memory. With a ``spool``, once they have waited
    ``spool_after`` seconds or the pending checks pass ``max_pending``, they move to the
    on-disk spool (fsync'd), and so does everything after them until the spool has been
    replayed, oldest first, into the database that came back; a stop with the database
    still down spools what is pending, for the next start to replay. The spool drops
    checks past its size cap (counted); transitions are never dropped. Without a spool,
    the oldest pending checks past ``max_pending`` are dropped and counted. Pending
    transitions are not bounded in memory: their number is bounded by the devices and the
    clock, and they are what outage history is made of. SNMP polls are samples like checks
    (their own ``max_pending`` rows in memory, dropped and counted in ``dropped_polls``);
    SNMP events are never dropped, like transitions.
    """

    SPOOL_RETRY_S = 5.0  # how often appending to a full spool is tried again
    PAUSE_S = 1.0  # how often a writer without the database's lease looks whether it has it again

    def __init__(self, store: HistorySink, subscription: Subscription, *,
                 flush_interval: float = 1.0, batch_size: int = 5000,
                 max_pending: int = 200_000, retry_delay: float = 0.5,
                 max_retry_delay: float = 30.0, stop_attempts: int = 3,
                 transition_burst: int = 1000, spool: Spool | None = None,
                 spool_after: float = 5.0, may_write: Callable[[], bool] = lambda: True,
                 stamp: Callable[[Transition], Transition] | None = None) -> None:
        self.store = store
        # False while this poller does not hold the database's lease (store/lease.py): then
        # nothing is written, and rows wait as they do while the database fails.
        self.may_write = may_write
        # Applied to each transition as it is taken, before it may wait or be spooled (a cluster
        # member: the epoch it was observed under, wardtui/cluster.py).
        self.stamp = stamp
        self.subscription = subscription
        self.flush_interval = flush_interval
        self.batch_size = batch_size
        self.max_pending = max(max_pending, batch_size)
        self.retry_delay = retry_delay
        self.max_retry_delay = max_retry_delay
        self.stop_attempts = stop_attempts
        self.transition_burst = transition_burst
        self._spool = WriterSpool(spool)  # spilling, the spool-full state, replaying
        self.spool_after = spool_after
        self.written_checks = 0
        self.written_transitions = 0
        self.written_polls = 0
        self.written_snmp_events = 0
        self.failed_writes = 0  # write attempts that raised
        self.dropped = 0  # rows given up on: refused, over max_pending, or unwritable at stop
        self.dropped_polls = 0  # SNMP polls given up on (in memory; the spool counts its own)
        self.lost_at_stop = 0  # of those, rows (and polls) still unwritten when the writer had to stop
        self.last_error: str | None = None
        self._checks: list[CheckResult] = []
        self._transitions: deque[Transition] = deque()
        self._polls: list[PollRecord] = []  # answered and failed SNMP polls (samples)
        self._poll_rows = 0  # rows of the pending polls (see _weight)
        self._snmp_events: deque[SnmpEventIn] = deque()
        self._flush_at: float | None = None  # loop time by which pending checks are written
        self._retry_at = 0.0
        self._delay = retry_delay
        self._streak = 0  # consecutive failed attempts, for logging the recovery
        self._failing_since: float | None = None  # loop time of the streak's first failure
        self._task: asyncio.Task[None] | None = None

    @property
    def spool(self) -> Spool | None:
        return self._spool.spool

    @property
    def spool_full(self) -> str | None:
        """Why the last append to the spool failed (its disk is full), until one passes."""
        return self._spool.full

    @property
    def spooled_rows(self) -> int:
        """Rows moved to the spool (cumulative)."""
        return self._spool.spooled_rows

    @property
    def replayed_rows(self) -> int:
        """Rows written to the database from the spool (cumulative)."""
        return self._spool.replayed_rows

    @property
    def queue_depth(self) -> int:
        """Events waiting in the subscription plus rows waiting to be written (spool included)."""
        spooled = self.spool.rows if self.spool is not None else 0
        return (len(self.subscription) + len(self._checks) + len(self._transitions) + len(self._polls)
                + len(self._snmp_events) + spooled)

    @property
    def dropped_samples(self) -> int:
        """Rows lost for good: check results (and SNMP polls) over the in-memory bound (no usable
        spool) or past the spool cap, rows the database refused, rows still unwritable when a
        stop gave up."""
        return self.dropped + self.dropped_snmp_polls + (self.spool.dropped_checks if self.spool else 0)

    @property
    def dropped_snmp_polls(self) -> int:
        """SNMP polls lost for good, in memory or past the spool cap."""
        return self.dropped_polls + (self.spool.dropped_polls if self.spool is not None else 0)

    def gauges(self) -> dict[str, float]:
        """The writer's health for the engine's gauges."""
        spool = self.spool
        return {
            "store_spool_rows": float(spool.rows if spool else 0),
            "store_spool_bytes": float(spool.bytes if spool else 0),
            "store_samples_dropped": float(self.dropped_samples),
            "store_failing": 1.0 if self._streak else 0.0,
            "store_spool_full": 1.0 if self.spool_full is not None else 0.0,
            "store_spool_damaged": float(spool.damaged_records if spool else 0),
            "store_snmp_pending": float(len(self._polls) + len(self._snmp_events)),
            "store_snmp_dropped": float(self.dropped_snmp_polls),
        }

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def start(self) -> asyncio.Task[None]:
        """Start the writer task on the running loop (once)."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="wardtui-store-writer")
            self._task.add_done_callback(_log_crash)
        return self._task

    async def stop(self) -> None:
        """Close the subscription and return once everything buffered has been written
        (or, if the database keeps failing, given up on after ``stop_attempts``)."""
        self.subscription.close()
        if self._task is None:
            await self._run()  # never started: drain and write inline
        else:
            await self._task

    async def aclose(self) -> None:
        await self.stop()

    async def __aenter__(self) -> StoreWriter:
        self.start()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.stop()

    # -- the task -------------------------------------------------------------------------

    async def _run(self) -> None:
        sub = self.subscription
        while not (sub.closed and len(sub) == 0):
            self._accept(await self._next_events())
            await self._write_due()
        await self._final_write()

    async def _next_events(self) -> list[Event]:
        timeout = self._wait_timeout()
        if timeout is None:
            return await self.subscription.get_batch(self.batch_size)
        if timeout <= 0:
            return self.subscription.drain(self.batch_size)
        try:
            # Cancelling get_batch is safe: it only waits before it takes anything.
            async with asyncio.timeout(timeout):
                return await self.subscription.get_batch(self.batch_size)
        except TimeoutError:
            return []

    def _wait_timeout(self) -> float | None:
        """Seconds until the next write is due; with nothing pending, one flush interval, so
        samples held back by a subscription's ``sample_batch`` are picked up on time."""
        replay = self._spool.pending
        if not (self._transitions or self._snmp_events or self._checks or self._polls or replay):
            return self.flush_interval
        now = asyncio.get_running_loop().time()
        if now < self._retry_at:
            return self._retry_at - now
        if replay:
            return 0.0
        if self._transitions or self._snmp_events or self._batch_full():
            return 0.0
        return max(0.0, (self._flush_at or now) - now)

    def _accept(self, events: list[Event]) -> None:
        for event in events:
            if isinstance(event, CheckResult):
                self._checks.append(event)
            elif isinstance(event, Transition):
                self._transitions.append(event if self.stamp is None else self.stamp(event))
            elif isinstance(event, SnmpPoll | SnmpFailure):
                self._polls.append(event)
                self._poll_rows += _weight(event)
            elif isinstance(event, Reboot | InterfaceChange | SnmpAgentChange):
                self._snmp_events.append(event)
            # FlapChange and Gauges are not stored yet.
        if (self._checks or self._polls) and self._flush_at is None:
            self._flush_at = asyncio.get_running_loop().time() + self.flush_interval
        if not self._spool.usable or self._spool.full is not None:
            self._bound_memory()

    def _batch_full(self) -> bool:
        return len(self._checks) >= self.batch_size or self._poll_rows >= self.batch_size

    def _bound_memory(self) -> None:
        """Without a usable spool (or with a full one), pending checks past ``max_pending`` are
        dropped, oldest first;
        so are pending SNMP polls past ``max_pending`` rows."""
        overflow = len(self._checks) - self.max_pending
        if overflow > 0:
            del self._checks[:overflow]
            self.dropped += overflow
            log.warning("history writer: dropped %d oldest check results (database behind)",
                        overflow)
        polls = 0
        while self._poll_rows > self.max_pending and polls < len(self._polls):
            self._poll_rows -= _weight(self._polls[polls])
            polls += 1
        if polls:
            del self._polls[:polls]
            self.dropped_polls += polls
            log.warning("history writer: dropped %d oldest SNMP polls (database behind)", polls)

    async def _write_due(self) -> None:
        # The spool first: its rows are older than any in memory. Only once it is written do
        # rows in memory go to the database; while it cannot be, they follow it to the spool.
        now = asyncio.get_running_loop().time()
        if not self.may_write():
            self._paused(now)
        elif now >= self._retry_at and await self._replay() and await self._write_transitions() \
                and await self._write_snmp_events() and (self._checks or self._polls) \
                and (self._batch_full() or now >= (self._flush_at or now)):
            await self._write_samples()
        if self._should_spool():
            await self._spill()
        elif self._spool.full is not None and not self._pending() and not self._spool.pending:
            # Everything is in the database: nothing is at risk any more (the disk may still be full).
            self._spool.all_written()

    def _paused(self, now: float) -> None:
        """No lease: write nothing, and look again in :attr:`PAUSE_S`; pending rows count as
        waiting on a failing database (after ``spool_after`` seconds they move to the spool)."""
        if self._failing_since is None:
            self._failing_since = now
            self.last_error = "the database's poller lease is not held"
        self._retry_at = now + self.PAUSE_S

    async def _write_samples(self) -> bool:
        return await self._write_checks() and await self._write_polls()

    def _pending(self) -> bool:
        return bool(self._checks or self._transitions or self._polls or self._snmp_events)

    async def _final_write(self) -> None:
        # Without the lease the rows go to the spool (or are given up) without a write.
        for attempt in range(self.stop_attempts if self.may_write() else 0):
            if attempt:
                await asyncio.sleep(min(self._delay, 1.0))
            if await self._replay() and await self._write_transitions() \
                    and await self._write_snmp_events() and await self._write_samples():
                return
        if self._spool.usable and self.spool is not None:
            if self._pending() and not await self._spill():
                self._give_up_pending()
                return
            log.warning("history writer stopped with the database unavailable: %d rows kept in the "
                        "spool %s, written at the next start (%s)", self.spool.rows, self.spool.directory,
                        self.last_error)
            return
        self._give_up_pending()

    def spool_what_is_left(self) -> int:
        """After a stop that could not finish (the database hangs and the caller stopped
        waiting for this writer's task): move what is still in memory and in the subscription
        to the spool, synchronously, for the next start; return how many rows could not be
        kept (counted as lost at stop). A write the database may have committed meanwhile is
        spooled too: written again, it is stored once (rows have keys)."""
        while len(self.subscription):
            self._accept(self.subscription.drain(self.batch_size))
        if not self._pending():
            return 0
        if self._spool.usable:
            error = self._spool.append_now(list(self._transitions), self._checks, self._polls,
                                           list(self._snmp_events))
            if error is None:
                self._clear_pending()
                return 0  # what the spool's cap dropped is counted there (dropped_samples)
            self.last_error = error
        return self._give_up_pending()

    def _give_up_pending(self) -> int:
        """The stop gives up what is still pending: counted as dropped and lost at stop."""
        rows = len(self._checks) + len(self._transitions) + len(self._snmp_events)
        lost = rows + len(self._polls)
        self.lost_at_stop += lost
        self.dropped += rows
        self.dropped_polls += len(self._polls)
        self._clear_pending()
        log.error("history writer stopped with %d rows unwritten: %s", lost, self.last_error)
        return lost

    def _clear_pending(self) -> None:
        """Forget every row waiting in memory (written, spooled or given up)."""
        self._transitions.clear()
        self._snmp_events.clear()
        self._checks = []
        self._polls = []
        self._poll_rows = 0
        self._flush_at = None

    # -- the spool (what it is doing: store/writer_spool.py) ---------------------------------

    def _should_spool(self) -> bool:
        """Rows go to the spool while older rows are there (order) or once the database has
        failed for ``spool_after`` seconds or let too many checks pile up."""
        if not self._spool.usable or not self._pending():
            return False
        if self._spool.waiting_for_room(asyncio.get_running_loop().time()):
            return False
        if self._spool.pending:
            return True
        if self._failing_since is None:
            return False
        waited = asyncio.get_running_loop().time() - self._failing_since
        return (waited >= self.spool_after or len(self._checks) >= self.max_pending
                or self._poll_rows >= self.max_pending)

    async def _spill(self) -> bool:
        """Move every pending row to the spool, transitions and SNMP events first, fsync'd;
        False if it failed: the rows stay in memory (bounded, what is dropped counted).

        A spool whose disk is full stays the spool: what it holds is older than the rows in
        memory and is still written first, and appending is tried again every
        ``SPOOL_RETRY_S`` seconds. Meanwhile the history is at risk (``store_spool_full``)."""
        if not await self._spool.spill(list(self._transitions), self._checks, self._polls,
                                       list(self._snmp_events), retry_s=self.SPOOL_RETRY_S,
                                       max_pending=self.max_pending):
            self._bound_memory()
            return False
        self._clear_pending()
        return True

    async def replay_spool(self) -> bool:
        """Write what the spool holds now (a start does this before it reads open outages);
        False if the database failed before the end."""
        return await self._replay()

    async def _replay(self) -> bool:
        """Write the spool to the database, oldest first; False if the database failed.

        Within a batch, transitions, then SNMP events, then checks, then SNMP polls are written
        (a retried batch skips the steps already written). A row the database refuses costs
        only itself: transitions and events are retried one by one.
        """
        return await self._spool.replay(self.batch_size, (
            self._replay_transitions, self._replay_events, self._replay_checks, self._replay_polls))

    async def _replay_transitions(self, batch: SpoolBatch) -> bool:
        return await self._write_in_order(deque(batch.transitions), self.store.write_transitions,
                                          "spooled transitions", self._count_transitions,
                                          burst=len(batch.transitions))

    async def _replay_events(self, batch: SpoolBatch) -> bool:
        if not batch.events:  # (a sink without SNMP, as in some tests, is never asked)
            return True
        return await self._write_in_order(deque(batch.events), self.store.write_snmp_events,
                                          "spooled SNMP events", self._count_snmp_events,
                                          burst=len(batch.events))

    async def _replay_checks(self, batch: SpoolBatch) -> bool:
        if batch.checks:
            try:
                await self.store.write_checks(batch.checks)
            except Exception as exc:
                if self._failed(exc, len(batch.checks), "spooled check results"):
                    return False
            else:
                self._succeeded()
                self.written_checks += len(batch.checks)
        return True

    async def _replay_polls(self, batch: SpoolBatch) -> bool:
        if batch.polls:
            try:
                await self.store.write_snmp_polls(batch.polls)
            except Exception as exc:
                if self._failed(exc, len(batch.polls), "spooled SNMP polls", polls=True):
                    return False
            else:
                self._succeeded()
                self.written_polls += len(batch.polls)
        return True

    # -- writes ---------------------------------------------------------------------------

    def _count_transitions(self, n: int) -> None:
        self.written_transitions += n

    def _count_snmp_events(self, n: int) -> None:
        self.written_snmp_events += n

    async def _write_transitions(self) -> bool:
        """Write pending transitions in order, a burst per transaction; False if the database
        failed (retry later). A burst the database refuses is retried one by one, so one bad
        row costs only itself."""
        return await self._write_in_order(self._transitions, self.store.write_transitions, "transitions",
                                          self._count_transitions)

    async def _write_snmp_events(self) -> bool:
        """Write pending SNMP events in order, as transitions are written."""
        if not self._snmp_events:
            return True
        return await self._write_in_order(self._snmp_events, self.store.write_snmp_events, "SNMP events",
                                          self._count_snmp_events)

    async def _write_in_order(self, queue: deque[_T], write: Callable[[list[_T]], Awaitable[None]],
                              what: str, count: Callable[[int], None], burst: int = 0) -> bool:
        """Write ``queue`` in order, ``burst`` rows (default ``transition_burst``) per call, taking
        off what is written or refused; False if the database failed (the rest stays queued)."""
        size = max(1, burst or self.transition_burst)
        while queue:
            rows = list(itertools.islice(queue, size))
            try:
                await write(rows)
            except Exception as exc:
                if _is_transient(exc):
                    self._failed(exc, len(rows), what)
                    return False
                if not await self._write_one_by_one(queue, rows, write, what, count):
                    return False
                continue
            count(len(rows))
            self._succeeded()
            for _ in rows:
                queue.popleft()
        return True

    async def _write_one_by_one(self, queue: deque[_T], rows: list[_T],
                                write: Callable[[list[_T]], Awaitable[None]], what: str,
                                count: Callable[[int], None]) -> bool:
        for row in rows:
            try:
                await write([row])
            except Exception as exc:
                if self._failed(exc, 1, what.removesuffix("s")):
                    return False
            else:
                count(1)
                self._succeeded()
            queue.popleft()
        return True

    async def _write_checks(self) -> bool:
        """Write pending checks in batches; False if the database failed (retry later)."""
        while self._checks:
            batch = self._checks[: self.batch_size]
            try:
                await self.store.write_checks(batch)
            except Exception as exc:
                if self._failed(exc, len(batch), "check results"):
                    return False
            else:
                self.written_checks += len(batch)
                self._succeeded()
            del self._checks[: len(batch)]
        self._flush_at = None
        return True

    async def _write_polls(self) -> bool:
        """Write pending SNMP polls, ``batch_size`` rows (at least one poll) per transaction;
        False if the database failed (retry later)."""
        while self._polls:
            n, rows = 0, 0
            while n < len(self._polls) and (n == 0 or rows + _weight(self._polls[n]) <= self.batch_size):
                rows += _weight(self._polls[n])
                n += 1
            batch = self._polls[:n]
            try:
                await self.store.write_snmp_polls(batch)
            except Exception as exc:
                if self._failed(exc, n, "SNMP polls", polls=True):
                    return False
            else:
                self.written_polls += n
                self._succeeded()
            del self._polls[:n]
            self._poll_rows -= rows
        self._flush_at = None
        return True

    def _failed(self, exc: Exception, rows: int, what: str, *, polls: bool = False) -> bool:
        """Count and log a failed write; True if it should be retried later. Refused rows are
        counted as dropped (in ``dropped_polls`` when they are SNMP polls)."""
        self.failed_writes += 1
        self.last_error = f"{type(exc).__name__}: {exc}"
        if not _is_transient(exc):
            if polls:
                self.dropped_polls += rows
            else:
                self.dropped += rows
            log.error("history writer: dropped %d %s the database refused", rows, what,
                      exc_info=exc)
            return False
        if self._streak == 0:
            log.warning("history writer: database write failed, will retry: %s", cause(exc))
            self._failing_since = asyncio.get_running_loop().time()
        self._streak += 1
        self._retry_at = asyncio.get_running_loop().time() + self._delay
        self._delay = min(self._delay * 2, self.max_retry_delay)
        return True

    def _succeeded(self) -> None:
        if self._streak:
            log.warning("history writer: writes resumed after %d failed attempts", self._streak)
        self._streak = 0
        self._failing_since = None
        self._retry_at = 0.0
        self._delay = self.retry_delay


def _weight(poll: PollRecord) -> int:
    """Rows of one SNMP poll: its system row and one per interface (what batches and bounds count)."""
    return 1 + len(poll.interfaces) if isinstance(poll, SnmpPoll) else 1


def _log_crash(task: asyncio.Task[None]) -> None:
    # Database errors are handled inside the task; anything else is a bug worth a traceback.
    if not task.cancelled() and task.exception() is not None:
        log.error("history writer crashed", exc_info=task.exception())
