"""The live feed on Redis at N devices: a service publishing, viewers attached, what it costs.

A private redis-server on a free loopback port (started and stopped here). The service is a
separate process (bench/_feed_service.py: Runtime + poller.feed.Publisher, as `wardtui serve
--redis` runs them): real ICMP to the inventory's 127.x loopback addresses every --interval
seconds, SQLite history in a temp dir, and churn made by a wrapper prober that turns chosen
addresses' replies into timeouts: --down of the devices down from the start, and every second
--churn of them changing state (half fail, as many recover).

After the first round, --cycles times: a quiet window (no viewer) of --quiet seconds, then a
viewers window: --viewers headless viewer processes (bench/_feed_viewer.py, one LiveFeed each)
attach, then a real attached dashboard in this process (WardApp over AttachedRuntime, as
`wardtui --redis URL --site NAME`, driven as bench/dashboard_keys.py drives it: first frame,
then every kind of key). A last quiet window closes the run. Then --tmux times, with no other
viewer: `wardtui --redis URL --site NAME` started in a real terminal (tmux 160x50), process
start -> first device row in capture-pane.

Measured, per window: the service's lag p99 (its engine's per-second gauge; viewers vs quiet in
the same run), event latency at every viewer for every transition (from Transition.at, when the
service's engine established it, and from its stream entry ID's time, to when the viewer applied
it), the dashboard's keys, the snapshot's size and build time (Publisher.stats), Redis's CPU
(INFO cpu deltas) and memory (INFO memory, MEMORY USAGE of the site's keys).

Run as root: python bench/feed.py [--devices 100000] [--viewers 20] [--cycles 3] [--presses 30]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import os
import random
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import redis  # noqa: E402

from bench._feed_report import pct, summarize  # noqa: E402
from bench._feed_viewer import Latencies, instrument  # noqa: E402
from bench._report import write_section  # noqa: E402

SITE = "bench"
ROW = re.compile(r"127\.1\.\d+\.\d+")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Slices:
    """The CPU layout systemd gives a NOC box (cgroup v1 ``cpu`` controller, as root): a
    ``system`` and a ``user`` group of equal weight (system.slice and user.slice), the service in
    ``system/wardtui`` at packaging/wardtui.service's CPUWeight=400 (cpu.shares 4096) beside
    Redis at the default weight, and this process (the attached dashboard), the headless viewers
    and the tmux runs in ``user``, as operators' SSH sessions are. With ``own_slice``, the layout
    of packaging/wardtui.slice: a third top-level group ``wardtui`` (CPUWeight=400, shares 4096)
    holding the service (4096) and Redis (1024), PostgreSQL left in ``system``. Removed at the
    end."""

    ROOT = Path("/sys/fs/cgroup/cpu")

    def __init__(self, own_slice: bool = False) -> None:
        self.base = self.ROOT / f"wardtui-bench-{os.getpid()}"
        # The run's own group far above the machine's other work (a shell, a test elsewhere):
        # the slices below share what is left of the box as systemd's would share all of it.
        self.base.mkdir(exist_ok=True)
        (self.base / "cpu.shares").write_text("102400")
        self.groups = {"system": 1024, "system/wardtui": 4096, "system/redis": 1024,
                       "system/postgres": 1024, "user": 1024}
        if own_slice:  # packaging/wardtui.slice: the service and its Redis, a peer of the others
            del self.groups["system/wardtui"], self.groups["system/redis"]
            self.groups.update({"wardtui": 4096, "wardtui/service": 4096, "wardtui/redis": 1024})
        self.service_group = "wardtui/service" if own_slice else "system/wardtui"
        self.redis_group = "wardtui/redis" if own_slice else "system/redis"
        for name, shares in self.groups.items():
            (self.base / name).mkdir(parents=True, exist_ok=True)
            (self.base / name / "cpu.shares").write_text(str(shares))
        self.put("user", os.getpid())

    def put(self, group: str, pid: int) -> None:
        (self.base / group / "cgroup.procs").write_text(str(pid))

    def remove(self) -> None:
        self.put_back(os.getpid())
        for name in sorted(self.groups, key=len, reverse=True):
            for line in (self.base / name / "cgroup.procs").read_text().split():
                self.put_back(int(line))
            (self.base / name).rmdir()
        self.base.rmdir()

    def put_back(self, pid: int) -> None:
        with contextlib.suppress(OSError):  # gone meanwhile
            (self.ROOT / "cgroup.procs").write_text(str(pid))


class RedisServer:
    """A private redis-server on a free loopback port, no persistence."""

    def __init__(self, tmp: Path) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(["redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
                                      "--save", "", "--appendonly", "no", "--dir", str(tmp)],
                                     stdout=(tmp / "redis.log").open("w"), stderr=subprocess.STDOUT)
        self.client = redis.Redis(port=self.port)
        deadline = time.monotonic() + 10
        while True:
            try:
                self.client.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def cpu_s(self) -> float:
        info = self.client.info("cpu")
        return float(info["used_cpu_sys"]) + float(info["used_cpu_user"])

    def memory(self) -> dict[str, Any]:
        info = self.client.info("memory")
        keys = {k.decode(): self.client.memory_usage(k, samples=0) or 0
                for k in self.client.scan_iter(match=f"wardtui:{{{SITE}}}:*")}
        stream = self.client.xinfo_stream(f"wardtui:{{{SITE}}}:events")
        return {"used_mb": info["used_memory"] / 2**20, "rss_mb": info["used_memory_rss"] / 2**20,
                "peak_mb": info["used_memory_peak"] / 2**20, "keys": keys, "stream_len": stream["length"]}

    def stop(self) -> None:
        self.client.close()
        self.proc.terminate()
        self.proc.wait(10)


class Service:
    def __init__(self, tmp: Path, inventory: Path, url: str, args: argparse.Namespace,
                 db: str | None = None) -> None:
        self.db = db or f"sqlite:///{tmp / 'service.db'}"
        self.stats = tmp / "service-stats.jsonl"
        self.log = tmp / "service.log"
        # As packaging/wardtui.service runs it: Nice= there (the poller before the dashboards).
        nice = ["nice", "-n", str(args.service_nice)] if getattr(args, "service_nice", 0) else []
        self.proc = subprocess.Popen(
            [*nice, sys.executable, str(ROOT / "bench" / "_feed_service.py"), "--inventory", str(inventory),
             "--db", self.db, "--redis", url, "--site", SITE, "--stats", str(self.stats),
             "--interval", f"{args.interval:g}", "--churn", f"{args.churn:g}", "--down", f"{args.down:g}",
             "--seed", str(args.seed)],
            cwd=ROOT, stdout=self.log.open("w"), stderr=subprocess.STDOUT)

    def records(self, t0: float, t1: float) -> list[dict[str, Any]]:
        if not self.stats.exists():
            return []
        out = []
        for line in self.stats.read_text().splitlines():
            r = json.loads(line)
            if t0 <= r["t"] <= t1:
                out.append(r)
        return out

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()


@dataclass
class Window:
    label: str  # "quiet" or "viewers"
    t0: float = 0.0
    t1: float = 0.0
    redis_cpu_s: float = 0.0
    service: list[dict[str, Any]] = field(default_factory=list)
    memory: dict[str, Any] = field(default_factory=dict)
    # viewers windows only
    headless: list[dict[str, Any]] = field(default_factory=list)  # per viewer: from_at / from_id in window
    dashboard_at: list[float] = field(default_factory=list)
    dashboard_id: list[float] = field(default_factory=list)
    first_frame_s: float = 0.0
    keys: dict[str, list[float]] = field(default_factory=dict)
    timeouts: dict[str, int] = field(default_factory=dict)
    attach_s: list[float] = field(default_factory=list)
    viewer_cpu_pct: list[float] = field(default_factory=list)
    viewer_rss_mb: list[float] = field(default_factory=list)
    reloads: int = 0
    losses: int = 0

    @property
    def seconds(self) -> float:
        return self.t1 - self.t0

    @property
    def lags(self) -> list[float]:
        return [r["lag_p99_ms"] for r in self.service if "lag_p99_ms" in r]

    def service_cpu_pct(self) -> float:
        if len(self.service) < 2:
            return float("nan")
        a, b = self.service[0], self.service[-1]
        return (b["cpu_s"] - a["cpu_s"]) / (b["t"] - a["t"]) * 100

    def service_waited_ms_per_s(self) -> float:
        """Milliseconds a second the service's main thread (its loop) waited on a run queue."""
        if len(self.service) < 2 or "run_delay_main_s" not in self.service[0]:
            return float("nan")
        a, b = self.service[0], self.service[-1]
        return (b["run_delay_main_s"] - a["run_delay_main_s"]) / (b["t"] - a["t"]) * 1000

    def dropped_per_s(self) -> float:
        if len(self.service) < 2:
            return float("nan")
        a, b = self.service[0], self.service[-1]
        return (b.get("events_dropped", 0) - a.get("events_dropped", 0)) / (b["t"] - a["t"])

    def transitions_per_s(self) -> float:
        return len(self.headless[0]["from_at"]) / self.seconds if self.headless else float("nan")

    def all_from(self, key: str) -> list[float]:
        return [ms for v in self.headless for ms in v[key]]


