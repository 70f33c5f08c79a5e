"""A failure's confirmation (a task between the callback's first probe and the check's end) meets
a new inventory or the engine's stop: nothing it learns afterwards lands on any device's state,
no confirmation probe goes out after it, the device's slot is free again."""

from __future__ import annotations

import asyncio
import dataclasses

from poller.engine import Engine, EngineConfig
from poller.events import CheckResult, State, Transition
from poller.state import StateConfig
from tests.fakes import make_devices
from tests.unit.test_engine_callback import CallbackFake


def slow_confirm_config() -> EngineConfig:
    # The first probe times out after 0.05 s; confirmations follow 0.3 s apart.
    return EngineConfig(interval=30.0, timeout=0.05, gauge_period=0.1,
                        state=StateConfig(confirm_probes=2, confirm_spacing=0.3))


async def test_a_device_readdressed_during_its_confirmation_keeps_nothing_of_it() -> None:
    devices = make_devices(2)
    prober = CallbackFake(rtt_ms=1.0)
    old = devices[0].address
    prober.down.add(old)  # the old address fails: a confirmation starts
    engine = Engine(devices, prober, slow_confirm_config())
    sub = engine.bus.subscribe("test")
    task = asyncio.create_task(engine.run())
    await asyncio.sleep(0.15)  # first probe timed out, the confirmation waits its spacing
    assert len(engine._checks) == 1 and prober.probed == 0
    moved = dataclasses.replace(devices[0], address="127.3.9.9")
    engine.apply_inventory([moved, devices[1]])
    await asyncio.sleep(0.8)  # the old confirmation would have sent its probes by now
    engine.stop()
    await task
    assert prober.probed == 0  # no confirmation probe to the old address after the change
    events = sub.drain()
    mine = [e for e in events if isinstance(e, (CheckResult, Transition)) and e.device == moved.name]
    assert all(e.address == moved.address for e in mine)
    assert [e.to_state for e in mine if isinstance(e, Transition)] == [State.UP]
    tracker = engine.trackers[moved.name]
    assert (tracker.state, tracker.sent, tracker.received) == (State.UP, 1, 1)
    # (the other device's first check falls due 15 s into the 30 s interval)
    assert engine.state_counts == {State.UNKNOWN: 1, State.UP: 1, State.DOWN: 0, State.UNREACHABLE: 0}
    assert not any(s.busy for s in engine.slots)


async def test_stop_during_a_confirmation_sends_no_more_probes_and_counts_nothing() -> None:
    devices = make_devices(1)
    prober = CallbackFake(rtt_ms=1.0)
    prober.down.add(devices[0].address)
    engine = Engine(devices, prober, slow_confirm_config())
    sub = engine.bus.subscribe("test")
    task = asyncio.create_task(engine.run())
    await asyncio.sleep(0.15)
    assert len(engine._checks) == 1
    engine.stop()
    await task
    await asyncio.sleep(0.8)
    assert prober.probed == 0
    assert engine.checks_done == 0
    assert not [e for e in sub.drain() if isinstance(e, CheckResult)]
    assert engine.trackers[devices[0].name].state is State.UNKNOWN
    assert not engine._checks and not any(s.busy for s in engine.slots)
