"""The notification outbox (issue 15, durable delivery).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06

- ``notification_outbox``: one row per notification per receiver, from the grouper's put until
  it is ``sent``, ``failed`` or ``summarised`` (store/outbox.py). ``key`` (unique) is the
  message's idempotency key, ``id`` its put order (the delivery order), ``body`` the JSON the
  receiver gets (``Notification.to_dict()``). Indexes: the unique key; (site, status, receiver,
  id) for what is pending, in order; (site, route, group_key, id) for each group's latest
  message at a restart; (status, created) for retention of sent rows.

Written by hand, not imported from the store: a revision is history.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | None = None
depends_on: str | None = None

_BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "notification_outbox",
        sa.Column("id", _BIG_ID, nullable=False),
        sa.Column("key", sa.String(), nullable=False),
        sa.Column("site", sa.String(), nullable=False),
        sa.Column("route", sa.String(), nullable=False),
        sa.Column("receiver", sa.String(), nullable=False),
        sa.Column("group_key", sa.String(), nullable=False),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("body", sa.JSON(), nullable=False),
        sa.Column("created", _TS, nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt", _TS, nullable=True),
        sa.Column("last_error", sa.String(), nullable=True),
        sa.Column("sent_at", _TS, nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ux_notification_outbox_key", "notification_outbox", ["key"], unique=True)
    op.create_index("ix_notification_outbox_due", "notification_outbox",
                    ["site", "status", "receiver", "id"])
    op.create_index("ix_notification_outbox_group", "notification_outbox",
                    ["site", "route", "group_key", "id"])
    op.create_index("ix_notification_outbox_status_created", "notification_outbox", ["status", "created"])


def downgrade() -> None:
    op.drop_table("notification_outbox")
