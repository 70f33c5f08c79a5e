"""Engine with a scripted prober: correct verdicts, no false DOWN, bounded cost and no backlog."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from itertools import pairwise

import pytest

from poller.bus import Subscription
from poller.engine import Engine, EngineConfig
from poller.events import CheckResult, Event, Gauges, State, Transition
from poller.prober import ProbeReply
from poller.state import StateConfig
from tests.fakes import FakeProber, make_devices
from tests.runqueue import Waited, wait_until


class RecordingProber(FakeProber):
    """A FakeProber that remembers every reply, in send order, per address."""

    def __init__(self, rtt_ms: float = 1.0, fast_timeouts: bool = True) -> None:
        super().__init__(rtt_ms, fast_timeouts)
        self.log: dict[str, list[ProbeReply]] = {}

    async def probe(self, address: str, timeout: float) -> ProbeReply:
        slot: list[ProbeReply] = self.log.setdefault(address, [])
        index = len(slot)
        slot.append(ProbeReply(0, 0.0, None))  # placeholder keeps send order
        reply = await super().probe(address, timeout)
        slot[index] = reply
        return reply


def config(interval: float = 0.1, timeout: float = 0.05, confirm_probes: int = 2,
           confirm_spacing: float = 0.01, gauge_period: float = 0.2, up_after: int = 1) -> EngineConfig:
    return EngineConfig(interval=interval, timeout=timeout, gauge_period=gauge_period,
                        state=StateConfig(confirm_probes=confirm_probes, confirm_spacing=confirm_spacing,
                                          up_after=up_after))


def collect(sub: Subscription) -> list[Event]:
    return sub.drain()


async def wait_for(cond: Callable[[], bool], timeout: float = 3.0) -> None:
    """``cond`` holds within ``timeout`` seconds of the loop's own time: the time its thread
    waited for a CPU (other work on the machine) is not counted (tests/runqueue.py)."""
    await wait_until(cond, timeout)


async def stop(engine: Engine, task: asyncio.Task[None]) -> None:
    """Stop the engine; its run ends within 5 s of the loop's own time (as ``wait_for``)."""
    engine.stop()
    await wait_until(task.done, 5.0)
    await task


def transitions(events: list[Event], device: str | None = None) -> list[Transition]:
    return [e for e in events if isinstance(e, Transition) and (device is None or e.device == device)]


def checks(events: list[Event], device: str) -> list[CheckResult]:
    return [e for e in events if isinstance(e, CheckResult) and e.device == device]


async def test_devices_come_up() -> None:
    devices = make_devices(50)
    prober = FakeProber(rtt_ms=2.0)
    engine = Engine(devices, prober, config())
    sub = engine.bus.subscribe("test")
    await engine.run(0.35)
    events = collect(sub)
    assert all(t.state is State.UP for t in engine.trackers.values())
    ups = transitions(events)
    assert len(ups) == 50
    assert {(t.from_state, t.to_state) for t in ups} == {(State.UNKNOWN, State.UP)}
    assert {t.device for t in ups} == {d.name for d in devices}
    assert engine.state_counts == {State.UNKNOWN: 0, State.UP: 50, State.DOWN: 0, State.UNREACHABLE: 0}
    assert all(r.rtt_ms == 2.0 and r.sent == 1 and r.received == 1
               for r in events if isinstance(r, CheckResult))
    final = events[-1]
    assert isinstance(final, Gauges) and final.devices_up == 50


