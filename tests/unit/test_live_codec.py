"""The live feed's wire format (poller/live.py): every figure survives the round trip (within the
documented quantisation), damaged or foreign bytes raise FeedFormatError and nothing else."""

from __future__ import annotations

import dataclasses
import json
import math
import random
import struct
import time
import zlib
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest

from poller import live
from poller.events import (
    CheckResult,
    FlapChange,
    Gauges,
    InterfaceChange,
    Reboot,
    SnmpAgentChange,
    State,
    Transition,
    Trap,
)
from poller.inventory import Device
from poller.live import (
    FLAPPING,
    LOSS_UNIT,
    RTT_UNIT,
    STREAMED,
    Columns,
    FeedFormatError,
    LiveTracker,
    apply_delta,
    decode_event,
    decode_inventory,
    decode_snapshot,
    encode_delta,
    encode_event,
    encode_inventory,
    encode_snapshot,
    peek_delta,
)

T0 = datetime(2026, 12, 5, 12, 0, 0, 123456, tzinfo=UTC)


def tracker(state: State = State.UP, flapping: bool = False, down_since: datetime | None = None,
            last_change: datetime | None = None, rtt: float | None = None, avg: float | None = None,
            jitter: float | None = None, loss: float | None = None) -> Any:
    return SimpleNamespace(state=state, flapping=flapping, down_since=down_since, last_change=last_change,
                           last_rtt_ms=rtt, avg_rtt_ms=avg, jitter_ms=jitter, loss_pct=loss)


ROWS = [
    tracker(),  # nothing known but the state
    tracker(State.UNKNOWN),
    tracker(State.DOWN, True, T0, T0 + timedelta(seconds=3), None, 12.345, 0.5, 100.0),
    tracker(State.UP, True, None, T0, 0.004, 0.006, 0.0, 0.0),  # below one unit: 0.00 / 0.01
    tracker(State.UP, False, None, T0 - timedelta(days=400), 1234.567, 999.994, 33.333, 33.3333),
    tracker(State.DOWN, False, T0 - timedelta(microseconds=1), T0, 42_000_000.0, None, None, 0.005),
]


def gauges(**extra: float) -> Gauges:
    return Gauges(T0, 3, 2, 1, 1, 10.5, 20.25, 4, 7, 3, 4, 1.5, 9.75, 0.0, 11, 2, 5, dict(extra))


def columns_of(rows: list[Any]) -> Columns:
    columns = Columns.empty(len(rows))
    for i, row in enumerate(rows):
        columns.set_row(i, row)
    return columns


def snapshot_bytes(columns: Columns, changed: Any = None, snmp: Any = None, **kw: Any) -> bytes:
    args: dict[str, Any] = {"seq": 7, "stream_id": "1733400000000-5", "at": T0, "inventory_id": "abcd",
                            "started": "2026-12-05T11:00:00+00:00", "gauges": gauges(feed_up=1.0)}
    args.update(kw)
    return encode_snapshot(args["seq"], args["stream_id"], args["at"], args["inventory_id"],
                           args["started"], args["gauges"], columns, changed, snmp)


def close(a: float | None, b: float | None, unit: float) -> bool:
    if a is None or b is None:
        return a is b
    return abs(a - b) <= unit / 2 + 1e-9


# -- snapshot ------------------------------------------------------------------------------------


def test_snapshot_round_trip_every_column() -> None:
    snmp = {2: {"at": 1.5, "sys_name": "sw-\u00e9[x]\"", "if_up": 3, "if_total": 4, "answering": True},
            5: {"failed_at": 2.0, "reason": "timeout", "answering": False}}
    blob = snapshot_bytes(columns_of(ROWS), changed=[0, 5], snmp=snmp)
    snap = decode_snapshot(blob)
    assert (snap.seq, snap.stream_id, snap.at, snap.inventory_id, snap.started) == (
        7, "1733400000000-5", T0, "abcd", "2026-12-05T11:00:00+00:00")
    assert snap.gauges == gauges(feed_up=1.0)
    assert snap.snmp == snmp
    assert list(snap.changed or []) == [0, 5]
    assert len(snap.columns) == len(ROWS)
    for i, row in enumerate(ROWS):
        state, flapping, down_since, last_change, rtt, avg, jitter, loss = snap.columns.row(i)
        assert (state, flapping, down_since, last_change) == (
            row.state, row.flapping, row.down_since, row.last_change), i
        assert close(rtt, row.last_rtt_ms, RTT_UNIT), (i, rtt, row.last_rtt_ms)
        assert close(avg, row.avg_rtt_ms, RTT_UNIT), (i, avg)
        assert close(jitter, row.jitter_ms, RTT_UNIT), (i, jitter)
        assert close(loss, row.loss_pct, LOSS_UNIT), (i, loss)
        # Load into a viewer's tracker: the same figures.
        viewer = LiveTracker(Device(f"d{i}", "127.0.0.1", "b", "r", "t"))
        viewer.load(snap.columns, i)
        assert (viewer.state, viewer.flapping, viewer.down_since, viewer.last_change) == (
            row.state, row.flapping, row.down_since, row.last_change)


