"""The engine: inventory -> scheduler -> prober -> device state -> events, with its own gauges."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections import deque
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from poller.bus import EventBus
from poller.events import OUT, CheckResult, Gauges, State, Transition
from poller.inventory import Device
from poller.inventory_diff import InventoryDiff, diff_inventories
from poller.prober import CLOSED, ProbeCallback, Prober, ProbeReply
from poller.scheduler import Scheduler, Slot
from poller.state import DeviceTracker, StateConfig, utc_from_ns
from poller.stats import percentile

log = logging.getLogger(__name__)

_CheckContext = tuple[Slot, DeviceTracker, float, "asyncio.Future[CheckResult | None] | None"]
"""A check in flight: its slot, tracker, due time (monotonic), and probe_now's waiter or None."""


class Companion(Protocol):
    """Something that runs beside the checks on the engine's loop (the SNMP poller)."""

    async def run(self) -> None: ...

    def stop(self) -> None: ...


@dataclass(frozen=True, slots=True)
class EngineConfig:
    interval: float = 10.0  # seconds, for devices whose inventory row sets none
    timeout: float = 1.0  # seconds to wait for each echo reply
    state: StateConfig = field(default_factory=StateConfig)
    gauge_period: float = 1.0
    # checks/s and probes/s are counted over this many seconds, not one gauge period: 13 devices
    # checked every 10 s gave 1.0, 2.0, 1.0, ... per second; over 5 s, 1.2 to 1.4.
    rate_window: float = 5.0


