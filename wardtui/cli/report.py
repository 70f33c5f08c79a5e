"""``wardtui report``: availability per device, branch or region over a period, as CSV, a Markdown
table, one self-contained HTML file or JSON (figures from :mod:`store.report`, formats from
:mod:`wardtui.report_formats`)."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from store.files import PRIVATE_FILE, open_output
from store.report import GROUP_BYS, UNREACHABLE_MODES
from wardtui.cli.common import (
    Commands,
    UsageError,
    add_db_option,
    command,
    failed,
    file_mode,
    open_existing,
    parse_period,
    read_store,
    write_out,
)
from wardtui.messages import error
from wardtui.report_formats import FORMATS, RENDERERS

if TYPE_CHECKING:
    from store.report import Period, Report

EXAMPLES = """\
examples:
  wardtui report --from 30d                                   every device, the last 30 days, CSV
  wardtui report --from 2026-11-01 --to 2026-12-01 --group-by region --format html -o nov.html
  wardtui report --from 7d --group-by branch --format json | jq '.rows[] | select(.availability_pct < 99.9)'
  wardtui report --from 2026-11-01T08:00+01:00 --to 24h --format md
  wardtui report --from 30d --group-by branch --unreachable excluded      the SLA view
  wardtui report --from 2026-11-01 --to 2026-12-01 --unreachable excluded --exclude-maintenance

DATE: an ISO 8601 date or time (UTC when it names no zone; a date is its midnight), a span back
from now (90m, 24h, 7d), or now. The period is [--from, --to); an end in the future counts up to
now. Availability = up time / time monitored; time before a device was first monitored is not
counted. Maintenance (the time of wardtui maintenance windows matching the device, while they
existed) is shown apart; --exclude-maintenance leaves it out of both the up and the down time.
Windows match devices by name, branch, region, type and tags as the history last recorded them.
CSV text that a spreadsheet would run as a formula (a name starting with =, +, -, @, a
tab or CR) is written behind a single quote, '=HYPERLINK(...); numbers are left as they are.
Terminal control characters in stored names are replaced by U+FFFD in csv, md and html; md
escapes HTML and link syntax, html escapes everything; json keeps names exactly (JSON-escaped).
See docs/OPERATIONS.md, "Availability reports".
"""


def register(sub: Commands) -> None:
    report = command(
        sub, "report", run, "availability per device, branch or region over a period (csv, md, html, json)",
        EXAMPLES, description="Availability, outages, downtime, MTTR, MTBF, longest outage and state "
                              "now, per\ndevice, branch or region, and the list of outages, from the "
                              "stored history.")
    report.add_argument("--from", dest="start", metavar="DATE", required=True,
                        help="start of the period (ISO 8601 date or time, or 24h, 7d, 30d back from now)")
    report.add_argument("--to", dest="end", metavar="DATE", default="now",
                        help="end of the period, exclusive (default now)")
    report.add_argument("--group-by", choices=GROUP_BYS, default="device",
                        help="one row per device (default), branch or region")
    report.add_argument("--unreachable", choices=UNREACHABLE_MODES, default="down",
                        help="time a device was unreachable (behind a parent that was down): down "
                             "(default: counted as downtime) or excluded (neither up nor down: the SLA "
                             "view); either way the Unreachable column shows it")
    report.add_argument("--exclude-maintenance", action="store_true",
                        help="leave the time of maintenance windows matching a device out of its "
                             "availability (neither up nor down; outages count only their time outside "
                             "it); without it that time counts as any other. Either way the Maintenance "
                             "column shows it")
    report.add_argument("--format", choices=FORMATS, default="csv",
                        help="csv (default), md (a GitHub table), html (one self-contained file), json")
    report.add_argument("-o", "--output", type=Path, metavar="FILE", help="write here instead of stdout")
    report.add_argument("--mode", type=file_mode, default=PRIVATE_FILE, metavar="OCTAL",
                        help="mode of the -o file (default 600: yours alone; e.g. 640 for your group)")
    add_db_option(report)


def run(args: argparse.Namespace) -> int:
    now = datetime.now(UTC)
    try:
        period = parse_period(args.start, args.end, now)
    except UsageError as exc:
        return failed(exc)
    code, report = read_store(args.db, lambda url: query_report(url, period, args.group_by, now,
                                                                args.unreachable, args.exclude_maintenance))
    if report is None:
        return code
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


async def query_report(url: str, period: Period, group_by: Any, now: datetime,
                       unreachable: Any = "down", exclude_maintenance: bool = False) -> Report:
    """The report from the history at ``url`` (never created here)."""
    from store.report import availability

    store = await open_existing(url)
    try:
        return await availability(store, period, group_by=group_by, now=now, unreachable=unreachable,
                                  exclude_maintenance=exclude_maintenance)
    finally:
        await store.close()
