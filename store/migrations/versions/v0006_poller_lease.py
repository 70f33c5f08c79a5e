"""Who polls the database: the poller lease's description.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-05

- ``poller_lease``: one row (id 1) naming the poller (host, pid, kind, since, and its
  PostgreSQL session's ``backend_pid``) that holds the database's lease, so that a second
  poller refused by the lease can say who polls. On PostgreSQL the lease itself is a session
  advisory lock (store/lease.py): the row describes it and is checked against it, never
  trusted alone. SQLite keeps the description in the lease file beside the database and
  leaves this table empty; it exists there too so that both have one schema.

Written by hand, not imported from the store: a revision is history.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "poller_lease",
        sa.Column("id", sa.Integer(), nullable=False, autoincrement=False),
        sa.Column("host", sa.String(), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("since", sa.DateTime(timezone=True), nullable=False),
        sa.Column("backend_pid", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )


def downgrade() -> None:
    op.drop_table("poller_lease")
