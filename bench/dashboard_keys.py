"""First frame and key-press-to-screen latency of the dashboard at N devices with state churn.

Pilot part: the real app (WardApp, engine on its own thread as in `wardtui`, SQLite store) over a
generated inventory, answered by tests.fakes.FakeProber (no packets). A `--down` fraction of the
devices (5 %) is down from the start; every second a `--churn` fraction (1 %) changes state, half
failing and as many of the down ones recovering, so the engine does N / interval checks/s plus
about churn x N transitions/s (each seen at the device's next check), with the number down steady.
Keys are posted to the app the way Pilot posts them, but without Pilot's wait for the process to
look idle (an engine at 2,000 checks/s never does, so `pilot.press` would add up to 1 s per key).

"Reflected" means: the first compositor update handed to the driver (App._display with a
renderable, outside batch_update) at which the key's effect is in the app's state (cursor row
moved, character in the filter input, sort column changed, view switched, drill-down screen on
top / dashboard back on top, filtered rows in the table). Headless, so the final conversion of
that update to escape sequences is not included.

tmux part (optional, real ICMP to 127.x loopback only, as root): `wardtui` over the same
inventory in a 160x50 tmux pane, polled with capture-pane until a device row shows.

Run as root: python bench/dashboard_keys.py [--devices 20000] [--baseline 875] [--presses 60]
[--quiet WINDOWS]: that many maintenance windows in force after the first round, and every device
then down acknowledged (the table's ack/maint column works them out for the rows it paints).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from textual import events  # noqa: E402
from textual.widgets import Input  # noqa: E402

from bench._report import write_section  # noqa: E402
from poller.events import Transition  # noqa: E402
from poller.quiet import QuietChanged  # noqa: E402
from tests.fakes import FakeProber  # noqa: E402
from wardtui.app import WardApp  # noqa: E402
from wardtui.process import DASHBOARD  # noqa: E402
from wardtui.runtime import Options, Runtime  # noqa: E402
from wardtui.screens.dashboard import DashboardScreen  # noqa: E402
from wardtui.screens.device import DeviceScreen  # noqa: E402
from wardtui.widgets.device_table import DeviceTable  # noqa: E402

SIZE = (160, 50)
CHARS = {"down": None, "slash": "/", "s": "s", "p": "p", "g": "g", "enter": "\r", "escape": "\x1b",
         "backspace": "\x08", "space": " ", "minus": "-"}


@dataclass
class Run:
    devices: int
    churn: float
    first_frame_s: float = 0.0  # from before Runtime() to the first frame with device rows
    app_ready_s: float = 0.0  # from before Runtime() to run_test() handing over
    latencies: dict[str, list[float]] = field(default_factory=dict)  # kind -> ms
    timeouts: dict[str, int] = field(default_factory=dict)
    transitions: int = 0
    dropped: int = 0  # events the bench's own subscription lost (transitions undercounted)
    checks: int = 0
    seconds: float = 0.0
    quiet: tuple[int, int] = (0, 0)  # maintenance windows and acknowledgements in force (--quiet)


class Frames:
    """Wraps app._display: resolves a waiting predicate at the first frame where it holds."""

    def __init__(self, app: WardApp) -> None:
        self.app = app
        self.original = app._display
        self.waiting: tuple[Callable[[], bool], asyncio.Future[float]] | None = None
        self.count = 0
        app._display = self._display  # type: ignore[method-assign]

    def _display(self, screen, renderable) -> None:
        self.original(screen, renderable)
        if renderable is None or self.app._batch_count:
            return
        self.count += 1
        if self.waiting is not None:
            predicate, future = self.waiting
            if not future.done() and predicate():
                future.set_result(time.perf_counter())
                self.waiting = None

    def expect(self, predicate: Callable[[], bool]) -> asyncio.Future[float]:
        future: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        self.waiting = (predicate, future)
        return future


def dashboard(app: WardApp) -> DashboardScreen:
    return app.dashboard


def table(app: WardApp) -> DeviceTable:
    return app.dashboard.query_one(DeviceTable)


def start_down(prober: FakeProber, addresses: list[str], down: float, rng: random.Random) -> None:
    """Put a ``down`` fraction of the devices down from the first round on."""
    prober.down.update(rng.sample(addresses, round(len(addresses) * down)))


async def churn(prober: FakeProber, addresses: list[str], fraction: float, rng: random.Random,
                settle: float) -> None:
    """Every second, ``fraction`` of the devices change state: half of them fail, and as many
    of the down ones recover, so the number down stays where start_down put it. Only devices
    down for ``settle`` seconds (longer than an interval and its confirmation) recover, so
    that every failure is seen by a check before it ends: each change is a transition."""
    per_side = max(1, round(len(addresses) * fraction / 2))
    down_at = dict.fromkeys(prober.down, time.monotonic() - settle)
    while True:
        now = time.monotonic()
        settled = sorted(a for a, at in down_at.items() if now - at >= settle)
        recovering = rng.sample(settled, min(per_side, len(settled)))
        failing = [a for a in rng.sample(addresses, per_side * 2) if a not in prober.down][:per_side]
        prober.down.difference_update(recovering)
        prober.down.update(failing)
        for address in recovering:
            del down_at[address]
        down_at.update(dict.fromkeys(failing, now))
        await asyncio.sleep(1.0)


async def press(app: WardApp, frames: Frames, key: str, predicate: Callable[[], bool],
                timeout: float = 5.0) -> float | None:
    """Post one key as Pilot does; return ms until a frame shows ``predicate`` true."""
    char = CHARS.get(key, key if len(key) == 1 else None)
    future = frames.expect(predicate)
    start = time.perf_counter()
    app.post_message(events.Key(key, char))
    try:
        end = await asyncio.wait_for(future, timeout)
    except TimeoutError:
        frames.waiting = None
        return None
    return (end - start) * 1000


async def key_sequence(app: WardApp, frames: Frames, rng: random.Random, presses: int,
                       record: Callable[[str, float | None], None]) -> None:
    """Every kind of key, ``presses`` times each (typing: about as many characters), each
    reported to ``record`` as (kind, ms until reflected, or None after 5 s)."""

    async def gap(low: float = 0.08, high: float = 0.3) -> None:
        await asyncio.sleep(rng.uniform(low, high))  # typing-like, at a random tick phase

    screen = dashboard(app)
    # cursor down
    for _ in range(presses):
        row = table(app).cursor_row
        record("down (cursor)", await press(app, frames, "down",
                                            lambda r=row: table(app).cursor_row == r + 1))
        await gap()
    # / then typing a device-name fragment, then Esc clears (refills every row)
    words = ["branch-1", "north", "hub-2", "core", "west 3", "east-1", "south 12"]
    typed = 0
    while typed < presses:
        record("/ (open filter)", await press(app, frames, "slash",
                                              lambda: screen.query_one("#filter", Input).has_focus))
        box = screen.query_one("#filter", Input)
        word = rng.choice(words)
        for i, ch in enumerate(word):
            key = "space" if ch == " " else ("minus" if ch == "-" else ch)
            text = word[: i + 1]
            record("typing in filter (char shown)", await press(app, frames, key,
                                                                lambda t=text, b=box: b.value == t))
            typed += 1
            if i < len(word) - 1:
                await gap(0.08, 0.2)
        settle = time.perf_counter()  # the last character is on screen: the debounce runs
        future = frames.expect(lambda w=word: table(app).filter_text == w)
        try:
            end = await asyncio.wait_for(future, 5)
            record("filter applied after last char shown (incl. 0.15 s debounce)", (end - settle) * 1000)
        except TimeoutError:
            frames.waiting = None
            record("filter applied after last char shown (incl. 0.15 s debounce)", None)
        await gap()
        record("Esc (clear filter, all rows back)", await press(app, frames, "escape",
                                                                lambda b=box: table(app).filter_text == ""
                                                                and not b.has_focus))
        await gap()
    # s sort
    for _ in range(presses):
        before = table(app).sort_column
        record("s (sort by next column)", await press(app, frames, "s",
                                                      lambda b=before: table(app).sort_column != b))
        await gap()
    # p problems view (toggles)
    for _ in range(presses):
        before = table(app).view
        record("p (problems view toggle)", await press(app, frames, "p",
                                                       lambda b=before: table(app).view != b))
        await gap()
    if table(app).view != "all":
        await press(app, frames, "p", lambda: table(app).view == "all")
    # g groups view (toggles)
    for _ in range(presses):
        before = screen.view
        record("g (groups view toggle)", await press(app, frames, "g",
                                                     lambda b=before: screen.view != b))
        await gap()
    if screen.view == "groups":
        await press(app, frames, "g", lambda: screen.view != "groups")
    # Enter drill-down, Esc back
    for _ in range(presses):
        record("Enter (drill-down shown)", await press(app, frames, "enter",
                                                       lambda: isinstance(app.screen, DeviceScreen)))
        await gap(0.3, 0.6)
        record("Esc (back to dashboard)", await press(app, frames, "escape",
                                                      lambda: app.screen is app.dashboard))
        await gap()


def quiet_state(runtime: Runtime, windows: int, rng: random.Random) -> QuietChanged:
    """``windows`` maintenance windows (half one-off over a branch, half recurring every 10
    minutes for 5 over a region and type) and an acknowledgement of every device out now: what
    the table's ack/maint column works out for the rows it paints."""
    from datetime import UTC, datetime, timedelta

    from poller.events import OUT
    from poller.notify.acks import Ack
    from poller.notify.windows import Window, parse_matcher
    from poller.quiet import Quiet

    now = datetime.now(UTC)
    devices = list(runtime.devices)
    made = []
    for i in range(windows):
        device = rng.choice(devices)
        if i % 2:
            matchers = (parse_matcher(f"region={device.region}"), parse_matcher(f"type={device.type}"))
            made.append(Window(i + 1, matchers, cron="*/10 * * * *", duration_s=300.0, tz="UTC",
                               note="recurring", created_by="bench"))
        else:
            made.append(Window(i + 1, (parse_matcher(f"branch={device.branch}"),),
                               starts_at=now - timedelta(minutes=5), ends_at=now + timedelta(hours=2),
                               note="one-off", created_by="bench"))
    acks = [Ack(k, name, t.down_since, "bench", "operator", now)
            for k, (name, t) in enumerate(runtime.engine.trackers.items())
            if t.state in OUT and t.down_since is not None]
    return QuietChanged(Quiet(tuple(made), tuple(acks), now))


