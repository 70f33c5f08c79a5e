"""Availability reports: the figures against hand-computed cases (edges clipped, ongoing outages,
late first monitoring, groups weighted by device time) and the four output shapes."""

from __future__ import annotations

import csv
import io
import json
import re
from datetime import UTC, datetime, timedelta

import pytest

from poller.text import clean
from store.records import Outage
from store.report import DeviceSpan, Period, Report, ReportRow, compute
from wardtui.cli.common import UsageError, parse_period
from wardtui.report_formats import csv_cell, render_csv, render_html, render_json, render_md

T0 = datetime(2026, 11, 1, tzinfo=UTC)
H = timedelta(hours=1)
PERIOD = Period(T0, T0 + 10 * H)  # 36,000 s
LATER = T0 + 20 * H  # "now", after the period


def span(name: str = "r1", first: datetime | None = T0 - 5 * H, branch: str = "b1",
         region: str = "north") -> DeviceSpan:
    return DeviceSpan(name, branch, region, first)


def one(outages: list[Outage], first: datetime | None = T0 - 5 * H, now: datetime = LATER,
        period: Period = PERIOD) -> tuple[ReportRow, Report]:
    report = compute([span(first=first)], outages, period, now)
    assert len(report.rows) == 1
    return report.rows[0], report


def test_outage_crossing_the_start_is_clipped_to_it() -> None:
    row, report = one([Outage("r1", T0 - H, T0 + H)])
    assert (row.monitored_s, row.downtime_s, row.outages, row.longest_s) == (36000, 3600, 1, 3600)
    assert row.availability_pct == pytest.approx(90.0)
    assert (row.mttr_s, row.mtbf_s) == (3600, 32400)
    assert report.outages[0].counted_start == T0 and report.outages[0].start == T0 - H
    assert row.state == "up"


def test_outage_crossing_the_end_is_clipped_to_it() -> None:
    row, report = one([Outage("r1", T0 + 9 * H, T0 + 11 * H)])
    assert (row.downtime_s, row.longest_s) == (3600, 3600)
    assert row.availability_pct == pytest.approx(90.0)
    assert report.outages[0].counted_end == T0 + 10 * H


def test_ongoing_outage_counts_to_the_period_end() -> None:
    row, report = one([Outage("r1", T0 + 8 * H, None)])
    assert row.downtime_s == 7200 and row.availability_pct == pytest.approx(80.0)
    assert row.state == "down" and report.outages[0].ongoing
    assert report.until == T0 + 10 * H


def test_an_end_in_the_future_counts_up_to_now() -> None:
    now = T0 + 5 * H
    row, report = one([Outage("r1", T0 + 4 * H, None)], now=now)
    assert report.until == now
    assert (row.monitored_s, row.downtime_s) == (18000, 3600)
    assert row.availability_pct == pytest.approx(80.0)


def test_time_before_first_monitoring_is_not_counted() -> None:
    row, _ = one([], first=T0 + 6 * H)
    assert row.monitored_s == 14400 and row.availability_pct == 100.0
    row, _ = one([Outage("r1", T0 + 7 * H, T0 + 8 * H)], first=T0 + 6 * H)
    assert row.availability_pct == pytest.approx(75.0)  # 1 h down of 4 h monitored, not of 10 h


def test_never_monitored_or_monitored_after_the_period_has_no_availability() -> None:
    never, _ = one([], first=None)
    assert never.availability_pct is None and never.monitored_s == 0 and never.state == "unknown"
    late, _ = one([], first=T0 + 12 * H)
    assert late.availability_pct is None and late.state == "up"


def test_zero_outages() -> None:
    row, report = one([])
    assert (row.outages, row.downtime_s, row.longest_s) == (0, 0, 0)
    assert row.availability_pct == 100.0
    assert row.mttr_s is None and row.mtbf_s is None
    assert report.outages == []


def test_several_outages_give_mttr_mtbf_and_longest() -> None:
    row, report = one([Outage("r1", T0 + H, T0 + H + timedelta(minutes=10)),
                       Outage("r1", T0 + 3 * H, T0 + 3.5 * H),
                       Outage("r1", T0 + 5 * H, T0 + 5 * H + timedelta(minutes=5))])
    assert (row.outages, row.downtime_s, row.longest_s) == (3, 2700, 1800)
    assert row.mttr_s == 900 and row.mtbf_s == (36000 - 2700) / 3
    assert row.availability_pct == pytest.approx(92.5)
    assert [o.counted_s for o in report.outages] == [600, 1800, 300]


