"""``wardtui report --exclude-maintenance`` end to end, on SQLite and PostgreSQL: transitions and
maintenance windows written through the store (one-off, recurring, removed half way, overlapping,
with hostile notes and matchers, matching by tag), the report read back in every format."""

from __future__ import annotations

import asyncio
import csv
import io
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from poller.events import State, Transition
from poller.inventory import Device
from poller.notify.windows import Window, parse_matcher
from store import HistoryStore
from store.maintenance_windows import MaintenanceWindows
from tests.integration.cli_run import json_of, run

H = timedelta(hours=1)
EVIL = "s-<b>&\"x\x1b[2J"
U, D, N = State.UP, State.DOWN, State.UNKNOWN


def _t(device: str, frm: State, to: State, at: datetime, down_since: datetime | None = None) -> Transition:
    return Transition(device, "127.0.0.1", frm, to, at, down_since, None)


def _window(*match: str, note: str, created: datetime, start: datetime | None = None,
            end: datetime | None = None, cron: str | None = None, seconds: float | None = None) -> Window:
    return Window(0, tuple(parse_matcher(m) for m in match), starts_at=start, ends_at=end, cron=cron,
                  duration_s=seconds, tz="UTC" if cron else None, note=note, created_by="alice",
                  created_at=created)


async def _seed(url: str, base: datetime) -> None:
    """The period is [base, base + 10 h). n-rtr: down 1 h to 3 h, a window on it 2 h to 4 h.
    n-sw: down 5:00 to 5:20, inside its hourly half-hour window. Both: a region window 7 h to
    9 h removed at 8 h. EVIL: a window of its own (matched by its literal name, hostile note),
    never down. A window by tag over the whole period: t-nas (tagged backup, in a branch of its own,
    never down) is in maintenance all along."""
    devices = [Device("n-rtr", "127.0.0.2", "nb1", "north", "router"),
               Device("n-sw", "127.0.0.3", "nb1", "north", "switch"),
               Device(EVIL, "127.0.0.4", "sb1", "south", "router"),
               Device("t-nas", "127.0.0.5", "tb1", "south", "nas", tags=("disk", "backup"))]
    earlier = base - timedelta(days=1)
    async with HistoryStore(url) as store:
        await store.sync_devices(devices)
        await store.write_transitions([
            *(_t(d.name, N, U, base - 3 * H) for d in devices),
            _t("n-rtr", U, D, base + H, base + H), _t("n-rtr", D, U, base + 3 * H),
            _t("n-sw", U, D, base + 5 * H, base + 5 * H),
            _t("n-sw", D, U, base + 5 * H + timedelta(minutes=20))])
        windows = MaintenanceWindows(store.db)
        await windows.add(_window("device=n-rtr", note="router swap", created=earlier,
                                  start=base + 2 * H, end=base + 4 * H))
        await windows.add(_window("branch=nb1", "type=switch", note="\x1b]0;pwned\x07[bold]x[/]",
                                  created=earlier, cron=f"{base.minute} * * * *", seconds=1800))
        region = await windows.add(_window("region=north", note="<script>alert(1)</script>",
                                           created=earlier, start=base + 7 * H, end=base + 9 * H))
        await windows.remove(region.id, base + 8 * H)
        await windows.add(_window(f"device={EVIL}", note="=HYPERLINK(\"x\")", created=earlier,
                                  start=base + H, end=base + 2 * H))
        await windows.add(_window("tag=backup", note="backups", created=earlier, start=base,
                                  end=base + 10 * H))


@pytest.fixture
def base() -> datetime:
    return (datetime.now(UTC) - timedelta(days=3)).replace(minute=0, second=0, microsecond=0)


