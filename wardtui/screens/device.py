"""The device drill-down (Enter on a dashboard row): live figures, RTT/loss charts, outages, SNMP."""

from __future__ import annotations

from collections.abc import Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol, TypeVar

from sqlalchemy.exc import SQLAlchemyError
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Static
from textual.worker import Worker, WorkerState

from poller.bus import EventBus, Subscription
from poller.events import Reboot, SnmpPoll, Transition
from poller.state import DeviceTracker
from store.history import HistoryStore
from store.maintenance import Retention
from store.queries import History, device_history, latest_snmp
from store.records import Outage, SnmpLatest
from wardtui.screens.help import HelpScreen, binding_keys
from wardtui.widgets.charts import SPANS, HistoryChart, Span, bin_history
from wardtui.widgets.device_facts import (
    identity_line,
    interface_row,
    last_reboot,
    outage_rows,
    stamp,
    state_line,
    stats_lines,
)
from wardtui.widgets.states import format_duration

T = TypeVar("T")
NOTES = (
    "Charts: average RTT and loss % per slice of the span; raw checks up to 24 h, then 1-minute "
    "and hourly rollups. Gaps: no checks stored (wardtui was not running).",
    "Times are UTC. Interface rates are bit/s from the latest SNMP poll.",
)
# Reasons the history cannot be read: the store never opened, is still opening, or the database
# went away. Monitoring goes on regardless; the screen says so instead of failing.
STORE_ERRORS = (RuntimeError, SQLAlchemyError, OSError)


class EngineLoop(Protocol):
    async def run(self, coro: Coroutine[Any, Any, T]) -> T: ...


@dataclass(frozen=True, slots=True)
class HistoryRead:
    history: History
    outages: list[Outage]


@dataclass(frozen=True, slots=True)
class SnmpRead:
    latest: SnmpLatest | None
    reboot: str | None


async def read_history(store: HistoryStore, device: str, span: Span,
                       retention: Retention | None) -> HistoryRead:
    """Runs on the engine's loop, which owns the store."""
    now = datetime.now(UTC)
    history = await device_history(store, device, now - span.length, now, retention=retention)
    return HistoryRead(history, await store.outages(device))


async def read_snmp(store: HistoryStore, device: str) -> SnmpRead:
    """Runs on the engine's loop, which owns the store."""
    latest = await latest_snmp(store, device)
    if latest is None:
        return SnmpRead(None, None)
    events = await store.snmp_events(device, since=datetime.now(UTC) - timedelta(days=365))
    return SnmpRead(latest, last_reboot(events))


