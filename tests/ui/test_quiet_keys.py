"""The ``a`` (acknowledge) and ``m`` (maintenance) keys through Pilot, embedded: a real engine on a
fake prober and a real SQLite history. What is typed reaches the database through the runtime,
the quiet state comes back on the bus, and the table and the drill-down show it, literally."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot
from textual.widgets import Input

from poller.live import Keys
from tests.fakes import FakeProber, make_devices
from tests.ui.notices import Notices, watch
from tests.ui.test_attached import SHARED, _forget, _shared_redis_up
from wardtui.app import WardApp
from wardtui.attached import AttachedRuntime, Site
from wardtui.runtime import Options, Runtime
from wardtui.screens.dashboard import DashboardScreen
from wardtui.screens.device import DeviceScreen
from wardtui.screens.help import HelpScreen
from wardtui.screens.quiet import AckBox, MaintenanceBox
from wardtui.widgets.device_table import DeviceTable
from wardtui.widgets.groups import GroupTree

REPO = Path(__file__).resolve().parents[2]
N = 14  # branches b0..b6 (i % 7), regions north/south (i % 2)
HOSTILE = "[bold]x[/] \x1b[31m red [@click=app.quit]q[/]"
SHOWN = "[bold]x[/] \ufffd[31m red [@click=app.quit]q[/]"  # the escape replaced, the markup as typed


@dataclass
class Harness:
    app: WardApp
    pilot: Pilot[int]
    prober: FakeProber
    db: Path
    notices: Notices

    @property
    def table(self) -> DeviceTable:
        return self.app.dashboard.query_one(DeviceTable)

    def address(self, name: str) -> str:
        return self.app.runtime.engine.trackers[name].device.address

    async def until(self, what: Callable[[], bool], timeout: float = 5.0) -> float:
        """Wait for ``what``; the seconds it took."""
        start = time.monotonic()
        while not what():
            assert time.monotonic() - start < timeout, "condition not met in time"
            await self.pilot.pause(0.05)
        return time.monotonic() - start

    def rows(self, sql: str) -> list[tuple[object, ...]]:
        with sqlite3.connect(self.db) as conn:
            return conn.execute(sql).fetchall()

    async def down_and_stored(self, name: str) -> None:
        """``name`` DOWN on screen and its outage in the history (what an acknowledgement takes)."""
        self.prober.down.add(self.address(name))
        await self.until(lambda: self.table.cell_text(name, "state") == "DOWN")
        await self.until(lambda: bool(self.rows(
            f"SELECT 1 FROM outages o JOIN devices d ON d.id = o.device_id WHERE d.name = '{name}' "
            'AND o."end" IS NULL')))

    async def cursor_to(self, name: str) -> None:
        self.table.move_cursor(row=self.table.get_row_index(name))
        await self.pilot.pause(0.05)

    async def type(self, text: str) -> None:
        """Text into the focused input as typed (Pilot's press takes key names, not characters)."""
        field = self.app.screen.focused
        assert isinstance(field, Input)
        field.insert_text_at_cursor(text)
        await self.pilot.pause(0.05)


@asynccontextmanager
async def dashboard(tmp_path: Path) -> AsyncIterator[Harness]:
    db = tmp_path / "h.db"
    prober = FakeProber()
    runtime = Runtime(Options(db=f"sqlite:///{db}", interval=0.1, confirm_spacing=0.05),
                      prober=prober, devices=make_devices(N, interval=0.1))
    app = WardApp(runtime)
    notices = watch(app)
    async with app.run_test(size=(130, 40)) as pilot:
        harness = Harness(app, pilot, prober, db, notices)
        await harness.until(lambda: runtime.quiet is not None and all(
            harness.table.cell_text(n, "state") == "up" for n in harness.table.row_order()))
        try:
            yield harness
        finally:
            await app.action_quit()


@pytest.mark.alone  # measures a latency: see tests/alone.py
async def test_a_acknowledges_a_down_device_marks_its_row_and_the_drill_down_shows_the_note(
        tmp_path: Path) -> None:
    async with dashboard(tmp_path) as h:
        await h.down_and_stored("dev5")
        assert h.table.cell_text("dev5", "quiet") == ""
        await h.cursor_to("dev5")
        await h.pilot.press("a")
        await h.pilot.pause(0.1)
        box = h.app.screen
        assert isinstance(box, AckBox) and box.device == "dev5"
        await h.type(HOSTILE)
        pressed = time.monotonic()
        await h.pilot.press("enter")
        await h.until(lambda: h.table.cell_text("dev5", "quiet").startswith("ack:"), timeout=3)
        took = time.monotonic() - pressed
        assert took < 1.0, f"marked {took:.2f} s after Enter"
        assert isinstance(h.app.screen, DashboardScreen)  # the box closed on the yes
        stored = h.rows("SELECT device, note, who FROM acknowledgements")
        assert len(stored) == 1 and stored[0][0] == "dev5" and stored[0][1] == HOSTILE
        who = str(stored[0][2])
        assert h.table.cell_text("dev5", "quiet") == f"ack:{who}"
        assert h.table.cell_text("dev4", "quiet") == ""
        assert h.notices.containing("dev5 acknowledged by")
        await h.pilot.press("enter")  # the drill-down of the row under the cursor
        await h.until(lambda: isinstance(h.app.screen, DeviceScreen))
        line = str(h.app.screen.query_one("#device-quiet").render())
        assert line.startswith(f"acknowledged by {who} at ") and line.endswith(f" UTC: {SHOWN}"), line
        assert "\x1b" not in line
        # Recovery ends the acknowledgement: the mark goes with the outage.
        await h.pilot.press("escape")
        h.prober.down.discard(h.address("dev5"))
        await h.until(lambda: h.table.cell_text("dev5", "state") == "up")
        assert h.table.cell_text("dev5", "quiet") == ""


async def test_an_acknowledgement_of_a_device_that_is_up_is_refused_and_said(tmp_path: Path) -> None:
    async with dashboard(tmp_path) as h:
        await h.cursor_to("dev3")
        await h.pilot.press("a")
        await h.pilot.pause(0.1)
        await h.pilot.press("enter")  # no note yet: said in the box, nothing sent
        box = h.app.screen
        assert isinstance(box, AckBox)
        assert "a note is needed" in box.status
        await h.type("looking")
        await h.pilot.press("enter")
        await h.until(lambda: "refused" in box.status)
        assert "is not DOWN or UNREACHABLE now" in box.status
        assert h.app.screen is box  # stays, for Esc or another try
        assert h.notices.containing("cannot acknowledge dev3")
        assert h.rows("SELECT count(*) FROM acknowledgements") == [(0,)]


async def test_m_on_a_branch_of_the_groups_view_marks_its_devices(tmp_path: Path) -> None:
    async with dashboard(tmp_path) as h:
        await h.pilot.press("g")
        await h.pilot.pause(0.2)
        tree = h.app.dashboard.query_one(GroupTree)
        assert tree.select_device("dev3")  # dev3: south, b3; then up to its branch
        await h.until(lambda: tree.cursor_node is not None and tree.cursor_node.data == ("device", "dev3"))
        device_node = tree.cursor_node
        assert device_node is not None and device_node.parent is not None
        tree.move_cursor(device_node.parent)
        await h.until(lambda: tree.cursor_node is not None
                      and tree.cursor_node.data == ("branch", "south", "b3"))
        await h.pilot.press("m")
        await h.pilot.pause(0.1)
        box = h.app.screen
        assert isinstance(box, MaintenanceBox) and box.scope == "branch=b3"
        assert "branch=b3" in str(box.query_one("#quiet-scope").render())
        await h.type("router swap CHG-1 [b]")  # the note field has the focus; the length is 2h
        await h.pilot.press("enter")
        await h.until(lambda: h.table.cell_text("dev3", "quiet") == "maint", timeout=3)
        # The groups view marks its device leaves as the table does.
        branch_node = tree.cursor_node
        assert branch_node is not None and branch_node.data == ("branch", "south", "b3")
        leaves = {str(leaf.label).split()[0]: str(leaf.label) for leaf in branch_node.children}
        assert leaves == {"dev3": "dev3  up  maint"}, leaves  # dev10 is b3 of the north
        branch_b3 = [n for n in h.table.row_order() if int(n[3:]) % 7 == 3]
        assert branch_b3 == ["dev3", "dev10"]
        assert all(h.table.cell_text(n, "quiet") == "maint" for n in branch_b3)
        assert all(h.table.cell_text(n, "quiet") == "" for n in h.table.row_order() if n not in branch_b3)
        windows = h.rows("SELECT matchers, note FROM maintenance_windows")
        assert len(windows) == 1 and "branch=b3" in str(windows[0][0])
        assert windows[0][1] == "router swap CHG-1 [b]"
        # The drill-down says which window and until when.
        await h.pilot.press("g")
        await h.cursor_to("dev10")
        await h.pilot.press("enter")
        await h.until(lambda: isinstance(h.app.screen, DeviceScreen))
        line = str(h.app.screen.query_one("#device-quiet").render())
        assert line.startswith("in maintenance until ") and " (window 1 by " in line, line
        assert line.endswith("): router swap CHG-1 [b]")


async def test_esc_cancels_and_writes_nothing_and_a_bad_length_is_said(tmp_path: Path) -> None:
    async with dashboard(tmp_path) as h:
        await h.down_and_stored("dev2")
        await h.cursor_to("dev2")
        await h.pilot.press("a")
        await h.pilot.pause(0.1)
        await h.type("about to cancel")
        await h.pilot.press("escape")
        await h.pilot.pause(0.1)
        assert isinstance(h.app.screen, DashboardScreen)
        await h.pilot.press("m")
        await h.pilot.pause(0.1)
        box = h.app.screen
        assert isinstance(box, MaintenanceBox) and box.scope == "device=dev2"
        box.query_one("#quiet-duration", Input).value = "soon"
        await h.type("a note")
        await h.pilot.press("enter")
        await h.pilot.pause(0.1)
        assert "use a length such as 90m, 2h" in box.status
        await h.pilot.press("escape")
        await h.pilot.pause(0.5)
        assert isinstance(h.app.screen, DashboardScreen)
        assert h.rows("SELECT count(*) FROM acknowledgements") == [(0,)]
        assert h.rows("SELECT count(*) FROM maintenance_windows") == [(0,)]
        assert h.table.cell_text("dev2", "quiet") == ""


async def test_help_lists_a_and_m(tmp_path: Path) -> None:
    async with dashboard(tmp_path) as h:
        await h.pilot.press("question_mark")
        await h.pilot.pause(0.1)
        assert isinstance(h.app.screen, HelpScreen)
        lines = h.app.screen.text().splitlines()
        assert any(line.startswith("a  Acknowledge: acknowledge the outage") for line in lines)
        assert any(line.startswith("m  Maintenance: maintenance window from now") for line in lines)



@pytest.mark.alone  # measures a latency: see tests/alone.py
async def test_a_window_that_starts_and_ends_later_marks_and_unmarks_rows_on_time(tmp_path: Path) -> None:
    """Written to the database aside (as `wardtui maintenance add --from` does) and read once: the
    marks then follow the window's start and end with no other read (the quiet state does not
    change when a window starts: the dashboard looks again at Quiet.next_change)."""
    from datetime import UTC, datetime, timedelta

    from poller.notify.windows import Window, parse_matcher
    from store.maintenance_windows import MaintenanceWindows

    async with dashboard(tmp_path) as h:
        runtime = h.app.runtime
        assert isinstance(runtime, Runtime)
        start = datetime.now(UTC) + timedelta(seconds=2)
        window = Window(0, (parse_matcher("region=north"),), starts_at=start,
                        ends_at=start + timedelta(seconds=2), note="short", created_by="tester",
                        created_at=datetime.now(UTC))
        await h.app.engine_thread.run(MaintenanceWindows(runtime.store.db).add(window))
        await h.app.engine_thread.run(runtime.reread_quiet())
        assert runtime.quiet is not None
        reads = runtime.quiet.reads
        north = [n for n in h.table.row_order() if int(n[3:]) % 2 == 0]
        await h.until(lambda: bool(h.table.quiet.windows))
        assert all(h.table.cell_text(n, "quiet") == "" for n in north)  # not started yet
        await h.until(lambda: h.table.cell_text("dev0", "quiet") == "maint", timeout=4)
        late = (datetime.now(UTC) - start).total_seconds()
        assert late < 0.5, f"marked {late:.2f} s after the window started"
        assert all(h.table.cell_text(n, "quiet") == ("maint" if n in north else "")
                   for n in h.table.row_order())
        await h.until(lambda: h.table.cell_text("dev0", "quiet") == "", timeout=4)
        assert (datetime.now(UTC) - start).total_seconds() < 2.5
        assert runtime.quiet.reads == reads  # the start and the end were not a read's doing


async def test_a_in_the_drill_down_acknowledges_its_device(tmp_path: Path) -> None:
    async with dashboard(tmp_path) as h:
        await h.down_and_stored("dev9")
        await h.cursor_to("dev9")
        await h.pilot.press("enter")
        await h.until(lambda: isinstance(h.app.screen, DeviceScreen))
        screen = h.app.screen
        assert not screen.query_one("#device-quiet").display  # nothing to say yet
        await h.pilot.press("a")
        await h.until(lambda: isinstance(h.app.screen, AckBox))
        await h.type("from the drill-down")
        await h.pilot.press("enter")
        await h.until(lambda: h.app.screen is screen)
        await h.until(lambda: "from the drill-down" in str(screen.query_one("#device-quiet").render()),
                      timeout=2)
        assert screen.query_one("#device-quiet").display
        await h.pilot.press("escape")
        await h.until(lambda: h.table.cell_text("dev9", "quiet").startswith("ack:"))

# -- attached: two dashboards of one service ------------------------------------------------


@asynccontextmanager
async def fake_service(tmp_path: Path, down: list[str]) -> AsyncIterator[tuple[str, Path]]:
    """``wardtui serve``'s loop as a process (tests/procs/fake_service.py) on a SQLite history and
    the shared Redis; yields the site and the history's path."""
    _shared_redis_up()
    site = f"q{uuid.uuid4().hex[:10]}"
    inventory = tmp_path / "net.csv"
    inventory.write_text("name,address,branch,region,type\n" + "".join(
        f"{d.name},{d.address},{d.branch},{d.region},{d.type}\n" for d in make_devices(N)))
    db = tmp_path / "service.db"
    log = (tmp_path / "serve.log").open("wb")
    proc = subprocess.Popen([sys.executable, "-m", "tests.procs.fake_service", str(inventory), f"sqlite:///{db}",
                             SHARED, site, *down], cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)},
                            stderr=log)
    try:
        await _published(site, proc, tmp_path / "serve.log")
        yield site, db
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
        await _forget(SHARED, site)


