"""The live feed's wire format on Redis: key names, the inventory, the snapshot and the events.

One service (``wardtui serve``) publishes a site; any number of viewers read it. Keys, for site
``S`` (several deployments can share one Redis). ``{S}`` is a Redis Cluster hash tag: every key
of a site hashes to one slot, so the transactions that write or read several of them together
(the snapshot with its delta, inventory, quiet state and heartbeat; the cluster's lease scripts
over every shard key) would run on a Redis Cluster too:

- ``wardtui:{S}:service``   heartbeat, a JSON string with a TTL (:data:`HEARTBEAT_TTL`)
- ``wardtui:{S}:inventory`` the devices, in snapshot order: zlib'd JSON, with an id (its hash)
- ``wardtui:{S}:snapshot``  every device's live state and the gauges, columnar and compressed,
                            with the ID of the last stream entry it covers
- ``wardtui:{S}:delta``     written with each snapshot, in the same transaction: the rows that
                            snapshot changed since the one before, and their figures (what a
                            following viewer reads each second instead of the whole snapshot)
- ``wardtui:{S}:events``    a stream of events (transitions, flaps, reboots, interface and agent
                            changes, gauges, checks asked for by an operator), ``MAXLEN ~``
- ``wardtui:{S}:commands``  a stream of operator commands to the service (``MAXLEN ~``)
- ``wardtui:{S}:reply:ID``  the answer to one command (a list, expires)
- ``wardtui:{S}:viewers``   attached viewers: a sorted set scored by when each last said so

Nothing here talks to Redis: this is bytes in, objects out, so both sides and the benches
share one definition. Text in these keys comes from a network store: it is data, cleaned
again by whoever shows it.
"""

from __future__ import annotations

import array
import hashlib
import json
import math
import re
import struct
import sys
import zlib
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import MISSING, dataclass, fields
from datetime import UTC, datetime
from itertools import chain, repeat, starmap
from typing import Any

from poller.events import (
    OUT,
    CheckResult,
    Event,
    FlapChange,
    Gauges,
    InterfaceChange,
    Reboot,
    SnmpAgentChange,
    State,
    Transition,
    Trap,
)
from poller.inventory import Device, split_parents
from poller.quiet import QuietChanged, quiet_from_json
from poller.text import describe

FORMAT = 1
"""Version of the snapshot and inventory encodings; a viewer refuses another one by name."""
SITE_PATTERN = re.compile(r"[A-Za-z0-9_.-]{1,64}")
DEFAULT_SITE = "wardtui"
REDIS_ENV = "WARDTUI_REDIS"
"""The environment variable naming the live feed's Redis (every command's ``--redis`` default)."""
DEFAULT_REDIS = "redis://127.0.0.1:6379"
"""Where ``wardtui events`` and ``status`` look when neither ``--redis`` nor the variable says."""
HEARTBEAT_TTL = 15
"""Seconds the heartbeat key lives unless refreshed (every second): a service whose key is gone
(or older than :data:`LIVE_AGE`) is not running."""
LIVE_AGE = 5.0
"""A heartbeat older than this many seconds is a service that stopped publishing."""
STREAM_MAXLEN = 2_000
"""Entries kept in the stream (``XADD MAXLEN ~``, so up to ~10 % more). An entry carries the
events the service took off its engine's bus together, :data:`EVENTS_PER_ENTRY` at most: a
transition is ~170 bytes there, a gauges entry 0.7-1.1 kB, so the stream stays under ~25 MB
whatever happens. At 1,000 transitions a second (~20-50 entries a second) that is 40-100 s of
events; a viewer that falls further behind reloads the snapshot."""
EVENTS_PER_ENTRY = 64
COMMANDS_MAXLEN = 1_000
MAX_ROWS = 5_000_000
"""Rows a snapshot may say it has (50 times the largest inventory wardtui is built for)."""
SNMP_BYTES_PER_ROW = 1024
INVENTORY_LIMIT = 256 << 20
"""Bytes an inventory may inflate to (100,000 devices take ~20 MB): a key written to inflate to
gigabytes is refused, not decompressed."""


class FeedFormatError(ValueError):
    """A key holds something this wardtui cannot read (another version, or damaged)."""


def _inflate(data: bytes, limit: int, what: str) -> bytes:
    """zlib.decompress, refusing more than ``limit`` bytes (raises FeedFormatError)."""
    inflater = zlib.decompressobj()
    out = inflater.decompress(data, limit + 1)
    if len(out) > limit:
        raise FeedFormatError(f"{what} inflates past {limit:,} bytes")
    if not inflater.eof:
        raise FeedFormatError(f"{what} is cut short")
    return out


def check_site(site: str) -> str:
    if not SITE_PATTERN.fullmatch(site):
        raise ValueError(f"site {site!r}: use 1-64 letters, digits, '_', '.', '-'")
    return site


@dataclass(frozen=True, slots=True)
class Keys:
    """The Redis keys of one site; with ``poller``, those of one member of a cluster (each
    ``serve --cluster`` publishes its own feed under them, viewers merge them: poller/cluster_feed.py)."""

    site: str
    poller: str = ""

    @property
    def site_prefix(self) -> str:
        # {site}: a Redis Cluster hash tag, every key of the site (its members' too) in one slot
        return f"wardtui:{{{self.site}}}:"

    @property
    def prefix(self) -> str:
        base = self.site_prefix
        return f"{base}poller:{self.poller}:" if self.poller else base

    def of_poller(self, poller: str) -> Keys:
        """The keys of member ``poller`` of this site (its id: data, any bytes but empty)."""
        return Keys(self.site, poller)

    @property
    def pollers(self) -> str:
        """The site's live pollers (poller/cluster/leases.py's heartbeats: id -> Redis ms)."""
        return self.site_prefix + "pollers"

    @property
    def shard_count(self) -> str:
        return self.site_prefix + "shard-count"

    @property
    def lease_ttl(self) -> str:
        """The site's shard lease TTL in ms, as its pollers use it (one for all of them)."""
        return self.site_prefix + "lease-ttl"

    def shard(self, shard: int) -> str:
        """Shard ``shard``'s lease: the id of the poller holding it."""
        return f"{self.site_prefix}shard:{shard}"

    @property
    def service(self) -> str:
        return self.prefix + "service"

    @property
    def inventory(self) -> str:
        return self.prefix + "inventory"

    @property
    def snapshot(self) -> str:
        return self.prefix + "snapshot"

    @property
    def delta(self) -> str:
        return self.prefix + "delta"

    @property
    def events(self) -> str:
        return self.prefix + "events"

    @property
    def commands(self) -> str:
        return self.prefix + "commands"

    @property
    def viewers(self) -> str:
        return self.prefix + "viewers"

    @property
    def quiet(self) -> str:
        """The maintenance windows and acknowledgements in force (poller/quiet.py's JSON),
        written with the snapshot it goes with."""
        return self.prefix + "quiet"

    def reply(self, command_id: str) -> str:
        return f"{self.prefix}reply:{command_id}"


