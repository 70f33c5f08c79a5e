"""Maintenance windows (issue 15 item 4).

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06

- ``maintenance_windows``: one row per window (store/maintenance_windows.py). ``matchers`` is a
  JSON list of ``"key=value"``; a one-off window has ``starts_at``/``ends_at``, a recurring one
  ``cron``/``duration_s``/``tz``. Removing a window sets ``removed_at`` (the row stays: who
  silenced what is kept). Index: ``removed_at``, for the windows still in force.

Written by hand, not imported from the store: a revision is history.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | None = None
depends_on: str | None = None

_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "maintenance_windows",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("matchers", sa.JSON(), nullable=False),
        sa.Column("starts_at", _TS, nullable=True),
        sa.Column("ends_at", _TS, nullable=True),
        sa.Column("cron", sa.String(), nullable=True),
        sa.Column("duration_s", sa.Float(), nullable=True),
        sa.Column("tz", sa.String(), nullable=True),
        sa.Column("note", sa.String(), nullable=False),
        sa.Column("created_by", sa.String(), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("removed_at", _TS, nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_maintenance_windows_removed_at", "maintenance_windows", ["removed_at"])


def downgrade() -> None:
    op.drop_table("maintenance_windows")