def test_outages_touching_the_edges_from_outside_do_not_count() -> None:
    row, report = one([Outage("r1", T0 - 2 * H, T0), Outage("r1", T0 + 10 * H, T0 + 11 * H),
                       Outage("r1", T0 - 3 * H, T0 - 2.5 * H), Outage("other", T0 + H, T0 + 2 * H)])
    assert (row.outages, row.downtime_s) == (0, 0) and report.outages == []


def test_groups_weight_availability_by_device_time() -> None:
    spans = [span("a", branch="b1", region="north"),  # 10 h monitored, 1 h down
             span("b", first=T0 + 5 * H, branch="b1", region="north"),  # 5 h, none down
             span("c", branch="b2", region="south")]  # 10 h, down 2 h and still down
    outages = [Outage("a", T0 + H, T0 + 2 * H), Outage("c", T0 + 8 * H, None)]
    by_branch = {r.name: r for r in compute(spans, outages, PERIOD, LATER, "branch").rows}
    b1 = by_branch["b1"]
    assert (b1.devices, b1.monitored_s, b1.downtime_s, b1.outages) == (2, 54000, 3600, 1)
    assert b1.availability_pct == pytest.approx(100 * 50400 / 54000)  # 93.33, not (90 + 100) / 2
    assert b1.state == "up" and by_branch["b2"].state == "down 1/1"
    region = compute(spans, outages, PERIOD, LATER, "region")
    assert [r.name for r in region.rows] == ["north", "south"]
    north = region.rows[0]
    assert north.mttr_s == 3600 and north.mtbf_s == 50400 and north.longest_s == 3600
    both = compute(spans, outages, PERIOD, LATER, "device")
    assert [r.name for r in both.rows] == ["a", "b", "c"] and len(both.outages) == 2


def test_period_refuses_an_end_before_the_start_and_naive_times() -> None:
    with pytest.raises(ValueError):
        Period(T0, T0)
    with pytest.raises(ValueError):
        Period(T0.replace(tzinfo=None), T0 + H)


def test_dates_parse_as_iso_utc_relative_or_now() -> None:
    now = T0 + 100 * H
    assert parse_period("2026-11-01", "2026-11-02", now) == Period(T0, T0 + 24 * H)
    assert parse_period("2026-11-01T02:00+02:00", "now", now) == Period(T0, now)
    assert parse_period("24h", "1h", now) == Period(now - 24 * H, now - H)
    with pytest.raises(UsageError, match=r"--from .* is not before --to") as after:
        parse_period("2026-11-02", "2026-11-01", now)
    assert after.value.code == 2
    with pytest.raises(UsageError, match="--to 'tomorrow'"):
        parse_period("24h", "tomorrow", now)


# -- renderers -------------------------------------------------------------------------------

EVIL = '<script>alert(1)</script>&"'


def _report() -> Report:
    spans = [span(EVIL), span("r2, \"main\" | core")]
    outages = [Outage(EVIL, T0 - H, T0 + H), Outage("r2, \"main\" | core", T0 + 9 * H, None)]
    return compute(spans, outages, PERIOD, LATER)


def test_html_is_self_contained_and_escapes_every_name() -> None:
    page = render_html(_report())
    assert EVIL not in page and "<script" not in page.lower()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;&amp;&quot;" in page
    for external in ("http:", "https:", "<link", "src=", "@import", "url("):
        assert external not in page
    assert page.startswith("<!DOCTYPE html>") and "<style>" in page and page.rstrip().endswith("</html>")
    assert "90.000 %" in page and "ongoing" in page


def test_csv_rows_then_outages_round_trip_through_the_csv_module() -> None:
    text = render_csv(_report())
    rows_part, outages_part = text.split("\n\n")
    rows = list(csv.DictReader(io.StringIO(rows_part)))
    assert [r["name"] for r in rows] == ["<script>alert(1)</script>&\"", "r2, \"main\" | core"]
    assert rows[0]["availability_pct"] == "90.0" and rows[0]["downtime_s"] == "3600.0"
    assert rows[0]["mtbf_s"] == "32400.0" and rows[1]["state"] == "down"
    outages = list(csv.DictReader(io.StringIO(outages_part)))
    assert [o["ongoing"] for o in outages] == ["false", "true"] and outages[1]["end"] == ""


