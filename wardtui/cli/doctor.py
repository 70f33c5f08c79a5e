"""``wardtui doctor``: is this machine ready to poll? One line per check, its status and, when
it is not ok, how to fix it; ``--json`` for scripts. Changes nothing: no database is created or
migrated, no lease taken, nothing written to Redis.

Checks: ICMP permission, ``net.core.rmem_max`` against the device count, the inventory, the SNMP
credentials file, the history database (reachable, schema, who polls it), Redis and its
service heartbeat, the clock. Exit 0 when none fails (warnings allowed), 1 otherwise.
Imports neither textual nor rich."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from poller.live import REDIS_ENV
from poller.text import clean
from wardtui.cli.common import Commands, command

EXAMPLES = """\
examples:
  wardtui doctor --inventory net.csv --db postgresql://wardtui@db.example.net/wardtui
  wardtui doctor --inventory net.yaml --redis redis://127.0.0.1:6379/0 --site paris-dc1 --json
"""
Status = Literal["ok", "warn", "fail"]
MARKS = {"ok": "ok  ", "warn": "WARN", "fail": "FAIL"}


@dataclass(frozen=True, slots=True)
class Finding:
    """One check's outcome; ``fix`` says what to do when it is not ok."""

    check: str
    status: Status
    detail: str
    fix: str = ""

    def line(self) -> str:
        fix = f" -> fix: {self.fix}" if self.fix and self.status != "ok" else ""
        return f"{MARKS[self.status]}  {self.check}: {self.detail}{fix}"


def register(sub: Commands) -> None:
    doctor = command(sub, "doctor", run, "check that this machine is ready: ICMP, buffers, inventory, "
                     "credentials, database, Redis, clock", EXAMPLES)
    doctor.add_argument("--inventory", "-i", type=Path, metavar="FILE", default=argparse.SUPPRESS,
                        help="the inventory to check (default: the bundled example)")
    doctor.add_argument("--db", metavar="URL", default=argparse.SUPPRESS,
                        help="the history database (default: $WARDTUI_DB, else the default file)")
    # SUPPRESS, like --db: `wardtui --redis URL doctor` keeps the URL given before the command.
    doctor.add_argument("--redis", metavar="URL", default=argparse.SUPPRESS,
                        help=f"the live feed's Redis (default: ${REDIS_ENV}; none: not checked)")
    doctor.add_argument("--site", metavar="NAME", default=argparse.SUPPRESS,
                        help="the site whose service heartbeat to look for (default: wardtui)")
    doctor.add_argument("--credentials", type=Path, metavar="FILE", default=argparse.SUPPRESS,
                        help="the SNMP credentials file (default: $XDG_CONFIG_HOME/wardtui/credentials.yaml)")
    doctor.add_argument("--json", action="store_true",
                        help='a JSON list of {"check", "status": ok|warn|fail, "detail", "fix"}')


def run(args: argparse.Namespace) -> int:
    findings = diagnose(inventory=getattr(args, "inventory", None), db=getattr(args, "db", None),
                        redis_url=getattr(args, "redis", None) or os.environ.get(REDIS_ENV) or None,
                        site=getattr(args, "site", None),
                        credentials=getattr(args, "credentials", None))
    # Everything shown was cleaned where it was made (paths, URLs, errors, Redis contents).
    try:
        if args.json:
            print(json.dumps([asdict(f) for f in findings], indent=1))
        else:
            print("\n".join(f.line() for f in findings))
            failing = sum(f.status == "fail" for f in findings)
            warning = sum(f.status == "warn" for f in findings)
            print(f"{failing} failed, {warning} warning(s), {len(findings) - failing - warning} ok")
        sys.stdout.flush()
    except BrokenPipeError:
        pass
    return 1 if any(f.status == "fail" for f in findings) else 0


def diagnose(*, inventory: Path | None, db: str | None, redis_url: str | None, site: str | None,
             credentials: Path | None) -> list[Finding]:
    """Every check, in the order they are shown."""
    devices, inventory_finding = check_inventory(inventory)
    findings = [check_icmp(), check_rmem(len(devices) if devices is not None else None), inventory_finding,
                check_credentials(credentials, devices)]
    findings += asyncio.run(_async_checks(db, redis_url, site))
    findings.append(check_clock())
    return findings


async def _async_checks(db: str | None, redis_url: str | None, site: str | None) -> list[Finding]:
    database, lease = await check_database(db)
    return [database, lease, await check_redis(redis_url, site)]


def _said(value: object) -> str:
    """Text from outside (a path, an error, a URL already without its password), one line."""
    return clean(" ".join(str(value).split()))


# -- ICMP --------------------------------------------------------------------------------------


