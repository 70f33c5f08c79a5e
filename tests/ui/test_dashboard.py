"""The dashboard driven through Pilot against a real engine, a fake prober and a real SQLite store."""

from __future__ import annotations

import dataclasses
import io
import sqlite3
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from rich.console import Console
from textual.app import App, ComposeResult
from textual.pilot import Pilot
from textual.widgets import Input

from poller.state import DeviceTracker, StateConfig
from tests.fakes import FakeProber, FakeSnmpClient, make_devices
from tests.ui.notices import watch
from wardtui.app import WardApp
from wardtui.runtime import Options, Runtime
from wardtui.screens.dashboard import DashboardScreen
from wardtui.screens.help import HelpScreen
from wardtui.widgets.device_table import DeviceTable
from wardtui.widgets.gauges import HealthLine, health_line
from wardtui.widgets.transition_log import TransitionLog

REPO = Path(__file__).resolve().parents[2]
N = 30
NAMES = [f"dev{i}" for i in range(N)]  # natural order: dev2 before dev10


@dataclass
class Harness:
    app: WardApp
    pilot: Pilot[int]
    prober: FakeProber
    db: Path

    @property
    def table(self) -> DeviceTable:
        return self.app.screen.query_one(DeviceTable)

    @property
    def log_lines(self) -> list[str]:
        return self.app.screen.query_one(TransitionLog).lines_written

    def address(self, name: str) -> str:
        return self.app.runtime.engine.trackers[name].device.address

    async def until(self, what: Callable[[], bool], timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        while not what():
            assert time.monotonic() < deadline, "condition not met in time"
            await self.pilot.pause(0.1)

    async def freeze(self) -> None:
        """Stop polling, for tests that type a lot: Pilot delivers each key only once the
        process looks idle (or after 1 s), and a 300 checks/s engine never looks idle."""
        self.app.engine_thread.call(self.app.runtime.engine.stop)
        if self.app.engine_worker is not None:
            await self.app.engine_worker.wait()

    async def all_up(self) -> None:
        await self.until(lambda: len(self.table.row_order()) == N and all(
            self.table.cell_text(n, "state") == "up" for n in self.table.row_order()))


@asynccontextmanager
async def dashboard(tmp_path: Path) -> AsyncIterator[Harness]:
    db = tmp_path / "h.db"
    prober = FakeProber()
    runtime = Runtime(Options(db=f"sqlite:///{db}", interval=0.1, confirm_spacing=0.05),
                      prober=prober, devices=make_devices(N, interval=0.1))
    app = WardApp(runtime)
    async with app.run_test(size=(120, 40)) as pilot:
        harness = Harness(app, pilot, prober, db)
        try:
            yield harness
        finally:
            await app.action_quit()  # idempotent; flushes the store even when a test failed


async def test_rows_appear_up_and_header_says_what_runs(tmp_path: Path) -> None:
    async with dashboard(tmp_path) as h:
        await h.all_up()
        assert h.table.row_order() == NAMES
        assert h.table.cell_text("dev4", "address") == "127.2.0.5"
        assert h.table.cell_text("dev4", "rtt") == "1.00"
        assert f"{N} devices" in h.app.sub_title and str(h.db) in h.app.sub_title
        # 30 first answers make one line, not 30.
        await h.until(lambda: any(line.endswith(f"{N} devices unknown → up (first answer)")
                                  for line in h.log_lines))
        assert len(h.log_lines) == 1


async def test_filter_shows_only_matching_rows_and_esc_clears(tmp_path: Path) -> None:
    async with dashboard(tmp_path) as h:
        await h.all_up()
        await h.freeze()
        await h.pilot.press("slash", *"dev1")
        await h.pilot.pause(0.4)  # the filter applies once typing pauses (FILTER_DELAY)
        assert h.table.row_order() == ["dev1", *(f"dev{i}" for i in range(10, 20))]
        # Letters typed into the filter must not reach the screen's bindings (s = sort).
        await h.pilot.press("backspace", "backspace", "backspace", "backspace", *"south b3")
        await h.pilot.pause(0.4)
        assert h.table.row_order() == ["dev3", "dev17"]  # i odd and i % 7 == 3
        assert h.table.sort_column == "name"
        await h.pilot.press("escape")
        await h.pilot.pause(0.2)
        assert h.table.row_order() == NAMES
        assert not h.app.screen.query_one("#filter-bar").display


async def test_filter_follows_live_state(tmp_path: Path) -> None:
    async with dashboard(tmp_path) as h:
        await h.all_up()
        await h.pilot.press("slash")
        h.app.screen.query_one("#filter", Input).value = "DOWN"  # typing is tested above
        await h.pilot.pause(0.4)
        assert h.table.row_order() == []
        h.prober.down.add(h.address("dev8"))
        await h.until(lambda: h.table.row_order() == ["dev8"])


async def test_sort_cycles_and_state_puts_down_first(tmp_path: Path) -> None:
    async with dashboard(tmp_path) as h:
        await h.all_up()
        h.prober.down.add(h.address("dev12"))
        await h.until(lambda: h.table.cell_text("dev12", "state") == "DOWN")
        await h.freeze()
        assert h.table.row_order() == NAMES
        await h.pilot.press("s")
        await h.pilot.pause(0.2)
        assert h.table.sort_column == "state"
        assert h.table.row_order() == ["dev12", *(n for n in NAMES if n != "dev12")]
        assert "state, down first" in str(h.table.border_title)
        for _ in range(4):  # down for, loss, RTT, address
            await h.pilot.press("s")
        await h.pilot.pause(0.2)
        assert h.table.sort_column == "address"
        assert h.table.row_order() == NAMES  # addresses grow with the index, numerically


async def test_down_device_shows_down_and_logs_transition_and_recovery(tmp_path: Path) -> None:
    async with dashboard(tmp_path) as h:
        await h.all_up()
        h.prober.down.add(h.address("dev7"))
        await h.until(lambda: h.table.cell_text("dev7", "state") == "DOWN")
        await h.until(lambda: any("dev7 up → DOWN" in line and line.endswith("127.2.0.8")
                                  for line in h.log_lines))
        assert h.table.cell_text("dev7", "rtt") == "-"
        assert h.table.cell_text("dev6", "state") == "up"
        h.prober.down.discard(h.address("dev7"))
        await h.until(lambda: any("dev7" in line and "DOWN → up" in line and "after" in line
                                  for line in h.log_lines))
        assert h.table.cell_text("dev7", "down") == ""


async def test_help_lists_every_key_and_closes(tmp_path: Path) -> None:
    async with dashboard(tmp_path) as h:
        await h.freeze()
        await h.pilot.press("question_mark")
        await h.pilot.pause(0.1)
        assert isinstance(h.app.screen, HelpScreen)
        text = h.app.screen.text()
        for binding in DashboardScreen.BINDINGS:
            if binding.show:
                line = f"{h.app.get_key_display(binding)}  {binding.description}: {binding.tooltip}"
                assert line in text.splitlines()
        assert "Enter (in filter)" in text and "ctrl+q" in text
        await h.pilot.press("escape")
        await h.pilot.pause(0.1)
        assert isinstance(h.app.screen, DashboardScreen)


async def test_quit_flushes_transitions_to_the_store(tmp_path: Path) -> None:
    async with dashboard(tmp_path) as h:
        await h.all_up()
        h.prober.down.add(h.address("dev3"))
        await h.until(lambda: h.table.cell_text("dev3", "state") == "DOWN")
        await h.pilot.press("q")
        await h.until(lambda: h.app.return_code is not None)
        assert h.app.return_code == 0
    checks_done = h.app.runtime.engine.checks_done
    with sqlite3.connect(h.db) as conn:
        checks = conn.execute("SELECT count(*) FROM checks").fetchone()[0]
        transitions = conn.execute("SELECT count(*) FROM transitions").fetchone()[0]
        down = conn.execute("SELECT count(*) FROM transitions WHERE to_state = 'down'").fetchone()[0]
        open_outages = conn.execute('SELECT count(*) FROM outages WHERE "end" IS NULL').fetchone()[0]
    assert transitions >= N + 1  # every unknown → up, then dev3 up → down
    assert down == 1
    assert open_outages == 1
    # Checks are written in batches about once a second: without the flush on quit the
    # last batch would be missing.
    assert checks == checks_done


class _TableOnly(App[None]):
    def __init__(self, trackers: dict[str, DeviceTracker]) -> None:
        super().__init__()
        self.trackers = trackers

    def compose(self) -> ComposeResult:
        yield DeviceTable(self.trackers)


async def test_down_for_advances_without_events() -> None:
    trackers = {d.name: DeviceTracker(d, StateConfig()) for d in make_devices(3)}
    now = datetime.now(UTC)
    trackers["dev1"].seed_down(now - timedelta(seconds=65))
    app = _TableOnly(trackers)
    async with app.run_test() as pilot:
        table = app.query_one(DeviceTable)
        table.refresh_devices([], now)
        assert table.cell_text("dev1", "down") == "1m05s"
        table.refresh_devices([], now + timedelta(seconds=10))  # no event named dev1
        await pilot.pause()
        assert table.cell_text("dev1", "down") == "1m15s"
        assert table.cell_text("dev0", "down") == ""


async def test_store_error_is_shown_and_polling_goes_on(tmp_path: Path) -> None:
    # A file that is not SQLite: runtime.start() cannot open the store. (A directory is refused
    # before, as a bad --db.)
    prober = FakeProber()
    not_a_db = tmp_path / "notes.txt"
    not_a_db.write_text("not a database\n" * 100, encoding="utf-8")
    runtime = Runtime(Options(db=f"sqlite:///{not_a_db}", interval=0.1), prober=prober,
                      devices=make_devices(3, interval=0.1))
    app = WardApp(runtime)
    sent = watch(app)
    async with app.run_test() as pilot:
        await pilot.pause(0.5)
        notices = {n.title: n.message for n in sent if n.severity == "error"}
        assert "history store" in notices, notices
        assert str(not_a_db) in notices["history store"]
        assert "WITHOUT history" in notices["history store"]
        # Monitoring did not stop with the history: devices are probed and come up.
        calls = sum(prober.calls.values())
        await pilot.pause(0.5)
        assert sum(prober.calls.values()) > calls
        assert all(t.state.value == "up" for t in runtime.engine.trackers.values())
        # ... and where the database state is shown, and in the exit status: no history.
        await pilot.pause(1.2)  # the next gauges
        assert "off" in figures_text(app).split("database", 1)[1].split("\n", 1)[0]
        await app.action_quit()
    assert app.return_code == 3


async def test_a_crash_in_the_screen_still_flushes_history(tmp_path: Path) -> None:
    """An exception in the UI ends the app (return code 1) but not before the history is saved."""
    db = tmp_path / "h.db"
    runtime = Runtime(Options(db=f"sqlite:///{db}", interval=0.1), prober=FakeProber(),
                      devices=make_devices(5, interval=0.1))
    app = WardApp(runtime)
    ticks = 0

    def refresh_devices(*_: object) -> None:
        nonlocal ticks
        ticks += 1
        if ticks == 3:
            raise RuntimeError("a bug in the screen")

    with pytest.raises(RuntimeError, match="a bug in the screen"):  # run_test re-raises it
        async with app.run_test() as pilot:
            await pilot.pause(0.2)
            table = app.dashboard.query_one(DeviceTable)
            table.refresh_devices = refresh_devices  # type: ignore[method-assign]
            deadline = time.monotonic() + 10
            while app.return_code is None and time.monotonic() < deadline:
                await pilot.pause(0.1)
    assert app.return_code == 1
    done = runtime.engine.checks_done
    with sqlite3.connect(db) as conn:
        stored = conn.execute("SELECT count(*) FROM checks").fetchone()[0]
    assert done > 0 and stored == done


def figures_text(app: WardApp) -> str:
    console = Console(width=100, record=True, file=io.StringIO())
    console.print(app.screen.query_one("#figures").render())
    return console.export_text()


HOLDER = """
import asyncio, sys
from tests.fakes import FakeProber, make_devices
from wardtui.runtime import Options, Runtime

async def main() -> None:
    runtime = Runtime(Options(db=sys.argv[1], interval=0.5), prober=FakeProber(), devices=make_devices(2))
    await runtime.start()
    print("started", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    await runtime.close()

asyncio.run(main())
"""


async def test_an_app_whose_runtime_is_refused_the_lease_shows_history_off_and_exits_3(
        tmp_path: Path) -> None:
    """Another process holds the SQLite file's poller lease when the app's runtime starts. A
    second `wardtui` dashboard never gets this far (it exits 2 before its screen:
    tests/integration/test_lease.py); an app gets here when the lease was taken between that
    check and the start, or the check could not reach the database. It polls without history
    and says so in its engine panel, in its health line and in its exit status, not only in a
    notice."""
    db = f"sqlite:///{tmp_path / 'h.db'}"
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, db], cwd=REPO, stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "started\n"
        runtime = Runtime(Options(db=db, interval=0.1), prober=FakeProber(),
                          devices=make_devices(3, interval=0.1))
        app = WardApp(runtime)
        sent = watch(app)
        async with app.run_test(size=(120, 40)) as pilot:
            h = Harness(app, pilot, FakeProber(), tmp_path / "h.db")
            await h.until(lambda: bool(sent.containing("WITHOUT history")))
            await h.until(lambda: f"database off: pid {holder.pid}" in " ".join(figures_text(app).split()))
            row = next(line for line in figures_text(app).splitlines() if "store queue" in line)
            assert "off" in row and "ok" not in row
            gauges = app.screen.query_one(HealthLine).gauges
            assert gauges is not None
            line = health_line(gauges, "bold", 200).plain
            assert line.startswith(f"db off: pid {holder.pid} ") and "queue" not in line
            await app.action_quit()
        assert app.return_code == 3
    finally:
        holder.communicate("", timeout=30)
    assert holder.returncode == 0


