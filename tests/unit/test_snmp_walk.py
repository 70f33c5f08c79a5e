"""The client's interface walk against a simulated agent (GETBULK over a sorted MIB): full and fast
polls, mixed 64/32-bit agents, short, truncated and tooBig answers, odd indexes, hostile text."""

from __future__ import annotations

import bisect
import dataclasses
from typing import Any

import pytest

from poller.credentials import V2c
from poller.snmp_getbulk import END_OF_MIB_VIEW, Oid, OidValue, TooBig, Value
from poller.snmp_mib import IF_COLUMNS, IFX_COLUMNS, SYSTEM_OIDS
from poller.snmp_rates import DeviceCounters
from poller.snmp_source import Agent, SnmpError
from poller.snmp_walk import ALL_COLUMNS, FAST_64, MAX_REQUESTS_PER_WALK, SnmpClient

AGENT = Agent("sim", "127.0.0.1", 161, V2c("sim", "c0mmunity"))


def oid(text: str) -> Oid:
    return tuple(int(x) for x in text.split("."))


class SimAgent:
    """A MIB as a sorted list; answers GETBULK as RFC 3416 says, with optional limits: the
    client's GetBulk for both versions (poller.snmp_getbulk), so no pysnmp and no socket."""

    def __init__(self, interfaces: dict[int, dict[str, Any]], uptime: int | None = 100_000,
                 extra: dict[str, Value] | None = None) -> None:
        self.values: dict[Oid, Value] = {}
        system = dict(zip(SYSTEM_OIDS, (b"Linux sim", oid("1.3.6.1.4.1.8072.3.2.10"), uptime, b"sim"),
                          strict=True))
        for name, value in system.items():
            if value is not None:
                self.values[oid(name)] = value  # type: ignore[assignment]
        columns = {**IF_COLUMNS, **IFX_COLUMNS}
        for index, fields in interfaces.items():
            for field, value in fields.items():
                self.values[(*oid(columns[field]), index)] = value
        for name, value in (extra or {}).items():
            self.values[oid(name)] = value
        self.order = sorted(self.values)
        self.max_varbinds: int | None = None  # truncate answers to this many var-binds
        self.too_big_above: int | None = None  # answer tooBig when asked for more repetitions
        self.requests: list[tuple[int, int, list[Oid]]] = []

    def next_after(self, name: Oid) -> tuple[Oid, Value]:
        at = bisect.bisect_right(self.order, name)
        if at == len(self.order):
            return name, END_OF_MIB_VIEW
        found = self.order[at]
        return found, self.values[found]

    async def open(self, agent: Agent) -> None:
        pass

    async def getbulk(self, agent: Agent, non_repeaters: int, reps: int,
                      oids: list[Oid]) -> list[tuple[Oid, Value]]:
        self.requests.append((non_repeaters, reps, oids))
        if self.too_big_above is not None and reps > self.too_big_above:
            raise TooBig
        answer = [self.next_after(o) for o in oids[:non_repeaters]]
        last = list(oids[non_repeaters:])
        for _ in range(reps):
            row = [self.next_after(o) for o in last]
            answer += row
            last = [name for name, _ in row]
        return answer[: self.max_varbinds] if self.max_varbinds is not None else answer


    def counters(self) -> dict[str, int]:
        return {}

    def forget(self, key: str) -> None:
        pass

    def close(self) -> None:
        pass


def sim_client(sim: SimAgent, **kwargs: Any) -> SnmpClient:
    return SnmpClient(v2c=sim, v3=sim, **kwargs)


