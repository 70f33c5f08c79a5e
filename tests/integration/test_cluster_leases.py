"""Shard leases (poller/cluster/leases.py) on real Redis: several ShardLeases in one process,
each with its own client as separate pollers would have, a 1.5 s TTL.

Safety is checked against Redis's truth all along: a sampler takes every poller's ``owned()``
and then, with the event loop still blocked, each shard key's owner in Redis; every shard a
poller calls its own must name it there (so no shard is ever owned by two). Faults use a private
redis-server on a loopback port: paused with SIGSTOP longer than the TTL, killed and restarted
empty."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager

import pytest
import redis

from poller.cluster.balance import target_shares
from poller.cluster.leases import LeaseConfig, ShardLeases, ShardsChanged, SiteMismatch
from poller.feed import client_for
from poller.live import Keys
from tests.integration.feed_fixtures import SHARED_REDIS
from tests.procs.redis import LoopbackRedis, loopback_redis

SHARDS = 256
TTL = 1.5  # short, and still long enough that a loaded 2-core machine's stalls rarely outlast it
CONFIG = LeaseConfig(ttl=TTL)


class Site:
    """Pollers of one site, each with its own client, and a sampler of Redis's truth."""

    def __init__(self, url: str, keys: Keys, config: LeaseConfig = CONFIG) -> None:
        self.url, self.keys, self.config = url, keys, config
        self.pollers: list[ShardLeases] = []
        self.changes: list[tuple[float, ShardsChanged]] = []
        self.truth_client = redis.Redis.from_url(url, socket_connect_timeout=0.5, socket_timeout=0.5)
        self.sampling = True
        self.samples = 0
        self.violations: list[str] = []
        self._sampler: asyncio.Task[None] | None = None

    def add(self, poller_id: str, config: LeaseConfig | None = None, shards: int = SHARDS) -> ShardLeases:
        leases = ShardLeases(client_for(self.url, timeout=0.5), self.keys, shards, config or self.config,
                             poller_id=poller_id)
        leases.listeners.append(lambda change: self.changes.append((time.monotonic(), change)))
        self.pollers.append(leases)
        leases.start()
        return leases

    def shares(self) -> list[int]:
        return [len(p.owned()) for p in self.pollers]

    def owners(self) -> list[str | None]:
        """Each shard's owner in Redis now (blocking: nothing else on the loop runs meanwhile)."""
        raw = self.truth_client.mget([self.pollers[0].shard_key(s) for s in range(SHARDS)])
        return [None if v is None else v.decode() for v in raw]

    def check(self) -> None:
        owned = {p.id: p.owned() for p in self.pollers}  # first what the pollers think...
        owners = self.owners()  # ...then what Redis says: a lease can only have been renewed since
        for poller, shards in owned.items():
            wrong = sorted(s for s in shards if owners[s] != poller)
            if wrong:
                self.violations.append(f"{poller} owns {wrong[:5]} but Redis names "
                                       f"{[owners[s] for s in wrong[:5]]}")
        self.samples += 1

    async def _sample(self) -> None:
        while True:
            if self.sampling:
                self.check()
            await asyncio.sleep(0.02)

    async def __aenter__(self) -> Site:
        self._sampler = asyncio.create_task(self._sample())
        return self

    async def __aexit__(self, *_: object) -> None:
        assert self._sampler is not None
        self._sampler.cancel()
        await asyncio.wait([self._sampler])
        for p in self.pollers:
            await p.stop()
            await close(p)
        self.truth_client.close()

    def lost(self, poller: ShardLeases, reason: str) -> list[tuple[float, frozenset[int]]]:
        return [(t, c.lost) for t, c in self.changes if c.poller == poller.id and c.reason == reason]


async def close(poller: ShardLeases) -> None:
    await asyncio.wait({asyncio.ensure_future(poller.client.aclose())}, timeout=2)


async def eventually(condition: Callable[[], bool], within: float, step: float = 0.02) -> bool:
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(step)
    return True


def balanced(site: Site) -> bool:
    """Every poller holds its share: 256 // n, one more for the first 256 % n ids."""
    targets = target_shares([p.id for p in site.pollers], SHARDS)
    return all(len(p.owned()) == targets[p.id] for p in site.pollers)


@pytest.fixture
def keys(feed_site: str) -> Keys:
    return Keys(feed_site)  # a site of its own on the shared Redis, its keys deleted after


@pytest.fixture
def private() -> Iterator[LoopbackRedis]:
    with loopback_redis() as server:
        yield server


@asynccontextmanager
async def three(url: str, keys: Keys, config: LeaseConfig = CONFIG) -> AsyncIterator[Site]:
    async with Site(url, keys, config) as site:
        for name in ("poller-a", "poller-b", "poller-c"):
            site.add(name)
        assert await eventually(lambda: balanced(site), 6), site.shares()
        yield site


