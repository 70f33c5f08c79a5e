"""The device drill-down (Enter on a dashboard row): live figures, RTT/loss charts, outages, SNMP.

The key that opens it is reflected by the first frame, so that frame holds only what is cheap
to build: the live figures and the chart frames. Store reads start at once (on the engine's
loop) but what they bring is drawn after the first frame; the outage table and the SNMP
section (facts, interface table, interface chart) are mounted only once there is something
to put in them, so a device without outages or SNMP never pays for them.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.css.query import NoMatches
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header
from textual.worker import Worker, WorkerState

from poller.bus import EventBus, Subscription
from poller.events import Reboot, SnmpFailure, SnmpPoll, Transition, Trap
from poller.quiet import Quiet, QuietChanged
from poller.state import TrackerView
from store.queries import InterfaceHistory
from store.records import Outage
from wardtui.history_access import DeviceHistory, DeviceSnmp, HistoryAccess, store_errors
from wardtui.literal import Literal, literal
from wardtui.screens.help import HelpScreen, binding_keys
from wardtui.screens.probe import probe_and_tell
from wardtui.screens.quiet import AckBox, MaintenanceBox, QuietKeys
from wardtui.widgets.charts import (
    RATE_LEGEND,
    SPANS,
    HistoryChart,
    RateSeries,
    Span,
    bin_history,
    bin_rates,
    rate_lines,
)
from wardtui.widgets.device_facts import (
    InterfaceLike,
    identity_line,
    last_reboot,
    outage_rows,
    snmp_fact_lines,
    snmp_failure_line,
    snmp_status_line,
    stamp,
    state_line,
)
from wardtui.widgets.device_traps import PER_DEVICE, RecentTraps, traps_text
from wardtui.widgets.drilldown_tables import InterfaceTable, OutageTable
from wardtui.widgets.live_stats import LiveStats
from wardtui.widgets.quiet_marks import quiet_lines
from wardtui.widgets.vim_keys import VimScroll

NOTES = (
    "Charts: averages per slice of the span; raw data up to 24 h, then 1-minute and hourly "
    "rollups. Gaps: nothing stored (wardtui was not running).",
    "Times are UTC; the interface table's rates are from the latest SNMP poll.",
    "j k g G: as ↓ ↑ Home End (scroll the screen, or move in a table).",
)

class DeviceScreen(Screen[None]):
    """Pushed over the dashboard, so Esc (pop) finds the dashboard exactly as it was left."""

    CSS_PATH = "device.tcss"
    AUTO_FOCUS = "#device-body"  # the scroll keys work at once
    # Under 32 lines (an 80x24 SSH window) the charts get shorter so both fit under the figures.
    VERTICAL_BREAKPOINTS = [(0, "-short"), (32, "-tall")]
    TICK = 1.0  # live figures and bus events
    SNMP_EVERY = 10.0  # seconds between SNMP reads from the store when no poll event arrived
    BINDINGS = [
        Binding("escape", "back", "Back", tooltip="back to the dashboard, filter and cursor kept"),
        *(Binding(s.key, f"span('{s.key}')", s.label, tooltip=f"charts over the last {s.label}")
          for s in SPANS),
        Binding("i", "interfaces", "Interfaces",
                tooltip="cursor into the SNMP interface table: ↑/↓ or Enter chart an interface's "
                        "in/out bit/s"),
        Binding("r", "refresh", "Refresh", tooltip="read history, outages and SNMP again"),
        # Not in the footer (full at 80 columns): the help lists it, as it has a tooltip.
        Binding("n", "probe", "Probe now", show=False,
                tooltip="check this device now, outside its schedule (attached: the service checks "
                        "it, every viewer sees the result)"),
        Binding("a", "acknowledge", "Acknowledge", show=False, tooltip="its outage, with a note"),
        Binding("m", "maintenance", "Maintenance", show=False,
                tooltip="a window from now over it (length, note)"),
        Binding("question_mark", "help", "Help", tooltip="this screen's keys"),
        Binding("q", "app.quit", "Quit", tooltip="stop polling, save history, leave"),
    ]

    def __init__(self, tracker: TrackerView, bus: EventBus | None = None,
                 history: HistoryAccess | None = None,
                 probe: Callable[[str], Awaitable[dict[str, Any]]] | None = None,
                 quiet: QuietKeys | None = None, traps: RecentTraps | None = None) -> None:
        """``history``: where outages, charts and SNMP are read from (``None``: "no history store").
        ``probe``: checks a device now (``n``); ``None``: the key says there is nothing to ask.
        ``quiet``: the maintenance windows and acknowledgements in force, and what ``a`` and ``m``
        call (then QuietChanged on the bus keeps them up to date). ``traps``: the device's traps
        received before it was opened (those after come on the bus)."""
        super().__init__()
        self.quiet_keys = quiet
        self.quiet = quiet.now() if quiet is not None else Quiet()
        self.history = history
        self.probe = probe
        self.tracker = tracker
        self.device = tracker.device.name
        self.span = SPANS[0]
        self.tier: str | None = None  # the tier the charts were last read from
        self.history_error: str | None = None
        self.if_index: int | None = None  # the interface charted (or being read for the chart)
        self.if_series: RateSeries | None = None  # what the interface chart plots, in bit/s
        self.if_tier: str | None = None
        self._bus = bus
        self._sub: Subscription | None = None
        self._outages: list[Outage] = []
        self._if_names: dict[int, str] = {}
        self._snmp_live_at: datetime | None = None
        self._reboot: str | None = None
        self._snmp_facts: list[str] = []  # the last SNMP answer, as lines
        self._snmp_failure: str | None = None  # the polls since the last answer, when they failed
        self._painted = asyncio.Event()  # set after the first frame: reads are drawn after it
        self._traps: deque[Trap] = deque(traps.of(self.device) if traps is not None else (),
                                         maxlen=PER_DEVICE)

    def compose(self) -> ComposeResult:
        yield Header()
        with VimScroll(id="device-body"):
            yield Literal(identity_line(self.tracker), id="device-identity")
            yield Literal(id="device-state")
            yield Literal(id="device-quiet")  # acknowledged, in maintenance: shown only then
            yield LiveStats(self.tracker, id="device-stats")
            yield HistoryChart("RTT ms (average)", id="rtt-chart")
            yield HistoryChart("loss %", y_max=100.0, fill=True, id="loss-chart")
            yield Literal("outages", id="outages-title", classes="section")
            # Shown from the first trap: a trap's text is the sender's, drawn literally.
            yield Literal(id="traps-title", classes="section")
            yield Literal(id="traps")
        yield Footer(show_command_palette=False)

    def on_mount(self) -> None:
        self.sub_title = f"device {self.device}"
        if self._bus is not None:
            # Samples of every device pass through; 20,000 covers 10 s of 2,000 checks/s.
            self._sub = self._bus.subscribe(f"device {self.device}", maxsize=20_000)
        self.show_live()
        self._show_traps()
        self.set_interval(self.TICK, self.tick)
        self.set_interval(self.SNMP_EVERY, self._snmp_timer)
        self.call_after_refresh(self._painted.set)
        self.load_history()
        self.load_snmp()

    def on_unmount(self) -> None:
        if self._bus is not None and self._sub is not None:
            self._bus.unsubscribe(self._sub)

    @property
    def loaded(self) -> bool:
        """The first frame is drawn and no read of this screen is pending (tests, screenshots)."""
        return (self._painted.is_set() and (self.tier is not None or self.history_error is not None)
                and not any(w.node is self and not w.is_finished for w in self.app.workers))

    # -- live --------------------------------------------------------------------------------
    def show_live(self) -> None:
        """The tracker's figures, read from the engine's thread-safe fields."""
        now = datetime.now(UTC)
        self.query_one("#device-state", Literal).update(state_line(self.tracker, now))
        lines = quiet_lines(self.quiet, self.tracker, now)
        quiet = self.query_one("#device-quiet", Literal)
        quiet.display = bool(lines)
        quiet.update(literal("\n".join(lines)))
        self.query_one(LiveStats).refresh()
        if any(o.end is None for o in self._outages):  # the ongoing outage's duration grows
            self._show_outages(now)

    def tick(self) -> None:
        reload_history = traps = False
        if self._sub is not None:
            for event in self._sub.drain():
                if isinstance(event, QuietChanged):
                    self.quiet = event.quiet
                    continue
                if getattr(event, "device", None) != self.device:
                    continue
                if isinstance(event, Transition):
                    reload_history = True  # an outage opened or closed
                elif isinstance(event, SnmpPoll):
                    self._show_snmp_poll(event)
                elif isinstance(event, SnmpFailure):
                    self._snmp_failure = snmp_failure_line(event)
                    self._render_snmp_facts()
                elif isinstance(event, Reboot):  # the next poll event shows it
                    self._reboot = f"{stamp(event.booted_at)} UTC (seen {stamp(event.at)})"
                elif isinstance(event, Trap):
                    self._traps.append(event)
                    traps = True
        self.show_live()
        if traps:
            self._show_traps()
        if reload_history:
            self.load_history()

    def action_probe(self) -> None:
        if self.probe is None:
            self.notify("no poller to ask", title="probe now", severity="error")
            return
        self.run_worker(probe_and_tell(self, self.probe, self.device), group="probe", exit_on_error=False)

    def action_acknowledge(self) -> None:
        if self.quiet_keys is None:
            self.notify("no poller to ask", title="acknowledge", severity="error")
            return
        self.app.push_screen(AckBox(self.device, self.quiet_keys))

    def action_maintenance(self) -> None:
        if self.quiet_keys is None:
            self.notify("no poller to ask", title="maintenance window", severity="error")
            return
        self.app.push_screen(MaintenanceBox(f"device={self.device}", self.quiet_keys))

    # -- store reads (workers: each read runs on the engine's loop, which owns the store) ----
    @work(group="device-history", exclusive=True, exit_on_error=False)
    async def load_history(self) -> None:
        span = self.span
        error = "no history store"
        read: DeviceHistory | None = None
        if self.history is not None:
            try:
                read = await self.history.device(self.device, span.length)
            except store_errors() as exc:
                error = str(exc)
        await self._painted.wait()  # a read that beats the first frame must not delay it
        if read is None:
            self._history_unavailable(error)
        elif span is self.span:  # a key may have switched the span while this read ran
            self._show_history(span, read)

    @work(group="device-snmp", exclusive=True, exit_on_error=False)
    async def load_snmp(self) -> None:
        if self.history is None:
            return
        try:
            read = await self.history.snmp(self.device)
        except store_errors():
            return  # the history part already says the store is unavailable
        await self._painted.wait()
        if read.latest is not None:
            self._show_snmp(read)
            # The chart of the interface under the cursor, in this worker: when it ends, the
            # whole SNMP section is drawn (what `loaded` and screenshots wait for).
            self.if_index = self._cursor_interface()
            await self._chart_interface()

    @work(group="device-interface", exclusive=True, exit_on_error=False)
    async def load_interface(self) -> None:
        await self._chart_interface()

    async def _chart_interface(self) -> None:
        ifindex, span = self.if_index, self.span
        if ifindex is None or self.history is None:
            return
        try:
            history = await self.history.interface(self.device, ifindex, span.length)
        except store_errors() as exc:
            self._if_chart().show(span, [], [], f"history unavailable: {exc}")
            return
        if ifindex == self.if_index and span is self.span:  # the cursor or the span moved on
            self._show_interface_history(ifindex, span, history)

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
        self.query_one("#outages-title", Literal).update(f"outages: {message}")

    def _show_history(self, span: Span, read: DeviceHistory) -> None:
        self.history_error = None
        self.tier = read.history.tier
        series = bin_history(read.history, span)
        self.query_one("#rtt-chart", HistoryChart).show(span, series.rtt_x, series.rtt_ms)
        self.query_one("#loss-chart", HistoryChart).show(span, series.loss_x, series.loss_pct)
        self._outages = read.outages
        self._show_outages(datetime.now(UTC))

    def _show_outages(self, now: datetime) -> None:
        rows = outage_rows(self._outages, now)
        title = f"outages: {len(rows)}" if rows else "outages: none recorded"
        self.query_one("#outages-title", Literal).update(title)
        try:
            table = self.query_one("#outages", OutageTable)
        except NoMatches:
            if not rows:
                return
            table = OutageTable(id="outages")
            self.query_one("#device-body").mount(table, after="#outages-title")
        table.show(rows)

    def _show_traps(self) -> None:
        """The last traps, newest first; hidden while there are none."""
        title, lines = traps_text(self._traps)
        for widget in self.query("#traps-title, #traps"):
            widget.display = bool(self._traps)
        self.query_one("#traps-title", Literal).update(title)
        self.query_one("#traps", Literal).update(lines)

    def _snmp_section(self) -> InterfaceTable:
        """The interface table, with the SNMP title, facts and interface chart mounted around it
        the first time there is SNMP data for this device."""
        try:
            return self.query_one("#interfaces", InterfaceTable)
        except NoMatches:
            pass
        table = InterfaceTable(id="interfaces")
        self.query_one("#device-body").mount(
            Literal("SNMP", id="snmp-title", classes="section"), Literal(id="snmp-facts"), table,
            HistoryChart("interface", id="if-chart"))
        self.refresh_bindings()  # the i key applies now
        return table

    def _if_chart(self) -> HistoryChart:
        return self.query_one("#if-chart", HistoryChart)

    def _show_snmp(self, read: DeviceSnmp) -> None:
        latest = read.latest
        assert latest is not None
        system = latest.system
        self._snmp_failure = snmp_status_line(latest.status)
        if system is None or latest.polled_at is None:  # polled, never answered
            self._snmp_facts = ["no SNMP answer yet"]
            self._render_snmp_facts()
        else:
            self._show_snmp_facts(system.name, system.descr, system.uptime_s, latest.polled_at,
                                  last_reboot(read.events), system.missing, system.object_id)
        self._show_interfaces(latest.interfaces)

    def _show_snmp_poll(self, poll: SnmpPoll) -> None:
        self._snmp_live_at = poll.at
        self._snmp_failure = None
        self._show_snmp_facts(poll.sys_name, poll.sys_descr, poll.uptime_s, poll.at, self._reboot,
                              poll.missing, poll.sys_object_id)
        self._show_interfaces(poll.interfaces)
        if self.if_index is None:
            self.if_index = self._cursor_interface()
            self.load_interface()

    def _show_snmp_facts(self, name: str, descr: str, uptime_s: float | None, polled_at: datetime,
                         reboot: str | None, missing: tuple[str, ...] = (), object_id: str = "") -> None:
        self._reboot = reboot
        self._snmp_facts = snmp_fact_lines(name, descr, uptime_s, polled_at, reboot, missing, object_id)
        self._render_snmp_facts()

    def _render_snmp_facts(self) -> None:
        """The last answer's facts, and how the polls since went when they failed."""
        self._snmp_section()
        failure = [self._snmp_failure] if self._snmp_failure else []
        self.query_one("#snmp-facts", Literal).update("\n".join([*self._snmp_facts, *failure]))

    def _show_interfaces(self, interfaces: Sequence[InterfaceLike]) -> None:
        """By difference: the cursor stays on its interface while polls update the rates."""
        shown = self._snmp_section().show(interfaces)
        self._if_names = {i.ifindex: i.name for i in interfaces}
        plural = "" if shown == 1 else "s"
        title = f"SNMP · {shown} interface{plural}" if shown else "SNMP · no interface table"
        self.query_one("#snmp-title", Literal).update(title)

    def _cursor_interface(self) -> int | None:
        return self.query_one("#interfaces", InterfaceTable).cursor_interface()

    def _show_interface_history(self, ifindex: int, span: Span, history: InterfaceHistory) -> None:
        self.if_tier = history.tier
        self.if_series = series = bin_rates(history, span)
        lines, unit = rate_lines(series)
        name = self._if_names.get(ifindex, "")
        self._if_chart().plot(span, lines, label=f"{name} (if {ifindex}) {RATE_LEGEND} {unit}".strip())

    @on(DataTable.RowHighlighted, "#interfaces")
    def _interface_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.row_key.value is None or int(event.row_key.value) == self.if_index:
            return
        self.if_index = int(event.row_key.value)
        name = self._if_names.get(self.if_index, "")
        self._if_chart().plot(self.span, [], "reading history…", label=f"{name} (if {self.if_index})")
        self.load_interface()

    @on(DataTable.RowSelected, "#interfaces")
    def _interface_selected(self, event: DataTable.RowSelected) -> None:
        self._if_chart().scroll_visible(animate=False)

    def _snmp_timer(self) -> None:
        live = self._snmp_live_at
        if live is None or datetime.now(UTC) - live > timedelta(seconds=self.SNMP_EVERY):
            self.load_snmp()
        elif self.if_index is not None:
            self.load_interface()  # the chart's newest minutes; the table has them already

    # -- keys ----------------------------------------------------------------------------------
    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        # The span on show is greyed out in the footer: that is how it says which one it is.
        if action == "span" and parameters and parameters[0] == self.span.key:
            return None
        if action == "interfaces":  # in the footer only when there is an interface table
            return bool(self.query("#interfaces"))
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
            chart.plot(span, [], "reading history…")
        self.load_history()
        if self.if_index is not None:
            self.load_interface()

    def action_interfaces(self) -> None:
        table = self.query_one("#interfaces", DataTable)  # check_action: there is one
        table.focus(scroll_visible=False)
        # The table at the top, so the chart under it is on screen too.
        self.query_one("#device-body", VerticalScroll).scroll_to_widget(table, animate=False, top=True)

    def action_refresh(self) -> None:
        self.show_live()
        self.load_history()
        self.load_snmp()

    def action_help(self) -> None:
        self.app.push_screen(HelpScreen(binding_keys(self.app, self.BINDINGS), notes=NOTES,
                                        title=f"device {self.device}: keys"))
