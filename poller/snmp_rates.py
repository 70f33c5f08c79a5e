"""Traffic rates, reboots and link changes from successive SNMP polls of one device.

What the SNMP poller keeps of each device's last poll (``DeviceCounters``) to compare the next
with; not to be confused with the clients' ``counters()`` of requests and timeouts.

Pure logic, no I/O. Truth comes first: a rate is given only when the counters allow exactly one
reading of it; a reboot, a counter reset or an ambiguous wrap gives no rate (``None``), never a spike.

Limits of the counters themselves, which no poller can get around:

* 32-bit octet counters (ifInOctets/ifOutOctets) wrap at 2**32 octets: after ~34 s at 1 Gbit/s,
  ~344 s at 100 Mbit/s. Between two polls only one wrap can be assumed, so at a 60 s interval a
  gigabit link read through 32-bit counters cannot tell 100 Mbit/s from 100 + 573 Mbit/s. When the
  interface speed is known and a second wrap would still fit under it, the rate is ambiguous and is
  not given (counted in ``no_rate``); when the speed is unknown, at most one wrap is assumed.
* 64-bit counters never wrap in practice (46 years at 100 Gbit/s), so going backwards is a reset.
  A reset that the counter then outgrew before the next poll cannot be seen, except through
  ifCounterDiscontinuityTime, a reboot, or a rate above the interface speed.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum
from typing import NamedTuple

from poller.events import InterfaceChange, InterfaceStat, Reboot, SnmpPoll
from poller.snmp_mib import status_name
from poller.snmp_source import IfRow, RawPoll

WRAP_32 = 2**32  # Counter32 and TimeTicks (sysUpTime) wrap here
MIN_ELAPSED_S = 1.0  # below this the interval is too short (or broken) to divide by
SPEED_TOLERANCE = 0.01  # rates may exceed the interface speed by this much (timing jitter)
UPTIME_TOLERANCE_S = 2.0  # sysUpTime vs monotonic clock: at least this much slack...
UPTIME_TOLERANCE_FRACTION = 0.10  # ... or this fraction of the interval, whichever is larger
ADMIN_UP = 1


@dataclass(frozen=True, slots=True)
class PollOutcome:
    """What one raw poll became: the poll event, any reboot and link changes, and rates lost."""

    poll: SnmpPoll
    reboot: Reboot | None
    changes: tuple[InterfaceChange, ...]
    over_speed: int  # rates discarded because above the interface speed
    no_rate: int  # directions given no rate: reset, discontinuity, reboot, ambiguous 32-bit wrap

    @property
    def events(self) -> tuple[SnmpPoll | Reboot | InterfaceChange, ...]:
        """The events to emit, in order: the reboot first, then the poll, then link changes."""
        head: tuple[SnmpPoll | Reboot, ...] = (self.poll,)
        if self.reboot is not None:
            head = (self.reboot, self.poll)
        return head + self.changes


class _Seen(NamedTuple):
    """What the next poll needs of one interface: a tuple, to stay small across ~10**6 interfaces."""

    label: str  # an ifindex now carrying another label is another interface
    oper: int | None
    speed_bps: int | None
    in_octets: int | None  # the 64-bit counters when the row had both, else the 32-bit ones
    out_octets: int | None
    counters_64: bool
    discontinuity: int | None
    in_read: float  # time.monotonic() when the answer carrying in_octets / out_octets came
    out_read: float


class _Verdict(Enum):
    OK = "ok"
    NO_RATE = "no_rate"  # reset, or a 32-bit wrap that could have been two
    OVER_SPEED = "over_speed"


def _seen(row: IfRow, mono: float) -> _Seen:
    """``mono``: the poll's time, for counters the row gives no read time of."""
    label = sys.intern(row.label)  # "Gi0/1", "eth0": one copy across tens of thousands of devices
    in_read = mono if row.in_read is None else row.in_read
    out_read = mono if row.out_read is None else row.out_read
    if row.counters_64:
        return _Seen(label, row.oper, row.speed_bps, row.hc_in_octets, row.hc_out_octets, True,
                     row.discontinuity, in_read, out_read)
    return _Seen(label, row.oper, row.speed_bps, row.in_octets, row.out_octets, False, row.discontinuity,
                 in_read, out_read)


def _speed_limit(before: _Seen, now: _Seen) -> float | None:
    """The highest believable rate: the faster of the two speeds (a link may renegotiate), plus jitter."""
    speeds = [s for s in (before.speed_bps, now.speed_bps) if s]
    return max(speeds) * (1 + SPEED_TOLERANCE) if speeds else None


