"""The time retention acts on (store.maintenance.Maintenance.steady_now): the wall clock, except
that a step forward is not taken; the time since is counted on the monotonic clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import cast

from store.history import HistoryStore
from store.maintenance import Maintenance

T = datetime(2026, 11, 13, 9, 0, tzinfo=UTC)


def test_steps_forward_are_not_taken_and_steps_back_are() -> None:
    ticks = [100.0]
    m = Maintenance(cast(HistoryStore, None), ticks=lambda: ticks[0])
    assert m.steady_now(T) == T
    ticks[0] += 15
    assert m.steady_now(T + timedelta(seconds=15)) == T + timedelta(seconds=15)  # no step
    ticks[0] += 15
    # The wall clock jumps 10 days ahead: retention goes on counting from the last good reading.
    assert m.steady_now(T + timedelta(days=10, seconds=30)) == T + timedelta(seconds=30)
    ticks[0] += 15
    assert m.steady_now(T + timedelta(days=10, seconds=45)) == T + timedelta(seconds=45)
    ticks[0] += 15
    # Put right (a step back to the truth): followed at once, and trusted from then on.
    assert m.steady_now(T + timedelta(seconds=60)) == T + timedelta(seconds=60)
    ticks[0] += 15
    # A step back below the counted time: retention only waits longer.
    assert m.steady_now(T - timedelta(hours=1)) == T - timedelta(hours=1)
    ticks[0] += 15
    back = T - timedelta(hours=1)
    assert m.steady_now(back + timedelta(seconds=15)) == back + timedelta(seconds=15)


def test_the_wall_clock_a_little_ahead_is_drift_not_a_step() -> None:
    ticks = [0.0]
    m = Maintenance(cast(HistoryStore, None), ticks=lambda: ticks[0])
    m.steady_now(T)
    ticks[0] += 60
    assert m.steady_now(T + timedelta(seconds=60.5)) == T + timedelta(seconds=60.5)
