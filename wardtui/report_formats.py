"""The availability report's formats: CSV, a Markdown table, one self-contained HTML page and JSON,
rendered from :class:`store.report.Report`. Used by ``wardtui report`` and the dashboard's export
box alike; imports no screen library (tests/unit/test_layering.py)."""

from __future__ import annotations

import csv
import html
import io
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from poller.durations import format_duration
from poller.text import clean
from store.report import Report, ReportOutage, ReportRow

FORMATS = ("csv", "md", "html", "json")
_DASH = "—"


# -- records ---------------------------------------------------------------------------------


def _iso(at: datetime | None) -> str | None:
    return None if at is None else at.astimezone(UTC).isoformat()


def _stamp(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def _round(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(value, digits)


def row_record(row: ReportRow) -> dict[str, Any]:
    return {"name": row.name, "devices": row.devices, "availability_pct": _round(row.availability_pct, 4),
            "outages": row.outages, "downtime_s": _round(row.downtime_s),
            "unreachable_s": _round(row.unreachable_s), "maintenance_s": _round(row.maintenance_s),
            "mttr_s": _round(row.mttr_s),
            "mtbf_s": _round(row.mtbf_s), "longest_s": _round(row.longest_s),
            "uptime_s": _round(row.uptime_s), "monitored_s": _round(row.monitored_s),
            "state": row.state, "down_now": row.down_now}


def outage_record(outage: ReportOutage) -> dict[str, Any]:
    return {"device": outage.device, "start": _iso(outage.start), "end": _iso(outage.end),
            "counted_start": _iso(outage.counted_start), "counted_end": _iso(outage.counted_end),
            "counted_s": _round(outage.counted_s), "ongoing": outage.ongoing, "cause": outage.cause,
            "unreachable_s": _round(outage.unreachable_s), "maintenance_s": _round(outage.maintenance_s),
            "acked_by": outage.acked_by,
            "ack_note": outage.ack_note}


def report_record(report: Report) -> dict[str, Any]:
    return {"from": _iso(report.period.start), "to": _iso(report.period.end),
            "counted_until": _iso(report.until), "generated_at": _iso(report.now),
            "group_by": report.group_by, "unreachable": report.unreachable,
            "maintenance": "excluded" if report.exclude_maintenance else "counted",
            "rows": [row_record(r) for r in report.rows],
            "outages": [outage_record(o) for o in report.outages]}


# -- renderers -------------------------------------------------------------------------------

ROW_COLUMNS = ("name", "devices", "availability_pct", "outages", "downtime_s", "unreachable_s",
               "maintenance_s", "mttr_s", "mtbf_s", "longest_s", "state")
OUTAGE_COLUMNS = ("device", "start", "end", "counted_s", "ongoing", "cause", "maintenance_s", "acked_by",
                  "ack_note")


def render_json(report: Report) -> str:
    return json.dumps(report_record(report)) + "\n"


# A spreadsheet runs a cell that starts with one of these as a formula: =HYPERLINK(...) in a
# device name would become a live link, or worse (OWASP, "CSV Injection").
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def text_cell(text: str) -> str:
    """A name from the database as a report shows it: terminal control replaced (a report is
    printed to terminals, and ``cat`` would obey an escape), everything else as stored."""
    return clean(text)


def csv_cell(value: Any) -> Any:
    """A CSV cell: empty for ``None``, ``true``/``false``, numbers as they are (``-1`` stays a
    number), and text that a spreadsheet would run as a formula behind a single quote, as
    OWASP advises, so ``=HYPERLINK("x")`` is shown as text; terminal control replaced
    (:func:`text_cell`)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, str):
        formula = value.startswith(FORMULA_STARTS)  # before the tab or CR is replaced
        value = text_cell(value)
        return "'" + value if formula or value.startswith(FORMULA_STARTS) else value
    return value


def render_csv(report: Report) -> str:
    """The rows (seconds as numbers, empty where undefined), a blank line, then the outages;
    text cells go through :func:`csv_cell`, which defuses spreadsheet formulas."""
    out = io.StringIO()
    # Text in double quotes, numbers bare: OWASP's other half of the guard, and before
    # Python 3.13 the only way a CR inside a name gets quoted rather than breaking the row.
    writer = csv.writer(out, lineterminator="\n", quoting=csv.QUOTE_NONNUMERIC)
    writer.writerow(ROW_COLUMNS)
    for row in report.rows:
        record = row_record(row)
        writer.writerow([csv_cell(record[c]) for c in ROW_COLUMNS])
    writer.writerow([])
    writer.writerow(OUTAGE_COLUMNS)
    for outage in report.outages:
        record = outage_record(outage)
        writer.writerow([csv_cell(record[c]) for c in OUTAGE_COLUMNS])
    return out.getvalue()


def _pct(value: float | None) -> str:
    if value is None:
        return _DASH
    text = f"{value:.3f}"
    if value < 100 and text == "100.000":  # never 100 % for less than all
        text = "99.999"
    return text + " %"


def _dur(seconds: float | None) -> str:
    return _DASH if seconds is None else format_duration(timedelta(seconds=seconds))


def _title(report: Report) -> str:
    title = (f"Availability by {report.group_by}, {_stamp(report.period.start)} to "
             f"{_stamp(report.period.end)} UTC")
    if report.until < report.period.end:
        title += f" (counted up to {_stamp(report.until)} UTC)"
    if report.unreachable == "excluded":
        title += ", unreachable time excluded"
    if report.exclude_maintenance:
        title += ", maintenance time excluded"
    return title


def _cells(row: ReportRow) -> list[str]:
    return [text_cell(row.name), str(row.devices), _pct(row.availability_pct), str(row.outages),
            _dur(row.downtime_s), _dur(row.unreachable_s), _dur(row.maintenance_s), _dur(row.mttr_s),
            _dur(row.mtbf_s),
            _dur(row.longest_s), row.state]


def _outage_cells(o: ReportOutage) -> list[str]:
    end = "ongoing" if o.end is None else _stamp(o.end)
    return [text_cell(o.device), _stamp(o.start), end, _dur(o.counted_s), _dur(o.maintenance_s), o.cause,
            _acked(o)]


def _acked(o: ReportOutage) -> str:
    """Who acknowledged the outage and their note (wardtui ack), as text the format escapes."""
    if o.acked_by is None:
        return ""
    return text_cell(f"{o.acked_by}: {o.ack_note}" if o.ack_note else o.acked_by)


HEADERS = ("Name", "Devices", "Availability", "Outages", "Downtime", "Unreachable", "Maintenance", "MTTR",
           "MTBF", "Longest", "State")
_NUMBERS = set(range(1, 10))  # the columns aligned right
OUTAGE_HEADERS = ("Device", "Start (UTC)", "End (UTC)", "Counted", "In maintenance", "Cause", "Acknowledged")
_OUTAGE_NUMBERS = {3, 4}


# Markdown passes raw HTML through (<script>, <img onerror>) and makes links of [x](y), <y>
# and bare URLs: in a cell, HTML's three characters become entities, the brackets of link
# syntax and the punctuation of emphasis and code are backslash-escaped (CommonMark allows it
# before any ASCII punctuation), and "://" and "www." are broken so that no renderer
# autolinks a name.
_MD_ESCAPES = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;", "\n": " ",
                             **{c: "\\" + c for c in "\\`*_[]|~"}})


def _md_cell(text: str) -> str:
    return text.translate(_MD_ESCAPES).replace("://", ":\\/\\/").replace("www.", "www\\.")


def _md_table(headers: tuple[str, ...], rows: list[list[str]], right: set[int]) -> list[str]:
    lines = ["| " + " | ".join(headers) + " |",
             "|" + "|".join("---:" if i in right else "---" for i in range(len(headers))) + "|"]
    lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in rows]
    return lines


def render_md(report: Report) -> str:
    """A heading, the rows and the outages as GitHub tables."""
    lines = [f"## {_title(report)}", ""]
    lines += _md_table(HEADERS, [_cells(r) for r in report.rows], _NUMBERS)
    lines += ["", f"### Outages ({len(report.outages)})", ""]
    if report.outages:
        lines += _md_table(OUTAGE_HEADERS, [_outage_cells(o) for o in report.outages], _OUTAGE_NUMBERS)
    else:
        lines.append("No outages in this period.")
    return "\n".join(lines) + "\n"


_CSS = """body{font-family:system-ui,sans-serif;margin:2em;color:#222}
table{border-collapse:collapse;margin:1em 0}th,td{border:1px solid #ccc;padding:.3em .6em}
th{background:#f0f0f0;text-align:left}td.n{text-align:right;font-variant-numeric:tabular-nums}
tr.down td{background:#fde8e8}p.note{color:#555;font-size:.9em}"""


def _html_table(headers: tuple[str, ...], rows: list[tuple[list[str], bool]], right: set[int]) -> list[str]:
    out = ["<table>", "<tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in headers) + "</tr>"]
    for cells, down in rows:
        tds = "".join(f'<td class="n">{html.escape(c)}</td>' if i in right else f"<td>{html.escape(c)}</td>"
                      for i, c in enumerate(cells))
        out.append(f'<tr class="down">{tds}</tr>' if down else f"<tr>{tds}</tr>")
    out.append("</table>")
    return out


def render_html(report: Report) -> str:
    """One self-contained page: inline CSS, no scripts, no links; every text escaped."""
    title = html.escape(_title(report))
    lines = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">', f"<title>{title}</title>",
             f"<style>{_CSS}</style></head><body>", f"<h1>{title}</h1>"]
    lines += _html_table(HEADERS, [(_cells(r), r.down_now > 0) for r in report.rows], _NUMBERS)
    lines.append(f"<h2>Outages ({len(report.outages)})</h2>")
    if report.outages:
        lines += _html_table(OUTAGE_HEADERS, [(_outage_cells(o), o.ongoing) for o in report.outages],
                             _OUTAGE_NUMBERS)
    else:
        lines.append("<p>No outages in this period.</p>")
    lines.append(f'<p class="note">Generated {html.escape(_stamp(report.now))} UTC by wardtui. '
                 "Availability = up time / time monitored; MTTR = downtime / outages; MTBF = up time / "
                 "outages. Outages crossing the period's edges are clipped to them. Unreachable: the "
                 "part of the outages spent behind a parent that was out, counted as downtime unless "
                 "excluded. Maintenance: the time of the maintenance windows matching the device, "
                 "counted as any other time unless excluded; excluded, it is neither up nor down, and an "
                 "outage counts only its time outside it.</p>")
    lines.append("</body></html>")
    return "\n".join(lines) + "\n"


RENDERERS: dict[str, Callable[[Report], str]] = {
    "csv": render_csv, "md": render_md, "html": render_html, "json": render_json}
