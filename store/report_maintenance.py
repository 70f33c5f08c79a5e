"""Which maintenance time covered each device of a report (``--exclude-maintenance``; the figures
are store/report.py's): every window's time over the period is computed once
(:func:`poller.notify.occurrences.in_force`), then per device only its matchers are checked, and
devices matched by the same windows share one :class:`Coverage`.

A device is matched on what the history records of it: its name, branch, region and type. Tags
are not recorded there, so a window with a ``tag=`` matcher covers no device in a report; such
windows (those with time in the period) are named in ``not_applied``, and the report says so.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable, Sequence
from datetime import datetime
from itertools import accumulate
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the dashboard imports the report before its first frame; croniter can wait
    from poller.notify.occurrences import Span
    from poller.notify.windows import Window


class Coverage:
    """Sorted, merged spans (POSIX seconds) with running sums: the seconds covered within any
    ``[lo, hi)`` in O(log n)."""

    def __init__(self, spans: Sequence[Span] = ()) -> None:
        self.starts = [s for s, _ in spans]
        self.ends = [e for _, e in spans]
        self._before = [0.0, *accumulate(e - s for s, e in spans)]  # covered before span i

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
        self.not_applied = tuple(w.id for w, _ in timed if any(m.key == "tag" for m in w.matchers))
        self._windows = [(w, spans) for w, spans in timed if w.id not in self.not_applied]
        self._shared: dict[tuple[int, ...], Coverage] = {}

    def of(self, name: str, branch: str, region: str, type: str) -> Coverage:
        """The coverage of the device so named and grouped (NO_COVERAGE if no window matches)."""
        if not self._windows:
            return NO_COVERAGE
        labels = {"device": name, "branch": branch, "region": region, "type": type}
        key = tuple(i for i, (w, _) in enumerate(self._windows)
                    if all(m.matches(labels, ()) for m in w.matchers))
        if not key:
            return NO_COVERAGE
        if key not in self._shared:
            from poller.notify.occurrences import union

            self._shared[key] = Coverage(union(self._windows[i][1] for i in key))
        return self._shared[key]
