"""``wardtui serve --cluster --notify FILE``: the notifier of a site of several pollers runs on
one member at a time, the holder of the **notifier lease** (docs/CLUSTER.md, "The notifier
lease"; docs/NOTIFICATIONS.md).

Every member may be given the notify file; each runs a :class:`ClusterNotifyService`, which
contends for the lease (poller/cluster/notifier_lease.py: a Redis key with a local deadline).
The holder's **tenure**, in this order:

1. the notifier's epoch is raised in PostgreSQL (``NOTIFIER_SHARD``, store/fencing.py); from
   now on every write of the outbox checks it in (store/fenced_outbox.py), so a holder that
   lost the lease without knowing can no longer write, and what it wrote is committed;
2. the outbox is opened: pending messages (delivered with their keys) and each group's latest
   message (its firing problems were notified: their recoveries are owed);
3. the tail of the committed transitions starts (store/site_transitions.py), *then* the
   committed state is read (open outages and their cause): the notifier restores its groups
   from the outbox and squares them with that state, as a single poller does at a restart
   (a notified problem no longer open gets its recovery, an open outage never notified
   becomes a problem);
4. from then on every transition any member commits is fed to the notifier, in id order,
   within ``poll_s``: grouping, dependencies and recoveries are decided on the site's whole
   history whichever member observed them.

Lease lost (expired, not renewed, the outbox's write refused, stopping): the notifier stops at
once and the delivery within ``stop_grace``; what was not delivered stays pending in the table
for the next holder. Maintenance windows and acknowledgements come from the database
(wardtui/quiet_watch.py), read again every ``quiet_s`` by the holder.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from poller.bus import EventBus
from poller.events import State
from poller.inventory import Device
from poller.inventory_diff import InventoryDiff, diff_inventories
from poller.text import escaped
from store.dburl import failure
from wardtui.runtime import Runtime

if TYPE_CHECKING:
    from collections.abc import Callable

    from poller.engine import EngineConfig
    from poller.notify.config import NotifyConfig
    from poller.notify.delivery import Delivery
    from poller.notify.notifier import Notifier, Overdue
    from poller.quiet import Quiet
    from store.fenced_outbox import FencedOutbox
    from store.fencing import Fenced
    from store.site_transitions import CommittedTransitions

log = logging.getLogger("wardtui.cluster")


@dataclass(slots=True)
class SiteDevice:
    """A device as the committed history has it (the notifier's start reads these)."""

    device: Device
    state: State
    down_since: datetime | None = None


class SiteView:
    """What the notifier reads, for the whole site: the inventory and its committed states, a bus
    of its own fed with every member's committed transitions; the local engine's timings."""

    def __init__(self, config: EngineConfig, scheduler: Overdue,
                 gauge_sources: list[Callable[[], dict[str, float]]],
                 trackers: dict[str, SiteDevice]) -> None:
        self.bus = EventBus()
        self.trackers = trackers
        self.config = config
        self.scheduler = scheduler
        self.gauge_sources = gauge_sources
        self.on_inventory_change: list[Callable[[InventoryDiff], None]] = []


def site_devices(devices: list[Device], open_outages: dict[str, datetime],
                 unreachable: set[str]) -> dict[str, SiteDevice]:
    """Every device: out (DOWN, or UNREACHABLE when its open outage's cause still is) from its
    outage's start, else UP. (A device never recorded counts as UP: the notifier only asks the
    state of problems it restored, which were notified, so recorded.)"""
    out: dict[str, SiteDevice] = {}
    for d in devices:
        since = open_outages.get(d.name)
        if since is None:
            out[d.name] = SiteDevice(d, State.UP)
        else:
            out[d.name] = SiteDevice(d, State.UNREACHABLE if d.name in unreachable else State.DOWN, since)
    return out


@dataclass(slots=True)
class Tenure:
    epoch: int
    outbox: FencedOutbox
    tail: CommittedTransitions
    view: SiteView
    delivery: Delivery
    notifier: Notifier
    devices: list[Device]
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    ended: bool = False


class ClusterNotifyService:
    """The notifier of a cluster member, run while it holds the notifier lease."""

    name = "notifications (the cluster's notifier lease)"

    def __init__(self, runtime: Runtime, config: NotifyConfig, site: str, redis_url: str, ttl: float,
                 *, poll_s: float = 0.5, quiet_s: float = 0.5, stop_grace: float = 1.0) -> None:
        from poller.cluster.leases import LeaseConfig, new_poller_id
        from poller.cluster.notifier_lease import NotifierLease
        from poller.feed import client_for
        from poller.live import Keys
        from poller.notify.acks import AckSuppressions
        from poller.notify.windows import WindowSuppressions
        from store.fencing import Fencing

        self.runtime = runtime
        self.config = config
        self.site = site
        self.poll_s = poll_s
        self.quiet_s = quiet_s
        self.stop_grace = stop_grace
        self.fencing = Fencing(runtime.store.db, site)
        lease_config = LeaseConfig(ttl=ttl)
        self.client = client_for(redis_url, timeout=lease_config.op_timeout)
        self.id = new_poller_id()
        self.lease = NotifierLease(self.client, Keys(site), self.id, lease_config, self._lease_changed)
        self.suppressions = WindowSuppressions()
        self.quiet = AckSuppressions(self.suppressions)
        self.tenure: Tenure | None = None
        self.tenures = 0
        self.refused = 0  # tenures ended by a refused outbox write
        self.failed = 0  # tenures that could not begin (the database)
        self._lock = asyncio.Lock()  # one tenure begins or ends at a time
        self._closing: set[asyncio.Task[None]] = set()
        self._ending: set[asyncio.Task[None]] = set()  # tenures being closed (their spool's lock)
        self._stopping = False

    # -- the service ----------------------------------------------------------------------------

    async def start(self) -> None:
        watch = self.runtime.quiet
        if watch is not None:
            self._take_quiet(watch.quiet)
            watch.listeners.append(self.quiet_changed)
        self.runtime.engine.gauge_sources.append(self.gauges)
        self.lease.start()
        log.info("notifications: %d routes; the notifier runs on the member holding the notifier lease "
                 "(this one: %s)", len(self.config.routes), self.id)

    async def stop(self) -> None:
        """End the tenure (the notifier hands over what is due; sends in flight get
        ``stop_grace``), then give the lease back: another member takes over from the outbox."""
        self._stopping = True
        watch = self.runtime.quiet
        if watch is not None and self.quiet_changed in watch.listeners:
            watch.listeners.remove(self.quiet_changed)
        tenure = self.tenure
        if tenure is not None:
            self.tenure = None
            await self._close(tenure, graceful=True)
        await asyncio.gather(*self._closing, return_exceptions=True)
        await self.lease.stop()
        with contextlib.suppress(ValueError):
            self.runtime.engine.gauge_sources.remove(self.gauges)
        with contextlib.suppress(Exception):
            await self.client.aclose()

    def gauges(self) -> dict[str, float]:
        """``notify_lease_held`` (1 on the holder), ``notify_lease_tenures``,
        ``notify_lease_refused``; on the holder the delivery's ``notify_*`` too."""
        tenure = self.tenure
        out = {"notify_lease_held": 1.0 if tenure is not None else 0.0,
               "notify_lease_tenures": float(self.tenures), "notify_lease_refused": float(self.refused),
               "notify_lease_failed": float(self.failed)}
        if tenure is not None:
            out.update(tenure.delivery.gauges())
            out["notify_tail_gaps"] = float(len(tenure.tail.gaps))
        return out

    # -- the lease's changes -----------------------------------------------------------------------

    def _lease_changed(self, held: bool, reason: str) -> None:
        loop = asyncio.get_running_loop()
        if held:
            if not self._stopping:
                self._spawn(loop.create_task(self._begin(), name="wardtui-notifier-tenure"))
            return
        tenure, self.tenure = self.tenure, None
        if tenure is not None:
            # At once: no message is made or sent from now on but those in flight.
            tenure.ended = True
            tenure.notifier.stop()
            for task in tenure.tasks:
                task.cancel()
            log.warning("notifications: the notifier stops here (%s); another member takes over", reason)
            ending = loop.create_task(self._close(tenure, graceful=False))
            self._ending.add(ending)
            ending.add_done_callback(self._ending.discard)
            self._spawn(ending)

    def _spawn(self, task: asyncio.Task[None]) -> None:
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def _begin(self) -> None:
        from sqlalchemy.exc import SQLAlchemyError

        async with self._lock:
            if not self.lease.held or self.tenure is not None or self._stopping:
                return
            # A tenure of this member still closing holds the outbox's spool: it ends first.
            await asyncio.gather(*self._ending, return_exceptions=True)
            try:
                tenure = await self._open()
            except (SQLAlchemyError, OSError) as exc:
                self.failed += 1
                log.error("notifications: cannot begin the notifier here (the history database: %s); the "
                          "lease is given up and tried again", escaped(failure(exc, self.runtime.store.url)))
                self.lease.give_up("no epoch")
                return
            except Exception:  # a bug: the lease must not stay held by a member that does not notify
                self.failed += 1
                log.exception("notifications: beginning the notifier failed; the lease is given up")
                self.lease.give_up("failed to begin")
                return
            if tenure is None:
                return
            if not self.lease.held or self._stopping:  # lost while opening: nothing was sent
                await self._close(tenure, graceful=False)
                return
            self.tenure = tenure
            self.tenures += 1
            await tenure.delivery.start()
            if tenure.ended:  # the lease was lost meanwhile: _lease_changed closes it
                return
            loop = asyncio.get_running_loop()
            for work, name in ((tenure.notifier.run(), "wardtui-notifier"),
                               (self._follow(tenure), "wardtui-notifier-tail")):
                task = loop.create_task(work, name=name)
                task.add_done_callback(_crashed)
                tenure.tasks.append(task)
            log.info("notifications: this member runs the notifier (epoch %d): %d messages waiting in "
                     "the outbox, %d devices out", tenure.epoch, tenure.outbox.stats().queued,
                     sum(1 for d in tenure.view.trackers.values() if d.state is not State.UP))

    async def _open(self) -> Tenure | None:
        from poller.notify.delivery import Delivery
        from poller.notify.notifier import Notifier
        from poller.notify.receivers import build_receivers
        from store.fenced_outbox import FencedOutbox
        from store.fencing import NOTIFIER_SHARD
        from store.site_transitions import CommittedTransitions
        from wardtui.notifying import outbox_spool_dir

        runtime = self.runtime
        epoch = await self.fencing.take(NOTIFIER_SHARD, self.id)
        # After the take: every write of an older holder has committed, or never will.
        outbox = FencedOutbox(runtime.store.db, outbox_spool_dir(runtime.spool_dir), self.fencing, epoch,
                              self._refused, site=self.site)
        await outbox.open()
        try:
            tail = CommittedTransitions(runtime.store.db)
            await tail.start()  # before the state it continues: see CommittedTransitions.start
            open_outages, unreachable = await runtime.committed_outages()
        except BaseException:
            await outbox.close()
            raise
        devices = runtime.devices
        engine = runtime.engine
        view = SiteView(engine.config, engine.scheduler, engine.gauge_sources,
                        site_devices(devices, open_outages, set(unreachable)))
        config = self.config
        delivery = Delivery(outbox, build_receivers(config), stop_grace=self.stop_grace,
                            parallel={name: r.parallel for name, r in config.receivers.items()})
        latest = await outbox.latest_per_group()
        notifier = Notifier(view, config.routes, delivery.put, site=self.site, suppressions=self.quiet,
                            latest=latest.values())
        return Tenure(epoch, outbox, tail, view, delivery, notifier, devices)

    async def _follow(self, tenure: Tenure) -> None:
        """Every ``poll_s``: the transitions committed since, to the notifier's bus; the
        inventory's changes (SIGHUP) to the notifier; every ``quiet_s`` the windows and
        acknowledgements read again."""
        from sqlalchemy.exc import SQLAlchemyError

        loop = asyncio.get_running_loop()
        while not tenure.view.bus.subscriptions:
            await asyncio.sleep(0.01)  # the notifier subscribes first thing when it runs
        names = {d.name for d in tenure.devices}
        failing = False
        next_quiet = loop.time() + self.quiet_s
        while not tenure.ended:
            if self.runtime.devices is not tenure.devices:
                names = self._inventory(tenure)
            try:
                for transition in await tenure.tail.read():
                    if transition.device in names:
                        tenure.view.bus.publish(transition)
                if failing:
                    log.warning("notifications: the committed transitions are read again")
                failing = False
            except (SQLAlchemyError, OSError) as exc:
                if not failing:
                    log.error("notifications: cannot read the committed transitions (the history "
                              "database: %s); tried again every %g s",
                              escaped(failure(exc, self.runtime.store.url)), self.poll_s)
                failing = True
            if self.runtime.quiet is not None and loop.time() >= next_quiet:
                next_quiet = loop.time() + self.quiet_s
                with contextlib.suppress(Exception):  # its own failures are logged by it
                    await self.runtime.quiet.read_now()
            await asyncio.sleep(self.poll_s)

    def _inventory(self, tenure: Tenure) -> set[str]:
        """The inventory changed: the notifier learns the difference (the whole site's, not the
        engine's, whose devices are this member's shards only)."""
        devices = self.runtime.devices
        diff = diff_inventories(tenure.devices, devices)
        tenure.devices = devices
        trackers = tenure.view.trackers
        for d in diff.added:
            trackers[d.name] = SiteDevice(d, State.UP)
        for d in diff.removed:
            trackers.pop(d.name, None)
        for change in diff.changed:
            held = trackers.get(change.name)
            if held is not None:
                held.device = change.new
        for listener in list(tenure.view.on_inventory_change):
            listener(diff)
        return {d.name for d in devices}

    def _refused(self, exc: Fenced) -> None:
        """The outbox's write was refused: another member holds the notifier's epoch."""
        self.refused += 1
        self.lease.give_up("the outbox's write was refused")

    async def _close(self, tenure: Tenure, *, graceful: bool) -> None:
        tenure.ended = True
        tenure.notifier.stop()
        if graceful:
            await asyncio.gather(*tenure.tasks, return_exceptions=True)  # the notifier's last hand-over
        else:
            for task in tenure.tasks:
                task.cancel()
            await asyncio.gather(*tenure.tasks, return_exceptions=True)
        if graceful:
            tenure.delivery.stop_grace = 5.0  # stopping, still the holder: sends in flight may end
        try:
            await tenure.delivery.stop()
        finally:
            await tenure.outbox.close()

    # -- windows and acknowledgements ------------------------------------------------------------

    def _take_quiet(self, quiet: Quiet) -> bool:
        windows = self.suppressions.replace(quiet.windows)
        acks = self.quiet.replace_acks(quiet.acks)
        return windows or acks

    def quiet_changed(self, quiet: Quiet) -> None:
        if self._take_quiet(quiet) and self.tenure is not None:
            self.tenure.notifier.suppressions_changed()


def _crashed(task: asyncio.Task[None]) -> None:
    """A tenure's task that ended on an error (a bug): logged with its traceback."""
    if not task.cancelled() and (exc := task.exception()) is not None:
        log.error("notifications: %s failed", task.get_name(), exc_info=exc)
