"""Shard leases on Redis for one poller of a site: take an equal share of the shards, renew it,
give back what a rebalance asks, and stop calling a shard its own before its lease can expire.

Keys, for site ``S`` (the live feed's prefix, poller/live.py's :class:`Keys`):

- ``wardtui:{S}:shard:N``     shard N's lease: the holder's poller id, ``PX`` the TTL. Taken with
                              ``SET NX PX``; renewed and released by scripts that first check the
                              key still names the poller (as redis-py's ``Lock`` extends and
                              releases), all held shards in one ``EVALSHA``
- ``wardtui:{S}:pollers``     live pollers: a sorted set of ids scored by Redis's own clock (ms)
                              at each one's last heartbeat; older than the member TTL is pruned
- ``wardtui:{S}:shard-count`` the site's shard count, as the first poller set it: a poller with
                              another count is refused (its shards would not be the same shards)
- ``wardtui:{S}:lease-ttl``   the site's lease TTL in ms, likewise: a poller with another TTL is
                              refused (it would heartbeat at another pace than the others prune
                              at, and renew on another clock than its shares are planned on)

Safety: a shard is this poller's only until a local deadline, the monotonic time at which the
``SET`` or renewal that gave it was *sent* (before Redis could set its expiry) plus the TTL minus
a safety margin (clock-rate drift between hosts, 10 % of the TTL by default). :meth:`owned` is
computed from those deadlines; a timer drops each shard at its deadline and tells the
listeners, whatever Redis is doing. A shard dropped that way is never renewed: the next round
finds its key still naming this poller (an orphan) and releases it, and it can be taken again
only with ``SET NX`` like any free shard. No consensus of our own: Redis's ``SET NX`` decides who
holds a shard; writes are fenced in PostgreSQL by a later step.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from redis.asyncio import Redis
from redis.exceptions import RedisError

from poller.cluster.balance import plan_round
from poller.cluster.scripts import RELEASE, RENEW, VIEW
from poller.cluster.shards import DEFAULT_SHARDS, ShardMap
from poller.live import Keys
from poller.text import escaped

log = logging.getLogger("wardtui.cluster")
T = TypeVar("T")


class TimedCalls:
    """Redis calls within ``timeout`` seconds. On a timeout (or the caller cancelled) a call is
    cancelled but not waited for: under load, a redis-py 8.2 command cancelled by ``wait_for``
    was seen still pending minutes later, and ``wait_for`` waited with it. ``pending``: the
    calls under way, abandoned ones included."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self.pending: set[asyncio.Future[Any]] = set()

    async def __call__(self, awaitable: Awaitable[T]) -> T:
        call = asyncio.ensure_future(awaitable)
        self.pending.add(call)
        call.add_done_callback(self._finished)
        try:
            done, _ = await asyncio.wait({call}, timeout=self.timeout)
        except asyncio.CancelledError:
            call.cancel()
            raise
        if not done:
            call.cancel()
            raise TimeoutError(f"no answer from Redis within {self.timeout:g} s")
        return call.result()

    def _finished(self, call: asyncio.Future[Any]) -> None:
        self.pending.discard(call)
        if not call.cancelled():
            call.exception()  # an abandoned call's error is not "never retrieved"

DEFAULT_TTL = 10.0
DEFAULT_MAX_MOVES = 8

def new_poller_id() -> str:
    """``host:pid:random``: unique even for a pid reused after a restart."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


class SiteMismatch(ValueError):
    """The site's pollers use another shard count or lease TTL than this one."""


