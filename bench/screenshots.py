"""The README's screenshots: docs/img/dashboard.svg and docs/img/device.svg, from a scripted app.

No network and no root: a fixed inventory of loopback-looking addresses answered by the test
suite's FakeProber (fixed RTTs, two devices going down), a throwaway SQLite history, a 120x36
terminal and the default theme. Times in the log and the charts are those of the run; the
rest is the same on every run.
Run: PYTHONPATH=. python bench/screenshots.py [--out docs/img]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from poller.events import CheckResult, State  # noqa: E402
from poller.inventory import Device  # noqa: E402
from store.db import database_url  # noqa: E402
from store.history import HistoryStore  # noqa: E402
from tests.fakes import FakeProber  # noqa: E402
from wardtui.app import WardApp  # noqa: E402
from wardtui.runtime import Options, Runtime  # noqa: E402
from wardtui.screens.device import DeviceScreen  # noqa: E402
from wardtui.widgets.device_table import DeviceTable  # noqa: E402

SIZE = (120, 36)
SITES = [("north", "north-b001"), ("north", "north-b002"), ("south", "south-b001"), ("south", "south-b002")]
KINDS = [("rtr", "router"), ("sw", "switch"), ("atm1", "atm"), ("cam1", "camera"), ("ups", "ups")]
DOWN = ("north-b002-atm1", "south-b001-rtr")
DRILL = "north-b001-rtr"


def inventory() -> list[Device]:
    devices = []
    for s, (region, branch) in enumerate(SITES):
        for k, (suffix, kind) in enumerate(KINDS):
            devices.append(Device(name=f"{branch}-{suffix}", address=f"127.4.{s}.{k + 1}", branch=branch,
                                  region=region, type=kind, line=len(devices) + 2))
    return devices


def rtt_of(devices: list[Device]) -> Callable[[str, int], float | None]:
    """A fixed RTT per device with a small fixed wobble; DOWN devices stop answering at probe 8."""
    base = {d.address: 0.4 + 0.35 * i for i, d in enumerate(devices)}
    down = {d.address for d in devices if d.name in DOWN}

    def rtt(address: str, n: int) -> float | None:
        if address in down and n >= 8:
            return None
        return round(base[address] * (1.0 + 0.15 * ((n * 7) % 5) / 4), 3)
    return rtt


async def until(pilot: object, what: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not what():
        if time.monotonic() > deadline:
            raise SystemExit("screenshots: the scripted app never reached the expected state")
        await pilot.pause(0.1)  # type: ignore[attr-defined]


async def seed(url: str, devices: list[Device], now: datetime) -> None:
    """An hour of past checks of the drilled-into device, with a loss burst, for its charts."""
    device = next(d for d in devices if d.name == DRILL)
    checks = []
    for i in range(120):
        lost = 70 <= i < 76
        rtt = None if lost else round(0.5 + 0.3 * ((i * 7) % 11) / 10 + (0.6 if 40 <= i < 60 else 0.0), 3)
        checks.append(CheckResult(DRILL, device.address, now - timedelta(seconds=30 * (120 - i)),
                                  3 if lost else 1, 0 if lost else 1, rtt, State.UP))
    async with HistoryStore(database_url(url)) as store:
        await store.sync_devices(devices)
        await store.write_checks(checks)


async def shoot(out: Path, db: Path) -> None:
    devices = inventory()
    await seed(f"sqlite:///{db}", devices, datetime.now(UTC))
    prober = FakeProber()
    prober.behaviour = rtt_of(devices)
    runtime = Runtime(Options(db=f"sqlite:///{db}", interval=0.25, confirm_spacing=0.05),
                      prober=prober, devices=devices)
    app = WardApp(runtime)
    trackers = runtime.engine.trackers
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: all(trackers[n].state is State.DOWN for n in DOWN))
        app.sub_title = app.sub_title.replace(str(db.parent) + "/", "")  # the same on every run
        await pilot.pause(1.5)  # a few more rounds for the gauges and the log
        app.save_screenshot("dashboard.svg", str(out))
        table = app.dashboard.query_one(DeviceTable)
        table.move_cursor(row=table.row_order().index(DRILL))
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, DeviceScreen) and app.screen.tier is not None)
        await pilot.pause(0.5)
        app.save_screenshot("device.svg", str(out))
        await app.action_quit()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "img")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(shoot(args.out, Path(tmp) / "h.db"))
    for name in ("dashboard.svg", "device.svg"):
        path = args.out / name
        print(f"{path} ({path.stat().st_size // 1024} KiB)")


if __name__ == "__main__":
    main()
