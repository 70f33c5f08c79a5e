"""Reports split downtime by cause: unreachable time is downtime by default, left out with
``--unreachable excluded`` (the SLA view), and shown apart in every format."""

from __future__ import annotations

import csv
import io
import json

from store.records import Outage
from store.report import compute
from tests.unit.test_report import LATER, PERIOD, T0, H, span
from wardtui.report_formats import render_csv, render_html, render_json, render_md

# r1: down 1 h on its own. atm: unreachable 2 h behind its router, then down 30 min on its own
# (the router came back, it did not). cam: unreachable 1 h, still unreachable at the period's
# end (5 h into it... counted to the period's end).
OUTAGES = [Outage("r1", T0 + H, T0 + 2 * H),
           Outage("atm", T0 + H, T0 + 3.5 * H, cause="unreachable", down_from=T0 + 3 * H),
           Outage("cam", T0 + 9 * H, None, cause="unreachable")]
SPANS = [span("r1"), span("atm"), span("cam")]


def rows(unreachable: str = "down") -> dict[str, object]:
    report = compute(SPANS, OUTAGES, PERIOD, LATER, unreachable=unreachable)  # type: ignore[arg-type]
    return {r.name: r for r in report.rows}


def test_by_default_unreachable_time_is_downtime_and_said_apart() -> None:
    got = rows()
    atm, cam, r1 = got["atm"], got["cam"], got["r1"]
    assert (atm.downtime_s, atm.unreachable_s, atm.outages, atm.monitored_s) == (9000, 7200, 1, 36000)  # type: ignore[attr-defined]
    assert (cam.downtime_s, cam.unreachable_s, cam.outages) == (3600, 3600, 1)  # type: ignore[attr-defined]
    assert (r1.downtime_s, r1.unreachable_s) == (3600, 0)  # type: ignore[attr-defined]


def test_excluded_leaves_unreachable_time_out_of_both_down_and_counted_time() -> None:
    got = rows("excluded")
    atm, cam = got["atm"], got["cam"]
    assert (atm.downtime_s, atm.monitored_s, atm.outages, atm.longest_s) == (1800, 28800, 1, 1800)  # type: ignore[attr-defined]
    assert atm.availability_pct == 100.0 * (28800 - 1800) / 28800  # type: ignore[attr-defined]
    # Unreachable throughout: no outage of its own, fully available over the time counted.
    assert (cam.downtime_s, cam.monitored_s, cam.outages, cam.availability_pct) == (0, 32400, 0, 100.0)  # type: ignore[attr-defined]
    assert got["r1"].downtime_s == 3600  # type: ignore[attr-defined]


def test_a_group_sums_the_unreachable_time_of_its_devices() -> None:
    report = compute(SPANS, OUTAGES, PERIOD, LATER, group_by="branch")
    (branch,) = report.rows
    assert (branch.downtime_s, branch.unreachable_s) == (3600 + 9000 + 3600, 7200 + 3600)


def test_every_format_shows_the_cause() -> None:
    report = compute(SPANS, OUTAGES, PERIOD, LATER, unreachable="excluded")
    data = json.loads(render_json(report))
    assert data["unreachable"] == "excluded"
    assert {r["name"]: r["unreachable_s"] for r in data["rows"]} == {"atm": 7200, "cam": 3600, "r1": 0}
    assert {o["device"]: o["cause"] for o in data["outages"]} == {"r1": "down", "atm": "unreachable",
                                                                 "cam": "unreachable"}
    table = list(csv.reader(io.StringIO(render_csv(report))))
    header = next(r for r in table if r and r[0] == "name")
    assert "unreachable_s" in header
    assert any(r[:1] == ["device"] and "cause" in r for r in table)  # acked_by, ack_note follow it
    md = render_md(report)
    assert "unreachable time excluded" in md and "| Unreachable |" in md and "| unreachable |" in md
    assert "<th>Unreachable</th>" in render_html(report)
