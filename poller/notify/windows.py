"""Maintenance windows (issue 15 item 4) as pure logic: when a window is active, which devices it
covers, when the next one starts or ends, and :class:`WindowSuppressions`, the grouper's
:class:`~poller.notify.suppressions.Suppressions` over a set of windows. No database here: the
store keeps the windows (store/maintenance_windows.py) and hands them over as :class:`Window`.

A window is one-off (``starts_at`` included to ``ends_at`` excluded) or recurring: a 5-field cron
expression read in the window's IANA time zone, each occurrence lasting ``duration_s`` seconds
of real (elapsed) time. Local time is what an operator means by "every day at 02:00", so the
cron expression is evaluated on the local wall clock and each start is then placed on the UTC
time line; daylight-saving changes are resolved the way cron does it:

- a start that falls in the hour skipped when clocks go forward (02:30 in Europe/Paris on the
  last Sunday of March) begins when the gap ends (03:00 local, the first instant after it), and
  still lasts its full duration;
- a start that falls in the hour repeated when clocks go back (02:30 on the last Sunday of
  October) happens once, at its first occurrence (summer time).

Matchers are ``key=value`` only, over ``device``, ``branch``, ``region``, ``type`` and ``tag``
(``tag``: any of the device's tags); every matcher of a window must match (AND).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import islice
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from poller.inventory import Device
from poller.notify.model import Matcher
from poller.notify.suppressions import device_labels

MATCH_KEYS = ("device", "branch", "region", "type", "tag")

# How far back a recurring window's occurrences are looked for: a start more than a duration
# ago cannot cover now, and a cron expression that fires less often than yearly
# (``0 0 29 2 *``: leap days) still has a start within a few years.
_SEARCH_STEPS = 10_000


def _croniter() -> Any:
    """croniter's class, imported when a cron expression is first read (~40-90 ms: a viewer
    that shows no recurring window never pays it)."""
    from croniter import croniter

    return croniter


def parse_matcher(text: str) -> Matcher:
    """``key=value`` as a :class:`Matcher`; ValueError naming what is wrong."""
    key, sep, value = text.partition("=")
    key = key.strip()
    if not sep:
        raise ValueError(f"{text!r}: use KEY=VALUE, KEY one of {', '.join(MATCH_KEYS)}")
    if key not in MATCH_KEYS:
        raise ValueError(f"unknown match key {key!r}: use one of {', '.join(MATCH_KEYS)}")
    if value == "":
        raise ValueError(f"{text!r}: the value is empty")
    return Matcher(key, "=", value)


def matcher_text(matcher: Matcher) -> str:
    """The ``key=value`` a matcher was parsed from (what the store keeps)."""
    return f"{matcher.key}{matcher.op}{matcher.value}"


def zone(name: str) -> ZoneInfo:
    """The IANA time zone ``name`` (``Europe/Paris``, ``UTC``); ValueError if there is none."""
    try:
        if not name or name.startswith(("/", ".")) or ".." in name:
            raise ValueError(name)
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise ValueError(f"unknown time zone {name!r}: use an IANA name such as Europe/Paris "
                         "or UTC") from None


def check_cron(expression: str) -> str:
    """``expression`` if it is a valid 5-field cron expression (minute hour day month weekday),
    else ValueError. Seconds fields and ``@reboot`` have no meaning for a window."""
    if len(expression.split()) != 5 or not _croniter().is_valid(expression):
        raise ValueError(f"bad cron expression {expression!r}: use 5 fields, minute hour "
                         "day-of-month month day-of-week (\"0 2 * * *\": every day at 02:00)")
    try:  # valid but never due (``0 0 31 2 *``: 31 February) is a mistake too
        _croniter()(expression, datetime(2000, 1, 1)).get_next(datetime)
    except ValueError:
        raise ValueError(f"bad cron expression {expression!r}: it never happens") from None
    return expression


@dataclass(frozen=True, slots=True)
class Window:
    """One maintenance window: one-off (``starts_at``, ``ends_at``) or recurring (``cron``,
    ``duration_s``, ``tz``). Times are aware UTC."""

    id: int
    matchers: tuple[Matcher, ...]
    starts_at: datetime | None = None
    ends_at: datetime | None = None
    cron: str | None = None
    duration_s: float | None = None
    tz: str | None = None
    note: str = ""
    created_by: str = ""
    created_at: datetime | None = None
    removed_at: datetime | None = None

    def __post_init__(self) -> None:
        for at in (self.starts_at, self.ends_at, self.created_at, self.removed_at):
            if at is not None and at.utcoffset() is None:
                raise ValueError("maintenance window times must be timezone-aware")
        if self.recurring:
            if self.duration_s is None or self.duration_s <= 0 or self.tz is None:
                raise ValueError("a recurring window needs a duration over 0 and a time zone")
            check_cron(self.cron or "")
            zone(self.tz)
        elif self.starts_at is None or self.ends_at is None or self.ends_at <= self.starts_at:
            raise ValueError("a one-off window needs a start before its end")

    @property
    def recurring(self) -> bool:
        return self.cron is not None

    @property
    def duration(self) -> timedelta:
        if self.recurring:
            return timedelta(seconds=self.duration_s or 0)
        assert self.starts_at is not None and self.ends_at is not None
        return self.ends_at - self.starts_at


def local_start(naive: datetime, tz: ZoneInfo) -> datetime:
    """The UTC instant a local wall-clock start ``naive`` stands for: the first of two in the
    repeated hour (fold 0), the end of the gap for one in the skipped hour."""
    first = naive.replace(tzinfo=tz, fold=0).astimezone(UTC)
    if first.astimezone(tz).replace(tzinfo=None) == naive:
        return first
    # In a gap, fold 0 reads it with the offset before the change (later in UTC) and fold 1 with
    # the one after (earlier); the change itself is between them: find it to the second.
    low = int(naive.replace(tzinfo=tz, fold=1).timestamp())
    high = int(first.timestamp())
    after = first.astimezone(tz).utcoffset()
    while high - low > 1:
        mid = (low + high) // 2
        if datetime.fromtimestamp(mid, tz).utcoffset() == after:
            high = mid
        else:
            low = mid
    return datetime.fromtimestamp(high, UTC)


def _starts_before(window: Window, at: datetime) -> Iterator[datetime]:
    """The window's starts at or before ``at``, latest first (UTC)."""
    tz = zone(window.tz or "UTC")
    # Local time can run behind: look from a few hours later, and keep only starts <= at.
    cursor = _croniter()(window.cron, at.astimezone(tz).replace(tzinfo=None) + timedelta(hours=3))
    for _ in range(_SEARCH_STEPS):
        try:
            start = local_start(cursor.get_prev(datetime), tz)
        except ValueError:  # no start that far back (croniter's own search limit)
            return
        if start <= at:
            yield start


