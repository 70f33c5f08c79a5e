"""Dependencies: a device whose every parent is out is UNREACHABLE, not DOWN, whatever the order
in which the schedule reaches it and its parents; a parent's recovery re-checks its children."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime

import pytest

from poller.engine import Engine
from poller.events import State, Transition
from poller.inventory import Device
from poller.prober import ProbeReply
from poller.state import DeviceTracker, StateConfig
from tests.fakes import FakeProber
from tests.runqueue import Waited
from tests.unit.test_engine import collect, config, stop, transitions, wait_for


class OrderProber(FakeProber):
    """A FakeProber that remembers the address of every probe, in send order."""

    def __init__(self) -> None:
        super().__init__(rtt_ms=1.0)
        self.order: list[str] = []

    async def probe(self, address: str, timeout: float) -> ProbeReply:
        self.order.append(address)
        return await super().probe(address, timeout)


def dev(name: str, n: int, *parents: str, interval: float | None = None, branch: str = "b") -> Device:
    return Device(name, f"127.3.{n // 250}.{n % 250 + 1}", branch, "north", "atm" if parents else "router",
                  parents=parents, interval=interval, line=n + 2)


def moves(events: list[object], name: str) -> list[tuple[State, State]]:
    return [(t.from_state, t.to_state) for t in transitions(events, name)]  # type: ignore[arg-type]


async def test_children_failing_before_their_parent_is_checked_end_unreachable() -> None:
    """The children's checks come first (the router's schedule is an hour away): each failing
    child has the router probed at once, which finds it DOWN; no child is ever DOWN."""
    router = dev("rtr", 0, interval=3600.0)
    children = [dev(f"atm{i}", i + 1, "rtr", interval=0.2) for i in range(5)]
    prober = OrderProber()
    engine = Engine([*children, router], prober, config(interval=0.2))
    sub = engine.bus.subscribe("t")
    task = asyncio.create_task(engine.run())
    await wait_for(lambda: engine.state_counts[State.UP] == 6)
    failed_from = len(prober.order)
    prober.down = {router.address, *(c.address for c in children)}
    await wait_for(lambda: engine.state_counts[State.UNREACHABLE] == 5)
    await asyncio.sleep(0.5)  # two more intervals: nothing changes
    await stop(engine, task)
    events = collect(sub)
    after = prober.order[failed_from:]
    assert after.index(router.address) > min(after.index(c.address) for c in children)
    assert moves(events, "rtr") == [(State.UNKNOWN, State.UP), (State.UP, State.DOWN)]
    for child in children:
        assert moves(events, child.name) == [(State.UNKNOWN, State.UP), (State.UP, State.UNREACHABLE)]
    assert engine.state_counts[State.DOWN] == 1
    assert engine.checks_for_dependencies >= 1
    # UNREACHABLE costs one probe per interval, like DOWN: no confirmation while the router is out.
    child = engine.trackers["atm0"]
    assert child.down_since is not None


async def test_a_dual_homed_child_stays_up_and_fails_down_while_one_parent_is_up() -> None:
    r1, r2 = dev("r1", 0), dev("r2", 1)
    child = dev("sw", 2, "r1", "r2")
    prober = FakeProber()
    engine = Engine([r1, r2, child], prober, config(interval=0.1))
    sub = engine.bus.subscribe("t")
    task = asyncio.create_task(engine.run())
    await wait_for(lambda: engine.state_counts[State.UP] == 3)
    prober.down = {r1.address}
    await wait_for(lambda: engine.trackers["r1"].state is State.DOWN)
    await asyncio.sleep(0.3)
    assert engine.trackers["sw"].state is State.UP  # one path is enough
    prober.down = {r1.address, child.address}  # sw itself fails, r2 still answers
    await wait_for(lambda: engine.trackers["sw"].state is not State.UP)
    await asyncio.sleep(0.3)
    assert engine.trackers["sw"].state is State.DOWN
    prober.down = {r1.address, r2.address, child.address}  # both paths gone: stays DOWN
    await wait_for(lambda: engine.trackers["r2"].state is State.DOWN)
    await asyncio.sleep(0.3)
    await stop(engine, task)
    events = collect(sub)
    assert moves(events, "sw") == [(State.UNKNOWN, State.UP), (State.UP, State.DOWN)]


async def test_both_parents_out_makes_a_dual_homed_child_unreachable() -> None:
    r1, r2 = dev("r1", 0, interval=3600.0), dev("r2", 1, interval=3600.0)
    child = dev("sw", 2, "r1", "r2", interval=3600.0)
    prober = FakeProber()
    engine = Engine([r1, r2, child], prober, config())
    for name in ("r1", "r2", "sw"):
        assert (await engine.probe_now(name)).ok
    prober.down = {r1.address, r2.address, child.address}
    result = await engine.probe_now("sw")  # both routers are probed before sw is declared
    assert result.state is State.UNREACHABLE
    assert engine.trackers["r1"].state is engine.trackers["r2"].state is State.DOWN
    assert engine.checks_for_dependencies == 2


async def test_a_parent_another_poller_checks_is_probed_before_its_child_is_declared() -> None:
    """serve --cluster: a branch router's parent (the region's core) is on another member's
    shard, not in this engine. A failing child probes the remote parent's address at once: out,
    the child is UNREACHABLE (it was DOWN, a false page for every branch behind a core); the
    parent answering, the child is DOWN. Children failing together share one probe of it, and
    nothing of the remote parent is published (its own poller records it)."""
    core = dev("core", 0)
    routers = [dev(f"rtr{i}", i + 1, "core", interval=3600.0) for i in range(4)]
    prober = OrderProber()
    engine = Engine(routers, prober, config())
    engine.set_remote_parents([core])
    sub = engine.bus.subscribe("t")
    for router in routers:
        assert (await engine.probe_now(router.name)).ok
    assert core.address not in prober.order  # not probed while its children answer
    prober.down = {core.address, *(r.address for r in routers)}
    results = await asyncio.gather(*(engine.probe_now(r.name) for r in routers))
    assert [r.state for r in results] == [State.UNREACHABLE] * 4
    assert prober.order.count(core.address) == 1 + engine.config.state.confirm_probes  # one probe, shared
    assert engine.checks_for_dependencies == 1
    prober.down = {core.address, routers[0].address}  # still out: the verdict holds, no new probe
    assert (await engine.probe_now("rtr0")).state is State.UNREACHABLE
    assert prober.order.count(core.address) == 1 + engine.config.state.confirm_probes
    prober.down = {routers[1].address}  # the core answers, rtr1 fails on its own
    engine._remote_out.clear()  # (its interval has passed)
    assert (await engine.probe_now("rtr1")).state is State.DOWN
    events = collect(sub)
    assert all(getattr(e, "device", None) != "core" for e in events)
    assert "core" not in engine.trackers and engine.state_counts[State.UNREACHABLE] == 3


async def test_remote_parents_are_only_those_the_engine_does_not_check() -> None:
    local, remote = dev("r1", 0), dev("core", 1)
    child = dev("sw", 2, "r1", "core")
    engine = Engine([local, child], FakeProber(), config())
    engine.set_remote_parents([local, remote])
    assert list(engine._remote) == ["core"]


async def test_a_recovering_parent_rechecks_its_children_and_one_still_failing_ends_down() -> None:
    """The children are never checked by their schedule here (an hour): only the router's
    recovery brings them back, at once; the one still failing is DOWN on its own evidence."""
    router = dev("rtr", 0, interval=0.1)
    children = [dev(f"atm{i}", i + 1, "rtr", interval=3600.0) for i in range(3)]
    prober = FakeProber()
    engine = Engine([router, *children], prober, config())
    sub = engine.bus.subscribe("t")
    prober.down = {router.address, *(c.address for c in children)}
    results = await asyncio.gather(*(engine.probe_now(c.name) for c in children))
    assert {r.state for r in results} == {State.UNREACHABLE}
    assert engine.trackers["rtr"].state is State.DOWN
    task = asyncio.create_task(engine.run())
    prober.down = {children[1].address}  # the router is back; atm1 is not
    await wait_for(lambda: engine.state_counts[State.UNREACHABLE] == 0)
    await asyncio.sleep(0.3)
    await stop(engine, task)
    events = collect(sub)
    assert moves(events, "atm0") == moves(events, "atm2") == [
        (State.UNKNOWN, State.UNREACHABLE), (State.UNREACHABLE, State.UP)]
    assert moves(events, "atm1") == [(State.UNKNOWN, State.UNREACHABLE), (State.UNREACHABLE, State.DOWN)]
    down = transitions(events, "atm1")[-1]
    assert down.down_since == transitions(events, "atm1")[0].down_since  # one outage, its cause known later
    assert engine.trackers["atm1"].state is State.DOWN and not engine.trackers["atm1"].flapping


async def test_a_chain_of_parents_settles_from_the_top() -> None:
    core, rtr, atm = dev("core", 0, interval=3600.0), dev("rtr", 1, "core", interval=3600.0), \
        dev("atm", 2, "rtr", interval=3600.0)
    prober = FakeProber()
    engine = Engine([core, rtr, atm], prober, config())
    prober.down = {core.address, rtr.address, atm.address}
    assert (await engine.probe_now("atm")).state is State.UNREACHABLE
    assert engine.trackers["rtr"].state is State.UNREACHABLE
    assert engine.trackers["core"].state is State.DOWN


async def test_a_child_behind_a_parent_whose_check_is_running_waits_for_it() -> None:
    """The router's own check is in flight (slow timeouts): the child waits for its verdict
    instead of starting a second check of it."""
    router = dev("rtr", 0, interval=3600.0)
    child = dev("atm", 1, "rtr", interval=3600.0)
    prober = FakeProber(fast_timeouts=False)
    engine = Engine([router, child], prober, config(timeout=0.2, confirm_spacing=0.01))
    prober.down = {router.address, child.address}
    router_check = asyncio.create_task(engine.probe_now("rtr"))
    await asyncio.sleep(0.05)
    assert (await engine.probe_now("atm")).state is State.UNREACHABLE
    assert (await router_check).state is State.DOWN
    assert engine.checks_for_dependencies == 0
    assert prober.max_in_flight_per_address[router.address] == 1


@pytest.mark.alone  # 102,500 devices a round in 10 s: a deadline, on a loop of its own
async def test_2500_branches_of_40_one_router_fails_its_children_scheduled_first() -> None:
    """102,500 devices; the failing branch's 40 devices are first in the inventory and its router
    last, so the schedule reaches every child before the router: 1 DOWN, 40 UNREACHABLE, and
    nothing else but UNKNOWN -> UP over the whole round."""
    branches, per = 2500, 40
    failing = [dev(f"b0000-d{j:02d}", 1 + j, "b0000-rtr", branch="b0000") for j in range(per)]
    devices: list[Device] = list(failing)
    n = 1 + per
    for b in range(1, branches):
        rtr = f"b{b:04d}-rtr"
        devices.append(dev(rtr, n, branch=f"b{b:04d}"))
        devices += [dev(f"b{b:04d}-d{j:02d}", n + 1 + j, rtr, branch=f"b{b:04d}") for j in range(per)]
        n += 1 + per
    devices.append(dev("b0000-rtr", 0, branch="b0000"))
    assert len(devices) == branches * (per + 1)
    router_probed: list[float] = []  # what the loop had waited for a CPU at each probe of the router

    class Prober(OrderProber):
        async def probe(self, address: str, timeout: float) -> ProbeReply:
            if address == devices[-1].address:
                router_probed.append(waited.loop())
            return await super().probe(address, timeout)

    prober = Prober()
    prober.down = {d.address for d in failing} | {devices[-1].address}
    engine = Engine(devices, prober, config(interval=8.0, timeout=0.05, confirm_spacing=0.01))
    sub = engine.bus.subscribe("t", samples=False)  # transitions are never dropped
    waited = Waited()
    task = asyncio.create_task(engine.run())
    started = time.monotonic()
    # 0.4 s quiet; 30 s of the loop's own time (not counting its waits for a CPU): a thread that
    # gets less than half a core cannot keep up with this schedule, and declares late.
    await wait_for(lambda: engine.trackers["b0000-rtr"].state is State.DOWN
                   and engine.state_counts[State.UNREACHABLE] == per, timeout=30.0)
    declared = time.monotonic() - started
    await wait_for(lambda: engine.state_counts[State.UNKNOWN] == 0, timeout=30.0)  # a whole round
    await stop(engine, task)
    events = collect(sub)
    first_router_probe = prober.order.index(devices[-1].address)
    assert first_router_probe > prober.order.index(failing[0].address)
    # Probed at once for its children, long before the schedule's turn (last of the round): in
    # the first half of the round's 8 s, plus what the loop waited for a CPU by then (the schedule
    # went on meanwhile), and never in its last tenth.
    late = min(0.5 + router_probed[0] / 8.0, 0.9)
    assert first_router_probe < len(devices) * late, (first_router_probe, declared, router_probed[0])
    assert engine.checks_for_dependencies == 1
    changes = [t for t in events if isinstance(t, Transition)
               and (t.from_state is not State.UNKNOWN or t.to_state is not State.UP)]
    assert sorted((t.device, t.to_state) for t in changes) == sorted(
        [("b0000-rtr", State.DOWN)] + [(d.name, State.UNREACHABLE) for d in failing])


# -- the tracker's rules -----------------------------------------------------------------------

def tracker(state: State) -> DeviceTracker:
    t = DeviceTracker(dev("x", 0, "p"), StateConfig())
    t.state = state
    return t


def test_tracker_unreachable_rules() -> None:
    now = datetime.now(UTC)
    t = tracker(State.UP)
    move, _ = t.apply_check(False, now, now, 0.0, None, unreachable=True)
    assert move is not None and move.to_state is State.UNREACHABLE and t.down_since == now
    move, _ = t.apply_check(False, now, now, 1.0, None, unreachable=True)
    assert move is None  # still behind its parents
    move, _ = t.apply_check(False, now, now, 2.0, None)
    assert move is not None and (move.from_state, move.to_state) == (State.UNREACHABLE, State.DOWN)
    assert t.down_since == now  # the same outage
    move, _ = t.apply_check(False, now, now, 3.0, None, unreachable=True)
    assert move is None and t.state is State.DOWN  # DOWN on its own evidence stays DOWN
    move, _ = t.apply_check(True, now, now, 4.0, 1.0)
    assert move is not None and move.to_state is State.UP and t.down_since is None


async def test_an_open_unreachable_outage_seeds_unreachable_and_the_first_check_judges_again() -> None:
    """At a start the history's open outages seed their devices: an unreachable one comes back
    UNREACHABLE (not DOWN); its first failure, once its router answers, makes it DOWN."""
    router, atm = dev("rtr", 0, interval=3600.0), dev("atm", 1, "rtr", interval=3600.0)
    since = datetime(2026, 12, 6, 2, 0, tzinfo=UTC)
    prober = FakeProber()
    engine = Engine([router, atm], prober, config())
    engine.seed_outages({"atm": since}, unreachable={"atm"})
    assert engine.trackers["atm"].state is State.UNREACHABLE and engine.trackers["atm"].down_since == since
    assert engine.state_counts[State.UNREACHABLE] == 1 and engine.state_counts[State.UNKNOWN] == 1
    prober.down = {router.address, atm.address}
    sub = engine.bus.subscribe("t", samples=False)
    assert (await engine.probe_now("atm")).state is State.UNREACHABLE  # its router probed: DOWN
    assert moves(collect(sub), "atm") == []
    prober.down = {atm.address}
    assert (await engine.probe_now("rtr")).ok  # the router is back: atm is checked at once
    await wait_for(lambda: engine.trackers["atm"].state is State.DOWN)
    assert moves(collect(sub), "atm") == [(State.UNREACHABLE, State.DOWN)]
    assert engine.trackers["atm"].down_since == since
