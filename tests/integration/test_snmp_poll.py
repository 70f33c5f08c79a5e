"""SNMP polling against real agents on loopback: snmpsim's recorded and crafted devices, Debian's
snmpd with v2c and v3 users; rates against the agents' true rates, wraps, reboots, silence."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from poller.bus import EventBus, Subscription
from poller.credentials import Credential, V2c, load_credentials
from poller.events import Reboot, SnmpAgentChange, SnmpPoll
from poller.snmp_poller import SnmpConfig, SnmpPoller
from poller.snmp_rates import DeviceCounters
from poller.snmp_source import Agent, SnmpError
from poller.snmp_walk import SnmpClient
from tests.lab.snmp_agents import SnmpdAgent, SnmpsimAgent


@pytest.fixture
async def client() -> AsyncIterator[SnmpClient]:
    c = SnmpClient()
    yield c
    c.close()


def sim_agent(sim: SnmpsimAgent, community: str, key: str | None = None) -> Agent:
    return Agent(key or community, sim.addresses[0], sim.port, V2c(community, community), timeout=1.0)


def snmpd_credentials(agent: SnmpdAgent, tmp_path: Path) -> dict[str, Credential]:
    return load_credentials(agent.write_credentials(tmp_path / "credentials.yaml"))


async def test_recorded_linux_host_system_group_and_64_bit_interfaces(snmpsim_agent: SnmpsimAgent,
                                                                      client: SnmpClient) -> None:
    raw = await client.poll(sim_agent(snmpsim_agent, "linux"))
    assert raw.system.descr.startswith("Linux")
    assert raw.system.object_id.startswith("1.3.6.1.4.1.")
    assert raw.system.uptime_ticks > 0
    assert raw.interfaces, "the recorded host has interfaces"
    assert all(i.hc_in_octets is not None for i in raw.interfaces)
    assert any(i.name for i in raw.interfaces)
    assert [i.ifindex for i in raw.interfaces] == sorted(i.ifindex for i in raw.interfaces)


async def test_recorded_windows_xp_host_has_32_bit_counters_only(snmpsim_agent: SnmpsimAgent,
                                                                 client: SnmpClient) -> None:
    raw = await client.poll(sim_agent(snmpsim_agent, "winxp"))
    assert "Windows" in raw.system.descr
    assert raw.interfaces
    assert all(i.hc_in_octets is None and i.name is None for i in raw.interfaces)
    assert all(i.in_octets is not None and i.descr for i in raw.interfaces)
    second = await client.poll(sim_agent(snmpsim_agent, "winxp"))  # a fast poll keeps the names
    assert [i.descr for i in second.interfaces] == [i.descr for i in raw.interfaces]


@pytest.mark.alone  # measures a rate over wall time: other tests' load would skew it
async def test_rates_match_the_agents_true_rates_and_over_speed_is_discarded(
        snmpsim_agent: SnmpsimAgent, client: SnmpClient) -> None:
    device = snmpsim_agent.device("rate64")
    counters = DeviceCounters("rate64", snmpsim_agent.addresses[0])
    agent = sim_agent(snmpsim_agent, "rate64")
    counters.update(await client.poll(agent))
    await asyncio.sleep(2.0)
    outcome = counters.update(await client.poll(agent))
    stats = {i.name: i for i in outcome.poll.interfaces}
    eth0, xe0 = device.interface(1), device.interface(3)
    assert stats["eth0"].in_bps == pytest.approx(eth0.in_bps, rel=0.03)
    assert stats["eth0"].out_bps == pytest.approx(eth0.out_bps, rel=0.03)
    assert stats["eth0"].counters_64 and stats["eth0"].speed_bps == eth0.speed_bps
    # 40 Gbit/s: ifSpeed saturates at 2**32-1, ifHighSpeed gives the speed; the 32-bit
    # counters wrap every 1.7 s, the 64-bit ones give the truth.
    assert stats["xe0"].speed_bps == xe0.speed_bps
    assert stats["xe0"].in_bps == pytest.approx(xe0.in_bps, rel=0.03)
    # eth1 "carries" 20 Mbit/s on a 10 Mbit/s link: impossible, so no rate, and counted.
    assert stats["eth1"].in_bps is None
    assert outcome.over_speed >= 1
    assert stats["eth2"].oper == "down" and stats["eth2"].in_bps == 0.0


async def test_a_32_bit_counter_that_wrapped_gives_the_true_rate(snmpsim_agent: SnmpsimAgent,
                                                                client: SnmpClient) -> None:
    wan0 = snmpsim_agent.device("wrap32").interface(1)
    counters = DeviceCounters("wrap32", snmpsim_agent.addresses[0])
    agent = sim_agent(snmpsim_agent, "wrap32")
    first = await client.poll(agent)
    counters.update(first)
    await asyncio.sleep(wan0.in_wrap_period_32 * 0.75)
    second = await client.poll(agent)
    outcome = counters.update(second)
    before = next(i for i in first.interfaces if i.ifindex == 1).in_octets
    after = next(i for i in second.interfaces if i.ifindex == 1).in_octets
    assert before is not None and after is not None
    if after > before:  # the sleep straddled no wrap: poll once more, a wrap is due
        await asyncio.sleep(wan0.in_wrap_period_32 * 0.5)
        second = await client.poll(agent)
        outcome = counters.update(second)
        after = next(i for i in second.interfaces if i.ifindex == 1).in_octets
        assert after is not None
    stat = next(i for i in outcome.poll.interfaces if i.ifindex == 1)
    assert not stat.counters_64
    assert stat.in_bps == pytest.approx(wan0.in_bps, rel=0.03)


async def test_snmpd_v2c_and_v3_users(snmpd_agent: SnmpdAgent, client: SnmpClient, tmp_path: Path) -> None:
    credentials = snmpd_credentials(snmpd_agent, tmp_path)
    names = ["lab-v2c", "lab-sha", "lab-sha-aes", "lab-sha256-aes", "lab-sha512-aes256", "lab-md5-des"]
    for name in names:
        raw = await client.poll(Agent(name, "127.0.0.1", snmpd_agent.port, credentials[name], timeout=1.0))
        assert raw.system.object_id == "1.3.6.1.4.1.8072.3.2.10", name  # net-snmp on Linux
        lo = next(i for i in raw.interfaces if i.name == "lo")
        assert lo.hc_in_octets is not None and lo.admin == 1 and lo.oper == 1, name


async def test_a_wrong_community_times_out_and_a_wrong_key_is_refused(
        snmpd_agent: SnmpdAgent, client: SnmpClient, tmp_path: Path) -> None:
    credentials = snmpd_credentials(snmpd_agent, tmp_path)
    with pytest.raises(SnmpError) as info:
        await client.poll(Agent("wrong", "127.0.0.1", snmpd_agent.port, V2c("w", "not-the-community"),
                                timeout=0.3, retries=0))
    assert info.value.reason == "timeout" and "not-the-community" not in str(info.value)
    good = credentials["lab-sha-aes"]
    assert not isinstance(good, V2c)
    bad = type(good)(good.name, good.user, good.auth_protocol, "wrong-auth-key", good.priv_protocol,
                     good.priv_key)
    with pytest.raises(SnmpError) as info:
        await client.poll(Agent("badkey", "127.0.0.1", snmpd_agent.port, bad, timeout=0.5, retries=0))
    assert info.value.reason == "authentication" and "wrong-auth-key" not in str(info.value)


async def wait_for(bus_sub: Subscription, kind: type, timeout: float) -> list[object]:
    """Events of ``kind`` taken from the subscription within ``timeout`` seconds (at least one)."""
    found: list[object] = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not found:
        assert loop.time() < deadline, f"no {kind.__name__} within {timeout} s"
        await asyncio.sleep(0.05)
        found = [e for e in bus_sub.drain() if isinstance(e, kind)]
    return found


async def test_restarting_the_agent_is_a_reboot_event(snmpd_agent: SnmpdAgent, tmp_path: Path) -> None:
    credentials = snmpd_credentials(snmpd_agent, tmp_path)
    bus = EventBus()
    sub = bus.subscribe("t")
    agent = Agent("r1", "127.0.0.1", snmpd_agent.port, credentials["lab-sha-aes"], timeout=0.5, retries=1)
    poller = SnmpPoller([agent], SnmpClient(), bus, config=SnmpConfig(interval=0.5))
    task = asyncio.create_task(poller.run())
    try:
        await wait_for(sub, SnmpPoll, 5)
        await asyncio.sleep(1.5)  # let the agent's uptime grow past a restart's
        snmpd_agent.restart()
        reboots = await wait_for(sub, Reboot, 10)
        reboot = reboots[0]
        assert isinstance(reboot, Reboot) and reboot.device == "r1"
        assert reboot.uptime_s < reboot.previous_uptime_s
        assert reboot.uptime_s < 5
    finally:
        poller.stop()
        await task
        poller.close()
    assert poller.failed == 0  # v3 kept working across the agent's restart (engineBoots + 1)


async def test_an_agent_that_stops_answering_is_reported_backed_off_and_recovers(
        snmpd_agent: SnmpdAgent, tmp_path: Path) -> None:
    credentials = snmpd_credentials(snmpd_agent, tmp_path)
    bus = EventBus()
    sub = bus.subscribe("t")
    silent = Agent("silent", "127.0.0.1", snmpd_agent.port, credentials["lab-v2c"], timeout=0.2, retries=0)
    poller = SnmpPoller([silent], SnmpClient(), bus, config=SnmpConfig(interval=0.3, backoff_after=2,
                                                                       backoff_max=4))
    task = asyncio.create_task(poller.run())
    try:
        await wait_for(sub, SnmpPoll, 5)
        snmpd_agent.pause()
        changes = await wait_for(sub, SnmpAgentChange, 5)
        assert [(c.answering, c.reason) for c in changes if isinstance(c, SnmpAgentChange)] == [
            (False, "timeout")]
        await asyncio.sleep(2.5)
        assert poller.backed_off >= 3
        snmpd_agent.resume()
        changes = await wait_for(sub, SnmpAgentChange, 5)
        assert [c.answering for c in changes if isinstance(c, SnmpAgentChange)] == [True]
    finally:
        poller.stop()
        await task
        poller.close()
    assert poller.gauges()["snmp_timeouts"] >= 2


async def test_a_v3_agent_restarted_without_raising_its_boots_answers_again_within_two_intervals(
        snmpd_agent: SnmpdAgent, tmp_path: Path) -> None:
    # snmpd -C with a fresh persistent directory: snmpEngineBoots stays 1 and a new engineID
    # answers. pysnmp dropped every answer of such an agent (its cached engine no longer
    # matched) until wardtui restarted; our USM rediscovers it on its unknownEngineID report.
    credentials = snmpd_credentials(snmpd_agent, tmp_path)
    bus = EventBus()
    sub = bus.subscribe("t")
    interval = 1.0
    agent = Agent("r2", "127.0.0.1", snmpd_agent.port, credentials["lab-sha-aes"], timeout=0.3, retries=0)
    client = SnmpClient()
    poller = SnmpPoller([agent], client, bus, config=SnmpConfig(interval=interval))
    task = asyncio.create_task(poller.run())
    loop = asyncio.get_running_loop()
    try:
        await wait_for(sub, SnmpPoll, 5)
        # Uptime well past what the restarted agent will have at its first answer (~1.5 s): a
        # sysUpTime that rose by less than 2 s is within is_reboot's tolerance.
        await asyncio.sleep(3.5)
        assert snmpd_agent.engine_boots() == 1
        snmpd_agent.restart(keep_state=False)
        back = loop.time()
        assert snmpd_agent.engine_boots() == 1  # not raised
        sub.drain()
        seen: list[object] = []
        while not any(isinstance(e, SnmpPoll) for e in seen):
            # The first poll after the restart may meet the agent still starting; the next must answer.
            assert loop.time() < back + 2 * interval + 0.5, \
                f"no answer within 2 intervals of the restart; events: {seen}"
            await asyncio.sleep(0.05)
            seen += sub.drain()
        reboots = [e for e in seen if isinstance(e, Reboot)]
        assert len(reboots) == 1 and reboots[0].device == "r2", seen
        assert reboots[0].uptime_s < reboots[0].previous_uptime_s
    finally:
        poller.stop()
        await task
        poller.close()
    assert poller.failing == 0  # never reported as not answering


async def test_a_forgotten_v3_engine_still_times_out_and_is_found_again(snmpd_agent: SnmpdAgent,
                                                                      tmp_path: Path) -> None:
    """After a timeout the agent's engine is forgotten (rediscovery); while it stays silent each
    poll still ends at its own timeout (pysnmp's expiry of a forgotten entry once killed its
    engine's timer, and with it every timeout: that path is gone, the behaviour is kept)."""
    credentials = snmpd_credentials(snmpd_agent, tmp_path)
    client = SnmpClient()
    try:
        agent = Agent("r1", "127.0.0.1", snmpd_agent.port, credentials["lab-sha-aes"], timeout=0.3, retries=0)
        await client.poll(agent)
        snmpd_agent.pause()
        with pytest.raises(SnmpError):
            await client.poll(agent)
        assert client.counters()["rediscoveries"] >= 1
        for _ in range(2):
            with pytest.raises(SnmpError) as info:
                await asyncio.wait_for(client.poll(agent), 3)
            assert info.value.reason == "timeout"
    finally:
        snmpd_agent.resume()
    try:
        await client.poll(agent)
    finally:
        client.close()
