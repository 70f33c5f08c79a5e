"""``wardtui serve``: its options, ``--check`` and exit codes; the run itself is wardtui/service.py.

``--check --inventory NEW`` validates NEW as a reload would (every problem with ``file:line``,
the SNMP credentials it names) and prints how it differs: from ``--against OLD`` when given
(every field), else from the devices the history database knows (read without creating or
migrating anything). The history keeps every device it ever saw and only their name, address,
branch, region, type and parent, so against it "removed" means known to the history but not in
NEW, and a changed interval or SNMP setting does not show: give ``--against`` the file the
service runs for an exact difference.
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from poller.live import DEFAULT_SITE, REDIS_ENV
from poller.text import escaped
from wardtui.cli.common import (
    REDIS_HELP,
    Commands,
    UsageError,
    add_engine_options,
    command,
    engine_options,
    failed,
)
from wardtui.messages import error, log_for_service
from wardtui.process import POLL
from wardtui.runtime import Runtime, StartupError, redacted_url

if TYPE_CHECKING:
    from poller.inventory import Device

SITE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
_NAME = re.compile(r"^[A-Za-z0-9.-]+$")  # a host name (looked up in /etc/hosts by the server's bind)

EXAMPLES = """\
examples:
  wardtui serve --inventory /etc/wardtui/inventory.csv --db sqlite:////var/lib/wardtui/history.db
  wardtui serve --inventory net.yaml --interval 30 --site paris-dc1
  wardtui serve --check --inventory new.csv --against /etc/wardtui/inventory.csv
  wardtui serve --inventory /etc/wardtui/inventory.csv --notify /etc/wardtui/notify.yaml
  wardtui serve --inventory /etc/wardtui/inventory.csv --traps 0.0.0.0:1162

