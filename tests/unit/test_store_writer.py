"""StoreWriter with a fake store: batching, ordering, retries, bounds, and a clean stop."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.exc import IntegrityError, OperationalError

from poller.bus import EventBus
from poller.events import CheckResult, FlapChange, State, Transition
from store.writer import StoreWriter

T0 = datetime(2026, 11, 3, 8, 0, tzinfo=UTC)


def check(i: int) -> CheckResult:
    return CheckResult(f"d{i % 7}", "10.0.0.1", T0 + timedelta(seconds=i), 1, 1, 0.4, State.UP)


def transition(i: int, to: State = State.DOWN) -> Transition:
    return Transition(f"d{i}", "10.0.0.1", State.UP, to, T0 + timedelta(seconds=i), None, None)


def locked() -> OperationalError:
    return OperationalError("INSERT ...", None, Exception("database is locked"))


class FakeStore:
    """Records writes; fails the next ``fail`` writes with ``error``."""

    def __init__(self) -> None:
        self.batches: list[list[CheckResult]] = []
        self.transitions: list[Transition] = []
        self.fail = 0
        self.error: Exception = locked()
        self.delay = 0.0
        self.refuse: list[Transition] = []  # rows the "database" refuses whenever they are written

    async def _maybe_fail(self) -> None:
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.fail:
            self.fail -= 1
            raise self.error

    async def write_checks(self, results: Sequence[CheckResult]) -> None:
        await self._maybe_fail()
        self.batches.append(list(results))

    async def write_transition(self, transition: Transition) -> None:
        await self.write_transitions([transition])

    async def write_transitions(self, transitions: Sequence[Transition]) -> None:
        await self._maybe_fail()  # all or nothing, like one database transaction
        if any(t in self.refuse for t in transitions):
            raise IntegrityError("INSERT ...", None, Exception("constraint"))
        self.transitions.extend(transitions)

    @property
    def checks(self) -> list[CheckResult]:
        return [c for batch in self.batches for c in batch]


async def wait_for(predicate: Callable[[], bool], timeout: float = 2.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.005)


async def test_checks_are_batched_and_all_flushed_on_stop() -> None:
    bus, store = EventBus(), FakeStore()
    writer = StoreWriter(store, bus.subscribe("store"), flush_interval=60, batch_size=1000)
    writer.start()
    for i in range(2500):
        bus.publish(check(i))
    await wait_for(lambda: len(store.batches) == 2)
    assert [len(b) for b in store.batches] == [1000, 1000]
    await writer.stop()
    assert store.checks == [check(i) for i in range(2500)]
    assert writer.written_checks == 2500 and writer.queue_depth == 0


async def test_checks_are_flushed_after_the_interval() -> None:
    bus, store = EventBus(), FakeStore()
    writer = StoreWriter(store, bus.subscribe("store"), flush_interval=0.05)
    writer.start()
    bus.publish(check(1))
    await asyncio.sleep(0.01)
    assert store.batches == [] and writer.queue_depth == 1
    await wait_for(lambda: store.batches == [[check(1)]], timeout=1.0)
    await writer.stop()


async def test_transitions_are_written_promptly_in_order() -> None:
    bus, store = EventBus(), FakeStore()
    writer = StoreWriter(store, bus.subscribe("store"), flush_interval=60)
    writer.start()
    for i in range(50):
        bus.publish(transition(i, State.DOWN if i % 2 else State.UP))
        bus.publish(check(i))
    bus.publish(FlapChange("d1", "10.0.0.1", True, T0, 3))
    await wait_for(lambda: len(store.transitions) == 50, timeout=0.5)
    assert store.transitions == [transition(i, State.DOWN if i % 2 else State.UP)
                                 for i in range(50)]
    assert store.batches == []  # checks wait for their batch
    await writer.stop()


async def test_database_errors_are_counted_retried_and_nothing_is_lost(
    caplog: pytest.LogCaptureFixture,
) -> None:
    bus, store = EventBus(), FakeStore()
    store.fail = 3
    writer = StoreWriter(store, bus.subscribe("store"), flush_interval=0.01, retry_delay=0.01)
    writer.start()
    bus.publish(transition(1))
    bus.publish(transition(2))
    for i in range(10):
        bus.publish(check(i))
    await wait_for(lambda: writer.written_checks == 10)
    assert writer.running
    assert writer.failed_writes == 3 and writer.dropped == 0
    assert writer.last_error is not None and "database is locked" in writer.last_error
    assert store.transitions == [transition(1), transition(2)]
    assert "will retry" in caplog.text and "resumed" in caplog.text
    await writer.stop()


async def test_refused_rows_are_dropped_not_retried_forever() -> None:
    bus, store = EventBus(), FakeStore()
    store.refuse = [transition(1)]
    writer = StoreWriter(store, bus.subscribe("store"), retry_delay=0.01)
    writer.start()
    bus.publish(transition(1))
    bus.publish(transition(2))
    await wait_for(lambda: len(store.transitions) == 1)
    assert store.transitions == [transition(2)]
    assert writer.dropped == 1 and writer.failed_writes == 1
    await writer.stop()


async def test_pending_checks_are_bounded_while_the_database_is_down() -> None:
    bus, store = EventBus(), FakeStore()
    store.fail = 10**9
    writer = StoreWriter(store, bus.subscribe("store"), flush_interval=0.0, batch_size=10,
                         max_pending=100, retry_delay=10, stop_attempts=1)
    writer.start()
    for i in range(250):
        bus.publish(check(i))
    await wait_for(lambda: len(writer.subscription) == 0)
    assert writer.queue_depth == 100
    assert writer.dropped == 150
    await writer.stop()  # gives up instead of hanging
    assert writer.dropped == 250 and writer.queue_depth == 0


async def test_stop_retries_a_briefly_failing_database(caplog: pytest.LogCaptureFixture) -> None:
    bus, store = EventBus(), FakeStore()
    writer = StoreWriter(store, bus.subscribe("store"), flush_interval=60, retry_delay=0.01)
    writer.start()
    for i in range(5):
        bus.publish(check(i))
    await asyncio.sleep(0.01)
    store.fail = 1
    with caplog.at_level(logging.WARNING):
        await writer.stop()
    assert store.checks == [check(i) for i in range(5)]
    assert writer.failed_writes == 1 and writer.dropped == 0


async def test_stop_without_start_writes_what_was_buffered() -> None:
    bus, store = EventBus(), FakeStore()
    writer = StoreWriter(store, bus.subscribe("store"))
    bus.publish(check(1))
    bus.publish(transition(1))
    assert writer.queue_depth == 2
    await writer.stop()
    assert store.checks == [check(1)] and store.transitions == [transition(1)]


async def test_slow_database_does_not_block_the_loop() -> None:
    bus, store = EventBus(), FakeStore()
    store.delay = 0.2
    async with StoreWriter(store, bus.subscribe("store"), flush_interval=0.0) as writer:
        bus.publish(check(1))
        await asyncio.sleep(0.01)
        ticks = 0
        started = asyncio.get_running_loop().time()
        while asyncio.get_running_loop().time() - started < 0.1:
            bus.publish(check(ticks + 2))
            ticks += 1
            await asyncio.sleep(0.001)
        assert ticks > 20  # the loop kept turning while the write waited
        assert writer.queue_depth >= ticks
    assert len(store.checks) == ticks + 1