async def test_snmp_reboots_interface_changes_and_gauges_show(tmp_path: Path) -> None:
    credentials = tmp_path / "credentials.yaml"
    credentials.write_text("lab:\n  version: 2c\n  community: not-on-screen\n")
    credentials.chmod(0o600)
    devices = [dataclasses.replace(d, snmp_credential="lab") for d in make_devices(3, interval=0.1)]
    client = FakeSnmpClient()
    runtime = Runtime(Options(db=f"sqlite:///{tmp_path / 'h.db'}", interval=0.1, credentials=credentials,
                              snmp_interval=0.2), prober=FakeProber(), devices=devices, snmp_client=client)
    app = WardApp(runtime)
    async with app.run_test(size=(120, 40)) as pilot:
        h = Harness(app, pilot, FakeProber(), tmp_path / "h.db")
        try:
            await h.until(lambda: all(client.calls.get(d.name, 0) >= 2 for d in devices))
            client.reboot("dev1")
            client.oper["dev2"] = 2
            await h.until(lambda: any("dev1 rebooted" in line for line in h.log_lines))
            await h.until(lambda: any("dev2 eth0 up → down" in line for line in h.log_lines))
            await h.until(lambda: "snmp polls/s" in figures_text(app))
            assert "skip capacity" not in figures_text(app)  # v2c only: no v3 row
            assert not any("not-on-screen" in line for line in h.log_lines)
            assert "SNMP 3 every 0.2 s" in app.sub_title
        finally:
            await app.action_quit()


