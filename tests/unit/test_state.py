"""DeviceTracker: the UP/DOWN/flapping verdicts and figures an operator reads off the dashboard."""

from __future__ import annotations

import itertools
import math
import random
from datetime import UTC, datetime, timedelta

import pytest

from poller.events import FlapChange, State, Transition
from poller.inventory import Device
from poller.state import DeviceTracker, StateConfig
from tests.fakes import make_devices

T0 = datetime(2024, 5, 1, 9, 0, 0, tzinfo=UTC)


class Clock:
    """Drives a tracker with checks at explicit wall and monotonic times."""

    def __init__(self, tracker: DeviceTracker) -> None:
        self.tracker = tracker

    def check(self, ok: bool, at: float, rtt: float | None = 1.0,
              sent_offset: float = -3.0) -> tuple[Transition | None, FlapChange | None]:
        """A check finished at ``at`` seconds after T0 whose first probe went ``-sent_offset`` earlier."""
        now = T0 + timedelta(seconds=at)
        first_sent = now + timedelta(seconds=sent_offset)
        return self.tracker.apply_check(ok, first_sent, now, 1000.0 + at, rtt if ok else None)


def tracker(**config: float) -> DeviceTracker:
    return DeviceTracker(make_devices(1)[0], StateConfig(**config))  # type: ignore[arg-type]


def test_unknown_to_up_on_first_success() -> None:
    t = tracker()
    assert t.state is State.UNKNOWN
    transition, flap = Clock(t).check(True, at=0.0, rtt=2.5)
    assert transition is not None and flap is None
    assert (transition.from_state, transition.to_state) == (State.UNKNOWN, State.UP)
    assert transition.device == "dev0" and transition.address == "127.2.0.1"
    assert transition.at == T0 and transition.rtt_ms == 2.5 and transition.down_since is None
    assert t.state is State.UP and t.last_change == T0 and t.down_since is None
    # A second success is no news.
    assert Clock(t).check(True, at=1.0) == (None, None)


def test_failed_check_goes_down_with_down_since_the_first_failed_probe() -> None:
    t = tracker()
    c = Clock(t)
    c.check(True, at=0.0)
    first_sent = T0 + timedelta(seconds=10, microseconds=123_456)
    now = first_sent + timedelta(seconds=2.2)  # after the confirmation probes
    transition, _ = t.apply_check(False, first_sent, now, 1010.0, None)
    assert transition is not None
    assert (transition.from_state, transition.to_state) == (State.UP, State.DOWN)
    assert transition.down_since == first_sent  # exactly, not when DOWN was established
    assert transition.at == now
    assert t.state is State.DOWN and t.down_since == first_sent
    # Further failures keep the original outage start.
    assert c.check(False, at=30.0) == (None, None)
    assert t.down_since == first_sent
    assert not t.needs_confirmation()


def test_unknown_device_that_fails_goes_down() -> None:
    t = tracker()
    transition, _ = Clock(t).check(False, at=5.0)
    assert transition is not None and transition.to_state is State.DOWN
    assert transition.from_state is State.UNKNOWN
    assert transition.down_since == T0 + timedelta(seconds=2.0)


def test_down_to_up_needs_up_after_successes_in_a_row() -> None:
    t = tracker(up_after=2)
    c = Clock(t)
    c.check(True, at=0.0)
    down, _ = c.check(False, at=10.0)
    assert down is not None
    since = t.down_since
    assert c.check(True, at=20.0) == (None, None)
    assert t.state is State.DOWN
    assert c.check(False, at=30.0) == (None, None)  # the streak is broken
    assert c.check(True, at=40.0) == (None, None)
    assert t.state is State.DOWN
    up, _ = c.check(True, at=50.0, rtt=4.0)
    assert up is not None
    assert (up.from_state, up.to_state) == (State.DOWN, State.UP)
    assert up.down_since == since  # the recovery says when the outage began
    assert up.rtt_ms == 4.0
    assert t.state is State.UP and t.down_since is None


