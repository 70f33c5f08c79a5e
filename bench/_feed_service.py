"""The service process of bench/feed.py: what `wardtui serve --redis` runs, built here from the
Runtime (real ICMP to the inventory's 127.x addresses, SQLite history) and poller.feed.Publisher,
with state churn made by a wrapper prober that turns chosen addresses' replies into timeouts
(loopback always answers otherwise). Writes one JSON line a second of its own figures (engine
gauges, the publisher's stats, its CPU time) to --stats. Imports neither textual nor rich.

Run by bench/feed.py (as root): python bench/_feed_service.py --inventory INV --db sqlite:///DB
    --redis redis://127.0.0.1:PORT --site SITE --stats FILE [--interval 10 --churn 0.01 --down 0.05]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import random
import resource
import signal
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from poller.feed import Publisher, ServiceInfo  # noqa: E402
from poller.live import Keys  # noqa: E402
from poller.prober import CLOSED, ProbeCallback, Prober, ProbeReply  # noqa: E402
from wardtui.process import POLL  # noqa: E402
from wardtui.runtime import Options, Runtime, load_devices, open_prober  # noqa: E402


class ChurnProber:
    """Wraps a real prober: addresses in :attr:`down` still get their echo request, but the reply
    is turned into a timeout (returned when the timeout would have run out, as a real one is)."""

    def __init__(self, inner: Prober) -> None:
        self.inner = inner
        self.down: set[str] = set()
        self.turned = 0
        self.mode = getattr(inner, "mode", "icmp")

    async def probe(self, address: str, timeout: float) -> ProbeReply:
        reply = await self.inner.probe(address, timeout)
        if address not in self.down:
            return reply
        left = timeout - (time.monotonic() - reply.sent_mono)
        if left > 0:
            await asyncio.sleep(left)
        self.turned += 1
        return ProbeReply(reply.sent_ns, reply.sent_mono, None)

    def start(self, address: str, timeout: float, callback: ProbeCallback, context: Any) -> None:
        """The engine's callback path (poller.prober.CallbackProber), turned the same way."""
        self.inner.start(address, timeout, self._turn, (address, timeout, callback, context))  # type: ignore[attr-defined]

    def _turn(self, ctx: tuple[str, float, ProbeCallback, Any], sent_ns: int, sent_mono: float,
              rtt_ms: float | None, error: str | None) -> None:
        address, timeout, callback, context = ctx
        if address not in self.down or error is CLOSED:
            callback(context, sent_ns, sent_mono, rtt_ms, error)
            return
        left = max(0.0, timeout - (time.monotonic() - sent_mono))
        asyncio.get_running_loop().call_later(left, self._turned, callback, context, sent_ns, sent_mono)

    def _turned(self, callback: ProbeCallback, context: Any, sent_ns: int, sent_mono: float) -> None:
        self.turned += 1
        callback(context, sent_ns, sent_mono, None, None)

    def counters(self) -> dict[str, int]:
        return self.inner.counters()

    def close(self) -> None:
        self.inner.close()


def start_down(prober: ChurnProber, addresses: list[str], fraction: float, rng: random.Random) -> None:
    prober.down.update(rng.sample(addresses, round(len(addresses) * fraction)))


async def churn(prober: ChurnProber, addresses: list[str], fraction: float, rng: random.Random,
                settle: float) -> None:
    """As bench/dashboard_keys.py: every second ``fraction`` of the devices change state, half
    failing and as many of those down for ``settle`` seconds recovering (so each change is seen
    by a check: a transition), the number down steady."""
    per_side = max(1, round(len(addresses) * fraction / 2))
    down_at = dict.fromkeys(prober.down, time.monotonic() - settle)
    while True:
        now = time.monotonic()
        settled = [a for a, at in down_at.items() if now - at >= settle]
        recovering = rng.sample(settled, min(per_side, len(settled)))
        failing = [a for a in rng.sample(addresses, per_side * 2) if a not in prober.down][:per_side]
        prober.down.difference_update(recovering)
        prober.down.update(failing)
        for address in recovering:
            del down_at[address]
        down_at.update(dict.fromkeys(failing, now))
        await asyncio.sleep(1.0)


