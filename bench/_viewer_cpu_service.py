"""The publishing side of bench/viewer_cpu.py: poller.feed.Publisher over a scripted engine (no
probes, no history), so that what a viewer costs can be measured without a poller beside it.

The engine is a stand-in with what the Publisher reads (bus, trackers, last_gauges,
inventory_version): --devices devices, --down of them down at the start, and every second --churn
of them changing state (half failing, as many recovering), published on the bus as the engine
would publish them: in --bursts bursts a second (the engine's loop publishes what its callbacks
found between two turns), each burst the transitions of that slice of the second and the check
results of 1/--interval of the devices (which only mark rows for the snapshot). One Gauges a
second (the engine's, with an ``extra`` of the size the service's carries).

``--code DIR`` runs the Publisher of another copy of wardtui (a baseline to compare with); this
file itself only needs poller's public names. Writes one JSON line a second to --stats (CPU
seconds of this process, the publisher's counters).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import resource
import signal
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path


def _args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--code", type=Path, default=Path(__file__).resolve().parent.parent)
    parser.add_argument("--redis", required=True)
    parser.add_argument("--site", required=True)
    parser.add_argument("--devices", type=int, default=100_000)
    parser.add_argument("--churn", type=float, default=0.01)
    parser.add_argument("--down", type=float, default=0.05)
    parser.add_argument("--interval", type=float, default=10.0)
    parser.add_argument("--bursts", type=int, default=100)
    parser.add_argument("--stats", type=Path, required=True)
    parser.add_argument("--seed", type=int, default=1)
    return parser.parse_args()


ARGS = _args()
sys.path.insert(0, str(ARGS.code.resolve()))

from poller.bus import EventBus  # noqa: E402
from poller.events import CheckResult, Gauges, State, Transition  # noqa: E402
from poller.feed import Publisher, ServiceInfo  # noqa: E402
from poller.inventory import Device  # noqa: E402
from poller.live import Keys  # noqa: E402


class Tracker:
    """What Columns.set_row reads of a DeviceTracker."""

    __slots__ = ("device", "down_since", "last_change", "last_rtt_ms", "state")

    flapping = False
    avg_rtt_ms = 0.05
    jitter_ms = 0.01
    loss_pct = 0.0

    def __init__(self, device: Device) -> None:
        self.device = device
        self.state = State.UP
        self.down_since: datetime | None = None
        self.last_change: datetime | None = None
        self.last_rtt_ms: float | None = 0.04


class Engine:
    def __init__(self, devices: list[Device]) -> None:
        self.bus = EventBus()
        self.trackers = {d.name: Tracker(d) for d in devices}
        self.inventory_version = 0
        self.last_gauges: Gauges | None = None

    async def probe_now(self, name: str) -> CheckResult:
        raise KeyError(name)


def gauges(engine: Engine, extra: dict[str, float], down: int) -> Gauges:
    return Gauges(datetime.now(UTC), len(engine.trackers) - down, down, 0, 0, 10_000.0, 10_000.0, 120,
                  0, 0, 0, 1.2, 25.0, 0.0, 0, 0, 0, dict(extra))


async def drive(engine: Engine, publisher: Publisher, args: argparse.Namespace) -> None:
    rng = random.Random(args.seed)
    trackers = list(engine.trackers.values())
    n = len(trackers)
    down = set(rng.sample(range(n), round(n * args.down)))
    now = datetime.now(UTC)
    for i in down:
        t = trackers[i]
        t.state, t.down_since, t.last_change, t.last_rtt_ms = State.DOWN, now, now, None
    per_side = max(1, round(n * args.churn / 2))
    checks_per_burst = max(1, round(n / args.interval / args.bursts))
    extra = {f"gauge_{k:02d}": 1234.5678 + k for k in range(30)}
    cursor = 0
    tick = 1.0 / args.bursts
    next_burst = time.monotonic()
    bus = engine.bus
    while True:
        # A new second: who fails and who recovers, spread over its bursts.
        recovering = rng.sample(sorted(down), min(per_side, len(down)))
        failing = [i for i in rng.sample(range(n), per_side * 2) if i not in down][:per_side]
        changes = [(i, False) for i in recovering] + [(i, True) for i in failing]
        rng.shuffle(changes)
        engine.last_gauges = gauges(engine, {**extra, **publisher.gauges()}, len(down))
        bus.publish(engine.last_gauges)
        for k in range(args.bursts):
            at = datetime.now(UTC)
            for i, fail in changes[k * len(changes) // args.bursts:(k + 1) * len(changes) // args.bursts]:
                t = trackers[i]
                d = t.device
                if fail:
                    down.add(i)
                    since = at - timedelta(seconds=0.6)
                    bus.publish(Transition(d.name, d.address, State.UP, State.DOWN, at, since, None))
                    t.state, t.down_since, t.last_change, t.last_rtt_ms = State.DOWN, since, at, None
                else:
                    down.discard(i)
                    bus.publish(Transition(d.name, d.address, State.DOWN, State.UP, at, None, 0.05))
                    t.state, t.down_since, t.last_change, t.last_rtt_ms = State.UP, None, at, 0.05
            for _ in range(checks_per_burst):
                t = trackers[cursor]
                cursor = (cursor + 1) % n
                d = t.device
                ok = t.state is State.UP
                bus.publish(CheckResult(d.name, d.address, at, 1, int(ok), 0.05 if ok else None, t.state))
            next_burst += tick
            await asyncio.sleep(max(0.0, next_burst - time.monotonic()))


async def write_stats(path: Path, publisher: Publisher) -> None:
    with path.open("a") as out:
        while True:
            await asyncio.sleep(1.0)
            usage = resource.getrusage(resource.RUSAGE_SELF)
            s = publisher.stats
            out.write(json.dumps({"t": time.time(), "cpu_s": usage.ru_utime + usage.ru_stime,
                                  "events": s.events, "events_lost": s.events_lost,
                                  "snapshots": s.snapshots, "snapshot_ms": s.snapshot_ms,
                                  "viewers": s.viewers, "losses": s.losses}) + "\n")
            out.flush()


async def main(args: argparse.Namespace) -> None:
    devices = [Device(f"dev-{i:06d}", f"127.{1 + i // 65536}.{i // 256 % 256}.{i % 256}",
                      f"branch-{i // 100:04d}", f"region-{i // 10_000}", "router", line=i + 1)
               for i in range(args.devices)]
    engine = Engine(devices)
    publisher = Publisher(engine, args.redis, Keys(args.site),  # type: ignore[arg-type]
                          ServiceInfo.here("bench", len(devices)))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    tasks = [asyncio.create_task(publisher.run()), asyncio.create_task(drive(engine, publisher, args)),
             asyncio.create_task(write_stats(args.stats, publisher))]
    await stop.wait()
    publisher.stop()
    for task in tasks[1:]:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


if __name__ == "__main__":
    asyncio.run(main(ARGS))
