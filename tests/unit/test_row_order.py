"""RowOrder, the device table's order kept incrementally, driven without an app: after any mix
of updates it equals the order computed from scratch, by bisection and by a re-sort alike."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from poller.events import State
from poller.state import DeviceTracker, StateConfig
from tests.fakes import make_devices
from wardtui.widgets import row_order
from wardtui.widgets.device_rows import (
    COLUMNS,
    SORTS,
    STATIC_COLUMNS,
    StaticRanks,
    packed_sort_keys,
    problem_key,
    row_texts,
    sort_keys,
)
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


def check(tracker: DeviceTracker, rng: random.Random, now: datetime, ok_share: float,
          rtt: float | None = None) -> None:
    """One check of ``tracker`` at ``now``: answered (RTT ``rtt``, else 0.1-50 ms) with the
    probability ``ok_share``."""
    ok = rng.random() < ok_share
    value = (rng.uniform(0.1, 50) if rtt is None else rtt) if ok else None
    tracker.record_probe(value)
    tracker.apply_check(ok, now, now, now.timestamp(), value)


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
            check(trackers[name], rng, now, 0.6)
        if step == 6:
            rows.cycle_sort()  # a new column, then more moves by bisection
        rows.update(names, now)
        assert list(rows.display_order()) == from_scratch(rows, trackers, ranks, sorted(trackers))
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


def shown_from_scratch(trackers: dict[str, DeviceTracker], terms: str, now: datetime) -> list[str]:
    """The rows a filter shows: matched against the text of each row's columns rendered now,
    but the figures that move every second (RTT, loss, down for)."""
    words = terms.lower().split()
    matched = [COLUMNS.index(c) for c in COLUMNS if c.key not in ("rtt", "loss", "down")]
    return [n for n, t in trackers.items()
            if all(w in "\t".join(row_texts(t, now)[i] for i in matched).lower() for w in words)]


@pytest.mark.parametrize("seed", range(6))
def test_order_under_churn_filters_views_and_sorts_equals_a_full_sort(seed: int) -> None:
    """Many and few rows changing per tick (merge and bisection), filters typed, narrowed,
    widened and cleared, views and every sort column, time passing: after each step the display
    order is the one computed from scratch (a filter matching the inventory's columns and the
    state, never the RTT, loss or "down for" text: "1m", "50" and "ms" match no row)."""
    rng = random.Random(seed)
    trackers = {d.name: DeviceTracker(d, StateConfig()) for d in make_devices(400)}
    ranks = StaticRanks({n: t.device for n, t in trackers.items()})
    rows = RowOrder(trackers, ranks)
    now = datetime(2026, 12, 5, tzinfo=UTC)
    for t in trackers.values():
        check(t, rng, now, 0.8)
    rows.rebuild(now)
    if seed % 2:
        rows.prepare_filter(now)  # as the dashboard's warm-up does
    filters = ["", "north", "b3", "b3 north", "b3 nort", "down", "up b1", "1m", "dev1", "", "s", "50",
               "up~flap", "down b2"]
    text = ""
    for step in range(40):
        now += timedelta(seconds=rng.choice((1, 7, 50)))
        changed = rng.sample(sorted(trackers), rng.choice((2, 5, BISECT_LIMIT + 20, 250)))
        for name in changed:
            ok = rng.random() < 0.7
            rtt = round(rng.uniform(0.1, 50), rng.choice((0, 2))) if ok else None
            trackers[name].record_probe(rtt)
            trackers[name].apply_check(ok, now, now, now.timestamp(), rtt)
        rows.update(changed, now)
        if step % 5 == 4:
            rows.cycle_sort()
        if step % 7 == 3:
            rows.view = "problems" if rows.view == "all" else "all"
            rows.invalidate()
        if step % 3 == 0:
            text = rng.choice(filters)
            rows.set_filter(text)
            rows.rebuild(now)
        shown = shown_from_scratch(trackers, text, now) if text else sorted(trackers)
        want = from_scratch(rows, trackers, ranks, shown)
        assert list(rows.display_order()) == want, (step, text, rows.sort_column)
        assert all(rows.matches(n) for n in shown) and rows.shown_count == len(shown)


def test_a_tick_of_many_moved_rows_merges_instead_of_sorting(monkeypatch: pytest.MonkeyPatch) -> None:
    """10,000 of 100,000 rows moving must not sort all of them again: the rows that moved are
    sorted, and the list's sort merges two runs (few comparisons)."""
    trackers = {d.name: DeviceTracker(d, StateConfig()) for d in make_devices(3000)}
    now = datetime(2026, 12, 5, tzinfo=UTC)
    rng = random.Random(3)
    for t in trackers.values():
        rtt = rng.uniform(0.1, 50)
        t.record_probe(rtt)
        t.apply_check(True, now, now, now.timestamp(), rtt)
    ranks = StaticRanks({n: t.device for n, t in trackers.items()})
    rows = RowOrder(trackers, ranks)
    rows.rebuild(now)
    while rows.sort_column != "rtt":
        rows.cycle_sort()
    compared = 0

    class Counted(int):
        def __lt__(self, other: object) -> bool:
            nonlocal compared
            compared += 1
            return int(self) < int(other)  # type: ignore[call-overload]

    changed = rng.sample(sorted(trackers), 300)
    for name in changed:
        trackers[name].record_probe(rng.uniform(0.1, 50))
    real = row_order.packed_sort_keys

    def counted(*args, **kwargs):  # type: ignore[no-untyped-def]
        return {n: Counted(k) for n, k in real(*args, **kwargs).items()}

    rows._sorted = [Counted(k) for k in rows._sorted]
    monkeypatch.setattr(row_order, "packed_sort_keys", counted)
    rows.update(changed, now)
    assert list(rows.display_order()) == from_scratch(rows, trackers, ranks, sorted(trackers))
    # a merge: ~n + m log m comparisons (~7,700 here); a sort of all 3,000 (~31,000) would not
    assert compared < 12_000, compared


