"""The main screen: device table, gauges, transition log; fed by the engine's event bus."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.message import Message
from textual.screen import Screen
from textual.timer import Timer
from textual.widgets import Footer, Header, Input, Label, Tree

from poller.bus import Subscription
from poller.cluster_feed import ClusterFeed, NodesChanged, poller_label
from poller.engine import Engine
from poller.events import (
    CheckResult,
    FlapChange,
    Gauges,
    InterfaceChange,
    Reboot,
    SnmpAgentChange,
    Transition,
    Trap,
)
from poller.feed import FeedStatus, InventoryChanged, LiveFeed, ProbeSeen, RowsChanged
from poller.quiet import Quiet, QuietChanged
from poller.state import TrackerView
from store.report import GroupBy
from wardtui.commands import DashboardCommands
from wardtui.history_access import HistoryAccess, Scope
from wardtui.literal import literal
from wardtui.screens.help import HelpScreen, binding_keys
from wardtui.screens.probe import probe_and_tell
from wardtui.screens.quiet import AckBox, MaintenanceBox, QuietKeys
from wardtui.widgets.command_line import CommandError, CommandInput, CommandSuggester, LineInput, parse
from wardtui.widgets.device_rows import SORTS
from wardtui.widgets.device_table import DeviceTable
from wardtui.widgets.device_traps import RecentTraps
from wardtui.widgets.gauges import GaugesPanel, HealthLine
from wardtui.widgets.groups import GroupTree
from wardtui.widgets.node_lines import NodeLines
from wardtui.widgets.states import StatePalette
from wardtui.widgets.transition_log import TransitionLog

if TYPE_CHECKING:
    from wardtui.screens.device import DeviceScreen


def drill_down() -> type[DeviceScreen]:
    """The drill-down screen's class, loaded on first use (its charts and tables are no part
    of the first frame); the dashboard loads it when idle after its start (see
    on_engine_started), before the operator's first Enter."""
    from wardtui.screens.device import DeviceScreen

    return DeviceScreen


# Keys that belong to widgets rather than to this screen's BINDINGS, listed in the help.
OTHER_KEYS = (
    ("↑ ↓ j k PgUp PgDn Home End", "move in the device table (← → scroll its columns)"),
    ("Enter", "open the device under the cursor (drill-down)"),
    ("Enter (in filter)", "keep the filter and go back to the table"),
    ("← → Space (groups)", "collapse / expand a region or branch (↑ ↓ j k move); Enter on a device opens it"),
    ("Tab (in : line)", "complete the command, column or device name (again: the next one; "
                        "shift+Tab: back); Enter runs, Esc closes"),
    ("ctrl+p", "command palette: views, devices by name, themes, screenshot"),
    ("ctrl+q", "quit, like q"),
)


class EngineStarted(Message):
    """The store is open and open outages are restored: device states changed without events."""


