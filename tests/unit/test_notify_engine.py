"""The notifier on a real engine (scripted prober, short timers): the issue's cases, each asserting
exactly what the sink received; a storm of 10,000 failures; restart and inventory reloads."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import pytest

from poller.engine import Engine
from poller.events import Gauges, State, Transition
from poller.inventory import Device
from poller.notify.model import Matcher, Notification, Route
from poller.notify.notifier import Notifier
from poller.notify.suppressions import MemorySuppressions
from poller.stats import percentile
from tests.fakes import FakeProber
from tests.runqueue import Waited
from tests.unit.test_engine import config, stop, wait_for

RECEIVERS = ("webhook", "mail")


class Sink:
    """The outbox's ``put`` as the notifier sees it: here, a list."""

    def __init__(self) -> None:
        self.got: list[Notification] = []
        self.arrived: dict[str, datetime] = {}  # key -> when the sink had it

    async def __call__(self, notes: Sequence[Notification]) -> None:
        self.got += notes
        now = datetime.now(UTC)
        self.arrived.update((n.key, now) for n in notes)

    def to(self, receiver: str = "webhook") -> list[Notification]:
        return [n for n in self.got if n.receiver == receiver]


class Network(FakeProber):
    """Devices behind a router answer only while it does (``cut``: routers that are down; ``dead``:
    devices down on their own)."""

    def __init__(self, devices: Sequence[Device]) -> None:
        super().__init__(rtt_ms=1.0)
        self.cut: set[str] = set()
        self.dead: set[str] = set()
        by_name = {d.name: d for d in devices}
        self._parents = {d.address: tuple(by_name[p].address for p in d.parents) for d in devices}
        self.behaviour = self._answer

    def _answer(self, address: str, n: int) -> float | None:
        if address in self.cut or address in self.dead:
            return None
        parents = self._parents.get(address, ())
        if parents and all(p in self.cut for p in parents):
            return None
        return 1.0


def route(wait: float = 0.5, interval: float = 1.0, repeat: float = 3600.0) -> Route:
    return Route("noc", RECEIVERS, group_wait=wait, group_interval=interval, repeat_interval=repeat)


def address(n: int) -> str:
    return f"127.4.{n // 250}.{n % 250 + 1}"


def branch(b: str, n0: int, per: int = 40, routers: int = 1) -> list[Device]:
    rtrs = [Device(f"{b}-rtr" if routers == 1 else f"{b}-rtr{r + 1}", address(n0 + r), b, "north", "router")
            for r in range(routers)]
    parents = tuple(r.name for r in rtrs)
    return [*rtrs, *(Device(f"{b}-d{j:02d}", address(n0 + routers + j), b, "north", "atm", parents=parents)
                     for j in range(per))]


async def started(devices: list[Device], prober: FakeProber, interval: float = 0.2, **kw: object
                  ) -> tuple[Engine, Notifier, Sink, asyncio.Task[None]]:
    engine = Engine(devices, prober, config(interval=interval))
    sink = Sink()
    notifier = Notifier(engine, [route(**kw)], sink, site="hq")  # type: ignore[arg-type]
    engine.add_companion(notifier)
    task = asyncio.create_task(engine.run())
    return engine, notifier, sink, task


async def probe_now(engine: Engine, name: str) -> None:
    """What an operator's "probe now" (or the router's own turn) does: a check that starts after
    the ask (one in flight is waited for first)."""
    await engine.probe_now(name)


async def settled(sink: Sink, count: int, quiet: float = 1.5, timeout: float = 10.0) -> None:
    """``count`` notifications arrived, and nothing more for ``quiet`` seconds (> group_interval)."""
    await wait_for(lambda: len(sink.got) >= count, timeout)
    await asyncio.sleep(quiet)
    assert len(sink.got) == count, [(n.receiver, n.title) for n in sink.got]


