"""The virtual device table on its own: what it paints, the order it keeps, the cursor, the keys.

Trackers are driven directly (apply_check / record_probe, as the engine does), so every
ordering claim is checked against an order computed from scratch.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest
from textual.app import App, ComposeResult

from poller.events import State
from poller.inventory import Device
from poller.state import DeviceTracker, StateConfig
from tests.fakes import make_devices
from wardtui.widgets import device_table
from wardtui.widgets.device_rows import SORTS, StaticRanks, natural, problem_key, sort_keys
from wardtui.widgets.device_table import DeviceTable, first_by_name

T0 = datetime(2026, 11, 28, 3, 0, tzinfo=UTC)


class TableApp(App[None]):
    def __init__(self, trackers: dict[str, DeviceTracker]) -> None:
        super().__init__()
        self.trackers = trackers
        self.selected: list[str] = []

    def compose(self) -> ComposeResult:
        yield DeviceTable(self.trackers)

    def on_device_table_row_selected(self, event: DeviceTable.RowSelected) -> None:
        self.selected.append(event.device)


def trackers_for(devices: list[Device]) -> dict[str, DeviceTracker]:
    return {d.name: DeviceTracker(d, StateConfig()) for d in devices}


def check(tracker: DeviceTracker, ok: bool, at: datetime, rtt: float | None = 1.0) -> None:
    tracker.record_probe(rtt if ok else None)
    tracker.apply_check(ok, at, at, at.timestamp(), rtt if ok else None)


def expected_order(table: DeviceTable, trackers: dict[str, DeviceTracker], shown: list[str]) -> list[str]:
    """The display order computed from scratch, as the table's docs define it."""
    ranks = StaticRanks({n: trackers[n].device for n in trackers})
    subset = {n: trackers[n] for n in shown}
    keys = sort_keys(table.sort_column, subset, ranks)
    by_column = sorted(shown, key=lambda n: (keys[n], n))
    if table.view == "all":
        return by_column
    problems = {n: problem_key(trackers[n], ranks.name[n]) for n in shown}
    top = sorted((k, n) for n, k in problems.items() if k is not None)
    return [n for _, n in top] + [n for n in by_column if problems[n] is None]


async def test_only_visible_rows_are_painted(monkeypatch: pytest.MonkeyPatch) -> None:
    trackers = trackers_for(make_devices(5000))
    painted: list[str] = []
    real = device_table.row_texts

    def counting(tracker: DeviceTracker, now: datetime) -> tuple[str, ...]:
        painted.append(tracker.device.name)
        return real(tracker, now)

    monkeypatch.setattr(device_table, "row_texts", counting)
    app = TableApp(trackers)
    async with app.run_test(size=(100, 30)) as pilot:
        table = app.query_one(DeviceTable)
        await pilot.pause()
        painted.clear()
        for i, t in enumerate(trackers.values()):  # every device changes
            check(t, ok=i % 3 > 0, at=T0)
        table.refresh_devices(trackers, T0)
        await pilot.pause()
        assert table.row_count == 5000
        # 30 lines minus the header: what is on screen, not 5,000 rows.
        assert 0 < len(set(painted)) <= 29, len(set(painted))
        assert set(painted) <= set(table.row_order()[:29])


async def test_incremental_order_matches_a_full_sort_under_churn() -> None:
    rng = random.Random(7)
    trackers = trackers_for(make_devices(600))
    names = list(trackers)
    app = TableApp(trackers)
    async with app.run_test(size=(100, 30)) as pilot:
        table = app.query_one(DeviceTable)
        at = T0
        for round_ in range(40):
            at += timedelta(seconds=1)
            # few changes (bisect path) in some rounds, many (full sort path) in others
            changed = rng.sample(names, 5 if round_ % 2 else 150)
            for name in changed:
                check(trackers[name], ok=rng.random() > 0.3, at=at, rtt=rng.uniform(0.1, 50))
            table.refresh_devices(changed, at)
            if round_ % 8 == 0:
                table.cycle_sort()
            if round_ % 5 == 0:
                table.set_view("problems" if table.view == "all" else "all")
            if round_ == 20:
                table.set_filter("north")
            shown = [n for n in names if not table.filter_text or trackers[n].device.region == "north"]
            assert table.row_order() == expected_order(table, trackers, shown), (round_, table.sort_column)
        await pilot.pause()


