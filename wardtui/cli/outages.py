"""``wardtui outages``: start, end and duration of the outages the history remembers, as a table
for people or a JSON array for scripts; who acknowledged each (``wardtui ack``, the dashboard's
``a``) and their note. Names and notes are data: written out, never obeyed (write_out)."""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from poller.durations import format_duration
from poller.text import escaped
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
    from poller.notify.acks import Ack
    from store.records import Outage

Acks = dict[tuple[str, datetime], "Ack"]

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
    code, found = read_store(args.db, lambda url: query_outages(url, args.device, since))
    if found is None:
        return code
    outages, acks = found
    write_out(render(outages, now, args.json, acks))
    return 0


def outage_record(outage: Outage, now: datetime, ack: Ack | None = None) -> dict[str, Any]:
    return {"device": outage.device, "start": outage.start.isoformat(),
            "end": None if outage.end is None else outage.end.isoformat(),
            "duration_s": round(outage.duration(now).total_seconds(), 3), "cause": outage.cause,
            "down_from": None if outage.down_from is None else outage.down_from.isoformat(),
            "acked_by": None if ack is None else ack.who, "ack_note": None if ack is None else ack.note,
            "acked_at": None if ack is None else ack.at.isoformat()}


def cause_text(outage: Outage) -> str:
    """``down``, ``unreachable``, or ``unreachable, then down`` (its parent came back, it did not)."""
    return "unreachable, then down" if outage.down_from is not None else outage.cause


async def query_outages(url: str, device: str | None, since: datetime | None) -> tuple[list[Outage], Acks]:
    """Outages from the history at ``url`` and the acknowledgement of each (device, start) that has
    one, without creating a database that is not there."""
    from store.acks import Acknowledgements

    store = await open_existing(url)
    try:
        if device is not None and device not in store.device_names():
            raise UsageError(f"no device named {device!r} in the history")
        return await store.outages(device, since), await Acknowledgements(store.db).of_outages(since)
    finally:
        await store.close()


def render(outages: list[Outage], now: datetime, as_json: bool, acks: Acks | None = None) -> str:
    acks = acks or {}
    records = [outage_record(o, now, acks.get((o.device, o.start))) for o in outages]
    if as_json:
        return json.dumps(records, indent=None)
    if not records:
        return "no outages"
    lines = [f"{'device':<28} {'start (UTC)':<20} {'end (UTC)':<20} {'duration':>10}  {'cause':<22} "
             "acknowledged"]
    for o in outages:
        end = "still down" if o.end is None else o.end.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")
        ack = acks.get((o.device, o.start))
        taken = "" if ack is None else f"{escaped(ack.who)}: {escaped(ack.note)}"
        start = o.start.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")
        lines.append(f"{o.device:<28} {start:<20} {end:<20} {format_duration(o.duration(now)):>10}  "
                     f"{cause_text(o):<22} {taken}".rstrip())
    return "\n".join(lines)
