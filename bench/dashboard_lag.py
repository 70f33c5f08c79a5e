"""Scheduling lag with the dashboard open: wardtui in a real terminal (tmux), N loopback devices.

Reads the engine's own "lag p99" gauge off the screen once a second after the first round,
beside the same figure from `wardtui poll` (no screen) over the same inventory in the same run.
Run as root: python bench/dashboard_lag.py [--devices 10000] [--seconds 20]
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._report import write_section  # noqa: E402

LAG = re.compile(r"lag p99 +([0-9.]+) ms")


def dashboard_lags(inventory: Path, db: Path, seconds: float, interval: float) -> list[float]:
    name = f"wardtui-bench-{int(time.time())}"
    command = (f"cd {ROOT} && env PYTHONPATH={ROOT} TERM=xterm-256color {sys.executable} -m wardtui "
               f"--inventory {inventory} --db sqlite:///{db} --interval {interval:g}")
    subprocess.run(["tmux", "new-session", "-d", "-s", name, "-x", "160", "-y", "50", command], check=True)
    try:
        time.sleep(interval + 4)  # the first round, and the gc.freeze after it
        lags = []
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            screen = subprocess.run(["tmux", "capture-pane", "-p", "-t", name], capture_output=True,
                                    text=True, check=True).stdout
            if match := LAG.search(screen):
                lags.append(float(match.group(1)))
            time.sleep(1.0)
        subprocess.run(["tmux", "send-keys", "-t", name, "q"], check=True)
        time.sleep(3)
        return lags
    finally:
        subprocess.run(["tmux", "kill-session", "-t", name], capture_output=True, check=False)


def headless_lags(inventory: Path, db: Path, seconds: float, interval: float) -> list[float]:
    proc = subprocess.run([sys.executable, "-m", "wardtui", "poll", "--inventory", str(inventory),
                           "--db", f"sqlite:///{db}", "--interval", f"{interval:g}", "--jsonl",
                           "--duration", f"{interval + 4 + seconds:g}"],
                          cwd=ROOT, capture_output=True, text=True, check=True,
                          env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    gauges = [json.loads(line) for line in proc.stdout.splitlines() if '"gauges"' in line]
    return [g["lag_p99_ms"] for g in gauges[int(interval + 4):]]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--devices", type=int, default=10_000)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--interval", type=float, default=10.0)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        inventory = Path(tmp) / "inv.csv"
        subprocess.run([sys.executable, "-m", "wardtui", "generate", "--devices", str(args.devices),
                        "-o", str(inventory)], cwd=ROOT, check=True, env={"PYTHONPATH": str(ROOT)})
        screen = dashboard_lags(inventory, Path(tmp) / "d.db", args.seconds, args.interval)
        plain = headless_lags(inventory, Path(tmp) / "h.db", args.seconds, args.interval)
    rows = ["| run | samples | lag p99 median ms | lag p99 worst ms |", "|---|---|---|---|"]
    for label, lags in (("dashboard (tmux 160x50)", screen), ("wardtui poll (no screen)", plain)):
        rows.append(f"| {label} | {len(lags)} | {statistics.median(lags):.1f} | {max(lags):.1f} |")
    body = (f"### Scheduling lag with the dashboard open, {args.devices:,} devices at {args.interval:g} s\n\n"
            f"Command (as root): `python bench/dashboard_lag.py --devices {args.devices} "
            f"--seconds {args.seconds:g}`\n\nThe engine's own lag p99 gauge (due -> sent, per one-second "
            "sample), read off the screen after the first round.\n\n" + "\n".join(rows) + "\n")
    print(body)
    if not args.no_write:
        write_section("dashboard-lag", body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
