"""What each device-table column says and how each sort orders devices (no widget code here)."""

from __future__ import annotations

import re
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from itertools import repeat
from operator import attrgetter
from typing import Any

from poller.durations import format_duration
from poller.events import OUT, State
from poller.inventory import Device
from poller.live import CODE_STATE, FLAPPING, NONE16, NONE32, Columns, in_row_order
from poller.state import TrackerView
from wardtui.widgets.states import state_label

SortKey = tuple[Any, ...]


@dataclass(frozen=True, slots=True)
class Column:
    key: str
    label: str
    width: int | None = None  # fixed for cells that change live, so the layout never jumps
    numeric: bool = False


# What answers "what is down, since when" comes right after the name, so it stays on screen in
# an 80-column SSH terminal; where the device sits follows.
COLUMNS = (
    Column("name", "name"), Column("state", "state", 9),
    Column("rtt", "RTT ms", 7, numeric=True), Column("loss", "loss %", 6, numeric=True),
    Column("down", "down for", 8, numeric=True),
    Column("address", "address"), Column("branch", "branch"),
    Column("region", "region"), Column("type", "type"),
)

# The order `s` cycles through: what an operator asks most often comes first.
SORTS = (
    ("name", "name"), ("state", "state, down first"), ("down", "down for, longest first"),
    ("loss", "loss %, worst first"), ("rtt", "RTT, slowest first"), ("address", "address"),
    ("branch", "branch"), ("region", "region"), ("type", "type"),
)


def natural(text: str) -> SortKey:
    """``dev2`` before ``dev10``; digits and text alternate, so keys always compare."""
    return tuple(int(part) if i % 2 else part.lower() for i, part in enumerate(re.split(r"(\d+)", text)))


_DIGIT_RUNS = re.compile(r"([0-9]+)")
_NOT_PRINTABLE_ASCII = re.compile(r"[^\x20-\x7e\n]")
_DIGITS_FIRST = str.maketrans("0123456789", "".join(map(chr, range(0x10, 0x1A))))


def natural_keys(texts: Sequence[str]) -> list[Any]:
    """A key per text that orders as :func:`natural` does, equal exactly where it is, made in a
    few passes over all the texts at once (100,000 names: ~4x faster than :func:`natural` each).

    For printable ASCII (every inventory here): the lowercased text with each run of digits
    zero-filled to the longest run's width and its digits moved below every printable character,
    so a run compares as its number and before any text, as the int in natural's tuple does
    (and ``a7`` equals ``a007``). Anything else: :func:`natural` itself."""
    joined = "\n".join(texts)
    if _NOT_PRINTABLE_ASCII.search(joined):
        return [natural(text) for text in texts]
    parts = _DIGIT_RUNS.split(joined)
    runs = parts[1::2]
    width = max(map(len, runs), default=0)
    parts[1::2] = map(str.zfill, runs, repeat(width))
    keys = "".join(parts).lower().translate(_DIGITS_FIRST).split("\n")
    if len(keys) != len(texts):  # a text held a newline (no inventory has one)
        return [natural(text) for text in texts]
    return keys


def _address_key(address: str) -> SortKey:
    # inet_pton, not ipaddress: ~20x faster, which counts for 20,000 keys on a key press. A
    # link-local address's zone (fe80::1%eth0) orders the same address on different links.
    host, _, zone = address.partition("%")
    for version, family in ((4, socket.AF_INET), (6, socket.AF_INET6)):
        try:
            return (version, int.from_bytes(socket.inet_pton(family, host)), zone)
        except OSError:
            continue
    return (99, 0, address)


def _address_keys(addresses: list[str]) -> list[Any]:
    """:func:`_address_key` of each, as one int each (version above the address's 128 bits)
    when every one is an IP address without a zone: 100,000 ints sort ~5x faster than their tuples."""
    keys = list(map(_address_key, addresses))
    if all(key[0] != 99 and not key[2] for key in keys):
        return [(version << 128) | number for version, number, _ in keys]
    return keys


STATIC_COLUMNS = ("name", "address", "branch", "region", "type")
_NO_KEY: Any = object()  # equal to no sort key


