"""Real ICMP over loopback, adversarial cases of the prober's matching and timing: every probe
ends exactly once, with an outcome the kernel's timestamps decide (not when the loop got round to
reading), whatever the sequence numbers, the wall clock or the sockets do."""

from __future__ import annotations

import asyncio
import dataclasses
import errno
import os
import time
from typing import Any

import pytest
from icmplib.exceptions import ICMPSocketError

from poller import icmp
from poller.engine import Engine, EngineConfig
from poller.events import State
from poller.icmp import IcmpProber
from poller.prober import CLOSED
from poller.state import StateConfig
from tests.fakes import make_devices
from tests.integration.test_icmp_callback import Outcome, hold_replies, recorder, wait_for

pytestmark = pytest.mark.usefixtures("icmp_root")  # real ICMP: root (fails under CI=true)


def no_icmpv6_socket(monkeypatch: pytest.MonkeyPatch) -> None:
    """This host opens no ICMPv6 socket (IPv6 disabled); IPv4 ones open as usual."""
    real = icmp._Channel

    def channel(family: int, privileged: bool | None, rcvbuf: int) -> Any:
        if family == 6:
            raise ICMPSocketError("[Errno 97] Address family not supported by protocol")
        return real(family, privileged, rcvbuf)

    monkeypatch.setattr(icmp, "_Channel", channel)


async def test_a_family_whose_socket_cannot_open_fails_its_probes_only(
        prober: IcmpProber, monkeypatch: pytest.MonkeyPatch) -> None:
    """An IPv6 device added by a reload on a host where no ICMPv6 socket opens (IPv6 disabled):
    its probes fail at once, with a reason and a send time; IPv4 probes go on. (The exception
    used to escape the drain, leaving it marked as scheduled: no probe was ever sent again and
    every device stayed in flight, every later check skipped.)"""
    no_icmpv6_socket(monkeypatch)
    prober.open((4,))
    outcomes: list[Outcome] = []
    before = time.time_ns()
    prober.start("::1", 1.0, recorder(outcomes), "v6")
    prober.start("127.0.0.1", 1.0, recorder(outcomes), "v4")
    await wait_for(lambda: len(outcomes) == 2, 2.0)
    by = {o[0]: o for o in outcomes}
    assert by["v4"][3] is not None and by["v4"][4] is None
    v6 = by["v6"]
    assert v6[3] is None and v6[4] is not None and "IPv6" in v6[4]
    assert v6[1] >= before and v6[2] > 0  # a send time, not 1970 (the check's timestamp)
    prober.start("127.0.0.2", 1.0, recorder(outcomes), "later")
    await wait_for(lambda: len(outcomes) == 3, 2.0)
    assert outcomes[-1][0] == "later" and outcomes[-1][3] is not None
    c = prober.counters()
    assert (c["send_errors"], c["in_flight"]) == (1, 0)


async def test_a_sequence_still_in_flight_to_an_address_is_not_given_again(prober: IcmpProber) -> None:
    """After 65,536 sends the 16-bit sequence comes round again; a probe to an address still
    waiting on that (address, sequence) must not take it: it overwrote the first probe's entry,
    whose callback was then never called (a check in flight for ever)."""
    prober.open()
    resume = hold_replies(prober)
    outcomes: list[Outcome] = []
    prober.start("127.0.0.1", 0.3, recorder(outcomes), "first")
    await wait_for(lambda: prober.sent == 1)
    prober._channels[4].seq -= 1  # as after 65,535 more sends while "first" waits
    prober.start("127.0.0.1", 0.3, recorder(outcomes), "second")
    await wait_for(lambda: prober.sent == 2)
    resume()
    await wait_for(lambda: len(outcomes) == 2, 2.0)
    await asyncio.sleep(0.4)  # past both deadlines: no second outcome
    assert sorted(o[0] for o in outcomes) == ["first", "second"]
    assert all(o[3] is not None for o in outcomes)
    c = prober.counters()
    assert (c["received"], c["late_replies"], c["in_flight"]) == (2, 0, 0)


@pytest.mark.alone  # 6,000 sends within their 0.5 s deadlines: a CI run with other tests beside it missed it
async def test_replies_the_kernel_took_in_time_are_not_timed_out_by_a_late_read(prober: IcmpProber) -> None:
    """The loop stalls (a reload, a long callback) while 6,000 replies arrive, each well within
    its timeout. The reader takes at most 4,096 packets a turn and the sweep ran right after
    it: the other replies, still in the socket, were timed out - loss that never happened."""
    prober.open()
    resume = hold_replies(prober)
    outcomes: list[Outcome] = []
    callback = recorder(outcomes)
    targets = [f"127.11.{i // 250}.{i % 250 + 1}" for i in range(6000)]
    for i, address in enumerate(targets):
        prober.start(address, 0.5, callback, i)
    await wait_for(lambda: prober.sent == 6000)
    time.sleep(0.6)  # the loop is stalled past every deadline; the replies wait in the kernel
    resume()
    await wait_for(lambda: len(outcomes) == 6000)
    lost = [o[0] for o in outcomes if o[3] is None]
    assert lost == []
    assert max(o[3] or 0.0 for o in outcomes) < 400.0  # the kernel's times, not the read's
    c = prober.counters()
    assert (c["received"], c["late_replies"], c["rcvbuf_drops"]) == (6000, 0, 0)