def run_delays() -> tuple[float, float]:
    """Seconds this process's main thread, and all its threads, have waited on a CPU's run queue
    (``/proc/self/task/*/schedstat``, field 2): the kernel's share of the lag, apart from ours."""
    main = total = 0.0
    for task in Path("/proc/self/task").iterdir():
        try:
            waited = int((task / "schedstat").read_text().split()[1]) / 1e9
        except (OSError, IndexError, ValueError):
            continue  # a thread gone meanwhile; no schedstats in this kernel
        total += waited
        if task.name == str(os.getpid()):
            main = waited
    return main, total


async def write_stats(path: Path, runtime: Runtime, publisher: Publisher, prober: ChurnProber) -> None:
    with path.open("a") as out:
        while True:
            await asyncio.sleep(1.0)
            g = runtime.engine.last_gauges
            usage = resource.getrusage(resource.RUSAGE_SELF)
            s = publisher.stats
            main_wait, all_wait = run_delays()
            record = {"t": time.time(), "cpu_s": usage.ru_utime + usage.ru_stime,
                      "run_delay_main_s": main_wait, "run_delay_all_s": all_wait,
                      "rss_mb": usage.ru_maxrss / 1024, "snapshot_bytes": s.snapshot_bytes,
                      "snapshot_ms": s.snapshot_ms, "snapshots": s.snapshots,
                      "events": s.events, "events_lost": s.events_lost, "viewers": s.viewers,
                      "losses": s.losses, "turned": prober.turned}
            if g is not None:
                record.update({"gauges_at": g.at.timestamp(), "lag_p50_ms": g.lag_p50_ms,
                               "lag_p99_ms": g.lag_p99_ms, "checks_per_s": g.checks_per_s,
                               "skipped": g.skipped, "down": g.devices_down, "up": g.devices_up,
                               "unknown": g.devices_unknown, "store_queue": g.store_queue,
                               "rcvbuf_drops": g.rcvbuf_drops,
                               "events_dropped": g.extra.get("events_dropped", 0.0)})
            out.write(json.dumps(record) + "\n")
            out.flush()


async def serve(args: argparse.Namespace) -> int:
    rng = random.Random(args.seed)
    devices = load_devices(args.inventory)
    prober = ChurnProber(open_prober(devices))
    runtime = Runtime(Options(inventory=args.inventory, db=args.db, interval=args.interval),
                      prober=prober, devices=devices, process=POLL, kind="serve")
    engine = runtime.engine
    publisher = Publisher(engine, args.redis, Keys(args.site), ServiceInfo.here("bench", len(devices)))
    engine.companions.append(publisher)
    engine.gauge_sources.append(publisher.gauges)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, engine.stop)
    await runtime.start()
    runtime.settle_after_first_round()  # as wardtui.service.serve does
    addresses = [d.address for d in devices]
    start_down(prober, addresses, args.down, rng)
    settle = args.interval + (runtime.options.confirm_probes + 2) * max(runtime.options.timeout,
                                                                       runtime.options.confirm_spacing)
    tasks = [asyncio.create_task(churn(prober, addresses, args.churn, rng, settle)),
             asyncio.create_task(write_stats(args.stats, runtime, publisher, prober))]
    try:
        await engine.run()
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        lost = await runtime.close()
    return 1 if lost else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--inventory", type=Path, required=True)
    parser.add_argument("--db", required=True)
    parser.add_argument("--redis", required=True)
    parser.add_argument("--site", required=True)
    parser.add_argument("--stats", type=Path, required=True)
    parser.add_argument("--interval", type=float, default=10.0)
    parser.add_argument("--churn", type=float, default=0.01)
    parser.add_argument("--down", type=float, default=0.05)
    parser.add_argument("--seed", type=int, default=5)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="service %(levelname)s %(name)s: %(message)s")
    POLL.enter()
    print(f"service pid {os.getpid()}", flush=True)
    return asyncio.run(serve(args))


if __name__ == "__main__":
    raise SystemExit(main())
