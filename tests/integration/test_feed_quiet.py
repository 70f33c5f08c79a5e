"""The quiet state on the live feed (poller/feed.py): the publisher streams each change and writes
the state with the snapshot it goes with; a viewer loads it with the snapshot and follows the
stream; Redis restarted empty gets it back; a damaged key costs a warning, not the feed."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import pytest
from redis.asyncio import Redis

from poller.live import Keys
from poller.notify.acks import Ack
from poller.notify.model import Matcher
from poller.notify.windows import Window
from poller.quiet import Quiet, QuietChanged, quiet_from_json, quiet_of
from tests.fakes import make_devices
from tests.integration.test_feed import (  # noqa: F401  (fixtures)
    MAIN_URL,
    PrivateRedis,
    Service,
    Viewer,
    eventually,
    keys,
    private_redis,
)

NOW = datetime.now(UTC)


def state(n: int) -> Quiet:
    window = Window(id=n, matchers=(Matcher("branch", "=", f"b{n}"),), starts_at=NOW,
                    ends_at=NOW + timedelta(hours=1), note=f"[b]window {n}[/b]", created_by="alice")
    acks = [Ack(id=n, device="dev-0001", down_since=NOW, note="\x1b[31mnote", who="bob", at=NOW)]
    return quiet_of([window], acks, NOW)


def changes(viewer: Viewer) -> list[Quiet]:
    return [e.quiet for e in viewer.take() if isinstance(e, QuietChanged)]


async def test_viewers_load_the_state_with_the_snapshot_and_follow_its_changes(keys: Keys) -> None:  # noqa: F811
    async with Service(MAIN_URL, keys, make_devices(20, interval=2.0)) as service:
        service.publisher.quiet_source = lambda: state(1)  # what the runtime read before
        service.engine.bus.publish(QuietChanged(state(1)))  # type: ignore[arg-type]
        client = Redis.from_url(MAIN_URL)
        try:
            assert await eventually(lambda: False, 1.5) is False  # a snapshot goes by
            assert quiet_from_json(await client.get(keys.quiet)) == state(1)
            async with Viewer(MAIN_URL, keys) as one:
                assert one.feed.quiet == state(1) and changes(one) == [state(1)]
                service.engine.bus.publish(QuietChanged(state(2), by="carol"))  # type: ignore[arg-type]
                assert await eventually(lambda: changes(one)[-1:] == [state(2)], 3)
                assert one.feed.quiet == state(2)
                [event] = [e for e in one.take() if isinstance(e, QuietChanged) and e.by]
                assert event.by == "carol" and event.quiet.windows[0].note == "[b]window 2[/b]"
                assert await eventually(lambda: False, 1.2) is False
                assert quiet_from_json(await client.get(keys.quiet)) == state(2)
                async with Viewer(MAIN_URL, keys) as late:
                    assert late.feed.quiet == state(2)
        finally:
            await client.aclose()


async def test_a_damaged_state_costs_a_warning_not_the_feed(keys: Keys,  # noqa: F811
                                                            caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    async with Service(MAIN_URL, keys, make_devices(10, interval=2.0)):
        client = Redis.from_url(MAIN_URL)
        try:
            await client.set(keys.quiet, b'{"acks": [{"id": "x"}]}')
            async with Viewer(MAIN_URL, keys) as viewer:
                assert viewer.feed.live and viewer.feed.quiet == Quiet()
                assert "cannot be read" in caplog.text
                await client.xadd(keys.events, {"b": '{"n":1,"r":"x","e":[{"t":"QuietChanged","q":5}]}'})
                assert await eventually(lambda: False, 0.5) is False
                assert viewer.feed.live
        finally:
            await client.aclose()


async def test_redis_restarted_empty_gets_the_state_back(private_redis: PrivateRedis) -> None:  # noqa: F811
    site = Keys("quietsite")
    url = private_redis.url
    async with Service(url, site, make_devices(20, interval=0.5), timeout=2.0) as service:
        service.publisher.quiet_source = lambda: state(3)
        service.engine.bus.publish(QuietChanged(state(3)))  # type: ignore[arg-type]
        assert await eventually(lambda: site.quiet.encode() in private_redis.keys_present(), 3)
        private_redis.kill()
        assert await eventually(lambda: not service.publisher.stats.up, 5)
        private_redis.start()  # empty
        assert await eventually(lambda: site.quiet.encode() in private_redis.keys_present(), 6)
        async with Viewer(url, site) as viewer:
            assert viewer.feed.quiet == state(3)
