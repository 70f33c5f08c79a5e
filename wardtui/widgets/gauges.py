"""The engine's health at a glance: figures from the latest Gauges and three sparklines."""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence

from rich.color import Color, blend_rgb
from rich.console import Console, ConsoleOptions, RenderResult
from rich.segment import Segment
from rich.style import Style
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widget import Widget
from textual.widgets import Label, Sparkline

from poller.cluster_feed import NodeLine
from poller.events import Gauges
from poller.text import clean
from wardtui.literal import literal_text
from wardtui.widgets.node_lines import NodeLines


def _spooled(g: Gauges, warn: str) -> Text:
    """Rows in the spool; "full" when its disk is (history at risk: rows wait in memory)."""
    rows = g.extra.get("store_spool_rows", 0.0)
    if g.extra.get("store_spool_full"):
        return Text(f"full {rows:.0f}", style=warn, justify="right")  # literal-ok: a number
    return Text(f"{rows:.0f}", style=warn if rows else "", justify="right")  # literal-ok: a number


def history_off(g: Gauges) -> bool:
    """The store could not start: polling goes on, nothing is written (``store_off``)."""
    return bool(g.extra.get("store_off"))


def database_state(g: Gauges) -> str:
    """``ok``, ``failing`` (writes fail, rows wait in the spool) or ``off`` (no history this run;
    ``off: pid N`` when the wardtui with pid N holds this database's spool). Short: it shares a
    52-column panel with three other columns."""
    if history_off(g):
        pid = g.extra.get("store_off_pid")
        return f"off: pid {pid:.0f}" if pid else "off"
    return "failing" if g.extra.get("store_failing") else "ok"