async def measure(inventory: Path, db: Path, interval: float, fraction: float, down: float,
                  presses: int, seed: int, quiet_windows: int = 0) -> Run:
    rng = random.Random(seed)
    prober = FakeProber()
    start = time.perf_counter()
    # The dashboard's process policy (freezes, collector thresholds, idle collections) but not
    # its exit watchdog: this process measures several runs. As before, no 1 ms switch interval.
    policy = dataclasses.replace(DASHBOARD, exit_grace=None)
    runtime = Runtime(Options(inventory=inventory, db=f"sqlite:///{db}", interval=interval), prober=prober,
                      process=policy)
    addresses = [d.address for d in runtime.devices]
    start_down(prober, addresses, down, rng)
    app = WardApp(runtime, process=policy)
    frames = Frames(app)
    run = Run(len(runtime.devices), fraction)
    first = frames.expect(lambda: app.screen is app.dashboard and table(app).row_count > 0)
    async with app.run_test(size=SIZE) as pilot:
        run.app_ready_s = time.perf_counter() - start
        run.first_frame_s = (await asyncio.wait_for(first, 30)) - start
        # The first round, and gc.freeze two seconds after it (as in the app).
        await pilot.pause(interval + 3.0)
        if quiet_windows:  # published as the poller publishes it: on the engine's loop
            event = quiet_state(runtime, quiet_windows, rng)
            app.engine_thread.call(lambda: runtime.engine.bus.publish(event))  # type: ignore[arg-type]
            run.quiet = (len(event.quiet.windows), len(event.quiet.acks))
        churner = asyncio.create_task(churn(prober, addresses, fraction, rng, settle=interval + 2.0))
        await pilot.pause(3.0)
        sent_before = prober.sent
        t_begin = time.perf_counter()
        sub = runtime.engine.bus.subscribe("bench", maxsize=100_000)
        counted = [0]

        async def count_transitions() -> None:
            # Drained as it comes, as the dashboard drains its own: left to pile up, these
            # events made Python's full collections scan hundreds of thousands of objects
            # (50 ms growing to 350 ms each), a cost of the bench, not of the app.
            while True:
                counted[0] += sum(isinstance(event, Transition) for event in sub.drain())
                await asyncio.sleep(0.5)

        counter = asyncio.create_task(count_transitions())

        def record(kind: str, ms: float | None) -> None:
            if ms is None:
                run.timeouts[kind] = run.timeouts.get(kind, 0) + 1
            else:
                run.latencies.setdefault(kind, []).append(ms)

        await key_sequence(app, frames, rng, presses, record)
        run.seconds = time.perf_counter() - t_begin
        run.checks = prober.sent - sent_before
        counter.cancel()
        run.transitions = counted[0] + sum(isinstance(event, Transition) for event in sub.drain())
        run.dropped = sub.dropped
        runtime.engine.bus.unsubscribe(sub)
        churner.cancel()
        await app.action_quit()
    return run


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def tmux_first_frame(inventory: Path, db: Path, interval: float, repeat: int) -> list[float]:
    """Seconds from `tmux new-session` (process start) to a device row in capture-pane."""
    times = []
    for i in range(repeat):
        name = f"wardtui-keys-{int(time.time())}-{i}"
        command = (f"cd {ROOT} && env PYTHONPATH={ROOT} TERM=xterm-256color {sys.executable} -m wardtui "
                   f"--inventory {inventory} --db sqlite:///{db}.{i} --interval {interval:g}")
        start = time.perf_counter()
        subprocess.run(["tmux", "new-session", "-d", "-s", name, "-x", str(SIZE[0]), "-y", str(SIZE[1]),
                        command], check=True)
        try:
            deadline = start + 60
            while time.perf_counter() < deadline:
                screen = subprocess.run(["tmux", "capture-pane", "-p", "-t", name], capture_output=True,
                                        text=True, check=False).stdout
                if "127.1." in screen:
                    times.append(time.perf_counter() - start)
                    break
                time.sleep(0.02)
            subprocess.run(["tmux", "send-keys", "-t", name, "q"], check=False)
            time.sleep(4)
        finally:
            subprocess.run(["tmux", "kill-session", "-t", name], capture_output=True, check=False)
    return times


