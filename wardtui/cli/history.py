"""``wardtui history DEVICE``: one device's raw checks or its 1-minute or hourly rollups, whichever
:func:`store.queries.choose_tier` picks for the span, as a table for people or JSON for scripts."""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from poller.durations import format_duration
from store.queries import Retention
from wardtui.cli.common import (
    SPAN,
    Commands,
    UsageError,
    add_db_option,
    add_since_option,
    command,
    failed,
    open_existing,
    parse_since,
    read_store,
    stamp,
    write_out,
)

if TYPE_CHECKING:
    from store.queries import History, TierName
    from store.records import Check, Rollup

EXAMPLES = """\
examples:
  wardtui history north-b001-rtr
  wardtui history north-b001-rtr --since 7d --json | jq '.points[].loss_pct'
  wardtui history north-b001-rtr --since 2026-11-01T00:00Z --until 2026-11-02T00:00Z --tier raw
"""


def register(sub: Commands) -> None:
    history = command(
        sub, "history", run, "one device's history: raw checks, 1-minute or hourly rollups by span",
        EXAMPLES, description="One device's history: raw checks for spans up to a day, 1-minute rollups up\n"
                              "to a week, hourly rollups beyond (or a coarser tier once the finer one no\n"
                              "longer reaches back to --since). Times are UTC.")
    history.add_argument("device", metavar="DEVICE", help="the device's name, as in the inventory")
    add_since_option(history)
    history.add_argument("--until", metavar="TIME",
                         help="an ISO 8601 time, or a span back from now like --since (default now)")
    history.add_argument("--tier", metavar="TIER", default="auto",
                         help="auto, raw, 1m or 1h (default auto: raw up to 1 day, 1m up to 7 days, "
                              "else 1h)")
    history.add_argument("--json", action="store_true",
                         help='one JSON object: {"device", "tier", "since", "until", "points": [...]}')
    add_db_option(history)


def run(args: argparse.Namespace) -> int:
    now = datetime.now(UTC)
    try:
        since, until = parse_window(args.since, args.until, now)
        tier = parse_tier(args.tier)
    except UsageError as exc:
        return failed(exc)
    code, history = read_store(args.db, lambda url: query_history(url, args.device, since, until, tier))
    if history is None:
        return code
    label = window_label(args.since, args.until, since, until)
    write_out(render_history(history, label, args.json, asked=tier is not None, now=now))
    return 0


TIER_LABELS: dict[str, str] = {"raw": "raw checks", "1m": "1-minute rollups", "1h": "hourly rollups"}
_NO_RETENTION = Retention(raw=None, minute=None, hour=None)
_DASH = "—"


def parse_tier(text: str) -> TierName | None:
    """``auto`` (``None``: let :func:`store.queries.choose_tier` pick), ``raw``, ``1m`` or ``1h``."""
    from store.queries import TIER_NAMES

    name = text.strip().lower()
    if name == "auto":
        return None
    for tier in TIER_NAMES:
        if name == tier:
            return tier
    raise UsageError(f"--tier {text!r}: use auto, raw, 1m or 1h")


def parse_window(since_text: str, until_text: str | None, now: datetime) -> tuple[datetime, datetime]:
    """``[since, until)`` from ``--since`` and ``--until`` (``now`` when not given)."""
    since = parse_since(since_text, now)
    until = now if until_text is None else parse_since(until_text, now, "--until")
    if until <= since:
        raise UsageError(f"--until {stamp(until)} UTC is not after --since {stamp(since)} UTC")
    return since, until


def window_label(since_text: str, until_text: str | None, since: datetime, until: datetime) -> str:
    """``last 24h`` for a span back from now, else the UTC times."""
    if until_text is None and SPAN.match(since_text.strip()):
        return f"last {since_text.strip()}"
    if until_text is None:
        return f"since {stamp(since)} UTC"
    return f"{stamp(since)} to {stamp(until)} UTC"


async def query_history(url: str, device: str, since: datetime, until: datetime,
                        tier: TierName | None) -> History:
    """``device``'s history in ``[since, until)`` from the store at ``url`` (never created here);
    ``tier`` ``None`` lets :func:`store.queries.device_history` pick it for the span."""
    from store.queries import device_history

    store = await open_existing(url)
    try:
        if device not in store.device_names():
            raise UsageError(f"no device named {device!r} in the history")
        return await device_history(store, device, since, until, tier)
    finally:
        await store.close()


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def _iso(at: datetime) -> str:
    return at.astimezone(UTC).isoformat()


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
    from store.queries import choose_tier

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
        lines += [f"{stamp(c.at):<19}  {c.sent:>4}  {c.received:>4}  {_pct(c.loss_pct):>6}  "
                  f"{_ms(c.rtt_ms):>10}" for c in history.checks]
        return "\n".join(lines)
    lines.append(f"{'bucket (UTC)':<16}  {'checks':>6}  {'loss':>6}  {'rtt min':>9}  {'rtt avg':>9}  "
                 f"{'rtt p95':>9}  {'rtt max':>9}  {'jitter':>9}  {'avail':>6}  {'down':>6}")
    lines += [f"{stamp(r.bucket, seconds=False):<16}  {r.checks:>6}  {_pct(r.loss_pct):>6}  "
              f"{_ms(r.rtt_min):>9}  {_ms(r.rtt_avg):>9}  {_ms(r.rtt_p95):>9}  {_ms(r.rtt_max):>9}  "
              f"{_ms(r.jitter_ms):>9}  {_pct(r.availability_pct):>6}  "
              f"{format_duration(timedelta(seconds=r.down_s)):>6}" for r in history.rollups]
    return "\n".join(lines)
