"""``wardtui outages``: start, end and duration of the outages the history remembers, as a table
for people or a JSON array for scripts."""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from poller.durations import format_duration
from wardtui.cli.common import (
    Commands,
    UsageError,
    add_db_option,
    add_since_option,
    command,
    failed,
    open_existing,
    parse_since,
    read_store,
    write_out,
)

if TYPE_CHECKING:
    from store.records import Outage

EXAMPLES = """\
examples:
  wardtui outages --since 24h
  wardtui outages --device north-b001-rtr --since 7d --json | jq '.[].duration_s'
  wardtui outages --since 2026-11-01T00:00:00Z --db sqlite:///var/lib/wardtui/history.db
"""


def register(sub: Commands) -> None:
    outages = command(sub, "outages", run,
                      "list outages from the history (start, end or still down, duration)", EXAMPLES)
    add_since_option(outages, "; outages still open or ended since then")
    outages.add_argument("--device", metavar="NAME", help="only this device")
    outages.add_argument("--json", action="store_true", help="a JSON array instead of a table")
    add_db_option(outages)


def run(args: argparse.Namespace) -> int:
    now = datetime.now(UTC)
    try:
        since = parse_since(args.since, now)
    except UsageError as exc:
        return failed(exc)
    code, outages = read_store(args.db, lambda url: query_outages(url, args.device, since))
    if outages is None:
        return code
    write_out(render(outages, now, args.json))
    return 0


def outage_record(outage: Outage, now: datetime) -> dict[str, Any]:
    return {"device": outage.device, "start": outage.start.isoformat(),
            "end": None if outage.end is None else outage.end.isoformat(),
            "duration_s": round(outage.duration(now).total_seconds(), 3), "cause": outage.cause,
            "down_from": None if outage.down_from is None else outage.down_from.isoformat()}


def cause_text(outage: Outage) -> str:
    """``down``, ``unreachable``, or ``unreachable, then down`` (its parent came back, it did not)."""
    return "unreachable, then down" if outage.down_from is not None else outage.cause


async def query_outages(url: str, device: str | None, since: datetime | None) -> list[Outage]:
    """Outages from the history at ``url``, without creating a database that is not there."""
    store = await open_existing(url)
    try:
        if device is not None and device not in store.device_names():
            raise UsageError(f"no device named {device!r} in the history")
        return await store.outages(device, since)
    finally:
        await store.close()


def render(outages: list[Outage], now: datetime, as_json: bool) -> str:
    records = [outage_record(o, now) for o in outages]
    if as_json:
        return json.dumps(records, indent=None)
    if not records:
        return "no outages"
    lines = [f"{'device':<28} {'start (UTC)':<20} {'end (UTC)':<20} {'duration':>10}  cause"]
    for o in outages:
        end = "still down" if o.end is None else o.end.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")
        lines.append(f"{o.device:<28} {o.start.astimezone(UTC).strftime('%Y-%m-%d %H:%M:%S'):<20} "
                     f"{end:<20} {format_duration(o.duration(now)):>10}  {cause_text(o)}")
    return "\n".join(lines)
