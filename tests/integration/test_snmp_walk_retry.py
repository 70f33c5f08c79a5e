"""A retry inside a multi-request walk does not skew a rate: each interface's counters are timed
by the answer that carried them (issue 17, item 3).

snmpsim serves a device whose 64-bit octet counters grow at known rates with wall time; the
client walks it two rows per request, through a UDP relay on loopback that drops one datagram
of the second poll's second request. That request is resent after the agent's timeout (1 s),
so the interfaces it and the later requests read were read ~1 s later than the poll began: a
rate divided by the time between the polls' starts is ~1.7 times the truth for them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

from poller.credentials import V2c
from poller.snmp_rates import DeviceCounters
from poller.snmp_source import Agent
from poller.snmp_walk import SnmpClient
from tests.integration.conftest import _require_snmp
from tests.lab.snmp_agents import SimDevice, SimInterface, SnmpsimAgent, snmpsim_missing

GBIT = 1_000_000_000
MANY = SimDevice("walk6", "wardtui sim: six ports, walked two at a time", tuple(
    SimInterface(i, f"ge{i}", GBIT, 100_000 * i, 50_000 * i, 10**9 * i, 10**8 * i) for i in range(1, 7)))


@pytest.fixture
def walk_agent() -> Iterator[SnmpsimAgent]:
    _require_snmp("snmpsim", snmpsim_missing())
    with SnmpsimAgent(devices=(MANY,), recorded=False, log_level="error") as agent:
        yield agent


class DroppingRelay(asyncio.DatagramProtocol):
    """Relays datagrams between one client and ``upstream`` (127.0.0.1); ``drop_at = n`` drops
    the n-th request the client sends from then on (1 = the next one)."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.client: Any = None
        self.transport: asyncio.DatagramTransport | None = None
        self.out: asyncio.DatagramTransport | None = None
        self.drop_at: int | None = None
        self.dropped = 0

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.client = addr
        if self.drop_at is not None:
            self.drop_at -= 1
            if self.drop_at == 0:
                self.drop_at = None
                self.dropped += 1
                return
        assert self.out is not None
        self.out.sendto(data, self.upstream)

    def answer(self, data: bytes) -> None:
        assert self.transport is not None
        self.transport.sendto(data, self.client)


class _Upstream(asyncio.DatagramProtocol):
    def __init__(self, relay: DroppingRelay) -> None:
        self.relay = relay

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.relay.answer(data)


async def open_relay(upstream: tuple[str, int]) -> tuple[DroppingRelay, int]:
    loop = asyncio.get_running_loop()
    relay = DroppingRelay(upstream)
    relay.transport, _ = await loop.create_datagram_endpoint(lambda: relay, local_addr=("127.0.0.1", 0))
    relay.out, _ = await loop.create_datagram_endpoint(lambda: _Upstream(relay),
                                                       local_addr=("127.0.0.1", 0))
    return relay, relay.transport.get_extra_info("sockname")[1]


@pytest.mark.alone  # rates over wall time
async def test_a_resent_request_in_a_walk_does_not_skew_the_rates(walk_agent: SnmpsimAgent) -> None:
    relay, port = await open_relay((walk_agent.addresses[0], walk_agent.port))
    client = SnmpClient(max_repetitions=2)  # six interfaces: three requests and one to see the end
    agent = Agent("walk6", "127.0.0.1", port, V2c("sim", "walk6"), timeout=1.0, retries=1)
    counters = DeviceCounters("walk6", "127.0.0.1")
    try:
        first = await client.poll(agent)
        assert [i.ifindex for i in first.interfaces] == [1, 2, 3, 4, 5, 6]
        counters.update(first)
        await asyncio.sleep(1.5)
        relay.drop_at = 2  # the second poll's second request: ports 3 and 4, resent after 1 s
        requests = client.requests
        second = await client.poll(agent)
        assert relay.dropped == 1 and client.requests - requests >= 3 and client.timeouts == 0
        reads = {i.ifindex: i.in_read for i in second.interfaces}
        assert all(r is not None for r in reads.values())
        assert reads[3] - reads[2] >= 0.9  # type: ignore[operator]  # the resend's wait is real
        outcome = counters.update(second)
    finally:
        client.close()
        assert relay.transport is not None and relay.out is not None
        relay.transport.close()
        relay.out.close()
    rates = {i.ifindex: (i.in_bps, i.out_bps) for i in outcome.poll.interfaces}
    for port_ in MANY.interfaces:
        in_bps, out_bps = rates[port_.index]
        assert in_bps == pytest.approx(port_.in_bps, rel=0.05), (port_.index, rates)
        assert out_bps == pytest.approx(port_.out_bps, rel=0.05), (port_.index, rates)
