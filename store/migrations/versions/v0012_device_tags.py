"""Devices' tags (issue 15): maintenance windows match by tag in reports too.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-06

- ``devices.tags``: the inventory's tags of the device, as a JSON array of strings (``[]`` for
  none, and for every device stored before: the next start of a poller writes them).

Written by hand, not imported from the store: a revision is history.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    with op.batch_alter_table("devices") as batch:
        batch.add_column(sa.Column("tags", sa.String(), nullable=False, server_default="[]"))


def downgrade() -> None:
    with op.batch_alter_table("devices") as batch:
        batch.drop_column("tags")