def generate(devices: int, path: Path) -> None:
    subprocess.run([sys.executable, "-m", "wardtui", "generate", "--devices", str(devices), "-o", str(path)],
                   cwd=ROOT, check=True, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
                   stdout=subprocess.DEVNULL)


def table_rows(runs: list[Run]) -> list[str]:
    kinds = list(runs[0].latencies)
    head = "| key | " + " | ".join(f"{r.devices:,} dev: n / p50 / p95 / max ms" for r in runs) + " |"
    rows = [head, "|---|" + "---|" * len(runs)]
    for kind in kinds:
        cells = []
        for r in runs:
            v = r.latencies.get(kind, [])
            lost = r.timeouts.get(kind, 0)
            cell = (f"{len(v)} / {statistics.median(v):.0f} / {pct(v, 0.95):.0f} / {max(v):.0f}"
                    if v else "—")
            cells.append(cell + (f" ({lost} > 5 s)" if lost else ""))
        rows.append(f"| {kind} | " + " | ".join(cells) + " |")
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--devices", type=int, default=20_000)
    parser.add_argument("--baseline", type=int, default=875,
                        help="device count of the baseline run (0: none)")
    parser.add_argument("--interval", type=float, default=10.0)
    parser.add_argument("--churn", type=float, default=0.01, help="fraction of devices flipped per second")
    parser.add_argument("--down", type=float, default=0.05, help="fraction of the devices kept down")
    parser.add_argument("--presses", type=int, default=60)
    parser.add_argument("--tmux", type=int, default=3, help="tmux first-frame runs (0: skip; real ICMP)")
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--quiet", type=int, default=0, metavar="WINDOWS",
                        help="maintenance windows in force (and every device down acknowledged) after the "
                             "first round")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    runs: list[Run] = []
    with tempfile.TemporaryDirectory() as tmp:
        counts = [args.devices] + ([args.baseline] if args.baseline else [])
        tmux: list[float] = []
        for n in counts:
            inventory = Path(tmp) / f"inv{n}.csv"
            generate(n, inventory)
            run = asyncio.run(measure(inventory, Path(tmp) / f"k{n}.db", args.interval, args.churn,
                                      args.down, args.presses, args.seed, args.quiet))
            runs.append(run)
            print(f"{n} devices: first frame {run.first_frame_s:.2f} s, "
                  f"{run.checks / run.seconds:.0f} checks/s, "
                  f"{run.transitions / run.seconds:.0f} transitions/s, "
                  f"quiet: {run.quiet[0]} windows, {run.quiet[1]} acknowledgements", flush=True)
            for line in table_rows([run]):
                print(line, flush=True)
            if n == args.devices and args.tmux:
                tmux = tmux_first_frame(inventory, Path(tmp) / "t.db", args.interval, args.tmux)
                print("tmux first frame s:", tmux, flush=True)
    main_run = runs[0]
    all_ms = [ms for kind, v in main_run.latencies.items() if "debounce" not in kind for ms in v]
    lines = [f"### Dashboard first frame and key latency, {args.devices:,} devices, "
             f"{args.churn:.0%} changing state each second",
             "",
             f"Command (as root): `python bench/dashboard_keys.py --devices {args.devices} --baseline "
             f"{args.baseline} --presses {args.presses} --tmux {args.tmux}` "
             "(defaults: --interval 10 --churn 0.01 --down 0.05)",
             "",
             "Real app (engine on its own thread, SQLite store) with FakeProber answering, interval "
             f"{args.interval:g} s; {args.down:.0%} of the devices down, and every second {args.churn:.0%} "
             "change state (half fail, as many recover). Keys are posted as Pilot posts them but "
             "without its wait-for-idle; a key counts as "
             "reflected at the first compositor update (headless, 160x50) at which its effect is in the "
             "app's state. Measured after the first round and the gc.freeze that follows it.",
             "",
             "| run | first frame s (Pilot, Runtime() -> rows painted) | checks/s | transitions/s |"
             " events lost by the bench's counter |",
             "|---|---|---|---|---|"]
    for r in runs:
        lines.append(f"| {r.devices:,} devices | {r.first_frame_s:.2f} | {r.checks / r.seconds:.0f} | "
                     f"{r.transitions / r.seconds:.0f} | {r.dropped} |")
    lines += ["", "Transitions/s is what the engine reported. A device recovers only once it has been down "
              "longer than an interval (and its confirmation), so every change is seen by a check and "
              "is a transition."]
    if tmux:
        lines += ["", f"Real terminal (tmux {SIZE[0]}x{SIZE[1]}, `wardtui` over the same "
                  f"{args.devices:,}-device inventory, real ICMP to 127.x), process start -> "
                  "first device row in capture-pane: "
                  + ", ".join(f"{t:.2f}" for t in tmux) + " s."]
    lines += ["", *table_rows(runs), ""]
    if all_ms:
        p95 = pct(all_ms, 0.95)
        lines.append(f"**All keys at {args.devices:,} devices (debounced filter excluded): p50 "
                     f"{statistics.median(all_ms):.0f} ms, p95 {p95:.0f} ms** (target: p95 <= 100 ms; "
                     f"first frame <= 2 s).")
        if len(runs) > 1:
            base = [ms for kind, v in runs[1].latencies.items() if "debounce" not in kind for ms in v]
            lines.append(f"Ratio of p95 to the {runs[1].devices:,}-device baseline in the same run: "
                         f"{p95 / pct(base, 0.95):.1f}x.")
    body = "\n".join(lines) + "\n"
    print(body)
    if not args.no_write:
        write_section("dashboard-keys", body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
