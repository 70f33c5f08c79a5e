"""The trap receiver (poller/snmp_traps.py) on a loopback port, fed by net-snmp's ``snmptrap`` and
``snmpinform``, beside a real Engine (FakeProber) and SnmpPoller (FakeSnmpClient).

The inventory device ``edge`` is 127.0.0.1, where snmptrap sends from; ``mute`` (127.0.0.2) is in
the inventory with no SNMP credential; 127.0.0.3 is no device's address (``--clientaddr``)."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from poller.credentials import V2c
from poller.engine import Engine, EngineConfig
from poller.events import Event, InterfaceChange, Reboot, Trap
from poller.inventory import Device
from poller.jsonl import event_record
from poller.snmp_poller import SnmpConfig, SnmpPoller
from poller.snmp_source import Agent
from poller.snmp_traps import TrapConfig, TrapReceiver, trap_sources
from poller.snmp_v2c import _integer, _tlv, encode_oid
from tests.fakes import FakeProber, FakeSnmpClient
from wardtui.runtime import Options, Runtime

COMMUNITY = "tr4p-s3cret"
LINK_DOWN, LINK_UP, COLD_START = "1.3.6.1.6.3.1.1.5.3", "1.3.6.1.6.3.1.1.5.4", "1.3.6.1.6.3.1.1.5.1"
IF_INDEX = "1.3.6.1.2.1.2.2.1.1"
IF_NAME = "1.3.6.1.2.1.31.1.1.1.1"


@pytest.fixture(autouse=True)
def _snmptrap() -> None:
    if shutil.which("snmptrap") is None or shutil.which("snmpinform") is None:
        reason = "net-snmp's snmptrap/snmpinform missing (sh tests/host-deps.sh installs package snmp)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(reason + " (CI=true)", pytrace=False)
        pytest.skip(reason)


@dataclass
class Lab:
    engine: Engine
    prober: FakeProber
    client: FakeSnmpClient
    snmp: SnmpPoller
    receiver: TrapReceiver
    port: int
    events: list[Event]

    def drain(self) -> None:
        self.events.extend(self.engine.bus.subscriptions[0].drain())

    async def until(self, found: Callable[[], bool], timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        while not found():
            if time.monotonic() > deadline:
                raise AssertionError("timed out waiting")
            await asyncio.sleep(0.005)
            self.drain()

    def of(self, kind: type) -> list[Event]:
        self.drain()
        return [e for e in self.events if isinstance(e, kind)]


async def start_lab(rtt_ms: float = 1.0, poll_delay: float = 0.0, host: str = "127.0.0.1",
                    devices: list[Device] | None = None, agents: list[Agent] | None = None,
                    **config: Any) -> tuple[Lab, asyncio.Task[None]]:
    """The lab; by default edge (v2c), mute (no credential) and edge6 (v2c over IPv6). The
    schedule's first check and poll are of the first device, which must be at 127.0.0.1."""
    if devices is None or agents is None:
        devices = [Device("edge", "127.0.0.1", "b", "r", "router", snmp_credential="v2"),
                   Device("mute", "127.0.0.2", "b", "r", "switch"),
                   Device("edge6", "0:0::1", "b", "r", "router", snmp_credential="v2")]
        agents = [Agent("edge", "127.0.0.1", 161, V2c("v2", COMMUNITY)),
                  Agent("edge6", "0:0::1", 161, V2c("v2", COMMUNITY + "-6"))]
    prober = FakeProber(rtt_ms=rtt_ms)
    engine = Engine(devices, prober, EngineConfig(interval=3600.0))
    engine.bus.subscribe("test", maxsize=100_000)
    client = FakeSnmpClient(delay=poll_delay)
    snmp = SnmpPoller(agents, client, engine.bus, is_down=engine.is_down, config=SnmpConfig(interval=3600.0))
    engine.add_companion(snmp)
    receiver = TrapReceiver(trap_sources(devices, agents), engine.bus, engine, lambda: snmp,
                            TrapConfig(host=host, port=0, **config))
    port = receiver.bind()[1]
    engine.add_companion(receiver)
    engine.gauge_sources.append(receiver.gauges)
    task = asyncio.create_task(engine.run())
    lab = Lab(engine, prober, client, snmp, receiver, port, [])
    # The schedule's own first check and poll of edge (due at the start), out of the way.
    first = devices[0].name
    await lab.until(lambda: prober.calls.get("127.0.0.1", 0) >= 1 and client.calls.get(first, 0) >= 1
                    and not snmp._task_of and prober.in_flight == 0)
    await asyncio.sleep(0.05)
    return lab, task


