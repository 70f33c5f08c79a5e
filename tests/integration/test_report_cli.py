"""``wardtui report`` end to end: known transitions written through the store (SQLite and
PostgreSQL), the report read back as JSON, CSV, Markdown and HTML files, and its errors."""

from __future__ import annotations

import asyncio
import csv
import io
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from poller.events import State, Transition
from poller.inventory import Device
from store import HistoryStore
from tests.integration.cli_run import json_of, run

H = timedelta(hours=1)
EVIL = "s-<b>&\"x"
U, D, N = State.UP, State.DOWN, State.UNKNOWN


def _t(device: str, frm: State, to: State, at: datetime, down_since: datetime | None = None) -> Transition:
    return Transition(device, "127.0.0.1", frm, to, at, down_since, None)


async def _seed(url: str, base: datetime) -> None:
    """The period is [base, base + 10 h). n-rtr: down across the start (30 min counted) and across
    the end (1 h counted); n-sw: first monitored at base + 5 h, never down; EVIL: down since
    base + 7:59:50 (its first failed probe; DOWN declared 10 s later) and still down."""
    devices = [Device("n-rtr", "127.0.0.2", "nb1", "north", "router"),
               Device("n-sw", "127.0.0.3", "nb1", "north", "switch"),
               Device(EVIL, "127.0.0.4", "sb1", "south", "router")]
    down_since = base + 8 * H - timedelta(seconds=10)
    async with HistoryStore(url) as store:
        await store.sync_devices(devices)
        await store.write_transitions([
            _t("n-rtr", N, U, base - 3 * H), _t(EVIL, N, U, base - H),
            _t("n-rtr", U, D, base - H, base - H), _t("n-rtr", D, U, base + 0.5 * H),
            _t("n-sw", N, U, base + 5 * H), _t(EVIL, U, D, base + 8 * H, down_since),
            _t("n-rtr", U, D, base + 9 * H, base + 9 * H), _t("n-rtr", D, U, base + 11 * H)])


@pytest.fixture
def base() -> datetime:
    return (datetime.now(UTC) - timedelta(days=3)).replace(minute=0, second=0, microsecond=0)


def test_report_figures_formats_and_files(db_url: str, base: datetime, tmp_path: Path) -> None:
    asyncio.run(_seed(db_url, base))
    period = ("--from", base.isoformat(), "--to", (base + 10 * H).isoformat(), "--db", db_url)
    html_file, csv_file = tmp_path / "r.html", tmp_path / "r.csv"
    devices, regions, page, table, md, future = run(
        ("report", *period, "--format", "json"),
        ("report", *period, "--format", "json", "--group-by", "region"),
        ("report", *period, "--format", "html", "--group-by", "branch", "-o", str(html_file)),
        ("report", *period, "--format", "csv", "-o", str(csv_file)),
        ("report", *period, "--format", "md"),
        ("report", "--from", base.isoformat(), "--to", "2099-01-01", "--format", "json", "--db", db_url),
        cwd=tmp_path)

    rows = {r["name"]: r for r in json_of(devices)["rows"]}
    assert set(rows) == {"n-rtr", "n-sw", EVIL}
    rtr, sw, evil = rows["n-rtr"], rows["n-sw"], rows[EVIL]
    assert (rtr["outages"], rtr["downtime_s"], rtr["longest_s"], rtr["mttr_s"], rtr["mtbf_s"]) == \
        (2, 5400.0, 3600.0, 2700.0, 15300.0)
    assert rtr["availability_pct"] == 85.0 and rtr["state"] == "up"
    assert (sw["monitored_s"], sw["availability_pct"], sw["outages"]) == (18000.0, 100.0, 0)
    assert sw["mttr_s"] is None and sw["mtbf_s"] is None
    assert (evil["downtime_s"], evil["state"]) == (7210.0, "down")
    assert evil["availability_pct"] == round(100 * (36000 - 7210) / 36000, 4)
    listed = [(o["device"], o["counted_s"], o["ongoing"]) for o in json_of(devices)["outages"]]
    assert listed == [("n-rtr", 1800.0, False), (EVIL, 7210.0, True), ("n-rtr", 3600.0, False)]

    by_region = {r["name"]: r for r in json_of(regions)["rows"]}
    assert (by_region["north"]["devices"], by_region["north"]["monitored_s"]) == (2, 54000.0)
    assert by_region["north"]["availability_pct"] == 90.0  # device-time weighted
    assert by_region["south"]["state"] == "down 1/1"

    assert page.returncode == 0 and page.stdout == "", page.stderr
    text = html_file.read_text(encoding="utf-8")
    assert "<td>nb1</td>" in text and "s-&lt;b&gt;&amp;&quot;x" in text and EVIL not in text
    assert table.returncode == 0 and table.stdout == ""
    csv_rows = list(csv.DictReader(io.StringIO(csv_file.read_text(encoding="utf-8").split("\n\n")[0])))
    assert [(r["name"], r["downtime_s"]) for r in csv_rows] == [
        ("n-rtr", "5400.0"), ("n-sw", "0.0"), (EVIL, "7210.0")]
    assert "| n-rtr | 1 | 85.000 % | 2 | 1h30m | 0s | 0s | 45m00s | 4h15m | 1h00m | up |" in md.stdout

    # An end in the future: counted up to now, the ongoing outage too.
    later = json_of(future)
    until = datetime.fromisoformat(later["counted_until"])
    assert abs(until - datetime.now(UTC)) < timedelta(seconds=60)
    ongoing = next(o for o in later["outages"] if o["ongoing"])
    expected = (until - (base + 8 * H - timedelta(seconds=10))).total_seconds()
    assert ongoing["counted_s"] == pytest.approx(expected, abs=0.01)