def test_quantisation_is_as_documented() -> None:
    """RTTs to 0.01 ms, loss to 0.01 %: what is lost is below half a unit, never more."""
    assert (RTT_UNIT, LOSS_UNIT) == (0.01, 0.01)
    rows = [tracker(rtt=0.014, avg=0.016, jitter=0.005, loss=12.344),
            tracker(rtt=0.0, avg=0.01, jitter=123.456789, loss=99.996)]
    snap = decode_snapshot(snapshot_bytes(columns_of(rows)))
    assert snap.columns.row(0)[4:] == pytest.approx((0.01, 0.02, 0.0, 12.34))
    assert snap.columns.row(1)[4:] == pytest.approx((0.0, 0.01, 123.46, 100.0))
    # Times are float64 epoch seconds: a microsecond survives.
    assert snap.columns.row(0)[2] is None


def test_none_and_nan_mean_unknown() -> None:
    columns = Columns.empty(3)
    assert all(x is None for i in range(3) for x in columns.row(i)[2:])
    assert math.isnan(columns.down_since[0])
    snap = decode_snapshot(snapshot_bytes(columns))
    for i in range(3):
        assert snap.columns.row(i) == (State.UNKNOWN, False, None, None, None, None, None, None)
        assert snap.columns.same_row(columns, i, i)  # NaN equals NaN here


def test_flapping_bit_is_independent_of_state() -> None:
    rows = [tracker(s, f) for s in State for f in (False, True)]
    columns = columns_of(rows)
    assert [bool(b & FLAPPING) for b in columns.flags] == [r.flapping for r in rows]
    snap = decode_snapshot(snapshot_bytes(columns))
    assert [snap.columns.row(i)[:2] for i in range(len(rows))] == [(r.state, r.flapping) for r in rows]


@pytest.mark.parametrize("n", [0, 1, 7, 8, 9, 1000])
def test_changed_bitmap_empty_some_all(n: int) -> None:
    columns = columns_of([tracker(rtt=float(i)) for i in range(n)])
    for changed in ([], list(range(n)), [i for i in range(n) if i % 3 == 0], None):
        snap = decode_snapshot(snapshot_bytes(columns, changed=changed))
        assert len(snap.columns) == n
        if changed is None:
            assert snap.changed is None
        else:
            assert snap.changed is not None and list(snap.changed) == changed


def test_row_count_zero_and_one() -> None:
    empty = decode_snapshot(snapshot_bytes(Columns.empty(0), changed=[]))
    assert len(empty.columns) == 0 and list(empty.changed or []) == [] and empty.snmp == {}
    one = decode_snapshot(snapshot_bytes(columns_of([ROWS[2]]), changed=[0], snmp={0: {"if_up": 1}}))
    assert one.columns.row(0)[:4] == (State.DOWN, True, T0, T0 + timedelta(seconds=3))
    assert list(one.changed or []) == [0] and one.snmp == {0: {"if_up": 1}}


def test_same_row_sees_each_column() -> None:
    base = columns_of([ROWS[2], ROWS[4]])
    for attr in ("flags", "down_since", "last_change", "last_rtt", "avg_rtt", "jitter", "loss"):
        other = decode_snapshot(snapshot_bytes(base)).columns
        assert other.same_row(base, 0, 0)
        column = getattr(other, attr)
        column[0] = column[1] if column[0] != column[1] else column[0] ^ 1
        assert not other.same_row(base, 0, 0), attr


def test_snapshot_without_gauges_or_snmp() -> None:
    snap = decode_snapshot(snapshot_bytes(Columns.empty(2), gauges=None))
    assert snap.gauges is None and snap.snmp == {} and snap.changed is None


def test_snapshot_snmp_as_prebuilt_bytes() -> None:
    raw = json.dumps({"1": {"if_up": 2}}).encode()
    assert decode_snapshot(snapshot_bytes(Columns.empty(2), snmp=raw)).snmp == {1: {"if_up": 2}}


# -- damaged snapshots ---------------------------------------------------------------------------


def good_blob() -> bytes:
    return snapshot_bytes(columns_of(ROWS * 20), changed=[1, 2, 3], snmp={0: {"if_up": 1}})


