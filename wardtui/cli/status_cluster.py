"""``wardtui status`` of a site published by ``serve --cluster`` members (issue 16 item 5): the
pollers (host, pid, since, live), the shards each holds and their leases' age (Redis: the leases
and the members' heartbeats), the epochs of those shards (PostgreSQL's ``shard_epochs``, with
``--db``), and each member's gauges (shards owned, takeovers, refused writes) from its snapshot.

Poller ids and hosts are data (a member writes them): cleaned on the way out (``write_out``
escapes every line; the JSON is JSON)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from poller.text import escaped

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from poller.cluster_feed import SiteLook
    from poller.live import Keys
    from store.fencing import ShardEpoch

CLUSTER_GAUGES = ("cluster_shards_owned", "cluster_takeovers", "cluster_refused_writes",
                  "cluster_refused_transitions", "cluster_stood_down", "cluster_takeovers_failed")


@dataclass
class PollerStatus:
    id: str
    host: str | None
    pid: int | None
    since: str | None
    live: bool  # a live heartbeat in the site's pollers set
    devices: int | None
    shards: list[int] = field(default_factory=list)
    lease_age_s: float | None = None  # its stalest lease: seconds since renewed
    gauges: dict[str, float] = field(default_factory=dict)
    counts: dict[str, int] | None = None  # its devices by state, from its snapshot


@dataclass
class ClusterStatus:
    shard_count: int
    pollers: list[PollerStatus]
    unowned: list[int]
    epochs: dict[int, ShardEpoch] | None = None  # None: not read (no --db)
    epochs_error: str | None = None
    lease_ttl_s: float | None = None  # the site's shard lease TTL, as its live members say

    @property
    def live(self) -> bool:
        return any(p.live for p in self.pollers)


async def read_cluster(client: Redis, keys: Keys) -> ClusterStatus | None:
    """The cluster publishing ``keys``' site, or None when no member is (nor any lease)."""
    from poller.cluster_feed import look_at_site
    from poller.live import FeedFormatError, decode_snapshot
    from wardtui.cli.status import state_counts

    found = await look_at_site(client, keys)
    if not found.members and not any(found.owners):
        return None
    ids = sorted(found.members.keys() | {o for o in found.owners if o is not None})
    blobs = await client.mget([keys.of_poller(p).snapshot for p in ids]) if ids else []
    pollers = []
    for poller, blob in zip(ids, blobs, strict=True):
        info = found.members.get(poller)
        status = PollerStatus(poller, info.host if info else None, info.pid if info else None,
                              info.started if info else None, info is not None,
                              info.devices if info else None)
        if blob is not None:
            try:
                snap = decode_snapshot(blob)
            except FeedFormatError:
                snap = None
            if snap is not None:
                status.counts = state_counts(snap)
                extra = snap.gauges.extra if snap.gauges is not None else {}
                status.gauges = {k.removeprefix("cluster_"): extra[k] for k in CLUSTER_GAUGES if k in extra}
        pollers.append(status)
    _leases(found, {p.id: p for p in pollers})
    unowned = [s for s, owner in enumerate(found.owners) if owner is None]
    ttl = min((i.lease_ttl for i in found.members.values() if i.lease_ttl is not None), default=None)
    return ClusterStatus(len(found.owners), pollers, unowned, lease_ttl_s=ttl)


def _leases(found: SiteLook, pollers: dict[str, PollerStatus]) -> None:
    stalest: dict[str, int] = {}
    for shard, (owner, left) in enumerate(zip(found.owners, found.pttl, strict=True)):
        if owner is None:
            continue
        pollers[owner].shards.append(shard)
        if left >= 0:
            stalest[owner] = min(stalest.get(owner, left), left)
    for poller, status in pollers.items():
        info = found.members.get(poller)
        ttl = info.lease_ttl if info is not None else None
        if ttl is not None and poller in stalest:
            status.lease_age_s = round(max(0.0, ttl - stalest[poller] / 1000), 3)


