"""``wardtui status``: a site's live feed at a glance, from Redis: who publishes it (host, pid,
version, up since), its devices by state in the latest snapshot and how old that is, the event
stream's length, the keys' memory and the viewers attached. Aligned lines, or one JSON object.

Exit 0 when a live service publishes the site, 1 when none does (what Redis holds of it is still
printed), 2 for a bad URL, password or permission (tests/integration/test_status_cli.py)."""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from poller.durations import format_duration
from poller.text import escaped
from wardtui.cli.common import Commands, UsageError, add_db_option, command, failed, stamp, write_out
from wardtui.cli.feed_common import add_feed_options, connect, feed_target, no_service_text, redis_failure
from wardtui.cli.status_cluster import ClusterStatus, cluster_record, render_cluster
from wardtui.messages import error

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from poller.feed import ServiceInfo
    from poller.live import Keys, Snapshot

EXAMPLES = """\
examples:
  wardtui status
  wardtui status --site paris-dc1 --json | jq .devices
  WARDTUI_REDIS=redis://:PASSWORD@redis.example.net wardtui status --site paris-dc1

exit codes: 0 a live wardtui serve publishes the site, 1 none does (or Redis cannot be
reached), 2 bad options, URL, password or permissions.
"""


def register(sub: Commands) -> None:
    status = command(sub, "status", run, "a site's live feed on Redis: its service, devices by state, "
                     "stream and viewers", EXAMPLES)
    add_feed_options(status)
    add_db_option(status)  # a cluster's fencing epochs are read from it (PostgreSQL)
    status.add_argument("--json", action="store_true",
                        help='one JSON object: {"site", "redis", "live", "service", "devices", "snapshot", '
                             '"stream", "memory_bytes", "viewers", "notifications", "quiet", "traps", '
                             '"cluster"}; "cluster" is null unless serve --cluster members publish the '
                             'site: {"shard_count", "lease_ttl_s", "unowned", "pollers": [{"id", "host", '
                             '"pid", "since", "live", "shards", "lease_age_s", "epochs" (with --db), '
                             '"gauges", ...}]}')


@dataclass
class SiteStatus:
    """What Redis holds of a site."""

    site: str
    redis: str  # the URL without its password
    service: ServiceInfo | None
    live: bool
    snapshot: Snapshot | None
    snapshot_bytes: int
    snapshot_error: str | None
    counts: dict[str, int] | None  # up, down, unknown, flapping
    stream_length: int
    memory: dict[str, int | None]  # key -> MEMORY USAGE bytes (None: no key, or not allowed)
    viewers: int
    now: datetime
    quiet: dict[str, int] | None = None  # maintenance windows and acknowledgements (quiet_counts)
    cluster: ClusterStatus | None = None  # serve --cluster members publish the site (status_cluster.py)


def run(args: argparse.Namespace) -> int:
    try:
        url, keys = feed_target(args)
        client = connect(url)
        found = asyncio.run(read_status(client, url, keys, _db(args)))
    except UsageError as exc:
        return failed(exc)
    if args.json:
        write_out(json.dumps(status_record(found)))
    elif found.service is not None or found.snapshot_bytes or found.stream_length or found.cluster:
        write_out(render(found))  # (of a site Redis holds nothing of, only the line below)
    if found.snapshot_error is not None:
        error(f"site {keys.site}: {found.snapshot_error}")
    if found.cluster is not None and found.cluster.live:
        return 0
    if not found.live:
        service = found.service
        error(no_service_text(keys, url, *((None, None, None) if service is None else
                                           (service.host, service.pid, service.age(found.now)))))
        return 1
    return 0


def _db(args: argparse.Namespace) -> str | None:
    """The history database to read a cluster's epochs from: ``--db``, else ``$WARDTUI_DB``."""
    import os

    from store.db import DB_ENV

    return getattr(args, "db", None) or os.environ.get(DB_ENV) or None


