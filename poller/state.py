"""Per-device state: UNKNOWN -> UP / DOWN / UNREACHABLE with confirmation, flapping, and rolling
statistics."""

from __future__ import annotations

import itertools
import math
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from poller.events import OUT, FlapChange, State, Transition
from poller.inventory import Device


@dataclass(frozen=True, slots=True)
class StateConfig:
    """Thresholds; the defaults follow the NOC's practice (3 changes in 5 minutes = flapping)."""

    confirm_probes: int = 2  # extra probes after a failure before declaring DOWN
    confirm_spacing: float = 1.0  # seconds between confirmation probes
    up_after: int = 1  # successful checks in a row needed to leave DOWN
    flap_threshold: int = 3  # transitions within flap_window that mark a device flapping
    flap_window: float = 300.0
    flap_clear: int = 1  # flapping clears when the window holds at most this many transitions
    stats_window: int = 100  # probes in the rolling RTT / loss window


RESYNC = 1024
"""Probes between exact recomputations of a tracker's running window figures."""


def utc_from_ns(ns: int) -> datetime:
    return datetime.fromtimestamp(ns / 1e9, UTC)


class DeviceTracker:
    """Everything the engine knows about one device; screens read it, only the engine writes."""

    __slots__ = ("_diff_sum", "_flap_times", "_last_reply", "_lost", "_ok_streak", "_replies",
                 "_reply_sum", "_window", "config", "device", "down_since",
                 "flapping", "last_change", "last_rtt_ms", "received",
                 "rtt_max_ms", "rtt_min_ms", "rtt_sum_ms", "sent", "state")

    def __init__(self, device: Device, config: StateConfig) -> None:
        self.device = device
        self.config = config
        self.state = State.UNKNOWN
        self.down_since: datetime | None = None
        self.last_change: datetime | None = None
        self.flapping = False
        self.last_rtt_ms: float | None = None
        self.sent = 0  # whole-run totals
        self.received = 0
        self.rtt_sum_ms = 0.0
        self.rtt_min_ms: float | None = None
        self.rtt_max_ms: float | None = None
        self._window: deque[float | None] = deque(maxlen=config.stats_window)
        self._flap_times: deque[float] = deque()
        self._ok_streak = 0
        self._lost = 0  # probes without a reply in the window
        # Running figures of the window's replies (average and jitter are read for every changed
        # device every second by the live feed and the screens: a scan of the window each time
        # cost ~15 us a device). Recomputed exactly every RESYNC probes against float drift.
        self._replies = 0
        self._reply_sum = 0.0
        self._diff_sum = 0.0  # sum of |b - a| over consecutive replies in the window
        self._last_reply: float | None = None

    def seed_down(self, since: datetime, state: State = State.DOWN) -> None:
        """Restore an outage that was open when wardtui last stopped (DOWN or UNREACHABLE)."""
        self.state = state
        self.down_since = since
        self.last_change = since

    def seed_up(self) -> None:
        """Start UP: the history's last word on the device (a cluster member taking over its
        shard from another, which had it UP). A failure is then confirmed and recorded as
        UP -> DOWN; a success changes nothing, so a hand-over reports no device UP again."""
        self.state = State.UP

    def seed_flaps(self, ages: list[float], now_mono: float) -> bool:
        """Start the flapping window from transitions another poller observed (a cluster member
        taking over the device's shard): ``ages``, seconds before ``now_mono``, of those that
        count as flaps. Returns whether the device is flapping now (no FlapChange: the other
        poller announced it)."""
        window = self.config.flap_window
        self._flap_times = deque(now_mono - age for age in sorted(ages, reverse=True) if 0 <= age <= window)
        self.flapping = len(self._flap_times) >= self.config.flap_threshold
        return self.flapping

    @staticmethod
    def counts_as_flap(from_state: State, to_state: State) -> bool:
        """Whether a transition enters the flapping window (as :meth:`apply_check` counts them):
        not a first verdict, and not DOWN <-> UNREACHABLE (one outage)."""
        return from_state is not State.UNKNOWN and not (from_state in OUT and to_state in OUT)

    # -- probes ------------------------------------------------------------------------------
    def record_probe(self, rtt_ms: float | None) -> None:
        self.sent += 1
        window = self._window
        if len(window) == window.maxlen:
            oldest = window[0]  # about to fall out of the window
            if oldest is None:
                self._lost -= 1
            else:
                self._replies -= 1
                self._reply_sum -= oldest
                if self._replies:
                    # The next reply in the window; most often the very next probe.
                    after = window[1]
                    if after is None:
                        after = next(r for r in itertools.islice(window, 2, None) if r is not None)
                    self._diff_sum -= abs(after - oldest)
                else:
                    self._last_reply = None
                    self._reply_sum = self._diff_sum = 0.0
        window.append(rtt_ms)
        if self.sent % RESYNC == 0:
            self._resync()
        if rtt_ms is None:
            self._lost += 1
            return
        if self._last_reply is not None:
            self._diff_sum += abs(rtt_ms - self._last_reply)
        self._replies += 1
        self._reply_sum += rtt_ms
        self._last_reply = rtt_ms
        self.received += 1
        self.last_rtt_ms = rtt_ms
        self.rtt_sum_ms += rtt_ms
        if self.rtt_min_ms is None or rtt_ms < self.rtt_min_ms:
            self.rtt_min_ms = rtt_ms
        if self.rtt_max_ms is None or rtt_ms > self.rtt_max_ms:
            self.rtt_max_ms = rtt_ms

    def _resync(self) -> None:
        """The running figures recomputed from the window (before the newest probe is counted in
        them: the caller adds it, the window already holds it)."""
        rtts = [r for r in itertools.islice(self._window, 0, len(self._window) - 1) if r is not None]
        self._replies = len(rtts)
        self._reply_sum = math.fsum(rtts)
        self._diff_sum = math.fsum(abs(b - a) for a, b in itertools.pairwise(rtts))
        self._last_reply = rtts[-1] if rtts else None

    def window(self) -> tuple[float | None, ...]:
        """The rolling window's RTTs (None = lost), oldest first, as a snapshot.

        Copying a deque to a tuple happens in C without releasing the GIL, so a screen on
        another thread can read it while the engine appends.
        """
        return tuple(self._window)

    @property
    def loss_pct(self) -> float | None:
        """Loss over the rolling window, None before the first probe."""
        # A running count, not a scan: screens ask for every down device on every tick.
        size = len(self._window)
        return 100.0 * min(self._lost, size) / size if size else None

    @property
    def avg_rtt_ms(self) -> float | None:
        """Mean RTT of the window's replies."""
        n = self._replies
        return self._reply_sum / n if n else None

    @property
    def jitter_ms(self) -> float | None:
        """Mean absolute difference between consecutive replies' RTTs in the window."""
        n = self._replies
        return max(0.0, self._diff_sum) / (n - 1) if n >= 2 else None

    @property
    def total_avg_rtt_ms(self) -> float | None:
        return self.rtt_sum_ms / self.received if self.received else None

    # -- checks ------------------------------------------------------------------------------
    def needs_confirmation(self) -> bool:
        """A failure on a device not already out (DOWN or UNREACHABLE) is confirmed before it is
        believed. (The engine also confirms an UNREACHABLE device's failure once a parent is
        back: it may be DOWN now.)"""
        return self.state not in OUT

    def apply_check(self, ok: bool, first_sent: datetime, now: datetime | None, now_mono: float,
                    rtt_ms: float | None,
                    unreachable: bool = False) -> tuple[Transition | None, FlapChange | None]:
        """Fold one finished check into the state; return what changed. ``now`` None: the
        current time, read only if something changed (most checks change nothing, and reading
        the clock as a datetime cost ~0.5 us a check). ``unreachable``: a failure behind parents
        that are all out (the engine's verdict): UNREACHABLE, not DOWN. A DOWN device stays
        DOWN when its parents fail after it (it was down on its own evidence); an UNREACHABLE
        one becomes DOWN on a failure with a parent back (its outage goes on: same
        ``down_since``)."""
        before = self.state
        if ok:
            self._ok_streak += 1
            if before is State.UNKNOWN or (before in OUT and self._ok_streak >= self.config.up_after):
                self.state = State.UP
        else:
            self._ok_streak = 0
            if before not in OUT:
                self.state = State.UNREACHABLE if unreachable else State.DOWN
                self.down_since = first_sent
            elif before is State.UNREACHABLE and not unreachable:
                self.state = State.DOWN
        if self.state is before:
            return None, self._flap_update(now, now_mono)
        if now is None:
            now = datetime.now(UTC)
        transition = Transition(self.device.name, self.device.address, before, self.state, now,
                                self.down_since, rtt_ms)
        if self.state is State.UP:
            self.down_since = None
        self.last_change = now
        if self.counts_as_flap(before, self.state):
            self._flap_times.append(now_mono)  # UNREACHABLE -> DOWN is one outage, not a flap
        return transition, self._flap_update(now, now_mono)

    def _flap_update(self, now: datetime | None, now_mono: float) -> FlapChange | None:
        times = self._flap_times
        while times and now_mono - times[0] > self.config.flap_window:
            times.popleft()
        if not self.flapping and len(times) >= self.config.flap_threshold:
            self.flapping = True
        elif self.flapping and len(times) <= self.config.flap_clear:
            self.flapping = False
        else:
            return None
        return FlapChange(self.device.name, self.device.address, self.flapping,
                          datetime.now(UTC) if now is None else now, len(times))


class TrackerView(Protocol):
    """What the screens read of a device's live state: a :class:`DeviceTracker` here, or the
    copy a dashboard attached to a service keeps (:class:`poller.live.LiveTracker`)."""

    @property
    def device(self) -> Device: ...
    @property
    def state(self) -> State: ...
    @property
    def flapping(self) -> bool: ...
    @property
    def down_since(self) -> datetime | None: ...
    @property
    def last_change(self) -> datetime | None: ...
    @property
    def last_rtt_ms(self) -> float | None: ...
    @property
    def avg_rtt_ms(self) -> float | None: ...
    @property
    def jitter_ms(self) -> float | None: ...
    @property
    def loss_pct(self) -> float | None: ...
    @property
    def sent(self) -> int: ...
    @property
    def received(self) -> int: ...
    @property
    def rtt_min_ms(self) -> float | None: ...
    @property
    def rtt_max_ms(self) -> float | None: ...
    @property
    def total_avg_rtt_ms(self) -> float | None: ...

    def window(self) -> tuple[float | None, ...]: ...
