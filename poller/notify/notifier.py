"""The notifier: an engine companion that feeds the engine's transitions to a :class:`Grouper` and
hands the messages it makes to a sink (the outbox's ``put``), never awaiting a receiver.

It runs on the engine's loop, so it must never hold it for long: transitions are fed, and due
messages built, in slices of a few milliseconds (the loop gets a turn between them); with the
bus drained it pauses briefly, so a storm of transitions wakes it a few dozen times a second, not
once per transition. The bus never drops a transition: nothing is lost while it pauses or while
the sink is slow.

At start it restores the groups of the outbox's latest messages (their problems were notified:
their recoveries are owed), then squares that with the engine's devices: a restored problem whose
device is UP now ends (its recovery is sent), a device out (DOWN or UNREACHABLE, seeded from the
history's open outages) with no notified problem becomes one (no problem is forgotten across a
restart).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from poller.bus import EventBus, Subscription
from poller.engine import EngineConfig
from poller.events import OUT, Event, State, Transition
from poller.inventory import Device
from poller.inventory_diff import InventoryDiff
from poller.notify.grouper import Grouper
from poller.notify.groups import ProblemState
from poller.notify.model import Notification, Route
from poller.notify.suppressions import Suppressions
from poller.text import escaped

log = logging.getLogger(__name__)

Sink = Callable[[Sequence[Notification]], Awaitable[None]]


class DeviceView(Protocol):
    """What the notifier reads of a device's tracker (poller/state.py's, or a cluster's view of
    the committed state: wardtui/cluster_notify.py)."""

    @property
    def device(self) -> Device: ...

    @property
    def state(self) -> State: ...

    @property
    def down_since(self) -> datetime | None: ...


class Overdue(Protocol):
    def oldest_overdue(self) -> float: ...


class NotifierSource(Protocol):
    """What the notifier reads of the engine: its bus (transitions), trackers (devices and
    states at the start), inventory changes, gauges, and its timings. The engine itself, or a
    cluster's site-wide view (wardtui/cluster_notify.py)."""

    @property
    def bus(self) -> EventBus: ...

    @property
    def trackers(self) -> Mapping[str, DeviceView]: ...

    @property
    def config(self) -> EngineConfig: ...

    @property
    def scheduler(self) -> Overdue: ...

    @property
    def on_inventory_change(self) -> list[Callable[[InventoryDiff], None]]: ...

    @property
    def gauge_sources(self) -> list[Callable[[], dict[str, float]]]: ...


@dataclass(slots=True)
class NotifierStats:
    transitions: int = 0  # transitions fed to the grouper
    cpu_s: float = 0.0  # this thread's CPU spent on them and on building messages
    longest_s: float = 0.0  # the longest the notifier held the loop at once (CPU seconds)
    notifications: int = 0  # handed to the sink (one per receiver of a message)
    sink_failures: int = 0
    holds: int = 0  # times due messages waited for an engine that was behind (see _hand_over)


