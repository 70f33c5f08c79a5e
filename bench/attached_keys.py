"""bench/dashboard_keys.py for a dashboard attached to a service: first frame and key latency.

The service is bench/feed.py's (a separate process: Runtime + Publisher over real ICMP to 127.x
loopback, SQLite history, --down of the devices down and --churn of them changing state every
second, on a private redis-server); the dashboard is the real app attached to it (WardApp over
AttachedRuntime in this process, as `wardtui --redis URL --site NAME`), no other viewer. Keys are
posted and timed exactly as bench/dashboard_keys.py does (same sequence, same "reflected"), at
--devices and at the --baseline count in the same run; then --tmux runs of `wardtui --redis ...`
in a real terminal at --devices: process start -> first device row in capture-pane.

Run as root: python bench/attached_keys.py [--devices 100000] [--baseline 875] [--presses 60]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._report import write_section  # noqa: E402
from bench.dashboard_keys import Run, generate, pct, table_rows  # noqa: E402
from bench.feed import (  # noqa: E402
    RedisServer,
    Service,
    Window,
    attached_dashboard,
    settle,
    tmux_first_frame,
    wait_live,
)


def measure(n: int, tmp: Path, args: argparse.Namespace, tmux: list[float]) -> Run:
    inventory = tmp / f"inv{n}.csv"
    generate(n, inventory)
    redis_server = RedisServer(tmp)
    service = None
    try:
        service = Service(tmp, inventory, redis_server.url, args)
        wait_live(redis_server, service)
        time.sleep(args.interval + 5)
        settled = settle(service, 1000.0, args.settle)
        print(f"{n} devices: service settled {settled:.0f} s after its first round", flush=True)
        w = Window("attached")
        started = time.time()
        feed = asyncio.run(attached_dashboard(redis_server.url, service.db, args.presses, args.seed, 3.0, w))
        run = Run(n, args.churn)
        run.first_frame_s = w.first_frame_s
        run.latencies, run.timeouts = w.keys, w.timeouts
        run.seconds = w.seconds
        run.transitions = sum(1 for a in feed.applied if w.t0 <= a <= w.t1)
        records = service.records(started, w.t1)
        run.checks = round(statistics.median(r.get("checks_per_s", 0) for r in records) * w.seconds)
        lags = [r["lag_p99_ms"] for r in records if "lag_p99_ms" in r]
        print(f"  service lag p99 median {statistics.median(lags):.0f} ms", flush=True)
        if n == args.devices and args.tmux:
            tmux.extend(tmux_first_frame(redis_server.url, service.db, args.tmux))
            print("  tmux first frame s:", tmux, flush=True)
    finally:
        if service is not None:
            service.stop()
        redis_server.stop()
    return run


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--devices", type=int, default=100_000)
    parser.add_argument("--baseline", type=int, default=875, help="device count of the baseline (0: none)")
    parser.add_argument("--presses", type=int, default=60)
    parser.add_argument("--tmux", type=int, default=3)
    parser.add_argument("--interval", type=float, default=10.0)
    parser.add_argument("--churn", type=float, default=0.01)
    parser.add_argument("--down", type=float, default=0.05)
    parser.add_argument("--settle", type=float, default=180.0)
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    runs: list[Run] = []
    tmux: list[float] = []
    for n in [args.devices] + ([args.baseline] if args.baseline else []):
        with tempfile.TemporaryDirectory() as tmp:
            runs.append(measure(n, Path(tmp), args, tmux))
        for line in table_rows([runs[-1]]):
            print(line, flush=True)
    main_run = runs[0]
    lines = [f"### Attached dashboard: first frame and key latency, {args.devices:,} devices, "
             f"{args.churn:.0%} changing state each second",
             "",
             f"Command (as root): `python bench/attached_keys.py --devices {args.devices} --baseline "
             f"{args.baseline} --presses {args.presses} --tmux {args.tmux}` (defaults: --interval "
             f"{args.interval:g} --churn {args.churn:g} --down {args.down:g})",
             "",
             "The service is bench/feed.py's (separate process, real ICMP to 127.x, SQLite history, "
             f"{args.down:.0%} down, {args.churn:.0%} changing state each second, private redis-server); the "
             "dashboard is WardApp over AttachedRuntime in the bench's process, the only viewer, driven "
             "as bench/dashboard_keys.py drives the embedded one.",
             "",
             "| run | first frame s (Pilot: AttachedRuntime() -> attach -> rows painted) | "
             "transitions/s applied by the dashboard's feed |",
             "|---|---|---|"]
    for r in runs:
        lines.append(f"| {r.devices:,} devices | {r.first_frame_s:.2f} | {r.transitions / r.seconds:.0f} |")
    if tmux:
        lines += ["", f"Real terminal (tmux 160x50, `wardtui --redis URL --site NAME --db ...` at "
                  f"{args.devices:,} devices), process start -> first device row in capture-pane: "
                  + ", ".join(f"{t:.2f}" for t in tmux) + " s (target <= 1 s)."]
    lines += ["", *table_rows(runs), ""]
    kinds = [k for k in main_run.latencies if "debounce" not in k]
    all_ms = [ms for k in kinds for ms in main_run.latencies[k]]
    worst = max(kinds, key=lambda k: pct(main_run.latencies[k], 0.95))
    lines.append(f"**All keys at {args.devices:,} devices (debounced filter excluded): p50 "
                 f"{statistics.median(all_ms):.0f} ms, p95 {pct(all_ms, 0.95):.0f} ms; slowest kind "
                 f"'{worst}': p95 {pct(main_run.latencies[worst], 0.95):.0f} ms, max "
                 f"{max(main_run.latencies[worst]):.0f} ms** (target: every kind <= 100 ms at p95).")
    if len(runs) > 1:
        base = [ms for k, v in runs[1].latencies.items() if "debounce" not in k for ms in v]
        lines.append(f"Ratio of p95 to the {runs[1].devices:,}-device baseline in the same run: "
                     f"{pct(all_ms, 0.95) / pct(base, 0.95):.1f}x.")
    body = "\n".join(lines) + "\n"
    print(body)
    if not args.no_write:
        write_section("dashboard-keys-attached", body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
