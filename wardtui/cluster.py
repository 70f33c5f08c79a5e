"""``wardtui serve --cluster``: one member of a site's pollers (issue 16; docs/CLUSTER.md).

The member holds shard leases in Redis (poller/cluster/leases.py) and polls only the devices of
the shards it holds, through the runtime's inventory path (``Runtime.polls`` and
``Runtime.apply_polled``, the one SIGHUP uses):

- shards gained: their fencing epochs are taken in PostgreSQL first (store/fencing.py, one
  transaction), then the committed state is read (open outages, their ``down_since`` and cause),
  then their devices join the engine seeded from it, in steps of whole shards of at most
  ``STEP_DEVICES`` devices, each synchronous on the loop (the loop runs between them);
- shards lost (given back, not renewed in time, taken, stopped): their devices leave the engine
  at once, synchronously, inside the leases' listener, which runs before anything is given back
  in Redis and at the local deadline, a margin before the lease can expire;
- every transition is written under the epoch of its shard's tenure when it was observed
  (store/fenced_history.py); a refusal drops it, is counted, and the member stands down from the
  shard if that tenure is still its current one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from poller.cluster.leases import LeaseConfig, ShardLeases, ShardsChanged
from poller.cluster.shards import DEFAULT_SHARDS, ShardMap, placement_key
from poller.events import State, Transition
from poller.inventory import Device
from poller.live import Keys
from poller.text import escaped
from store.spool_records import FencedTransition
from wardtui.runtime import StartupError

if TYPE_CHECKING:
    from collections.abc import Mapping

    from redis.asyncio import Redis

    from store.fenced_history import FencedHistory
    from store.fencing import Fencing
    from wardtui.runtime import Runtime

log = logging.getLogger("wardtui.cluster")

STEP_DEVICES = 20_000
"""At most this many devices (whole shards: one larger shard is a step of its own) join the
engine in one synchronous step of a takeover; the loop runs between steps, so renewals go on
whatever a takeover's size. At 200,000 devices a step costs ~0.2 s of CPU (the polled set and
the inventory difference are recomputed over every device), one step for all ~190,000 devices
~1.4 s: at idle priority on a busy box that outlasted 0.9 x TTL and the leases lapsed."""

TENURES_KEPT = 16
"""Tenures remembered per shard: a transition waiting to be written (database down, spooled)
is written under the epoch of the tenure it was observed in, if that one is still known."""


class ClusterMember:
    """The shard leases, fencing and shard-driven inventory of one ``serve --cluster``; made
    before the runtime starts (the history writer must write through the fenced sink), started
    once it has (:meth:`start`), stopped after the history is flushed (:meth:`stop`)."""

    name = "the cluster's shard leases"

    def __init__(self, runtime: Runtime, redis_url: str, site: str, ttl: float,
                 shards: int = DEFAULT_SHARDS) -> None:
        from poller.feed import client_for
        from store.fenced_history import FencedHistory
        from store.fencing import ClusterNeedsPostgres, Fencing

        self.runtime = runtime
        self.redis_url = redis_url
        self.site = site
        self.map = ShardMap(shards)
        config = LeaseConfig(ttl=ttl)
        try:
            self.fencing: Fencing = Fencing(runtime.store.db, site)
        except ClusterNeedsPostgres as exc:
            raise StartupError(str(exc), code=2) from None
        self.client: Redis = client_for(redis_url, timeout=config.op_timeout)
        self.leases = ShardLeases(self.client, Keys(site), self.map, config)
        self.leases.listeners.append(self._changed)
        # shard -> [(when the tenure began, its epoch)], oldest first; current: shard -> epoch of
        # the shards whose devices this member polls now.
        self.tenures: dict[int, list[tuple[datetime, int]]] = {}
        self.current: dict[int, int] = {}
        self._shard_of: dict[str, int] = {}  # device name -> shard, as last polled
        self._by_key: dict[str, int] = {}  # branch (placement key) -> shard: each hashed once
        self.sink: FencedHistory = FencedHistory(runtime.store, self.fencing, self.epoch_of,
                                                 self.stand_down)
        self.takeovers_failed = 0
        self._failing_since: float | None = None  # monotonic: takeovers fail since (logged once)
        self.stood_down = 0  # shards given up after a refused write
        self._losses: Counter[int] = Counter()  # shard -> times this member lost it
        self.step_devices = STEP_DEVICES
        self._lock = asyncio.Lock()  # one takeover at a time, in the order they came
        self._tasks: set[asyncio.Task[None]] = set()
        self._run: asyncio.Task[None] | None = None
        self.refused: str | None = None  # why the site refused this member (its exit is 2)
        runtime.polls = self.polls
        runtime.history_sink = self.sink
        runtime.transition_stamp = self.stamp
        runtime.engine.gauge_sources.append(self.gauges)

    # -- what this member polls ------------------------------------------------------------

    def shard(self, device: Device) -> int:
        """``device``'s shard (by its branch now: a reload may move it), remembered by name for
        :meth:`epoch_of`."""
        key = placement_key(device)
        shard = self._by_key.get(key)
        if shard is None:
            shard = self._by_key[key] = self.map.of(device)
        self._shard_of[device.name] = shard
        return shard

    def polls(self, device: Device) -> bool:
        return self.shard(device) in self.current

    def epoch_of(self, transition: Transition) -> tuple[int, int] | None:
        """The (shard, epoch) of the tenure ``transition`` was observed in: the latest tenure of
        its device's shard that began before it."""
        shard = self._shard_of.get(transition.device)
        if shard is None:
            return None
        for began, epoch in reversed(self.tenures.get(shard, ())):
            if began <= transition.at:
                return shard, epoch
        return None

    def stamp(self, transition: Transition) -> Transition:
        """``transition`` with the (shard, epoch) it was observed under, as the history writer
        takes it: spooled with it, it is written under that epoch even by the next run of this
        member (accepted if nobody took the shard meanwhile, refused if somebody did)."""
        key = self.epoch_of(transition)
        if key is None:
            return transition
        t = transition
        return FencedTransition(t.device, t.address, t.from_state, t.to_state, t.at, t.down_since, t.rtt_ms,
                                key)

    # -- the leases' changes -----------------------------------------------------------------

    def _changed(self, change: ShardsChanged) -> None:
        """Called by the leases on the loop: a loss is applied now, a gain in a task (it needs
        the database)."""
        if change.lost:
            self._losses.update(change.lost)
            lost = [s for s in change.lost if self.current.pop(s, None) is not None]
            if lost:
                diff = self.runtime.apply_polled()
                log.info("cluster: stopped polling %d shards (%s): %d devices", len(lost), change.reason,
                         len(diff.removed))
        if change.gained:
            task = asyncio.get_running_loop().create_task(self._take(change.gained))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _take(self, gained: frozenset[int]) -> None:
        """Take over ``gained``: epochs first (fencing), then the committed state, then polling,
        a step of whole shards at a time (:attr:`step_devices`)."""
        from sqlalchemy.exc import SQLAlchemyError

        from store.dburl import failure

        async with self._lock:
            shards = sorted(gained & self.leases.owned())
            if not shards:
                return
            began_at = time.monotonic()
            losses = {shard: self._losses[shard] for shard in shards}
            wanted = set(shards)
            sizes: Counter[int] = Counter()
            names = []
            for device in self.runtime.devices:
                shard = self.shard(device)
                if shard in wanted:
                    sizes[shard] += 1
                    names.append(device.name)
            try:
                epochs = await self._take_epochs(shards)
                began = datetime.now(UTC)
                # Read after the take: no write of an older epoch can commit any more.
                open_outages, unreachable = await self.runtime.committed_outages()
                last = await self.runtime.store.last_states(names)
                # The flapping windows: the transitions of the window's length before the take.
                window = timedelta(seconds=self.runtime.engine.config.state.flap_window)
                recent = await self.runtime.store.transitions_of(names, since=began - window)
            except (SQLAlchemyError, OSError) as exc:
                self._take_failed(shards, f"the history database: {failure(exc, self.runtime.store.url)}")
                return
            except Exception as exc:  # a bug: the shards must not stay leased and unpolled
                log.exception("cluster: taking over %d shards failed", len(shards))
                self._take_failed(shards, escaped(f"{type(exc).__name__}: {exc}"))
                return
            if self._failing_since is not None:
                log.warning("cluster: takeovers work again (they failed for %.0f s)",
                            time.monotonic() - self._failing_since)
                self._failing_since = None
            read_s = time.monotonic() - began_at
            # By shard, so that a step seeds from its own devices' rows, not all of them again.
            up: dict[int, list[str]] = defaultdict(list)
            for name, state in last.items():
                if state is State.UP:
                    up[self._shard_of[name]].append(name)
            recent_of: dict[int, list[Transition]] = defaultdict(list)
            for t in recent:
                recent_of[self._shard_of[t.device]].append(t)
            started: list[int] = []
            added = seeded = was_up = 0
            for i, step in enumerate(_steps(shards, sizes, self.step_devices)):
                if i:
                    # The loop runs between steps (lease renewals, probes, a screen): a
                    # takeover of any size blocks it for one step's devices at most.
                    await asyncio.sleep(0)
                # Nothing awaits from here to the step's end: a shard lost since the take began
                # (even if gained again since: that gain is a takeover of its own) is not started.
                owned = self.leases.owned()
                step = [s for s in step if s in owned and self._losses[s] == losses[s]]
                if not step:
                    continue
                for shard in step:
                    tenures = self.tenures.setdefault(shard, [])
                    tenures.append((began, epochs[shard]))
                    del tenures[:-TENURES_KEPT]
                    self.current[shard] = epochs[shard]
                diff = self.runtime.apply_polled(open_outages, unreachable.keys(),
                                                 [n for s in step for n in up[s]],
                                                 [t for s in step for t in recent_of[s]])
                started += step
                added += len(diff.added)
                seeded += sum(1 for d in diff.added if d.name in open_outages)
                was_up += sum(1 for d in diff.added if last.get(d.name) is State.UP)
            if started:
                log.info("cluster: took over %d shards (epochs %s) in %.2f s (database %.2f s): %d "
                         "devices, %d with an open outage, %d last recorded UP", len(started),
                         _epochs_text({s: epochs[s] for s in started}), time.monotonic() - began_at,
                         read_s, added, seeded, was_up)

    def _take_failed(self, shards: list[int], why: str) -> None:
        """A takeover failed: the shards are given back (their leases must not outlive a member
        that does not poll them), and another round, here or on another member, tries again.
        Logged as an error once per failing spell, not at every round of it."""
        self.takeovers_failed += 1
        if self._failing_since is None:
            self._failing_since = time.monotonic()
            log.error("cluster: cannot take over %d shards (%s); given back, and tried again every "
                      "round (logged again when takeovers work)", len(shards), why)
        self.leases.give_up(shards, "no epoch")

    async def _take_epochs(self, shards: list[int]) -> dict[int, int]:
        """Raise the epochs of ``shards`` in one transaction (in shard order: takes and fenced
        writes lock rows in that order, so they cannot deadlock)."""
        async with self.runtime.store.db.engine.begin() as conn:
            return {shard: await self.fencing.take_on(conn, shard, self.leases.id) for shard in shards}

    def stand_down(self, refused: Mapping[int, int]) -> list[int]:
        """The database refused writes of ``refused`` (shard -> the epoch written under): stop
        polling those shards whose current tenure is that epoch, and give their leases up;
        returns them (none: the refused writes were of tenures already over)."""
        stale = [shard for shard, epoch in refused.items() if self.current.get(shard) == epoch]
        if not stale:
            return []
        self.stood_down += len(stale)
        log.error("cluster: standing down from %d shards (%s): another poller took them over",
                  len(stale), ", ".join(map(str, sorted(stale))))
        self.leases.give_up(stale, "fenced")  # tells _changed, if the leases still had them
        if [shard for shard in stale if self.current.pop(shard, None) is not None]:
            self.runtime.apply_polled()
        return stale

    # -- running -----------------------------------------------------------------------------

    async def start(self) -> None:
        """Join the site's pollers (a refused Redis password, another shard count or lease TTL:
        code 2); Redis down is not fatal: the rounds retry, and the member polls nothing meanwhile."""
        from redis.exceptions import AuthenticationError, RedisError

        from poller.feed import describe_error, shown_url
        from poller.redis_url import UnknownService

        try:
            await self.client.ping()
        except (AuthenticationError, UnknownService) as exc:
            raise StartupError(f"--redis {shown_url(self.redis_url)}: {describe_error(exc, self.redis_url)}",
                               code=2) from None
        except (RedisError, OSError) as exc:
            log.warning("cluster: Redis %s does not answer yet (%s): polling nothing until it does",
                        escaped(shown_url(self.redis_url)), describe_error(exc, self.redis_url))
        self._run = asyncio.get_running_loop().create_task(self._rounds())
        log.info("cluster: joining site %s as %s (%d shards, lease TTL %g s)", self.site, self.leases.id,
                 self.map.count, self.leases.config.ttl)

    async def _rounds(self) -> None:
        from poller.cluster.leases import SiteMismatch

        try:
            await self.leases.run()
        except SiteMismatch as exc:
            log.error("cluster: %s; stopping", exc)
            self.refused = str(exc)
            self.runtime.engine.stop()

    async def quiesce(self) -> None:
        """The engine has stopped: take nothing over any more and leave the devices alone; the
        leases stay renewed while the history is flushed under their epochs."""
        with contextlib.suppress(ValueError):
            self.leases.listeners.remove(self._changed)
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def stop(self) -> None:
        """Give every shard back (owner-checked) and leave the members (after the history is
        flushed: the engine has stopped, so the devices are not touched again)."""
        await self.quiesce()
        if self._run is not None:  # (never started: nothing taken, nothing to give back)
            await self.leases.stop()
        if self._run is not None:
            self._run.cancel()
            await asyncio.gather(self._run, return_exceptions=True)
        with contextlib.suppress(Exception):
            await self.client.aclose()

    def gauges(self) -> dict[str, float]:
        """``cluster_shards_owned``, ``cluster_takeovers``, ``cluster_refused_writes`` (write
        transactions the database refused), ``cluster_refused_transitions``, ..."""
        stats = self.leases.stats
        return {"cluster_shards_owned": float(len(self.current)),
                "cluster_members": float(len(stats.members)),
                "cluster_lease_rounds_failed": float(stats.failed_rounds),
                "cluster_takeovers_failed": float(self.takeovers_failed),
                "cluster_stood_down": float(self.stood_down),
                **self.fencing.gauges(), **self.sink.gauges()}


def _steps(shards: list[int], sizes: Mapping[int, int], budget: int) -> list[list[int]]:
    """``shards`` in order, in runs of whole shards of at most ``budget`` devices together (a
    shard larger than that alone)."""
    steps: list[list[int]] = [[]]
    total = 0
    for shard in shards:
        size = sizes.get(shard, 0)
        if steps[-1] and total + size > budget:
            steps.append([])
            total = 0
        steps[-1].append(shard)
        total += size
    return steps if shards else []


def _epochs_text(epochs: dict[int, int]) -> str:
    shown = [f"{shard}:{epoch}" for shard, epoch in sorted(epochs.items())]
    return ", ".join(shown[:8]) + (f" and {len(shown) - 8} more" if len(shown) > 8 else "")
