"""The trap receiver's bookkeeping without a socket (poller/snmp_traps.py): what a spoofed flood
costs in memory, a failing handler, the sources a reload leaves."""

from __future__ import annotations

import asyncio
import logging
import socket

import pytest

from poller.bus import EventBus
from poller.snmp_traps import TrapConfig, TrapReceiver, TrapSource, _Protocol, canonical
from tests.integration.test_snmp_traps import _v2c_trap


class Checks:
    def __init__(self) -> None:
        self.asked: list[str] = []

    def check_unless_busy(self, name: str) -> bool:
        self.asked.append(name)
        return True


def receiver(**config: float) -> tuple[TrapReceiver, EventBus]:
    bus = EventBus()
    bus.subscribe("test", maxsize=100_000)
    sources = {"127.0.0.1": TrapSource("edge", "127.0.0.1", b"c")}
    return TrapReceiver(sources, bus, Checks(), config=TrapConfig(**config)), bus  # type: ignore[arg-type]


def test_a_spoofed_flood_from_many_addresses_keeps_no_state_per_address() -> None:
    r, _ = receiver()
    packet = _v2c_trap(b"c", 1)
    for i in range(20_000):
        r.received(packet, (f"10.{i // 65536}.{i // 256 % 256}.{i % 256}", 162))
    assert r.refused_unknown == 20_000 and r.accepted == 0
    assert r._buckets == {} and len(r._logged) <= 1001


def test_the_bucket_refills_at_the_rate() -> None:
    r, _ = receiver(rate=10.0, burst=5.0, min_gap=60.0)
    packet = _v2c_trap(b"c", 1)
    for _ in range(10):
        r.received(packet, ("127.0.0.1", 162))
    assert (r.accepted, r.rate_limited) == (5, 5)
    asyncio.run(asyncio.sleep(0.6))  # 6 tokens back, capped at the burst
    for _ in range(10):
        r.received(packet, ("127.0.0.1", 162))
    assert (r.accepted, r.rate_limited) == (10, 10)
    assert r.engine.asked == ["edge"]  # type: ignore[attr-defined]  # min_gap: once


def test_a_handler_that_fails_costs_one_trap_and_one_log_line(caplog: pytest.LogCaptureFixture) -> None:
    r, _ = receiver()

    def broken(*_: object) -> bool:
        raise RuntimeError("bug")

    r.engine.check_unless_busy = broken  # type: ignore[method-assign]
    protocol = _Protocol(r)
    with caplog.at_level(logging.ERROR):
        for _ in range(3):
            protocol.datagram_received(_v2c_trap(b"c", 1), ("127.0.0.1", 162))
    assert r.gauges()["traps_failed"] == 3 and r.accepted == 3
    assert len([rec for rec in caplog.records if "could not be handled" in rec.getMessage()]) == 1


def test_addresses_are_keyed_as_the_socket_may_write_them() -> None:
    assert canonical("::ffff:127.0.0.1") == "127.0.0.1"
    # A zoned address keeps its zone, as the interface's index (what recvfrom gives): a sender is
    # matched by its address and the interface it came in on.
    assert canonical("fe80:0::1%lo") == f"fe80::1%{socket.if_nametoindex('lo')}"
    assert canonical("fe80::1%7") == "fe80::1%7"
    with pytest.raises(OSError):
        canonical("fe80::1%no-such-if0")
    assert canonical("2001:DB8:0:0::1") == "2001:db8::1"
    with pytest.raises(ValueError):
        canonical("not-an-address")