# -- the inventory ------------------------------------------------------------------------------

_DEVICE_FIELDS = ("name", "address", "branch", "region", "type", "host", "parents", "interval", "tags",
                  "line", "snmp_credential", "snmp_port")
"""Device's fields in its constructor's order (decode_inventory builds them positionally)."""


def _slots() -> tuple[Any, ...] | None:
    """Device's slot descriptors in :data:`_DEVICE_FIELDS` order, when setting them is all its
    constructor does (a frozen slots dataclass with no __post_init__); else None."""
    names = tuple(f.name for f in fields(Device))
    if names != _DEVICE_FIELDS or hasattr(Device, "__post_init__") or "__slots__" not in vars(Device):
        return None
    return tuple(vars(Device)[name] for name in names)


_SLOTS = _slots()


def _devices(columns: Sequence[Sequence[Any]], n: int) -> list[Device]:
    """The devices whose fields are ``columns`` (in :data:`_DEVICE_FIELDS` order), equal to
    ``Device(*row)`` for each row. Without the frozen dataclass's __init__ (an
    object.__setattr__ per field) when it only sets fields: each slot is set down its column by
    C-level map, half the time at 100,000 devices."""
    if _SLOTS is None:
        return list(map(Device, *columns))
    devices: list[Device] = list(map(object.__new__, repeat(Device, n)))
    for slot, column in zip(_SLOTS, columns, strict=True):
        deque(map(slot.__set__, devices, column), maxlen=0)
    return devices


_TEXT = ("name", "address", "branch", "region", "type", "host")
# "" on the wire is None (the inventory has no ""). ``parent`` is Device.parent, the parents
# joined by ";" (one name before several were allowed: a viewer of then reads the text whole).
_OPTIONAL_TEXT = ("parent", "snmp_credential")
_NUMBERS = ("interval", "line", "snmp_port")


def encode_inventory(devices: Sequence[Device]) -> tuple[str, bytes]:
    """(id, blob) of ``devices``; the id changes when anything a viewer shows changes.

    Columnar: each text field one string, values joined by newlines (the inventory refuses
    control characters in every field), tags joined by US (0x1f); numbers as JSON lists. At
    100,000 devices this parses in a tenth of the time a JSON row per device took."""
    columns: dict[str, Any] = {}
    for name in _TEXT:
        columns[name] = "\n".join(getattr(d, name) for d in devices)
    for name in _OPTIONAL_TEXT:
        columns[name] = "\n".join(getattr(d, name) or "" for d in devices)
    for name in (*_TEXT, *_OPTIONAL_TEXT):
        if columns[name].count("\n") != max(0, len(devices) - 1):
            raise ValueError(f"a device's {name} holds a newline: the inventory never has one")
    for name in _NUMBERS:
        columns[name] = [getattr(d, name) for d in devices]
    columns["tags"] = "\n".join("\x1f".join(d.tags) for d in devices)
    if columns["tags"].count("\n") != max(0, len(devices) - 1) or any(
            "\x1f" in tag for d in devices for tag in d.tags):
        raise ValueError("a device's tag holds a newline or US: the inventory never has one")
    body = json.dumps({"v": FORMAT, "n": len(devices), "columns": columns}, separators=(",", ":")).encode()
    inventory_id = hashlib.blake2b(body, digest_size=8).hexdigest()
    return inventory_id, zlib.compress(body, 6)


_NUMBER_KINDS: dict[str, frozenset[type]] = {"interval": frozenset({int, float, type(None)}),
                                             "line": frozenset({int}), "snmp_port": frozenset({int})}


def _split_tags(joined: str) -> tuple[str, ...]:
    """A device's tags as the inventory key carries them (joined by US), as a tuple."""
    return tuple(joined.split("\x1f")) if joined else ()


_UNSAFE_IN_COLUMN = re.compile(
    "[\x00-\x08\x0b-\x1e\x7f-\x9f\u061c\u2028\u2029\u202a-\u202e\u2066-\u2069]")
"""What poller.text refuses in an inventory field, less the column separators (newline between
values, US between tags; a US elsewhere is caught by the column's value count or the tags)."""


def decode_inventory(blob: bytes, *, safe_text: bool = True) -> tuple[str, list[Device]]:
    """The devices of an inventory key. With ``safe_text`` (the screens' case: their tables paint
    device fields as they are, since a loaded inventory never holds terminal control), a shown
    field (every one but the tags, which no screen shows) with a character the inventory refuses
    is FeedFormatError: the key was written by someone else than wardtui serve. ``wardtui
    events`` passes False: it prints JSON, which escapes them."""
    try:
        body = _inflate(blob, INVENTORY_LIMIT, "the inventory")
        doc = json.loads(body)
        if not isinstance(doc, dict):
            raise FeedFormatError("the inventory key holds something else")
        if doc.get("v") != FORMAT:
            raise FeedFormatError(f"inventory format {doc.get('v')!r}, this wardtui reads {FORMAT}")
        n = doc["n"]
        if not isinstance(n, int) or n < 0:
            raise FeedFormatError(f"an inventory of {n!r} devices")
        columns = doc["columns"]

        def text(name: str) -> list[str]:
            joined = columns[name]
            if safe_text and name != "tags" and isinstance(joined, str) \
                    and (unsafe := _UNSAFE_IN_COLUMN.search(joined)):
                raise FeedFormatError(f"inventory column {name!r} holds {describe(unsafe.group())}, "
                                      "which no inventory has")
            values: list[str] = joined.split("\n") if n else []
            if len(values) != n:
                raise FeedFormatError(f"inventory column {name!r} has {len(values)} values for {n} devices")
            return values

        def numbers(name: str) -> list[Any]:
            values: list[Any] = columns[name]
            if not isinstance(values, list) or len(values) != n:
                raise FeedFormatError(f"inventory column {name!r} does not have {n} values")
            # JSON gives exact types (a bool is bool, never int): the set of them, made in C.
            if not set(map(type, values)) <= _NUMBER_KINDS[name]:
                raise FeedFormatError(f"inventory column {name!r} holds something else than numbers")
            return values

        def shared(values: list[str], split: Callable[[str], tuple[str, ...]]) -> list[tuple[str, ...]]:
            """``split`` of each value, made once per distinct value (a branch's devices share
            their parent and often their tags): the same tuple for equal values."""
            made: dict[str, tuple[str, ...]] = {}
            return [made[v] if v in made else made.setdefault(v, split(v)) for v in values]

        tags = shared(text("tags"), _split_tags)
        parents = shared(text("parent"), split_parents)
        credential = [v or None for v in text("snmp_credential")]
        names = text("name")
        if len(set(names)) != n:
            raise FeedFormatError("the inventory names a device twice")
        devices = _devices((names, text("address"), text("branch"), text("region"), text("type"),
                            text("host"), parents, numbers("interval"), tags, numbers("line"), credential,
                            numbers("snmp_port")), n)
    except FeedFormatError:
        raise
    except (zlib.error, ValueError, KeyError, TypeError, AttributeError, RecursionError, MemoryError) as exc:
        raise FeedFormatError(f"the inventory key cannot be read: {str(exc)[:200]}") from None
    return hashlib.blake2b(body, digest_size=8).hexdigest(), devices


