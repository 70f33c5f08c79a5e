"""Keys as the help says: the help box scrolls at 80x24, and j/k (g/G where free) move like
the arrows (and Home/End) in the help, the device table, the groups and the drill-down."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

from textual import events
from textual.containers import VerticalScroll
from textual.widgets import DataTable, Input

from tests.ui.test_device_screen import Drill, drill, store_known_rates
from wardtui.screens.dashboard import DashboardScreen
from wardtui.screens.device import DeviceScreen
from wardtui.screens.export import ExportScreen
from wardtui.screens.help import HelpScreen
from wardtui.widgets.groups import GroupTree

CLOSE = "Esc, ? or q closes this help."


def shown(d: Drill) -> str:
    return "\n".join(d.lines())


async def open_help(d: Drill) -> tuple[HelpScreen, VerticalScroll]:
    await d.pilot.press("question_mark")
    await d.until(lambda: isinstance(d.app.screen, HelpScreen))
    await d.pilot.pause(0.2)
    screen = d.app.screen
    assert isinstance(screen, HelpScreen)
    return screen, screen.query_one("#help-box", VerticalScroll)


async def test_the_dashboard_help_scrolls_at_80x24(tmp_path: Path) -> None:
    """The dashboard's help is longer than 24 lines: End, PgDn, ↓ and j/k/g/G reach its end
    (the drill-down's keys, how to close it), and its border says how to scroll and close."""
    async with drill(tmp_path, size=(80, 24)) as d:
        await d.all_up()
        _, box = await open_help(d)
        assert box.max_scroll_y > 0, "the help fits 80x24: this test no longer tests scrolling"
        assert "device drill-down" not in shown(d) and CLOSE not in shown(d)
        await d.pilot.press("end")
        await d.pilot.pause(0.1)
        assert box.scroll_y == box.max_scroll_y
        assert "Esc closes" in shown(d)  # on the box's bottom border, always in sight
        assert CLOSE in shown(d)
        for home, end in (("home", "pagedown"), ("g", "G")):
            await d.pilot.press(home)
            await d.pilot.pause(0.1)
            assert box.scroll_y == 0
            await d.pilot.press(end, end, end, end)
            await d.pilot.pause(0.1)
            assert box.scroll_y == box.max_scroll_y, end
        await d.pilot.press("home")
        await d.until(lambda: box.scroll_y == 0)
        seen = ""
        while box.scroll_y < box.max_scroll_y:  # every line comes into sight on the way down
            await d.pilot.press("down")
            await d.pilot.pause(0.05)
            seen += shown(d)
        assert "device drill-down (Enter)" in seen and re.search(r"│  r +Refresh: ", seen)
        await d.pilot.press("g", "down", "j", "j")
        await d.pilot.pause(0.1)
        assert box.scroll_y == 3
        await d.pilot.press("k")
        await d.pilot.pause(0.1)
        assert box.scroll_y == 2
        await d.pilot.press("q")  # closes the help, does not quit
        await d.until(lambda: isinstance(d.app.screen, DashboardScreen))


async def test_j_and_k_move_the_cursor_in_the_device_table_and_the_groups(tmp_path: Path) -> None:
    async with drill(tmp_path) as d:
        await d.all_up()
        table = d.table
        table.focus()
        table.move_cursor(row=0)
        await d.pilot.press("j", "j", "j")
        assert table.cursor_row == 3
        await d.pilot.press("k")
        assert table.cursor_row == 2
        await d.pilot.press("g")  # g stays the groups key
        await d.until(lambda: d.app.dashboard.view == "groups")
        tree = d.app.dashboard.query_one(GroupTree)
        assert tree.has_focus
        await d.pilot.press("j", "space")  # the first region, opened
        await d.pilot.press("j", "j")
        assert tree.cursor_line == 2
        await d.pilot.press("k")
        assert tree.cursor_line == 1


async def test_j_k_g_g_scroll_the_drill_down_and_move_in_its_interface_table(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'h.db'}"
    await store_known_rates(url, datetime.now(UTC).replace(microsecond=0))
    async with drill(tmp_path, size=(80, 24), db=url) as d:
        await d.all_up()
        screen = await d.open("dev1")
        await d.until(lambda: screen.loaded and screen.if_series is not None)
        body = screen.query_one("#device-body", VerticalScroll)
        assert body.has_focus and body.max_scroll_y > 0
        await d.pilot.press("G")
        await d.until(lambda: body.scroll_y == body.max_scroll_y)
        await d.pilot.press("g")
        await d.until(lambda: body.scroll_y == 0)
        await d.pilot.press("j", "j")
        await d.until(lambda: body.scroll_y == 2)
        await d.pilot.press("k")
        await d.until(lambda: body.scroll_y == 1)
        await d.pilot.press("i")
        interfaces = screen.query_one("#interfaces", DataTable)
        assert interfaces.has_focus and interfaces.cursor_row == 0
        await d.pilot.press("j")
        await d.until(lambda: interfaces.cursor_row == 1 and screen.if_index == 2)
        await d.pilot.press("k")
        await d.until(lambda: interfaces.cursor_row == 0 and screen.if_index == 1)
        await d.pilot.press("G")
        await d.until(lambda: interfaces.cursor_row == 1)
        await d.pilot.press("g")
        await d.until(lambda: interfaces.cursor_row == 0)


async def test_the_80_column_footer_shows_every_key_in_the_help_s_words(tmp_path: Path) -> None:
    """'p Problems', 'g Groups', ': Command' (not Issues, Tree, Go), all of them within 80
    columns: the '^p palette' hint gives way below 90 columns (ctrl+p still works)."""
    async with drill(tmp_path, size=(80, 24)) as d:
        await d.all_up()
        footer = d.lines()[-1]
        for words in ("/ Filter", "s Sort", "p Problems", "g Groups", ": Command", "e Export",
                      "? Help", "q Quit"):
            assert words in footer, footer
        assert "palette" not in footer
        await d.pilot.resize_terminal(120, 40)
        await d.pilot.pause(0.2)
        assert "^p palette" in d.lines()[-1] and "q Quit" in d.lines()[-1]


async def test_the_export_box_has_its_own_keys_in_the_footer(tmp_path: Path) -> None:
    async with drill(tmp_path, size=(80, 24)) as d:
        await d.all_up()
        await d.pilot.press("e")
        await d.until(lambda: isinstance(d.app.screen, ExportScreen))
        await d.pilot.pause(0.2)
        footer = d.lines()[-1]
        assert "Write" in footer and "Cancel" in footer, footer
        assert "Sort" not in footer and "Filter" not in footer, footer  # the dashboard's keys
        await d.pilot.press("escape")
        await d.until(lambda: isinstance(d.app.screen, DashboardScreen))
        assert "s Sort" in d.lines()[-1]


def burst(d: Drill, keys: str | list[str]) -> None:
    """Keys as they reach the app from a fast typist or a laggy SSH link: all in the app's queue
    before the first is handled (Pilot.press waits for the app after each key)."""
    for key in keys:
        character = {"slash": "/", "colon": ":", "space": " "}.get(key, key if len(key) == 1 else None)
        event = events.Key(key, character)
        event.set_sender(d.app)
        d.app.post_message(event)


async def test_keys_typed_right_after_slash_colon_enter_or_esc_go_where_meant(tmp_path: Path) -> None:
    """'/dev12', ':device dev3' Enter, '/dev1' Enter 'jj' arriving in one read: no key is lost to
    the table before the line takes focus ('/quit' typed fast quit), none typed into the line
    after Enter or Esc gave the keys back."""
    async with drill(tmp_path) as d:
        await d.all_up()
        dashboard = d.app.dashboard
        filter_input = dashboard.query_one("#filter", Input)
        burst(d, ["slash", *"qdev12"])
        await d.until(lambda: filter_input.value == "qdev12")
        assert d.app.is_running and d.app.screen is dashboard  # not quit, not exported
        burst(d, ["escape", "j", "j"])  # the table has the keys again at once
        await d.until(lambda: d.table.cursor_row == 2 and d.table.has_focus)
        assert filter_input.value == "" and d.table.filter_text == ""
        d.table.move_cursor(row=0)
        burst(d, ["slash", *"dev1", "enter", "j", "j"])  # Enter keeps the filter
        await d.until(lambda: d.table.filter_text == "dev1" and d.table.has_focus)
        await d.until(lambda: d.table.cursor_row == 2)
        assert filter_input.value == "dev1"
        burst(d, ["colon", *"device dev3", "enter"])
        await d.until(lambda: isinstance(d.app.screen, DeviceScreen))
        assert d.screen.device == "dev3"


async def test_slash_and_colon_are_text_inside_the_lines(tmp_path: Path) -> None:
    """In the filter an IPv6 address or a path; in the command line a file name: '/' and ':'
    are typed, not taken as keys, and the footer does not offer them there."""
    async with drill(tmp_path) as d:
        await d.all_up()
        dashboard = d.app.dashboard
        await d.pilot.press("slash", *"fe80::1/64")
        assert dashboard.query_one("#filter", Input).value == "fe80::1/64"
        assert "/ Filter" not in d.lines()[-1] and "esc Clear filter" in d.lines()[-1]
        await d.pilot.press("escape", "colon", *"filter a/b:c")
        assert dashboard.query_one("#command", Input).value == "filter a/b:c"
        await d.pilot.press("enter")
        await d.until(lambda: d.table.filter_text == "a/b:c")
        assert "/ Filter" in d.lines()[-1]
