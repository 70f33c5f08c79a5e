"""CPU per check of the ICMP engine alone: Engine + IcmpProber to N loopback devices (127.x), with
two waiting consumers on the bus as `wardtui serve` has (store writer, live feed), no store, no
Redis. Prints process CPU seconds per 10,000 checks over a window after a warm-up, and the
engine's own figures (skipped, lag, drops). Run as root (raw ICMP):

    python bench/engine_cpu.py --devices 20000 --interval 2 --warmup 5 --seconds 20
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from poller.engine import Engine, EngineConfig  # noqa: E402
from poller.generate import loopback  # noqa: E402
from poller.icmp import IcmpProber  # noqa: E402
from poller.inventory import Device  # noqa: E402


def cpu() -> float:
    u = resource.getrusage(resource.RUSAGE_SELF)
    return u.ru_utime + u.ru_stime


def user() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_utime


async def consume(engine: Engine, name: str, batch: int) -> None:
    sub = engine.bus.subscribe(name, maxsize=400_000, sample_batch=batch)
    while True:
        await sub.get_batch()
        await asyncio.sleep(0.05)


async def main(args: argparse.Namespace) -> dict[str, float]:
    devices = [Device(name=f"d{i}", address=loopback(i), branch="b", region="r", type="router")
               for i in range(args.devices)]
    prober = IcmpProber()
    prober.open((4,))
    engine = Engine(devices, prober, EngineConfig(interval=args.interval))
    consumers = [asyncio.create_task(consume(engine, "store", 1000)),
                 asyncio.create_task(consume(engine, "feed", 5000))]
    run = asyncio.create_task(engine.run())
    await asyncio.sleep(args.warmup)
    c0, u0, n0, t0 = cpu(), user(), engine.checks_done, time.monotonic()
    s0 = engine.scheduler.skipped
    await asyncio.sleep(args.seconds)
    c1, u1, n1, t1 = cpu(), user(), engine.checks_done, time.monotonic()
    g = engine.last_gauges
    engine.stop()
    await run
    for task in consumers:
        task.cancel()
    prober.close()
    checks = n1 - n0
    return {"devices": args.devices, "interval": args.interval, "checks": checks,
            "checks_per_s": round(checks / (t1 - t0), 1),
            "cpu_s_per_10k": round((c1 - c0) / checks * 10_000, 4),
            "user_s_per_10k": round((u1 - u0) / checks * 10_000, 4),
            "cpu_pct": round(100 * (c1 - c0) / (t1 - t0), 1),
            "skipped": engine.scheduler.skipped - s0,
            "lag_p99_ms": round(g.lag_p99_ms, 2) if g else None,
            "rcvbuf_drops": g.rcvbuf_drops if g else None,
            "up": g.devices_up if g else None, "down": g.devices_down if g else None}


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--devices", type=int, default=20_000)
    p.add_argument("--interval", type=float, default=2.0)
    p.add_argument("--warmup", type=float, default=5.0)
    p.add_argument("--seconds", type=float, default=20.0)
    print(json.dumps(asyncio.run(main(p.parse_args()))), flush=True)
