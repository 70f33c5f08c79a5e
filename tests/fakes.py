"""Test doubles behind the engine's seams: a scripted prober that needs no root and no network."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from poller.inventory import Device
from poller.prober import ProbeReply


class FakeProber:
    """Answers probes from a script: ``down`` addresses time out, others reply after ``rtt_ms``.

    ``behaviour`` may be replaced by a callable (address, n-th probe to it) -> rtt_ms or None,
    for loss patterns. Timeouts take ``timeout`` seconds of real time unless ``fast_timeouts``.
    """

    def __init__(self, rtt_ms: float = 1.0, fast_timeouts: bool = True) -> None:
        self.rtt_ms = rtt_ms
        self.down: set[str] = set()
        self.behaviour: Callable[[str, int], float | None] | None = None
        self.fast_timeouts = fast_timeouts
        self.calls: dict[str, int] = {}
        self.sent = 0
        self.received = 0
        self.in_flight = 0
        self.max_in_flight_per_address: dict[str, int] = {}
        self._active: dict[str, int] = {}

    async def probe(self, address: str, timeout: float) -> ProbeReply:
        n = self.calls.get(address, 0)
        self.calls[address] = n + 1
        self.sent += 1
        self.in_flight += 1
        active = self._active[address] = self._active.get(address, 0) + 1
        self.max_in_flight_per_address[address] = max(self.max_in_flight_per_address.get(address, 0), active)
        sent_ns, sent_mono = time.time_ns(), time.monotonic()
        try:
            if self.behaviour is not None:
                rtt = self.behaviour(address, n)
            else:
                rtt = None if address in self.down else self.rtt_ms
            if rtt is None:
                if not self.fast_timeouts:
                    await asyncio.sleep(timeout)
                else:
                    await asyncio.sleep(0)
                return ProbeReply(sent_ns, sent_mono, None)
            await asyncio.sleep(rtt / 1000)
            self.received += 1
            return ProbeReply(sent_ns, sent_mono, rtt)
        finally:
            self.in_flight -= 1
            self._active[address] -= 1

    def counters(self) -> dict[str, int]:
        return {"sent": self.sent, "received": self.received, "rcvbuf_drops": 0, "send_errors": 0,
                "in_flight": self.in_flight}

    def close(self) -> None:
        pass


def make_devices(n: int, interval: float | None = None, prefix: str = "dev") -> list[Device]:
    """``n`` devices on loopback-looking addresses spread over two regions and a few branches."""
    return [Device(name=f"{prefix}{i}", address=f"127.2.{i // 250}.{i % 250 + 1}",
                   branch=f"b{i % 7}", region=("north", "south")[i % 2], type="router",
                   interval=interval, line=i + 2) for i in range(n)]
