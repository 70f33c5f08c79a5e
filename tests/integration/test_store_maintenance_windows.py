"""Maintenance windows in the history database (store/maintenance_windows.py), on SQLite and
PostgreSQL: what is added comes back the same (aware UTC times, matchers, hostile notes), in
force versus over versus removed, removal kept on record, and a recurring window read back
evaluates as it was written."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import select

from poller.inventory import Device
from poller.notify.windows import Window, WindowSuppressions, active, parse_matcher
from store.database import Database
from store.maintenance_windows import MaintenanceWindows
from store.models import maintenance_windows_table

NOW = datetime(2026, 12, 6, 8, 0, tzinfo=UTC)
H = timedelta(hours=1)
HOSTILE = "[bold]x[/] \x1b[31mred\x1b[0m\nsecond line <script>alert(1)</script> *_~ 'quote\" é"


@pytest.fixture
async def windows(db_url: str) -> AsyncIterator[MaintenanceWindows]:
    db = Database(db_url)
    await db.open()
    try:
        yield MaintenanceWindows(db)
    finally:
        await db.close()


def one_off(start: datetime, end: datetime, *matchers: str, note: str = "change 1") -> Window:
    return Window(0, tuple(parse_matcher(m) for m in matchers or ("branch=north-b002",)),
                  starts_at=start, ends_at=end, note=note, created_by="alice", created_at=NOW)


async def test_a_window_comes_back_as_it_was_added(windows: MaintenanceWindows) -> None:
    paris = timezone(timedelta(hours=1))
    added = await windows.add(one_off(datetime(2026, 12, 6, 10, 0, tzinfo=paris), NOW + 3 * H,
                                      "region=north", f"tag={HOSTILE}", note=HOSTILE))
    assert added.id > 0
    again = await windows.get(added.id)
    assert again == added
    assert again.starts_at == NOW + H and again.starts_at.utcoffset() == timedelta(0)  # stored as UTC
    assert again.ends_at == NOW + 3 * H and again.created_at == NOW
    assert [(m.key, m.value) for m in again.matchers] == [("region", "north"), ("tag", HOSTILE)]
    assert again.note == HOSTILE and again.created_by == "alice" and again.removed_at is None
    async with windows.db.engine.connect() as conn:
        stored = (await conn.execute(select(maintenance_windows_table.c.matchers))).scalar_one()
    assert stored == ["region=north", f"tag={HOSTILE}"]  # a JSON list of "key=value"


async def test_a_recurring_window_round_trips_and_evaluates_in_its_zone(windows: MaintenanceWindows) -> None:
    added = await windows.add(Window(0, (parse_matcher("tag=backup"),), cron="0 2 * * *",
                                     duration_s=7200.0, tz="Europe/Paris", note="nightly",
                                     created_by="bob", created_at=NOW))
    again = await windows.get(added.id)
    assert again is not None
    assert (again.cron, again.duration_s, again.tz) == ("0 2 * * *", 7200.0, "Europe/Paris")
    assert again.starts_at is None and again.ends_at is None
    assert active(again, datetime(2027, 3, 29, 0, 30, tzinfo=UTC))  # 02:30 CEST
    assert not active(again, datetime(2027, 3, 29, 2, 30, tzinfo=UTC))


async def test_in_force_leaves_out_what_is_over_or_removed(windows: MaintenanceWindows) -> None:
    past = await windows.add(one_off(NOW - 3 * H, NOW - H))
    current = await windows.add(one_off(NOW - H, NOW + H))
    future = await windows.add(one_off(NOW + H, NOW + 2 * H))
    recurring = await windows.add(Window(0, (parse_matcher("type=atm"),), cron="0 3 * * 0",
                                         duration_s=3600.0, tz="UTC", note="weekly", created_by="c",
                                         created_at=NOW))
    gone = await windows.add(one_off(NOW - H, NOW + H))
    removed = await windows.remove(gone.id, NOW)
    assert removed is not None and removed.removed_at == NOW
    assert [w.id for w in await windows.in_force(NOW)] == [current.id, future.id, recurring.id]
    assert [w.id for w in await windows.all()] == [past.id, current.id, future.id, recurring.id, gone.id]
    assert (await windows.get(gone.id)).removed_at == NOW  # type: ignore[union-attr]
    assert await windows.remove(gone.id, NOW + H) is None  # already removed: unchanged
    assert (await windows.get(gone.id)).removed_at == NOW  # type: ignore[union-attr]
    assert await windows.remove(9999, NOW) is None


async def test_windows_from_the_database_silence_the_devices_they_match(windows: MaintenanceWindows) -> None:
    await windows.add(one_off(NOW - H, NOW + H, "branch=north-b002", "type=atm"))
    quiet = WindowSuppressions(await windows.in_force(NOW))
    atm = Device("north-b002-atm1", "127.0.0.1", "north-b002", "north", "atm")
    rtr = Device("north-b002-rtr", "127.0.0.2", "north-b002", "north", "router")
    assert quiet.silenced(atm, NOW) and not quiet.silenced(rtr, NOW)
    assert not quiet.silenced(atm, NOW + H)


async def test_a_leap_day_window_is_stored_and_found(windows: MaintenanceWindows) -> None:
    leap = await windows.add(Window(0, (parse_matcher("device=a"),), cron="0 0 29 2 *", duration_s=3600.0,
                                    tz="UTC", note="n", created_by="a", created_at=NOW))
    assert [w.id for w in await windows.in_force(NOW)] == [leap.id]
    assert active(leap, datetime(2028, 2, 29, 0, 30, tzinfo=UTC))
    assert not active(leap, datetime(2027, 3, 1, 0, 30, tzinfo=UTC))


async def test_a_row_that_is_not_a_window_is_left_out_not_fatal(windows: MaintenanceWindows,
                                                                 caplog: pytest.LogCaptureFixture) -> None:
    good = await windows.add(one_off(NOW - H, NOW + H))
    async with windows.db.writing() as conn:  # edited by hand: a bad cron, an unknown zone, a bad key
        for cron, tz, matchers in (("0 25 * * *", "UTC", ["device=a"]),
                                   ("0 2 * * *", "Mars/Base", ["device=a"]),
                                   ("0 2 * * *", "UTC", ["colour=\x1b[31mred"])):
            await conn.execute(maintenance_windows_table.insert().values(
                matchers=matchers, cron=cron, duration_s=60.0, tz=tz, note="n", created_by="x",
                created_at=NOW))
    assert [w.id for w in await windows.in_force(NOW)] == [good.id]
    assert [w.id for w in await windows.all()] == [good.id]
    left_out = [r.getMessage() for r in caplog.records if "left out" in r.getMessage()]
    assert len(left_out) == 6 and all("\x1b" not in m for m in left_out)
