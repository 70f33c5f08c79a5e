"""What one attached viewer costs, and what the publisher costs beside it: two copies of wardtui
(--code DIR ..., e.g. a baseline checkout and this one) measured in turn in one run.

A private redis-server on a free loopback port. For each repeat, for each code in turn: the
publisher (bench/_viewer_cpu_service.py: poller.feed.Publisher of that code over a scripted engine,
--devices devices, --churn of them changing state each second) and --viewers headless viewers
(that code's bench/_feed_viewer.py: a LiveFeed each, as bench/feed.py's); after they attach and
--settle seconds, --window seconds measured: the CPU each viewer process and the publisher used
(/proc/PID/stat), Redis's (INFO cpu), the transitions the viewers applied and their latency from
the stream ID's time. Then everything of that code stops and the next code starts on a new site.

    python bench/viewer_cpu.py --code /tmp/base --code . [--devices 100000] [--repeats 3]

At 100,000 devices take the lock: flock /tmp/wardtui-bench.lock python bench/viewer_cpu.py ...
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.feed import RedisServer  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")


def cpu_s(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        parts = f.read().rpartition(")")[2].split()
    return (int(parts[11]) + int(parts[12])) / TICK  # utime, stime


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(q / 100 * len(values)))]


def one(code: Path, label: str, site: str, redis: RedisServer, tmp: Path,
        args: argparse.Namespace) -> dict[str, Any]:
    stats = tmp / f"{site}-service.jsonl"
    service = subprocess.Popen(
        [sys.executable, str(ROOT / "bench" / "_viewer_cpu_service.py"), "--code", str(code),
         "--redis", redis.url, "--site", site, "--devices", str(args.devices), "--churn", str(args.churn),
         "--stats", str(stats)],
        stdout=(tmp / f"{site}-service.log").open("w"), stderr=subprocess.STDOUT)
    viewers: list[tuple[subprocess.Popen[str], Path]] = []
    try:
        deadline = time.monotonic() + 60
        while not redis.client.exists(f"wardtui:{{{site}}}:snapshot"):
            if time.monotonic() > deadline or service.poll() is not None:
                raise SystemExit(f"{label}: no snapshot; see {tmp}/{site}-service.log")
            time.sleep(0.2)
        time.sleep(2.0)
        for k in range(args.viewers):
            out = tmp / f"{site}-viewer{k}.json"
            proc = subprocess.Popen([sys.executable, str(code / "bench" / "_feed_viewer.py"),
                                     "--redis", redis.url, "--site", site, "--name", f"{label}{k}",
                                     "--out", str(out)],
                                    stdout=subprocess.PIPE, stderr=(tmp / f"{site}-viewer{k}.log").open("w"),
                                    text=True)
            viewers.append((proc, out))
        for proc, _ in viewers:
            assert proc.stdout is not None
            if proc.stdout.readline().strip() != "attached":
                raise SystemExit(f"{label}: a viewer did not attach; see {tmp}")
        time.sleep(args.settle)
        t0 = time.time()
        v0 = [cpu_s(p.pid) for p, _ in viewers]
        s0, r0 = cpu_s(service.pid), redis.cpu_s()
        time.sleep(args.window)
        t1 = time.time()
        v1 = [cpu_s(p.pid) for p, _ in viewers]
        s1, r1 = cpu_s(service.pid), redis.cpu_s()
        for proc, _ in viewers:
            proc.send_signal(signal.SIGINT)
        results = []
        for proc, out in viewers:
            proc.wait(30)
            results.append(json.loads(out.read_text()))
    finally:
        for proc, _ in viewers:
            if proc.poll() is None:
                proc.kill()
        service.send_signal(signal.SIGINT)
        try:
            service.wait(30)
        except subprocess.TimeoutExpired:
            service.kill()
    span = t1 - t0
    applied, from_id, reloads, losses = 0, [], 0, 0
    for result in results:
        for feed in result["feeds"]:
            reloads += feed["reloads"] - 1
            losses += feed["losses"]
            for at, ms in zip(feed["applied"], feed["from_id_ms"], strict=True):
                if t0 <= at <= t1:
                    applied += 1
                    from_id.append(ms)
    return {"code": label, "viewer_cpu_pct": [100 * (b - a) / span for a, b in zip(v0, v1, strict=True)],
            "service_cpu_pct": 100 * (s1 - s0) / span, "redis_cpu_pct": 100 * (r1 - r0) / span,
            "transitions_per_s": applied / span / max(1, len(results)),
            "from_id_p50_ms": pct(from_id, 50), "from_id_p99_ms": pct(from_id, 99),
            "reloads": reloads, "losses": losses}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--code", type=Path, action="append", required=True,
                        help="a wardtui checkout to measure (give two or more to compare)")
    parser.add_argument("--devices", type=int, default=100_000)
    parser.add_argument("--churn", type=float, default=0.01)
    parser.add_argument("--viewers", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--settle", type=float, default=5.0)
    parser.add_argument("--window", type=float, default=30.0)
    args = parser.parse_args()
    codes = [c.resolve() for c in args.code]
    labels = [f"{k}:{c.name}" for k, c in enumerate(codes)]
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="viewer-cpu-") as tmp_name:
        tmp = Path(tmp_name)
        redis = RedisServer(tmp)
        try:
            for repeat in range(args.repeats):
                for k, (code, label) in enumerate(zip(codes, labels, strict=True)):
                    row = one(code, label, f"vc{repeat}-{k}", redis, tmp, args)
                    row["repeat"] = repeat
                    rows.append(row)
                    shown = {**row, "viewer_cpu_pct": [round(v, 2) for v in row["viewer_cpu_pct"]]}
                    print(json.dumps(shown, default=lambda v: round(v, 2)), flush=True)
        finally:
            redis.stop()
    print(f"\n{args.devices:,} devices, churn {args.churn:g}/s, {args.viewers} viewer(s), "
          f"{args.window:g} s windows, {args.repeats} repeats")
    print("| code | viewer CPU % of a core, per window (mean of viewers) | median | publisher CPU % (median)"
          " | Redis CPU % (median) | transitions/s per viewer | from stream ID p50 / p99 ms (median)"
          " | reloads |")
    print("|---|---|---|---|---|---|---|---|")
    for label in labels:
        mine = [r for r in rows if r["code"] == label]
        cpu = [statistics.fmean(r["viewer_cpu_pct"]) for r in mine]
        print(f"| {label} | {', '.join(f'{c:.2f}' for c in cpu)} | {statistics.median(cpu):.2f} | "
              f"{statistics.median(r['service_cpu_pct'] for r in mine):.1f} | "
              f"{statistics.median(r['redis_cpu_pct'] for r in mine):.1f} | "
              f"{statistics.median(r['transitions_per_s'] for r in mine):.0f} | "
              f"{statistics.median(r['from_id_p50_ms'] for r in mine):.0f} / "
              f"{statistics.median(r['from_id_p99_ms'] for r in mine):.0f} | "
              f"{sum(r['reloads'] for r in mine)} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