@pytest.mark.alone  # group_wait is a deadline: a starved loop (lag > 0.5 s) could split the verdicts
async def test_2500_branches_one_router_fails_after_its_children_one_message_then_one_recovery() -> None:
    """102,500 devices; the failing branch's 40 devices come first in the schedule, its router last:
    exactly one notification per receiver names the router and its 40 unreachable devices; the
    router back, exactly one recovery."""
    branches, per = 2500, 40
    failing = branch("b0000", 0, per)
    devices = failing[1:]  # the children first...
    n = per + 1
    for b in range(1, branches):
        devices += branch(f"b{b:04d}", n, per)
        n += per + 1
    devices.append(failing[0])  # ... their router last
    network = Network(devices)
    network.cut = {failing[0].address}
    engine = Engine(devices, network, config(interval=16.0, timeout=0.05))
    sink = Sink()
    notifier = Notifier(engine, [route()], sink, site="hq")
    engine.add_companion(notifier)
    task = asyncio.create_task(engine.run())
    try:
        await wait_for(lambda: engine.trackers["b0000-rtr"].state is State.DOWN
                       and engine.state_counts[State.UNREACHABLE] == per, timeout=60.0)
        await settled(sink, 2)
        await wait_for(lambda: engine.state_counts[State.UNKNOWN] == 0, timeout=60.0)  # a whole round
        await settled(sink, 2, quiet=0.5)
        for receiver in RECEIVERS:
            [note] = sink.to(receiver)
            assert note.status == "firing"
            assert note.title == "b0000-rtr DOWN, 40 devices unreachable behind it"
            assert [(a.device, a.state) for a in note.firing] == [("b0000-rtr", "down")] + [
                (d.name, "unreachable") for d in failing[1:]]
        # Every UNKNOWN -> UP reached the notifier too (and cost it next to nothing).
        await wait_for(lambda: notifier.stats.transitions == len(devices), timeout=20.0)
        assert len(sink.got) == 2

        network.cut = set()
        await probe_now(engine, "b0000-rtr")
        await wait_for(lambda: engine.state_counts[State.UNREACHABLE] == 0)
        await settled(sink, 4)
        for receiver in RECEIVERS:
            end = sink.to(receiver)[1]
            assert (end.status, end.title) == ("resolved", "b0000-rtr UP again, 40 devices reachable")
            assert len(end.resolved) == per + 1 and end.firing == ()
        assert len({n.key for n in sink.got}) == 4
    finally:
        await stop(engine, task)


async def test_a_dual_homed_branch_losing_one_router_gives_one_message_for_it() -> None:
    devices = branch("b1", 0, 40, routers=2) + branch("b2", 100, 10)
    network = Network(devices)
    engine, _, sink, task = await started(devices, network)
    try:
        await wait_for(lambda: engine.state_counts[State.UP] == len(devices))
        network.cut = {devices[0].address}
        await wait_for(lambda: engine.trackers["b1-rtr1"].state is State.DOWN)
        await settled(sink, 2)
        assert all(engine.trackers[d.name].state is State.UP for d in devices[1:])
        assert [(n.title, len(n.firing)) for n in sink.to()] == [("b1-rtr1 DOWN", 1)]
    finally:
        await stop(engine, task)


async def test_the_router_back_and_one_child_still_down_one_down_message_for_that_child() -> None:
    devices = branch("b1", 0, 40)
    network = Network(devices)
    engine, _, sink, task = await started(devices, network)
    try:
        await wait_for(lambda: engine.state_counts[State.UP] == len(devices))
        network.cut = {devices[0].address}
        await wait_for(lambda: engine.state_counts[State.UNREACHABLE] == 40)
        await settled(sink, 2)
        assert sink.to()[0].title == "b1-rtr DOWN, 40 devices unreachable behind it"
        network.dead = {"127.4.0.9"}  # b1-d07, down on its own
        network.cut = set()
        await wait_for(lambda: engine.trackers["b1-d07"].state is State.DOWN)
        await settled(sink, 4)
        second = sink.to()[1]
        assert second.title == "b1-d07 DOWN; b1-rtr UP again, 39 devices reachable"
        assert [(a.device, a.state) for a in second.firing] == [("b1-d07", "down")]
        assert len(second.resolved) == 40 and "b1-d07" not in {a.device for a in second.resolved}
        assert second.firing[0].since == sink.to()[0].firing[8].since  # one outage, since its start
        network.dead = set()
        await wait_for(lambda: engine.trackers["b1-d07"].state is State.UP)
        await settled(sink, 6)
        assert [(n.status, n.title) for n in sink.to()[2:]] == [("resolved", "b1-d07 UP again")]
        downs = [n for n in sink.to() if any(a.device == "b1-d07" and a.state == "down" for a in n.firing)]
        assert len(downs) == 1
    finally:
        await stop(engine, task)


