"""Engine.apply_inventory: a new inventory while the engine runs, with a scripted prober.

Added devices are checked, removed ones no longer; a changed address is a fresh tracker, any
other change keeps the tracker; the state counts stay those of the trackers; nothing is
scheduled twice."""

from __future__ import annotations

import asyncio
import dataclasses
from collections import Counter

from poller.engine import Engine
from poller.events import CheckResult, State
from poller.inventory_diff import InventoryDiff
from tests.fakes import FakeProber, make_devices
from tests.unit.test_engine import config, wait_for


def counts_of(engine: Engine) -> dict[State, int]:
    """The state counts worked out from the trackers themselves."""
    found = Counter(t.state for t in engine.trackers.values())
    return {state: found.get(state, 0) for state in tuple(State)}


def live_slots(engine: Engine) -> list[int]:
    """Keys of the slots the scheduler would still dispatch (removed ones are skipped)."""
    return [slot.key for _, _, slot in engine.scheduler._heap if not slot.removed]


async def running(engine: Engine) -> asyncio.Task[None]:
    task = asyncio.create_task(engine.run())
    await wait_for(lambda: all(t.state is not State.UNKNOWN for t in engine.trackers.values()))
    return task


async def test_added_checked_removed_not_readdressed_fresh_unchanged_kept() -> None:
    devices = make_devices(5)
    prober = FakeProber()
    engine = Engine(devices, prober, config(interval=0.05))
    seen: list[InventoryDiff] = []
    engine.on_inventory_change.append(seen.append)
    task = await running(engine)
    kept = {name: engine.trackers[name] for name in ("dev0", "dev1", "dev3")}
    old_address = devices[4].address
    added = dataclasses.replace(make_devices(1, prefix="new")[0], address="127.9.0.1")
    moved = dataclasses.replace(devices[4], address="127.9.0.4")
    changed = dataclasses.replace(devices[3], parents=("dev0",), branch="elsewhere")
    diff = engine.apply_inventory([devices[0], devices[1], changed, moved, added])  # dev2 removed
    assert [d.name for d in diff.added] == ["new0"]
    assert [d.name for d in diff.removed] == ["dev2"]
    assert {c.name: c.fields for c in diff.changed} == {"dev3": ("branch", "parent"), "dev4": ("address",)}
    assert engine.inventory_version == 1 and seen == [diff]
    assert engine.trackers["dev4"].state is State.UNKNOWN  # fresh: the new address says nothing yet
    assert engine.state_counts == counts_of(engine)
    calls = dict(prober.calls)
    await asyncio.sleep(0.4)
    engine.stop()
    await asyncio.wait_for(task, 5)
    assert set(engine.trackers) == {"dev0", "dev1", "dev3", "dev4", "new0"}
    for name, tracker in kept.items():
        assert engine.trackers[name] is tracker, name
        assert tracker.state is State.UP
    assert engine.trackers["dev3"].device.branch == "elsewhere"
    assert prober.calls.get(devices[2].address, 0) == calls.get(devices[2].address, 0)  # removed: no probe
    assert prober.calls.get(old_address, 0) == calls.get(old_address, 0)  # the old address: none either
    assert prober.calls["127.9.0.4"] >= 4 and prober.calls["127.9.0.1"] >= 4
    assert engine.trackers["dev4"].state is State.UP and engine.trackers["new0"].state is State.UP
    assert engine.state_counts == counts_of(engine) == {State.UNKNOWN: 0, State.UP: 5, State.DOWN: 0,
                                                        State.UNREACHABLE: 0}