def quiet_window(redis_server: RedisServer, service: Service, seconds: float) -> Window:
    w = Window("quiet", t0=time.time())
    cpu0 = redis_server.cpu_s()
    time.sleep(seconds)
    w.t1 = time.time()
    w.redis_cpu_s = redis_server.cpu_s() - cpu0
    w.memory = redis_server.memory()
    w.service = service.records(w.t0, w.t1)
    return w


def start_viewers(url: str, tmp: Path, count: int, cycle: int,
                  nice: int = 0) -> list[tuple[subprocess.Popen[str], Path]]:
    procs = []
    # One after another, as operators come in: twenty 100,000-device loads at once would be a
    # burst of their own on two cores.
    for i in range(count):
        out = tmp / f"viewer-{cycle}-{i}.json"
        proc = subprocess.Popen(["nice", "-n", str(nice), sys.executable,
                                 str(ROOT / "bench" / "_feed_viewer.py"), "--redis", url, "--site", SITE,
                                 "--name", f"{cycle}-{i}", "--out", str(out)],
                                cwd=ROOT, stdout=subprocess.PIPE, text=True)
        procs.append((proc, out))
        line = proc.stdout.readline() if proc.stdout else ""
        if "attached" not in line:
            for other, _ in procs:
                other.terminate()
            raise RuntimeError(f"viewer {i} did not attach: {line!r}")
    return procs


