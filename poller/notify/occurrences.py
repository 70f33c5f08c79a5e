"""When a maintenance window was in force over a period, as merged spans of UTC time (for reports:
store/report.py leaves maintenance time out of availability with ``--exclude-maintenance``).

:func:`in_force` gives the window's time within ``[start, end)``, cut to the part of its life
when it existed (from ``created_at``, up to ``removed_at``): a window declared after the fact
does not excuse an outage, and a removed one counts up to its removal.

A recurring window's occurrences follow :func:`poller.notify.windows.local_start` exactly (the
notifier's rule, daylight-saving changes included), but are not asked of croniter one by one:
``* * * * *`` over a year is 525,600 starts, ~8 s that way. Instead croniter gives only the
matching local days (the expression's day, month and weekday fields), and each day's starts are
its hours x minutes, merged once into runs (starts no further apart than the duration overlap
or touch: one span). On a day without a clock change every run is that day's UTC midnight plus
fixed offsets; only a day with a change converts each start with ``local_start``. Touching or
overlapping occurrences are merged, so a window is never counted twice. The result is as large
as the number of separate spans (every minute for 30 s: one per minute), and a window that
would give more than :data:`MAX_SPANS` over the period is refused (ValueError).
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from croniter import croniter

from poller.notify.windows import Window, local_start, zone

Span = tuple[float, float]  # [start, end) in POSIX seconds, UTC
MAX_SPANS = 1_000_000
_DAY = timedelta(days=1)


def in_force(window: Window, start: datetime, end: datetime) -> list[Span]:
    """The window's time within ``[start, end)`` while it existed, merged and sorted."""
    if window.created_at is not None:
        start = max(start, window.created_at)
    if window.removed_at is not None:
        end = min(end, window.removed_at)
    if end <= start:
        return []
    if not window.recurring:
        assert window.starts_at is not None and window.ends_at is not None
        lo, hi = max(start, window.starts_at), min(end, window.ends_at)
        return [(lo.timestamp(), hi.timestamp())] if lo < hi else []
    return clip(merge(_occurrences(window, start, end)), start.timestamp(), end.timestamp())


def _occurrences(window: Window, start: datetime, end: datetime) -> Iterator[Span]:
    """Every occurrence of a recurring window that can reach into ``[start, end)``, by start."""
    tz = zone(window.tz or "UTC")
    duration = window.duration.total_seconds()
    minutes, hours = croniter(window.cron).expanded[:2]
    offsets = sorted(60 * (60 * h + m) for h in _field(hours, 24) for m in _field(minutes, 60))
    runs = _runs(offsets, duration)
    start_s, end_s = start.timestamp(), end.timestamp()
    for day in _days(window, (start - window.duration).astimezone(tz), end.astimezone(tz)):
        midnight = local_start(day, tz).timestamp()
        if _steady(day, tz, midnight):
            for first, last in runs:
                if midnight + first >= end_s:
                    return
                if midnight + last + duration > start_s:
                    yield midnight + first, midnight + last + duration
        else:  # a clock change that day: each start as the notifier reads it
            for offset in offsets:
                at = local_start(day + timedelta(seconds=offset), tz).timestamp()
                if at >= end_s:
                    return
                if at + duration > start_s:
                    yield at, at + duration


def _field(values: list[int | str], size: int) -> Iterable[int]:
    return range(size) if values == ["*"] else (int(v) for v in values)


def _runs(offsets: list[int], duration: float) -> list[tuple[int, int]]:
    """A day's starts (seconds after local midnight) as runs (first, last start) whose
    occurrences overlap or touch."""
    runs: list[tuple[int, int]] = []
    for offset in offsets:
        if runs and offset - runs[-1][1] <= duration:
            runs[-1] = (runs[-1][0], offset)
        else:
            runs.append((offset, offset))
    return runs


def _days(window: Window, first: datetime, last: datetime) -> Iterator[datetime]:
    """The local days (naive midnights) from ``first``'s day to ``last``'s on which the window's
    expression can fire: croniter over its day, month and weekday fields alone (the same
    day-of-month OR day-of-week rule as the whole expression)."""
    fields = (window.cron or "").split()
    day_expr = " ".join(["0", "0", *fields[2:]])
    begin = first.replace(tzinfo=None, hour=0, minute=0, second=0, microsecond=0)
    stop = last.replace(tzinfo=None)
    cursor = croniter(day_expr, begin - timedelta(seconds=1))
    while True:
        try:
            day: datetime = cursor.get_next(datetime)
        except ValueError:  # no further day within croniter's search limit
            return
        if day > stop:
            return
        yield day


def _steady(day: datetime, tz: ZoneInfo, midnight: float) -> bool:
    """Whether the local day starting at UTC ``midnight`` has no clock change: 24 h long, one
    offset at its start and its end."""
    following = local_start(day + _DAY, tz).timestamp()
    if following - midnight != 86400:
        return False
    offset = datetime.fromtimestamp(midnight, tz).utcoffset()
    return offset == datetime.fromtimestamp(following - 1, tz).utcoffset()


def merge(spans: Iterable[Span]) -> list[Span]:
    """Spans sorted by start, merged where they overlap or touch (ValueError past MAX_SPANS)."""
    merged: list[Span] = []
    for lo, hi in spans:
        if merged and lo <= merged[-1][1]:
            if hi > merged[-1][1]:
                merged[-1] = (merged[-1][0], hi)
            continue
        if len(merged) >= MAX_SPANS:
            raise ValueError(f"more than {MAX_SPANS:,} separate maintenance spans in the period: "
                             "report a shorter period")
        merged.append((lo, hi))
    return merged


def clip(spans: list[Span], lo: float, hi: float) -> list[Span]:
    """Sorted, merged ``spans`` cut to ``[lo, hi)``."""
    return [(max(a, lo), min(b, hi)) for a, b in spans if b > lo and a < hi]


def union(lists: Iterable[list[Span]]) -> list[Span]:
    """Several sorted, merged lists of spans as one."""
    lists = [spans for spans in lists if spans]
    if len(lists) == 1:
        return lists[0]
    return merge(heapq.merge(*lists))


def utc(at: float) -> datetime:
    return datetime.fromtimestamp(at, UTC)
