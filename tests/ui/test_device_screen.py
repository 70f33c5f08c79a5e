"""The device drill-down driven through Pilot: real engine and SQLite store, fake prober and SNMP client."""

from __future__ import annotations

import dataclasses
import re
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from rich.style import Style
from textual.css.query import NoMatches
from textual.pilot import Pilot
from textual.widgets import DataTable

from poller.events import InterfaceStat, SnmpPoll
from store import HistoryStore
from store.db import database_url
from store.maintenance import Maintenance
from tests.fakes import FakeProber, FakeSnmpClient, make_devices
from wardtui.app import WardApp
from wardtui.runtime import Options, Runtime
from wardtui.screens.dashboard import DashboardScreen
from wardtui.screens.device import DeviceScreen
from wardtui.screens.help import HelpScreen
from wardtui.widgets import charts
from wardtui.widgets.charts import HistoryChart
from wardtui.widgets.device_table import DeviceTable
from wardtui.widgets.live_stats import LiveStats

N = 20


@dataclass
class Drill:
    app: WardApp
    pilot: Pilot[int]
    prober: FakeProber

    @property
    def table(self) -> DeviceTable:
        return self.app.dashboard.query_one(DeviceTable)

    @property
    def screen(self) -> DeviceScreen:
        screen = self.app.screen
        assert isinstance(screen, DeviceScreen), screen
        return screen

    def text(self, selector: str) -> str:
        return str(self.screen.query_one(selector).render())

    def rows(self, selector: str) -> list[list[str]]:
        """The table's rows; none while the table is not mounted (it comes with its data)."""
        try:
            table = self.screen.query_one(selector, DataTable)
        except NoMatches:
            return []
        return [[str(c) for c in table.get_row_at(i)] for i in range(table.row_count)]

    def lines(self) -> list[str]:
        """The screen as the terminal shows it, one string per line."""
        return ["".join(segment.text for segment in strip)
                for strip in self.app.screen._compositor.render_strips()]

    async def until(self, what: Callable[[], bool], timeout: float = 8.0) -> None:
        deadline = time.monotonic() + timeout
        while not what():
            assert time.monotonic() < deadline, "condition not met in time"
            await self.pilot.pause(0.1)

    async def all_up(self) -> None:
        await self.until(lambda: all(t.state.value == "up" for t in self.app.runtime.engine.trackers.values())
                         and len(self.table.row_order()) == N)
        await self.pilot.pause(0.6)  # one dashboard tick: the rows show it

    async def open(self, name: str) -> DeviceScreen:
        """Put the cursor on ``name``'s row and press Enter, like an operator."""
        await self.until(lambda: name in self.table.row_order())
        self.table.focus()
        self.table.move_cursor(row=self.table.row_order().index(name))
        await self.pilot.press("enter")
        await self.until(lambda: isinstance(self.app.screen, DeviceScreen))
        return self.screen


@asynccontextmanager
async def drill(tmp_path: Path, size: tuple[int, int] = (120, 40), snmp: FakeSnmpClient | None = None,
                db: str | None = None) -> AsyncIterator[Drill]:
    devices = make_devices(N, interval=0.1)
    options = Options(db=db or f"sqlite:///{tmp_path / 'h.db'}", interval=0.1, confirm_spacing=0.05)
    if snmp is not None:
        credentials = tmp_path / "credentials.yaml"
        credentials.write_text("lab:\n  version: 2c\n  community: not-on-screen\n")
        credentials.chmod(0o600)
        devices = [dataclasses.replace(d, snmp_credential="lab") for d in devices]
        options = dataclasses.replace(options, credentials=credentials, snmp_interval=0.2)
    prober = FakeProber()
    app = WardApp(Runtime(options, prober=prober, devices=devices, snmp_client=snmp))
    async with app.run_test(size=size) as pilot:
        try:
            yield Drill(app, pilot, prober)
        finally:
            await app.action_quit()


