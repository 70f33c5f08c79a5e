"""The notifier lease (poller/cluster/notifier_lease.py) on a private redis-server: one holder
among contenders; the holder stopped gives it to another at once, killed (not renewing) within
TTL + a round; Redis paused longer than the TTL: the holder is told it lost the lease before
Redis could expire the key (its PTTL read just before the pause), and after Redis continues
exactly one member holds it again."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest
import redis

from poller.cluster.leases import LeaseConfig
from poller.cluster.notifier_lease import NotifierLease
from poller.feed import client_for
from poller.live import Keys
from tests.procs.redis import LoopbackRedis, loopback_redis
from tests.waiting import wait_until

TTL = 1.5


@pytest.fixture
def server() -> Iterator[LoopbackRedis]:
    with loopback_redis() as s:
        yield s


class Contender:
    def __init__(self, server: LoopbackRedis, name: str) -> None:
        config = LeaseConfig(ttl=TTL, margin=0.4)  # a loaded test machine's timers run late
        self.changes: list[tuple[bool, str, float]] = []
        self.lease = NotifierLease(client_for(f"redis://127.0.0.1:{server.port}", timeout=config.op_timeout),
                                   Keys("t"), name, config, self._told)

    def _told(self, held: bool, why: str) -> None:
        self.changes.append((held, why, time.monotonic()))


async def _until(check: object, timeout: float, why: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, why
        await asyncio.sleep(0.02)


@pytest.mark.alone  # hand-over deadlines (a round, 2 x TTL of 1.5 s)
async def test_one_holder_stopped_or_silent_hands_over(server: LoopbackRedis) -> None:
    members = [Contender(server, f"m{i}") for i in range(3)]
    for m in members:
        m.lease.start()
    try:
        await _until(lambda: sum(m.lease.held for m in members) == 1, 5, "nobody took the lease")
        await asyncio.sleep(2 * TTL)
        assert sum(m.lease.held for m in members) == 1  # renewed, never two
        first = next(m for m in members if m.lease.held)
        await first.lease.stop()  # given back at once
        stopped = time.monotonic()
        rest = [m for m in members if m is not first]
        await _until(lambda: sum(m.lease.held for m in rest) == 1, 3 * TTL, "nobody took it over")
        assert time.monotonic() - stopped <= TTL  # a round, not an expiry
        second = next(m for m in rest if m.lease.held)
        assert second.lease._task is not None
        second.lease._task.cancel()  # silent: no renewal, nothing given back
        silent = time.monotonic()
        last = next(m for m in rest if m is not second)
        await _until(lambda: last.lease.held, 3 * TTL, "the silent holder's lease never passed on")
        took = time.monotonic() - silent
        assert took <= 2 * TTL, f"{took:.2f} s"
    finally:
        for m in members:
            await m.lease.stop()


@pytest.mark.alone  # the holder's timer must run within the margin (0.4 s) of its deadline
async def test_redis_paused_the_holder_lets_go_before_the_key_can_expire(server: LoopbackRedis) -> None:
    members = [Contender(server, f"m{i}") for i in range(2)]
    for m in members:
        m.lease.start()
    try:
        await _until(lambda: any(m.lease.held for m in members), 5, "nobody took the lease")
        holder = next(m for m in members if m.lease.held)
        wait_until(lambda: server.keys_present() == [b"wardtui:{t}:notifier"], 2, "no key")
        probe = redis.Redis(host="127.0.0.1", port=server.port, socket_timeout=1)
        try:
            asked = time.monotonic()
            expires = asked + probe.pttl("wardtui:{t}:notifier") / 1000  # Redis's own expiry, at the latest
        finally:
            probe.close()
        server.pause()
        paused = time.monotonic()
        await _until(lambda: not holder.lease.held, 2 * TTL, "the holder kept the lease")
        told = holder.changes[-1]
        assert told[:2] == (False, "expired")
        assert told[2] < expires, f"told {told[2] - expires:.3f} s after the key's expiry"
        await asyncio.sleep(max(0.0, paused + 1.5 * TTL - time.monotonic()))
        server.resume()
        await _until(lambda: sum(m.lease.held for m in members) == 1, 4 * TTL,
                     "no holder after Redis came back")
        await asyncio.sleep(TTL)
        assert sum(m.lease.held for m in members) == 1
    finally:
        if server.paused:
            server.resume()
        for m in members:
            await m.lease.stop()