def test_truncated_snapshot_raises_feed_format_error() -> None:
    blob = good_blob()
    assert len(blob) > 300
    for cut in [*range(0, len(blob), 97), len(blob) - 1]:
        with pytest.raises(FeedFormatError):
            decode_snapshot(blob[:cut])


def test_bit_flips_in_a_snapshot_never_raise_another_exception() -> None:
    """A damaged header or body: FeedFormatError, or (a flip zlib does not notice cannot happen:
    it checks Adler-32; in the header it may decode) a snapshot whose rows all read."""
    blob = good_blob()
    for pos in range(0, len(blob), 7):
        damaged = bytearray(blob)
        damaged[pos] ^= 0x41
        try:
            snap = decode_snapshot(bytes(damaged))
        except FeedFormatError:
            continue
        for i in range(len(snap.columns)):
            snap.columns.row(i)
        assert all(0 <= i < len(snap.columns) for i in snap.changed or [])


def test_wrong_magic_other_version_garbage_zlib() -> None:
    blob = good_blob()
    with pytest.raises(FeedFormatError, match="something else"):
        decode_snapshot(b"XXXX" + blob[4:])
    with pytest.raises(FeedFormatError):
        decode_snapshot(b"")
    size = struct.unpack_from("<I", blob, 4)[0]
    header = json.loads(blob[8:8 + size])
    header["v"] = live.FORMAT + 1
    head = json.dumps(header).encode()
    with pytest.raises(FeedFormatError, match="format 2"):
        decode_snapshot(blob[:4] + struct.pack("<I", len(head)) + head + blob[8 + size:])
    with pytest.raises(FeedFormatError):
        decode_snapshot(blob[:8 + size] + b"\x78\x9c garbage, not deflate")
    with pytest.raises(FeedFormatError):
        decode_snapshot(blob[:4] + struct.pack("<I", 2**31) + blob[8:])


def forged(header: Any, body: bytes) -> bytes:
    head = json.dumps(header).encode()
    return b"WTS1" + struct.pack("<I", len(head)) + head + zlib.compress(body)


def valid_header(n: int, **kw: Any) -> dict[str, Any]:
    return {"v": 1, "seq": 1, "id": "1-0", "at": 0, "inventory": "x", "started": "s", "n": n,
            "gauges": None, "changed": False, **kw}


def body_of(columns: Columns) -> bytes:
    blob = snapshot_bytes(columns, gauges=None)
    size = struct.unpack_from("<I", blob, 4)[0]
    return zlib.decompress(blob[8 + size:])


@pytest.mark.parametrize("header", [[1, 2], "text", 5, None, {"v": 1}, valid_header(-1),
                                    valid_header(10**12), valid_header(2, at=1e300),
                                    valid_header(2, at="noon"), valid_header(2, gauges="[1]"),
                                    valid_header(2, gauges='{"t":"Gauges"}')])
def test_forged_headers_raise_feed_format_error(header: Any) -> None:
    with pytest.raises(FeedFormatError):
        decode_snapshot(forged(header, body_of(columns_of(ROWS[:2]))))


def test_forged_body_values() -> None:
    """Bytes someone wrote by hand: a state code that does not exist, times out of range,
    a changed bit past the last row, SNMP summaries that are not a map of rows."""
    good = columns_of(ROWS[:2])
    bad_state = decode_snapshot(snapshot_bytes(good)).columns
    bad_state.flags[1] = 7
    bad_time = decode_snapshot(snapshot_bytes(good)).columns
    bad_time.last_change[0] = 1e300
    inf_time = decode_snapshot(snapshot_bytes(good)).columns
    inf_time.down_since[1] = math.inf
    with pytest.raises(FeedFormatError, match="state code"):
        decode_snapshot(snapshot_bytes(bad_state))
    # Times no clock gives read as unknown (checked row by row as read, not 200,000 per decode).
    assert decode_snapshot(snapshot_bytes(bad_time)).columns.row(0)[3] is None
    assert decode_snapshot(snapshot_bytes(inf_time)).columns.row(1)[2] is None
    body = body_of(good)
    with pytest.raises(FeedFormatError):  # 2 rows, and a bit for row 5
        decode_snapshot(forged(valid_header(2, changed=True), body + b"\x21" + b"{}"))
    for snmp in (b"[1]", b'{"x": {}}', b"not json"):
        with pytest.raises(FeedFormatError):
            decode_snapshot(forged(valid_header(2), body + snmp))


