"""Fan-out of engine events to several consumers (store writer, screens, JSONL), each at its pace.

Each subscriber has its own bounded buffer. When a slow consumer's buffer is full,
samples (check results, SNMP polls) are dropped and counted; transitions, flap changes,
reboots, interface changes and gauges are always kept, and their number is bounded by the
device count and the clock, not by how slow the consumer is.
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque

from poller.events import CheckResult, Event, SnmpFailure, SnmpPoll


class Subscription:
    """One consumer's view of the event stream."""

    def __init__(self, name: str, maxsize: int, sample_batch: int = 1, samples: bool = True) -> None:
        self.name = name
        self.maxsize = maxsize
        self.sample_batch = sample_batch
        self.samples = samples
        self.dropped = 0
        self._items: deque[Event] = deque()
        self._ready = asyncio.Event()
        self._closed = False

    def __len__(self) -> int:
        return len(self._items)

    def put(self, event: Event) -> None:
        if self._closed:
            return
        items = self._items
        if isinstance(event, CheckResult | SnmpPoll | SnmpFailure):
            if not self.samples:
                return
            if len(items) >= self.maxsize:
                self.dropped += 1
                return
            items.append(event)
            # Waking a consumer costs far more than handing it one sample: wake it for samples
            # only once ``sample_batch`` are waiting (it is expected to poll on a timer too).
            if len(items) >= self.sample_batch:
                self._ready.set()
            return
        items.append(event)
        self._ready.set()

    def close(self) -> None:
        """Stop accepting events; ``get_batch`` returns what is left, then an empty list."""
        self._closed = True
        self._ready.set()

    @property
    def closed(self) -> bool:
        return self._closed

    def drain(self, limit: int = 1 << 30) -> list[Event]:
        """Take up to ``limit`` buffered events without waiting."""
        items = self._items
        n = min(limit, len(items))
        batch = [items.popleft() for _ in range(n)]
        if not items and not self._closed:
            self._ready.clear()
        return batch

    async def get_batch(self, limit: int = 10_000) -> list[Event]:
        """Wait for at least one event (or close) and return up to ``limit`` of them."""
        while not self._items and not self._closed:
            await self._ready.wait()
            if not self._items and not self._closed:
                self._ready.clear()
        return self.drain(limit)


class EventBus:
    """Publishes every event to every subscription."""

    def __init__(self) -> None:
        # Copy-on-write tuple: a consumer on another thread may (un)subscribe while publish
        # iterates, and must never make it skip another subscriber.
        self._subs: tuple[Subscription, ...] = ()
        self._lock = threading.Lock()  # (un)subscribe may come from two threads at once

    def subscribe(self, name: str, maxsize: int = 200_000, sample_batch: int = 1,
                  samples: bool = True) -> Subscription:
        """A new consumer. With ``sample_batch`` > 1, check results wake it only in batches of
        that size; other events always wake it at once. ``samples=False``: no check results."""
        sub = Subscription(name, maxsize, sample_batch, samples)
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