async def read_status(client: Redis, url: str, keys: Keys, db: str | None = None) -> SiteStatus:
    """Everything in one round trip (a cluster's members in three more, its epochs from ``db``);
    UsageError for a Redis that cannot be read."""
    from redis.exceptions import RedisError, ResponseError

    from poller.feed import VIEWER_TTL, ServiceInfo, is_live, shown_url
    from poller.live import FeedFormatError, decode_snapshot
    from wardtui.cli.status_cluster import read_cluster

    try:
        pipe = client.pipeline(transaction=False)
        pipe.get(keys.service)
        pipe.get(keys.snapshot)
        pipe.xlen(keys.events)
        pipe.zcount(keys.viewers, time.time() - VIEWER_TTL, "+inf")
        for key in (keys.events, keys.snapshot, keys.delta, keys.inventory):
            pipe.memory_usage(key)
        pipe.get(keys.quiet)
        results = await pipe.execute(raise_on_error=False)
        cluster = None if results[0] is not None else await read_cluster(client, keys)
    except (RedisError, OSError) as exc:
        raise redis_failure(exc, url) from None
    finally:
        await client.aclose()
    if cluster is not None and db is not None:
        await _take_epochs(cluster, db, keys.site)
    for result in results[:4]:  # MEMORY may be refused to this user; the rest may not
        if isinstance(result, Exception):
            raise redis_failure(result, url)
    raw_service, blob, length, viewers = results[:4]
    memory = {name: (None if isinstance(value, ResponseError) else value)
              for name, value in zip(("stream", "snapshot", "delta", "inventory"), results[4:8], strict=True)}
    try:
        service = None if raw_service is None else ServiceInfo.from_json(raw_service)
    except (ValueError, KeyError, TypeError):
        service = None
    snapshot = counts = snapshot_error = None
    if blob is not None:
        try:
            snapshot = decode_snapshot(blob)
            counts = state_counts(snapshot)
        except FeedFormatError as exc:
            snapshot_error = escaped(str(exc))
    now = datetime.now(UTC)
    return SiteStatus(keys.site, shown_url(url), service, is_live(service), snapshot,
                      0 if blob is None else len(blob), snapshot_error, counts, int(length), memory,
                      int(viewers), now, quiet_counts(results[8], now), cluster)


async def _take_epochs(cluster: ClusterStatus, db: str, site: str) -> None:
    """The epochs from the history database, or why not (said, not fatal: Redis's part stands)."""
    from sqlalchemy.exc import SQLAlchemyError

    from store.db import database_url
    from store.dburl import failure
    from store.fencing import ClusterNeedsPostgres
    from wardtui.cli.status_cluster import read_epochs

    try:
        url = database_url(db, create=False)
        cluster.epochs = await read_epochs(url, site)
    except ClusterNeedsPostgres:
        cluster.epochs_error = "--db is not PostgreSQL (a cluster's epochs live there)"
    except (ValueError, OSError) as exc:
        cluster.epochs_error = f"--db: {escaped(str(exc))}"
    except SQLAlchemyError as exc:
        cluster.epochs_error = f"--db: {failure(exc, url)}"


def quiet_counts(raw: Any, now: datetime) -> dict[str, int] | None:
    """Maintenance windows active now and to come, and acknowledgements in force, from the
    site's quiet state (None: the service publishes none, or it cannot be read)."""
    from poller.notify.windows import active
    from poller.quiet import QuietFormatError, quiet_from_json

    if not isinstance(raw, bytes | str):
        return None
    try:
        quiet = quiet_from_json(raw)
    except QuietFormatError:
        return None
    on = sum(1 for w in quiet.windows if active(w, now))
    return {"windows_active": on, "windows_to_come": len(quiet.windows) - on, "acks": len(quiet.acks)}


def state_counts(snapshot: Snapshot) -> dict[str, int]:
    """Devices by state, and how many flap, from the snapshot's flags (one byte a device)."""
    columns = snapshot.columns
    counts = {"up": 0, "down": 0, "unknown": 0, "flapping": 0}
    for flags, n in Counter(columns.flags).items():
        state, flapping = columns.row(columns.flags.index(flags))[:2]
        counts[state.value] += n
        counts["flapping"] += n if flapping else 0
    return counts


def status_record(s: SiteStatus) -> dict[str, Any]:
    info = s.service
    snap = s.snapshot
    return {
        "site": s.site, "redis": s.redis, "live": s.live,
        "service": None if info is None else {
            "host": info.host, "pid": info.pid, "version": info.version, "started": info.started,
            "devices": info.devices, "snapshot_at": info.snapshot_at},
        "devices": None if s.counts is None else {"total": 0 if snap is None else len(snap.columns),
                                                  **s.counts},
        "snapshot": None if snap is None else {
            "at": snap.at.isoformat(), "age_s": round((s.now - snap.at).total_seconds(), 3),
            "seq": snap.seq, "stream_id": snap.stream_id, "bytes": s.snapshot_bytes},
        "stream": {"length": s.stream_length},
        "memory_bytes": s.memory,
        "viewers": s.viewers,
        "notifications": notifications(snap),
        "quiet": s.quiet,
        "traps": traps(snap),
        "cluster": None if s.cluster is None else cluster_record(s.cluster),
    }


NOTIFY_GAUGES = ("queued", "sent", "failed", "summarised", "oldest_s", "receivers_failing", "spooled",
                 "unsaved")


def notifications(snap: Snapshot | None) -> dict[str, float] | None:
    """The service's outbox from the snapshot's gauges (``wardtui serve --notify``), else None."""
    extra = snap.gauges.extra if snap is not None and snap.gauges is not None else {}
    if "notify_queued" not in extra:
        return None
    return {name: extra.get(f"notify_{name}", 0.0) for name in NOTIFY_GAUGES}


