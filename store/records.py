"""Plain read-only records the history store returns to tests, reports and screens."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import NamedTuple


@dataclass(frozen=True, slots=True)
class Outage:
    """A period a device was down; ``end`` is ``None`` while it still is. ``cause`` is ``down``
    or ``unreachable`` (behind parents that were all out); an unreachable one that became down
    on the device's own evidence says when in ``down_from``."""

    device: str
    start: datetime
    end: datetime | None
    cause: str = "down"
    down_from: datetime | None = None

    def unreachable_until(self, end: datetime) -> datetime | None:
        """Where the unreachable part of the outage ends (``end``: where an open one is counted
        to), or None when none of it was unreachable."""
        if self.cause != "unreachable":
            return None
        stop = self.end or end
        return stop if self.down_from is None else min(self.down_from, stop)

    @property
    def is_open(self) -> bool:
        return self.end is None

    def duration(self, now: datetime) -> timedelta:
        """How long the outage lasted, or has lasted until ``now`` if it is still open."""
        return (self.end or now) - self.start


class Check(NamedTuple):
    """One stored check of one device.

    A named tuple, not a frozen dataclass: a day of one device is 8,640 of them, and a frozen
    dataclass's ``__init__`` (a guarded ``object.__setattr__`` per field) cost ~1.5 µs each.
    """

    device: str
    at: datetime
    sent: int
    received: int
    rtt_ms: float | None

    @property
    def ok(self) -> bool:
        return self.received > 0

    @property
    def loss_pct(self) -> float:
        return 100.0 * (self.sent - self.received) / self.sent if self.sent else 0.0


@dataclass(frozen=True, slots=True)
class Rollup:
    """One device over one bucket of a rollup tier (``"1m"`` or ``"1h"``), starting at ``bucket``.

    ``up_s + down_s`` is the bucket's length; see ``store.rollup`` for how each is computed.
    """

    device: str
    tier: str
    bucket: datetime
    checks: int
    sent: int
    received: int
    rtt_min: float | None
    rtt_avg: float | None
    rtt_max: float | None
    rtt_p95: float | None
    jitter_ms: float | None
    up_s: float
    down_s: float

    @property
    def loss_pct(self) -> float:
        return 100.0 * (self.sent - self.received) / self.sent if self.sent else 0.0

    @property
    def availability_pct(self) -> float:
        total = self.up_s + self.down_s
        return 100.0 * self.up_s / total if total else 0.0


# -- SNMP ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SnmpSystem:
    """A device's system facts as its latest SNMP poll read them."""

    name: str
    descr: str
    object_id: str
    uptime_s: float | None  # None: the agent has no sysUpTime
    missing: tuple[str, ...] = ()  # what the agent lacks ("sysUpTime", "interface table", ...)


@dataclass(frozen=True, slots=True)
class SnmpInterface:
    """One interface as the device's latest SNMP poll left it (rates in bit/s, counters cumulative)."""

    ifindex: int
    name: str
    alias: str
    admin: str
    oper: str
    speed_bps: int | None
    in_bps: float | None
    out_bps: float | None
    in_errors: int | None
    out_errors: int | None
    in_discards: int | None
    out_discards: int | None
    counters_64: bool


@dataclass(frozen=True, slots=True)
class SnmpStatus:
    """How SNMP polling of a device went: every poll tried, and the last one's outcome."""

    polled_at: datetime  # the last poll (answered or not)
    polls: int  # polls tried since the history began
    answered: int  # of those, answered (fully or in part)
    outcome: str  # the last poll's: "answered", "timeout", "error", "authentication"
    detail: str | None  # the error, or what an answering agent lacks
    answered_at: datetime | None  # the last answer; None: never answered


@dataclass(frozen=True, slots=True)
class SnmpLatest:
    """What the latest answered SNMP poll of ``device`` read: its system facts and interfaces by
    ifindex, and how polling it went (``status``), also when it never answered."""

    device: str
    address: str
    polled_at: datetime | None  # the latest answer; None: never answered
    system: SnmpSystem | None  # None: polled, never answered (see ``status``)
    interfaces: tuple[SnmpInterface, ...]
    status: SnmpStatus | None = None  # None: a history from before revision 0004


class IfRate(NamedTuple):
    """One interface's rates at one poll (bit/s; ``None`` where the poll had no rate)."""

    device: str
    ifindex: int
    at: datetime
    in_bps: float | None
    out_bps: float | None


@dataclass(frozen=True, slots=True)
class IfRollup:
    """One interface over one bucket of a tier (``"1m"`` or ``"1h"``); see ``store.rollup``."""

    device: str
    ifindex: int
    tier: str
    bucket: datetime
    samples: int
    in_avg: float | None
    in_max: float | None
    in_p95: float | None
    out_avg: float | None
    out_max: float | None
    out_p95: float | None


@dataclass(frozen=True, slots=True)
class SnmpEvent:
    """A stored SNMP event: ``kind`` 'reboot', 'interface' or 'agent' (see ``store.models``)."""

    device: str
    at: datetime
    kind: str
    ifindex: int | None
    ifname: str | None
    from_state: str | None
    to_state: str | None
    detail: str | None