class StaticRanks:
    """Each device's place in the order of each column that never changes, as an int.

    An int compares far faster than the natural-order tuple it stands for (sorting 20,000 rows
    is a key press), and it is computed once: the name's at once (the default sort and every
    tie-break), another column's when the operator first sorts by it.
    """

    def __init__(self, devices: Mapping[str, Device]) -> None:
        self._devices = devices
        self._ranks: dict[str, dict[str, int]] = {}
        self.name = self.column("name")
        # Bits that hold any name's rank: below them in a packed key (RowOrder, the columns' ranks).
        self.rank_bits = max(len(self.name) - 1, 1).bit_length()
        self._by_rank: list[str] | None = None

    def names_by_rank(self) -> list[str]:
        """Each name at its rank by name (made once, when first asked)."""
        by_rank = self._by_rank
        if by_rank is None:
            by_rank = [""] * len(self.name)
            for name, rank in self.name.items():
                by_rank[rank] = name
            self._by_rank = by_rank
        return by_rank

    def column(self, column: str) -> dict[str, int]:
        ranks = self._ranks.get(column)
        if ranks is None:
            if column == "name":
                every = list(self._devices)
                order = [name for _, name in sorted(zip(natural_keys(every), every, strict=True))]
            else:
                values = {name: getattr(device, column) for name, device in self._devices.items()}
                # Branches, regions and types repeat: one key per distinct value, and each value
                # ranked (equal keys, as "a7" and "a007", one rank); then every device's (value
                # rank, name rank) packed in an int and the ints sorted: a sort of 100,000 key
                # tuples was ~0.4 s, the first `s` to the column or the warm-up step before it.
                distinct = list(set(values.values()))
                made = _address_keys(distinct) if column == "address" else natural_keys(distinct)
                value_rank: dict[str, int] = {}
                rank, last = -1, _NO_KEY
                for key, value in sorted(zip(made, distinct, strict=True)):
                    if key != last:
                        rank, last = rank + 1, key
                    value_rank[value] = rank
                names, bits, by_rank = self.name, self.rank_bits, self.names_by_rank()
                mask = (1 << bits) - 1
                packed = sorted([(value_rank[v] << bits) | names[n] for n, v in values.items()])
                order = [by_rank[k & mask] for k in packed]
            ranks = self._ranks[column] = {name: rank for rank, name in enumerate(order)}
        return ranks


def _rtt(tracker: TrackerView) -> float | None:
    # The last reply's RTT of a device that is down now says nothing about it.
    return None if tracker.state in OUT else tracker.last_rtt_ms


def _number(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.2f}" if value < 10 else f"{value:.1f}" if value < 1000 else f"{value:.0f}"


def live_texts(tracker: TrackerView, now: datetime) -> tuple[str, str, str, str]:
    """The plain text of the columns that change live: state, RTT, loss, down for."""
    loss = tracker.loss_pct
    state = tracker.state  # read once each: the engine's thread may change them meanwhile
    since = tracker.down_since
    is_down = state in OUT
    return (state_label(state, tracker.flapping),
            "-" if is_down else _number(tracker.last_rtt_ms),
            "-" if loss is None else f"{loss:.0f}",
            format_duration(now - since) if is_down and since is not None else "")


def row_texts(tracker: TrackerView, now: datetime) -> tuple[str, ...]:
    """The plain text of every column, in :data:`COLUMNS` order."""
    device = tracker.device
    return (device.name, *live_texts(tracker, now),
            device.address, device.branch, device.region, device.type)


_STATE_RANK = {State.DOWN: 0, State.UNREACHABLE: 1, State.UNKNOWN: 3, State.UP: 4}
_FLAPPING_RANK = 2  # a flapping device that is not out: after DOWN and UNREACHABLE


def sort_key(column: str, tracker: TrackerView, ranks: StaticRanks) -> SortKey:
    """Key for ``column``; ties and missing values fall back to the name, missing ones last."""
    return sort_keys(column, {tracker.device.name: tracker}, ranks)[tracker.device.name]


# The live columns sort by the figure as the table shows it: RTT and loss in hundredths, the
# start of an outage in microseconds. Rows whose figures read the same are in name order (not
# jittering by decimals nobody sees), and a key is a small int.
_TOP = (1 << 32) - 1  # the largest hundredth kept: 42,949,672.95 ms or %
_MISSING = 1 << 32  # after every figure
_LAST_HUNDREDTH = 4_294_967_200  # hundredths from here read as _TOP (see _hundredths' bound)
_EPOCH_US = 1 << 61  # microseconds since 1970, shifted to be positive (and below _NO_OUTAGE)
_NO_OUTAGE = 1 << 62


def _hundredths(value: float) -> int:
    """``value`` in hundredths, within 0.._TOP (NaN: 0)."""
    if 0.0 <= value < 42_949_672.0:
        return round(value * 100.0)
    return 0 if not value >= 0.0 else _TOP


