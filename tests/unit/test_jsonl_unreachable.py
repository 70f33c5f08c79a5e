"""`--jsonl`: UNREACHABLE is printed as a state of its own ("to": "unreachable")."""

from __future__ import annotations

import json

from poller.engine import Engine
from poller.events import Gauges, Transition
from poller.inventory import Device
from poller.jsonl import event_record, summary_record
from tests.fakes import FakeProber
from tests.unit.test_engine import config


async def test_a_branch_behind_a_failed_router_prints_unreachable() -> None:
    router = Device("rtr", "127.4.0.1", "b", "r", "router", interval=3600.0)
    atm = Device("atm [b]x", "127.4.0.2", "b", "r", "atm", parents=("rtr",), interval=3600.0)
    prober = FakeProber()
    engine = Engine([router, atm], prober, config())
    sub = engine.bus.subscribe("jsonl", samples=False)
    prober.down = {router.address, atm.address}
    await engine.probe_now("atm [b]x")
    lines = [json.loads(json.dumps(event_record(e))) for e in sub.drain() if isinstance(e, Transition)]
    assert [(r["device"], r["from"], r["to"]) for r in lines] == [
        ("rtr", "unknown", "down"), ("atm [b]x", "unknown", "unreachable")]
    assert lines[1]["down_since"] is not None
    assert summary_record(engine.trackers["atm [b]x"])["state"] == "unreachable"
    gauges = engine._gauges()
    assert isinstance(gauges, Gauges)
    record = event_record(gauges)
    assert record is not None
    assert (record["devices_down"], record["devices_unreachable"]) == (1, 1)
