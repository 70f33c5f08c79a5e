"""Snapshot tests of every screen: a frozen clock, fixed device states and history, no polling.

Each test compares an SVG screenshot with its baseline in ``tests/ui/__snapshots__/test_snapshots/``
and fails on any difference (a report of the differences is written to snapshot_report.html).
The app is tests.ui.snapshot_apps.SnapshotApp: the real WardApp, Runtime, Engine and SQLite
store, with one hour of checks played into the trackers and the store beforehand, an engine that
never polls, and time-machine holding the wall clock at FROZEN_AT (monotonic time runs on, so
Textual's timers work). Before a baseline is taken, a few assertions check that the screen
shows what the test's name claims, so a wrong screen cannot be blessed as a baseline.

After a deliberate change to what a screen shows, regenerate the baselines with

    cd /work/main && PYTHONPATH=. /work/venv/bin/python -m pytest tests/ui/test_snapshots.py --snapshot-update

then look at the changed SVGs (``git diff --stat tests/ui/__snapshots__``; rsvg-convert turns
one into a PNG) before committing them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import time_machine
from textual.pilot import Pilot
from textual.widgets import Input

from tests.ui.snapshot_apps import FROZEN_AT, REPORT_DIR, SnapshotApp, build, run_before, until
from wardtui.screens.dashboard import DashboardScreen
from wardtui.screens.device import DeviceScreen
from wardtui.screens.export import ExportScreen
from wardtui.screens.help import HelpScreen
from wardtui.widgets.device_table import DeviceTable
from wardtui.widgets.groups import GroupTree

BIG = (120, 40)
SnapCompare = Callable[..., bool]


@pytest.fixture
def app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[SnapshotApp]:
    """The app over a store in ``tmp_path``, built and run with the wall clock frozen."""
    monkeypatch.chdir(tmp_path)  # the database is history.db in the current directory
    monkeypatch.delenv("NO_COLOR", raising=False)  # a developer's NO_COLOR would strip the colours
    with time_machine.travel(FROZEN_AT, tick=False):
        snapshot_app, _ = build(tmp_path)
        yield snapshot_app


def dashboard(pilot: Pilot[Any]) -> DashboardScreen:
    screen = pilot.app.screen
    assert isinstance(screen, DashboardScreen), screen
    return screen


def table(pilot: Pilot[Any]) -> DeviceTable:
    return dashboard(pilot).query_one(DeviceTable)


# -- the dashboard ---------------------------------------------------------------------------


async def _all_view(pilot: Pilot[Any]) -> None:
    rows = table(pilot).row_order()
    assert rows[:3] == ["dev0", "dev1", "dev2"] and len(rows) == 20
    assert pilot.app.sub_title.endswith("sqlite history.db")  # no tmp_path in the header


def test_dashboard_all(app: SnapshotApp, snap_compare: SnapCompare) -> None:
    """Every device by name; three down, one flapping, one lossy, one unknown; gauges and log filled."""
    assert snap_compare(app, terminal_size=BIG, run_before=run_before(wait=_all_view))


def test_dashboard_80x24(app: SnapshotApp, snap_compare: SnapCompare) -> None:
    """The same dashboard in an 80x24 SSH terminal: name, state and down-for stay on screen."""
    assert snap_compare(app, terminal_size=(80, 24), run_before=run_before(wait=_all_view))


async def _problems_first(pilot: Pilot[Any]) -> None:
    assert table(pilot).view == "problems"
    # Longest down first (dev11's outage was restored from the store), then flapping, then loss.
    assert table(pilot).row_order()[:6] == ["dev11", "dev5", "dev16", "dev8", "dev13", "dev0"]


def test_dashboard_problems(app: SnapshotApp, snap_compare: SnapCompare) -> None:
    """p: problems on top, longest down first, then the rest by name."""
    assert snap_compare(app, terminal_size=BIG, run_before=run_before("p", wait=_problems_first))


async def _groups_open(pilot: Pilot[Any]) -> None:
    tree = dashboard(pilot).query_one(GroupTree)
    assert tree.display and tree.has_focus
    assert tree.counts("south") == (10, 2) and tree.counts("north") == (10, 1)
    assert [str(n.label).split()[0] for n in tree.cursor_node.children] == ["dev5", "dev19"]  # type: ignore[union-attr]


def test_dashboard_groups(app: SnapshotApp, snap_compare: SnapCompare) -> None:
    """g: region → branch → device with counts; south, its branch b4 (dev11) and b5 (dev5) opened."""
    # The tree opens with no cursor line: the first down lands on north, the second on south.
    keys = ("g", "down", "down", "space", *["down"] * 5, "space", "down", "down", "space")
    assert snap_compare(app, terminal_size=BIG, run_before=run_before(*keys, wait=_groups_open))


async def _filtered(pilot: Pilot[Any]) -> None:
    await until(pilot, lambda: table(pilot).filter_text == "south")  # applied once typing pauses
    assert table(pilot).row_order() == [f"dev{i}" for i in range(1, 20, 2)]
    assert dashboard(pilot).query_one("#filter", Input).has_focus


def test_dashboard_filter(app: SnapshotApp, snap_compare: SnapCompare) -> None:
    """/ south: the filter bar open with its text, only the south region's devices shown."""
    assert snap_compare(app, terminal_size=BIG, run_before=run_before("slash", *"south", wait=_filtered))


