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

    The surrogate id keeps SQLite inserts on the rowid; a PostgreSQL store that
    partitions this table by ``at`` will emit its own DDL with a key that includes
    ``at``, using the same columns.
    """

    __tablename__ = "checks"
    __table_args__ = (Index("ix_checks_device_at", "device_id", "at"),)

    id: int | None = Field(default=None, sa_column=Column(_BIG_ID, primary_key=True))
    device_id: int = Field(foreign_key="devices.id")
    at: datetime
    sent: int
    received: int
    rtt_ms: float | None = None


# Core handles for bulk statements and joins (mypy does not see SQLModel's ``__table__``).
devices_table: Table = SQLModel.metadata.tables[str(DeviceRow.__tablename__)]
transitions_table: Table = SQLModel.metadata.tables[str(TransitionRow.__tablename__)]
outages_table: Table = SQLModel.metadata.tables[str(OutageRow.__tablename__)]
checks_table: Table = SQLModel.metadata.tables[str(CheckRow.__tablename__)]
ALL_TABLES: list[Table] = [devices_table, transitions_table, outages_table, checks_table]
