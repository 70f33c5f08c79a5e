"""The delivery loop against a real loopback HTTP server: order, backoff, Retry-After, refusals,
a receiver down for 10 minutes (virtual time) or a few seconds (real time), summarising."""

from __future__ import annotations

import asyncio
import heapq
import itertools
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import datetime, timedelta

import pytest

from poller.notify.delivery import Backoff, Delivery
from poller.notify.model import Notification
from poller.notify.outbox import MemoryOutbox
from tests.integration.notify_http import T0, HttpReceiver, RecordingServer, note


@pytest.fixture
def server() -> Iterator[RecordingServer]:
    s = RecordingServer().start()
    yield s
    s.stop()


class VirtualTime:
    """A wall clock that moves only when the test says; ``sleep`` waits for it."""

    def __init__(self, start: datetime = T0) -> None:
        self.now = start
        self.slept: list[float] = []
        self._sleepers: list[tuple[datetime, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()

    def clock(self) -> datetime:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = (self.now + timedelta(seconds=seconds), next(self._seq), future)
        heapq.heappush(self._sleepers, entry)
        try:
            await future
        finally:
            if entry in self._sleepers:
                self._sleepers.remove(entry)
                heapq.heapify(self._sleepers)

    async def advance(self, seconds: float, settled: Callable[[], bool]) -> None:
        """Move ``seconds`` on, waking each sleeper at its time and letting it finish (real I/O
        included) until ``settled()`` says the delivery waits again."""
        target = self.now + timedelta(seconds=seconds)
        while self._sleepers and self._sleepers[0][0] <= target:
            at, _, future = heapq.heappop(self._sleepers)
            self.now = max(self.now, at)
            if not future.done():
                future.set_result(None)
            await _until(settled)
        self.now = target


async def _until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    await asyncio.sleep(0.01)
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("the delivery did not settle")
        await asyncio.sleep(0.005)


@pytest.fixture
async def running() -> AsyncIterator[list[Delivery]]:
    started: list[Delivery] = []
    yield started
    for delivery in started:
        await delivery.stop()


async def test_messages_go_in_put_order_each_once_with_their_key(server: RecordingServer,
                                                                  running: list[Delivery]) -> None:
    outbox = MemoryOutbox()
    delivery = Delivery(outbox, {"hook": HttpReceiver("hook", server.url)}, summarise_over=1000)
    running.append(delivery)
    await delivery.start()
    messages = [note(i, branch=f"b{i % 4}") for i in range(30)]
    for chunk in (messages[:7], messages[7:8], messages[8:]):
        await delivery.put(chunk)
    await _until(lambda: len(server.delivered()) == 30)
    assert server.delivered() == [n.key for n in messages]
    assert [r.body for r in server.requests] == [n.to_dict() for n in messages]
    # The server has the last message a moment before the delivery has its answer and marks it.
    await _until(lambda: delivery.gauges()["notify_sent"] == 30)
    gauges = delivery.gauges()
    assert (gauges["notify_queued"], gauges["notify_sent"], gauges["notify_failed"]) == (0, 30, 0)
    assert gauges["notify_oldest_s"] == 0.0


async def test_backoff_doubles_from_1_s_to_5_min_less_its_jitter(server: RecordingServer,
                                                                 running: list[Delivery]) -> None:
    """503 ten times: the attempts are 1, 2, 4 ... 256 and then 300 s apart (each less a fifth at
    most: draw() = 0.5 takes a tenth); the next message goes at once after the success."""
    vt = VirtualTime()
    outbox = MemoryOutbox()
    delivery = Delivery(outbox, {"hook": HttpReceiver("hook", server.url)}, clock=vt.clock, sleep=vt.sleep,
                        draw=lambda: 0.5)
    running.append(delivery)
    server.status = 503
    server.on_request = lambda r: setattr(server, "status", 200 if len(server.requests) >= 10 else 503)
    await outbox.put([note(0), note(1)])
    await delivery.start()
    await _until(lambda: bool(vt._sleepers))
    (head,) = await outbox.pending("hook", 1)
    assert head.attempts == 1 and head.next_attempt == T0 + timedelta(seconds=0.9)
    assert head.last_error == "HTTP 503: "
    for _ in range(20):
        if len(server.delivered()) == 2:
            break
        await vt.advance(400, lambda: bool(vt._sleepers) or len(server.delivered()) == 2)
    assert server.delivered() == [note(0).key, note(1).key]
    expected = [0.9 * min(300, 2 ** k) for k in range(9)] + [270.0]
    assert vt.slept[:10] == pytest.approx(expected)
    assert len(vt.slept) == 10  # note 1 waited for nothing
    assert [r.key for r in server.requests].count(note(0).key) == 11


async def test_retry_after_is_honoured_and_capped_at_an_hour(server: RecordingServer,
                                                             running: list[Delivery]) -> None:
    vt = VirtualTime()
    outbox = MemoryOutbox()
    delivery = Delivery(outbox, {"hook": HttpReceiver("hook", server.url)}, clock=vt.clock, sleep=vt.sleep)
    running.append(delivery)
    server.status, server.retry_after = 429, "42"

    def answer(_request: object) -> None:
        if len(server.requests) == 1:
            server.retry_after = "99999"
        else:
            server.status, server.retry_after = 200, None

    server.on_request = answer
    await outbox.put([note(0)])
    await delivery.start()
    while not server.delivered():
        await _until(lambda: bool(vt._sleepers) or bool(server.delivered()))
        if server.delivered():
            break
        await vt.advance(4000, lambda: bool(vt._sleepers) or bool(server.delivered()))
    assert vt.slept[:2] == [42.0, 3600.0]
    assert server.delivered() == [note(0).key]


async def test_a_refused_message_fails_at_once_is_counted_and_the_next_goes(server: RecordingServer,
                                                                            running: list[Delivery]) -> None:
    outbox = MemoryOutbox()
    delivery = Delivery(outbox, {"hook": HttpReceiver("hook", server.url)})
    running.append(delivery)
    def status_for(_request: object) -> None:  # sets the answer to the *next* request
        server.status = 400 if len(server.requests) == 1 else 200

    server.on_request = status_for
    await delivery.put([note(0), note(1), note(2)])
    await delivery.start()
    await _until(lambda: delivery.gauges()["notify_queued"] == 0)
    assert [(r.key, r.answered) for r in server.requests] == [
        (note(0).key, 200), (note(1).key, 400), (note(2).key, 200)]
    gauges = delivery.gauges()
    assert (gauges["notify_sent"], gauges["notify_failed"], gauges["notify_receivers_failing"]) == (2, 1, 0)


async def test_a_receiver_down_for_10_minutes_gets_everything_in_order_when_it_returns(
        server: RecordingServer, running: list[Delivery]) -> None:
    """Virtual time: a message every 30 s for 10 minutes while the receiver answers 503; its
    attempts back off (a dozen in 10 minutes, not hundreds); once it answers, every message
    arrives in put order, each once, within the 5-minute backoff cap."""
    vt = VirtualTime()
    outbox = MemoryOutbox()
    delivery = Delivery(outbox, {"hook": HttpReceiver("hook", server.url)}, clock=vt.clock, sleep=vt.sleep,
                        summarise_over=1000)
    running.append(delivery)
    server.status = 503
    await delivery.start()

    def settled() -> bool:
        return bool(vt._sleepers) or outbox.stats().queued == 0

    messages = [note(i, branch=f"b{i % 3}", created=T0 + timedelta(seconds=30 * i)) for i in range(20)]
    for n in messages:
        await delivery.put([n])
        await _until(settled)
        await vt.advance(30, settled)
    assert server.delivered() == []
    assert 8 <= len(server.requests) <= 14, len(server.requests)
    assert delivery.gauges()["notify_oldest_s"] == pytest.approx(600.0)
    assert delivery.gauges()["notify_receivers_failing"] == 1
    server.status = 200
    back = vt.now
    while outbox.stats().queued:
        await vt.advance(10, settled)
    assert server.delivered() == [n.key for n in messages]
    assert vt.now - back <= timedelta(seconds=310)
    assert delivery.gauges()["notify_receivers_failing"] == 0


async def test_a_receiver_down_a_few_real_seconds_gets_everything_in_order(running: list[Delivery]) -> None:
    """Real time and a real outage (nothing listens: connection refused), small backoff caps."""
    server = RecordingServer()
    outbox = MemoryOutbox()
    delivery = Delivery(outbox, {"hook": HttpReceiver("hook", server.url)},
                        backoff=Backoff(first=0.05, most=0.3), summarise_over=1000)
    running.append(delivery)
    await delivery.start()
    messages = [note(i, branch=f"b{i % 5}") for i in range(25)]
    for n in messages:
        await delivery.put([n])
        await asyncio.sleep(0.06)
    assert delivery.gauges()["notify_receivers_failing"] == 1
    server.start()
    try:
        await _until(lambda: len(server.delivered()) == 25, timeout=10)
        assert server.delivered() == [n.key for n in messages]
    finally:
        server.stop()


async def test_too_many_waiting_messages_of_one_group_are_summarised_keeping_every_recovery(
        server: RecordingServer, running: list[Delivery]) -> None:
    """15 messages of branch b1 (devices going down and coming back) and 3 of b2 wait: b1's are
    sent as one, its newest (key and place in the order), with the group's last firing list and
    every recovery the older ones carried; b2's go as they are."""
    outbox = MemoryOutbox()
    b1: list[Notification] = []
    for i in range(15):
        b1.append(note(i, devices=(f"d{i}",), resolved=(f"d{i - 1}",) if i else (), status="firing"))
    b2 = [note(100 + i, branch="b2") for i in range(3)]
    order = [*b1[:5], b2[0], *b1[5:10], b2[1], *b1[10:], b2[2]]
    await outbox.put(order)
    delivery = Delivery(outbox, {"hook": HttpReceiver("hook", server.url)}, summarise_over=10)
    running.append(delivery)
    await delivery.start()
    await _until(lambda: outbox.stats().queued == 0)
    assert server.delivered() == [b2[0].key, b2[1].key, b1[-1].key, b2[2].key]
    summary = next(r.body for r in server.requests if r.key == b1[-1].key)
    assert summary["title"] == "message 14 (summary of 15 messages)"
    assert [a["device"] for a in summary["firing"]] == ["d14"]  # type: ignore[union-attr, index]
    assert [a["device"] for a in summary["resolved"]] == [f"d{i}" for i in range(14)]  # type: ignore[union-attr, index]
    assert delivery.gauges()["notify_summarised"] == 14


async def test_parallel_sends_overlap_across_groups_and_keep_each_groups_order(
        server: RecordingServer, running: list[Delivery]) -> None:
    """parallel=8 and a receiver that takes 0.3 s per message: the 12 messages of 3 groups go 3
    at a time (one per group: never two of a group, so never more than 3), each group's in put
    order, each once; in about 4 x 0.3 s, not 12 x 0.3 s."""
    lock = threading.Lock()
    flying = [0, 0]  # now, most

    def slow(_request: object) -> None:
        with lock:
            flying[0] += 1
            flying[1] = max(flying[1], flying[0])
        time.sleep(0.3)
        with lock:
            flying[0] -= 1

    server.on_request = slow
    outbox = MemoryOutbox()
    delivery = Delivery(outbox, {"hook": HttpReceiver("hook", server.url)}, parallel=8)
    running.append(delivery)
    await delivery.start()
    messages = [note(i, branch=f"b{i % 3}") for i in range(12)]
    started = time.monotonic()
    await delivery.put(messages)
    await _until(lambda: outbox.stats().queued == 0, timeout=10)
    took = time.monotonic() - started
    assert flying[1] == 3
    delivered = server.delivered()
    assert sorted(delivered) == sorted(n.key for n in messages)
    for branch in ("b0", "b1", "b2"):
        assert [k for k in delivered if k in {n.key for n in messages if n.group == (("branch", branch),)}] \
            == [n.key for n in messages if n.group == (("branch", branch),)]
    assert took < 8 * 0.3, took


async def test_parallel_sends_to_a_receiver_that_is_down_back_off_as_one(
        server: RecordingServer, running: list[Delivery]) -> None:
    """parallel=4, 5 groups, the receiver answers 503: the first four attempts fail side by side
    and count as one failure of the receiver (the next waits 1 s less its jitter, not 8 s); the
    fifth group's message, newer, does not pass them while they wait; everything goes once the
    receiver answers."""
    vt = VirtualTime()
    outbox = MemoryOutbox()
    delivery = Delivery(outbox, {"hook": HttpReceiver("hook", server.url)}, clock=vt.clock, sleep=vt.sleep,
                        draw=lambda: 0.5, parallel=4)
    running.append(delivery)
    server.status = 503
    messages = [note(i, branch=f"b{i % 5}") for i in range(10)]
    await outbox.put(messages)
    await delivery.start()
    await _until(lambda: len(server.requests) == 4 and bool(vt._sleepers))
    await asyncio.sleep(0.2)
    assert len(server.requests) == 4
    waiting = await outbox.pending("hook", 10)
    assert [(p.key, p.attempts, p.next_attempt) for p in waiting[:4]] == [
        (n.key, 1, T0 + timedelta(seconds=0.9)) for n in messages[:4]]
    assert delivery.gauges()["notify_receivers_failing"] == 1
    server.status = 200
    await vt.advance(1, lambda: outbox.stats().queued == 0)
    assert sorted(server.delivered()) == sorted(n.key for n in messages)
    assert sorted(r.key for r in server.requests[:4]) == [n.key for n in messages[:4]]
