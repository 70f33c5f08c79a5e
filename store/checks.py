"""ICMP in the history store: checks, transitions and outages, written and read, and checks' rollups.

Reads and transitions go through SQLAlchemy Core on both databases. Raw checks go to SQLite
in one raw ``executemany`` on the driver's thread (:meth:`store.database.Database.insert_rows_sqlite`)
and to PostgreSQL with binary COPY (``copy_records_to_table``) into the
day partitions of ``checks``, which :class:`store.database.Database` creates as rows for a new
day arrive. :class:`store.history.HistoryStore` exposes these as methods.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import ARRAY, String, and_, any_, bindparam, func, or_, select, true, update
from sqlalchemy.exc import StatementError
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql import ColumnElement, Select

from poller.events import OUT, CheckResult, State, Transition
from store import partitions
from store.database import Database, sqlite_time
from store.models import checks_table, devices_table, outages_table, transitions_table
from store.records import Check, Outage, Rollup

_devices = devices_table
_transitions = transitions_table
_outages = outages_table
_checks = checks_table
COPY_COLUMNS = ("device_id", "at", "sent", "received", "rtt_ms")
_ROLLUP_FIELDS = ("bucket", "checks", "sent", "received", "rtt_min", "rtt_avg", "rtt_max", "rtt_p95",
                  "jitter_ms", "up_s", "down_s")


# -- writes -----------------------------------------------------------------------------------


async def write_checks(db: Database, results: Sequence[CheckResult]) -> None:
    """Insert ``results``: COPY on PostgreSQL, Core ``executemany`` in one transaction on SQLite."""
    if not results:
        return
    try:
        ids = db.ids()
        records = [(ids[r.device], r.at, r.sent, r.received, r.rtt_ms) for r in results]
    except KeyError:  # a device the inventory never gave: create its row first
        ids = await db.ensure_ids((r.device, r.address) for r in results)
        records = [(ids[r.device], r.at, r.sent, r.received, r.rtt_ms) for r in results]
    # One pass for the time range: these per-row costs are most of the writer's CPU.
    oldest = newest = records[0][1]
    for record in records:
        at = record[1]
        if at < oldest:
            oldest = at
        elif at > newest:
            newest = at
    if db.dialect == "postgresql":
        if any(r[1].tzinfo is None for r in records):
            # COPY bypasses UTCDateTime, and asyncpg would read a naive time as local time.
            raise StatementError("naive datetime: check times need a timezone (UTC)", "COPY checks",
                                 None, ValueError("naive datetime"))
        first, last = partitions.day_of(oldest), partitions.day_of(newest)
        days = {first} if first == last else {partitions.day_of(r[1]) for r in records}
        async with db.engine.connect() as conn:
            await db.ensure_partitions(conn, "checks", days)
            await db.copy_records(conn, "checks", COPY_COLUMNS, records)
    else:
        # A check stored before (its key) is kept once. The times become text on aiosqlite's
        # thread, as the driver draws the rows.
        async with db.writing() as conn:
            await db.insert_rows_sqlite(conn, "checks", COPY_COLUMNS,
                                        ((i, sqlite_time(at), s, r, rtt) for i, at, s, r, rtt in records))
    db.note_written("checks", oldest)


async def write_transitions(db: Database, transitions: Sequence[Transition]) -> None:
    """Record ``transitions`` in order, in one transaction, each with its outage change.

    Written twice (a spool replayed again after a crash), a transition or an outage is
    stored once: a transition's key is its device, time and new state, an outage's its
    device and start. To DOWN opens the outage that starts at ``down_since`` (unless it is
    there, or another one is open: a restart re-detecting a device that was already down
    keeps the original). To UP from DOWN closes the outage it ends, the one that starts at
    its ``down_since``, not whichever is open: replayed late, it must not close a newer one.
    UNKNOWN -> UP closes the open outage that started before it, if any (one written after
    the start read the open outages, e.g. from the spool, or by a DOWN earlier in the same
    burst).

    The outcome is that of writing the transitions one at a time, but in a few statements
    per burst: 1 % of 100,000 devices changing state each second is 1,000 transitions a
    second, and a statement per outage change cost ~0.3 ms each on SQLite. The rows go in one
    ``executemany``; the outage changes in rounds (see :func:`_rounds`), each a select of its
    devices' open outages (and by key of those its UPs name that are not open), then an
    ``executemany`` per kind of change.
    """
    if not transitions:
        return
    ids = await db.ensure_ids((t.device, t.address) for t in transitions)
    async with db.writing() as conn:
        await write_transitions_on(db, conn, ids, transitions)


async def write_transitions_on(db: Database, conn: AsyncConnection, ids: Mapping[str, int],
                               transitions: Sequence[Transition]) -> None:
    """The writes of :func:`write_transitions` on ``conn``, in the transaction the caller opened
    and commits: a fenced one (:meth:`store.fencing.Fencing.fenced`) checks its shards' epochs in
    it first. ``ids`` must name every device of ``transitions`` (:meth:`Database.ensure_ids`)."""
    if not transitions:
        return
    rows = [{"device_id": ids[t.device], "from_state": t.from_state.value, "to_state": t.to_state.value,
             "at": t.at, "down_since": t.down_since, "rtt_ms": t.rtt_ms} for t in transitions]
    await conn.execute(db.upsert(_transitions).on_conflict_do_nothing(), rows)
    for changes in _rounds(ids, transitions):
        await _write_outages(db, conn, changes)


def _rounds(ids: Mapping[str, int], transitions: Sequence[Transition]) -> list[list[tuple[int, Transition]]]:
    """The transitions that change an outage, as (device id, transition), in rounds: round k
    holds the k-th such transition of each device. Within a round a device appears once, so
    its changes can be decided from one read and written together; a device's changes keep
    their order across rounds (it may go DOWN and UP, and DOWN again, within one burst), and
    the devices' outages are independent of each other."""
    rounds: list[list[tuple[int, Transition]]] = []
    seen: dict[int, int] = {}
    for t in transitions:
        if t.to_state in OUT or (t.to_state is State.UP and t.from_state is not State.UP):
            device_id = ids[t.device]
            k = seen.get(device_id, 0)
            seen[device_id] = k + 1
            if k == len(rounds):
                rounds.append([])
            rounds[k].append((device_id, t))
    return rounds


