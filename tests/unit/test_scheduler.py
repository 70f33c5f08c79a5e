"""Scheduler: probes are spread out, never queued, and the schedule's memory never grows."""

from __future__ import annotations

import random

import pytest

from poller.scheduler import Scheduler, Slot


class FakeClock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class Harness:
    """A scheduler on a fake clock whose dispatch records (key, due) and may leave slots busy."""

    def __init__(self, now: float = 1000.0, stay_busy: bool = False) -> None:
        self.clock = FakeClock(now)
        self.calls: list[tuple[int, float]] = []
        self.stay_busy = stay_busy
        self.scheduler = Scheduler(self.dispatch, clock=self.clock)

    def dispatch(self, slot: Slot, due: float) -> None:
        self.calls.append((slot.key, due))
        slot.busy = self.stay_busy

    def at(self, t: float) -> list[tuple[int, float]]:
        """Move the clock to ``t``, run what is due, return what was dispatched."""
        self.clock.now = t
        before = len(self.calls)
        self.scheduler.run_due()
        return self.calls[before:]


def test_due_times_spread_evenly_over_the_interval() -> None:
    h = Harness()
    slots = [Slot(i, 2.0) for i in range(8)] + [Slot(100 + i, 5.0) for i in range(5)]
    h.scheduler.add_spread(slots, start=1000.0)
    two = sorted(s.due for s in slots if s.interval == 2.0)
    five = sorted(s.due for s in slots if s.interval == 5.0)
    assert two == pytest.approx([1000.0 + 0.25 * i for i in range(8)])
    assert five == pytest.approx([1000.0 + 1.0 * i for i in range(5)])


def test_no_burst_when_stepping_through_several_intervals() -> None:
    h = Harness()
    n, interval = 100, 1.0
    h.scheduler.add_spread([Slot(i, interval) for i in range(n)], start=1000.0)
    per_step: list[int] = []
    step = interval / n
    for k in range(3 * n):
        per_step.append(len(h.at(1000.0 + k * step + step / 2)))
    assert max(per_step) == 1  # one check per 1/n of the interval, never a burst
    assert len(h.calls) == 3 * n
    counts = {key: 0 for key in range(n)}
    for key, _ in h.calls:
        counts[key] += 1
    assert set(counts.values()) == {3}
    assert h.scheduler.skipped == 0


def test_due_times_passed_to_dispatch_follow_the_grid() -> None:
    h = Harness()
    slot = Slot(0, 0.5)
    h.scheduler.add(slot, 1000.0)
    for t in (1000.01, 1000.52, 1001.03, 1001.6):
        h.at(t)
    assert [due for _, due in h.calls] == pytest.approx([1000.0, 1000.5, 1001.0, 1001.5])


def test_busy_slot_is_skipped_and_counted_not_queued() -> None:
    h = Harness(stay_busy=True)
    slot = Slot(7, 1.0)
    h.scheduler.add(slot, 1000.0)
    assert h.at(1000.0) == [(7, 1000.0)]
    assert slot.busy
    assert h.at(1001.0) == []  # still busy: skipped
    assert h.at(1002.0) == []
    assert (h.scheduler.skipped, slot.skipped) == (2, 2)
    assert (h.scheduler.skipped_busy, h.scheduler.skipped_late) == (2, 0)
    # The check finishes between due times: nothing is replayed for the skipped ones...
    slot.busy = False
    h.stay_busy = False
    assert h.at(1002.5) == []
    assert h.at(1002.99) == []
    # ...and exactly one dispatch happens at the next due time.
    assert h.at(1003.0) == [(7, 1003.0)]
    assert h.at(1003.0) == []
    assert h.at(1003.9) == []
    assert h.scheduler.skipped == 2
    assert h.scheduler.dispatched == 2


@pytest.mark.parametrize("k", [1, 3, 50])
def test_late_scheduler_skips_missed_checks_and_dispatches_once(k: int) -> None:
    h = Harness()
    slot = Slot(1, 1.0)
    h.scheduler.add(slot, 1000.0)
    assert len(h.at(1000.0)) == 1
    # The event loop was blocked: we come back k intervals (and a bit) after the next due time.
    late = h.at(1001.0 + k + 0.4)
    assert late == [(1, pytest.approx(1001.0 + k))]
    assert h.scheduler.skipped == k and slot.skipped == k
    assert (h.scheduler.skipped_late, h.scheduler.skipped_busy) == (k, 0)  # overload, not a busy device
    assert slot.due == pytest.approx(1002.0 + k)
    assert h.at(1001.0 + k + 0.9) == []
    assert len(h.at(1002.0 + k)) == 1


def test_late_and_busy_together_dispatch_nothing_and_count_everything() -> None:
    h = Harness(stay_busy=True)
    slot = Slot(1, 1.0)
    h.scheduler.add(slot, 1000.0)
    h.at(1000.0)
    assert h.at(1004.5) == []  # 3 missed while late + the one due now while busy
    assert h.scheduler.skipped == 4
    assert (h.scheduler.skipped_late, h.scheduler.skipped_busy) == (3, 1)


def test_oldest_overdue() -> None:
    h = Harness()
    h.scheduler.add(Slot(0, 1.0), 1000.0)
    assert h.scheduler.oldest_overdue() == 0.0
    h.clock.now = 1000.25
    assert h.scheduler.oldest_overdue() == pytest.approx(0.25)
    h.scheduler.run_due()
    assert h.scheduler.oldest_overdue() == 0.0


def test_memory_bounded_whatever_happens() -> None:
    """The heap holds exactly one entry per slot through busy slots, stalls and clock jumps."""
    h = Harness()
    rng = random.Random(3)
    n = 300
    slots = [Slot(i, rng.choice([0.1, 0.5, 1.0, 7.0])) for i in range(n)]
    h.scheduler.add_spread(slots, start=1000.0)
    assert len(h.scheduler) == n
    t = 1000.0
    for step in range(2000):
        for slot in rng.sample(slots, 20):
            slot.busy = rng.random() < 0.7  # most of them stuck in long checks
        t += rng.choice([0.001, 0.01, 0.05, 0.3]) if step % 97 else 25.0  # sometimes a long stall
        h.at(t)
        assert len(h.scheduler) == n
    assert h.scheduler.skipped > 0
    assert all(s.due > t for s in slots)  # nothing left overdue after run_due
    assert h.scheduler.dispatched + h.scheduler.skipped >= 2000


def test_removed_slot_is_never_dispatched_and_leaves_the_heap() -> None:
    h = Harness()
    keep, gone = Slot(0, 1.0), Slot(1, 1.0)
    h.scheduler.add(keep, 1000.0)
    h.scheduler.add(gone, 1000.5)
    gone.removed = True
    for t in (1000.0, 1000.5, 1001.0, 1001.5, 1002.0):
        h.at(t)
    assert {key for key, _ in h.calls} == {0}
    assert len(h.scheduler) == 1
