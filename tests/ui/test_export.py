"""``e`` on the dashboard: the export box writes a report of the current view through Pilot."""

from __future__ import annotations

import csv
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from textual.widgets import Input, RadioButton, RadioSet

from tests.ui.test_dashboard import dashboard
from wardtui.history_cli import HistoryQueryError
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
    with pytest.raises(HistoryQueryError):
        choose_period("custom", NOW, "", "")
    with pytest.raises(HistoryQueryError):
        choose_period("custom", NOW, "2026-11-02", "2026-11-01")
    assert default_path("md", NOW, Path("/r")) == Path("/r/wardtui-report-20261117T103000Z.md")


async def test_e_exports_the_filtered_view(tmp_path: Path) -> None:
    async with dashboard(tmp_path) as h:
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
        assert any(str(target) in n.message for n in h.app._notifications)


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
        await h.all_up()
        await h.pilot.press("e")
        await h.until(lambda: isinstance(h.app.screen, ExportScreen))
        h.app.screen.query_one("#export-path", Input).value = str(tmp_path / "no-such-dir" / "r.md")
        await h.pilot.press("enter")
        await h.until(lambda: any("cannot write" in n.message for n in h.app._notifications))
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