async def _command_line(pilot: Pilot[Any]) -> None:
    command = dashboard(pilot).query_one("#command", Input)
    assert command.has_focus and command.value == "sort lo"
    await until(pilot, lambda: command._suggestion == "sort loss")  # drawn dim after the text


def test_dashboard_command_line(app: SnapshotApp, snap_compare: SnapCompare) -> None:
    """: sort lo — the command line open, completing the column name."""
    keys = ("colon", *"sort lo")
    assert snap_compare(app, terminal_size=BIG, run_before=run_before(*keys, wait=_command_line))


# -- screens over the dashboard --------------------------------------------------------------


def _device_loaded(name: str, snmp: bool) -> Callable[[Pilot[Any]], Any]:
    async def wait(pilot: Pilot[Any]) -> None:
        await until(pilot, lambda: isinstance(pilot.app.screen, DeviceScreen) and pilot.app.screen.is_mounted)
        await pilot.app.workers.wait_for_complete()  # history and SNMP reads (the screen's workers)
        screen = pilot.app.screen
        assert isinstance(screen, DeviceScreen) and screen.device == name
        await until(pilot, lambda: screen.loaded)
        # The SNMP section (interface table and chart) is mounted only for a device with SNMP data.
        assert bool(screen.query("#interfaces")) is snmp

    return wait


def test_device_with_snmp(app: SnapshotApp, snap_compare: SnapCompare) -> None:
    """Enter on dev3: live figures, an hour of RTT and loss, no outage, SNMP facts and interfaces."""
    before = run_before("down", "down", "down", "enter", wait=_device_loaded("dev3", snmp=True))
    assert snap_compare(app, terminal_size=BIG, run_before=before)


def test_device_down_without_snmp(app: SnapshotApp, snap_compare: SnapCompare) -> None:
    """Enter on dev5: down for 12 minutes, gaps in the RTT chart, two outages, no SNMP section."""
    before = run_before(*["down"] * 5, "enter", wait=_device_loaded("dev5", snmp=False))
    assert snap_compare(app, terminal_size=BIG, run_before=before)


async def _help_open(pilot: Pilot[Any]) -> None:
    assert isinstance(pilot.app.screen, HelpScreen)


def test_help(app: SnapshotApp, snap_compare: SnapCompare) -> None:
    """?: the help box over the dashboard, keys of the dashboard and of the drill-down."""
    assert snap_compare(app, terminal_size=BIG, run_before=run_before("question_mark", wait=_help_open))


async def _export_open(pilot: Pilot[Any]) -> None:
    screen = pilot.app.screen
    assert isinstance(screen, ExportScreen)
    path = screen.query_one("#export-path", Input).value
    assert path == f"{REPORT_DIR}/wardtui-report-20261116T093000Z.html"  # named after the frozen time


def test_export(app: SnapshotApp, snap_compare: SnapCompare, monkeypatch: pytest.MonkeyPatch) -> None:
    """e: the export box over the dashboard, proposing a file named after the (frozen) time."""
    # The box proposes a file in the current directory, tmp_path here: show a fixed one instead.
    monkeypatch.setattr(Path, "cwd", classmethod(lambda cls: cls(REPORT_DIR)))
    assert snap_compare(app, terminal_size=BIG, run_before=run_before("e", wait=_export_open))
