"""UNREACHABLE on the live feed: viewers of this version see it; viewers from before it (which
refuse a state code they do not know and read no header key they do not know) see DOWN, and
keep the feed."""

from __future__ import annotations

import json
import random
import struct
import zlib
from datetime import timedelta
from typing import Any

import pytest

from poller.events import CheckResult, State, Transition
from poller.inventory import Device
from poller.live import (
    FLAPPING,
    FeedFormatError,
    LiveTracker,
    apply_delta,
    decode_event,
    decode_snapshot,
    encode_delta,
    encode_event,
    peek_delta,
)
from tests.unit.test_live_codec import ROWS, T0, columns_of, snapshot_bytes, tracker

OLD_FLAG_BYTES = bytes(code | flap for code in (0, 1, 2) for flap in (0, FLAPPING))
"""What a viewer from before UNREACHABLE accepts in a snapshot's or a delta's state bytes."""

AWAY = tracker(State.UNREACHABLE, True, T0, T0 + timedelta(seconds=1), None, 3.0, None, 100.0)
MIXED = [*ROWS, AWAY, AWAY, ROWS[0], tracker(State.UNREACHABLE)]


def split(blob: bytes) -> tuple[dict[str, Any], bytes]:
    (size,) = struct.unpack_from("<I", blob, 4)
    return json.loads(blob[8:8 + size]), zlib.decompress(blob[8 + size:])


def rejoin(blob: bytes, header: dict[str, Any]) -> bytes:
    (size,) = struct.unpack_from("<I", blob, 4)
    head = json.dumps(header).encode()
    return blob[:4] + struct.pack("<I", len(head)) + head + blob[8 + size:]


def test_snapshot_round_trip_with_unreachable_rows() -> None:
    snap = decode_snapshot(snapshot_bytes(columns_of(MIXED)))
    assert [snap.columns.row(i)[:3] for i in range(len(MIXED))] == [
        (r.state, r.flapping, r.down_since) for r in MIXED]


def test_an_old_viewer_reads_unreachable_as_down() -> None:
    blob = snapshot_bytes(columns_of(MIXED))
    header, body = split(blob)
    assert header["unreachable"] == [[6, 8], [9, 10]]
    assert not body[:len(MIXED)].translate(None, OLD_FLAG_BYTES)  # only codes it knows
    old = {k: v for k, v in header.items() if k != "unreachable"}  # what it reads of the header
    snap = decode_snapshot(rejoin(blob, old))
    states = [snap.columns.row(i)[0] for i in range(len(MIXED))]
    assert states == [State.DOWN if r.state is State.UNREACHABLE else r.state for r in MIXED]
    assert snap.columns.row(6)[1] is True  # the flapping bit kept


def test_no_unreachable_row_no_header_key() -> None:
    header, _ = split(snapshot_bytes(columns_of(ROWS)))
    assert "unreachable" not in header


@pytest.mark.parametrize("runs", ["x", [[0]], [[2, 1]], [[0, 99]], [[3, 4], [1, 2]], [[0, True]], [["0", 1]]])
def test_forged_unreachable_rows_raise_feed_format_error(runs: Any) -> None:
    blob = snapshot_bytes(columns_of(MIXED))
    header, _ = split(blob)
    with pytest.raises(FeedFormatError):
        decode_snapshot(rejoin(blob, {**header, "unreachable": runs}))


@pytest.mark.parametrize("n", [1, 9, 3000])
def test_delta_carries_unreachable_rows(n: int) -> None:
    rng = random.Random(n)
    columns = columns_of([MIXED[rng.randrange(len(MIXED))] for _ in range(n)])
    before = decode_snapshot(snapshot_bytes(columns)).columns
    for seq in range(8, 14):
        changed = set(rng.sample(range(n), rng.choice([1, max(1, n // 10), n])))
        for i in changed:
            columns.set_row(i, MIXED[rng.randrange(len(MIXED))])
        full = decode_snapshot(snapshot_bytes(columns, changed=changed, seq=seq))
        blob = encode_delta(seq, "1733400000000-5", "abcd", "run", columns, changed)
        head = peek_delta(blob)
        made, _ = apply_delta(blob, head, before)
        assert bytes(made.flags) == bytes(full.columns.flags) == bytes(columns.flags)
        _, body = split(blob)
        bits = (n + 7) // 8
        assert not body[bits:bits + len(changed)].translate(None, OLD_FLAG_BYTES)
        before = made


def test_events_carry_the_state_by_name() -> None:
    away = Transition("atm [b]x", "10.0.0.2", State.UP, State.UNREACHABLE, T0, T0, None)
    text = encode_event(away, n=1, r="run")
    assert '"to_state":"unreachable"' in text
    assert decode_event(text) == away
    back = CheckResult("d", "10.0.0.1", T0, 3, 0, None, State.UNREACHABLE)
    assert decode_event(encode_event(back, n=2, r="run")) == back


def test_live_tracker_keeps_the_start_of_an_unreachable_outage() -> None:
    viewer = LiveTracker(Device("d", "10.0.0.1", "b", "r", "t", parents=("p",)))
    assert viewer.apply(Transition("d", "10.0.0.1", State.UP, State.UNREACHABLE, T0, T0, None))
    assert (viewer.state, viewer.down_since) == (State.UNREACHABLE, T0)
    later = T0 + timedelta(seconds=30)
    assert viewer.apply(Transition("d", "10.0.0.1", State.UNREACHABLE, State.DOWN, later, T0, None))
    assert (viewer.state, viewer.down_since) == (State.DOWN, T0)