def test_packed_keys_order_as_the_tuples_do() -> None:
    """Each live column's packed key orders every device as its sort key's tuple does, ties
    included (none: the name's rank is in each), over down, flapping, unknown and up devices
    with no RTT or loss yet, zero, tiny and huge figures."""
    rng = random.Random(5)
    trackers = {d.name: DeviceTracker(d, StateConfig()) for d in make_devices(600)}
    ranks = StaticRanks({n: t.device for n, t in trackers.items()})
    now = datetime(2026, 12, 5, tzinfo=UTC)
    figures = [0.0, 0.0, 1e-300, 2.5e-7, 0.01, 0.014, 0.016, 1.5, 3.0, 255.0, 1e300,
               float("inf"), float("nan")]
    for i, t in enumerate(trackers.values()):
        kind = i % 5
        if kind == 0:
            continue  # never checked: unknown, no figures
        for _ in range(rng.choice((1, 4))):
            ok = kind != 1 and rng.random() < 0.8
            rtt = rng.choice(figures) if ok else None
            t.record_probe(rtt)
            at = now + timedelta(seconds=rng.choice((0, 1, 2)))
            t.apply_check(ok, at, at, at.timestamp(), rtt)
        if kind == 4:
            t.flapping = True
    states = {(t.state, t.flapping, t.loss_pct is None, t.last_rtt_ms is None) for t in trackers.values()}
    assert len(states) >= 5, states
    bits = max(len(ranks.name) - 1, 1).bit_length()
    for column, _ in SORTS:
        if column in STATIC_COLUMNS:
            continue
        tuples = sort_keys(column, trackers, ranks)
        packed = packed_sort_keys(column, trackers, ranks.name, bits)
        assert sorted(trackers, key=packed.__getitem__) == sorted(trackers, key=tuples.__getitem__), column
        assert len(set(packed.values())) == len(trackers)
        few = packed_sort_keys(column, {"dev7": trackers["dev7"]}, ranks.name, bits)
        assert few == {"dev7": packed["dev7"]}  # a few rows' keys are as all of them made them


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
            check(tracker, rng, now, 0.5)
        names, moved, _ = rows.update(trackers, now)
        assert names == set(trackers) and moved
        assert list(rows.display_order()) == from_scratch(rows, trackers, ranks, sorted(trackers))


