"""1-minute and 1-hour rollups of raw checks per device, and of interface rates per interface,
computed from the rows in the database.

Both tiers are computed from raw checks, so an hour's p95 and jitter are those of its
samples, not an average of minutes. Each engine computes them in one ``INSERT ... SELECT``:
PostgreSQL with ``percentile_cont`` and ``lag``; SQLite, which has no percentile function,
with ``row_number`` ranks and the same interpolation. Either way a bucket is recomputed
whole and upserted, so running a window again (late rows replayed from the spool) replaces
its buckets with the right values, and the work is the database's, off the event loop.

Definitions, per device and bucket (``[bucket, bucket + step)``; only buckets with a check):

- ``checks``, ``sent``, ``received``: counts over the bucket's checks.
- ``rtt_min/avg/max``: over the checks that got a reply (their ``rtt_ms``).
- ``rtt_p95``: linear interpolation between closest ranks (``percentile_cont(0.95)``).
- ``jitter_ms``: mean absolute difference of consecutive replied RTTs, in time order
  (NULL with fewer than two).
- ``down_s``: seconds of the bucket covered by the device's outages (an open one runs on);
  ``up_s``: the rest of the bucket.

Interface rates (``if_rates`` -> ``if_rollup_1m``, ``if_rollup_1h``), per device, ifindex and
bucket: ``samples`` rows; ``in_avg/max/p95`` and ``out_avg/max/p95`` over the rows with a rate in
that direction (``p95`` interpolated as above; NULL when no row has one).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import Table, text
from sqlalchemy.ext.asyncio import AsyncConnection

from store import partitions
from store.database import sqlite_time
from store.models import if_rollup_1h_table, if_rollup_1m_table, rollup_1h_table, rollup_1m_table

_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class Tier:
    name: str  # "1m", "1h", "if_1m" or "if_1h": also the key in rollup_state
    step: timedelta
    table: Table
    source: str = "checks"  # the raw table it is computed from

    def floor(self, at: datetime) -> datetime:
        """Start of the bucket ``at`` falls in."""
        step = self.step.total_seconds()
        offset = (at - _EPOCH).total_seconds()
        return _EPOCH + timedelta(seconds=math.floor(offset / step) * step)


MINUTE = Tier("1m", timedelta(minutes=1), rollup_1m_table)
HOUR = Tier("1h", timedelta(hours=1), rollup_1h_table)
TIERS = (MINUTE, HOUR)
IF_MINUTE = Tier("if_1m", timedelta(minutes=1), if_rollup_1m_table, "if_rates")
IF_HOUR = Tier("if_1h", timedelta(hours=1), if_rollup_1h_table, "if_rates")


@dataclass(frozen=True, slots=True)
class Family:
    """A raw table and its two rollup tiers, each hour computed once its minutes are."""

    source: str  # the raw table
    time_column: str  # its time column
    minute: Tier
    hour: Tier


FAMILIES = (Family("checks", "at", MINUTE, HOUR), Family("if_rates", "at", IF_MINUTE, IF_HOUR))

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


async def roll_up(conn: AsyncConnection, tier: Tier, start: datetime, end: datetime,
                  devices: tuple[int, int] | None = None) -> int:
    """Compute and upsert every bucket of ``tier`` in ``[start, end)`` (both on bucket bounds),
    on SQLite only for device ids in ``[devices[0], devices[1])``; returns how many rows were
    written. The caller commits."""
    if conn.dialect.name == "postgresql":
        await _ensure_partitions(conn, tier, start, end)
        sql = _PG_IF_ROLLUP if tier.source == "if_rates" else _PG_ROLLUP
        result = await conn.execute(text(sql.format(table=tier.table.name)), {
            "step": tier.step, "epoch": _EPOCH,
            "start": start, "end": end, "seconds": tier.step.total_seconds()})
        return int(result.rowcount or 0)
    # SQLite: the same in SQL, so the work happens in aiosqlite's thread, not on the loop.
    first_id, end_id = devices or (0, 2**62)
    result = await conn.execute(text(_sqlite_rollup(tier)), {
        "start": sqlite_time(start), "end": sqlite_time(end), "seconds": tier.step.total_seconds(),
        "first_id": first_id, "end_id": end_id})
    return int(result.rowcount or 0)


def _sqlite_rollup(tier: Tier) -> str:
    step = int(tier.step.total_seconds())
    if step == 60:
        bucket = r"substr(at, 1, 16) || '\:00.000000'"  # \: keeps text() from seeing a parameter
    elif step == 3600:
        bucket = r"substr(at, 1, 13) || '\:00\:00.000000'"
    else:  # pragma: no cover - only the two tiers exist
        raise ValueError(f"no SQLite bucket expression for {step} s")
    sql = _SQLITE_IF_ROLLUP if tier.source == "if_rates" else _SQLITE_ROLLUP
    return sql.format(table=tier.table.name, bucket=bucket, step=step)


# SQLite has no percentile_cont: p95 is interpolated between the ranks floor(0.95 (n - 1)) and
# the next one, found with row_number(); times are compared as the strings SQLAlchemy stores.
_SQLITE_ROLLUP = """
INSERT INTO {table} (device_id, bucket, checks, sent, received, rtt_min, rtt_avg, rtt_max,
                     rtt_p95, jitter_ms, up_s, down_s)
