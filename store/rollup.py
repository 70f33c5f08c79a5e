"""1-minute and 1-hour rollups of raw checks, per device, computed from the rows in the database.

Both tiers are computed from raw checks, so an hour's p95 and jitter are those of its
samples, not an average of minutes. PostgreSQL computes them in one ``INSERT ... SELECT``
(``percentile_cont``, ``lag``); SQLite, which has no percentile function, in Python with the
same definitions. Either way a bucket is recomputed whole and upserted, so running a window
again (late rows replayed from the spool) replaces its buckets with the right values.

Definitions, per device and bucket (``[bucket, bucket + step)``; only buckets with a check):

- ``checks``, ``sent``, ``received``: counts over the bucket's checks.
- ``rtt_min/avg/max``: over the checks that got a reply (their ``rtt_ms``).
- ``rtt_p95``: linear interpolation between closest ranks (``percentile_cont(0.95)``).
- ``jitter_ms``: mean absolute difference of consecutive replied RTTs, in time order
  (NULL with fewer than two).
- ``down_s``: seconds of the bucket covered by the device's outages (an open one runs on);
  ``up_s``: the rest of the bucket.
"""

from __future__ import annotations

import itertools
import math
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Table, text
from sqlalchemy.dialects import sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from store import partitions
from store.models import checks_table, outages_table, rollup_1h_table, rollup_1m_table

_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class Tier:
    name: str  # "1m" or "1h": also the key in rollup_state
    step: timedelta
    table: Table

    def floor(self, at: datetime) -> datetime:
        """Start of the bucket ``at`` falls in."""
        step = self.step.total_seconds()
        offset = (at - _EPOCH).total_seconds()
        return _EPOCH + timedelta(seconds=math.floor(offset / step) * step)


MINUTE = Tier("1m", timedelta(minutes=1), rollup_1m_table)
HOUR = Tier("1h", timedelta(hours=1), rollup_1h_table)
TIERS = (MINUTE, HOUR)

_COLUMNS = ("device_id", "bucket", "checks", "sent", "received", "rtt_min", "rtt_avg", "rtt_max",
            "rtt_p95", "jitter_ms", "up_s", "down_s")

# One statement per window. date_bin aligns buckets on the same epoch as Tier.floor.
_PG_ROLLUP = """
INSERT INTO {table} (device_id, bucket, checks, sent, received, rtt_min, rtt_avg, rtt_max,
                     rtt_p95, jitter_ms, up_s, down_s)
WITH src AS (
    SELECT device_id, date_bin(CAST(:step AS interval), at, CAST(:epoch AS timestamptz)) AS bucket,
           at, sent, received, rtt_ms
    FROM checks WHERE at >= :start AND at < :end
), agg AS (
    SELECT device_id, bucket, count(*) AS checks, sum(sent) AS sent, sum(received) AS received,
           min(rtt_ms) AS rtt_min, avg(rtt_ms) AS rtt_avg, max(rtt_ms) AS rtt_max,
           percentile_cont(0.95) WITHIN GROUP (ORDER BY rtt_ms) AS rtt_p95
    FROM src GROUP BY device_id, bucket
), steps AS (
    SELECT device_id, bucket,
           abs(rtt_ms - lag(rtt_ms) OVER (PARTITION BY device_id, bucket ORDER BY at)) AS d
    FROM src WHERE rtt_ms IS NOT NULL
), jit AS (
    SELECT device_id, bucket, avg(d) AS jitter_ms FROM steps GROUP BY device_id, bucket
)
SELECT a.device_id, a.bucket, a.checks, a.sent, a.received, a.rtt_min, a.rtt_avg, a.rtt_max,
       a.rtt_p95, j.jitter_ms, :seconds - coalesce(o.down_s, 0), coalesce(o.down_s, 0)
FROM agg a
LEFT JOIN jit j ON j.device_id = a.device_id AND j.bucket = a.bucket
LEFT JOIN LATERAL (
    SELECT sum(extract(epoch FROM least(coalesce(x."end", 'infinity'), a.bucket + CAST(:step AS interval))
                              - greatest(x.start, a.bucket))) AS down_s
    FROM outages x
    WHERE x.device_id = a.device_id AND x.start < a.bucket + CAST(:step AS interval)
      AND (x."end" IS NULL OR x."end" > a.bucket)
) o ON true
ON CONFLICT (device_id, bucket) DO UPDATE SET
    checks = EXCLUDED.checks, sent = EXCLUDED.sent, received = EXCLUDED.received,
    rtt_min = EXCLUDED.rtt_min, rtt_avg = EXCLUDED.rtt_avg, rtt_max = EXCLUDED.rtt_max,
    rtt_p95 = EXCLUDED.rtt_p95, jitter_ms = EXCLUDED.jitter_ms, up_s = EXCLUDED.up_s,
    down_s = EXCLUDED.down_s
"""