async def test_device_going_down_is_confirmed_then_declared_once_with_true_start() -> None:
    devices = make_devices(5)
    victim = devices[3]
    prober = RecordingProber()
    engine = Engine(devices, prober, config(confirm_probes=2, confirm_spacing=0.01))
    sub = engine.bus.subscribe("test")
    task = asyncio.create_task(engine.run())
    await wait_for(lambda: engine.state_counts[State.UP] == 5)
    prober.down.add(victim.address)
    before = len(prober.log[victim.address])
    await wait_for(lambda: engine.trackers[victim.name].state is State.DOWN)
    await asyncio.sleep(0.35)  # a few more intervals while DOWN
    await stop(engine, task)
    events = collect(sub)

    downs = [t for t in transitions(events, victim.name) if t.to_state is State.DOWN]
    assert len(downs) == 1
    down = downs[0]
    assert down.from_state is State.UP
    failed = prober.log[victim.address][before:]
    assert all(not r.ok for r in failed)
    first_failed = failed[0]
    assert down.down_since is not None
    assert abs(down.down_since.timestamp() * 1e9 - first_failed.sent_ns) < 2_000  # µs precision
    assert down.at >= down.down_since

    results = checks(events, victim.name)
    declaring = next(r for r in results if r.state is State.DOWN)
    assert (declaring.sent, declaring.received) == (1 + 2, 0)  # first probe + confirm_probes
    assert declaring.at == down.down_since
    # The confirmation probes were confirm_spacing apart.
    gaps = [b.sent_mono - a.sent_mono for a, b in pairwise(failed[:3])]
    assert all(g >= 0.01 * 0.9 for g in gaps)
    # Later checks of the DOWN device: one probe each, no confirmation.
    later = results[results.index(declaring) + 1:]
    assert len(later) >= 2
    assert all((r.sent, r.received, r.state) == (1, 0, State.DOWN) for r in later)
    assert engine.trackers[victim.name].down_since == down.down_since
    # Nobody else went down.
    assert all(t.device == victim.name for t in transitions(events) if t.to_state is State.DOWN)


async def test_single_lost_probe_with_successful_confirmation_is_not_down() -> None:
    devices = make_devices(3)
    victim = devices[1]

    def lose_some(address: str, n: int) -> float | None:
        if address == victim.address and n in (3, 7, 8):  # 7 and 8: one check loses 2 of 3
            return None
        return 1.0

    prober = FakeProber()
    prober.behaviour = lose_some
    engine = Engine(devices, prober, config(confirm_probes=2))
    sub = engine.bus.subscribe("test")
    task = asyncio.create_task(engine.run())
    await wait_for(lambda: prober.calls.get(victim.address, 0) >= 12)
    await stop(engine, task)
    events = collect(sub)
    assert [t.to_state for t in transitions(events, victim.name)] == [State.UP]  # no false DOWN
    results = checks(events, victim.name)
    assert all(r.state is State.UP for r in results)
    saved = [(r.sent, r.received) for r in results if r.sent > 1]
    assert saved == [(2, 1), (3, 1)]  # each confirmed by its next probe, and no more
    tracker = engine.trackers[victim.name]
    assert tracker.sent - tracker.received == 3  # the lost probes still count as loss


async def test_down_device_costs_one_probe_per_interval() -> None:
    devices = make_devices(4)
    prober = FakeProber()
    prober.down.update(d.address for d in devices[:2])
    engine = Engine(devices, prober, config(interval=0.1, confirm_probes=3))
    sub = engine.bus.subscribe("test")
    task = asyncio.create_task(engine.run())
    await wait_for(lambda: engine.state_counts[State.DOWN] == 2)
    await asyncio.sleep(0.05)
    start = {d.address: prober.calls[d.address] for d in devices[:2]}
    collect(sub)
    await asyncio.sleep(1.0)
    await stop(engine, task)
    events = collect(sub)
    for d in devices[:2]:
        probes = prober.calls[d.address] - start[d.address]
        assert 8 <= probes <= 12, (d.name, probes)  # ~10 intervals, one probe each
        assert all(r.sent == 1 for r in checks(events, d.name))
    assert not transitions(events)


