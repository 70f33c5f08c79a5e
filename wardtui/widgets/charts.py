"""Terminal charts of a device's history: plotext draws them to a string, a Static shows it."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import plotext as plt
from rich.text import Text
from textual.widgets import Static

from store.queries import History


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


@dataclass(frozen=True, slots=True)
class Series:
    """Binned points of one span: x in span units before ``until`` (negative), one value per bin."""

    rtt_x: list[float] = field(default_factory=list)
    rtt_ms: list[float] = field(default_factory=list)
    loss_x: list[float] = field(default_factory=list)
    loss_pct: list[float] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.loss_x)


def bin_history(history: History, span: Span, bins: int = 120) -> Series:
    """Average RTT and loss % of ``history`` in ``bins`` equal slices of the span.

    A day of raw checks is 8,640 rows: a chart a terminal wide shows a hundred or so columns,
    so drawing every row would cost time and show nothing more. Empty slices stay gaps.
    """
    until, since = history.until, history.since
    width = (until - since).total_seconds() / bins or 1.0
    rtt_sum = [0.0] * bins  # weighted by replies
    replies = [0] * bins
    sent = [0] * bins
    received = [0] * bins

    def add(at: datetime, n_sent: int, n_received: int, rtt: float | None, weight: int) -> None:
        i = min(bins - 1, max(0, int((at - since).total_seconds() // width)))
        sent[i] += n_sent
        received[i] += n_received
        if rtt is not None and weight > 0:
            rtt_sum[i] += rtt * weight
            replies[i] += weight

    if history.tier == "raw":
        for c in history.checks:
            add(c.at, c.sent, c.received, c.rtt_ms, 1)
    else:
        for r in history.rollups:
            add(r.bucket, r.sent, r.received, r.rtt_avg, r.received)
    series = Series()
    for i in range(bins):
        # x at the middle of the slice, counted back from ``until`` in the span's unit
        x = -((until - since).total_seconds() - (i + 0.5) * width) / span.unit_s
        if sent[i]:
            series.loss_x.append(x)
            series.loss_pct.append(100.0 * (sent[i] - received[i]) / sent[i])
        if replies[i]:
            series.rtt_x.append(x)
            series.rtt_ms.append(rtt_sum[i] / replies[i])
    return series


def render_chart(xs: Sequence[float], ys: Sequence[float], *, title: str, span: Span, width: int,
                 height: int, monochrome: bool, y_max: float | None = None, fill: bool = False) -> Text:
    """One line chart as Rich text; without colour (plotext's colorless theme) when ``monochrome``."""
    if not xs:
        return Text(f"{title}\n  no history yet for the last {span.label}", no_wrap=True)
    lower = -span.length.total_seconds() / span.unit_s
    top = y_max if y_max is not None else _nice_top(max(ys))
    width, height = max(width, 30), max(height, 6)
    figure = plt.figure
    figure.clear()
    figure.plot_size(width, height)
    figure.theme("colorless" if monochrome else "simple")
    signal = figure.signal(list(xs), list(ys))
    signal.lines()
    if fill:
        signal.fillx()
    figure.draw(signal)
    figure.ruler("x").lim(lower, 0)
    figure.ruler("y").lim(0, top)
    figure.title(title)
    figure.label(span.unit, "x")
    built = figure.build().string(colorless=monochrome)
    return Text.from_ansi(built, no_wrap=True)


def _nice_top(value: float) -> float:
    """A round upper limit a little above ``value``: 1, 2, 5 times a power of ten."""
    if value <= 0:
        return 1.0
    power = 10.0 ** math.floor(math.log10(value))
    for step in (1, 2, 5, 10):
        if value <= step * power * 0.95:
            return step * power
    return 10 * power


class HistoryChart(Static):
    """A chart that redraws at its own size: call :meth:`show` with the points, or with none."""

    DEFAULT_CSS = """
    HistoryChart { height: 10; width: 1fr; }
    """

    def __init__(self, title: str, *, y_max: float | None = None, fill: bool = False,
                 id: str | None = None) -> None:
        super().__init__(id=id)
        self.label = title
        self.y_max = y_max
        self.fill = fill
        self.span = SPANS[0]
        self.message: str | None = "reading history…"
        self._xs: list[float] = []
        self._ys: list[float] = []
        self.text = Text()  # what is on show, for tests and screenshots

    def show(self, span: Span, xs: list[float], ys: list[float], message: str | None = None) -> None:
        """Draw ``xs``/``ys`` over ``span``; ``message`` replaces the chart (e.g. no database)."""
        self.span, self._xs, self._ys, self.message = span, xs, ys, message
        self.redraw()

    def chart_title(self) -> str:
        return f"{self.label} · last {self.span.label}"

    def redraw(self) -> None:
        width, height = self.content_size.width, self.content_size.height
        if self.message is not None or width <= 0:
            self.text = Text(f"{self.chart_title()}\n  {self.message or ''}", no_wrap=True)
        else:
            monochrome = bool(getattr(self.app, "no_color", False))
            self.text = render_chart(self._xs, self._ys, title=self.chart_title(), span=self.span,
                                     width=width, height=height, monochrome=monochrome,
                                     y_max=self.y_max, fill=self.fill)
        self.update(self.text)

    def on_resize(self) -> None:
        self.redraw()