def test_first_success_from_unknown_ignores_up_after() -> None:
    t = tracker(up_after=3)
    transition, _ = Clock(t).check(True, at=0.0)
    assert transition is not None and transition.to_state is State.UP


def test_flapping_starts_at_threshold_and_clears_with_hysteresis() -> None:
    t = tracker(flap_threshold=3, flap_window=300.0, flap_clear=1)
    c = Clock(t)
    c.check(True, at=0.0)  # UNKNOWN -> UP does not count as a flap
    assert c.check(False, at=10.0)[1] is None  # 1 transition
    assert c.check(True, at=20.0)[1] is None  # 2 transitions
    assert not t.flapping
    transition, flap = c.check(False, at=30.0)  # 3 transitions within 300 s
    assert transition is not None and transition.to_state is State.DOWN
    assert flap is not None and flap.flapping is True
    assert flap.transitions_in_window == 3 and flap.device == "dev0"
    assert flap.at == T0 + timedelta(seconds=30)
    assert t.flapping
    # Still DOWN; as the window slides: 3 left, then 2 left (below the threshold, but above
    # flap_clear): still flapping, no event.
    assert c.check(False, at=200.0) == (None, None)
    assert c.check(False, at=310.5) == (None, None)  # the t=10 transition left the window
    assert t.flapping
    # The t=20 transition leaves: one left, which is <= flap_clear: cleared, once.
    transition, flap = c.check(False, at=320.5)
    assert transition is None
    assert flap is not None and flap.flapping is False and flap.transitions_in_window == 1
    assert not t.flapping
    assert c.check(False, at=330.0) == (None, None)


def test_two_transitions_in_the_window_are_not_flapping() -> None:
    t = tracker(flap_threshold=3, flap_window=300.0)
    c = Clock(t)
    c.check(True, at=0.0)
    c.check(False, at=10.0)
    c.check(True, at=20.0)
    c.check(False, at=400.0)  # the t=10 one has aged out: 2 in the window
    assert not t.flapping


def test_rolling_loss_avg_and_jitter_exact() -> None:
    t = tracker(stats_window=4)
    assert (t.loss_pct, t.avg_rtt_ms, t.jitter_ms) == (None, None, None)
    for rtt in (10.0, 1.0, None, 3.0, 2.0):
        t.record_probe(rtt)
    # The window holds the last 4: 1.0, lost, 3.0, 2.0.
    assert t.loss_pct == pytest.approx(25.0)
    assert t.avg_rtt_ms == pytest.approx(2.0)
    assert t.jitter_ms == pytest.approx((2.0 + 1.0) / 2)  # |3-1|, |2-3|
    assert t.last_rtt_ms == 2.0
    # Whole-run figures cover all five probes.
    assert (t.sent, t.received) == (5, 4)
    assert (t.rtt_min_ms, t.rtt_max_ms) == (1.0, 10.0)
    assert t.total_avg_rtt_ms == pytest.approx(4.0)


def test_rolling_stats_all_lost() -> None:
    t = tracker(stats_window=10)
    for _ in range(3):
        t.record_probe(None)
    assert t.loss_pct == 100.0 and t.avg_rtt_ms is None and t.jitter_ms is None
    t.record_probe(5.0)
    assert t.loss_pct == pytest.approx(75.0)
    assert t.jitter_ms is None  # one reply has no jitter


def test_seed_down_keeps_the_outage_start_and_recovery_carries_it() -> None:
    since = T0 - timedelta(hours=3, minutes=7)
    t = tracker()
    t.seed_down(since)
    assert t.state is State.DOWN and t.down_since == since
    assert not t.needs_confirmation()  # a known outage costs one probe per interval
    c = Clock(t)
    assert c.check(False, at=0.0) == (None, None)  # still down: no new outage, same start
    assert t.down_since == since
    transition, _ = c.check(True, at=10.0)
    assert transition is not None
    assert (transition.from_state, transition.to_state) == (State.DOWN, State.UP)
    assert transition.down_since == since
    assert t.down_since is None