def stop_viewers(procs: list[tuple[subprocess.Popen[str], Path]]) -> list[dict[str, Any]]:
    for proc, _ in procs:
        proc.terminate()
    results = []
    for proc, out in procs:
        proc.wait(60)
        results.append(json.loads(out.read_text()))
    return results


def in_window(applied: list[float], values: list[float], t0: float, t1: float) -> list[float]:
    return [v for a, v in zip(applied, values, strict=True) if t0 <= a <= t1]


async def attached_dashboard(url: str, db: str, presses: int, seed: int, settle: float,
                             w: Window) -> Latencies:
    """The real dashboard attached to the site, in this process: first frame, then the keys.
    Sets w.t0 (after the first frame and ``settle`` seconds) and w.t1 (after the keys)."""
    from bench.dashboard_keys import SIZE, Frames, key_sequence, table
    from poller.live import Keys
    from wardtui.app import WardApp
    from wardtui.attached import AttachedRuntime, Site
    from wardtui.process import DASHBOARD
    from wardtui.runtime import Options

    rng = random.Random(seed)
    # The dashboard's process policy as `wardtui --redis` sets it, less the exit watchdog (this
    # process goes on after the app).
    policy = dataclasses.replace(DASHBOARD, exit_grace=None)
    policy.enter()
    start = time.perf_counter()
    runtime = AttachedRuntime(Site(url, Keys(SITE)), Options(db=db), process=policy)
    latencies = instrument(runtime.engine)
    app = WardApp(runtime, process=policy)
    await asyncio.wrap_future(app.engine_thread.submit(runtime.attach()))
    frames = Frames(app)
    first = frames.expect(lambda: app.screen is app.dashboard and table(app).row_count > 0)
    async with app.run_test(size=SIZE) as pilot:
        w.first_frame_s = (await asyncio.wait_for(first, 60)) - start
        await pilot.pause(settle)  # the freeze two seconds after the first "round" (attached: at once)
        w.t0 = time.time()

        def record(kind: str, ms: float | None) -> None:
            if ms is None:
                w.timeouts[kind] = w.timeouts.get(kind, 0) + 1
            else:
                w.keys.setdefault(kind, []).append(ms)

        await key_sequence(app, frames, rng, presses, record)
        w.t1 = time.time()
        await app.action_quit()
    return latencies