WITH src AS (
    SELECT device_id, {bucket} AS bucket, at, sent, received, rtt_ms
    FROM checks WHERE at >= :start AND at < :end AND device_id >= :first_id AND device_id < :end_id
), ranked AS (
    SELECT device_id, bucket, rtt_ms,
           row_number() OVER (PARTITION BY device_id, bucket ORDER BY rtt_ms) - 1 AS i,
           CAST(0.95 * (count(*) OVER (PARTITION BY device_id, bucket) - 1) AS INTEGER) AS lo_i,
           0.95 * (count(*) OVER (PARTITION BY device_id, bucket) - 1) AS pos,
           count(*) OVER (PARTITION BY device_id, bucket) AS n
    FROM src WHERE rtt_ms IS NOT NULL
), p95 AS (
    SELECT device_id, bucket,
           max(CASE WHEN i = lo_i THEN rtt_ms END) AS lo,
           max(CASE WHEN i = min(lo_i + 1, n - 1) THEN rtt_ms END) AS hi,
           max(pos - lo_i) AS frac
    FROM ranked GROUP BY device_id, bucket
), steps AS (
    SELECT device_id, bucket,
           abs(rtt_ms - lag(rtt_ms) OVER (PARTITION BY device_id, bucket ORDER BY at)) AS d
    FROM src WHERE rtt_ms IS NOT NULL
), jit AS (
    SELECT device_id, bucket, avg(d) AS jitter_ms FROM steps GROUP BY device_id, bucket
), agg AS (
    SELECT device_id, bucket,
           strftime('%Y-%m-%d %H:%M:%S.000000', bucket, '+{step} seconds') AS bucket_end,
           count(*) AS checks, sum(sent) AS sent, sum(received) AS received,
           min(rtt_ms) AS rtt_min, avg(rtt_ms) AS rtt_avg, max(rtt_ms) AS rtt_max
    FROM src GROUP BY device_id, bucket
), down AS (
    SELECT a.device_id, a.bucket, coalesce((
        SELECT sum(max(0.0, (julianday(min(coalesce(x."end", '9999-12-31'), a.bucket_end))
                             - julianday(max(x.start, a.bucket))) * 86400.0))
        FROM outages x
        WHERE x.device_id = a.device_id AND x.start < a.bucket_end
          AND (x."end" IS NULL OR x."end" > a.bucket)), 0.0) AS down_s
    FROM agg a
)
SELECT a.device_id, a.bucket, a.checks, a.sent, a.received, a.rtt_min, a.rtt_avg, a.rtt_max,
       p.lo + p.frac * (p.hi - p.lo), j.jitter_ms,
       :seconds - round(d.down_s, 3), round(d.down_s, 3)
FROM agg a
JOIN down d ON d.device_id = a.device_id AND d.bucket = a.bucket
LEFT JOIN p95 p ON p.device_id = a.device_id AND p.bucket = a.bucket
LEFT JOIN jit j ON j.device_id = a.device_id AND j.bucket = a.bucket
WHERE true
ON CONFLICT (device_id, bucket) DO UPDATE SET
    checks = excluded.checks, sent = excluded.sent, received = excluded.received,
    rtt_min = excluded.rtt_min, rtt_avg = excluded.rtt_avg, rtt_max = excluded.rtt_max,
    rtt_p95 = excluded.rtt_p95, jitter_ms = excluded.jitter_ms, up_s = excluded.up_s,
    down_s = excluded.down_s
