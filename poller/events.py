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


Event = CheckResult | Transition | FlapChange | Gauges