# -- the snapshot -------------------------------------------------------------------------------

_MAGIC = b"WTS1"
_STATE_CODE = {State.UNKNOWN: 0, State.UP: 1, State.DOWN: 2, State.UNREACHABLE: 3}
_CODE_STATE = (State.UNKNOWN, State.UP, State.DOWN, State.UNREACHABLE)
FLAPPING = 0x10
STATE_CODE, CODE_STATE = _STATE_CODE, _CODE_STATE  # a state's code in the flags byte, and back
_FLAG_BYTES = bytes(code | flap for code in (0, 1, 2) for flap in (0, FLAPPING))  # on the wire
# UNREACHABLE goes on the wire as DOWN (code 2) plus the header's "unreachable" rows: a viewer
# from before it (which refuses a code it does not know, and reads no header key it does not
# know) shows those devices DOWN, as it would have before dependencies, instead of losing the feed.
_AS_DOWN = bytes.maketrans(b"\x03\x13", b"\x02\x12")
_AS_UNREACHABLE = bytes.maketrans(b"\x02\x12", b"\x03\x13")
_UNREACHABLE_RUN = re.compile(b"[\x03\x13]+")


def _unreachable_out(flags: bytes | bytearray, runs: Iterable[tuple[int, int]]) -> list[list[int]]:
    """The runs of rows (start, end) among ``runs`` of ``flags`` that are UNREACHABLE."""
    return [list(m.span()) for s, e in runs for m in _UNREACHABLE_RUN.finditer(flags, s, e)]


def _unreachable_in(value: Any, n: int, what: str) -> list[tuple[int, int]]:
    """A header's "unreachable" runs, checked: sorted, apart, within ``n`` rows."""
    if value is None:
        return []
    runs: list[tuple[int, int]] = []
    end = 0
    if not isinstance(value, list):
        raise FeedFormatError(f"the {what}'s unreachable rows are not a list")
    for run in value:
        if (not isinstance(run, list) or len(run) != 2 or not all(type(x) is int for x in run)
                or not end <= run[0] < run[1] <= n):
            raise FeedFormatError(f"the {what}'s unreachable rows do not match its rows")
        runs.append((run[0], run[1]))
        end = run[1]
    return runs


def _mark_unreachable(flags: bytearray, runs: Iterable[tuple[int, int]]) -> None:
    for s, e in runs:
        flags[s:e] = flags[s:e].translate(_AS_UNREACHABLE)
NAN = float("nan")


def _ts(value: datetime | None) -> float:
    return NAN if value is None else value.timestamp()


def _dt(value: float) -> datetime | None:
    """None for NaN, and for a time no clock gives (a key written by hand): unknown."""
    if math.isnan(value):
        return None
    try:
        return datetime.fromtimestamp(value, UTC)
    except (OverflowError, OSError, ValueError):
        return None


RTT_UNIT = 0.01
"""Milliseconds per unit of the RTT figures: what the screens show below 10 ms (two
decimals), finer than what they show above it."""
LOSS_UNIT = 0.01
"""Percent per unit of the loss figure."""
NONE32 = 0xFFFFFFFF
NONE16 = 0xFFFF


def _q32(value: float | None) -> int:
    return NONE32 if value is None else min(NONE32 - 1, round(value / RTT_UNIT))


def _u32(value: int) -> float | None:
    return None if value == NONE32 else value * RTT_UNIT


_NONZERO = re.compile(b"[^\\x00]+")


