"""``wardtui snmp DEVICE``: what the latest SNMP poll of a device read (system facts and interface
table), from the history store, as an aligned table for people or one JSON object for scripts.

The store holds no community or key, so nothing here can print one."""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime, timedelta
from typing import Any

from poller.durations import format_duration
from poller.snmp_source import missing_text
from store.records import SnmpInterface, SnmpLatest, SnmpStatus
from wardtui.cli.common import (
    Commands,
    UsageError,
    add_db_option,
    command,
    open_existing,
    read_store,
    write_out,
)

_DASH = "—"
EXAMPLES = """\
examples:
  wardtui snmp north-b001-rtr
  wardtui snmp north-b001-rtr --json | jq '.interfaces[] | select(.oper != "up") | .name'
  wardtui snmp north-b001-rtr --db postgresql://wardtui@db.example.net/wardtui
"""


def register(sub: Commands) -> None:
    snmp = command(
        sub, "snmp", run, "one device's latest SNMP facts and interface table, from the history",
        EXAMPLES, description="One device's system facts and interface table as its latest SNMP poll read\n"
                              "them: admin/oper status, speed, traffic in bit/s, error and discard counters.")
    snmp.add_argument("device", metavar="DEVICE", help="the device's name, as in the inventory")
    snmp.add_argument("--json", action="store_true",
                      help='one JSON object: {"device", "address", "polled_at", "system", "interfaces", '
                           '"polling"}; "system" is null for a device polled but never answered')
    add_db_option(snmp)


def run(args: argparse.Namespace) -> int:
    """``wardtui snmp``: 0 and the device's table; 2 for an unknown device, one never polled by
    SNMP or a bad ``--db``; 1 for a database that cannot be read (as ``wardtui history``)."""
    code, latest = read_store(args.db, lambda url: query_snmp(url, args.device))
    if latest is None:
        return code
    write_out(render_snmp(latest, args.json, datetime.now(UTC)))
    return 0


async def query_snmp(url: str, device: str) -> SnmpLatest:
    """``device``'s latest SNMP poll from the store at ``url`` (never created here)."""
    from store.queries import latest_snmp

    store = await open_existing(url)
    try:
        if device not in store.device_names():
            raise UsageError(f"no device named {device!r} in the history")
        latest = await latest_snmp(store, device)
        if latest is None:
            raise UsageError(f"device {device!r} has no SNMP data in the history: it has never "
                                    "been polled by SNMP (does its inventory row name an snmp_credential?)")
        return latest
    finally:
        await store.close()


def interface_record(i: SnmpInterface) -> dict[str, Any]:
    return {"ifindex": i.ifindex, "name": i.name, "alias": i.alias, "admin": i.admin, "oper": i.oper,
            "speed_bps": i.speed_bps, "in_bps": _round(i.in_bps), "out_bps": _round(i.out_bps),
            "in_errors": i.in_errors, "out_errors": i.out_errors, "in_discards": i.in_discards,
            "out_discards": i.out_discards}


def snmp_record(latest: SnmpLatest) -> dict[str, Any]:
    s = latest.system
    system = None if s is None else {
        "name": s.name, "descr": s.descr, "object_id": s.object_id, "uptime_s": _round(s.uptime_s),
        "missing": list(s.missing)}
    return {"device": latest.device, "address": latest.address, "polled_at": _iso(latest.polled_at),
            "system": system, "interfaces": [interface_record(i) for i in latest.interfaces],
            "polling": None if latest.status is None else status_record(latest.status)}


def status_record(status: SnmpStatus) -> dict[str, Any]:
    return {"polls": status.polls, "answered": status.answered, "last_poll_at": _iso(status.polled_at),
            "last_outcome": status.outcome, "last_detail": status.detail,
            "last_answer_at": _iso(status.answered_at)}


def _iso(at: datetime | None) -> str | None:
    return None if at is None else at.astimezone(UTC).isoformat()


_COLUMNS = (("ifindex", ">"), ("name", "<"), ("alias", "<"), ("admin", "<"), ("oper", "<"),
            ("speed", ">"), ("in bit/s", ">"), ("out bit/s", ">"), ("in err", ">"), ("out err", ">"),
            ("in disc", ">"), ("out disc", ">"))


def render_snmp(latest: SnmpLatest, as_json: bool, now: datetime) -> str:
    """JSON for scripts, or a few header lines and an aligned interface table."""
    if as_json:
        return json.dumps(snmp_record(latest), indent=None)
    s = latest.system
    if s is None or latest.polled_at is None:  # polled, never answered: how often, and what came back
        return "\n".join([f"{latest.device} ({latest.address}): no SNMP answer in the history",
                          *_status_lines(latest.status, now)])
    age = format_duration(now - latest.polled_at)
    uptime = "no sysUpTime" if s.uptime_s is None else f"up {format_duration(timedelta(seconds=s.uptime_s))}"
    lines = [f"{latest.device} ({latest.address}), polled {_stamp(latest.polled_at)} UTC ({age} ago)",
             f"system: {s.name or _DASH}, object id {s.object_id or _DASH}, {uptime}",
             f"descr:  {' '.join(s.descr.split()) or _DASH}"]
    if s.missing:
        lines.append(f"lacks:  {missing_text(s.missing)}")
    status = latest.status
    if status is not None and (status.outcome != "answered" or status.polled_at > latest.polled_at):
        lines += _status_lines(status, now)  # the polls since the last answer failed
    elif status is not None:
        lines.append(f"polls:  {status.polls} ({status.answered} answered)")
    if not latest.interfaces:
        return "\n".join([*lines, "no interfaces"])
    rows = [[str(i.ifindex), i.name, i.alias, i.admin, i.oper, _si(i.speed_bps), _si(i.in_bps),
             _si(i.out_bps), _count(i.in_errors), _count(i.out_errors), _count(i.in_discards),
             _count(i.out_discards)] for i in latest.interfaces]
    widths = [max(len(title), *(len(r[n]) for r in rows)) for n, (title, _) in enumerate(_COLUMNS)]
    table = [[title for title, _ in _COLUMNS], *rows]
    lines.append("")
    for row in table:
        cells = [f"{cell:{align}{width}}"
                 for cell, (_, align), width in zip(row, _COLUMNS, widths, strict=True)]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def _status_lines(status: SnmpStatus | None, now: datetime) -> list[str]:
    """How often the device was polled and what its agent answered last (timeout, error status)."""
    if status is None:
        return []
    answered = (f"{status.answered} answered, the last at {_stamp(status.answered_at)} UTC"
                if status.answered_at is not None else "never answered")
    detail = f": {status.detail}" if status.detail else ""
    return [f"polls:  {status.polls} ({answered})",
            f"last:   {_stamp(status.polled_at)} UTC ({format_duration(now - status.polled_at)} ago), "
            f"{status.outcome}{detail}"]


def _si(value: float | None) -> str:
    """Bits per second (or a speed) with an SI prefix: ``950``, ``12.3k``, ``1G``, ``10G``."""
    if value is None:
        return _DASH
    for factor, prefix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= factor:
            scaled = value / factor
            digits = 0 if abs(scaled) >= 100 else 1 if abs(scaled) >= 10 else 2
            text = f"{scaled:.{digits}f}"
            return (text.rstrip("0").rstrip(".") if "." in text else text) + prefix
    return f"{value:.0f}"


def _count(value: int | None) -> str:
    return _DASH if value is None else str(value)


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def _stamp(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")
