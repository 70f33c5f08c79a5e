"""One poller process of bench/cluster.py: what `wardtui serve [--cluster]` runs (the same
Runtime and wardtui.service.serve, PostgreSQL history, the fenced sink and shard leases with
--cluster), with a fake prober that sends nothing: every probe is answered on the next turn of
the event loop with a 1 ms RTT (poller.prober.CallbackProber's path, no task per probe). So the
process's CPU is the engine, the state machine, the history writer and, with --cluster, the
shard leases and fencing: no network, no kernel ICMP. Writes a JSON line of its own
figures (every --stats-every seconds: CPU time, checks/s, lag, skipped, devices polled, cluster
gauges) to --stats.

Run by bench/cluster.py: python bench/_cluster_member.py --inventory INV --db postgresql://...
    --stats FILE [--cluster --redis URL --site S --lease-ttl 10] [--interval 10]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from poller.prober import ProbeCallback, ProbeReply  # noqa: E402
from wardtui.messages import log_for_service  # noqa: E402
from wardtui.process import POLL  # noqa: E402
from wardtui.runtime import Options, Runtime  # noqa: E402
from wardtui.service import ServeOptions, Service, serve, services_for  # noqa: E402

RTT_MS = 1.0


class InstantProber:
    """Answers every probe with ``RTT_MS``, on the loop's next turn; sends nothing."""

    mode = "fake"

    def __init__(self) -> None:
        self.sent = 0

    async def probe(self, address: str, timeout: float) -> ProbeReply:
        self.sent += 1
        await asyncio.sleep(0)
        return ProbeReply(time.time_ns(), time.monotonic(), RTT_MS)

    def start(self, address: str, timeout: float, callback: ProbeCallback, context: Any) -> None:
        self.sent += 1
        asyncio.get_running_loop().call_soon(callback, context, time.time_ns(), time.monotonic(),
                                             RTT_MS, None)

    def counters(self) -> dict[str, int]:
        return {"sent": self.sent, "received": self.sent, "rcvbuf_drops": 0, "send_errors": 0,
                "in_flight": 0}

    def close(self) -> None:
        pass


class Stats:
    """A service beside the others: a JSON line every ``every`` seconds."""

    name = "the bench's figures"

    def __init__(self, runtime: Runtime, path: Path, every: float) -> None:
        self.runtime = runtime
        self.path = path
        self.every = every
        self.task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.task = asyncio.get_running_loop().create_task(self.write())

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)

    async def write(self) -> None:
        engine = self.runtime.engine
        with self.path.open("a") as out:
            while True:
                await asyncio.sleep(self.every)
                usage = resource.getrusage(resource.RUSAGE_SELF)
                record: dict[str, Any] = {"t": time.time(), "pid": os.getpid(),
                                          "cpu_s": usage.ru_utime + usage.ru_stime,
                                          "rss_mb": usage.ru_maxrss / 1024, "polled": len(engine.trackers),
                                          "checks_done": engine.checks_done}
                g = engine.last_gauges
                if g is not None:
                    record.update({"checks_per_s": g.checks_per_s, "lag_p99_ms": g.lag_p99_ms,
                                   "skipped": g.skipped, "store_queue": g.store_queue,
                                   "up": g.devices_up, "down": g.devices_down,
                                   **{k: v for k, v in g.extra.items() if k.startswith("cluster_")}})
                out.write(json.dumps(record) + "\n")
                out.flush()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inventory", type=Path, required=True)
    parser.add_argument("--db", required=True)
    parser.add_argument("--stats", type=Path, required=True)
    parser.add_argument("--spool", type=Path, required=True)
    parser.add_argument("--interval", type=float, default=10.0)
    parser.add_argument("--cluster", action="store_true")
    parser.add_argument("--redis")
    parser.add_argument("--site", default="bench")
    parser.add_argument("--lease-ttl", type=float, default=10.0)
    parser.add_argument("--stats-every", type=float, default=1.0)
    args = parser.parse_args()
    log_for_service()
    options = Options(inventory=args.inventory, db=args.db, interval=args.interval, spool=args.spool)
    runtime = Runtime(options, prober=InstantProber(), process=POLL, kind="serve", cluster=args.cluster)
    serve_options = ServeOptions(args.inventory, args.redis if args.cluster else None, args.site,
                                 cluster=args.cluster, lease_ttl=args.lease_ttl)

    def services(rt: Runtime, opts: ServeOptions) -> list[Service]:
        return [*services_for(rt, opts), Stats(rt, args.stats, args.stats_every)]

    POLL.enter()
    print(f"member pid {os.getpid()}", flush=True)
    return asyncio.run(serve(runtime, serve_options, services))


if __name__ == "__main__":
    raise SystemExit(main())
