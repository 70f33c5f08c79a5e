"""UNREACHABLE on the dashboard: its own label and colour, sorted between DOWN and flapping,
in the problems view after the DOWN devices, its outage's duration shown, counted in the tree."""

from __future__ import annotations

import random
from datetime import timedelta

from rich.style import Style
from textual.app import App, ComposeResult

from poller.events import State
from poller.inventory import Device
from poller.state import DeviceTracker
from tests.fakes import make_devices
from tests.ui.test_device_table import T0, TableApp, expected_order, trackers_for
from wardtui.widgets.device_table import DeviceTable
from wardtui.widgets.groups import GroupTree
from wardtui.widgets.states import StatePalette


def fail(tracker: DeviceTracker, at: object, unreachable: bool) -> None:
    tracker.record_probe(None)
    tracker.apply_check(False, at, at, at.timestamp(), None, unreachable=unreachable)  # type: ignore[arg-type,attr-defined]


def ok(tracker: DeviceTracker, at: object) -> None:
    tracker.record_probe(1.0)
    tracker.apply_check(True, at, at, at.timestamp(), 1.0)  # type: ignore[arg-type,attr-defined]


def fleet() -> dict[str, DeviceTracker]:
    devices = [Device("rtr", "127.9.0.1", "b1", "north", "router"),
               Device("atm [b]x[/b]", "127.9.0.2", "b1", "north", "atm", parents=("rtr",)),
               Device("cam", "127.9.0.3", "b1", "north", "camera", parents=("rtr",)),
               Device("flappy", "127.9.0.4", "b2", "north", "router"),
               Device("quiet", "127.9.0.5", "b2", "north", "router"),
               Device("new", "127.9.0.6", "b2", "north", "router")]
    trackers = trackers_for(devices)
    for name in ("rtr", "atm [b]x[/b]", "cam", "flappy", "quiet"):
        ok(trackers[name], T0)
    fail(trackers["rtr"], T0 + timedelta(seconds=10), unreachable=False)
    fail(trackers["atm [b]x[/b]"], T0 + timedelta(seconds=5), unreachable=True)
    fail(trackers["cam"], T0 + timedelta(seconds=12), unreachable=True)
    trackers["flappy"].flapping = True
    return trackers


async def test_sorted_between_down_and_flapping_first_in_problems_after_down() -> None:
    trackers = fleet()
    app = TableApp(trackers)
    async with app.run_test(size=(120, 14)) as pilot:
        table = app.query_one(DeviceTable)
        now = T0 + timedelta(minutes=3, seconds=5)
        table.refresh_devices(list(trackers), now)
        while table.sort_column != "state":
            table.cycle_sort()
        await pilot.pause()
        assert table.row_order() == ["rtr", "atm [b]x[/b]", "cam", "flappy", "new", "quiet"]
        table.set_view("problems")
        await pilot.pause()
        # DOWN first (the cause), then what is behind it, longest first; then flapping.
        assert table.row_order()[:4] == ["rtr", "atm [b]x[/b]", "cam", "flappy"]
        assert table.cell_text("cam", "state") == "UNREACH"
        assert table.cell_text("cam", "down") == "2m53s"  # its outage's duration ticks too
        assert table.cell_text("cam", "rtt") == "-"


async def test_painted_in_its_own_colour_and_names_literally() -> None:
    trackers = fleet()
    app = TableApp(trackers)
    async with app.run_test(size=(120, 14)) as pilot:
        table = app.query_one(DeviceTable)
        table.refresh_devices(list(trackers), T0 + timedelta(minutes=1))
        await pilot.pause()
        palette = StatePalette()
        lines = {strip.text.split()[0]: strip for strip in (table.render_line(y) for y in range(8))
                 if strip.text.strip()}
        atm = next(strip for text, strip in lines.items() if text == "atm")
        assert "atm [b]x[/b]" in atm.text  # markup in a name is shown as written
        state = next(seg for seg in atm if seg.text.strip() == "UNREACH")
        rtr = next(strip for text, strip in lines.items() if text == "rtr")
        down = next(seg for seg in rtr if seg.text.strip() == "DOWN")
        assert state.style is not None and down.style is not None
        assert state.style.color == Style.parse(palette.unreachable).color != down.style.color


async def test_the_order_kept_under_churn_matches_a_full_sort_with_unreachable_devices() -> None:
    rng = random.Random(15)
    trackers = trackers_for(make_devices(400))
    names = list(trackers)
    app = TableApp(trackers)
    async with app.run_test(size=(100, 30)) as pilot:
        table = app.query_one(DeviceTable)
        at = T0
        for round_ in range(30):
            at += timedelta(seconds=1)
            changed = rng.sample(names, 5 if round_ % 2 else 120)
            for name in changed:
                if rng.random() > 0.4:
                    ok(trackers[name], at)
                else:
                    fail(trackers[name], at, unreachable=rng.random() < 0.5)
                trackers[name].flapping = rng.random() < 0.1
            table.refresh_devices(changed, at)
            if round_ % 6 == 0:
                table.cycle_sort()
            if round_ % 5 == 0:
                table.set_view("problems" if table.view == "all" else "all")
            assert table.row_order() == expected_order(table, trackers, names), (round_, table.sort_column)
        assert any(t.state is State.UNREACHABLE for t in trackers.values())
        await pilot.pause()


class TreeApp(App[None]):
    def __init__(self, trackers: dict[str, DeviceTracker]) -> None:
        super().__init__()
        self.trackers = trackers

    def compose(self) -> ComposeResult:
        yield GroupTree(self.trackers)


async def test_the_tree_counts_unreachable_devices_apart() -> None:
    trackers = fleet()
    app = TreeApp(trackers)
    async with app.run_test(size=(80, 20)) as pilot:
        tree = app.query_one(GroupTree)
        tree.rebuild()
        await pilot.pause()
        assert tree.counts("north") == (6, 1) and tree.unreachable("north") == 2
        assert tree.unreachable("north", "b1") == 2 and tree.unreachable("north", "b2") == 0
        assert "1 down · 2 unreachable" in tree.label_of("north")
        assert "unreachable" not in tree.label_of("north", "b2")
        # The router is back and the devices behind it are checked: one up, one DOWN.
        at = T0 + timedelta(minutes=2)
        ok(trackers["rtr"], at)
        ok(trackers["cam"], at)
        fail(trackers["atm [b]x[/b]"], at, unreachable=False)
        tree.refresh_devices(["rtr", "cam", "atm [b]x[/b]"])
        await pilot.pause()
        assert tree.counts("north", "b1") == (3, 1) and tree.unreachable("north", "b1") == 0
        assert tree.label_of("north", "b1").endswith("1 down")
