"""SNMP: latest system facts and interfaces, interface rates with 1-minute and hourly rollups, events.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28

- ``snmp_system`` and ``snmp_interfaces``: what the latest poll of each device read, upserted.
- ``if_rates``: an interface's in/out bit/s at each poll. On PostgreSQL partitioned by UTC day
  on ``at`` like ``checks`` (no id, no foreign key, a covering (device, ifindex, at) index, a
  BRIN index on ``at``); on SQLite a rowid table whose retention deletes by ``at``.
- ``if_rollup_1m`` (partitioned by day on PostgreSQL, like ``rollup_1m``) and ``if_rollup_1h``.
- ``snmp_events``: reboots, interface status changes, agents that stop or resume answering.

Written by hand, not imported from the store: a revision is history.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | None = None
depends_on: str | None = None

_BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_TS = sa.DateTime(timezone=True)


def _device_fk() -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(["device_id"], ["devices.id"])


def _if_rollup_columns() -> list[sa.Column[object]]:
    return [
        sa.Column("device_id", sa.Integer(), nullable=False),
        sa.Column("ifindex", sa.Integer(), nullable=False),
        sa.Column("bucket", _TS, nullable=False),
        sa.Column("samples", sa.Integer(), nullable=False),
        sa.Column("in_avg", sa.Float(), nullable=True),
        sa.Column("in_max", sa.Float(), nullable=True),
        sa.Column("in_p95", sa.Float(), nullable=True),
        sa.Column("out_avg", sa.Float(), nullable=True),
        sa.Column("out_max", sa.Float(), nullable=True),
        sa.Column("out_p95", sa.Float(), nullable=True),
    ]


def upgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    op.create_table(
        "snmp_system",
        sa.Column("device_id", sa.Integer(), nullable=False, autoincrement=False),
        sa.Column("polled_at", _TS, nullable=False),
        sa.Column("sys_name", sa.String(), nullable=False),
        sa.Column("sys_descr", sa.String(), nullable=False),
        sa.Column("sys_object_id", sa.String(), nullable=False),
        sa.Column("uptime_s", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("device_id"),
        _device_fk(),
    )
    op.create_table(
        "snmp_interfaces",
        sa.Column("device_id", sa.Integer(), nullable=False, autoincrement=False),
        sa.Column("ifindex", sa.Integer(), nullable=False, autoincrement=False),
        sa.Column("polled_at", _TS, nullable=False),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("alias", sa.String(), nullable=False),
        sa.Column("admin", sa.String(), nullable=False),
        sa.Column("oper", sa.String(), nullable=False),
        sa.Column("speed_bps", sa.BigInteger(), nullable=True),
        sa.Column("in_bps", sa.Float(), nullable=True),
        sa.Column("out_bps", sa.Float(), nullable=True),
        sa.Column("in_errors", sa.BigInteger(), nullable=True),
        sa.Column("out_errors", sa.BigInteger(), nullable=True),
        sa.Column("in_discards", sa.BigInteger(), nullable=True),
        sa.Column("out_discards", sa.BigInteger(), nullable=True),
        sa.Column("counters_64", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("device_id", "ifindex"),
        _device_fk(),
    )
    op.create_table(
        "snmp_events",
        sa.Column("id", _BIG_ID, nullable=False),
        sa.Column("device_id", sa.Integer(), nullable=False),
        sa.Column("at", _TS, nullable=False),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("ifindex", sa.Integer(), nullable=True),
        sa.Column("ifname", sa.String(), nullable=True),
        sa.Column("from_state", sa.String(), nullable=True),
        sa.Column("to_state", sa.String(), nullable=True),
        sa.Column("detail", sa.String(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        _device_fk(),
    )
    op.create_index("ix_snmp_events_at", "snmp_events", ["at"])
    op.create_index("ix_snmp_events_device_at", "snmp_events", ["device_id", "at"])
    op.create_table("if_rollup_1h", *_if_rollup_columns(),
                    sa.PrimaryKeyConstraint("device_id", "ifindex", "bucket"))
    if not postgres:
        op.create_table("if_rollup_1m", *_if_rollup_columns(),
                        sa.PrimaryKeyConstraint("device_id", "ifindex", "bucket"))
        op.create_table(
            "if_rates",
            sa.Column("id", _BIG_ID, nullable=False),
            sa.Column("device_id", sa.Integer(), nullable=False),
            sa.Column("ifindex", sa.Integer(), nullable=False),
            sa.Column("at", _TS, nullable=False),
            sa.Column("in_bps", sa.Float(), nullable=True),
            sa.Column("out_bps", sa.Float(), nullable=True),
            sa.PrimaryKeyConstraint("id"),
            _device_fk(),
        )
        op.create_index("ix_if_rates_at", "if_rates", ["at"])
        op.create_index("ix_if_rates_device_if_at", "if_rates", ["device_id", "ifindex", "at"])
        return
    op.create_table("if_rollup_1m", *_if_rollup_columns(),
                    sa.PrimaryKeyConstraint("device_id", "ifindex", "bucket"),
                    postgresql_partition_by="RANGE (bucket)")
    op.execute("""
        CREATE TABLE if_rates (
            device_id integer NOT NULL,
            ifindex integer NOT NULL,
            at timestamptz NOT NULL,
            in_bps double precision,
            out_bps double precision
        ) PARTITION BY RANGE (at)""")
    # Covering, as for checks: one interface's day is an index-only scan.
    op.create_index("ix_if_rates_device_if_at", "if_rates", ["device_id", "ifindex", "at"],
                    postgresql_include=["in_bps", "out_bps"])
    op.execute("CREATE INDEX ix_if_rates_at ON if_rates USING brin (at)")


def downgrade() -> None:
    # Partitions go with their parents.
    for table in ("if_rates", "if_rollup_1m", "if_rollup_1h", "snmp_events", "snmp_interfaces",
                  "snmp_system"):
        op.drop_table(table)
