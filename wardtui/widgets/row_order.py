"""Which devices the device table shows, and in what order: kept incrementally, headless.

Every device sits in a sorted list of ``(sort key, name)``, shown or not; the filter is a set of
the names it matches, and the display order is that list read through it. So a changed device
leaves and re-enters the list by bisection, and when many changed in one tick (a snapshot names
~10,000 of 100,000 rows whose RTT moved) they are taken out in one pass and merged back in
sorted (a merge of two sorted runs, not a sort of the whole). A full sort happens only when the
operator changes the sort column, and for a column that never changes (name, address, branch,
region, type) not even then: its ranks are the order. A filter typed or cleared only matches
text, never sorts; a filter that narrows the last one (typing one more character) only matches
the rows it showed. The problems are kept in order the same way, for the problems view. The
filter matches each row's text as of the device's last change.

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
    STATIC_COLUMNS,
    SortKey,
    StaticRanks,
    problem_key,
    row_texts,
    sort_keys,
)

VIEWS = ("all", "problems")  # what the table can show; the grouped view is a widget of its own
# Up to this many moved rows in one tick, each is bisected out and in; above it, one pass takes
# them all out and a merge puts them back.
BISECT_LIMIT = 64
# The columns of COLUMNS (device_rows.py) that change live, and those that never do: the filter
# keeps the text of the first per change and of the second once per device.
_LIVE = slice(1, 5)
_STATIC = (0, 5, 6, 7, 8)


class RowOrder:
    """The shown devices of ``trackers`` (those matching the filter terms) in display order."""

    def __init__(self, trackers: Mapping[str, TrackerView], ranks: StaticRanks) -> None:
        self._trackers = trackers
        self._ranks = ranks
        # Lower-case text of each row as of the device's last change, kept from the first filter
        # on (tab-separated; a term has no white space, so it never spans two columns): the
        # columns that never change once, the live ones on each change. A filter then only
        # matches instead of re-rendering every row.
        self._static_text: dict[str, str] | None = None
        self._live_text: dict[str, str] = {}
        self.keys: dict[str, SortKey] = {}  # sort key of every device, shown or not
        self._sorted: list[tuple[SortKey, str]] = []  # every device by the sort column
        self._shown: set[str] | None = None  # the devices the filter matches; None: no filter
        self._down: set[str] = set()  # their "down for" text advances without any event
        self._terms: list[str] = []
        self._shown_terms: list[str] = []  # the terms _shown was matched with
        self.sort_index = 0
        self.view = "all"
        # Problems among all devices, kept in order as they change: the problems view puts the
        # shown ones on top without re-sorting 100,000 rows on every tick.
        self._problems: dict[str, SortKey] = {}
        self._problem_order: list[tuple[SortKey, str]] = []
        self._order: list[str] | None = []  # display order; None: to be rebuilt from the above

    @property
    def sort_column(self) -> str:
        return SORTS[self.sort_index][0]

    @property
    def shown_count(self) -> int:
        """How many rows are shown."""
        return len(self.keys) if self._shown is None else len(self._shown)

    def is_shown(self, name: str) -> bool:
        return name in self.keys if self._shown is None else name in self._shown

    @property
    def problem_count(self) -> int:
        """How many shown rows are problems."""
        shown = self._shown
        if shown is None:
            return len(self._problems)
        return sum(1 for name in self._problems if name in shown)

    def problem_names(self) -> list[str]:
        """Shown problem devices, in the problems view's order."""
        shown = self._shown
        return [name for _, name in self._problem_order if shown is None or name in shown]

    def set_filter(self, text: str) -> None:
        """Match rows whose text contains every whitespace-separated term (call rebuild after)."""
        self._terms = text.lower().split()

    def matches(self, name: str) -> bool:
        """Whether ``name`` passes the filter (for views that show devices elsewhere)."""
        if self._shown is None:
            return name in self._trackers
        return name in self._shown

    def display_order(self) -> list[str]:
        order = self._order
        if order is None:
            shown = self._shown
            if self.view == "all":
                if shown is None:
                    order = [name for _, name in self._sorted]
                else:
                    order = [name for _, name in self._sorted if name in shown]
            else:
                problems = self._problems
                order = self.problem_names()
                if shown is None:
                    order += [name for _, name in self._sorted if name not in problems]
                else:
                    order += [name for _, name in self._sorted if name in shown and name not in problems]
            self._order = order
        return order

    def invalidate(self) -> None:
        """The display order is rebuilt when next asked for (the view changed, rows moved)."""
        self._order = None

    def rebuild(self, now: datetime) -> None:
        """Match the filter again (a user's action, never a live tick); the first time, order
        every device."""
        if len(self.keys) != len(self._trackers):  # the first time: every device placed
            self._order_all()
        if not self._terms:
            self._shown = None
            self._shown_terms = []
        else:
            if self._static_text is None:  # the first filter of the run
                self.prepare_filter(now)
            # "down for" moved without an event, and some may be up by now without a tick
            down = list(self._down)
            self.update(down, now, match=False)
            narrower = self._shown is not None and all(
                any(old in new for new in self._terms) for old in self._shown_terms)
            # A narrower filter matches only what the last one showed (and the down rows,
            # whose text moved since): a row it matches matched the last one too.
            candidates: Iterable[str] = (self._shown | set(down)) if narrower and self._shown is not None \
                else self._trackers
            match = self._matches
            self._shown = {name for name in candidates if match(name)}
            self._shown_terms = list(self._terms)
        self._order = None

    def _order_all(self) -> None:
        """Sort keys and problems of every device, from scratch."""
        trackers = self._trackers
        self.keys = sort_keys(self.sort_column, trackers, self._ranks)
        self._resort()
        self._problems.clear()
        self._problem_order.clear()
        ranks = self._ranks.name
        problems = self._problems
        for name, tracker in trackers.items():
            key = problem_key(tracker, ranks[name])
            if key is not None:
                problems[name] = key
        self._problem_order = sorted(zip(problems.values(), problems.keys(), strict=True))

    def prepare_filter(self, now: datetime) -> None:
        """Render every row's text once, so that the first filter only matches."""
        if self._static_text is None:
            static: dict[str, str] = {}
            live = self._live_text
            down, is_down = self._down, State.DOWN
            for name, tracker in self._trackers.items():
                texts = row_texts(tracker, now)
                static[name] = "\t".join([texts[i] for i in _STATIC]).lower()
                live[name] = "\t".join(texts[_LIVE]).lower()
                if tracker.state is is_down:
                    down.add(name)
            self._static_text = static

    def cycle_sort(self) -> None:
        """Move to the next sort column and re-sort every device."""
        self.sort_index = (self.sort_index + 1) % len(SORTS)
        self.keys = sort_keys(self.sort_column, self._trackers, self._ranks)
        self._resort()
        self._order = None

    def update(self, names: Iterable[str], now: datetime, *, match: bool = True) -> tuple[set[str], bool, bool]:
        """Bring the rows of ``names`` up to date; return the names looked at (with the down
        ones while a filter is on), whether the shown rows moved, and whether the shown problems
        did. ``match``: whether to match the filter again for them (rebuild matches itself)."""
        names = set(names)
        terms = match and bool(self._terms) and self._shown is not None
        if terms:
            names |= self._down  # "down for" is matched by the filter too
        trackers = self._trackers
        present = {name: trackers[name] for name in names if name in trackers}
        new_keys = sort_keys(self.sort_column, present, self._ranks)
        keys, shown, name_ranks = self.keys, self._shown, self._ranks.name
        texts = self._static_text is not None
        moved: list[tuple[str, SortKey | None]] = []  # (name, old key) of rows whose key moved
        order_moved = problems_moved = False
        for name, tracker in present.items():
            if texts:
                self._remember(name, tracker, now)
            if terms:
                assert shown is not None
                now_shown = self._matches(name)
                if now_shown != (name in shown):
                    if now_shown:
                        shown.add(name)
                    else:
                        shown.discard(name)
                    order_moved = problems_moved = True
            visible = shown is None or name in shown
            old = keys.get(name)
            key = new_keys[name]
            if key != old:
                keys[name] = key
                moved.append((name, old))
                order_moved |= visible
            if self._track_problem(name, problem_key(tracker, name_ranks[name])):
                problems_moved |= visible
        if moved:
            self._reorder(moved)
        if order_moved or (problems_moved and self.view == "problems"):
            self._order = None
        return names, order_moved, problems_moved

    def _resort(self) -> None:
        keys = self.keys
        column = self.sort_column
        if column in STATIC_COLUMNS and len(keys) == len(self._trackers):
            # Ranks 0..n-1 of a column that never changes: each row's place is its key.
            rows: list[tuple[SortKey, str] | None] = [None] * len(keys)
            try:
                for name, rank in keys.items():
                    rows[rank] = (rank, name)
            except (IndexError, TypeError):
                pass
            else:
                if None not in rows:
                    self._sorted = rows  # type: ignore[assignment]
                    return
        self._sorted = sorted(zip(keys.values(), keys.keys(), strict=True))

    def _reorder(self, moved: list[tuple[str, SortKey | None]]) -> None:
        """Move the rows whose key changed (None: was not in the list) within the sorted list."""
        keys = self.keys
        if len(moved) <= BISECT_LIMIT:
            rows = self._sorted
            for name, old in moved:
                if old is not None:
                    del rows[bisect_left(rows, (old, name))]
                insort(rows, (keys[name], name))
            return
        # Many: one pass takes them out, and the list's sort merges the two sorted runs (the
        # rest, then the moved ones sorted), ~n comparisons instead of a sort's n log n.
        gone = {name for name, old in moved if old is not None}
        rows = [row for row in self._sorted if row[1] not in gone] if gone else self._sorted
        back = sorted((keys[name], name) for name, _ in moved)
        rows += back
        rows.sort()
        self._sorted = rows

    def _remember(self, name: str, tracker: TrackerView, now: datetime) -> None:
        texts = row_texts(tracker, now)
        self._live_text[name] = "\t".join(texts[_LIVE]).lower()
        if tracker.state is State.DOWN:
            self._down.add(name)
        else:
            self._down.discard(name)

    def _matches(self, name: str) -> bool:
        assert self._static_text is not None
        static, live = self._static_text[name], self._live_text[name]
        return all(term in static or term in live for term in self._terms)

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
