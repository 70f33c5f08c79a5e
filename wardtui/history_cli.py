"""``wardtui outages`` and ``wardtui history``: what the store remembers, as a table for people
or JSON for scripts. Outages are start, end and duration; a device's history is its raw checks
or its 1-minute or hourly rollups, whichever :func:`store.queries.choose_tier` picks for the span."""

from __future__ import annotations

import json
import os
import re
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url

from poller.text import clean_lines
from store.history import HistoryStore
from store.maintenance import Retention
from store.queries import TIER_NAMES, History, TierName, choose_tier, device_history
from store.records import Check, Outage, Rollup
from wardtui.durations import format_duration

_SPAN = re.compile(r"^(\d+)([mhd])$")
_UNITS = {"m": 60, "h": 3600, "d": 86400}


class HistoryQueryError(Exception):
    """A query an operator must fix (bad --since, unknown device, no history); ``code`` is the exit."""

    def __init__(self, message: str, code: int = 2) -> None:
        super().__init__(message)
        self.code = code


def parse_since(text: str, now: datetime, option: str = "--since") -> datetime:
    """``1h``, ``24h``, ``7d``, ``30d`` (any N with m, h or d) back from ``now``, or an ISO 8601 time
    (UTC when it names no zone)."""
    if match := _SPAN.match(text.strip()):
        try:
            return now - timedelta(seconds=int(match[1]) * _UNITS[match[2]])
        except OverflowError:  # before year 1 (99999999d)
            raise HistoryQueryError(f"{option} {text!r}: too far back; give a date instead") from None
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise HistoryQueryError(f"{option} {text!r}: use 1h, 24h, 7d, 30d or an ISO 8601 time") from None
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


async def _open_existing(url: str) -> HistoryStore:
    """The history store at ``url``, opened, without creating a SQLite file that is not there."""
    parsed = make_url(url)
    path = parsed.database
    if parsed.get_backend_name() == "sqlite" and path not in (None, "", ":memory:") \
            and not Path(str(path)).is_file():
        raise HistoryQueryError(f"no history at {path}: wardtui has not run with it yet", 1)
    store = HistoryStore(url)
    await store.open()
    return store


def outage_record(outage: Outage, now: datetime) -> dict[str, Any]:
    return {"device": outage.device, "start": outage.start.isoformat(),
            "end": None if outage.end is None else outage.end.isoformat(),
            "duration_s": round(outage.duration(now).total_seconds(), 3)}


async def query_outages(url: str, device: str | None, since: datetime | None) -> list[Outage]:
    """Outages from the history at ``url``, without creating a database that is not there."""
    store = await _open_existing(url)
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


# -- wardtui history ----------------------------------------------------------------------

TIER_LABELS: dict[str, str] = {"raw": "raw checks", "1m": "1-minute rollups", "1h": "hourly rollups"}
_NO_RETENTION = Retention(raw=None, minute=None, hour=None)
_DASH = "—"


def parse_tier(text: str) -> TierName | None:
    """``auto`` (``None``: let :func:`store.queries.choose_tier` pick), ``raw``, ``1m`` or ``1h``."""
    name = text.strip().lower()
    if name == "auto":
        return None
    for tier in TIER_NAMES:
        if name == tier:
            return tier
    raise HistoryQueryError(f"--tier {text!r}: use auto, raw, 1m or 1h")


def parse_window(since_text: str, until_text: str | None, now: datetime) -> tuple[datetime, datetime]:
    """``[since, until)`` from ``--since`` and ``--until`` (``now`` when not given)."""
    since = parse_since(since_text, now)
    until = now if until_text is None else parse_since(until_text, now, "--until")
    if until <= since:
        raise HistoryQueryError(f"--until {_stamp(until)} UTC is not after --since {_stamp(since)} UTC")
    return since, until


def window_label(since_text: str, until_text: str | None, since: datetime, until: datetime) -> str:
    """``last 24h`` for a span back from now, else the UTC times."""
    if until_text is None and _SPAN.match(since_text.strip()):
        return f"last {since_text.strip()}"
    if until_text is None:
        return f"since {_stamp(since)} UTC"
    return f"{_stamp(since)} to {_stamp(until)} UTC"


async def query_history(url: str, device: str, since: datetime, until: datetime,
                        tier: TierName | None) -> History:
    """``device``'s history in ``[since, until)`` from the store at ``url`` (never created here);
    ``tier`` ``None`` lets :func:`store.queries.device_history` pick it for the span."""
    store = await _open_existing(url)
    try:
        if device not in store.device_names():
            raise HistoryQueryError(f"no device named {device!r} in the history")
        return await device_history(store, device, since, until, tier)
    finally:
        await store.close()


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def _iso(at: datetime) -> str:
    return at.astimezone(UTC).isoformat()


def _stamp(at: datetime, seconds: bool = True) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M")


def check_record(check: Check) -> dict[str, Any]:
    return {"at": _iso(check.at), "sent": check.sent, "received": check.received,
            "loss_pct": _round(check.loss_pct), "rtt_ms": _round(check.rtt_ms)}


