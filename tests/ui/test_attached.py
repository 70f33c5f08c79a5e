"""A dashboard attached to a service over a real Redis, driven through Pilot.

The service is an engine answered by a fake prober with the real Publisher, on a thread and
loop of its own (as `wardtui serve` would be in another process); the dashboard is the real
WardApp with an AttachedRuntime. A private redis-server (killed and restarted) covers a lost feed.
"""

from __future__ import annotations

import asyncio
import gc
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot

from poller.engine import Engine, EngineConfig
from poller.events import State
from poller.feed import Publisher, ServiceInfo
from poller.live import Keys
from poller.state import StateConfig
from tests.fakes import FakeProber, make_devices
from tests.ports import free_port
from tests.ui.notices import Notices, watch
from wardtui.app import WardApp
from wardtui.attached import AttachedRuntime, Site
from wardtui.runtime import Options
from wardtui.widgets.device_table import DeviceTable
from wardtui.widgets.gauges import HealthLine
from wardtui.widgets.transition_log import TransitionLog

N = 12
SHARED = "redis://127.0.0.1:6379"


def _free_port() -> int:
    return free_port()  # not the kernel's pick: see tests/ports.py


class PrivateRedis:
    """A redis-server of the test's own on a free loopback port, to kill and restart."""

    def __init__(self) -> None:
        self.port = _free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}"

    def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            if os.environ.get("CI"):
                pytest.fail("redis-server is not installed (CI must have it)")
            pytest.skip("redis-server is not installed")
        self.proc = subprocess.Popen([binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                                      "--appendonly", "no"], stdout=subprocess.DEVNULL)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.05)
        raise AssertionError("private redis-server did not start")

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None


@pytest.fixture
def private_redis() -> Iterator[PrivateRedis]:
    server = PrivateRedis()
    server.start()
    try:
        yield server
    finally:
        server.kill()


def _shared_redis_up() -> None:
    with socket.socket() as s:
        if s.connect_ex(("127.0.0.1", 6379)) != 0:
            if os.environ.get("CI"):
                pytest.fail("Redis at 127.0.0.1:6379 is not running (CI starts it)")
            pytest.skip("Redis at 127.0.0.1:6379 is not running")


class ThreadService:
    """An engine (fake prober) and the real Publisher on a thread and loop of their own."""

    def __init__(self, url: str, site: str) -> None:
        self.prober = FakeProber(rtt_ms=4.0)
        self.devices = make_devices(N, interval=0.2)
        self.loop = asyncio.new_event_loop()
        self.engine = Engine(self.devices, self.prober,
                             EngineConfig(interval=0.2, timeout=0.1, state=StateConfig(confirm_spacing=0.02)))
        self.publisher = Publisher(self.engine, url, Keys(site), ServiceInfo.here("test", N), period=0.2)
        self.engine.companions.append(self.publisher)
        self.engine.gauge_sources.append(self.publisher.gauges)
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        self.loop.run_until_complete(self.engine.run())

    def start(self) -> None:
        self.thread.start()
        deadline = time.monotonic() + 5
        while self.publisher.stats.snapshots < 2:
            assert time.monotonic() < deadline, "the service published no snapshot"
            time.sleep(0.05)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.engine.stop)
        self.thread.join(10)


@dataclass
class Attached:
    app: WardApp
    pilot: Pilot[int]
    service: ThreadService
    notices: Notices

    @property
    def table(self) -> DeviceTable:
        return self.app.screen.query_one(DeviceTable)

    async def until(self, what: Callable[[], bool], timeout: float = 8.0) -> None:
        deadline = time.monotonic() + timeout
        while not what():
            assert time.monotonic() < deadline, "condition not met in time"
            await self.pilot.pause(0.1)


@asynccontextmanager
async def attached(tmp_path: Path, url: str) -> AsyncIterator[Attached]:
    site = f"t{uuid.uuid4().hex[:10]}"
    service = ThreadService(url, site)
    service.start()
    runtime = AttachedRuntime(Site(url, Keys(site)), Options(db=f"sqlite:///{tmp_path / 'none.db'}"))
    app = WardApp(runtime)
    notices = watch(app)
    try:
        await asyncio.wrap_future(app.engine_thread.submit(runtime.attach()))
        async with app.run_test(size=(120, 40)) as pilot:
            yield Attached(app, pilot, service, notices)
    finally:
        service.stop()
        await _forget(url, site)


async def _forget(url: str, site: str) -> None:
    from redis.asyncio import Redis

    client: Any = Redis.from_url(url)
    try:
        keys = [k async for k in client.scan_iter(match=f"wardtui:{{{site}}}:*")]
        if keys:
            await client.delete(*keys)
    except OSError:
        pass
    finally:
        await client.aclose()


