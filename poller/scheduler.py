"""A scheduler with no backlog by construction.

Every device has one slot with its own next-due time on a heap. When a slot falls due
and its previous check still runs, this check is skipped and counted; when the
scheduler itself is late by a whole interval or more, the missed checks are skipped
and counted too. Nothing is ever queued, so work and memory are bounded by the number
of devices whatever happens to them.
"""

from __future__ import annotations

import asyncio
import heapq
import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(slots=True, eq=False)
class Slot:
    """One device's place in the schedule."""

    key: int
    interval: float
    due: float = 0.0
    busy: bool = False
    removed: bool = False
    skipped: int = 0


Dispatch = Callable[[Slot, float], None]
"""Called with the slot and its due time (monotonic); must mark ``slot.busy`` while it runs."""


@dataclass(slots=True)
class Scheduler:
    dispatch: Dispatch
    clock: Callable[[], float] = time.monotonic
    granularity: float = 0.01  # seconds; wake-ups closer than this are batched together
    skipped_late: int = 0  # the scheduler itself was a whole interval or more behind
    skipped_busy: int = 0  # the device's previous check (e.g. its confirmation) still ran
    dispatched: int = 0
    _heap: list[tuple[float, int, Slot]] = field(default_factory=list)
    _seq: int = 0
    _waiter: asyncio.Future[None] | None = None
    _stopping: bool = False

    def add(self, slot: Slot, first_due: float) -> None:
        slot.due = first_due
        self._push(slot)
        self._wake()

    def add_spread(self, slots: list[Slot], start: float | None = None) -> None:
        """Add slots with due times spread evenly over each one's interval, so probes never burst."""
        start = self.clock() if start is None else start
        by_interval: dict[float, list[Slot]] = {}
        for slot in slots:
            by_interval.setdefault(slot.interval, []).append(slot)
        for interval, group in by_interval.items():
            step = interval / len(group)
            for i, slot in enumerate(group):
                self.add(slot, start + i * step)

    def _push(self, slot: Slot) -> None:
        self._seq += 1
        heapq.heappush(self._heap, (slot.due, self._seq, slot))

    @property
    def skipped(self) -> int:
        """All checks skipped, late or busy: none of them was queued."""
        return self.skipped_late + self.skipped_busy

    def __len__(self) -> int:
        return len(self._heap)

    def oldest_overdue(self) -> float:
        """Seconds the most overdue slot has been waiting (0 when none is overdue)."""
        if not self._heap:
            return 0.0
        return max(0.0, self.clock() - self._heap[0][0])

    def run_due(self) -> float | None:
        """Dispatch everything due now; return the next due time, or None when empty."""
        heap = self._heap
        now = self.clock()
        while heap and heap[0][0] <= now:
            due, _, slot = heapq.heappop(heap)
            if slot.removed:
                continue
            behind = now - due
            if behind >= slot.interval:
                # The scheduler was late by whole intervals: those checks are gone, not queued.
                missed = int(behind // slot.interval)
                self.skipped_late += missed
                slot.skipped += missed
                due += missed * slot.interval
            if slot.busy:
                self.skipped_busy += 1
                slot.skipped += 1
            else:
                self.dispatched += 1
                self.dispatch(slot, due)
            slot.due = due + slot.interval
            self._push(slot)
        return heap[0][0] if heap else None

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def run(self) -> None:
        """Dispatch checks as they fall due until :meth:`stop`."""
        loop = asyncio.get_running_loop()
        self._stopping = False
        while not self._stopping:
            next_due = self.run_due()
            delay = 3600.0 if next_due is None else max(self.granularity, next_due - self.clock())
            self._waiter = loop.create_future()
            timer = loop.call_later(delay, self._wake)
            try:
                await self._waiter
            finally:
                timer.cancel()
                self._waiter = None

    def stop(self) -> None:
        self._stopping = True
        self._wake()
