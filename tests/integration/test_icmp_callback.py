"""Real ICMP over loopback through IcmpProber.start, the engine's callback path: kernel RTTs, a
reply after the timeout counted late (never a second outcome), a failing callback harmless."""

from __future__ import annotations

import asyncio
import logging
import socket
import struct
import time
from typing import Any

import pytest

from poller.engine import Engine, EngineConfig
from poller.events import CheckResult, State
from poller.icmp import IcmpProber, _Channel
from poller.prober import CLOSED
from poller.state import StateConfig
from tests.fakes import make_devices

pytestmark = pytest.mark.usefixtures("icmp_root")  # real ICMP: root (fails under CI=true)


Outcome = tuple[Any, int, float, "float | None", "str | None"]


def recorder(into: list[Outcome]) -> Any:
    def callback(context: Any, sent_ns: int, sent_mono: float, rtt_ms: float | None,
                 error: str | None) -> None:
        into.append((context, sent_ns, sent_mono, rtt_ms, error))
    return callback


async def wait_for(cond: Any, timeout: float = 3.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not cond():
        assert asyncio.get_running_loop().time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.005)


def hold_replies(prober: IcmpProber) -> Any:
    """Stop reading the IPv4 socket (replies wait in the kernel); returns a function resuming it."""
    channel = prober._channels[4]
    loop = prober._bind_loop()  # the reader is added on the first send otherwise
    loop.remove_reader(channel.sock.fileno())
    return lambda: loop.add_reader(channel.sock.fileno(), prober._on_readable, channel)


async def test_start_calls_back_once_per_probe_with_kernel_rtt(prober: IcmpProber) -> None:
    outcomes: list[Outcome] = []
    callback = recorder(outcomes)
    targets = [f"127.6.{i // 250}.{i % 250 + 1}" for i in range(500)]
    for i, address in enumerate(targets):
        prober.start(address, 2.0, callback, i)
    assert outcomes == []  # never from inside start
    await wait_for(lambda: len(outcomes) == 500)
    await asyncio.sleep(0.05)
    assert sorted(o[0] for o in outcomes) == list(range(500))  # each once
    assert all(o[3] is not None and 0.0 <= o[3] < 50.0 and o[4] is None for o in outcomes)
    assert all(o[1] > 0 and o[2] > 0 for o in outcomes)
    c = prober.counters()
    assert (c["sent"], c["received"], c["in_flight"], c["late_replies"]) == (500, 500, 0, 0)


async def test_a_reply_after_the_timeout_is_late_not_a_second_outcome(prober: IcmpProber) -> None:
    prober.open()
    assert (await prober.probe("127.0.0.1", 1.0)).ok  # warm-up
    resume = hold_replies(prober)
    outcomes: list[Outcome] = []
    # A loopback reply takes microseconds: with a timeout of 0.1 us it always comes after it.
    # (A reply that came in time but waits unread is not late: test_icmp_truth.py.)
    prober.start("127.0.0.1", 1e-7, recorder(outcomes), "late")
    await asyncio.sleep(0.15)  # the reply is in the socket, unread, past its timeout
    assert [(o[0], o[3], o[4]) for o in outcomes] == [("late", None, None)]
    resume()
    await wait_for(lambda: prober.late_replies == 1)
    await asyncio.sleep(0.02)
    assert len(outcomes) == 1
    c = prober.counters()
    assert (c["received"], c["late_replies"], c["in_flight"]) == (1, 1, 0)


async def test_engine_counts_a_late_reply_as_a_failed_check_only() -> None:
    devices = make_devices(1)
    prober = IcmpProber()
    prober.open()
    # A timeout of 0.1 us: a loopback reply always comes after it.
    engine = Engine(devices, prober, EngineConfig(interval=30.0, timeout=1e-7, gauge_period=0.1,
                                                  state=StateConfig(confirm_probes=0)))
    sub = engine.bus.subscribe("test")
    resume = hold_replies(prober)
    task = asyncio.create_task(engine.run())
    try:
        await wait_for(lambda: engine.checks_done == 1)
        resume()
        await wait_for(lambda: prober.late_replies == 1)
        await asyncio.sleep(0.05)
    finally:
        engine.stop()
        await task
        prober.close()
    results = [e for e in sub.drain() if isinstance(e, CheckResult)]
    assert [(r.sent, r.received, r.rtt_ms, r.state) for r in results] == [(1, 0, None, State.DOWN)]
    tracker = engine.trackers[devices[0].name]
    assert (tracker.sent, tracker.received, tracker.state) == (1, 0, State.DOWN)