FORMULAS = ['=HYPERLINK("x")', "-router", "+b1", "@sum", "\tcmd", "\rcmd"]


def test_csv_puts_a_quote_before_text_a_spreadsheet_would_run_and_leaves_numbers() -> None:
    spans = [span(name, branch="+b1") for name in [*FORMULAS, "r-1", "a\rb"]]
    outages = [Outage('=HYPERLINK("x")', T0 + H, T0 + 2 * H)]
    text = render_csv(compute(spans, outages, PERIOD, LATER))
    rows_part, outages_part = text.split("\n\n")
    rows = {r["name"]: r for r in csv.DictReader(io.StringIO(rows_part))}
    # Only a leading sign counts; a CR inside a name stays inside its row, replaced (a control
    # character), and so are a leading tab and CR once the quote has defused them.
    assert set(rows) == {"'" + clean(name) for name in FORMULAS} | {"r-1", "a\ufffdb"}
    assert "'\ufffdcmd" in rows and "' cmd" in rows
    assert rows["'=HYPERLINK(\"x\")"]["availability_pct"] == "90.0"  # figures stay numbers
    assert [o["device"] for o in csv.DictReader(io.StringIO(outages_part))] == ["'=HYPERLINK(\"x\")"]
    branches = [r["name"] for r in csv.DictReader(io.StringIO(
        render_csv(compute(spans, [], PERIOD, LATER, "branch")).split("\n\n")[0]))]
    assert branches == ["'+b1"]
    # Numbers are never text, even negative ones: a spreadsheet must still add them up.
    assert [csv_cell(v) for v in (-1, -0.5, 0, 90.0, None, True)] == [-1, -0.5, 0, 90.0, "", "true"]
    assert [csv_cell(v) for v in ("-1", "a=b", "up")] == ["'-1", "a=b", "up"]


def test_only_csv_changes_such_names() -> None:
    report = compute([span(name) for name in FORMULAS], [], PERIOD, LATER)
    assert sorted(r["name"] for r in json.loads(render_json(report))["rows"]) == sorted(FORMULAS)
    md = render_md(report)
    assert "| =HYPERLINK(\"x\") | 1 |" in md and "| -router | 1 |" in md and "'" not in md
    page = render_html(report)
    assert "<td>=HYPERLINK(&quot;x&quot;)</td>" in page and "<td>-router</td>" in page


def test_md_is_a_github_table_with_pipes_escaped() -> None:
    lines = render_md(_report()).splitlines()
    header = lines.index("| Name | Devices | Availability | Outages | Downtime | Unreachable | Maintenance "
                         "| MTTR | MTBF | Longest | State |")
    assert lines[header + 1].startswith("|---|---:|")
    assert lines[header + 3].startswith("| r2, \"main\" \\| core | 1 | 90.000 % | 1 | 1h00m | 0s | 0s |")
    assert "### Outages (2)" in lines


def test_json_rows_carry_the_figures() -> None:
    data = json.loads(render_json(_report()))
    assert data["from"] == "2026-11-01T00:00:00+00:00" and data["group_by"] == "device"
    row = data["rows"][0]
    assert {"name", "availability_pct", "outages", "downtime_s", "mttr_s", "longest_s"} <= set(row)
    assert (row["name"], row["availability_pct"], row["outages"], row["downtime_s"], row["mttr_s"],
            row["longest_s"]) == (EVIL, 90.0, 1, 3600.0, 3600.0, 3600.0)
    zero = json.loads(render_json(compute([span()], [], PERIOD, LATER)))["rows"][0]
    assert zero["mttr_s"] is None and zero["mtbf_s"] is None and zero["availability_pct"] == 100.0
    assert data["outages"][1]["end"] is None and data["outages"][1]["counted_s"] == 3600.0


HOSTILE_NAMES = ["\x1b]0;pwned\x07r1", "\x1b[2Jr2", "\x1b]52;c;ZWNobw==\x07r3", "r4\u202eevil",
                 "<script>alert(1)</script>", '<img src=x onerror="alert(1)">',
                 "[click](javascript:alert(1))", "![x](http://evil/x.png)", "<http://evil>",
                 "www.evil.example", "http://evil/x", "**bold** `code` _em_ ~~del~~"]
RAW_CONTROL = ("\x1b", "\x07", "\u202e")


def _hostile_report() -> Report:
    spans = [span(name, branch="[b](javascript:x)", region="\x1b[31mred") for name in HOSTILE_NAMES]
    outages = [Outage(name, T0 + H, T0 + 2 * H) for name in HOSTILE_NAMES]
    return compute(spans, outages, PERIOD, LATER)