def _figures(g: Gauges, warn: str) -> Table:
    """Two columns of label/value pairs; counters that should stay at zero light up when not."""

    def value(number: float, fmt: str = "{:.0f}", bad: bool = False) -> Text:
        text = fmt.format(number)
        return Text(text, style=warn if bad and number else "", justify="right")

    dropped = g.extra.get("events_dropped", 0.0)
    off = Text("off", style=warn, justify="right")  # no store: nothing is queued or kept
    database = database_state(g)
    unreachable = g.extra.get("devices_unreachable", 0.0)
    # Unreachable devices (behind a parent that is out) share the down row, once there are any.
    down = ("down", value(g.devices_down, bad=True))
    if unreachable:
        both = literal_text(f"{g.devices_down:.0f}/{unreachable:.0f}", style=warn)
        both.justify = "right"
        down = ("down/unreach", both)
    pairs = [
        ("up", value(g.devices_up), "checks/s", value(g.checks_per_s, "{:.1f}")),
        (*down, "probes/s", value(g.probes_per_s, "{:.1f}")),
        ("unknown", value(g.devices_unknown), "in flight", value(g.in_flight)),
        ("flapping", value(g.devices_flapping, bad=True), "overdue", value(g.oldest_overdue_ms, "{:.0f} ms")),
        ("lag p50", value(g.lag_p50_ms, "{:.1f} ms"), "lag p99", value(g.lag_p99_ms, "{:.1f} ms")),
        # Busy skips are a device's own confirmation outlasting its interval, not overload.
        ("skipped late", value(g.skipped_late, bad=True), "skipped busy", value(g.skipped_busy)),
        ("rcvbuf drops", value(g.rcvbuf_drops, bad=True), "events dropped", value(dropped, bad=True)),
        ("store queue", off if history_off(g) else value(g.store_queue),
         "spooled", off if history_off(g) else _spooled(g, warn)),
        ("samples lost", value(g.extra.get("store_samples_dropped", 0.0), bad=True),
         "database", Text(database, style=warn if database != "ok" else "", justify="right")),
    ]
    if "snmp_agents" in g.extra:
        x = g.extra
        pairs += [
            ("snmp polls/s", value(x.get("snmp_polls_per_s", 0.0), "{:.1f}"),
             "snmp req/s", value(x.get("snmp_requests_per_s", 0.0), "{:.1f}")),
            ("snmp lag p99", value(x.get("snmp_lag_p99_ms", 0.0), "{:.1f} ms"),
             "snmp skipped", value(x.get("snmp_skipped", 0.0), bad=True)),
            ("snmp timeouts", value(x.get("snmp_timeouts", 0.0), bad=True),
             "agents failing", value(x.get("snmp_agents_failing", 0.0), bad=True)),
        ]
        if x.get("snmp_v3_agents"):
            # Of the skipped, those the poller had no room for (v3 answers would have come late).
            in_flight = f"{x.get('snmp_v3_in_flight', 0.0):.0f}/{x.get('snmp_v3_limit', 0.0):.0f}"
            pairs.append(("skip capacity", value(x.get("snmp_skipped_capacity", 0.0), bad=True),
                          "v3 in flight", Text(in_flight, justify="right")))
    if "traps_received" in g.extra:  # --traps: the trap receiver
        x = g.extra
        refused = sum(x.get(f"traps_refused_{why}", 0.0)
                      for why in ("unknown_source", "community", "user", "engine_id", "level", "auth",
                                  "time_window", "malformed"))
        flood = x.get("traps_rate_limited", 0.0)
        taken = f"{x.get('traps_accepted', 0.0):.0f}/{x['traps_received']:.0f}"
        pairs.append(("traps taken", Text(taken, justify="right"),  # literal-ok: numbers
                      "refused/flood", Text(f"{refused:.0f}/{flood:.0f}",  # literal-ok: numbers
                                            style=warn if refused or flood else "", justify="right")))
    if "notify_queued" in g.extra:  # wardtui serve --notify: its outbox
        x = g.extra
        oldest = x.get("notify_oldest_s", 0.0)
        pairs += [
            ("notify queued", value(x["notify_queued"]),
             "oldest", value(oldest, "{:.0f} s", bad=oldest >= 60)),
            ("notify sent", value(x.get("notify_sent", 0.0)),
             "notify failed", value(x.get("notify_failed", 0.0), bad=True)),
        ]
    grid = Table.grid(padding=(0, 1), expand=True)
    for _ in range(2):
        grid.add_column(style="dim", no_wrap=True)
        grid.add_column(justify="right", no_wrap=True, min_width=7)
    for left, left_value, right, right_value in pairs:
        grid.add_row(left, left_value, right, right_value)
    return grid


