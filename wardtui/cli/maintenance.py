"""``wardtui maintenance add|list|remove``: maintenance windows in the history database (issue 15
item 4). During a window the devices it matches are still polled and recorded, but not notified.

What an operator typed (matchers, notes) is data: printed with control characters written out
(``\\x1b``, ``\\x0a``), never obeyed, and as JSON strings with ``--json``."""

from __future__ import annotations

import argparse
import json
import re
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from poller.operator import login_name
from poller.text import escaped
from wardtui.cli.common import (
    Commands,
    UsageError,
    add_db_option,
    command,
    failed,
    open_existing,
    read_store,
    stamp,
    write_out,
)
from wardtui.cli.feed_common import add_service_options, tell_service

if TYPE_CHECKING:
    from poller.notify.windows import Window

EXAMPLES = """\
examples:
  wardtui maintenance add --match branch=north-b002 --duration 2h --note "router swap, CHG-4411"
  wardtui maintenance add --match region=north --match type=atm --from 2026-12-07T22:00Z \
      --to 2026-12-08T02:00Z --note "ATM firmware"
  wardtui maintenance add --match tag=backup --every "0 2 * * *" --for 2h --tz Europe/Paris --note backups
  wardtui maintenance list --all --json | jq '.[] | select(.active)'
  wardtui maintenance remove 7
"""
ACTIONS = {
    "add": ("add a maintenance window: devices it matches are polled and recorded, not notified",
            "  wardtui maintenance add --match branch=north-b002 --duration 2h --note \"router swap\"\n"
            "  wardtui maintenance add --match device=north-b001-rtr --from 2026-12-07T22:00Z "
            "--to 2026-12-08T01:00Z --note CHG-4411\n"
            "  wardtui maintenance add --match tag=backup --every \"0 2 * * *\" --for 2h --tz Europe/Paris "
            "--note \"nightly backups\"\n"),
    "list": ("list maintenance windows: active and to come (--all: removed and over ones too)",
             "  wardtui maintenance list\n  wardtui maintenance list --all --json\n"),
    "remove": ("remove a maintenance window (its record is kept, marked removed)",
               "  wardtui maintenance remove 7\n"
               "  wardtui maintenance remove 7 --db postgresql://wardtui@db.example.net/wardtui\n"),
}
_SPAN = re.compile(r"^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")


def register(sub: Commands) -> None:
    parser = command(sub, "maintenance", run, "maintenance windows: add, list, remove", EXAMPLES)
    actions = parser.add_subparsers(dest="maintenance_command", metavar="ACTION", required=True)
    parsers = {name: actions.add_parser(name, help=text, description=text, epilog="examples:\n" + example,
                                        formatter_class=argparse.RawDescriptionHelpFormatter)
               for name, (text, example) in ACTIONS.items()}
    add = parsers["add"]
    add.add_argument("--match", metavar="KEY=VALUE", action="append", required=True,
                     help="devices the window covers; KEY is device, branch, region, type or tag; "
                          "give several to narrow it (all must match)")
    add.add_argument("--from", dest="start", metavar="TIME",
                     help="when it starts: an ISO 8601 time (UTC without a zone) or now (default now)")
    ends = add.add_mutually_exclusive_group()
    ends.add_argument("--to", dest="end", metavar="TIME", help="when it ends: an ISO 8601 time")
    ends.add_argument("--duration", metavar="SPAN", help="how long from --from: 90m, 2h, 1h30m, 1d")
    ends.add_argument("--every", metavar="CRON",
                      help='recurring: a 5-field cron expression in --tz local time '
                           '("0 2 * * *": 02:00 daily)')
    add.add_argument("--for", dest="length", metavar="SPAN",
                     help="with --every: how long each occurrence lasts")
    add.add_argument("--tz", metavar="ZONE",
                     help="with --every: the IANA time zone it follows (Europe/Paris, UTC)")
    add.add_argument("--note", metavar="TEXT", required=True, help="why (a change number, who to call)")
    parsers["list"].add_argument("--json", action="store_true", help="a JSON array instead of a table")
    parsers["list"].add_argument("--all", action="store_true", help="removed and finished windows too")
    parsers["remove"].add_argument("id", type=int, metavar="ID", help="the window's id (maintenance list)")
    for action in parsers.values():
        add_db_option(action)  # `wardtui --db X maintenance list` keeps X
    for name in ("add", "remove"):
        add_service_options(parsers[name])