@pytest.mark.parametrize("group_by", ["device", "branch", "region"])
def test_no_format_carries_terminal_control(group_by: str) -> None:
    report = compute([span(n, branch="\x1b]0;b\x07", region="\x9b2Jr") for n in HOSTILE_NAMES],
                     [Outage(n, T0 + H, T0 + 2 * H) for n in HOSTILE_NAMES], PERIOD, LATER, group_by)
    for render in (render_csv, render_md, render_html, render_json):
        text = render(report)
        for char in (*RAW_CONTROL, "\x9b"):
            assert char not in text, (render.__name__, char)
    # JSON keeps the names exactly: a JSON reader gets them back, escapes and all.
    assert {r["name"] for r in json.loads(render_json(report))["rows"]} >= (
        set(HOSTILE_NAMES) if group_by == "device" else set())


def test_markdown_escapes_html_and_neutralises_links() -> None:
    md = render_md(_hostile_report())
    for raw in ("<script", "<img", "<http:", "http://", "www.evil", "**bold**", "`code`", "_em_", "~~del~~",
                "![x]"):
        assert raw not in md, raw
    assert not re.search(r"(?<!\\)\]\(", md), "a link's ]( left unescaped"
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in md
    assert "\\[click\\](javascript:alert(1))" in md and "!\\[x\\](http:\\/\\/evil/x.png)" in md
    assert "\ufffd\\]0;pwned\ufffdr1" in md and "r4\ufffdevil" in md
    # Still a table: one row per device, outages listed.
    assert sum(1 for line in md.splitlines() if line.startswith("| ")) == 2 + 2 * len(HOSTILE_NAMES)


def test_html_and_csv_of_hostile_names() -> None:
    report = _hostile_report()
    page = render_html(report)
    assert "<script" not in page and "<img" not in page
    assert "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;" in page
    rows = list(csv.DictReader(io.StringIO(render_csv(report).split("\n\n")[0])))
    assert {r["name"] for r in rows} == {clean(n) for n in HOSTILE_NAMES}


def test_overlapping_stored_outages_are_merged_and_availability_stays_within_0_100() -> None:
    """Issue 12: a replayed spool stored the same outage twice, and an out-of-order DOWN one
    outage inside another; summed, a report said -31.3 %. A device is not down twice at once."""
    outages = [Outage("r1", T0 + H, T0 + 3 * H), Outage("r1", T0 + H, T0 + 3 * H),  # a duplicate
               Outage("r1", T0 + 2 * H, T0 + 4 * H),  # overlaps the first: down 1h-4h in all
               Outage("r1", T0 + 2.5 * H, T0 + 2.6 * H),  # inside it
               Outage("r1", T0 + 4 * H, T0 + 5 * H),  # touches the end: a second outage
               Outage("r1", T0 + 8 * H, None), Outage("r1", T0 + 9 * H, T0 + 9.5 * H)]  # ongoing, inside
    row, report = one(outages)
    assert row.downtime_s == 3 * 3600 + 3600 + 2 * 3600
    assert row.outages == 3 and row.longest_s == 3 * 3600
    assert row.availability_pct == pytest.approx(40.0)
    assert [(o.counted_start, o.counted_end, o.ongoing) for o in report.outages] == [
        (T0 + H, T0 + 4 * H, False), (T0 + 4 * H, T0 + 5 * H, False), (T0 + 8 * H, PERIOD.end, True)]


def test_availability_is_within_0_100_for_any_stored_outages() -> None:
    """Random overlapping outages (seeded): downtime is the union's length, checked minute by
    minute, and availability is never outside 0-100 %."""
    import random

    rng = random.Random(11)
    for _ in range(200):
        outages = []
        for _ in range(rng.randint(0, 8)):
            start = T0 + timedelta(minutes=rng.randint(-120, 660))
            end = None if rng.random() < 0.1 else start + timedelta(minutes=rng.randint(1, 300))
            outages.append(Outage("r1", start, end))
        row, _ = one(outages)
        minutes = [T0 + timedelta(minutes=m) for m in range(600)]
        down = {at for o in outages for at in minutes if o.start <= at and (o.end is None or at < o.end)}
        assert row.downtime_s == pytest.approx(len(down) * 60)
        assert 0.0 <= (row.availability_pct or 0.0) <= 100.0
