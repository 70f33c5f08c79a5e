"""A maintenance window's time over a period (poller/notify/occurrences.py) against the plain
way, croniter start by start read with the notifier's ``local_start``; merging, clipping, the
window's life (created, removed), the cap, and the report's Coverage sums."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest
from croniter import croniter

from poller.notify import occurrences
from poller.notify.occurrences import Span, clip, in_force, merge, union
from poller.notify.windows import Window, active, local_start, zone
from store.report_maintenance import Coverage


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


def recurring(cron: str, seconds: float, tz: str, **kw: datetime) -> Window:
    return Window(1, (), cron=cron, duration_s=seconds, tz=tz, **kw)  # type: ignore[arg-type]


def one_by_one(window: Window, start: datetime, end: datetime) -> list[Span]:
    tz = zone(window.tz or "UTC")
    cursor = croniter(window.cron, (start - window.duration - timedelta(days=2)).astimezone(tz)
                      .replace(tzinfo=None))
    found = []
    while (at := local_start(cursor.get_next(datetime), tz)) < end:
        found.append((at.timestamp(), (at + window.duration).timestamp()))
    return clip(merge(found), start.timestamp(), end.timestamp())


CASES = [("0 2 * * *", 7200, "Europe/Paris"), ("30 2 * * *", 3600, "Europe/Paris"),
         ("*/7 1-3 * * *", 300, "Europe/Paris"), ("0 1 * * 0", 3 * 3600, "America/New_York"),
         ("15 0 1,15 * 5", 600, "America/Santiago"), ("* * * * *", 30, "Europe/Paris"),
         ("0 0 L * *", 86400, "UTC"), ("0 3 * * 0#1", 5400, "Europe/London"),
         ("45 23 * * *", 7200, "Australia/Lord_Howe"), ("*/5 * * * *", 300, "Europe/Paris"),
         ("0 */3 * * *", 4 * 3600, "Asia/Tehran"), ("0 22 * * 1-5", 10 * 3600, "America/Sao_Paulo")]
# Periods of 6 days around both changes of 2026 (29 March, 25 October in Europe), from inside
# them, and over a first Sunday (5 April).
STARTS = [utc(2026, 3, 26), utc(2026, 10, 22), utc(2026, 3, 29, 0, 59), utc(2026, 10, 25, 0, 30),
          utc(2026, 4, 2), utc(2026, 11, 1, 3)]


@pytest.mark.parametrize(("cron", "seconds", "tz"), CASES)
def test_same_spans_as_start_by_start_over_clock_changes(cron: str, seconds: float, tz: str) -> None:
    window = recurring(cron, seconds, tz)
    for start in STARTS:
        end = start + timedelta(days=6)
        assert in_force(window, start, end) == one_by_one(window, start, end), start


def test_spans_agree_with_active_minute_by_minute() -> None:
    window = recurring("30 2 * * *", 5400, "Europe/Paris")
    start = utc(2026, 10, 23)
    spans = in_force(window, start, start + timedelta(days=4))
    for minute in range(4 * 1440):
        at = start + timedelta(minutes=minute)
        inside = any(a <= at.timestamp() < b for a, b in spans)
        assert inside == active(window, at), at


def test_a_window_counts_while_it_existed() -> None:
    w = recurring("0 * * * *", 1800, "UTC", created_at=utc(2026, 1, 1, 2, 10),
                  removed_at=utc(2026, 1, 1, 5, 15))
    assert in_force(w, utc(2026, 1, 1), utc(2026, 1, 2)) == [
        (utc(2026, 1, 1, 2, 10).timestamp(), utc(2026, 1, 1, 2, 30).timestamp()),
        *((utc(2026, 1, 1, h).timestamp(), utc(2026, 1, 1, h, 30).timestamp()) for h in (3, 4)),
        (utc(2026, 1, 1, 5).timestamp(), utc(2026, 1, 1, 5, 15).timestamp())]
    once = Window(2, (), starts_at=utc(2026, 1, 1, 1), ends_at=utc(2026, 1, 1, 4),
                  removed_at=utc(2026, 1, 1, 3))
    assert in_force(once, utc(2026, 1, 1, 2), utc(2026, 1, 2)) == [
        (utc(2026, 1, 1, 2).timestamp(), utc(2026, 1, 1, 3).timestamp())]
    assert in_force(once, utc(2026, 1, 1, 3), utc(2026, 1, 2)) == []


def test_overlapping_occurrences_merge_into_one_span() -> None:
    w = recurring("0 * * * *", 5400, "UTC")  # 90 min every hour: never stops
    assert in_force(w, utc(2026, 1, 1), utc(2026, 4, 1)) == [
        (utc(2026, 1, 1).timestamp(), utc(2026, 4, 1).timestamp())]


def test_more_spans_than_the_cap_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(occurrences, "MAX_SPANS", 100)
    w = recurring("* * * * *", 30, "UTC")
    assert len(in_force(w, utc(2026, 1, 1), utc(2026, 1, 1, 1))) == 60
    with pytest.raises(ValueError, match="more than 100 separate maintenance spans"):
        in_force(w, utc(2026, 1, 1), utc(2026, 1, 1, 2))


def test_union_and_coverage_sums_agree_with_counting_second_by_second() -> None:
    rng = random.Random(15)
    lists = [merge(sorted((s, s + rng.randint(1, 300)) for s in (rng.randint(0, 3000) for _ in range(20))))
             for _ in range(3)]
    covered = union(lists)
    cover = Coverage(covered)
    seconds = {t for spans in lists for a, b in spans for t in range(int(a), int(b))}
    base = datetime.fromtimestamp(0, UTC)
    for _ in range(200):
        lo, hi = sorted(rng.randint(-50, 3400) for _ in range(2))
        expected = sum(1 for t in seconds if lo <= t < hi)
        assert cover.seconds(base + timedelta(seconds=lo), base + timedelta(seconds=hi)) == expected
    assert Coverage().seconds(base, base + timedelta(days=1)) == 0
