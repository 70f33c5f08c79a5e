"""Runtime.apply_inventory on a real SQLite history: the history learns the new devices, a device
new to the engine with an outage still open starts DOWN from it (as at a start), and SNMP starts
for a run that had no SNMP device."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

from poller.credentials import V2c
from poller.events import State
from poller.snmp_source import Agent
from tests.fakes import FakeProber, FakeSnmpClient, make_devices
from tests.unit.test_engine import wait_for
from wardtui.runtime import Options, Runtime


async def test_a_reload_seeds_a_readdressed_down_device_and_starts_snmp(tmp_path: Path) -> None:
    first = make_devices(2, interval=0.1)
    prober = FakeProber()
    prober.down.add(first[1].address)
    client = FakeSnmpClient()
    runtime = Runtime(Options(db=f"sqlite:///{tmp_path / 'h.db'}", interval=0.1, confirm_spacing=0.01),
                      prober=prober, devices=first, snmp_client=client)
    assert runtime.snmp is None
    await runtime.start()
    engine = runtime.engine
    task = asyncio.create_task(engine.run())
    try:
        await wait_for(lambda: engine.trackers["dev1"].state is State.DOWN)
        since = engine.trackers["dev1"].down_since
        store = runtime.store

        async def outage_written() -> bool:
            return "dev1" in await store.open_outages()

        for _ in range(100):
            if await outage_written():
                break
            await asyncio.sleep(0.05)
        moved = dataclasses.replace(first[1], address="127.2.0.99")
        prober.down.add(moved.address)  # down at its new address too
        added = dataclasses.replace(make_devices(3, interval=0.1)[2], snmp_credential="lab")
        agents = [Agent(added.name, added.address, 161, V2c("lab", "c0mmunity"))]
        diff = await runtime.apply_inventory([first[0], moved, added], agents)
        assert [c.fields for c in diff.changed] == [("address",)] and [d.name for d in diff.added] == ["dev2"]
        tracker = engine.trackers["dev1"]
        assert tracker.state is State.DOWN and tracker.down_since == since  # seeded from the history
        assert engine.state_counts == {State.UNKNOWN: 1, State.UP: 1, State.DOWN: 1, State.UNREACHABLE: 0}
        assert runtime.snmp is not None and runtime.devices[2] is added
        await wait_for(lambda: client.calls.get("dev2", 0) >= 1)
        await asyncio.sleep(0.5)
        assert engine.trackers["dev2"].state is State.UP
        assert engine.state_counts == {State.UNKNOWN: 0, State.UP: 2, State.DOWN: 1, State.UNREACHABLE: 0}
    finally:
        engine.stop()
        await task
        assert await runtime.close() == 0
    await store.open()
    try:
        outages = await store.outages("dev1")
        transitions = [(t.from_state, t.to_state, t.address) for t in await store.transitions("dev1")]
        latest = await store.snmp_latest("dev2")
    finally:
        await store.close()
    assert len(outages) == 1 and outages[0].end is None and outages[0].start == since  # the same outage
    assert transitions == [(State.UNKNOWN, State.DOWN, "127.2.0.99")]  # no second DOWN (address: the row's)
    assert latest is not None
