"""Which maintenance time covered each device of a report (``--exclude-maintenance``; the figures
are store/report.py's): every window's time over the period is computed once
(:func:`poller.notify.occurrences.in_force`), then per device only its matchers are checked, and
devices matched by the same windows share one :class:`Coverage`.

A device is matched on what the history records of it: its name, branch, region, type and tags
(revision 0012; a device stored before has none until a poller starts with its inventory).
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable, Sequence
from datetime import datetime
from itertools import accumulate
from operator import sub
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the dashboard imports the report before its first frame; croniter can wait
    from poller.notify.occurrences import Span
    from poller.notify.windows import Window


class Coverage:
    """Sorted, merged spans (POSIX seconds) with running sums: the seconds covered within any
    ``[lo, hi)`` in O(log n)."""

    def __init__(self, spans: Sequence[Span] = ()) -> None:
        self.starts: list[float] = [s for s, _ in spans]
        self.ends: list[float] = [e for _, e in spans]
        self._before: list[float] = [0.0, *accumulate(map(sub, self.ends, self.starts))]  # before span i

    def _upto(self, at: float) -> float:
        i = bisect_right(self.starts, at) - 1
        if i < 0:
            return 0.0
        return self._before[i] + min(at, self.ends[i]) - self.starts[i]

    def seconds(self, lo: datetime, hi: datetime) -> float:
        """Seconds of ``[lo, hi)`` covered (0 when ``hi`` is not after ``lo``)."""
        if not self.starts or hi <= lo:
            return 0.0
        return self._upto(hi.timestamp()) - self._upto(lo.timestamp())


NO_COVERAGE = Coverage()


class MaintenanceCover:
    """The coverage of each device by ``windows`` over ``[start, end)``."""

    def __init__(self, windows: Iterable[Window], start: datetime, end: datetime) -> None:
        windows = list(windows)
        timed: list[tuple[Window, list[Span]]] = []
        if windows:
            from poller.notify.occurrences import in_force

            timed = [(w, spans) for w in windows if (spans := in_force(w, start, end))]
        self._windows = timed
        # Windows by one of their key=value matchers, so that a device is checked only against
        # the windows that can match it (100,000 devices x 50 windows: 5 million checks else).
        self._by_label: dict[tuple[str, str], list[int]] = {}
        self._anyone: list[int] = []  # no matcher, or none that is key=value (not made by wardtui)
        # key=value matchers (all that wardtui makes) as pairs compared directly: the generic
        # Matcher.matches is 4x slower, and runs for every device.
        self._pairs = [tuple((m.key, m.value) for m in w.matchers) if all(m.op == "=" for m in w.matchers)
                       else None for w, _ in self._windows]
        for i, (w, _) in enumerate(self._windows):
            first = next((m for m in w.matchers if m.op == "="), None)
            if first is None:
                self._anyone.append(i)
            else:
                self._by_label.setdefault((first.key, first.value), []).append(i)
        self._shared: dict[tuple[int, ...], Coverage] = {}

    def of(self, name: str, branch: str, region: str, type: str, tags: tuple[str, ...] = ()) -> Coverage:
        """The coverage of the device so named, grouped and tagged (NO_COVERAGE if no window
        matches)."""
        if not self._windows:
            return NO_COVERAGE
        labels = {"device": name, "branch": branch, "region": region, "type": type}
        by_label = self._by_label
        candidates = {*self._anyone, *(i for label in labels.items() for i in by_label.get(label, ())),
                      *(i for tag in tags for i in by_label.get(("tag", tag), ()))}
        key = tuple(sorted(i for i in candidates if self._matches(i, labels, tags)))
        if not key:
            return NO_COVERAGE
        if key not in self._shared:
            from poller.notify.occurrences import union

            self._shared[key] = Coverage(union(self._windows[i][1] for i in key))
        return self._shared[key]

    def _matches(self, index: int, labels: dict[str, str], tags: tuple[str, ...]) -> bool:
        pairs = self._pairs[index]
        if pairs is None:
            return all(m.matches(labels, tags) for m in self._windows[index][0].matchers)
        return all(v in tags if k == "tag" else labels.get(k) == v for k, v in pairs)
