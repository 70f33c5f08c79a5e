"""Reports and maintenance windows (``--exclude-maintenance``): maintenance time shown apart,
and left out of the up, the down and the counted time when excluded; outages clipped to it;
windows removed, overlapping, declared late, recurring over daylight-saving changes."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from poller.notify.windows import Window, parse_matcher
from store.records import Outage
from store.report import DeviceSpan, Period, Report, ReportRow, compute
from tests.unit.test_report import LATER, PERIOD, T0, H, span
from wardtui.report_formats import render_csv, render_html, render_json, render_md

BEFORE = T0 - timedelta(days=1)  # when the windows were declared, unless a test says otherwise


def window(start: datetime, end: datetime, *match: str, id: int = 1, created: datetime = BEFORE,
           removed: datetime | None = None, note: str = "planned") -> Window:
    return Window(id, tuple(parse_matcher(m) for m in match or ("device=r1",)), starts_at=start,
                  ends_at=end, note=note, created_at=created, removed_at=removed)


def report(outages: list[Outage], windows: list[Window], exclude: bool = True,
           spans: list[DeviceSpan] | None = None, period: Period = PERIOD, now: datetime = LATER,
           **options: object) -> Report:
    return compute(spans or [span()], outages, period, now, windows=windows, exclude_maintenance=exclude,
                   **options)  # type: ignore[arg-type]


def row_of(rep: Report, name: str = "r1") -> ReportRow:
    return next(r for r in rep.rows if r.name == name)


DOWN_2H = [Outage("r1", T0 + H, T0 + 3 * H)]  # 2 h down, 1 h of it in WINDOW
WINDOW = window(T0 + 2 * H, T0 + 4 * H)  # 2 h of maintenance


def test_without_the_flag_maintenance_is_counted_and_shown_apart() -> None:
    r = row_of(report(DOWN_2H, [WINDOW], exclude=False))
    assert (r.monitored_s, r.downtime_s, r.outages, r.maintenance_s) == (36000, 7200, 1, 7200)
    assert r.availability_pct == 80.0
    assert r == replace(row_of(report(DOWN_2H, [], exclude=False)), maintenance_s=7200)  # the rest as without


def test_excluded_leaves_maintenance_out_of_down_and_counted_time() -> None:
    rep = report(DOWN_2H, [WINDOW])
    r = row_of(rep)
    assert (r.monitored_s, r.downtime_s, r.outages, r.longest_s, r.maintenance_s) == \
        (28800, 3600, 1, 3600, 7200)
    assert r.availability_pct == 100.0 * (28800 - 3600) / 28800  # 87.5 %
    assert (r.mttr_s, r.mtbf_s) == (3600, 25200)
    (outage,) = rep.outages
    assert (outage.counted_s, outage.maintenance_s) == (7200, 3600)  # the outage itself unclipped
    assert rep.exclude_maintenance


def test_an_outage_wholly_inside_maintenance_is_not_counted() -> None:
    r = row_of(report([Outage("r1", T0 + 2.5 * H, T0 + 3.5 * H)], [WINDOW]))
    assert (r.downtime_s, r.outages, r.availability_pct, r.mttr_s, r.mtbf_s) == (0, 0, 100.0, None, None)
    assert r.monitored_s == 28800


def test_an_ongoing_outage_entering_maintenance() -> None:
    r = row_of(report([Outage("r1", T0 + 3 * H, None)], [WINDOW]))
    # 7 h ongoing to the period's end, 1 h of it in maintenance
    assert (r.downtime_s, r.monitored_s, r.down_now) == (6 * 3600, 28800, 1)


def test_overlapping_windows_are_not_counted_twice() -> None:
    windows = [WINDOW, window(T0 + 3 * H, T0 + 5 * H, id=2), window(T0 + 2.5 * H, T0 + 3 * H, id=3)]
    r = row_of(report(DOWN_2H, windows))
    assert r.maintenance_s == 3 * 3600 and r.monitored_s == 36000 - 3 * 3600
    assert r.downtime_s == 3600


def test_a_removed_window_counts_up_to_its_removal() -> None:
    removed = window(T0 + 2 * H, T0 + 6 * H, removed=T0 + 3 * H)
    r = row_of(report([Outage("r1", T0 + 2 * H, T0 + 5 * H)], [removed]))
    assert (r.maintenance_s, r.downtime_s, r.monitored_s) == (3600, 2 * 3600, 36000 - 3600)
    # Removed before the period: nothing.
    gone = window(T0 + 2 * H, T0 + 6 * H, removed=T0 - H)
    assert row_of(report([], [gone])).maintenance_s == 0


def test_a_window_declared_after_the_fact_counts_from_its_declaration() -> None:
    late = window(T0, T0 + 6 * H, created=T0 + 2 * H)  # e.g. added with --from in the past
    r = row_of(report([Outage("r1", T0 + H, T0 + 3 * H)], [late]))
    assert (r.maintenance_s, r.downtime_s) == (4 * 3600, 3600)


def test_only_matching_devices_are_covered_and_groups_add_up() -> None:
    spans = [span("r1"), span("sw", branch="b1"), DeviceSpan("atm", "b2", "south", T0 - 5 * H, "atm")]
    outages = [Outage(d, T0 + H, T0 + 3 * H) for d in ("r1", "sw", "atm")]
    windows = [window(T0 + 2 * H, T0 + 4 * H, "branch=b2", "type=atm")]
    rep = report(outages, windows, spans=spans)
    assert [(r.name, r.maintenance_s, r.downtime_s) for r in rep.rows] == [
        ("atm", 7200, 3600), ("r1", 0, 7200), ("sw", 0, 7200)]
    by_region = {r.name: r for r in report(outages, windows, spans=spans, group_by="region").rows}
    assert (by_region["south"].maintenance_s, by_region["north"].maintenance_s) == (7200, 0)
    assert by_region["south"].monitored_s == 36000 - 7200


def test_maintenance_is_clipped_to_the_counted_time() -> None:
    # Monitored from T0 + 3 h: the window's first hour is before it; the period ends at T0 + 10 h.
    windows = [window(T0 - 5 * H, T0 + 4 * H), window(T0 + 9 * H, T0 + 12 * H, id=2)]
    r = row_of(report([], windows, spans=[span(first=T0 + 3 * H)]))
    assert (r.maintenance_s, r.monitored_s) == (2 * 3600, 7 * 3600 - 2 * 3600)
    # "now" inside the period: counted up to now.
    r = row_of(report([], windows, now=T0 + 9.5 * H))
    assert r.maintenance_s == 4 * 3600 + 1800


def test_unreachable_time_inside_maintenance_is_left_out_once() -> None:
    # Unreachable 1 h to 3 h, then down on its own to 3.5 h; maintenance 2 h to 3.25 h.
    atm = [Outage("r1", T0 + H, T0 + 3.5 * H, cause="unreachable", down_from=T0 + 3 * H)]
    maint = [window(T0 + 2 * H, T0 + 3.25 * H)]
    both = row_of(report(atm, maint, unreachable="excluded"))
    assert (both.maintenance_s, both.unreachable_s) == (4500, 7200)
    assert both.monitored_s == 36000 - 4500 - 3600  # unreachable outside maintenance: 1 h
    assert (both.downtime_s, both.outages) == (900, 1)  # 3.25 h to 3.5 h
    only_maint = row_of(report(atm, maint))
    assert (only_maint.monitored_s, only_maint.downtime_s) == (36000 - 4500, 9000 - 4500)
    only_unreachable = row_of(report(atm, maint, exclude=False, unreachable="excluded"))
    assert (only_unreachable.monitored_s, only_unreachable.downtime_s) == (36000 - 7200, 1800)


def test_tag_windows_match_the_tags_the_history_recorded() -> None:
    windows = [window(T0 + 2 * H, T0 + 4 * H, "tag=backup", id=7),
               window(T0 + 2 * H, T0 + 4 * H, "tag=backup", "type=atm", id=8),
               window(T0 + 5 * H, T0 + 6 * H, "tag=other", id=9)]
    spans = [DeviceSpan("nas", "b1", "north", T0 - 5 * H, "nas", ("disk", "backup")),
             DeviceSpan("atm", "b1", "north", T0 - 5 * H, "atm", ("backup",)),
             DeviceSpan("pc", "b1", "north", T0 - 5 * H, "pc", ())]
    rep = report([], windows, spans=spans)
    assert {r.name: r.maintenance_s for r in rep.rows} == {"nas": 7200, "atm": 7200, "pc": 0}
    assert "maintenance_not_applied" not in json.loads(render_json(rep))


HOSTILE = ["\x1b]0;pwned\x07", "[bold]x[/]", "<script>alert(1)</script>", "=HYPERLINK(\"x\")", "a\nb"]


def test_hostile_notes_and_matchers_do_not_change_the_figures() -> None:
    plain = report(DOWN_2H, [WINDOW])
    for text in HOSTILE:
        assert report(DOWN_2H, [window(T0 + 2 * H, T0 + 4 * H, note=text)]).rows == plain.rows
        # A matcher's value is compared literally: it covers the device so named, no other.
        name = "r1" + text
        spans, outages = [span(name), span("r1")], [Outage(name, T0 + H, T0 + 3 * H), *DOWN_2H]
        rep = report(outages, [window(T0 + 2 * H, T0 + 4 * H, f"device={name}")], spans=spans)
        assert (row_of(rep, name).downtime_s, row_of(rep, "r1").downtime_s) == (3600, 7200)
        for render in (render_csv, render_md, render_html, render_json):
            assert "\x1b" not in render(rep) and "\x07" not in render(rep)


def test_every_format_shows_maintenance_and_says_when_it_is_excluded() -> None:
    rep = report(DOWN_2H, [WINDOW])
    data = json.loads(render_json(rep))
    assert data["maintenance"] == "excluded"
    assert (data["rows"][0]["maintenance_s"], data["rows"][0]["availability_pct"]) == (7200.0, 87.5)
    assert data["outages"][0]["maintenance_s"] == 3600.0
    assert json.loads(render_json(report(DOWN_2H, [WINDOW], exclude=False)))["maintenance"] == "counted"
    rows, outages = render_csv(rep).split("\n\n")
    (row,) = csv.DictReader(io.StringIO(rows))
    assert (row["maintenance_s"], row["availability_pct"]) == ("7200.0", "87.5")
    assert next(csv.DictReader(io.StringIO(outages)))["maintenance_s"] == "3600.0"
    md = render_md(rep)
    assert "maintenance time excluded" in md and "| Maintenance |" in md
    assert "| r1 | 1 | 87.500 % | 1 | 1h00m | 0s | 2h00m |" in md
    assert "maintenance time excluded" not in render_md(report(DOWN_2H, [WINDOW], exclude=False))
    page = render_html(rep)
    assert "maintenance time excluded" in page and "<th>Maintenance</th>" in page


# -- recurring windows over daylight-saving changes (Europe/Paris) --------------------------


def daily(cron: str, hours: float, *match: str) -> Window:
    return Window(1, tuple(parse_matcher(m) for m in match or ("device=r1",)), cron=cron,
                  duration_s=hours * 3600, tz="Europe/Paris", note="nightly",
                  created_at=datetime(2026, 1, 1, tzinfo=UTC))


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


def test_recurring_window_across_the_autumn_change() -> None:
    # 02:00 Paris for 2 h: 00:00-02:00 UTC in summer time (the 24th, and the 25th: 02:00 CEST to
    # 03:00 CET, two real hours, once), 01:00-03:00 UTC from the 26th.
    period = Period(utc(2026, 10, 24), utc(2026, 10, 27))
    down = [Outage("r1", utc(2026, 10, 26, 0, 30), utc(2026, 10, 26, 2, 30))]
    r = row_of(report(down, [daily("0 2 * * *", 2)], spans=[span(first=utc(2026, 10, 1))], period=period,
                      now=utc(2026, 11, 1)))
    assert r.maintenance_s == 3 * 7200
    assert (r.downtime_s, r.monitored_s) == (1800, 3 * 86400 - 3 * 7200)


def test_recurring_window_across_the_spring_change() -> None:
    # 02:30 Paris for 1 h: 01:30-02:30 UTC on the 28th (CET); on the 29th 02:30 does not exist:
    # it starts when the gap ends, 03:00 CEST = 01:00 UTC, for 1 h; then 00:30-01:30 UTC (CEST).
    period = Period(utc(2026, 3, 28), utc(2026, 3, 31))
    down = [Outage("r1", utc(2026, 3, 29, 0), utc(2026, 3, 29, 1, 30))]
    rep = report(down, [daily("30 2 * * *", 1)], spans=[span(first=utc(2026, 3, 1))], period=period,
                 now=utc(2026, 4, 1))
    r = row_of(rep)
    assert r.maintenance_s == 3 * 3600
    assert r.downtime_s == 3600 and rep.outages[0].maintenance_s == 1800


def test_a_window_every_minute_for_a_year_is_quick_and_counted_once() -> None:
    every_minute = daily("* * * * *", 90 / 3600)  # 90 s every minute: overlapping, one span
    period = Period(utc(2026, 1, 1), utc(2027, 1, 1))
    spans = [span(f"d{i}", first=utc(2025, 1, 1)) for i in range(2000)]
    rep = compute(spans, [], period, utc(2027, 2, 1), windows=[daily("* * * * *", 1.5 / 60, "branch=b1")],
                  exclude_maintenance=True)
    # All year but the hour repeated on 25 October: cron (and the notifier) fire once in it, at
    # its first 02:59, whose 90 s end at 01:00:30 UTC; the next start is 03:00 CET, 02:00 UTC.
    assert {r.maintenance_s for r in rep.rows} == {365 * 86400.0 - 3570}
    assert {r.monitored_s for r in rep.rows} == {3570}
    assert {r.availability_pct for r in rep.rows} == {100.0}
    in_utc = Window(2, (parse_matcher("device=r1"),), cron="* * * * *", duration_s=90, tz="UTC", note="",
                    created_at=utc(2025, 1, 1))
    for w, expected in ((every_minute, 365 * 86400 - 3570), (in_utc, 365 * 86400)):
        assert row_of(report([], [w], spans=[span(first=utc(2025, 1, 1))], period=period,
                             now=utc(2027, 2, 1))).maintenance_s == expected


@pytest.mark.parametrize("exclude", [False, True])
def test_no_window_no_change(exclude: bool) -> None:
    outages = [Outage("r1", T0 + H, T0 + 3 * H), Outage("r1", T0 + 2 * H, T0 + 4 * H)]  # overlapping
    plain = compute([span()], outages, PERIOD, LATER)
    assert report(outages, [], exclude=exclude).rows == plain.rows


def test_a_window_without_matchers_covers_every_device_and_several_keys_are_anded() -> None:
    spans = [span("r1"), DeviceSpan("atm1", "b1", "north", T0 - 5 * H, "atm"),
             DeviceSpan("atm2", "b2", "north", T0 - 5 * H, "atm")]
    everyone = Window(9, (), starts_at=T0, ends_at=T0 + H, note="", created_at=BEFORE)
    windows = [everyone, window(T0 + 5 * H, T0 + 6 * H, "type=atm", "branch=b1", id=2)]
    assert [(r.name, r.maintenance_s) for r in report([], windows, spans=spans).rows] == [
        ("atm1", 7200), ("atm2", 3600), ("r1", 3600)]
