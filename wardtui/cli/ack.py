"""``wardtui ack DEVICE --note TEXT``, ``wardtui ack list``, ``wardtui ack remove ID``:
acknowledgements in the history database (issue 15 item 5). An acknowledgement takes the
device's current outage: it stops repeat notifications of it (``wardtui serve --notify`` reads
them every 30 s) until the device recovers; the recovery is still sent, and the reports' outage
lists say who took it, with the note.

A running ``wardtui serve`` of the site (``--redis``/``$WARDTUI_REDIS``, ``--site``) is told at
once through its live feed's ``quiet`` command; without Redis it reads the database within 30 s.

What an operator typed (notes, device names) is data: printed with control characters written
out (``\\x1b``, ``\\x0a``), never obeyed, and as JSON strings with ``--json``."""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime
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
    from poller.notify.acks import Ack

EXAMPLES = """\
examples:
  wardtui ack north-b002-rtr --note "on site at 10:30, Alice (INC-2231)"
  wardtui ack --device list --note "a device named list"
  wardtui ack list
  wardtui ack list --all --json | jq '.[] | select(.open)'
  wardtui ack remove 7
  wardtui ack north-b002-rtr --note "ISP ticket 88123" --db postgresql://wardtui@db.example.net/wardtui

An acknowledgement holds until the device recovers: its recovery is still notified, and a later
outage of the device is not acknowledged. list shows those in force (--all: removed and ended too).
"""
ACTIONS = ("list", "remove")


def register(sub: Commands) -> None:
    parser = command(sub, "ack", run, "acknowledge a device's problem: no repeat notifications until it "
                     "recovers; list, remove", EXAMPLES)
    parser.add_argument("what", nargs="?", metavar="DEVICE|list|remove",
                        help="the device to acknowledge, or list, or remove")
    parser.add_argument("id", nargs="?", metavar="ID",
                        help="with remove: the acknowledgement's id (ack list)")
    parser.add_argument("--device", metavar="NAME", help="the device, for a name that is list or remove")
    parser.add_argument("--note", metavar="TEXT",
                        help="what is being done, by whom (required to acknowledge)")
    parser.add_argument("--json", action="store_true", help="with list: a JSON array instead of a table")
    parser.add_argument("--all", action="store_true", help="with list: removed and ended ones too")
    add_db_option(parser)  # `wardtui --db X ack list` keeps X
    add_service_options(parser)


def run(args: argparse.Namespace) -> int:
    now = datetime.now(UTC)
    db = getattr(args, "db", None)
    try:
        action, device = _action(args)
    except UsageError as exc:
        return failed(exc)
    if action == "list":
        code, acks = read_store(db, lambda url: _list(url, args.all))
        if acks is None:
            return code
        write_out(render(acks, args.json))
        return 0
    if action == "remove":
        code, removed = read_store(db, lambda url: _remove(url, int(args.id), now))
        if removed is None:
            return code
        write_out(f"removed acknowledgement {removed.id} of {escaped(removed.device)} "
                  f"(down since {stamp(removed.down_since)} UTC): repeats of it are sent again")
        tell_service(args, f"acknowledgement {removed.id} removed")
        return 0
    code, added = read_store(db, lambda url: _add(url, device, args.note, now))
    if added is None:
        return code
    ack, state = added
    write_out(f"acknowledged {escaped(ack.device)} ({state.upper()} since {stamp(ack.down_since)} UTC) "
              f"as {ack.id} by {escaped(ack.who)}; note: {escaped(ack.note)}")
    tell_service(args, f"acknowledgement {ack.id} of {ack.device[:100]}")
    return 0


