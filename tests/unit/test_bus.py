"""Event bus: a slow consumer loses samples (counted) but never a state change; all consumers see all."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from functools import partial

from poller.bus import EventBus
from poller.events import CheckResult, Event, FlapChange, Gauges, State, Transition

NOW = datetime(2024, 5, 1, 9, 0, tzinfo=UTC)


def check(i: int) -> CheckResult:
    return CheckResult(f"dev{i}", f"127.0.0.{i % 250 + 1}", NOW, 1, 1, 1.0, State.UP)


def transition(i: int) -> Transition:
    return Transition(f"dev{i}", f"127.0.0.{i % 250 + 1}", State.UP, State.DOWN, NOW, NOW, None)


def gauges() -> Gauges:
    return Gauges(NOW, 1, 1, 0, 0, 1.0, 1.0, 0, 0, 0, 0, 0.1, 0.2, 0.0, 0, 0, 0)


def test_full_subscription_drops_checks_counted_but_keeps_transitions() -> None:
    bus = EventBus()
    slow = bus.subscribe("slow", maxsize=5)
    for i in range(5):
        bus.publish(check(i))
    kept: list[Event] = [transition(100 + i) for i in range(20)]
    flap = FlapChange("dev1", "127.0.0.2", True, NOW, 3)
    g = gauges()
    for i in range(10):
        bus.publish(check(10 + i))  # full: dropped
        bus.publish(kept[i])
    bus.publish(flap)
    bus.publish(g)
    for i in range(10, 20):
        bus.publish(kept[i])
        bus.publish(check(30 + i))
    assert slow.dropped == 20
    got = slow.drain()
    assert [e for e in got if isinstance(e, CheckResult)] == [check(i) for i in range(5)]
    assert [e for e in got if isinstance(e, Transition)] == kept  # all of them, in order
    assert flap in got and g in got
    assert len(slow) == 0
    # Once drained, samples flow again.
    bus.publish(check(99))
    assert slow.drain() == [check(99)]
    assert slow.dropped == 20


def test_several_subscribers_each_get_everything() -> None:
    bus = EventBus()
    subs = [bus.subscribe(name) for name in ("store", "screen", "jsonl")]
    events: list[Event] = [check(1), transition(2), gauges(), check(3)]
    for e in events:
        bus.publish(e)
    for sub in subs:
        assert sub.drain() == events
        assert sub.dropped == 0
    assert bus.subscriptions == tuple(subs)


def test_one_slow_subscriber_does_not_cost_the_others() -> None:
    bus = EventBus()
    slow = bus.subscribe("slow", maxsize=2)
    fast = bus.subscribe("fast")
    for i in range(100):
        bus.publish(check(i))
    assert len(fast.drain()) == 100 and fast.dropped == 0
    assert len(slow.drain()) == 2 and slow.dropped == 98


def test_unsubscribed_gets_nothing_more() -> None:
    bus = EventBus()
    sub = bus.subscribe("x")
    bus.publish(check(1))
    bus.unsubscribe(sub)
    bus.publish(check(2))
    assert sub.drain() == [check(1)]
    assert bus.subscriptions == ()


async def test_get_batch_waits_for_events_and_ends_after_close() -> None:
    bus = EventBus()
    sub = bus.subscribe("x")
    waiter = asyncio.create_task(sub.get_batch())
    await asyncio.sleep(0.01)
    assert not waiter.done()
    bus.publish(transition(1))
    bus.publish(check(2))
    assert await asyncio.wait_for(waiter, 1.0) == [transition(1), check(2)]
    bus.publish(check(3))
    bus.close()
    bus.publish(check(4))  # after close: ignored
    assert await asyncio.wait_for(sub.get_batch(), 1.0) == [check(3)]
    assert await asyncio.wait_for(sub.get_batch(), 1.0) == []
    assert sub.closed


async def test_get_batch_respects_limit() -> None:
    bus = EventBus()
    sub = bus.subscribe("x")
    for i in range(10):
        bus.publish(check(i))
    assert len(await sub.get_batch(limit=4)) == 4
    assert len(await sub.get_batch(limit=100)) == 6


def test_a_consumer_may_decline_samples_but_not_transitions() -> None:
    bus = EventBus()
    sub = bus.subscribe("jsonl", samples=False)
    bus.publish(check(1))
    bus.publish(transition(2))
    assert sub.drain() == [transition(2)]
    assert sub.dropped == 0  # declined, not dropped


async def test_a_producer_on_another_threads_loop_wakes_the_consumer_at_once() -> None:
    """The dashboard's engine publishes on its own thread and loop (wardtui/engine_thread.py)
    while a consumer may wait on another loop. An asyncio.Event set from the wrong thread
    resolves the waiter's future without waking its loop: the consumer slept until something
    else woke its loop (here the 3 s timeout). The hand-off must go through that loop."""
    from wardtui.engine_thread import EngineThread

    bus = EventBus()
    sub = bus.subscribe("ui")
    engine = EngineThread("test-producer")
    try:
        for round_ in range(3):  # each round: the consumer is asleep before the event arrives
            waiter = asyncio.create_task(sub.get_batch())
            await asyncio.sleep(0.05)
            assert not waiter.done()
            sent = asyncio.get_running_loop().time()
            engine.call(partial(bus.publish, transition(round_)))
            got = await asyncio.wait_for(waiter, 3.0)
            assert got == [transition(round_)]
            assert asyncio.get_running_loop().time() - sent < 1.0
    finally:
        engine.close()


async def test_a_stream_from_another_thread_arrives_whole_and_in_order() -> None:
    """Bursts from the engine's thread while the consumer takes batches on this loop: nothing
    lost, nothing twice, never a consumer asleep with events waiting."""
    from wardtui.engine_thread import EngineThread

    bus = EventBus()
    sub = bus.subscribe("store", sample_batch=50)
    engine = EngineThread("test-producer")
    total = 20_000

    async def produce() -> None:
        for i in range(total):
            bus.publish(transition(i) if i % 7 == 0 else check(i))
            if i % 500 == 0:
                await asyncio.sleep(0)  # let the consumer's thread in between bursts
        bus.publish(gauges())  # a non-sample last: it wakes the consumer whatever the batch size

    try:
        done = engine.submit(produce())
        got: list[Event] = []
        while len(got) < total + 1:
            batch = await asyncio.wait_for(sub.get_batch(limit=3000), 3.0)
            assert batch
            got += batch
        done.result(5)
        assert [getattr(e, "device", None) for e in got[:-1]] == [f"dev{i}" for i in range(total)]
        assert isinstance(got[-1], Gauges) and sub.dropped == 0
    finally:
        engine.close()


def test_a_polled_consumer_drains_on_its_thread_while_the_engine_publishes() -> None:
    """The dashboard's way: it never waits, it drains on its timer from the UI thread."""
    import threading

    bus = EventBus()
    sub = bus.subscribe("ui")
    total = 50_000
    def produce() -> None:
        for i in range(total):
            bus.publish(check(i))

    producer = threading.Thread(target=produce)
    producer.start()
    got: list[Event] = []
    while producer.is_alive() or len(sub):
        got += sub.drain()
    producer.join()
    assert [getattr(e, "device", None) for e in got] == [f"dev{i}" for i in range(total)]


def test_urgent_events_are_counted_as_they_come_and_samples_never() -> None:
    bus = EventBus()
    sub = bus.subscribe("ui", urgent=(FlapChange,))
    other = bus.subscribe("store")
    now = datetime.now(UTC)
    bus.publish(CheckResult("d", "127.0.0.1", now, 1, 1, 1.0, State.UP))
    bus.publish(FlapChange("d", "127.0.0.1", True, now, 3))
    assert (sub.urgent_count, other.urgent_count) == (1, 0)
    sub.drain()
    assert sub.urgent_count == 1  # a count, not a queue: the consumer compares it with the last seen