async def test_a_reply_after_the_timeout_is_late_even_when_read_before_the_sweep(
        prober: IcmpProber) -> None:
    """Whether a reply was in time is the kernel's receive time against the send time, not the
    order in which the loop runs its reader and its timer: a reply received after the timeout
    is a timeout (and counted late) even when read first."""
    prober.open()
    assert (await prober.probe("127.0.0.1", 1.0)).ok  # warm-up
    outcomes: list[Outcome] = []
    # A loopback reply takes microseconds: 0.1 us is always missed.
    prober.start("127.0.0.1", 1e-7, recorder(outcomes), "late")
    # Right after the drain sends it, the loop is busy: next turn the reader runs before the
    # sweep's timer.
    asyncio.get_running_loop().call_soon(time.sleep, 0.05)
    await wait_for(lambda: len(outcomes) == 1)
    assert [(o[0], o[3], o[4]) for o in outcomes] == [("late", None, None)]
    c = prober.counters()
    assert (c["received"], c["late_replies"], c["in_flight"]) == (1, 1, 0)


class _SteppedClock:
    """``time`` as the prober sees it, its wall clock ``offset_s`` off until stepped back."""

    def __init__(self, offset_s: float) -> None:
        self.offset_ns = int(offset_s * 1e9)

    def time_ns(self) -> int:
        return time.time_ns() + self.offset_ns

    def monotonic(self) -> float:
        return time.monotonic()


@pytest.mark.parametrize("offset_s", [-3600.0, 3600.0])
async def test_a_wall_clock_step_during_a_probe_does_not_make_its_rtt(
        prober: IcmpProber, monkeypatch: pytest.MonkeyPatch, offset_s: float) -> None:
    """The wall clock steps (NTP at boot, an operator) between a send and its reply: the kernel's
    receive time and the send time are an hour apart. The RTT was 3,600,000 ms (forward) or 0
    (backward); it is bounded by the monotonic time the probe was out."""
    prober.open()
    assert (await prober.probe("127.0.0.1", 1.0)).ok  # warm-up
    monkeypatch.setattr(icmp, "time", _SteppedClock(offset_s))
    outcomes: list[Outcome] = []
    prober.start("127.0.0.1", 1.0, recorder(outcomes), "stepped")
    await wait_for(lambda: len(outcomes) == 1)
    rtt = outcomes[0][3]
    assert rtt is not None and 0.0 < rtt < 100.0


class _FullSendBuffer:
    """The channel's socket, its send buffer full (EAGAIN, or ``error``) at the sends
    ``full_at`` counts."""

    def __init__(self, sock: Any, full_at: set[int], error: int = errno.EAGAIN) -> None:
        self.sock = sock
        self.full_at = full_at
        self.error = error
        self.calls = 0
        self.sent_to: list[str] = []

    def sendto(self, packet: bytes, address: tuple[str, int]) -> int:
        self.calls += 1
        if self.calls in self.full_at:
            if self.error == errno.EAGAIN:
                raise BlockingIOError(errno.EAGAIN, "Resource temporarily unavailable")
            raise OSError(self.error, os.strerror(self.error))
        self.sent_to.append(address[0])
        return int(self.sock.sendto(packet, address))

    def __getattr__(self, name: str) -> Any:
        return getattr(self.sock, name)


@pytest.mark.alone  # every RTT under 50 ms: a deadline that a loaded machine's scheduling breaks
@pytest.mark.parametrize("error", [errno.EAGAIN, errno.ENOBUFS], ids=["EAGAIN", "ENOBUFS"])
async def test_a_full_send_buffer_delays_probes_never_loses_or_doubles_them(prober: IcmpProber,
                                                                           error: int) -> None:
    """EAGAIN on a send: that probe and those after it wait for the socket to be writable, are
    sent once each, in order, and each ends once with its reply (timed from its real send).
    ENOBUFS (the kernel short of buffers below the socket) likewise, after a pause: it was a
    failed probe, a false DOWN when a burst filled a queue."""
    prober.open()
    channel = prober._channels[4]
    full = _FullSendBuffer(channel.sock, {3, 4, 300, 301, 302, 700}, error)
    channel.sock = full  # type: ignore[assignment]
    outcomes: list[Outcome] = []
    callback = recorder(outcomes)
    targets = [f"127.12.{i // 250}.{i % 250 + 1}" for i in range(1000)]
    for i, address in enumerate(targets):
        prober.start(address, 2.0, callback, i)
    await wait_for(lambda: len(outcomes) == 1000)
    await asyncio.sleep(0.05)
    assert full.sent_to == targets  # each once, in order
    assert full.calls == 1000 + 6  # the six refused sends were tried again
    assert sorted(o[0] for o in outcomes) == list(range(1000))
    assert all(o[3] is not None and o[3] < 50.0 for o in outcomes)
    c = prober.counters()
    assert (c["sent"], c["received"], c["late_replies"], c["send_errors"], c["in_flight"]) == (
        1000, 1000, 0, 0, 0)
    assert c["send_waits"] == 6


