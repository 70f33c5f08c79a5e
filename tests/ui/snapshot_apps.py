"""A deterministic wardtui for snapshot tests: fixed device states, fixed history, no polling."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from textual import work
from textual.pilot import Pilot
from textual.widgets import Input

import wardtui.app
from poller.engine import Engine
from poller.events import (
    CheckResult,
    Event,
    Gauges,
    InterfaceStat,
    Reboot,
    SnmpPoll,
    State,
    Transition,
)
from poller.inventory import Device
from poller.notify.acks import Ack
from poller.notify.windows import Window, parse_matcher
from poller.quiet import Quiet, QuietChanged
from poller.state import DeviceTracker
from store.history import HistoryStore
from tests.fakes import FakeProber, FakeSnmpClient, make_devices
from wardtui.app import WardApp
from wardtui.runtime import Options, Runtime
from wardtui.screens.dashboard import EngineStarted

# The clock every snapshot sees (time-machine, tick=False): what is on screen is relative to it.
FROZEN_AT = datetime(2026, 11, 16, 9, 30, 0, tzinfo=UTC)
RUN_START = FROZEN_AT - timedelta(hours=1)  # the run began an hour ago: charts show a full hour
INTERVAL = 10.0  # seconds between checks of a device
CHECKS = int(3600 / INTERVAL)  # checks per device since RUN_START
N = 20
DB = "sqlite:///history.db"  # relative: the header then says "sqlite history.db" wherever tmp_path is
REPORT_DIR = "/srv/noc"  # the export box proposes a file in the current directory; tests show this one

# What each device does, by check index i (0 .. CHECKS-1, every INTERVAL s from RUN_START):
OUTAGE_DEV5 = (range(120, 135), range(287, CHECKS))  # 2m30s down 40 min ago; down again 12 min ago
DOWN_DEV16_FROM = CHECKS - 5  # went down in the last minute
FLAPS_DEV8 = {340, 341, 346, 347}  # down, up, down, up within 80 s: flapping
LOSSY_DEV13 = {0, 3, 6}  # i % 10 in these: the first probe is lost, the confirmation answers
LOSSY_DEV3 = range(200, 212)  # a spell of lost first probes in dev3's chart
RESTORED_DEV11 = FROZEN_AT - timedelta(days=2, hours=4, minutes=7)  # open outage from an earlier run
NEVER_CHECKED = "dev19"  # hourly device whose first check is not due yet: unknown
SNMP_DEVICE = "dev3"
# The quiet state (what `a` and `m` write): dev5's outage acknowledged, branch b4 (dev4, dev11
# DOWN, dev18) in a maintenance window.
ACK_DEV5 = ("alice", "[b]on site[/b], ticket 42")
WINDOW_B4 = ("branch=b4", "bob", "core switch swap CHG-7")


def probe_rtt(k: int, name: str, i: int, attempt: int) -> float | None:
    """RTT (ms) of the ``attempt``-th probe of check ``i`` of device number ``k``; None: lost."""
    if name == "dev11":
        return None
    if name == "dev5" and any(i in r for r in OUTAGE_DEV5):
        return None
    if name == "dev16" and i >= DOWN_DEV16_FROM:
        return None
    if name == "dev8" and i in FLAPS_DEV8:
        return None
    if attempt == 0 and ((name == "dev13" and i % 10 in LOSSY_DEV13) or (name == "dev3" and i in LOSSY_DEV3)):
        return None
    base = 48.0 if name == "dev2" else 0.3 + 0.25 * (k % 5)  # dev2 sits behind a slow WAN link
    wobble = ((i * 7 + k * 3) % 11) * (0.9 if name == "dev2" else 0.05)
    if name == SNMP_DEVICE:
        wobble += 1.5 if 150 <= i < 180 else 0.0  # a slow spell in the chart
    return round(base + wobble, 3)


def devices(snmp: bool) -> list[Device]:
    found = make_devices(N, interval=INTERVAL)
    for index, device in enumerate(found):
        if device.name == NEVER_CHECKED:
            found[index] = dataclasses.replace(device, interval=3600.0)
        elif snmp and device.name == SNMP_DEVICE:
            found[index] = dataclasses.replace(device, snmp_credential="lab")
    return found


@dataclass
class Scenario:
    """One hour of checks played into the real engine's trackers and the SQLite store."""

    runtime: Runtime
    checks: list[CheckResult] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)  # transitions and flap changes, in order

    @property
    def engine(self) -> Engine:
        return self.runtime.engine

    def play(self) -> None:
        """Every check since RUN_START, as the engine would have folded it (with confirmations)."""
        spacing = self.runtime.options.confirm_spacing
        confirm = self.runtime.options.confirm_probes
        for i in range(CHECKS):
            for k, tracker in enumerate(self.engine.trackers.values()):
                if tracker.device.name == NEVER_CHECKED:
                    continue
                at = RUN_START + timedelta(seconds=i * INTERVAL + k * 0.45)
                self._check(k, tracker, i, at, confirm, spacing)
        counts = {state: 0 for state in State}
        for tracker in self.engine.trackers.values():
            counts[tracker.state] += 1
        self.engine.state_counts.update(counts)
        self.engine.flapping = sum(t.flapping for t in self.engine.trackers.values())
        self.engine.checks_done = len(self.checks)

    def _check(self, k: int, tracker: DeviceTracker, i: int, at: datetime, confirm: int,
               spacing: float) -> None:
        name = tracker.device.name
        rtt = probe_rtt(k, name, i, 0)
        tracker.record_probe(rtt)
        sent, last = 1, rtt
        if rtt is None and tracker.needs_confirmation():
            for attempt in range(1, confirm + 1):
                last = probe_rtt(k, name, i, attempt)
                tracker.record_probe(last)
                sent += 1
                if last is not None:
                    break
        received = 0 if last is None else 1
        done = at + timedelta(seconds=(sent - 1) * spacing)
        mono = (done - RUN_START).total_seconds()  # the flap window only compares these
        transition, flap = tracker.apply_check(received > 0, at, done, mono, last)
        self.checks.append(CheckResult(name, tracker.device.address, at, sent, received, last, tracker.state))
        self.events += [e for e in (transition, flap) if e is not None]

    def gauges(self, j: int, samples: int) -> Gauges:
        """The ``j``-th of ``samples`` fixed engine gauges; the last one matches the device states."""
        counts, last = self.engine.state_counts, j == samples - 1
        down = counts[State.DOWN] if last else 1 + (j * 3) // samples
        extra = {"probes_in_flight": float(j % 3), "late_replies": 0.0, "events_dropped": 0.0,
                 "store_spool_rows": 0.0, "store_samples_dropped": 0.0, "store_failing": 0.0}
        if self.runtime.snmp is not None:
            extra |= {"snmp_agents": 1.0, "snmp_polls_per_s": 0.1, "snmp_requests_per_s": 0.3,
                      "snmp_timeouts": 0.0, "snmp_skipped": 0.0, "snmp_lag_p99_ms": 2.4,
                      "snmp_agents_failing": 0.0}
        return Gauges(at=FROZEN_AT - timedelta(seconds=samples - j), devices_up=counts[State.UP],
                      devices_down=down, devices_unknown=counts[State.UNKNOWN],
                      devices_flapping=self.engine.flapping, checks_per_s=1.8 + 0.1 * (j % 4),
                      probes_per_s=2.0 + 0.1 * (j % 5), in_flight=j % 3, skipped=0, skipped_late=0,
                      skipped_busy=2, lag_p50_ms=0.3 + 0.05 * (j % 3), lag_p99_ms=1.0 + 0.4 * ((j * 5) % 7),
                      oldest_overdue_ms=0.0, rcvbuf_drops=0, send_errors=0, store_queue=j % 4, extra=extra)


