"""CPU cost of the dashboard's live tick and of its table keys at N devices (no service, no Redis).

A DeviceTable and a TransitionLog in a headless app of 160x50, over N attached-style trackers
(poller.live.LiveTracker, as a dashboard attached to a service holds). Ticks alternate as the
attached dashboard sees them at a half-second tick: one with the service's snapshot (``--moved``
rows whose RTT moved, a few of them their loss too) and ``--transitions`` state changes, one
with the transitions only. For each scenario (sort column, problems view, a filter) it reports
the process CPU ms per tick of ``DeviceTable.refresh_devices`` and of the log
(``add_transitions`` + ``flush``) plus the repaint that follows (the app's next frame), as
median and max over ``--ticks`` ticks; then the CPU ms of the keys that rebuild or re-sort
(a filter typed, the filter cleared, s, p). CPU seconds (time.process_time), not wall time:
robust to the other work on a shared machine.

Run: python bench/tick_cost.py [--devices 100000] [--ticks 10]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from textual.app import App, ComposeResult  # noqa: E402
from textual.containers import Horizontal  # noqa: E402

from poller.events import State, Transition  # noqa: E402
from poller.inventory import Device  # noqa: E402
from poller.live import LOSS_UNIT, RTT_UNIT, Columns, LiveRows, LiveTracker  # noqa: E402
from wardtui.widgets.device_table import DeviceTable  # noqa: E402
from wardtui.widgets.transition_log import TransitionLog  # noqa: E402


class _Row:
    """A device's figures, as a service's tracker holds them (Columns.set_row reads these)."""

    def __init__(self) -> None:
        self.state, self.flapping = State.UP, False
        self.down_since = self.last_change = None
        self.last_rtt_ms = self.avg_rtt_ms = self.jitter_ms = self.loss_pct = None


def make_trackers(n: int, rng: random.Random, now: datetime) -> dict[str, LiveTracker]:
    """N trackers reading one shared set of snapshot columns, as an attached dashboard's do."""
    rows = LiveRows(Columns.empty(n))
    trackers = {}
    for i in range(n):
        device = Device(name=f"dev{i}", address=f"127.{2 + i // 62500}.{i // 250 % 250}.{i % 250 + 1}",
                        branch=f"b{i % 97}", region=("north", "south", "east", "west")[i % 4],
                        type="router")
        r = _Row()
        if rng.random() < 0.05:
            r.state, r.down_since = State.DOWN, now - timedelta(seconds=rng.uniform(1, 3600))
            r.last_change, r.loss_pct = r.down_since, 100.0
        else:
            r.last_rtt_ms = rng.uniform(0.02, 0.5)
            r.avg_rtt_ms, r.loss_pct = r.last_rtt_ms, rng.choice((0.0, 0.0, 0.0, 10.0))
        rows.columns.set_row(i, r)
        trackers[device.name] = LiveTracker(device, rows, i)
    return trackers


class TickApp(App[None]):
    def __init__(self, trackers: dict[str, LiveTracker]) -> None:
        super().__init__()
        self.trackers = trackers

    def compose(self) -> ComposeResult:
        yield DeviceTable(self.trackers, id="devices")
        with Horizontal(id="bottom"):
            yield TransitionLog(id="log")


def flip(trackers: dict[str, LiveTracker], names: list[str], rng: random.Random,
         now: datetime) -> list[Transition]:
    """A state change of each of ``names``, applied as a streamed event is."""
    events = []
    for name in names:
        t = trackers[name]
        if t.state is State.DOWN:
            event = Transition(name, t.device.address, State.DOWN, State.UP, now, t.down_since,
                               rng.uniform(0.02, 0.5))
        else:
            event = Transition(name, t.device.address, State.UP, State.DOWN, now,
                               now - timedelta(seconds=2), None)
        t.apply(event)
        events.append(event)
    return events


def move_figures(trackers: dict[str, LiveTracker], names: list[str], rng: random.Random) -> None:
    """A snapshot's change of ``names``' RTT (and of a few, their loss), in the shared columns,
    as a refresh swapping in a newer snapshot's columns shows them; an event's override (a
    state change since) is forgotten, as a snapshot covering it does."""
    for name in names:
        t = trackers[name]
        columns, i = t._view[0].columns, t.row
        columns.set_row(i, t)  # what the snapshot says of it, events since included
        t.settle()
        if t.state is not State.DOWN:
            rtt = t.last_rtt_ms or 0.1
            columns.last_rtt[i] = round(max(0.01, rtt * rng.uniform(0.8, 1.25)) / RTT_UNIT)
            if rng.random() < 0.05:
                columns.loss[i] = round(rng.choice((0.0, 10.0, 20.0, 30.0)) / LOSS_UNIT)


