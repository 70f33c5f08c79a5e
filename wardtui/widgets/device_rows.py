"""What each device-table column says and how each sort orders devices (no widget code here)."""

from __future__ import annotations

import re
import socket
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from itertools import repeat
from typing import Any

from poller.events import OUT, State
from poller.inventory import Device
from poller.state import TrackerView
from wardtui.durations import format_duration
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
    # inet_pton, not ipaddress: ~20x faster, which counts for 20,000 keys on a key press.
    for version, family in ((4, socket.AF_INET), (6, socket.AF_INET6)):
        try:
            return (version, int.from_bytes(socket.inet_pton(family, address)), "")
        except OSError:
            continue
    return (99, 0, address)


STATIC_COLUMNS = ("name", "address", "branch", "region", "type")


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

    def column(self, column: str) -> dict[str, int]:
        ranks = self._ranks.get(column)
        if ranks is None:
            if column == "name":
                every = list(self._devices)
                order = [name for _, name in sorted(zip(natural_keys(every), every, strict=True))]
            else:
                values = {name: getattr(device, column) for name, device in self._devices.items()}
                # Branches, regions and types repeat: one key per distinct value.
                distinct = list(set(values.values()))
                made = map(_address_key, distinct) if column == "address" else natural_keys(distinct)
                keys = dict(zip(distinct, made, strict=True))
                names = self.name
                order = sorted(values, key=lambda n: (keys[values[n]], names[n]))
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
            keys[name] = (0, since.timestamp(), rank) if since is not None else (1, 0.0, rank)
        return keys
    if column not in ("loss", "rtt"):
        raise ValueError(f"unknown column {column!r}")
    for name, t in trackers.items():
        value = t.loss_pct if column == "loss" else _rtt(t)
        keys[name] = (value is None, -(value or 0.0), name_rank[name])
    return keys


_SIGN = 1 << 63
_ALL64 = (1 << 64) - 1


def _ordered_bits(values: list[float]) -> list[int]:
    """Each float's 64 bits as an int that orders as the float does (non-negative: sign bit
    set; negative: every bit flipped; -0.0 as 0.0), all packed and unpacked at once."""
    count = len(values)
    bits = struct.unpack(f"<{count}Q", struct.pack(f"<{count}d", *values))
    return [b ^ _ALL64 if b > _SIGN else b | _SIGN for b in bits]


def packed_sort_keys(column: str, trackers: Mapping[str, TrackerView], name_rank: Mapping[str, int],
                     rank_bits: int) -> dict[str, int]:
    """:func:`sort_keys` of a live column (state, down, loss, rtt) as one int per device that
    orders as the key's tuple does, made straight from each tracker's figures (no tuples: at
    100,000 devices this is the `s` key's cost). The name's rank (``name_rank``, each below
    ``1 << rank_bits``) is the lowest ``rank_bits`` bits, so every key is unique and names its
    device; above it the column's part: the state's rank, or a flag (missing: 1, last) and the
    64 order-preserving bits of a float (the down time; minus the loss or the RTT)."""
    out = OUT
    if column == "state":
        state_rank, flapping = _STATE_RANK, _FLAPPING_RANK
        return {name: ((state_rank[s] if (s := t.state) in out or not t.flapping else flapping) << rank_bits)
                | name_rank[name] for name, t in trackers.items()}
    values: list[Any]  # a datetime or a float each, None: missing
    if column == "down":
        values = [t.down_since if t.state in out else None for t in trackers.values()]
        floats = [0.0 if v is None else v.timestamp() for v in values]
    elif column == "loss":
        values = [t.loss_pct for t in trackers.values()]
        floats = [0.0 if v is None else -v for v in values]
    elif column == "rtt":
        values = [None if t.state in out else t.last_rtt_ms for t in trackers.values()]
        floats = [0.0 if v is None else -v for v in values]
    else:
        raise ValueError(f"not a live column {column!r}")
    bits = _ordered_bits(floats)
    return {name: ((((v is None) << 64) | b) << rank_bits) | name_rank[name]
            for name, v, b in zip(trackers, values, bits, strict=True)}


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