async def test_ticks_wait_for_the_first_frame_then_fold_what_arrived(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """A tick before the dashboard's first frame is shown (a busy machine: it came first, and
    folding "every row changed" made the table's whole order before the frame) leaves what
    arrived in the subscription; after the frame, or FIRST_FRAME_WAIT ticks, it is folded in."""
    from poller.feed import RowsChanged

    monkeypatch.setattr(WardApp, "after_first_frame", lambda self: None)  # the frame "not shown yet"
    runtime = Runtime(Options(db=f"sqlite:///{tmp_path / 'h.db'}"), prober=FakeProber(),
                      devices=make_devices(N))
    app = WardApp(runtime)
    monkeypatch.setattr(DashboardScreen, "TICK", 3600.0)  # ticks only when this test says
    async with app.run_test(size=(120, 40)) as pilot:
        screen = app.dashboard
        table = screen.query_one(DeviceTable)
        runtime.engine.bus.publish(RowsChanged(None))  # type: ignore[arg-type]
        for _ in range(DashboardScreen.FIRST_FRAME_WAIT):
            screen.tick()
            assert not table.order_made
        screen.tick()  # waited long enough: folded in anyway
        assert table.order_made
        assert table.row_order() == NAMES
        screen._first_frame_shown = False
        screen._ticks_waited = 0
        runtime.engine.bus.publish(RowsChanged(None))  # type: ignore[arg-type]
        screen.tick()
        assert screen._sub is not None and len(screen._sub.drain()) == 1  # kept for later
        screen.after_first_frame()
        await pilot.pause()
    app.engine_thread.close()
