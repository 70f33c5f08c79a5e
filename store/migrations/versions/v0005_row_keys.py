"""Keys on history rows, so that a row written twice is stored once.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-05

A spool replayed again after a crash (or after its progress could not be saved on a full
disk), or a write retried after the database committed it but the answer was lost, wrote its
rows a second time: duplicate checks, transitions and outages (the same device and start), and
availability below zero. Each row now has a key, and the store inserts with ON CONFLICT DO
NOTHING:

- ``transitions``: (device_id, at, to_state); replaces ``ix_transitions_device_at``.
- ``outages``: (device_id, start), ``ix_outages_device_start`` made unique.
- ``checks``: (device_id, at), ``ix_checks_device_at`` made unique (on PostgreSQL still covering).
- ``if_rates``: (device_id, ifindex, at), ``ix_if_rates_device_if_at`` made unique (the same).

Duplicates already stored are deleted first, keeping the first row written of each key.

Written by hand, not imported from the store: a revision is history.
"""

from __future__ import annotations

from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | None = None
depends_on: str | None = None


def _dedupe_by_id(table: str, key: str) -> None:
    op.execute(f"DELETE FROM {table} WHERE id NOT IN (SELECT min(id) FROM {table} GROUP BY {key})")


def _dedupe_partitioned(table: str, key: tuple[str, ...]) -> None:
    # PostgreSQL's partitioned tables have no id: rows of one key are in one partition (the
    # key holds the partition column), told apart by their place in it.
    same = " AND ".join(f"a.{column} = b.{column}" for column in key)
    op.execute(f"DELETE FROM {table} a USING {table} b WHERE {same} "
               "AND a.tableoid = b.tableoid AND a.ctid > b.ctid")


def upgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    _dedupe_by_id("transitions", "device_id, at, to_state")
    op.drop_index("ix_transitions_device_at", "transitions")
    op.create_index("ux_transitions_key", "transitions", ["device_id", "at", "to_state"], unique=True)
    _dedupe_by_id("outages", 'device_id, "start"')
    op.drop_index("ix_outages_device_start", "outages")
    op.create_index("ix_outages_device_start", "outages", ["device_id", "start"], unique=True)
    if postgres:
        _dedupe_partitioned("checks", ("device_id", "at"))
        op.drop_index("ix_checks_device_at", "checks")
        op.create_index("ix_checks_device_at", "checks", ["device_id", "at"], unique=True,
                        postgresql_include=["sent", "received", "rtt_ms"])
        _dedupe_partitioned("if_rates", ("device_id", "ifindex", "at"))
        op.drop_index("ix_if_rates_device_if_at", "if_rates")
        op.create_index("ix_if_rates_device_if_at", "if_rates", ["device_id", "ifindex", "at"],
                        unique=True, postgresql_include=["in_bps", "out_bps"])
    else:
        _dedupe_by_id("checks", "device_id, at")
        op.drop_index("ix_checks_device_at", "checks")
        op.create_index("ix_checks_device_at", "checks", ["device_id", "at"], unique=True)
        _dedupe_by_id("if_rates", "device_id, ifindex, at")
        op.drop_index("ix_if_rates_device_if_at", "if_rates")
        op.create_index("ix_if_rates_device_if_at", "if_rates", ["device_id", "ifindex", "at"], unique=True)


def downgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    op.drop_index("ix_if_rates_device_if_at", "if_rates")
    op.drop_index("ix_checks_device_at", "checks")
    if postgres:
        op.create_index("ix_if_rates_device_if_at", "if_rates", ["device_id", "ifindex", "at"],
                        postgresql_include=["in_bps", "out_bps"])
        op.create_index("ix_checks_device_at", "checks", ["device_id", "at"],
                        postgresql_include=["sent", "received", "rtt_ms"])
    else:
        op.create_index("ix_if_rates_device_if_at", "if_rates", ["device_id", "ifindex", "at"])
        op.create_index("ix_checks_device_at", "checks", ["device_id", "at"])
    op.drop_index("ix_outages_device_start", "outages")
    op.create_index("ix_outages_device_start", "outages", ["device_id", "start"])
    op.drop_index("ux_transitions_key", "transitions")
    op.create_index("ix_transitions_device_at", "transitions", ["device_id", "at"])