async def test_a_removed_down_or_flapping_device_leaves_the_counts() -> None:
    devices = make_devices(4)
    prober = FakeProber()
    prober.down.add(devices[1].address)
    # dev2 answers every other check: it flaps
    prober.behaviour = lambda address, n: (None if address == devices[1].address
                                           or (address == devices[2].address and (n // 3) % 2) else 1.0)
    engine = Engine(devices, prober, config(interval=0.05, confirm_probes=2))
    task = asyncio.create_task(engine.run())
    await wait_for(lambda: engine.trackers["dev2"].flapping and engine.trackers["dev1"].state is State.DOWN)
    assert engine.flapping == 1 and engine.state_counts[State.DOWN] >= 1
    engine.apply_inventory([devices[0], devices[3]])
    assert engine.flapping == 0
    assert engine.state_counts == counts_of(engine) == {State.UNKNOWN: 0, State.UP: 2, State.DOWN: 0,
                                                        State.UNREACHABLE: 0}
    await asyncio.sleep(0.3)
    engine.stop()
    await asyncio.wait_for(task, 5)
    assert engine.flapping == 0
    assert engine.state_counts == counts_of(engine)
    assert engine.last_gauges is not None and engine.last_gauges.devices_down == 0


async def test_a_check_in_flight_of_a_removed_device_is_not_counted() -> None:
    devices = make_devices(2)
    prober = FakeProber(rtt_ms=150.0)  # each probe is out for 150 ms
    engine = Engine(devices, prober, config(interval=0.5, timeout=1.0))
    sub = engine.bus.subscribe("test")
    task = asyncio.create_task(engine.run())
    gone = devices[1].address
    await wait_for(lambda: prober._active.get(gone, 0) == 1)  # its first probe is out
    engine.apply_inventory([devices[0]])
    await asyncio.sleep(0.4)
    engine.stop()
    await asyncio.wait_for(task, 5)
    results = [e for e in sub.drain() if isinstance(e, CheckResult)]
    assert {e.device for e in results} == {"dev0"}
    assert engine.state_counts == counts_of(engine) == {State.UNKNOWN: 0, State.UP: 1, State.DOWN: 0,
                                                        State.UNREACHABLE: 0}
    assert engine.checks_done == len(results)


async def test_the_same_inventory_again_schedules_nothing_twice() -> None:
    devices = make_devices(6, interval=0.1)
    prober = FakeProber()
    engine = Engine(devices, prober, config())
    engine.apply_inventory(devices)  # before run: nothing happens, run schedules each once
    task = asyncio.create_task(engine.run())
    await asyncio.sleep(0.05)
    for _ in range(5):
        diff = engine.apply_inventory(list(devices))
        assert diff.empty and diff.unchanged == 6
    assert engine.inventory_version == 0
    assert sorted(live_slots(engine)) == sorted(s.key for s in engine.slots)
    start = dict(prober.calls)
    await asyncio.sleep(1.0)
    engine.stop()
    await asyncio.wait_for(task, 5)
    for device in devices:  # 1 s at 0.1 s: ~10 checks each, not 20 or more
        made = prober.calls[device.address] - start.get(device.address, 0)
        assert 8 <= made <= 12, (device.name, made)


async def test_a_changed_interval_moves_the_slot_keeps_the_tracker_and_one_check_at_a_time() -> None:
    devices = make_devices(3, interval=0.5)
    prober = FakeProber(rtt_ms=80.0)
    engine = Engine(devices, prober, config(timeout=1.0))
    task = await running(engine)
    trackers = dict(engine.trackers)
    faster = [dataclasses.replace(d, interval=0.1) for d in devices]
    await wait_for(lambda: prober.in_flight > 0)  # change it while checks are in flight
    diff = engine.apply_inventory(faster)
    assert {c.fields for c in diff.changed} == {("interval",)}
    assert sorted(live_slots(engine)) == sorted(s.key for s in engine.slots)
    assert len(live_slots(engine)) == 3
    start = dict(prober.calls)
    await asyncio.sleep(1.0)
    engine.stop()
    await asyncio.wait_for(task, 5)
    for device in devices:
        assert engine.trackers[device.name] is trackers[device.name]
        made = prober.calls[device.address] - start[device.address]
        # 0.1 s apart, but a check lasts 80 ms: 7 to 11 in a second, never two at once
        assert 6 <= made <= 11, (device.name, made)
        assert prober.max_in_flight_per_address[device.address] == 1
    assert all(s.interval == 0.1 for s in engine.slots)


async def test_a_listener_that_fails_does_not_undo_the_change() -> None:
    devices = make_devices(2)
    engine = Engine(devices, FakeProber(), config())

    def broken(diff: InventoryDiff) -> None:
        raise RuntimeError("listener bug")

    later: list[InventoryDiff] = []
    engine.on_inventory_change += [broken, later.append]
    diff = engine.apply_inventory(devices[:1])
    assert set(engine.trackers) == {"dev0"} and later == [diff] and engine.inventory_version == 1
    assert engine.state_counts == counts_of(engine) == {State.UNKNOWN: 1, State.UP: 0, State.DOWN: 0,
                                                        State.UNREACHABLE: 0}


async def test_probe_now_follows_the_inventory() -> None:
    """An operator's "probe now" reaches an added device, not a removed one; one removed while
    its check runs is said to be gone (KeyError), its result not counted."""
    import pytest

    devices = make_devices(2)
    prober = FakeProber(rtt_ms=100.0)
    engine = Engine(devices, prober, config(interval=3600.0, timeout=0.3))
    added = dataclasses.replace(make_devices(1, prefix="new")[0], address="127.9.0.1")
    engine.apply_inventory([*devices, added])
    result = await engine.probe_now("new0")
    assert result.ok and engine.trackers["new0"].state is State.UP
    running_probe = asyncio.create_task(engine.probe_now("dev1"))
    await wait_for(lambda: prober._active.get(devices[1].address, 0) == 1)
    engine.apply_inventory([devices[0], added])
    with pytest.raises(KeyError):
        await running_probe
    with pytest.raises(KeyError):
        await engine.probe_now("dev1")
    assert engine.checks_done == 1
    assert engine.state_counts == counts_of(engine) == {State.UNKNOWN: 1, State.UP: 1, State.DOWN: 0,
                                                        State.UNREACHABLE: 0}


async def test_probe_now_of_a_device_readdressed_during_its_check_checks_the_new_address() -> None:
    """"probe now" while a new inventory gives the device another address: the check of the old
    address is not counted, and the operator gets the new address's result (it was a KeyError:
    "no device named ... in the inventory", of a device that is)."""
    devices = make_devices(2)
    prober = FakeProber(rtt_ms=100.0)
    engine = Engine(devices, prober, config(interval=3600.0, timeout=0.3))
    running_probe = asyncio.create_task(engine.probe_now("dev1"))
    await wait_for(lambda: prober._active.get(devices[1].address, 0) == 1)
    moved = dataclasses.replace(devices[1], address="127.9.0.7")
    engine.apply_inventory([devices[0], moved])
    result = await running_probe
    assert result.ok and result.device == "dev1"
    assert prober.calls.get("127.9.0.7") == 1 and prober._active.get("127.9.0.7") == 0
    assert engine.checks_done == 1 and engine.checks_on_demand == 2