def snmp_history() -> tuple[list[SnmpPoll], list[Reboot]]:
    """dev3's agent: polled every minute; it rebooted 20 minutes ago."""
    device = next(d for d in make_devices(N) if d.name == SNMP_DEVICE)
    booted = FROZEN_AT - timedelta(minutes=20, seconds=31)
    polls = []
    for minute in range(5, 0, -1):
        at = FROZEN_AT - timedelta(minutes=minute, seconds=15)
        load = 1e6 * (40 + 7 * minute)
        interfaces = (
            InterfaceStat(1, "Gi0/0", "uplink to core", "up", "up", 1_000_000_000, load, load / 3,
                          0, 0, 0, 0, True),
            InterfaceStat(2, "Gi0/1", "branch LAN", "up", "up", 1_000_000_000, load / 4, load / 2,
                          0, 0, 12, 0, True),
            InterfaceStat(3, "Gi0/2", "backup link", "up", "down", 100_000_000, None, None,
                          0, 0, 0, 0, True),
            InterfaceStat(4, "Null0", "", "down", "down", None, None, None, None, None, None, None, False),
        )
        polls.append(SnmpPoll(device.name, device.address, at, "br3-rtr", "Cisco IOS XE 17.9 (fixture)",
                              "1.3.6.1.4.1.9.1.2494", (at - booted).total_seconds(), interfaces))
    seen = FROZEN_AT - timedelta(minutes=20)
    reboot = Reboot(device.name, device.address, seen, (seen - booted).total_seconds(), 8_640_000.0, booted)
    return polls, [reboot]