class DashboardScreen(Screen[None]):
    """Drains the ``ui`` subscription every :attr:`TICK` seconds and updates widgets by diff."""

    CSS_PATH = "dashboard.tcss"
    # Under 32 lines (an 80x24 SSH window) the engine panel gives way to one health line, so
    # the table keeps most of the screen; the layout follows the terminal as it is resized.
    VERTICAL_BREAKPOINTS = [(0, "-short"), (32, "-tall")]
    # Under 90 columns the footer's "^p palette" gives way to the keys (ctrl+p still works and
    # the help lists it): at 80 columns it pushed "q Quit" off the edge.
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (90, "-wide")]
    TICK = 0.5
    URGENT_LOOK = 0.05
    """Seconds between two looks at the count of urgent events (traps, probes' answers)."""
    FIRST_FRAME_WAIT = 10  # ticks skipped at most before the first frame is shown (see tick)
    FILTER_DELAY = 0.15  # seconds of no typing before the filter is applied
    # Seconds after a filter is applied before a hidden groups tree is rebuilt for it, so that
    # the next g does not wait for the rebuild (~0.1 s at 100,000 devices); long enough that a
    # pause in typing does not pay for it.
    GROUPS_AFTER_FILTER = 2.0
    # "/" and ":" are priority bindings: they run when the app takes the key, before it hands
    # the next keys to the focused widget. As ordinary bindings they ran only after the key had
    # bubbled back up to the app, and the keys typed right after had gone to the table by then:
    # "/lobby" typed fast lost "lobby" (and "/quit" quit). In the lines they are text (paths,
    # IPv6), and check_action lets them through. Enter and Esc in the lines: see LineInput.
    BINDINGS = [
        Binding("slash", "filter", "Filter", tooltip="show only rows containing the text, live",
                priority=True),
        Binding("s", "sort", "Sort", tooltip="sort by the next column (see below)"),
        Binding("p", "problems", "Problems", tooltip="problems first (see below), or every device"),
        Binding("g", "groups", "Groups", tooltip="region → branch → device with counts; g again: back"),
        Binding("colon", "command", "Command", tooltip="command line: :problems :all :groups :device NAME "
                ":sort COLUMN :filter TEXT :help :quit", priority=True),
        Binding("e", "export", "Export", tooltip="write an availability report of this view to a file"),
        # Not in the footer (full at 80 columns): the help lists them, as they have a tooltip.
        Binding("a", "acknowledge", "Acknowledge", show=False,
                tooltip="acknowledge the outage of the device under the cursor, with a note (marked "
                        "ack:WHO until it recovers)"),
        Binding("m", "maintenance", "Maintenance", show=False,
                tooltip="maintenance window from now over the device under the cursor, or the branch "
                        "or region in the groups view, with a length and a note (marked maint)"),
        Binding("question_mark", "help", "Help", tooltip="this screen"),
        Binding("q", "app.quit", "Quit", tooltip="stop polling, save history, leave"),
        Binding("escape", "clear_filter", "Clear filter", tooltip="close and clear the filter"),
    ]

    def __init__(self, engine: Engine | LiveFeed | ClusterFeed, history: HistoryAccess | None = None,
                 sub_maxsize: int = 100_000,
                 probe: Callable[[str], Awaitable[dict[str, Any]]] | None = None,
                 quiet: QuietKeys | None = None) -> None:
        """``history``: what the drill-down and the export box read the store through (``None``:
        they say there is no history store). ``engine``: the one polling here, or the live feed
        of the service this dashboard is attached to (the same trackers and bus). ``probe``:
        checks a device now (here or by the service), for ``:probe`` and the drill-down.
        ``quiet``: the maintenance windows and acknowledgements, and the ``a`` and ``m`` keys'
        calls (``None``: the keys say there is nothing to ask)."""
        super().__init__()
        self.quiet = quiet
        self._quiet_timer: Timer | None = None  # when a window starts or ends: marks again
        self.engine = engine
        # The devices this screen shows, read on the UI thread only: attached, a new inventory
        # comes as a new mapping in InventoryChanged and is taken here (see _new_inventory).
        self.trackers: Mapping[str, TrackerView] = engine.trackers
        self.history = history
        self.probe = probe
        self._sub_maxsize = sub_maxsize
        self._sub: Subscription | None = None
        self._dropped_seen = 0
        self._urgent_seen = 0
        self._filter_timer: Timer | None = None
        self._groups_timer: Timer | None = None
        self._table_view = "all"  # what g returns to
        self._spool_full = False  # the store's spool was full at the last gauges
        # Ticks wait for the first frame (after_first_frame), at most FIRST_FRAME_WAIT ticks: on a
        # busy machine a tick came first, and folding the attach's "every row changed" into the
        # table made its whole order before the frame (~0.3 s at 100,000 devices).
        self._first_frame_shown = False
        self.recent_traps = RecentTraps()  # each device's last traps, for its drill-down
        self._ticks_waited = 0

    COMMANDS = {DashboardCommands}

    def compose(self) -> ComposeResult:
        self.trackers = self.engine.trackers  # attached: loaded by now (before the first frame)
        yield Header()
        table = DeviceTable(self.trackers, id="devices")
        yield table
        groups = GroupTree(self.trackers, table.matches, id="groups", shown=table.shown_names)
        groups.display = False  # until g; built when idle after start (see on_engine_started)
        yield groups
        with Horizontal(id="command-bar"):
            yield Label(":", id="command-label")
            yield CommandInput(
                CommandSuggester(self.trackers), id="command",
                placeholder="problems · all · groups · device NAME · sort COLUMN · filter TEXT",
                enter_action="submit_line", escape_action="clear_filter")
        with Horizontal(id="filter-bar"):
            yield Label("filter /", id="filter-label")
            yield LineInput("name, address, branch, region, type or state; words must all match", id="filter",
                            enter_action="submit_line", escape_action="clear_filter")
        yield HealthLine(id="health")
        with Horizontal(id="bottom"):
            yield GaugesPanel(id="gauges")
            yield TransitionLog(id="log")
        yield Footer()

    def on_mount(self) -> None:
        palette = StatePalette.from_variables(self.app.theme_variables)
        self.query_one(DeviceTable).palette = palette
        self.query_one(TransitionLog).palette = palette
        self.query_one(GroupTree).palette = palette
        self.query_one(GaugesPanel).warn_style = palette.flapping
        self.query_one(HealthLine).warn_style = palette.flapping
        self.query_one(GaugesPanel).border_title = "engine"
        self.query_one(TransitionLog).border_title = "transitions (UTC)"
        cluster = self.engine if isinstance(self.engine, ClusterFeed) else None
        if cluster is not None:  # attached to serve --cluster members: which one shows each device
            table = self.query_one(DeviceTable)
            table.show_pollers(lambda name: poller_label(cluster.poller_of.get(name, "")))
            self.query_one(GaugesPanel).show_nodes(cluster.nodes)
            self._size_bottom()
        # Traps (and a check an operator asked for) are news to show at once, not at the next
        # tick: the screen looks at their count every URGENT_LOOK and ticks early when it moved.
        self._sub = self.engine.bus.subscribe("ui", maxsize=self._sub_maxsize, urgent=(Trap, ProbeSeen))
        self.set_interval(self.TICK, self.tick)
        self.set_interval(self.URGENT_LOOK, self._tick_if_urgent)
        self.query_one(DeviceTable).focus()

    def after_first_frame(self) -> None:
        """The first frame is shown (the app says when): the work it did not wait for."""
        self._first_frame_shown = True
        self.query_one(DeviceTable).make_order()

    def on_unmount(self) -> None:
        if self._sub is not None:
            self.engine.bus.unsubscribe(self._sub)

    def on_engine_started(self, _: EngineStarted) -> None:
        if self.quiet is not None:  # its first QuietChanged may have come before the subscription
            self._quiet_changed(self.quiet.now())
        with self.app.batch_update():
            self.query_one(DeviceTable).refresh_devices(self.trackers)
            self.query_one(GroupTree).refresh_devices(self.trackers)
            self._update_groups_title()
        # Work the first frame did not wait for, done while the operator reads it, a step at a
        # time (each <= ~0.1 s at 20,000 devices), so that the first Enter, filter, sort and g
        # are quick.
        table, groups = self.query_one(DeviceTable), self.query_one(GroupTree)
        steps = [drill_down, *table.warm_up_steps(), groups.ensure_built]
        for i, step in enumerate(steps):
            self.set_timer(1.0 + 0.25 * i, step)

    # -- the live tick ------------------------------------------------------------------------
    def _tick_if_urgent(self) -> None:
        """An early tick when a trap (or a probe's answer) arrived since the last one: at most one
        every URGENT_LOOK seconds, so a flood of traps costs a bounded number of repaints."""
        sub = self._sub
        if sub is not None and sub.urgent_count != self._urgent_seen and self._first_frame_shown:
            self.tick()

    def tick(self) -> None:
        """Fold whatever arrived since the last tick into the widgets, in one repaint."""
        if self._sub is None:
            return
        self._urgent_seen = self._sub.urgent_count
        if not self._first_frame_shown and self._ticks_waited < self.FIRST_FRAME_WAIT:
            self._ticks_waited += 1  # what arrived stays in the subscription until then
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
                elif isinstance(event, Trap):
                    log.add_trap(event)
                    self.recent_traps.add(event)
                elif isinstance(event, RowsChanged):  # the service's snapshot (attached)
                    changed.update(self.trackers if event.devices is None else event.devices)
                elif isinstance(event, FeedStatus):
                    self._feed_status(event)
                elif isinstance(event, ProbeSeen):
                    log.add_probe(event.result, event.by)
                elif isinstance(event, QuietChanged):
                    self._quiet_changed(event.quiet)
                elif isinstance(event, NodesChanged):  # attached to a cluster: its members
                    self.query_one(GaugesPanel).show_nodes(event.nodes)
                    self._size_bottom()
                elif isinstance(event, InventoryChanged):
                    # The trackers hold another set of devices now: what is built from the set
                    # is built again at once, before the events after it name new devices.
                    self._new_inventory(event)
            changed.intersection_update(self.trackers)  # removed ones have no row
            log.add_transitions(transitions)
            log.flush()
            if self._sub.dropped != self._dropped_seen:
                # Samples were dropped for us: some rows may be stale, so look at them all.
                self._dropped_seen = self._sub.dropped
                changed = set(self.trackers)
            self.query_one(DeviceTable).refresh_devices(changed, datetime.now(UTC))
            self.query_one(GroupTree).refresh_devices(changed)  # counts by diff, shown or not
            if changed:
                self._update_groups_title()
            if gauges is not None:
                self.query_one(GaugesPanel).show(gauges)
                self.query_one(HealthLine).show(gauges)
                self._warn_spool_full(bool(gauges.extra.get("store_spool_full")))
                if "snmp_agents" in gauges.extra:
                    self.query_one("#bottom").add_class("-snmp")  # three more figure rows
                    if gauges.extra.get("snmp_v3_agents"):
                        self.query_one("#bottom").add_class("-snmp3")  # and one for v3
                    self._size_bottom()

    def on_resize(self) -> None:
        self._size_bottom()

    def _size_bottom(self) -> None:
        """Attached to a cluster on a tall screen: the engine panel grows by its members' lines
        (the stylesheet's heights otherwise: a short screen shows the health line only)."""
        lines = self.query_one(NodeLines).lines
        bottom = self.query_one("#bottom")
        if not lines or self.size.height < self.VERTICAL_BREAKPOINTS[1][0]:
            if bottom.styles.has_rule("height"):
                bottom.styles.height = None
            return
        base = 14 + 3 * bottom.has_class("-snmp") + bottom.has_class("-snmp3")
        if bottom.styles.height is None or bottom.styles.height.value != base + lines:
            bottom.styles.height = base + lines

    def _new_inventory(self, change: InventoryChanged) -> None:
        """Attached: the service applied a new inventory (SIGHUP). The table, the groups and the
        command line's names are made again from it (sort, view and filter kept); a drill-down
        open over this screen shows its device as it was."""
        trackers = self.trackers = change.trackers
        self.query_one(DeviceTable).reset_devices(trackers)
        self.query_one(GroupTree).reset_devices(trackers)
        self.query_one("#command", Input).suggester = CommandSuggester(trackers)
        self._update_groups_title()
        if change.announce:
            self.notify(f"the service's inventory changed: {change.added} added, {change.removed} "
                        f"removed; {len(trackers)} devices now", title="inventory")

    def _quiet_changed(self, quiet: Quiet | None) -> None:
        """The windows and acknowledgements in force are ``quiet`` (None: the same, but a window
        starts or ends now): the table marks its rows again, and looks again at the next start
        or end of a window."""
        now = datetime.now(UTC)
        self.query_one(DeviceTable).set_quiet(quiet, now)
        self.query_one(GroupTree).set_quiet(quiet, now)
        if self._quiet_timer is not None:
            self._quiet_timer.stop()
            self._quiet_timer = None
        change = self.query_one(DeviceTable).quiet.next_change(now)
        if change is not None:
            delay = min(max((change - now).total_seconds(), 0.0) + 0.05, 24 * 3600.0)
            self._quiet_timer = self.set_timer(delay, lambda: self._quiet_changed(None))

    def _feed_status(self, status: FeedStatus) -> None:
        """Attached: the link to the service was lost, or is back. While it is lost the figures
        are not live: the table is dimmed and says since when, the panel says it in place of
        the gauges, and the title bar too."""
        lost = None if status.live else status.since.astimezone(UTC).strftime("%H:%M:%S")
        self.query_one(DeviceTable).set_stale(lost)
        self.query_one(GaugesPanel).feed_lost(lost, status.detail)
        self.query_one(HealthLine).feed_lost(lost, status.detail)
        if lost is not None:
            self.notify(f"live feed lost since {lost} UTC: {status.detail}. Figures are as they were "
                        "then; reconnecting.", title="live feed", severity="error", timeout=10)
        else:
            self.notify("live feed back: figures reloaded from the service", title="live feed")
        describe = getattr(self.app, "describe_run", None)
        if callable(describe):
            describe(lost)

    def _line(self) -> Input | None:
        """The filter or command line, if the operator is typing in it."""
        focused = self.focused
        return focused if isinstance(focused, Input) and focused.id in ("filter", "command") else None

    def _warn_spool_full(self, full: bool) -> None:
        """Say once, when it happens, that history is at risk (the panel keeps saying it)."""
        if full and not self._spool_full:
            self.app.notify("history at risk: the spool is full; rows wait in memory and, past its "
                            "bound, checks are dropped and counted (samples lost). Free space on the "
                            "spool's disk.", title="spool full", severity="error", timeout=30)
        self._spool_full = full

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("filter", "command"):
            return self._line() is None  # in a line, "/" and ":" are text (paths, IPv6)
        # Esc is only offered (in the footer too) while there is a filter to clear.
        if action == "clear_filter":
            return bool(self.query_one("#filter-bar").display or self.query_one("#command-bar").display
                        or self.query_one(DeviceTable).filter_text)
        return True

    # -- keys ---------------------------------------------------------------------------------
    def action_filter(self) -> None:
        self.query_one("#filter-bar").display = True
        # Focus now, not at the next turn as Widget.focus() does: "/lobby" arriving in one read
        # would give "lobby" to the table.
        self.set_focus(self.query_one("#filter", Input))
        self.refresh_bindings()

    def action_clear_filter(self) -> None:
        if self.query_one("#command-bar").display:  # Esc in the command line only closes it
            self._close_command_line()
            return
        self._cancel_pending_filter()
        bar = self.query_one("#filter-bar")
        self.query_one("#filter", Input).value = ""
        bar.display = False
        self._apply_filter("")
        self._focus_view()
        self.refresh_bindings()

    def action_sort(self) -> None:
        self.query_one(DeviceTable).cycle_sort()  # the table's title says which

    def current_scope(self) -> Scope:
        """What ``e`` exports: in the grouped view the group under the cursor (see
        :meth:`current_group`), elsewhere the devices the table shows."""
        group = self.current_group()
        if group is not None:
            return Scope(group=group)
        return Scope(devices=tuple(self.query_one(DeviceTable).row_order()))

    def current_group(self) -> tuple[GroupBy, str] | None:
        """In the grouped view, the region or branch under the cursor (a device's branch), which
        ``e`` exports; elsewhere None (the table's rows are exported)."""
        if self.view != "groups":
            return None
        node = self.query_one(GroupTree).cursor_node
        data = node.data if node is not None else None
        if not data or data[0] == "root":
            return None
        if data[0] == "device":
            tracker = self.trackers.get(data[1])
            return ("branch", tracker.device.branch) if tracker is not None else None
        return ("region", data[1]) if data[0] == "region" else ("branch", data[2])

    def action_export(self) -> None:
        from wardtui.screens.export import ExportScreen  # loaded on first use

        scope, total = self.current_scope(), len(self.trackers)
        self.app.push_screen(ExportScreen(scope, total, history=self.history))

    def action_help(self) -> None:
        # Built from BINDINGS so the help can never disagree with the footer.
        keys = binding_keys(self.app, self.BINDINGS)
        device_keys = binding_keys(self.app, drill_down().BINDINGS)
        self.app.push_screen(HelpScreen([*keys, *OTHER_KEYS], [("device drill-down (Enter)", device_keys)]))

    @on(DeviceTable.RowSelected, "#devices")
    def _open_device(self, event: DeviceTable.RowSelected) -> None:
        # Pushed, not switched: this screen stays as it is underneath (filter, cursor, sort).
        tracker = self.trackers.get(event.device)
        if tracker is not None:
            self.open_device(tracker)

    def open_device(self, tracker: TrackerView) -> None:
        """The drill-down of ``tracker``'s device, with the quiet state this screen shows (the
        bus brings it the changes from then on)."""
        screen = drill_down()(tracker, self.engine.bus, self.history, probe=self.probe, quiet=self.quiet,
                              traps=self.recent_traps)
        screen.quiet = self.query_one(DeviceTable).quiet
        self.app.push_screen(screen)

    @on(Input.Changed, "#filter")
    def _filter_changed(self, event: Input.Changed) -> None:
        if event.value != event.input.value:
            return  # typed before Esc or Enter, which have dealt with the line as it is now
        # Applied once typing pauses: refilling a 10,000-row table on every keystroke stalls
        # the loop the engine runs on (about 0.5 s per key was measured).
        self._cancel_pending_filter()
        value = event.value
        self._filter_timer = self.set_timer(self.FILTER_DELAY,
                                            lambda: self._apply_filter(value))

    def _cancel_pending_filter(self) -> None:
        if self._filter_timer is not None:
            self._filter_timer.stop()
            self._filter_timer = None

    def action_submit_line(self) -> None:
        """Enter in the filter keeps the filter and gives the keys back to the view; in the
        command line it runs the command."""
        line = self._line()
        if line is None:
            return
        if line.id == "command":
            self._close_command_line()
            self.run_command(line.value)
            return
        self._cancel_pending_filter()
        self._apply_filter(line.value)
        if not line.value:
            self.query_one("#filter-bar").display = False
        self._focus_view()
        self.refresh_bindings()

    # -- views, the command line --------------------------------------------------------------
    @property
    def view(self) -> str:
        """The view on screen: ``all``, ``problems`` or ``groups``."""
        return "groups" if self.query_one(GroupTree).display else self.query_one(DeviceTable).view

    def action_problems(self) -> None:
        self.show_view("all" if self.view == "problems" else "problems")

    def action_groups(self) -> None:
        self.show_view(self._table_view if self.view == "groups" else "groups")

    def show_view(self, view: str) -> None:
        """Switch to ``all``, ``problems`` or ``groups``; the table keeps filter and sort."""
        table, groups = self.query_one(DeviceTable), self.query_one(GroupTree)
        with self.app.batch_update():
            if view == "groups":
                self._table_view = table.view
                groups.ensure_built()
            else:
                table.set_view(view)
            groups.display = view == "groups"
            table.display = view != "groups"
            self._update_groups_title()
            self._focus_view()

    def _focus_view(self) -> None:
        self.set_focus(self.query_one(GroupTree) if self.view == "groups" else self.query_one(DeviceTable))

    def _apply_filter(self, text: str) -> None:
        table = self.query_one(DeviceTable)
        if text == table.filter_text:
            return
        with self.app.batch_update():
            table.set_filter(text)
            # table.matches now answers for the new text; a hidden tree is rebuilt when shown,
            # or GROUPS_AFTER_FILTER after the filter settles, not on every pause in typing.
            groups = self.query_one(GroupTree)
            groups.invalidate()
            if not groups.display:
                if self._groups_timer is not None:
                    self._groups_timer.stop()
                self._groups_timer = self.set_timer(self.GROUPS_AFTER_FILTER, groups.ensure_built)
            self._update_groups_title()

    def _update_groups_title(self) -> None:
        groups = self.query_one(GroupTree)
        if not groups.display:
            return
        devices = sum(groups.counts(region)[0] for region in groups.regions())
        down = sum(groups.counts(region)[1] for region in groups.regions())
        unreachable = sum(groups.unreachable(region) for region in groups.regions())
        title = f"groups · region → branch → device · {devices} devices · {down} down"
        if unreachable:
            title += f" · {unreachable} unreachable"
        if self.query_one(DeviceTable).filter_text:
            title += f" · filter: {self.query_one(DeviceTable).filter_text}"
        groups.border_title = literal(title)

    def action_command(self) -> None:
        bar = self.query_one("#command-bar")
        bar.display = True
        self.query_one("#command", Input).value = ""
        self.set_focus(self.query_one("#command", Input))  # at once, as for the filter
        self.refresh_bindings()

    def _close_command_line(self) -> None:
        self.query_one("#command-bar").display = False
        self._focus_view()
        self.refresh_bindings()

    def device_names(self) -> Iterable[str]:
        """Every device, in inventory order (the palette offers them by name)."""
        return self.trackers.keys()

    def run_command(self, line: str) -> None:
        """Run one `:` command (the command line and the palette both come here)."""
        try:
            command = parse(line)
        except CommandError as exc:
            self.notify(str(exc), title="command", severity="error")
            return
        name, argument = command.name, command.argument
        if name in ("problems", "all", "groups"):
            self.show_view(name)
        elif name == "device":
            self._open_by_name(argument)
        elif name == "sort":
            self._sort_by(argument)
        elif name == "filter":
            self.query_one("#filter", Input).value = argument
            self._cancel_pending_filter()
            self._apply_filter(argument)
            self.query_one("#filter-bar").display = bool(argument)
            self.refresh_bindings()
        elif name == "probe":
            self._probe_by_name(argument)
        elif name == "help":
            self.action_help()
        elif name == "quit":
            self.app.call_later(self.app.action_quit)

    def _sort_by(self, column: str) -> None:
        columns = [key for key, _ in SORTS]
        matches = [key for key in columns if key.startswith(column.lower())] if column else []
        if column.lower() in columns:
            matches = [column.lower()]
        if len(matches) != 1:
            asked = f"sort by what? no column {column!r};" if column else "sort by what?"
            self.notify(f"{asked} one of: {', '.join(columns)}", title=":sort", severity="error")
            return
        if self.view == "groups":
            self.show_view(self._table_view)
        self.query_one(DeviceTable).set_sort(matches[0])

    def _device_named(self, name: str, command: str) -> str | None:
        """The device ``name`` names (a unique prefix will do), or None after saying why not."""
        if name in self.trackers:
            return name
        found = self.query_one("#command", Input).suggester
        candidates = found.device_prefix(name) if isinstance(found, CommandSuggester) and name else []
        if len(candidates) == 1:
            return candidates[0]
        hint = (f" — did you mean {', '.join(candidates[:5])}?" if candidates
                else " (Tab completes names)")
        self.notify(f"no device named {name!r}{hint}", title=command, severity="error")
        return None

    def _probe_by_name(self, name: str) -> None:
        device = self._device_named(name, ":probe")
        if device is not None:
            self.probe_device(device)

    def probe_device(self, device: str) -> None:
        """Check ``device`` now, outside its schedule, and say what came of it."""
        if self.probe is None:
            self.notify("no poller to ask", title="probe now", severity="error")
            return
        self.run_worker(probe_and_tell(self, self.probe, device), group="probe", exit_on_error=False)

    def _open_by_name(self, name: str) -> None:
        trackers = self.trackers
        found_name = self._device_named(name, ":device")
        if found_name is None:
            return
        name = found_name
        # Put the cursor on it where it is shown, so Esc from the drill-down lands on it.
        if self.view == "groups":
            self.query_one(GroupTree).select_device(name)
        else:
            table = self.query_one(DeviceTable)
            if table.matches(name):
                table.move_cursor(row=table.get_row_index(name))
        self.open_device(trackers[name])

    @on(Tree.NodeSelected, "#groups")
    def _open_group_device(self, event: Tree.NodeSelected[tuple[str, ...]]) -> None:
        data = event.node.data
        if data is not None and data[0] == "device" and data[1] in self.trackers:
            self.open_device(self.trackers[data[1]])

    # -- a and m: acknowledgements and maintenance windows (wardtui/screens/quiet.py) ---------
    def current_device(self) -> str | None:
        """The device under the cursor: the table's row, or a device of the groups view."""
        if self.view != "groups":
            return self.query_one(DeviceTable).cursor_device
        node = self.query_one(GroupTree).cursor_node
        data = node.data if node is not None else None
        return data[1] if data and data[0] == "device" and data[1] in self.trackers else None

    def action_acknowledge(self) -> None:
        device = self.current_device()
        if device is None:
            self.notify("put the cursor on a device to acknowledge its outage", title="acknowledge",
                        severity="warning")
        elif self.quiet is None:
            self.notify("no poller to ask", title="acknowledge", severity="error")
        else:
            self.app.push_screen(AckBox(device, self.quiet))

    def action_maintenance(self) -> None:
        """A window over the device under the cursor; in the groups view over the region or
        branch under it (a device there: that device)."""
        node = self.query_one(GroupTree).cursor_node if self.view == "groups" else None
        data = node.data if node is not None else None
        if data and data[0] in ("region", "branch"):
            scope = f"region={data[1]}" if data[0] == "region" else f"branch={data[2]}"
        else:
            device = self.current_device()
            scope = None if device is None else f"device={device}"
        if scope is None:
            self.notify("put the cursor on a device, a branch or a region", title="maintenance window",
                        severity="warning")
        elif self.quiet is None:
            self.notify("no poller to ask", title="maintenance window", severity="error")
        else:
            self.app.push_screen(MaintenanceBox(scope, self.quiet))