async def test_timeouts_of_another_length_still_fire_when_one_lengths_probes_are_over(
        prober: IcmpProber) -> None:
    """One timer sweeps the deadlines of every timeout length: when the short one's queue is
    done, it is re-armed for the long one's. (0.0.0.0 is answered from 127.0.0.1: the reply
    matches no probe, so each probe to it ends by its timeout.)"""
    prober.open()
    outcomes: list[tuple[str, float]] = []
    start = time.monotonic()

    def ended(context: Any, *_: Any) -> None:
        outcomes.append((context, time.monotonic() - start))

    prober.start("0.0.0.0", 0.3, ended, "long")
    prober.start("0.0.0.0", 0.05, ended, "short")
    await wait_for(lambda: len(outcomes) == 1, 1.0)
    prober.start("0.0.0.0", 0.05, ended, "short again")
    await wait_for(lambda: len(outcomes) == 3, 1.0)
    assert [o[0] for o in outcomes] == ["short", "short again", "long"]
    assert 0.3 <= outcomes[2][1] < 0.45
    assert prober.counters()["in_flight"] == 0


async def test_a_prober_closed_while_its_send_buffer_was_full_sends_again_when_reused() -> None:
    """close() while a send waited for room: the probe ends CLOSED, and a later probe on the
    same prober (its sockets reopen) is sent - not held behind the old socket's full buffer."""
    prober = IcmpProber()
    try:
        prober.open()
        channel = prober._channels[4]
        channel.sock = _FullSendBuffer(channel.sock, {1})  # type: ignore[assignment]
        outcomes: list[Outcome] = []
        prober.start("127.0.0.1", 1.0, recorder(outcomes), "blocked")
        await asyncio.sleep(0)  # the drain met EAGAIN; the socket is writable at once, but
        prober.close()  # the prober closes first
        assert [(o[0], o[4]) for o in outcomes] == [("blocked", CLOSED)]
        prober.start("127.0.0.1", 1.0, recorder(outcomes), "after")
        await wait_for(lambda: len(outcomes) == 2, 2.0)
        assert outcomes[1][0] == "after" and outcomes[1][3] is not None
    finally:
        prober.close()


async def test_engine_goes_on_checking_when_one_familys_socket_cannot_open(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The engine's view of the first case: an IPv6 device among IPv4 ones on a host with no
    ICMPv6 socket. It is DOWN (its probes fail at once); the others are checked on schedule,
    none skipped (they all stayed in flight, every check skipped, before)."""
    no_icmpv6_socket(monkeypatch)
    devices = [*make_devices(20), dataclasses.replace(make_devices(1, prefix="v6-")[0], address="::1")]
    prober = IcmpProber()
    prober.open((4,))
    engine = Engine(devices, prober, EngineConfig(interval=0.1, timeout=0.5, gauge_period=0.1,
                                                  state=StateConfig(confirm_spacing=0.01)))
    try:
        await engine.run(1.0)
    finally:
        prober.close()
    states = {name: t.state for name, t in engine.trackers.items()}
    assert states.pop("v6-0") is State.DOWN
    assert set(states.values()) == {State.UP}
    assert all(t.sent >= 5 for name, t in engine.trackers.items() if name != "v6-0")
    assert engine.scheduler.skipped == 0


async def test_sends_put_off_for_want_of_buffers_make_no_down_device_and_are_counted() -> None:
    """The engine's view of ENOBUFS: a third of the sends refused for want of buffers, every
    device stays UP (each such probe failed before: a false DOWN once its confirmation was
    refused too), and the gauges and --jsonl say how many sends waited."""
    from poller.jsonl import event_record

    prober = IcmpProber()
    prober.open((4,))
    channel = prober._channels[4]
    channel.sock = _FullSendBuffer(channel.sock, set(range(2, 100_000, 3)), errno.ENOBUFS)  # type: ignore[assignment]
    engine = Engine(make_devices(20), prober, EngineConfig(interval=0.1, timeout=0.5, gauge_period=0.1,
                                                           state=StateConfig(confirm_spacing=0.01)))
    try:
        await engine.run(1.0)
    finally:
        prober.close()
    assert {t.state for t in engine.trackers.values()} == {State.UP}
    assert all(t.received == t.sent > 0 for t in engine.trackers.values())
    gauges = engine.last_gauges
    assert gauges is not None and gauges.send_errors == 0
    waits = gauges.extra["send_waits"]
    assert waits >= 20 and event_record(gauges)["send_waits"] == waits