def _ping_group_range() -> str:
    try:
        return " ".join(Path("/proc/sys/net/ipv4/ping_group_range").read_text().split())
    except OSError:
        return "unknown"


def check_icmp() -> Finding:
    """Can this process open the prober's sockets: raw (CAP_NET_RAW), else ping datagram sockets."""
    try:
        socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP).close()
        return Finding("icmp", "ok", "raw ICMP sockets can be opened (CAP_NET_RAW)")
    except PermissionError:
        pass
    groups = _ping_group_range()
    try:
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_ICMP).close()
        return Finding("icmp", "ok", f"unprivileged ping sockets (net.ipv4.ping_group_range {groups} "
                                     f"includes group {os.getegid()})")
    except PermissionError:
        pass
    python = os.path.realpath(sys.executable)
    return Finding("icmp", "fail",
                   f"cannot open an ICMP socket: no CAP_NET_RAW, and net.ipv4.ping_group_range "
                   f"({groups}) leaves out group {os.getegid()}",
                   f"sudo setcap cap_net_raw+ep {_said(python)}   or   sudo sysctl -w "
                   f"net.ipv4.ping_group_range='0 {2**31 - 1}' (per network namespace; persist it in "
                   "/etc/sysctl.d/)")


# -- the socket receive buffer ---------------------------------------------------------------

PROBER_RCVBUF = 8 << 20
"""What poller/icmp.py asks for (IcmpProber's ``rcvbuf``)."""
REPLY_BYTES = 832
"""Buffer room one small reply takes in the kernel (its skb's truesize): measured here with
16-byte datagrams on loopback, 212,992 bytes held 256 of them and 8 MiB 10,082."""
CAP_NET_ADMIN = 12


def _has_capability(bit: int) -> bool:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("CapEff:"):
                return bool(int(line.split()[1], 16) >> bit & 1)
    except (OSError, ValueError, IndexError):
        pass
    return os.geteuid() == 0


