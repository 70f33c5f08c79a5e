"""SNMP in the history store: latest system facts and interfaces, interface rates, SNMP events.

One batch of polls is one transaction: the latest tables are upserted (one statement per table
for the whole batch), interfaces a device no longer lists are deleted, and the rates go in by
binary COPY into ``if_rates``' day partitions on PostgreSQL, by ``executemany`` on SQLite. A
batch is all or nothing, so a retry after a failure writes no rate twice. The latest tables
only move forward: a poll older than the stored one (replayed late) leaves them as they are.

It reads and writes through :class:`store.database.Database`, as :mod:`store.checks` does for
ICMP; :class:`store.history.HistoryStore` exposes both as methods.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import asyncpg
from sqlalchemy import BindParameter, Integer, Table, bindparam, case, delete, insert, select
from sqlalchemy.exc import StatementError
from sqlalchemy.ext.asyncio import AsyncConnection

from poller.events import InterfaceChange, InterfaceStat, Reboot, SnmpFailure, SnmpPoll
from store import partitions
from store.database import Database
from store.models import (
    devices_table,
    if_rates_table,
    snmp_events_table,
    snmp_interfaces_table,
    snmp_status_table,
    snmp_system_table,
)
from store.records import IfRate, IfRollup, SnmpEvent, SnmpInterface, SnmpLatest, SnmpStatus, SnmpSystem
from store.spool_records import SnmpEventIn

RATE_COLUMNS = ("device_id", "ifindex", "at", "in_bps", "out_bps")
_IF_FIELDS = ("name", "alias", "admin", "oper", "speed_bps", "in_bps", "out_bps", "in_errors",
              "out_errors", "in_discards", "out_discards", "counters_64")
_IF_ROLLUP_FIELDS = ("bucket", "samples", "in_avg", "in_max", "in_p95", "out_avg", "out_max",
                     "out_p95")
_sys, _ifs, _rates, _events = snmp_system_table, snmp_interfaces_table, if_rates_table, snmp_events_table
_status = snmp_status_table
RateRecord = tuple[int, int, datetime, float | None, float | None]
PollRecord = SnmpPoll | SnmpFailure
ANSWERED = "answered"  # snmp_status.outcome of a poll the agent answered (fully or in part)


# -- writes -----------------------------------------------------------------------------------


async def write_polls(db: Database, polls: Sequence[PollRecord]) -> None:
    """Upsert the latest tables from the newest answered poll of each device, insert every rate,
    and count every poll, answered or failed, in ``snmp_status``."""
    if not polls:
        return
    ids = db.ids()
    if any(p.device not in ids for p in polls):  # a device the inventory never gave
        ids = await db.ensure_ids((p.device, p.address) for p in polls)
    newest: dict[int, SnmpPoll] = {}
    for poll in polls:
        if not isinstance(poll, SnmpPoll):
            continue
        device_id = ids[poll.device]
        held = newest.get(device_id)
        if held is None or poll.at >= held.at:
            newest[device_id] = poll
    systems = [_system_row(d, p) for d, p in newest.items()]
    # One row per (device, ifindex), the last an agent listed: PostgreSQL refuses an upsert
    # that touches a row twice, and that would fail the whole batch for ever.
    interfaces = list({(d, i.ifindex): _interface_row(d, p.at, i)
                       for d, p in newest.items() for i in p.interfaces}.values())
    rates: list[RateRecord] = [
        (ids[p.device], i.ifindex, p.at, i.in_bps, i.out_bps)
        for p in polls if isinstance(p, SnmpPoll)
        for i in p.interfaces if i.in_bps is not None or i.out_bps is not None]
    statuses = _status_rows(ids, polls)
    if db.dialect == "postgresql":
        await _write_postgres(db, systems, interfaces, list(newest), rates, statuses)
    else:
        statements = [(_upsert_latest(db, _sys, ("device_id",)), systems),
                      (_upsert_latest(db, _ifs, ("device_id", "ifindex")), interfaces),
                      (_delete_stale(), [{"b_device": d} for d in newest]),
                      (_upsert_status(db), statuses)]
        async with db.writing() as conn:
            for stmt, rows in statements:
                await _execute_chunked(db, conn, stmt, rows)
            await _execute_chunked(db, conn, db.upsert(_rates).on_conflict_do_nothing(),  # keyed
                                   [dict(zip(RATE_COLUMNS, r, strict=True)) for r in rates])
    if rates:
        db.note_written("if_rates", min(r[2] for r in rates))


def _status_rows(ids: Mapping[str, int], polls: Sequence[PollRecord]) -> list[dict[str, Any]]:
    """One ``snmp_status`` row per device of the batch: its polls counted, its newest kept."""
    rows: dict[int, dict[str, Any]] = {}
    for poll in polls:
        answered = isinstance(poll, SnmpPoll)
        outcome, detail = (poll.reason, _text(poll.detail)) if isinstance(poll, SnmpFailure) \
            else (ANSWERED, None)
        row = rows.setdefault(ids[poll.device], {
            "device_id": ids[poll.device], "polled_at": poll.at, "polls": 0, "answered": 0,
            "outcome": outcome, "detail": detail, "answered_at": None})
        row["polls"] += 1
        if answered:
            row["answered"] += 1
            if row["answered_at"] is None or poll.at > row["answered_at"]:
                row["answered_at"] = poll.at
        if poll.at >= row["polled_at"]:
            row.update(polled_at=poll.at, outcome=outcome, detail=detail)
    return list(rows.values())


def _upsert_status(db: Database) -> Any:
    # Counts add up, unless the batch holds nothing newer than what is stored: then it was
    # written before (a spool replayed again after a crash) and counting it again would double
    # it; batches are written in poll order. The outcome is the newest poll's.
    stmt = db.upsert(_status)
    new, old = stmt.excluded, _status.c
    newer = new.polled_at >= old.polled_at
    later = new.polled_at > old.polled_at
    return stmt.on_conflict_do_update(index_elements=["device_id"], set_={
        "polls": case((later, old.polls + new.polls), else_=old.polls),
        "answered": case((later, old.answered + new.answered), else_=old.answered),
        "outcome": case((newer, new.outcome), else_=old.outcome),
        "detail": case((newer, new.detail), else_=old.detail),
        "polled_at": case((newer, new.polled_at), else_=old.polled_at),
        "answered_at": case((old.answered_at.is_(None), new.answered_at),
                            (new.answered_at > old.answered_at, new.answered_at), else_=old.answered_at)})


# PostgreSQL: each latest table is upserted by one statement over arrays (unnest), bound by
# asyncpg: a third of the time of an executemany through SQLAlchemy, most of it off the loop.
_PG_TYPES = {"device_id": "int4", "ifindex": "int4", "polled_at": "timestamptz", "uptime_s": "float8",
             "speed_bps": "int8", "in_bps": "float8", "out_bps": "float8", "in_errors": "int8",
             "out_errors": "int8", "in_discards": "int8", "out_discards": "int8", "counters_64": "bool",
             "polls": "int8", "answered": "int8", "answered_at": "timestamptz"}


def _pg_upsert(table: Table, keys: tuple[str, ...]) -> tuple[str, list[str]]:
    columns = [c.name for c in table.columns]
    arrays = ", ".join(f"${n}::{_PG_TYPES.get(c, 'text')}[]" for n, c in enumerate(columns, 1))
    updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in columns if c not in keys)
    return (f"INSERT INTO {table.name} ({', '.join(columns)}) SELECT * FROM unnest({arrays}) "
            f"ON CONFLICT ({', '.join(keys)}) DO UPDATE SET {updates} "
            f"WHERE {table.name}.polled_at <= EXCLUDED.polled_at", columns)


_PG_SYSTEM = _pg_upsert(snmp_system_table, ("device_id",))
_PG_INTERFACES = _pg_upsert(snmp_interfaces_table, ("device_id", "ifindex"))
_PG_STATUS_COLUMNS = [c.name for c in snmp_status_table.columns]
_PG_STATUS = (
    f"INSERT INTO snmp_status ({', '.join(_PG_STATUS_COLUMNS)}) SELECT * FROM unnest("
    + ", ".join(f"${n}::{_PG_TYPES.get(c, 'text')}[]" for n, c in enumerate(_PG_STATUS_COLUMNS, 1))
    + ") ON CONFLICT (device_id) DO UPDATE SET "
    "polls = CASE WHEN EXCLUDED.polled_at > snmp_status.polled_at "  # not when written before
    "THEN snmp_status.polls + EXCLUDED.polls ELSE snmp_status.polls END, "
    "answered = CASE WHEN EXCLUDED.polled_at > snmp_status.polled_at "
    "THEN snmp_status.answered + EXCLUDED.answered ELSE snmp_status.answered END, "
    "outcome = CASE WHEN EXCLUDED.polled_at >= snmp_status.polled_at THEN EXCLUDED.outcome "
    "ELSE snmp_status.outcome END, "
    "detail = CASE WHEN EXCLUDED.polled_at >= snmp_status.polled_at THEN EXCLUDED.detail "
    "ELSE snmp_status.detail END, "
    "polled_at = GREATEST(snmp_status.polled_at, EXCLUDED.polled_at), "
    "answered_at = GREATEST(snmp_status.answered_at, EXCLUDED.answered_at)")  # GREATEST skips NULLs
_PG_STALE = ("DELETE FROM snmp_interfaces i USING snmp_system s WHERE i.device_id = ANY($1::int4[]) "
             "AND s.device_id = i.device_id AND i.polled_at < s.polled_at")


async def _write_postgres(db: Database, systems: list[dict[str, Any]],
                          interfaces: list[dict[str, Any]], devices: list[int],
                          rates: list[RateRecord], statuses: list[dict[str, Any]]) -> None:
    if any(r["polled_at"].tzinfo is None for r in (*systems, *statuses)):
        # asyncpg (COPY and arrays) bypasses UTCDateTime, and would read a naive time as local time.
        raise StatementError("naive datetime: poll times need a timezone (UTC)", "COPY if_rates",
                             None, ValueError("naive datetime"))
    async with db.engine.connect() as conn:
        if rates:
            await db.ensure_partitions(conn, "if_rates", {partitions.day_of(r[2]) for r in rates})
        raw = await conn.get_raw_connection()
        driver: Any = raw.driver_connection
        try:
            async with driver.transaction():  # upserts, deletes and COPY: all or nothing
                step = max(1, db.chunk_rows)  # bounds each slice of the loop's time, as for checks
                for (sql, columns), rows in ((_PG_SYSTEM, systems), (_PG_INTERFACES, interfaces),
                                             ((_PG_STATUS, _PG_STATUS_COLUMNS), statuses)):
                    for i in range(0, len(rows), step):
                        chunk = rows[i : i + step]
                        await driver.execute(sql, *([row[c] for row in chunk] for c in columns),
                                             timeout=db.command_timeout)
                await driver.execute(_PG_STALE, devices, timeout=db.command_timeout)
                if rates:
                    await db.copy_records(conn, "if_rates", RATE_COLUMNS, rates)
        except (OSError, TimeoutError, asyncpg.InterfaceError, asyncpg.PostgresConnectionError):
            await conn.invalidate()  # the connection is gone; SQLAlchemy did not see it fail
            raise


async def _execute_chunked(db: Database, conn: AsyncConnection, stmt: Any,
                           rows: list[dict[str, Any]]) -> None:
    step = max(1, db.chunk_rows)
    for i in range(0, len(rows), step):
        await conn.execute(stmt, rows[i : i + step])


def _upsert_latest(db: Database, table: Table, keys: tuple[str, ...]) -> Any:
    stmt = db.upsert(table)
    return stmt.on_conflict_do_update(
        index_elements=list(keys),
        set_={c.name: stmt.excluded[c.name] for c in table.columns if c.name not in keys},
        where=table.c.polled_at <= stmt.excluded.polled_at)  # a late poll never goes back in time


def _delete_stale() -> Any:
    # After the upserts every interface the device's latest poll listed has that poll's time,
    # as its system row has: older rows are interfaces it no longer has, or ones a poll older
    # than the stored one (replayed late) inserted.
    device: BindParameter[int] = bindparam("b_device", type_=Integer())
    latest = select(_sys.c.polled_at).where(_sys.c.device_id == device).scalar_subquery()
    return delete(_ifs).where(_ifs.c.device_id == device, _ifs.c.polled_at < latest)


def _system_row(device_id: int, poll: SnmpPoll) -> dict[str, Any]:
    return {"device_id": device_id, "polled_at": poll.at, "sys_name": _text(poll.sys_name),
            "sys_descr": _text(poll.sys_descr), "sys_object_id": _text(poll.sys_object_id),
            "uptime_s": poll.uptime_s, "missing": ",".join(poll.missing) or None}


def _interface_row(device_id: int, at: datetime, i: InterfaceStat) -> dict[str, Any]:
    return {"device_id": device_id, "ifindex": i.ifindex, "polled_at": at, "name": _text(i.name),
            "alias": _text(i.alias), "admin": _text(i.admin), "oper": _text(i.oper),
            "speed_bps": i.speed_bps, "in_bps": i.in_bps, "out_bps": i.out_bps, "in_errors": i.in_errors,
            "out_errors": i.out_errors, "in_discards": i.in_discards, "out_discards": i.out_discards,
            "counters_64": i.counters_64}


def _text(value: str) -> str:
    # An agent's string may hold NUL, which PostgreSQL's text refuses: the whole batch would be
    # refused (and dropped) with it.
    return value.replace("\x00", "") if "\x00" in value else value


async def write_events(db: Database, events: Sequence[SnmpEventIn]) -> None:
    """Insert ``events`` in one transaction, but not one stored before (the same device, time,
    kind and interface: a spool replayed again). Events are rare, so each is looked up."""
    if not events:
        return
    ids = await db.ensure_ids((e.device, e.address) for e in events)
    rows = [{"device_id": ids[e.device], "at": e.at, **event_fields(e)} for e in events]
    e = _events.c
    async with db.writing() as conn:
        new = [row for row in rows if await conn.scalar(select(e.id).where(
            e.device_id == row["device_id"], e.at == row["at"], e.kind == row["kind"],
            e.ifindex.is_not_distinct_from(row["ifindex"])).limit(1)) is None]
        if new:
            await conn.execute(insert(_events), new)


def event_fields(event: SnmpEventIn) -> dict[str, Any]:
    """kind, ifindex, ifname, from_state, to_state and detail of an event's row."""
    none = {"ifindex": None, "ifname": None, "from_state": None, "to_state": None, "detail": None}
    if isinstance(event, Reboot):
        told = ", told by a trap" if event.source == "trap" else ""
        return {**none, "kind": "reboot", "detail": (
            f"uptime {event.previous_uptime_s:.0f} s -> {event.uptime_s:.0f} s, "
            f"booted at {event.booted_at.isoformat()}{told}")}
    if isinstance(event, InterfaceChange):
        return {**none, "kind": "interface", "ifindex": event.ifindex, "ifname": event.ifname,
                "from_state": event.from_state, "to_state": event.to_state,
                "detail": "told by a trap" if event.source == "trap" else None}
    answering, silent = "answering", "silent"
    return {**none, "kind": "agent", "detail": event.reason,
            "from_state": silent if event.answering else answering,
            "to_state": answering if event.answering else silent}


