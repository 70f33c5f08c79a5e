"""The main screen: device table, gauges, transition log; fed by the engine's event bus."""

from __future__ import annotations

import gc
from datetime import UTC, datetime

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.message import Message
from textual.screen import Screen
from textual.timer import Timer
from textual.widgets import DataTable, Footer, Header, Input, Label

from poller.bus import Subscription
from poller.engine import Engine
from poller.events import (
    CheckResult,
    FlapChange,
    Gauges,
    InterfaceChange,
    Reboot,
    SnmpAgentChange,
    Transition,
)
from wardtui.screens.device import DeviceScreen
from wardtui.screens.help import HelpScreen, binding_keys
from wardtui.widgets.device_table import DeviceTable
from wardtui.widgets.gauges import GaugesPanel
from wardtui.widgets.states import StatePalette
from wardtui.widgets.transition_log import TransitionLog

# Keys that belong to widgets rather than to this screen's BINDINGS, listed in the help.
OTHER_KEYS = (
    ("↑ ↓ PgUp PgDn Home End", "move in the device table"),
    ("Enter", "open the device under the cursor (drill-down)"),
    ("Enter (in filter)", "keep the filter and go back to the table"),
    ("ctrl+p", "command palette (themes, screenshot)"),
    ("ctrl+q", "quit, like q"),
)


class EngineStarted(Message):
    """The store is open and open outages are restored: device states changed without events."""


