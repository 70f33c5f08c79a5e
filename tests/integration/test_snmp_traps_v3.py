"""SNMPv3 traps and informs (poller/snmp_trap_usm.py through poller/snmp_traps.py) from net-snmp's
own ``snmptrap -v3`` and ``snmpinform -v3`` on a loopback port, beside a real Engine (FakeProber)
and SnmpPoller (FakeSnmpClient).

``edge`` (127.0.0.1, where net-snmp sends from) names the SNMPv3 credential under test, whose
``trap_engine_ids`` lists SENDER, the engine ID each ``snmptrap -e`` signs with; ``mute``
(127.0.0.2) names a v2c credential only; 127.0.0.3 is no device's address (``--clientaddr``).
An inform needs no engine ID configured: snmpinform discovers the receiver's, and exits 0 only
once its inform is acknowledged.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from poller.credentials import V3, V2c
from poller.engine import Engine, EngineConfig
from poller.events import InterfaceChange, Reboot, Trap
from poller.inventory import Device
from poller.jsonl import event_record
from poller.snmp_poller import SnmpConfig, SnmpPoller
from poller.snmp_source import Agent
from poller.snmp_traps import TrapConfig, TrapReceiver, trap_sources
from poller.snmp_usm_codec import (
    GET,
    UNKNOWN_ENGINE_IDS,
    SecurityParameters,
    decode_message,
    encode_message,
    encode_pdu,
    report_of,
    scoped_pdu,
)
from poller.snmp_walk import SnmpClient
from tests.fakes import FakeProber
from tests.integration.test_snmp_traps import (
    COLD_START,
    COMMUNITY,
    IF_INDEX,
    IF_NAME,
    LINK_DOWN,
    LINK_UP,
    Lab,
    _snmptrap,  # noqa: F401  (the autouse fixture: net-snmp's tools must be there)
    start_lab,
)
from tests.lab.snmp_agents import SnmpdAgent

SENDER = bytes.fromhex("8000000001a1b2c3d4")  # the engine ID snmptrap signs with (-e)
AUTH_KEY, PRIV_KEY = "v3-auth-pass", "v3-priv-pass"
SNMP_ENGINE_ID = "1.3.6.1.6.3.10.2.1.1.0"

# (net-snmp's -a, -x; ours): every auth and priv family net-snmp 5.9 offers, AES-192/256 as its
# own (Blumenthal) key extension.
COMBOS = [
    ("SHA", "AES", "sha", "aes"),
    ("MD5", "DES", "md5", "des"),
    ("SHA-256", "AES-256", "sha256", "aes256"),
    ("SHA-512", "AES-192", "sha512", "aes192"),
    ("SHA-224", None, "sha224", None),  # authNoPriv
    (None, None, "none", None),  # noAuthNoPriv
]


def credential(auth: str, priv: str | None, engine_ids: tuple[bytes, ...] = (SENDER,)) -> V3:
    return V3("v3", "noc", auth, AUTH_KEY if auth != "none" else "", priv, PRIV_KEY if priv else None,
              engine_ids)


async def v3lab(cred: V3) -> tuple[Lab, asyncio.Task[None]]:
    devices = [Device("edge", "127.0.0.1", "b", "r", "router", snmp_credential="v3"),
               Device("mute", "127.0.0.2", "b", "r", "switch", snmp_credential="v2")]
    agents = [Agent("edge", "127.0.0.1", 161, cred), Agent("mute", "127.0.0.2", 161, V2c("v2", COMMUNITY))]
    return await start_lab(devices=devices, agents=agents, min_gap=0.0)


@pytest.fixture
async def lab() -> AsyncIterator[Lab]:
    lab, task = await v3lab(credential("sha", "aes"))
    yield lab
    lab.engine.stop()
    await task


@pytest.fixture(autouse=True)
def _net_snmp_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # net-snmp's tools keep state (engine boots, an index of certificates): in the test's own directory.
    monkeypatch.setenv("SNMP_PERSISTENT_DIR", str(tmp_path))


async def v3(port: int, *args: str, tool: str = "snmptrap", a: str | None = "SHA", x: str | None = "AES",
             auth_key: str = AUTH_KEY, priv_key: str = PRIV_KEY, user: str = "noc",
             engine: bytes | None = SENDER, boots_time: str | None = None, source: str | None = None,
             level: str | None = None, ok: bool = True) -> str:
    """Run net-snmp's ``tool`` -v3 (``a`` None: noAuthNoPriv); asserts its exit status is 0
    (``ok``) or not; its stderr."""
    level = level or ("noAuthNoPriv" if a is None else "authPriv" if x else "authNoPriv")
    security = ["-u", user, "-l", level]
    if level != "noAuthNoPriv":
        security += ["-a", a or "SHA", "-A", auth_key]
    if x and level == "authPriv":
        security += ["-x", x, "-X", priv_key]
    if engine is not None and tool == "snmptrap":
        security += ["-e", "0x" + engine.hex()]
    if boots_time:
        security += ["-Z", boots_time]
    extra = [f"--clientaddr={source}"] if source else []
    proc = await asyncio.create_subprocess_exec(
        tool, "-v3", *security, "-r", "0", "-t", "2", *extra, f"127.0.0.1:{port}", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    _, err = await proc.communicate()
    assert (proc.returncode == 0) == ok, (proc.returncode, err.decode())
    return err.decode()


@pytest.mark.parametrize(("a", "x", "auth", "priv"), COMBOS, ids=[f"{c[0]}-{c[1]}" for c in COMBOS])
async def test_v3_traps_and_informs_from_net_snmp(a: str | None, x: str | None, auth: str,
                                                  priv: str | None) -> None:
    lab, task = await v3lab(credential(auth, priv))
    try:
        await v3(lab.port, "", LINK_DOWN, f"{IF_INDEX}.2", "i", "2", f"{IF_NAME}.2", "s", "Gi0/2", a=a, x=x)
        await lab.until(lambda: bool(lab.of(InterfaceChange)))
        trap = lab.of(Trap)[0]
        assert isinstance(trap, Trap)
        assert (trap.device, trap.kind, trap.version, trap.ifindex, trap.ifname) == \
            ("edge", "linkDown", "3", 2, "Gi0/2")
        change = lab.of(InterfaceChange)[0]
        assert isinstance(change, InterfaceChange)
        assert (change.device, change.ifindex, change.to_state, change.source) == ("edge", 2, "down", "trap")
        record = event_record(trap)
        assert record is not None and record["type"] == "trap" and record["version"] == "3"

        # An inform: discovery of our engine, then the inform signed for it; snmpinform exits 0
        # only when our Response (at its level, under our engine ID) reached it.
        await v3(lab.port, "", COLD_START, tool="snmpinform", a=a, x=x)
        await lab.until(lambda: bool(lab.of(Reboot)))
        g = lab.receiver.gauges()
        assert lab.receiver.informs_acked == 1 and g["traps_v3_discoveries"] >= 1
        assert g["traps_accepted"] == 2 and lab.receiver.refusals("edge") == {}
    finally:
        lab.engine.stop()
        await task


async def test_wrong_keys_user_level_and_engine_are_counted_and_never_trusted(
        lab: Lab, caplog: pytest.LogCaptureFixture) -> None:
    args = ("", LINK_DOWN, f"{IF_INDEX}.1", "i", "1")
    await v3(lab.port, *args, auth_key="not-the-auth-pass")  # wrong digest
    await v3(lab.port, *args, priv_key="not-the-priv-pass")  # authentic, but decrypts to noise
    await v3(lab.port, *args, user="intruder")
    await v3(lab.port, *args, level="authNoPriv")  # the credential says authPriv
    await v3(lab.port, *args, engine=bytes.fromhex("80000000019999999999"))  # an engine not listed
    await v3(lab.port, *args, source="127.0.0.3")  # no inventory device
    await v3(lab.port, *args, source="127.0.0.2")  # an inventory device with no SNMPv3 user
    await lab.until(lambda: lab.receiver.received_n == 7)
    # An inform with a wrong password: answered by a wrongDigest report, never acknowledged.
    err = await v3(lab.port, "", COLD_START, tool="snmpinform", auth_key="not-the-auth-pass", ok=False)
    assert "Authentication failure" in err or "wrong digest" in err.lower(), err
    g = lab.receiver.gauges()
    assert lab.receiver.refusals("edge") == {"auth": 3, "user": 1, "level": 1, "engine_id": 1}
    assert lab.receiver.refusals("mute") == {"user": 1}
    assert (g["traps_refused_unknown_source"], g["traps_accepted"], g["traps_informs_acked"]) == (1, 0, 0)
    assert not lab.of(Trap) and not lab.of(InterfaceChange) and not lab.of(Reboot)
    assert lab.receiver.checks == 0 and lab.receiver.polls == 0  # nothing checked on their word
    lines = [r.getMessage() for r in caplog.records if "trap from" in r.getMessage()]
    assert len([line for line in lines if "127.0.0.1" in line]) == 1  # once per source
    assert len([line for line in lines if "127.0.0.3" in line]) == 1
    assert not any(AUTH_KEY in line or PRIV_KEY in line or "not-the" in line for line in lines)


async def test_the_senders_clock_is_followed_and_a_replay_refused(lab: Lab) -> None:
    args = ("", LINK_UP, f"{IF_INDEX}.1", "i", "1")
    await v3(lab.port, *args, boots_time="5,1000")
    await v3(lab.port, *args, boots_time="5,900")  # 100 s behind: inside the 150 s window
    await v3(lab.port, *args, boots_time="4,99999")  # an earlier boot: a replay
    await v3(lab.port, *args, boots_time="5,700")  # 300 s behind what we know
    await v3(lab.port, *args, boots_time="6,10")  # the sender restarted: adopted
    await lab.until(lambda: lab.receiver.received_n == 5)
    assert lab.receiver.accepted == 3 and lab.receiver.refusals("edge") == {"time_window": 2}
    assert len(lab.of(Trap)) == 3


async def test_an_engine_id_learnt_by_polls_is_believed(lab: Lab) -> None:
    polled = bytes.fromhex("80001f8880aabbccddeeff0011")
    args = ("", LINK_UP, f"{IF_INDEX}.1", "i", "1")
    await v3(lab.port, *args, engine=polled)  # not listed, not learnt yet
    await lab.until(lambda: lab.receiver.received_n == 1)
    assert lab.receiver.refusals("edge") == {"engine_id": 1}
    # What the v3 client's discovery found for edge (poller/snmp_usm_client.py's engine_id).
    lab.client.engine_id = lambda key: polled if key == "edge" else None  # type: ignore[attr-defined]
    await v3(lab.port, *args, engine=polled)
    await lab.until(lambda: lab.receiver.accepted == 1)
    # A poll that times out forgets the engine; the receiver still knows the device's.
    lab.client.engine_id = lambda key: None  # type: ignore[attr-defined]
    await v3(lab.port, *args, engine=polled, boots_time="2,5")
    await lab.until(lambda: lab.receiver.accepted == 2)


async def test_hostile_strings_in_v3_varbinds_are_shown_literally(lab: Lab) -> None:
    hostile = "eth\x1b]0;pwned\x07\u202e[b]x"
    await v3(lab.port, "", LINK_DOWN, f"{IF_INDEX}.5", "i", "5", f"{IF_NAME}.5", "s", hostile,
             "1.3.6.1.4.1.9.9.1.0", "s", "note\x1b[2J")
    await lab.until(lambda: bool(lab.of(InterfaceChange)))
    for event in (*lab.of(Trap), *lab.of(InterfaceChange)):
        line = json.dumps(event_record(event), ensure_ascii=False)
        assert "\x1b" not in line and "\x07" not in line and "\u202e" not in line
        assert "eth\\\\x1b]0;pwned\\\\x07\\\\u202e[b]x" in line
    trap = lab.of(Trap)[0]
    assert isinstance(trap, Trap) and "note\\x1b[2J" in trap.varbinds



async def test_an_inform_to_a_configured_engine_id_needs_no_discovery() -> None:
    ours = bytes.fromhex("8000000005feedfacecafe")  # --traps-engine-id
    devices = [Device("edge", "127.0.0.1", "b", "r", "router", snmp_credential="v3")]
    agents = [Agent("edge", "127.0.0.1", 161, credential("sha", "aes"))]
    lab, task = await start_lab(devices=devices, agents=agents, min_gap=0.0, engine_id=ours)
    try:
        # Told our engine ID (-e), snmpinform skips discovery; it does not know our clock, so the
        # first inform is outside our window: an authenticated report gives it our boots and
        # time, and it sends again.
        proc = await asyncio.create_subprocess_exec(
            "snmpinform", "-v3", "-e", "0x" + ours.hex(), "-u", "noc", "-l", "authPriv", "-a", "SHA",
            "-A", AUTH_KEY, "-x", "AES", "-X", PRIV_KEY, "-r", "1", "-t", "2", f"127.0.0.1:{lab.port}", "",
            COLD_START,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        _, err = await proc.communicate()
        assert proc.returncode == 0, err.decode()
        g = lab.receiver.gauges()
        assert (g["traps_v3_discoveries"], g["traps_informs_acked"]) == (0, 1)
        assert lab.receiver.usm.engine_id == ours
        assert lab.receiver.refusals("edge") == {"time_window": 1} and g["traps_v3_reports"] == 1
    finally:
        lab.engine.stop()
        await task


async def test_a_no_auth_trap_is_refused_for_an_auth_user_and_an_auth_one_for_a_no_auth_user() -> None:
    lab, task = await v3lab(credential("none", None))
    try:
        args = ("", LINK_UP, f"{IF_INDEX}.1", "i", "1")
        await v3(lab.port, *args, a=None)  # noAuthNoPriv, as configured
        await v3(lab.port, *args, x=None)  # authNoPriv: not what the device is configured for
        await v3(lab.port, *args, a=None, user="other")  # its user name is what is checked
        await lab.until(lambda: lab.receiver.received_n == 3)
        assert lab.receiver.accepted == 1 and lab.receiver.refusals("edge") == {"level": 1, "user": 1}
    finally:
        lab.engine.stop()
        await task
    lab, task = await v3lab(credential("sha", "aes"))
    try:
        await v3(lab.port, "", LINK_UP, f"{IF_INDEX}.1", "i", "1", a=None)
        await v3(lab.port, "", COLD_START, tool="snmpinform", a=None, ok=False)  # unsupportedSecLevels
        await lab.until(lambda: lab.receiver.received_n >= 3)  # the inform's discovery, then the inform
        assert lab.receiver.accepted == 0 and lab.receiver.refusals("edge") == {"level": 2}
    finally:
        lab.engine.stop()
        await task


async def test_discovery_is_answered_to_v3_devices_only(lab: Lab) -> None:
    probe = encode_message(77, SecurityParameters(b"", 0, 0, b""), None, encode_pdu(GET, 5))
    answers = {}
    for n, source in enumerate(("127.0.0.1", "127.0.0.2", "127.0.0.3"), 1):  # edge (v3), mute (v2c), none
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind((source, 0))
            s.setblocking(False)
            s.sendto(probe, ("127.0.0.1", lab.port))
            await lab.until(lambda: lab.receiver.received_n == n)  # noqa: B023 (awaited here)
            await asyncio.sleep(0.2)
            try:
                answers[source] = s.recv(2000)
            except BlockingIOError:
                answers[source] = b""
    report = decode_message(answers["127.0.0.1"])
    assert report.msg_id == 77 and report.security.engine_id == lab.receiver.usm.engine_id
    assert report.security.boots == lab.receiver.usm.boots and report.flags == 0
    assert report_of(scoped_pdu(answers["127.0.0.1"], report, None).varbinds()) == UNKNOWN_ENGINE_IDS
    assert answers["127.0.0.2"] == answers["127.0.0.3"] == b""  # strangers get nothing back
    assert lab.receiver.refusals("mute") == {"user": 1} and lab.receiver.refused_unknown == 1


async def test_a_trap_from_the_engine_its_v3_polls_found_is_believed(snmpd_agent: SnmpdAgent) -> None:
    """Real polls of a real snmpd (our USM) learn its engine; a trap signed by that engine is
    believed with no trap_engine_ids in the credential, another engine's is not."""
    entry = snmpd_agent.v3_users["lab-sha-aes"]
    cred = V3("lab", entry["user"], "sha", entry["auth_key"], "aes", entry["priv_key"])  # nothing listed
    devices = [Device("edge", "127.0.0.1", "b", "r", "router", snmp_credential="lab",
                      snmp_port=snmpd_agent.port)]
    agents = [Agent("edge", "127.0.0.1", snmpd_agent.port, cred, timeout=1.0)]
    engine = Engine(devices, FakeProber(), EngineConfig(interval=3600.0))
    engine.bus.subscribe("test", maxsize=10_000)
    client = SnmpClient()
    snmp = SnmpPoller(agents, client, engine.bus, is_down=engine.is_down, config=SnmpConfig(interval=3600.0))
    engine.add_companion(snmp)
    receiver = TrapReceiver(trap_sources(devices, agents), engine.bus, engine, lambda: snmp,
                            TrapConfig(host="127.0.0.1", port=0, min_gap=0.0))
    port = receiver.bind()[1]
    engine.add_companion(receiver)
    task = asyncio.create_task(engine.run())
    try:
        deadline = time.monotonic() + 10
        while snmp.engine_id("edge") is None:  # the schedule's first poll: discovery, then the walk
            assert time.monotonic() < deadline, snmp.gauges()
            await asyncio.sleep(0.02)
        # snmpd's snmpEngineID.0 as net-snmp's snmpget reads it (a Hex-STRING, 16 bytes a line).
        proc = await asyncio.create_subprocess_exec(
            "snmpget", "-v2c", "-c", snmpd_agent.v2c_community, "-On", "-Oqv", "-t", "2",
            f"127.0.0.1:{snmpd_agent.port}", SNMP_ENGINE_ID, stdout=asyncio.subprocess.PIPE)
        out, _ = await proc.communicate()
        agent_engine = bytes.fromhex("".join(out.decode().replace('"', " ").split()))
        assert snmp.engine_id("edge") == agent_engine  # what our discovery found is snmpd's
        args = ("", LINK_UP, f"{IF_INDEX}.1", "i", "1")
        common = dict(user=entry["user"], auth_key=entry["auth_key"], priv_key=entry["priv_key"])
        await v3(port, *args, engine=agent_engine, **common)  # type: ignore[arg-type]
        await v3(port, *args, engine=SENDER, **common)  # type: ignore[arg-type]
        deadline = time.monotonic() + 5
        while receiver.received_n < 2:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.01)
        assert receiver.accepted == 1 and receiver.refusals("edge") == {"engine_id": 1}
    finally:
        engine.stop()
        await task
        client.close()