# -- reads ------------------------------------------------------------------------------------


async def latest(db: Database, device: str) -> SnmpLatest | None:
    """The device's latest system facts and interfaces (by ifindex) and how polling it went;
    None if it was never polled."""
    device_id = db.device_id(device)
    if device_id is None:
        return None
    d = devices_table
    async with db.engine.connect() as conn:
        address = (await conn.execute(select(d.c.address).where(d.c.id == device_id))).scalar_one()
        status = (await conn.execute(select(*(_status.c[f] for f in _STATUS_FIELDS))
                                     .where(_status.c.device_id == device_id))).first()
        system = (await conn.execute(
            select(*(_sys.c[f] for f in ("polled_at", "sys_name", "sys_descr", "sys_object_id",
                                        "uptime_s", "missing")))
            .where(_sys.c.device_id == device_id))).first()
        if system is None and status is None:
            return None
        rows = (await conn.execute(select(_ifs.c.ifindex, *(_ifs.c[f] for f in _IF_FIELDS))
                                   .where(_ifs.c.device_id == device_id)
                                   .order_by(_ifs.c.ifindex))).all()
    facts = None if system is None else SnmpSystem(
        system.sys_name, system.sys_descr, system.sys_object_id, system.uptime_s,
        tuple(system.missing.split(",")) if system.missing else ())
    return SnmpLatest(device, address, None if system is None else system.polled_at, facts,
                      tuple(SnmpInterface(*r) for r in rows),
                      None if status is None else SnmpStatus(*status))