def test_rolling_loss_stays_exact_as_probes_fall_out_of_the_window() -> None:
    rng = random.Random(5)
    tracker = DeviceTracker(Device("d", "127.0.0.1", "b", "r", "router"), StateConfig(stats_window=20))
    history: list[float | None] = []
    for _ in range(500):
        rtt = None if rng.random() < 0.3 else 1.0
        tracker.record_probe(rtt)
        history.append(rtt)
        window = history[-20:]
        assert tracker.loss_pct == pytest.approx(100.0 * window.count(None) / len(window))


def test_running_window_figures_equal_a_scan_of_the_window() -> None:
    """Average and jitter are kept as running sums (read for every changed device every second):
    over 5,000 probes with losses, across the exact recomputation, they equal a scan."""
    rng = random.Random(7)
    for size in (1, 2, 5, 100):
        t = DeviceTracker(Device("a", "127.0.0.1", "b", "r", "t"), StateConfig(stats_window=size))
        for _ in range(5000):
            t.record_probe(None if rng.random() < 0.3 else rng.random() * 50)
            rtts = [x for x in t.window() if x is not None]
            avg = math.fsum(rtts) / len(rtts) if rtts else None
            jitter = (math.fsum(abs(b - a) for a, b in itertools.pairwise(rtts)) / (len(rtts) - 1)
                      if len(rtts) >= 2 else None)
            for scanned, running in ((avg, t.avg_rtt_ms), (jitter, t.jitter_ms)):
                assert (scanned is None) == (running is None)
                if scanned is not None and running is not None:
                    assert abs(scanned - running) < 1e-9


def test_a_hand_over_starts_the_flapping_window_from_the_recorded_transitions() -> None:
    """serve --cluster: the member taking a shard over seeds each device's flapping window from
    the transitions the other member recorded in the window's length before: a device flapping
    there is flapping here (it started empty before, so the flag dropped and came back later),
    and the window goes on counting from those transitions. First verdicts and DOWN <->
    UNREACHABLE (one outage) do not count, as when they are observed; older ones have left."""
    from poller.engine import Engine
    from tests.fakes import FakeProber

    flappy, calm, outage = make_devices(3)
    engine = Engine([flappy, calm, outage], FakeProber(), None)
    now = datetime.now(UTC)

    def t(device: Device, a: State, b: State, ago: float) -> Transition:
        return Transition(device.name, device.address, a, b, now - timedelta(seconds=ago), None, None)
    window = engine.config.state.flap_window
    engine.seed_flaps([
        t(flappy, State.UNKNOWN, State.UP, 250), t(flappy, State.UP, State.DOWN, 200),
        t(flappy, State.DOWN, State.UP, 120), t(flappy, State.UP, State.DOWN, 30),
        t(calm, State.UP, State.DOWN, window + 5), t(calm, State.DOWN, State.UP, window + 1),
        t(calm, State.UP, State.DOWN, 10),
        t(outage, State.UP, State.UNREACHABLE, 100), t(outage, State.UNREACHABLE, State.DOWN, 90),
        t(outage, State.DOWN, State.UNREACHABLE, 80)])
    assert [engine.trackers[d.name].flapping for d in (flappy, calm, outage)] == [True, False, False]
    assert engine.flapping == 1
    tracker = engine.trackers[flappy.name]
    assert len(tracker._flap_times) == 3
    # The window counts on from them (seeded at [-200, -120, -30] s of the hand-over's clock).
    base = max(tracker._flap_times) + 30
    tracker.seed_down(now, State.DOWN)
    later = now + timedelta(seconds=101)
    _, flap = tracker.apply_check(True, later, later, base + 101, 1.0)  # -200 left, UP came in
    assert flap is None and tracker.flapping and len(tracker._flap_times) == 3
    latest = now + timedelta(seconds=402)
    _, flap = tracker.apply_check(False, latest, latest, base + 402, None)  # the rest left
    assert flap is not None and not flap.flapping and len(tracker._flap_times) == 1