async def _write_outages(db: Database, conn: AsyncConnection, changes: list[tuple[int, Transition]]) -> None:
    """The outage changes of one round (each device once), as writing them one by one would.

    To DOWN or UNREACHABLE (an outage either way, its ``cause`` the state): insert the outage unless
    its key is there or the device has one open. UNREACHABLE -> DOWN (the same outage, by its
    ``down_since``): set its ``down_from`` unless set (or insert it so, as above). To UP from DOWN
    or UNREACHABLE with a ``down_since``: end the open outage that starts then; if that one is
    closed, nothing (this UP is written again); else end the device's open outage if it started by
    then (one opened another way, seeded at a start); else insert the closed outage (its DOWN never
    reached the database: the UP says when it began). The end is never before the start (the wall
    clock stepped back while the device was down: the UP keeps the time the clock gave it, the
    outage never lasts less than nothing). Other UPs (from UNKNOWN, or from DOWN without a
    ``down_since``): end the device's open outage if it started by the UP.
    """
    opened: list[dict[str, Any]] = []
    now_down: list[dict[str, Any]] = []  # unreachable outages that became down, by their key
    closing: list[tuple[int, datetime | None, datetime, str]] = []  # device, start named, end, cause
    for device_id, t in changes:
        if t.to_state in OUT:  # UNREACHABLE -> DOWN: the same outage (its key is there)
            began = t.down_since or t.at
            if t.from_state is State.UNREACHABLE and t.to_state is State.DOWN:  # down from now on
                opened.append({"device_id": device_id, "start": began, "cause": "unreachable",
                               "down_from": t.at})
                now_down.append({"device_id_": device_id, "start_": began, "down_from_": t.at})
            else:
                opened.append({"device_id": device_id, "start": began, "down_from": None,
                               "cause": "unreachable" if t.to_state is State.UNREACHABLE else "down"})
        elif t.from_state in OUT and t.down_since is not None:
            closing.append((device_id, t.down_since, max(t.at, t.down_since),
                            "unreachable" if t.from_state is State.UNREACHABLE else "down"))
        else:
            closing.append((device_id, None, t.at, "down"))
    step = max(1, db.chunk_rows)
    if opened:
        insert = db.upsert(_outages).on_conflict_do_nothing()
        for i in range(0, len(opened), step):
            await conn.execute(insert, opened[i : i + step])
    if now_down:  # written again (a replayed spool): the first time stays
        o = _outages.c
        mark = update(_outages).where(
            o.device_id == bindparam("device_id_"), o.start == bindparam("start_"),
            o.cause == "unreachable", o.down_from.is_(None)).values(down_from=bindparam("down_from_"))
        for i in range(0, len(now_down), step):
            await conn.execute(mark, now_down[i : i + step])
    if not closing:
        return
    o = _outages.c
    open_of: dict[int, tuple[int, datetime]] = {}  # device -> (id, start) of its open outage
    for i in range(0, len(closing), step):  # (the index of open outages)
        open_rows = await conn.execute(select(o.id, o.device_id, o.start).where(
            o.device_id.in_([device_id for device_id, _, _, _ in closing[i : i + step]]), o.end.is_(None)))
        open_of.update((device_id, (id_, start)) for id_, device_id, start in open_rows)
    # The outages named by a start that is not their device's open one (an UP written again,
    # or whose DOWN never reached the database): by their key, as exact lookups (an OR of
    # them: not a scan of each device's outages, nor a lookup per pair of two IN lists).
    named = [(device_id, start) for device_id, start, _, _ in closing
             if start is not None and (device_id not in open_of or open_of[device_id][1] != start)]
    by_key: dict[tuple[int, datetime], tuple[int, datetime | None]] = {}  # (device, start) -> (id, end)
    for i in range(0, len(named), step):
        named_rows = await conn.execute(select(o.id, o.device_id, o.start, o.end).where(or_(*(
            and_(o.device_id == device_id, o.start == start) for device_id, start in named[i : i + step]))))
        by_key.update(((device_id, start), (id_, end)) for id_, device_id, start, end in named_rows)
    for device_id, (id_, began) in open_of.items():
        by_key[(device_id, began)] = (id_, None)
    ended: list[dict[str, Any]] = []
    recorded: list[dict[str, Any]] = []
    for device_id, start, end, cause in closing:
        if start is not None:
            known = by_key.get((device_id, start))
            if known is not None:
                if known[1] is None:
                    ended.append({"outage_id": known[0], "new_end": end})
                continue  # (closed before: this UP is written again)
        current = open_of.get(device_id)
        if current is not None and current[1] <= end:
            ended.append({"outage_id": current[0], "new_end": end})
        elif start is not None:
            recorded.append({"device_id": device_id, "start": start, "end": end, "cause": cause})
    if ended:
        end_by_id = update(_outages).where(o.id == bindparam("outage_id")).values(end=bindparam("new_end"))
        for i in range(0, len(ended), step):
            await conn.execute(end_by_id, ended[i : i + step])
    if recorded:
        insert = db.upsert(_outages).on_conflict_do_nothing()
        for i in range(0, len(recorded), step):
            await conn.execute(insert, recorded[i : i + step])