async def _fill_store(scenario: Scenario, url: str, snmp: bool) -> None:
    """History as the earlier runs and this hour's run left it; the open outage restored as at start."""
    runtime = scenario.runtime
    async with HistoryStore(url) as store:
        await store.sync_devices(runtime.devices)
        dev11 = runtime.engine.trackers["dev11"].device
        await store.write_transitions([
            Transition("dev11", dev11.address, State.UNKNOWN, State.UP, RESTORED_DEV11 - timedelta(days=3),
                       None, 0.5),
            Transition("dev11", dev11.address, State.UP, State.DOWN, RESTORED_DEV11 + timedelta(seconds=2),
                       RESTORED_DEV11, None),
        ])
        runtime.engine.seed_outages(await store.open_outages())
        scenario.play()
        await store.write_checks(scenario.checks)
        await store.write_transitions([e for e in scenario.events if isinstance(e, Transition)])
        if snmp:
            polls, reboots = snmp_history()
            await store.write_snmp_polls(polls)
            await store.write_snmp_events(reboots)


def build(tmp_path: Path, snmp: bool = True) -> tuple[SnapshotApp, Scenario]:
    """The app over a store in ``tmp_path`` (the current directory: see :data:`DB`)."""
    options = Options(db=DB, interval=INTERVAL, spool=tmp_path / "spool")
    if snmp:
        credentials = tmp_path / "credentials.yaml"
        credentials.write_text("lab:\n  version: 2c\n  community: not-on-screen\n")
        credentials.chmod(0o600)
        options = dataclasses.replace(options, credentials=credentials, snmp_interval=60.0)
    runtime = Runtime(options, prober=FakeProber(), devices=devices(snmp),
                      snmp_client=FakeSnmpClient() if snmp else None)
    scenario = Scenario(runtime)
    asyncio.run(_fill_store(scenario, runtime.store.url, snmp))
    return SnapshotApp(runtime, scenario), scenario


