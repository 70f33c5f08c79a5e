"""Review findings on the live feed (issue 14), each on the real Redis."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime

import pytest
import redis

import poller.feed as feed_module
from poller.events import SnmpPoll
from poller.live import FeedFormatError, Keys, decode_snapshot
from tests.fakes import make_devices
from tests.integration.test_feed import MAIN_URL, Service, Viewer, eventually, keys  # noqa: F401


async def test_snapshot_after_a_shrinking_reload_is_readable(keys: Keys) -> None:  # noqa: F811
    """SNMP summaries are keyed by row; a reload that removes rows must not leave the previous
    inventory's summaries (rows past the new end) in the next snapshot: viewers cannot read it."""
    devices = make_devices(10, interval=1.0)
    async with Service(MAIN_URL, keys, devices) as service:
        await service.all_checked()
        async with Viewer(MAIN_URL, keys) as viewer:
            now = datetime.now(UTC)
            service.engine.bus.publish(SnmpPoll("dev9", devices[9].address, now, "sw", "d", "1.3.6", 5.0, ()))
            assert await eventually(lambda: b'"9"' in service.publisher._snmp_json, 3)
            service.engine.apply_inventory(devices[:5])
            seen = service.publisher.stats.snapshots
            assert await eventually(lambda: service.publisher.stats.snapshots >= seen + 2, 4)
            blob = redis.Redis(host="127.0.0.1", port=6379).get(keys.snapshot)
            assert blob is not None
            try:
                decode_snapshot(blob)
            except FeedFormatError as exc:
                pytest.fail(f"the snapshot after the reload cannot be read: {exc}")
            assert viewer.feed.live, "the viewer lost the feed after a reload"


async def test_a_reload_during_the_inventory_encoding_is_not_missed(keys: Keys,  # noqa: F811
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """The publisher takes the engine's rows before encoding the inventory off the loop, and its
    version after: a second reload landing in between is never published."""
    real = feed_module.encode_inventory

    def slow(devices):  # type: ignore[no-untyped-def]
        time.sleep(0.5)
        return real(devices)

    devices = make_devices(12, interval=1.0)
    async with Service(MAIN_URL, keys, devices[:10]) as service:
        service.rtts.update({d.address: 0.3 for d in devices})
        await service.all_checked()
        monkeypatch.setattr(feed_module, "encode_inventory", slow)
        service.engine.apply_inventory(devices[:11])  # reload 1
        # wait until the publisher is inside its (slow) encoding of reload 1
        assert await eventually(lambda: len(service.publisher._rows) == 11, 3)
        service.engine.apply_inventory(devices[:12])  # reload 2, while it encodes
        await asyncio.sleep(3)
        async with Viewer(MAIN_URL, keys) as viewer:
            assert set(viewer.feed.trackers) == set(service.engine.trackers), (
                f"viewer shows {len(viewer.feed.trackers)} devices, the service runs "
                f"{len(service.engine.trackers)}")


async def test_attaching_to_a_snapshot_of_another_format_is_one_line(keys: Keys, tmp_path) -> None:  # noqa: F811
    """A newer service's snapshot (format 2): the dashboard refuses it in a line, no traceback."""
    from poller.inventory import Device
    from tests.integration.feed_fixtures import write_site
    from wardtui.attached import AttachedRuntime, Site
    from wardtui.runtime import Options, StartupError

    write_site(keys.site, [Device("r1", "127.0.0.1", "b", "r", "router")])
    client = redis.Redis(host="127.0.0.1", port=6379)
    blob = client.get(keys.snapshot)
    assert blob is not None
    client.set(keys.snapshot, blob[:8] + blob[8:].replace(b'"v":1', b'"v":2', 1))
    client.close()
    runtime = AttachedRuntime(Site(MAIN_URL, keys), Options(db=f"sqlite:///{tmp_path}/h.db"))
    with pytest.raises(StartupError, match="snapshot format 2"):
        await runtime.attach()