async def test_attached_dashboard_shows_the_service_its_transitions_and_probes_through_it(
        tmp_path: Path) -> None:
    _shared_redis_up()
    async with attached(tmp_path, SHARED) as a:
        await a.until(lambda: len(a.table.row_order()) == N and all(
            a.table.cell_text(n, "state") == "up" for n in a.table.row_order()))
        assert a.app.sub_title.startswith(f"attached to {a.app.runtime.site.name}, service on ")
        assert a.table.cell_text("dev3", "rtt") == "4.00"  # the service's figures, via the snapshot
        victim = a.service.devices[3]
        a.service.prober.down.add(victim.address)
        await a.until(lambda: a.table.cell_text("dev3", "state") == "DOWN")
        log = a.app.screen.query_one(TransitionLog)
        await a.until(lambda: any("dev3" in line and "DOWN" in line for line in log.lines_written))
        assert a.service.engine.trackers["dev3"].state is State.DOWN
        await a.pilot.press("colon", *"probe dev5", "enter")
        await a.until(lambda: bool(a.notices.containing("dev5: UP, reply in 4.00 ms")))
        assert a.service.engine.checks_on_demand == 1
        # Every viewer's log says who asked (the service was told this viewer's login).
        await a.until(lambda: any("dev5 checked now by " in line and ": up, 4.00 ms" in line
                                  for line in log.lines_written))
        await a.pilot.press("colon", *"probe nosuch", "enter")
        await a.until(lambda: bool(a.notices.containing("no device named 'nosuch'")))
        assert a.service.engine.checks_on_demand == 1
        await a.pilot.press("q")
    assert a.app.return_code == 0
    assert a.service.thread.is_alive() is False  # stopped by the fixture, not by the viewer's q


async def test_lost_feed_is_said_in_place_of_the_figures_and_the_view_comes_back(
        tmp_path: Path, private_redis: PrivateRedis) -> None:
    async with attached(tmp_path, private_redis.url) as a:
        await a.until(lambda: all(a.table.cell_text(n, "state") == "up" for n in a.table.row_order()))
        private_redis.kill()
        await a.until(lambda: a.table.has_class("-stale"), timeout=15)
        assert "LIVE FEED LOST since" in str(a.table.border_title)
        assert "LIVE FEED LOST since" in a.app.sub_title
        assert a.app.screen.query_one(HealthLine).lost is not None
        # The service goes on meanwhile: a device goes down while the feed is away...
        a.service.prober.down.add(a.service.devices[7].address)
        private_redis.start()  # ...and Redis comes back empty: the service publishes afresh
        await a.until(lambda: not a.table.has_class("-stale"), timeout=20)
        await a.until(lambda: a.table.cell_text("dev7", "state") == "DOWN")
        assert "LIVE FEED LOST" not in a.app.sub_title
        assert a.notices.containing("live feed back")


async def test_the_services_new_inventory_rebuilds_the_attached_dashboard(tmp_path: Path) -> None:
    """SIGHUP on the service (here: Engine.apply_inventory on its loop): a viewer's table, groups
    and names are made again with the devices added and without those removed (the sort kept),
    and the new one goes UP."""
    _shared_redis_up()
    async with attached(tmp_path, SHARED) as a:
        await a.until(lambda: len(a.table.row_order()) == N)
        await a.pilot.press("s")  # sort by state: kept through the change
        sort = a.table.sort_column
        added = make_devices(N + 1, interval=0.2)[N]
        devices = [*a.service.devices[1:], added]  # dev0 removed, one added
        a.service.loop.call_soon_threadsafe(a.service.engine.apply_inventory, devices)
        await a.until(lambda: added.name in a.table.row_order())
        await a.until(lambda: a.table.cell_text(added.name, "state") == "up")
        assert "dev0" not in a.table.row_order() and len(a.table.row_order()) == N
        assert a.table.sort_column == sort != "name"
        answers = (f"{added.name}: UP", f"{added.name} is being checked right now")
        for _ in range(5):  # the names know it; its own check (each 0.2 s) may be running: again
            seen = len(a.notices)
            await a.pilot.press("colon", *f"probe {added.name}", "enter")
            await a.until(lambda s=seen: any(t in n.message for n in a.notices[s:] for t in answers))
            if a.notices.containing(answers[0]):
                break
        assert a.notices.containing(answers[0]), a.notices.messages
        assert a.notices.containing("the service's inventory changed: 1 added, 1 removed"), a.notices.messages


async def test_who_asked_for_a_probe_is_shown_as_data(tmp_path: Path) -> None:
    """``by`` travels through Redis from any viewer (or anyone who writes the stream): the log
    shows it literally, never as markup or terminal control."""
    from datetime import UTC, datetime

    from textual.app import App, ComposeResult

    from poller.events import CheckResult

    class LogApp(App[None]):
        def compose(self) -> ComposeResult:
            yield TransitionLog()

    app = LogApp()
    async with app.run_test(size=(120, 10)) as pilot:
        log = app.query_one(TransitionLog)
        result = CheckResult("dev1", "127.0.0.2", datetime.now(UTC), 1, 1, 2.5, State.UP)
        log.add_probe(result, "[red]mallory[/red]\x1b[2J\x07")
        log.flush()
        await pilot.pause()
        line = log.lines_written[-1]
        assert "checked now by [red]mallory[/red]" in line
        assert "\x1b" not in line and "\x07" not in line