async def test_enter_opens_the_device_and_esc_returns_with_filter_and_cursor(tmp_path: Path) -> None:
    async with drill(tmp_path) as d:
        await d.all_up()
        await d.pilot.press("slash", *"dev1", "enter")  # dev1, dev10 .. dev19; Enter keeps the filter
        await d.until(lambda: d.table.row_order() == ["dev1", *(f"dev{i}" for i in range(10, 20))])
        await d.pilot.press("down", "down", "down")
        assert d.table.cursor_row == 3
        await d.pilot.press("enter")
        await d.until(lambda: isinstance(d.app.screen, DeviceScreen))
        assert d.screen.device == "dev12"
        assert "dev12  127.2.0.13" in d.text("#device-identity")
        assert "branch b5" in d.text("#device-identity") and "region north" in d.text("#device-identity")
        assert d.text("#device-state").startswith("up since")
        await d.until(lambda: "RTT ms  last 1.00" in d.text("#device-stats"))
        stats = d.text("#device-stats")
        assert "jitter" in stats and "loss 0.0 %" in stats and "whole run  sent" in stats
        await d.pilot.press("escape")
        await d.until(lambda: isinstance(d.app.screen, DashboardScreen))
        assert d.app.screen is d.app.dashboard  # the same screen, not a rebuilt one
        assert d.table.filter_text == "dev1"
        assert d.table.row_order()[d.table.cursor_row] == "dev12"
        assert d.table.cursor_row == 3


async def test_span_keys_change_the_span_label_and_the_tier(tmp_path: Path) -> None:
    async with drill(tmp_path) as d:
        await d.all_up()
        screen = await d.open("dev3")
        rtt = screen.query_one("#rtt-chart", HistoryChart)
        await d.until(lambda: screen.tier == "raw")
        assert "last 1 h" in rtt.text.plain
        for key, label, tier in (("3", "7 d", "1m"), ("4", "30 d", "1h"), ("2", "24 h", "raw")):
            await d.pilot.press(key)
            await d.until(lambda label=label, tier=tier: screen.span.label == label and screen.tier == tier
                          and f"last {label}" in rtt.text.plain)
        # The span on show is greyed out in the footer; the others can be pressed.
        assert screen.check_action("span", ("2",)) is None
        assert screen.check_action("span", ("1",)) is True