def _starts_after(window: Window, at: datetime) -> Iterator[datetime]:
    """The window's starts after ``at``, earliest first (UTC)."""
    tz = zone(window.tz or "UTC")
    cursor = _croniter()(window.cron, at.astimezone(tz).replace(tzinfo=None) - timedelta(hours=3))
    for _ in range(_SEARCH_STEPS):
        try:
            start = local_start(cursor.get_next(datetime), tz)
        except ValueError:
            return
        if start > at:
            yield start


def occurrence(window: Window, at: datetime) -> tuple[datetime, datetime] | None:
    """The (start, end) of the window's occurrence that covers ``at``, or None. With occurrences
    of one duration, the latest start is the one whose end is latest: it alone decides."""
    if not window.recurring:
        assert window.starts_at is not None and window.ends_at is not None
        return (window.starts_at, window.ends_at) if window.starts_at <= at < window.ends_at else None
    start = next(_starts_before(window, at), None)
    if start is None or at >= start + window.duration:
        return None
    return start, start + window.duration


def active(window: Window, at: datetime) -> bool:
    """Whether ``window`` is in force at ``at`` (a removed window never is)."""
    if window.removed_at is not None and window.removed_at <= at:
        return False
    return occurrence(window, at) is not None


def over(window: Window, at: datetime) -> bool:
    """Whether the window will never be active again after ``at`` (a recurring one: removed)."""
    if window.removed_at is not None and window.removed_at <= at:
        return True
    return not window.recurring and window.ends_at is not None and window.ends_at <= at