@dataclass(frozen=True, slots=True)
class LeaseConfig:
    """Timings (seconds) and bounds; None takes the default derived from ``ttl``."""

    ttl: float = DEFAULT_TTL
    renew_every: float | None = None  # ttl / 3
    margin: float | None = None  # ttl / 10: drift allowance before Redis's expiry
    max_moves: int = DEFAULT_MAX_MOVES  # shards a poller over its share gives back per round
    # ttl - margin: a poller silent this long is no longer a member. No longer than its leases
    # live, so the others' shares grow by the time its shards come free (failover in one round).
    member_ttl: float | None = None
    timeout: float | None = None  # renew_every: one Redis call's limit

    def __post_init__(self) -> None:
        if not self.ttl >= 0.1:
            raise ValueError(f"lease TTL {self.ttl} s: use 0.1 s or more")
        if not 0 < self.safety_margin < self.ttl:
            raise ValueError(f"safety margin {self.safety_margin} s: use more than 0, less than the TTL")
        if not 0 < self.renew_interval * 2 <= self.ttl - self.safety_margin:
            raise ValueError(f"renewal every {self.renew_interval} s: a lease must be renewable twice "
                             f"within TTL - margin ({self.ttl - self.safety_margin:g} s)")
        if not self.member_age > self.renew_interval * 2:
            raise ValueError(f"member TTL {self.member_age} s: use more than twice the renewal interval")
        if self.max_moves < 1:
            raise ValueError(f"max moves {self.max_moves}: use 1 or more")
        if not self.op_timeout > 0:
            raise ValueError(f"Redis timeout {self.op_timeout} s: use more than 0")

    @property
    def renew_interval(self) -> float:
        return self.ttl / 3 if self.renew_every is None else self.renew_every

    @property
    def retry_interval(self) -> float:
        """Seconds before the next round after one that failed (Redis lost, a Sentinel failover
        under way): sooner than a round, so that the held shards are renewed on the new primary
        as soon as it answers, well before their local deadlines (TTL / 20, 0.2 s at least)."""
        return min(self.renew_interval, max(0.2, self.ttl / 20))

    @property
    def safety_margin(self) -> float:
        return self.ttl / 10 if self.margin is None else self.margin

    @property
    def member_age(self) -> float:
        return self.ttl - self.safety_margin if self.member_ttl is None else self.member_ttl

    @property
    def op_timeout(self) -> float:
        return self.renew_interval if self.timeout is None else self.timeout


@dataclass(frozen=True, slots=True)
class ShardsChanged:
    """Shards this poller gained or lost, and why: ``acquired`` (gained), ``rebalanced`` (given
    back for the balance), ``expired`` (not renewed in time), ``not renewed`` (Redis no longer
    names it), ``taken`` (Redis names another poller), ``stopped``."""

    poller: str
    gained: frozenset[int] = frozenset()
    lost: frozenset[int] = frozenset()
    reason: str = ""


@dataclass(slots=True)
class LeaseStats:
    rounds: int = 0
    failed_rounds: int = 0
    redis_up: bool | None = None
    last_error: str | None = None
    down_since: float | None = None  # monotonic
    members: tuple[str, ...] = ()
    target: int = 0
    gained: int = 0
    lost: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class _View:
    members: tuple[str, ...]
    owners: tuple[str | None, ...]
    joined: bool  # this poller was not a member before this heartbeat


Listener = Callable[[ShardsChanged], None]