async def test_charts_fit_80x24_without_colour_under_no_color(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NO_COLOR", "1")
    async with drill(tmp_path, size=(80, 24)) as d:
        assert d.app.no_color
        await d.all_up()
        await d.pilot.pause(1.5)  # the writer stores checks about once a second
        screen = await d.open("dev2")
        rtt = screen.query_one("#rtt-chart", HistoryChart)
        await d.until(lambda: "┤" in rtt.text.plain)  # an axis: a chart, not a message
        assert "minutes ago" in rtt.text.plain
        assert all(Style.parse(str(span.style)).color is None for span in rtt.text.spans)
        assert "\x1b[" not in rtt.text.plain
        assert max(len(line) for line in rtt.text.plain.splitlines()) <= 80
        svg = d.app.export_screenshot()
        assert "dev2" in svg
        await d.pilot.press("4", "r")
        await d.until(lambda: screen.tier == "1h")


async def test_outage_list_shows_ongoing_then_ended_outage_with_duration(tmp_path: Path) -> None:
    async with drill(tmp_path) as d:
        await d.all_up()
        address = d.app.runtime.engine.trackers["dev5"].device.address
        d.prober.down.add(address)
        await d.until(lambda: d.app.runtime.engine.trackers["dev5"].state.value == "down")
        screen = await d.open("dev5")
        await d.until(lambda: len(d.rows("#outages")) == 1)
        _start, end, duration = d.rows("#outages")[0]
        assert end == "ongoing" and re.fullmatch(r"\d+s", duration)
        assert d.text("#device-state").startswith("DOWN since")
        d.prober.down.discard(address)
        await d.until(lambda: d.rows("#outages") and d.rows("#outages")[0][1] != "ongoing")
        assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", d.rows("#outages")[0][1])
        assert "outages: 1" in d.text("#outages-title")
        assert screen.history_error is None


async def test_snmp_section_shows_system_facts_and_interfaces(tmp_path: Path) -> None:
    client = FakeSnmpClient()
    async with drill(tmp_path, snmp=client) as d:
        await d.all_up()
        await d.until(lambda: client.calls.get("dev1", 0) >= 2)
        await d.open("dev1")
        await d.until(lambda: len(d.rows("#interfaces")) == 1)
        index, name, alias, status, speed, _in, _out = d.rows("#interfaces")[0]
        assert (index, name, alias, status, speed) == ("1", "eth0", "uplink", "up/up", "1 G")
        facts = d.text("#snmp-facts")
        assert "sysName dev1" in facts and "fake agent" in facts
        client.oper["dev1"] = 2  # live poll events refresh the table
        await d.until(lambda: d.rows("#interfaces")[0][3] == "up/down")
        client.reboot("dev1")
        await d.until(lambda: "last reboot 2" in d.text("#snmp-facts"))
        assert "not-on-screen" not in facts


async def test_snmp_section_says_what_a_partial_agent_lacks_and_what_a_silent_one_answered(
        tmp_path: Path) -> None:
    client = FakeSnmpClient()
    client.partial.add("dev1")
    client.failing.add("dev2")
    async with drill(tmp_path, snmp=client) as d:

        def facts() -> str:  # mounted with the first SNMP news
            try:
                return d.text("#snmp-facts")
            except NoMatches:
                return ""

        await d.all_up()
        await d.until(lambda: client.calls.get("dev1", 0) >= 2 and client.calls.get("dev2", 0) >= 2)
        await d.open("dev1")
        await d.until(lambda: "uptime none (no sysUpTime)" in facts())
        assert "the agent has no sysUpTime (reboots cannot be detected), no sysDescr" in facts()
        assert "last reboot: not detectable (no sysUpTime)" in facts()
        assert "object id 1.3.6.1.4.1.705.1 (no description)" in facts()
        assert d.text("#snmp-title") == "SNMP · no interface table" and d.rows("#interfaces") == []
        await d.pilot.press("escape")
        await d.open("dev2")  # never answered: what its polls got, live and from the store
        await d.until(lambda: "timeout (no answer)" in facts())
        await d.until(lambda: client.calls["dev2"] >= 4)
        # r reads the store again; the writer commits its batch within a second or so (more on
        # a loaded machine), so read until the polls' outcome is there.
        deadline = time.monotonic() + 20
        while "never answered" not in facts():
            assert time.monotonic() < deadline, facts()
            await d.pilot.press("r")
            await d.pilot.pause(1.0)
        assert "no SNMP answer yet" in facts()


async def test_without_a_database_live_figures_show_and_history_says_unavailable(tmp_path: Path) -> None:
    not_a_db = tmp_path / "notes.txt"  # not SQLite: the store cannot open (a directory is a bad --db)
    not_a_db.write_text("not a database\n" * 100, encoding="utf-8")
    async with drill(tmp_path, db=f"sqlite:///{not_a_db}") as d:
        await d.all_up()
        screen = await d.open("dev4")
        await d.until(lambda: screen.history_error is not None)
        assert "history unavailable" in screen.query_one("#rtt-chart", HistoryChart).text.plain
        assert "history unavailable" in d.text("#outages-title")
        assert "RTT ms  last 1.00" in d.text("#device-stats")


async def test_help_lists_the_drill_down_keys(tmp_path: Path) -> None:
    async with drill(tmp_path) as d:
        await d.all_up()
        await d.pilot.press("question_mark")
        await d.until(lambda: isinstance(d.app.screen, HelpScreen))
        text = d.app.screen.text()  # type: ignore[attr-defined]
        assert "device drill-down (Enter)" in text and "Enter  open the device" in text
        for binding in DeviceScreen.BINDINGS:
            assert f"{d.app.get_key_display(binding)}  {binding.description}" in text
        await d.pilot.press("escape")
        await d.open("dev0")
        await d.pilot.press("question_mark")
        await d.until(lambda: isinstance(d.app.screen, HelpScreen))
        assert "30 d: charts over the last 30 d" in d.app.screen.text()  # type: ignore[attr-defined]
        await d.pilot.press("escape")
        await d.until(lambda: isinstance(d.app.screen, DeviceScreen))


# -- interface charts ------------------------------------------------------------------------

RECENT = range(50, 0, -5)  # minutes ago of the stored polls of the last hour, oldest first


def rates_poll(at: datetime, gi0_in: float, gi0_out: float, gi1_in: float, gi1_out: float) -> SnmpPoll:
    def port(ifindex: int, in_bps: float, out_bps: float) -> InterfaceStat:
        return InterfaceStat(ifindex, f"Gi0/{ifindex - 1}", f"link {ifindex}", "up", "up", 10**9, in_bps,
                             out_bps, 0, 0, 0, 0, True)

    return SnmpPoll("dev1", "127.2.0.2", at, "br1-rtr", "Test OS", "1.3.6.1.4.1.9", 86_400.0,
                    (port(1, gi0_in, gi0_out), port(2, gi1_in, gi1_out)))


async def store_known_rates(url: str, now: datetime) -> datetime:
    """dev1's Gi0/0 carried k Mbit/s in and k/10 out k minutes ago (k = 50, 45 .. 5); Gi0/1
    carried 2 kbit/s in and 3 out then, and three days ago one minute of 10 then 20 kbit/s in
    (40 then 60 out). Rolled up like a running wardtui would. Returns that minute."""
    old = now.replace(second=0) - timedelta(days=3) + timedelta(seconds=10)
    polls = [rates_poll(old, 0.0, 0.0, 10e3, 40e3),
             rates_poll(old + timedelta(seconds=20), 0.0, 0.0, 20e3, 60e3)]
    polls += [rates_poll(now - timedelta(minutes=k), k * 1e6, k * 1e5, 2e3, 3e3) for k in RECENT]
    async with HistoryStore(database_url(url)) as store:
        await store.write_snmp_polls(polls)
        await Maintenance(store, settle=timedelta(0), budget=60.0).run_once(now)
    return old.replace(second=0)


async def test_interface_chart_follows_the_cursor_over_the_stored_rates(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'h.db'}"
    now = datetime.now(UTC).replace(microsecond=0)
    await store_known_rates(url, now)
    async with drill(tmp_path, db=url) as d:
        await d.all_up()
        screen = await d.open("dev1")
        await d.until(lambda: screen.loaded and screen.if_series is not None)
        assert [row[:2] for row in d.rows("#interfaces")] == [["1", "Gi0/0"], ["2", "Gi0/1"]]
        chart = screen.query_one("#if-chart", HistoryChart)
        # Gi0/0 over the last hour, from the raw rates: one point per poll, where it was.
        await d.pilot.press("i")
        assert screen.query_one("#interfaces", DataTable).has_focus
        assert screen.if_index == 1 and screen.if_tier == "raw"
        series = screen.if_series
        assert series is not None
        assert series.in_bps == [k * 1e6 for k in RECENT] and series.out_bps == [k * 1e5 for k in RECENT]
        assert all(abs(x + k) < 0.5 for x, k in zip(series.in_x, RECENT, strict=True))  # minutes ago
        rx, tx = chart.lines
        assert (rx.label, rx.ys) == ("in", [float(k) for k in RECENT])  # drawn in Mbit/s
        assert (tx.label, tx.ys) == ("out", [k / 10 for k in RECENT])
        assert "Gi0/0 (if 1)" in chart.text.plain and "Mbit/s" in chart.text.plain
        assert "┤" in chart.text.plain and "last 1 h" in chart.text.plain
        body = screen.query_one("#device-body").region
        assert body.contains_region(chart.region)  # i brought the table and its chart on screen
        # The cursor moves on: the chart follows to Gi0/1, in kbit/s.
        await d.pilot.press("down")
        await d.until(lambda: screen.if_index == 2 and chart.lines and chart.lines[0].ys == [2.0] * 10)
        assert chart.lines[1].ys == [3.0] * 10 and "Gi0/1 (if 2)" in chart.text.plain
        assert "kbit/s" in chart.text.plain
        await d.pilot.press("enter")  # Enter on an interface: its chart, on screen
        assert screen.if_index == 2 and body.contains_region(chart.region)
        # 7 d: the 1-minute rollups; the minute three days ago averages its two polls.
        await d.pilot.press("3")
        await d.until(lambda: screen.if_tier == "1m" and "last 7 d" in chart.text.plain)
        series = screen.if_series
        assert series is not None
        assert series.in_bps == [15e3, 2e3] and series.out_bps == [50e3, 3e3]
        assert abs(series.in_x[0] + 3) < 0.05 and series.in_x[1] > -0.06  # days ago
        # 30 d: hourly rollups (the hour in progress is not rolled up yet).
        await d.pilot.press("4")
        await d.until(lambda: screen.if_tier == "1h" and "last 30 d" in chart.text.plain)
        series = screen.if_series
        assert series is not None and series.in_bps[0] == 15e3 and abs(series.in_x[0] + 3) < 0.2
        assert set(series.in_bps[1:]) <= {2e3}
        # The key is in the footer and in the help.
        assert "i Interfaces" in d.lines()[-1]


async def test_without_snmp_the_interface_key_is_not_offered(tmp_path: Path) -> None:
    async with drill(tmp_path) as d:
        await d.all_up()
        screen = await d.open("dev2")
        await d.until(lambda: screen.loaded)
        assert screen.check_action("interfaces", ()) is False  # hidden from the footer
        assert "Interfaces" not in d.lines()[-1]
        await d.pilot.press("i")  # does nothing
        assert screen.query_one("#device-body").has_focus and not screen.query("#if-chart")


# -- layout and speed --------------------------------------------------------------------------


def assert_readable(d: Drill, screen: DeviceScreen, width: int, height: int) -> None:
    """Every stats line whole on one screen line, both charts on screen and drawn to its width."""
    lines = d.lines()
    assert len(lines) == height and all(len(line) == width for line in lines)
    stats = screen.query_one(LiveStats)
    region = stats.region
    assert region.height == len(stats.lines)  # no line wrapped onto another
    for i, text in enumerate(stats.lines):
        assert len(text) <= region.width
        assert lines[region.y + i][region.x:region.right].rstrip() == text
    shown = " ".join(stats.lines)
    for figure in ("RTT ms  last", "avg", "min", "max", "jitter", "loss", "probes)", "whole run  sent",
                   "received"):
        assert figure in shown
    body = screen.query_one("#device-body").region
    for chart in screen.query(HistoryChart).filter("#rtt-chart, #loss-chart"):
        assert body.contains_region(chart.region), (chart.id, chart.region, body)
        plain = chart.text.plain.splitlines()
        assert "┤" in chart.text.plain and len(plain) == chart.region.height
        assert max(len(line) for line in plain) == chart.content_size.width  # as wide as it is
    assert "q Quit" in lines[-1]  # every key of the footer on screen


async def test_80x24_then_120x40_stats_unwrapped_and_charts_on_screen(tmp_path: Path) -> None:
    async with drill(tmp_path, size=(80, 24), snmp=FakeSnmpClient()) as d:
        await d.all_up()
        await d.pilot.pause(1.5)  # the writer stores checks about once a second
        screen = await d.open("dev2")
        rtt = screen.query_one("#rtt-chart", HistoryChart)
        await d.until(lambda: screen.loaded and "┤" in rtt.text.plain)
        assert screen.has_class("-short")
        assert_readable(d, screen, 80, 24)
        assert len(screen.query_one(LiveStats).lines) == 3  # rolling figures, loss, whole run
        drawn = rtt.renders
        await d.pilot.resize_terminal(120, 40)
        await d.until(lambda: screen.has_class("-tall") and rtt.content_size.width == 117)
        await d.pilot.pause(0.1)
        assert_readable(d, screen, 120, 40)
        assert len(screen.query_one(LiveStats).lines) == 2
        # Back to 80x24: that drawing is kept, plotext is not run again.
        drawn = rtt.renders
        await d.pilot.resize_terminal(80, 24)
        await d.until(lambda: screen.has_class("-short") and rtt.content_size.width == 77)
        await d.pilot.pause(0.1)
        assert_readable(d, screen, 80, 24)
        assert rtt.renders == drawn


async def test_store_reads_are_drawn_after_the_first_frame(tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """The frame that answers Enter holds no chart drawing and no table: they come after it."""
    seen: list[bool] = []
    render = charts.render_chart

    def recording(*args: object, **kwargs: object) -> object:
        screen = app.screen
        seen.append(isinstance(screen, DeviceScreen) and screen._painted.is_set())
        return render(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(charts, "render_chart", recording)
    async with drill(tmp_path) as d:
        app = d.app
        await d.all_up()
        await d.pilot.pause(1.5)
        screen = await d.open("dev6")
        assert not screen.query(DataTable)  # no outage, no SNMP: no tables at all
        rtt = screen.query_one("#rtt-chart", HistoryChart)
        await d.until(lambda: screen.loaded and "┤" in rtt.text.plain)
        assert seen and all(seen)


async def test_the_drill_down_help_fits_80x24_whole(tmp_path: Path) -> None:
    async with drill(tmp_path, size=(80, 24)) as d:
        await d.all_up()
        await d.open("dev1")
        await d.pilot.press("question_mark")
        await d.until(lambda: isinstance(d.app.screen, HelpScreen))
        await d.pilot.pause(0.2)
        shown = "\n".join(d.lines())
        for binding in DeviceScreen.BINDINGS:
            key, description = d.app.get_key_display(binding), binding.description
            assert re.search(rf"│  {re.escape(key)} +{re.escape(description)}: ", shown), key
        assert "hourly rollups" in shown and "latest SNMP poll" in shown
        assert "Esc, ? or q closes this help." in shown  # nothing scrolled out of the box