def port(index: int, octets: int, hc: bool = True, **more: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {"descr": f"eth{index}".encode(), "name": f"eth{index}".encode(),
                              "alias": b"", "admin": 1, "oper": 1, "speed": 1_000_000_000,
                              "in_octets": octets % 2**32, "out_octets": octets % 2**32,
                              "in_errors": 0, "out_errors": 0, "in_discards": 0, "out_discards": 0,
                              "discontinuity": 0}
    if hc:
        fields |= {"hc_in_octets": octets, "hc_out_octets": octets, "high_speed": 1000}
    return fields | more


def columns_asked(request: tuple[int, int, list[Oid]]) -> set[str]:
    names = {oid(c): f for f, c in {**IF_COLUMNS, **IFX_COLUMNS}.items()}
    return {names[o[:-1]] if o[:-1] in names else names[o] for o in request[2][request[0]:]}


async def test_a_full_poll_reads_every_column_and_fast_ones_only_what_changes() -> None:
    sim = SimAgent({1: port(1, 10**12), 2: port(2, 10**12, alias=b"uplink")})
    client = sim_client(sim, full_every=3)
    first = await client.poll(AGENT)
    assert columns_asked(sim.requests[0]) == {f for f, _ in ALL_COLUMNS}
    fast = await client.poll(AGENT)
    assert columns_asked(sim.requests[-1]) == {f for f, _ in FAST_64}
    def same(row: Any) -> Any:  # all but the 32-bit octets, which a fast poll of this agent skips
        return (row.ifindex, row.name, row.descr, row.alias, row.speed, row.high_speed, row.hc_in_octets)
    assert [same(r) for r in fast.interfaces] == [same(r) for r in first.interfaces]
    assert fast.interfaces[1].alias == "uplink"
    await client.poll(AGENT)
    await client.poll(AGENT)  # the third after a full one is full again
    assert columns_asked(sim.requests[-1]) == {f for f, _ in ALL_COLUMNS}


async def test_an_agent_with_64_bit_counters_on_some_ports_only_gets_rates_for_all() -> None:
    # (Without 64-bit counters, a port must be slower than ~570 Mbit/s for a 60 s rate to be
    # unambiguous; RFC 2863 asks for them from 20 Mbit/s up, so this is the usual mix.)
    sim = SimAgent({1: port(1, 10**12), 2: port(2, 5_000, hc=False, speed=100_000_000)})
    client = sim_client(sim)
    counters = DeviceCounters("sim", "127.0.0.1")
    raw = await client.poll(AGENT)
    counters.update(raw)
    for index, step in ((1, 7_500_000), (2, 750_000)):
        for field in ("hc_in_octets", "in_octets"):
            key = (*oid({**IF_COLUMNS, **IFX_COLUMNS}[field]), index)
            if key in sim.values:
                sim.values[key] = int(sim.values[key]) + step  # type: ignore[call-overload]
    later = await client.poll(AGENT)
    # Read 60 s after the first poll's: the poll's time and each interface's read times.
    first = {r.ifindex: r for r in raw.interfaces}
    rows = tuple(dataclasses.replace(r, in_read=was.in_read + 60.0, out_read=was.out_read + 60.0)
                 for r in later.interfaces
                 if (was := first[r.ifindex]).in_read is not None and was.out_read is not None)
    assert len(rows) == 2
    later = type(later)(later.at, later.system, rows, raw.counters_mono + 60.0)
    outcome = counters.update(later)
    rates = {s.ifindex: s.in_bps for s in outcome.poll.interfaces}
    assert rates == {1: pytest.approx(1_000_000), 2: pytest.approx(100_000)}
    assert outcome.no_rate == 0


async def test_an_answer_truncated_to_fewer_rows_is_walked_on() -> None:
    sim = SimAgent({i: port(i, 10**9 + i) for i in range(1, 31)})
    sim.max_varbinds = 4 + 16 * 3  # the system group and three rows per answer
    raw = await sim_client(sim).poll(AGENT)
    assert [i.ifindex for i in raw.interfaces] == list(range(1, 31))
    assert all(i.hc_in_octets == 10**9 + i.ifindex and i.name == f"eth{i.ifindex}" for i in raw.interfaces)
    assert len(sim.requests) >= 10


async def test_an_answer_with_only_the_system_group_is_an_error_not_an_empty_table() -> None:
    sim = SimAgent({1: port(1, 10**9)})
    sim.max_varbinds = 4
    with pytest.raises(SnmpError, match="none of the interface columns"):
        await sim_client(sim).poll(AGENT)


async def test_too_big_halves_the_rows_asked_for() -> None:
    sim = SimAgent({i: port(i, 10**9) for i in range(1, 9)})
    sim.too_big_above = 2
    raw = await sim_client(sim).poll(AGENT)
    assert len(raw.interfaces) == 8
    assert [r[1] for r in sim.requests][:3] == [9, 4, 2]


async def test_an_agent_without_sys_uptime_answers_and_is_never_a_reboot() -> None:
    sim = SimAgent({1: port(1, 10**9)}, uptime=None)
    client = sim_client(sim)
    counters = DeviceCounters("sim", "127.0.0.1")
    first = await client.poll(AGENT)
    assert first.system.uptime_ticks is None and first.missing == ("sysUpTime",)
    assert first.system.descr == "Linux sim" and [i.ifindex for i in first.interfaces] == [1]
    counters.update(first)
    sim.values[oid(SYSTEM_OIDS[2])] = 5  # sysUpTime appears, then goes again: never a reboot
    sim.order = sorted(sim.values)
    counters.update(await client.poll(AGENT))
    del sim.values[oid(SYSTEM_OIDS[2])]
    sim.order = sorted(sim.values)
    outcome = counters.update(await client.poll(AGENT))
    assert outcome.reboot is None and outcome.poll.uptime_s is None
    assert outcome.poll.missing == ("sysUpTime",)


async def test_an_agent_with_only_sys_object_id_and_vendor_objects_answers_with_what_it_has() -> None:
    """The shape of snmpsim's recorded Eaton 9PX UPS: of the system group only sysObjectID, then
    the vendor's tree (1.3.6.1.4.1.534...), no ifTable: every GETNEXT lands past what was asked."""
    sim = SimAgent({}, uptime=None, extra={"1.3.6.1.4.1.534.1.1.2.0": b"Eaton 9PX 2200i RT 3U",
                                           "1.3.6.1.4.1.534.1.2.1.0": 17218})
    for name in (SYSTEM_OIDS[0], SYSTEM_OIDS[3]):  # no sysDescr, no sysName
        del sim.values[oid(name)]
    sim.values[oid(SYSTEM_OIDS[1])] = OidValue(oid("1.3.6.1.4.1.705.1"))
    sim.order = sorted(sim.values)
    client = sim_client(sim)
    for _ in range(3):  # the full poll, then fast ones
        raw = await client.poll(AGENT)
        assert raw.system.object_id == "1.3.6.1.4.1.705.1" and raw.system.uptime_ticks is None
        assert raw.interfaces == ()
        assert raw.missing == ("sysUpTime", "sysDescr", "sysName", "interface table")
    assert len(sim.requests) == 3  # one GETBULK a poll: the walk ends at the first answer


async def test_a_new_interface_in_a_fast_poll_gets_its_name_at_once() -> None:
    sim = SimAgent({1: port(1, 10**9)})
    client = sim_client(sim)
    await client.poll(AGENT)
    for field, value in port(7, 10**9, name=b"ge-0/0/7").items():
        sim.values[(*oid({**IF_COLUMNS, **IFX_COLUMNS}[field]), 7)] = value
    sim.order = sorted(sim.values)
    raw = await client.poll(AGENT)
    assert [(i.ifindex, i.name) for i in raw.interfaces] == [(1, "eth1"), (7, "ge-0/0/7")]


async def test_out_of_range_indexes_are_skipped_and_text_is_made_harmless() -> None:
    sim = SimAgent({1: port(1, 10**9, alias=b"\x1b]0;owned\x07core\x1b[2J\x00\x00"),
                    2**31: port(2, 10**9)})
    raw = await sim_client(sim).poll(AGENT)
    assert [i.ifindex for i in raw.interfaces] == [1]
    alias = raw.interfaces[0].alias
    assert alias is not None and "\x1b" not in alias and "\x07" not in alias and alias.endswith("[2J")


async def test_a_column_that_never_ends_stops_the_walk_with_an_error() -> None:
    sim = SimAgent({i: {"admin": 1} for i in range(1, MAX_REQUESTS_PER_WALK * 30)})
    with pytest.raises(SnmpError, match="did not end"):
        await sim_client(sim, max_repetitions=25).poll(AGENT)
