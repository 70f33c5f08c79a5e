"""RowOrder, the device table's order kept incrementally, driven without an app: after any mix
of updates it equals the order computed from scratch, by bisection and by a re-sort alike."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from poller.state import DeviceTracker, StateConfig
from tests.fakes import make_devices
from wardtui.widgets.device_rows import SORTS, StaticRanks, problem_key, sort_keys
from wardtui.widgets.row_order import BISECT_LIMIT, RowOrder


def from_scratch(rows: RowOrder, trackers: dict[str, DeviceTracker], ranks: StaticRanks,
                 shown: list[str]) -> list[str]:
    keys = sort_keys(rows.sort_column, {n: trackers[n] for n in shown}, ranks)
    by_column = sorted(shown, key=lambda n: (keys[n], n))
    if rows.view == "all":
        return by_column
    problems = {n: problem_key(trackers[n], ranks.name[n]) for n in shown}
    top = sorted((k, n) for n, k in problems.items() if k is not None)
    return [n for _, n in top] + [n for n in by_column if problems[n] is None]


@pytest.mark.parametrize("changed", [3, BISECT_LIMIT + 10])
@pytest.mark.parametrize("view", ["all", "problems"])
def test_incremental_order_equals_a_full_sort(changed: int, view: str) -> None:
    rng = random.Random(changed)
    trackers = {d.name: DeviceTracker(d, StateConfig()) for d in make_devices(300)}
    ranks = StaticRanks({n: t.device for n, t in trackers.items()})
    rows = RowOrder(trackers, ranks)
    rows.view = view
    now = datetime(2026, 12, 5, tzinfo=UTC)
    rows.rebuild(now)
    for step in range(12):
        now += timedelta(seconds=10)
        names = rng.sample(sorted(trackers), changed)
        for name in names:
            ok = rng.random() < 0.6
            rtt = rng.uniform(0.1, 50) if ok else None
            trackers[name].record_probe(rtt)
            trackers[name].apply_check(ok, now, now, now.timestamp(), rtt)
        if step == 6:
            rows.cycle_sort()  # a new column, then more moves by bisection
        rows.update(names, now)
        assert rows.display_order() == from_scratch(rows, trackers, ranks, sorted(trackers))
    assert rows.sort_column == SORTS[1][0]


def test_a_filter_shows_only_matching_rows_and_follows_their_text() -> None:
    trackers = {d.name: DeviceTracker(d, StateConfig()) for d in make_devices(40)}
    ranks = StaticRanks({n: t.device for n, t in trackers.items()})
    rows = RowOrder(trackers, ranks)
    now = datetime(2026, 12, 5, tzinfo=UTC)
    rows.set_filter("B3 north")
    rows.rebuild(now)
    shown = [n for n, t in trackers.items() if t.device.branch == "b3" and t.device.region == "north"]
    assert sorted(rows.display_order()) == sorted(shown) and rows.matches(shown[0])
    assert not rows.matches("dev0")
    rows.set_filter("")
    rows.rebuild(now)
    assert len(rows.display_order()) == 40


@pytest.mark.parametrize("view", ["all", "problems"])
def test_an_update_of_every_row_equals_the_order_from_scratch(view: str) -> None:
    """Every row named at once (the engine started, a snapshot named them all) is one rebuild
    while no row text is kept, and row by row once a filter keeps them: the same order."""
    rng = random.Random(11)
    trackers = {d.name: DeviceTracker(d, StateConfig()) for d in make_devices(200)}
    ranks = StaticRanks({n: t.device for n, t in trackers.items()})
    rows = RowOrder(trackers, ranks)
    rows.view = view
    rows.sort_index = [key for key, _ in SORTS].index("rtt")  # a column that moves with the checks
    now = datetime(2026, 12, 5, tzinfo=UTC)
    rows.rebuild(now)
    for filtered in (False, True):
        if filtered:
            rows.prepare_filter(now)  # row texts kept from here on: the row-by-row path
        now += timedelta(seconds=10)
        for tracker in trackers.values():
            ok = rng.random() < 0.5
            rtt = rng.uniform(0.1, 50) if ok else None
            tracker.record_probe(rtt)
            tracker.apply_check(ok, now, now, now.timestamp(), rtt)
        names, moved, _ = rows.update(trackers, now)
        assert names == set(trackers) and moved
        assert rows.display_order() == from_scratch(rows, trackers, ranks, sorted(trackers))
