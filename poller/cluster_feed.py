"""A viewer's copy of a cluster's site (issue 16 item 5): each ``serve --cluster`` member publishes
its own feed (its devices, stream and heartbeat under ``wardtui:SITE:poller:ID:``); this follows
one :class:`~poller.feed.LiveFeed` per live member and shows them as one site.

- Members are found in the site's pollers set (the shard leases' heartbeats) and each one's
  heartbeat, looked at every :data:`NODE_LOOK` seconds: a member joining is attached, one gone
  (left the set and its heartbeat stale, or stopped) is dropped, with no restart of the viewer.
- Each device comes from one member: the one its shard's lease names now (poller/cluster/
  shards.py places a device by its branch), when that member's feed has it; else the member whose
  inventory changed last (a device handed over appears in the new owner's feed after its
  takeover). So a device that moved is never shown twice, and never flips back to a stale row.
- Transitions and the other events of a device are passed on from its member only; the gauges
  are added up (lag: the worst); :class:`NodesChanged` gives a line per member (devices, lag
  p99, skipped, shards, lease age, takeovers, refused writes).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from redis.exceptions import RedisError

from poller.bus import EventBus
from poller.cluster.shards import ShardMap, placement_key, shard_of
from poller.events import OUT, Gauges
from poller.feed import (
    FeedStatus,
    InventoryChanged,
    LiveFeed,
    NoService,
    ProbeSeen,
    RowsChanged,
    ServiceInfo,
    ViewerStats,
    _service_info,
    client_for,
    describe_error,
    is_live,
    shown_url,
)
from poller.live import FeedFormatError, Keys, LiveTracker
from poller.quiet import Quiet, QuietChanged
from poller.text import escaped

if TYPE_CHECKING:
    from redis.asyncio import Redis

log = logging.getLogger(__name__)

NODE_LOOK = 1.0
"""Seconds between looks at the site's members and shard owners."""
HOLD = 30.0
"""Seconds a device that left one member's feed is still shown from it (frozen) while no other
member's feed has it: a hand-over, between the old owner letting go and the new one publishing."""


@dataclass(frozen=True, slots=True)
class NodeLine:
    """One member of the cluster as a viewer sees it. ``poller`` and ``host`` are data (a
    hostname is whatever the member's host says): shown cleaned, never as markup."""

    poller: str
    host: str
    pid: int
    since: str  # the member's start (ISO, as it wrote it)
    live: bool  # its feed is followed and its heartbeat fresh
    devices: int  # devices shown from it
    shards: int  # shards whose lease names it
    lease_age_s: float | None  # its stalest lease: seconds since renewed (TTL - PTTL)
    lag_p99_ms: float | None
    skipped: int | None
    takeovers: float | None
    refused_writes: float | None


@dataclass(frozen=True, slots=True)
class NodesChanged:
    """The members' lines, each time one of them publishes its gauges or the members change."""

    nodes: tuple[NodeLine, ...]


@dataclass(frozen=True, slots=True)
class SiteLook:
    """What one look at Redis found: live members' heartbeats, each shard's owner and its
    lease's remaining time (ms; -2 none)."""

    members: dict[str, ServiceInfo]
    owners: tuple[str | None, ...]
    pttl: tuple[int, ...]


