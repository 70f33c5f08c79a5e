"""SQLModel table models for the history database, shared by the SQLite and PostgreSQL stores."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Column, Index, Integer, String, Table, text
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
    # The inventory's tags as a JSON array (revision 0012): maintenance windows match them in reports.
    tags: str = Field(default="[]", sa_column=Column(String(), nullable=False, server_default="[]"))


class TransitionRow(SQLModel, table=True):
    """One state change of one device."""

    __tablename__ = "transitions"
    __table_args__ = (
        # The key: a transition written twice (a spool replayed again) is stored once.
        Index("ux_transitions_key", "device_id", "at", "to_state", unique=True),
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
    """A period during which a device was down; ``end`` is NULL while it still is. ``cause``:
    ``down``, or ``unreachable`` (it failed behind parents that were all out); ``down_from``: when
    an outage that began unreachable became down (a parent came back, the device did not)."""

    __tablename__ = "outages"
    __table_args__ = (
        Index("ix_outages_open", "device_id", unique=True,
              sqlite_where=_OPEN, postgresql_where=_OPEN),
        Index("ix_outages_device_start", "device_id", "start", unique=True),  # the key
        Index("ix_outages_start", "start"),
    )

    id: int | None = Field(default=None, primary_key=True)
    device_id: int = Field(foreign_key="devices.id")
    start: datetime
    end: datetime | None = None
    # No default on the client side: INSERTs name only the columns given (the migration tests
    # write rows into the schemas of earlier revisions, which have no such column).
    cause: str = Field(default="down", sa_column=Column(String(), nullable=False, server_default="down"))
    down_from: datetime | None = None


class CheckRow(SQLModel, table=True):
    """One check (sample) of one device.

    On SQLite the surrogate id keeps inserts on the rowid. On PostgreSQL the table is
    partitioned by day on ``at`` (revision 0002 writes that DDL itself): it has no id, no
    foreign key (each would cost a lookup per COPY'd row; devices are never deleted) and a
    BRIN index on ``at`` instead of a B-tree.
    """

    __tablename__ = "checks"
    __table_args__ = (Index("ix_checks_device_at", "device_id", "at", unique=True),  # the key
                      Index("ix_checks_at", "at"))

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


# -- SNMP (revision 0003) ------------------------------------------------------------------


class SnmpSystemRow(SQLModel, table=True):
    """A device's system facts as its latest SNMP poll read them (one row per device)."""

    __tablename__ = "snmp_system"

    device_id: int = Field(foreign_key="devices.id", primary_key=True)
    polled_at: datetime
    sys_name: str
    sys_descr: str
    sys_object_id: str
    uptime_s: float | None = None  # None: the agent has no sysUpTime (revision 0004)
    missing: str | None = None  # what the agent lacks, comma-separated ("sysUpTime,interface table")


class SnmpStatusRow(SQLModel, table=True):
    """How SNMP polling of a device went (revision 0004): polls tried and answered, the last one's
    time, outcome ('answered', 'timeout', 'error', 'authentication') and detail (the error, or
    what an answering agent lacks), the last answer's time. One row per device polled."""

    __tablename__ = "snmp_status"

    device_id: int = Field(foreign_key="devices.id", primary_key=True)
    polled_at: datetime
    polls: int = Field(sa_column=Column(BigInteger, nullable=False))
    answered: int = Field(sa_column=Column(BigInteger, nullable=False))
    outcome: str
    detail: str | None = None
    answered_at: datetime | None = None


class SnmpInterfaceRow(SQLModel, table=True):
    """One interface as the device's latest SNMP poll left it; an interface the device no longer
    lists is deleted with that poll. Counters are cumulative, as read (they may pass 2**31)."""

    __tablename__ = "snmp_interfaces"

    device_id: int = Field(foreign_key="devices.id", primary_key=True)
    ifindex: int = Field(primary_key=True)
    polled_at: datetime
    name: str
    alias: str
    admin: str
    oper: str
    speed_bps: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    in_bps: float | None = None
    out_bps: float | None = None
    in_errors: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    out_errors: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    in_discards: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    out_discards: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    counters_64: bool


class IfRateRow(SQLModel, table=True):
    """One interface's traffic rates (bit/s) at one poll; only polls with a rate in a direction.

    Like ``checks``: a rowid alias on SQLite; on PostgreSQL partitioned by day on ``at`` with no
    id, no foreign key and a BRIN index on ``at`` (revision 0003 writes that DDL itself).
    """

    __tablename__ = "if_rates"
    __table_args__ = (Index("ix_if_rates_device_if_at", "device_id", "ifindex", "at", unique=True),
                      Index("ix_if_rates_at", "at"))

    id: int | None = Field(default=None, sa_column=Column(_BIG_ID, primary_key=True))
    device_id: int = Field(foreign_key="devices.id")
    ifindex: int
    at: datetime
    in_bps: float | None = None
    out_bps: float | None = None


class _IfRollupColumns(SQLModel):
    """One interface over one bucket, from its rates: ``samples`` rows; avg, max and p95
    (``percentile_cont(0.95)``, linear interpolation) of each direction over the rows that
    have a rate in it (NULL when none has)."""

    device_id: int = Field(primary_key=True)
    ifindex: int = Field(primary_key=True)
    bucket: datetime = Field(primary_key=True)
    samples: int
    in_avg: float | None = None
    in_max: float | None = None
    in_p95: float | None = None
    out_avg: float | None = None
    out_max: float | None = None
    out_p95: float | None = None


class IfRollup1mRow(_IfRollupColumns, table=True):
    """Per-minute interface rollups; on PostgreSQL partitioned by day like ``rollup_1m``."""

    __tablename__ = "if_rollup_1m"


class IfRollup1hRow(_IfRollupColumns, table=True):
    """Per-hour interface rollups."""

    __tablename__ = "if_rollup_1h"


class SnmpEventRow(SQLModel, table=True):
    """A rare SNMP event: ``kind`` 'reboot' (detail: uptimes and boot time), 'interface' (an
    admin-up interface's oper status changed: ifindex, ifname, from/to) or 'agent' (the agent
    stopped or resumed answering: from/to 'answering'/'silent', detail the reason). Never
    dropped by retention, like outages: a few rows per device and day at most."""

    __tablename__ = "snmp_events"
    __table_args__ = (Index("ix_snmp_events_device_at", "device_id", "at"),
                      Index("ix_snmp_events_at", "at"))

    id: int | None = Field(default=None, sa_column=Column(_BIG_ID, primary_key=True))
    device_id: int = Field(foreign_key="devices.id")
    at: datetime
    kind: str
    ifindex: int | None = None
    ifname: str | None = None
    from_state: str | None = None
    to_state: str | None = None
    detail: str | None = None


class PollerLeaseRow(SQLModel, table=True):
    """Who polls a PostgreSQL history database (store/lease.py): one row, written by the
    poller that holds the lease's advisory lock. A description, not the truth: the lock is
    (a row left by a killed poller stays until the next holder writes over it; ``backend_pid``
    tells whether the session holding the lock wrote it). SQLite describes its holder in the
    lease file beside the database instead; the table stays empty there."""

    __tablename__ = "poller_lease"

    id: int = Field(default=1, sa_column=Column(Integer, primary_key=True, autoincrement=False))
    host: str
    pid: int
    kind: str
    since: datetime
    backend_pid: int | None = None


class NotificationOutboxRow(SQLModel, table=True):
    """A notification for one receiver (store/outbox.py): ``pending`` until ``sent``, ``failed``
    (the receiver refused it for good) or ``summarised`` (folded into a newer message of its
    group). ``key`` is its idempotency key; ``body`` is ``Notification.to_dict()``; ``id`` is the
    order it was put in, which is the order it is delivered in. ``group_key`` is the route's
    group as JSON (``[["branch", "b1"]]``), for each group's latest message after a restart."""

    __tablename__ = "notification_outbox"
    __table_args__ = (
        Index("ux_notification_outbox_key", "key", unique=True),
        Index("ix_notification_outbox_due", "site", "status", "receiver", "id"),
        Index("ix_notification_outbox_group", "site", "route", "group_key", "id"),
        Index("ix_notification_outbox_status_created", "status", "created"),
    )

    id: int | None = Field(default=None, sa_column=Column(_BIG_ID, primary_key=True))
    key: str
    site: str
    route: str
    receiver: str
    group_key: str
    status: str
    body: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    created: datetime
    attempts: int = 0
    next_attempt: datetime | None = None
    last_error: str | None = None
    sent_at: datetime | None = None


class MaintenanceWindowRow(SQLModel, table=True):
    """A maintenance window (store/maintenance_windows.py, poller/notify/windows.py): devices
    every matcher matches are polled and recorded but not notified while it is active.
    ``matchers``: a JSON list of ``"key=value"`` (device, branch, region, type, tag). One-off:
    ``starts_at`` to ``ends_at``; recurring: ``cron`` read in ``tz`` (IANA), each occurrence
    lasting ``duration_s``. ``created_by`` is the login name of whoever added it; a removed
    window keeps its row (``removed_at``): who silenced what, and when, stays on record."""

    __tablename__ = "maintenance_windows"
    __table_args__ = (Index("ix_maintenance_windows_removed_at", "removed_at"),)

    id: int | None = Field(default=None, primary_key=True)
    matchers: list[str] = Field(sa_column=Column(JSON, nullable=False))
    starts_at: datetime | None = None
    ends_at: datetime | None = None
    cron: str | None = None
    duration_s: float | None = None
    tz: str | None = None
    note: str
    created_by: str
    created_at: datetime
    removed_at: datetime | None = None


class AcknowledgementRow(SQLModel, table=True):
    """Someone took a device's problem (store/acks.py, poller/notify/acks.py): the outage it
    acknowledges is the device's (``device``, by name) that began at ``down_since``, so an
    acknowledgement holds until that outage ends and a later outage of the device is not
    acknowledged. ``who``: the login name; ``cleared_at``/``cleared_why`` when it was removed
    before the device recovered (the row stays: who took what, and when, is history)."""

    __tablename__ = "acknowledgements"
    __table_args__ = (Index("ix_acknowledgements_device_since", "device", "down_since"),
                      Index("ix_acknowledgements_cleared_at", "cleared_at"))

    id: int | None = Field(default=None, primary_key=True)
    device: str
    down_since: datetime
    note: str
    who: str
    at: datetime
    cleared_at: datetime | None = None
    cleared_why: str | None = None


class ShardEpochRow(SQLModel, table=True):
    """A cluster shard's fencing epoch (store/fencing.py, revision 0011): raised by one at every
    takeover of (``site``, ``shard``) by ``owner`` (a poller's description, as it gave it) at
    ``taken_at`` (the server's clock). A write of the shard's history is committed only in a
    transaction that found this row at the writer's epoch (and kept it there until its commit).
    PostgreSQL only: the table is empty on SQLite, which cannot run a cluster."""

    __tablename__ = "shard_epochs"

    site: str = Field(primary_key=True)
    shard: int = Field(sa_column=Column(Integer, primary_key=True, autoincrement=False))
    epoch: int = Field(sa_column=Column(BigInteger, nullable=False))
    owner: str
    taken_at: datetime


# Core handles for bulk statements and joins (mypy does not see SQLModel's ``__table__``).
devices_table: Table = SQLModel.metadata.tables[str(DeviceRow.__tablename__)]
transitions_table: Table = SQLModel.metadata.tables[str(TransitionRow.__tablename__)]
outages_table: Table = SQLModel.metadata.tables[str(OutageRow.__tablename__)]
checks_table: Table = SQLModel.metadata.tables[str(CheckRow.__tablename__)]
rollup_1m_table: Table = SQLModel.metadata.tables[str(Rollup1mRow.__tablename__)]
rollup_1h_table: Table = SQLModel.metadata.tables[str(Rollup1hRow.__tablename__)]
rollup_state_table: Table = SQLModel.metadata.tables[str(RollupStateRow.__tablename__)]
snmp_system_table: Table = SQLModel.metadata.tables[str(SnmpSystemRow.__tablename__)]
snmp_interfaces_table: Table = SQLModel.metadata.tables[str(SnmpInterfaceRow.__tablename__)]
if_rates_table: Table = SQLModel.metadata.tables[str(IfRateRow.__tablename__)]
if_rollup_1m_table: Table = SQLModel.metadata.tables[str(IfRollup1mRow.__tablename__)]
if_rollup_1h_table: Table = SQLModel.metadata.tables[str(IfRollup1hRow.__tablename__)]
snmp_events_table: Table = SQLModel.metadata.tables[str(SnmpEventRow.__tablename__)]
snmp_status_table: Table = SQLModel.metadata.tables[str(SnmpStatusRow.__tablename__)]
poller_lease_table: Table = SQLModel.metadata.tables[str(PollerLeaseRow.__tablename__)]
notification_outbox_table: Table = SQLModel.metadata.tables[str(NotificationOutboxRow.__tablename__)]
maintenance_windows_table: Table = SQLModel.metadata.tables[str(MaintenanceWindowRow.__tablename__)]
acknowledgements_table: Table = SQLModel.metadata.tables[str(AcknowledgementRow.__tablename__)]
shard_epochs_table: Table = SQLModel.metadata.tables[str(ShardEpochRow.__tablename__)]
ALL_TABLES: list[Table] = [devices_table, transitions_table, outages_table, checks_table,
                           rollup_1m_table, rollup_1h_table, rollup_state_table,
                           snmp_system_table, snmp_interfaces_table, if_rates_table,
                           if_rollup_1m_table, if_rollup_1h_table, snmp_events_table,
                           snmp_status_table, poller_lease_table, notification_outbox_table,
                           maintenance_windows_table, acknowledgements_table, shard_epochs_table]
