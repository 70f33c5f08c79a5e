"""What the commands share: the usage-error type, ``--since`` and period parsing, opening the
history store for reading (never creating it), printing to a pipe, and the common options
(``--db``, the engine's options for the dashboard and ``poll``).

Every subcommand module imports this at start-up (``wardtui --help`` builds all parsers), so
the store is imported only inside the functions that read it."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import math
import os
import re
import sys
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias, TypeVar

from poller.text import clean_lines, escaped
from wardtui.messages import error
from wardtui.runtime import DB_HELP, Options, db_option

if TYPE_CHECKING:
    from store.history import HistoryStore
    from store.report import Period

_T = TypeVar("_T")

# -- usage errors ----------------------------------------------------------------------------


class UsageError(Exception):
    """What an operator must fix (bad --since, unknown device, no history file); ``code`` is the
    exit status: 2 for input, 1 for a history that is not there."""

    def __init__(self, message: str, code: int = 2) -> None:
        super().__init__(message)
        self.code = code


def failed(exc: UsageError) -> int:
    """Say ``exc`` on stderr; its exit status."""
    error(f"{exc}")
    return exc.code


# -- --since, --until, --from, --to ----------------------------------------------------------

SPAN = re.compile(r"^(\d+)([mhd])$")
_UNITS = {"m": 60, "h": 3600, "d": 86400}


def parse_since(text: str, now: datetime, option: str = "--since") -> datetime:
    """``1h``, ``24h``, ``7d``, ``30d`` (any N with m, h or d) back from ``now``, or an ISO 8601 time
    (UTC when it names no zone)."""
    if match := SPAN.match(text.strip()):
        try:
            return now - timedelta(seconds=int(match[1]) * _UNITS[match[2]])
        except OverflowError:  # before year 1 (99999999d)
            raise UsageError(f"{option} {text!r}: too far back; give a date instead") from None
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise UsageError(f"{option} {text!r}: use 1h, 24h, 7d, 30d or an ISO 8601 time") from None
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def parse_date(text: str, now: datetime, option: str) -> datetime:
    """``now``, a span back from now (``24h``) or an ISO 8601 date or time (UTC without a zone)."""
    if text.strip().lower() == "now":
        return now
    try:
        return parse_since(text, now, option)
    except UsageError:
        raise UsageError(f"{option} {text!r}: use an ISO 8601 date or time "
                         "(2026-11-01, 2026-11-01T08:00Z), a span back from now (24h, 7d) "
                         "or now") from None


def parse_period(start_text: str, end_text: str, now: datetime) -> Period:
    """The report's ``[--from, --to)``; the export box's custom period reads the same way."""
    from store.report import Period

    start = parse_date(start_text, now, "--from")
    end = parse_date(end_text, now, "--to")
    if end <= start:
        raise UsageError(f"--from {stamp(start)} UTC is not before --to {stamp(end)} UTC")
    return Period(start, end)


def stamp(at: datetime, seconds: bool = True) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M")


# -- reading the history ---------------------------------------------------------------------


async def open_existing(url: str) -> HistoryStore:
    """The history store at ``url``, opened, without creating a SQLite file that is not there."""
    from sqlalchemy.engine import make_url

    from store.history import HistoryStore

    parsed = make_url(url)
    path = parsed.database
    if parsed.get_backend_name() == "sqlite" and path not in (None, "", ":memory:") \
            and not Path(str(path)).is_file():
        raise UsageError(f"no history at {path}: wardtui has not run with it yet", 1)
    store = HistoryStore(url)
    await store.open()
    return store


def read_store(db: str | None, query: Callable[[str], Coroutine[Any, Any, _T]], *,
               create: bool = False) -> tuple[int, _T | None]:
    """Run ``query(url)`` on the history database ``db`` names; (0, result), or the exit status
    after an error line: 2 for a bad URL, option or schema, 1 for a database that cannot be read.
    ``create``: a command that writes (``maintenance add``) may make the SQLite file's directory."""
    from sqlalchemy.exc import SQLAlchemyError

    from store.db import database_url
    from store.dburl import failure
    from store.schema import SchemaError, display_url

    try:
        url = database_url(db, create=create)  # reading makes no directory (nor file: open_existing)
    except (ValueError, OSError) as exc:
        error(f"{db_option(db)}: {exc}")
        return 2, None
    try:
        return 0, asyncio.run(query(url))
    except UsageError as exc:
        return failed(exc), None
    except (ValueError, SchemaError) as exc:
        error(f"{db_option(db)}: {exc}")
        return 2, None
    except (SQLAlchemyError, OSError) as exc:
        error(f"cannot open the history database {display_url(url)}: {failure(exc, url)}")
        return 1, None


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