async def look_at_site(client: Redis, keys: Keys) -> SiteLook:
    """The site's members (in its pollers set, with a live heartbeat) and shard owners, in two
    round trips."""
    pipe = client.pipeline(transaction=False)
    pipe.zrange(keys.pollers, 0, -1)
    pipe.get(keys.shard_count)
    ids_raw, count_raw = await pipe.execute()
    ids = [_text(i) for i in ids_raw or ()]
    count = 0
    with contextlib.suppress(TypeError, ValueError):
        count = max(0, min(int(_text(count_raw)), 4096)) if count_raw is not None else 0
    pipe = client.pipeline(transaction=False)
    for poller in ids:
        pipe.get(keys.of_poller(poller).service)
        pipe.pttl(keys.of_poller(poller).service)
    for shard in range(count):
        pipe.get(keys.shard(shard))
        pipe.pttl(keys.shard(shard))
    results = await pipe.execute() if ids or count else []
    members: dict[str, ServiceInfo] = {}
    for i, poller in enumerate(ids):
        info = _service_info(results[2 * i], results[2 * i + 1])
        if info is not None and is_live(info):
            members[poller] = info
    rest = results[2 * len(ids):]
    owners = tuple(_text(rest[2 * s]) or None if rest[2 * s] is not None else None for s in range(count))
    pttl = tuple(int(rest[2 * s + 1]) if isinstance(rest[2 * s + 1], int) else -2 for s in range(count))
    return SiteLook(members, owners, pttl)


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def merge_gauges(parts: Iterable[Gauges]) -> Gauges | None:
    """The members' gauges as one: counts and rates added up, lags and the oldest overdue the
    worst, ``extra`` added up (shards owned: every member's; takeovers, refused writes: all)."""
    parts = list(parts)
    if not parts:
        return None
    worst = {"lag_p50_ms", "lag_p99_ms", "oldest_overdue_ms"}
    values: dict[str, Any] = {}
    for f in fields(Gauges):
        if f.name == "at":
            values["at"] = max(g.at for g in parts)
        elif f.name == "extra":
            extra: dict[str, float] = {}
            for g in parts:
                for key, value in g.extra.items():
                    extra[key] = extra.get(key, 0.0) + value
            values["extra"] = extra
        elif f.name in worst:
            values[f.name] = max(getattr(g, f.name) for g in parts)
        else:
            values[f.name] = sum(getattr(g, f.name) for g in parts)
    return Gauges(**values)


class _Relay:
    """Stands for a member feed's bus: what it publishes goes to the cluster feed, which decides
    what the screens see."""

    def __init__(self, cluster: ClusterFeed, poller: str) -> None:
        self.cluster = cluster
        self.poller = poller

    def publish(self, event: Any) -> None:
        self.cluster._from_member(self.poller, event)


