"""``e`` on the dashboard: the export box writes a report of the current view through Pilot."""

from __future__ import annotations

import csv
import io
import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot
from textual.widgets import Input, RadioButton, RadioSet

from poller.events import State
from poller.inventory import Device
from tests.fakes import FakeProber
from tests.ui.notices import watch
from tests.ui.test_dashboard import dashboard
from wardtui.app import WardApp
from wardtui.cli.common import UsageError
from wardtui.runtime import Options, Runtime
from wardtui.screens.export import ExportScreen, choose_period, default_path

NOW = datetime(2026, 11, 17, 10, 30, tzinfo=UTC)


def test_periods_and_default_path() -> None:
    assert choose_period("24h", NOW).start == datetime(2026, 11, 16, 10, 30, tzinfo=UTC)
    assert choose_period("7d", NOW).start == datetime(2026, 11, 10, 10, 30, tzinfo=UTC)
    month = choose_period("month", NOW)
    assert (month.start, month.end) == (datetime(2026, 11, 1, tzinfo=UTC), NOW)
    custom = choose_period("custom", NOW, "2026-11-01", "2026-11-02")
    assert custom.start == datetime(2026, 11, 1, tzinfo=UTC)
    assert custom.end == datetime(2026, 11, 2, tzinfo=UTC)
    with pytest.raises(UsageError):
        choose_period("custom", NOW, "", "")
    with pytest.raises(UsageError):
        choose_period("custom", NOW, "2026-11-02", "2026-11-01")
    assert default_path("md", NOW, Path("/r")) == Path("/r/wardtui-report-20261117T103000Z.md")


async def test_e_exports_the_filtered_view(tmp_path: Path) -> None:
    async with dashboard(tmp_path) as h:
        sent = watch(h.app)
        await h.all_up()
        h.prober.down.add(h.address("dev12"))
        await h.until(lambda: h.table.cell_text("dev12", "state") == "DOWN")
        h.table.set_filter("dev1")  # dev1, dev10..dev19
        await h.pilot.press("e")
        await h.until(lambda: isinstance(h.app.screen, ExportScreen))
        box = h.app.screen
        assert "11 of 30 devices shown" in str(box.query_one("#export-scope").render())
        path = box.query_one("#export-path", Input)
        assert path.value.endswith(".html") and "wardtui-report-" in path.value
        # Choosing csv moves the default name's extension along.
        box.query_one("#format", RadioSet).query(RadioButton)[0].value = True
        await h.pilot.pause(0.1)
        assert path.value.endswith(".csv")
        target = tmp_path / "view.csv"
        path.value = str(target)
        await h.pilot.press("enter")
        await h.until(lambda: not isinstance(h.app.screen, ExportScreen))
        rows = list(csv.reader(target.read_text().splitlines()))
        names = [r[0] for r in rows[1:rows.index([])]]
        assert names == ["dev1", *(f"dev{i}" for i in range(10, 20))]
        assert any(r[0] == "dev12" for r in rows[rows.index([]) + 2:])  # its outage is listed
        assert [n.title for n in sent.containing(str(target))] == ["report written"]


async def test_export_group_by_region_json_and_esc(tmp_path: Path) -> None:
    async with dashboard(tmp_path) as h:
        await h.all_up()
        await h.pilot.press("e")
        await h.until(lambda: isinstance(h.app.screen, ExportScreen))
        await h.pilot.press("escape")
        await h.until(lambda: not isinstance(h.app.screen, ExportScreen))
        assert not list(Path.cwd().glob("wardtui-report-*"))
        await h.pilot.press("e")
        await h.until(lambda: isinstance(h.app.screen, ExportScreen))
        box = h.app.screen
        await h.pilot.press("tab", "down", "down", "space")  # group by: region
        await h.pilot.press("tab", "down", "down", "down", "space")  # format: json
        await h.pilot.pause(0.1)
        target = tmp_path / "regions.json"
        box.query_one("#export-path", Input).value = str(target)
        await h.pilot.press("enter")
        await h.until(target.exists)
        report = json.loads(target.read_text())
        assert report["group_by"] == "region"
        assert [(r["name"], r["devices"]) for r in report["rows"]] == [("north", 15), ("south", 15)]


