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

from poller.events import OUT
from poller.state import TrackerView
from wardtui.durations import format_duration
from wardtui.widgets.device_rows import (
    SORTS,
    STATIC_COLUMNS,
    SortKey,
    StaticRanks,
    live_texts,
    packed_sort_keys,
    problem_key,
    row_texts,
)

VIEWS = ("all", "problems")  # what the table can show; the grouped view is a widget of its own
# Up to this many moved rows in one tick, each is bisected out and in; above it, one pass takes
# them all out and a merge puts them back.
BISECT_LIMIT = 64
# The columns of COLUMNS (device_rows.py) that change live, and those that never do: the filter
# keeps the text of the first per change and of the second once per device.
_LIVE = slice(1, 5)
_DOWN_FOR = 4
_STATIC = (0, 5, 6, 7, 8)
Move = tuple[str, int | None, int | None]  # a row's name, the key it sits at, the key it goes to


def _move(rows: list[tuple[int, str]], moves: list[Move]) -> list[tuple[int, str]]:
    """``rows`` (sorted) with each moved row taken out from its old key and put in at its new
    one (None: not in, or not any more); a row is in at most one move."""
    if len(moves) <= BISECT_LIMIT:
        for name, old, new in moves:
            if old is not None:
                del rows[bisect_left(rows, (old, name))]
            if new is not None:
                insort(rows, (new, name))
        return rows
    # Many: one pass takes them out, and the list's sort merges the two sorted runs (the rest,
    # then the moved ones sorted), ~n comparisons instead of a sort's n log n.
    gone = {name for name, old, _ in moves if old is not None}  # a str caches its hash, an int not
    kept = [row for row in rows if row[1] not in gone] if gone else rows
    kept += sorted((new, name) for name, _, new in moves if new is not None)
    kept.sort()
    return kept


