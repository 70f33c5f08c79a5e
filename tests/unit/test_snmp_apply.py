"""SnmpPoller.apply_agents: SNMP agents added, removed and changed while the poller runs."""

from __future__ import annotations

import asyncio
import dataclasses

from poller.bus import EventBus
from poller.credentials import V2c
from poller.events import SnmpPoll
from poller.snmp_poller import SnmpConfig, SnmpPoller
from tests.fakes import FakeSnmpClient
from tests.unit.test_snmp_poller import agents


async def test_added_polled_removed_not_changed_forgotten_and_polled_afresh() -> None:
    bus = EventBus()
    sub = bus.subscribe("t")
    client = FakeSnmpClient()
    first = agents(4)
    poller = SnmpPoller(first, client, bus, config=SnmpConfig(interval=0.1))
    task = asyncio.create_task(poller.run())
    await asyncio.sleep(0.25)
    new_port = dataclasses.replace(first[1], port=1161)
    new_secret = dataclasses.replace(first[2], credential=V2c("c", "other"))
    added = dataclasses.replace(agents(5)[4], key="d9")
    changes = poller.apply_agents([first[0], new_port, new_secret, added])  # d3 removed
    assert (changes.added, changes.removed, changes.changed) == (("d9",), ("d3",), ("d1", "d2"))
    assert changes.details == {"d1": ("port",), "d2": ("credential",)}
    assert sorted(client.forgotten) == ["d1", "d2", "d3"]  # never the unchanged d0
    assert len(poller) == 4
    polled_before = len(client.polled)
    sub.drain()
    await asyncio.sleep(0.35)
    poller.stop()
    await task
    after = client.polled[polled_before:]
    assert "d3" not in {a.key for a in after}
    assert {a.port for a in after if a.key == "d1"} == {1161}
    assert {a.credential for a in after if a.key == "d2"} == {V2c("c", "other")}
    for key in ("d0", "d1", "d2", "d9"):
        assert 2 <= sum(1 for a in after if a.key == key) <= 5, (key, after)
    polls = [e for e in sub.drain() if isinstance(e, SnmpPoll)]
    assert {p.device for p in polls} == {"d0", "d1", "d2", "d9"}
    assert poller.gauges()["snmp_agents"] == 4.0


async def test_a_poller_with_no_agents_takes_some_and_a_failing_removed_one_leaves_the_count() -> None:
    client = FakeSnmpClient()
    client.failing.add("d0")
    poller = SnmpPoller([], client, EventBus(), config=SnmpConfig(interval=0.05, backoff_after=2))
    task = asyncio.create_task(poller.run())
    await asyncio.sleep(0.05)
    poller.apply_agents(agents(2))
    await asyncio.sleep(0.4)
    assert client.calls.get("d1", 0) >= 4
    assert poller.failing == 1
    poller.apply_agents(agents(2)[1:])
    assert poller.failing == 0 and poller.gauges()["snmp_agents_failing"] == 0.0
    calls = dict(client.calls)
    await asyncio.sleep(0.3)
    poller.stop()
    await task
    assert client.calls["d0"] == calls["d0"]


async def test_a_poll_in_flight_of_a_changed_agent_is_cancelled_not_published() -> None:
    bus = EventBus()
    sub = bus.subscribe("t")
    client = FakeSnmpClient(delay=0.3)
    poller = SnmpPoller(agents(1), client, bus, config=SnmpConfig(interval=1.0))
    task = asyncio.create_task(poller.run())
    await asyncio.sleep(0.1)  # the first poll is out
    assert client.calls == {"d0": 1}
    poller.apply_agents([dataclasses.replace(agents(1)[0], address="127.0.0.99")])
    await asyncio.sleep(0.5)
    poller.stop()
    await task
    polls = [e for e in sub.drain() if isinstance(e, SnmpPoll)]
    assert [p.address for p in polls] == ["127.0.0.99"]  # the old address's answer never came out