async def scenario(app: TickApp, pilot, label: str, args, rng: random.Random) -> dict[str, float]:
    table, log = app.query_one(DeviceTable), app.query_one(TransitionLog)
    trackers, names = app.trackers, list(app.trackers)
    now = datetime.now(UTC)
    table_ms, log_ms, paint_ms = [], [], []
    for tick in range(args.ticks):
        now += timedelta(seconds=0.5)
        changed: set[str] = set()
        if tick % 2 == 0:  # the snapshot: rows whose RTT (some: loss) moved
            moved = rng.sample(names, args.moved)
            move_figures(trackers, moved, rng)
            changed.update(moved)
        flipped = rng.sample(names, args.transitions)
        events = flip(trackers, flipped, rng, now)
        changed.update(flipped)
        c0 = time.process_time()
        log.add_transitions(events)
        log.flush()
        c1 = time.process_time()
        table.refresh_devices(changed, now)
        c2 = time.process_time()
        await pilot.pause()  # the frame that follows
        c3 = time.process_time()
        log_ms.append((c1 - c0) * 1000)
        table_ms.append((c2 - c1) * 1000)
        paint_ms.append((c3 - c2) * 1000)
    result = {}
    for what, values in (("table", table_ms), ("log", log_ms), ("paint", paint_ms)):
        result[f"{what} median"] = statistics.median(values)
        result[f"{what} max"] = max(values)
    print(f"{label:<24} " + "  ".join(f"{k} {v:7.1f}" for k, v in result.items()), flush=True)
    return result


async def timed(pilot, label: str, action) -> float:
    c0 = time.process_time()
    action()
    await pilot.pause()
    ms = (time.process_time() - c0) * 1000
    print(f"  key {label:<30} {ms:7.1f} ms CPU", flush=True)
    return ms


async def main(args) -> None:
    rng = random.Random(args.seed)
    trackers = make_trackers(args.devices, rng, datetime.now(UTC))
    app = TickApp(trackers)
    async with app.run_test(size=(160, 50)) as pilot:
        table = app.query_one(DeviceTable)
        table.prepare_filter()  # as the dashboard's warm-up does once idle
        print(f"{args.devices} devices, {args.moved} rows moved per snapshot, {args.transitions} "
              "transitions per tick; CPU ms per tick (median, max)")
        for column in ("name", "rtt", "loss", "down", "state"):
            table.set_sort(column)
            await scenario(app, pilot, f"sort {column}", args, rng)
        table.set_sort("name")
        table.set_view("problems")
        await scenario(app, pilot, "problems, sort name", args, rng)
        table.set_sort("rtt")
        await scenario(app, pilot, "problems, sort rtt", args, rng)
        table.set_view("all")
        table.set_filter("b3")
        await scenario(app, pilot, "filter b3, sort rtt", args, rng)
        table.set_filter("")
        table.set_sort("name")
        print("keys (CPU ms of the call and the frame after it):")
        for _ in range(2):
            await timed(pilot, "filter 'b3' applied", lambda: table.set_filter("b3"))
            await timed(pilot, "filter 'b3 north' applied", lambda: table.set_filter("b3 north"))
            await timed(pilot, "filter cleared", lambda: table.set_filter(""))
            await timed(pilot, "s (name -> state)", table.cycle_sort)
            await timed(pilot, "s (state -> down)", table.cycle_sort)
            await timed(pilot, "s (down -> loss)", table.cycle_sort)
            await timed(pilot, "s (loss -> rtt)", table.cycle_sort)
            table.set_sort("rtt")
            await timed(pilot, "s (rtt -> address)", table.cycle_sort)
            await timed(pilot, "p (problems)", lambda: table.set_view("problems"))
            await timed(pilot, "p (all)", lambda: table.set_view("all"))
            await timed(pilot, "down", table.action_cursor_down)
            table.set_sort("name")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--devices", type=int, default=100_000)
    parser.add_argument("--moved", type=int, default=10_000, help="rows a snapshot names")
    parser.add_argument("--transitions", type=int, default=500, help="per half-second tick")
    parser.add_argument("--ticks", type=int, default=10)
    parser.add_argument("--seed", type=int, default=1)
    asyncio.run(main(parser.parse_args()))