def _change(window: Window, at: datetime) -> datetime | None:
    """When ``window`` next becomes active or stops being so, after ``at``."""
    if over(window, at):
        return None
    if not window.recurring:
        assert window.starts_at is not None and window.ends_at is not None
        return window.starts_at if at < window.starts_at else window.ends_at
    current = occurrence(window, at)
    if current is None:
        return next(_starts_after(window, at), None)
    end = current[1]
    # Occurrences that overlap extend the window; one that never stops (hourly for 90 min) is
    # given an end a thousand occurrences on, not searched for ever.
    for start in islice(_starts_after(window, at), 1000):
        if start >= end:
            break
        end = start + window.duration
    return end


def next_change(windows: Iterable[Window], at: datetime) -> datetime | None:
    """The first instant after ``at`` at which one of ``windows`` starts or ends (a removal
    recorded for later counts), or None when none ever will."""
    changes = [c for w in windows if (c := _change(w, at)) is not None]
    changes += [w.removed_at for w in windows if w.removed_at is not None and w.removed_at > at]
    return min(changes, default=None)


def matches(window: Window, device: Device) -> bool:
    """Whether every matcher of ``window`` matches ``device`` (its time aside)."""
    labels = device_labels(device)
    return all(m.matches(labels, device.tags) for m in window.matchers)


def covering(windows: Iterable[Window], device: Device, at: datetime) -> list[Window]:
    """The windows that silence ``device`` at ``at``."""
    return [w for w in windows if matches(w, device) and active(w, at)]


class ActiveCache:
    """Whether each of ``windows`` is active at a time, each answer kept with the span over which
    it holds (from the instant asked to the window's next change): asking again inside that span
    is a comparison, not a cron evaluation (~0.2 ms). The notifier asks for every new problem,
    the screens for every row they paint."""

    def __init__(self, windows: Iterable[Window]) -> None:
        self.windows: tuple[Window, ...] = tuple(windows)
        self._spans: list[tuple[datetime, datetime | None, bool] | None] = [None] * len(self.windows)

    def active(self, index: int, at: datetime) -> bool:
        """Whether ``windows[index]`` is active at ``at``."""
        span = self._spans[index]
        if span is not None and span[0] <= at and (span[1] is None or at < span[1]):
            return span[2]
        window = self.windows[index]
        answer = active(window, at)
        self._spans[index] = (at, next_change([window], at), answer)
        return answer


class WindowSuppressions:
    """The grouper's :class:`~poller.notify.suppressions.Suppressions` from maintenance windows:
    a device is silenced while an active window matches it. Acknowledgements are another item
    of issue 15 (5): :meth:`acked` answers None, :meth:`ended` has nothing to end.

    :meth:`replace` swaps the set (the service reloads it from the database); it says whether
    anything changed, so that the notifier is told only then.

    Whether a recurring window is active costs a cron evaluation (~0.2 ms), and the grouper asks
    for every new problem: a storm of 10,000 would hold the engine's loop for seconds. So the
    answers are kept (:class:`ActiveCache`)."""

    def __init__(self, windows: Iterable[Window] = ()) -> None:
        self.windows: tuple[Window, ...] = tuple(windows)
        self._cache = ActiveCache(self.windows)

    def replace(self, windows: Iterable[Window]) -> bool:
        fresh = tuple(windows)
        if fresh == self.windows:
            return False
        self.windows = fresh
        self._cache = ActiveCache(fresh)
        return True

    def _active(self, index: int, at: datetime) -> bool:
        return self._cache.active(index, at)

    def silenced(self, device: Device, at: datetime) -> bool:
        return any(matches(w, device) and self._active(i, at) for i, w in enumerate(self.windows))

    def acked(self, device: Device) -> tuple[str, str] | None:
        return None

    def ended(self, device: Device, at: datetime) -> None:
        return None
