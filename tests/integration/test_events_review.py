"""Review finding: ``wardtui events`` on a stream entry nested too deep to parse."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import redis

from poller.events import State, Transition
from poller.inventory import Device
from tests.integration.feed_fixtures import SHARED_REDIS, feed_site, follow, stream, write_site  # noqa: F401


def test_a_deeply_nested_entry_does_not_end_events(feed_site: str) -> None:  # noqa: F811
    keys = write_site(feed_site, [Device("r1", "127.0.0.1", "b", "r", "router")])
    now = datetime.now(UTC)
    events = follow("--site", feed_site, "--jsonl")
    try:
        time.sleep(1.5)
        client = redis.Redis.from_url(SHARED_REDIS)
        client.xadd(keys.events, {"e": "[" * 200_000})
        client.close()
        down = Transition("r1", "127.0.0.1", State.UP, State.DOWN, now, now, None)
        stream(keys, down, 1)
        record = events.record(timeout=10)
    finally:
        events.stop()
    assert record["type"] == "transition", record
    assert "Traceback" not in events.stderr, events.stderr
