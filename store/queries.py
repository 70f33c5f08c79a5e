"""Read-side queries for people and reports: a device's history at the resolution its span needs.

A span of up to a day reads raw checks (8,640 rows at a 10 s interval), up to a week reads
1-minute rollups, anything longer hourly rollups; a tier whose retention no longer reaches
back to ``since`` gives way to the next coarser one. Rollup tiers end at the last complete
bucket (a minute or so behind now); raw checks reach the last write. Interface rates
(:func:`interface_history`) follow the same rules, and :func:`latest_snmp` reads what a
device's latest SNMP poll left.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Literal

from store.records import Check, IfRate, IfRollup, Rollup, SnmpLatest

if TYPE_CHECKING:
    from store.history import HistoryStore

TierName = Literal["raw", "1m", "1h"]
TIER_NAMES: tuple[TierName, ...] = ("raw", "1m", "1h")
RAW_UP_TO = timedelta(days=1)
MINUTES_UP_TO = timedelta(days=7)
_SLACK = timedelta(minutes=1)


@dataclass(frozen=True, slots=True)
class Retention:
    """How long each tier is kept; ``None`` keeps it for as long as the database lives.

    Maintenance (:mod:`store.maintenance`) drops what is older; reads use it to know which tier
    still reaches back far enough (:func:`choose_tier`)."""

    raw: timedelta | None = timedelta(days=7)
    minute: timedelta | None = timedelta(days=90)
    hour: timedelta | None = None
    # The notification outbox (store/outbox.py): delivered (sent or summarised) and failed rows;
    # each group's newest row is kept whatever its age (a restart needs it).
    notify_sent: timedelta | None = timedelta(days=7)
    notify_failed: timedelta | None = timedelta(days=30)


@dataclass(frozen=True, slots=True)
class History:
    """What :func:`device_history` found: the tier it read and its points in time order."""

    device: str
    tier: TierName
    since: datetime
    until: datetime
    checks: list[Check]  # when tier == "raw"
    rollups: list[Rollup]  # when tier is "1m" or "1h"

    def __len__(self) -> int:
        return len(self.checks) if self.tier == "raw" else len(self.rollups)


def choose_tier(since: datetime, until: datetime, retention: Retention | None = None,
                now: datetime | None = None) -> TierName:
    """The finest tier that suits the span ``[since, until)`` and still holds ``since``."""
    retention = retention or Retention()
    now = now or datetime.now(UTC)
    span = until - since - _SLACK  # "the last 24 h" computed a moment before ``now`` is still 24 h
    tier: TierName = "raw" if span <= RAW_UP_TO else "1m" if span <= MINUTES_UP_TO else "1h"
    if tier == "raw" and retention.raw is not None and since < now - retention.raw:
        tier = "1m"
    if tier == "1m" and retention.minute is not None and since < now - retention.minute:
        tier = "1h"
    return tier


async def device_history(store: HistoryStore, device: str, since: datetime,
                         until: datetime | None = None, tier: TierName | None = None,
                         retention: Retention | None = None) -> History:
    """``device``'s checks or rollups in ``[since, until)`` (until defaults to now); ``tier``
    ``None`` lets :func:`choose_tier` pick."""
    now = datetime.now(UTC)
    until = until or now
    tier = tier or choose_tier(since, until, retention, now)
    if tier == "raw":
        return History(device, tier, since, until, await store.checks(device, since, until), [])
    return History(device, tier, since, until, [], await store.rollups(device, tier, since, until))


# -- SNMP ------------------------------------------------------------------------------------


async def latest_snmp(store: HistoryStore, device: str) -> SnmpLatest | None:
    """``device``'s latest system facts and interface table; ``None`` if SNMP never polled it."""
    return await store.snmp_latest(device)


@dataclass(frozen=True, slots=True)
class InterfaceHistory:
    """What :func:`interface_history` found: the tier it read and its points by time, then ifindex."""

    device: str
    ifindex: int | None  # None: every interface of the device
    tier: TierName
    since: datetime
    until: datetime
    rates: list[IfRate]  # when tier == "raw"
    rollups: list[IfRollup]  # when tier is "1m" or "1h"

    def __len__(self) -> int:
        return len(self.rates) if self.tier == "raw" else len(self.rollups)


async def interface_history(store: HistoryStore, device: str, since: datetime,
                            until: datetime | None = None, ifindex: int | None = None,
                            tier: TierName | None = None,
                            retention: Retention | None = None) -> InterfaceHistory:
    """``device``'s interface rates or their rollups in ``[since, until)`` (until defaults to now),
    of one interface or all; ``tier`` ``None`` lets :func:`choose_tier` pick, as for checks."""
    now = datetime.now(UTC)
    until = until or now
    tier = tier or choose_tier(since, until, retention, now)
    if tier == "raw":
        rates = await store.if_rates(device, ifindex, since, until)
        return InterfaceHistory(device, ifindex, tier, since, until, rates, [])
    rollups = await store.if_rollups(device, tier, ifindex, since, until)
    return InterfaceHistory(device, ifindex, tier, since, until, [], rollups)