def _microseconds(since: datetime) -> int:
    return min(max(round(since.timestamp() * 1_000_000) + _EPOCH_US, 0), _NO_OUTAGE - 1)


def sort_keys(column: str, trackers: Mapping[str, TrackerView], ranks: StaticRanks) -> dict[str, SortKey]:
    """:func:`sort_key` of every device in ``trackers``, in one pass per column."""
    if column in STATIC_COLUMNS:
        static = ranks.column(column)
        return {name: static[name] for name in trackers}
    name_rank = ranks.name
    if column == "state":
        return {name: (_FLAPPING_RANK if t.flapping and t.state not in OUT else _STATE_RANK[t.state],
                       name_rank[name]) for name, t in trackers.items()}
    keys: dict[str, SortKey] = {}
    if column == "down":
        for name, t in trackers.items():
            since = t.down_since if t.state in OUT else None
            rank = name_rank[name]
            keys[name] = (0, _microseconds(since), rank) if since is not None else (1, 0, rank)
        return keys
    if column not in ("loss", "rtt"):
        raise ValueError(f"unknown column {column!r}")
    for name, t in trackers.items():
        value = t.loss_pct if column == "loss" else _rtt(t)
        keys[name] = (value is None, 0 if value is None else -_hundredths(value), name_rank[name])
    return keys


BULK_FROM = 1000  # from this many trackers, an attached dashboard's are read from the columns


def packed_sort_keys(column: str, trackers: Mapping[str, TrackerView], name_rank: Mapping[str, int],
                     rank_bits: int) -> dict[str, int]:
    """:func:`row_packed_keys`, for a feed's whole mapping of trackers (an attached dashboard's
    `s`) read straight from the snapshot's columns (:func:`column_packed_keys`), each row an
    event overrides through its tracker: the same keys, several times faster."""
    if len(trackers) >= BULK_FROM and column in _LIVE_SORTS:
        found = in_row_order(trackers)
        if found is not None:
            columns, overridden = found
            names, ranks = _names_and_ranks(trackers, name_rank)
            keys = column_packed_keys(column, columns, names, ranks, rank_bits)
            keys.update(row_packed_keys(column, {name: trackers[name] for name in overridden},
                                        name_rank, rank_bits))
            return keys
    return row_packed_keys(column, trackers, name_rank, rank_bits)


_LIVE_SORTS = ("state", "down", "loss", "rtt")
# The names of the last mapping read from the columns and their ranks, in row order: made once
# per inventory (a new one comes as a new mapping).
_last_rows: tuple[Mapping[str, TrackerView], Mapping[str, int], list[str], list[int]] | None = None


def _names_and_ranks(trackers: Mapping[str, TrackerView],
                     name_rank: Mapping[str, int]) -> tuple[list[str], list[int]]:
    """The names of ``trackers`` in its order and each one's rank by name (the last mapping's
    kept: one per inventory)."""
    global _last_rows
    last = _last_rows
    if last is None or last[0] is not trackers or last[1] is not name_rank or len(last[2]) != len(trackers):
        names = list(trackers)
        last = _last_rows = (trackers, name_rank, names, list(map(name_rank.__getitem__, names)))
    return last[2], last[3]


def _state_part(state: State, flapping: bool) -> int:
    return _STATE_RANK[state] if state in OUT or not flapping else _FLAPPING_RANK


# Each flags byte of the columns (state code | FLAPPING) -> its state sort part, for translate(),
# and whether its state is out (DOWN or UNREACHABLE: no RTT, an outage's start).
_STATE_PARTS = bytes(_state_part(CODE_STATE[flags & 0x0F], bool(flags & FLAPPING))
                     if (flags & 0x0F) < len(CODE_STATE) else _STATE_RANK[State.UNKNOWN]
                     for flags in range(256))
_IS_OUT = bytes((flags & 0x0F) < len(CODE_STATE) and CODE_STATE[flags & 0x0F] in OUT for flags in range(256))