class Notifier:
    """Runs with the engine (``engine.add_companion``); see the module's docstring."""

    def __init__(self, engine: NotifierSource, routes: Sequence[Route], sink: Sink, *, site: str,
                 suppressions: Suppressions | None = None, latest: Iterable[Notification] = (),
                 silence_recheck: float = 5.0, batch: int = 20_000, slice_s: float = 0.004,
                 pause: float = 0.05, groups_per_slice: int = 50, behind_s: float = 0.25,
                 max_hold: float = 1.0, name: str = "notify") -> None:
        self.engine = engine
        self.sink = sink
        self.grouper = Grouper(routes, site=site, suppressions=suppressions,
                               silence_recheck=silence_recheck, max_hold=max_hold)
        self.stats = NotifierStats()
        self.name = name
        self.batch = batch  # events taken from the bus at a time
        self.slice_s = slice_s  # CPU seconds spent on them before the loop gets a turn
        self.pause = pause
        self.groups_per_slice = groups_per_slice  # messages built before the loop gets a turn
        self.behind_s = behind_s  # this late (the engine's schedule, or our own wake-up): starved
        self.max_hold = max_hold  # the longest a due message waits for a starved engine
        self._held_until = 0.0
        self._held = False
        self._latest = list(latest)
        self._diffs: list[InventoryDiff] = []
        self._silences_changed = False
        self._pending: list[Notification] = []  # made, not yet taken by the sink
        self._retry_at = 0.0
        self._backoff = 0.0
        self._stopping = asyncio.Event()
        self._changed = asyncio.Event()  # an inventory change or a suppression to apply

    # -- lifecycle ---------------------------------------------------------------------------
    def stop(self) -> None:
        self._stopping.set()

    def suppressions_changed(self) -> None:
        """Silences changed (the service's command path): applied at the notifier's next turn.
        On the engine's loop (from another thread: ``loop.call_soon_threadsafe``)."""
        self._silences_changed = True
        self._changed.set()

    def gauges(self) -> dict[str, float]:
        g = self.grouper
        return {"notify_open_problems": float(len(g.problems)), "notify_groups": float(len(g.groups)),
                "notify_made": float(self.stats.notifications),
                "notify_sink_failures": float(self.stats.sink_failures)}

    async def run(self) -> None:
        engine = self.engine
        sub = engine.bus.subscribe(self.name, samples=False)  # transitions are never dropped
        engine.on_inventory_change.append(self._on_inventory)
        engine.gauge_sources.append(self.gauges)
        try:
            self._start()
            while not self._stopping.is_set():
                events = await self._next_events(sub)
                await self._feed(events)
                self._apply_changes()
                await self._hand_over()
                if events and not len(sub) and self.pause > 0 and not self._stopping.is_set():
                    # Let a storm gather while nothing wakes us: fewer, larger batches.
                    await asyncio.sleep(self.pause)
            await self._feed(sub.drain())
            await self._hand_over(final=True)
        finally:
            engine.bus.unsubscribe(sub)
            with contextlib.suppress(ValueError):
                engine.on_inventory_change.remove(self._on_inventory)
            with contextlib.suppress(ValueError):
                engine.gauge_sources.remove(self.gauges)

    def _device(self, name: str) -> Device | None:
        tracker = self.engine.trackers.get(name)
        return None if tracker is None else tracker.device

    def _start(self) -> None:
        """Restore from the outbox, then agree with the engine's devices as they are now."""
        grouper = self.grouper
        grouper.restore(self._latest, self._device)
        self._latest = []
        now = datetime.now(UTC)
        trackers = self.engine.trackers
        for name in list(grouper.problems):
            tracker = trackers.get(name)
            if tracker is None:
                grouper.forget(name, now)
            elif tracker.state is State.UP:
                grouper.end(name, now)
            elif tracker.state in OUT:
                grouper.begin(tracker.device, _state(tracker.state), grouper.problems[name].since)
        for name, tracker in trackers.items():
            if tracker.state in OUT and name not in grouper.problems:
                grouper.begin(tracker.device, _state(tracker.state), tracker.down_since or now)

    # -- events ------------------------------------------------------------------------------
    async def _next_events(self, sub: Subscription) -> list[Event]:
        """What the bus holds, else wait for it, a timer of the grouper, a change or stop."""
        if len(sub):
            await asyncio.sleep(0)  # every round gives the engine's loop a turn
            return sub.drain(self.batch)
        wait = self._wait()
        if wait is not None and wait <= 0:
            await asyncio.sleep(0)
            return []
        expected = None if wait is None else time.monotonic() + wait
        get = asyncio.ensure_future(sub.get_batch(self.batch))
        stop = asyncio.ensure_future(self._stopping.wait())
        changed = asyncio.ensure_future(self._changed.wait())
        try:
            await asyncio.wait({get, stop, changed}, timeout=wait, return_when=asyncio.FIRST_COMPLETED)
        finally:  # cancelled too (the engine stops): no waiter left behind
            stop.cancel()
            changed.cancel()
            got = get.done()
            if not got:
                get.cancel()
        if got:
            return get.result()
        now = time.monotonic()
        if expected is not None and now - expected > self.behind_s:
            self._starved(now)  # we woke this late: so did the engine's checks
        with contextlib.suppress(asyncio.CancelledError):
            await get  # get_batch takes nothing before it returns: nothing is lost
        return sub.drain(self.batch)

    def _wait(self) -> float | None:
        """Seconds until the grouper or a sink retry has something to do (None: nothing)."""
        at = self.grouper.next_due()
        if at is not None and at < self._held_until:
            at = min(self._held_until, at + self.max_hold)
        if self._pending:
            at = self._retry_at if at is None else min(at, self._retry_at)
        return None if at is None else at - time.monotonic()

    async def _feed(self, events: list[Event]) -> None:
        """Transitions to the grouper, a slice of at most ``slice_s`` of CPU at a time: the
        engine's loop gets a turn between slices (a slice of so many events would be too
        coarse: an UP that ends nothing costs ~1 us, a new problem ~10)."""
        grouper, device, stats = self.grouper, self._device, self.stats
        clock = time.thread_time
        i, end = 0, len(events)
        while i < end:
            started = clock()
            deadline = started + self.slice_s
            while i < end:
                for event in events[i:i + 256]:
                    if isinstance(event, Transition):
                        grouper.feed(event, device(event.device))
                        stats.transitions += 1
                i += 256
                if clock() >= deadline:
                    break
            spent = clock() - started
            stats.cpu_s += spent
            stats.longest_s = max(stats.longest_s, spent)
            if i < end:
                await asyncio.sleep(0)  # the engine's loop gets a turn

    def _on_inventory(self, diff: InventoryDiff) -> None:
        self._diffs.append(diff)  # applied at the notifier's next turn, after what is queued
        self._changed.set()

    def _apply_changes(self) -> None:
        self._changed.clear()
        diffs, self._diffs = self._diffs, []
        now = datetime.now(UTC)
        grouper = self.grouper
        for diff in diffs:
            for device in diff.removed:
                grouper.forget(device.name, now)
            for change in diff.changed:
                grouper.update_device(change.new)
        if self._silences_changed:
            self._silences_changed = False
            grouper.suppressions_changed()

    # -- messages ----------------------------------------------------------------------------
    # group_wait gathers a router's verdict and its children's because the engine makes them
    # within milliseconds of each other. A starved loop (an overloaded machine, a long pause)
    # stretches that: checks due during the pause run after it, and a timer that fires at once
    # would send the router alone. So while the engine is behind its schedule, or just was, due
    # messages wait as long as a late check takes to be confirmed (and its parents checked), at
    # most max_hold.
    def _settle_s(self) -> float:
        cfg = self.engine.config
        check = cfg.timeout + cfg.state.confirm_probes * max(cfg.state.confirm_spacing, cfg.timeout)
        return 2 * check  # the device's check, then its parents'

    def _starved(self, now: float) -> None:
        self._held_until = max(self._held_until, now + self._settle_s())

    def _holding(self, now: float) -> bool:
        if self.engine.scheduler.oldest_overdue() > self.behind_s:
            self._starved(now)
        first = self.grouper.next_due()
        held = (now < self._held_until and first is not None and first <= now
                and now - first < self.max_hold)
        if held and not self._held:
            self.stats.holds += 1
        self._held = held
        return held

    async def _hand_over(self, final: bool = False) -> None:
        """Messages now due to the sink (unless the engine is behind: see above); a sink that
        fails is retried (backing off to 30 s) with everything made meanwhile, in order."""
        grouper = self.grouper
        if not final and self._holding(time.monotonic()):
            await self._deliver(final)
            return
        while True:
            started = time.thread_time()
            self._pending += grouper.due(limit=self.groups_per_slice)
            spent = time.thread_time() - started
            self.stats.cpu_s += spent
            self.stats.longest_s = max(self.stats.longest_s, spent)
            at = grouper.next_due()
            if at is None or at > time.monotonic():
                break
            await asyncio.sleep(0)  # more groups due (a storm's): the engine's loop gets a turn
        await self._deliver(final)

    async def _deliver(self, final: bool) -> None:
        if not self._pending or (time.monotonic() < self._retry_at and not final):
            return
        batch, self._pending = self._pending, []
        try:
            await self.sink(batch)
        except Exception as exc:
            self._pending = batch + self._pending
            self.stats.sink_failures += 1
            self._backoff = min(30.0, max(1.0, self._backoff * 2))
            self._retry_at = time.monotonic() + self._backoff
            log.error("notifications not handed over (%d waiting, again in %.0f s): %s: %s",
                      len(self._pending), self._backoff, type(exc).__name__, escaped(str(exc)))
            return
        self.stats.notifications += len(batch)
        self._backoff = 0.0
        self._retry_at = 0.0


def _state(state: State) -> ProblemState:
    return "down" if state is State.DOWN else "unreachable"