async def test_a_failing_callback_does_not_stop_the_other_replies(
        prober: IcmpProber, caplog: pytest.LogCaptureFixture) -> None:
    outcomes: list[Outcome] = []
    good = recorder(outcomes)

    def bad(context: Any, *_: Any) -> None:
        raise RuntimeError("a consumer's bug")

    for i in range(100):
        prober.start(f"127.7.0.{i + 1}", 2.0, bad if i == 10 else good, i)
    with caplog.at_level(logging.ERROR, logger="poller.icmp"):
        await wait_for(lambda: len(outcomes) == 99)
    assert sorted(o[0] for o in outcomes) == [i for i in range(100) if i != 10]
    assert "a consumer's bug" in caplog.text
    assert prober.counters()["in_flight"] == 0


async def test_close_ends_probes_out_with_closed() -> None:
    prober = IcmpProber()
    prober.open()
    resume = hold_replies(prober)
    outcomes: list[Outcome] = []
    for i in range(5):
        prober.start(f"127.8.0.{i + 1}", 5.0, recorder(outcomes), i)
    await asyncio.sleep(0.05)
    assert outcomes == []
    future = prober.send("127.8.0.9", 5.0)
    prober.close()
    del resume
    assert sorted(o[0] for o in outcomes) == list(range(5))
    assert all(o[4] is CLOSED for o in outcomes)
    assert future.cancelled()


@pytest.mark.parametrize(("family", "address"), [(4, "127.9.0.1"), (6, "::1")])
async def test_other_programs_replies_are_dropped_by_the_kernel(family: int, address: str) -> None:
    """Every raw ICMP socket gets a copy of every echo reply on the host; the BPF filter on the
    identifier keeps another pinger's (here a second prober's) out of ours: no read, no parse,
    no room taken in our receive buffer. Errors still pass (their quoted request is ours)."""
    ours, other = IcmpProber(), IcmpProber()
    try:
        ours.open((family,))
        other.open((family,))
        channel = ours._channels[family]
        assert channel.bpf and channel.ident != other._channels[family].ident
        ours._bind_loop()
        seen: list[bytes] = []
        original = ours._on_packet

        def counted(ch: Any, data: bytes, *rest: Any) -> None:
            seen.append(data)
            original(ch, data, *rest)

        ours._on_packet = counted  # type: ignore[method-assign]
        replies = await asyncio.gather(*(other.probe(address, 2.0) for _ in range(300)))
        assert all(r.ok for r in replies)
        mine = await asyncio.gather(*(ours.probe(address, 2.0) for _ in range(50)))
        assert all(r.ok for r in mine)
        await asyncio.sleep(0.05)
        echo_reply = 0 if family == 4 else 129
        offset = 20 if family == 4 else 0
        foreign = [d for d in seen if d[offset] == echo_reply
                   and int.from_bytes(d[offset + 4:offset + 6], "big") != channel.ident]
        assert foreign == []
        assert ours.counters()["received"] == 50
    finally:
        ours.close()
        other.close()


def test_the_filter_passes_our_replies_and_errors_only() -> None:
    """Packets sent to ourselves over loopback from a plain raw socket: the kernel keeps an echo
    reply with another identifier out of the socket, lets ours and the errors in."""
    channel = _Channel(4, True, 1 << 20)
    sender = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
    try:
        assert channel.bpf
        ident = channel.ident
        for kind, ident_ in [(0, ident), (0, ident ^ 1), (3, 0), (11, 5), (0, ident ^ 0x100)]:
            sender.sendto(struct.pack("!BBHHH", kind, 0, 0, ident_, 1), ("127.0.0.1", 0))
        time.sleep(0.05)
        got = []
        while True:
            try:
                data = channel.sock.recv(2048)
            except BlockingIOError:
                break
            got.append((data[20], int.from_bytes(data[24:26], "big")))
        assert got == [(0, ident), (3, 0), (11, 5)]
    finally:
        sender.close()
        channel.icmp.close()
