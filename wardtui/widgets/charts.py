"""Terminal charts of a device's history: plotext draws them to a string, a Static shows it."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from rich.text import Text
from textual.widgets import Static

from poller.text import clean, clean_lines
from store.queries import History, InterfaceHistory


@dataclass(frozen=True, slots=True)
class Span:
    """A chart span: how far back it reaches and the unit its x axis counts in."""

    key: str  # the binding's key: "1".."4"
    label: str  # "1 h"
    length: timedelta
    unit: str  # x axis label: "minutes ago"
    unit_s: float  # seconds per x unit


SPANS = (
    Span("1", "1 h", timedelta(hours=1), "minutes ago", 60.0),
    Span("2", "24 h", timedelta(days=1), "hours ago", 3600.0),
    Span("3", "7 d", timedelta(days=7), "days ago", 86400.0),
    Span("4", "30 d", timedelta(days=30), "days ago", 86400.0),
)
BINS = 120  # slices per span: a chart a terminal wide shows a hundred or so columns


@dataclass(frozen=True, slots=True)
class Line:
    """One series of a chart: x in span units before now (negative), y in the chart's unit."""

    xs: list[float]
    ys: list[float]
    label: str = ""  # what the line is ("in"), for tests; charts name their lines in the title
    marker: str | None = None  # plotext marker; without colour, lines are told apart by it


@dataclass(frozen=True, slots=True)
class Series:
    """Binned points of one span: x in span units before ``until`` (negative), one value per bin."""

    rtt_x: list[float] = field(default_factory=list)
    rtt_ms: list[float] = field(default_factory=list)
    loss_x: list[float] = field(default_factory=list)
    loss_pct: list[float] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.loss_x)


@dataclass(frozen=True, slots=True)
class RateSeries:
    """One interface's average in and out bit/s per slice of a span (x as in :class:`Series`)."""

    in_x: list[float] = field(default_factory=list)
    in_bps: list[float] = field(default_factory=list)
    out_x: list[float] = field(default_factory=list)
    out_bps: list[float] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.in_x or self.out_x)


