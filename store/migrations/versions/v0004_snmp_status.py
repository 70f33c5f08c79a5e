"""SNMP poll outcomes, and agents that answer without the whole system group.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03

- ``snmp_status``: per device, polls tried and answered, the last one's time, outcome and
  detail, the last answer's time; so that a device polled every interval but never answered
  fully is told from one never polled.
- ``snmp_system.uptime_s`` may be NULL (an agent without sysUpTime, e.g. an Eaton UPS card),
  and ``snmp_system.missing`` says what the agent lacks.

Written by hand, not imported from the store: a revision is history.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | None = None
depends_on: str | None = None

_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "snmp_status",
        sa.Column("device_id", sa.Integer(), nullable=False, autoincrement=False),
        sa.Column("polled_at", _TS, nullable=False),
        sa.Column("polls", sa.BigInteger(), nullable=False),
        sa.Column("answered", sa.BigInteger(), nullable=False),
        sa.Column("outcome", sa.String(), nullable=False),
        sa.Column("detail", sa.String(), nullable=True),
        sa.Column("answered_at", _TS, nullable=True),
        sa.PrimaryKeyConstraint("device_id"),
        sa.ForeignKeyConstraint(["device_id"], ["devices.id"]),
    )
    # SQLite cannot drop a NOT NULL in place: batch mode copies the table (one row per device).
    with op.batch_alter_table("snmp_system") as batch:
        batch.alter_column("uptime_s", existing_type=sa.Float(), nullable=True)
        batch.add_column(sa.Column("missing", sa.String(), nullable=True))


def downgrade() -> None:
    op.drop_table("snmp_status")
    # Rows without an uptime cannot stay under NOT NULL: those devices read as never polled,
    # as they did before this revision.
    op.execute("DELETE FROM snmp_interfaces WHERE device_id IN "
               "(SELECT device_id FROM snmp_system WHERE uptime_s IS NULL)")
    op.execute("DELETE FROM snmp_system WHERE uptime_s IS NULL")
    with op.batch_alter_table("snmp_system") as batch:
        batch.drop_column("missing")
        batch.alter_column("uptime_s", existing_type=sa.Float(), nullable=False)