async def test_no_backlog_when_everything_is_down_and_timeouts_exceed_the_interval() -> None:
    n = 200
    devices = make_devices(n)
    prober = FakeProber(fast_timeouts=False)
    prober.down.update(d.address for d in devices)
    engine = Engine(devices, prober, config(interval=0.1, timeout=0.25, confirm_probes=2,
                                            confirm_spacing=0.05, gauge_period=0.25))
    sub = engine.bus.subscribe("test")
    task = asyncio.create_task(engine.run())
    samples: list[tuple[int, int, int, int]] = []
    for _ in range(22):
        await asyncio.sleep(0.1)
        samples.append((len(engine._checks), prober.in_flight, len(engine.scheduler),
                        len(asyncio.all_tasks())))
    await stop(engine, task)
    events = collect(sub)

    assert engine.state_counts[State.DOWN] == n
    assert max(s[0] for s in samples) <= n  # checks in flight never exceed the device count
    assert max(s[1] for s in samples) <= n
    assert {s[2] for s in samples} == {n}  # the schedule holds one entry per device, always
    assert max(s[3] for s in samples) <= n + 10  # no pile of waiting tasks
    assert max(prober.max_in_flight_per_address.values()) == 1  # never two at one address
    # Pending work does not grow: the second half holds no more than the first.
    half = len(samples) // 2
    assert max(s[0] for s in samples[half:]) <= max(s[0] for s in samples[:half])
    gauges = [e for e in events if isinstance(e, Gauges)]
    assert gauges
    assert gauges[-1].skipped == engine.scheduler.skipped > n  # the skipped checks are counted
    assert all(g.in_flight <= n for g in gauges)
    assert all(g.devices_down + g.devices_up + g.devices_unknown == n for g in gauges)
    skipped = [g.skipped for g in gauges]
    assert skipped == sorted(skipped)  # cumulative
    # Each device was probed about once per timeout, not once per interval plus a backlog.
    probes_per_device = prober.sent / n
    assert probes_per_device <= 2.3 / 0.25 + 3


@pytest.mark.alone  # rates, gaps and the event loop's lag over wall time
async def test_gauges_arrive_once_per_period_with_sane_values() -> None:
    """Gauges every period (0.2 s) with values that add up. The timing bounds (gaps, lag,
    overdue, no check skipped, the checks' rate) hold for the code on a quiet machine; each is
    widened by exactly what the loop's thread waited for a CPU meanwhile (tests/runqueue.py), so
    other processes' load does not fail it and a slowness of the engine's own still does."""
    n = 100
    devices = make_devices(n)
    prober = FakeProber(rtt_ms=1.0)
    prober.down.update(d.address for d in devices[:10])
    engine = Engine(devices, prober, config(interval=0.1, gauge_period=0.2))
    sub = engine.bus.subscribe("test")
    waited = Waited()
    t0 = time.monotonic()
    seen: list[tuple[float, float]] = []

    def mark() -> dict[str, float]:  # each gauge carries its time since the start and the wait so far
        seen.append((time.monotonic() - t0, waited.loop()))
        return {"t": seen[-1][0], "waited": seen[-1][1]}

    engine.gauge_sources.append(mark)
    task = asyncio.create_task(engine.run())
    # Until three gauges came after 0.5 s of the loop's own time (about 1 s on a quiet machine).
    await wait_for(lambda: sum(t - w >= 0.5 for t, w in seen) >= 3, timeout=30.0)
    await stop(engine, task)
    gauges = [e for e in collect(sub) if isinstance(e, Gauges)]
    periodic, final = gauges[:-1], gauges[-1]
    assert len(periodic) >= 4
    # Once a period: never two within 0.1 s, none missing (a gap over 0.35 s that the loop's
    # waiting for a CPU does not explain), from the start on.
    marks = [(0.0, 0.0)] + [(g.extra["t"], g.extra["waited"]) for g in periodic]
    gaps = [(tb - ta, wb - wa) for (ta, wa), (tb, wb) in pairwise(marks)]
    assert all(0.1 <= gap <= 0.35 + w for gap, w in gaps), gaps
    for g in gauges:
        assert g.devices_up + g.devices_down + g.devices_unknown == n
        assert 0 <= g.in_flight <= n
        assert g.rcvbuf_drops == 0 and g.send_errors == 0 and g.store_queue == 0
        w = g.extra["waited"]
        # A check skipped (late by a whole interval, or its previous one's reply not read yet)
        # only when the loop waited for a CPU for a good part of an interval (0.1 s).
        assert g.skipped == 0 if w < 0.05 else g.skipped <= n * (w / 0.1 + 1), (g.skipped, w)
        assert g.lag_p50_ms >= -1.0 and g.lag_p99_ms >= g.lag_p50_ms
        assert g.lag_p99_ms < 100.0 + w * 1000, (g.lag_p99_ms, w)
        assert g.at.tzinfo is not None
    steady = [(i, g) for i, g in enumerate(periodic) if g.extra["t"] - g.extra["waited"] >= 0.5]
    assert len(steady) >= 3
    for i, g in steady:
        t, w = g.extra["t"], g.extra["waited"]
        assert (g.devices_up, g.devices_down, g.devices_unknown) == (90, 10, 0)
        # n / interval, within 35 %; at least the share of it the loop had a CPU for.
        assert (n / 0.1) * 0.65 * (t - w) / t <= g.checks_per_s <= (n / 0.1) * 1.35, (g.checks_per_s, t, w)
        assert g.probes_per_s >= g.checks_per_s * 0.9
        recent = w - (periodic[i - 2].extra["waited"] if i >= 2 else 0.0)  # since two gauges before
        assert g.oldest_overdue_ms < 100.0 + recent * 1000, (g.oldest_overdue_ms, recent)
    assert final.devices_up == 90 and final.devices_down == 10
    assert engine.last_gauges is final


