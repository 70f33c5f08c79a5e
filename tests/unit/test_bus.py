"""Event bus: a slow consumer loses samples (counted) but never a state change; all consumers see all."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

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
