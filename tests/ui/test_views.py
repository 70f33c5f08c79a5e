"""Views and navigation on the dashboard: problems first, groups, the `:` line, the palette."""

from __future__ import annotations

from pathlib import Path

from textual.command import CommandPalette
from textual.widgets import Input

from tests.ui.notices import notices_of, notices_of_every_app  # noqa: F401 (autouse: records them)
from tests.ui.test_dashboard import NAMES, Harness, dashboard
from wardtui.commands import DashboardCommands
from wardtui.screens.dashboard import DashboardScreen
from wardtui.screens.device import DeviceScreen
from wardtui.screens.export import ExportScreen
from wardtui.widgets.device_rows import SORTS
from wardtui.widgets.groups import GroupTree


def notices(h: Harness) -> list[str]:
    return notices_of(h.app).messages


async def command(h: Harness, line: str) -> None:
    await h.pilot.press("colon", *line, "enter")
    await h.pilot.pause(0.2)


async def test_problems_view_puts_down_device_first_and_a_recovered_one_back(tmp_path: Path) -> None:
    async with dashboard(tmp_path) as h:
        await h.all_up()
        await h.pilot.press("p")
        assert str(h.table.border_title).startswith("problems 0 first")
        h.prober.down.add(h.address("dev12"))
        await h.until(lambda: h.table.row_order()[0] == "dev12")
        assert h.table.row_order()[1:] == [n for n in NAMES if n != "dev12"]
        h.prober.down.add(h.address("dev3"))  # down later: after dev12, which is down longer
        await h.until(lambda: h.table.row_order()[:2] == ["dev12", "dev3"])
        h.prober.down.discard(h.address("dev12"))
        h.prober.down.discard(h.address("dev3"))
        await h.until(lambda: h.table.row_order() == NAMES, timeout=10)
        await h.pilot.press("p")
        assert h.table.view == "all" and str(h.table.border_title).startswith("all")


async def test_filter_applies_to_the_problems_view(tmp_path: Path) -> None:
    async with dashboard(tmp_path) as h:
        await h.all_up()
        for name in ("dev12", "dev3"):  # dev12 is in the north, dev3 in the south
            h.prober.down.add(h.address(name))
        await h.until(lambda: h.table.problem_names() == ["dev12", "dev3"]
                      or h.table.problem_names() == ["dev3", "dev12"])
        await h.freeze()
        await command(h, "problems")
        await command(h, "filter south")
        order = h.table.row_order()
        assert order[0] == "dev3" and "dev12" not in order
        assert all(int(n[3:]) % 2 for n in order)


async def test_grouped_view_counts_and_follows_a_device_going_down(tmp_path: Path) -> None:
    async with dashboard(tmp_path) as h:
        await h.all_up()
        await h.pilot.press("g")
        tree = h.app.screen.query_one(GroupTree)
        assert tree.display and tree.has_focus and h.app.screen.view == "groups"
        tracker = h.app.runtime.engine.trackers["dev3"]
        region, branch = tracker.device.region, tracker.device.branch
        devices, down = tree.counts(region, branch)
        assert down == 0 and devices == sum(
            1 for t in h.app.runtime.engine.trackers.values()
            if (t.device.region, t.device.branch) == (region, branch))
        h.prober.down.add(h.address("dev3"))
        await h.until(lambda: tree.counts(region, branch)[1] == 1)
        assert tree.counts(region)[1] == 1 and "1 down" in tree.label_of(region, branch)
        assert "1 down" in str(tree.border_title)
        await h.freeze()
        # Keyboard: into the region, into the branch, onto the device, Enter opens it.
        assert tree.select_device("dev3")
        await h.pilot.pause(0.1)
        assert tree.cursor_node is not None and tree.cursor_node.data == ("device", "dev3"), tree.cursor_node
        await h.pilot.press("enter")
        await h.until(lambda: isinstance(h.app.screen, DeviceScreen))
        await h.pilot.press("escape")
        # e on a device of the grouped view exports its branch.
        await h.pilot.press("e")
        await h.until(lambda: isinstance(h.app.screen, ExportScreen))
        assert isinstance(h.app.screen, ExportScreen) and h.app.screen.scope.group == ("branch", branch)
        await h.pilot.press("escape")
        await h.pilot.press("g")
        assert h.app.screen.view == "all" and h.table.has_focus