class ClusterFeed:
    """The viewer's copy of a site published by several ``serve --cluster`` members: what
    :class:`~poller.feed.LiveFeed` offers the screens (trackers, bus, gauges, commands), and
    :attr:`poller_of` (device -> member id) and :attr:`nodes`."""

    cluster = True
    slots: tuple[Any, ...] = ()

    def __init__(self, url: str, keys: Keys, viewer: str = "",
                 client_factory: Callable[[], Redis] | None = None, refresh: float = 1.0,
                 look: float = NODE_LOOK) -> None:
        self.url = url
        self.keys = keys
        self.viewer = viewer
        self.refresh = refresh
        self.look_period = look
        self._factory = client_factory or (lambda: client_for(url))
        self.feeds: dict[str, LiveFeed] = {}
        self.infos: dict[str, ServiceInfo] = {}
        self.trackers: dict[str, LiveTracker] = {}
        self.poller_of: dict[str, str] = {}
        self.bus = EventBus()
        self.last_gauges: Gauges | None = None
        self.nodes: tuple[NodeLine, ...] = ()
        self.service: ServiceInfo | None = None
        self.stats = ViewerStats()
        self.live = False
        self.lost_since: datetime | None = None
        self.quiet = Quiet()
        self._owners: tuple[str | None, ...] = ()
        self._pttl: tuple[int, ...] = ()
        self._map: ShardMap | None = None
        self._shard_by_key: dict[str, int] = {}
        self._changed_at: dict[str, float] = {}  # member -> monotonic time its inventory changed
        self._counts: dict[str, int] = {}  # member -> devices shown from it (made by _merge)
        self._stale = True  # owners, members or an inventory changed since the last merge
        # Devices in no member's feed now, shown as their member last published them (HOLD):
        # name -> (tracker, member, monotonic time it left).
        self._held: dict[str, tuple[LiveTracker, str, float]] = {}
        self._gauges: dict[str, Gauges] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._client: Redis | None = None
        self._stopping = asyncio.Event()
        self._running = False
        self._finished = asyncio.Event()

    # -- what the screens read ------------------------------------------------------------------

    def is_down(self, name: str) -> bool:
        tracker = self.trackers.get(name)
        return tracker is not None and tracker.state in OUT

    def stop(self) -> None:
        self._stopping.set()
        for feed in self.feeds.values():
            feed.stop()

    async def stopped(self, timeout: float = 2.0) -> None:
        self.stop()
        if self._running:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._finished.wait(), timeout)

    # -- attaching and following ------------------------------------------------------------------

    async def attach(self) -> None:
        """Attach to every live member (raises NoService when none publishes, RedisError or
        OSError when Redis cannot be reached)."""
        client = self._factory()
        try:
            found = await look_at_site(client, self.keys)
        except BaseException:
            with contextlib.suppress(RedisError, OSError, RuntimeError):
                await client.aclose()
            raise
        self._client = client
        self._take_look(found)
        for poller in sorted(found.members):
            await self._join(poller)
        if not self.feeds:
            raise NoService(f"no member of the cluster publishes the site {self.keys.site!r}")
        self.live = True
        self._merge()
        self.last_gauges = merge_gauges(self._gauges[p] for p in sorted(self._gauges))
        if self.last_gauges is not None:
            self.bus.publish(self.last_gauges)
        self._publish_nodes()

    async def _join(self, poller: str) -> None:
        feed = LiveFeed(self.url, self.keys.of_poller(poller), self.viewer, refresh=self.refresh)
        feed.bus = _Relay(self, poller)  # type: ignore[assignment]
        try:
            await feed.attach()
        except (NoService, RedisError, OSError, FeedFormatError) as exc:
            log.info("cluster feed: member %s not attached yet: %s", escaped(poller), escaped(str(exc)))
            return
        self.feeds[poller] = feed
        self._changed_at[poller] = time.monotonic()
        self._stale = True
        if feed.last_gauges is not None:
            self._gauges[poller] = feed.last_gauges
        if self._running:
            self._start(poller)
        log.info("cluster feed: following member %s (%d devices)", escaped(poller), len(feed.trackers))

    def _start(self, poller: str) -> None:
        task = asyncio.get_running_loop().create_task(self.feeds[poller].run(), name=f"feed {poller}")
        self._tasks[poller] = task

    async def run(self, duration: float | None = None) -> None:
        """Follow every member until :meth:`stop` (or ``duration`` s); members joining and
        leaving are picked up at each look."""
        self._running = True
        self._finished.clear()
        end = None if duration is None else time.monotonic() + duration
        try:
            for poller in self.feeds:
                self._start(poller)
            while not self._stopping.is_set() and (end is None or time.monotonic() < end):
                with contextlib.suppress(TimeoutError):
                    wait = self.look_period if end is None else max(0.0, min(self.look_period,
                                                                              end - time.monotonic()))
                    await asyncio.wait_for(self._stopping.wait(), wait)
                if not self._stopping.is_set():
                    await self._look()
        finally:
            for feed in self.feeds.values():
                feed.stop()
            await asyncio.gather(*self._tasks.values(), return_exceptions=True)
            client, self._client = self._client, None
            if client is not None:
                with contextlib.suppress(RedisError, OSError, RuntimeError):
                    await client.aclose()
            self._running = False
            self._finished.set()

    async def _look(self) -> None:
        client = self._client or self._factory()
        self._client = client
        try:
            found = await look_at_site(client, self.keys)
        except (RedisError, OSError) as exc:
            self._client = None
            with contextlib.suppress(RedisError, OSError, RuntimeError):
                await client.aclose()
            self.stats.losses += 1
            if self.live:
                self.live = False
                self.lost_since = datetime.now(UTC)
                detail = f"Redis {escaped(shown_url(self.url))}: {describe_error(exc, self.url)}"
                log.warning("cluster feed lost: %s", detail)
                self.bus.publish(FeedStatus(False, self.lost_since, detail))  # type: ignore[arg-type]
            return
        if not self.live:
            self.live, self.lost_since = True, None
            self.bus.publish(FeedStatus(True, datetime.now(UTC), "live"))  # type: ignore[arg-type]
        self._take_look(found)
        for poller in sorted(found.members.keys() - self.feeds.keys()):
            await self._join(poller)
        gone = [p for p in self.feeds if p not in found.members]
        for poller in gone:
            self._leave(poller)
        if self._stale or self._held:  # (every device is looked at: not each second for nothing)
            self._merge()
        self._publish_nodes()

    def _leave(self, poller: str) -> None:
        """A member stopped (its heartbeat went, or it left the pollers set): its devices go
        (another member takes its shards and shows them)."""
        feed = self.feeds.pop(poller)
        feed.stop()
        self._stale = True
        self._gauges.pop(poller, None)
        self._changed_at.pop(poller, None)
        log.info("cluster feed: member %s left", escaped(poller))

    def _take_look(self, found: SiteLook) -> None:
        self.infos = dict(found.members)
        if len(found.owners) != (self._map.count if self._map is not None else -1):
            self._map = ShardMap(len(found.owners)) if found.owners else None
            self._shard_by_key.clear()
        if found.owners != self._owners:
            self._stale = True
        self._owners, self._pttl = found.owners, found.pttl
        first = sorted(self.infos)
        self.service = self.infos[first[0]] if first else None

    # -- merging ----------------------------------------------------------------------------------

    def _owner(self, tracker: LiveTracker) -> str | None:
        if self._map is None:
            return None
        key = placement_key(tracker.device)
        shard = self._shard_by_key.get(key)
        if shard is None:
            shard = self._shard_by_key[key] = shard_of(key, self._map.count)
        return self._owners[shard] if shard < len(self._owners) else None

    def _merge(self) -> None:
        """Each device from its shard's owner, else from the member whose inventory changed
        last; a new mapping when anything differs (the screens iterate the old one)."""
        chosen: dict[str, LiveTracker] = {}
        poller_of: dict[str, str] = {}
        for poller in sorted(self.feeds, key=lambda p: self._changed_at.get(p, 0.0)):
            for name, tracker in self.feeds[poller].trackers.items():
                if poller_of.get(name) is not None and self._owner(chosen[name]) == poller_of[name]:
                    continue  # already from its owner
                chosen[name] = tracker
                poller_of[name] = poller
        old = self.trackers
        self._hold(old, chosen, poller_of)
        self.poller_of = poller_of
        self._stale = False
        counts: dict[str, int] = {}
        for poller in poller_of.values():
            counts[poller] = counts.get(poller, 0) + 1
        self._counts = counts
        if chosen.keys() == old.keys() and all(chosen[n] is old[n] for n in chosen):
            return
        if not old:
            old.update(chosen)  # the attach: nobody iterates it yet
            return
        added = len(chosen.keys() - old.keys())
        removed = len(old.keys() - chosen.keys())
        self.trackers = chosen
        self.bus.publish(InventoryChanged(added, removed, chosen, announce=False))  # type: ignore[arg-type]

    def _hold(self, old: dict[str, LiveTracker], chosen: dict[str, LiveTracker],
              poller_of: dict[str, str]) -> None:
        """Keep showing a device that left its member's feed while no member's feed has it, for
        :data:`HOLD` seconds: a device handed over (a member stopping or dying included) does not
        vanish between the old member's last snapshot and the new one's first. A device removed
        from the inventory (SIGHUP) goes after HOLD too."""
        now = time.monotonic()
        held = self._held
        for name in old.keys() - chosen.keys():
            if name not in held and name in self.poller_of:
                held[name] = (old[name], self.poller_of[name], now)
        for name, (tracker, poller, since) in list(held.items()):
            if name in chosen or now - since > HOLD:
                del held[name]
            else:
                chosen[name] = tracker
                poller_of[name] = poller

    def _from_member(self, poller: str, event: Any) -> None:
        if poller not in self.feeds and not isinstance(event, QuietChanged):
            return  # a member dropped, or still attaching (its inventory is taken once attached)
        if isinstance(event, InventoryChanged):
            self._changed_at[poller] = time.monotonic()
            if poller in self.feeds:
                self._merge()
        elif isinstance(event, Gauges):
            self._gauges[poller] = event
            self.last_gauges = merge_gauges(self._gauges[p] for p in sorted(self._gauges))
            if self.last_gauges is not None:
                self.bus.publish(self.last_gauges)
            self._publish_nodes()
        elif isinstance(event, RowsChanged):
            mine = self.poller_of
            names = self.feeds[poller].trackers if event.devices is None else event.devices
            self.bus.publish(RowsChanged(tuple(n for n in names if mine.get(n) == poller)))  # type: ignore[arg-type]
        elif isinstance(event, QuietChanged):
            if event.quiet != self.quiet:
                self.quiet = event.quiet
                self.bus.publish(event)  # type: ignore[arg-type]
        elif isinstance(event, FeedStatus):
            self._publish_nodes()  # one member's link: its node line says so
        else:
            device = getattr(event, "device", None)
            if isinstance(event, ProbeSeen):
                device = event.result.device
            if device is None or self.poller_of.get(device, poller) == poller:
                self.stats.events += 1
                self.bus.publish(event)

    def _publish_nodes(self) -> None:
        counts = self._counts
        shards: dict[str, int] = {}
        stalest: dict[str, int] = {}
        for owner, left in zip(self._owners, self._pttl, strict=False):
            if owner is not None:
                shards[owner] = shards.get(owner, 0) + 1
                if left >= 0:
                    stalest[owner] = min(stalest.get(owner, left), left)
        lines = []
        for poller in sorted(self.infos.keys() | self.feeds.keys()):
            info = self.infos.get(poller) or self.feeds[poller].service
            feed = self.feeds.get(poller)
            g = self._gauges.get(poller)
            ttl = info.lease_ttl if info is not None else None
            age = None if ttl is None or poller not in stalest else max(0.0, ttl - stalest[poller] / 1000)
            lines.append(NodeLine(
                poller, info.host if info else "", info.pid if info else 0, info.started if info else "",
                feed is not None and feed.live and poller in self.infos, counts.get(poller, 0),
                shards.get(poller, 0), None if age is None else round(age, 3),
                None if g is None else g.lag_p99_ms, None if g is None else g.skipped,
                None if g is None else g.extra.get("cluster_takeovers"),
                None if g is None else g.extra.get("cluster_refused_writes")))
        nodes = tuple(lines)
        if nodes != self.nodes:
            self.nodes = nodes
            self.bus.publish(NodesChanged(nodes))  # type: ignore[arg-type]

    # -- commands ---------------------------------------------------------------------------------

    async def command(self, name: str, **args: Any) -> dict[str, Any]:
        """``probe`` goes to the member that polls the device; the others (ack, maintenance:
        every member reads the one database) to the first live member."""
        poller = self.poller_of.get(str(args.get("device", ""))) if name == "probe" else None
        if poller is None:
            live = sorted(p for p, f in self.feeds.items() if f.live)
            poller = live[0] if live else None
        feed = self.feeds.get(poller) if poller is not None else None
        if feed is None:
            return {"ok": False, "error": "no member of the cluster can be reached"}
        return await feed.command(name, **args)


def poller_label(poller: str) -> str:
    """How a member is named on a screen: its id without the random tail (``host:pid``)."""
    head, sep, tail = poller.rpartition(":")
    return head if sep and len(tail) == 8 and all(c in "0123456789abcdef" for c in tail) else poller