def viewers_window(redis_server: RedisServer, service: Service, tmp: Path, args: argparse.Namespace,
                   cycle: int) -> Window:
    w = Window("viewers")
    procs = start_viewers(redis_server.url, tmp, args.viewers, cycle, args.viewer_nice)
    try:
        cpu0 = redis_server.cpu_s()
        dash = asyncio.run(attached_dashboard(redis_server.url, service.db, args.presses, args.seed + cycle,
                                              3.0, w))
        w.redis_cpu_s = redis_server.cpu_s() - cpu0  # from the dashboard's start: a little wider
        w.memory = redis_server.memory()
    finally:
        results = stop_viewers(procs)
    w.service = service.records(w.t0, w.t1)
    for r in results:
        feed = r["feeds"][0]
        w.headless.append({"from_at": in_window(feed["applied"], feed["from_at_ms"], w.t0, w.t1),
                           "from_id": in_window(feed["applied"], feed["from_id_ms"], w.t0, w.t1)})
        w.attach_s.extend(r["attach_s"])
        w.viewer_cpu_pct.append(r["cpu_s"] / r["life_s"] * 100)
        w.viewer_rss_mb.append(r["rss_mb"])
        w.reloads += feed["reloads"] - 1
        w.losses += feed["losses"]
    w.dashboard_at = in_window(list(dash.applied), list(dash.from_at), w.t0, w.t1)
    w.dashboard_id = in_window(list(dash.applied), list(dash.from_id), w.t0, w.t1)
    return w


def tmux_first_frame(url: str, db: str, repeat: int) -> list[float]:
    """Seconds from `tmux new-session` (process start) to a device row in capture-pane."""
    times = []
    # A server of its own (-L): one already running (another user's, a test's) would start the
    # dashboard as its child, in its cgroup and session, not this run's.
    tmux = ["tmux", "-L", f"wardtui-feed-{os.getpid()}"]
    for i in range(repeat):
        name = f"wardtui-feed-{os.getpid()}-{i}"
        command = (f"cd {ROOT} && env PYTHONPATH={ROOT} TERM=xterm-256color {sys.executable} -m wardtui "
                   f"--redis {url} --site {SITE} --db {db}")
        start = time.perf_counter()
        subprocess.run([*tmux, "new-session", "-d", "-s", name, "-x", "160", "-y", "50", command],
                       check=True)
        try:
            deadline = start + 60
            while time.perf_counter() < deadline:
                screen = subprocess.run([*tmux, "capture-pane", "-p", "-t", name], capture_output=True,
                                        text=True, check=False).stdout
                if ROW.search(screen):
                    times.append(time.perf_counter() - start)
                    break
                time.sleep(0.02)
            subprocess.run([*tmux, "send-keys", "-t", name, "q"], check=False)
            time.sleep(4)
        finally:
            subprocess.run([*tmux, "kill-session", "-t", name], capture_output=True, check=False)
    subprocess.run([*tmux, "kill-server"], capture_output=True, check=False)
    return times


def generate(devices: int, path: Path) -> None:
    subprocess.run([sys.executable, "-m", "wardtui", "generate", "--devices", str(devices), "-o", str(path)],
                   cwd=ROOT, check=True, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
                   stdout=subprocess.DEVNULL)