async def test_three_pollers_take_equal_shares_and_never_share_a_shard(keys: Keys) -> None:
    async with three(SHARED_REDIS, keys) as site:
        first = site.shares()
        await asyncio.sleep(2 * TTL)  # six renewal rounds: shares hold, leases stay
        assert site.shares() == first == [86, 85, 85]  # the remainder to the lowest id
        owners = site.owners()
        assert {p.id: owners.count(p.id) for p in site.pollers} == dict(zip(
            ("poller-a", "poller-b", "poller-c"), first, strict=True))
        pipe = site.truth_client.pipeline(transaction=False)  # one round trip: the loop is blocked
        for s in range(SHARDS):
            pipe.pttl(site.pollers[0].shard_key(s))
        pttl = pipe.execute()
        assert all(0 < t <= TTL * 1000 for t in pttl), sorted(pttl)[:3]
        members = site.truth_client.zrange(keys.prefix + "pollers", 0, -1)
        assert sorted(members) == [b"poller-a", b"poller-b", b"poller-c"]
        assert all(p.stats.lost == {} for p in site.pollers)  # nothing lost, nothing moved

        a = site.pollers[0]
        stopped = time.monotonic()
        await a.stop()  # a clean stop gives its shards back at once: taken in a round, not a TTL
        assert a.owned() == frozenset()
        assert site.lost(a, "stopped") == [(pytest.approx(stopped, abs=1), frozenset(
            s for s, o in enumerate(owners) if o == "poller-a"))]
        site.pollers.remove(a)
        await close(a)
        assert await eventually(lambda: site.shares() == [128, 128], TTL), site.shares()
        print(f"\nclean stop of one poller: its 86 shards owned again after "
              f"{time.monotonic() - stopped:.2f} s")
    assert site.violations == [] and site.samples > 10, (site.samples, site.violations[:3])


@pytest.mark.alone  # a deadline: every shard owned again within 2 x TTL
async def test_a_poller_stopped_uncleanly_loses_its_shards_within_two_ttl(keys: Keys) -> None:
    async with three(SHARED_REDIS, keys) as site:
        dead = site.pollers[1]
        assert dead._task is not None
        dead._task.cancel()  # as SIGKILL would: nothing given back, its leases run out in Redis
        killed = time.monotonic()
        survivors = [p for p in site.pollers if p is not dead]
        assert await eventually(lambda: sum(len(p.owned()) for p in survivors) == SHARDS, 2 * TTL)
        failover = time.monotonic() - killed
        assert set(site.owners()) == {p.id for p in survivors}
        assert await eventually(lambda: sorted(len(p.owned()) for p in survivors) == [128, 128], TTL)
        print(f"\nunclean stop: every shard owned again {failover:.2f} s after (TTL {TTL:g} s)")
        assert dead.owned() == frozenset()  # its own view ran out too, before Redis's
    assert site.violations == [] and site.samples > 10, (site.samples, site.violations[:3])


async def test_a_fourth_poller_joins_with_bounded_moves(keys: Keys) -> None:
    config = LeaseConfig(ttl=TTL, max_moves=4)
    async with three(SHARED_REDIS, keys, config) as site:
        joined = time.monotonic()
        new = site.add("poller-d")
        assert await eventually(lambda: balanced(site), 12), site.shares()
        converged = time.monotonic() - joined
        rebalanced = [c for _, c in site.changes if c.reason == "rebalanced"]
        gains = [c.gained for _, c in site.changes if c.poller == new.id and c.gained]
        assert sorted(site.shares()) == [64, 64, 64, 64]
        assert rebalanced and all(len(c.lost) <= 4 for c in rebalanced)  # per poller per round
        assert sum(len(c.lost) for c in rebalanced) == 3 * 85 + 1 - 3 * 64  # each moved once
        assert len(gains) >= 3 and len(gains[0]) <= 3 * 4  # the newcomer filled up over rounds
        assert all(p.stats.lost.keys() <= {"rebalanced"} for p in site.pollers)
        print(f"\nfourth poller: {len(rebalanced)} bounded releases, balanced after {converged:.2f} s")
    assert site.violations == [] and site.samples > 10, (site.samples, site.violations[:3])


async def quiet_moment(site: Site) -> None:
    """Return (without awaiting again) when no poller has a Redis call under way."""
    assert await eventually(lambda: all(p.in_flight == 0 for p in site.pollers), 2, step=0.001)