def test_100k_snapshot_size_and_time() -> None:
    """The feed's budget at the top of the range: 100,000 loopback-like devices (RTTs of a few
    hundredths of a ms) in < 400 kB, encoded and decoded in well under a second each."""
    n = 100_000
    columns = Columns.empty(n)
    now = time.time()
    for i in range(n):
        columns.flags[i] = 1 if i % 50 else 2 | (FLAPPING if i % 100 == 0 else 0)
        columns.last_change[i] = now - 3600 + (i % 977) * 0.37
        if i % 50 == 0:
            columns.down_since[i] = now - 60 - i % 13
        columns.last_rtt[i] = 2 + i % 7
        columns.avg_rtt[i] = 3 + i % 5
        columns.jitter[i] = i % 3
        columns.loss[i] = 0 if i % 50 else 10000
    started = time.perf_counter()
    blob = snapshot_bytes(columns, changed=range(0, n, 10))
    encode_s = time.perf_counter() - started
    started = time.perf_counter()
    snap = decode_snapshot(blob)
    decode_s = time.perf_counter() - started
    assert len(blob) < 400_000, len(blob)
    assert encode_s < 1.0 and decode_s < 1.0, (encode_s, decode_s)
    assert snap.columns.same_row(columns, 99_999, 99_999) and len(snap.changed or []) == 10_000


# -- inventory -----------------------------------------------------------------------------------


DEVICES = [
    Device("core-1", "10.0.0.1", "hq", "north", "router", host="core-1.example", parents=(),
           interval=None, tags=("core", "\u00e9t\u00e9"), line=3, snmp_credential="lab", snmp_port=1161),
    Device("edge[1]\"'\u2603", "2001:db8::1", "b\u00e9", "r", "switch", host="2001:db8::1",
           parents=("core-1", "core-2"), interval=2.5, tags=(), line=4, snmp_credential=None, snmp_port=161),
    Device("z", "fe80::1%eth0", "", "", "", interval=60.0, tags=("a", "b", "c")),
]


def test_device_fields_are_the_dataclass_fields() -> None:
    assert tuple(f.name for f in dataclasses.fields(Device)) == live._DEVICE_FIELDS


def test_inventory_round_trip() -> None:
    inventory_id, blob = encode_inventory(DEVICES)
    decoded_id, devices = decode_inventory(blob)
    assert decoded_id == inventory_id
    assert devices == DEVICES
    assert all(isinstance(d.tags, tuple) for d in devices)
    assert encode_inventory(DEVICES)[0] == inventory_id  # stable
    changed = [*DEVICES[:2], dataclasses.replace(DEVICES[2], tags=("a", "b"))]
    assert encode_inventory(changed)[0] != inventory_id
    assert decode_inventory(encode_inventory([])[1])[1] == []


def test_decoded_devices_are_what_the_constructor_makes(monkeypatch: pytest.MonkeyPatch) -> None:
    """decode_inventory sets Device's slots column by column instead of calling its __init__:
    the devices are the same in every way a reader sees (fields, equality, hash, frozen), and
    the constructor's own path (taken if Device ever does more than set fields) agrees."""
    assert live._SLOTS is not None  # Device is a frozen slots dataclass: the fast path is taken
    _, blob = encode_inventory(DEVICES)
    fast = decode_inventory(blob)[1]
    monkeypatch.setattr(live, "_SLOTS", None)
    slow = decode_inventory(blob)[1]
    assert fast == slow == DEVICES
    for made, want in zip(fast, DEVICES, strict=True):
        assert type(made) is Device and hash(made) == hash(want) and repr(made) == repr(want)
        assert all(getattr(made, f) == getattr(want, f) for f in live._DEVICE_FIELDS)
    with pytest.raises(dataclasses.FrozenInstanceError):
        fast[0].name = "other"  # type: ignore[misc]


def test_damaged_or_foreign_inventory() -> None:
    _, blob = encode_inventory(DEVICES)
    for cut in range(0, len(blob), 97):
        with pytest.raises(FeedFormatError):
            decode_inventory(blob[:cut])
    body = json.loads(zlib.decompress(blob))
    cols = body["columns"]
    forgeries: list[Any] = [
        {**body, "v": 2}, [1], "x", None, {**body, "n": -1}, {**body, "n": "3"}, {**body, "n": 4},
        {**body, "columns": "no"}, {**body, "columns": {k: v for k, v in cols.items() if k != "host"}},
        {**body, "columns": {**cols, "name": 7}},  # names that are not text
        {**body, "columns": {**cols, "name": ["a", "b", "c"]}},
        {**body, "columns": {**cols, "line": [1, 2]}},  # a number short
        {**body, "columns": {**cols, "line": [1, "2", 3]}},  # text where a number belongs
        {**body, "columns": {**cols, "snmp_port": [161, True, 161]}},
        {**body, "columns": {**cols, "line": [1, 2.0, 3]}},  # a float where an int belongs
        {**body, "columns": {**cols, "interval": [None, False, 60]}},
        {**body, "columns": {**cols, "interval": [None, 2.5, [60]]}},
        {**body, "columns": {**cols, "interval": "60"}},
        {**body, "columns": {**cols, "name": "a\na\nb"}},  # one name twice
    ]
    for doc in forgeries:
        with pytest.raises(FeedFormatError):
            decode_inventory(zlib.compress(json.dumps(doc).encode()))
    with pytest.raises(FeedFormatError):
        decode_inventory(b"not zlib")


