"""Issue 14's first frame: `wardtui --redis URL --site NAME --db ...` attached to a service of
--devices, process start -> first device row painted.

A private redis-server and bench/feed.py's service (a separate process: real ICMP to 127.x
loopback, SQLite history, --churn of the devices changing state each second). Then:

- --repeat runs of the real command in a real terminal (tmux 160x50, bench/feed.py's
  tmux_first_frame): process start -> a device row in capture-pane; median and max printed;
- with --against a checkout (e.g. a worktree of main), every run is made with each, alternating,
  against the same service: the machine's load then weighs on both alike;
- --breakdown runs of a child process (this file with --inner) that times its own phases, wall
  and CPU: the imports, the attach (LiveFeed.attach through AttachedRuntime), and the app's start
  to its first frame with rows (headless, App.run_test at 160x50), as the command runs them.

At 100,000 devices the service needs about a core: run it alone (flock), as root:
    flock /tmp/wardtui-bench.lock python bench/first_frame.py --devices 100000 --repeat 5 \
        --against /tmp/wardtui-main
(the other checkout needs wardtui/cli/dashboard.py's attached_app, which the breakdown calls)
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def inner(url: str, db: str) -> None:
    """In a fresh process: the phases of `wardtui --redis` to a first frame with rows (JSON out)."""
    t0, c0 = time.perf_counter(), time.process_time()
    import gc
    import importlib.util

    # As the command's entry does, where it does (wardtui/start.py): the collector off from the
    # start, on again after the first frame.
    paused = importlib.util.find_spec("wardtui.start") is not None
    if paused:
        gc.disable()
    marks: dict[str, tuple[float, float]] = {}

    def mark(name: str) -> None:
        marks[name] = (time.perf_counter() - t0, time.process_time() - c0)

    import asyncio

    from wardtui.cli import build_parser
    mark("cli imports")
    args = build_parser().parse_args(["--redis", url, "--site", "bench", "--db", db])
    from wardtui.cli import dashboard
    mark("dashboard imports")
    sys.path.insert(0, str(ROOT))
    from bench.dashboard_keys import Frames, table
    from wardtui.attached import attach_or_none, site_from

    site = site_from(args.redis, args.site)
    assert site is not None and attach_or_none(site) is not None
    mark("live_service (+ the bench's and the app's imports)")
    found: dict[str, float] = {}

    async def run() -> None:
        app = dashboard.attached_app(site, args, True) if paused else dashboard.attached_app(site, args)
        mark("app made")
        frames = Frames(app)

        def painted() -> bool:
            # Marked at the frame itself: what the app runs right after it (the whole order,
            # the engine's start) is not the first frame's.
            shown = (app.screen is app.dashboard and table(app).row_count > 0
                     and bool(table(app).visible_rows()))
            if shown:
                mark("first frame")
            return shown

        first = frames.expect(painted)
        async with app.run_test(size=(160, 50)):
            await asyncio.wait_for(first, 60)
            rows = table(app).visible_rows()
            found["rows"] = len(rows)
            await app.action_quit()

    asyncio.run(run())
    print(json.dumps({"marks": marks, **found}))


def tmux_first_frame(root: Path, url: str, db: Path) -> float | None:
    """bench/feed.py's tmux_first_frame, once, of the code in ``root``."""
    from bench.feed import ROW, SITE

    name = f"wardtui-first-frame-{os.getpid()}"
    command = (f"cd {root} && env PYTHONPATH={root} TERM=xterm-256color {sys.executable} -m wardtui "
               f"--redis {url} --site {SITE} --db sqlite:///{db}")
    start = time.perf_counter()
    subprocess.run(["tmux", "new-session", "-d", "-s", name, "-x", "160", "-y", "50", command], check=True)
    try:
        while time.perf_counter() < start + 60:
            screen = subprocess.run(["tmux", "capture-pane", "-p", "-t", name], capture_output=True,
                                    text=True, check=False).stdout
            if ROW.search(screen):
                return time.perf_counter() - start
            time.sleep(0.02)
        return None
    finally:
        subprocess.run(["tmux", "send-keys", "-t", name, "q"], check=False)
        time.sleep(4)
        subprocess.run(["tmux", "kill-session", "-t", name], capture_output=True, check=False)


def breakdown(root: Path, url: str, db: Path) -> str:
    out = subprocess.run([sys.executable, __file__, "--inner", url, f"sqlite:///{db}"], cwd=root,
                         env={**os.environ, "PYTHONPATH": str(root)}, capture_output=True, text=True,
                         check=True).stdout
    result = json.loads(out.strip().splitlines()[-1])
    return (", ".join(f"{k} {w:.2f}/{c:.2f}" for k, (w, c) in result["marks"].items())
            + f"; rows on screen {result['rows']}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--devices", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=5, help="tmux runs")
    parser.add_argument("--breakdown", type=int, default=2, help="in-process breakdown runs")
    parser.add_argument("--interval", type=float, default=10.0)
    parser.add_argument("--churn", type=float, default=0.01)
    parser.add_argument("--down", type=float, default=0.05)
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--hold", type=float, default=0.0,
                        help="keep the service up this many seconds first (prints its URL and DB)")
    parser.add_argument("--against", type=Path, help="another checkout to measure alternately")
    parser.add_argument("--inner", nargs=2, metavar=("URL", "DB"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.inner:
        inner(*args.inner)
        return 0
    sys.path.insert(0, str(ROOT))
    from bench.feed import RedisServer, Service, generate, wait_live

    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        inventory = tmp / "inv.csv"
        generate(args.devices, inventory)
        redis_server = RedisServer(tmp)
        service = None
        try:
            service = Service(tmp, inventory, redis_server.url, args)
            wait_live(redis_server, service)
            time.sleep(args.interval + 3)  # the first round's burst behind it
            if args.hold:
                print(f"holding {args.hold:g} s: {redis_server.url} sqlite:///{service.db}", flush=True)
                time.sleep(args.hold)
            roots = {"this": ROOT, **({"against": args.against.resolve()} if args.against else {})}
            for _ in range(args.breakdown):
                for label, root in roots.items():
                    print(f"breakdown {label} (s from process start, wall / cpu): "
                          + breakdown(root, redis_server.url, service.db), flush=True)
            times: dict[str, list[float]] = {label: [] for label in roots}
            for _ in range(args.repeat):
                for label, root in roots.items():
                    took = tmux_first_frame(root, redis_server.url, service.db)
                    print(f"tmux {label}: {took}", flush=True)
                    if took is not None:
                        times[label].append(took)
        finally:
            if service is not None:
                service.stop()
            redis_server.stop()
    for label, values in times.items():
        if values:
            print(f"tmux first frame ({label}) at {args.devices:,} devices, {len(values)} runs: median "
                  f"{statistics.median(values):.2f} s, max {max(values):.2f} s; all: "
                  + ", ".join(f"{t:.2f}" for t in values))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
