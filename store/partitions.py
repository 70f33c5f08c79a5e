"""Day partitions of PostgreSQL's raw and 1-minute tables (``checks``, ``rollup_1m``, ``if_rates``,
``if_rollup_1m``): create ahead, list, drop.

One partition per UTC day, named ``<table>_pYYYYMMDD``, covering ``[day, day + 1 day)``.
Retention drops a partition once its whole day is older than the tier keeps: a catalogue
operation, where deleting the rows would rewrite and vacuum the table.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

PARTITIONED = ("checks", "rollup_1m", "if_rates", "if_rollup_1m")
IN_USE_ONLY = ("if_rates", "if_rollup_1m")
"""Made ahead only once ``if_rates`` has a partition (SNMP in use): a network polled by ICMP
alone gets no empty day partitions for retention to drop."""
DAY = timedelta(days=1)
_NAME = re.compile(r"^(?P<table>[a-z0-9_]+)_p(?P<day>\d{8})$")


def day_of(at: datetime) -> datetime:
    """Midnight UTC of the day ``at`` falls on."""
    at = at.astimezone(UTC)
    return datetime(at.year, at.month, at.day, tzinfo=UTC)


def partition_name(table: str, day: datetime) -> str:
    return f"{table}_p{day_of(day):%Y%m%d}"


def create_sql(table: str, day: datetime) -> str:
    day = day_of(day)
    return (f"CREATE TABLE IF NOT EXISTS {partition_name(table, day)} PARTITION OF {table} "
            f"FOR VALUES FROM ('{day.isoformat()}') TO ('{(day + DAY).isoformat()}')")


# DDL on a partition locks its parent: behind a long reader (a report, pg_dump) it would wait,
# and every COPY would queue behind it. Give up instead; the caller retries later.
LOCK_TIMEOUT = "SET LOCAL lock_timeout = '2s'"


async def ensure(conn: AsyncConnection, table: str, days: Iterable[datetime]) -> None:
    """Create the partitions of ``table`` for ``days`` that do not exist yet (in the caller's
    transaction, which gives up after 2 s waiting for a lock)."""
    wanted = sorted({day_of(d) for d in days})
    if wanted:
        await conn.execute(text(LOCK_TIMEOUT))
    for day in wanted:
        await conn.execute(text(create_sql(table, day)))


async def existing(conn: AsyncConnection, table: str) -> dict[datetime, str]:
    """Day -> partition name, for the partitions of ``table`` named as wardtui names them."""
    rows = await conn.execute(text(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = :table"), {"table": table})
    found: dict[datetime, str] = {}
    for (name,) in rows:
        match = _NAME.match(name)
        if match and match["table"] == table:
            found[datetime.strptime(match["day"], "%Y%m%d").replace(tzinfo=UTC)] = name
    return found


async def drop_before(conn: AsyncConnection, table: str, cutoff: datetime) -> list[str]:
    """Drop the partitions of ``table`` whose whole day ends at or before ``cutoff``."""
    dropped = []
    await conn.execute(text(LOCK_TIMEOUT))
    for day, name in sorted((await existing(conn, table)).items()):
        if day + DAY <= cutoff:
            await conn.execute(text(f"DROP TABLE {name}"))
            dropped.append(name)
    return dropped
