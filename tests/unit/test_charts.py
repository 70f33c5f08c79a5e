"""What the drill-down's charts plot and how its figures are laid out, from hand-made histories."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from store.queries import InterfaceHistory
from store.records import IfRate, IfRollup
from wardtui.widgets.charts import (
    SPANS,
    Line,
    RateSeries,
    bin_rates,
    new_figure,
    nice_top,
    rate_lines,
    render_chart,
)
from wardtui.widgets.device_facts import pack

UNTIL = datetime(2026, 11, 16, 9, 30, tzinfo=UTC)
HOUR, WEEK = SPANS[0], SPANS[2]


def rate(minutes_ago: float, in_bps: float | None, out_bps: float | None) -> IfRate:
    return IfRate("r1", 1, UNTIL - timedelta(minutes=minutes_ago), in_bps, out_bps)


def raw(*rates: IfRate) -> InterfaceHistory:
    return InterfaceHistory("r1", 1, "raw", UNTIL - HOUR.length, UNTIL, list(rates), [])


def test_raw_rates_average_per_slice_and_leave_gaps() -> None:
    # 120 slices of 30 s over the hour: two polls in the slice 10 minutes back, one 40 back.
    series = bin_rates(raw(rate(40, 1e6, 2e6), rate(10, 3e6, None), rate(9.75, 5e6, 6e6)), HOUR)
    assert series.in_bps == [1e6, 4e6] and series.out_bps == [2e6, 6e6]  # None is no rate, not 0
    assert series.in_x == pytest.approx([-39.75, -9.75]) and series.out_x == series.in_x


def test_rollups_are_weighted_by_the_polls_they_average() -> None:
    bucket = UNTIL - timedelta(days=3)
    rollups = [IfRollup("r1", 1, "1m", bucket, 1, 10.0, 10.0, 10.0, None, None, None),
               IfRollup("r1", 1, "1m", bucket + timedelta(minutes=1), 3, 30.0, 50.0, 45.0, 6.0, 9.0, 8.0)]
    history = InterfaceHistory("r1", 1, "1m", UNTIL - WEEK.length, UNTIL, [], rollups)
    series = bin_rates(history, WEEK)  # both minutes in one 1.4-hour slice
    assert series.in_bps == [25.0] and series.out_bps == [6.0]
    assert series.in_x[0] == pytest.approx(-3.0, abs=0.03)  # days ago, the slice's middle


def test_rate_lines_take_the_unit_of_the_peak() -> None:
    lines, unit = rate_lines(RateSeries([-2.0, -1.0], [1.5e9, 2e8], [-1.0], [5e8]))
    assert unit == "Gbit/s"
    assert [(line.label, line.ys) for line in lines] == [("in", [1.5, 0.2]), ("out", [0.5])]
    assert rate_lines(RateSeries([-1.0], [900.0], [], []))[1] == "bit/s"
    assert rate_lines(RateSeries([-1.0], [2e3], [-1.0], [999.0]))[1] == "kbit/s"
    lines, _ = rate_lines(RateSeries([-1.0], [2e3], [], []))
    assert [line.label for line in lines] == ["in"]  # no out rate: no out line


def test_a_chart_is_drawn_at_the_size_asked_whatever_the_terminal() -> None:
    # plotext caps figures at the terminal size it read at import (80x24 here): not ours.
    line = Line([-50.0, -10.0], [1.0, 2.0])
    for width, height in ((77, 10), (157, 12)):
        text = render_chart([line], title="RTT", span=HOUR, width=width, height=height, monochrome=True)
        rows = text.plain.splitlines()
        assert len(rows) == height and max(len(row) for row in rows) == width
        assert "minutes ago" in rows[0]


def test_nice_top() -> None:
    assert [nice_top(v) for v in (0.0, 0.9, 1.2, 4.0, 40.0, 99.0)] == [1.0, 1.0, 2.0, 5.0, 50.0, 100.0]


GROUPS = [["RTT ms  last 1.20", "avg 1.30", "min 1.05", "max 1.55", "jitter 0.25"],
          ["loss 0.0 %", "(last 100 probes)"]]


@pytest.mark.parametrize("width", [120, 96, 77, 40, 20])
def test_figures_are_packed_whole_into_the_width(width: int) -> None:
    lines = pack(GROUPS, width)
    assert all(len(line) <= width for line in lines)
    fields = [field for group in GROUPS for field in group]
    assert [f for f in fields if not any(f in line for line in lines)] == []  # none cut


def test_packing_depends_on_the_widest_figures_not_the_current_ones() -> None:
    assert pack(GROUPS, 120) == ["RTT ms  last 1.20  avg 1.30  min 1.05  max 1.55  jitter 0.25  ·  "
                                 "loss 0.0 %  (last 100 probes)"]
    assert pack(GROUPS, 77) == ["RTT ms  last 1.20  avg 1.30  min 1.05  max 1.55  jitter 0.25",
                                "loss 0.0 %  (last 100 probes)"]
    widest = [[f.replace("1.", "999.") for f in group] for group in GROUPS]
    assert len(pack(GROUPS, 95)) == 1 and len(pack(GROUPS, 95, widest)) == 2  # stays put as RTTs grow
    assert pack(GROUPS, 40)[1].startswith("  ")  # a group split over lines: continuations indented


def test_charts_leave_plotexts_global_figure_and_terminal_alone() -> None:
    """plotext keeps one master figure and one terminal per process (``plt.figure``,
    ``plt.terminal``): drawing on them cleared whatever else in the process was drawing there,
    and lifted its terminal size cap for everyone. Each chart draws on a figure of its own."""
    import plotext as plt

    terminal_before = repr(plt.terminal)
    plt.figure.clear()
    plt.figure.plot_size(40, 8)
    plt.figure.title("someone else's chart")
    line = Line([-50.0, -10.0], [1.0, 2.0])
    render_chart([line], title="RTT", span=HOUR, width=120, height=12, monochrome=True)
    assert repr(plt.terminal) == terminal_before  # still capped at the terminal's size
    theirs = plt.figure.build().string(colorless=True)
    assert "someone else's chart" in theirs and "RTT" not in theirs
    plt.figure.clear()


def test_two_charts_drawn_in_turn_keep_their_own_settings() -> None:
    """A chart's figure keeps what it was given; another chart's drawing in between changes nothing."""
    figure_a, figure_b = new_figure(), new_figure()
    line = Line([-50.0, -10.0], [1.0, 2.0])
    alone = render_chart([line], title="A", span=HOUR, width=70, height=9, monochrome=True, figure=figure_a)
    render_chart([Line([-30.0], [5.0])], title="B", span=HOUR, width=130, height=14, monochrome=False,
                 y_max=100.0, fill=True, figure=figure_b)
    again = render_chart([line], title="A", span=HOUR, width=70, height=9, monochrome=True, figure=figure_a)
    assert again.plain == alone.plain
    assert figure_a is not figure_b
