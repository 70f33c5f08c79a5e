"""Read-side queries for people and reports: a device's history at the resolution its span needs.

A span of up to a day reads raw checks (8,640 rows at a 10 s interval), up to a week reads
1-minute rollups, anything longer hourly rollups; a tier whose retention no longer reaches
back to ``since`` gives way to the next coarser one. Rollup tiers end at the last complete
bucket (a minute or so behind now); raw checks reach the last write.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

from store.history import HistoryStore
from store.maintenance import Retention
from store.records import Check, Rollup

TierName = Literal["raw", "1m", "1h"]
TIER_NAMES: tuple[TierName, ...] = ("raw", "1m", "1h")
RAW_UP_TO = timedelta(days=1)
MINUTES_UP_TO = timedelta(days=7)
_SLACK = timedelta(minutes=1)


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