# -- reads ------------------------------------------------------------------------------------


async def open_outages(db: Database, unreachable: bool = False) -> dict[str, datetime]:
    """Device name -> start of its still-open outage (``unreachable``: of those still
    unreachable, that never became down)."""
    o = _outages.c
    stmt = (
        select(_devices.c.name, o.start)
        .join(_devices, _devices.c.id == o.device_id)
        .where(o.end.is_(None))
    )
    if unreachable:
        stmt = stmt.where(o.cause == "unreachable", o.down_from.is_(None))
    async with db.engine.connect() as conn:
        return {name: start for name, start in (await conn.execute(stmt)).all()}


async def last_states(db: Database, names: Collection[str]) -> dict[str, State]:
    """Each named device's state after its last recorded transition (devices never recorded:
    absent). On PostgreSQL one backward step of the transitions' key index per device (a
    ``LATERAL ... LIMIT 1``): its cost follows the devices named, not their history (a
    ``DISTINCT ON`` over the join read and sorted every transition of the devices named);
    elsewhere a grouped read."""
    if not names:
        return {}
    t, d = _transitions, _devices
    found: dict[str, State] = {}
    step = _names_step(db)
    wanted = sorted(names)
    async with db.engine.connect() as conn:
        for i in range(0, len(wanted), step):
            chunk = wanted[i : i + step]
            if db.dialect == "postgresql":
                last = (select(t.c.to_state).where(t.c.device_id == d.c.id)
                        .order_by(t.c.at.desc(), t.c.id.desc()).limit(1).lateral("last"))
                stmt = select(d.c.name, last.c.to_state).select_from(d.join(last, true())) \
                    .where(_named(db, chunk))
            else:
                latest = (select(t.c.device_id, func.max(t.c.at).label("at")).group_by(t.c.device_id)
                          .subquery())
                stmt = (select(d.c.name, t.c.to_state).join(d, d.c.id == t.c.device_id)
                        .join(latest, and_(latest.c.device_id == t.c.device_id, latest.c.at == t.c.at))
                        .where(d.c.name.in_(chunk)))
            found.update((name, State(state)) for name, state in (await conn.execute(stmt)).all())
    return found


