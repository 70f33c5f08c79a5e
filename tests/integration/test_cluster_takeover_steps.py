"""A large takeover joins the engine a step at a time (wardtui/cluster.py ``STEP_DEVICES``): a
member alone on a site takes every shard at once, and its loop runs between the steps, so its
lease renewals go on whatever the takeover's size (at 200,000 devices, one step for ~190,000 of
them outlasted 0.9 x TTL at idle priority on a busy box, and the leases lapsed). A shard lost
while a takeover is under way is never started by it, even if it is gained again meanwhile.
One in-process member on PostgreSQL and the shared Redis (a site of its own), a fake prober.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from poller.cluster.leases import ShardsChanged
from poller.events import State, Transition
from poller.inventory import Device
from store.history import HistoryStore
from tests.fakes import FakeProber
from tests.integration.feed_fixtures import SHARED_REDIS, feed_site  # noqa: F401
from tests.integration.postgres import pg_url  # noqa: F401
from tests.runqueue import Waited, wait_until
from wardtui.cluster import ClusterMember, _steps
from wardtui.runtime import Options, Runtime

DEVICES = 3_000
STEP = 200  # devices a step at most: 3,000 devices of 256 shards (150 branches of 20) in ~20 steps


def test_steps_are_runs_of_whole_shards_within_the_budget() -> None:
    sizes = {0: 5, 1: 5, 2: 0, 3: 12, 4: 3, 5: 7}
    assert _steps([0, 1, 2, 3, 4, 5], sizes, 10) == [[0, 1, 2], [3], [4, 5]]
    assert _steps([], sizes, 10) == []
    assert _steps([2], sizes, 10) == [[2]]


async def test_a_member_alone_takes_every_shard_in_steps_and_skips_one_lost_meanwhile(
        pg_url: str, feed_site: str, tmp_path: Path) -> None:  # noqa: F811
    devices = [Device(f"d{i}", "127.0.0.1", f"b{i // 20}", "north", "router") for i in range(DEVICES)]
    runtime = Runtime(Options(db=pg_url, interval=5.0, spool=tmp_path / "spool"), prober=FakeProber(),
                      devices=devices, cluster=True)
    member = ClusterMember(runtime, SHARED_REDIS, feed_site, ttl=3.0)
    member.step_devices = STEP
    loop = asyncio.get_running_loop()
    turns = 0

    def turn() -> None:  # counts the loop's turns: did it run between two steps?
        nonlocal turns
        turns += 1
        if running:
            loop.call_soon(turn)

    steps: list[dict[str, Any]] = []
    apply = runtime.apply_polled
    victim: list[int] = []

    def recorded(*args: Any, **kwargs: Any) -> Any:
        before = len(runtime.engine.trackers)
        diff = apply(*args, **kwargs)
        steps.append({"added": len(diff.added), "turn": turns, "before": before})
        if diff.added and not victim:  # the takeover's first step: lose a shard of a later one
            later = sorted(set(member.leases.owned()) - set(member.current))
            victim.append(later[-1])
            member.leases.give_up(victim, "test")
            # ...and gained again at once, as a round's SET NX would: a takeover of its own.
            leases = member.leases
            leases._deadlines[victim[0]] = time.monotonic() + leases.config.ttl * 0.9
            leases._arm()
            leases._tell(ShardsChanged(leases.id, gained=frozenset(victim), reason="acquired"))
        return diff

    runtime.apply_polled = recorded  # type: ignore[method-assign]
    running = True
    loop.call_soon(turn)
    await runtime.start()
    # What another poller recorded before: d5 flapping (four changes in the last minute, UP
    # last), d2999 UP. The takeover seeds both, whichever step their shards fall in.
    now = datetime.now(UTC)
    flaps = [(State.UNKNOWN, State.UP), (State.UP, State.DOWN), (State.DOWN, State.UP),
             (State.UP, State.DOWN), (State.DOWN, State.UP)]
    await runtime.store.write_transitions(
        [Transition("d5", "127.0.0.1", a, b, now - timedelta(seconds=60 - 10 * i), None, None)
         for i, (a, b) in enumerate(flaps)]
        + [Transition("d2999", "127.0.0.1", State.UNKNOWN, State.UP, now - timedelta(seconds=30), None, 1.0)])
    engine = asyncio.create_task(runtime.engine.run())
    try:
        await member.start()
        waited = Waited()
        # Alone: it holds every shard (the one given up comes back in a later round).
        await wait_until(lambda: len(member.current) == member.map.count, 30, waited)
        await wait_until(lambda: len(runtime.engine.trackers) == DEVICES, 10, waited)
        assert runtime.engine.trackers["d5"].flapping  # its window seeded from the history
        assert runtime.engine.trackers["d2999"].state is State.UP
        # d6, never recorded, goes UNKNOWN -> UP at its first check (spread over the interval).
        await wait_until(lambda: runtime.engine.trackers["d6"].state is State.UP, 10, waited)
    finally:
        running = False
        await member.quiesce()
        runtime.engine.stop()
        await asyncio.gather(engine, return_exceptions=True)
        await runtime.close()
        await member.stop()
    takeover = [s for s in steps if s["added"]]
    sizes = [s["added"] for s in takeover]
    print(f"{len(takeover)} steps adding {sizes} devices")
    # Every shard taken at once (alone), its devices joined in steps of at most STEP devices
    # (whole shards: a branch of 20 is one shard's, two may share one), the loop turning between.
    assert takeover[0]["before"] == 0
    assert all(0 < n <= STEP for n in sizes), sizes
    assert len(takeover) >= DEVICES // STEP
    assert all(b["turn"] > a["turn"] for a, b in itertools.pairwise(takeover)), takeover
    assert sum(sizes) == DEVICES  # every device joined once
    # The shard lost during the first takeover (and gained again at once) was not started by it:
    # its epoch raised by that take has no tenure; it was polled from its own takeover, at the
    # next epoch.
    shard = victim[0]
    assert any(member.shard(d) == shard for d in devices)
    others = next(s for s in member.tenures if s != shard)
    assert [e for _, e in member.tenures[shard]] == [member.tenures[others][0][1] + 1], member.tenures
    # Seeded UP, not UNKNOWN: no transition of theirs was recorded by the takeover.
    history = HistoryStore(pg_url)
    await history.open()
    try:
        assert len(await history.transitions("d5")) == len(flaps)
        assert len(await history.transitions("d2999")) == 1
        assert len(await history.transitions("d6")) == 1  # never recorded: UNKNOWN -> UP here
    finally:
        await history.close()