def rollup_record(rollup: Rollup) -> dict[str, Any]:
    return {"at": _iso(rollup.bucket), "checks": rollup.checks, "sent": rollup.sent,
            "received": rollup.received, "loss_pct": _round(rollup.loss_pct),
            "rtt_min_ms": _round(rollup.rtt_min), "rtt_avg_ms": _round(rollup.rtt_avg),
            "rtt_max_ms": _round(rollup.rtt_max), "rtt_p95_ms": _round(rollup.rtt_p95),
            "jitter_ms": _round(rollup.jitter_ms), "up_s": _round(rollup.up_s),
            "down_s": _round(rollup.down_s), "availability_pct": _round(rollup.availability_pct)}


def history_record(history: History) -> dict[str, Any]:
    points = ([check_record(c) for c in history.checks] if history.tier == "raw"
              else [rollup_record(r) for r in history.rollups])
    return {"device": history.device, "tier": history.tier, "since": _iso(history.since),
            "until": _iso(history.until), "points": points}


def _days(span: timedelta | None) -> str:
    if span is None:
        return "forever"
    days = span / timedelta(days=1)
    return f"{days:g} day{'' if days == 1 else 's'}"


def tier_reason(history: History, asked: bool, now: datetime, retention: Retention | None = None) -> str:
    """Why ``history`` reads the tier it reads, in a few words for the header line."""
    if asked:
        return f"--tier {history.tier}"
    retention = retention or Retention()
    by_span = choose_tier(history.since, history.until, _NO_RETENTION, now)
    if by_span != history.tier:  # the finer tier no longer reaches back to --since
        kept = retention.raw if by_span == "raw" else retention.minute
        return f"{TIER_LABELS[by_span]} are kept {_days(kept)}"
    if history.tier == "raw":
        return "spans up to 1 day read raw checks"
    if history.tier == "1m":
        return "spans up to 7 days read 1-minute rollups"
    return "spans over 7 days read hourly rollups"


def _pct(value: float) -> str:
    """One decimal, but never ``0.0%`` for some or ``100.0%`` for not all."""
    text = f"{value:.1f}"
    if value > 0 and text == "0.0":
        text = "<0.1"
    elif value < 100 and text == "100.0":
        text = ">99.9"
    return text + "%"


def _ms(value: float | None) -> str:
    return _DASH if value is None else f"{value:.3f}"


def render_history(history: History, label: str, as_json: bool, *, asked: bool = False,
                   now: datetime | None = None) -> str:
    """JSON for scripts, or a header line (device, span, tier and why) and an aligned table."""
    if as_json:
        return json.dumps(history_record(history), indent=None)
    now = now or datetime.now(UTC)
    tier = TIER_LABELS[history.tier]
    lines = [f"{history.device}, {label}, {tier} ({len(history):,}): "
             f"{tier_reason(history, asked, now)}"]
    if not len(history):
        lines.append(f"no {tier} of {history.device} in this span")
        if history.tier != "raw":
            lines.append("(rollups are written about a minute after each minute ends, hourly ones "
                         "after the hour)")
        return "\n".join(lines)
    if history.tier == "raw":
        lines.append(f"{'time (UTC)':<19}  {'sent':>4}  {'recv':>4}  {'loss':>6}  {'rtt ms':>10}")
        lines += [f"{_stamp(c.at):<19}  {c.sent:>4}  {c.received:>4}  {_pct(c.loss_pct):>6}  "
                  f"{_ms(c.rtt_ms):>10}" for c in history.checks]
        return "\n".join(lines)
    lines.append(f"{'bucket (UTC)':<16}  {'checks':>6}  {'loss':>6}  {'rtt min':>9}  {'rtt avg':>9}  "
                 f"{'rtt p95':>9}  {'rtt max':>9}  {'jitter':>9}  {'avail':>6}  {'down':>6}")
    lines += [f"{_stamp(r.bucket, seconds=False):<16}  {r.checks:>6}  {_pct(r.loss_pct):>6}  "
              f"{_ms(r.rtt_min):>9}  {_ms(r.rtt_avg):>9}  {_ms(r.rtt_p95):>9}  {_ms(r.rtt_max):>9}  "
              f"{_ms(r.jitter_ms):>9}  {_pct(r.availability_pct):>6}  "
              f"{format_duration(timedelta(seconds=r.down_s)):>6}" for r in history.rollups]
    return "\n".join(lines)


def write_out(text: str) -> None:
    """Print ``text``; a reader that went away (``| head``, ``less`` quit early) is not an error.

    What the commands print quotes the database (names, SNMP strings): no terminal control
    reaches the operator's terminal from it (poller/text.py); newlines and tabs are ours."""
    text = clean_lines(text, tab="\t")
    try:
        sys.stdout.write(text + "\n")
        sys.stdout.flush()
    except BrokenPipeError:
        # Keep Python's exit-time flush of stdout from raising again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
