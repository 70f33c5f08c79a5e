"""Acknowledgements (issue 15 item 5).

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06

- ``acknowledgements``: one row per acknowledgement (store/acks.py). It names the device and
  the start of the outage it acknowledges (``down_since``: the outage's ``start``), so it holds
  until that outage ends. ``cleared_at``/``cleared_why`` are set when it is removed before that;
  the row stays (who took what is kept). Indexes: (``device``, ``down_since``), to find a
  device's acknowledgements of one outage; ``cleared_at``, for those still in force.

Written by hand, not imported from the store: a revision is history.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | None = None
depends_on: str | None = None

_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "acknowledgements",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("device", sa.String(), nullable=False),
        sa.Column("down_since", _TS, nullable=False),
        sa.Column("note", sa.String(), nullable=False),
        sa.Column("who", sa.String(), nullable=False),
        sa.Column("at", _TS, nullable=False),
        sa.Column("cleared_at", _TS, nullable=True),
        sa.Column("cleared_why", sa.String(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_acknowledgements_device_since", "acknowledgements", ["device", "down_since"])
    op.create_index("ix_acknowledgements_cleared_at", "acknowledgements", ["cleared_at"])


def downgrade() -> None:
    op.drop_table("acknowledgements")