def test_maintenance_excluded_or_shown_in_every_format(db_url: str, base: datetime, tmp_path: Path) -> None:
    asyncio.run(_seed(db_url, base))
    period = ("--from", base.isoformat(), "--to", (base + 10 * H).isoformat(), "--db", db_url)
    csv_file = tmp_path / "r.csv"
    shown, excluded, both, branch, table, md, page = run(
        ("report", *period, "--format", "json"),
        ("report", *period, "--format", "json", "--exclude-maintenance"),
        ("report", *period, "--format", "json", "--exclude-maintenance", "--unreachable", "excluded"),
        ("report", *period, "--format", "json", "--exclude-maintenance", "--group-by", "branch"),
        ("report", *period, "--format", "csv", "--exclude-maintenance", "-o", str(csv_file)),
        ("report", *period, "--format", "md", "--exclude-maintenance"),
        ("report", *period, "--format", "html", "--exclude-maintenance"), cwd=tmp_path)

    plain = {r["name"]: r for r in json_of(shown)["rows"]}
    assert json_of(shown)["maintenance"] == "counted"
    # Shown, not excluded: the figures as without windows, maintenance apart.
    assert (plain["n-rtr"]["downtime_s"], plain["n-rtr"]["monitored_s"], plain["n-rtr"]["maintenance_s"]) == \
        (7200.0, 36000.0, 10800.0)
    assert (plain["n-sw"]["downtime_s"], plain["n-sw"]["outages"], plain["n-sw"]["maintenance_s"]) == \
        (1200.0, 1, 19800.0)  # 10 half hours, and the removed region window's half hour beside them
    assert plain[EVIL]["maintenance_s"] == 3600.0

    sla = {r["name"]: r for r in json_of(excluded)["rows"]}
    assert json_of(excluded)["maintenance"] == "excluded"
    nas = sla["t-nas"]  # matched by its tag, as the history recorded it from the inventory
    assert (nas["maintenance_s"], nas["monitored_s"], nas["availability_pct"]) == (36000.0, 0.0, None)
    rtr, sw, evil = sla["n-rtr"], sla["n-sw"], sla[EVIL]
    assert (rtr["downtime_s"], rtr["monitored_s"], rtr["outages"], rtr["mttr_s"], rtr["mtbf_s"]) == \
        (3600.0, 25200.0, 1, 3600.0, 21600.0)
    assert rtr["availability_pct"] == round(100 * (25200 - 3600) / 25200, 4)
    assert (sw["downtime_s"], sw["monitored_s"], sw["outages"], sw["availability_pct"]) == \
        (0.0, 16200.0, 0, 100.0)
    assert (evil["monitored_s"], evil["availability_pct"]) == (32400.0, 100.0)
    outages = {o["device"]: o for o in json_of(excluded)["outages"]}
    assert (outages["n-rtr"]["counted_s"], outages["n-rtr"]["maintenance_s"]) == (7200.0, 3600.0)
    assert outages["n-sw"]["maintenance_s"] == 1200.0
    assert json_of(both)["rows"] == json_of(excluded)["rows"]  # nothing was unreachable

    (nb1,) = [r for r in json_of(branch)["rows"] if r["name"] == "nb1"]
    assert (nb1["monitored_s"], nb1["downtime_s"], nb1["maintenance_s"]) == (41400.0, 3600.0, 30600.0)

    assert table.returncode == 0 and table.stdout == "", table.stderr
    rows = list(csv.DictReader(io.StringIO(csv_file.read_text(encoding="utf-8").split("\n\n")[0])))
    assert [(r["name"], r["maintenance_s"], r["availability_pct"]) for r in rows][:2] == [
        ("n-rtr", "10800.0", str(rtr["availability_pct"])), ("n-sw", "19800.0", "100.0")]
    assert "maintenance time excluded" in md.stdout
    assert "| n-rtr | 1 | 85.714 % | 1 | 1h00m | 0s | 3h00m |" in md.stdout
    assert "maintenance time excluded" in page.stdout and "<th>Maintenance</th>" in page.stdout
    for proc in (shown, excluded, table, md, page):  # notes are never printed; names are cleaned
        assert "pwned" not in proc.stdout and "\x1b" not in proc.stdout


def test_the_flag_is_in_the_help(tmp_path: Path) -> None:
    (helped,) = run(("report", "--help"), cwd=tmp_path)
    assert helped.returncode == 0 and "--exclude-maintenance" in helped.stdout