# -- events --------------------------------------------------------------------------------------


EVENTS = [
    Transition("d\u00e9v[1]\"", "2001:db8::1", State.UP, State.DOWN, T0, T0 - timedelta(seconds=2), None),
    Transition("d", "10.0.0.1", State.UNKNOWN, State.UP, T0, None, 0.123456789),
    FlapChange("d", "10.0.0.1", True, T0, 6),
    gauges(),
    gauges(feed_up=0.0, feed_events=12345.0, probes_in_flight=3.5),
    Reboot("d", "10.0.0.1", T0, 12.5, 86400.25, T0 - timedelta(seconds=12.5)),
    InterfaceChange("d", "10.0.0.1", T0, 3, "Gi0/1 [uplink]", "up", "down"),
    InterfaceChange("d", "10.0.0.1", T0, 3, "Gi0/1", "unknown", "down", source="trap"),
    Reboot("d", "10.0.0.1", T0, 1.5, 1.5, T0 - timedelta(seconds=1.5), source="trap"),
    Trap("d", "10.0.0.1", T0, "linkDown", "1.3.6.1.6.3.1.1.5.3", "2c", 12.5, 2, "eth\\x1b]0;x",
         "1.3.6.1.2.1.2.2.1.1.2=2"),
    Trap("d", "::1", T0, "1.3.6.1.4.1.9.0.1", "1.3.6.1.4.1.9.0.1", "1", None, None, "", ""),
    SnmpAgentChange("d", "10.0.0.1", T0, False, "authentication"),
    CheckResult("d", "10.0.0.1", T0, 3, 1, 0.042, State.UP),
    CheckResult("d", "10.0.0.1", T0, 1, 0, None, State.DOWN),
]


def test_every_streamed_type_is_covered() -> None:
    assert {type(e) for e in EVENTS} == set(STREAMED)


@pytest.mark.parametrize("event", EVENTS, ids=lambda e: type(e).__name__)
def test_event_round_trip(event: Any) -> None:
    text = encode_event(event, n=5, r="run", by="alice")
    assert decode_event(text) == event
    assert decode_event(text.encode()) == event
    assert live.event_extra(text) == {"n": 5, "r": "run", "by": "alice"}


def test_unknown_event_type_is_skipped() -> None:
    assert decode_event('{"t":"FromTheFuture","device":"d"}') is None
    assert decode_event("{}") is None


def test_not_streamed_refused_on_encode() -> None:
    from poller.events import SnmpFailure

    with pytest.raises(TypeError):
        encode_event(SnmpFailure("d", "a", T0, "timeout", "x"))


@pytest.mark.parametrize("text", [
    "", "not json", "[1]", "5", "null", '"Transition"',
    '{"t":"Transition","device":"d","address":"a","from_state":"up","to_state":"sideways",'
    '"at":0,"down_since":null,"rtt_ms":null}',
    '{"t":"Transition","device":"d","address":"a","from_state":"up","to_state":"down",'
    '"at":"noon","down_since":null,"rtt_ms":null}',
    '{"t":"Transition","device":"d","address":"a","from_state":"up","to_state":"down",'
    '"at":1e300,"down_since":null,"rtt_ms":null}',
    '{"t":"Transition","device":["d"],"address":"a","from_state":"up","to_state":"down",'
    '"at":0,"down_since":null,"rtt_ms":null}',
    '{"t":"Transition","device":"d"}',
    '{"t":"FlapChange","device":"d","address":"a","flapping":"yes","at":0,"transitions_in_window":1}',
    '{"t":"CheckResult","device":"d","address":"a","at":0,"sent":1,"received":1,"rtt_ms":"fast",'
    '"state":"up"}',
    '{"t":"Gauges","at":0,"extra":"x"}',
    '{"t":"Gauges","at":0,"devices_up":1,"devices_down":0,"devices_unknown":0,"devices_flapping":0,'
    '"checks_per_s":1,"probes_per_s":1,"in_flight":0,"skipped":0,"skipped_late":0,"skipped_busy":0,'
    '"lag_p50_ms":0,"lag_p99_ms":0,"oldest_overdue_ms":0,"rcvbuf_drops":0,"send_errors":0,'
    '"store_queue":0,"extra":{"feed_up":"[b]x"}}',
    "[" * 100_000,
])
def test_damaged_events_raise_feed_format_error(text: str) -> None:
    with pytest.raises(FeedFormatError):
        decode_event(text)