_STATUS_FIELDS = ("polled_at", "polls", "answered", "outcome", "detail", "answered_at")


async def rates(db: Database, device: str, ifindex: int | None = None,
                since: datetime | None = None, until: datetime | None = None) -> list[IfRate]:
    """Stored rates of ``device`` (one interface or all) in ``[since, until)``, by time then ifindex."""
    device_id = db.device_id(device)
    if device_id is None:
        return []
    r = _rates
    stmt = select(r.c.ifindex, r.c.at, r.c.in_bps, r.c.out_bps).where(r.c.device_id == device_id)
    stmt = _window(stmt, r.c.at, since, until)
    if ifindex is not None:
        stmt = stmt.where(r.c.ifindex == ifindex)
    async with db.engine.connect() as conn:
        rows = (await conn.execute(stmt.order_by(r.c.at, r.c.ifindex))).all()
    return [IfRate(device, *row) for row in rows]


async def rollups(db: Database, device: str, tier: str, ifindex: int | None = None,
                  since: datetime | None = None, until: datetime | None = None) -> list[IfRollup]:
    """Interface rollups of ``device`` in the ``"1m"`` or ``"1h"`` tier, for buckets that start
    in ``[since, until)``, by bucket then ifindex."""
    device_id = db.device_id(device)
    if device_id is None:
        return []
    t = db.table(f"if_rollup_{tier}")
    stmt = select(t.c.ifindex, *(t.c[f] for f in _IF_ROLLUP_FIELDS)).where(t.c.device_id == device_id)
    stmt = _window(stmt, t.c.bucket, since, until)
    if ifindex is not None:
        stmt = stmt.where(t.c.ifindex == ifindex)
    async with db.engine.connect() as conn:
        rows = (await conn.execute(stmt.order_by(t.c.bucket, t.c.ifindex))).all()
    return [IfRollup(device, row[0], tier, *row[1:]) for row in rows]


async def events(db: Database, device: str | None = None,
                 since: datetime | None = None) -> list[SnmpEvent]:
    """Stored SNMP events in time order, of one device or all, at or after ``since``."""
    e, d = _events, devices_table
    stmt = select(d.c.name, e.c.at, e.c.kind, e.c.ifindex, e.c.ifname, e.c.from_state, e.c.to_state,
                  e.c.detail).join(d, d.c.id == e.c.device_id)
    if device is not None:
        stmt = stmt.where(d.c.name == device)
    stmt = _window(stmt, e.c.at, since, None)
    async with db.engine.connect() as conn:
        rows = (await conn.execute(stmt.order_by(e.c.at, e.c.id))).all()
    return [SnmpEvent(*row) for row in rows]


def _window(stmt: Any, column: Any, since: datetime | None, until: datetime | None) -> Any:
    if since is not None:
        stmt = stmt.where(column >= since)
    if until is not None:
        stmt = stmt.where(column < until)
    return stmt