@pytest.mark.parametrize("seeded", [True, False], ids=["history-seeded", "no-history"])
async def test_a_restart_sends_the_recovery_of_a_problem_notified_before_it(seeded: bool) -> None:
    devices = branch("b1", 0, 3)
    network = Network(devices)
    network.cut = {devices[0].address}
    engine, _, sink, task = await started(devices, network)
    await settled(sink, 2)
    await stop(engine, task)
    latest = [Notification.from_dict(n.to_dict()) for n in sink.got]  # the outbox's latest per group

    # The service comes back; the history says the outages are open; the network is fine again.
    engine = Engine(devices, network, config(interval=0.2))
    if seeded:  # the history's open outages; without them the devices start UNKNOWN
        engine.seed_outages({d.name: datetime.now(UTC) - timedelta(minutes=1) for d in devices},
                            unreachable={d.name for d in devices[1:]})
    network.cut = set()
    sink = Sink()
    engine.add_companion(Notifier(engine, [route()], sink, site="hq", latest=latest))
    task = asyncio.create_task(engine.run())
    try:
        await settled(sink, 2)
        assert [(n.status, n.title) for n in sink.to()] == [
            ("resolved", "b1-rtr UP again, 3 devices reachable")]
    finally:
        await stop(engine, task)


async def test_outages_open_at_start_and_never_notified_are_notified() -> None:
    devices = branch("b1", 0, 2)
    network = Network(devices)
    network.cut = {devices[0].address}
    engine = Engine(devices, network, config(interval=0.2))
    engine.seed_outages({devices[0].name: datetime.now(UTC) - timedelta(minutes=5)})
    sink = Sink()
    engine.add_companion(Notifier(engine, [route()], sink, site="hq"))
    task = asyncio.create_task(engine.run())
    try:
        await settled(sink, 2)
        note = sink.to()[0]
        assert note.title == "b1-rtr DOWN, 2 devices unreachable behind it"
        assert datetime.now(UTC) - note.firing[0].since > timedelta(minutes=4)
    finally:
        await stop(engine, task)


async def test_a_device_removed_from_the_inventory_while_down_gets_its_recovery() -> None:
    devices = branch("b1", 0, 0) + branch("b2", 10, 0)
    network = Network(devices)
    network.cut = {devices[0].address}
    engine, notifier, sink, task = await started(devices, network)
    try:
        await settled(sink, 2)
        engine.apply_inventory(devices[1:])
        await settled(sink, 4)
        assert [(n.status, n.title) for n in sink.to()] == [("firing", "b1-rtr DOWN"),
                                                          ("resolved", "b1-rtr UP again")]
        assert not notifier.grouper.problems
    finally:
        await stop(engine, task)


async def test_a_failing_sink_is_retried_with_what_was_made_meanwhile_in_order() -> None:
    devices = branch("b1", 0, 0)
    network = Network(devices)
    network.cut = {devices[0].address}
    engine = Engine(devices, network, config(interval=0.2))
    got: list[Notification] = []
    calls = 0

    async def flaky(notes: Sequence[Notification]) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise OSError("spool full")
        got.extend(notes)

    notifier = Notifier(engine, [route()], flaky, site="hq")
    engine.add_companion(notifier)
    task = asyncio.create_task(engine.run())
    try:
        await wait_for(lambda: notifier.stats.sink_failures == 1)
        network.cut = set()
        await wait_for(lambda: len(got) == 4, timeout=5.0)
        assert [(n.receiver, n.status) for n in got] == [("webhook", "firing"), ("mail", "firing"),
                                                        ("webhook", "resolved"), ("mail", "resolved")]
    finally:
        await stop(engine, task)


async def test_a_silence_over_100_flapping_devices_then_one_message_for_the_10_still_down() -> None:
    devices = [Device(f"f1-d{j:02d}", address(j), "f1", "north", "atm") for j in range(100)]
    network = Network(devices)
    quiet = MemorySuppressions()
    quiet.silence((Matcher("branch", "=", "f1"),), datetime.now(UTC) - timedelta(seconds=1),
                  datetime.now(UTC) + timedelta(seconds=6), note="firmware upgrade")
    engine = Engine(devices, network, config(interval=0.1))
    sink = Sink()
    notifier = Notifier(engine, [route()], sink, site="hq", suppressions=quiet, silence_recheck=0.2)
    engine.add_companion(notifier)
    task = asyncio.create_task(engine.run())
    try:
        for _ in range(4):  # flapping through the window
            network.dead = {d.address for d in devices}
            await wait_for(lambda: engine.state_counts[State.DOWN] == 100)
            network.dead = set()
            await wait_for(lambda: engine.state_counts[State.UP] == 100)
        network.dead = {d.address for d in devices[:10]}
        await wait_for(lambda: engine.state_counts[State.DOWN] == 10)
        assert notifier.stats.transitions >= 800 and sink.got == []
        await settled(sink, 2, timeout=10.0)
        [note] = sink.to()
        assert note.title == "10 devices DOWN in f1" and len(note.firing) == 10
    finally:
        await stop(engine, task)