class DashboardScreen(Screen[None]):
    """Drains the ``ui`` subscription every :attr:`TICK` seconds and updates widgets by diff."""

    CSS_PATH = "dashboard.tcss"
    TICK = 0.5
    FILTER_DELAY = 0.15  # seconds of no typing before the filter is applied
    BINDINGS = [
        Binding("slash", "filter", "Filter", tooltip="show only rows containing the text, live"),
        Binding("s", "sort", "Sort", tooltip="sort by the next column (see below)"),
        Binding("question_mark", "help", "Help", tooltip="this screen"),
        Binding("q", "app.quit", "Quit", tooltip="stop polling, save history, leave"),
        Binding("escape", "clear_filter", "Clear filter", tooltip="close and clear the filter"),
    ]

    def __init__(self, engine: Engine, sub_maxsize: int = 100_000) -> None:
        super().__init__()
        self.engine = engine
        self._sub_maxsize = sub_maxsize
        self._sub: Subscription | None = None
        self._dropped_seen = 0
        self._filter_timer: Timer | None = None

    def compose(self) -> ComposeResult:
        yield Header()
        yield DeviceTable(self.engine.trackers, id="devices")
        with Horizontal(id="filter-bar"):
            yield Label("filter /", id="filter-label")
            yield Input(placeholder="text in any column; words must all match", id="filter")
        with Horizontal(id="bottom"):
            yield GaugesPanel(id="gauges")
            yield TransitionLog(id="log")
        yield Footer()

    def on_mount(self) -> None:
        palette = StatePalette.from_variables(self.app.theme_variables)
        self.query_one(DeviceTable).palette = palette
        self.query_one(TransitionLog).palette = palette
        self.query_one(GaugesPanel).warn_style = palette.flapping
        self.query_one(GaugesPanel).border_title = "engine"
        self.query_one(TransitionLog).border_title = "transitions (UTC)"
        self._sub = self.engine.bus.subscribe("ui", maxsize=self._sub_maxsize)
        self.set_interval(self.TICK, self.tick)
        self.query_one(DeviceTable).focus()

    def on_unmount(self) -> None:
        if self._sub is not None:
            self.engine.bus.unsubscribe(self._sub)

    def on_engine_started(self, _: EngineStarted) -> None:
        with self.app.batch_update():
            self.query_one(DeviceTable).refresh_devices(self.engine.trackers)
        # The table's rows and every device's state live as long as the app: once the first
        # round has filled them in, keep full collections from rescanning them (with 10,000
        # devices a gen-2 collection held the interpreter for ~300 ms every few seconds).
        # (capped: with hour-long intervals the bulk of rows still exists within a minute)
        first_round = min(60.0, max((s.interval for s in self.engine.slots), default=0.0)) + 2.0
        self.set_timer(first_round, gc.freeze)

    # -- the live tick ------------------------------------------------------------------------
    def tick(self) -> None:
        """Fold whatever arrived since the last tick into the widgets, in one repaint."""
        if self._sub is None:
            return
        changed: set[str] = set()
        gauges: Gauges | None = None
        transitions: list[Transition] = []
        log = self.query_one(TransitionLog)
        with self.app.batch_update():
            for event in self._sub.drain():
                if isinstance(event, CheckResult):
                    changed.add(event.device)
                elif isinstance(event, Gauges):
                    gauges = event
                elif isinstance(event, Transition):
                    changed.add(event.device)
                    transitions.append(event)
                elif isinstance(event, FlapChange):
                    changed.add(event.device)
                    log.add_flap(event)
                elif isinstance(event, Reboot):
                    log.add_reboot(event)
                elif isinstance(event, InterfaceChange):
                    log.add_interface(event)
                elif isinstance(event, SnmpAgentChange):
                    log.add_snmp_agent(event)
            log.add_transitions(transitions)
            if self._sub.dropped != self._dropped_seen:
                # Samples were dropped for us: some rows may be stale, so look at them all.
                self._dropped_seen = self._sub.dropped
                changed = set(self.engine.trackers)
            self.query_one(DeviceTable).refresh_devices(changed, datetime.now(UTC))
            if gauges is not None:
                self.query_one(GaugesPanel).show(gauges)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        # Esc is only offered (in the footer too) while there is a filter to clear.
        if action == "clear_filter":
            return bool(self.query_one("#filter-bar").display or self.query_one(DeviceTable).filter_text)
        return True

    # -- keys ---------------------------------------------------------------------------------
    def action_filter(self) -> None:
        self.query_one("#filter-bar").display = True
        self.query_one("#filter", Input).focus()
        self.refresh_bindings()

    def action_clear_filter(self) -> None:
        self._cancel_pending_filter()
        bar = self.query_one("#filter-bar")
        self.query_one("#filter", Input).value = ""
        bar.display = False
        self.query_one(DeviceTable).set_filter("")
        self.query_one(DeviceTable).focus()
        self.refresh_bindings()

    def action_sort(self) -> None:
        self.query_one(DeviceTable).cycle_sort()  # the table's title says which

    def action_help(self) -> None:
        # Built from BINDINGS so the help can never disagree with the footer.
        keys = binding_keys(self.app, self.BINDINGS)
        device_keys = binding_keys(self.app, DeviceScreen.BINDINGS)
        self.app.push_screen(HelpScreen([*keys, *OTHER_KEYS], [("device drill-down (Enter)", device_keys)]))

    @on(DataTable.RowSelected, "#devices")
    def _open_device(self, event: DataTable.RowSelected) -> None:
        # Pushed, not switched: this screen stays as it is underneath (filter, cursor, sort).
        tracker = self.engine.trackers.get(str(event.row_key.value))
        if tracker is not None:
            self.app.push_screen(DeviceScreen(tracker, self.engine.bus))

    @on(Input.Changed, "#filter")
    def _filter_changed(self, event: Input.Changed) -> None:
        # Applied once typing pauses: refilling a 10,000-row table on every keystroke stalls
        # the loop the engine runs on (about 0.5 s per key was measured).
        self._cancel_pending_filter()
        value = event.value
        self._filter_timer = self.set_timer(self.FILTER_DELAY,
                                            lambda: self.query_one(DeviceTable).set_filter(value))

    def _cancel_pending_filter(self) -> None:
        if self._filter_timer is not None:
            self._filter_timer.stop()
            self._filter_timer = None

    @on(Input.Submitted, "#filter")
    def _filter_submitted(self, event: Input.Submitted) -> None:
        self._cancel_pending_filter()
        self.query_one(DeviceTable).set_filter(event.value)
        if not event.value:
            self.query_one("#filter-bar").display = False
        self.query_one(DeviceTable).focus()
        self.refresh_bindings()
