"""The lab's real SNMP agents (snmpd, snmpsim) behave as the other tests rely on, seen by net-snmp's tools."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from poller.credentials import V3, load_credentials
from tests.lab.snmp_agents import (
    COUNTER32_MODULUS,
    RATE64,
    SNMP_ENGINE_BOOTS,
    SNMP_ENGINE_ID,
    SYS_UPTIME,
    WRAP32,
    AgentError,
    SnmpdAgent,
    SnmpsimAgent,
    if_oid,
    loopback_addresses,
    snmpget,
    snmpwalk,
)

SYSTEM = "1.3.6.1.2.1.1"
SYS_DESCR, SYS_NAME = "1.3.6.1.2.1.1.1.0", "1.3.6.1.2.1.1.5.0"


def timed_get(agent: SnmpsimAgent, community: str, oids: list[str]) -> tuple[float, dict[str, int]]:
    """One GET; the time is the midpoint of the request (the agent samples in between)."""
    before = time.monotonic()
    got = snmpget(agent.addresses[0], agent.port, oids, agent.v2c(community), timeout=1)
    after = time.monotonic()
    assert got is not None, f"{community}: no answer"
    return (before + after) / 2, {oid: int(got[oid]) for oid in oids}


# -- snmpd ------------------------------------------------------------------------------------

def test_snmpd_answers_v2c_with_its_system_group(snmpd_agent: SnmpdAgent) -> None:
    got = snmpwalk("127.0.0.1", snmpd_agent.port, SYSTEM, snmpd_agent.v2c)
    assert got is not None
    assert got[SYS_NAME] == f"wardtui-lab-snmpd-{snmpd_agent.port}"
    assert got[SYS_DESCR].startswith("Linux")
    assert 0 <= int(got[SYS_UPTIME]) < 60 * 100  # just started


@pytest.mark.parametrize("name", ["lab-sha", "lab-sha-aes", "lab-sha256-aes", "lab-sha512-aes256",
                                  "lab-sha-aes256", "lab-md5-des"])
def test_snmpd_answers_each_v3_user(snmpd_agent: SnmpdAgent, name: str) -> None:
    user = snmpd_agent.v3_users[name]
    got = snmpget("127.0.0.1", snmpd_agent.port, [SYS_UPTIME, SYS_NAME], user)
    assert got is not None and got[SYS_NAME] == f"wardtui-lab-snmpd-{snmpd_agent.port}"


def test_snmpd_refuses_a_wrong_v3_key_and_ignores_a_wrong_community(snmpd_agent: SnmpdAgent) -> None:
    wrong_key = {**snmpd_agent.v3_users["lab-sha-aes"], "auth_key": "not-the-key"}
    with pytest.raises(AgentError, match="Authentication failure"):
        snmpget("127.0.0.1", snmpd_agent.port, [SYS_UPTIME], wrong_key)
    started = time.monotonic()
    assert snmpget("127.0.0.1", snmpd_agent.port, [SYS_UPTIME],
                   {"version": "2c", "community": "wrong"}, timeout=0.3) is None
    assert time.monotonic() - started < 3


def test_snmpd_credentials_load_as_a_wardtui_credentials_file(snmpd_agent: SnmpdAgent,
                                                               tmp_path: Path) -> None:
    path = snmpd_agent.write_credentials(tmp_path / "credentials.yaml")
    loaded = load_credentials(path)
    assert set(loaded) == set(snmpd_agent.credentials())
    sha512 = loaded["lab-sha512-aes256"]
    assert isinstance(sha512, V3)
    assert (sha512.auth_protocol, sha512.priv_protocol) == ("sha512", "aes256")


def test_snmpd_restart_is_a_reboot_that_v3_survives(snmpd_agent: SnmpdAgent) -> None:
    user = snmpd_agent.v3_users["lab-sha-aes"]
    time.sleep(1.2)
    before = snmpget("127.0.0.1", snmpd_agent.port, [SYS_UPTIME, SNMP_ENGINE_BOOTS, SNMP_ENGINE_ID],
                     user)
    snmpd_agent.restart()
    after = snmpget("127.0.0.1", snmpd_agent.port, [SYS_UPTIME, SNMP_ENGINE_BOOTS, SNMP_ENGINE_ID],
                    user)
    assert before is not None and after is not None
    assert int(before[SYS_UPTIME]) >= 100
    assert int(after[SYS_UPTIME]) < int(before[SYS_UPTIME])
    assert int(after[SNMP_ENGINE_BOOTS]) == int(before[SNMP_ENGINE_BOOTS]) + 1
    assert after[SNMP_ENGINE_ID] == before[SNMP_ENGINE_ID]


def test_snmpd_paused_is_silent_and_answers_again_when_resumed(snmpd_agent: SnmpdAgent) -> None:
    snmpd_agent.pause()
    assert snmpd_agent.running  # still there, holding its socket
    assert snmpd_agent.sys_uptime(timeout=0.3) is None
    snmpd_agent.resume()
    assert snmpd_agent.sys_uptime(timeout=1) is not None


@pytest.mark.usefixtures("snmpd_tools")
def test_snmpd_serves_many_loopback_addresses_on_one_port() -> None:
    addresses = loopback_addresses(300, first="127.0.9.1")
    with SnmpdAgent(addresses) as agent:
        for address in (addresses[0], addresses[150], addresses[-1]):
            assert agent.sys_uptime(address) is not None, address
        assert agent.sys_uptime("127.0.0.1") is None  # not one of its addresses


def test_snmpd_on_a_port_in_use_fails_clearly_and_leaves_nothing(snmpd_agent: SnmpdAgent) -> None:
    second = SnmpdAgent(port=snmpd_agent.port, start_timeout=5)
    workdir = second.workdir
    with pytest.raises(AgentError, match=f"127.0.0.1:{snmpd_agent.port} is in use"):
        second.start()
    assert not second.running
    second.close()
    assert not workdir.exists()


@pytest.mark.usefixtures("snmpd_tools")
def test_snmpd_that_dies_while_starting_is_reported_with_its_output(
        monkeypatch: pytest.MonkeyPatch) -> None:
    agent = SnmpdAgent()
    command = agent._command()
    assert command[-1] == f"udp:127.0.0.1:{agent.port}"
    # An endpoint snmpd cannot open (never an empty list: snmpd would then bind 0.0.0.0:161).
    monkeypatch.setattr(agent, "_command", lambda: [*command[:-1], "udp:127.0.0.1:99999"])
    with pytest.raises(AgentError, match=r"(?s)snmpd exited with status 1 .*Error opening"):
        agent.start()
    agent.close()


@pytest.mark.usefixtures("snmpd_tools")
def test_snmpd_close_stops_the_process_and_removes_its_files() -> None:
    agent = SnmpdAgent()
    agent.start()
    pid, workdir = agent.pid, agent.workdir
    agent.pause()  # a paused agent must still go away
    agent.close()
    assert not Path(f"/proc/{pid}").exists()
    assert not workdir.exists()


def test_agents_bind_loopback_only() -> None:
    with pytest.raises(ValueError, match="loopback"):
        SnmpdAgent(["0.0.0.0"])
    with pytest.raises(ValueError, match="loopback"):
        SnmpsimAgent(["192.0.2.1"])


# -- snmpsim ----------------------------------------------------------------------------------

def test_snmpsim_linux_recording_has_64_bit_counters_and_winxp_has_none(
        snmpsim_agent: SnmpsimAgent) -> None:
    address, port = snmpsim_agent.addresses[0], snmpsim_agent.port
    linux = snmpwalk(address, port, "1.3.6.1.2.1.31.1.1.1.6", snmpsim_agent.v2c("linux"))
    assert linux and all(int(v) >= 0 for v in linux.values())
    assert snmpwalk(address, port, "1.3.6.1.2.1.31.1.1.1", snmpsim_agent.v2c("winxp")) == {}
    winxp = snmpwalk(address, port, "1.3.6.1.2.1.2.2.1.10", snmpsim_agent.v2c("winxp"))
    assert winxp and len(winxp) >= 2


@pytest.mark.alone  # measures a rate over wall time: other tests' load would skew it
def test_snmpsim_rate_recording_grows_at_its_stated_rates(snmpsim_agent: SnmpsimAgent) -> None:
    checked = [(i, column, rate) for i in RATE64.interfaces
               for column, rate in (("ifHCInOctets", i.in_octets_per_s),
                                    ("ifHCOutOctets", i.out_octets_per_s))]
    oids = [if_oid(column, i.index) for i, column, _ in checked]
    t0, first = timed_get(snmpsim_agent, "rate64", oids)
    time.sleep(2)
    t1, second = timed_get(snmpsim_agent, "rate64", oids)
    for (interface, column, rate), oid in zip(checked, oids, strict=True):
        measured = (second[oid] - first[oid]) / (t1 - t0)
        assert measured == pytest.approx(rate, rel=0.03, abs=1), f"{interface.name} {column}"


def test_snmpsim_rate_recording_advertises_its_speeds(snmpsim_agent: SnmpsimAgent) -> None:
    oids = [if_oid(c, i.index) for i in RATE64.interfaces for c in ("ifSpeed", "ifHighSpeed")]
    _, got = timed_get(snmpsim_agent, "rate64", oids)
    for interface in RATE64.interfaces:
        assert got[if_oid("ifHighSpeed", interface.index)] * 1_000_000 == interface.speed_bps
        assert got[if_oid("ifSpeed", interface.index)] == min(interface.speed_bps, 2**32 - 1)
    over = RATE64.interface(2)
    assert over.in_bps > over.speed_bps  # the crafted "more than line rate" case


@pytest.mark.alone  # measures a rate over wall time: other tests' load would skew it
def test_snmpsim_wrap_recording_is_32_bit_only_and_wraps(snmpsim_agent: SnmpsimAgent) -> None:
    address, port = snmpsim_agent.addresses[0], snmpsim_agent.port
    assert snmpwalk(address, port, "1.3.6.1.2.1.31.1.1", snmpsim_agent.v2c("wrap32")) == {}
    wan = WRAP32.interface(1)
    oid = if_oid("ifInOctets", wan.index)
    deadline = time.monotonic() + wan.in_wrap_period_32 + 3
    previous_t, previous = timed_get(snmpsim_agent, "wrap32", [oid])
    while time.monotonic() < deadline:
        time.sleep(0.25)
        now_t, now = timed_get(snmpsim_agent, "wrap32", [oid])
        if now[oid] < previous[oid]:  # wrapped; the modular difference still gives the rate
            delta = (now[oid] - previous[oid]) % COUNTER32_MODULUS
            assert delta / (now_t - previous_t) == pytest.approx(wan.in_octets_per_s, rel=0.1)
            return
        previous_t, previous = now_t, now
    pytest.fail(f"ifInOctets.{wan.index} did not wrap within {wan.in_wrap_period_32 + 3:.1f} s")