async def test_export_error_is_a_notice_and_the_box_stays(tmp_path: Path) -> None:
    async with dashboard(tmp_path) as h:
        sent = watch(h.app)
        await h.all_up()
        await h.pilot.press("e")
        await h.until(lambda: isinstance(h.app.screen, ExportScreen))
        h.app.screen.query_one("#export-path", Input).value = str(tmp_path / "no-such-dir" / "r.md")
        await h.pilot.press("enter")
        await h.until(lambda: bool(sent.containing("cannot write")))
        assert [(n.title, n.severity) for n in sent] == [("export", "error")]
        assert isinstance(h.app.screen, ExportScreen)


async def test_a_file_name_that_says_its_format_wins_over_the_format_list(tmp_path: Path) -> None:
    async with dashboard(tmp_path) as h:
        await h.all_up()
        await h.pilot.press("e")
        await h.until(lambda: isinstance(h.app.screen, ExportScreen))
        box = h.app.screen
        assert box.fmt == "html"  # the list's default
        target = tmp_path / "plain.json"
        box.query_one("#export-path", Input).value = str(target)
        await h.pilot.press("enter")
        await h.until(target.exists)
        assert json.loads(target.read_text())["rows"]  # JSON, not HTML in a .json file


# Names a spreadsheet would run as formulas; -router (127.2.0.2) goes down.
FORMULA_DEVICES = [Device('=HYPERLINK("x")', "127.2.0.1", "+b1", "@north", "router", interval=0.1),
                   Device("-router", "127.2.0.2", "+b1", "@north", "router", interval=0.1),
                   Device("plain", "127.2.0.3", "b2", "south", "switch", interval=0.1)]


async def _export(app: WardApp, pilot: Pilot[int], target: Path, group_by: int = 0) -> str:
    """``e``, group by the ``group_by``-th choice, write to ``target`` (its suffix picks the format)."""
    await pilot.press("e")
    await _until(pilot, lambda: isinstance(app.screen, ExportScreen))
    box = app.screen
    box.query_one("#group-by", RadioSet).query(RadioButton)[group_by].value = True
    box.query_one("#export-path", Input).value = str(target)
    await pilot.pause(0.1)
    await pilot.press("enter")
    await _until(pilot, lambda: not isinstance(app.screen, ExportScreen))
    return target.read_text(encoding="utf-8")