async def test_the_first_frame_is_painted_before_the_engine_starts_and_the_order_holds_after(
        tmp_path: Path) -> None:
    """The store's open and the feed's reader (the engine) wait for the dashboard's first frame
    with device rows, written to the terminal (Textual holds every repaint while the app mounts:
    a frame made then is not shown): on the engine's thread they would share the interpreter
    with it. That frame shows the first rows by name before the table has ordered every device
    (the order is made after it). The collector, off from the command's start, is on again by
    then. After the engine started (a full refresh of every row), the rows are in natural name
    order."""
    _shared_redis_up()
    site = f"t{uuid.uuid4().hex[:10]}"
    service = ThreadService(SHARED, site)
    service.start()
    runtime = AttachedRuntime(Site(SHARED, Keys(site)), Options(db=f"sqlite:///{tmp_path / 'none.db'}"))
    app = WardApp(runtime, collect_after_first_frame=True)  # as the command's start makes it
    painted: list[int] = []  # device rows on screen at each frame the dashboard showed
    order_made: list[bool] = []  # whether the table had ordered every device by then
    display = app._display

    def counting(screen: Any, renderable: Any) -> None:
        display(screen, renderable)
        if renderable is not None and screen is app.dashboard and not app._batch_count:
            table = app.dashboard.query_one(DeviceTable)
            order_made.append(table.order_made)
            painted.append(len(table.visible_rows()))

    app._display = counting  # type: ignore[method-assign]
    seen_at_start: list[list[int]] = []
    start = runtime.start

    collecting: list[bool] = []

    async def recording_start() -> None:
        seen_at_start.append(list(painted))
        collecting.append(gc.isenabled())
        await start()

    runtime.start = recording_start  # type: ignore[method-assign]
    gc.disable()
    try:
        await asyncio.wrap_future(app.engine_thread.submit(runtime.attach()))
        async with app.run_test(size=(120, 40)) as pilot:
            deadline = time.monotonic() + 8
            while not seen_at_start:
                assert time.monotonic() < deadline, "the engine never started"
                await pilot.pause(0.05)
            assert any(rows > 0 for rows in seen_at_start[0]), seen_at_start
            assert order_made[0] is False and painted[0] > 0
            assert collecting == [True]  # the collector was on again by then
            await pilot.pause(0.3)  # EngineStarted handled: every row refreshed
            table = app.screen.query_one(DeviceTable)
            assert table.row_order() == [f"dev{i}" for i in range(N)]
            await pilot.press("q")
    finally:
        gc.enable()
        service.stop()
        await _forget(SHARED, site)


async def test_the_attach_runs_on_the_engine_thread_while_the_app_is_made(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``wardtui --redis`` (cli/dashboard.attached_app): the site's inventory and snapshot are
    read and decoded on the engine's thread, started before Textual is loaded and the app made
    (its waits on Redis and its inflating overlap them); the app runs on that thread, loaded."""
    from wardtui.cli import build_parser, dashboard

    _shared_redis_up()
    site = f"t{uuid.uuid4().hex[:10]}"
    service = ThreadService(SHARED, site)
    service.start()
    began = threading.Event()
    threads: list[str] = []
    real_attach, real_init = AttachedRuntime.attach, WardApp.__init__

    async def attach(self: AttachedRuntime) -> None:
        threads.append(threading.current_thread().name)
        began.set()
        await real_attach(self)

    def init(self: WardApp, *args: Any, **kwargs: Any) -> None:
        assert began.wait(5), "the app was made before the attach began"
        real_init(self, *args, **kwargs)

    monkeypatch.setattr(AttachedRuntime, "attach", attach)
    monkeypatch.setattr(WardApp, "__init__", init)
    interval = sys.getswitchinterval()  # the command's process policy sets it: not this process's
    db = f"sqlite:///{tmp_path / 'h.db'}"
    args = build_parser().parse_args(["--redis", SHARED, "--site", site, "--db", db])
    app = None
    try:
        app = dashboard.attached_app(Site(SHARED, Keys(site)), args)
        assert threads == ["wardtui-engine"]
        assert sorted(app.runtime.engine.trackers) == sorted(d.name for d in service.devices)
        assert app.engine_thread.loop.is_running()
        assert await app.engine_thread.run(asyncio.sleep(0, "on it")) == "on it"
    finally:
        sys.setswitchinterval(interval)
        if app is not None:
            await app.engine_thread.run(app.runtime.close())
            app.engine_thread.close()
        service.stop()
        await _forget(SHARED, site)
