"""SQLModel table models for the history database, shared by the SQLite and PostgreSQL stores."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import BigInteger, Column, Index, Integer, Table, text
from sqlmodel import Field, SQLModel

# SQLite only makes an ``INTEGER PRIMARY KEY`` an alias of the rowid (cheap autoincrement);
# PostgreSQL wants BIGINT for tables that grow by millions of rows a day.
_BIG_ID = BigInteger().with_variant(Integer(), "sqlite")

# Every ``datetime`` field below maps to sqlmodel's ``UTCDateTime``: it rejects naive
# values on write and returns aware UTC values on read, also from SQLite, which stores
# them without an offset. PostgreSQL gets ``timestamptz``.


def _utcnow() -> datetime:
    return datetime.now(UTC)


class DeviceRow(SQLModel, table=True):
    """A device as last seen in the inventory; history rows refer to it by id."""

    __tablename__ = "devices"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(unique=True)
    address: str
    branch: str = ""
    region: str = ""
    type: str = ""
    parent: str | None = None
    first_seen: datetime = Field(default_factory=_utcnow)


class TransitionRow(SQLModel, table=True):
    """One state change of one device."""

    __tablename__ = "transitions"
    __table_args__ = (
        Index("ix_transitions_device_at", "device_id", "at"),
        Index("ix_transitions_at", "at"),
    )

    id: int | None = Field(default=None, sa_column=Column(_BIG_ID, primary_key=True))
    device_id: int = Field(foreign_key="devices.id")
    from_state: str
    to_state: str
    at: datetime
    down_since: datetime | None = None
    rtt_ms: float | None = None


# At most one open outage per device, and finding it is an index lookup. The predicate
# is written as text because ``end`` is an SQL keyword that must stay quoted.
_OPEN = text('"end" IS NULL')


class OutageRow(SQLModel, table=True):
    """A period during which a device was down; ``end`` is NULL while it still is."""

    __tablename__ = "outages"
    __table_args__ = (
        Index("ix_outages_open", "device_id", unique=True,
              sqlite_where=_OPEN, postgresql_where=_OPEN),
        Index("ix_outages_device_start", "device_id", "start"),
        Index("ix_outages_start", "start"),
    )

    id: int | None = Field(default=None, primary_key=True)
    device_id: int = Field(foreign_key="devices.id")
    start: datetime
    end: datetime | None = None


class CheckRow(SQLModel, table=True):
    """One check (sample) of one device.

    On SQLite the surrogate id keeps inserts on the rowid. On PostgreSQL the table is
    partitioned by day on ``at`` (revision 0002 writes that DDL itself): it has no id, no
    foreign key (each would cost a lookup per COPY'd row; devices are never deleted) and a
    BRIN index on ``at`` instead of a B-tree.
    """

    __tablename__ = "checks"
    __table_args__ = (Index("ix_checks_device_at", "device_id", "at"), Index("ix_checks_at", "at"))

    id: int | None = Field(default=None, sa_column=Column(_BIG_ID, primary_key=True))
    device_id: int = Field(foreign_key="devices.id")
    at: datetime
    sent: int
    received: int
    rtt_ms: float | None = None


class _RollupColumns(SQLModel):
    """One device over one bucket (a minute or an hour starting at ``bucket``), from its checks.

    ``rtt_*`` summarise the RTTs of the checks that got a reply (``rtt_p95`` interpolates
    linearly, as PostgreSQL's ``percentile_cont``); ``jitter_ms`` is the mean absolute
    difference between consecutive such RTTs; ``down_s`` is the part of the bucket covered by
    outages and ``up_s`` the rest. A bucket exists only when the device had a check in it.
    """

    device_id: int = Field(primary_key=True)
    bucket: datetime = Field(primary_key=True)
    checks: int
    sent: int
    received: int
    rtt_min: float | None = None
    rtt_avg: float | None = None
    rtt_max: float | None = None
    rtt_p95: float | None = None
    jitter_ms: float | None = None
    up_s: float
    down_s: float


class Rollup1mRow(_RollupColumns, table=True):
    """Per-minute rollups; on PostgreSQL partitioned by day like ``checks``."""

    __tablename__ = "rollup_1m"


class Rollup1hRow(_RollupColumns, table=True):
    """Per-hour rollups, kept by default for as long as the database lives."""

    __tablename__ = "rollup_1h"


class RollupStateRow(SQLModel, table=True):
    """How far each rollup tier is complete: every bucket before ``done_until`` is written."""

    __tablename__ = "rollup_state"

    tier: str = Field(primary_key=True)
    done_until: datetime


# Core handles for bulk statements and joins (mypy does not see SQLModel's ``__table__``).
devices_table: Table = SQLModel.metadata.tables[str(DeviceRow.__tablename__)]
transitions_table: Table = SQLModel.metadata.tables[str(TransitionRow.__tablename__)]
outages_table: Table = SQLModel.metadata.tables[str(OutageRow.__tablename__)]
checks_table: Table = SQLModel.metadata.tables[str(CheckRow.__tablename__)]
rollup_1m_table: Table = SQLModel.metadata.tables[str(Rollup1mRow.__tablename__)]
rollup_1h_table: Table = SQLModel.metadata.tables[str(Rollup1hRow.__tablename__)]
rollup_state_table: Table = SQLModel.metadata.tables[str(RollupStateRow.__tablename__)]
ALL_TABLES: list[Table] = [devices_table, transitions_table, outages_table, checks_table,
                           rollup_1m_table, rollup_1h_table, rollup_state_table]