def column_packed_keys(column: str, columns: Columns, names: list[str], ranks: list[int],
                       bits: int) -> dict[str, int]:
    """:func:`row_packed_keys` of every row of ``columns`` (``names`` and their ``ranks`` by
    name in row order) as the rows say, events since the snapshot aside: one pass over the
    arrays, a key's parts as row_packed_keys makes them from the same figures."""
    is_out = _IS_OUT
    flags = columns.flags
    keys: list[int]
    if column == "state":
        keys = [(p << bits) | r for p, r in zip(flags.translate(_STATE_PARTS), ranks, strict=True)]
    elif column == "down":
        no_outage, epoch = _NO_OUTAGE, _EPOCH_US
        # whole seconds and the fraction's microseconds apart, as a datetime is made from them
        keys = [(no_outage if not is_out[f] or v != v else
                 min(max(int(v) * 1_000_000 + round((v - int(v)) * 1e6) + epoch, 0), no_outage - 1))
                << bits | r for f, v, r in zip(flags, columns.down_since, ranks, strict=True)]
    elif column == "loss":
        top, none16, missing = _TOP, NONE16, _MISSING << bits
        keys = [missing | r if q == none16 else (top - q) << bits | r
                for q, r in zip(columns.loss, ranks, strict=True)]
    else:
        top, none32, missing, last = _TOP, NONE32, _MISSING << bits, _LAST_HUNDREDTH
        keys = [missing | r if is_out[f] or q == none32 else (top - q if q < last else 0) << bits | r
                for f, q, r in zip(flags, columns.last_rtt, ranks, strict=True)]
    return dict(zip(names, keys, strict=True))


def row_packed_keys(column: str, trackers: Mapping[str, TrackerView], name_rank: Mapping[str, int],
                    rank_bits: int) -> dict[str, int]:
    """:func:`sort_keys` of a live column (state, down, loss, rtt) as one int per device that
    orders as the key's tuple does, made straight from each tracker's figures (no tuples: at
    100,000 devices this is the `s` key's cost). The name's rank (``name_rank``, each below
    ``1 << rank_bits``) is the lowest ``rank_bits`` bits, so every key is unique and names its
    device; above it the column's part: the state's rank, the outage's start in microseconds
    (none: after all), or the figure's hundredths counted down from the largest (none: after)."""
    out = OUT
    if column == "state":
        state_rank, flapping = _STATE_RANK, _FLAPPING_RANK
        return {name: ((state_rank[s] if (s := t.state) in out or not t.flapping else flapping) << rank_bits)
                | name_rank[name] for name, t in trackers.items()}
    if column == "down":
        return {name: (_NO_OUTAGE if (since := t.down_since if t.state in out else None) is None
                       else _microseconds(since)) << rank_bits | name_rank[name]
                for name, t in trackers.items()}
    values: list[float | None]
    if column == "loss":
        values = list(map(attrgetter("loss_pct"), trackers.values()))
    elif column == "rtt":
        states = map(attrgetter("state"), trackers.values())
        values = [None if s in out else v for s, v in
                  zip(states, map(attrgetter("last_rtt_ms"), trackers.values()), strict=True)]
    else:
        raise ValueError(f"not a live column {column!r}")
    top, missing = _TOP, _MISSING << rank_bits
    # _hundredths inline (a call per row was a third of the time); top - 0 for NaN, 0 for inf
    return {name: (missing if v is None else
                   (top - (round(v * 100.0) if 0.0 <= v < 42_949_672.0 else 0 if not v >= 0.0 else top))
                   << rank_bits) | name_rank[name]
            for name, v in zip(trackers, values, strict=True)}


# -- the problems-first view ------------------------------------------------------------------
LOSS_THRESHOLD = 20.0  # rolling loss (%) from which an up device counts as a problem
PROBLEM_RULE = f"down, unreachable, flapping, or rolling loss ≥ {LOSS_THRESHOLD:.0f} %"


def problem_key(tracker: TrackerView, name: int) -> SortKey | None:
    """Where a problem device goes in the problems view (longest down first); None: no problem.

    Down devices first, by the start of the outage; then unreachable ones (behind those), the
    same way; then flapping ones, by their last change; then high loss, worst first. The key
    only moves on a transition or a loss change, so the view keeps an ordered set of problems
    instead of re-sorting every row on each tick.
    ``name`` is the device's rank by name (:class:`StaticRanks`), the tie-break.
    """
    state = tracker.state
    if state in OUT:
        since = tracker.down_since
        return (0 if state is State.DOWN else 1, since.timestamp() if since is not None else 0.0, name)
    if tracker.flapping:
        change = tracker.last_change
        return (2, change.timestamp() if change is not None else 0.0, name)
    loss = tracker.loss_pct
    if loss is not None and loss >= LOSS_THRESHOLD:
        return (3, -loss, name)
    return None