async def test_cursor_follows_its_device_and_stays_on_screen() -> None:
    trackers = trackers_for(make_devices(200))
    for t in trackers.values():
        check(t, ok=True, at=T0)
    app = TableApp(trackers)
    async with app.run_test(size=(100, 20)) as pilot:
        table = app.query_one(DeviceTable)
        table.set_view("problems")
        table.move_cursor(row=150)
        name = table.cursor_device
        assert name is not None and table.row_order()[150] == name
        assert name in table.visible_rows()
        # Five other devices go down: they go on top, the cursor's device moves 5 rows down.
        downs = table.row_order()[180:185]
        for n in downs:
            check(trackers[n], ok=False, at=T0 + timedelta(seconds=5))
        table.refresh_devices(downs, T0 + timedelta(seconds=5))
        await pilot.pause()
        assert table.row_order()[:5] == sorted(downs, key=lambda n: int(n[3:]))
        assert table.cursor_device == name and table.cursor_row == 155
        assert name in table.visible_rows()
        await pilot.press("enter")
        await pilot.pause()
        assert app.selected == [name]
        # A filter that hides it puts the cursor on whoever is at its row now.
        table.set_filter("south" if trackers[name].device.region == "north" else "north")
        assert table.cursor_device is not None and table.cursor_device != name
        assert table.row_order()[table.cursor_row] == table.cursor_device


async def test_keys_move_the_cursor_by_row_page_and_end() -> None:
    trackers = trackers_for(make_devices(300))
    app = TableApp(trackers)
    async with app.run_test(size=(100, 22)) as pilot:
        table = app.query_one(DeviceTable)
        table.focus()
        page = len(table.visible_rows())
        assert page == 22 - 1  # all lines but the header (no border outside the dashboard)
        await pilot.press("down", "down")
        assert table.cursor_row == 2
        await pilot.press("pagedown")
        assert table.cursor_row == 2 + page
        assert table.cursor_device in table.visible_rows()
        await pilot.press("end")
        assert table.cursor_row == 299 and table.visible_rows()[-1] == table.cursor_device
        await pilot.press("pageup")
        assert table.cursor_row == 299 - page
        await pilot.press("home")
        assert table.cursor_row == 0 and table.visible_rows()[0] == table.row_order()[0]
        await pilot.press("up")  # nothing above the first row
        assert table.cursor_row == 0


async def test_clicks_sort_by_column_and_open_the_cursor_row() -> None:
    trackers = trackers_for(make_devices(40))
    for i, t in enumerate(trackers.values()):
        check(t, ok=i != 17, at=T0)
    app = TableApp(trackers)
    async with app.run_test(size=(120, 30)) as pilot:
        table = app.query_one(DeviceTable)
        table.refresh_devices(trackers, T0)
        # line 0 is the header (no border outside the dashboard); "state" is the second column
        name_width = max(len(n) for n in trackers)
        await pilot.click(DeviceTable, offset=(name_width + 2 + 1, 0))
        assert table.sort_column == "state"
        assert table.row_order()[0] == "dev17"  # down first
        await pilot.click(DeviceTable, offset=(3, 2))  # second row: cursor moves there
        assert table.cursor_row == 1 and app.selected == []
        await pilot.pause(0.6)  # not a double click
        await pilot.click(DeviceTable, offset=(3, 2))  # again on the cursor row: opens it
        assert app.selected == [table.row_order()[1]]


async def test_cells_read_now_and_long_names_are_cut() -> None:
    devices = [Device(name="x" * 50, address="127.9.0.1", branch="b", region="r", type="t", line=2),
               Device(name="short", address="127.9.0.2", branch="b", region="r", type="t", line=3)]
    trackers = trackers_for(devices)
    trackers["short"].seed_down(T0)
    app = TableApp(trackers)
    async with app.run_test(size=(120, 10)) as pilot:
        table = app.query_one(DeviceTable)
        table.refresh_devices([], T0 + timedelta(minutes=3, seconds=5))
        await pilot.pause()
        assert table.cell_text("short", "down") == "3m05s"
        assert table.cell_text("short", "state") == "DOWN"
        lines = [strip.text for strip in (table.render_line(y) for y in range(3))]
        assert lines[0].split()[:2] == ["name", "state"]
        long_row = next(line for line in lines if line.lstrip().startswith("x"))
        assert "x" * 31 + "…" in long_row and "x" * 33 not in long_row  # MAX_WIDTH["name"] is 32
        with pytest.raises(KeyError):
            table.cell_text("nope", "state")


def test_static_ranks_order_names_naturally_and_addresses_numerically() -> None:
    devices = {d.name: d for d in [
        Device(name="dev10", address="127.0.0.10", branch="b10", region="r", type="t", line=2),
        Device(name="dev9", address="::1", branch="b9", region="r", type="t", line=3),
        Device(name="Dev2", address="127.0.0.9", branch="b2", region="r", type="t", line=4),
    ]}
    ranks = StaticRanks(devices)
    assert sorted(devices, key=ranks.name.__getitem__) == ["Dev2", "dev9", "dev10"]
    assert sorted(devices, key=ranks.column("address").__getitem__) == ["Dev2", "dev10", "dev9"]
    assert sorted(devices, key=ranks.column("branch").__getitem__) == ["Dev2", "dev9", "dev10"]
    assert natural("b10") > natural("b9")