async def _published(site: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    """Wait for the service's first snapshot on Redis (what a viewer attaches to)."""
    from redis.asyncio import Redis

    client: Any = Redis.from_url(SHARED)
    try:
        deadline = time.monotonic() + 30
        while not await client.exists(Keys(site).snapshot):
            assert proc.poll() is None, f"the service stopped: {log.read_text()[-2000:]}"
            assert time.monotonic() < deadline, "the service published no snapshot"
            await asyncio.sleep(0.1)
    finally:
        await client.aclose()


@asynccontextmanager
async def viewer(tmp_path: Path, site: str, name: str) -> AsyncIterator[tuple[WardApp, Pilot[int]]]:
    runtime = AttachedRuntime(Site(SHARED, Keys(site)), Options(db=f"sqlite:///{tmp_path / name}.db"))
    app = WardApp(runtime)
    await asyncio.wrap_future(app.engine_thread.submit(runtime.attach()))
    async with app.run_test(size=(130, 40)) as pilot:
        try:
            yield app, pilot
        finally:
            await app.action_quit()


async def _until(pilot: Pilot[int], what: Callable[[], bool], timeout: float = 10.0) -> float:
    start = time.monotonic()
    while not what():
        assert time.monotonic() - start < timeout, "condition not met in time"
        await pilot.pause(0.05)
    return time.monotonic() - start


@pytest.mark.alone  # measures a latency: see tests/alone.py
async def test_a_in_one_attached_dashboard_is_stored_by_the_service_and_marked_in_another(
        tmp_path: Path) -> None:
    async with fake_service(tmp_path, ["dev6"]) as (site, db):  # noqa: SIM117 (site is needed below)
        async with viewer(tmp_path, site, "one") as (one, pilot_one), \
                viewer(tmp_path, site, "two") as (two, pilot_two):
            await _ack_in_one_seen_in_two(db, one, pilot_one, two, pilot_two)


async def _ack_in_one_seen_in_two(db: Path, one: WardApp, pilot_one: Pilot[int], two: WardApp,
                                  pilot_two: Pilot[int]) -> None:
    """``a`` in ``one``; ``two`` shows the mark within a second of the answer."""
    tables = [app.dashboard.query_one(DeviceTable) for app in (one, two)]
    await _until(pilot_one, lambda: all(len(t.row_order()) == N for t in tables), timeout=20)
    await _until(pilot_one, lambda: all(t.cell_text("dev6", "state") == "DOWN" for t in tables))
    table = tables[0]
    table.move_cursor(row=table.get_row_index("dev6"))
    for _ in range(50):  # the service's history may store the outage a moment after it is DOWN
        await pilot_one.press("a")
        await _until(pilot_one, lambda: isinstance(one.screen, AckBox))
        box = one.screen
        assert isinstance(box, AckBox)
        box.query_one("#quiet-note", Input).insert_text_at_cursor(HOSTILE)
        await pilot_one.press("enter")
        await _until(pilot_one, lambda b=box: one.screen is not b
                     or (not b.sending and b.status.startswith("refused")))
        if one.screen is not box:
            answered = time.monotonic()  # the service has stored it
            break
        assert "no open outage" in box.status, box.status
        await pilot_one.press("escape")
        await pilot_one.pause(0.2)
    await _until(pilot_two, lambda: tables[1].cell_text("dev6", "quiet").startswith("ack:"), timeout=5)
    took = time.monotonic() - answered
    assert took < 1.0, f"the other viewer marked it {took:.2f} s after the service stored it"
    with sqlite3.connect(db) as conn:
        [(device, note, who)] = conn.execute("SELECT device, note, who FROM acknowledgements").fetchall()
    assert device == "dev6" and note == HOSTILE
    assert tables[1].cell_text("dev6", "quiet") == f"ack:{who}"
    await _until(pilot_one, lambda: tables[0].cell_text("dev6", "quiet").startswith("ack:"))