class SnapshotApp(WardApp):
    """WardApp whose engine never polls: it opens the store and stops there.

    A polling engine on its thread would change states, RTTs and gauges while the screenshot
    is taken; the states were played into the trackers beforehand instead (:class:`Scenario`).
    """

    # Textual reads a relative CSS_PATH beside the subclass's module: name WardApp's own file.
    CSS_PATH = str(Path(wardtui.app.__file__).with_name(WardApp.CSS_PATH))

    def __init__(self, runtime: Runtime, scenario: Scenario) -> None:
        super().__init__(runtime)
        self.scenario = scenario
        self.theme = "textual-dark"  # not whatever TEXTUAL_THEME a developer has set

    @work(group="engine", exit_on_error=False)
    async def run_engine(self) -> None:
        await self.engine_thread.run(self.runtime.store.open())  # the drill-down reads history
        self.dashboard.post_message(EngineStarted())


# -- what runs before a screenshot (snap_compare's run_before) ----------------------------------


async def until(pilot: Pilot[object], what: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout  # monotonic: time-machine leaves it running
    while not what():
        assert time.monotonic() < deadline, "condition not met in time"
        await pilot.pause(0.02)


async def live_dashboard(pilot: Pilot[object], gauges: int = 40) -> None:
    """Started, with the run's transitions in the log and ``gauges`` samples in the sparklines.

    Events are drained by calling the screen's tick directly, right after publishing them: the
    timer's own ticks then find nothing new, so nothing depends on when they fire.
    """
    app = pilot.app
    assert isinstance(app, SnapshotApp)
    await until(pilot, lambda: app.engine_worker is not None)  # started once the first frame is shown
    assert app.engine_worker is not None
    await app.engine_worker.wait()
    await pilot.pause()  # EngineStarted handled
    bus, scenario = app.runtime.engine.bus, app.scenario
    first = [e for e in scenario.events if isinstance(e, Transition) and e.from_state is State.UNKNOWN]
    later = [e for e in scenario.events if e not in first]
    # A tick with no first answers writes their summary line: the live app's next tick, 0.5 s
    # after them, long before the next transition.
    batches: list[list[Event]] = [list(first), [], *([e] for e in later)]
    bus.publish(QuietChanged(quiet_state(app)))  # type: ignore[arg-type]
    for j in range(gauges):
        for event in [*(batches[j] if j < len(batches) else []), scenario.gauges(j, gauges)]:
            bus.publish(event)
        app.dashboard.tick()
    await pilot.pause()


def quiet_state(app: SnapshotApp) -> Quiet:
    """The acknowledgement and the window of the snapshots (see ACK_DEV5, WINDOW_B4)."""
    since = app.runtime.engine.trackers["dev5"].down_since
    assert since is not None
    who, note = ACK_DEV5
    ack = Ack(1, "dev5", since, note, who, FROZEN_AT - timedelta(minutes=5))
    matcher, by, why = WINDOW_B4
    window = Window(3, (parse_matcher(matcher),), starts_at=FROZEN_AT - timedelta(minutes=30),
                    ends_at=FROZEN_AT + timedelta(hours=2), note=why, created_by=by,
                    created_at=FROZEN_AT - timedelta(minutes=31))
    return Quiet((window,), (ack,), FROZEN_AT)


def steady_cursors(pilot: Pilot[object]) -> None:
    """A focused Input's cursor blinks on a timer: keep it shown, so screenshots agree."""
    for field_ in pilot.app.screen.query(Input):
        field_.cursor_blink = False


def run_before(*keys: str, wait: Callable[[Pilot[object]], Awaitable[None]] | None = None,
               gauges: int = 40) -> Callable[[Pilot[object]], Awaitable[None]]:
    """snap_compare's ``run_before``: a live dashboard, then ``keys``, then ``wait``."""

    async def before(pilot: Pilot[object]) -> None:
        await live_dashboard(pilot, gauges)
        await pilot.press(*keys)
        if wait is not None:
            await wait(pilot)
        await pilot.app.workers.wait_for_complete()
        await pilot.pause()
        steady_cursors(pilot)
        await pilot.pause()

    return before