# -- the viewer's tracker -------------------------------------------------------------------------


def test_live_tracker_applies_events() -> None:
    viewer = LiveTracker(Device("d", "10.0.0.1", "b", "r", "t"))
    down = Transition("d", "10.0.0.1", State.UP, State.DOWN, T0, T0 - timedelta(seconds=2), None)
    assert viewer.apply(down)
    assert (viewer.state, viewer.down_since, viewer.last_change) == (State.DOWN, down.down_since, T0)
    up = Transition("d", "10.0.0.1", State.DOWN, State.UP, T0 + timedelta(seconds=9), None, 1.5)
    assert viewer.apply(up)
    assert (viewer.state, viewer.down_since, viewer.last_rtt_ms) == (State.UP, None, 1.5)
    assert viewer.apply(FlapChange("d", "10.0.0.1", True, T0, 5)) and viewer.flapping
    assert not viewer.apply(gauges())


def test_snapshot_names_the_number_of_its_last_event() -> None:
    columns = columns_of(ROWS[:2])
    blob = encode_snapshot(3, "5-1", T0, "i", "run", None, columns, None, event_n=4321)
    assert decode_snapshot(blob).event_n == 4321
    assert decode_snapshot(snapshot_bytes(columns)).event_n is None  # an older service: unknown
    for bad in (-1, "7", 1.5, True):
        with pytest.raises(FeedFormatError):
            decode_snapshot(forged(valid_header(2, event_n=bad), body_of(columns)))


def test_keys_that_inflate_past_their_size_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """A few hundred kB written to inflate to gigabytes: refused before it is all inflated."""
    bomb = zlib.compress(b"\0" * 50_000_000, 9)
    assert len(bomb) < 100_000
    with pytest.raises(FeedFormatError, match="inflates past"):
        decode_snapshot(forged(valid_header(2), b"")[:-len(zlib.compress(b""))] + bomb)
    monkeypatch.setattr(live, "INVENTORY_LIMIT", 10_000)
    with pytest.raises(FeedFormatError, match="inflates past"):
        decode_inventory(zlib.compress(b" " * 20_000))
    assert decode_inventory(encode_inventory(DEVICES)[1])[1] == DEVICES  # a real one fits


def test_inventory_encoding_refuses_a_newline_it_could_not_carry() -> None:
    """Columns are joined by newlines: a name with one (which the inventory refuses anyway)
    must not make a blob that decodes to other devices."""
    for device in (Device("new\nline", "127.0.0.1", "b", "r", "t"),
                   Device("a", "127.0.0.1", "b", "r", "t", parents=("p\nq",)),
                   Device("a", "127.0.0.1", "b", "r", "t", tags=("x\x1fy",))):
        with pytest.raises(ValueError):
            encode_inventory([device, Device("b", "127.0.0.2", "b", "r", "t")])


def test_a_forged_inventory_with_terminal_control_is_refused_for_the_screens() -> None:
    """The device table paints inventory fields as they are (an inventory never holds terminal
    control), so a viewer refuses such a key; `wardtui events` reads it (its JSON escapes them)."""
    forged = [Device("ok", "127.0.0.1", "b", "r", "t"),
              Device("evil\x1b]0;x\x07", "127.0.0.2", "b\u202e", "r", "t")]
    _, blob = encode_inventory(forged)
    with pytest.raises(FeedFormatError, match="U\\+001B"):
        decode_inventory(blob)
    assert decode_inventory(blob, safe_text=False)[1] == forged
    tagged = [Device("a", "127.0.0.1", "b", "r", "t", tags=("x", "y"))]
    assert decode_inventory(encode_inventory(tagged)[1])[1] == tagged  # US between tags is the separator


# -- what a viewer does each second, made cheap ---------------------------------------------------


_ODD_VALUES: list[Any] = [None, True, False, 0, -1, 7, 1.5, -0.0, float("nan"), float("inf"), 1e300, 10**30,
                          "", "up", "down", "unknown", "sideways", "1.5", [], {}, ["up"], {"a": 1}]


@pytest.mark.parametrize("event", [e for e in EVENTS if type(e) in live._FAST],
                         ids=lambda e: type(e).__name__)