async def transitions_of(db: Database, names: Collection[str], since: datetime) -> list[Transition]:
    """The transitions of the named devices at or after ``since``, in time order (a cluster
    member's takeover reads its shards' flapping windows so; reading every device's would cost
    the site's size: at a site's start, every device has a transition in the window)."""
    t, d = _transitions, _devices
    rows: list[Any] = []
    step = _names_step(db)
    wanted = sorted(names)
    async with db.engine.connect() as conn:
        for i in range(0, len(wanted), step):
            stmt = (select(d.c.name, d.c.address, t.c.from_state, t.c.to_state, t.c.at, t.c.down_since,
                           t.c.rtt_ms, t.c.id).join(d, d.c.id == t.c.device_id)
                    .where(_named(db, wanted[i : i + step]), t.c.at >= since))
            rows.extend((await conn.execute(stmt)).all())
    rows.sort(key=lambda r: (r.at, r.id))
    return [_transition(r) for r in rows]


async def transitions(db: Database, device: str | None = None,
                      since: datetime | None = None) -> list[Transition]:
    """Transitions in time order, of one device or all, at or after ``since``."""
    t, d = _transitions, _devices
    stmt = select(d.c.name, d.c.address, t.c.from_state, t.c.to_state, t.c.at,
                  t.c.down_since, t.c.rtt_ms).join(d, d.c.id == t.c.device_id)
    stmt = _filter(stmt, device, None if since is None else t.c.at >= since).order_by(t.c.at, t.c.id)
    async with db.engine.connect() as conn:
        rows = (await conn.execute(stmt)).all()
    return [_transition(r) for r in rows]


NAMES_PER_READ = 10_000
"""Device names a read binds at once on PostgreSQL (one array parameter; elsewhere an ``IN``
list of ``chunk_rows``): a takeover of 30,000 devices is a few round trips, not dozens."""


def _names_step(db: Database) -> int:
    return NAMES_PER_READ if db.dialect == "postgresql" else max(1, db.chunk_rows)


def _named(db: Database, names: list[str]) -> ColumnElement[bool]:
    """Devices whose name is one of ``names``: ``= ANY(array)`` on PostgreSQL (one parameter),
    ``IN (...)`` elsewhere."""
    if db.dialect == "postgresql":
        return _devices.c.name == any_(bindparam("names", names, type_=ARRAY(String())))
    return _devices.c.name.in_(names)


def _transition(r: Any) -> Transition:
    return Transition(device=r.name, address=r.address, from_state=State(r.from_state),
                      to_state=State(r.to_state), at=r.at, down_since=r.down_since, rtt_ms=r.rtt_ms)