async def read_epochs(db_url: str, site: str) -> dict[int, ShardEpoch]:
    """The site's shard epochs from PostgreSQL (ClusterNeedsPostgres for another database); read
    only: nothing is migrated or locked."""
    from sqlalchemy import select
    from sqlalchemy.ext.asyncio import create_async_engine

    from store.fencing import ShardEpoch, require_postgres
    from store.models import shard_epochs_table as t

    require_postgres(db_url)
    engine = create_async_engine(db_url, connect_args={"timeout": 5})
    try:
        async with engine.connect() as conn:
            rows = (await conn.execute(select(t.c.shard, t.c.epoch, t.c.owner, t.c.taken_at)
                                       .where(t.c.site == site).order_by(t.c.shard))).all()
    finally:
        await engine.dispose()
    return {int(r.shard): ShardEpoch(site, int(r.shard), int(r.epoch), r.owner, r.taken_at) for r in rows}


def cluster_record(c: ClusterStatus) -> dict[str, Any]:
    epochs = c.epochs
    return {
        "shard_count": c.shard_count, "lease_ttl_s": c.lease_ttl_s, "unowned": c.unowned,
        "epochs_read": epochs is not None, "epochs_error": c.epochs_error,
        "pollers": [{
            "id": p.id, "host": p.host, "pid": p.pid, "since": p.since, "live": p.live,
            "devices": p.devices, "states": p.counts, "shards": p.shards, "shards_owned": len(p.shards),
            "lease_age_s": p.lease_age_s,
            "epochs": None if epochs is None else {str(s): epochs[s].epoch for s in p.shards if s in epochs},
            # Shards whose last taker in PostgreSQL is not the poller Redis names: a takeover
            # in progress (or a lease lost on a Redis failover).
            "epochs_elsewhere": None if epochs is None else
            [s for s in p.shards if s in epochs and epochs[s].owner != p.id],
            "gauges": p.gauges,
        } for p in c.pollers],
    }


def render_cluster(c: ClusterStatus, now: datetime) -> list[tuple[str, str]]:
    from wardtui.cli.status import _since

    live = sum(1 for p in c.pollers if p.live)
    ttl = "" if c.lease_ttl_s is None else f", lease TTL {c.lease_ttl_s:g} s"
    head = f"{live} pollers live, {c.shard_count} shards{ttl}, {len(c.unowned)} unowned"
    if c.epochs is None:
        head += f"; epochs: {c.epochs_error or 'give --db to read them'}"
    rows = [("cluster", head)]
    for p in c.pollers:
        who = "no heartbeat (stopped or silent), still named by leases"
        if p.live and p.host is not None and p.since is not None:
            who = f"{escaped(p.host)}, pid {p.pid}, up since {_since(p.since, now)}"
        lease = "-" if p.lease_age_s is None else f"{p.lease_age_s:.1f} s"
        line = f"{escaped(p.id)}: {who}; {len(p.shards)} shards ({_ranges(p.shards)}), lease age {lease}"
        if p.counts is not None:
            n = p.counts
            total = n["up"] + n["down"] + n["unknown"]
            line += f", {total} devices: {n['up']} up, {n['down']} down, {n['unknown']} unknown"
        elif p.devices is not None:
            line += f", {p.devices} devices"
        if c.epochs is not None:
            held = [c.epochs[s].epoch for s in p.shards if s in c.epochs]
            line += f", epochs {min(held)}-{max(held)}" if held else ", no epochs"
        g = p.gauges
        if g:
            took, refused = g.get("takeovers", 0.0), g.get("refused_writes", 0.0)
            line += f", takeovers {took:.0f}, refused writes {refused:.0f}"
        rows.append(("poller", line))
    return rows


def _ranges(shards: list[int]) -> str:
    """``0-3,7,9-12``: a poller's shards in a line (cut after 12 runs)."""
    runs: list[str] = []
    start = prev = None
    for s in [*shards, None]:
        if s is not None and prev is not None and s == prev + 1:
            prev = s
            continue
        if start is not None:
            runs.append(str(start) if start == prev else f"{start}-{prev}")
        start = prev = s
    if not runs:
        return "none"
    return ",".join(runs[:12]) + (f",… {len(runs) - 12} more runs" if len(runs) > 12 else "")