def test_direct_decoders_answer_as_the_field_checks_do(event: Any) -> None:
    """Transition and CheckResult have a decoder of their own (the ~1,000 a second a viewer
    reads): for every field, missing or holding any kind of value JSON can carry, it returns the
    same event or refuses as the annotation-driven one does."""
    cls = type(event)
    base = json.loads(encode_event(event))
    tried = 0
    for name in [f.name for f in dataclasses.fields(cls)]:
        docs = [{k: v for k, v in base.items() if k != name}]
        docs += [{**base, name: value} for value in _ODD_VALUES]
        for doc in docs:
            outcomes = []
            for decode in (live._FAST[cls], lambda d: live._decode_fields(cls, d)):
                try:
                    outcomes.append(decode(doc))
                except (ValueError, TypeError, OverflowError, OSError) as exc:
                    outcomes.append(type(exc) if not isinstance(exc, ValueError | OverflowError | OSError)
                                    else "refused")
            assert outcomes[0] == outcomes[1], (name, doc)
            tried += 1
    assert tried == len(dataclasses.fields(cls)) * (len(_ODD_VALUES) + 1)
    assert decode_event(base) == event


def test_bitmap_rows_round_trip() -> None:
    import random

    rng = random.Random(3)
    for n in (0, 1, 7, 8, 9, 1000, 100_003):
        for share in (0.0, 0.01, 0.5, 1.0):
            rows = sorted(i for i in range(n) if rng.random() < share)
            assert list(live._rows(live.bitmap(rows, n))) == rows, (n, share)


def test_changed_rows_are_the_rows_that_differ() -> None:
    import random

    rng = random.Random(4)
    base = columns_of(ROWS * 50)
    other = decode_snapshot(snapshot_bytes(base)).columns
    assert other.changed_rows(base) == []
    expected = set()
    for _ in range(40):
        i = rng.randrange(len(base))
        column = rng.choice(["flags", "down_since", "last_change", "last_rtt", "avg_rtt", "jitter", "loss"])
        values = getattr(other, column)
        if column == "flags":
            values[i] ^= FLAPPING
        elif column in ("down_since", "last_change"):
            values[i] = 1.0 if math.isnan(values[i]) else values[i] + 1e-6
        else:
            values[i] = (values[i] + 1) % (1 << (8 * values.itemsize))
        expected.add(i)
    found = other.changed_rows(base)
    assert found == sorted(expected)
    assert found == [i for i in range(len(base)) if not other.same_row(base, i, i)]
    with pytest.raises(ValueError):
        other.changed_rows(columns_of(ROWS))


def test_live_tracker_reads_the_rows_it_is_bound_to() -> None:
    """A feed's trackers read the shared rows: swapping the columns is every tracker's refresh;
    what an event said stays until settled (the snapshot covers it)."""
    rows = live.LiveRows(columns_of(ROWS))
    viewers = [LiveTracker(Device(f"d{i}", "127.0.0.1", "b", "r", "t"), rows, i) for i in range(len(ROWS))]
    for viewer, row in zip(viewers, ROWS, strict=True):
        assert (viewer.state, viewer.flapping, viewer.down_since, viewer.last_change) == (
            row.state, row.flapping, row.down_since, row.last_change)
    assert viewers[2].down_since is viewers[2].down_since  # made once while the column holds it
    later = [tracker(State.UP, False, None, T0 + timedelta(minutes=1), 5.0, 6.0, 1.0, 0.0)] * len(ROWS)
    down = Transition("d0", "127.0.0.1", State.UP, State.DOWN, T0 + timedelta(minutes=2), T0, None)
    assert viewers[0].apply(down)
    rows.columns = columns_of(later)
    assert viewers[1].state is State.UP and viewers[1].last_change == T0 + timedelta(minutes=1)
    assert viewers[2].down_since is None and viewers[2].last_rtt_ms == pytest.approx(5.0)
    assert (viewers[0].state, viewers[0].down_since, viewers[0].last_change) == (State.DOWN, T0, down.at)
    assert viewers[0].avg_rtt_ms == pytest.approx(6.0)  # figures no event carries: the snapshot's
    viewers[0].settle()
    assert (viewers[0].state, viewers[0].down_since) == (State.UP, None)
    moved = live.LiveRows(columns_of(list(reversed(ROWS))))
    viewers[2].bind(moved, len(ROWS) - 1 - 2)
    assert viewers[2].down_since == T0 and viewers[2].row == len(ROWS) - 3


def test_peek_snapshot_reads_the_header_alone() -> None:
    blob = snapshot_bytes(columns_of(ROWS), seq=42)
    assert live.peek_snapshot(blob) == (42, "2026-12-05T11:00:00+00:00", "abcd", "1733400000000-5")
    size = struct.unpack_from("<I", blob, 4)[0]
    damaged_body = blob[:8 + size] + b"not zlib"
    assert live.peek_snapshot(damaged_body)[0] == 42  # the columns are not looked at
    for header in ([1, 2], "text", 5, None, {"v": 1}, {"v": 2, "seq": 1, "inventory": "x"},
                   valid_header(2, seq="x"), valid_header(2, seq=[1]), valid_header(2, id="1-0; x"),
                   valid_header(2, id=None)):
        with pytest.raises(FeedFormatError):
            live.peek_snapshot(forged(header, b""))
    for damaged in (b"", b"WTS1", b"WTS1\xff\xff\xff\x7f{}", b"XXXX" + blob[4:]):
        with pytest.raises(FeedFormatError):
            live.peek_snapshot(damaged)


