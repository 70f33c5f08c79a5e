"""SNMP poller with a scripted client: no backlog, DOWN devices skipped, failing agents backed off."""

from __future__ import annotations

import asyncio
import dataclasses
import time

import pytest

from poller.bus import EventBus
from poller.credentials import V3, V2c
from poller.events import SnmpAgentChange, SnmpFailure, SnmpPoll
from poller.snmp_poller import SnmpConfig, SnmpPoller
from poller.snmp_source import Agent, RawPoll, SnmpError
from tests.fakes import FakeSnmpClient


def agents(n: int) -> list[Agent]:
    return [Agent(f"d{i}", f"127.0.0.{i + 1}", 161, V2c("c", "secret")) for i in range(n)]


async def run_for(poller: SnmpPoller, seconds: float) -> None:
    task = asyncio.create_task(poller.run())
    await asyncio.sleep(seconds)
    poller.stop()
    await task


async def test_every_agent_is_polled_once_per_interval_and_publishes_polls() -> None:
    bus = EventBus()
    sub = bus.subscribe("t")
    client = FakeSnmpClient()
    poller = SnmpPoller(agents(5), client, bus, config=SnmpConfig(interval=0.1))
    await run_for(poller, 0.55)
    assert all(5 <= n <= 7 for n in client.calls.values()), client.calls
    polls = [e for e in sub.drain() if isinstance(e, SnmpPoll)]
    assert {p.device for p in polls} == {f"d{i}" for i in range(5)}
    assert poller.gauges()["snmp_skipped"] == 0


async def test_a_slow_agent_is_skipped_and_counted_never_queued() -> None:
    client = FakeSnmpClient(delay=0.25)  # answers take 2.5 intervals
    poller = SnmpPoller(agents(3), client, EventBus(), config=SnmpConfig(interval=0.1))
    await run_for(poller, 1.0)
    assert client.max_in_flight == 1  # at most one poll per device in flight
    assert all(n <= 5 for n in client.calls.values())
    assert poller.scheduler.skipped_busy >= 3 * 4
    assert poller.gauges()["snmp_skipped"] == poller.scheduler.skipped


async def test_devices_icmp_holds_down_are_not_polled() -> None:
    client = FakeSnmpClient()
    poller = SnmpPoller(agents(3), client, EventBus(), is_down=lambda name: name == "d1",
                        config=SnmpConfig(interval=0.1))
    await run_for(poller, 0.45)
    assert "d1" not in client.calls
    assert client.calls["d0"] >= 4 and client.calls["d2"] >= 4
    assert poller.not_polled_down >= 4


async def test_a_failing_agent_is_backed_off_reported_once_and_recovers() -> None:
    bus = EventBus()
    sub = bus.subscribe("t")
    client = FakeSnmpClient()
    client.failing.add("d0")
    poller = SnmpPoller(agents(2), client, bus, config=SnmpConfig(interval=0.05, backoff_after=2,
                                                                   backoff_max=4))
    task = asyncio.create_task(poller.run())
    await asyncio.sleep(1.0)  # ~20 intervals
    failing_calls = client.calls["d0"]
    # Backed off: 2 failures, then polls 2 and then 4 intervals apart (not ~20).
    assert 4 <= failing_calls <= 8, failing_calls
    assert client.calls["d1"] >= 17  # the other agent was never held up
    assert poller.backed_off >= 10
    changes = [e for e in sub.drain() if isinstance(e, SnmpAgentChange)]
    assert [(c.device, c.answering, c.reason) for c in changes] == [("d0", False, "timeout")]
    assert poller.gauges()["snmp_agents_failing"] == 1
    client.failing.clear()
    await asyncio.sleep(0.4)  # the next backed-off poll comes within 4 intervals
    poller.stop()
    await task
    changes = [e for e in sub.drain() if isinstance(e, SnmpAgentChange)]
    assert [(c.device, c.answering) for c in changes] == [("d0", True)]
    assert poller.gauges()["snmp_agents_failing"] == 0


@pytest.mark.alone  # polls per second and the event loop's lag over wall time
async def test_gauges_report_rates_and_lag() -> None:
    client = FakeSnmpClient()
    poller = SnmpPoller(agents(10), client, EventBus(), config=SnmpConfig(interval=0.1))
    poller.gauges()  # start of the measuring window
    await run_for(poller, 0.5)
    gauges = poller.gauges()
    assert 60 <= gauges["snmp_polls_per_s"] <= 140
    assert gauges["snmp_agents"] == 10
    assert 0 <= gauges["snmp_lag_p99_ms"] < 100


