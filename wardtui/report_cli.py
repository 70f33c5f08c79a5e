"""``wardtui report``: availability per device, branch or region over a period, as CSV, a Markdown
table, one self-contained HTML file or JSON (figures from :mod:`store.report`)."""

from __future__ import annotations

import argparse
import csv
import html
import io
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from poller.text import clean
from store.files import PRIVATE_FILE, open_output, parse_mode
from store.report import GROUP_BYS, Period, Report, ReportOutage, ReportRow, availability
from wardtui.history_cli import HistoryQueryError, _open_existing, parse_since, write_out
from wardtui.messages import error
from wardtui.runtime import DB_HELP
from wardtui.widgets.states import format_duration

FORMATS = ("csv", "md", "html", "json")
_DASH = "—"
EXAMPLES = """\
examples:
  wardtui report --from 30d                                   every device, the last 30 days, CSV
  wardtui report --from 2026-11-01 --to 2026-12-01 --group-by region --format html -o nov.html
  wardtui report --from 7d --group-by branch --format json | jq '.rows[] | select(.availability_pct < 99.9)'
  wardtui report --from 2026-11-01T08:00+01:00 --to 24h --format md

DATE: an ISO 8601 date or time (UTC when it names no zone; a date is its midnight), a span back
from now (90m, 24h, 7d), or now. The period is [--from, --to); an end in the future counts up to
now. Availability = up time / time monitored; time before a device was first monitored is not
counted. CSV text that a spreadsheet would run as a formula (a name starting with =, +, -, @, a
tab or CR) is written behind a single quote, '=HYPERLINK(...); numbers are left as they are.
Terminal control characters in stored names are replaced by U+FFFD in csv, md and html; md
escapes HTML and link syntax, html escapes everything; json keeps names exactly (JSON-escaped).
See docs/OPERATIONS.md, "Availability reports".
"""


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``wardtui report``."""
    report = sub.add_parser(
        "report", help="availability per device, branch or region over a period (csv, md, html, json)",
        description="Availability, outages, downtime, MTTR, MTBF, longest outage and state now, per\n"
                    "device, branch or region, and the list of outages, from the stored history.",
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    report.add_argument("--from", dest="start", metavar="DATE", required=True,
                        help="start of the period (ISO 8601 date or time, or 24h, 7d, 30d back from now)")
    report.add_argument("--to", dest="end", metavar="DATE", default="now",
                        help="end of the period, exclusive (default now)")
    report.add_argument("--group-by", choices=GROUP_BYS, default="device",
                        help="one row per device (default), branch or region")
    report.add_argument("--format", choices=FORMATS, default="csv",
                        help="csv (default), md (a GitHub table), html (one self-contained file), json")
    report.add_argument("-o", "--output", type=Path, metavar="FILE", help="write here instead of stdout")
    report.add_argument("--mode", type=file_mode, default=PRIVATE_FILE, metavar="OCTAL",
                        help="mode of the -o file (default 600: yours alone; e.g. 640 for your group)")
    report.add_argument("--db", metavar="URL", default=argparse.SUPPRESS, help=DB_HELP)


def file_mode(text: str) -> int:
    """``--mode``: the octal mode of an output file (600, 0640)."""
    try:
        return parse_mode(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def parse_date(text: str, now: datetime, option: str) -> datetime:
    """``now``, a span back from now (``24h``) or an ISO 8601 date or time (UTC without a zone)."""
    if text.strip().lower() == "now":
        return now
    try:
        return parse_since(text, now, option)
    except HistoryQueryError:
        raise HistoryQueryError(f"{option} {text!r}: use an ISO 8601 date or time "
                                "(2026-11-01, 2026-11-01T08:00Z), a span back from now (24h, 7d) "
                                "or now") from None


def parse_period(start_text: str, end_text: str, now: datetime) -> Period:
    start = parse_date(start_text, now, "--from")
    end = parse_date(end_text, now, "--to")
    if end <= start:
        raise HistoryQueryError(f"--from {_stamp(start)} UTC is not before --to {_stamp(end)} UTC")
    return Period(start, end)


async def query_report(url: str, period: Period, group_by: Any, now: datetime) -> Report:
    """The report from the history at ``url`` (never created here)."""
    store = await _open_existing(url)
    try:
        return await availability(store, period, group_by=group_by, now=now)
    finally:
        await store.close()


def run(args: argparse.Namespace, read_history: Callable[..., tuple[int, Any]]) -> int:
    """``wardtui report``; ``read_history`` is ``wardtui.cli._read_history`` (its error path)."""
    now = datetime.now(UTC)
    try:
        period = parse_period(args.start, args.end, now)
    except HistoryQueryError as exc:
        error(f"{exc}")
        return exc.code
    code, report = read_history(args.db, lambda url: query_report(url, period, args.group_by, now))
    if report is None:
        return int(code)
    text = RENDERERS[args.format](report)
    if args.output is None:
        write_out(text.rstrip("\n"))
        return 0
    try:
        with open_output(args.output, args.mode) as out:
            out.write(text)
    except OSError as exc:
        error(f"-o {args.output}: cannot write the report: {exc.strerror or exc}")
        return 2
    return 0


# -- records ---------------------------------------------------------------------------------


def _iso(at: datetime | None) -> str | None:
    return None if at is None else at.astimezone(UTC).isoformat()


def _stamp(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def _round(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(value, digits)


def row_record(row: ReportRow) -> dict[str, Any]:
    return {"name": row.name, "devices": row.devices, "availability_pct": _round(row.availability_pct, 4),
            "outages": row.outages, "downtime_s": _round(row.downtime_s), "mttr_s": _round(row.mttr_s),
            "mtbf_s": _round(row.mtbf_s), "longest_s": _round(row.longest_s),
            "uptime_s": _round(row.uptime_s), "monitored_s": _round(row.monitored_s),
            "state": row.state, "down_now": row.down_now}


def outage_record(outage: ReportOutage) -> dict[str, Any]:
    return {"device": outage.device, "start": _iso(outage.start), "end": _iso(outage.end),
            "counted_start": _iso(outage.counted_start), "counted_end": _iso(outage.counted_end),
            "counted_s": _round(outage.counted_s), "ongoing": outage.ongoing}


def report_record(report: Report) -> dict[str, Any]:
    return {"from": _iso(report.period.start), "to": _iso(report.period.end),
            "counted_until": _iso(report.until), "generated_at": _iso(report.now),
            "group_by": report.group_by, "rows": [row_record(r) for r in report.rows],
            "outages": [outage_record(o) for o in report.outages]}


# -- renderers -------------------------------------------------------------------------------

ROW_COLUMNS = ("name", "devices", "availability_pct", "outages", "downtime_s", "mttr_s", "mtbf_s",
               "longest_s", "state")
OUTAGE_COLUMNS = ("device", "start", "end", "counted_s", "ongoing")


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
    return title


def _cells(row: ReportRow) -> list[str]:
    return [text_cell(row.name), str(row.devices), _pct(row.availability_pct), str(row.outages),
            _dur(row.downtime_s), _dur(row.mttr_s), _dur(row.mtbf_s), _dur(row.longest_s), row.state]


def _outage_cells(o: ReportOutage) -> list[str]:
    end = "ongoing" if o.end is None else _stamp(o.end)
    return [text_cell(o.device), _stamp(o.start), end, _dur(o.counted_s)]


HEADERS = ("Name", "Devices", "Availability", "Outages", "Downtime", "MTTR", "MTBF", "Longest", "State")
OUTAGE_HEADERS = ("Device", "Start (UTC)", "End (UTC)", "Counted")


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
    lines += _md_table(HEADERS, [_cells(r) for r in report.rows], set(range(1, 8)))
    lines += ["", f"### Outages ({len(report.outages)})", ""]
    if report.outages:
        lines += _md_table(OUTAGE_HEADERS, [_outage_cells(o) for o in report.outages], {3})
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
    lines += _html_table(HEADERS, [(_cells(r), r.down_now > 0) for r in report.rows], set(range(1, 8)))
    lines.append(f"<h2>Outages ({len(report.outages)})</h2>")
    if report.outages:
        lines += _html_table(OUTAGE_HEADERS, [(_outage_cells(o), o.ongoing) for o in report.outages], {3})
    else:
        lines.append("<p>No outages in this period.</p>")
    lines.append(f'<p class="note">Generated {html.escape(_stamp(report.now))} UTC by wardtui. '
                 "Availability = up time / time monitored; MTTR = downtime / outages; MTBF = up time / "
                 "outages. Outages crossing the period's edges are clipped to them.</p>")
    lines.append("</body></html>")
    return "\n".join(lines) + "\n"


RENDERERS: dict[str, Callable[[Report], str]] = {
    "csv": render_csv, "md": render_md, "html": render_html, "json": render_json}