async def roll_up(conn: AsyncConnection, tier: Tier, start: datetime, end: datetime) -> int:
    """Compute and upsert every bucket of ``tier`` in ``[start, end)`` (both on bucket bounds);
    returns how many rows were written. The caller commits."""
    if conn.dialect.name == "postgresql":
        await _ensure_partitions(conn, tier, start, end)
        result = await conn.execute(text(_PG_ROLLUP.format(table=tier.table.name)), {
            "step": tier.step, "epoch": _EPOCH,
            "start": start, "end": end, "seconds": tier.step.total_seconds()})
        return int(result.rowcount or 0)
    rows = await _compute(conn, tier, start, end)
    if rows:
        stmt = sqlite.insert(tier.table)
        await conn.execute(stmt.on_conflict_do_update(
            index_elements=["device_id", "bucket"],
            set_={c: stmt.excluded[c] for c in _COLUMNS[2:]}), rows)
    return len(rows)


async def _ensure_partitions(conn: AsyncConnection, tier: Tier, start: datetime, end: datetime) -> None:
    # A partitioned tier (rollup_1m) needs a partition for each day it gets buckets on: those
    # of the checks partitions the window covers. Maintenance only makes today's and
    # tomorrow's ahead; a first pass over an older database, a catch-up after a stop over
    # midnight, or late rows replayed for an earlier day roll up days before that.
    table = tier.table.name
    if table not in partitions.PARTITIONED:
        return
    days = {day for day in await partitions.existing(conn, "checks")
            if day < end and day + partitions.DAY > start}
    missing = days - set(await partitions.existing(conn, table))
    if missing:
        await partitions.ensure(conn, table, missing)


async def _compute(conn: AsyncConnection, tier: Tier, start: datetime, end: datetime) -> list[dict[str, Any]]:
    c, o = checks_table, outages_table
    checks = await conn.execute(
        c.select().with_only_columns(c.c.device_id, c.c.at, c.c.sent, c.c.received, c.c.rtt_ms)
        .where(c.c.at >= start, c.c.at < end).order_by(c.c.device_id, c.c.at))
    buckets: dict[tuple[int, datetime], list[Any]] = defaultdict(list)
    for row in checks:
        buckets[(row.device_id, tier.floor(row.at))].append(row)
    if not buckets:
        return []
    outages = await conn.execute(
        o.select().with_only_columns(o.c.device_id, o.c.start, o.c.end)
        .where(o.c.start < end, o.c.end.is_(None) | (o.c.end > start)))
    down: dict[int, list[tuple[datetime, datetime | None]]] = defaultdict(list)
    for device_id, start_, end_ in outages:
        down[device_id].append((start_, end_))
    seconds = tier.step.total_seconds()
    rows = []
    for (device_id, bucket), samples in buckets.items():
        bucket_end = bucket + tier.step
        rtts = [s.rtt_ms for s in samples if s.rtt_ms is not None]
        down_s = sum(max(0.0, (min(e or bucket_end, bucket_end) - max(s, bucket)).total_seconds())
                     for s, e in down.get(device_id, ()))
        rows.append({
            "device_id": device_id, "bucket": bucket, "checks": len(samples),
            "sent": sum(s.sent for s in samples), "received": sum(s.received for s in samples),
            "rtt_min": min(rtts, default=None), "rtt_avg": sum(rtts) / len(rtts) if rtts else None,
            "rtt_max": max(rtts, default=None), "rtt_p95": percentile(rtts, 0.95),
            "jitter_ms": (sum(abs(b - a) for a, b in itertools.pairwise(rtts)) / (len(rtts) - 1)
                          if len(rtts) > 1 else None),
            "up_s": seconds - down_s, "down_s": down_s,
        })
    return rows


def percentile(values: list[float], fraction: float) -> float | None:
    """``percentile_cont``: linear interpolation between the closest ranks of the sorted values."""
    if not values:
        return None
    ordered = sorted(values)
    position = fraction * (len(ordered) - 1)
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (position - low) * (ordered[high] - ordered[low])

