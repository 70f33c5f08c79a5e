"""Which devices the device table shows, and in what order: kept incrementally, headless.

Every device has one int key for the sort column (packed: the column's part above, the name's
rank in the lowest bits, so each key is unique and names its device), and every key sits in a
sorted list of ints. The display order is that list read through the filter, a name made from
a key only when a row is painted or asked for (:class:`RowNames`): a tick never builds a list
of 100,000 names. A changed device leaves and re-enters the list by bisection, and when many
changed in one tick (a snapshot names ~10,000 of 100,000 rows whose RTT moved) they are cut
out by bisection and merged back in sorted (a merge of two sorted runs, not a sort of the
whole). A full sort happens only when the operator changes the sort column, and for a column
that never changes (name, address, branch, region, type) its ranks are already in order.

The filter matches the text of the columns that never change (name, address, branch, region,
type) and the state (DOWN, up~flap, ...), not the figures that move every second (RTT, loss,
down for): a row would blink in and out of a filter as its RTT moved, and rendering them for
each of 10,000 rows a second cost more than the rest of the tick. A filter that narrows the
last one (typing one more character) only matches the rows it showed. The problems are kept
in order as they change, for the problems view.

No widget and no Textual (rich only through the state labels): ``DeviceTable`` paints what this
decides, and a test can drive it without an app.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from itertools import repeat
from typing import TypeVar, overload

from poller.state import TrackerView
from wardtui.widgets.device_rows import (
    SORTS,
    STATIC_COLUMNS,
    SortKey,
    StaticRanks,
    packed_sort_keys,
    problem_key,
)
from wardtui.widgets.states import state_label

VIEWS = ("all", "problems")  # what the table can show; the grouped view is a widget of its own
# Up to this many moved rows in one tick, each is bisected out and in; above it, they are cut
# out in one pass and a merge puts them back.
BISECT_LIMIT = 64
Move = tuple[int | None, int | None]  # a row's key where it sits (None: not in) and where it goes
ProblemEntry = tuple[SortKey, str]
K = TypeVar("K", int, ProblemEntry)


def _move(rows: list[K], moves: list[tuple[K | None, K | None]]) -> list[K]:
    """``rows`` (sorted keys) with each moved row taken out from its old key and put in at its
    new one; a row is in at most one move. In place for a few, a new list for many."""
    if len(moves) <= BISECT_LIMIT:
        for old, new in moves:
            if old is not None:
                del rows[bisect_left(rows, old)]
            if new is not None:
                insort(rows, new)
        return rows
    # Many: the old keys found by bisection (in C), the rows between them kept as slices, then
    # the list's sort merges two sorted runs (the rest, the moved ones sorted): ~n steps in C
    # instead of a set lookup per row in Python.
    gone = sorted(old for old, _ in moves if old is not None)
    kept: list[K] = []
    start = 0
    for at in map(bisect_left, repeat(rows), gone):
        kept += rows[start:at]
        start = at + 1
    kept += rows[start:]
    kept += sorted(new for _, new in moves if new is not None)
    kept.sort()
    return kept


class RowNames(Sequence[str]):
    """A display order as names, read through its keys when asked (a key's name is
    ``names[key & mask]``): first ``top`` (the problems view's problems, each by its name's
    rank), then the keys of ``rows`` (sorted) but those of ``top``, picked out when first read
    past the top. ``index`` is a bisection, or a search of the top."""

    __slots__ = ("_is_top", "_key_of", "_mask", "_names", "_rest", "_rows", "_top")

    def __init__(self, top: list[int], rows: list[int], names: list[str], mask: int,
                 key_of: Callable[[str], int | None], is_top: Callable[[str], bool]) -> None:
        """``key_of(name)``: the key of a shown row (None: not shown); ``is_top(name)``: whether
        it is one of ``top``."""
        self._top, self._rows, self._names, self._mask = top, rows, names, mask
        self._key_of, self._is_top = key_of, is_top
        self._rest: list[int] | None = None if top else rows

    def _after_top(self) -> list[int]:
        rest = self._rest
        if rest is None:
            mask, top = self._mask, set(self._top)
            rest = self._rest = [k for k in self._rows if k & mask not in top]
        return rest

    def __len__(self) -> int:
        return len(self._rows)  # every row on top is one of rows too

    @overload
    def __getitem__(self, i: int) -> str: ...

    @overload
    def __getitem__(self, i: slice) -> list[str]: ...

    def __getitem__(self, i: int | slice) -> str | list[str]:
        names, mask, top = self._names, self._mask, self._top
        if isinstance(i, slice):
            start, stop, step = i.indices(len(self))
            if step == 1 and start >= len(top):
                return [names[k & mask] for k in self._after_top()[start - len(top):stop - len(top)]]
            return [self[j] for j in range(start, stop, step)]
        if i < 0:
            i += len(self)
        if i < 0:
            raise IndexError(i)
        if i < len(top):
            return names[top[i]]
        return names[self._after_top()[i - len(top)] & mask]

    def __iter__(self) -> Iterator[str]:
        names, mask = self._names, self._mask
        yield from (names[k] for k in self._top)
        yield from (names[k & mask] for k in self._after_top())

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self._find(name) >= 0

    def _find(self, name: str) -> int:
        key = self._key_of(name)
        if key is None:
            return -1
        top = self._top
        if top and self._is_top(name):
            try:
                return top.index(key & self._mask)
            except ValueError:
                return -1
        rest = self._after_top()
        at = bisect_left(rest, key)
        return len(top) + at if at < len(rest) and rest[at] == key else -1

    def index(self, name: object, start: int = 0, stop: int | None = None) -> int:
        """Where ``name`` is (ValueError if it is not shown)."""
        at = self._find(name) if isinstance(name, str) else -1
        if at < max(start, 0) or (stop is not None and at >= stop):
            raise ValueError(f"{name!r} is not shown")
        return at

    def __eq__(self, other: object) -> bool:
        if isinstance(other, RowNames | list | tuple):
            return list(self) == list(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"RowNames({list(self)!r})"


class StaticKeys(Mapping[str, int]):
    """The keys of a column that never changes, made when read (its rank above, the name's
    below): a dict of 100,000 of them cost more than the sort it was for."""

    __slots__ = ("_bits", "_name", "_ranks")

    def __init__(self, ranks: Mapping[str, int], name_ranks: Mapping[str, int], bits: int) -> None:
        self._ranks, self._name, self._bits = ranks, name_ranks, bits

    def __getitem__(self, name: str) -> int:
        return (self._ranks[name] << self._bits) | self._name[name]

    def __contains__(self, name: object) -> bool:
        return name in self._ranks

    def __iter__(self) -> Iterator[str]:
        return iter(self._ranks)

    def __len__(self) -> int:
        return len(self._ranks)

    def sorted_keys(self) -> list[int]:
        """Every key in order: the ranks are 0..n-1 in order (StaticRanks made them so)."""
        bits, name = self._bits, self._name
        return [(rank << bits) | name[n] for n, rank in self._ranks.items()]


class RowOrder:
    """The shown devices of ``trackers`` (those matching the filter terms) in display order."""

    def __init__(self, trackers: Mapping[str, TrackerView], ranks: StaticRanks) -> None:
        self._trackers = trackers
        self._ranks = ranks
        self._rank_bits = bits = ranks.rank_bits
        self._mask = (1 << bits) - 1
        # Lower-case text of each row's columns that never change (tab-separated: a term has no
        # white space, so it never spans two columns), made once, at the first filter, and of
        # its state, made again when the state changes: a filter then only matches.
        self._static_text: dict[str, str] | None = None
        self._state_text: dict[str, str] = {}
        # Sort key of every device, shown or not, and every key in order.
        self.keys: dict[str, int] | StaticKeys = {}
        self._static_sorted: dict[str, list[int]] = {}  # each static column's keys in order, once made
        self._sorted: list[int] = []
        self._view: list[int] | None = None  # the shown rows' keys in order; None: no filter
        self._shown: set[str] | None = None  # the devices the filter matches; None: no filter
        self._terms: list[str] = []
        self._shown_terms: list[str] = []  # the terms _shown was matched with
        self.sort_index = 0
        self.view = "all"
        # Problems among all devices, kept in order as they change: the problems view puts the
        # shown ones on top without re-sorting 100,000 rows on every tick.
        self._problems: dict[str, SortKey] = {}
        self._problem_order: list[tuple[SortKey, str]] = []
        self._order: RowNames | None = None  # display order; None: to be made from the above

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

    def shown_names(self) -> Collection[str] | None:
        """The devices the filter shows (not to be changed); None: no filter, every one."""
        return self._shown

    def matches(self, name: str) -> bool:
        """Whether ``name`` passes the filter (for views that show devices elsewhere)."""
        if self._shown is None:
            return name in self._trackers
        return name in self._shown

    def display_order(self) -> RowNames:
        order = self._order
        if order is None:
            rows = self._sorted if self._view is None else self._view
            # The problems view: the shown problems on top, by their name's rank (a rank is its
            # own key's low bits), then the other rows by the sort column.
            rank = self._ranks.name
            top = [rank[name] for name in self.problem_names()] if self.view == "problems" else []
            order = self._order = RowNames(top, rows, self._ranks.names_by_rank(), self._mask, self._key_of,
                                           self._problems.__contains__)
        return order

    def _key_of(self, name: str) -> int | None:
        """The key of a shown row, None if it is not shown."""
        return self.keys.get(name) if self.is_shown(name) else None

    def invalidate(self) -> None:
        """The display order is made again when next asked for (the view changed, rows moved)."""
        self._order = None

    def rebuild(self, now: datetime) -> None:
        """Match the filter again (a user's action, never a live tick); the first time, order
        every device."""
        if len(self.keys) != len(self._trackers):  # the first time: every device placed
            self._order_all()
        terms = self._terms
        if not terms:
            self._shown = None
            self._shown_terms = []
        else:
            if self._static_text is None:  # the first filter of the run
                self.prepare_filter(now)
            static, state = self._static_text, self._state_text
            assert static is not None
            narrower = self._shown is not None and all(
                any(old in new for new in terms) for old in self._shown_terms)
            first = terms[0]
            if narrower and self._shown is not None:
                # A narrower filter matches only what the last one showed: a row it matches
                # matched the last one too.
                shown = {name for name in self._shown if first in static[name] or first in state[name]}
            else:
                shown = {name for name, text in static.items() if first in text or first in state[name]}
            for term in terms[1:]:  # each term matched among the rows of the ones before
                shown = {name for name in shown if term in static[name] or term in state[name]}
            self._shown = shown
            self._shown_terms = list(terms)
        self._make_view()
        self._order = None

    def _make_view(self) -> None:
        """The shown rows' keys in order, from every row's, while a filter is on."""
        shown = self._shown
        if shown is None:
            self._view = None
        elif len(shown) * 8 < len(self._sorted):
            keys = self.keys
            self._view = sorted(keys[name] for name in shown)
        else:
            rank, mask = self._ranks.name, self._mask
            ranks = {rank[name] for name in shown}
            self._view = [k for k in self._sorted if k & mask in ranks]

    def _order_all(self) -> None:
        """Sort keys and problems of every device, from scratch."""
        trackers = self._trackers
        self._resort()
        self._problems.clear()
        ranks = self._ranks.name
        problems = self._problems
        for name, tracker in trackers.items():
            key = problem_key(tracker, ranks[name])
            if key is not None:
                problems[name] = key
        # One sort: inserting each by bisection was quadratic (20,000 problems of 100,000 rows
        # moved the list 20,000 times).
        self._problem_order = sorted(zip(problems.values(), problems.keys(), strict=True))

    def static_texts(self) -> dict[str, str]:
        """Each row's text of the columns that never change (from any thread: only the devices
        are read), for :meth:`prepare_filter`."""
        return {name: "\t".join((d.name, d.address, d.branch, d.region, d.type)).lower()
                for name, t in self._trackers.items() for d in (t.device,)}

    def prepare_filter(self, now: datetime, static: dict[str, str] | None = None) -> None:
        """Make every row's text once, so that the first filter only matches (``static``: the
        static texts, made beforehand on another thread)."""
        if self._static_text is None:
            static = self.static_texts() if static is None else static
            self._state_text = {name: state_label(t.state, t.flapping).lower()
                                for name, t in self._trackers.items()}
            self._static_text = static

    def cycle_sort(self) -> None:
        """Move to the next sort column and re-sort every device."""
        self.sort_index = (self.sort_index + 1) % len(SORTS)
        self._resort()
        self._make_view()
        self._order = None

    def update(self, names: Iterable[str], now: datetime) -> tuple[set[str], bool, bool]:
        """Bring the rows of ``names`` up to date; return the names looked at, whether the shown
        rows moved, and whether the shown problems did."""
        names = set(names)
        trackers = self._trackers
        if len(self.keys) != len(trackers):  # before the first rebuild: every device keyed
            self._order_all()
            self._make_view()
            self._order = None
        if self._static_text is None and len(names) >= len(trackers) and names.issuperset(trackers):
            # Every row (the engine started, a snapshot named them all) and no row text kept
            # (so no filter): keys in one pass and one sort, problems in one sort.
            self._order_all()
            self._order = None
            return names, True, True
        present = {name: trackers[name] for name in names if name in trackers}
        if len(present) * 4 >= len(trackers) > BISECT_LIMIT:
            return self._update_many(names, present)
        keys, shown, name_ranks = self.keys, self._shown, self._ranks.name
        moves: list[Move] = []  # in the list of every row's keys
        shown_moves: list[Move] = []  # in the shown rows' (a filter is on)
        changes: list[tuple[str, SortKey | None, SortKey | None]] = []  # of the problems
        problems_moved = False
        track = self._track_problem
        if isinstance(keys, StaticKeys):
            new_keys: Mapping[str, int] = keys  # they never move
        else:
            new_keys = packed_sort_keys(self.sort_column, present, name_ranks, self._rank_bits)
        state_text = self._state_text if self._static_text is not None else None
        for name, tracker in present.items():
            old, key = keys.get(name), new_keys[name]
            if key != old:
                keys[name] = key  # type: ignore[index]  # a dict: static keys never move
                moves.append((old, key))
            moved = track(name, problem_key(tracker, name_ranks[name]), changes)
            if state_text is not None:
                text = state_label(tracker.state, tracker.flapping).lower()
                if text != state_text[name]:
                    state_text[name] = text
            if shown is not None:
                was = name in shown
                now_shown = self._matches(name)
                if now_shown != was:
                    if now_shown:
                        shown.add(name)
                    else:
                        shown.discard(name)
                    problems_moved = True
                if (was or now_shown) and not (was and now_shown and key == old):
                    shown_moves.append((old if was else None, key if now_shown else None))
                problems_moved |= moved and now_shown
            else:
                problems_moved |= moved
        if moves:
            self._sorted = _move(self._sorted, moves)
        if shown_moves:
            assert self._view is not None
            self._view = _move(self._view, shown_moves)
        self._order_problems(changes)
        order_moved = bool(moves) if shown is None else bool(shown_moves)
        if order_moved or (problems_moved and self.view == "problems"):
            self._order = None
        return names, order_moved, problems_moved

    def _update_many(self, names: set[str],
                     present: Mapping[str, TrackerView]) -> tuple[set[str], bool, bool]:
        """update() of a quarter of the rows or more (the first refresh after the attach, a
        snapshot after a gap): every key made again and sorted at once (a live column's read
        from the snapshot's columns), the named rows' problems, state text and match in one
        pass each; row by row, 50,000 rows were ~0.45 s."""
        if not isinstance(self.keys, StaticKeys):
            self._resort()
        name_ranks, problems = self._ranks.name, self._problems
        for name, tracker in present.items():
            key = problem_key(tracker, name_ranks[name])
            if key is None:
                problems.pop(name, None)
            else:
                problems[name] = key
        self._problem_order = sorted(zip(problems.values(), problems.keys(), strict=True))
        if self._static_text is not None:
            self._state_text.update({name: state_label(t.state, t.flapping).lower()
                                     for name, t in present.items()})
            shown = self._shown
            if shown is not None:
                for name in present:
                    if self._matches(name):
                        shown.add(name)
                    else:
                        shown.discard(name)
        self._make_view()
        self._order = None
        return names, True, True

    def _matches(self, name: str) -> bool:
        static, state = self._static_text, self._state_text
        assert static is not None
        text, label = static[name], state[name]
        return all(term in text or term in label for term in self._terms)

    def prepare_sort(self, column: str) -> None:
        """Make a column that never changes ready to sort by (its ranks, its keys in order), so
        that its first ``s`` costs what the later ones do (call when idle)."""
        if column in STATIC_COLUMNS and column not in self._static_sorted:
            ranks = StaticKeys(self._ranks.column(column), self._ranks.name, self._rank_bits)
            self._static_sorted[column] = ranks.sorted_keys()

    def _resort(self) -> None:
        """Every device's key for the sort column, sorted from scratch."""
        column, name_rank, bits = self.sort_column, self._ranks.name, self._rank_bits
        if column in STATIC_COLUMNS:
            keys = self.keys = StaticKeys(self._ranks.column(column), name_rank, bits)
            made = self._static_sorted.get(column)
            if made is None:
                made = self._static_sorted[column] = keys.sorted_keys()
            self._sorted = list(made)  # a copy: moves would change it in place
        else:
            live = self.keys = packed_sort_keys(column, self._trackers, name_rank, bits)
            self._sorted = sorted(live.values())

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
        """Bring the ordered list of problems in step with their keys, as rows are moved."""
        if changes:
            self._problem_order = _move(self._problem_order, [
                (None if old is None else (old, name), None if key is None else (key, name))
                for name, old, key in changes])