class Engine:
    """Runs checks on schedule and publishes :mod:`poller.events` on :attr:`bus`."""

    def __init__(self, devices: Iterable[Device], prober: Prober,
                 config: EngineConfig | None = None, bus: EventBus | None = None) -> None:
        self.config = config or EngineConfig()
        self.prober = prober
        self.bus = bus or EventBus()
        self.trackers: dict[str, DeviceTracker] = {}
        self._by_key: dict[int, DeviceTracker] = {}  # a slot's key -> the tracker it checks
        self._slot_of: dict[str, Slot] = {}  # device name -> its slot, in inventory order
        self._next_key = 0
        self.state_counts = {State.UNKNOWN: 0, State.UP: 0, State.DOWN: 0, State.UNREACHABLE: 0}
        self.flapping = 0
        for device in devices:
            self._add(device)
        self._children: dict[str, list[str]] = {}  # a parent's name -> its children's, see _link
        self._link()
        # Checks the dependencies asked for: a parent probed before its child is declared, an
        # UNREACHABLE child re-checked when a parent recovers.
        self.checks_for_dependencies = 0
        # Parents of these devices that another poller checks (serve --cluster: a parent on
        # another shard), by name; see set_remote_parents.
        self._remote: dict[str, Device] = {}
        self._remote_out: dict[str, float] = {}  # name -> monotonic time it was found out
        self._remote_probes: dict[str, asyncio.Future[None]] = {}  # name -> the probe in flight
        # A busy slot's key -> the end of its check (its result, for a probe_now that waited).
        self._ends: dict[int, asyncio.Future[CheckResult | None]] = {}
        self.scheduler = Scheduler(self._dispatch)
        self.checks_done = 0
        self.checks_on_demand = 0  # checks an operator asked for (probe now), outside the schedule
        self.queue_sources: list[Callable[[], int]] = []  # e.g. the store writer's queue depth
        self.gauge_sources: list[Callable[[], dict[str, float]]] = []  # merged into Gauges.extra
        self.companions: list[Companion] = []  # run and stopped with the engine (add_companion)
        self.inventory_version = 0  # bumped by each apply_inventory that changed something
        # Called on the engine's loop with each applied difference (not with an empty one).
        self.on_inventory_change: list[Callable[[InventoryDiff], None]] = []
        self._running = False
        self._tasks: list[asyncio.Task[None]] = []
        self.last_gauges: Gauges | None = None
        # Tasks of checks that are not plain callbacks: confirmations, probes of a prober with
        # no callback API. Cancelled at stop.
        self._checks: set[asyncio.Task[Any]] = set()
        self._in_flight = 0  # checks started and not ended
        self._waiters: set[asyncio.Future[CheckResult | None]] = set()  # probe_now callers, at stop cancelled
        self._closed = False  # run() has ended: checks still out end without counting
        start = getattr(prober, "start", None)
        self._start_probe: Callable[[str, float, ProbeCallback, _CheckContext], None] = (
            start if callable(start) else self._start_via_task)
        self._lags: list[float] = []
        self._stop = asyncio.Event()
        # (monotonic time, checks done, probes sent) at each gauge: rates span rate_window.
        self._rate_marks: deque[tuple[float, int, int]] = deque([(time.monotonic(), 0, 0)])

    # -- lifecycle ---------------------------------------------------------------------------
    def seed_outages(self, open_outages: dict[str, datetime], unreachable: Collection[str] = ()) -> None:
        """Devices whose outage was open at the last shutdown start DOWN with that start, or
        UNREACHABLE, those named in ``unreachable`` (their outage began so and stayed so)."""
        for name, since in open_outages.items():
            tracker = self.trackers.get(name)
            if tracker is not None and tracker.state is State.UNKNOWN:
                state = State.UNREACHABLE if name in unreachable else State.DOWN
                tracker.seed_down(since, state)
                self.state_counts[State.UNKNOWN] -= 1
                self.state_counts[state] += 1

    def seed_flaps(self, recent: Collection[Transition]) -> None:
        """Flapping windows from ``recent`` transitions another poller observed and recorded (a
        cluster member taking over their shards): a device that was flapping there is flapping
        here, from the hand-over on, and the window counts on from those transitions."""
        by_name: dict[str, list[float]] = {}
        now, now_mono = datetime.now(UTC), time.monotonic()
        for t in recent:
            if t.device in self.trackers and DeviceTracker.counts_as_flap(t.from_state, t.to_state):
                by_name.setdefault(t.device, []).append((now - t.at).total_seconds())
        for name, ages in by_name.items():
            tracker = self.trackers[name]
            was = tracker.flapping
            if tracker.seed_flaps(ages, now_mono) != was:
                self.flapping += 1 if tracker.flapping else -1

    def seed_up(self, names: Collection[str]) -> None:
        """Devices the history last recorded UP (and with no open outage) start UP, not UNKNOWN:
        a cluster member taking over a shard goes on from the committed state."""
        for name in names:
            tracker = self.trackers.get(name)
            if tracker is not None and tracker.state is State.UNKNOWN:
                tracker.seed_up()
                self.state_counts[State.UNKNOWN] -= 1
                self.state_counts[State.UP] += 1

    async def run(self, duration: float | None = None) -> None:
        """Poll until :meth:`stop` (or for ``duration`` seconds), then cancel checks in flight.

        A :meth:`stop` that came before ``run`` makes it return at once.
        """
        sent = self.prober.counters().get("sent", 0)
        self._rate_marks = deque([(time.monotonic(), self.checks_done, sent)])
        self.scheduler.add_spread(list(self._slot_of.values()))
        self._running = True
        tasks = self._tasks = [asyncio.create_task(self.scheduler.run(), name="wardtui-scheduler"),
                               asyncio.create_task(self._gauge_loop(), name="wardtui-gauges")]
        for companion in self.companions:
            self._start_companion(companion)
        try:
            if duration is None:
                await self._stop.wait()
            else:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), duration)
        finally:
            self._running = False
            self._closed = True
            self.scheduler.stop()
            for companion in self.companions:
                companion.stop()
            for task in [*tasks, *self._checks]:
                task.cancel()
            for waiter in self._waiters:  # their probes still out end without counting
                waiter.cancel()
            await asyncio.gather(*tasks, *self._checks, return_exceptions=True)
            self._in_flight = 0  # probes still out end without counting (_first_reply)
            self.bus.publish(self._gauges())

    def stop(self) -> None:
        self._stop.set()

    def add_companion(self, companion: Companion) -> None:
        """Run ``companion`` with the engine: from :meth:`run`, or now if it runs already (an SNMP
        poller a reloaded inventory needs). On the engine's loop."""
        self.companions.append(companion)
        if self._running:
            self._start_companion(companion)

    def _start_companion(self, companion: Companion) -> None:
        self._tasks.append(asyncio.create_task(companion.run(), name=f"wardtui-{type(companion).__name__}"))

    def is_down(self, name: str) -> bool:
        """Whether ICMP holds the device DOWN or UNREACHABLE (SNMP does not poll it then)."""
        tracker = self.trackers.get(name)
        return tracker is not None and tracker.state in OUT

    @property
    def slots(self) -> tuple[Slot, ...]:
        """Every device's schedule slot (interval, skipped count), in inventory order (those a
        reload added or readdressed last)."""
        return tuple(self._slot_of.values())

    # -- the inventory -----------------------------------------------------------------------
    def _add(self, device: Device) -> Slot:
        tracker = DeviceTracker(device, self.config.state)
        slot = Slot(self._next_key, device.interval or self.config.interval)
        self._next_key += 1
        self.trackers[device.name] = tracker
        self._by_key[slot.key] = tracker
        self._slot_of[device.name] = slot
        self.state_counts[State.UNKNOWN] += 1
        return slot

    def _drop(self, name: str) -> None:
        """Forget a device: its slot is skipped from now on, a check of it in flight is not
        counted, and its state leaves the counts."""
        tracker = self.trackers.pop(name)
        slot = self._slot_of.pop(name)
        slot.removed = True
        del self._by_key[slot.key]
        self.state_counts[tracker.state] -= 1
        if tracker.flapping:
            self.flapping -= 1

    def apply_inventory(self, devices: Iterable[Device]) -> InventoryDiff:
        """Make ``devices`` the inventory, without a restart; on the engine's loop.

        Added devices are scheduled (spread over their interval), removed ones are no longer
        checked (a check of one in flight is dropped, not counted). A changed address is a new
        device to the engine: a fresh tracker, UNKNOWN until checked. Any other change keeps the
        tracker (state, windows, totals) with the new :class:`Device`; a changed interval moves
        the device to a new slot, the check in flight still counting as its one. Bumps
        :attr:`inventory_version` and calls :attr:`on_inventory_change` when something changed.
        """
        devices = list(devices)
        diff = diff_inventories((t.device for t in self.trackers.values()), devices)
        fresh: list[Slot] = []
        for device in diff.removed:
            self._drop(device.name)
        for change in diff.changed:
            if "address" in change.fields:
                self._drop(change.name)
                fresh.append(self._add(change.new))
            else:
                fresh.extend(self._replace(change.new))
        for device in diff.added:
            fresh.append(self._add(device))
        for device in devices:  # unchanged but moved in the file: its line
            tracker = self.trackers[device.name]
            if tracker.device is not device:
                tracker.device = device
        if not diff.empty:
            self._link()
        if self._running and fresh:
            self.scheduler.add_spread(fresh)
        if not diff.empty:
            self.inventory_version += 1
            for callback in list(self.on_inventory_change):
                try:
                    callback(diff)
                except Exception as exc:  # a listener's bug must not undo a reload half applied
                    log.error("inventory change listener %r failed: %s: %s", callback,
                              type(exc).__name__, exc)
        return diff

    def set_remote_parents(self, parents: Iterable[Device]) -> None:
        """Parents of this engine's devices that it does not check itself (a cluster member: a
        parent on another member's shard). A child failing behind one probes its address at once,
        as a local parent not known to be out is checked, before the child is declared (DOWN, or
        UNREACHABLE if every parent is out). Nothing of theirs is published: they are another
        poller's to record. A verdict "out" holds for the parent's interval; "not out" is never
        kept, it is probed again at the next failure."""
        self._remote = {d.name: d for d in parents if d.name not in self.trackers}
        for name in [n for n in self._remote_out if n not in self._remote]:
            del self._remote_out[name]

    def _link(self) -> None:
        """Each parent's children, from the devices' ``parents`` (the inventory has no cycle)."""
        children: dict[str, list[str]] = {}
        for name, tracker in self.trackers.items():
            for parent in tracker.device.parents:
                children.setdefault(parent, []).append(name)
        self._children = children

    def _replace(self, device: Device) -> list[Slot]:
        """The same device, something other than its address changed: keep its tracker; a new
        slot (returned) if its interval changed, marked busy while its check in flight runs."""
        tracker = self.trackers[device.name]
        tracker.device = device
        slot = self._slot_of[device.name]
        interval = device.interval or self.config.interval
        if interval == slot.interval:
            return []
        slot.removed = True
        moved = self._slot_of[device.name] = Slot(slot.key, interval, busy=slot.busy)
        return [moved]

    # -- checks ------------------------------------------------------------------------------
    # A check's first probe reports to _first_reply through a plain callback: no task, no future
    # (a task per check was a fifth of the service's CPU at 10,000 checks/s). Only a failure that
    # must be confirmed goes on in a task (_confirm_then_finish). A prober with no callback API
    # (test fakes, wrappers) gets a task per probe (_start_via_task), the same path after it.
    def _dispatch(self, slot: Slot, due: float) -> None:
        slot.busy = True
        self._start_check(slot, due, None)

    def _start_check(self, slot: Slot, due: float, waiter: asyncio.Future[CheckResult | None] | None) -> None:
        tracker = self._by_key[slot.key]
        self._in_flight += 1
        self._start_probe(tracker.device.address, self.config.timeout, self._first_reply,
                          (slot, tracker, due, waiter))

    def _start_via_task(self, address: str, timeout: float, callback: ProbeCallback,
                        context: _CheckContext) -> None:
        task = asyncio.get_running_loop().create_task(self.prober.probe(address, timeout))
        self._checks.add(task)
        task.add_done_callback(functools.partial(self._probe_done, context))

    def _probe_done(self, context: _CheckContext, task: asyncio.Task[ProbeReply]) -> None:
        self._checks.discard(task)
        if task.cancelled():
            self._first_reply(context, 0, 0.0, None, CLOSED)
            return
        exc = task.exception()
        if exc is None:
            reply = task.result()
            self._first_reply(context, reply.sent_ns, reply.sent_mono, reply.rtt_ms, reply.error)
            return
        slot, tracker, _due, waiter = context
        self._end(slot, tracker, waiter, None, exc)
        if waiter is None:
            log.error("probe of %s failed: %s: %s", tracker.device.address, type(exc).__name__, exc)

    async def probe_now(self, name: str) -> CheckResult:
        """Check ``name`` at once, outside its schedule (an operator asked): a real check, its
        result and any transition published like any other. Raises KeyError for a device not
        in the inventory (or no longer, when its check ends). While the device's own check
        runs, nothing is queued and no second check goes out: the ask waits for that check to
        end, then the device is checked (or, if another ask took that turn, that check's result
        is the answer: either way a check whose first probe left after the ask). A new
        inventory that readdressed the device while its check was out: the new address is
        checked."""
        asked = datetime.now(UTC)
        for _ in range(4):  # a device readdressed during its checks again and again: KeyError
            slot = self._slot_of.get(name)
            if slot is None:
                raise KeyError(name)
            if slot.busy:
                ended = await asyncio.shield(self._end_of(slot))
                if self._closed:
                    raise asyncio.CancelledError  # as the check of an ask is when the engine stops
                if ended is not None and ended.at >= asked:
                    return ended
                continue
            self.checks_on_demand += 1
            result = await asyncio.shield(self._check_now(slot))
            if result is not None:
                return result
        raise KeyError(name)

    def check_unless_busy(self, name: str) -> bool:
        """Check ``name`` at once, outside its schedule, unless its check is in flight (a trap
        asked: that check answers, nothing is added or queued). True when a check started. The
        check is a real one, its result and any transition published as any other."""
        slot = self._slot_of.get(name)
        if slot is None or slot.busy or not self._running:
            return False
        self._start_now(slot)
        return True

    def _end_of(self, slot: Slot) -> asyncio.Future[CheckResult | None]:
        """The end of ``slot``'s check in flight: its result (None: it counted for nothing)."""
        ended = self._ends.get(slot.key)
        if ended is None:
            ended = self._ends[slot.key] = asyncio.get_running_loop().create_future()
        return ended

    def _check_now(self, slot: Slot) -> asyncio.Future[CheckResult | None]:
        """Start the check of ``slot`` (not busy) now, outside its schedule; the future its end
        resolves (None: not counted, the inventory took the device away or readdressed it)."""
        waiter: asyncio.Future[CheckResult | None] = asyncio.get_running_loop().create_future()
        self._waiters.add(waiter)
        waiter.add_done_callback(self._waiters.discard)
        self._start_now(slot, waiter)
        return waiter

    def _start_now(self, slot: Slot, waiter: asyncio.Future[CheckResult | None] | None = None) -> None:
        """Start the check of ``slot`` (not busy) now, outside its schedule (``waiter``: resolved
        by its end)."""
        slot.busy = True
        self._start_check(slot, time.monotonic(), waiter)

    def _first_reply(self, context: _CheckContext, sent_ns: int, sent_mono: float,
                     rtt_ms: float | None, error: str | None) -> None:
        """The first probe of a check ended (a :class:`ProbeReply`'s fields; ``error`` CLOSED:
        the prober was closed first). Finishes the check, or hands a failure that must be
        confirmed to a task. Nothing counts when a new inventory took the device away (or gave
        it a new address) while the probe was out, nor once the engine has stopped."""
        slot, tracker, due, waiter = context
        result: CheckResult | None = None
        failure: BaseException | None = None
        handed_over = False
        try:
            if error is CLOSED or self._closed:
                return
            self._lags.append(sent_mono - due)
            if self._by_key.get(slot.key) is not tracker:
                return  # removed, or readdressed, while the probe was out: not this inventory's
            tracker.record_probe(rtt_ms)
            if rtt_ms is not None or not self._needs_confirmation(tracker):
                result = self._finish(tracker, sent_ns, rtt_ms, 1, 0 if rtt_ms is None else 1)
                return
            first = ProbeReply(sent_ns, sent_mono, rtt_ms, error)
            task = asyncio.get_running_loop().create_task(
                self._confirm_then_finish(slot, tracker, first, waiter))
            self._checks.add(task)
            task.add_done_callback(self._checks.discard)
            handed_over = True  # the task ends the check
        except BaseException as exc:
            failure = exc
            raise
        finally:
            if not handed_over:
                self._end(slot, tracker, waiter, result, failure)

    async def _confirm_then_finish(self, slot: Slot, tracker: DeviceTracker, first: ProbeReply,
                                   waiter: asyncio.Future[CheckResult | None] | None) -> None:
        result: CheckResult | None = None
        error: BaseException | None = None
        try:
            sent, received, last = await self._confirm(tracker, first, slot.key)
            unreachable = False
            if not received and tracker.device.parents and self._by_key.get(slot.key) is tracker:
                unreachable = await self._behind_failed_parents(tracker.device)
            if self._by_key.get(slot.key) is tracker and not self._closed:
                result = self._finish(tracker, first.sent_ns, last.rtt_ms, sent, received, unreachable)
        except BaseException as exc:
            error = exc
            raise
        finally:
            self._end(slot, tracker, waiter, result, error)

    def _end(self, slot: Slot, tracker: DeviceTracker, waiter: asyncio.Future[CheckResult | None] | None,
             result: CheckResult | None, error: BaseException | None = None) -> None:
        """A check is over: its device may be checked again; a waiting probe_now learns how it went."""
        if not self._closed:
            self._in_flight -= 1
        slot.busy = False
        # A changed interval gave the device a new slot while this check ran (see _replace).
        current = self._slot_of.get(tracker.device.name)
        if current is not None and current.key == slot.key:
            current.busy = False
        ended = self._ends.pop(slot.key, None)
        if ended is not None and not ended.done():
            ended.set_result(None if error is not None else result)
        if waiter is not None and not waiter.done():
            if self._closed or isinstance(error, asyncio.CancelledError):
                waiter.cancel()
            elif error is not None:
                waiter.set_exception(error)
            else:
                waiter.set_result(result)

    async def _confirm(self, tracker: DeviceTracker, last: ProbeReply,
                       key: int) -> tuple[int, int, ProbeReply]:
        """Quick extra probes, ``confirm_spacing`` apart, before a failure is believed (none
        more once the device has left the inventory)."""
        cfg = self.config.state
        sent, received = 1, 0
        for _ in range(cfg.confirm_probes):
            wait = cfg.confirm_spacing - (time.monotonic() - last.sent_mono)
            if wait > 0:
                await asyncio.sleep(wait)
            if self._by_key.get(key) is not tracker:
                break
            last = await self.prober.probe(tracker.device.address, self.config.timeout)
            tracker.record_probe(last.rtt_ms)
            sent += 1
            if last.ok:
                received = 1
                break
        return sent, received, last

    def _finish(self, tracker: DeviceTracker, first_sent_ns: int, rtt_ms: float | None,
                sent: int, received: int, unreachable: bool = False) -> CheckResult:
        """Fold a check into its device's state and publish it: ``first_sent_ns`` is when its
        first probe was sent, ``rtt_ms`` the last probe's RTT; ``unreachable``, a failure behind
        parents that are all out. A device that comes UP has its UNREACHABLE children re-checked."""
        first_sent = utc_from_ns(first_sent_ns)
        before = tracker.state
        if not received and not unreachable and before is State.UNREACHABLE:
            unreachable = self._parents_out(tracker.device)  # still behind them: no change
        transition, flap = tracker.apply_check(received > 0, first_sent, None, time.monotonic(), rtt_ms,
                                               unreachable)
        self.checks_done += 1
        bus = self.bus
        result = CheckResult(tracker.device.name, tracker.device.address, first_sent,
                             sent, received, rtt_ms, tracker.state)
        bus.publish(result)
        if transition is not None:
            self.state_counts[before] -= 1
            self.state_counts[tracker.state] += 1
            bus.publish(transition)
            if tracker.state is State.UP:
                self._recheck_children(tracker.device.name)
        if flap is not None:
            self.flapping += 1 if flap.flapping else -1
            bus.publish(flap)
        return result

    # -- dependencies ------------------------------------------------------------------------
    # A device whose every parent is out (DOWN or UNREACHABLE) is UNREACHABLE when it fails, not
    # DOWN. The parents' states are made fresh before a failing child is declared (a parent not
    # out is probed at once, or its check in flight awaited), so the order in which the schedule
    # reaches a router and the devices behind it never decides the verdict.
    def _parents_out(self, device: Device) -> bool:
        """Whether ``device`` has parents and every one of them is DOWN or UNREACHABLE (a remote
        parent: found out by a probe within its interval)."""
        trackers = self.trackers
        for name in device.parents:
            parent = trackers.get(name)
            if parent is None:
                if not self._remote_found_out(name):
                    return False
            elif parent.state not in OUT:
                return False
        return bool(device.parents)

    def _remote_found_out(self, name: str) -> bool:
        found = self._remote_out.get(name)
        remote = self._remote.get(name)
        if found is None or remote is None:
            return False
        return time.monotonic() - found < (remote.interval or self.config.interval)

    def _needs_confirmation(self, tracker: DeviceTracker) -> bool:
        """A failure is confirmed unless the device is out already; an UNREACHABLE device's is
        confirmed too once one of its parents is back (it may be DOWN on its own)."""
        state = tracker.state
        if state is State.UNREACHABLE:
            return not self._parents_out(tracker.device)
        return state is not State.DOWN

    async def _behind_failed_parents(self, device: Device) -> bool:
        """After ``device`` failed its confirmation: its parents that are not out are checked
        now (in parallel); whether every parent is out then."""
        fresh = [name for name in device.parents
                 if (parent := self.trackers.get(name)) is not None and parent.state not in OUT]
        remote = [name for name in device.parents
                  if name in self._remote and not self._remote_found_out(name)]
        if fresh or remote:
            await asyncio.gather(*(self._settle(name) for name in fresh),
                                 *(self._probe_remote(name) for name in remote))
        return self._parents_out(device)

    async def _probe_remote(self, name: str) -> None:
        """Probe the remote parent ``name`` now (one probe, and the confirmations a failure
        needs); the children failing at once behind it share that probe."""
        probing = self._remote_probes.get(name)
        if probing is None:
            probing = self._remote_probes[name] = asyncio.ensure_future(self._judge_remote(name))
            probing.add_done_callback(lambda _: self._remote_probes.pop(name, None))
        with contextlib.suppress(Exception):  # a failed probe proves nothing: the child is DOWN
            await asyncio.shield(probing)

    async def _judge_remote(self, name: str) -> None:
        """Found out (no answer to a probe and its confirmations): kept in ``_remote_out``."""
        device = self._remote[name]
        self.checks_for_dependencies += 1
        for attempt in range(1 + self.config.state.confirm_probes):
            if attempt:
                await asyncio.sleep(self.config.state.confirm_spacing)
            reply = await self.prober.probe(device.address, self.config.timeout)
            if reply.ok:
                self._remote_out.pop(name, None)
                return
        if self._remote.get(name) is device:  # not taken away (or readdressed) meanwhile
            self._remote_out[name] = time.monotonic()

    async def _settle(self, name: str) -> None:
        """A check of ``name`` ended after now: its check in flight, or one started at once."""
        slot = self._slot_of.get(name)
        if slot is None or self._closed:
            return
        if slot.busy:
            await asyncio.shield(self._end_of(slot))
            return
        self.checks_for_dependencies += 1
        waiter = self._check_now(slot)
        with contextlib.suppress(Exception):  # the parent's own check logs its failure
            await asyncio.shield(waiter)

    def _recheck_children(self, name: str) -> None:
        """``name`` came UP: each UNREACHABLE child is checked at once (UP, or DOWN on its own
        evidence) rather than at its next turn. A child whose check is running decides with
        this parent UP when it ends."""
        for child in self._children.get(name, ()):
            tracker = self.trackers.get(child)
            slot = self._slot_of.get(child)
            if tracker is None or slot is None or tracker.state is not State.UNREACHABLE or slot.busy:
                continue
            self.checks_for_dependencies += 1
            self._start_now(slot)

    # -- gauges ------------------------------------------------------------------------------
    async def _gauge_loop(self) -> None:
        while True:
            await asyncio.sleep(self.config.gauge_period)
            self.bus.publish(self._gauges())

    def _gauges(self) -> Gauges:
        now = time.monotonic()
        counters = self.prober.counters()
        marks = self._rate_marks
        # From the newest mark at least rate_window old; in the first seconds, from the start.
        while len(marks) > 1 and now - marks[1][0] >= self.config.rate_window:
            marks.popleft()
        base_t, base_checks, base_sent = marks[0]
        dt = max(now - base_t, 1e-9)
        marks.append((now, self.checks_done, counters.get("sent", 0)))
        lags = sorted(self._lags)
        self._lags = []
        gauges = Gauges(
            at=datetime.now(UTC),
            devices_up=self.state_counts[State.UP], devices_down=self.state_counts[State.DOWN],
            devices_unknown=self.state_counts[State.UNKNOWN], devices_flapping=self.flapping,
            checks_per_s=(self.checks_done - base_checks) / dt,
            probes_per_s=(counters.get("sent", 0) - base_sent) / dt,
            in_flight=self._in_flight, skipped=self.scheduler.skipped,
            skipped_late=self.scheduler.skipped_late, skipped_busy=self.scheduler.skipped_busy,
            lag_p50_ms=percentile(lags, 50) * 1000, lag_p99_ms=percentile(lags, 99) * 1000,
            oldest_overdue_ms=self.scheduler.oldest_overdue() * 1000,
            rcvbuf_drops=counters.get("rcvbuf_drops", 0), send_errors=counters.get("send_errors", 0),
            store_queue=sum(source() for source in self.queue_sources),
            extra={"probes_in_flight": float(counters.get("in_flight", 0)),
                   "late_replies": float(counters.get("late_replies", 0)),
                   "send_waits": float(counters.get("send_waits", 0)),
                   "events_dropped": float(sum(s.dropped for s in self.bus.subscriptions)),
                   "checks_on_demand": float(self.checks_on_demand),
                   "checks_for_dependencies": float(self.checks_for_dependencies),
                   "devices_unreachable": float(self.state_counts[State.UNREACHABLE])},
        )
        for source in self.gauge_sources:
            gauges.extra.update(source())
        self.last_gauges = gauges
        return gauges
