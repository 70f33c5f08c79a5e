"""The schema as it was when migrations began: devices, transitions, outages, checks.

Revision ID: 0001
Revises:
Create Date: 2026-12-01

Written out by hand from store/models.py, not imported from it: a revision is history and
must not change when the models do (tests/integration/test_store_migrations.py checks that
this revision gives what ``metadata.create_all`` gave).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None

# As in store/models.py: rowid alias on SQLite, BIGINT (BIGSERIAL) on PostgreSQL.
_BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_TS = sa.DateTime(timezone=True)
_OPEN = sa.text('"end" IS NULL')


def upgrade() -> None:
    op.create_table(
        "devices",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("address", sa.String(), nullable=False),
        sa.Column("branch", sa.String(), nullable=False),
        sa.Column("region", sa.String(), nullable=False),
        sa.Column("type", sa.String(), nullable=False),
        sa.Column("parent", sa.String(), nullable=True),
        sa.Column("first_seen", _TS, nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("name"),
    )
    op.create_table(
        "transitions",
        sa.Column("id", _BIG_ID, nullable=False),
        sa.Column("device_id", sa.Integer(), nullable=False),
        sa.Column("from_state", sa.String(), nullable=False),
        sa.Column("to_state", sa.String(), nullable=False),
        sa.Column("at", _TS, nullable=False),
        sa.Column("down_since", _TS, nullable=True),
        sa.Column("rtt_ms", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.ForeignKeyConstraint(["device_id"], ["devices.id"]),
    )
    op.create_index("ix_transitions_at", "transitions", ["at"])
    op.create_index("ix_transitions_device_at", "transitions", ["device_id", "at"])
    op.create_table(
        "outages",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("device_id", sa.Integer(), nullable=False),
        sa.Column("start", _TS, nullable=False),
        sa.Column("end", _TS, nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.ForeignKeyConstraint(["device_id"], ["devices.id"]),
    )
    op.create_index("ix_outages_device_start", "outages", ["device_id", "start"])
    # At most one open outage per device (see store/models.py).
    op.create_index("ix_outages_open", "outages", ["device_id"], unique=True,
                    sqlite_where=_OPEN, postgresql_where=_OPEN)
    op.create_index("ix_outages_start", "outages", ["start"])
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


def downgrade() -> None:
    # Indexes go with their tables; children before the devices they refer to.
    for table in ("checks", "outages", "transitions", "devices"):
        op.drop_table(table)