def _rmem_max() -> int | None:
    try:
        return int(Path("/proc/sys/net/core/rmem_max").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def check_rmem(devices: int | None, rmem_max: int | None = None, forced: bool | None = None) -> Finding:
    """Will the prober's socket get a buffer that holds a whole round's replies at once (an
    outage's burst, or checks that fall due together)? With CAP_NET_ADMIN (root) SO_RCVBUFFORCE
    passes ``net.core.rmem_max`` (``forced``); otherwise the buffer is capped by it."""
    rmem_max = _rmem_max() if rmem_max is None else rmem_max
    if rmem_max is None:
        return Finding("rmem_max", "warn", "cannot read /proc/sys/net/core/rmem_max")
    count = devices if devices is not None else 0
    need = min(PROBER_RCVBUF, max(count, 1) * REPLY_BYTES)
    if _has_capability(CAP_NET_ADMIN) if forced is None else forced:
        return Finding("rmem_max", "ok", f"{rmem_max} B, passed by SO_RCVBUFFORCE (CAP_NET_ADMIN): the "
                                         f"prober gets its {PROBER_RCVBUF >> 20} MiB buffer")
    given = 2 * min(PROBER_RCVBUF, rmem_max)  # the kernel doubles what it grants for its overhead
    holds = given // REPLY_BYTES
    detail = (f"{rmem_max} B: the prober's buffer is {given // 1024} KiB, about {holds} replies at once, "
              f"for {count} devices")
    if given >= need:
        return Finding("rmem_max", "ok", detail)
    return Finding("rmem_max", "warn", detail + " (replies that do not fit are dropped and counted as "
                                               "rcvbuf_drops, and those devices look lost)",
                   f"sudo sysctl -w net.core.rmem_max={PROBER_RCVBUF} (persist it in /etc/sysctl.d/)")


# -- inventory and credentials ---------------------------------------------------------------


def check_inventory(path: Path | None) -> tuple[list[Any] | None, Finding]:
    from poller.inventory import InventoryError, load_inventory
    from wardtui.runtime import bundled_inventory

    source = path or bundled_inventory()
    shown = _said(source) if path else f"the bundled example ({_said(source)})"
    try:
        devices = load_inventory(source)
    except InventoryError as exc:
        first = [_said(p) for p in exc.problems[:3]]
        more = f" (and {len(exc.problems) - 3} more)" if len(exc.problems) > 3 else ""
        return None, Finding("inventory", "fail", f"{shown}: {len(exc.problems)} problem(s): "
                             + "; ".join(first) + more,
                             "correct the lines named (wardtui poll --inventory FILE lists them all); "
                             "a host name must resolve (/etc/hosts or DNS) or be an address")
    return devices, Finding("inventory", "ok", f"{shown}: {len(devices)} devices, every name resolved")


def check_credentials(path: Path | None, devices: list[Any] | None) -> Finding:
    from poller.credentials import CredentialsError, default_credentials_path, load_credentials

    named = sorted({d.snmp_credential for d in devices or [] if d.snmp_credential})
    file = path or default_credentials_path()
    shown = _said(file)
    if path is None and not file.exists():
        if named:
            return Finding("credentials", "fail", f"{shown} does not exist; the inventory names "
                           f"{', '.join(_said(n) for n in named[:5])}",
                           "write it (YAML, mode 0600) or give --credentials FILE")
        return Finding("credentials", "ok", f"none at {shown}, and no device names one (no SNMP)")
    try:
        found = load_credentials(file)
    except CredentialsError as exc:
        text = str(exc)
        if "chmod" in text:
            fix = f"chmod 600 {shown}"
        elif "owned by" in text:
            fix = f"chown {_user()} {shown}"
        elif "cannot read the SNMP" in text or "not a regular file" in text:
            fix = "give --credentials the file's path (YAML, mode 0600, yours or root's)"
        else:
            fix = "correct the entries named (their values are never shown: they are secrets)"
        return Finding("credentials", "fail", _said(text.splitlines()[0]) + (
            f" (and {len(text.splitlines()) - 1} more)" if "\n" in text else ""), fix)
    missing = [n for n in named if n not in found]
    if missing:
        return Finding("credentials", "fail", f"{shown}: no credential named "
                       f"{', '.join(_said(n) for n in missing[:5])} (the inventory uses it)",
                       f"add it to {shown}, or correct the inventory's snmp_credential column")
    return Finding("credentials", "ok", f"{shown}: {len(found)} credential(s), mode and owner right")


def _user() -> str:
    import pwd

    try:
        return _said(pwd.getpwuid(os.geteuid()).pw_name)
    except KeyError:
        return str(os.geteuid())


# -- the history database --------------------------------------------------------------------


async def check_database(db: str | None) -> tuple[Finding, Finding]:
    """(the database: reachable and at this wardtui's schema; who polls it). Reads only."""
    from sqlalchemy.exc import SQLAlchemyError

    from store import schema
    from store.db import database_url, sqlite_file
    from store.dburl import failure
    from store.lease import lease_holder
    from wardtui.runtime import db_option

    try:
        url = database_url(db, create=False)
    except (ValueError, OSError) as exc:
        bad = Finding("database", "fail", _said(f"{db_option(db)}: {exc}"),
                      "give --db sqlite:///PATH or postgresql://USER@HOST/DB")
        return bad, Finding("lease", "warn", "not checked: no usable database URL")
    label = _said(schema.display_url(url))
    path = sqlite_file(url)
    if path is not None and not path.is_file():
        first = Finding("database", "ok", f"{label}: no file yet (made and migrated at the first start)")
        return first, await _lease(url, label, lease_holder)
    try:
        status = await schema.current(url)
    except (SQLAlchemyError, OSError) as exc:
        fix = ("check the path: a SQLite database file wardtui made (or move this one aside)"
               if path is not None else "start the server, or correct the URL; a password goes in "
               "~/.pgpass or $WARDTUI_DB, never on the command line")
        verb = "cannot read it" if path is not None else "cannot connect"
        # A SQLite lease is a file beside it: still told. A server that did not answer is not asked twice.
        lease = (await _lease(url, label, lease_holder) if path is not None
                 else Finding("lease", "warn", f"not checked: {label} cannot be reached"))
        return Finding("database", "fail", f"{label}: {verb}: {_said(failure(exc, url))}", fix), lease
    lease = await _lease(url, label, lease_holder)
    detail = f"{label}: schema {status.describe()}"
    fixes = {"behind": f"wardtui db upgrade --db {label} (back it up first)",
             "ahead": "upgrade wardtui: a newer one wrote this database",
             "unversioned": f"wardtui db upgrade --db {label}, or move it aside"}
    if status.state in ("head", "empty"):
        return Finding("database", "ok", detail), lease
    return Finding("database", "warn" if status.state == "unversioned" else "fail", detail,
                   fixes[status.state]), lease


async def _lease(url: str, label: str, lease_holder: Any) -> Finding:
    try:
        holder = await lease_holder(url)
    except Exception as exc:  # the database check says why it cannot be reached
        return Finding("lease", "warn", f"cannot tell who polls {label}: {_said(type(exc).__name__)}")
    if holder is None:
        return Finding("lease", "ok", f"no poller holds {label}: wardtui serve/poll/the dashboard may start")
    return Finding("lease", "ok", f"{label} is polled by {holder.describe()}: a second poller is "
                                  "refused; attach to it or run readers")


# -- Redis -----------------------------------------------------------------------------------

STALE_AFTER = 5.0  # poller/live.py's LIVE_AGE: a heartbeat older than this is a stopped service


async def check_redis(url: str | None, site: str | None) -> Finding:
    if not url:
        return Finding("redis", "ok", f"not checked: no --redis and no ${REDIS_ENV} (live feed unused)")
    from redis.exceptions import RedisError

    from poller.feed import ServiceInfo, client_for, shown_url
    from poller.live import DEFAULT_SITE, LIVE_AGE, Keys, check_site
    from poller.redis_url import SentinelRedis

    label = _said(shown_url(url))
    try:
        keys = Keys(check_site(site or DEFAULT_SITE))
        client = client_for(url, timeout=3.0)
    except ValueError as exc:  # FeedUrlError too: its message names the URL without its password
        return Finding("redis", "fail", _said(exc),
                       "use redis://HOST[:PORT][/DB], rediss://..., unix:///PATH or "
                       "redis+sentinel://HOST[:PORT][,HOST[:PORT]...]/SERVICE[/DB], and a site of "
                       "1-64 letters, digits, '_', '.', '-'")
    try:
        await client.ping()
        raw = await client.get(keys.service)
        ttl = await client.ttl(keys.service)
    except (RedisError, OSError) as exc:
        if isinstance(client, SentinelRedis):
            return Finding("redis", "fail", f"{label}: no primary through the Sentinels: {_said(exc)}",
                           "check the Sentinels' HOST:PORT list and the service name they monitor "
                           "(redis-cli -p 26379 sentinel masters)")
        return Finding("redis", "fail", f"{label}: unreachable: {_said(exc)}",
                       "start redis-server there, or give the right --redis URL / $WARDTUI_REDIS")
    finally:
        await client.aclose()
    where = f"{label}, site {_said(keys.site)}"
    primary = getattr(client.connection_pool, "master_address", None)
    if isinstance(client, SentinelRedis) and primary:
        where += f" (primary now {_said(primary[0])}:{_said(primary[1])}, from the Sentinels)"
    if raw is None:
        return Finding("redis", "warn", f"{where}: reachable, but no service heartbeat ({keys.service}): "
                       "no wardtui serve publishes this site",
                       "start wardtui serve --redis URL (with this --site), or check the site name")
    try:
        info = ServiceInfo.from_json(raw)
        age = info.age()
    except (ValueError, KeyError, TypeError):
        return Finding("redis", "fail", f"{where}: {keys.service} holds something that is not a heartbeat",
                       "another program uses this key: give wardtui its own --site")
    expires = f"heartbeat TTL {ttl} s" if ttl >= 0 else "a heartbeat that never expires"
    who = (f"wardtui serve {_said(info.version)} on {_said(info.host)} (pid {info.pid}), "
           f"{info.devices} devices, {expires}")
    if age is None:
        return Finding("redis", "warn", f"{where}: {who}, no snapshot yet", "wait for its first round")
    if age > max(LIVE_AGE, STALE_AFTER):
        return Finding("redis", "warn", f"{where}: {who}, last snapshot {age:.1f} s ago (stopped "
                       "publishing?)", "look at that service's log (journalctl -u wardtui)")
    return Finding("redis", "ok", f"{where}: {who}, last snapshot {age:.1f} s ago")


# -- the clock -------------------------------------------------------------------------------


def _run(argv: list[str]) -> str | None:
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return proc.stdout if proc.returncode == 0 else None


def check_clock() -> Finding:
    """Is the clock synchronised (history and reports are in wall-clock time)? systemd's
    timedatectl, else chrony; neither answering is a warning: it cannot be told."""
    fix = "enable time synchronisation (timedatectl set-ntp true, or install chrony)"
    if shutil.which("timedatectl") and (said := _run(["timedatectl", "show", "-p", "NTPSynchronized",
                                                      "--value"])) is not None:
        if said.strip() == "yes":
            return Finding("clock", "ok", "synchronised (timedatectl: NTPSynchronized=yes)")
        return Finding("clock", "fail", f"not synchronised (timedatectl: NTPSynchronized={_said(said)})", fix)
    if shutil.which("chronyc") and (said := _run(["chronyc", "tracking"])) is not None:
        leap = next((line.split(":", 1)[1].strip() for line in said.splitlines()
                     if line.startswith("Leap status")), "")
        if leap == "Normal":
            return Finding("clock", "ok", "synchronised (chronyc: leap status Normal)")
        return Finding("clock", "fail", f"not synchronised (chronyc: leap status {_said(leap or '?')})", fix)
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    return Finding("clock", "warn", f"cannot tell whether the clock is synchronised (no answer from "
                   f"timedatectl or chronyc); it reads {now}",
                   "compare with a reference clock; run timedatectl or chronyd where wardtui runs")