"""


async def _ensure_partitions(conn: AsyncConnection, tier: Tier, start: datetime, end: datetime) -> None:
    # A partitioned tier (rollup_1m) needs a partition for each day it gets buckets on: those
    # of the checks partitions the window covers. Maintenance only makes today's and
    # tomorrow's ahead; a first pass over an older database, a catch-up after a stop over
    # midnight, or late rows replayed for an earlier day roll up days before that.
    table = tier.table.name
    if table not in partitions.PARTITIONED:
        return
    days = {day for day in await partitions.existing(conn, tier.source)
            if day < end and day + partitions.DAY > start}
    missing = days - set(await partitions.existing(conn, table))
    if missing:
        await partitions.ensure(conn, table, missing)


_PG_IF_ROLLUP = """
INSERT INTO {table} (device_id, ifindex, bucket, samples, in_avg, in_max, in_p95, out_avg, out_max,
                     out_p95)
SELECT device_id, ifindex, date_bin(CAST(:step AS interval), at, CAST(:epoch AS timestamptz)),
       count(*), avg(in_bps), max(in_bps), percentile_cont(0.95) WITHIN GROUP (ORDER BY in_bps),
       avg(out_bps), max(out_bps), percentile_cont(0.95) WITHIN GROUP (ORDER BY out_bps)
FROM if_rates WHERE at >= :start AND at < :end
GROUP BY 1, 2, 3
ON CONFLICT (device_id, ifindex, bucket) DO UPDATE SET
    samples = EXCLUDED.samples, in_avg = EXCLUDED.in_avg, in_max = EXCLUDED.in_max,
    in_p95 = EXCLUDED.in_p95, out_avg = EXCLUDED.out_avg, out_max = EXCLUDED.out_max,
    out_p95 = EXCLUDED.out_p95
"""

# p95 per direction as in _SQLITE_ROLLUP: interpolated between the ranks floor(0.95 (n - 1)) and
# the next one, over the rows that have a rate in that direction.
_SQLITE_IF_ROLLUP = """
INSERT INTO {table} (device_id, ifindex, bucket, samples, in_avg, in_max, in_p95, out_avg, out_max,
                     out_p95)
WITH src AS (
    SELECT device_id, ifindex, {bucket} AS bucket, in_bps, out_bps
    FROM if_rates WHERE at >= :start AND at < :end AND device_id >= :first_id AND device_id < :end_id
), ranked AS (
    SELECT device_id, ifindex, bucket, 'in' AS dir, in_bps AS v,
           row_number() OVER (PARTITION BY device_id, ifindex, bucket ORDER BY in_bps) - 1 AS i,
           count(*) OVER (PARTITION BY device_id, ifindex, bucket) AS n
    FROM src WHERE in_bps IS NOT NULL
    UNION ALL
    SELECT device_id, ifindex, bucket, 'out', out_bps,
           row_number() OVER (PARTITION BY device_id, ifindex, bucket ORDER BY out_bps) - 1,
           count(*) OVER (PARTITION BY device_id, ifindex, bucket)
    FROM src WHERE out_bps IS NOT NULL
), p95 AS (
    SELECT device_id, ifindex, bucket, dir,
           max(CASE WHEN i = CAST(0.95 * (n - 1) AS INTEGER) THEN v END) AS lo,
           max(CASE WHEN i = min(CAST(0.95 * (n - 1) AS INTEGER) + 1, n - 1) THEN v END) AS hi,
           max(0.95 * (n - 1) - CAST(0.95 * (n - 1) AS INTEGER)) AS frac
    FROM ranked GROUP BY device_id, ifindex, bucket, dir
), agg AS (
    SELECT device_id, ifindex, bucket, count(*) AS samples, avg(in_bps) AS in_avg,
           max(in_bps) AS in_max, avg(out_bps) AS out_avg, max(out_bps) AS out_max
    FROM src GROUP BY device_id, ifindex, bucket
)
SELECT a.device_id, a.ifindex, a.bucket, a.samples, a.in_avg, a.in_max,
       pi.lo + pi.frac * (pi.hi - pi.lo), a.out_avg, a.out_max, po.lo + po.frac * (po.hi - po.lo)
FROM agg a
LEFT JOIN p95 pi ON pi.device_id = a.device_id AND pi.ifindex = a.ifindex AND pi.bucket = a.bucket
                AND pi.dir = 'in'
LEFT JOIN p95 po ON po.device_id = a.device_id AND po.ifindex = a.ifindex AND po.bucket = a.bucket
                AND po.dir = 'out'
WHERE true
ON CONFLICT (device_id, ifindex, bucket) DO UPDATE SET
    samples = excluded.samples, in_avg = excluded.in_avg, in_max = excluded.in_max,
    in_p95 = excluded.in_p95, out_avg = excluded.out_avg, out_max = excluded.out_max,
    out_p95 = excluded.out_p95
"""
