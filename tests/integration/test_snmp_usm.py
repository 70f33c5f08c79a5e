"""Our SNMPv3 USM (poller/snmp_usm_client.py) against Debian's net-snmp snmpd on loopback: every
authentication and privacy protocol snmpd offers, its reports as errors that say which, and
agents that restart with a new engineID or with their clock set back."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from typing import Any

import pytest

from poller.credentials import V3
from poller.snmp_source import Agent, SnmpError
from poller.snmp_usm_client import UsmGetBulk
from poller.snmp_walk import SnmpClient
from tests.lab.snmp_agents import NET_SNMP_AUTH, NET_SNMP_PRIV, SnmpdAgent, snmpget

ALL_USERS: dict[str, dict[str, Any]] = {}
for _auth in NET_SNMP_AUTH:
    for _priv in (None, *NET_SNMP_PRIV):
        _name = f"u-{_auth}-{_priv or 'nopriv'}"
        ALL_USERS[_name] = dict(version=3, user=_name, auth_protocol=_auth, auth_key=f"auth-{_name}")
        if _priv:
            ALL_USERS[_name].update(priv_protocol=_priv, priv_key=f"priv-{_name}")
ALL_USERS["u-noauth"] = dict(version=3, user="u-noauth", auth_protocol="none", auth_key="")  # noAuthNoPriv


def v3(entry: dict[str, Any]) -> V3:
    return V3(entry["user"], entry["user"], entry["auth_protocol"], entry["auth_key"],
              entry.get("priv_protocol"), entry.get("priv_key"))


@pytest.fixture
def every_user_agent(snmpd_tools: None) -> Iterator[SnmpdAgent]:
    with SnmpdAgent(v3_users=ALL_USERS) as agent:
        yield agent


@pytest.fixture
async def usm_client() -> AsyncIterator[tuple[SnmpClient, UsmGetBulk]]:
    usm = UsmGetBulk()
    client = SnmpClient(v3=usm)
    yield client, usm
    client.close()


async def test_every_auth_and_priv_protocol_snmpd_offers(
        every_user_agent: SnmpdAgent, usm_client: tuple[SnmpClient, UsmGetBulk]) -> None:
    client, usm = usm_client
    port = every_user_agent.port
    v2c = await client.poll(Agent("v2c", "127.0.0.1", port, _v2c(every_user_agent), timeout=1.0))
    # MD5, SHA-1, SHA-2 x none, DES, AES-128/192/256, Cisco's 192/256; and noAuthNoPriv
    assert len(ALL_USERS) == 6 * 7 + 1
    for name, entry in ALL_USERS.items():
        raw = await client.poll(Agent(name, "127.0.0.1", port, v3(entry), timeout=1.0, retries=0))
        assert raw.system.name == v2c.system.name, name
        assert [i.ifindex for i in raw.interfaces] == [i.ifindex for i in v2c.interfaces], name
        assert any(i.hc_in_octets is not None for i in raw.interfaces), name
    counters = usm.counters()
    assert counters["v3_discoveries"] == len(ALL_USERS) and counters["engines"] == len(ALL_USERS)
    assert counters["v3_bad_replies"] == 0 and counters["rediscoveries"] == 0


def _v2c(agent: SnmpdAgent) -> Any:
    from poller.credentials import V2c

    return V2c("lab-v2c", agent.v2c_community)


async def _refusal(client: SnmpClient, agent: SnmpdAgent, credential: V3) -> SnmpError:
    with pytest.raises(SnmpError) as info:
        await client.poll(Agent(credential.name, "127.0.0.1", agent.port, credential, timeout=0.5, retries=0))
    return info.value


async def test_refusals_say_which_report_the_agent_sent(
        snmpd_agent: SnmpdAgent, usm_client: tuple[SnmpClient, UsmGetBulk]) -> None:
    client, _ = usm_client
    good = v3(snmpd_agent.v3_users["lab-sha-aes"])
    wrong_auth = await _refusal(client, snmpd_agent, replace(good, name="a", auth_key="wrong-auth-key"))
    assert wrong_auth.reason == "authentication" and "usmStatsWrongDigests" in str(wrong_auth)
    wrong_priv = await _refusal(client, snmpd_agent, replace(good, name="p", priv_key="wrong-priv-key"))
    # snmpd sends no decryptionErrors report (the PDU decrypts to noise, which it drops): the
    # agent answered discovery and then nothing, which is said as such.
    assert wrong_priv.reason == "authentication" and "wrong privacy key" in str(wrong_priv)
    unknown = await _refusal(client, snmpd_agent, replace(good, name="u", user="nobody-here"))
    assert unknown.reason == "authentication" and "usmStatsUnknownUserNames" in str(unknown)
    # A user the agent has without privacy, asked with privacy: not its security level.
    auth_only = v3(snmpd_agent.v3_users["lab-sha"])
    level = await _refusal(client, snmpd_agent, replace(auth_only, name="l", priv_protocol="aes",
                                                         priv_key="priv-aes-key"))
    assert level.reason == "authentication" and "usmStatsUnsupportedSecLevels" in str(level)
    for error in (wrong_auth, wrong_priv, unknown, level):
        assert "wrong-auth-key" not in str(error) and "priv-aes-key" not in str(error)
    # The right credential still works beside them.
    await client.poll(Agent("good", "127.0.0.1", snmpd_agent.port, good, timeout=0.5, retries=0))


async def test_an_agent_restarted_with_a_new_engine_id_is_rediscovered_within_the_same_poll(
        snmpd_agent: SnmpdAgent, usm_client: tuple[SnmpClient, UsmGetBulk]) -> None:
    client, usm = usm_client
    agent = Agent("r", "127.0.0.1", snmpd_agent.port, v3(snmpd_agent.v3_users["lab-sha-aes"]),
                  timeout=0.5, retries=0)
    await client.poll(agent)
    before = usm._peers["r"].engine
    assert before is not None
    snmpd_agent.restart(keep_state=False)
    assert snmpd_agent.engine_boots() == 1
    await client.poll(agent)  # unknownEngineIDs -> rediscovery -> the request once more
    after = usm._peers["r"].engine
    assert after is not None and after.engine_id != before.engine_id
    assert after.keys.auth_key != before.keys.auth_key  # localised again, to the new engine
    assert usm.counters()["rediscoveries"] == 1 and usm.counters()["v3_discoveries"] == 2


async def test_an_agent_restarted_with_its_clock_set_back_keeps_answering(
        snmpd_agent: SnmpdAgent, usm_client: tuple[SnmpClient, UsmGetBulk]) -> None:
    """Same engineID, same snmpEngineBoots, engine time back to 0: within 150 s of the old clock
    its answers are in the window; further back, its notInTimeWindow report resynchronises."""
    client, usm = usm_client
    agent = Agent("c", "127.0.0.1", snmpd_agent.port, v3(snmpd_agent.v3_users["lab-sha-aes"]),
                  timeout=0.5, retries=0)
    await client.poll(agent)
    engine_id, boots = snmpd_agent.engine_id(), snmpd_agent.engine_boots()
    snmpd_agent.restart_with_clock_back()
    assert (snmpd_agent.engine_id(), snmpd_agent.engine_boots()) == (engine_id, boots)
    await client.poll(agent)
    # As if the agent had been up for an hour before it restarted: our idea of its clock is
    # now an hour ahead of it, which it refuses with a signed notInTimeWindow report.
    engine = usm._peers["c"].engine
    assert engine is not None
    engine.set_clock(engine.boots, engine.now() + 3600)
    await client.poll(agent)
    assert usm.counters()["v3_resyncs"] == 1 and usm.counters()["rediscoveries"] == 0
    assert abs(engine.now() - _agent_time(snmpd_agent)) <= 2
    # And a boots we believe higher than the agent's (it lost its counter): the same.
    engine.set_clock(engine.boots + 5, engine.now())
    await client.poll(agent)
    assert usm.counters()["v3_resyncs"] == 2 and engine.boots == boots


def _agent_time(agent: SnmpdAgent) -> int:
    oid = "1.3.6.1.6.3.10.2.1.3.0"  # snmpEngineTime
    got = snmpget("127.0.0.1", agent.port, [oid], agent.v2c)
    assert got is not None
    return int(got[oid])


async def test_a_timeout_forgets_the_engine_and_the_next_poll_discovers_it(
        snmpd_agent: SnmpdAgent, usm_client: tuple[SnmpClient, UsmGetBulk]) -> None:
    client, usm = usm_client
    agent = Agent("t", "127.0.0.1", snmpd_agent.port, v3(snmpd_agent.v3_users["lab-md5-des"]),
                  timeout=0.3, retries=1)
    await client.poll(agent)
    snmpd_agent.pause()
    try:
        with pytest.raises(SnmpError) as info:
            await client.poll(agent)
        assert info.value.reason == "timeout"
        assert usm.counters()["rediscoveries"] == 1 and usm.counters()["engines"] == 0
        with pytest.raises(SnmpError) as info:  # discovery itself times out now
            await client.poll(agent)
        assert info.value.reason == "timeout" and usm.counters()["rediscoveries"] == 1
    finally:
        snmpd_agent.resume()
    await client.poll(agent)
    assert usm.counters()["v3_discoveries"] == 2
