"""Each outage's cause: DOWN, or UNREACHABLE behind its parents (issue 15).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06

- ``outages.cause``: ``down`` or ``unreachable``, what the device was when the outage began;
  every outage stored before is ``down`` (there were no dependencies).
- ``outages.down_from``: for an outage that began UNREACHABLE and became DOWN on the device's
  own evidence (a parent came back, the device did not), when it did; NULL otherwise. Reports
  count ``[start, down_from)`` as unreachable and the rest as down.

Written by hand, not imported from the store: a revision is history.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    with op.batch_alter_table("outages") as batch:
        batch.add_column(sa.Column("cause", sa.String(), nullable=False, server_default="down"))
        batch.add_column(sa.Column("down_from", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("outages") as batch:
        batch.drop_column("down_from")
        batch.drop_column("cause")