async def test_an_acknowledged_device_gets_no_repeats_and_its_recovery_is_sent() -> None:
    devices = branch("b1", 0, 0)
    network = Network(devices)
    network.cut = {devices[0].address}
    quiet = MemorySuppressions()
    engine = Engine(devices, network, config(interval=0.1))
    sink = Sink()
    engine.add_companion(Notifier(engine, [route(interval=0.2, repeat=0.5)], sink, site="hq",
                                  suppressions=quiet))
    task = asyncio.create_task(engine.run())
    try:
        await wait_for(lambda: len(sink.got) == 2)
        quiet.ack("b1-rtr", "alice", "ISP <ticket> *4411*")
        await asyncio.sleep(2.0)  # four repeat intervals
        assert len(sink.got) == 2
        network.cut = set()
        await settled(sink, 4)
        end = sink.to()[1]
        assert (end.status, end.title) == ("resolved", "b1-rtr UP again")
        assert (end.resolved[0].acked_by, end.resolved[0].ack_note) == ("alice", "ISP <ticket> *4411*")
    finally:
        await stop(engine, task)


@pytest.mark.alone
async def test_a_storm_of_10000_failures_in_one_second_one_message_per_group_and_cheap() -> None:
    """250 branches of 40: all fail within a second: 250 messages per receiver. Printed: the
    notifier's CPU per transition, confirmed transition to sink (p95, at most group_wait + 1 s),
    the engine's lag p99 (worst gauge period) during the storm."""
    devices = [Device(f"s{b:03d}-d{j:02d}", address(b * 40 + j), f"s{b:03d}", "north", "atm")
               for b in range(250) for j in range(40)]
    assert len(devices) == 10_000
    network = Network(devices)
    engine, notifier, sink, task = await started(devices, network, interval=1.0, wait=2.0)
    try:
        await wait_for(lambda: engine.state_counts[State.UP] == len(devices), timeout=10.0)
        await asyncio.sleep(1.0)
        before_cpu, before_n = notifier.stats.cpu_s, notifier.stats.transitions
        watch = engine.bus.subscribe("watch", samples=False)
        waited = Waited()
        network.dead = {d.address for d in devices}
        started_at = time.monotonic()
        await wait_for(lambda: engine.state_counts[State.DOWN] == len(devices), timeout=10.0)
        failed_in = time.monotonic() - started_at

        def whole() -> int:  # (receiver, branch) pairs with a message naming all 40 devices
            return len({(x.receiver, x.group) for x in sink.got if len(x.firing) == 40})

        await wait_for(lambda: whole() == 500, timeout=20.0)
        count = len(sink.got)
        await asyncio.sleep(2.0)  # > group_interval: nothing more comes
        assert len(sink.got) == count, [(x.receiver, x.title) for x in sink.got[count:]]
        w = waited.loop()  # the loop's waits for a CPU since the storm began
        events = watch.drain()
        lag_p99 = max(e.lag_p99_ms for e in events if isinstance(e, Gauges))
        first: dict[str, datetime] = {}
        for t in events:
            if isinstance(t, Transition):
                group = t.device.split("-")[0]
                first[group] = min(first.get(group, t.at), t.at)
        delays = sorted((sink.arrived[x.key] - first[x.group[0][1]]).total_seconds() for x in sink.got)
        cpu = notifier.stats.cpu_s - before_cpu
        n = notifier.stats.transitions - before_n
        print(f"\nstorm: {n} transitions in {failed_in:.2f} s; notifier CPU {cpu * 1000:.0f} ms, "
              f"{cpu / n * 1e6:.1f} us per transition (messages included); transition to sink "
              f"p50 {percentile(delays, 50):.2f} s, p95 {percentile(delays, 95):.2f} s (group_wait 2 s); "
              f"engine lag p99 {lag_p99:.1f} ms (worst gauge period); the notifier held the loop "
              f"{notifier.stats.longest_s * 1000:.1f} ms at most (a full garbage collection included); "
              f"the loop waited {w:.2f} s for a CPU")
        assert n == 10_000
        assert percentile(delays, 95) <= 2.0 + 1.0 + w
        titles = sorted(x.title for x in sink.to())
        # One message per branch. A loop that waited for a CPU for a good part of group_wait may
        # have got a branch's verdicts apart by more than group_wait + max_hold: that branch's
        # first message names those it had, a later one all 40 (above).
        if w < 0.5:
            assert len(titles) == 250 and titles[0] == "40 devices DOWN in s000", titles[:3]
        named: dict[tuple[str, object], list[set[str]]] = {}
        for x in sink.got:  # each message of a branch names more devices than the one before
            named.setdefault((x.receiver, x.group), []).append({a.device for a in x.firing})
        assert all(a < b for sets in named.values() for a, b in itertools.pairwise(sets)), titles[:3]
        assert cpu / n < 200e-6
    finally:
        await stop(engine, task)