# -- common options --------------------------------------------------------------------------

Commands: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"  # what add_subparsers returns


def command(sub: Commands, name: str, run: Callable[[argparse.Namespace], int], summary: str,
            examples: str, description: str | None = None) -> argparse.ArgumentParser:
    """Register subcommand ``name``: its help, its examples (tests/unit/test_help_examples.py)
    and the ``run`` that :func:`wardtui.cli.main` calls."""
    parser = sub.add_parser(name, help=summary, description=description, epilog=examples,
                            formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.set_defaults(run=run)
    return parser


def add_db_option(parser: argparse.ArgumentParser) -> None:
    """``--db`` on a subcommand: SUPPRESS, as for the engine's options, so that
    ``wardtui --db X history D`` keeps X."""
    parser.add_argument("--db", metavar="URL", default=argparse.SUPPRESS, help=DB_HELP)


def add_since_option(parser: argparse.ArgumentParser, more: str = "") -> None:
    parser.add_argument("--since", metavar="SPAN", default="24h",
                        help="1h, 24h, 7d, 30d (any N with m/h/d) or an ISO 8601 time (default 24h)" + more)


def file_mode(text: str) -> int:
    """``--mode``: the octal mode of an output file (600, 0640)."""
    from store.files import parse_mode

    try:
        return parse_mode(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not math.isfinite(value):  # nan never compares, inf never ends: neither is a setting
        raise argparse.ArgumentTypeError(f"not a finite number: {text!r}")
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be greater than 0: {text}")
    return value


def _within(low: float, high: float) -> Callable[[str], float]:
    """A finite number of seconds (or MB) in [low, high]: --interval 1e-9 busy-looped, nan
    never ran a check and exited 0, 1e9 was accepted where the inventory caps at 86,400."""

    def parse(text: str) -> float:
        value = positive(text)
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{text}: between {low:g} and {high:g}")
        return value

    return parse


def _count(low: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be at least {low}: {text}")
        return value
    return parse


MAX_KEEP_DAYS = 36_500  # a century; beyond it, "forever" says what is meant


def _keep(text: str) -> timedelta | None:
    """A retention: ``forever``, or N followed by d or h (``7d``, ``36h``)."""
    if text.strip().lower() == "forever":
        return None
    number, unit = text.strip()[:-1], text.strip()[-1:].lower()
    if unit not in ("d", "h") or not number.isdigit() or int(number) < 1:
        raise argparse.ArgumentTypeError(f"use Nd, Nh or forever, e.g. 7d: {text!r}")
    days = int(number) if unit == "d" else int(number) / 24
    # Retention counts back from now: 999999d reached before year 1 and maintenance failed
    # every 15 s for ever; 99999999999d overflowed here.
    if days > MAX_KEEP_DAYS:
        raise argparse.ArgumentTypeError(f"{text}: at most {MAX_KEEP_DAYS}d; use forever to keep all")
    return timedelta(days=days)


# One source for the defaults: the Options the CLI builds.
ENGINE_DEFAULTS: dict[str, object] = {f.name: f.default for f in dataclasses.fields(Options)}


def add_engine_options(p: argparse.ArgumentParser, defaults: dict[str, object] | None) -> None:
    """The engine's options; a subcommand gets them without defaults, so that options given
    before the subcommand (``wardtui --db X poll``) are not overwritten by its defaults."""
    d = defaults or {key: argparse.SUPPRESS for key in ENGINE_DEFAULTS}
    p.add_argument("--inventory", "-i", type=Path, metavar="FILE", default=d["inventory"],
                   help="devices, CSV or YAML (default: the bundled example bank network)")
    p.add_argument("--db", metavar="URL", default=d["db"],
                   help=DB_HELP)
    p.add_argument("--interval", type=_within(0.01, 86400), default=d["interval"], metavar="S",
                   help="seconds between checks for devices whose row sets none, 0.01 to 86400 (default 10)")
    p.add_argument("--timeout", type=_within(0.01, 60), default=d["timeout"], metavar="S",
                   help="seconds to wait for each echo reply, 0.01 to 60 (default 1)")
    p.add_argument("--confirm-probes", type=_count(1), default=d["confirm_probes"], metavar="N",
                   help="extra probes after a failure before a device is declared DOWN (default 2)")
    p.add_argument("--confirm-spacing", type=_within(0.01, 60), default=d["confirm_spacing"], metavar="S",
                   help="seconds between the sends of confirmation probes, 0.01 to 60 (default 1)")
    p.add_argument("--up-after", type=_count(1), default=d["up_after"], metavar="N",
                   help="successful checks in a row before a DOWN device is UP again (default 1)")
    p.add_argument("--flap-threshold", type=_count(2), default=d["flap_threshold"], metavar="N",
                   help="state changes within the flap window that mark a device flapping (default 3)")
    p.add_argument("--flap-window", type=_within(1, 86400), default=d["flap_window"], metavar="S",
                   help="seconds of the flap window, 1 to 86400 (default 300)")
    p.add_argument("--spool", type=Path, metavar="DIR", default=d["spool"],
                   help="where history waits while the database is down (default: beside a SQLite file, "
                        "else $XDG_DATA_HOME/wardtui/spool/...)")
    p.add_argument("--spool-max-mb", type=_within(1, 1_048_576), metavar="MB", default=d["spool_max_mb"],
                   help="spool size cap; past it check results are dropped and counted, transitions "
                        "never; 1 to 1048576 (default 256)")
    p.add_argument("--keep-raw", type=_keep, metavar="SPAN", default=d["keep_raw"],
                   help="how long raw checks are kept: Nd, Nh (at most 36500d) or forever (default 7d)")
    p.add_argument("--keep-1m", type=_keep, metavar="SPAN", default=d["keep_1m"],
                   help="how long 1-minute rollups are kept (default 90d)")
    p.add_argument("--keep-1h", type=_keep, metavar="SPAN", default=d["keep_1h"],
                   help="how long hourly rollups are kept (default forever)")
    p.add_argument("--credentials", type=Path, metavar="FILE", default=d["credentials"],
                   help="SNMP credentials, YAML, mode 0600, yours or root's, named in the inventory's "
                        "snmp_credential column (default: $XDG_CONFIG_HOME/wardtui/credentials.yaml)")
    p.add_argument("--snmp-interval", type=_within(0.1, 86400), metavar="S", default=d["snmp_interval"],
                   help="seconds between SNMP polls of a device, 0.1 to 86400 (default 60)")
    p.add_argument("--snmp-timeout", type=_within(0.01, 60), metavar="S", default=d["snmp_timeout"],
                   help="seconds to wait for each SNMP answer, 0.01 to 60 (default 2)")
    p.add_argument("--snmp-retries", type=_count(0), metavar="N", default=d["snmp_retries"],
                   help="resends of an unanswered SNMP request (default 1)")
    p.add_argument("--traps", type=ip_port, metavar="HOST:PORT", default=d["traps"],
                   help="receive SNMP traps and informs (v1, v2c, v3) on HOST:PORT, e.g. 0.0.0.0:162 "
                        "(port 162 needs CAP_NET_BIND_SERVICE: docs/OPERATIONS.md); from inventory "
                        "devices with their credential's community or SNMPv3 user only (default: off)")
    p.add_argument("--traps-engine-id", type=engine_id, metavar="HEX", default=d["trap_engine_id"],
                   dest="trap_engine_id",
                   help="the SNMPv3 engine ID the trap receiver answers informs with, 5 to 32 bytes "
                        "in hex (default: a new random one at each start, logged)")
    p.add_argument("--trap-rate", type=_within(0.1, 100_000), metavar="N", default=d["trap_rate"],
                   help="traps a second taken from one source after its burst; more are dropped and "
                        "counted (default 50)")
    p.add_argument("--trap-burst", type=_within(1, 1_000_000), metavar="N", default=d["trap_burst"],
                   help="traps one source may send at once before --trap-rate applies (default 200)")


def engine_id(text: str) -> bytes:
    """An SNMP engine ID in hex (``0x`` and ``:`` allowed), 5 to 32 bytes (RFC 3411)."""
    digits = text[2:] if text.lower().startswith("0x") else text
    try:
        found = bytes.fromhex(digits.replace(":", ""))
    except ValueError:
        found = b""
    if not 5 <= len(found) <= 32:
        raise argparse.ArgumentTypeError(f"{escaped(text)!r}: an engine ID is 5 to 32 bytes in hex, "
                                         "e.g. 0x8000000005a1b2c3d4e5")
    return found


def ip_port(text: str) -> tuple[str, int]:
    """``HOST:PORT`` with an IP address (``0.0.0.0:162``, ``[::]:1162``): no name is looked up."""
    import ipaddress

    host, sep, port = text.rpartition(":")
    bracketed = host.startswith("[") and host.endswith("]")
    host = host[1:-1] if bracketed else host
    try:
        version = ipaddress.ip_address(host).version
    except ValueError:
        version = 0
    if not sep or not version or (version == 6) != bracketed or not port.isdigit() \
            or not 0 < int(port) <= 65535:
        raise argparse.ArgumentTypeError(f"{escaped(text)!r}: use IP:PORT, e.g. 0.0.0.0:162, "
                                         "127.0.0.1:1162 or [::]:162")
    return host, int(port)


def engine_options(args: argparse.Namespace) -> Options:
    """The :class:`~wardtui.runtime.Options` the engine's options on the command line name."""
    return Options(inventory=args.inventory, db=args.db, interval=args.interval, timeout=args.timeout,
                   confirm_probes=args.confirm_probes, confirm_spacing=args.confirm_spacing,
                   up_after=args.up_after, flap_threshold=args.flap_threshold, flap_window=args.flap_window,
                   spool=args.spool, spool_max_mb=args.spool_max_mb, keep_raw=args.keep_raw,
                   keep_1m=args.keep_1m, keep_1h=args.keep_1h, credentials=args.credentials,
                   snmp_interval=args.snmp_interval, snmp_timeout=args.snmp_timeout,
                   snmp_retries=args.snmp_retries, traps=args.traps, trap_rate=args.trap_rate,
                   trap_burst=args.trap_burst, trap_engine_id=args.trap_engine_id)


REDIS_HELP = ("Redis of the live feed, redis://[:PASSWORD@]HOST[:PORT][/DB], rediss://..., unix:///PATH or "
              "redis+sentinel://[:PASSWORD@]HOST[:PORT][,HOST[:PORT]...]/SERVICE[/DB] (Sentinels) "
              "(default: $WARDTUI_REDIS; a password is better in $WARDTUI_REDIS than on the command line)")


def add_site_options(p: argparse.ArgumentParser) -> None:
    """``--redis`` and ``--site``: where a service publishes and viewers attach."""
    p.add_argument("--redis", metavar="URL", default=None, help=REDIS_HELP)
    p.add_argument("--site", metavar="NAME", default=None,
                   help="the deployment's name on Redis, letters, digits, _ . - (default: wardtui); "
                        "several sites can share one Redis")
