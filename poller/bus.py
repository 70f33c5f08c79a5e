"""Fan-out of engine events to several consumers (store writer, screens, JSONL), each at its pace.

Each subscriber has its own bounded buffer. When a slow consumer's buffer is full,
samples (check results, SNMP polls) are dropped and counted; transitions, flap changes,
reboots, interface changes and gauges are always kept, and their number is bounded by the
device count and the clock, not by how slow the consumer is.

The producer (the engine) and a consumer may run on different threads and event loops: the
dashboard runs the engine on a thread of its own (wardtui/engine_thread.py). So a
subscription holds no asyncio object that two threads touch. Its deque takes appends from one
thread and pops from another (thread-safe), and a consumer is woken in one of two ways:

- polled: it calls :meth:`Subscription.drain` on its own timer (the screens); nothing wakes it;
- waiting: :meth:`Subscription.get_batch` on its loop. The event it waits on belongs to that
  loop and is set there only: directly when the producer runs on the same loop, through
  ``loop.call_soon_threadsafe`` when it runs anywhere else.
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from contextlib import suppress

from poller.events import CheckResult, Event, SnmpFailure, SnmpPoll

_SAMPLES = (CheckResult, SnmpPoll, SnmpFailure)  # a tuple: `A | B` made a union at every put


class Subscription:
    """One consumer's view of the event stream."""

    def __init__(self, name: str, maxsize: int, sample_batch: int = 1, samples: bool = True,
                 urgent: tuple[type, ...] = ()) -> None:
        self.name = name
        self.maxsize = maxsize
        self.sample_batch = sample_batch
        self.samples = samples
        self.dropped = 0
        # Events of these types are counted as they come: a consumer that polls on a timer (the
        # dashboard) looks at the count more often than it drains, and drains at once when it moved.
        self.urgent = urgent
        self.urgent_count = 0
        self._items: deque[Event] = deque()
        self._closed = False
        # The waiting consumer's loop and its event (made, waited on, cleared and set on that
        # loop only), and whether it is asleep or about to be: a producer wakes it once.
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ready: asyncio.Event | None = None
        self._armed = False

    def __len__(self) -> int:
        return len(self._items)

    def put(self, event: Event) -> None:
        if self._closed:
            return
        items = self._items
        if isinstance(event, _SAMPLES):
            if not self.samples:
                return
            if len(items) >= self.maxsize:
                self.dropped += 1
                return
            items.append(event)
            # Waking a consumer costs far more than handing it one sample: wake it for samples
            # only once ``sample_batch`` are waiting (it is expected to poll on a timer too).
            if self._armed and len(items) >= self.sample_batch:
                self._wake()
            return
        items.append(event)
        if self.urgent and isinstance(event, self.urgent):
            self.urgent_count += 1
        if self._armed:
            self._wake()

    def _wake(self) -> None:
        """Wake a consumer asleep in :meth:`get_batch`, on its own loop (any thread may call).
        Only while it is armed: a polled consumer never is, and one wake-up is enough."""
        if not self._armed:
            return
        self._armed = False
        loop, ready = self._loop, self._ready
        if loop is None or ready is None:
            return
        try:
            here = asyncio.get_running_loop()
        except RuntimeError:
            here = None  # a thread with no loop
        if here is loop:
            ready.set()
            return
        with suppress(RuntimeError):  # the consumer's loop is closed: nobody left to wake
            loop.call_soon_threadsafe(ready.set)

    def close(self) -> None:
        """Stop accepting events; ``get_batch`` returns what is left, then an empty list."""
        self._closed = True
        self._wake()

    @property
    def closed(self) -> bool:
        return self._closed

    def drain(self, limit: int = 1 << 30) -> list[Event]:
        """Take up to ``limit`` buffered events without waiting."""
        items = self._items
        n = min(limit, len(items))
        return [items.popleft() for _ in range(n)]

    async def get_batch(self, limit: int = 10_000) -> list[Event]:
        """Wait for at least one event (or close) and return up to ``limit`` of them.

        Waiting binds the subscription to the caller's loop: one waiting consumer at a time."""
        loop = asyncio.get_running_loop()
        if self._loop is not loop or self._ready is None:
            self._loop, self._ready = loop, asyncio.Event()
        ready = self._ready
        while not self._items and not self._closed:
            ready.clear()
            self._armed = True  # before the second look: a put after it sees the flag
            if self._items or self._closed:
                break
            await ready.wait()
        return self.drain(limit)


class EventBus:
    """Publishes every event to every subscription."""

    def __init__(self) -> None:
        # Copy-on-write tuple: a consumer on another thread may (un)subscribe while publish
        # iterates, and must never make it skip another subscriber.
        self._subs: tuple[Subscription, ...] = ()
        self._lock = threading.Lock()  # (un)subscribe may come from two threads at once

    def subscribe(self, name: str, maxsize: int = 200_000, sample_batch: int = 1,
                  samples: bool = True, urgent: tuple[type, ...] = ()) -> Subscription:
        """A new consumer. With ``sample_batch`` > 1, check results wake it only in batches of
        that size; other events always wake it at once. ``samples=False``: no check results.
        ``urgent``: event types counted in ``urgent_count`` as they come (never samples)."""
        sub = Subscription(name, maxsize, sample_batch, samples, urgent)
        with self._lock:
            self._subs = (*self._subs, sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        sub.close()
        with self._lock:
            self._subs = tuple(s for s in self._subs if s is not sub)

    def publish(self, event: Event) -> None:
        for sub in self._subs:
            sub.put(event)

    def close(self) -> None:
        for sub in self._subs:
            sub.close()

    @property
    def subscriptions(self) -> tuple[Subscription, ...]:
        return self._subs
