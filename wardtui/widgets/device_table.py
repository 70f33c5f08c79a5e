"""The live device table: rows keyed by device name, updated by diff, filtered and sorted in place."""

from __future__ import annotations

from bisect import bisect_left, insort
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from rich.text import Text
from textual._two_way_dict import TwoWayDict
from textual.widgets import DataTable
from textual.widgets.data_table import RowKey

from poller.events import State
from poller.state import DeviceTracker
from wardtui.widgets.device_rows import (
    COLUMNS,
    SORTS,
    SortKey,
    problem_key,
    row_texts,
    sort_key,
    static_keys,
)
from wardtui.widgets.states import StatePalette, state_text

Cell = str | Text

VIEWS = ("all", "problems")  # what the table can show; the grouped view is a widget of its own


class DeviceTable(DataTable[Cell]):
    """Shows every device that matches the filter; call :meth:`refresh_devices` with what changed.

    Only cells whose text changed are written (``update_cell`` is cheap, a rebuild is not), and
    rows are re-sorted only when a shown row's sort key moved.
    """

    DEFAULT_CSS = """
    DeviceTable { height: 1fr; }
    """

    def __init__(self, trackers: Mapping[str, DeviceTracker], *, id: str | None = None) -> None:
        super().__init__(id=id, cursor_type="row", zebra_stripes=True)
        self._trackers = trackers
        self.palette = StatePalette()
        self._static = {name: static_keys(t.device) for name, t in trackers.items()}
        self._texts: dict[str, tuple[str, ...]] = {}  # last text of every device, shown or not
        self._keys: dict[str, SortKey] = {}  # sort key of every shown row (doubles as "is shown")
        self._down: set[str] = set()  # their "down for" cell advances without any event
        self._terms: list[str] = []
        self._filter = ""
        self._sort_index = 0
        self._view = "all"
        # Problems among the shown rows, kept in order as they change: the problems view puts
        # them on top without re-sorting 20,000 rows on every tick.
        self._problems: dict[str, SortKey] = {}
        self._problem_order: list[tuple[SortKey, str]] = []
        self._problems_moved = False
        self._base_order: list[str] = []  # shown rows by the sort column (problems view only)

    # -- what the screen and the tests read ---------------------------------------------------
    @property
    def sort_column(self) -> str:
        return SORTS[self._sort_index][0]

    @property
    def filter_text(self) -> str:
        return self._filter

    @property
    def view(self) -> str:
        return self._view

    def problem_names(self) -> list[str]:
        """Shown problem devices, in the problems view's order."""
        return [name for _, name in self._problem_order]

    def matches(self, name: str) -> bool:
        """Whether ``name`` passes the filter (for views that show devices elsewhere)."""
        texts = self._texts.get(name)
        return texts is not None and self._matches(texts)

    def row_order(self) -> list[str]:
        """Device names in display order."""
        return [str(row.key.value) for row in self.ordered_rows]

    # -- lifecycle ----------------------------------------------------------------------------
    def on_mount(self) -> None:
        for column in COLUMNS:
            self.add_column(column.label, key=column.key, width=column.width)
        self.rebuild()

    def rebuild(self) -> None:
        """Refill from scratch: only on a filter change (a user's action), never on a live tick.

        Removing most of 875 rows one by one is quadratic in DataTable; clearing is linear.
        """
        self.clear()
        self._keys.clear()
        self._problems.clear()
        self._problem_order.clear()
        now = datetime.now(UTC)
        for name, tracker in self._trackers.items():
            texts = self._remember(name, tracker, now)
            if self._matches(texts):
                self._add(name, tracker, texts)
        self._sort()
        self._update_title()

    # -- user actions -------------------------------------------------------------------------
    def set_filter(self, text: str) -> None:
        """Show only rows whose text contains every whitespace-separated term (any column)."""
        if text == self._filter:
            return
        self._filter = text
        self._terms = text.lower().split()
        self.rebuild()

    def set_view(self, view: str) -> None:
        """Show ``all`` rows by the sort column, or ``problems`` first (then the rest)."""
        if view not in VIEWS:
            raise ValueError(f"unknown view {view!r}")
        if view == self._view:
            return
        self._view = view
        self._sort()
        self.move_cursor(row=0)
        self._update_title()

    def set_sort(self, column: str) -> str:
        """Sort by ``column`` (a key of SORTS); return its description."""
        columns = [key for key, _ in SORTS]
        if column not in columns:
            raise ValueError(f"unknown column {column!r}; one of {', '.join(columns)}")
        self._sort_index = columns.index(column) - 1
        return self.cycle_sort()

    def cycle_sort(self) -> str:
        """Move to the next sort column; return its description."""
        self._sort_index = (self._sort_index + 1) % len(SORTS)
        for name in self._keys:
            self._keys[name] = self._key(name)
        self._sort()
        self.move_cursor(row=0)  # a new order is read from the top (down devices first)
        self._update_title()
        return SORTS[self._sort_index][1]

    # -- live updates -------------------------------------------------------------------------
    def refresh_devices(self, names: Iterable[str], now: datetime | None = None) -> None:
        """Bring rows of ``names`` (and of every down device) up to date; wrap in batch_update."""
        now = now or datetime.now(UTC)
        shown, problems = len(self._keys), len(self._problems)
        moved = False
        self._problems_moved = False
        for name in {*names, *self._down}:
            moved |= self._refresh_row(name, now)
        if moved:
            self._sort()
        elif self._problems_moved and self._view == "problems":
            self._apply_order()  # only problems moved: O(rows), no sort
        if len(self._keys) != shown or len(self._problems) != problems:
            self._update_title()

    def _refresh_row(self, name: str, now: datetime) -> bool:
        """Update one row; return True when the display order may have changed."""
        tracker = self._trackers.get(name)
        if tracker is None:
            return False
        old = self._texts.get(name)
        texts = self._remember(name, tracker, now)
        shown = name in self._keys
        if not self._matches(texts):
            if shown:
                del self._keys[name]
                self._track_problem(name, None)
                self.remove_row(name)
            return False
        if not shown:
            self._add(name, tracker, texts)
            return True
        self._track_problem(name, problem_key(tracker, self._static[name]))
        if old is not None and old != texts:
            for index, (before, after) in enumerate(zip(old, texts, strict=True)):
                if before != after:
                    self.update_cell(name, COLUMNS[index].key, self._cell(index, tracker, after))
        key = self._key(name)
        moved = key != self._keys[name]
        self._keys[name] = key
        return moved

    # -- helpers ------------------------------------------------------------------------------
    def _remember(self, name: str, tracker: DeviceTracker, now: datetime) -> tuple[str, ...]:
        texts = row_texts(tracker, now)
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

    def _add(self, name: str, tracker: DeviceTracker, texts: tuple[str, ...]) -> None:
        self.add_row(*(self._cell(i, tracker, text) for i, text in enumerate(texts)), key=name)
        self._keys[name] = self._key(name)
        self._track_problem(name, problem_key(tracker, self._static[name]))

    def _track_problem(self, name: str, key: SortKey | None) -> None:
        """Keep the ordered set of problems in step with one row (bisect, not a sort)."""
        old = self._problems.get(name)
        if old == key:
            return
        self._problems_moved = True
        if old is not None:
            order = self._problem_order
            del order[bisect_left(order, (old, name))]
            del self._problems[name]
        if key is not None:
            self._problems[name] = key
            insort(self._problem_order, (key, name))

    def _cell(self, index: int, tracker: DeviceTracker, text: str) -> Cell:
        column = COLUMNS[index]
        if column.key == "state":
            return state_text(tracker.state, self.palette, tracker.flapping)
        # Always Text: a plain str cell is parsed as markup (slow, and a "[" in a name breaks it).
        return Text(text, justify="right" if column.numeric else "left", no_wrap=True)

    def _key(self, name: str) -> SortKey:
        return sort_key(self.sort_column, self._trackers[name], self._static[name])

    def _sort(self) -> None:
        keys = self._keys
        if self._view == "all":
            self.sort("name", key=lambda name: keys[str(name)])
            return
        self._base_order = sorted(keys, key=keys.__getitem__)
        self._apply_order()

    def _apply_order(self) -> None:
        """Problems on top in their kept order, then the rest in the sort column's order.

        Sets the row order directly, as DataTable.sort does at its end: its key function
        would be called for all 20,000 rows when only a few problems moved.
        """
        problems = self._problems
        order = [name for _, name in self._problem_order]
        order += [name for name in self._base_order if name not in problems and name in self._keys]
        self._row_locations = TwoWayDict({RowKey(name): index for index, name in enumerate(order)})
        self._update_count += 1
        self.refresh()

    def _update_title(self) -> None:
        title = f"devices {len(self._keys)}/{len(self._trackers)} · sort: {SORTS[self._sort_index][1]}"
        if self._view == "problems":
            title = f"problems {len(self._problems)} first · {title}"
        else:
            title = f"all · {title}"
        if self._filter:
            title += f" · filter: {self._filter}"
        self.border_title = title

    def cell_text(self, name: str, column: str) -> str:
        """Plain text of one shown cell (what a reader sees, without styles)."""
        value: Any = self.get_cell(name, column)
        return value.plain if isinstance(value, Text) else str(value)
