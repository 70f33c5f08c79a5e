"""Which devices the device table shows, and in what order: kept incrementally, headless.

The shown rows sit in a sorted list of ``(sort key, name)`` that a changed device leaves and
re-enters by bisection; a full sort happens only when the operator changes the sort column or
the filter, or when many keys moved in one tick (a sort of nearly sorted data is then cheaper
than many inserts). The problems among them are kept in order the same way, for the problems
view. The filter matches each row's text as of the device's last change.

No widget and no Textual (rich only through the state labels): ``DeviceTable`` paints what this
decides, and a test can drive it without an app.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections.abc import Iterable, Mapping
from datetime import datetime

from poller.events import State
from poller.state import TrackerView
from wardtui.widgets.device_rows import (
    SORTS,
    SortKey,
    StaticRanks,
    problem_key,
    row_texts,
    sort_key,
    sort_keys,
)

VIEWS = ("all", "problems")  # what the table can show; the grouped view is a widget of its own
# Above this many moved rows in one tick, one sort beats bisecting each of them.
BISECT_LIMIT = 64


class RowOrder:
    """The shown devices of ``trackers`` (those matching the filter terms) in display order."""

    def __init__(self, trackers: Mapping[str, TrackerView], ranks: StaticRanks) -> None:
        self._trackers = trackers
        self._ranks = ranks
        # Row text as of each device's last change, kept from the first filter on: a filter
        # then only matches (~40 ms at 20,000 devices) instead of re-rendering every row.
        self._texts: dict[str, tuple[str, ...]] | None = None
        self.keys: dict[str, SortKey] = {}  # sort key of every shown row (doubles as "is shown")
        self._sorted: list[tuple[SortKey, str]] = []  # shown rows by the sort column
        self._down: set[str] = set()  # their "down for" text advances without any event
        self._terms: list[str] = []
        self.sort_index = 0
        self.view = "all"
        # Problems among the shown rows, kept in order as they change: the problems view puts
        # them on top without re-sorting 20,000 rows on every tick.
        self._problems: dict[str, SortKey] = {}
        self._problem_order: list[tuple[SortKey, str]] = []
        self._order: list[str] | None = []  # display order; None: to be rebuilt from the above

    @property
    def sort_column(self) -> str:
        return SORTS[self.sort_index][0]

    @property
    def problem_count(self) -> int:
        return len(self._problems)

    def problem_names(self) -> list[str]:
        """Shown problem devices, in the problems view's order."""
        return [name for _, name in self._problem_order]

    def set_filter(self, text: str) -> None:
        """Match rows whose text contains every whitespace-separated term (call rebuild after)."""
        self._terms = text.lower().split()

    def matches(self, name: str) -> bool:
        """Whether ``name`` passes the filter (for views that show devices elsewhere)."""
        if not self._terms:
            return name in self._trackers
        texts = self._texts.get(name) if self._texts is not None else None
        return texts is not None and self._matches(texts)

    def display_order(self) -> list[str]:
        order = self._order
        if order is None:
            if self.view == "all":
                order = [name for _, name in self._sorted]
            else:
                problems = self._problems
                order = [name for _, name in self._problem_order]
                order += [name for _, name in self._sorted if name not in problems]
            self._order = order
        return order

    def invalidate(self) -> None:
        """The display order is rebuilt when next asked for (the view changed, rows moved)."""
        self._order = None

    def rebuild(self, now: datetime) -> None:
        """Refill from scratch: on a filter change (a user's action), never on a live tick."""
        self.keys.clear()
        self._problems.clear()
        self._problem_order.clear()
        trackers: Mapping[str, TrackerView] = self._trackers
        if self._terms:
            texts = self._texts
            if texts is None:  # the first filter of the run
                for name, tracker in trackers.items():
                    self._remember(name, tracker, now)
                texts = self._texts
                assert texts is not None
            else:  # "down for" moved without an event (and some may be up by now)
                for name in list(self._down):
                    self._remember(name, trackers[name], now)
            trackers = {name: tracker for name, tracker in trackers.items() if self._matches(texts[name])}
        self.keys = sort_keys(self.sort_column, trackers, self._ranks)
        ranks = self._ranks.name
        problems = self._problems
        for name, tracker in trackers.items():
            key = problem_key(tracker, ranks[name])
            if key is not None:
                problems[name] = key
        # One sort: inserting each by bisection was quadratic (20,000 problems of 100,000 rows
        # moved the list 20,000 times).
        self._problem_order = sorted(zip(problems.values(), problems.keys(), strict=True))
        self._resort()
        self._order = None

    def prepare_filter(self, now: datetime) -> None:
        """Render every row's text once, so that the first filter only matches."""
        if self._texts is None:
            for name, tracker in self._trackers.items():
                self._remember(name, tracker, now)

    def cycle_sort(self) -> None:
        """Move to the next sort column and re-sort the shown rows."""
        self.sort_index = (self.sort_index + 1) % len(SORTS)
        trackers = self._trackers
        everyone = len(self.keys) == len(trackers)
        shown = trackers if everyone else {name: trackers[name] for name in self.keys}
        self.keys = sort_keys(self.sort_column, shown, self._ranks)
        self._resort()
        self._order = None

    def update(self, names: Iterable[str], now: datetime) -> tuple[set[str], bool, bool]:
        """Bring the rows of ``names`` up to date; return the names looked at (with the down
        ones while a filter is on), whether a row's key moved, and whether the problems did."""
        moved: list[tuple[str, SortKey | None]] = []  # (name, old key) of rows whose key moved
        problems_moved = False
        names = set(names)
        if self._texts is None and len(names) >= len(self._trackers) and names.issuperset(self._trackers):
            # Every row (the engine started, a snapshot named them all) and no row text kept:
            # a rebuild, keys in one pass and one sort, costs a third of this row by row.
            self.rebuild(now)
            return names, True, True
        if self._terms:
            names |= self._down  # "down for" is matched by the filter too
        for name in names:
            tracker = self._trackers.get(name)
            if tracker is None:
                continue
            texts = self._remember(name, tracker, now) if self._texts is not None else ()
            if self._terms and not self._matches(texts):
                if name in self.keys:
                    moved.append((name, self.keys.pop(name)))
                    problems_moved |= self._track_problem(name, None)
                continue
            old = self.keys.get(name)
            key = sort_key(self.sort_column, tracker, self._ranks)
            if key != old:
                self.keys[name] = key
                moved.append((name, old))
            problems_moved |= self._track_problem(name, problem_key(tracker, self._ranks.name[name]))
        if moved:
            self._reorder(moved)
        if moved or (problems_moved and self.view == "problems"):
            self._order = None
        return names, bool(moved), problems_moved

    def _resort(self) -> None:
        keys = self.keys
        self._sorted = sorted(zip(keys.values(), keys.keys(), strict=True))

    def _reorder(self, moved: list[tuple[str, SortKey | None]]) -> None:
        """Move the rows whose key changed (None: was not shown) within the sorted list."""
        if len(moved) > BISECT_LIMIT:
            self._resort()
            return
        rows = self._sorted
        for name, old in moved:
            if old is not None:
                del rows[bisect_left(rows, (old, name))]
            key = self.keys.get(name)
            if key is not None:
                insort(rows, (key, name))

    def _remember(self, name: str, tracker: TrackerView, now: datetime) -> tuple[str, ...]:
        texts = row_texts(tracker, now)
        if self._texts is None:
            self._texts = {}
        self._texts[name] = texts
        if tracker.state is State.DOWN:
            self._down.add(name)
        else:
            self._down.discard(name)
        return texts

    def _matches(self, texts: tuple[str, ...]) -> bool:
        if not self._terms:
            return True
        haystack = "\t".join(texts).lower()
        return all(term in haystack for term in self._terms)

    def _track_problem(self, name: str, key: SortKey | None) -> bool:
        """Keep the ordered set of problems in step with one row (bisect, not a sort);
        return whether it moved."""
        old = self._problems.get(name)
        if old == key:
            return False
        if old is not None:
            order = self._problem_order
            del order[bisect_left(order, (old, name))]
            del self._problems[name]
        if key is not None:
            self._problems[name] = key
            insort(self._problem_order, (key, name))
        return True