async def _until(pilot: Pilot[int], what: Any, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not what():
        assert time.monotonic() < deadline, "condition not met in time"
        await pilot.pause(0.1)


def _typed(text: str) -> list[list[Any]]:
    """The CSV's rows part as a spreadsheet types it: bare cells numbers (floats), quoted text."""
    return list(csv.reader(io.StringIO(text.split("\n\n", 1)[0]), quoting=csv.QUOTE_NONNUMERIC))


async def test_exported_csv_defuses_names_a_spreadsheet_would_run(tmp_path: Path) -> None:
    prober = FakeProber()
    runtime = Runtime(Options(db=f"sqlite:///{tmp_path / 'h.db'}", interval=0.1, confirm_spacing=0.05),
                      prober=prober, devices=FORMULA_DEVICES)
    app = WardApp(runtime)
    trackers = runtime.engine.trackers
    async with app.run_test(size=(120, 40)) as pilot:
        try:
            prober.down.add("127.2.0.2")
            await _until(pilot, lambda: trackers["-router"].state is State.DOWN
                         and trackers["plain"].state is State.UP)
            text = await _export(app, pilot, tmp_path / "view.csv")
            rows = _typed(text)
            assert [r[:2] for r in rows[1:]] == [["'-router", 1.0], ["'=HYPERLINK(\"x\")", 1.0],
                                                 ["plain", 1.0]]
            assert rows[3][2] == 100.0 and isinstance(rows[1][2], float)  # figures stay numbers
            outages = list(csv.reader(io.StringIO(text.split("\n\n", 1)[1])))
            assert [o[0] for o in outages[1:]] == ["'-router"]
            by_branch = _typed(await _export(app, pilot, tmp_path / "branches.csv", group_by=1))
            assert [(r[0], r[1]) for r in by_branch[1:]] == [("'+b1", 2.0), ("b2", 1.0)]
            by_region = _typed(await _export(app, pilot, tmp_path / "regions.csv", group_by=2))
            assert [r[0] for r in by_region[1:]] == ["'@north", "south"]
            # JSON keeps the names exactly.
            names = [r["name"] for r in json.loads(await _export(app, pilot, tmp_path / "view.json"))["rows"]]
            assert names == ["-router", '=HYPERLINK("x")', "plain"]
        finally:
            await app.action_quit()


async def test_the_palettes_screenshot_is_private(tmp_path: Path) -> None:
    """ctrl+p's screenshot shows device names and addresses: written 0600 whatever the umask,
    in the current directory like the export."""
    import os
    import stat

    umask = os.umask(0o022)
    try:
        async with dashboard(tmp_path) as h:
            sent = watch(h.app)
            await h.all_up()
            written = h.app.deliver_screenshot(path=str(tmp_path))
            assert written is not None
            shot = Path(written)
            assert stat.S_IMODE(shot.stat().st_mode) == 0o600
            assert "dev12" in shot.read_text(encoding="utf-8")
            assert any(str(shot) in n.message for n in sent if n.title == "Screenshot")
            missing = h.app.deliver_screenshot(path=str(tmp_path / "no" / "such"))
            assert missing is None and any(n.severity == "error" for n in sent)
    finally:
        os.umask(umask)


async def _failing_export(tmp_path: Path, path: str, expect: str) -> None:
    """Enter with ``path``: a notice saying ``expect`` (shown literally), and the box still there
    and usable: Enter again with a good file writes the report."""
    async with dashboard(tmp_path) as h:
        sent = watch(h.app)
        await h.all_up()
        await h.pilot.press("e")
        await h.until(lambda: isinstance(h.app.screen, ExportScreen))
        box = h.app.screen
        assert isinstance(box, ExportScreen)
        box.query_one("#export-path", Input).value = path
        await h.pilot.press("enter")
        await h.until(lambda: bool(sent.containing(expect)))
        assert [(n.title, n.severity) for n in sent] == [("export", "error")]
        await h.until(lambda: not box.writing)
        assert h.app.screen is box
        good = tmp_path / "after.json"
        box.query_one("#export-path", Input).value = str(good)
        await h.pilot.press("enter")
        await h.until(good.exists)
        await h.until(lambda: not isinstance(h.app.screen, ExportScreen))


async def test_a_directory_as_the_file_is_a_notice(tmp_path: Path) -> None:
    await _failing_export(tmp_path, str(tmp_path), f"cannot write {tmp_path}: Is a directory")


async def test_a_store_error_is_a_notice_shown_literally(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    from sqlalchemy.exc import OperationalError

    from store.report import availability as real

    calls = 0

    async def failing(*args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise OperationalError("SELECT [bold]x[/]", {}, Exception("database is locked [/]"))
        return await real(*args, **kwargs)

    monkeypatch.setattr("wardtui.history_access.availability", failing)
    await _failing_export(tmp_path, str(tmp_path / "r.md"), "cannot read the history: (builtins.Exception) "
                                                            "database is locked [/]")


async def test_an_unexpected_error_is_a_notice_and_the_box_stays_usable(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A bug in a renderer (anything outside the store's errors) left the box "writing" for
    good: no notice, Enter ignored, only Esc left."""
    from wardtui.report_formats import RENDERERS

    def broken(report: Any) -> str:
        raise KeyError("[@click=app.quit]")

    monkeypatch.setitem(RENDERERS, "md", broken)  # the table the box renders with
    await _failing_export(tmp_path, str(tmp_path / "r.md"), "export failed: KeyError: '[@click=app.quit]'")


async def test_a_nul_in_the_file_name_is_a_notice(tmp_path: Path) -> None:
    # os.open raises ValueError (not OSError) for it: outside what the box used to catch.
    await _failing_export(tmp_path, str(tmp_path / "a\0b.md"), "embedded null byte")