@pytest.mark.parametrize("column", [key for key, _ in SORTS])
def test_every_sort_column_has_keys(column: str) -> None:
    trackers = trackers_for(make_devices(20))
    check(trackers["dev3"], ok=False, at=T0)
    ranks = StaticRanks({n: t.device for n, t in trackers.items()})
    keys = sort_keys(column, trackers, ranks)
    assert set(keys) == set(trackers)
    assert len(set(keys.values())) == 20  # the name breaks every tie
    if column in ("state", "down"):
        assert min(keys, key=keys.__getitem__) == "dev3"
    assert trackers["dev3"].state is State.DOWN


async def test_a_filter_typed_while_down_devices_recover_between_ticks() -> None:
    """Found by the 20,000-device bench: a device in the table's down set came up before the
    tick that would tell the table, and the next filter crashed re-reading the down set. The
    filter matches the state as of the last tick; the next tick takes the recovered rows out."""
    trackers = trackers_for(make_devices(30))
    for i, t in enumerate(trackers.values()):
        check(t, ok=i % 4 > 0, at=T0)
    app = TableApp(trackers)
    async with app.run_test(size=(100, 30)) as pilot:
        table = app.query_one(DeviceTable)
        table.refresh_devices(trackers, T0)
        table.set_filter("north")
        for name in ("dev0", "dev4", "dev8"):  # down, now answering; no tick yet
            check(trackers[name], ok=True, at=T0 + timedelta(seconds=1))
        table.set_filter("DOWN")
        await pilot.pause()
        assert "dev0" in table.row_order()  # still down as far as the table was told
        table.refresh_devices(["dev0", "dev4", "dev8"], T0 + timedelta(seconds=1))
        await pilot.pause()
        assert table.row_order() == [n for n in trackers if trackers[n].state is State.DOWN]
        assert "dev0" not in table.row_order()


def shuffled_devices(n: int) -> list[Device]:
    """``n`` devices in no order, named so that natural order differs from text order (dev9 <
    dev10), with upper and lower case, two prefixes and a name that sorts first by text only."""
    devices = make_devices(n)
    rng = random.Random(7)
    rng.shuffle(devices)
    renamed = [Device(name=(d.name.upper() if i % 5 == 0 else d.name.replace("dev", "Core-", 1) if i % 7 == 0
                            else d.name), address=d.address, branch=d.branch, region=d.region, type=d.type,
                      line=d.line) for i, d in enumerate(devices)]
    return renamed


async def test_the_first_frame_paints_the_first_rows_by_name_before_the_order_is_made() -> None:
    """At mount the table paints the first screenful by name without ordering every device;
    those rows, in that order, are the first of the whole order made afterwards (here: when a
    test reads it), and the cursor is on the first of them."""
    trackers = trackers_for(shuffled_devices(3000))
    for i, t in enumerate(trackers.values()):
        check(t, ok=i % 9 > 0, at=T0)
    app = TableApp(trackers)
    async with app.run_test(size=(120, 30)) as pilot:
        await pilot.pause()
        table = app.query_one(DeviceTable)
        assert not table.order_made  # nothing here asks for it: the dashboard does after its frame
        shown = table.visible_rows()
        assert len(shown) == 30 - 1  # the screen's lines less the header
        assert table.row_count == 3000 and table.cursor_device == shown[0]
        assert "devices 3000/3000 · sort: name" in str(table.border_title)
        painted = [str(table.render_line(y).text) for y in range(1, 4)]
        assert not table.order_made
        by_name = sorted(trackers, key=lambda n: (natural(n), n))
        assert shown == by_name[:len(shown)]
        assert all(name in line for name, line in zip(shown, painted, strict=False))
        assert table.row_order() == by_name  # made now, and the same
        assert table.order_made and table.visible_rows() == shown


