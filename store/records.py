"""Plain read-only records the history store returns to tests, reports and screens."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import NamedTuple


@dataclass(frozen=True, slots=True)
class Outage:
    """A period a device was down; ``end`` is ``None`` while it still is."""

    device: str
    start: datetime
    end: datetime | None

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