async def test_polls_past_the_in_flight_cap_are_skipped_and_counted() -> None:
    client = FakeSnmpClient(delay=0.25)
    poller = SnmpPoller(agents(10), client, EventBus(), config=SnmpConfig(interval=0.1, max_in_flight=4))
    await run_for(poller, 0.5)
    assert client.max_in_flight == 1 and client.max_in_flight_total == 4
    assert len(client.calls) <= 10 and sum(client.calls.values()) <= 4 * 3
    assert poller.skipped_full >= 10
    assert poller.gauges()["snmp_skipped"] >= poller.skipped_full


async def test_an_unexpected_error_is_a_failed_poll_reported_and_backed_off() -> None:
    class Broken(FakeSnmpClient):
        async def poll(self, agent: Agent) -> RawPoll:
            self.calls[agent.key] = self.calls.get(agent.key, 0) + 1
            raise OSError(97, "Address family not supported by protocol")
    bus = EventBus()
    sub = bus.subscribe("t")
    poller = SnmpPoller(agents(1), Broken(), bus, config=SnmpConfig(interval=0.05, backoff_after=2))
    await run_for(poller, 0.6)
    assert poller.failed >= 3 and poller.backed_off >= 3
    changes = [e for e in sub.drain() if isinstance(e, SnmpAgentChange)]
    assert [(c.answering, c.reason) for c in changes] == [(False, "error")]


class CpuBoundClient(FakeSnmpClient):
    """Each answer holds the event loop for ``cost`` seconds, as pysnmp's v3 decoding does: the
    more polls in flight, the longer answers wait behind each other, and the loop lags."""

    def __init__(self, cost: float) -> None:
        super().__init__()
        self.cost = cost
        self.in_flight = 0
        self.v3_max_in_flight = 0

    async def poll(self, agent: Agent) -> RawPoll:
        self.in_flight += 1
        v3 = not isinstance(agent.credential, V2c)
        self.v3_max_in_flight = max(self.v3_max_in_flight, self.in_flight if v3 else 0)
        sent = time.monotonic()
        try:
            raw = await super().poll(agent)
            if v3:
                time.sleep(self.cost)  # decoding on the loop (a sleep: no CPU taken from others)
            return dataclasses.replace(raw, latency_s=time.monotonic() - sent)
        finally:
            self.in_flight -= 1


@pytest.mark.alone  # the loop held by the answers' cost: what it measures is the loop's time
async def test_v3_overload_is_skipped_for_capacity_and_v2c_is_not_held_by_it() -> None:
    v3 = V3("u", "user", "sha", "auth-key-1", "aes", "priv-key-1")
    many = [Agent(f"v3-{i}", f"127.0.1.{i + 1}", 161, v3) for i in range(200)]
    client = CpuBoundClient(cost=0.01)  # 100 v3 polls/s fit; 10 in flight answer in 0.1 s, the target
    poller = SnmpPoller([*many, *agents(5)], client, EventBus(),
                        config=SnmpConfig(interval=0.2, v3_latency_target=0.1))
    task = asyncio.create_task(poller.run())
    # The limit starts at 64 (0.64 s of answers) and shrinks to what fits (~10).
    deadline = time.monotonic() + 15.0
    while poller.v3_admission.limit > 16 and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    assert poller.v3_admission.limit <= 16, poller.v3_admission.limit
    settled = dict(client.calls)
    await asyncio.sleep(2.0)
    poller.stop()
    await task
    gauges = poller.gauges()
    assert poller.failed == 0 and poller.backed_off == 0
    assert gauges["snmp_skipped_capacity"] > 1000  # ~1,000 v3 polls/s wanted, ~100 fit
    assert client.v3_max_in_flight <= 64  # the limit it starts at, not the 200 due at once
    assert poller.polls > 100
    # Once the limit has come down to what fits, v2c is polled every interval (10 in 2 s).
    assert all(client.calls[f"d{i}"] - settled[f"d{i}"] >= 8 for i in range(5)), (settled, client.calls)


async def test_every_failed_poll_is_published_with_what_came_back_made_inert() -> None:
    class Refusing(FakeSnmpClient):
        async def poll(self, agent: Agent) -> RawPoll:
            self.calls[agent.key] = self.calls.get(agent.key, 0) + 1
            if self.calls[agent.key] % 2:
                raise SnmpError("error", "agent error genErr at var-bind 1")
            raise ValueError("odd \x1b]0;owned\x07 answer" + "x" * 1000)
    bus = EventBus()
    sub = bus.subscribe("t")
    client = Refusing()
    poller = SnmpPoller(agents(1), client, bus, config=SnmpConfig(interval=0.05, backoff_after=100))
    await run_for(poller, 0.3)
    failures = [e for e in sub.drain() if isinstance(e, SnmpFailure)]
    assert len(failures) == client.calls["d0"] == poller.failed >= 4  # one per poll, none lost
    assert failures[0].reason == "error" and failures[0].detail == "agent error genErr at var-bind 1"
    odd = failures[1]
    assert odd.detail.startswith("ValueError: odd \ufffd]0;owned\ufffd answer") and len(odd.detail) <= 300
