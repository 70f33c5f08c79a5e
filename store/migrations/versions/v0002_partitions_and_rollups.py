"""Raw checks partitioned by day on PostgreSQL; 1-minute and 1-hour rollups; an index on checks.at.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28

PostgreSQL: ``checks`` becomes a table partitioned by range of ``at``, one partition per UTC
day (``checks_pYYYYMMDD``), so retention drops whole days instead of deleting rows. It loses
its id and its foreign key (COPY would pay a lookup per row; devices are never deleted), its
(device_id, at) index covers the other columns (index-only scans for one device's history),
and it gets a BRIN index on ``at``, tiny for rows that arrive in time order. Existing rows move into
partitions made for the days they fall on. ``rollup_1m`` is partitioned the same way.

SQLite has no partitions: retention deletes by ``at``, which the new B-tree index serves.

Written by hand, not imported from the store: a revision is history.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | None = None
depends_on: str | None = None

_BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_TS = sa.DateTime(timezone=True)
_DAY = timedelta(days=1)


def _rollup_columns() -> list[sa.Column[object]]:
    return [
        sa.Column("device_id", sa.Integer(), nullable=False),
        sa.Column("bucket", _TS, nullable=False),
        sa.Column("checks", sa.Integer(), nullable=False),
        sa.Column("sent", sa.Integer(), nullable=False),
        sa.Column("received", sa.Integer(), nullable=False),
        sa.Column("rtt_min", sa.Float(), nullable=True),
        sa.Column("rtt_avg", sa.Float(), nullable=True),
        sa.Column("rtt_max", sa.Float(), nullable=True),
        sa.Column("rtt_p95", sa.Float(), nullable=True),
        sa.Column("jitter_ms", sa.Float(), nullable=True),
        sa.Column("up_s", sa.Float(), nullable=False),
        sa.Column("down_s", sa.Float(), nullable=False),
    ]


def _partition_ddl(table: str, day: datetime) -> str:
    return (f"CREATE TABLE IF NOT EXISTS {table}_p{day:%Y%m%d} PARTITION OF {table} "
            f"FOR VALUES FROM ('{day.isoformat()}') TO ('{(day + _DAY).isoformat()}')")


def _days_with_rows(table: str, column: str) -> list[datetime]:
    rows = op.get_bind().execute(sa.text(
        f"SELECT DISTINCT date_trunc('day', {column}, 'UTC') FROM {table}"))
    return sorted(r[0].astimezone(UTC) for r in rows)


def upgrade() -> None:
    op.create_table("rollup_state",
                    sa.Column("tier", sa.String(), nullable=False),
                    sa.Column("done_until", _TS, nullable=False),
                    sa.PrimaryKeyConstraint("tier"))
    op.create_table("rollup_1h", *_rollup_columns(), sa.PrimaryKeyConstraint("device_id", "bucket"))
    if op.get_bind().dialect.name != "postgresql":
        op.create_table("rollup_1m", *_rollup_columns(), sa.PrimaryKeyConstraint("device_id", "bucket"))
        op.create_index("ix_checks_at", "checks", ["at"])
        return
    op.create_table("rollup_1m", *_rollup_columns(), sa.PrimaryKeyConstraint("device_id", "bucket"),
                    postgresql_partition_by="RANGE (bucket)")
    op.rename_table("checks", "checks_0001")
    op.execute("ALTER INDEX ix_checks_device_at RENAME TO ix_checks_0001_device_at")
    op.execute("""
        CREATE TABLE checks (
            device_id integer NOT NULL,
            at timestamptz NOT NULL,
            sent integer NOT NULL,
            received integer NOT NULL,
            rtt_ms double precision
        ) PARTITION BY RANGE (at)""")
    # Covering: a device's day is read by an index-only scan of ~60 pages, where the heap holds
    # its 8,640 rows on as many pages (they arrive in time order, among every other device's).
    op.create_index("ix_checks_device_at", "checks", ["device_id", "at"],
                    postgresql_include=["sent", "received", "rtt_ms"])
    op.execute("CREATE INDEX ix_checks_at ON checks USING brin (at)")
    for day in _days_with_rows("checks_0001", "at"):
        op.execute(_partition_ddl("checks", day))
    op.execute("INSERT INTO checks (device_id, at, sent, received, rtt_ms) "
               "SELECT device_id, at, sent, received, rtt_ms FROM checks_0001 ORDER BY at")
    op.drop_table("checks_0001")


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    op.drop_table("rollup_1m")
    op.drop_table("rollup_1h")
    op.drop_table("rollup_state")
    if dialect != "postgresql":
        op.drop_index("ix_checks_at", "checks")
        return
    op.rename_table("checks", "checks_0002")
    op.execute("ALTER INDEX ix_checks_device_at RENAME TO ix_checks_0002_device_at")
    op.create_table(
        "checks",
        sa.Column("id", _BIG_ID, nullable=False),
        sa.Column("device_id", sa.Integer(), nullable=False),
        sa.Column("at", _TS, nullable=False),
        sa.Column("sent", sa.Integer(), nullable=False),
        sa.Column("received", sa.Integer(), nullable=False),
        sa.Column("rtt_ms", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.ForeignKeyConstraint(["device_id"], ["devices.id"]),
    )
    op.create_index("ix_checks_device_at", "checks", ["device_id", "at"])
    op.execute("INSERT INTO checks (device_id, at, sent, received, rtt_ms) "
               "SELECT device_id, at, sent, received, rtt_ms FROM checks_0002 ORDER BY at")
    op.drop_table("checks_0002")  # its partitions go with it
