"""The notifier lease on Redis: one member of a site at a time runs the notifier (issue 15 item
6, issue 16 item 5; docs/CLUSTER.md, "The notifier lease").

One key, ``wardtui:S:notifier``: the holder's poller id, ``PX`` the TTL. Any member may take it
(``SET NX PX``); the holder renews it every TTL / 3 with the shard leases' owner-checked script
and gives it back (owner-checked) when it stops. As with a shard, the lease is the holder's only
until a **local deadline** (the monotonic time the ``SET`` or renewal was *sent*, plus the TTL,
minus a margin): a timer tells the listener at that deadline whatever Redis is doing, so a
holder that cannot renew stops notifying before another member can take the key. The lease
only says who *should* notify; the outbox's writes are fenced in PostgreSQL under the epoch of
the notifier's pseudo-shard (``store.fencing.NOTIFIER_SHARD``), taken by the new holder before
it reads anything, so a holder that lost the key without knowing (paused, partitioned, a Redis
failover) can no longer write.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from redis.asyncio import Redis
from redis.exceptions import RedisError

from poller.cluster.leases import LeaseConfig, TimedCalls
from poller.cluster.scripts import RELEASE, RENEW
from poller.live import Keys
from poller.text import escaped

log = logging.getLogger("wardtui.cluster")

Listener = Callable[[bool, str], None]
"""``listener(held, reason)``: gained (``True``, "acquired") or lost (``False``: "expired", "not
renewed", "given up", "stopped"); called on the loop, synchronously."""


class NotifierLease:
    """The notifier lease of one member (see the module's docstring)."""

    def __init__(self, client: Redis, keys: Keys, poller_id: str, config: LeaseConfig,
                 listener: Listener) -> None:
        self.client = client
        self.key = keys.prefix + "notifier"
        self.id = poller_id
        self.config = config
        self.listener = listener
        self.deadline: float | None = None  # monotonic; None: not held
        self.gained = 0
        self.lost = 0
        self._timer: asyncio.TimerHandle | None = None
        self._task: asyncio.Task[None] | None = None
        self._call = TimedCalls(self.config.op_timeout)
        self._renew = client.register_script(RENEW)
        self._release = client.register_script(RELEASE)

    @property
    def held(self) -> bool:
        return self.deadline is not None and self.deadline > time.monotonic()

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="wardtui-notifier-lease")

    async def _run(self) -> None:
        failing = False
        while True:
            try:
                await self.round()
                if failing:
                    log.warning("cluster: the notifier lease reaches Redis again")
                failing = False
            except (RedisError, OSError, TimeoutError) as exc:
                if not failing:
                    log.error("cluster: the notifier lease cannot reach Redis (%s)",
                              escaped(str(exc) or type(exc).__name__))
                failing = True
            # After a failure, sooner than a round (a Sentinel failover: renew on the new primary
            # well before the local deadline), as the shard leases do.
            await asyncio.sleep(self.config.retry_interval if failing else self.config.renew_interval)

    async def round(self) -> None:
        """Renew the lease if held, else try to take it."""
        self._lapse()
        ttl_ms = max(1, round(self.config.ttl * 1000))
        sent = time.monotonic()
        deadline = sent + self.config.ttl - self.config.safety_margin
        if self.deadline is not None:
            renewed = await self._call(self._renew(keys=[self.key], args=[self.id, ttl_ms]))
            self._lapse()  # an answer after the deadline does not revive the lease
            if self.deadline is None:
                return  # dropped at its deadline: the key is given back below, next round
            if renewed and int(renewed[0]) == 1:
                self.deadline = deadline
                self._arm()
            else:
                self._drop("not renewed")
            return
        # Not held: a key still naming this member (dropped at its deadline, or given up) is an
        # orphan: given back first, then taken again only with SET NX, like any free lease.
        await self._call(self._release(keys=[self.key], args=[self.id]))
        if await self._call(self.client.set(self.key, self.id, nx=True, px=ttl_ms)):
            if deadline <= time.monotonic():
                return  # answered too late: an orphan, given back next round
            self.deadline = deadline
            self.gained += 1
            self._arm()
            log.info("cluster: %s holds the notifier lease", self.id)
            self._tell(True, "acquired")

    def give_up(self, reason: str) -> None:
        """Stop holding the lease now (e.g. the outbox's write was refused: another member
        took the notifier's epoch); the key is given back at the next round."""
        self._drop(reason)

    async def stop(self) -> None:
        """Stop the rounds, tell the listener, give the key back (owner-checked)."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        self._drop("stopped")
        try:
            await self._call(self._release(keys=[self.key], args=[self.id]))
        except (RedisError, OSError, TimeoutError) as exc:
            log.warning("cluster: the notifier lease was not given back (%s); it expires within %g s",
                        escaped(str(exc) or type(exc).__name__), self.config.ttl)

    # -- local state ------------------------------------------------------------------------

    def _drop(self, reason: str) -> None:
        if self.deadline is None:
            return
        self.deadline = None
        self.lost += 1
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        log.info("cluster: %s no longer holds the notifier lease (%s)", self.id, reason)
        self._tell(False, reason)

    def _lapse(self) -> None:
        if self.deadline is not None and self.deadline <= time.monotonic():
            self._drop("expired")

    def _arm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        if self.deadline is not None:
            delay = max(0.0, self.deadline - time.monotonic())
            self._timer = asyncio.get_running_loop().call_later(delay, self._expire)

    def _expire(self) -> None:
        self._timer = None
        self._lapse()
        if self.deadline is not None:
            self._arm()  # woken a little early

    def _tell(self, held: bool, reason: str) -> None:
        try:
            self.listener(held, reason)
        except Exception:  # a listener's bug must not stop the lease's safety
            log.exception("cluster: the notifier lease's listener failed")