# -- the delta ------------------------------------------------------------------------------------


def _column_bytes(columns: Columns) -> list[bytes]:
    return [bytes(columns.flags), *(c.tobytes() for c in (columns.down_since, columns.last_change,
                                                            columns.last_rtt, columns.avg_rtt,
                                                            columns.jitter, columns.loss))]


@pytest.mark.parametrize("n", [1, 7, 5000])
def test_delta_makes_the_snapshots_columns_from_the_one_before(n: int) -> None:
    rng = random.Random(n)
    rows = [ROWS[rng.randrange(len(ROWS))] for _ in range(n)]
    columns = columns_of(rows)
    before = decode_snapshot(snapshot_bytes(columns)).columns
    for seq in range(8, 14):
        changed = set(rng.sample(range(n), rng.choice([0, 1, max(1, n // 10), n])))
        for i in changed:
            columns.set_row(i, ROWS[rng.randrange(len(ROWS))])
        full = decode_snapshot(snapshot_bytes(columns, changed=changed, seq=seq))
        blob = encode_delta(seq, "1733400000000-5", "abcd", "run", columns, changed, event_n=seq * 10)
        head = peek_delta(blob)
        assert (head.seq, head.stream_id, head.inventory_id, head.started, head.n, head.rows,
                head.event_n) == (seq, "1733400000000-5", "abcd", "run", n, len(changed), seq * 10)
        snapshot_of_before = _column_bytes(before)
        made, rows_changed = apply_delta(blob, head, before)
        assert _column_bytes(made) == _column_bytes(full.columns)  # NaN for NaN, bit for bit
        assert list(rows_changed) == sorted(changed) == list(full.changed or [])
        assert _column_bytes(before) == snapshot_of_before  # a copy: what the screens read stays
        before = made


def test_a_full_snapshots_delta_is_a_header_alone() -> None:
    blob = encode_delta(3, "5-0", "abcd", "run", columns_of(ROWS), None)
    head = peek_delta(blob)
    assert head.rows is None and head.seq == 3 and len(blob) == head.size
    with pytest.raises(FeedFormatError):
        apply_delta(blob, head, columns_of(ROWS))


def test_forged_deltas_raise_feed_format_error() -> None:
    columns = columns_of(ROWS)
    good = encode_delta(3, "5-0", "abcd", "run", columns, [1, 4])
    head = peek_delta(good)
    header = {"v": 1, "seq": 3, "id": "5-0", "inventory": "abcd", "started": "run", "n": len(ROWS), "rows": 1,
              "event_n": None}

    def blob(h: Any, body: bytes = b"") -> bytes:
        raw = json.dumps(h).encode()
        return b"WTD1" + struct.pack("<I", len(raw)) + raw + body

    for bad in (b"", b"WTD1", b"WTS1" + good[4:], blob([1]), blob({**header, "v": 2}),
                blob({**header, "id": "[red]x"}), blob({**header, "n": -1}), blob({**header, "n": "6"}),
                blob({**header, "rows": len(ROWS) + 1}), blob({**header, "rows": True}),
                blob({k: v for k, v in header.items() if k != "seq"}), good[:10]):
        with pytest.raises(FeedFormatError):
            peek_delta(bad)
    # (6 rows: a bitmap of one byte, then one row's 31 bytes of figures)
    for body in (b"x\x9cgarbage", zlib.compress(b"\x01" + b"\x00" * 30),
                 zlib.compress(b"\x01" + b"\x00" * 32),
                 zlib.compress(b"\x40" + b"\x01" + b"\x00" * 30),  # row 6: past the last row
                 zlib.compress(b"\x03" + b"\x01" + b"\x00" * 30),  # two rows, the figures of one
                 zlib.compress(b"\x00" + b"\x01" + b"\x00" * 30),  # no row, the figures of one
                 zlib.compress(b"\x01" + b"\x03" + b"\x00" * 30),  # no such state
                 zlib.compress(b"\x00" * (35 * 1000))):
        forged = blob(header, body)
        with pytest.raises(FeedFormatError):
            apply_delta(forged, peek_delta(forged), columns)
    with pytest.raises(FeedFormatError):  # a delta of another inventory's size
        apply_delta(good, head, columns_of(ROWS[:3]))
    for cut in range(head.size, len(good)):
        with pytest.raises(FeedFormatError):
            apply_delta(good[:cut], head, columns)