async def test_seeded_outages_start_down() -> None:
    devices = make_devices(4)
    since = datetime.now(UTC) - timedelta(hours=2)
    recovered, still_down = devices[0], devices[1]
    prober = FakeProber()
    prober.down.add(still_down.address)
    engine = Engine(devices, prober, config())
    engine.seed_outages({recovered.name: since, still_down.name: since, "not-in-inventory": since})
    assert engine.state_counts == {State.UNKNOWN: 2, State.UP: 0, State.DOWN: 2, State.UNREACHABLE: 0}
    assert engine.trackers[recovered.name].state is State.DOWN
    sub = engine.bus.subscribe("test")
    await engine.run(0.35)
    events = collect(sub)

    back = transitions(events, recovered.name)
    assert len(back) == 1
    assert (back[0].from_state, back[0].to_state) == (State.DOWN, State.UP)
    assert back[0].down_since == since  # the outage is closed with its original start
    assert transitions(events, still_down.name) == []  # no second, newer outage
    assert engine.trackers[still_down.name].down_since == since
    assert all(r.sent == 1 for r in checks(events, still_down.name))  # no confirmation probes
    assert engine.state_counts == {State.UNKNOWN: 0, State.UP: 3, State.DOWN: 1, State.UNREACHABLE: 0}


async def test_stop_before_run_returns_at_once() -> None:
    engine = Engine(make_devices(3), FakeProber(), config())
    engine.stop()
    await asyncio.wait_for(engine.run(), 1.0)


async def test_probe_now_checks_at_once_outside_the_schedule_and_never_twice_in_flight() -> None:
    """An operator's "probe now": a real check published like any other and counted; while the
    device's check runs, an ask waits for its end and then checks (a check that starts after the
    ask; never two in flight, nothing queued in the schedule); an unknown name is a KeyError."""
    prober = FakeProber(rtt_ms=2.0, fast_timeouts=False)
    devices = make_devices(2)
    engine = Engine(devices, prober, config(interval=3600.0, timeout=0.3, confirm_probes=0))
    sub = engine.bus.subscribe("t")
    result = await engine.probe_now(devices[0].name)
    assert result.device == devices[0].name and result.ok and result.rtt_ms == 2.0
    assert engine.trackers[devices[0].name].state is State.UP
    assert [e for e in collect(sub) if isinstance(e, CheckResult)] == [result]
    assert engine.checks_on_demand == 1
    prober.down.add(devices[1].address)
    first = asyncio.create_task(engine.probe_now(devices[1].name))
    await asyncio.sleep(0.05)
    asked = datetime.now(UTC)
    second = await engine.probe_now(devices[1].name)  # the first still out: waited for, then its own
    assert first.done() and not first.result().ok and first.result().at < asked
    assert not second.ok and second.at >= asked
    assert engine.trackers[devices[1].name].state is State.DOWN
    with pytest.raises(KeyError):
        await engine.probe_now("no such device")
    assert engine.checks_on_demand == 3