def _action(args: argparse.Namespace) -> tuple[str, str]:
    """``("list", "")``, ``("remove", "")`` or ``("ack", DEVICE)``; UsageError (exit 2)."""
    if args.device is not None:
        if args.what is not None:
            raise UsageError("give the device once: as DEVICE or as --device NAME")
        device: str = args.device
    elif args.what in ACTIONS:
        if args.note is not None:
            raise UsageError(f"--note goes with acknowledging a device, not with {args.what} "
                             "(a device named so: --device NAME)")
        if args.what == "remove":
            if args.id is None or not args.id.isdigit():
                raise UsageError("ack remove needs the acknowledgement's id (a number: wardtui ack list)")
        elif args.id is not None:
            raise UsageError(f"ack list takes no argument, not {escaped(args.id)!r}")
        if args.what == "remove" and (args.json or args.all):
            raise UsageError("--json and --all go with ack list")
        return str(args.what), ""
    elif args.what is None:
        raise UsageError("say which device to acknowledge (wardtui ack DEVICE --note TEXT), "
                         "or list, or remove")
    else:
        device = args.what
    if args.id is not None:
        raise UsageError(f"one device at a time: {escaped(args.id)!r} is one too many")
    if args.json or args.all:
        raise UsageError("--json and --all go with ack list")
    if args.note is None or not args.note.strip():
        raise UsageError("--note: say what is being done and by whom; it is shown in the notifications "
                         "and the reports")
    if not device:
        raise UsageError("the device name is empty")
    return "ack", device


# -- the database ----------------------------------------------------------------------------


async def _add(url: str, device: str, note: str, now: datetime) -> tuple[Ack, str]:
    from store.acks import Acknowledgements, AckRefused

    store = await open_existing(url)  # a device to acknowledge is in a history that exists
    try:
        return await Acknowledgements(store.db).add(device, note, login_name(), now)
    except AckRefused as exc:
        raise UsageError(f"cannot acknowledge {escaped(device)}: {exc}") from None
    finally:
        await store.close()


async def _list(url: str, everything: bool) -> list[Ack]:
    from store.acks import Acknowledgements

    store = await open_existing(url)
    try:
        acks = Acknowledgements(store.db)
        return await (acks.all() if everything else acks.in_force())
    finally:
        await store.close()


async def _remove(url: str, ack_id: int, now: datetime) -> Ack:
    from store.acks import Acknowledgements

    store = await open_existing(url)
    try:
        acks = Acknowledgements(store.db)
        removed = await acks.remove(ack_id, now, login_name())
        if removed is None:
            known = await acks.get(ack_id)
            if known is None:
                raise UsageError(f"no acknowledgement {ack_id} (wardtui ack list --all)")
            raise UsageError(f"acknowledgement {ack_id} is not in force: {status(known)}")
        return removed
    finally:
        await store.close()


# -- output ----------------------------------------------------------------------------------


def status(ack: Ack) -> str:
    if ack.cleared_at is not None:
        return f"{escaped(ack.cleared_why or 'removed')} {stamp(ack.cleared_at, False)} UTC"
    if ack.recovered_at is not None:
        return f"ended: recovered {stamp(ack.recovered_at, False)} UTC"
    return "in force"


def record(ack: Ack) -> dict[str, Any]:
    def iso(at: datetime | None) -> str | None:
        return None if at is None else at.astimezone(UTC).isoformat()

    return {"id": ack.id, "device": ack.device, "down_since": iso(ack.down_since), "note": ack.note,
            "who": ack.who, "at": iso(ack.at), "cleared_at": iso(ack.cleared_at),
            "cleared_why": ack.cleared_why, "recovered_at": iso(ack.recovered_at), "open": ack.open}


def render(acks: list[Ack], as_json: bool) -> str:
    if as_json:
        return json.dumps([record(a) for a in acks])  # ASCII: every control is \\u-escaped
    if not acks:
        return "no acknowledgements"
    lines = [f"{'id':>4}  {'device':<24} {'down since (UTC)':<17} {'by':<12} {'at (UTC)':<17} "
             f"{'status':<34} note"]
    for a in acks:
        lines.append(f"{a.id:>4}  {escaped(a.device):<24} {stamp(a.down_since, False):<17} "
                     f"{escaped(a.who):<12} {stamp(a.at, False):<17} {status(a):<34} {escaped(a.note)}")
    return "\n".join(lines)