def test_report_errors_are_clear(tmp_path: Path, base: datetime) -> None:
    db = tmp_path / "h.db"
    asyncio.run(_seed(f"sqlite+aiosqlite:///{db}", base))
    url = f"sqlite:///{db}"
    missing = tmp_path / "none.db"
    after, bad, group, unwritable, absent, refused = run(
        ("report", "--from", "2026-11-02", "--to", "2026-11-01", "--db", url),
        ("report", "--from", "last tuesday", "--db", url),
        ("report", "--from", "7d", "--group-by", "floor", "--db", url),
        ("report", "--from", "7d", "-o", str(tmp_path / "no" / "such" / "dir.csv"), "--db", url),
        ("report", "--from", "7d", "--db", f"sqlite:///{missing}"),
        ("report", "--from", "7d", "--db", "postgresql://wardtui@127.0.0.1:1/none"),
        cwd=tmp_path)
    assert after.returncode == 2 and "is not before --to" in after.stderr
    assert bad.returncode == 2 and "--from 'last tuesday'" in bad.stderr
    assert group.returncode == 2 and "--group-by" in group.stderr and "floor" in group.stderr
    assert unwritable.returncode == 2 and "cannot write the report" in unwritable.stderr
    assert absent.returncode == 1 and "no history" in absent.stderr and not missing.exists()
    assert refused.returncode == 1 and "cannot open the history database" in refused.stderr
    for proc in (after, bad, group, unwritable, absent, refused):
        assert proc.stdout == ""


def test_availability_of_a_view_or_a_group_for_the_dashboard(db_url: str, base: datetime) -> None:
    from store.report import Period, availability

    async def read() -> tuple[list[str], list[str], list[str]]:
        await _seed(db_url, base)
        period = Period(base, base + 10 * H)
        async with HistoryStore(db_url) as store:
            view = await availability(store, period, devices=["n-sw", EVIL])
            branch = await availability(store, period, group=("branch", "nb1"), group_by="branch")
            region = await availability(store, period, group=("region", "south"))
        assert branch.rows[0].availability_pct == 100 * (54000 - 5400) / 54000
        assert [o.device for o in region.outages] == [EVIL]
        return [r.name for r in view.rows], [r.name for r in branch.rows], [r.name for r in region.rows]

    assert asyncio.run(read()) == (["n-sw", EVIL], ["nb1"], [EVIL])


FORMULA, DASHED = '=HYPERLINK("x")', "-router"


async def _seed_formulas(url: str, base: datetime) -> None:
    """Names a spreadsheet would run: two devices in branch +b1 of region @north, and one
    plain device; -router is down for 1 h of the 10 h period."""
    devices = [Device(FORMULA, "127.0.0.2", "+b1", "@north", "router"),
               Device(DASHED, "127.0.0.3", "+b1", "@north", "router"),
               Device("plain", "127.0.0.4", "b2", "south", "switch")]
    async with HistoryStore(url) as store:
        await store.sync_devices(devices)
        await store.write_transitions([
            *(_t(d.name, N, U, base - H) for d in devices),
            _t(DASHED, U, D, base + H, base + H), _t(DASHED, D, U, base + 2 * H)])


def _typed_csv(text: str) -> tuple[list[list[Any]], list[list[Any]]]:
    """Rows and outages as a spreadsheet types them: bare cells are numbers (read as floats
    here), quoted cells text."""
    rows, outages = text.split("\n\n", 1)
    read = [list(csv.reader(io.StringIO(part), quoting=csv.QUOTE_NONNUMERIC)) for part in (rows, outages)]
    return read[0], read[1]