async def test_keys_pressed_before_the_order_is_made_act_on_the_whole_order() -> None:
    """A key that reaches the table before the whole order is made (it is made after the
    dashboard's first frame) makes it first: End goes to the last device by name, not the last
    of the first screenful; a sort and a filter see every device."""
    devices = shuffled_devices(500)
    trackers = trackers_for(devices)
    check(trackers[devices[123].name], ok=False, at=T0)
    by_name = sorted(trackers, key=lambda n: (natural(n), n))
    app = TableApp(trackers)
    async with app.run_test(size=(120, 30)) as pilot:
        table = app.query_one(DeviceTable)
        assert not table.order_made
        await pilot.press("j")
        assert table.cursor_device == by_name[1]
        assert table.order_made
    app = TableApp(trackers)
    async with app.run_test(size=(120, 30)) as pilot:
        table = app.query_one(DeviceTable)
        assert not table.order_made
        await pilot.press("end")
        assert table.cursor_device == by_name[-1] and table.cursor_row == 499
    app = TableApp(trackers)
    async with app.run_test(size=(120, 30)) as pilot:
        table = app.query_one(DeviceTable)
        table.set_sort("state")
        assert table.row_order()[0] == devices[123].name
        assert table.visible_rows()[0] == devices[123].name
    app = TableApp(trackers)
    async with app.run_test(size=(120, 30)) as pilot:
        table = app.query_one(DeviceTable)
        table.set_filter("core-")
        assert table.row_order() == [n for n in by_name if n.lower().startswith("core-")]


async def test_a_terminal_taller_than_the_first_page_gets_the_whole_order() -> None:
    """Rows below the first page (the terminal grew before the order was made) are painted from
    the whole order, made for them."""
    trackers = trackers_for(shuffled_devices(400))
    by_name = sorted(trackers, key=lambda n: (natural(n), n))
    app = TableApp(trackers)
    async with app.run_test(size=(120, 20)) as pilot:
        table = app.query_one(DeviceTable)
        assert not table.order_made
        await pilot.resize_terminal(120, 60)
        await pilot.pause()
        assert table.visible_rows() == by_name[:len(table.visible_rows())]
        assert len(table.visible_rows()) > 20
        assert table.order_made


def test_first_by_name_is_the_start_of_the_whole_name_order() -> None:
    """first_by_name makes the keys of some names only: what it returns is still exactly the
    first rows of StaticRanks' order, whatever the names (digits first, a stem that is a prefix
    of another, case, zero-padded numbers equal to plain ones, punctuation below and above the
    digits, names with no digit, non-ASCII names: then every key is made)."""
    rng = random.Random(11)
    parts = ["a", "A", "ab", "b", "core", "Core-", "dev", "dev-", "x.y", "~z", " ", "_", "é", "٣", "-"]
    for case in range(300):
        size = rng.choice([1, 2, 5, 40, 300])
        names: set[str] = set()
        while len(names) < size:
            numbers = [0, 1, 7, 9, 10, 11, 99, 100]
            text = "".join(rng.choice(parts) if rng.random() < 0.6
                           else str(rng.choice(numbers)).zfill(rng.choice([1, 1, 3]))
                           for _ in range(rng.randint(1, 4)))
            if case % 3 and not (text.isascii() and text.isprintable()):
                continue  # two cases in three: printable ASCII only (the shortcut's)
            names.add(text)
        every = list(names)
        rng.shuffle(every)
        ranks = StaticRanks({n: Device(n, "127.0.0.1", "b", "r", "t") for n in every}).name
        in_order = sorted(every, key=ranks.__getitem__)
        for count in (1, 3, 30):
            assert first_by_name(every, count) == in_order[:count], (every, count)


async def test_the_warm_up_ranks_a_column_on_a_thread_and_s_then_uses_it(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The warm-up makes each static column's ranks on a worker thread (a key pressed meanwhile
    waits for the GIL, not for the whole step); what it made is what `s` to that column uses,
    in the order a full sort gives."""
    import threading

    from wardtui.widgets.row_order import RowOrder

    threads: list[int] = []
    real = RowOrder.prepare_sort

    def recorded(self: RowOrder, column: str) -> None:
        threads.append(threading.get_ident())
        real(self, column)

    monkeypatch.setattr(RowOrder, "prepare_sort", recorded)
    trackers = trackers_for(shuffled_devices(300))
    app = TableApp(trackers)
    async with app.run_test(size=(100, 30)) as pilot:
        table = app.query_one(DeviceTable)
        table.make_order()
        for step in table.warm_up_steps():
            step()
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert len(threads) == 4 and threading.get_ident() not in threads
        assert table._rows._static_text is not None  # the filter's text, made aside too
        table.set_filter("B3")
        assert table.row_order() and all(trackers[n].device.branch == "b3" for n in table.row_order())
        table.set_filter("")
        made = table._rows._static_sorted
        assert set(made) == {"name", "address", "branch", "region", "type"}
        branch = list(made["branch"])
        table.set_sort("branch")
        assert table._rows._sorted == branch  # taken, not made again
        ranks = StaticRanks({n: t.device for n, t in trackers.items()})
        keys = sort_keys("branch", trackers, ranks)
        assert table.row_order() == sorted(trackers, key=keys.__getitem__)