def run(args: argparse.Namespace) -> int:
    now = datetime.now(UTC)
    db = getattr(args, "db", None)
    if args.maintenance_command == "add":
        try:
            window = window_from(args, now)
        except UsageError as exc:
            return failed(exc)
        code, added = read_store(db, lambda url: _add(url, window), create=True)
        if added is None:
            return code
        write_out(f"added maintenance window {added.id}: {describe(added, now)}")
        tell_service(args, f"maintenance window {added.id} added")
        return 0
    if args.maintenance_command == "list":
        code, windows = read_store(db, lambda url: _list(url, now, args.all))
        if windows is None:
            return code
        write_out(render(windows, now, args.json))
        return 0
    code, removed = read_store(db, lambda url: _remove(url, args.id, now))
    if removed is None:
        return code
    write_out(f"removed maintenance window {removed.id}: {describe(removed, now)}")
    tell_service(args, f"maintenance window {removed.id} removed")
    return 0


# -- reading the options ---------------------------------------------------------------------


def window_from(args: argparse.Namespace, now: datetime) -> Window:
    """The window the options of ``maintenance add`` describe; UsageError (exit 2) if none."""
    from poller.notify.windows import Window, check_cron, parse_matcher, zone

    try:
        matchers = tuple(parse_matcher(text) for text in args.match)
    except ValueError as exc:
        raise UsageError(f"--match: {escaped(str(exc))}") from None
    note = args.note.strip()
    if not note:
        raise UsageError("--note: say why (a change number, who to call); it is shown with the window")
    common: dict[str, Any] = {"id": 0, "matchers": matchers, "note": args.note, "created_by": login_name(),
                              "created_at": now}
    if args.every is not None:
        if args.start is not None:
            raise UsageError("--every starts with its cron expression: leave out --from")
        if args.length is None or args.tz is None:
            raise UsageError("--every needs --for SPAN (each occurrence's length) and --tz ZONE")
        try:
            cron = check_cron(args.every)
        except ValueError as exc:
            raise UsageError(f"--every: {escaped(str(exc))}") from None
        try:
            tz = zone(args.tz).key
        except ValueError as exc:
            raise UsageError(f"--tz: {escaped(str(exc))}") from None
        return Window(cron=cron, duration_s=span(args.length, "--for").total_seconds(), tz=tz, **common)
    if args.length is not None or args.tz is not None:
        raise UsageError("--for and --tz go with --every (a recurring window)")
    start = moment(args.start, now, "--from") if args.start is not None else now
    if args.end is not None:
        end = moment(args.end, now, "--to")
    elif args.duration is not None:
        end = start + span(args.duration, "--duration")
    else:
        raise UsageError("say how long: --to TIME, --duration SPAN, or --every CRON --for SPAN --tz ZONE")
    if end <= start:
        raise UsageError(f"--to {stamp(end)} UTC is not after --from {stamp(start)} UTC")
    if end <= now:
        raise UsageError(f"this window is already over: it ended {stamp(end)} UTC")
    return Window(starts_at=start, ends_at=end, **common)


def moment(text: str, now: datetime, option: str) -> datetime:
    """``now`` or an ISO 8601 time (UTC when it names no zone), as aware UTC."""
    if text.strip().lower() == "now":
        return now
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise UsageError(f"{option} {escaped(text)!r}: use an ISO 8601 time (2026-12-07T22:00Z, "
                         "2026-12-07T23:00+01:00) or now") from None
    return (when if when.tzinfo is not None else when.replace(tzinfo=UTC)).astimezone(UTC)


