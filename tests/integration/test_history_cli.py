"""``wardtui history DEVICE``: raw checks or rollups by span, as people and scripts read them,
from a real store (a SQLite file and a PostgreSQL database) filled with known checks."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import make_url

from poller.events import CheckResult, State, Transition
from store import HistoryStore, database_url
from store.maintenance import Maintenance
from store.rollup import HOUR, MINUTE
from tests.integration.cli_run import json_of, run
from tests.integration.postgres import pg_url  # noqa: F401

DEVICE, ADDRESS = "north-b001-rtr", "127.0.0.2"
OTHER, OTHER_ADDRESS = "south-b002-sw", "127.0.0.3"

# Minutes ago, sent, received, rtt: two outside the last hour, five inside; the one at 30 min
# is lost, and the device is down from it until the check at 20 min.
RECENT: list[tuple[int, int, int, float | None]] = [
    (110, 3, 3, 10.0), (90, 3, 3, 12.5), (50, 3, 3, 11.25), (40, 3, 2, 20.0),
    (30, 3, 0, None), (20, 3, 3, 1.23456), (10, 3, 3, 9.999)]
# Three days back, three checks in one minute: sent 9, received 7, rtt 5/7/6 ms.
OLD: list[tuple[int, int, int, float | None]] = [(5, 3, 3, 5.0), (15, 3, 3, 7.0), (25, 3, 1, 6.0)]


@dataclass(frozen=True)
class Filled:
    url: str
    now: datetime
    recent: list[CheckResult]  # DEVICE's, oldest first
    old: list[CheckResult]
    down: tuple[datetime, datetime]  # DEVICE's outage
    hour_done: datetime  # hourly rollups exist for buckets before this


def _check(device: str, address: str, at: datetime, sent: int, received: int,
           rtt: float | None) -> CheckResult:
    return CheckResult(device=device, address=address, at=at, sent=sent, received=received,
                       rtt_ms=rtt, state=State.UP if received else State.DOWN)


async def _fill(url: str) -> Filled:
    now = datetime.now(UTC).replace(microsecond=0)
    old_minute = MINUTE.floor(now - timedelta(days=3))
    recent = [_check(DEVICE, ADDRESS, now - timedelta(minutes=m), s, r, rtt) for m, s, r, rtt in RECENT]
    old = [_check(DEVICE, ADDRESS, old_minute + timedelta(seconds=sec), s, r, rtt) for sec, s, r, rtt in OLD]
    other = [_check(OTHER, OTHER_ADDRESS, old_minute + timedelta(seconds=30), 3, 3, 2.0)]
    down = (now - timedelta(minutes=30), now - timedelta(minutes=20))
    async with HistoryStore(url) as store:
        await store.write_checks(old + other + recent)
        await store.write_transitions([
            Transition(DEVICE, ADDRESS, State.UP, State.DOWN, down[0], down[0], None),
            Transition(DEVICE, ADDRESS, State.DOWN, State.UP, down[1], None, 1.23456)])
        report = await Maintenance(store, settle=timedelta(0), budget=60).run_once()
    hour_done = report.watermarks[HOUR.name]
    minute_done = report.watermarks[MINUTE.name]
    assert hour_done is not None and minute_done is not None and minute_done >= MINUTE.floor(now)
    return Filled(url, now, recent, old, down, hour_done)


@pytest.fixture(params=["sqlite", "postgresql"])
def filled(request: pytest.FixtureRequest, tmp_path: Path) -> Filled:
    """The same history in a new SQLite file and in a new PostgreSQL database."""
    if request.param == "sqlite":
        url = database_url(str(tmp_path / "history.db"))
    else:
        url = str(request.getfixturevalue("pg_url"))
    return asyncio.run(_fill(url))


def _at(point: dict[str, Any]) -> datetime:
    at = datetime.fromisoformat(point["at"])
    assert at.utcoffset() == timedelta(0)
    return at


def _r(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def test_span_picks_the_tier_and_json_carries_what_was_written(filled: Filled, tmp_path: Path) -> None:
    db = ("--db", filled.url)
    hour, week, month = run(("history", DEVICE, "--since", "1h", "--json", *db),
                            ("history", DEVICE, "--since", "7d", "--json", *db),
                            ("history", DEVICE, "--since", "30d", "--json", *db), cwd=tmp_path)

    # Up to a day: raw checks, exactly the five of the last hour, as written.
    raw = json_of(hour)
    assert set(raw) == {"device", "tier", "since", "until", "points"}
    assert raw["device"] == DEVICE and raw["tier"] == "raw"
    since, until = datetime.fromisoformat(raw["since"]), datetime.fromisoformat(raw["until"])
    assert abs((until - since) - timedelta(hours=1)) < timedelta(seconds=1)
    assert filled.now <= until < filled.now + timedelta(seconds=60)
    expected = [c for c in filled.recent if c.at >= filled.now - timedelta(hours=1)]
    assert len(expected) == 5
    assert [_at(p) for p in raw["points"]] == [c.at for c in expected]
    for point, check in zip(raw["points"], expected, strict=True):
        assert set(point) == {"at", "sent", "received", "loss_pct", "rtt_ms"}
        assert (point["sent"], point["received"]) == (check.sent, check.received)
        assert point["loss_pct"] == _r(check.loss_pct)
        assert point["rtt_ms"] == _r(check.rtt_ms)
    assert [p["loss_pct"] for p in raw["points"]] == [0.0, 33.333, 100.0, 0.0, 0.0]
    assert [p["rtt_ms"] for p in raw["points"]] == [11.25, 20.0, None, 1.235, 9.999]

    # Up to a week: 1-minute rollups, one bucket per minute with checks.
    minutes = json_of(week)
    assert minutes["tier"] == "1m"
    buckets = [_at(p) for p in minutes["points"]]
    assert buckets == sorted({MINUTE.floor(c.at) for c in filled.old + filled.recent})
    old = minutes["points"][0]
    assert old == {"at": old["at"], "checks": 3, "sent": 9, "received": 7, "loss_pct": 22.222,
                   "rtt_min_ms": 5.0, "rtt_avg_ms": 6.0, "rtt_max_ms": 7.0, "rtt_p95_ms": 6.9,
                   "jitter_ms": 1.5, "up_s": 60.0, "down_s": 0.0, "availability_pct": 100.0}
    by_bucket = {_at(p): p for p in minutes["points"]}
    start, end = filled.down
    lost = by_bucket[MINUTE.floor(start)]  # down from `start` to the end of its minute
    down_s = 60 - (start - MINUTE.floor(start)).total_seconds()
    assert (lost["checks"], lost["received"], lost["loss_pct"], lost["rtt_avg_ms"]) == (1, 0, 100.0, None)
    assert lost["down_s"] == pytest.approx(down_s) and lost["up_s"] == pytest.approx(60 - down_s)
    assert lost["availability_pct"] == pytest.approx(100 * (60 - down_s) / 60, abs=0.001)
    back = by_bucket[MINUTE.floor(end)]  # down from the start of its minute to `end`
    assert back["down_s"] == pytest.approx((end - MINUTE.floor(end)).total_seconds())
    assert back["rtt_min_ms"] == back["rtt_max_ms"] == 1.235 and back["jitter_ms"] is None

    # Longer: hourly rollups, for every complete hour with checks.
    hours = json_of(month)
    assert hours["tier"] == "1h"
    expected_hours = sorted({HOUR.floor(c.at) for c in filled.old + filled.recent})
    assert [_at(p) for p in hours["points"]] == [h for h in expected_hours if h < filled.hour_done]
    first = hours["points"][0]
    assert (first["checks"], first["sent"], first["received"], first["rtt_p95_ms"]) == (3, 9, 7, 6.9)
    assert (first["up_s"], first["down_s"], first["availability_pct"]) == (3600.0, 0.0, 100.0)


def test_tier_and_until_override_the_choice(filled: Filled, tmp_path: Path) -> None:
    db = ("--db", filled.url)
    old_minute = MINUTE.floor(filled.old[0].at)
    window = ("--since", (old_minute - timedelta(minutes=1)).isoformat(),
              "--until", (old_minute + timedelta(minutes=2)).strftime("%Y-%m-%dT%H:%M:%SZ"))
    as_minutes, as_raw, iso = run(
        ("history", DEVICE, "--since", "1h", "--tier", "1m", "--json", *db),
        ("history", DEVICE, "--since", "7d", "--tier", "raw", "--json", *db),
        ("history", DEVICE, *window, "--json", *db), cwd=tmp_path)

    minutes = json_of(as_minutes)
    assert minutes["tier"] == "1m"
    assert [_at(p) for p in minutes["points"]] == [
        MINUTE.floor(c.at) for c in filled.recent if MINUTE.floor(c.at) >= filled.now - timedelta(hours=1)]
    raw = json_of(as_raw)
    assert raw["tier"] == "raw"
    assert [_at(p) for p in raw["points"]] == [c.at for c in filled.old + filled.recent]
    # An ISO window three days back: raw, its three checks, and until as given.
    three = json_of(iso)
    assert three["tier"] == "raw" and [_at(p) for p in three["points"]] == [c.at for c in filled.old]
    assert [p["rtt_ms"] for p in three["points"]] == [5.0, 7.0, 6.0]
    assert datetime.fromisoformat(three["until"]) == old_minute + timedelta(minutes=2)


def test_table_for_people(filled: Filled, tmp_path: Path) -> None:
    db = ("--db", filled.url)
    day, week, empty = run(
        ("history", DEVICE, *db),
        ("history", DEVICE, "--since", "7d", *db),
        ("history", OTHER, "--since", "1h", "--tier", "1m", *db), cwd=tmp_path)

    assert day.returncode == 0, day.stderr
    lines = day.stdout.splitlines()
    assert lines[0] == f"{DEVICE}, last 24h, raw checks (7): spans up to 1 day read raw checks"
    assert lines[1].split() == ["time", "(UTC)", "sent", "recv", "loss", "rtt", "ms"]
    rows = lines[2:]
    assert len(rows) == 7 and len({len(line) for line in lines[1:]}) == 1  # aligned
    lost = rows[4].split()
    assert lost == [*filled.recent[4].at.strftime("%Y-%m-%d %H:%M:%S").split(), "3", "0", "100.0%", "—"]
    assert rows[3].split()[-2:] == ["33.3%", "20.000"]

    assert week.returncode == 0, week.stderr
    head, columns, *buckets = week.stdout.splitlines()
    assert head == f"{DEVICE}, last 7d, 1-minute rollups (8): spans up to 7 days read 1-minute rollups"
    assert "avail" in columns and len(buckets) == 8
    assert buckets[0].split()[2:] == ["3", "22.2%", "5.000", "6.000", "6.900", "7.000", "1.500",
                                      "100.0%", "0s"]

    # Nothing in the span (OTHER's only check is three days old): said plainly, and why.
    assert empty.returncode == 0, empty.stderr
    assert empty.stdout.splitlines() == [
        f"{OTHER}, last 1h, 1-minute rollups (0): --tier 1m",
        f"no 1-minute rollups of {OTHER} in this span",
        "(rollups are written about a minute after each minute ends, hourly ones after the hour)"]


def test_unknown_device_and_missing_database(filled: Filled, tmp_path: Path) -> None:
    missing = tmp_path / "none.db"
    if make_url(filled.url).get_backend_name() == "sqlite":
        absent_db = f"sqlite:///{missing}"
    else:  # the same server, a database that is not there
        absent_db = make_url(filled.url).set(database="wardtui_test_absent").render_as_string(False)
    unknown, absent = run(("history", "nosuch", "--db", filled.url),
                          ("history", DEVICE, "--db", absent_db), cwd=tmp_path)
    assert unknown.returncode == 2 and unknown.stderr == "wardtui: no device named 'nosuch' in the history\n"
    assert absent.returncode == 1 and absent.stderr.startswith("wardtui: "), absent.stderr
    assert not missing.exists()
    assert unknown.stdout == absent.stdout == ""


def test_bad_options_exit_2_before_opening_the_database(tmp_path: Path) -> None:
    """Checked before any database is opened, so one engine is enough: this one is never created."""
    db = ("--db", f"sqlite:///{tmp_path / 'none.db'}")
    since, until, tier, backwards = run(
        ("history", DEVICE, "--since", "yesterday", *db),
        ("history", DEVICE, "--until", "soon", *db),
        ("history", DEVICE, "--tier", "5m", *db),
        ("history", DEVICE, "--since", "2h", "--until", "3h", *db), cwd=tmp_path)
    assert since.stderr == "wardtui: --since 'yesterday': use 1h, 24h, 7d, 30d or an ISO 8601 time\n"
    assert until.stderr == "wardtui: --until 'soon': use 1h, 24h, 7d, 30d or an ISO 8601 time\n"
    assert tier.stderr == "wardtui: --tier '5m': use auto, raw, 1m or 1h\n"
    assert backwards.stderr.startswith("wardtui: --until ") and "is not after --since" in backwards.stderr
    for proc in (since, until, tier, backwards):
        assert proc.returncode == 2 and proc.stdout == ""
    assert not (tmp_path / "none.db").exists()