class DeviceScreen(Screen[None]):
    """Pushed over the dashboard, so Esc (pop) finds the dashboard exactly as it was left."""

    CSS_PATH = "device.tcss"
    TICK = 1.0  # live figures and bus events
    SNMP_EVERY = 10.0  # seconds between SNMP reads from the store when no poll event arrived
    BINDINGS = [
        Binding("escape", "back", "Back", tooltip="back to the dashboard, filter and cursor kept"),
        *(Binding(s.key, f"span('{s.key}')", s.label, tooltip=f"charts over the last {s.label}")
          for s in SPANS),
        Binding("r", "refresh", "Refresh", tooltip="read history, outages and SNMP again"),
        Binding("question_mark", "help", "Help", tooltip="this screen's keys"),
        Binding("q", "app.quit", "Quit", tooltip="stop polling, save history, leave"),
    ]

    def __init__(self, tracker: DeviceTracker, bus: EventBus | None = None) -> None:
        super().__init__()
        self.tracker = tracker
        self.device = tracker.device.name
        self.span = SPANS[0]
        self.tier: str | None = None  # the tier the charts were last read from
        self.history_error: str | None = None
        self._bus = bus
        self._sub: Subscription | None = None
        self._outages: list[Outage] = []
        self._snmp_live_at: datetime | None = None
        self._reboot: str | None = None

    def compose(self) -> ComposeResult:
        yield Header()
        with VerticalScroll(id="device-body"):
            yield Static(id="device-identity")
            yield Static(id="device-state")
            yield Static(id="device-stats")
            yield HistoryChart("RTT ms (average)", id="rtt-chart")
            yield HistoryChart("loss %", y_max=100.0, fill=True, id="loss-chart")
            yield Static("outages", id="outages-title", classes="section")
            yield DataTable(id="outages", cursor_type="row", zebra_stripes=True)
            yield Static("SNMP", id="snmp-title", classes="section")
            yield Static(id="snmp-facts")
            yield DataTable(id="interfaces", cursor_type="row", zebra_stripes=True)
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = f"device {self.device}"
        self.query_one("#device-identity", Static).update(identity_line(self.tracker))
        self.query_one("#outages", DataTable).add_columns("start (UTC)", "end", "duration")
        self.query_one("#interfaces", DataTable).add_columns(
            "if", "name", "alias", "admin/oper", "speed", "in bit/s", "out bit/s")
        for widget in ("#snmp-title", "#snmp-facts", "#interfaces"):
            self.query_one(widget).display = False
        if self._bus is not None:
            # Samples of every device pass through; 20,000 covers 10 s of 2,000 checks/s.
            self._sub = self._bus.subscribe(f"device {self.device}", maxsize=20_000)
        self.show_live()
        self.set_interval(self.TICK, self.tick)
        self.set_interval(self.SNMP_EVERY, self._snmp_timer)
        self.load_history()
        self.load_snmp()
        self.query_one("#device-body").focus()

    def on_unmount(self) -> None:
        if self._bus is not None and self._sub is not None:
            self._bus.unsubscribe(self._sub)

    # -- live --------------------------------------------------------------------------------
    def show_live(self) -> None:
        """The tracker's figures, read from the engine's thread-safe fields."""
        now = datetime.now(UTC)
        self.query_one("#device-state", Static).update(state_line(self.tracker, now))
        self.query_one("#device-stats", Static).update("\n".join(stats_lines(self.tracker)))
        if any(o.end is None for o in self._outages):  # the ongoing outage's duration grows
            self._show_outages(now)

    def tick(self) -> None:
        reload_history = False
        if self._sub is not None:
            for event in self._sub.drain():
                if getattr(event, "device", None) != self.device:
                    continue
                if isinstance(event, Transition):
                    reload_history = True  # an outage opened or closed
                elif isinstance(event, SnmpPoll):
                    self._show_snmp_poll(event)
                elif isinstance(event, Reboot):  # the next poll event shows it
                    self._reboot = f"{stamp(event.booted_at)} UTC (seen {stamp(event.at)})"
        self.show_live()
        if reload_history:
            self.load_history()

    # -- store reads (workers: the store belongs to the engine's loop) -----------------------
    def _engine_loop(self) -> tuple[HistoryStore, EngineLoop] | None:
        runtime = getattr(self.app, "runtime", None)
        loop = getattr(self.app, "engine_thread", None)
        if runtime is None or loop is None:
            return None
        return runtime.store, loop

    def _retention(self) -> Retention | None:
        options = getattr(getattr(self.app, "runtime", None), "options", None)
        if options is None:
            return None
        return Retention(raw=options.keep_raw, minute=options.keep_1m, hour=options.keep_1h)

    @work(group="device-history", exclusive=True, exit_on_error=False)
    async def load_history(self) -> None:
        span = self.span
        access = self._engine_loop()
        if access is None:
            self._history_unavailable("no history store")
            return
        store, loop = access
        try:
            read = await loop.run(read_history(store, self.device, span, self._retention()))
        except STORE_ERRORS as exc:
            self._history_unavailable(str(exc))
            return
        if span is self.span:  # a key may have switched the span while this read ran
            self._show_history(span, read)

    @work(group="device-snmp", exclusive=True, exit_on_error=False)
    async def load_snmp(self) -> None:
        access = self._engine_loop()
        if access is None:
            return
        store, loop = access
        try:
            read = await loop.run(read_snmp(store, self.device))
        except STORE_ERRORS:
            return  # the history part already says the store is unavailable
        if read.latest is not None:
            self._show_snmp(read)

    @on(Worker.StateChanged)
    def _worker_failed(self, event: Worker.StateChanged) -> None:
        if event.state is WorkerState.ERROR:
            error = event.worker.error
            self.notify(f"{type(error).__name__}: {error}", title=f"{self.device}: {event.worker.group}",
                        severity="error")

    # -- showing what was read -----------------------------------------------------------------
    def _history_unavailable(self, reason: str) -> None:
        self.history_error = reason
        message = f"history unavailable: {reason}"
        for chart in self.query(HistoryChart):
            chart.show(self.span, [], [], message)
        self.query_one("#outages-title", Static).update(f"outages: {message}")

    def _show_history(self, span: Span, read: HistoryRead) -> None:
        self.history_error = None
        self.tier = read.history.tier
        series = bin_history(read.history, span)
        self.query_one("#rtt-chart", HistoryChart).show(span, series.rtt_x, series.rtt_ms)
        self.query_one("#loss-chart", HistoryChart).show(span, series.loss_x, series.loss_pct)
        self._outages = read.outages
        self._show_outages(datetime.now(UTC))

    def _show_outages(self, now: datetime) -> None:
        table = self.query_one("#outages", DataTable)
        rows = outage_rows(self._outages, now)
        title = f"outages: {len(rows)}" if rows else "outages: none recorded"
        self.query_one("#outages-title", Static).update(title)
        table.display = bool(rows)
        with self.app.batch_update():
            table.clear()
            for row in rows:
                table.add_row(*row)

    def _show_snmp(self, read: SnmpRead) -> None:
        latest = read.latest
        assert latest is not None
        system = latest.system
        self._show_snmp_facts(system.name, system.descr, system.uptime_s, latest.polled_at, read.reboot)
        self._show_interfaces(latest.interfaces)

    def _show_snmp_poll(self, poll: SnmpPoll) -> None:
        self._snmp_live_at = poll.at
        self._show_snmp_facts(poll.sys_name, poll.sys_descr, poll.uptime_s, poll.at, self._reboot)
        self._show_interfaces(poll.interfaces)

    def _show_snmp_facts(self, name: str, descr: str, uptime_s: float, polled_at: datetime,
                         reboot: str | None) -> None:
        self._reboot = reboot
        lines = [f"sysName {name}  ·  uptime {format_duration(timedelta(seconds=uptime_s))}  ·  "
                 f"polled {stamp(polled_at)} UTC", f"description {descr}"]
        lines.append(f"last reboot {reboot}" if reboot else "last reboot: none recorded")
        self.query_one("#snmp-facts", Static).update("\n".join(lines))
        for widget in ("#snmp-title", "#snmp-facts", "#interfaces"):
            self.query_one(widget).display = True

    def _show_interfaces(self, interfaces: Any) -> None:
        table = self.query_one("#interfaces", DataTable)
        rows = [interface_row(i) for i in interfaces]
        self.query_one("#snmp-title", Static).update(f"SNMP · {len(rows)} interfaces")
        with self.app.batch_update():
            table.clear()  # one device's interfaces: a few dozen rows at most
            for row in rows:
                table.add_row(*row, key=row[0])

    def _snmp_timer(self) -> None:
        live = self._snmp_live_at
        if live is None or datetime.now(UTC) - live > timedelta(seconds=self.SNMP_EVERY):
            self.load_snmp()

    # -- keys ----------------------------------------------------------------------------------
    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        # The span on show is greyed out in the footer: that is how it says which one it is.
        if action == "span" and parameters and parameters[0] == self.span.key:
            return None
        return True

    def action_back(self) -> None:
        self.app.pop_screen()

    def action_span(self, key: str) -> None:
        span = next(s for s in SPANS if s.key == key)
        if span is self.span:
            return
        self.span = span
        self.refresh_bindings()
        for chart in self.query(HistoryChart):
            chart.show(span, [], [], "reading history…")
        self.load_history()

    def action_refresh(self) -> None:
        self.show_live()
        self.load_history()
        self.load_snmp()

    def action_help(self) -> None:
        self.app.push_screen(HelpScreen(binding_keys(self.app, self.BINDINGS), notes=NOTES,
                                        title=f"device {self.device}: keys"))
