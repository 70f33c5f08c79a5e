"""The engine's callback path (a prober with ``start``, as IcmpProber): no task per check, and the
same rules as the task path: one check in flight per device (later ones skipped and counted,
never queued), the reply's RTT and send time in the result, nothing counted after stop."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import pytest

from poller.engine import Engine, EngineConfig
from poller.events import CheckResult, State
from poller.prober import CLOSED, ProbeCallback, ProbeReply
from poller.state import StateConfig, utc_from_ns
from tests.fakes import FakeProber, make_devices


class CallbackFake:
    """Answers through ``start`` after ``delay`` seconds with ``rtt_ms`` (None: a timeout, after
    ``timeout``). ``probe`` exists for the confirmation path. Records every send and the most
    checks ever in flight per address."""

    def __init__(self, rtt_ms: float | None = 1.5, delay: float = 0.0) -> None:
        self.rtt_ms = rtt_ms
        self.delay = delay
        self.down: set[str] = set()
        self.started = 0  # through start
        self.probed = 0  # through probe (confirmations)
        self.sent_ns: list[tuple[str, int]] = []
        self._active: dict[str, int] = {}
        self.max_active: dict[str, int] = {}
        self._open: list[tuple[asyncio.TimerHandle, ProbeCallback, Any, int, float]] = []

    def _rtt(self, address: str) -> float | None:
        return None if address in self.down else self.rtt_ms

    def start(self, address: str, timeout: float, callback: ProbeCallback, context: Any) -> None:
        self.started += 1
        sent_ns, sent_mono = time.time_ns(), time.monotonic()
        self.sent_ns.append((address, sent_ns))
        active = self._active[address] = self._active.get(address, 0) + 1
        self.max_active[address] = max(self.max_active.get(address, 0), active)
        rtt = self._rtt(address)
        entry: list[Any] = []

        def done() -> None:
            self._open.remove(entry[0])
            self._active[address] -= 1
            callback(context, sent_ns, sent_mono, rtt, None)

        handle = asyncio.get_running_loop().call_later(timeout if rtt is None else self.delay, done)
        entry.append((handle, callback, context, sent_ns, sent_mono))
        self._open.append(entry[0])

    async def probe(self, address: str, timeout: float) -> ProbeReply:
        self.probed += 1
        sent_ns, sent_mono = time.time_ns(), time.monotonic()
        rtt = self._rtt(address)
        await asyncio.sleep(timeout if rtt is None else self.delay)
        return ProbeReply(sent_ns, sent_mono, rtt)

    def counters(self) -> dict[str, int]:
        return {"sent": self.started + self.probed, "in_flight": len(self._open)}

    def close(self) -> None:
        """As IcmpProber: probes still out end with CLOSED."""
        for handle, callback, context, sent_ns, sent_mono in list(self._open):
            handle.cancel()
            callback(context, sent_ns, sent_mono, None, CLOSED)
        self._open.clear()


def config(interval: float = 0.1, timeout: float = 0.05) -> EngineConfig:
    return EngineConfig(interval=interval, timeout=timeout, gauge_period=0.1,
                        state=StateConfig(confirm_probes=2, confirm_spacing=0.01))


async def test_checks_go_through_start_with_the_replys_rtt_and_send_time() -> None:
    prober = CallbackFake(rtt_ms=1.5)
    engine = Engine(make_devices(20), prober, config())
    sub = engine.bus.subscribe("test")
    # ~10 rounds of 20: at least 4 rounds' worth even when the machine is busy (0.55 s gave 76
    # of the 80 once, with the suite in four processes beside it: checks skipped as late).
    await engine.run(1.05)
    results = [e for e in sub.drain() if isinstance(e, CheckResult)]
    assert prober.started == len(results) >= 20 * 4
    assert prober.probed == 0
    assert not engine._checks  # no task was made for any of them
    assert all(r.rtt_ms == 1.5 and r.sent == r.received == 1 and r.state is State.UP for r in results)
    # Each result's time is its probe's send time, in order per device.
    sends: dict[str, list[int]] = {}
    for address, ns in prober.sent_ns:
        sends.setdefault(address, []).append(ns)
    for device in engine.trackers.values():
        mine = [r.at for r in results if r.device == device.device.name]
        assert mine == [utc_from_ns(ns) for ns in sends[device.device.address][:len(mine)]]
    assert all(t.state is State.UP and t.last_rtt_ms == 1.5 for t in engine.trackers.values())


async def test_slow_replies_skip_checks_never_queue_them() -> None:
    """Replies take 0.35 s, the interval is 0.1 s: one check in flight per device, the others
    skipped and counted; none runs late afterwards."""
    prober = CallbackFake(rtt_ms=2.0, delay=0.35)
    engine = Engine(make_devices(10), prober, config(interval=0.1, timeout=1.0))
    sub = engine.bus.subscribe("test")
    task = asyncio.create_task(engine.run())
    await asyncio.sleep(1.0)
    assert engine.last_gauges is not None and 1 <= engine.last_gauges.in_flight <= 10
    engine.stop()
    await task
    assert max(prober.max_active.values()) == 1
    assert engine.scheduler.skipped_busy >= 10 * 4
    results = [e for e in sub.drain() if isinstance(e, CheckResult)]
    assert len(results) == engine.checks_done <= 10 * 3  # ~1.0 s / 0.35 s each
    assert prober.started <= 10 * 3 + 10  # started = finished + at most one out per device
    assert engine.scheduler.dispatched == prober.started


async def test_a_failure_is_confirmed_in_a_task_then_the_slot_is_free_again() -> None:
    prober = CallbackFake(rtt_ms=1.0)
    devices = make_devices(3)
    prober.down.add(devices[0].address)
    engine = Engine(devices, prober, config(interval=0.1, timeout=0.02))
    sub = engine.bus.subscribe("test")
    await engine.run(0.6)
    results = [e for e in sub.drain() if isinstance(e, CheckResult) and e.device == devices[0].name]
    first = results[0]
    assert (first.sent, first.received, first.rtt_ms, first.state) == (3, 0, None, State.DOWN)
    assert all(r.sent == 1 and r.state is State.DOWN for r in results[1:])  # DOWN: no more confirming
    assert len(results) >= 3
    assert prober.probed == 2  # the two confirmation probes, once
    assert engine.trackers[devices[0].name].sent == 2 + len(results)


async def test_closing_the_prober_ends_checks_out_without_counting_them() -> None:
    prober = CallbackFake(rtt_ms=1.0, delay=10.0)  # no reply before the end
    engine = Engine(make_devices(5), prober, config(interval=0.1, timeout=20.0))
    sub = engine.bus.subscribe("test")
    task = asyncio.create_task(engine.run())
    await asyncio.sleep(0.3)
    slots = engine.slots
    assert all(s.busy for s in slots)
    engine.stop()
    await task
    prober.close()
    assert all(not s.busy for s in slots)
    assert engine.checks_done == 0
    assert not [e for e in sub.drain() if isinstance(e, CheckResult)]
    assert engine.last_gauges is not None and engine.last_gauges.in_flight == 0


async def test_probe_now_through_start_waits_for_the_reply_and_is_never_twice_in_flight() -> None:
    prober = CallbackFake(rtt_ms=3.0, delay=0.05)
    devices = make_devices(2)
    engine = Engine(devices, prober, config(interval=60.0, timeout=1.0))
    task = asyncio.create_task(engine.run())
    await asyncio.sleep(0.2)  # the first scheduled checks are over
    name = devices[1].name
    first = asyncio.create_task(engine.probe_now(name))
    await asyncio.sleep(0)
    second = await engine.probe_now(name)  # waits for the first's end, then its own check
    result = await first
    assert result.device == name and result.rtt_ms == 3.0 and result.state is State.UP
    assert second.at > result.at and second.rtt_ms == 3.0
    assert engine.checks_on_demand == 2
    assert max(prober.max_active.values()) == 1  # never two in flight
    engine.stop()
    await task


async def test_probe_now_is_cancelled_when_the_engine_stops() -> None:
    prober = CallbackFake(rtt_ms=3.0, delay=10.0)  # no reply before the end
    devices = make_devices(2)  # the second one's first check falls due in 30 s
    engine = Engine(devices, prober, config(interval=60.0, timeout=20.0))
    run = asyncio.create_task(engine.run())
    await asyncio.sleep(0.05)
    waiting = asyncio.create_task(engine.probe_now(devices[1].name))
    await asyncio.sleep(0.05)
    assert prober.started == 2
    engine.stop()
    await run
    await asyncio.wait_for(asyncio.gather(waiting, return_exceptions=True), 1.0)
    assert waiting.cancelled()  # at stop, not when the prober is closed
    prober.close()
    assert engine.checks_done == 0
    assert not any(s.busy for s in engine.slots)


async def test_a_device_removed_while_its_probe_is_out_is_not_counted() -> None:
    prober = CallbackFake(rtt_ms=1.0, delay=0.2)
    devices = make_devices(4)
    engine = Engine(devices, prober, config(interval=1.0, timeout=1.0))
    sub = engine.bus.subscribe("test")
    task = asyncio.create_task(engine.run())
    await asyncio.sleep(0.05)  # the first device's probe is out
    engine.apply_inventory(devices[1:])
    await asyncio.sleep(0.4)
    engine.stop()
    await task
    names = {e.device for e in sub.drain() if isinstance(e, CheckResult)}
    assert devices[0].name not in names
    assert engine.state_counts[State.UNKNOWN] + engine.state_counts[State.UP] == 3


@pytest.mark.alone  # no check skipped at 0.1 s intervals: a 0.1 s stall of the loop would skip one
async def test_a_prober_without_start_that_raises_frees_the_slot_and_logs(
        caplog: pytest.LogCaptureFixture) -> None:
    """The task path (a prober with only ``probe``): a probe that raises ends its check, logged,
    and the device is checked again at its next turn."""
    calls: list[str] = []

    class Flaky(FakeProber):
        async def probe(self, address: str, timeout: float) -> ProbeReply:
            calls.append(address)
            if len(calls) == 1:
                raise OSError("a broken socket")
            return await super().probe(address, timeout)

    prober = Flaky(rtt_ms=1.0)
    engine = Engine(make_devices(1), prober, config(interval=0.1))
    with caplog.at_level(logging.ERROR, logger="poller.engine"):
        await engine.run(0.45)
    assert "a broken socket" in caplog.text
    assert len(calls) >= 4 and engine.checks_done == len(calls) - 1
    assert engine.scheduler.skipped == 0