Runs until SIGTERM or SIGINT, then writes the history it holds and exits. SIGHUP (systemctl
reload wardtui) reads the inventory again and applies the difference; a broken one is refused,
every problem logged, and the old one stays. Logs go to stderr, one line per event.
exit codes: 0 stopped cleanly (--check: NEW is valid), 1 history not written or database
unreachable, 2 invalid options or inventory, 77 no permission to send ICMP.
"""


def register(sub: Commands) -> None:
    serve = command(sub, "serve", run, "run headless as a service: poll, keep history, reload on SIGHUP",
                    EXAMPLES)
    add_engine_options(serve, None)
    # As `wardtui --redis URL --site NAME serve` gives them too (wardtui/cli/common.py), checked here.
    serve.add_argument("--redis", metavar="URL", default=argparse.SUPPRESS, help=REDIS_HELP)
    serve.add_argument("--site", metavar="NAME", default=argparse.SUPPRESS,
                       help="the deployment's name on Redis: letters, digits, _ . - "
                            f"(1 to 64; default {DEFAULT_SITE})")
    serve.add_argument("--metrics", type=_host_port, metavar="HOST:PORT", default=None,
                       help="serve Prometheus metrics on HOST:PORT (e.g. 127.0.0.1:9108, [::1]:9108)")
    serve.add_argument("--no-device-metrics", action="store_true",
                       help="metrics for the whole run only, none per device")
    serve.add_argument("--notify", type=Path, metavar="FILE", default=None,
                       help="send notifications by the routes and receivers of FILE (YAML; "
                            "docs/NOTIFICATIONS.md); secrets from --credentials")
    serve.add_argument("--cluster", action="store_true",
                       help="be one of the site's pollers: poll only the devices of the shards this one "
                            "leases in Redis, writes fenced in PostgreSQL (needs --redis and a "
                            "postgresql:// --db; docs/CLUSTER.md)")
    serve.add_argument("--lease-ttl", type=_lease_ttl, metavar="SECONDS", default=None,
                       help=f"with --cluster: the shard leases' TTL (default {DEFAULT_LEASE_TTL:g}); a "
                            "killed poller's shards are polled again within 2 x TTL")
    serve.add_argument("--check", action="store_true",
                       help="only validate --inventory and print its difference (see --against); exit 0 or 2")
    serve.add_argument("--against", type=Path, metavar="OLD_FILE", default=None,
                       help="with --check: compare with this inventory "
                            "(default: the devices the history database knows)")


DEFAULT_LEASE_TTL = 10.0


def _lease_ttl(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0.5 <= value <= 600:
        raise argparse.ArgumentTypeError(f"{escaped(text)!r}: use 0.5 to 600 seconds")
    return value


def cluster_problem(args: argparse.Namespace, redis_url: str | None) -> str | None:
    """Why ``--cluster`` (or ``--lease-ttl``) cannot run with these options, in one line; None
    when it can (or was not asked for)."""
    if not args.cluster:
        return "--lease-ttl is for --cluster" if args.lease_ttl is not None else None
    if redis_url is None:
        return "--cluster needs --redis URL (or $WARDTUI_REDIS): the shard leases live in Redis"
    from store.db import database_url
    from store.fencing import ClusterNeedsPostgres, require_postgres

    try:
        require_postgres(database_url(args.db))
    except ClusterNeedsPostgres as exc:
        return str(exc)
    except (ValueError, OSError):
        return None  # the runtime says what is wrong with --db
    return None


def site_option(args: argparse.Namespace) -> str:
    """``--site``, checked; :data:`~poller.live.DEFAULT_SITE` when not given."""
    site: str | None = getattr(args, "site", None)
    if site is None:
        return DEFAULT_SITE
    if not SITE.match(site):
        raise UsageError(f"--site {escaped(site)!r}: use 1 to 64 letters, digits, '_', '.' or '-'")
    return site


def _host_port(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
        valid_host = _is_ip(host, 6)
    else:
        valid_host = bool(host) and ":" not in host and (_is_ip(host, 4) or bool(_NAME.match(host)))
    if not sep or not valid_host or not port.isdigit() or int(port) > 65535:
        raise argparse.ArgumentTypeError(f"{escaped(text)!r}: use HOST:PORT, "
                                         "e.g. 127.0.0.1:9108 or [::1]:9108")
    return host, int(port)


def _is_ip(text: str, version: int) -> bool:
    try:
        return ipaddress.ip_address(text).version == version
    except ValueError:
        return False


def check_redis_url(url: str) -> str:
    """``url`` if redis-py can connect with it (redis://, rediss://, unix://, redis+sentinel://);
    else UsageError with what is wrong, the URL shown without its password."""
    from poller.redis_url import FORMS, FeedUrlError, is_sentinel_url, parse_sentinel_url

    shown = escaped(redacted_url(url))
    if is_sentinel_url(url):
        try:
            parse_sentinel_url(url)
        except FeedUrlError as exc:
            raise UsageError(str(exc)) from None
        return url
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        # urllib quotes the port it could not read; never the password (shown is redacted).
        reason = "port is not a number from 0 to 65535" if "port" in str(exc).lower() else "not a URL"
        raise UsageError(f"{shown}: {reason}") from None
    if parts.scheme not in ("redis", "rediss", "unix"):
        raise UsageError(f"{shown}: use {FORMS}")
    if parts.scheme == "unix":
        if not parts.path:
            raise UsageError(f"{shown}: unix:// needs the socket's path (unix:///run/redis/redis.sock)")
        return url
    if not parts.hostname:
        raise UsageError(f"{shown}: no host (redis://HOST[:PORT][/DB])")
    if port == 0:
        raise UsageError(f"{shown}: port 0")
    db = parts.path.lstrip("/")
    if db and not db.isdigit():
        raise UsageError(f"{shown}: the database {escaped(db)!r} is not a number")
    return url


def redis_option(args: argparse.Namespace) -> str | None:
    """``--redis``, else ``$WARDTUI_REDIS``, checked; None when neither is set."""
    given = getattr(args, "redis", None)
    url = given if given is not None else os.environ.get(REDIS_ENV) or None
    if url is None:
        return None
    try:
        return check_redis_url(url)
    except UsageError as exc:
        source = "--redis" if given is not None else REDIS_ENV
        raise UsageError(f"{source} {exc}") from None


def run(args: argparse.Namespace) -> int:
    from wardtui.service import ServeOptions, serve

    if args.inventory is None:
        error("serve needs --inventory FILE (a service does not run the bundled example)")
        return 2
    try:
        redis_url = redis_option(args)
        site = site_option(args)
    except UsageError as exc:
        return failed(exc)
    if args.check:
        return check(args)
    problem = cluster_problem(args, redis_url)
    if problem is not None:
        error(problem)
        return 2
    log_for_service()
    notify = None
    if args.notify is not None:
        from wardtui.notifying import read_notify

        try:
            notify = read_notify(args.notify, args.credentials)
        except StartupError as exc:
            return _refused(exc)
    options = ServeOptions(args.inventory, redis_url, site, args.metrics, not args.no_device_metrics,
                           notify, cluster=args.cluster, lease_ttl=args.lease_ttl or DEFAULT_LEASE_TTL)
    try:
        runtime = Runtime(engine_options(args), process=POLL, kind="serve", cluster=args.cluster)
    except StartupError as exc:
        return _refused(exc)
    POLL.enter()
    try:
        return asyncio.run(serve(runtime, options))
    except StartupError as exc:
        return _refused(exc)
    except KeyboardInterrupt:
        return 130


def _refused(exc: StartupError) -> int:
    import logging

    log = logging.getLogger("wardtui.serve")
    for line in str(exc).splitlines():
        log.error("%s", line)
    return exc.code


# -- --check ---------------------------------------------------------------------------------


def check(args: argparse.Namespace) -> int:
    """Validate ``--inventory`` and print its difference (module docstring); 0 valid, 2 not,
    1 when the history database cannot be read."""
    from poller.inventory_diff import STORED, diff_inventories
    from wardtui.cli.common import write_out
    from wardtui.runtime import load_agents, load_devices

    options = engine_options(args)
    try:
        devices = load_devices(args.inventory, outcome="it would be refused.")
        agents = load_agents(devices, options, outcome="it would be refused.")
        if args.against is not None:
            old = load_devices(args.against, outcome="nothing to compare with.")
            diff, against = diff_inventories(old, devices), str(args.against)
        else:
            code, known = _known_devices(args)
            if code:
                return code
            diff, against = diff_inventories(known or [], devices, STORED), "the history database's devices"
    except StartupError as exc:
        error(f"{exc}")
        return exc.code
    write_out(f"{args.inventory}: valid, {len(devices)} devices ({len(agents)} with SNMP)")
    write_out(f"against {against}: {diff.summary()}")
    for line in diff.lines():
        write_out(line)
    return 0


def _known_devices(args: argparse.Namespace) -> tuple[int, list[Device] | None]:
    from store.db import sqlite_file
    from store.known import known_devices
    from wardtui.cli.common import read_store

    db = getattr(args, "db", None)

    async def query(url: str) -> list[Device]:
        path = sqlite_file(url)
        if path is not None and not path.is_file():
            return []  # no history yet: every device is new to it (and no file is made to ask)
        return list(await known_devices(url))

    return read_store(db, query)