def test_csv_report_defuses_names_a_spreadsheet_would_run(db_url: str, base: datetime,
                                                          tmp_path: Path) -> None:
    asyncio.run(_seed_formulas(db_url, base))
    period = ("--from", base.isoformat(), "--to", (base + 10 * H).isoformat(), "--db", db_url)
    csv_file = tmp_path / "r.csv"
    devices, branches, regions, as_json, md, page = run(
        ("report", *period, "--format", "csv", "-o", str(csv_file)),
        ("report", *period, "--format", "csv", "--group-by", "branch"),
        ("report", *period, "--format", "csv", "--group-by", "region"),
        ("report", *period, "--format", "json"),
        ("report", *period, "--format", "md"),
        ("report", *period, "--format", "html"), cwd=tmp_path)
    assert devices.returncode == 0 and devices.stdout == "", devices.stderr
    rows, outages = _typed_csv(csv_file.read_text(encoding="utf-8"))
    assert rows[0][:3] == ["name", "devices", "availability_pct"]
    assert [r[:3] for r in rows[1:]] == [["'-router", 1.0, 90.0], ["'=HYPERLINK(\"x\")", 1.0, 100.0],
                                         ["plain", 1.0, 100.0]]  # the figures are numbers
    assert [(o[0], o[3]) for o in outages[1:]] == [("'-router", 3600.0)]
    assert [r[0] for r in _typed_csv(branches.stdout)[0][1:]] == ["'+b1", "b2"]
    assert [r[0] for r in _typed_csv(regions.stdout)[0][1:]] == ["'@north", "south"]
    # Only CSV: the other formats keep the names exactly.
    assert [r["name"] for r in json_of(as_json)["rows"]] == [DASHED, FORMULA, "plain"]
    assert [o["device"] for o in json_of(as_json)["outages"]] == [DASHED]
    assert "| -router | 1 | 90.000 % |" in md.stdout and '| =HYPERLINK("x") | 1 |' in md.stdout
    assert "<td>-router</td>" in page.stdout and "<td>=HYPERLINK(&quot;x&quot;)</td>" in page.stdout


async def _seed_branch(url: str, base: datetime) -> None:
    """b-rtr down 1 h from base + 1 h; behind it b-atm unreachable all that hour, then down on its
    own for 30 min after the router came back."""
    devices = [Device("b-rtr", "127.0.0.5", "b", "north", "router"),
               Device("b-atm", "127.0.0.6", "b", "north", "atm", parents=("b-rtr",))]
    R = State.UNREACHABLE
    async with HistoryStore(url) as store:
        await store.sync_devices(devices)
        await store.write_transitions([
            _t("b-rtr", N, U, base - H), _t("b-atm", N, U, base - H),
            _t("b-rtr", U, D, base + H, base + H), _t("b-atm", U, R, base + H, base + H),
            _t("b-rtr", D, U, base + 2 * H, base + H), _t("b-atm", R, D, base + 2 * H, base + H),
            _t("b-atm", D, U, base + 2.5 * H, base + H)])


def test_unreachable_time_down_by_default_or_excluded(db_url: str, base: datetime, tmp_path: Path) -> None:
    asyncio.run(_seed_branch(db_url, base))
    period = ("--from", base.isoformat(), "--to", (base + 10 * H).isoformat(), "--db", db_url,
              "--format", "json")
    default, down, excluded, bad = run(("report", *period), ("report", *period, "--unreachable", "down"),
                                       ("report", *period, "--unreachable", "excluded"),
                                       ("report", *period, "--unreachable", "maybe"), cwd=tmp_path)
    assert json_of(default)["rows"] == json_of(down)["rows"] and json_of(down)["unreachable"] == "down"
    atm = next(r for r in json_of(default)["rows"] if r["name"] == "b-atm")
    assert (atm["downtime_s"], atm["unreachable_s"], atm["monitored_s"]) == (5400.0, 3600.0, 36000.0)
    assert [(o["device"], o["cause"], o["unreachable_s"]) for o in json_of(default)["outages"]] == [
        ("b-atm", "unreachable", 3600.0), ("b-rtr", "down", 0.0)]
    sla = {r["name"]: r for r in json_of(excluded)["rows"]}
    assert json_of(excluded)["unreachable"] == "excluded"
    assert (sla["b-atm"]["downtime_s"], sla["b-atm"]["monitored_s"], sla["b-atm"]["outages"]) == \
        (1800.0, 32400.0, 1)
    assert sla["b-rtr"]["downtime_s"] == 3600.0
    assert bad.returncode == 2 and "--unreachable" in bad.stderr
