"""Test doubles behind the engine's seams: a scripted prober and SNMP client, no root, no network."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime

from poller.inventory import Device
from poller.prober import ProbeReply
from poller.snmp_source import Agent, IfRow, RawPoll, SnmpError, SystemFacts


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


class FakeSnmpClient:
    """Answers SNMP polls from a script: one interface ``eth0`` whose octets grow by
    ``octets_per_poll``; ``failing`` agents time out; ``partial`` agents answer sysObjectID only
    (as an Eaton UPS card: no sysUpTime, no interfaces); ``reboot(key)`` restarts an agent's
    sysUpTime; ``oper[key]`` sets eth0's ifOperStatus (1 up, 2 down)."""

    def __init__(self, delay: float = 0.0, octets_per_poll: int = 1000) -> None:
        self.delay = delay
        self.octets_per_poll = octets_per_poll
        self.failing: set[str] = set()
        self.partial: set[str] = set()
        self.oper: dict[str, int] = {}
        self.calls: dict[str, int] = {}
        self.forgotten: list[str] = []  # keys the poller told to forget, in order
        self.polled: list[Agent] = []  # every agent asked, in order
        self.max_in_flight = 0  # per agent
        self.max_in_flight_total = 0
        self._in_flight: dict[str, int] = {}
        self._booted: dict[str, float] = {}
        self._octets: dict[str, int] = {}

    def forget(self, key: str) -> None:
        self.forgotten.append(key)

    def reboot(self, key: str) -> None:
        self._booted[key] = time.monotonic()
        self._octets[key] = 0

    async def poll(self, agent: Agent) -> RawPoll:
        key = agent.key
        self.polled.append(agent)
        self.calls[key] = self.calls.get(key, 0) + 1
        self._in_flight[key] = self._in_flight.get(key, 0) + 1
        self.max_in_flight = max(self.max_in_flight, self._in_flight[key])
        self.max_in_flight_total = max(self.max_in_flight_total, sum(self._in_flight.values()))
        try:
            await asyncio.sleep(self.delay)
            if key in self.failing:
                raise SnmpError("timeout", "no answer")
            if key in self.partial:
                facts = SystemFacts("", "", "1.3.6.1.4.1.705.1", None)
                return RawPoll(datetime.now(UTC), facts, (), time.monotonic(),
                               missing=("sysUpTime", "sysDescr", "sysName", "interface table"))
            booted = self._booted.setdefault(key, time.monotonic() - 3600)
            octets = self._octets[key] = self._octets.get(key, 0) + self.octets_per_poll
            uptime = int((time.monotonic() - booted) * 100)
            row = IfRow(1, name="eth0", descr="eth0", alias="uplink", admin=1, oper=self.oper.get(key, 1),
                        high_speed=1000, hc_in_octets=octets, hc_out_octets=octets // 2)
            facts = SystemFacts(key, "fake agent", "1.3.6.1.4.1.8072", uptime)
            return RawPoll(datetime.now(UTC), facts, (row,), counters_mono=time.monotonic())
        finally:
            self._in_flight[key] -= 1

    def counters(self) -> dict[str, int]:
        return {"requests": sum(self.calls.values()), "timeouts": 0}

    def close(self) -> None:
        pass