def test_a_filter_follows_the_state_not_the_figures() -> None:
    """Filtered on "down", rows that go down come into the filter in their place by the sort
    column (RTT) and leave it when they come back; "down for" text ("2m") and RTT figures are
    not matched, however long they are down."""
    trackers = {d.name: DeviceTracker(d, StateConfig()) for d in make_devices(60)}
    ranks = StaticRanks({n: t.device for n, t in trackers.items()})
    now = datetime(2026, 12, 5, tzinfo=UTC)
    for i, t in enumerate(trackers.values()):
        rtt = 1.0 + i
        t.record_probe(rtt)
        t.apply_check(True, now, now, now.timestamp(), rtt)
    rows = RowOrder(trackers, ranks)
    rows.sort_index = [key for key, _ in SORTS].index("down")
    rows.rebuild(now)
    rows.set_filter("down")
    rows.rebuild(now)
    assert list(rows.display_order()) == []
    down = ["dev3", "dev7", "dev30"]
    while any(trackers[name].state is not State.DOWN for name in down):
        now += timedelta(seconds=1)
        for name in down:
            trackers[name].record_probe(None)
            trackers[name].apply_check(False, now, now, now.timestamp(), None)
        rows.update(down, now)
    assert sorted(rows.display_order()) == sorted(down)
    assert list(rows.display_order()) == from_scratch(rows, trackers, ranks, down)
    for text in ("2m", "12.0", "down 2m"):
        rows.set_filter(text)
        rows.rebuild(now + timedelta(minutes=2))
        assert list(rows.display_order()) == [], text
    rows.set_filter("down")
    rows.rebuild(now)
    for name in down[:2]:
        trackers[name].record_probe(5.0)
        trackers[name].apply_check(True, now, now, now.timestamp(), 5.0)
    rows.update(down[:2], now)
    assert list(rows.display_order()) == ["dev30"] and rows.display_order().index("dev30") == 0
    rows.set_filter("")
    rows.rebuild(now)
    assert list(rows.display_order()) == from_scratch(rows, trackers, ranks, sorted(trackers))


def test_row_names_index_is_each_rows_place_in_every_view() -> None:
    """display_order().index(name) (a bisection, or a search of the problems on top) is each
    row's place, in both views, filtered or not; a row not shown is a ValueError."""
    rng = random.Random(4)
    trackers = {d.name: DeviceTracker(d, StateConfig()) for d in make_devices(300)}
    ranks = StaticRanks({n: t.device for n, t in trackers.items()})
    now = datetime(2026, 12, 5, tzinfo=UTC)
    for t in trackers.values():
        check(t, rng, now, 0.7)
    rows = RowOrder(trackers, ranks)
    rows.sort_index = [key for key, _ in SORTS].index("rtt")
    for view in ("all", "problems"):
        for text in ("", "b2", "zzz"):
            rows.view = view
            rows.set_filter(text)
            rows.rebuild(now)
            order = rows.display_order()
            assert [order.index(name) for name in order] == list(range(len(order)))
            assert order[1:4] == list(order)[1:4]
            for name in trackers:
                if not rows.is_shown(name):
                    assert name not in order
                    with pytest.raises(ValueError):
                        order.index(name)


def test_rows_whose_figures_read_the_same_sort_by_name() -> None:
    """RTT and loss sort by the hundredths the table shows: 5.004 and 5.001 ms read "5.00" and
    stay in name order instead of swapping with decimals nobody sees; 5.02 comes first."""
    trackers = {d.name: DeviceTracker(d, StateConfig()) for d in make_devices(3)}
    ranks = StaticRanks({n: t.device for n, t in trackers.items()})
    now = datetime(2026, 12, 5, tzinfo=UTC)
    for name, rtt in (("dev0", 5.001), ("dev1", 5.004), ("dev2", 5.02)):
        trackers[name].record_probe(rtt)
        trackers[name].apply_check(True, now, now, now.timestamp(), rtt)
    rows = RowOrder(trackers, ranks)
    rows.sort_index = [key for key, _ in SORTS].index("rtt")
    rows.rebuild(now)
    assert list(rows.display_order()) == ["dev2", "dev0", "dev1"]