def wait_live(redis_server: RedisServer, service: Service, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not redis_server.client.exists(f"wardtui:{{{SITE}}}:snapshot"):
        if service.proc.poll() is not None:
            raise RuntimeError(f"the service ended: {service.log.read_text()[-2000:]}")
        if time.monotonic() > deadline:
            raise RuntimeError("the service published no snapshot")
        time.sleep(0.2)


def settle(service: Service, limit: float, timeout: float) -> float:
    """Wait until the service's lag p99 has stayed under ``limit`` ms for 5 s (the first
    round's burst is behind it); seconds waited."""
    start = time.time()
    while time.time() - start < timeout:
        recent = service.records(time.time() - 5.5, time.time())
        if len(recent) >= 4 and all(r.get("lag_p99_ms", 1e9) < limit for r in recent):
            break
        time.sleep(1.0)
    return time.time() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--devices", type=int, default=100_000)
    parser.add_argument("--viewers", type=int, default=20, help="headless viewer processes")
    parser.add_argument("--viewer-nice", type=int, default=0,
                        help="nice level of the headless viewers (19: the service and the dashboard first, "
                        "as if the viewers ran on other machines)")
    parser.add_argument("--service-nice", type=int, default=0,
                        help="nice level of the service (packaging/wardtui.service sets Nice=-10: the "
                        "poller before the operators' dashboards on the same box)")
    parser.add_argument("--slices", action="store_true",
                        help="run the service, Redis and the viewers in cgroups laid out as systemd "
                             "does with packaging/wardtui.service (system/user slices; see Slices)")
    parser.add_argument("--own-slice", action="store_true",
                        help="with --slices: the service in a top-level slice of its own at CPUWeight=400 "
                             "(packaging/wardtui.slice), a peer of system.slice and user.slice")
    parser.add_argument("--postgres", action="store_true",
                        help="history in a private PostgreSQL server (COPY) instead of SQLite")
    parser.add_argument("--cycles", type=int, default=3, help="quiet + viewers windows")
    parser.add_argument("--quiet", type=float, default=30.0, help="seconds of each quiet window")
    parser.add_argument("--presses", type=int, default=30)
    parser.add_argument("--tmux", type=int, default=3, help="tmux first-frame runs at the end (0: none)")
    parser.add_argument("--interval", type=float, default=10.0)
    parser.add_argument("--churn", type=float, default=0.01)
    parser.add_argument("--down", type=float, default=0.05)
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--settle", type=float, default=180.0,
                        help="at most this long after the first round for lag p99 < 1 s (5 s in a row)")
    parser.add_argument("--keep", type=Path, help="copy the raw figures (JSON) here")
    parser.add_argument("--section", default="feed", help="the BENCHMARKS.md section written")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    windows: list[Window] = []
    tmux: list[float] = []
    settled = float("nan")
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        inventory = tmp / "inv.csv"
        generate(args.devices, inventory)
        slices = Slices(args.own_slice) if args.slices else None
        redis_server = RedisServer(tmp)
        service = None
        cluster = None
        try:
            if args.postgres:
                # The history in a PostgreSQL server of the run's own (as tests/integration's
                # private clusters: fsync off), its postmaster (and so every backend it forks)
                # in the system slice beside Redis when --slices.
                from tests.integration.postgres import PrivateCluster
                cluster = PrivateCluster()
                cluster.start()
                if slices is not None:
                    postmaster = int((cluster.data / "postmaster.pid").read_text().split()[0])
                    slices.put("system/postgres", postmaster)
            service = Service(tmp, inventory, redis_server.url, args, cluster.url if cluster else None)
            if slices is not None:
                slices.put(slices.redis_group, redis_server.proc.pid)
                slices.put(slices.service_group, service.proc.pid)  # (nice -n execs: the same pid)
            wait_live(redis_server, service)
            time.sleep(args.interval + 5)  # the first round (every device UNKNOWN -> UP) and its burst
            settled = settle(service, 1000.0, args.settle)
            print(f"service up, settled after {settled:.0f} s more", flush=True)
            for cycle in range(args.cycles):
                windows.append(quiet_window(redis_server, service, args.quiet))
                print(f"quiet: lag p99 median {statistics.median(windows[-1].lags):.1f} ms", flush=True)
                windows.append(viewers_window(redis_server, service, tmp, args, cycle))
                w = windows[-1]
                print(f"viewers: lag p99 median {statistics.median(w.lags):.1f} ms, latency p99 "
                      f"{pct(w.all_from('from_at'), 0.99):.0f} ms, first frame {w.first_frame_s:.2f} s",
                      flush=True)
            windows.append(quiet_window(redis_server, service, args.quiet))
            if args.tmux:
                tmux = tmux_first_frame(redis_server.url, service.db, args.tmux)
                print("tmux first frame s:", tmux, flush=True)
        finally:
            if service is not None:
                service.stop()
            redis_server.stop()
            if cluster is not None:
                cluster.remove()
            if slices is not None:
                slices.remove()
        if args.keep:
            args.keep.write_text(json.dumps({"windows": [dataclasses.asdict(w) for w in windows],
                                             "tmux": tmux}))
    body = summarize(windows, tmux, args, settled)
    print(body)
    if not args.no_write:
        write_section(args.section, body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