def span(text: str, option: str) -> timedelta:
    """``90m``, ``2h``, ``1h30m``, ``1d``, ``45s``: a length over 0."""
    match = _SPAN.match(text.strip().lower())
    if match is None or not any(match.groups()):
        raise UsageError(f"{option} {escaped(text)!r}: use a length such as 90m, 2h, 1h30m or 1d")
    days, hours, minutes, seconds = (int(g or 0) for g in match.groups())
    try:
        length = timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds)
    except OverflowError:
        raise UsageError(f"{option} {escaped(text)!r}: too long") from None
    if length <= timedelta(0):
        raise UsageError(f"{option} {escaped(text)!r}: must be longer than 0")
    if length > timedelta(days=366):
        raise UsageError(f"{option} {escaped(text)!r}: at most 366d; a longer silence is a removal")
    return length


# -- the database ----------------------------------------------------------------------------


async def _add(url: str, window: Window) -> Window:
    from store.history import HistoryStore
    from store.maintenance_windows import MaintenanceWindows

    store = HistoryStore(url)  # adding a window before the service first ran makes the database
    await store.open()
    try:
        return await MaintenanceWindows(store.db).add(window)
    finally:
        await store.close()


async def _list(url: str, now: datetime, everything: bool) -> list[Window]:
    from store.maintenance_windows import MaintenanceWindows

    store = await open_existing(url)
    try:
        windows = MaintenanceWindows(store.db)
        return await (windows.all() if everything else windows.in_force(now))
    finally:
        await store.close()


async def _remove(url: str, window_id: int, now: datetime) -> Window:
    from store.maintenance_windows import MaintenanceWindows

    store = await open_existing(url)
    try:
        windows = MaintenanceWindows(store.db)
        removed = await windows.remove(window_id, now)
        if removed is None:
            known = await windows.get(window_id)
            if known is None:
                raise UsageError(f"no maintenance window {window_id} (wardtui maintenance list --all)")
            raise UsageError(f"maintenance window {window_id} was already removed "
                             f"{stamp(known.removed_at or now)} UTC")
        return removed
    finally:
        await store.close()


# -- output ----------------------------------------------------------------------------------


def status(window: Window, now: datetime) -> str:
    from poller.notify.windows import active, next_change, over

    if window.removed_at is not None and window.removed_at <= now:
        return f"removed {stamp(window.removed_at, False)} UTC"
    if over(window, now):
        return "over"
    change = next_change([window], now)
    when = "" if change is None else stamp(change, False)
    return f"active until {when} UTC" if active(window, now) else f"next {when} UTC"


def when_text(window: Window) -> str:
    if window.recurring:
        hours = (window.duration_s or 0) / 3600
        return escaped(f"every {window.cron!r} {window.tz} for {hours:g}h")
    assert window.starts_at is not None and window.ends_at is not None
    return f"{stamp(window.starts_at, False)} to {stamp(window.ends_at, False)} UTC"


def matchers_text(window: Window) -> str:
    from poller.notify.windows import matcher_text

    return " ".join(escaped(matcher_text(m)) for m in window.matchers)


def describe(window: Window, now: datetime) -> str:
    return (f"{matchers_text(window)}, {when_text(window)}, {status(window, now)}; "
            f"note: {escaped(window.note)}")


def record(window: Window, now: datetime) -> dict[str, Any]:
    from poller.notify.windows import active, matcher_text, next_change

    def iso(at: datetime | None) -> str | None:
        return None if at is None else at.astimezone(UTC).isoformat()

    change = next_change([window], now)
    return {"id": window.id, "matchers": [matcher_text(m) for m in window.matchers],
            "starts_at": iso(window.starts_at), "ends_at": iso(window.ends_at), "cron": window.cron,
            "duration_s": window.duration_s, "tz": window.tz, "note": window.note,
            "created_by": window.created_by, "created_at": iso(window.created_at),
            "removed_at": iso(window.removed_at), "active": active(window, now),
            "next_change": iso(change)}


def render(windows: list[Window], now: datetime, as_json: bool) -> str:
    if as_json:
        return json.dumps([record(w, now) for w in windows])  # ASCII: every control is \\u-escaped
    if not windows:
        return "no maintenance windows"
    lines = [f"{'id':>4}  {'status':<34} {'when':<44} {'by':<12} {'match':<30} note"]
    for w in windows:
        lines.append(f"{w.id:>4}  {status(w, now):<34} {when_text(w):<44} {escaped(w.created_by):<12} "
                     f"{matchers_text(w):<30} {escaped(w.note)}")
    return "\n".join(lines)
