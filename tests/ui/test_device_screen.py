"""The device drill-down driven through Pilot: real engine and SQLite store, fake prober and SNMP client."""

from __future__ import annotations

import dataclasses
import re
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from rich.style import Style
from textual.pilot import Pilot
from textual.widgets import DataTable, Static

from tests.fakes import FakeProber, FakeSnmpClient, make_devices
from wardtui.app import WardApp
from wardtui.runtime import Options, Runtime
from wardtui.screens.dashboard import DashboardScreen
from wardtui.screens.device import DeviceScreen
from wardtui.screens.help import HelpScreen
from wardtui.widgets.charts import HistoryChart
from wardtui.widgets.device_table import DeviceTable

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
        return str(self.screen.query_one(selector, Static).render())

    def rows(self, selector: str) -> list[list[str]]:
        table = self.screen.query_one(selector, DataTable)
        return [[str(c) for c in table.get_row_at(i)] for i in range(table.row_count)]

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
        screen = await d.open("dev1")
        await d.until(lambda: screen.query_one("#interfaces").display and len(d.rows("#interfaces")) == 1)
        index, name, alias, status, speed, _in, _out = d.rows("#interfaces")[0]
        assert (index, name, alias, status, speed) == ("1", "eth0", "uplink", "up/up", "1 G")
        facts = d.text("#snmp-facts")
        assert "sysName dev1" in facts and "fake agent" in facts
        client.oper["dev1"] = 2  # live poll events refresh the table
        await d.until(lambda: d.rows("#interfaces")[0][3] == "up/down")
        client.reboot("dev1")
        await d.until(lambda: "last reboot 2" in d.text("#snmp-facts"))
        assert "not-on-screen" not in facts


async def test_without_a_database_live_figures_show_and_history_says_unavailable(tmp_path: Path) -> None:
    async with drill(tmp_path, db=f"sqlite:///{tmp_path}") as d:  # a directory: the store cannot open
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
