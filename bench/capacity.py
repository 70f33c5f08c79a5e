"""Capacity: the largest device count held at a 10 s interval with zero skipped checks and lag p99 < 1 s.

Runs the whole headless stack (real ICMP prober on loopback, engine, SQLite store writer)
once per size, each in a fresh process, and records skipped checks, lag, CPU and RSS.
Run as root: python bench/capacity.py --devices 10000,25000,50000,75000 --duration 60
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._report import write_section  # noqa: E402


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def _one(devices: int, duration: float, interval: float, workdir: Path) -> dict[str, float]:
    from poller.events import Gauges
    from poller.generate import bank_rows, write_csv
    from wardtui.process import POLL
    from wardtui.runtime import Options, Runtime

    inventory = workdir / "inv.csv"
    with inventory.open("w") as out:
        write_csv(out, bank_rows(devices))
    # As `wardtui poll` runs it: the freeze once the store has started, and after the first round.
    runtime = Runtime(Options(inventory=inventory, db=f"sqlite:///{workdir}/h.db", interval=interval),
                      process=POLL)
    sub = runtime.engine.bus.subscribe("bench", maxsize=1_000_000, sample_batch=10_000)
    gauges: list[Gauges] = []

    async def collect() -> None:
        while batch := await sub.get_batch():
            gauges.extend(e for e in batch if isinstance(e, Gauges))

    collector = asyncio.create_task(collect())
    await runtime.start()
    runtime.settle_after_first_round()  # as wardtui poll and serve do (wardtui/headless.py)
    cpu0, t0 = time.process_time(), time.monotonic()
    await runtime.engine.run(duration)
    cpu, wall = time.process_time() - cpu0, time.monotonic() - t0
    rss = _rss_mb()
    writer_dropped = runtime.writer.dropped if runtime.writer else -1
    await runtime.close()
    sub.close()
    await collector
    steady = [g for g in gauges if (g.at - gauges[0].at).total_seconds() >= interval] or gauges
    last = gauges[-1]
    return {"devices": devices, "skipped": last.skipped, "down": last.devices_down,
            "lag_p99_ms": max(g.lag_p99_ms for g in steady), "lag_p50_ms": max(g.lag_p50_ms for g in steady),
            "checks_per_s": sum(g.checks_per_s for g in steady) / len(steady),
            "cpu_pct": 100 * cpu / wall, "rss_mb": rss,
            "maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "rcvbuf_drops": last.rcvbuf_drops, "store_queue_max": max(g.store_queue for g in gauges),
            # The writer keeps up when its queue at the end is no more than ~2 s of checks.
            "store_queue_end": max(g.store_queue for g in gauges[-len(gauges) // 4:]),
            "writer_dropped": writer_dropped, "events_dropped": last.extra.get("events_dropped", 0)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--devices", default="10000,25000,50000,75000")
    parser.add_argument("--duration", type=float, default=60.0)
    parser.add_argument("--interval", type=float, default=10.0)
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    if args.one:
        with tempfile.TemporaryDirectory() as tmp:
            print(json.dumps(asyncio.run(_one(args.one, args.duration, args.interval, Path(tmp)))))
        return 0
    results = []
    for n in (int(x) for x in args.devices.split(",")):
        proc = subprocess.run([sys.executable, __file__, "--one", str(n), "--duration", str(args.duration),
                               "--interval", str(args.interval)], capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            print(proc.stderr, file=sys.stderr)
            return 1
        result = json.loads(proc.stdout.strip().splitlines()[-1])
        print(result, flush=True)
        results.append(result)
    held = [r for r in results if r["skipped"] == 0 and r["lag_p99_ms"] < 1000 and r["down"] == 0
            and r["writer_dropped"] == 0 and r["store_queue_end"] <= 2 * r["checks_per_s"] + 1000]
    rows = ["| devices | checks/s | skipped | lag p50 ms | lag p99 ms (worst second) | CPU % of one core "
            "| RSS MB | rcvbuf drops | store queue max / last quarter | samples dropped |",
            "|---|---|---|---|---|---|---|---|---|---|"]
    rows += [f"| {r['devices']:,} | {r['checks_per_s']:.0f} | {r['skipped']} | {r['lag_p50_ms']:.1f} | "
             f"{r['lag_p99_ms']:.1f} | {r['cpu_pct']:.0f} | {r['rss_mb']:.0f} | {r['rcvbuf_drops']} | "
             f"{r['store_queue_max']} / {r['store_queue_end']} | {r['writer_dropped']} |" for r in results]
    best = max((r["devices"] for r in held), default=0)
    body = (f"### Capacity at a {args.interval:g} s interval for {args.duration:g} s\n\n"
            f"Command (as root): `python bench/capacity.py --devices {args.devices} "
            f"--duration {args.duration:g}`\n\n"
            "Whole headless stack: real ICMP to loopback, engine, SQLite store writer, one process.\n\n"
            + "\n".join(rows) + "\n\n**Largest count held (zero skipped, lag p99 < 1 s, no false DOWN, "
            f"store writer keeping up: queue in the last quarter <= 2 s of checks, nothing dropped): "
            f"{best:,} devices.**\n")
    print(body)
    if not args.no_write:
        write_section("capacity", body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
