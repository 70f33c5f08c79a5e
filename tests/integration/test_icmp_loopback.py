"""Real ICMP over loopback: one socket, true RTTs, no lost replies in bursts, seq wrap-around, IPv6."""

from __future__ import annotations

import asyncio
import os
import time

import pytest

from poller.engine import Engine, EngineConfig
from poller.events import State, Transition
from poller.icmp import IcmpProber
from poller.state import StateConfig
from tests.fakes import make_devices
from tests.runqueue import Waited

pytestmark = pytest.mark.usefixtures("icmp_root")  # real ICMP: root (fails under CI=true)


def loopbacks(n: int, second: int = 3) -> list[str]:
    """``n`` distinct addresses in 127.<second>.0.0/16 (all of 127/8 answers on Linux)."""
    assert n <= 250 * 256
    return [f"127.{second}.{i // 250}.{i % 250 + 1}" for i in range(n)]


def open_sockets() -> int:
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{fd}").startswith("socket:"):
                count += 1
        except OSError:
            continue
    return count


async def test_thousand_loopback_addresses_answer_over_one_socket(prober: IcmpProber) -> None:
    before = open_sockets()
    targets = loopbacks(1000)
    task = asyncio.gather(*(prober.probe(a, 2.0) for a in targets))
    for _ in range(100):  # until the first burst is on the wire, replies still pending
        await asyncio.sleep(0)
        if prober.sent:
            break
    assert prober.counters()["in_flight"] > 0
    during = open_sockets()
    replies = await task
    assert all(r.ok for r in replies), [a for a, r in zip(targets, replies, strict=True) if not r.ok][:5]
    rtts = [r.rtt_ms for r in replies if r.rtt_ms is not None]
    assert max(rtts) < 50.0
    assert during - before == 1  # one ICMP socket for IPv4, not one per ping
    assert open_sockets() - before == 1
    assert len(prober._channels) == 1
    assert prober.mode == "raw"
    c = prober.counters()
    assert (c["sent"], c["received"], c["in_flight"], c["send_errors"]) == (1000, 1000, 0, 0)
    prober.close()
    assert open_sockets() == before


async def test_rtt_from_kernel_timestamps_is_not_inflated_by_a_busy_loop(prober: IcmpProber) -> None:
    prober.open()
    assert (await prober.probe("127.0.0.1", 1.0)).ok  # warm-up
    start = time.monotonic()
    future = prober.send("127.0.0.1", 1.0)
    await asyncio.sleep(0)  # lets the send go out
    assert prober.sent == 2
    time.sleep(0.05)  # the event loop is busy elsewhere while the reply arrives
    reply = await future
    assert time.monotonic() - start >= 0.05
    assert reply.ok and reply.rtt_ms is not None
    assert reply.rtt_ms < 5.0, f"RTT {reply.rtt_ms:.3f} ms includes the loop's busy time"


async def test_receive_buffer_is_enlarged(prober: IcmpProber) -> None:
    prober.open((4, 6))
    assert prober.rcvbuf >= 4 << 20
    for channel in prober._channels.values():
        assert channel.rcvbuf >= 4 << 20


async def test_burst_of_20000_probes_gets_every_reply(prober: IcmpProber) -> None:
    targets = loopbacks(20_000)
    replies = await asyncio.gather(*(prober.probe(a, 3.0) for a in targets))
    counters = prober.counters()
    assert counters["rcvbuf_drops"] == 0
    assert sum(r.ok for r in replies) == 20_000
    assert counters["received"] == 20_000 and counters["late_replies"] == 0


async def test_sequence_numbers_wrap_without_losing_matches(prober: IcmpProber) -> None:
    """More than 65,536 probes on one socket: the 16-bit sequence wraps and every reply matches."""
    targets = loopbacks(24_000, second=4)
    total = 0
    for _ in range(3):
        replies = await asyncio.gather(*(prober.probe(a, 3.0) for a in targets))
        assert all(r.ok for r in replies)
        total += len(replies)
    assert total > 65_536
    channel = prober._channels[4]
    assert channel.seq == total & 0xFFFF  # it did wrap
    counters = prober.counters()
    assert counters["received"] == total and counters["late_replies"] == 0
    assert counters["in_flight"] == 0


async def test_sequence_wrap_in_the_middle_of_a_batch(prober: IcmpProber) -> None:
    prober.open()
    prober._channels[4].seq = 0xFFFF - 50
    replies = await asyncio.gather(*(prober.probe(a, 2.0) for a in loopbacks(200, second=5)))
    assert all(r.ok for r in replies)
    assert prober._channels[4].seq == 149
    assert prober.counters()["late_replies"] == 0


async def test_ipv6_loopback(prober: IcmpProber) -> None:
    before = open_sockets()
    replies = await asyncio.gather(*(prober.probe("::1", 2.0) for _ in range(50)))
    assert all(r.ok for r in replies)
    assert max(r.rtt_ms or 0.0 for r in replies) < 50.0
    assert set(prober._channels) == {6}
    assert open_sockets() - before == 1
    v4 = await prober.probe("127.0.0.1", 2.0)
    assert v4.ok
    assert open_sockets() - before == 2  # exactly one socket per family


@pytest.mark.alone  # checks per second over wall time: 1,294 of 2,400 beside three other workers
async def test_engine_with_real_prober_keeps_loopback_devices_up() -> None:
    devices = make_devices(200, interval=0.2)
    prober = IcmpProber()
    prober.open()
    engine = Engine(devices, prober, EngineConfig(interval=0.2, timeout=0.5, gauge_period=0.5,
                                                  state=StateConfig(confirm_spacing=0.05)))
    sub = engine.bus.subscribe("test")
    waited = Waited()
    try:
        await engine.run(3.0)
    finally:
        prober.close()
    w = waited.loop()  # what the loop waited for a CPU (other work on the machine): tests/runqueue.py
    events = sub.drain()
    assert all(t.state is State.UP for t in engine.trackers.values())
    moves = [e for e in events if isinstance(e, Transition)]
    assert [m for m in moves if m.to_state is State.DOWN] == []
    assert len(moves) == 200
    # ~15 checks per device in 3 s: at least 12 over the seconds the loop had a CPU for.
    assert engine.checks_done >= 200 * 12 * (3.0 - w) / 3.0, (engine.checks_done, w)
    # None skipped, unless the loop waited for a CPU for a good part of an interval (0.2 s).
    skipped = engine.scheduler.skipped
    assert skipped == 0 if w < 0.1 else skipped <= 200 * (w / 0.2 + 1), (skipped, w)
    assert all(t.sent == t.received for t in engine.trackers.values())
    assert engine.last_gauges is not None and engine.last_gauges.rcvbuf_drops == 0