async def outages(db: Database, device: str | None = None,
                  since: datetime | None = None) -> list[Outage]:
    """Outages by start time, of one device or all, still open or ended at or after ``since``."""
    o, d = _outages, _devices
    stmt = select(d.c.name, o.c.start, o.c.end, o.c.cause, o.c.down_from).join(d, d.c.id == o.c.device_id)
    overlaps = None if since is None else o.c.end.is_(None) | (o.c.end >= since)
    stmt = _filter(stmt, device, overlaps).order_by(o.c.start, o.c.id)
    async with db.engine.connect() as conn:
        rows = (await conn.execute(stmt)).all()
    return [Outage(device=r.name, start=r.start, end=r.end, cause=r.cause, down_from=r.down_from)
            for r in rows]


async def checks(db: Database, device: str, since: datetime | None = None,
                 until: datetime | None = None) -> list[Check]:
    """Stored checks of ``device`` in time order, in ``[since, until)``.

    The 24-hour view of one device reads 8,640 rows at a 10 s interval: by the cached device
    id (no join), into named tuples, and on PostgreSQL straight from the driver.
    """
    device_id = db.device_id(device)
    if device_id is None:
        return []
    if db.dialect == "postgresql":
        return await _fetch_checks(db, device, device_id, since, until)
    c = _checks
    stmt = select(c.c.at, c.c.sent, c.c.received, c.c.rtt_ms).where(c.c.device_id == device_id)
    if since is not None:
        stmt = stmt.where(c.c.at >= since)
    if until is not None:
        stmt = stmt.where(c.c.at < until)
    async with db.engine.connect() as conn:
        rows = (await conn.execute(stmt.order_by(c.c.at))).all()
    return [Check(device, *row) for row in rows]


async def _fetch_checks(db: Database, device: str, device_id: int, since: datetime | None,
                        until: datetime | None) -> list[Check]:
    # The driver's own fetch on a pooled connection: asyncpg returns aware UTC datetimes,
    # so SQLAlchemy's row and type processing (as long as the query itself) is not needed.
    sql = "SELECT at, sent, received, rtt_ms FROM checks WHERE device_id = $1"
    args: list[object] = [device_id]
    for op, bound in ((">=", since), ("<", until)):
        if bound is not None:
            args.append(bound)
            sql += f" AND at {op} ${len(args)}"
    async with db.engine.connect() as conn:
        raw = await conn.get_raw_connection()
        rows = await raw.driver_connection.fetch(sql + " ORDER BY at", *args)  # type: ignore[union-attr]
    return [Check(device, r[0], r[1], r[2], r[3]) for r in rows]


async def rollups(db: Database, device: str, tier: str, since: datetime | None = None,
                  until: datetime | None = None) -> list[Rollup]:
    """Rollups of ``device`` in the ``"1m"`` or ``"1h"`` tier, by bucket, for buckets that
    start in ``[since, until)``."""
    r, d = db.table(f"rollup_{tier}"), _devices
    stmt = select(d.c.name, *(r.c[f] for f in _ROLLUP_FIELDS)).join(d, d.c.id == r.c.device_id)
    stmt = _filter(stmt, device, None if since is None else r.c.bucket >= since)
    if until is not None:
        stmt = stmt.where(r.c.bucket < until)
    async with db.engine.connect() as conn:
        rows = (await conn.execute(stmt.order_by(r.c.bucket))).all()
    return [Rollup(r[0], tier, *r[1:]) for r in rows]


async def count_checks(db: Database, device: str | None = None) -> int:
    """How many checks are stored, of one device or all."""
    stmt = select(func.count()).select_from(_checks)
    if device is not None:
        stmt = stmt.join(_devices, _devices.c.id == _checks.c.device_id).where(
            _devices.c.name == device
        )
    async with db.engine.connect() as conn:
        return int(await conn.scalar(stmt) or 0)


def _filter(stmt: Select[Any], device: str | None,
            cond: ColumnElement[bool] | None) -> Select[Any]:
    if device is not None:
        stmt = stmt.where(_devices.c.name == device)
    if cond is not None:
        stmt = stmt.where(cond)
    return stmt