async def test_colon_device_opens_the_drill_down_and_unknown_names_say_so(tmp_path: Path) -> None:
    async with dashboard(tmp_path) as h:
        await h.all_up()
        await h.freeze()
        await command(h, "device nosuch")
        assert isinstance(h.app.screen, DashboardScreen)
        assert any("no device named 'nosuch'" in m for m in notices(h))
        await command(h, "device dev17")
        assert isinstance(h.app.screen, DeviceScreen)
        await h.pilot.press("escape")
        await h.pilot.pause(0.1)
        assert h.table.row_order()[h.table.cursor_row] == "dev17"  # back where the device is


async def test_unknown_command_shows_an_error_notice(tmp_path: Path) -> None:
    async with dashboard(tmp_path) as h:
        await h.all_up()
        await h.freeze()
        await command(h, "frobnicate")
        assert any("unknown command :frobnicate" in m for m in notices(h))
        assert not h.app.screen.query_one("#command-bar").display


async def test_sort_by_each_column(tmp_path: Path) -> None:
    async with dashboard(tmp_path) as h:
        await h.all_up()
        await h.freeze()
        for column, description in SORTS:
            await command(h, f"sort {column}")
            assert h.table.sort_column == column
            assert description in str(h.table.border_title)
            assert sorted(h.table.row_order()) == sorted(NAMES)
        await command(h, "sort name")
        assert h.table.row_order() == NAMES
        await command(h, "sort nosuch")
        assert any("sort by what?" in m for m in notices(h))


async def test_palette_finds_a_device_by_name(tmp_path: Path) -> None:
    async with dashboard(tmp_path) as h:
        await h.all_up()
        await h.freeze()
        provider = DashboardCommands(h.app.screen)
        hits = [hit async for hit in provider.search("dev17")]
        assert [hit.text for hit in hits] == ["dev17"]
        await h.pilot.press("ctrl+p")
        await h.until(lambda: isinstance(h.app.screen, CommandPalette))
        await h.pilot.press(*"dev17")
        await h.pilot.pause(0.5)
        await h.pilot.press("enter")
        await h.until(lambda: isinstance(h.app.screen, DeviceScreen))
        assert h.app.screen.tracker.device.name == "dev17"


async def test_tab_in_the_command_line_completes_and_keeps_the_keys(tmp_path: Path) -> None:
    """Tab completes the command, then a device name, and cycles through the candidates; the
    focus stays in the line, so the letters typed next are not dashboard keys (q would quit)."""
    async with dashboard(tmp_path) as h:
        await h.all_up()
        await h.freeze()
        line = h.app.screen.query_one("#command", Input)
        await h.pilot.press("colon", "d", "e", "tab")
        assert line.has_focus and line.value == "device "
        await h.pilot.press(*"dev1", "tab")
        assert line.value == "device dev1" and line.has_focus
        await h.pilot.press("tab")
        assert line.value == "device dev10"  # the next name starting with dev1
        await h.pilot.press("shift+tab")
        assert line.value == "device dev1"
        await h.pilot.press("ctrl+u", "q", "u", "tab")
        assert line.value == "quit" and line.has_focus  # q went into the line, not to the dashboard
        await h.pilot.press("ctrl+u", "s", "o", "tab", "r", "e", "tab")
        assert line.value == "sort region"
        await h.pilot.press("enter")
        await h.pilot.pause(0.1)
        assert h.table.sort_column == "region" and h.table.has_focus
        await h.pilot.press("colon", "tab")
        assert line.value == "problems"  # Tab on an empty line offers each command in turn
        await h.pilot.press("tab")
        assert line.value == "all"
