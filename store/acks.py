"""Acknowledgements in the history database (``acknowledgements``), SQLite or PostgreSQL.

:class:`Acknowledgements` adds, lists and clears them and hands them over as
:class:`poller.notify.acks.Ack`. An acknowledgement takes one outage: the device's outage open
when it is added, named by its start (``down_since``). It is in force until that outage ends
(the device recovered: read from ``outages``, nothing to update) or until it is removed
(``cleared_at``, ``cleared_why``); either way its row stays, so who took what, when and why is
history, shown in the reports' outage lists.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import and_, insert, select, update
from sqlalchemy.sql import Select

from poller.notify.acks import Ack
from store.database import Database
from store.models import acknowledgements_table as _t
from store.models import devices_table as _d
from store.models import outages_table as _o


class AckRefused(Exception):
    """The device cannot be acknowledged (not known, not down or unreachable now)."""


def _ack(row: Any) -> Ack:
    return Ack(id=row.id, device=row.device, down_since=_aware(row.down_since), note=row.note,
               who=row.who, at=_aware(row.at), cleared_at=_maybe(row.cleared_at),
               cleared_why=row.cleared_why, recovered_at=_maybe(row.recovered_at))


def _select() -> Select[Any]:
    """Acknowledgements with the end of the outage each takes (NULL while it is open)."""
    return (select(_t, _o.c.end.label("recovered_at"), _o.c.id.label("outage_id"))
            .select_from(_t.outerjoin(_d, _d.c.name == _t.c.device)
                         .outerjoin(_o, and_(_o.c.device_id == _d.c.id, _o.c.start == _t.c.down_since))))


class Acknowledgements:
    """The acknowledgements of the database ``db`` (opened and closed by its owner)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def add(self, device: str, note: str, who: str, at: datetime) -> tuple[Ack, str]:
        """Acknowledge ``device``'s open outage; the stored acknowledgement and the outage's
        state now (``down`` or ``unreachable``). :class:`AckRefused` when the history knows no
        such device or no open outage of it."""
        if at.tzinfo is None:
            raise ValueError("acknowledgement times must be timezone-aware")
        async with self.db.writing() as conn:
            device_id = (await conn.execute(select(_d.c.id).where(_d.c.name == device))).scalar_one_or_none()
            if device_id is None:
                raise AckRefused("not in the history (wardtui has never recorded it)")
            open_outage = (select(_o.c.start, _o.c.cause, _o.c.down_from)
                           .where(_o.c.device_id == device_id, _o.c.end.is_(None)))
            outage = (await conn.execute(open_outage)).one_or_none()
            if outage is None:
                raise AckRefused("is not DOWN or UNREACHABLE now (no open outage in the history)")
            values = {"device": device, "down_since": outage.start, "note": note, "who": who,
                      "at": at.astimezone(UTC), "cleared_at": None, "cleared_why": None}
            new_id = (await conn.execute(insert(_t).values(**values).returning(_t.c.id))).scalar_one()
            row = (await conn.execute(_select().where(_t.c.id == new_id))).one()
        state = "unreachable" if outage.cause == "unreachable" and outage.down_from is None else "down"
        return _ack(row), state

    async def get(self, ack_id: int) -> Ack | None:
        async with self.db.engine.connect() as conn:
            row = (await conn.execute(_select().where(_t.c.id == ack_id))).one_or_none()
        return None if row is None else _ack(row)

    async def all(self) -> list[Ack]:
        """Every acknowledgement ever added, in the order they were added."""
        async with self.db.engine.connect() as conn:
            rows = (await conn.execute(_select().order_by(_t.c.id))).all()
        return [_ack(r) for r in rows]

    async def in_force(self) -> list[Ack]:
        """The acknowledgements not removed whose outage is still open."""
        stmt = _select().where(_t.c.cleared_at.is_(None), _o.c.id.is_not(None), _o.c.end.is_(None))
        async with self.db.engine.connect() as conn:
            rows = (await conn.execute(stmt.order_by(_t.c.id))).all()
        return [_ack(r) for r in rows]

    async def of_outages(self, since: datetime | None = None) -> dict[tuple[str, datetime], Ack]:
        """(device, outage start) -> the latest acknowledgement of that outage not removed (the
        reports' outage lists), for outages that began at or after ``since`` or are still open
        or ended after it."""
        stmt = _select().where(_t.c.cleared_at.is_(None))
        if since is not None:
            stmt = stmt.where((_o.c.end.is_(None)) | (_o.c.end >= since) | (_t.c.down_since >= since))
        async with self.db.engine.connect() as conn:
            rows = (await conn.execute(stmt.order_by(_t.c.at, _t.c.id))).all()
        return {(a.device, a.down_since): a for a in map(_ack, rows)}

    async def remove(self, ack_id: int, at: datetime, who: str) -> Ack | None:
        """Clear acknowledgement ``ack_id`` at ``at`` (``why``: removed by ``who``); the
        acknowledgement cleared, or None if there is none in force with that id."""
        why = f"removed by {who}"
        async with self.db.writing() as conn:
            row = (await conn.execute(_select().where(_t.c.id == ack_id))).one_or_none()
            if row is None or not _ack(row).open:
                return None
            await conn.execute(update(_t).where(_t.c.id == ack_id, _t.c.cleared_at.is_(None))
                               .values(cleared_at=at.astimezone(UTC), cleared_why=why))
            row = (await conn.execute(_select().where(_t.c.id == ack_id))).one()
        return _ack(row)


def _aware(at: datetime) -> datetime:
    # SQLite hands back what it stored without an offset: it is UTC.
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


def _maybe(at: datetime | None) -> datetime | None:
    return None if at is None else _aware(at)