TRAP_REFUSALS = ("unknown_source", "community", "user", "engine_id", "level", "auth", "time_window",
                 "malformed")
TRAP_GAUGES = ("received", "accepted", *(f"refused_{reason}" for reason in TRAP_REFUSALS),
               "rate_limited", "checks", "polls", "coalesced", "informs_acked")


def traps(snap: Snapshot | None) -> dict[str, float] | None:
    """The service's trap receiver from the snapshot's gauges (``--traps``), else None."""
    extra = snap.gauges.extra if snap is not None and snap.gauges is not None else {}
    if "traps_received" not in extra:
        return None
    return {name: extra.get(f"traps_{name}", 0.0) for name in TRAP_GAUGES}


def render(s: SiteStatus) -> str:
    """Aligned lines for people; what came from Redis is cleaned on the way out (write_out)."""
    info, snap = s.service, s.snapshot
    rows = [("site", f"{s.site} on {s.redis}")]
    if info is None:
        rows.append(("service", "serve --cluster members publish this site (below)" if s.cluster is not None
                                else "none publishes this site"))
    else:
        age = info.age(s.now)
        live = ("publishing" if s.live else
                "not publishing yet" if age is None else f"stopped publishing {age:.0f} s ago")
        rows.append(("service", f"{live}: {escaped(info.host)}, pid {info.pid}, wardtui "
                                f"{escaped(info.version)}, up since {_since(info.started, s.now)}"))
    if snap is None and s.cluster is not None:
        pass  # the members' snapshots: below, per poller
    elif snap is None:
        rows.append(("snapshot", s.snapshot_error or "none"))
    else:
        c = s.counts or {}
        rows.append(("devices", f"{len(snap.columns)}: {c.get('up', 0)} up, {c.get('down', 0)} down, "
                                f"{c.get('unknown', 0)} unknown, {c.get('flapping', 0)} flapping"))
        age = (s.now - snap.at).total_seconds()
        rows.append(("snapshot", f"{age:.1f} s old ({stamp(snap.at)} UTC), {_bytes(s.snapshot_bytes)}"))
        notify = notifications(snap)
        if notify is not None:
            age = format_duration(timedelta(seconds=notify["oldest_s"]))
            oldest = f" (oldest {age})" if notify["queued"] else ""
            rows.append(("notifications", f"{notify['queued']:.0f} waiting{oldest}, {notify['sent']:.0f} "
                                          f"sent, {notify['failed']:.0f} failed, "
                                          f"{notify['receivers_failing']:.0f} receivers failing, "
                                          f"{notify['spooled']:.0f} spooled"))
        trap = traps(snap)
        if trap is not None:
            t = trap
            refused = sum(t[f"refused_{reason}"] for reason in TRAP_REFUSALS)
            # The v2c reasons always; SNMPv3's (user, engine ID, level, auth, time window) when seen.
            always = ("unknown_source", "community", "malformed")
            why = ", ".join(f"{t[f'refused_{reason}']:.0f} {reason.replace('_', ' ')}"
                            for reason in TRAP_REFUSALS if reason in always or t[f"refused_{reason}"])
            rows.append(("traps", f"{t['accepted']:.0f} of {t['received']:.0f} taken, {refused:.0f} "
                                  f"refused ({why}), {t['rate_limited']:.0f} rate-limited; "
                                  f"{t['checks']:.0f} checks, {t['polls']:.0f} polls asked"))
    if s.quiet is not None:
        q = s.quiet
        rows.append(("maintenance", f"{q['windows_active']} windows active, {q['windows_to_come']} to come; "
                                    f"{q['acks']} acknowledgements in force"))
    if s.cluster is not None:
        rows.extend(render_cluster(s.cluster, s.now))
    if s.cluster is not None and snap is None:  # the site's own keys are empty: the members' are theirs
        width = max(len(name) for name, _ in rows)
        return "\n".join(f"{name:<{width}}  {value}" for name, value in rows)
    rows.append(("stream", f"{s.stream_length:,} entries"))
    rows.append(("memory", ", ".join(f"{name} {_bytes(value)}" for name, value in s.memory.items())))
    rows.append(("viewers", f"{s.viewers} attached"))
    width = max(len(name) for name, _ in rows)
    return "\n".join(f"{name:<{width}}  {value}" for name, value in rows)


def _since(started: str, now: datetime) -> str:
    try:
        at = datetime.fromisoformat(started)
    except ValueError:
        return escaped(started)
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    return f"{stamp(at)} UTC ({format_duration(now - at)})"


def _bytes(value: int | None) -> str:
    if value is None:
        return "-"
    size = float(value)
    for unit in ("B", "kB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{value} B"