def _rate(before: int, now: int, counters_64: bool, elapsed: float,
          limit: float | None) -> tuple[float | None, _Verdict]:
    """bit/s between two readings of one octet counter, or None and why."""
    delta = now - before
    if delta < 0:
        if counters_64:
            return None, _Verdict.NO_RATE  # a 64-bit counter does not wrap: it was reset
        delta += WRAP_32
        if delta < 0:
            return None, _Verdict.NO_RATE  # a value beyond 32 bits: a broken agent, not a wrap
    rate = delta * 8 / elapsed
    if limit is not None:
        if rate > limit:
            return None, _Verdict.OVER_SPEED
        if not counters_64 and (delta + WRAP_32) * 8 / elapsed <= limit:
            return None, _Verdict.NO_RATE  # one more wrap would fit under the speed: can't tell which
    return rate, _Verdict.OK


def _rates(before: _Seen, now: _Seen, rebooted: bool) -> tuple[float | None, float | None, int, int]:
    """One interface's in and out bit/s (None where none), and how many were over speed / not given.

    Each direction over the time between its two readings (each the time its answer came). Under
    ``MIN_ELAPSED_S`` a direction gets no rate, not counted. A known reset (reboot, changed
    ifCounterDiscontinuityTime, or the counters switched between 32 and 64 bits, so the two
    readings are of different counters) gives no rate in either direction.
    """
    reset = (rebooted or before.counters_64 != now.counters_64
             or before.discontinuity != now.discontinuity)
    limit = _speed_limit(before, now)
    rates: list[float | None] = [None, None]
    over_speed = no_rate = 0
    for i, (old, new, elapsed) in enumerate((
            (before.in_octets, now.in_octets, now.in_read - before.in_read),
            (before.out_octets, now.out_octets, now.out_read - before.out_read))):
        if old is None or new is None or elapsed < MIN_ELAPSED_S:
            continue  # the agent has no such counter, or the interval is too short to divide by
        verdict = _Verdict.NO_RATE
        if not reset:
            rates[i], verdict = _rate(old, new, now.counters_64, elapsed, limit)
        over_speed += verdict is _Verdict.OVER_SPEED
        no_rate += verdict is _Verdict.NO_RATE
    return rates[0], rates[1], over_speed, no_rate


def is_reboot(previous_ticks: int, ticks: int, elapsed_s: float) -> bool:
    """Whether sysUpTime going from ``previous_ticks`` to ``ticks`` in ``elapsed_s`` means a restart.

    sysUpTime is TimeTicks (1/100 s), which wraps at 2**32 after ~497 days: a drop consistent with
    that wrap is not a restart. A restart since the previous poll is also seen when uptime rose but
    is shorter than the interval and well short of where it should be (the device restarted soon
    after a poll taken early in its life); a value that did not move at all is left alone (broken
    agents report a constant).
    """
    elapsed_ticks = max(elapsed_s, 0.0) * 100
    tolerance = max(UPTIME_TOLERANCE_S * 100, UPTIME_TOLERANCE_FRACTION * elapsed_ticks)
    expected = previous_ticks + elapsed_ticks
    if ticks < previous_ticks:
        return not (expected >= WRAP_32 - tolerance and abs(ticks + WRAP_32 - expected) <= tolerance)
    return ticks > previous_ticks and ticks + tolerance < expected and ticks <= elapsed_ticks + tolerance