async def test_a_storm_is_fed_and_built_in_slices_the_loop_gets_turns_between() -> None:
    """20,000 transitions published at once and 500 groups due at once: the notifier takes them
    in slices, and a task beside it gets many turns meanwhile (taken at once, it would get one)."""
    devices = [Device(f"s{b:03d}-d{j:02d}", address(b * 40 + j), f"s{b:03d}", "north", "atm")
               for b in range(500) for j in range(40)]
    engine = Engine(devices, FakeProber(), config())
    sink = Sink()
    notifier = Notifier(engine, [Route("noc", RECEIVERS, group_wait=0.3)], sink, site="hq")
    task = asyncio.create_task(notifier.run())
    turns = 0

    async def beside() -> None:
        nonlocal turns
        while True:
            await asyncio.sleep(0)
            turns += 1

    seen: list[tuple[int, int]] = []  # (turns so far, messages made) at each slice of building
    due = notifier.grouper.due

    def sliced_due(now: float | None = None, limit: int | None = None) -> list[Notification]:
        made = due(now, limit)
        if made:
            seen.append((turns, len(made)))
        return made

    notifier.grouper.due = sliced_due  # type: ignore[method-assign]
    await asyncio.sleep(0.05)
    at = datetime.now(UTC)
    for d in devices:
        engine.bus.publish(Transition(d.name, d.address, State.UP, State.DOWN, at, at, None))
    ticker = asyncio.create_task(beside())
    try:
        await wait_for(lambda: notifier.stats.transitions == len(devices), timeout=10.0)
        fed_in = turns
        await wait_for(lambda: len(sink.got) == 1000, timeout=10.0)
        print(f"\nturns of the loop while feeding 20,000 transitions: {fed_in}; slices of building "
              f"500 messages: {len(seen)}; longest hold {notifier.stats.longest_s * 1000:.1f} ms")
        assert fed_in >= 10
        assert sum(n for _, n in seen) == 1000 and max(n for _, n in seen) <= 100  # 50 groups a slice
        assert all(b > a for (a, _), (b, _) in itertools.pairwise(seen))  # the loop turned between
    finally:
        ticker.cancel()
        notifier.stop()
        await asyncio.wait_for(task, 5.0)


@pytest.mark.alone
@pytest.mark.parametrize("behind", [False, True], ids=["on-time", "engine-behind"])
async def test_due_messages_wait_for_an_engine_behind_its_schedule_at_most_max_hold(behind: bool) -> None:
    """An engine whose checks are late (a starved loop) has verdicts still to make: a group's
    message waits for them (at most max_hold), and goes at group_wait when the engine is on time."""
    devices = branch("b1", 0, 0)
    engine = Engine(devices, FakeProber(), config())
    if behind:  # its schedule 5 s late, and never catching up (it is not running)
        engine.scheduler.add_spread(list(engine.slots), start=time.monotonic() - 5.0)
    sink = Sink()
    notifier = Notifier(engine, [Route("noc", RECEIVERS, group_wait=0.3)], sink, site="hq", max_hold=0.6)
    task = asyncio.create_task(notifier.run())
    try:
        await asyncio.sleep(0.05)
        waited = Waited()
        at = datetime.now(UTC)
        engine.bus.publish(Transition("b1-rtr", devices[0].address, State.UP, State.DOWN, at, at, None))
        await wait_for(lambda: len(sink.got) == 2)
        took = (sink.arrived[sink.got[0].key] - at).total_seconds()
        w = waited.loop()  # late by what the loop waited for a CPU meanwhile, at most
        print(f"\nengine behind: {behind}; transition to sink {took:.2f} s (group_wait 0.3, max_hold 0.6); "
              f"the loop waited {w:.2f} s for a CPU")
        if behind:
            assert 0.3 + 0.6 <= took < 0.3 + 0.6 + 0.3 + w and notifier.stats.holds == 1
        else:
            assert 0.3 <= took < 0.3 + 0.25 + w and notifier.stats.holds == 0
    finally:
        notifier.stop()
        await asyncio.wait_for(task, 5.0)
