"""Fencing epochs of cluster shards (issue 16 item 3).

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06

- ``shard_epochs``: one row per (``site``, ``shard``): the shard's fencing ``epoch``, raised by
  one at every takeover, and the ``owner`` that took it at ``taken_at`` (the server's clock).
  Every write of a clustered poller checks its shard's epoch in the same transaction
  (store/fencing.py, docs/CLUSTER.md). Fencing is PostgreSQL's alone; the table exists on SQLite
  too so that both have one schema.

Written by hand, not imported from the store: a revision is history.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "shard_epochs",
        sa.Column("site", sa.String(), nullable=False),
        sa.Column("shard", sa.Integer(), nullable=False, autoincrement=False),
        sa.Column("epoch", sa.BigInteger(), nullable=False),
        sa.Column("owner", sa.String(), nullable=False),
        sa.Column("taken_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("site", "shard"),
    )


def downgrade() -> None:
    op.drop_table("shard_epochs")