class _Bins:
    """Weighted sums in ``bins`` equal slices of ``[since, until)``."""

    def __init__(self, since: datetime, until: datetime, bins: int) -> None:
        self.since, self.until, self.n = since, until, bins
        self.width = (until - since).total_seconds() / bins or 1.0
        self.sums = [0.0] * bins
        self.weights = [0.0] * bins

    def index(self, at: datetime) -> int:
        return min(self.n - 1, max(0, int((at - self.since).total_seconds() // self.width)))

    def add(self, at: datetime, value: float | None, weight: float = 1.0) -> None:
        if value is not None and weight > 0:
            i = self.index(at)
            self.sums[i] += value * weight
            self.weights[i] += weight

    def x(self, i: int, span: Span) -> float:
        """The middle of slice ``i``, counted back from ``until`` in the span's unit."""
        return -((self.until - self.since).total_seconds() - (i + 0.5) * self.width) / span.unit_s

    def averages(self, span: Span) -> tuple[list[float], list[float]]:
        """(x, average) of every slice that has a value; empty slices stay gaps."""
        xs: list[float] = []
        ys: list[float] = []
        for i, weight in enumerate(self.weights):
            if weight:
                xs.append(self.x(i, span))
                ys.append(self.sums[i] / weight)
        return xs, ys


def bin_history(history: History, span: Span, bins: int = BINS) -> Series:
    """Average RTT and loss % of ``history`` in ``bins`` equal slices of the span.

    A day of raw checks is 8,640 rows: a chart a terminal wide shows a hundred or so columns,
    so drawing every row would cost time and show nothing more. Empty slices stay gaps.
    """
    rtt = _Bins(history.since, history.until, bins)  # weighted by replies
    sent = _Bins(history.since, history.until, bins)  # loss: (sent - received) / sent per slice
    if history.tier == "raw":
        for c in history.checks:
            rtt.add(c.at, c.rtt_ms)
            sent.add(c.at, 100.0 * (c.sent - c.received) / c.sent if c.sent else None, c.sent)
    else:
        for r in history.rollups:
            rtt.add(r.bucket, r.rtt_avg, r.received)
            sent.add(r.bucket, 100.0 * (r.sent - r.received) / r.sent if r.sent else None, r.sent)
    rtt_x, rtt_ms = rtt.averages(span)
    loss_x, loss_pct = sent.averages(span)
    return Series(rtt_x, rtt_ms, loss_x, loss_pct)


def bin_rates(history: InterfaceHistory, span: Span, bins: int = BINS) -> RateSeries:
    """Average in and out bit/s of one interface's ``history`` in ``bins`` slices of the span:
    raw rates as polled, rollups weighted by the polls they average."""
    rx = _Bins(history.since, history.until, bins)
    tx = _Bins(history.since, history.until, bins)
    if history.tier == "raw":
        for r in history.rates:
            rx.add(r.at, r.in_bps)
            tx.add(r.at, r.out_bps)
    else:
        for u in history.rollups:
            rx.add(u.bucket, u.in_avg, u.samples)
            tx.add(u.bucket, u.out_avg, u.samples)
    in_x, in_bps = rx.averages(span)
    out_x, out_bps = tx.averages(span)
    return RateSeries(in_x, in_bps, out_x, out_bps)


RATE_UNITS = ((1e9, "Gbit/s"), (1e6, "Mbit/s"), (1e3, "kbit/s"))


RATE_LEGEND = "in ▄▀ out •"  # the markers below, so the lines differ without colour too


def rate_lines(series: RateSeries) -> tuple[list[Line], str]:
    """The in and out lines of ``series`` in the unit that suits their peak, and that unit."""
    peak = max([*series.in_bps, *series.out_bps], default=0.0)
    factor, unit = next(((f, u) for f, u in RATE_UNITS if peak >= f), (1.0, "bit/s"))
    lines = [Line(series.in_x, [v / factor for v in series.in_bps], "in", "hd"),
             Line(series.out_x, [v / factor for v in series.out_bps], "out", "•")]
    return [line for line in lines if line.xs], unit


def new_figure() -> Any:
    """A plotext figure of the caller's own, on a plotext terminal of its own.

    plotext's module-level ``plt.figure`` and ``plt.terminal`` are one per process: drawing
    there clears what anything else draws there, and the terminal's size cap is shared. A
    figure's settings live in the figure and its cap in its terminal (``figure.parent()``), so
    each chart keeps one of these. Made the way plotext makes its own master and subplots
    (the figure class built with its parent), which its 6.x API allows; pyproject.toml bounds
    plotext below 7, and tests/unit/test_charts.py draws through this.
    """
    import plotext as plt  # ~0.15 s: loaded by the first chart drawn, not before the first frame

    terminal = type(plt.terminal)()
    # plotext caps a figure at the terminal size it read when made (80x24 without a terminal,
    # the launch size with one): the widget knows its own size better.
    terminal.limit(False, False)
    return type(plt.figure)(parent=terminal)


def render_chart(lines: Sequence[Line], *, title: str, span: Span, width: int, height: int,
                 monochrome: bool, y_max: float | None = None, fill: bool = False,
                 figure: Any = None) -> Text:
    """Line charts as Rich text; without colour (plotext's colorless theme) when ``monochrome``.
    Drawn on ``figure`` (from :func:`new_figure`; a new one if None), cleared first."""
    lines = [line for line in lines if line.xs]
    if not lines:
        return Text(clean_lines(f"{title}\n  no history yet for the last {span.label}"), no_wrap=True)
    lower = -span.length.total_seconds() / span.unit_s
    top = y_max if y_max is not None else nice_top(max(max(line.ys) for line in lines))
    width, height = max(width, 30), max(height, 6)
    if figure is None:
        figure = new_figure()
    figure.clear()
    figure.plot_size(width, height)
    figure.theme("colorless" if monochrome else "simple")
    for line in lines:
        signal = figure.signal(list(line.xs), list(line.ys), marker=line.marker)
        signal.lines()
        if fill:
            signal.fillx()
        figure.draw(signal)
    figure.ruler("x").lim(lower, 0)
    figure.ruler("y").lim(0, top)
    figure.title(clean(f"{title} (x: {span.unit})"))  # plotext output is read as ANSI
    built = figure.build().string(colorless=monochrome)
    return Text.from_ansi(built, no_wrap=True)


def nice_top(value: float) -> float:
    """A round upper limit a little above ``value``: 1, 2, 5 times a power of ten."""
    if value <= 0:
        return 1.0
    power = 10.0 ** math.floor(math.log10(value))
    for step in (1, 2, 5, 10):
        if value <= step * power * 0.95:
            return step * power
    return 10 * power


class HistoryChart(Static):
    """A chart that redraws at its own size: call :meth:`plot` (or :meth:`show`) with the points.

    Drawing costs a few milliseconds of plotext per chart, so a drawing is kept per size until
    the points change: layout passes that do not change the size, and a terminal resized back
    and forth, draw nothing again.
    """

    DEFAULT_CSS = """
    HistoryChart { height: 10; width: 1fr; }
    """
    CACHED_SIZES = 4

    def __init__(self, title: str, *, y_max: float | None = None, fill: bool = False,
                 id: str | None = None) -> None:
        super().__init__(id=id)
        self.label = title
        self.y_max = y_max
        self.fill = fill
        self.span = SPANS[0]
        self.message: str | None = "reading history…"
        self.lines: list[Line] = []  # what the chart plots, for tests
        self.renders = 0  # plotext drawings made, for tests of the cache
        self.text = Text()  # what is on show, for tests and screenshots
        self._drawn: dict[tuple[int, int, bool], Text] = {}
        self._redraw_pending = False
        self._figure: Any = None  # plotext's, made at the first drawing (see new_figure)

    def plot(self, span: Span, lines: Sequence[Line], message: str | None = None,
             label: str | None = None) -> None:
        """Draw ``lines`` over ``span``; ``message`` replaces the chart (e.g. no database).
        The same points again (a periodic re-read that found nothing new) draw nothing."""
        label = self.label if label is None else label
        if (span, list(lines), message, label) == (self.span, self.lines, self.message, self.label):
            return
        self.span, self.lines, self.message, self.label = span, list(lines), message, label
        self._drawn.clear()
        self.redraw()

    def show(self, span: Span, xs: list[float], ys: list[float], message: str | None = None) -> None:
        """One line of ``xs``/``ys`` over ``span``."""
        self.plot(span, [Line(xs, ys)] if xs else [], message)

    def chart_title(self) -> str:
        return f"{self.label} · last {self.span.label}"

    def redraw(self) -> None:
        width, height = self.content_size.width, self.content_size.height
        if self.message is not None or width <= 0 or height <= 0:
            # The title names an interface (from the agent or the database), the message may
            # quote a database error: no terminal control from either.
            text = Text(clean_lines(f"{self.chart_title()}\n  {self.message or ''}"), no_wrap=True)
        else:
            monochrome = bool(getattr(self.app, "no_color", False))
            key = (width, height, monochrome)
            drawn = self._drawn.get(key)
            if drawn is None:
                if len(self._drawn) >= self.CACHED_SIZES:
                    self._drawn.clear()
                if self._figure is None and any(line.xs for line in self.lines):
                    self._figure = new_figure()
                drawn = self._drawn[key] = render_chart(
                    self.lines, title=self.chart_title(), span=self.span, width=width, height=height,
                    monochrome=monochrome, y_max=self.y_max, fill=self.fill, figure=self._figure)
                self.renders += 1
            text = drawn
        if text is not self.text:
            self.text = text
            self.update(text)

    def on_resize(self) -> None:
        # A resize can lay the screen out twice (the new width, then the breakpoint classes'
        # heights): draw once, at the size the chart ends up with.
        if not self._redraw_pending:
            self._redraw_pending = True
            self.call_after_refresh(self._redraw_after_resize)

    def _redraw_after_resize(self) -> None:
        self._redraw_pending = False
        self.redraw()