class ZeroBasedBars:
    """One line of bars scaled from zero to the largest value shown. Textual's sparkline scales
    from the smallest to the largest, so checks/s moving between 86.9 and 87.9 was drawn as a
    collapse (▁ then █); here it stays at ▇/█, and only a real fall looks like one."""

    BARS = "▁▂▃▄▅▆▇█"

    def __init__(self, data: Sequence[float], width: int, low: Color, high: Color) -> None:
        self.data, self.width, self.low, self.high = data, width, low, high

    def columns(self) -> list[float]:
        """The value drawn in each column: the largest of the samples it covers (a series
        shorter than the width is stretched, a longer one packed, as Textual's does)."""
        n, width = len(self.data), self.width
        if not n or width <= 0:
            return []
        spans = ((i * n // width, max((i + 1) * n // width, i * n // width + 1)) for i in range(width))
        return [max(self.data[start:end]) for start, end in spans]

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        columns = self.columns()
        top = max(columns, default=0.0)
        if top <= 0:  # nothing, or zero all along: the floor
            yield Segment(self.BARS[0] * max(self.width, 0), Style(color=self.low))
            return
        low, high = self.low.get_truecolor(), self.high.get_truecolor()
        for value in columns:
            ratio = max(value, 0.0) / top
            colour = Color.from_triplet(blend_rgb(low, high, ratio))
            yield Segment(self.BARS[int(ratio * (len(self.BARS) - 1))], Style(color=colour))


class ZeroSparkline(Sparkline):
    """A Sparkline drawn by :class:`ZeroBasedBars` (colours from the same component classes)."""

    def render(self) -> ZeroBasedBars:
        _, base = self.background_colors
        low = base + self.get_component_styles("sparkline--min-color").color
        high = base + self.get_component_styles("sparkline--max-color").color
        return ZeroBasedBars(list(self.data or []), self.size.width, low.rich_color, high.rich_color)


class Figures(Widget):
    """The figures grid. Not a Static: ``Static.update`` asks for a layout of the whole
    screen, which measured tens of milliseconds here, once a second, on the engine's loop."""

    DEFAULT_CSS = """
    Figures { height: 9; }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.gauges: Gauges | None = None
        self.warn_style = "bold yellow"
        self.lost: Text | None = None  # attached and the live feed is lost: said in their place

    def render(self) -> Table | Text | str:
        if self.lost is not None:
            return self.lost
        if self.gauges is None:
            return "waiting for the first gauges…"
        return _figures(self.gauges, self.warn_style)


def feed_lost_text(since: str, detail: str, warn: str) -> Text:
    """What stands in place of the service's figures while its live feed is lost."""
    text = Text(no_wrap=False)
    text.append(f"live feed lost since {since} UTC", style=warn)  # literal-ok: a time we formatted
    text.append(" · figures shown are as of then · reconnecting · ")
    text.append(clean(detail))
    return text


def health_line(g: Gauges, warn: str, width: int = 78) -> Text:
    """The figures an operator must not miss, in one line that fits 80 columns: for terminals
    too short for the engine panel (an 80x24 SSH window). Counters that should be zero light
    up. Drops add up what was lost anywhere: socket buffer, UI events, store samples. Up, down
    and unknown (and unreachable, said when there are some) add up to every device. Parts are
    two spaces apart, one when that would not fit ``width`` (875 devices with some unknown);
    past that Rich ends the line with an ellipsis.
    A run without history says so first (``db off``)."""
    dropped = g.extra.get("events_dropped", 0.0) + g.rcvbuf_drops + g.extra.get("store_samples_dropped", 0.0)
    database = database_state(g)
    unreachable = g.extra.get("devices_unreachable", 0.0)
    parts = [
        ("up", f"{g.devices_up:.0f}", False),
        ("down", f"{g.devices_down:.0f}", g.devices_down > 0),
        *([("unreach", f"{unreachable:.0f}", True)] if unreachable else []),
        ("unknown", f"{g.devices_unknown:.0f}", False),  # not answered yet, or seeded
        # The flapping count gives way to the unreachable one (the table shows both states).
        *([] if unreachable else [("flap", f"{g.devices_flapping:.0f}", g.devices_flapping > 0)]),
        ("lag99", f"{g.lag_p99_ms:.0f}ms", False),
        ("skipped", f"{g.skipped_late:.0f}", g.skipped_late > 0),
        ("drops", f"{dropped:.0f}", dropped > 0),
        ("queue", f"{g.store_queue:.0f}", False),
        ("db", database, database != "ok"),
    ]
    if history_off(g):  # first, where an ellipsis cannot take it; no store, no queue
        parts = [parts[-1], *parts[:-2]]
    elif g.extra.get("store_spool_full"):
        # History is at risk: that takes the place of the queue and the flapping count (which
        # the table shows), so that it fits 80 columns beside "db failing".
        parts = [p for p in parts if p[0] not in ("queue", "flap")]
        parts.insert(-1, ("spool", "FULL", True))
    if "snmp_agents" in g.extra:
        snmp_failing = g.extra.get("snmp_agents_failing", 0.0)
        parts.append(("snmp fail", f"{snmp_failing:.0f}", snmp_failing > 0))
    line = Text()
    for gap in ("  ", " "):
        line = Text(no_wrap=True, overflow="ellipsis")
        for label, value, bad in parts:
            if line:
                line.append(gap)
            line.append(f"{label} ", style="dim")
            line.append(value, style=warn if bad else "")
        if line.cell_len <= width:
            break
    return line


class HealthLine(Widget):
    """:func:`health_line` of the latest gauges (shown instead of the engine panel when short)."""

    DEFAULT_CSS = """
    HealthLine { height: 1; padding: 0 1; }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.gauges: Gauges | None = None
        self.warn_style = "bold yellow"

    def show(self, gauges: Gauges) -> None:
        self.gauges = gauges
        if self.display:
            self.refresh()

    def feed_lost(self, since: str | None, detail: str) -> None:
        """Attached: the live feed is lost since ``since`` (None: it is back)."""
        self.lost = None if since is None else feed_lost_text(since, detail, self.warn_style)
        self.refresh()

    lost: Text | None = None

    def render(self) -> Text | str:
        if self.lost is not None:
            return self.lost
        if self.gauges is None:
            return "engine: waiting for the first gauges…"
        return health_line(self.gauges, self.warn_style, self.content_size.width or 78)


class GaugesPanel(Vertical):
    """Call :meth:`show` with each new :class:`Gauges`; series keep the last ``history`` samples."""

    DEFAULT_CSS = """
    GaugesPanel { height: auto; }
    GaugesPanel .spark-row { height: 1; }
    GaugesPanel .spark-row Label { width: 10; color: $text-muted; }
    GaugesPanel .spark-row Sparkline { width: 1fr; }
    GaugesPanel #spark-down > .sparkline--max-color { color: $error; }
    """

    SERIES = (("checks", "checks/s"), ("lag", "lag p99"), ("down", "down"))

    def __init__(self, history: int = 120, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.warn_style = "bold yellow"
        self.series: dict[str, deque[float]] = {key: deque(maxlen=history) for key, _ in self.SERIES}
        self.latest: Gauges | None = None
        self._extra_rows = 0  # the SNMP poller's and the notifier's rows below the figures

    def compose(self) -> ComposeResult:
        yield Figures(id="figures")
        yield NodeLines(id="nodes")  # attached to a cluster: a line per member
        for key, label in self.SERIES:
            with Horizontal(classes="spark-row"):
                yield Label(label)
                yield ZeroSparkline([], id=f"spark-{key}")

    def show(self, gauges: Gauges) -> None:
        self.latest = gauges
        figures = self.query_one(Figures)
        extra = gauges.extra
        rows = 3 + bool(extra.get("snmp_v3_agents")) if "snmp_agents" in extra else 0
        rows += 2 if "notify_queued" in extra else 0
        rows += 1 if "traps_received" in extra else 0
        if rows > self._extra_rows:
            self._extra_rows = rows
            # The SNMP poller's, the trap receiver's and the notifier's rows: one layout, once.
            figures.styles.height = 9 + rows
        figures.gauges, figures.warn_style = gauges, self.warn_style
        figures.refresh()
        samples = {"checks": gauges.checks_per_s, "lag": gauges.lag_p99_ms,
                   "down": float(gauges.devices_down)}
        for key, sample in samples.items():
            series = self.series[key]
            series.append(sample)
            # Sparkline only redraws when given a new sequence, not when one is mutated.
            self.query_one(f"#spark-{key}", Sparkline).data = list(series)

    def show_nodes(self, nodes: tuple[NodeLine, ...]) -> None:
        """Attached to a cluster: the members' lines (poller/cluster_feed.py)."""
        lines = self.query_one(NodeLines)
        lines.warn_style = self.warn_style
        lines.show(nodes)

    def feed_lost(self, since: str | None, detail: str) -> None:
        """Attached: the live feed is lost since ``since`` (None: it is back)."""
        figures = self.query_one(Figures)
        figures.lost = None if since is None else feed_lost_text(since, detail, self.warn_style)
        figures.refresh()
