"""Hostile text through every screen (Pilot): names, SNMP strings and what the operator types
are shown as written. None is markup (a ``MarkupError`` stopped the whole dashboard, polling
included; ``[@click=app.quit]`` became a button) and none reaches the terminal as control."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from textual.pilot import Pilot
from textual.widgets import Input
from textual.widgets._toast import Toast

from poller.events import InterfaceStat, SnmpPoll
from poller.inventory import Device
from poller.snmp_source import Agent, IfRow, RawPoll, SystemFacts
from store import HistoryStore
from store.db import database_url
from tests.fakes import FakeProber, FakeSnmpClient
from tests.ui.notices import Notices, watch
from wardtui.app import WardApp
from wardtui.runtime import Options, Runtime
from wardtui.screens.dashboard import DashboardScreen
from wardtui.screens.device import DeviceScreen
from wardtui.screens.export import ExportScreen
from wardtui.widgets.device_table import DeviceTable

# Names an inventory may hold (markup is data; control characters are refused at load).
CLOSE = "[/]"
LINK = "[link=http://evil]click[/link]"
CLICK = "[@click=app.quit]x[/]"
BOLD = "[b]bold[/b] <script>alert(1)</script>"
DEVICES = [
    Device(name=CLOSE, address="127.3.0.1", branch=LINK, region=CLICK, type=BOLD),
    Device(name=CLICK, address="127.3.0.2", branch=CLOSE, region=LINK, type="router"),
    Device(name=LINK, address="127.3.0.3", branch=BOLD, region=CLOSE, type=CLICK),
    Device(name="plain-1", address="127.3.0.4", branch="b", region="r", type="atm"),
]
# What an agent (or a tampered database) may send: markup and terminal control.
OSC_TITLE = "\x1b]0;pwned\x07"
CLEAR = "\x1b[2J"
SYS_NAME = f"[link=http://x]n[/link]{OSC_TITLE}"
SYS_DESCR = f"{CLICK} {CLEAR}\x1b]52;c;ZWNobyBoaQ==\x07 \u202eevil"
IF_NAME = "[/zz]"
IF_ALIAS = f"[red]alias[/red]{CLEAR}"
CONTROL = ("\x1b", "\x07", "\x9b", "\u202e")


class HostileSnmp(FakeSnmpClient):
    """Answers like FakeSnmpClient, with markup and escapes in every string field."""

    async def poll(self, agent: Agent) -> RawPoll:
        poll = await super().poll(agent)
        facts = SystemFacts(SYS_NAME, SYS_DESCR, poll.system.object_id, poll.system.uptime_ticks)
        rows = tuple(dataclasses.replace(r, name=IF_NAME, descr=IF_NAME, alias=IF_ALIAS)
                     for r in poll.interfaces)
        extra = IfRow(2, name=CLOSE, descr=CLICK, alias=LINK, admin=1, oper=1, high_speed=100,
                      hc_in_octets=1, hc_out_octets=1)
        return dataclasses.replace(poll, system=facts, interfaces=(*rows, extra))


@dataclass
class Run:
    app: WardApp
    pilot: Pilot[int]
    notices: Notices

    @property
    def table(self) -> DeviceTable:
        return self.app.dashboard.query_one(DeviceTable)

    def screen_text(self) -> str:
        return "\n".join("".join(s.text for s in strip)
                         for strip in self.app.screen._compositor.render_strips())

    def assert_shown_literally(self, *texts: str) -> None:
        assert self.app.is_running, "the dashboard stopped"
        shown = self.screen_text()
        for text in texts:
            assert text in shown, f"{text!r} not on screen:\n{shown}"
        for char in CONTROL:
            assert char not in shown, f"{char!r} reached the terminal"
        # Nothing on screen became a link or an action.
        for strip in self.app.screen._compositor.render_strips():
            for segment in strip:
                style = segment.style
                if style is not None and any(t in segment.text for t in ("click", "x[/]", "evil")):
                    assert not style.link, segment
                    assert "@click" not in (style.meta or {}), segment

    def toasts(self) -> list[str]:
        """The notices on screen, as rendered (a Toast renders its title and message)."""
        return [str(toast.render()) for toast in self.app.screen.query(Toast)]

    async def until(self, what: Callable[[], bool], timeout: float = 8.0) -> None:
        deadline = time.monotonic() + timeout
        while not what():
            assert self.app.is_running, "the dashboard stopped"
            assert time.monotonic() < deadline, "condition not met in time"
            await self.pilot.pause(0.1)

    async def type(self, *keys: str) -> None:
        await self.pilot.press(*keys)
        await self.pilot.pause(0.3)


@asynccontextmanager
async def hostile_app(tmp_path: Path) -> AsyncIterator[Run]:
    credentials = tmp_path / "credentials.yaml"
    credentials.write_text("lab:\n  version: 2c\n  community: c\n")
    credentials.chmod(0o600)
    devices = [dataclasses.replace(d, snmp_credential="lab", interval=0.2) for d in DEVICES]
    options = Options(db=f"sqlite:///{tmp_path / 'h.db'}", interval=0.2, confirm_spacing=0.05,
                      credentials=credentials, snmp_interval=0.3)
    app = WardApp(Runtime(options, prober=FakeProber(), devices=devices, snmp_client=HostileSnmp()))
    notices = watch(app)
    async with app.run_test(size=(160, 50), notifications=True) as pilot:
        run = Run(app, pilot, notices)
        try:
            await run.until(lambda: len(run.table.row_order()) == len(DEVICES) and all(
                t.state.value == "up" for t in app.runtime.engine.trackers.values()))
            await pilot.pause(0.6)
            yield run
        finally:
            if app.is_running:
                await app.action_quit()


async def test_hostile_names_in_the_table_tree_filter_and_command_line(tmp_path: Path) -> None:
    async with hostile_app(tmp_path) as run:
        run.assert_shown_literally(CLOSE, CLICK, LINK)
        # The filter: what the operator types is a filter, and the table's title says it as typed.
        await run.type("slash", *"[/]")
        await run.until(lambda: run.table.filter_text == "[/]")
        await run.type("enter")
        assert run.table.row_order() == [CLOSE, CLICK, LINK]  # each has "[/]" somewhere
        run.assert_shown_literally("filter: [/]")
        # g: the region tree with the filter kept, group names as written.
        await run.type("g")
        await run.until(lambda: run.app.dashboard.view == "groups")
        await run.type("space", "down", "space")
        run.assert_shown_literally("filter: [/]", CLICK)
        await run.type("g")
        await run.type("escape")
        # The : line: an unknown command and an unknown device are notices, literal.
        for line in ("[/]", "device [/zz]", "sort [b]"):
            await run.type("colon", *line, "enter")
            run.assert_shown_literally()
            if line == "device [/zz]":  # its toast while it is up (5 s): typing the next line can
                # take longer than that on a loaded machine
                await run.until(lambda: any("[/zz]" in t for t in run.toasts()))
                assert any("no device named '[/zz]'" in t for t in run.toasts()), run.toasts()
        assert len(run.notices.containing("[/zz]")) == 1, run.notices
        assert len(run.notices.containing("[b]")) == 1, run.notices
        # (Its toast may have timed out by now on a loaded machine: the notice was sent.)
        assert len(run.notices.containing("unknown command :[/]")) == 1, run.notices
        assert not any(c in t for t in run.toasts() for c in CONTROL)
        # The palette finds a hostile name and shows it as written.
        await run.type("ctrl+p", *"click")
        await run.until(lambda: CLICK in run.screen_text())
        run.assert_shown_literally(CLICK)
        await run.type("escape")
        assert isinstance(run.app.screen, DashboardScreen)


async def test_hostile_snmp_strings_in_the_drill_down(tmp_path: Path) -> None:
    async with hostile_app(tmp_path) as run:
        run.table.focus()
        run.table.move_cursor(row=run.table.row_order().index(CLOSE))
        await run.type("enter")
        await run.until(lambda: isinstance(run.app.screen, DeviceScreen))
        screen = run.app.screen
        assert isinstance(screen, DeviceScreen)
        await run.until(lambda: "[link=http://x]n[/link]" in run.screen_text())
        await run.until(lambda: IF_NAME in run.screen_text())
        # sysName with its OSC title escape replaced, sysDescr's [@click] as text, the bidi
        # override replaced; both interfaces' names and aliases as written.
        run.assert_shown_literally(f"device {CLOSE}", LINK, CLICK, BOLD, "[link=http://x]n[/link]\ufffd]0;pwned\ufffd",
                                   f"{CLICK} \ufffd[2J", "\ufffdevil", IF_NAME, "[red]alias[/red]", LINK)
        await run.type("i", "down", "enter")  # the interface chart's title names the interface
        await run.until(lambda: f"{CLOSE} (if 2)" in run.screen_text())
        run.assert_shown_literally(f"{CLOSE} (if 2)")
        await run.type("question_mark")
        run.assert_shown_literally(f"device {CLOSE}: keys")
        await run.type("escape", "escape")
        await run.until(lambda: isinstance(run.app.screen, DashboardScreen))
        run.assert_shown_literally(CLOSE)


async def test_export_of_hostile_names_to_a_hostile_path(tmp_path: Path) -> None:
    async with hostile_app(tmp_path) as run:
        target = Path(f"{tmp_path}/r[/b]/report [/].csv")  # "[/" and "]" are directories too
        target.parent.mkdir(parents=True)
        await run.type("e")
        await run.until(lambda: isinstance(run.app.screen, ExportScreen))
        run.app.screen.query_one("#export-path", Input).value = str(target)
        await run.type("enter")
        await run.until(lambda: target.exists() and any("r[/b]/report [/].csv" in t for t in run.toasts()))
        text = target.read_text(encoding="utf-8")
        for name in (CLOSE, CLICK, LINK):
            assert f'"{name}"' in text
        # A path that cannot be written is an error notice that quotes it, not a crash.
        await run.type("e")
        await run.until(lambda: isinstance(run.app.screen, ExportScreen))
        run.app.screen.query_one("#export-path", Input).value = str(tmp_path / "no[/]dir" / "x.csv")
        await run.type("enter")
        await run.until(lambda: any("no[/]dir" in t for t in run.toasts()))
        run.assert_shown_literally()


async def test_interface_names_from_the_database_without_rates(tmp_path: Path) -> None:
    """The interface chart's title names the interface; with no rates stored (or while a read
    runs) it is drawn without plotext, and an escape in a stored name must not reach the
    terminal there either (found by a review: the pane's title changed)."""
    device = Device("r1", "127.3.0.1", "b", "r", "router")
    iface = InterfaceStat(1, f"ge0{OSC_TITLE}", f"alias{CLEAR}", "up", "up", 10**9, None, None,
                          0, 0, 0, 0, True)
    async with HistoryStore(database_url(str(tmp_path / "h.db"))) as store:
        await store.sync_devices([device])
        await store.write_snmp_polls([SnmpPoll("r1", "127.3.0.1", datetime.now(UTC) - timedelta(minutes=1),
                                               "sys", "descr", "1.3.6.1", 100.0, (iface,))])
    app = WardApp(Runtime(Options(db=f"sqlite:///{tmp_path / 'h.db'}", interval=0.2, confirm_spacing=0.05),
                          prober=FakeProber(), devices=[device]))
    async with app.run_test(size=(160, 50)) as pilot:
        run = Run(app, pilot, watch(app))
        try:
            # Polling has begun: the store is open (a drill-down opened before reads it later).
            await run.until(lambda: len(run.table.row_order()) == 1 and all(
                t.state.value == "up" for t in app.runtime.engine.trackers.values()))
            app.dashboard.run_command("device r1")
            await run.until(lambda: "(if 1)" in run.screen_text())
            run.assert_shown_literally("ge0\ufffd]0;pwned\ufffd (if 1)", "alias\ufffd[2J")
            await run.type("i", "enter")
            run.assert_shown_literally("ge0\ufffd]0;pwned\ufffd (if 1)")
        finally:
            await app.action_quit()
