"""What the device table's ack/maint column costs a repaint: one screenful of rows painted with no
quiet state (the baseline, measured in the same run), then with maintenance windows and
acknowledgements in force, the first paint after they changed (every painted row asks whether
it is in a window) and the next ones (kept until a window starts or ends).

Real DeviceTable in a headless app, 100,000 devices (5 % DOWN, every one of them acknowledged),
the rows painted through render_line as the compositor asks for them.

    python bench/quiet_marks.py [--devices 100000] [--windows 100] [--rounds 300]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from textual.app import App, ComposeResult  # noqa: E402

from bench._report import write_section  # noqa: E402
from poller.events import State  # noqa: E402
from poller.notify.acks import Ack  # noqa: E402
from poller.notify.windows import Window, parse_matcher  # noqa: E402
from poller.quiet import Quiet  # noqa: E402
from poller.state import DeviceTracker, StateConfig  # noqa: E402
from tests.fakes import make_devices  # noqa: E402
from wardtui.widgets.device_table import DeviceTable  # noqa: E402

SIZE = (160, 50)


class TableApp(App[None]):
    def __init__(self, trackers: dict[str, DeviceTracker]) -> None:
        super().__init__()
        self.trackers = trackers

    def compose(self) -> ComposeResult:
        yield DeviceTable(self.trackers)


def trackers(n: int) -> dict[str, DeviceTracker]:
    at = datetime.now(UTC) - timedelta(minutes=5)
    made = {d.name: DeviceTracker(d, StateConfig()) for d in make_devices(n)}
    for i, tracker in enumerate(made.values()):
        ok = i % 20 != 3  # 5 % DOWN
        tracker.apply_check(ok, at, at, at.timestamp(), 1.0 if ok else None)
    return made


def quiet(made: dict[str, DeviceTracker], windows: int) -> Quiet:
    now = datetime.now(UTC)
    kept = []
    for i in range(windows):
        if i % 2:
            kept.append(Window(i + 1, (parse_matcher(f"region={('north', 'south')[i % 2]}"),
                                       parse_matcher("type=router")),
                               cron="*/10 * * * *", duration_s=300.0, tz="UTC", note="n", created_by="b"))
        else:
            kept.append(Window(i + 1, (parse_matcher(f"branch=b{i % 7}"),),
                               starts_at=now - timedelta(minutes=1), ends_at=now + timedelta(hours=1),
                               note="n", created_by="b"))
    acks = [Ack(k, name, t.down_since, "n", "alice", now) for k, (name, t) in enumerate(made.items())
            if t.state is State.DOWN and t.down_since is not None]
    return Quiet(tuple(kept), tuple(acks), now)


def paint(table: DeviceTable, lines: int) -> float:
    """Seconds to paint every line of the screen once (the cache of lines aside)."""
    start = time.perf_counter()
    for y in range(lines):
        table.render_line(y)
    return time.perf_counter() - start


async def measure(n: int, windows: int, rounds: int) -> tuple[dict[str, list[float]], str]:
    made = trackers(n)
    state = quiet(made, windows)
    app = TableApp(made)
    times: dict[str, list[float]] = {"no quiet state": [], "first paint after a change": [],
                                     "next paints": []}
    async with app.run_test(size=SIZE) as pilot:
        table = app.query_one(DeviceTable)
        table.make_order()
        await pilot.pause()
        lines = table.size.height
        marked = sum(1 for name in table.visible_rows() if table.cell_text(name, "quiet") == "")
        for _ in range(rounds):  # interleaved: the machine's load falls on both alike
            table.set_quiet(Quiet())
            times["no quiet state"].append(paint(table, lines))
            table.set_quiet(state)
            times["first paint after a change"].append(paint(table, lines))
            times["next paints"].append(paint(table, lines))
        shown = [table.cell_text(name, "quiet") for name in table.visible_rows()]
        what = (f"{n:,} devices, {len(state.windows)} windows (half recurring), {len(state.acks)} "
                f"acknowledgements; {lines} lines painted; rows unmarked without the quiet state: {marked}; "
                f"marked with it: {sum(1 for s in shown if s)} ({', '.join(sorted(set(shown)))})")
        print(what)
    return times, what


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--devices", type=int, default=100_000)
    parser.add_argument("--windows", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=300)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    times, what = asyncio.run(measure(args.devices, args.windows, args.rounds))
    base = statistics.median(times["no quiet state"])
    rows = ["| paint of one screen | median ms | p95 ms | ratio to no quiet state |", "|---|---|---|---|"]
    for kind, values in times.items():
        ordered = sorted(values)
        p95 = ordered[round(0.95 * (len(ordered) - 1))]
        rows.append(f"| {kind} | {statistics.median(values) * 1000:.2f} | {p95 * 1000:.2f} | "
                    f"{statistics.median(values) / base:.2f} |")
    print("\n".join(rows))
    if not args.no_write:
        command = (f"`python bench/quiet_marks.py --devices {args.devices} --windows {args.windows} "
                   f"--rounds {args.rounds}`")
        write_section("quiet-marks", "\n".join([
            f"### The table's ack/maint column, {args.devices:,} devices", "", f"Command: {command}", "",
            f"{what}. Each round, interleaved: a screen painted with no quiet state, then the first "
            "paint after the windows and acknowledgements changed (each row painted asks whether it is "
            "in a window), then the next paint (kept until a window starts or ends).", "", *rows]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
