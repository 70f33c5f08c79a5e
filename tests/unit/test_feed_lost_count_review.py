"""Review finding: events in flight when Redis is lost must count in feed_events_lost."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

from poller.engine import Engine
from poller.events import State, Transition
from poller.feed import Publisher, ServiceInfo
from poller.live import Keys
from tests.fakes import FakeProber, make_devices


class _Pipe:
    def xadd(self, *args: Any, **kwargs: Any) -> None:
        pass

    async def execute(self) -> None:
        raise RedisConnectionError("Connection reset by peer")


class _Client:
    def pipeline(self, transaction: bool = True) -> _Pipe:
        return _Pipe()

    async def aclose(self) -> None:
        pass


async def test_a_batch_lost_with_the_connection_is_counted() -> None:
    engine = Engine(make_devices(3), FakeProber())
    publisher = Publisher(engine, "redis://127.0.0.1:1", Keys("feedtest-x"), ServiceInfo.here("t", 3))
    publisher._client = _Client()  # type: ignore[assignment]
    now = datetime.now(UTC)
    for _ in range(4):
        publisher.stream_now(Transition("dev0", "127.2.0.1", State.UP, State.DOWN, now, now, None))
    with pytest.raises(RedisConnectionError):
        await publisher._send_events()
    await publisher._lost(RedisConnectionError("Connection reset by peer"))
    assert publisher.stats.events_lost == 4