class DeviceCounters:
    """What one device's previous poll left, to turn the next into rates and events.

    One per polled device; it keeps per interface only a small tuple (``_Seen``), not the poll.
    """

    __slots__ = ("_interfaces", "_links_told", "_mono", "_reboot_told", "_uptime_ticks", "address", "device")

    def __init__(self, device: str, address: str) -> None:
        self.device = device
        self.address = address
        self._uptime_ticks: int | None = None
        self._mono: float | None = None
        self._interfaces: dict[int, _Seen] = {}
        self._reboot_told: datetime | None = None  # when a trap told of a restart not yet polled
        self._links_told: dict[int, datetime] | None = None  # ifindex -> when a trap told its status

    def link_told(self, ifindex: int, oper: int, at: datetime) -> tuple[str, str]:
        """A trap said at ``at`` that interface ``ifindex`` is now ``oper``: (its status at the
        previous poll, "unknown" if not seen; its label, "" if not seen). The next poll compares
        with ``oper``: the change the trap told is not told again; a poll begun before ``at``
        (in flight when the trap came) is older news and changes nothing."""
        seen = self._interfaces.get(ifindex)
        if seen is None:
            return "unknown", ""
        self._interfaces[ifindex] = seen._replace(oper=oper)
        if self._links_told is None:
            self._links_told = {}
        self._links_told[ifindex] = at
        return ("unknown" if seen.oper is None else status_name(seen.oper)), seen.label

    def reboot_told(self, at: datetime) -> float | None:
        """A trap told of a restart at ``at``: sysUpTime at the previous poll (None if unknown).
        The next poll that sees the restart takes it for the rates but does not tell it again."""
        self._reboot_told = at
        return None if self._uptime_ticks is None else self._uptime_ticks / 100

    def update(self, raw: RawPoll) -> PollOutcome:
        """Compare ``raw`` with the previous poll and remember it for the next.

        No rates on the first poll, for an interface seen for the first time (or whose ifindex now
        carries another name), when the interval is under ``MIN_ELAPSED_S``, after a reboot, when
        ifCounterDiscontinuityTime changed or the counters switched between 32 and 64 bits, when a
        64-bit counter went backwards, or when a 32-bit one may have wrapped twice; all but the first
        three count in ``no_rate``. A rate above the interface speed is dropped (``over_speed``).

        Link changes (ifOperStatus) are reported for admin-up interfaces seen at the previous poll
        with a known status in both, after a reboot too: a port that came back down after a restart
        is real news. An admin-down interface was shut by an operator: its changes are not news.
        """
        elapsed = None if self._mono is None else raw.counters_mono - self._mono
        ticks = raw.system.uptime_ticks
        reboot = None
        # No sysUpTime (an agent without it): no reboot can be seen, never one inferred.
        if self._uptime_ticks is not None and elapsed is not None and ticks is not None and ticks >= 0 \
                and is_reboot(self._uptime_ticks, ticks, elapsed):
            reboot = Reboot(self.device, self.address, raw.at, ticks / 100, self._uptime_ticks / 100,
                            raw.at - timedelta(seconds=ticks / 100))
        rebooted = reboot is not None
        told = self._reboot_told
        if told is not None and (rebooted or raw.at >= told):
            # A trap told of this restart already; a poll begun after it that saw none: done.
            self._reboot_told = None
            reboot = None
        stats: list[InterfaceStat] = []
        changes: list[InterfaceChange] = []
        interfaces: dict[int, _Seen] = {}
        over_speed = no_rate = 0
        for row in raw.interfaces:
            now = interfaces[row.ifindex] = _seen(row, raw.counters_mono)
            before = self._interfaces.get(row.ifindex)
            if before is not None and before.label != now.label:
                before = None  # the ifindex was given to another interface: a first sight
            told_at = None if self._links_told is None else self._links_told.get(row.ifindex)
            if before is not None and told_at is not None and raw.at < told_at:
                # Read before a trap told the status: the trap's stays the one to compare with.
                now = interfaces[row.ifindex] = now._replace(oper=before.oper)
            in_bps = out_bps = None
            if before is not None:
                in_bps, out_bps, over, lost = _rates(before, now, rebooted)
                over_speed += over
                no_rate += lost
            if (before is not None and row.admin == ADMIN_UP and before.oper is not None
                    and now.oper is not None and before.oper != now.oper):
                changes.append(InterfaceChange(self.device, self.address, raw.at, row.ifindex, now.label,
                                               status_name(before.oper), status_name(now.oper)))
            stats.append(InterfaceStat(
                row.ifindex, now.label, row.alias or "", status_name(row.admin), status_name(row.oper),
                now.speed_bps, in_bps, out_bps, row.in_errors, row.out_errors, row.in_discards,
                row.out_discards, now.counters_64))
        if self._links_told is not None:
            self._links_told = {i: t for i, t in self._links_told.items() if t > raw.at} or None
        # An unknown uptime (absent, negative) must not become the next poll's reference.
        if ticks is not None and ticks >= 0:
            self._uptime_ticks = ticks
        self._mono, self._interfaces = raw.counters_mono, interfaces
        system = raw.system
        poll = SnmpPoll(self.device, self.address, raw.at, system.name, system.descr, system.object_id,
                        None if ticks is None else ticks / 100, tuple(stats), raw.missing)
        return PollOutcome(poll, reboot, tuple(changes), over_speed, no_rate)
