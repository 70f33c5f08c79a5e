"""The SNMP seam: what the poller asks of an SNMP client (:class:`SnmpSource`), the agent it
names (:class:`Agent`), what one poll reads (:class:`RawPoll`) and how a poll fails (:class:`SnmpError`).

The objects a poll reads, by numeric OID, are in :mod:`poller.snmp_mib`.
"""

from __future__ import annotations

from dataclasses import KW_ONLY, dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from poller.credentials import Credential

@dataclass(frozen=True, slots=True)
class SystemFacts:
    name: str
    descr: str
    object_id: str  # dotted numeric OID
    uptime_ticks: int | None  # sysUpTime, hundredths of a second; None: the agent has none


# What an agent may lack, as said to people (SnmpPoll.missing); the system group's scalars by
# their MIB names. Without sysUpTime a reboot cannot be told from a counter reset.
NO_UPTIME = "sysUpTime"
NO_INTERFACES = "interface table"
MISSING_NOTES = {NO_UPTIME: "reboots cannot be detected", NO_INTERFACES: "no interface figures"}


def missing_text(missing: tuple[str, ...] | list[str]) -> str:
    """``no sysUpTime (reboots cannot be detected), no sysDescr``: what an agent lacks, in words."""
    return ", ".join(f"no {m} ({MISSING_NOTES[m]})" if m in MISSING_NOTES else f"no {m}"
                     for m in missing)


@dataclass(frozen=True, slots=True)
class IfRow:
    """One interface's columns as the agent returned them; None where the agent has no such column."""

    ifindex: int
    descr: str | None = None
    name: str | None = None
    alias: str | None = None
    admin: int | None = None
    oper: int | None = None
    speed: int | None = None  # bit/s (ifSpeed)
    high_speed: int | None = None  # Mbit/s (ifHighSpeed)
    in_octets: int | None = None
    out_octets: int | None = None
    hc_in_octets: int | None = None
    hc_out_octets: int | None = None
    in_errors: int | None = None
    out_errors: int | None = None
    in_discards: int | None = None
    out_discards: int | None = None
    discontinuity: int | None = None  # TimeTicks
    # time.monotonic() when the answer carrying the octet counters used for rates (in, out) came
    # (None: RawPoll.counters_mono): a walk of many requests reads interfaces at different times,
    # and a request resent after a timeout reads its interfaces that much later.
    in_read: float | None = None
    out_read: float | None = None

    @property
    def counters_64(self) -> bool:
        """Whether rates come from the 64-bit counters (both directions have them)."""
        return self.hc_in_octets is not None and self.hc_out_octets is not None

    @property
    def label(self) -> str:
        """What an operator calls the interface: ifName, else ifDescr, else its index."""
        return self.name or self.descr or f"if{self.ifindex}"

    @property
    def speed_bps(self) -> int | None:
        """The interface's speed in bit/s, from ifHighSpeed where set, else ifSpeed; None if unknown."""
        if self.high_speed:
            return self.high_speed * 1_000_000
        if self.speed and self.speed != 0xFFFFFFFF:
            return self.speed
        return None


@dataclass(frozen=True, slots=True)
class RawPoll:
    """Everything one poll read from one agent."""

    at: datetime  # UTC, when the poll's first request was sent
    system: SystemFacts
    interfaces: tuple[IfRow, ...]
    # time.monotonic() when the system group was read (the walk's first answer), which sysUpTime
    # is compared against; the interfaces' counters carry their own (IfRow.in_read, out_read)
    counters_mono: float
    _: KW_ONLY  # the optional figures by name: a positional slip would put one in the other
    latency_s: float = 0.0  # the poll's slowest request, sent -> answer processed (load shows here)
    missing: tuple[str, ...] = ()  # objects the agent does not have ("sysUpTime", "interface table")


# Kept apart from the clients (v3 loads cryptography) so that a run without SNMP agents,
# and the options' defaults, never import them.
@dataclass(frozen=True, slots=True)
class Agent:
    """Where and how to reach one device's agent."""

    key: str  # the device's name: an agent keeps its engine for the whole run
    address: str
    port: int
    credential: Credential
    timeout: float = 2.0  # seconds per request
    retries: int = 1  # resends per request after a timeout


class SnmpError(Exception):
    """A poll failed. ``reason`` is one word for gauges and events ("timeout", "authentication",
    "error"); the message says more and never holds a credential."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class SnmpSource(Protocol):
    """What the poller needs of an SNMP client (:class:`poller.snmp_walk.SnmpClient`, or a fake)."""

    async def poll(self, agent: Agent) -> RawPoll:
        """Read ``agent``'s system group and interface tables; raises :class:`SnmpError`."""
        ...

    def counters(self) -> dict[str, int]:
        """Cumulative figures for the gauges: ``requests``, ``timeouts``, ``auth_failures`` ..."""
        ...

    def forget(self, key: str) -> None:
        """Drop what is kept for the agent ``key`` (its version, engine, community, last walk):
        the next poll of that key starts afresh, e.g. with a new address or credential."""
        ...

    def close(self) -> None: ...
