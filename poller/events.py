"""The events the engine emits; everything downstream (store, screens, JSONL) consumes these."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum


class State(StrEnum):
    """Reachability of a device as the engine believes it."""

    UNKNOWN = "unknown"
    UP = "up"
    DOWN = "down"
    UNREACHABLE = "unreachable"  # failed while every parent was DOWN or UNREACHABLE


OUT = frozenset({State.DOWN, State.UNREACHABLE})
"""The states of a device that does not answer: an outage, whatever its cause."""


@dataclass(frozen=True, slots=True)
class CheckResult:
    """One scheduled check of one device: a probe plus any confirmation probes."""

    device: str
    address: str
    at: datetime  # UTC, when the first probe of the check was sent
    sent: int
    received: int
    rtt_ms: float | None  # RTT of the last probe that got a reply in this check
    state: State  # the device's state after this check

    @property
    def ok(self) -> bool:
        return self.received > 0

    @property
    def loss_pct(self) -> float:
        return 100.0 * (self.sent - self.received) / self.sent if self.sent else 0.0


@dataclass(frozen=True, slots=True)
class Transition:
    """A device changed state. ``at`` is when the change was established (UTC)."""

    device: str
    address: str
    from_state: State
    to_state: State
    at: datetime
    down_since: datetime | None  # when the first failed probe of the outage was sent
    rtt_ms: float | None


@dataclass(frozen=True, slots=True)
class FlapChange:
    """A device started or stopped flapping."""

    device: str
    address: str
    flapping: bool
    at: datetime
    transitions_in_window: int


@dataclass(frozen=True, slots=True)
class Gauges:
    """The engine's own health, sampled about once a second."""

    at: datetime
    devices_up: int
    devices_down: int
    devices_unknown: int
    devices_flapping: int
    checks_per_s: float
    probes_per_s: float
    in_flight: int
    skipped: int  # cumulative checks skipped, never queued: skipped_late + skipped_busy
    skipped_late: int  # ... because the scheduler was behind by a whole interval (overload)
    skipped_busy: int  # ... because the device's previous check still ran (confirmation, slow)
    lag_p50_ms: float
    lag_p99_ms: float
    oldest_overdue_ms: float
    rcvbuf_drops: int  # cumulative replies the kernel dropped because the socket buffer was full
    send_errors: int  # cumulative probes the kernel refused to send (no route, ...)
    store_queue: int  # events waiting for the store writer (0 when there is none)
    extra: dict[str, float] = field(default_factory=dict)





# -- SNMP ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class InterfaceStat:
    """One interface as one SNMP poll left it: status, speed and traffic rates."""

    ifindex: int
    name: str  # ifName, else ifDescr
    alias: str
    admin: str  # RFC 2863 names: "up", "down", "testing", ...
    oper: str
    speed_bps: int | None
    in_bps: float | None  # None: no rate this interval (first poll, reset, discontinuity, over speed)
    out_bps: float | None
    in_errors: int | None  # cumulative counters as read
    out_errors: int | None
    in_discards: int | None
    out_discards: int | None
    counters_64: bool  # the rates came from ifHC*Octets


@dataclass(frozen=True, slots=True)
class SnmpPoll:
    """One answered SNMP poll of one device: system facts and its interface table, as far as the
    agent has them (``missing`` names what it lacks: "sysUpTime", "interface table", ...)."""

    device: str
    address: str
    at: datetime  # UTC, when the poll's first request was sent
    sys_name: str
    sys_descr: str
    sys_object_id: str
    uptime_s: float | None  # None: the agent has no sysUpTime (reboots cannot be detected)
    interfaces: tuple[InterfaceStat, ...]
    missing: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class SnmpFailure:
    """One SNMP poll of one device that got no usable answer: a sample, like :class:`SnmpPoll`,
    so that what the agent answered last is known even when it never answered fully."""

    device: str
    address: str
    at: datetime  # UTC, when the poll failed
    reason: str  # "timeout", "authentication", "error"
    detail: str  # "no answer within 2 s (1 retries)", "agent error genErr ..."; never a credential


@dataclass(frozen=True, slots=True)
class Reboot:
    """sysUpTime went down: the device (or its agent) restarted. ``at`` is when it was seen."""

    device: str
    address: str
    at: datetime
    uptime_s: float  # sysUpTime now
    previous_uptime_s: float  # sysUpTime at the poll before
    booted_at: datetime  # at - uptime_s: when it came back
    source: str = "poll"  # "trap": told by a coldStart/warmStart trap (previous_uptime_s: the last poll's)


@dataclass(frozen=True, slots=True)
class InterfaceChange:
    """ifOperStatus of an admin-up interface changed between two polls."""

    device: str
    address: str
    at: datetime
    ifindex: int
    ifname: str
    from_state: str  # "unknown" for a trap about an interface no poll has seen yet
    to_state: str
    source: str = "poll"  # "trap": told by a linkDown/linkUp trap, before any poll saw it


@dataclass(frozen=True, slots=True)
class Trap:
    """An SNMP trap accepted from an inventory device (its source address, its community).

    Text from the trap (``ifname``, ``varbinds``) is escaped here (``\\x1b``): it is the
    sender's, never an instruction to a terminal."""

    device: str
    address: str  # the device's (inventory) address, which the datagram came from
    at: datetime  # UTC, when it was received
    kind: str  # linkDown, linkUp, coldStart, warmStart, authenticationFailure, ... else trap_oid
    trap_oid: str  # snmpTrapOID.0, dotted
    version: str  # "1" or "2c"
    uptime_s: float | None  # the sender's sysUpTime.0, when the trap carries it
    ifindex: int | None  # linkDown/linkUp: the interface
    ifname: str  # ifName (else ifDescr) when the trap carries it
    varbinds: str  # "OID=value, ..." of the other var-binds, cut at 400 characters


@dataclass(frozen=True, slots=True)
class SnmpAgentChange:
    """An agent stopped answering (timeout, refused credentials) or answers again."""

    device: str
    address: str
    at: datetime
    answering: bool
    reason: str  # "timeout", "authentication", ... never a credential


Event = (CheckResult | Transition | FlapChange | Gauges | SnmpPoll | SnmpFailure | Reboot
         | InterfaceChange | SnmpAgentChange | Trap)
