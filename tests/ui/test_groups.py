"""The grouped view (region → branch → device) under a filter, as devices start and stop
matching it: a branch already open keeps its devices complete, in natural name order, with
its counts right. Through Pilot, on the widget alone and on the dashboard."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from textual.app import App, ComposeResult
from textual.pilot import Pilot
from textual.widgets import Input

from poller.events import State
from poller.inventory import Device
from poller.state import DeviceTracker, StateConfig
from tests.ui.test_dashboard import dashboard
from wardtui.widgets.groups import GroupTree

# Branch b1 of the north in an order that is not the natural one; b2 and the south are bystanders.
B1 = ["dev20", "dev3", "dev11", "dev1", "dev10", "dev2"]
DEVICES = [Device(name, f"127.3.0.{i + 1}", "b1", "north", "router") for i, name in enumerate(B1)]
DEVICES += [Device("dev4", "127.3.1.1", "b2", "north", "router"),
            Device("dev5", "127.3.2.1", "b9", "south", "router")]


class GroupsApp(App[None]):
    """The tree alone, filtered to devices that are down (as the dashboard's filter DOWN)."""

    def __init__(self) -> None:
        super().__init__()
        self.trackers = {d.name: DeviceTracker(d, StateConfig()) for d in DEVICES}
        for tracker in self.trackers.values():
            tracker.state = State.UP

    def compose(self) -> ComposeResult:
        yield GroupTree(self.trackers, lambda name: self.trackers[name].state is State.DOWN)

    def set_state(self, name: str, state: State) -> None:
        """What the engine does, then what the dashboard does with the devices that changed."""
        self.trackers[name].state = state
        self.query_one(GroupTree).refresh_devices([name])


@asynccontextmanager
async def groups_app() -> AsyncIterator[tuple[GroupsApp, Pilot[None], GroupTree]]:
    app = GroupsApp()
    async with app.run_test(size=(60, 20)) as pilot:
        tree = app.query_one(GroupTree)
        tree.focus()
        yield app, pilot, tree


async def open_first_branch(pilot: Pilot[None]) -> None:
    """Keys: Down onto the first region (north), Space opens it, Down, Space opens b1."""
    await pilot.press("down", "space", "down", "space")
    await pilot.pause()


def shown(tree: GroupTree) -> list[str]:
    """The lines the tree draws, top to bottom: each node's label up to its counts or state."""
    lines = []
    for line in range(tree.last_line + 1):
        node = tree.get_node_at_line(line)
        assert node is not None
        lines.append(str(node.label).split("  ")[0])
    return lines


async def test_a_device_that_starts_matching_joins_its_open_branch_in_name_order() -> None:
    async with groups_app() as (app, pilot, tree):
        for name in ("dev2", "dev11"):
            app.set_state(name, State.DOWN)
        await open_first_branch(pilot)
        assert shown(tree) == ["north", "b1", "dev2", "dev11"]  # no b2, no south: nothing matches there
        for name in ("dev10", "dev1", "dev20", "dev3"):  # first, middle and last places
            app.set_state(name, State.DOWN)
        await pilot.pause()
        assert shown(tree) == ["north", "b1", "dev1", "dev2", "dev3", "dev10", "dev11", "dev20"]
        assert tree.counts("north", "b1") == (6, 6) and tree.counts("north") == (6, 6)
        assert "6 devices · 6 down" in tree.label_of("north", "b1")
        # One that stops matching leaves; the others keep their order and the counts follow.
        app.set_state("dev3", State.UP)
        app.set_state("dev11", State.UP)
        await pilot.pause()
        assert shown(tree) == ["north", "b1", "dev1", "dev2", "dev10", "dev20"]
        assert tree.counts("north", "b1") == (4, 4) and tree.counts("north") == (4, 4)
        assert "4 devices · 4 down" in tree.label_of("north", "b1")
        assert tree.counts("north", "b2") == (0, 0) and tree.counts("south") == (0, 0)


async def test_groups_without_a_match_are_hidden_and_come_back_in_order() -> None:
    """With a filter, only regions and branches holding a matching device are listed (every
    region used to be listed, at zero); they come and go, in name order, as devices match."""
    async with groups_app() as (app, pilot, tree):
        assert shown(tree) == []  # nothing is down
        await pilot.press("space")  # no line has the cursor: nothing happens
        app.set_state("dev5", State.DOWN)
        app.set_state("dev4", State.DOWN)
        await pilot.pause()
        assert shown(tree) == ["north", "south"]  # north placed before south
        await pilot.press("down", "space")  # open north
        await pilot.pause()
        assert shown(tree) == ["north", "b2", "south"]
        app.set_state("dev3", State.DOWN)
        await pilot.pause()
        assert shown(tree) == ["north", "b1", "b2", "south"]  # b1 joins before b2
        app.set_state("dev4", State.UP)
        await pilot.pause()
        assert shown(tree) == ["north", "b1", "south"]
        await pilot.press("down", "space")  # open b1: its one matching device
        await pilot.pause()
        assert shown(tree) == ["north", "b1", "dev3", "south"]
        app.set_state("dev10", State.DOWN)  # an open branch keeps its devices complete
        await pilot.pause()
        assert shown(tree) == ["north", "b1", "dev3", "dev10", "south"]
        assert tree.counts("north", "b1") == (2, 2)
        app.set_state("dev10", State.UP)
        app.set_state("dev3", State.UP)
        await pilot.pause()
        assert shown(tree) == ["south"] and tree.counts("north") == (0, 0)
        app.set_state("dev3", State.DOWN)
        await pilot.pause()
        assert shown(tree) == ["north", "south"]
        assert "1 device · 1 down" in tree.label_of("north", "b1")


async def test_dashboard_filter_down_in_groups_keeps_an_open_branch_in_order(tmp_path: Path) -> None:
    # Dashboard devices: dev{i} in branch b{i % 7}, north for even i; north b0 is dev0, dev14, dev28.
    async with dashboard(tmp_path) as h:
        await h.all_up()
        await h.pilot.press("slash")
        h.app.screen.query_one("#filter", Input).value = "DOWN"
        await h.pilot.press("enter")
        await h.until(lambda: h.table.row_order() == [])
        await h.pilot.press("g")
        tree = h.app.screen.query_one(GroupTree)
        h.prober.down.add(h.address("dev28"))
        await h.until(lambda: tree.counts("north", "b0") == (1, 1))
        await h.pilot.press("down", "space", "down", "space")  # open north, then b0
        await h.until(lambda: shown(tree)[:3] == ["north", "b0", "dev28"])
        h.prober.down.add(h.address("dev0"))
        await h.until(lambda: tree.counts("north", "b0") == (2, 2))
        h.prober.down.add(h.address("dev14"))
        await h.until(lambda: tree.counts("north", "b0") == (3, 3))
        await h.pilot.pause(0.1)
        assert shown(tree)[:5] == ["north", "b0", "dev0", "dev14", "dev28"]
        h.prober.down.discard(h.address("dev14"))
        await h.until(lambda: tree.counts("north", "b0") == (2, 2), timeout=10)
        await h.pilot.pause(0.1)
        assert shown(tree) == ["north", "b0", "dev0", "dev28"]  # dev14 has left; nothing else is down


class HiddenTreeApp(GroupsApp):
    def compose(self) -> ComposeResult:
        tree = GroupTree(self.trackers)
        tree.display = False  # as the dashboard mounts it
        yield tree


async def test_a_hidden_tree_is_built_on_first_use_not_at_mount() -> None:
    app = HiddenTreeApp()
    async with app.run_test(size=(60, 20)) as pilot:
        tree = app.query_one(GroupTree)
        await pilot.pause()
        assert not tree.root.children  # the first frame did not wait for it
        app.set_state("dev3", State.DOWN)  # a tick while hidden: nothing to adjust yet
        assert tree.counts("north") == (7, 1)  # built on use, counting the state as it is now
        assert [str(n.label).split("  ")[0] for n in tree.root.children] == ["north", "south"]
        tree.invalidate()  # a new filter while hidden: rebuilt on next use
        assert tree.counts("north", "b1") == (6, 1)


async def test_a_group_of_one_says_device() -> None:
    async with groups_app() as (app, _pilot, tree):
        app.set_state("dev5", State.DOWN)
        assert "1 device · 1 down" in tree.label_of("south")
        assert tree.regions() == ["south"]  # none of the north's is down: not shown


async def test_a_hidden_tree_is_rebuilt_once_the_filter_settles_not_at_the_next_g(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A filter applied while the groups are hidden: the tree is rebuilt for it a moment later
    (GROUPS_AFTER_FILTER), so the g that follows shows it without a rebuild of its own."""
    from wardtui.screens.dashboard import DashboardScreen

    monkeypatch.setattr(DashboardScreen, "GROUPS_AFTER_FILTER", 0.3)
    async with dashboard(tmp_path) as h:
        await h.all_up()
        tree = h.app.screen.query_one(GroupTree)
        tree.ensure_built()
        real, rebuilt = tree.rebuild, []

        def rebuild() -> None:
            rebuilt.append(tree.display)
            real()

        monkeypatch.setattr(tree, "rebuild", rebuild)
        await h.pilot.press("slash")
        h.app.screen.query_one("#filter", Input).value = "north"
        await h.pilot.press("enter")
        await h.until(lambda: h.table.filter_text == "north")
        await h.until(lambda: rebuilt == [False] and not tree._stale)  # rebuilt without being shown
        assert [str(n.label).split("  ")[0] for n in tree.root.children] == ["north"]
        await h.pilot.press("g")
        await h.until(lambda: tree.display)
        assert rebuilt == [False]  # the g did not rebuild it