@dataclass(slots=True)
class Columns:
    """Every device's live figures, one array per figure, in inventory order, kept as they go on
    the wire (so that encoding is copying, not converting 100,000 values a second)."""

    flags: bytearray  # state code | FLAPPING
    down_since: array.array[float]  # epoch seconds, NaN: none
    last_change: array.array[float]
    last_rtt: array.array[int]  # RTT_UNIT ms, NONE32: none
    avg_rtt: array.array[int]
    jitter: array.array[int]
    loss: array.array[int]  # LOSS_UNIT percent of the window, NONE16: no probe yet

    @classmethod
    def empty(cls, n: int) -> Columns:
        nans = array.array("d", [NAN]) * n
        nones = array.array("I", [NONE32]) * n
        return cls(bytearray(n), nans, array.array("d", nans), nones, array.array("I", nones),
                   array.array("I", nones), array.array("H", [NONE16]) * n)

    def __len__(self) -> int:
        return len(self.flags)

    def set_row(self, i: int, tracker: Any) -> None:
        """Row ``i`` from a :class:`~poller.state.DeviceTracker` (read on the engine's loop)."""
        self.flags[i] = _STATE_CODE[tracker.state] | (FLAPPING if tracker.flapping else 0)
        since = tracker.down_since
        self.down_since[i] = NAN if since is None else since.timestamp()
        change = tracker.last_change
        self.last_change[i] = NAN if change is None else change.timestamp()
        self.last_rtt[i] = _q32(tracker.last_rtt_ms)
        self.avg_rtt[i] = _q32(tracker.avg_rtt_ms)
        self.jitter[i] = _q32(tracker.jitter_ms)
        loss = tracker.loss_pct
        self.loss[i] = NONE16 if loss is None else round(loss / LOSS_UNIT)

    def row(self, i: int) -> tuple[State, bool, datetime | None, datetime | None,
                                   float | None, float | None, float | None, float | None]:
        flags = self.flags[i]
        loss = self.loss[i]
        return (_CODE_STATE[flags & 0x0F], bool(flags & FLAPPING), _dt(self.down_since[i]),
                _dt(self.last_change[i]), _u32(self.last_rtt[i]), _u32(self.avg_rtt[i]),
                _u32(self.jitter[i]), None if loss == NONE16 else loss * LOSS_UNIT)

    def changed_rows(self, other: Columns) -> list[int]:
        """Rows whose figures differ from ``other``'s (as many rows), compared as the bytes they
        are (NaN equals NaN): each column XORed whole, then only its nonzero bytes looked at."""
        if len(other) != len(self):
            raise ValueError(f"{len(other)} rows where {len(self)} belong")
        rows: set[int] = set()
        for mine, theirs in ((self.flags, other.flags), (self.down_since, other.down_since),
                             (self.last_change, other.last_change), (self.last_rtt, other.last_rtt),
                             (self.avg_rtt, other.avg_rtt), (self.jitter, other.jitter),
                             (self.loss, other.loss)):
            a, b = memoryview(mine).cast("B"), memoryview(theirs).cast("B")
            if a == b:
                continue
            width = len(a) // len(self)
            diff = (int.from_bytes(a, "little") ^ int.from_bytes(b, "little")).to_bytes(len(a), "little")
            for match in _NONZERO.finditer(diff):
                rows.update(range(match.start() // width, (match.end() - 1) // width + 1))
        return sorted(rows)

    def same_row(self, other: Columns, i: int, j: int) -> bool:
        """Whether row ``i`` here equals row ``j`` of ``other`` (NaN equals NaN)."""
        if (self.flags[i] != other.flags[j] or self.last_rtt[i] != other.last_rtt[j]
                or self.loss[i] != other.loss[j] or self.avg_rtt[i] != other.avg_rtt[j]
                or self.jitter[i] != other.jitter[j]):
            return False
        for mine, theirs in ((self.down_since, other.down_since), (self.last_change, other.last_change)):
            a, b = mine[i], theirs[j]
            if a != b and not (math.isnan(a) and math.isnan(b)):
                return False
        return True


@dataclass(frozen=True, slots=True)
class Snapshot:
    """One decoded snapshot."""

    seq: int  # the service's snapshot counter (restarts at 1 with the service)
    stream_id: str  # the last event stream ID this state includes ("0-0": none yet)
    at: datetime
    inventory_id: str
    started: str  # the service run's start time (ISO): a new run is a new sequence
    gauges: Gauges | None
    columns: Columns
    changed: array.array[int] | None  # rows changed since snapshot seq - 1 (None: not known)
    snmp: dict[int, dict[str, Any]]  # row -> SNMP summary (devices with an agent)
    event_n: int | None = None  # the number (``n``) of the stream entry ``stream_id`` names


def _shuffle(raw: bytes, width: int) -> bytes:
    """Byte planes: all first bytes, then all second bytes, ... (floats' exponent bytes, nearly
    constant across devices, then compress to almost nothing)."""
    return b"".join(raw[k::width] for k in range(width))


def _unshuffle(planes: bytes, width: int) -> bytes:
    n = len(planes) // width
    out = bytearray(len(planes))
    for k in range(width):
        out[k::width] = planes[k * n:(k + 1) * n]
    return bytes(out)


def _plain(values: array.array[Any]) -> bytes:
    a = array.array(values.typecode, values)
    if sys.byteorder != "little":
        a.byteswap()
    return _shuffle(a.tobytes(), a.itemsize)


def _unplain(raw: bytes, code: str) -> array.array[Any]:
    a = array.array(code)
    a.frombytes(_unshuffle(raw, a.itemsize))
    if sys.byteorder != "little":
        a.byteswap()
    return a


def bitmap(rows: Iterable[int], n: int) -> bytes:
    """Rows as a bitmap of ``n`` bits (row i: bit i % 8 of byte i // 8)."""
    bits = bytearray((n + 7) // 8)
    for i in rows:
        bits[i >> 3] |= 1 << (i & 7)
    return bytes(bits)


_ONE = re.compile(b"\x01")
_BYTE_BITS = tuple(bytes(byte >> k & 1 for k in range(8)) for byte in range(256))
"""Each byte value as its 8 bits, one byte each (least significant first)."""


def _rows(bits: bytes) -> array.array[int]:
    """The rows set in a bitmap: expanded to a byte per row, then found in C (a Python step
    per byte took four times as long at 100,000 devices)."""
    expanded = b"".join(map(_BYTE_BITS.__getitem__, bits))
    return array.array("I", map(re.Match.start, _ONE.finditer(expanded)))


def encode_snapshot(seq: int, stream_id: str, at: datetime, inventory_id: str, started: str,
                    gauges: Gauges | None, columns: Columns, changed: Iterable[int] | bytes | None,
                    snmp: dict[int, dict[str, Any]] | bytes | None = None, level: int = 1,
                    event_n: int | None = None) -> bytes:
    """The snapshot's bytes: a JSON header, then the zlib'd columns (times as float64, RTTs in
    :data:`RTT_UNIT` integers, loss in hundredths of a percent, each in byte planes), a bitmap of
    the rows changed since the previous snapshot, and SNMP summaries. ``event_n``: the number of
    the event ``stream_id`` names, so that a viewer sees a gap even in the first event it reads.
    Heavy (~10-40 ms at 100,000 devices): run it off the engine's loop (zlib frees the GIL)."""
    n = len(columns)
    header = {"v": FORMAT, "seq": seq, "id": stream_id, "at": at.timestamp(), "inventory": inventory_id,
              "started": started, "n": n, "gauges": None if gauges is None else encode_event(gauges),
              "changed": changed is not None, "event_n": event_n}
    flags = bytes(columns.flags)
    unreachable = _unreachable_out(flags, [(0, n)])
    if unreachable:
        header["unreachable"] = unreachable
        flags = flags.translate(_AS_DOWN)
    snmp_json = snmp if isinstance(snmp, bytes) else json.dumps(
        {str(k): v for k, v in (snmp or {}).items()}, separators=(",", ":")).encode()
    body = b"".join([flags, *(_plain(c) for c in (
                         columns.down_since, columns.last_change, columns.last_rtt, columns.avg_rtt,
                         columns.jitter, columns.loss)),
                     b"" if changed is None else
                     changed if isinstance(changed, bytes) else bitmap(changed, n), snmp_json])
    head = json.dumps(header, separators=(",", ":")).encode()
    return _MAGIC + struct.pack("<I", len(head)) + head + zlib.compress(body, level)


def _event_n(value: Any) -> int | None:
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError(f"event number {value!r}")
    return value


def peek_snapshot(blob: bytes) -> tuple[int, str, str, str]:
    """(seq, started, inventory id, stream ID) from a snapshot's header alone, its columns not
    inflated: whether a viewer can take it. Raises FeedFormatError as decode_snapshot does."""
    try:
        header, stream_id, _ = _key_header(blob, _MAGIC, "snapshot")
        return int(header["seq"]), str(header.get("started", "")), str(header["inventory"]), stream_id
    except FeedFormatError:
        raise
    except (ValueError, KeyError, TypeError, struct.error, RecursionError, OverflowError) as exc:
        raise FeedFormatError(f"the snapshot cannot be read: {str(exc)[:200]}") from None


_STREAM_ID = re.compile(r"[0-9]{1,20}(-[0-9]{1,20})?")


def _key_header(blob: bytes, magic: bytes, what: str) -> tuple[dict[str, Any], str, int]:
    """(header, its stream ID, the header's size) of a snapshot or delta key (``what``), whose
    bytes start with ``magic``. Raises FeedFormatError, or what reading a forged one raises
    (the callers turn that into FeedFormatError)."""
    if blob[:4] != magic:
        raise FeedFormatError(f"the {what} key holds something else (not a wardtui {what} "
                              f"of format {FORMAT})")
    (size,) = struct.unpack_from("<I", blob, 4)
    header = json.loads(blob[8:8 + size])
    if not isinstance(header, dict) or header.get("v") != FORMAT:
        raise FeedFormatError(f"the {what}'s header is not a wardtui header of format {FORMAT}")
    stream_id = str(header["id"])
    if not _STREAM_ID.fullmatch(stream_id):
        raise FeedFormatError(f"the {what}'s stream ID {stream_id[:40]!r} is not one")
    return header, stream_id, size


def decode_snapshot(blob: bytes) -> Snapshot:
    try:
        if blob[:4] != _MAGIC:
            raise FeedFormatError("the snapshot key holds something else (not a wardtui snapshot "
                                  f"of format {FORMAT})")
        (size,) = struct.unpack_from("<I", blob, 4)
        header = json.loads(blob[8:8 + size])
        if not isinstance(header, dict):
            raise FeedFormatError("the snapshot's header is not a wardtui header")
        if header.get("v") != FORMAT:
            raise FeedFormatError(f"snapshot format {header.get('v')!r}, this wardtui reads {FORMAT}")
        n = int(header["n"])
        if not 0 <= n <= MAX_ROWS:
            raise FeedFormatError(f"a snapshot of {n} rows")
        body = _inflate(blob[8 + size:], 31 * n + (n + 7) // 8 + SNMP_BYTES_PER_ROW * n + (1 << 20),
                        "the snapshot")
        pos = 0

        def take(length: int) -> bytes:
            nonlocal pos
            part = body[pos:pos + length]
            if len(part) != length:
                raise FeedFormatError("the snapshot is cut short")
            pos += length
            return part

        flags = bytearray(take(n))
        if flags.translate(None, _FLAG_BYTES):
            raise FeedFormatError("the snapshot holds a state code that does not exist")
        _mark_unreachable(flags, _unreachable_in(header.get("unreachable"), n, "snapshot"))
        down_since, last_change = _unplain(take(8 * n), "d"), _unplain(take(8 * n), "d")
        last_rtt, avg_rtt, jitter = (_unplain(take(4 * n), "I") for _ in range(3))
        loss = _unplain(take(2 * n), "H")
        changed = _rows(take((n + 7) // 8)) if header.get("changed") else None
        if changed and changed[-1] >= n:
            raise FeedFormatError("the snapshot's changed rows go past its last row")
        snmp = {int(k): v for k, v in json.loads(body[pos:] or b"{}").items()}
        if not all(0 <= k < n and isinstance(v, dict) for k, v in snmp.items()):
            raise FeedFormatError("the snapshot's SNMP summaries do not match its rows")
        gauges = decode_event(header["gauges"]) if header.get("gauges") else None
        stream_id = str(header["id"])
        if not _STREAM_ID.fullmatch(stream_id):  # viewers compare it as (ms, seq)
            raise FeedFormatError(f"the snapshot's stream ID {stream_id[:40]!r} is not one")
        return Snapshot(int(header["seq"]), stream_id, datetime.fromtimestamp(header["at"], UTC),
                        str(header["inventory"]), str(header.get("started", "")),
                        gauges if isinstance(gauges, Gauges) else None,
                        Columns(flags, down_since, last_change, last_rtt, avg_rtt, jitter, loss),
                        changed, snmp, _event_n(header.get("event_n")))
    except FeedFormatError:
        raise
    except (zlib.error, ValueError, KeyError, TypeError, AttributeError, struct.error, OverflowError,
            OSError, RecursionError, MemoryError) as exc:
        raise FeedFormatError(f"the snapshot cannot be read: {str(exc)[:200]}") from None


# -- the delta ----------------------------------------------------------------------------------

_DELTA_MAGIC = b"WTD1"
DELTA_TTL = 15
"""Seconds the delta key lives unless rewritten (with every snapshot): a stopped service's goes."""
_COLUMN_CODES = ("d", "d", "I", "I", "I", "H")  # down_since, last_change, last_rtt, avg_rtt, jitter, loss


def _column_arrays(columns: Columns) -> tuple[array.array[Any], ...]:
    return (columns.down_since, columns.last_change, columns.last_rtt, columns.avg_rtt, columns.jitter,
            columns.loss)


_RUN = re.compile(b"\x01+")
_WIDTHS = (8, 8, 4, 4, 4, 2)


def _runs(bits: bytes) -> list[tuple[int, int]]:
    """The runs of consecutive rows set in a bitmap, as (start, end): found in C. The rows a
    snapshot changed are mostly one run (the engine checks devices in inventory order, spread
    over the interval), so the figures of a run move as one slice, not row by row."""
    return [m.span() for m in _RUN.finditer(b"".join(map(_BYTE_BITS.__getitem__, bits)))]


def encode_delta(seq: int, stream_id: str, inventory_id: str, started: str, columns: Columns,
                 changed: Iterable[int] | bytes | None, event_n: int | None = None) -> bytes:
    """The delta key of snapshot ``seq`` (written beside it): the rows ``changed`` since snapshot
    ``seq - 1`` (a bitmap, or the rows) and their figures as that snapshot holds them, so that a
    viewer holding ``seq - 1`` makes ``seq``'s columns from it without inflating the whole
    snapshot (~30 ms at 100,000 devices). ``changed`` None (a full snapshot: a new inventory, a
    snapshot that could not be written): a header alone, saying which snapshot to read instead."""
    n = len(columns)
    bits = None if changed is None else changed if isinstance(changed, bytes) else bitmap(changed, n)
    runs = [] if bits is None else _runs(bits)
    header = {"v": FORMAT, "seq": seq, "id": stream_id, "inventory": inventory_id, "started": started,
              "n": n, "rows": None if bits is None else sum(e - s for s, e in runs), "event_n": event_n}
    unreachable = _unreachable_out(columns.flags, runs)
    if unreachable:
        header["unreachable"] = unreachable  # absolute rows, as the snapshot's (see _AS_DOWN)
    head = json.dumps(header, separators=(",", ":")).encode()
    if bits is None:
        return _DELTA_MAGIC + struct.pack("<I", len(head)) + head
    parts = [bits, b"".join(columns.flags[s:e] for s, e in runs).translate(_AS_DOWN)]
    for code, width, column in zip(_COLUMN_CODES, _WIDTHS, _column_arrays(columns), strict=True):
        raw = memoryview(column).cast("B")
        values = array.array(code)
        values.frombytes(b"".join(raw[s * width:e * width] for s, e in runs))
        parts.append(_plain(values))
    return _DELTA_MAGIC + struct.pack("<I", len(head)) + head + zlib.compress(b"".join(parts), 1)


@dataclass(frozen=True, slots=True)
class DeltaHeader:
    """What a delta key says of itself (:func:`peek_delta`)."""

    seq: int
    stream_id: str
    inventory_id: str
    started: str
    n: int  # rows of the snapshot
    rows: int | None  # rows it carries; None: none (read the snapshot)
    event_n: int | None
    size: int  # bytes of the header, magic and length included
    unreachable: tuple[tuple[int, int], ...] = ()  # runs of its rows that are UNREACHABLE


def peek_delta(blob: bytes) -> DeltaHeader:
    """The header of a delta key, its rows not inflated. Raises FeedFormatError for what wardtui
    serve does not write."""
    try:
        header, stream_id, size = _key_header(blob, _DELTA_MAGIC, "delta")
        n, rows = header["n"], header["rows"]
        if not isinstance(n, int) or isinstance(n, bool) or not 0 <= n <= MAX_ROWS:
            raise FeedFormatError(f"a delta of a snapshot of {str(n)[:20]} rows")
        if rows is not None and (not isinstance(rows, int) or isinstance(rows, bool) or not 0 <= rows <= n):
            raise FeedFormatError(f"a delta of {str(rows)[:20]} rows of {n}")
        return DeltaHeader(int(header["seq"]), stream_id, str(header["inventory"]), str(header["started"]),
                           n, rows, _event_n(header.get("event_n")), 8 + size,
                           tuple(_unreachable_in(header.get("unreachable"), n, "delta")))
    except FeedFormatError:
        raise
    except (ValueError, KeyError, TypeError, struct.error, RecursionError, OverflowError) as exc:
        raise FeedFormatError(f"the delta cannot be read: {str(exc)[:200]}") from None


def apply_delta(blob: bytes, header: DeltaHeader, columns: Columns) -> tuple[Columns, array.array[int]]:
    """``columns`` (the snapshot before the delta's, never changed) with the delta's rows set:
    new columns, as the delta's snapshot holds them, and the rows it changed. Raises
    FeedFormatError for a delta that does not fit them."""
    k, n = header.rows, len(columns)
    if k is None or header.n != n:
        raise FeedFormatError(f"the delta is of {header.n} rows, not {n}")
    size = (n + 7) // 8
    try:
        body = _inflate(blob[header.size:], size + 31 * k, "the delta")
        if len(body) != size + 31 * k:
            raise FeedFormatError("the delta's rows are cut short or run long")
        runs = _runs(body[:size])
        if sum(e - s for s, e in runs) != k or (runs and runs[-1][1] > n):
            raise FeedFormatError("the delta's rows do not match its figures")
        flags = body[size:size + k]
        if flags.translate(None, _FLAG_BYTES):
            raise FeedFormatError("the delta holds a state code that does not exist")
        out = Columns(bytearray(columns.flags),
                      *(array.array(c.typecode, c) for c in _column_arrays(columns)))  # memcpy
        pos = size + k
        targets: list[Any] = [out.flags]
        sources: list[Any] = [flags]
        for code, width, column in zip(_COLUMN_CODES, _WIDTHS, _column_arrays(out), strict=True):
            targets.append(column)
            sources.append(_unplain(body[pos:pos + width * k], code))
            pos += width * k
        for target, source in zip(targets, sources, strict=True):
            at = 0
            for s, e in runs:  # a slice a run: one, or a few hundred, not a row at a time
                target[s:e] = source[at:at + e - s]
                at += e - s
        _mark_unreachable(out.flags, header.unreachable)
        rows = array.array("I", chain.from_iterable(starmap(range, runs)))
        return out, rows
    except FeedFormatError:
        raise
    except (zlib.error, ValueError, TypeError, IndexError, OverflowError, MemoryError) as exc:
        raise FeedFormatError(f"the delta cannot be read: {str(exc)[:200]}") from None


# -- events -------------------------------------------------------------------------------------

STREAMED: tuple[type, ...] = (Transition, FlapChange, Gauges, Reboot, InterfaceChange, SnmpAgentChange,
                              CheckResult, Trap)
"""What goes on the stream. Check results only when an operator asked for one ("probe now"):
the rest reach viewers as the snapshot's figures."""
_BY_NAME: dict[str, type] = {cls.__name__: cls for cls in STREAMED}
_KINDS: dict[str, tuple[type, ...]] = {"str": (str,), "int": (int,), "float": (int, float), "bool": (bool,),
                                       "datetime": (int, float), "State": (str,), "dict[str, float]": (dict,)}


def _schema(cls: type) -> tuple[tuple[str, str, bool, bool], ...]:
    """(name, kind, None allowed, has a default) of each field, from the annotations."""
    out = []
    for f in fields(cls):
        kind, _, none = str(f.type).partition(" | ")
        if kind not in _KINDS:
            raise TypeError(f"{cls.__name__}.{f.name}: {f.type} cannot be streamed")
        has_default = f.default is not MISSING or f.default_factory is not MISSING
        out.append((f.name, kind, none == "None", has_default))
    return tuple(out)


_SCHEMAS = {name: _schema(cls) for name, cls in _BY_NAME.items()}


def encode_event(event: Event, **extra: Any) -> str:
    """One streamed event as compact JSON, losslessly (unlike the JSONL schema, which is for
    people and scripts: ``wardtui events`` decodes this and prints that)."""
    cls = type(event)
    if cls is QuietChanged:  # type: ignore[comparison-overlap]  # the whole quiet state, as its JSON
        quiet: QuietChanged = event  # type: ignore[assignment]
        return json.dumps({"t": "QuietChanged", "q": json.loads(quiet.quiet.to_json()), "by": quiet.by,
                           **extra}, separators=(",", ":"))
    if cls.__name__ not in _BY_NAME:
        raise TypeError(f"{cls.__name__} is not streamed")
    doc: dict[str, Any] = {"t": cls.__name__}
    for f in fields(event):
        value = getattr(event, f.name)
        if isinstance(value, datetime):
            value = value.timestamp()
        elif isinstance(value, State):
            value = value.value
        doc[f.name] = value
    doc.update(extra)
    return json.dumps(doc, separators=(",", ":"))


def _field(name: str, kind: str, value: Any) -> Any:
    """``value`` as field ``name`` of kind ``kind`` holds it; ValueError when it cannot."""
    if not isinstance(value, _KINDS[kind]) or (isinstance(value, bool) and kind != "bool"):
        raise ValueError(f"{name}: {type(value).__name__} where {kind} belongs")
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{name}: {value}")
    return _converted(name, kind, value)


def _converted(name: str, kind: str, value: Any) -> Any:
    if kind == "datetime":
        return datetime.fromtimestamp(value, UTC)
    if kind == "State":
        return State(value)
    if kind == "dict[str, float]":
        for k, v in value.items():
            if not isinstance(v, int | float) or isinstance(v, bool) or not math.isfinite(v):
                raise ValueError(f"{name}: {k!r} is not a number")
        return dict(value)
    return value


def _decode_fields(cls: type, doc: dict[str, Any]) -> Event:
    """An event of ``cls`` from its JSON's fields, each checked against the annotations."""
    values: dict[str, Any] = {}
    for name, kind, none, has_default in _SCHEMAS[cls.__name__]:
        if name not in doc and has_default:
            continue
        value = doc.get(name)
        values[name] = None if value is None and none else _field(name, kind, value)
    event: Event = cls(**values)
    return event


# The kinds a viewer reads ~1,000 of a second at 1 % churn of 100,000 devices, checked field by
# field as _decode_fields does (a test holds them to the same answers), in a third of its time.

_STATE_BY_VALUE = {state.value: state for state in State}


def _text(name: str, value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{name}: {type(value).__name__} where str belongs")
    return value


def _count(name: str, value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError(f"{name}: {type(value).__name__} where int belongs")
    return value


def _number(name: str, value: Any) -> float:
    if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value):
        raise ValueError(f"{name}: {value!r:.40} where a number belongs")
    return value


def _time(name: str, value: Any) -> datetime:
    return datetime.fromtimestamp(_number(name, value), UTC)


def _state(name: str, value: Any) -> State:
    state = _STATE_BY_VALUE.get(value) if isinstance(value, str) else None
    if state is None:
        raise ValueError(f"{name}: not a state")
    return state


def _transition(doc: dict[str, Any]) -> Transition:
    since, rtt = doc.get("down_since"), doc.get("rtt_ms")
    return Transition(_text("device", doc.get("device")), _text("address", doc.get("address")),
                      _state("from_state", doc.get("from_state")), _state("to_state", doc.get("to_state")),
                      _time("at", doc.get("at")), None if since is None else _time("down_since", since),
                      None if rtt is None else _number("rtt_ms", rtt))


def _check_result(doc: dict[str, Any]) -> CheckResult:
    rtt = doc.get("rtt_ms")
    return CheckResult(_text("device", doc.get("device")), _text("address", doc.get("address")),
                       _time("at", doc.get("at")), _count("sent", doc.get("sent")),
                       _count("received", doc.get("received")),
                       None if rtt is None else _number("rtt_ms", rtt),
                       _state("state", doc.get("state")))


_FAST: dict[type, Any] = {Transition: _transition, CheckResult: _check_result}


def decode_event(text: str | bytes | dict[str, Any]) -> Event | None:
    """The event ``text`` holds (or its JSON already parsed), or None for a type this wardtui
    does not know (newer services may stream more kinds: skipped, not an error). Raises
    FeedFormatError when damaged, or when a field holds another type than the event's (text
    written into the stream by hand)."""
    try:
        doc = text if isinstance(text, dict) else json.loads(text)
        if not isinstance(doc, dict):
            raise ValueError("not an object")
        cls = _BY_NAME.get(doc.get("t", ""))
        if cls is None:
            if doc.get("t") == "QuietChanged":
                by = doc.get("by", "")
                q = doc.get("q")
                if not isinstance(q, dict):
                    raise ValueError("QuietChanged: no quiet state")
                return QuietChanged(quiet_from_json(q), by[:64] if isinstance(by, str) else "")  # type: ignore[return-value]
            return None
        fast = _FAST.get(cls)
        event: Event = fast(doc) if fast is not None else _decode_fields(cls, doc)
        return event
    except (ValueError, TypeError, AttributeError, OverflowError, OSError, RecursionError) as exc:
        # QuietFormatError is a ValueError: a damaged quiet state is a damaged event
        raise FeedFormatError(f"an event cannot be read: {str(exc)[:200]}") from None


def encode_entry(events: Sequence[str], first: int, run: str) -> str:
    """One stream entry (field ``b``) carrying ``events`` (each :func:`encode_event`'s JSON),
    numbered ``first``, ``first + 1``, ... in service run ``run``."""
    return f'{{"r":{json.dumps(run)},"n":{first},"e":[{",".join(events)}]}}'


_JSON = json.JSONDecoder()


def entry_events(fields: dict[bytes, Any]) -> tuple[int, str, list[Any]] | None:
    """(number of the first event, service run, the events' JSON objects) of a stream entry:
    ``b`` (:func:`encode_entry`) or ``e`` (one event with its ``n`` and ``r``, as wardtui wrote
    before it batched them). None for an entry that is neither (written by someone else). The
    events are not checked here: :func:`decode_event` does, one by one."""
    raw = fields.get(b"b")
    batch = raw is not None
    if raw is None:
        raw = fields.get(b"e")
        if raw is None:
            return None
    try:
        # json.loads of bytes finds their encoding in Python first: half its time.
        text = raw.decode() if isinstance(raw, bytes) else raw
        doc, end = _JSON.raw_decode(text)
        if end != len(text) or not isinstance(doc, dict):
            return None
        n, run = doc["n"], doc["r"]
        if not isinstance(n, int) or isinstance(n, bool) or n < 0 or not isinstance(run, str):
            return None
        events = doc["e"] if batch else [doc]
        if not isinstance(events, list) or not events:
            return None
    except (ValueError, KeyError, TypeError, RecursionError):
        return None
    return n, run, events


def event_extra(text: str | bytes | dict[str, Any]) -> dict[str, Any]:
    """What an event's JSON carries beyond the event (``by``: who asked for a probe)."""
    doc = text if isinstance(text, dict) else json.loads(text)
    known = {"t"} | {f.name for f in fields(_BY_NAME[doc["t"]])} if doc.get("t") in _BY_NAME else {"t"}
    return {k: v for k, v in doc.items() if k not in known}


# -- the viewer's copy of a tracker -------------------------------------------------------------


class LiveRows:
    """The snapshot columns every :class:`LiveTracker` of one inventory reads: a viewer's refresh
    swaps :attr:`columns` for the newer snapshot's (one assignment, not 10,000 rows loaded).
    :attr:`overridden`: its trackers that an event streamed since the snapshot overrides, so
    that a screen can read every other row straight from the columns (:func:`in_row_order`)."""

    __slots__ = ("columns", "overridden")

    def __init__(self, columns: Columns) -> None:
        self.columns = columns
        self.overridden: set[LiveTracker] = set()


def in_row_order(trackers: Mapping[str, Any]) -> tuple[Columns, list[str]] | None:
    """When ``trackers`` are :class:`LiveTracker` rows 0..n-1 of one :class:`LiveRows`, in that
    order (a feed's mapping): their columns as of now and the names of those an event overrides
    (read each of them through the tracker); else None. Read from any thread: the columns are
    never changed once taken (a refresh swaps in new ones) and the set is copied at once."""
    n = len(trackers)
    if not n:
        return None
    first = next(iter(trackers.values()))
    if type(first) is not LiveTracker:
        return None
    rows = first._view[0]
    columns = rows.columns
    if len(columns) != n or first._view[1] != 0:
        return None
    last = next(reversed(trackers.values())) if isinstance(trackers, dict) else None
    if last is None or type(last) is not LiveTracker or last._view != (rows, n - 1):
        return None
    return columns, [t.device.name for t in set(rows.overridden)]


_UNSET: Any = object()
"""An override not set: the row's column says (None is a value: no down_since)."""


class LiveTracker:
    """A device as a viewer knows it from the feed: what the screens read of a
    :class:`~poller.state.DeviceTracker`. Whole-run totals and the window itself stay in the
    service: they read as unknown here.

    A view, not a copy: each figure is read from row :attr:`row` of the shared
    :class:`LiveRows` when asked (times made into datetimes then, and kept while the column holds
    the same time), unless an event streamed after the snapshot said otherwise: what the event
    said (state, flapping, the times, the last RTT) is kept here until a snapshot covering the
    event's stream position is taken (:meth:`settle`)."""

    __slots__ = (
        "_change",
        "_down_dt",
        "_flapping",
        "_last_dt",
        "_rtt",
        "_since",
        "_state",
        "_view",
        "device",
        "position",
    )

    remote = True  # the screens show what the service's snapshot carries, and say so
    received = 0
    sent = 0
    rtt_min_ms: float | None = None
    rtt_max_ms: float | None = None
    total_avg_rtt_ms: float | None = None

    def __init__(self, device: Device, rows: LiveRows | None = None, row: int = 0) -> None:
        self.device = device
        # (rows, index) in one attribute: rebinding a tracker to another inventory's rows is
        # one assignment, never a moment with the new index and the old columns.
        self._view = (rows or LiveRows(Columns.empty(1)), row)
        self.position: tuple[int, int] | None = None  # stream position of the last event applied
        self._state: State | None = None
        self._flapping: bool | None = None
        self._since: datetime | None = _UNSET
        self._change: datetime | None = _UNSET
        self._rtt: float | None = _UNSET
        self._down_dt: tuple[float, datetime | None] | None = None
        self._last_dt: tuple[float, datetime | None] | None = None

    @property
    def row(self) -> int:
        return self._view[1]

    def bind(self, rows: LiveRows, row: int) -> None:
        """Read row ``row`` of ``rows`` from now on (a new inventory)."""
        old = self._view[0]
        self._view = (rows, row)
        if self in old.overridden:
            old.overridden.discard(self)
            rows.overridden.add(self)

    def load(self, columns: Columns, i: int) -> None:
        """Row ``i`` of ``columns`` (rows of its own; a feed's trackers share theirs instead)."""
        self._view = (LiveRows(columns), i)
        self.settle()

    def settle(self) -> None:
        """Forget what events said: the columns cover them now."""
        self._view[0].overridden.discard(self)
        self.position = None
        self._state = self._flapping = None
        self._since = self._change = self._rtt = _UNSET

    @property
    def state(self) -> State:
        state = self._state
        if state is None:
            rows, i = self._view
            return _CODE_STATE[rows.columns.flags[i] & 0x0F]
        return state

    @property
    def flapping(self) -> bool:
        flapping = self._flapping
        if flapping is None:
            rows, i = self._view
            return bool(rows.columns.flags[i] & FLAPPING)
        return flapping

    @property
    def down_since(self) -> datetime | None:
        since = self._since
        if since is not _UNSET:
            return since
        rows, i = self._view
        value = rows.columns.down_since[i]
        if value != value:  # NaN: none
            return None
        cached = self._down_dt
        if cached is None or cached[0] != value:
            cached = self._down_dt = (value, _dt(value))
        return cached[1]

    @property
    def last_change(self) -> datetime | None:
        change = self._change
        if change is not _UNSET:
            return change
        rows, i = self._view
        value = rows.columns.last_change[i]
        if value != value:  # NaN: none
            return None
        cached = self._last_dt
        if cached is None or cached[0] != value:
            cached = self._last_dt = (value, _dt(value))
        return cached[1]

    @property
    def last_rtt_ms(self) -> float | None:
        rtt = self._rtt
        if rtt is not _UNSET:
            return rtt
        rows, i = self._view
        return _u32(rows.columns.last_rtt[i])

    @property
    def avg_rtt_ms(self) -> float | None:
        rows, i = self._view
        return _u32(rows.columns.avg_rtt[i])

    @property
    def jitter_ms(self) -> float | None:
        rows, i = self._view
        return _u32(rows.columns.jitter[i])

    @property
    def loss_pct(self) -> float | None:
        rows, i = self._view
        loss = rows.columns.loss[i]
        return None if loss == NONE16 else loss * LOSS_UNIT

    def window(self) -> tuple[float | None, ...]:
        return ()

    def apply(self, event: Event) -> bool:
        """Fold a streamed event in; whether it changed what a row shows."""
        if isinstance(event, Transition | FlapChange | CheckResult):
            self._view[0].overridden.add(self)  # before the figures: a reader sees the row's own
        if isinstance(event, Transition):
            self._state = event.to_state
            self._change = event.at
            self._since = event.down_since if event.to_state in OUT else None
            if event.rtt_ms is not None:
                self._rtt = event.rtt_ms
            return True
        if isinstance(event, FlapChange):
            self._flapping = event.flapping
            return True
        if isinstance(event, CheckResult):
            if event.rtt_ms is not None:
                self._rtt = event.rtt_ms
            return True
        return False