@pytest.mark.alone  # a deadline: each loss reported before the lease could expire
async def test_redis_paused_longer_than_ttl_pollers_stand_down_before_leases_expire(
        keys: Keys, private: LoopbackRedis) -> None:
    config = LeaseConfig(ttl=TTL, margin=0.3, renew_every=0.3)  # margin: the loaded machine's timer lag
    async with three(private.url, keys, config) as site:
        site.sampling = False
        await quiet_moment(site)
        # From here to SIGSTOP nothing awaits: no poller sends anything, so each key's expiry
        # read now is the one Redis holds while stopped (m0 + PTTL is at or before it).
        shard_keys = [site.pollers[0].shard_key(s) for s in range(SHARDS)]
        m0 = time.monotonic()
        pipe = site.truth_client.pipeline(transaction=False)
        for key in shard_keys:
            pipe.get(key)
            pipe.pttl(key)
        raw = pipe.execute()
        private.pause()
        paused = time.monotonic()
        expiry = {s: m0 + raw[2 * s + 1] / 1000 for s in range(SHARDS)}
        owner = {s: raw[2 * s].decode() for s in range(SHARDS)}
        deadlines = {p.id: p.deadlines() for p in site.pollers}

        gaps = []
        for poller, held in deadlines.items():
            assert held and all(owner[s] == poller for s in held)
            gaps += [expiry[s] - deadline for s, deadline in held.items()]
        assert min(gaps) > 0, min(gaps)  # every local deadline precedes its lease's expiry

        assert await eventually(lambda: site.shares() == [0, 0, 0], TTL + 0.5, step=0.005)
        emptied = time.monotonic()
        assert emptied < max(expiry.values()) + 0.05
        for p in site.pollers:
            expired = site.lost(p, "expired")
            assert frozenset().union(*(lost for _, lost in expired)) == frozenset(deadlines[p.id])
            late = [(s, t - expiry[s]) for t, lost in expired for s in lost if t >= expiry[s]]
            assert late == [], late[:3]  # each poller was told before the lease could run out
        await asyncio.sleep(max(0.0, paused + 1.5 * TTL - time.monotonic()))
        private.resume()
        resumed = time.monotonic()
        assert await eventually(lambda: balanced(site), 4 * TTL), site.shares()
        print(f"\nRedis paused {resumed - paused:.2f} s: local deadline {min(gaps) * 1000:.0f}-"
              f"{max(gaps) * 1000:.0f} ms before Redis's expiry; shares back "
              f"{time.monotonic() - resumed:.2f} s after SIGCONT")
        site.sampling = True
        await asyncio.sleep(TTL)
        assert balanced(site)
    assert site.violations == [] and site.samples > 10, (site.samples, site.violations[:3])


async def test_redis_killed_and_restarted_empty(keys: Keys, private: LoopbackRedis) -> None:
    async with three(private.url, keys) as site:
        site.sampling = False
        private.kill()
        killed = time.monotonic()
        assert await eventually(lambda: site.shares() == [0, 0, 0], TTL)
        assert all(p.stats.redis_up is False for p in site.pollers)
        private.start()  # empty, same port
        restarted = time.monotonic()
        site.sampling = True
        assert await eventually(lambda: balanced(site), 4 * TTL), site.shares()
        print(f"\nRedis killed: shares empty after {restarted - killed:.2f} s; restarted empty, "
              f"shares back after {time.monotonic() - restarted:.2f} s")
        await asyncio.sleep(TTL)
        assert balanced(site) and all(p.stats.redis_up for p in site.pollers)
        assert len(site.truth_client.zrange(keys.prefix + "pollers", 0, -1)) == 3
    assert site.violations == [] and site.samples > 10, (site.samples, site.violations[:3])


async def test_a_poller_with_another_shard_count_is_refused(keys: Keys) -> None:
    async with Site(SHARED_REDIS, keys) as site:
        site.add("poller-a")
        assert await eventually(lambda: site.shares() == [SHARDS], 3 * TTL)
        odd = ShardLeases(client_for(SHARED_REDIS, timeout=0.5), keys, 128, CONFIG, poller_id="poller-odd")
        with pytest.raises(SiteMismatch, match="use 256 shards, this one 128"):
            await asyncio.wait_for(odd.run(), 2)
        assert odd.owned() == frozenset() and odd.stats.gained == 0
        assert site.truth_client.zrange(keys.prefix + "pollers", 0, -1) == [b"poller-a"]
        await close(odd)
        assert site.shares() == [SHARDS]


async def test_a_poller_with_another_lease_ttl_is_refused(keys: Keys) -> None:
    """Its heartbeats would come at another pace than the others prune members at: refused
    before it takes a shard, the site untouched."""
    async with Site(SHARED_REDIS, keys) as site:
        site.add("poller-a")
        assert await eventually(lambda: site.shares() == [SHARDS], 3 * TTL)
        odd = ShardLeases(client_for(SHARED_REDIS, timeout=0.5), keys, SHARDS, LeaseConfig(ttl=2 * TTL),
                          poller_id="poller-slow")
        with pytest.raises(SiteMismatch, match=f"use a lease TTL of {TTL:g} s, this one {2 * TTL:g} s"):
            await asyncio.wait_for(odd.run(), 2)
        assert odd.owned() == frozenset() and odd.stats.gained == 0
        assert site.truth_client.zrange(keys.prefix + "pollers", 0, -1) == [b"poller-a"]
        assert site.truth_client.get(keys.lease_ttl) == str(round(TTL * 1000)).encode()
        await close(odd)
        assert site.shares() == [SHARDS]
