"""What ``wardtui events`` and ``wardtui status`` compute without Redis: their defaults, a device's
line from a snapshot row, the state counts of a snapshot."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from poller import feed, live
from poller.events import State
from poller.inventory import Device
from poller.live import Columns, decode_snapshot, encode_snapshot
from wardtui.cli import build_parser, feed_common
from wardtui.cli.events import device_record
from wardtui.cli.status import state_counts


def test_the_defaults_are_the_feeds() -> None:
    """feed_common copies them to keep redis out of ``wardtui --help``."""
    assert feed_common.REDIS_ENV == feed.REDIS_ENV
    assert feed_common.DEFAULT_SITE == live.DEFAULT_SITE
    args = build_parser().parse_args(["status"])
    assert (args.redis, args.site) == (None, live.DEFAULT_SITE)


def test_redis_url_from_option_then_environment_then_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WARDTUI_REDIS", raising=False)
    parse = build_parser().parse_args
    assert feed_common.feed_target(parse(["status"]))[0] == "redis://127.0.0.1:6379"
    monkeypatch.setenv("WARDTUI_REDIS", "redis://10.0.0.1:6380/2")
    assert feed_common.feed_target(parse(["status"]))[0] == "redis://10.0.0.1:6380/2"
    assert feed_common.feed_target(parse(["status", "--redis", "unix:///r.sock"]))[0] == "unix:///r.sock"
    assert feed_common.feed_target(parse(["status", "--site", "dc-1"]))[1].events == "wardtui:{dc-1}:events"


def _snapshot(rows: list[tuple[State, bool]]) -> live.Snapshot:
    columns = Columns.empty(len(rows))
    tracker = type("T", (), {})
    for i, (state, flapping) in enumerate(rows):
        t = tracker()
        t.state, t.flapping = state, flapping
        t.down_since = datetime(2026, 12, 5, 17, 0, tzinfo=UTC) if state is State.DOWN else None
        t.last_change = datetime(2026, 12, 5, 16, 0, tzinfo=UTC)
        t.last_rtt_ms = None if state is not State.UP else 1.23456
        t.avg_rtt_ms = t.jitter_ms = None if state is not State.UP else 0.5
        t.loss_pct = 100.0 if state is State.DOWN else 0.0
        columns.set_row(i, t)
    return decode_snapshot(encode_snapshot(1, "1-0", datetime.now(UTC), "x", "run", None, columns, None))


def test_state_counts_and_device_lines_from_a_snapshot() -> None:
    rows = [(State.UP, False)] * 5 + [(State.DOWN, True), (State.DOWN, False), (State.UNKNOWN, False),
                                      (State.UP, True)]
    snap = _snapshot(rows)
    assert state_counts(snap) == {"up": 6, "down": 2, "unknown": 1, "flapping": 2}
    device = Device("r1", "127.0.0.1", "b1", "north", "router")
    down = device_record(device, snap.columns.row(5), "2026-12-05T17:00:05+00:00")
    assert down == {"type": "device", "device": "r1", "address": "127.0.0.1", "branch": "b1",
                    "region": "north", "device_type": "router", "state": "down",
                    "since": "2026-12-05T17:00:00+00:00",
                    "last_change": "2026-12-05T16:00:00+00:00", "rtt_ms": None, "loss_pct": 100.0,
                    "jitter_ms": None, "flapping": True, "at": "2026-12-05T17:00:05+00:00"}
    up = device_record(device, snap.columns.row(0), "")
    assert (up["state"], up["since"], up["rtt_ms"], up["loss_pct"]) == ("up", None, 1.23, 0.0)