class RowOrder:
    """The shown devices of ``trackers`` (those matching the filter terms) in display order."""

    def __init__(self, trackers: Mapping[str, TrackerView], ranks: StaticRanks) -> None:
        self._trackers = trackers
        self._ranks = ranks
        # Lower-case text of each row as of the device's last change, kept from the first filter
        # on (tab-separated; a term has no white space, so it never spans two columns): that of
        # the columns that never change is made once, the live ones' on each change. A filter
        # then only matches instead of re-rendering every row.
        self._static_text: dict[str, str] | None = None
        self._text: dict[str, str] = {}  # the whole row's
        # Sort key of every device, shown or not, packed in an int (packed_sort_keys: the name's
        # rank in its lowest bits), or the rank of a column that never changes: the sorted lists
        # compare ints, never the names (each device's key is its own).
        self._rank_bits = max(len(ranks.name) - 1, 1).bit_length()
        self.keys: dict[str, int] = {}
        self._packed = True  # False: the keys are the ranks of a column that never changes
        self._by_rank: list[str] | None = None  # each name at its rank by name, made when needed
        # Every device (key, name) by the sort column. While a filter is on, the rows whose key
        # moved stay where they were (_stale: name -> the key they sit at) and only the shown
        # rows are kept in order, in _view; the filter's next change puts them in place.
        self._sorted: list[tuple[int, str]] = []
        self._stale: dict[str, int | None] = {}
        # Rows a tick changed while hidden by the filter: their key in self.keys is not made
        # again until they are placed (the filter changes) or shown (always stale meanwhile).
        self._unkeyed: set[str] = set()
        self._view: list[tuple[int, str]] | None = None  # the shown rows; None: no filter
        self._view_at: dict[str, int] = {}  # the key each row of _view sits at
        self._shown: set[str] | None = None  # the devices the filter matches; None: no filter
        # Down devices and their "down for" text as last rendered: it advances without any event
        self._down: dict[str, str] = {}
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
            rows = self._sorted if self._view is None else self._view
            if self.view == "all":
                order = [name for _, name in rows]
            else:
                problems = self._problems
                order = self.problem_names()
                order += [name for _, name in rows if name not in problems]
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
        self._place_stale()
        if not self._terms:
            self._shown = None
            self._shown_terms = []
        else:
            if self._static_text is None:  # the first filter of the run
                self.prepare_filter(now)
            # "down for" moved without an event (and some may be up by now without a tick)
            down = self._refresh_down(now)
            narrower = self._shown is not None and all(
                any(old in new for new in self._terms) for old in self._shown_terms)
            texts = self._text
            terms = self._terms
            if narrower and self._shown is not None:
                # A narrower filter matches only what the last one showed (and the down rows
                # whose text moved since): a row it matches matched the last one too.
                shown = {name for name in self._shown | down if terms[0] in texts[name]}
            else:
                shown = {name for name, text in texts.items() if terms[0] in text}
            for term in terms[1:]:  # each term matched among the rows of the ones before
                shown = {name for name in shown if term in texts[name]}
            self._shown = shown
            self._shown_terms = list(terms)
        self._make_view()
        self._order = None

    def _make_view(self) -> None:
        """The shown rows in order, from every row's, while a filter is on."""
        shown = self._shown
        if shown is None:
            self._view, self._view_at = None, {}
        else:
            self._view = view = [row for row in self._sorted if row[1] in shown]
            self._view_at = {name: key for key, name in view}

    def _place_stale(self) -> None:
        """Put the rows whose key moved while a filter was on in place among every row's."""
        stale, keys = self._stale, self.keys
        self._key_now(self._unkeyed)
        moves: list[Move] = [(name, at, keys[name]) for name, at in stale.items() if at != keys[name]]
        stale.clear()
        if len(moves) > len(keys) // 4:  # then one sort of ints is cheaper
            self._sorted = self._sorted_keys() if self._packed else \
                sorted(zip(keys.values(), keys.keys(), strict=True))
        elif moves:
            self._sorted = _move(self._sorted, moves)

    def _order_all(self) -> None:
        """Sort keys and problems of every device, from scratch."""
        trackers = self._trackers
        self._resort()
        self._problems.clear()
        self._problem_order.clear()
        ranks = self._ranks.name
        problems = self._problems
        for name, tracker in trackers.items():
            key = problem_key(tracker, ranks[name])
            if key is not None:
                problems[name] = key
        # One sort: inserting each by bisection was quadratic (20,000 problems of 100,000 rows
        # moved the list 20,000 times).
        self._problem_order = sorted(zip(problems.values(), problems.keys(), strict=True))

    def prepare_filter(self, now: datetime) -> None:
        """Render every row's text once, so that the first filter only matches."""
        if self._static_text is None:
            static: dict[str, str] = {}
            text = self._text
            down = self._down
            for name, tracker in self._trackers.items():
                texts = row_texts(tracker, now)
                static[name] = row = "\t".join([texts[i] for i in _STATIC]).lower()
                text[name] = row + "\t" + "\t".join(texts[_LIVE]).lower()
                if tracker.state in OUT:
                    down[name] = texts[_DOWN_FOR]
            self._static_text = static

    def cycle_sort(self) -> None:
        """Move to the next sort column and re-sort every device."""
        self.sort_index = (self.sort_index + 1) % len(SORTS)
        self._resort()
        self._make_view()
        self._order = None

    def update(self, names: Iterable[str], now: datetime) -> tuple[set[str], bool, bool]:
        """Bring the rows of ``names`` up to date; return the names looked at (with the down
        ones whose "down for" moved while a filter is on), whether the shown rows moved, and
        whether the shown problems did."""
        names = set(names)
        if self._static_text is None and len(names) >= len(self._trackers) \
                and names.issuperset(self._trackers):
            # Every row (the engine started, a snapshot named them all) and no row text kept
            # (so no filter): keys in one pass and one sort, problems in one sort.
            self._order_all()
            self._order = None
            return names, True, True
        trackers = self._trackers
        present = {name: trackers[name] for name in names if name in trackers}
        problems_moved = False
        keys, shown, name_ranks = self.keys, self._shown, self._ranks.name
        texts = self._static_text is not None
        # (name, key it sits at or None, key it goes to or None) of rows that move in the list
        # kept in order: every row's without a filter, the shown ones' with one
        moves: list[Move] = []
        track = self._track_problem
        changes: list[tuple[str, SortKey | None, SortKey | None]] = []  # of the problems
        if shown is None:
            new_keys = self._keys_of(present)
            for name, tracker in present.items():
                if texts:
                    self._remember(name, tracker, now)
                old, key = keys.get(name), new_keys[name]
                if key != old:
                    keys[name] = key
                    moves.append((name, old, key))
                problems_moved |= track(name, problem_key(tracker, name_ranks[name]), changes)
            if moves:
                self._sorted = _move(self._sorted, moves)
        else:
            stale, view_at, unkeyed = self._stale, self._view_at, self._unkeyed
            keyed: dict[str, TrackerView] = {}  # the shown rows: keyed now, hidden ones when placed
            for name, tracker in present.items():
                self._remember(name, tracker, now)
                came_or_went = self._rematch(name)
                if name in shown:
                    keyed[name] = tracker
                else:
                    if name not in unkeyed:
                        stale.setdefault(name, keys.get(name))
                        unkeyed.add(name)
                    at = view_at.get(name)
                    if at is not None:
                        moves.append((name, at, None))
                if track(name, problem_key(tracker, name_ranks[name]), changes) or came_or_went:
                    problems_moved |= name in shown or came_or_went
            for name, key in self._keys_of(keyed).items():
                old = keys.get(name)
                if key != old:
                    keys[name] = key
                    stale.setdefault(name, old)
                unkeyed.discard(name)
                moves += self._view_move(name, key)
            # "down for" is matched by the filter too: its text moved without an event
            redrawn = self._refresh_down(now, present)
            for name in redrawn:
                if self._rematch(name):
                    if name in unkeyed:
                        self._key_now({name})
                    moves += self._view_move(name, keys[name])
                    problems_moved = True
            names |= redrawn
            if moves:
                assert self._view is not None
                self._view = _move(self._view, moves)
                for name, _, to in moves:
                    if to is None:
                        del view_at[name]
                    else:
                        view_at[name] = to
        self._order_problems(changes)
        order_moved = bool(moves)
        if order_moved or (problems_moved and self.view == "problems"):
            self._order = None
        return names, order_moved, problems_moved

    def _view_move(self, name: str, key: int) -> list[Move]:
        """How a row moves in _view (a filter is on): in, out, to another key, or not at all."""
        assert self._shown is not None
        at = self._view_at.get(name)
        if name in self._shown:
            return [] if at == key else [(name, at, key)]
        return [] if at is None else [(name, at, None)]

    def _key_now(self, names: set[str]) -> None:
        """Make the keys of ``names`` (rows a tick changed while hidden) again; each is in
        _stale already, at the key it sits at."""
        if names:
            trackers = self._trackers
            self.keys.update(self._keys_of({name: trackers[name] for name in names if name in trackers}))
            self._unkeyed -= names

    def _keys_of(self, trackers: Mapping[str, TrackerView]) -> dict[str, int]:
        """The sort key of each of ``trackers`` by the sort column, as self.keys holds them."""
        column, name_rank = self.sort_column, self._ranks.name
        if column not in STATIC_COLUMNS:
            return packed_sort_keys(column, trackers, name_rank, self._rank_bits)
        static = self._ranks.column(column)
        if not self._packed:
            return {name: static[name] for name in trackers}
        bits = self._rank_bits
        return {name: (static[name] << bits) | name_rank[name] for name in trackers}

    def _sorted_keys(self) -> list[tuple[int, str]]:
        """Every (packed key, name) in order: the ints sorted alone (an int compares several
        times faster than a tuple), each name then read from its rank in the key's low bits."""
        by_rank = self._by_rank
        if by_rank is None or len(by_rank) != len(self._ranks.name):
            placed = [""] * len(self._ranks.name)
            for name, rank in self._ranks.name.items():
                placed[rank] = name
            by_rank = self._by_rank = placed
        mask = (1 << self._rank_bits) - 1
        return [(key, by_rank[key & mask]) for key in sorted(self.keys.values())]

    def _resort(self) -> None:
        """Every device's key for the sort column, sorted from scratch."""
        self._stale.clear()
        self._unkeyed.clear()
        column, trackers = self.sort_column, self._trackers
        if column in STATIC_COLUMNS:
            # The column's ranks are 0..n-1, one per device (StaticRanks): they are the keys
            # (no tie to break), and each row's place is its rank, without a sort.
            ranks = self._ranks.column(column)
            placed: list[str | None] = [None] * len(trackers)
            try:
                for name, rank in ranks.items():
                    placed[rank] = name
            except (IndexError, TypeError):
                placed = [None]
            if len(ranks) == len(trackers) and None not in placed:
                self.keys, self._packed = dict(ranks), False
                self._sorted = list(enumerate(placed))  # type: ignore[arg-type]
                return
        self._packed = True
        self.keys = self._keys_of(trackers)
        self._sorted = self._sorted_keys()

    def _remember(self, name: str, tracker: TrackerView, now: datetime) -> None:
        assert self._static_text is not None
        texts = live_texts(tracker, now)  # only these moved: the rest is kept in _static_text
        self._text[name] = self._static_text[name] + "\t" + "\t".join(texts).lower()
        if tracker.state in OUT:
            self._down[name] = texts[3]
        else:
            self._down.pop(name, None)

    def _refresh_down(self, now: datetime, done: Mapping[str, object] = {}) -> set[str]:
        """Render again the down rows (but ``done``) whose "down for" text moved, or which are
        up by now without a tick; return them. Their sort and problem keys do not move with
        time (a change of state comes with the device's own update)."""
        trackers, down, changed = self._trackers, self._down, set()
        for name, shown in list(down.items()):
            if name in done:
                continue
            tracker = trackers.get(name)
            if tracker is None:
                del down[name]
                continue
            since = tracker.down_since  # read once, as row_texts does
            if tracker.state not in OUT:
                text = None  # up by now: rendered again, and out of the down rows
            else:
                text = format_duration(now - since) if since is not None else ""
            if text != shown:
                self._remember(name, tracker, now)
                changed.add(name)
        return changed

    def _rematch(self, name: str) -> bool:
        """Match one row again (a filter is on); return whether it came or went."""
        shown = self._shown
        assert shown is not None
        if self._matches(name) == (name in shown):
            return False
        if name in shown:
            shown.discard(name)
        else:
            shown.add(name)
        return True

    def _matches(self, name: str) -> bool:
        text = self._text[name]
        return all(term in text for term in self._terms)

    def _track_problem(self, name: str, key: SortKey | None,
                       changes: list[tuple[str, SortKey | None, SortKey | None]]) -> bool:
        """Note one row's problem key (None: no problem); return whether it moved. The ordered
        list follows in _order_problems."""
        problems = self._problems
        old = problems.get(name)
        if old == key:
            return False
        if key is None:
            del problems[name]
        else:
            problems[name] = key
        changes.append((name, old, key))
        return True

    def _order_problems(self, changes: list[tuple[str, SortKey | None, SortKey | None]]) -> None:
        """Bring the ordered list of problems in step with their keys: by bisection for a few
        changes, one sort for many (inserting each by bisection was quadratic: 20,000 problems
        of 100,000 rows moved the list 20,000 times)."""
        if len(changes) > BISECT_LIMIT:
            problems = self._problems
            self._problem_order = sorted(zip(problems.values(), problems.keys(), strict=True))
            return
        order = self._problem_order
        for name, old, key in changes:
            if old is not None:
                del order[bisect_left(order, (old, name))]
            if key is not None:
                insort(order, (key, name))
