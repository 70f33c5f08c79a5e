"""``wardtui outages``: the outage history in the store, as a table for people or JSON for scripts."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url

from store.history import HistoryStore
from store.records import Outage
from wardtui.widgets.states import format_duration

_SPAN = re.compile(r"^(\d+)([mhd])$")
_UNITS = {"m": 60, "h": 3600, "d": 86400}


class HistoryQueryError(Exception):
    """A query an operator must fix (bad --since, unknown device, no history); ``code`` is the exit."""

    def __init__(self, message: str, code: int = 2) -> None:
        super().__init__(message)
        self.code = code


def parse_since(text: str, now: datetime) -> datetime:
    """``1h``, ``24h``, ``7d``, ``30d`` (any N with m, h or d) back from ``now``, or an ISO 8601 time
    (UTC when it names no zone)."""
    if match := _SPAN.match(text.strip()):
        return now - timedelta(seconds=int(match[1]) * _UNITS[match[2]])
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise HistoryQueryError(f"--since {text!r}: use 1h, 24h, 7d, 30d or an ISO 8601 time") from None
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def outage_record(outage: Outage, now: datetime) -> dict[str, Any]:
    return {"device": outage.device, "start": outage.start.isoformat(),
            "end": None if outage.end is None else outage.end.isoformat(),
            "duration_s": round(outage.duration(now).total_seconds(), 3)}


async def query_outages(url: str, device: str | None, since: datetime | None) -> list[Outage]:
    """Outages from the history at ``url``, without creating a database that is not there."""
    parsed = make_url(url)
    path = parsed.database
    if parsed.get_backend_name() == "sqlite" and path not in (None, "", ":memory:") \
            and not Path(str(path)).is_file():
        raise HistoryQueryError(f"no history at {path}: wardtui has not run with it yet", 1)
    store = HistoryStore(url)
    await store.open()
    try:
        if device is not None and device not in store.device_names():
            raise HistoryQueryError(f"no device named {device!r} in the history")
        return await store.outages(device, since)
    finally:
        await store.close()


def render(outages: list[Outage], now: datetime, as_json: bool) -> str:
    records = [outage_record(o, now) for o in outages]
    if as_json:
        return json.dumps(records, indent=None)
    if not records:
        return "no outages"
    lines = [f"{'device':<28} {'start (UTC)':<20} {'end (UTC)':<20} {'duration':>10}"]
    for o in outages:
        end = "still down" if o.end is None else o.end.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")
        lines.append(f"{o.device:<28} {o.start.astimezone(UTC).strftime('%Y-%m-%d %H:%M:%S'):<20} "
                     f"{end:<20} {format_duration(o.duration(now)):>10}")
    return "\n".join(lines)