class ShardLeases:
    """One poller's shard leases on one site: :meth:`start` (or ``await run()``), :meth:`owned`,
    listeners for :class:`ShardsChanged`, :meth:`stop` to give everything back.

    Listeners are called on the event loop, synchronously, before anything is given back in
    Redis: a poller stops polling a shard before another can take it."""

    def __init__(self, client: Redis, keys: Keys, shards: ShardMap | int = DEFAULT_SHARDS,
                 config: LeaseConfig | None = None, poller_id: str | None = None) -> None:
        self.client = client
        self.keys = keys
        self.map = shards if isinstance(shards, ShardMap) else ShardMap(shards)
        self.config = config or LeaseConfig()
        self.id = poller_id or new_poller_id()
        self.listeners: list[Listener] = []
        self.stats = LeaseStats()
        self._call = TimedCalls(self.config.op_timeout)
        self._deadlines: dict[int, float] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._task: asyncio.Task[None] | None = None
        self._steady = False  # the last round answered
        self._leases = [self.shard_key(s) for s in range(self.map.count)]
        self._renew = client.register_script(RENEW)
        self._release = client.register_script(RELEASE)
        self._view = client.register_script(VIEW)

    # -- keys and reading ------------------------------------------------------------------------

    def shard_key(self, shard: int) -> str:
        return self.keys.shard(shard)

    @property
    def members_key(self) -> str:
        return self.keys.pollers

    @property
    def count_key(self) -> str:
        return self.keys.shard_count

    @property
    def ttl_key(self) -> str:
        return self.keys.lease_ttl

    def owned(self) -> frozenset[int]:
        """The shards this poller may poll now: those whose local deadline is in the future."""
        now = time.monotonic()
        return frozenset(s for s, deadline in self._deadlines.items() if deadline > now)

    def deadlines(self) -> dict[int, float]:
        """Each held shard's local deadline (``time.monotonic()`` seconds)."""
        return dict(self._deadlines)

    def give_up(self, shards: Iterable[int], reason: str) -> None:
        """Stop calling ``shards`` this poller's own now (the listeners are told, with ``reason``),
        e.g. after the database refused a write of theirs (fenced: another poller took them).
        They are never renewed: the next round finds their keys still naming this poller, if
        they do, and gives them back; taken again only with ``SET NX``, like any free shard."""
        self._drop(shards, reason)

    # -- running ---------------------------------------------------------------------------------

    def start(self) -> asyncio.Task[None]:
        self._task = asyncio.create_task(self.run(), name=f"shard leases {self.id}")
        return self._task

    async def run(self) -> None:
        """Rounds every ``renew_interval`` until cancelled (the leases stay until they expire:
        :meth:`stop` gives them back). Raises :class:`SiteMismatch`."""
        self._task = asyncio.current_task()
        next_round = time.monotonic()
        try:
            while True:
                await self.round()
                now = time.monotonic()
                if self._steady:
                    next_round += self.config.renew_interval
                    next_round = max(next_round, now)  # late: go on from now, no burst to catch up
                else:
                    next_round = now + self.config.retry_interval
                await asyncio.sleep(next_round - now)
        except SiteMismatch:
            await self._give_back()
            raise

    async def stop(self) -> None:
        """Stop the rounds, tell the listeners every shard is lost, then give them back (owner-
        checked) and leave the members. Redis unreachable: the leases expire by themselves."""
        task = self._task
        if task is not None and task is not asyncio.current_task() and not task.done():
            task.cancel()
            await asyncio.wait([task])
        await self._give_back()

    async def round(self) -> None:
        """Renew, look, rebalance. A Redis failure ends the round (counted, logged once)."""
        self.stats.rounds += 1
        try:
            self._lapse()
            await self._renew_held()
            view = await self._look()
            self._lapse()  # told before the plan can give an expired shard back to Redis
            # Takes free shards only when it was a member already and its last round answered: after
            # a start, or Redis lost, restarted or slow, the others may not have heartbeated yet (a
            # heartbeat abandoned on a timeout can even run late and make this one look old).
            plan = plan_round(self.id, view.members, view.owners, self.owned(), self.config.max_moves,
                              may_acquire=self._steady and not view.joined)
            self.stats.members, self.stats.target = view.members, plan.target
            log.debug("cluster: %s round: %d members%s, holds %d of target %d; gives back %d (+%d orphans), "
                      "drops %d, tries %d", self.id, len(view.members), " (joined)" if view.joined else "",
                      len(self._deadlines), plan.target, len(plan.release), len(plan.orphans),
                      len(plan.taken), len(plan.acquire))
            self._drop(plan.taken, "taken")
            self._drop(plan.release, "rebalanced")
            if plan.release or plan.orphans:
                await self._call(self._release(keys=self._keys(plan.release + plan.orphans), args=[self.id]))
            if plan.acquire:
                await self._acquire(plan.acquire)
        except (RedisError, OSError, TimeoutError) as exc:
            self._steady = False
            self._failed(exc)
            return
        self._steady = True
        self._answered()

    # -- the steps -------------------------------------------------------------------------------

    async def _renew_held(self) -> None:
        held = sorted(self.owned())
        if not held:
            return
        sent = time.monotonic()
        ttl_ms = self._ms(self.config.ttl)
        renewed = await self._call(self._renew(keys=self._keys(held), args=[self.id, ttl_ms]))
        deadline = sent + self.config.ttl - self.config.safety_margin
        self._lapse()  # a renewal answered after the deadline does not revive the shard
        gone = []
        for shard, ok in zip(held, renewed, strict=True):
            if shard not in self._deadlines:
                continue  # dropped at its deadline: an orphan now, given back next round
            if ok:
                self._deadlines[shard] = deadline
            else:
                gone.append(shard)
        self._drop(gone, "not renewed")
        self._arm()

    async def _look(self) -> _View:
        ttl_ms = self._ms(self.config.ttl)
        keys = [self.members_key, self.count_key, self.ttl_key, *self._leases]
        raw = await self._call(self._view(keys=keys, args=[self.id, self._ms(self.config.member_age),
                                                           self.map.count, ttl_ms]))
        count, joined, members, owners, ttl = raw
        if _text(count) != str(self.map.count):
            raise SiteMismatch(
                f"the site {self.keys.site}'s pollers use {escaped(_text(count))} shards, this one "
                f"{self.map.count}: start every poller of a site with the same shard count")
        if _text(ttl) != str(ttl_ms):
            raise SiteMismatch(
                f"the site {self.keys.site}'s pollers use a lease TTL of {_seconds(_text(ttl))} s, this one "
                f"{self.config.ttl:g} s: start every poller of a site with the same --lease-ttl")
        return _View(tuple(_text(m) for m in members), tuple(_text(o) or None for o in owners), joined == 1)

    async def _acquire(self, shards: Sequence[int]) -> None:
        ttl_ms = self._ms(self.config.ttl)

        async def set_each() -> list[Any]:
            async with self.client.pipeline(transaction=False) as pipe:
                for shard in shards:
                    pipe.set(self.shard_key(shard), self.id, nx=True, px=ttl_ms)
                return await pipe.execute()

        sent = time.monotonic()
        results = await self._call(set_each())
        deadline = sent + self.config.ttl - self.config.safety_margin
        if deadline <= time.monotonic():
            return  # answered too late to poll them: orphans, given back next round
        gained = frozenset(s for s, ok in zip(shards, results, strict=True) if ok)
        if not gained:
            return
        for shard in gained:
            self._deadlines[shard] = deadline
        self._arm()
        self.stats.gained += len(gained)
        self._tell(ShardsChanged(self.id, gained=gained, reason="acquired"))

    async def _give_back(self) -> None:
        self._drop(list(self._deadlines), "stopped")
        try:  # every shard: the script deletes only the keys naming this poller (orphans too)
            await self._call(self._release(keys=self._leases, args=[self.id]))
            await self._call(self.client.zrem(self.members_key, self.id))
        except (RedisError, OSError, TimeoutError) as exc:
            log.warning("cluster: %s could not give its shards back (%s); they expire within %g s",
                        self.id, escaped(str(exc) or type(exc).__name__), self.config.ttl)

    # -- local state -----------------------------------------------------------------------------

    def _drop(self, shards: Iterable[int], reason: str) -> None:
        lost = frozenset(s for s in shards if self._deadlines.pop(s, None) is not None)
        if not lost:
            return
        self._arm()
        self.stats.lost[reason] = self.stats.lost.get(reason, 0) + len(lost)
        self._tell(ShardsChanged(self.id, lost=lost, reason=reason))

    def _lapse(self) -> None:
        """Drop the shards past their deadline now, whether or not the timer has run."""
        now = time.monotonic()
        self._drop([s for s, deadline in self._deadlines.items() if deadline <= now], "expired")

    def _arm(self) -> None:
        """One timer, at the earliest deadline."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._deadlines:
            delay = min(self._deadlines.values()) - time.monotonic()
            self._timer = asyncio.get_running_loop().call_later(max(delay, 0.0), self._expire)

    def _expire(self) -> None:
        self._timer = None
        before = len(self._deadlines)
        self._lapse()
        if len(self._deadlines) == before:
            self._arm()  # woken a little early

    def _tell(self, change: ShardsChanged) -> None:
        gained, lost = len(change.gained), len(change.lost)
        log.info("cluster: %s %s %d shards (%s); holds %d", self.id, "gained" if gained else "lost",
                 gained or lost, change.reason, len(self._deadlines))
        for listener in list(self.listeners):
            try:
                listener(change)
            except Exception:  # a listener's bug must not stop the leases' safety
                log.exception("cluster: a shard listener failed")

    def _failed(self, exc: BaseException) -> None:
        self.stats.failed_rounds += 1
        self.stats.last_error = str(exc) or type(exc).__name__
        if self.stats.redis_up is not False:
            self.stats.down_since = time.monotonic()
            log.error("cluster: %s cannot reach Redis (%s); its %d shards stay its own only until "
                      "their local deadlines", self.id, escaped(self.stats.last_error), len(self._deadlines))
        self.stats.redis_up = False

    def _answered(self) -> None:
        if self.stats.redis_up is False and self.stats.down_since is not None:
            log.warning("cluster: %s reaches Redis again after %.1f s", self.id,
                        time.monotonic() - self.stats.down_since)
        self.stats.redis_up, self.stats.down_since = True, None

    @property
    def in_flight(self) -> int:
        """Redis calls under way, abandoned ones included (a test waits for none to read Redis's
        truth)."""
        return len(self._call.pending)

    def _keys(self, shards: Iterable[int]) -> list[str]:
        return [self._leases[s] for s in shards]

    @staticmethod
    def _ms(seconds: float) -> int:
        return max(1, round(seconds * 1000))


def _seconds(ms: str) -> str:
    """A TTL in ms as Redis holds it, in seconds as --lease-ttl takes it (escaped if odd)."""
    try:
        return f"{int(ms) / 1000:g}"
    except ValueError:
        return escaped(ms)


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return "" if value is None else str(value)