def test_a_feeds_keys_read_from_the_columns_are_the_trackers_keys() -> None:
    """An attached dashboard's `s` reads a feed's rows straight from the snapshot's columns
    (device_rows.column_packed_keys), each row an event overrides since through its tracker:
    every key is the one read through the trackers, for every live column; a mapping not in
    the columns' order is read through the trackers."""
    from poller.events import CheckResult, FlapChange, Transition
    from poller.live import FLAPPING, STATE_CODE, Columns, LiveRows, LiveTracker
    from wardtui.widgets import device_rows

    rng = random.Random(8)
    n = device_rows.BULK_FROM + 200
    devices = make_devices(n)
    now = datetime(2026, 12, 5, 3, 4, 5, 678_901, tzinfo=UTC)
    columns = Columns.empty(n)
    figures = [0.0, 0.004, 0.005, 0.006, 1.5, 9.999, 255.0, 4e7, 1e300]
    for i, device in enumerate(devices):
        tracker = DeviceTracker(device, StateConfig())
        for _ in range(rng.choice((0, 1, 4))):
            ok = rng.random() < 0.7
            rtt = rng.choice(figures) if ok else None
            at = now + timedelta(microseconds=rng.randrange(10**9))
            tracker.record_probe(rtt)
            tracker.apply_check(ok, at, at, at.timestamp(), rtt)
        tracker.flapping = rng.random() < 0.1
        columns.set_row(i, tracker)
        if rng.random() < 0.1:  # UNREACHABLE (a parent out), as a viewer's columns hold it
            columns.flags[i] = STATE_CODE[State.UNREACHABLE] | (columns.flags[i] & FLAPPING)
            columns.down_since[i] = (now + timedelta(microseconds=rng.randrange(10**9))).timestamp()
    rows = LiveRows(columns)
    trackers = {d.name: LiveTracker(d, rows, i) for i, d in enumerate(devices)}
    for name in rng.sample(sorted(trackers), 40):  # events streamed since the snapshot
        d = trackers[name].device
        at = now + timedelta(seconds=rng.randrange(100), microseconds=rng.randrange(10**6))
        trackers[name].apply(rng.choice([
            Transition(name, d.address, State.UP, State.DOWN, at, at, None),
            Transition(name, d.address, State.DOWN, State.UP, at, None, rng.choice(figures)),
            FlapChange(name, d.address, True, at, 3),
            CheckResult(name, d.address, at, 1, 1, rng.choice(figures), State.UP)]))
    assert len(rows.overridden) == 40
    assert sum(t.state is State.UNREACHABLE for t in trackers.values()) > 50
    ranks = StaticRanks({n: t.device for n, t in trackers.items()})
    bits = max(n - 1, 1).bit_length()
    assert device_rows.in_row_order(trackers) is not None
    for column in ("state", "down", "loss", "rtt"):
        through = device_rows.row_packed_keys(column, trackers, ranks.name, bits)
        assert device_rows.packed_sort_keys(column, trackers, ranks.name, bits) == through, column
        shuffled = dict(reversed(trackers.items()))
        assert device_rows.in_row_order(shuffled) is None
        assert device_rows.packed_sort_keys(column, shuffled, ranks.name, bits) == through
    for tracker in trackers.values():
        tracker.settle()
    assert not rows.overridden


@pytest.mark.parametrize("column", ["address", "ip address", "zoned address", "branch", "region", "type"])
def test_static_ranks_order_by_value_then_name(column: str) -> None:
    """A column that never changes ranks its devices by the value's natural (or address) order,
    values that compare equal ("b7", "B007") together, then by the name's rank: as sorting each
    device's (value key, name rank) does, over repeated, equal-keyed, IPv6 and host-name values."""
    import dataclasses

    from wardtui.widgets.device_rows import _address_key, natural

    rng = random.Random(column)
    pool = {"address": ["127.0.0.9", "127.0.0.10", "::1", "fe80::2", "host-b", "host-a", "10.0.0.1"],
            "ip address": ["127.0.0.9", "127.0.0.10", "::1", "fe80::2", "::ffff:127.0.0.1", "10.0.0.1",
                           "255.255.255.255", "::"],
            "zoned address": ["127.0.0.9", "fe80::2%eth1", "fe80::2%eth0", "fe80::1%eth1", "::1"],
            "branch": ["b7", "B007", "b10", "b2", "", "b2 north", "ü-branch"],
            "region": ["north", "North", "south", "east"],
            "type": ["router", "atm", "atm2", "atm10", "switch"]}[column]
    field = column.split()[-1]
    devices = {d.name: dataclasses.replace(d, **{field: rng.choice(pool)}) for d in make_devices(500)}
    ranks = StaticRanks(devices)
    key = _address_key if field == "address" else natural
    want = sorted(devices, key=lambda n: (key(getattr(devices[n], field)), ranks.name[n]))
    got = ranks.column(field)
    assert sorted(got, key=got.__getitem__) == want
    assert sorted(got.values()) == list(range(500))


def test_a_zoned_address_sorts_with_its_address_then_by_zone() -> None:
    from wardtui.widgets.device_rows import _address_key

    addresses = ["fe80::2%eth1", "host-a", "fe80::2%eth0", "fe80::1%eth1", "::1", "127.0.0.9"]
    assert sorted(addresses, key=_address_key) == \
        ["127.0.0.9", "::1", "fe80::1%eth1", "fe80::2%eth0", "fe80::2%eth1", "host-a"]