@pytest.fixture
async def lab() -> AsyncIterator[Lab]:
    lab, task = await start_lab(min_gap=0.0)
    yield lab
    lab.engine.stop()
    await task


async def snmptrap(port: int, *args: str, community: str = COMMUNITY, version: str = "2c",
                   tool: str = "snmptrap", source: str | None = None, to: str | None = None) -> None:
    extra = [f"--clientaddr={source}"] if source else []
    proc = await asyncio.create_subprocess_exec(
        tool, "-v", version, "-c", community, "-r", "0", "-t", "2", *extra, to or f"127.0.0.1:{port}", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    _, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()


async def test_link_down_up_and_cold_start_become_events_at_once(lab: Lab) -> None:
    started = time.monotonic()
    await snmptrap(lab.port, "", LINK_DOWN, f"{IF_INDEX}.2", "i", "2", f"{IF_NAME}.2", "s", "Gi0/2")
    await lab.until(lambda: bool(lab.of(InterfaceChange)))
    took = time.monotonic() - started
    trap = lab.of(Trap)[0]
    assert isinstance(trap, Trap)
    assert (trap.device, trap.address, trap.kind, trap.version, trap.ifindex, trap.ifname) == \
        ("edge", "127.0.0.1", "linkDown", "2c", 2, "Gi0/2")
    change = lab.of(InterfaceChange)[0]
    assert isinstance(change, InterfaceChange)
    # ifindex 2 was never polled (the fake has eth0 = 1 only): no earlier status to compare with.
    assert (change.device, change.ifindex, change.ifname, change.from_state, change.to_state, change.source) \
        == ("edge", 2, "Gi0/2", "unknown", "down", "trap")
    record = event_record(trap)
    assert record is not None and record["type"] == "trap" and record["kind"] == "linkDown"
    print(f"snmptrap start -> InterfaceChange on the bus: {took * 1000:.1f} ms (process start included)")

    # The polled interface (eth0, ifindex 1): its status at the last poll is the "from"; the
    # poll each trap asks for agrees with it, so it tells nothing more.
    lab.client.oper["edge"] = 2
    await snmptrap(lab.port, "", LINK_DOWN, f"{IF_INDEX}.1", "i", "1")
    await lab.until(lambda: len(lab.of(InterfaceChange)) == 2)
    await lab.until(lambda: not lab.snmp._task_of and lab.client.calls["edge"] >= 3)
    lab.client.oper["edge"] = 1
    await snmptrap(lab.port, "", LINK_UP, f"{IF_INDEX}.1", "i", "1")
    await lab.until(lambda: len(lab.of(InterfaceChange)) == 3)
    down, up = lab.of(InterfaceChange)[1:]
    assert isinstance(down, InterfaceChange) and isinstance(up, InterfaceChange)
    assert (down.ifname, down.from_state, down.to_state) == ("eth0", "up", "down")
    assert (up.ifname, up.from_state, up.to_state) == ("eth0", "down", "up")

    lab.client.reboot("edge")  # the poll the trap asks for sees sysUpTime drop: no second Reboot
    await snmptrap(lab.port, "", COLD_START)
    await lab.until(lambda: bool(lab.of(Reboot)))
    reboot = lab.of(Reboot)[0]
    assert isinstance(reboot, Reboot) and reboot.source == "trap" and reboot.device == "edge"
    gauges = lab.receiver.gauges()
    assert gauges["traps_accepted"] == gauges["traps_received"] == 4
    # The events came at once; the checks follow (and the poll after the reboot tells no second one).
    await lab.until(lambda: not lab.snmp._task_of and lab.prober.in_flight == 0)
    await asyncio.sleep(0.05)
    assert len(lab.of(Reboot)) == 1
    assert len(lab.of(InterfaceChange)) == 3  # the polls agree with the traps: nothing told twice


async def test_every_trap_checks_and_polls_at_once_but_never_a_second_in_flight() -> None:
    # Slow checks and polls (0.5 s): the second trap comes while the first one's are in flight.
    lab, task = await start_lab(rtt_ms=500.0, poll_delay=0.5, min_gap=0.0)
    try:
        checks, polls = lab.prober.calls["127.0.0.1"], lab.client.calls["edge"]
        await snmptrap(lab.port, "", LINK_DOWN, f"{IF_INDEX}.1", "i", "1")
        await lab.until(lambda: lab.prober.calls["127.0.0.1"] == checks + 1
                        and lab.client.calls["edge"] == polls + 1)
        assert lab.engine.trackers["edge"].state.value == "up"
        await snmptrap(lab.port, "", LINK_UP, f"{IF_INDEX}.1", "i", "1")
        await lab.until(lambda: lab.receiver.accepted == 2)
        g = lab.receiver.gauges()
        assert (g["traps_checks"], g["traps_polls"], g["traps_coalesced"]) == (1, 1, 2)
        assert lab.prober.calls["127.0.0.1"] == checks + 1 and lab.client.calls["edge"] == polls + 1
        assert lab.prober.max_in_flight_per_address["127.0.0.1"] == 1 and lab.client.max_in_flight == 1
        # Once they ended, the next trap asks again; the poll is counted as on demand.
        await lab.until(lambda: lab.prober.in_flight == 0 and not lab.snmp._task_of)
        await snmptrap(lab.port, "", LINK_UP, f"{IF_INDEX}.1", "i", "1")
        await lab.until(lambda: lab.prober.calls["127.0.0.1"] == checks + 2
                        and lab.client.calls["edge"] == polls + 2)
        assert lab.snmp.gauges()["snmp_polls_on_demand"] == 2
        # The gauges reach the engine's (the engine panel, --jsonl, wardtui status).
        await lab.until(lambda: lab.engine.last_gauges is not None
                        and lab.engine.last_gauges.extra.get("traps_checks") == 2, timeout=3)
        record = event_record(lab.engine.last_gauges)  # type: ignore[arg-type]
        assert record is not None and record["traps_accepted"] == 3 and record["traps_polls"] == 2
    finally:
        lab.engine.stop()
        await task


async def test_min_gap_holds_a_device_to_one_check_per_gap() -> None:
    lab, task = await start_lab(min_gap=30.0)
    try:
        checks = lab.prober.calls["127.0.0.1"]
        for _ in range(3):
            await snmptrap(lab.port, "", LINK_UP, f"{IF_INDEX}.1", "i", "1")
            await lab.until(lambda: lab.prober.in_flight == 0 and not lab.snmp._task_of)
        await lab.until(lambda: lab.receiver.accepted == 3)
        assert lab.prober.calls["127.0.0.1"] == checks + 1
        assert lab.receiver.gauges()["traps_coalesced"] == 4
    finally:
        lab.engine.stop()
        await task


async def test_v1_trap_is_read_in_v2c_terms(lab: Lab) -> None:
    # enterprise, agent-addr (a lie: not believed), generic 2 = linkDown, specific 0, uptime.
    await snmptrap(lab.port, "1.3.6.1.4.1.8072.3.2.10", "192.0.2.66", "2", "0", "12345",
                   f"{IF_INDEX}.1", "i", "1", version="1")
    await lab.until(lambda: bool(lab.of(InterfaceChange)))
    trap = lab.of(Trap)[0]
    assert isinstance(trap, Trap)
    assert (trap.kind, trap.trap_oid, trap.version, trap.uptime_s, trap.address, trap.ifindex) == \
        ("linkDown", LINK_DOWN, "1", 123.45, "127.0.0.1", 1)
    # An enterprise-specific v1 trap: enterprise.0.specific.
    await snmptrap(lab.port, "1.3.6.1.4.1.9", "127.0.0.1", "6", "17", "", version="1")
    await lab.until(lambda: len(lab.of(Trap)) == 2)
    assert lab.of(Trap)[1].kind == "1.3.6.1.4.1.9.0.17"  # type: ignore[attr-defined]


async def test_inform_is_acknowledged(lab: Lab) -> None:
    # snmpinform waits for the Response and fails (exit 1, "Timeout") without one.
    await snmptrap(lab.port, "", COLD_START, tool="snmpinform")
    await lab.until(lambda: bool(lab.of(Reboot)))
    assert lab.receiver.informs_acked == 1


async def test_refusals_are_counted_by_reason_and_logged_once(lab: Lab,
                                                             caplog: pytest.LogCaptureFixture) -> None:
    await snmptrap(lab.port, "", LINK_DOWN, f"{IF_INDEX}.1", "i", "1", community="wrong")
    await snmptrap(lab.port, "", LINK_DOWN, f"{IF_INDEX}.1", "i", "1", community="wrong")
    await snmptrap(lab.port, "", LINK_DOWN, f"{IF_INDEX}.1", "i", "1", source="127.0.0.3")
    await snmptrap(lab.port, "", LINK_DOWN, f"{IF_INDEX}.1", "i", "1", source="127.0.0.3")
    await snmptrap(lab.port, "", LINK_DOWN, f"{IF_INDEX}.1", "i", "1", source="127.0.0.2")  # no credential
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.4", 0))
        s.sendto(b"\x1b]0;pwned\x07", ("127.0.0.1", lab.port))  # unknown and malformed: unknown
        s2 = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s2.sendto(b"\x30\x03\x02\x01", ("127.0.0.1", lab.port))  # from edge, malformed
        s2.close()
    await lab.until(lambda: lab.receiver.received_n == 7)
    g = lab.receiver.gauges()
    assert (g["traps_refused_community"], g["traps_refused_unknown_source"], g["traps_refused_malformed"],
            g["traps_accepted"]) == (3, 3, 1, 0)
    assert not lab.of(Trap) and not lab.of(InterfaceChange)
    assert lab.receiver.checks == 0 and lab.receiver.polls == 0  # never trusted: nothing checked
    lines = [r.getMessage() for r in caplog.records if "trap from" in r.getMessage()]
    assert len([line for line in lines if "127.0.0.1" in line]) == 1  # wrong community, then malformed: once
    assert len([line for line in lines if "127.0.0.3" in line]) == 1
    assert any("127.0.0.2" in line and "no SNMPv2c credential" in line for line in lines)
    assert not any("wrong" in line or COMMUNITY in line for line in lines)  # never a community


async def test_hostile_strings_in_varbinds_are_escaped_in_jsonl(lab: Lab) -> None:
    hostile = "eth\x1b]0;pwned\x07\u202e[b]x"
    await snmptrap(lab.port, "", LINK_DOWN, f"{IF_INDEX}.5", "i", "5", f"{IF_NAME}.5", "s", hostile,
                   "1.3.6.1.4.1.9.9.1.0", "s", "note\x1b[2J")
    await lab.until(lambda: bool(lab.of(InterfaceChange)))
    for event in (*lab.of(Trap), *lab.of(InterfaceChange)):
        line = json.dumps(event_record(event), ensure_ascii=False)  # even without \\u escapes
        assert "\x1b" not in line and "\x07" not in line and "\u202e" not in line
        assert "eth\\\\x1b]0;pwned\\\\x07\\\\u202e[b]x" in line
    trap = lab.of(Trap)[0]
    assert isinstance(trap, Trap) and "note\\x1b[2J" in trap.varbinds


async def test_ipv6_sources_and_ipv4_on_a_dual_stack_socket() -> None:
    lab, task = await start_lab(host="::", min_gap=0.0)
    try:
        # From ::1 (the inventory says 0:0::1: the same address), with edge6's own community.
        await snmptrap(lab.port, "", LINK_DOWN, f"{IF_INDEX}.3", "i", "3", community=COMMUNITY + "-6",
                       to=f"udp6:[::1]:{lab.port}")
        # edge's community from ::1 is not edge6's; IPv4 arrives as ::ffff:127.0.0.1, which is edge.
        await snmptrap(lab.port, "", LINK_DOWN, f"{IF_INDEX}.3", "i", "3", to=f"udp6:[::1]:{lab.port}")
        await snmptrap(lab.port, "", LINK_UP, f"{IF_INDEX}.4", "i", "4")
        await lab.until(lambda: lab.receiver.received_n == 3 and len(lab.of(Trap)) == 2)
        by_device = {t.device: t for t in lab.of(Trap)}  # type: ignore[attr-defined]
        assert by_device["edge6"].address == "0:0::1" and by_device["edge6"].ifindex == 3
        # Sent from ::ffff:127.0.0.1 as the socket sees it; edge's address as the inventory says.
        assert by_device["edge"].address == "127.0.0.1" and by_device["edge"].kind == "linkUp"
        assert lab.receiver.refused_community == 1
    finally:
        lab.engine.stop()
        await task


async def test_a_new_inventory_changes_who_is_believed(lab: Lab) -> None:
    devices = [Device("mute", "127.0.0.2", "b", "r", "switch", snmp_credential="v2")]
    lab.receiver.apply(trap_sources(devices, [Agent("mute", "127.0.0.2", 161, V2c("v2", "new-one"))]))
    await snmptrap(lab.port, "", COLD_START)  # edge left the inventory
    await snmptrap(lab.port, "", COLD_START, source="127.0.0.2")  # mute's old (no) community
    await snmptrap(lab.port, "", COLD_START, source="127.0.0.2", community="new-one")
    await lab.until(lambda: lab.receiver.received_n == 3)
    assert (lab.receiver.refused_unknown, lab.receiver.refused_community, lab.receiver.accepted) == (1, 1, 1)
    assert [e.device for e in lab.of(Trap)] == ["mute"]  # type: ignore[attr-defined]


def _v2c_trap(community: bytes, n: int, trap: int = 4, ifindex: int = 1) -> bytes:
    """A linkUp (or ``trap``: 3 linkDown) trap, encoded as snmptrap does (sysUpTime.0,
    snmpTrapOID.0, ifIndex)."""
    def varbind(oid: str, value: bytes) -> bytes:
        return _tlv(0x30, _tlv(0x06, encode_oid(tuple(map(int, oid.split("."))))) + value)

    varbinds = (varbind("1.3.6.1.2.1.1.3.0", _tlv(0x43, n.to_bytes(4, "big")))
                + varbind("1.3.6.1.6.3.1.1.4.1.0", _tlv(0x06, encode_oid((1, 3, 6, 1, 6, 3, 1, 1, 5, trap))))
                + varbind(f"{IF_INDEX}.{ifindex}", _integer(ifindex)))
    pdu = _tlv(0xA7, _integer(n) + _integer(0) + _integer(0) + _tlv(0x30, varbinds))
    return _tlv(0x30, _integer(1) + _tlv(0x04, community) + pdu)


def link_down(community: bytes, ifindex: int) -> bytes:
    return _v2c_trap(community, ifindex, trap=3, ifindex=ifindex)


async def _lag_p99(seconds: float, during: Callable[[], None] | None = None) -> float:
    """The loop's lag p99 (ms): how late 5 ms sleeps wake, over ``seconds``, ``during`` in a thread."""
    thread = threading.Thread(target=during) if during else None
    if thread:
        thread.start()
    lags = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        t = time.monotonic()
        await asyncio.sleep(0.005)
        lags.append(time.monotonic() - t - 0.005)
    if thread:
        await asyncio.to_thread(thread.join)
    lags.sort()
    return lags[int(len(lags) * 0.99)] * 1000


async def test_a_flood_from_one_source_is_rate_limited_without_blocking_the_loop(lab: Lab) -> None:
    packets = [_v2c_trap(COMMUNITY.encode(), i) for i in range(5000)]

    def flood() -> None:  # 5,000 traps in one second from 127.0.0.1, 50 every 10 ms
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            start = time.monotonic()
            for i in range(0, 5000, 50):
                for packet in packets[i:i + 50]:
                    s.sendto(packet, ("127.0.0.1", lab.port))
                time.sleep(max(0.0, start + (i + 50) / 5000 - time.monotonic()))

    quiet = await _lag_p99(1.2)
    started = time.monotonic()
    flooded = await _lag_p99(1.2, flood)
    await lab.until(lambda: lab.receiver.received_n >= 5000, timeout=5)
    elapsed = time.monotonic() - started
    g = lab.receiver.gauges()
    print(f"loop lag p99: quiet {quiet:.2f} ms, during 5,000 traps/s {flooded:.2f} ms; "
          f"accepted {g['traps_accepted']:.0f}, rate-limited {g['traps_rate_limited']:.0f}")
    assert g["traps_received"] == 5000  # paced: the kernel dropped none
    assert g["traps_accepted"] + g["traps_rate_limited"] == 5000
    # The burst (200) and 50/s over the flood, not 5,000.
    assert 200 <= g["traps_accepted"] <= 200 + 50 * elapsed + 5
    assert len(lab.of(Trap)) == g["traps_accepted"]
    assert flooded < max(3 * quiet, 20.0)


async def test_the_runtime_runs_the_receiver_and_a_reload_gives_it_the_new_senders(tmp_path: Path) -> None:
    credentials = tmp_path / "credentials.yaml"
    credentials.write_text(f"v2:\n  version: 2c\n  community: {COMMUNITY}\n", encoding="utf-8")
    credentials.chmod(0o600)
    devices = [Device("edge", "127.0.0.1", "b", "r", "router", snmp_credential="v2")]
    options = Options(db=f"sqlite:///{tmp_path}/h.db", credentials=credentials, traps=("127.0.0.1", 0))
    runtime = Runtime(options, prober=FakeProber(), devices=devices, snmp_client=FakeSnmpClient())
    receiver = runtime.traps
    assert receiver is not None and receiver in runtime.engine.companions
    assert receiver.gauges in runtime.engine.gauge_sources and receiver.sock is not None
    try:
        new = [*devices, Device("core", "127.0.0.5", "b", "r", "router", snmp_credential="v2")]
        await runtime.apply_inventory(new, [Agent(d.name, d.address, 161, V2c("v2", COMMUNITY)) for d in new])
        assert {s.device: s.community for s in receiver.sources.values()} == \
            {"edge": COMMUNITY.encode(), "core": COMMUNITY.encode()}
    finally:
        await runtime.close()
    assert receiver.sock is None
