"""Maintenance windows in the history database (``maintenance_windows``), SQLite or PostgreSQL.

Named apart from store/maintenance.py, which is the history's own upkeep (rollups, retention).
:class:`MaintenanceWindows` adds, lists and removes windows and hands them over as
:class:`poller.notify.windows.Window`, which holds the logic (when one is active, whom it
covers). A removed window keeps its row with ``removed_at`` set: who silenced what, and when,
stays on record for the reports; :meth:`MaintenanceWindows.in_force` leaves it out.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import insert, select, update

from poller.notify.windows import Window, matcher_text, over, parse_matcher
from poller.text import escaped
from store.database import Database
from store.models import maintenance_windows_table as _t

log = logging.getLogger(__name__)


def _window(row: Any) -> Window:
    return Window(id=row.id, matchers=tuple(parse_matcher(m) for m in row.matchers),
                  starts_at=row.starts_at, ends_at=row.ends_at, cron=row.cron,
                  duration_s=row.duration_s, tz=row.tz, note=row.note, created_by=row.created_by,
                  created_at=row.created_at, removed_at=row.removed_at)


class MaintenanceWindows:
    """The windows of the database ``db`` (opened and closed by its owner)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def add(self, window: Window) -> Window:
        """Store ``window`` (its ``id`` is ignored); the stored window, with its id. The window
        was validated by :class:`Window` itself (aware times, a cron expression that happens)."""
        values = {
            "matchers": [matcher_text(m) for m in window.matchers],
            "starts_at": _utc(window.starts_at), "ends_at": _utc(window.ends_at),
            "cron": window.cron, "duration_s": window.duration_s, "tz": window.tz,
            "note": window.note, "created_by": window.created_by,
            "created_at": _utc(window.created_at) or datetime.now(UTC), "removed_at": None,
        }
        async with self.db.writing() as conn:
            new_id = (await conn.execute(insert(_t).values(**values).returning(_t.c.id))).scalar_one()
            row = (await conn.execute(select(_t).where(_t.c.id == new_id))).one()
        return _window(row)

    async def get(self, window_id: int) -> Window | None:
        async with self.db.engine.connect() as conn:
            row = (await conn.execute(select(_t).where(_t.c.id == window_id))).one_or_none()
        return None if row is None else _window(row)

    async def all(self) -> list[Window]:
        """Every window ever added, removed ones too, in the order they were added (but for rows
        that are not valid windows, see :meth:`in_force`)."""
        async with self.db.engine.connect() as conn:
            rows = (await conn.execute(select(_t).order_by(_t.c.id))).all()
        return _valid(rows)

    async def in_force(self, now: datetime) -> list[Window]:
        """The windows not removed whose time is not over at ``now`` (active or to come). A row
        that is not a valid window (edited by hand: a bad cron expression, a zone this machine
        does not know) is left out with a warning, not allowed to hide the others."""
        async with self.db.engine.connect() as conn:
            rows = (await conn.execute(select(_t).where(_t.c.removed_at.is_(None)).order_by(_t.c.id))).all()
        return [w for w in _valid(rows) if not over(w, now)]

    async def remove(self, window_id: int, at: datetime) -> Window | None:
        """Mark window ``window_id`` removed at ``at``; the window removed, or None if there is
        no such window or it was already removed."""
        async with self.db.writing() as conn:
            row = (await conn.execute(select(_t).where(_t.c.id == window_id))).one_or_none()
            if row is None or row.removed_at is not None:
                return None
            await conn.execute(update(_t).where(_t.c.id == window_id, _t.c.removed_at.is_(None))
                               .values(removed_at=_utc(at)))
        return replace(_window(row), removed_at=_utc(at))


def _valid(rows: Sequence[Any]) -> list[Window]:
    """The rows that are valid windows; the others (edited by hand) left out with a warning."""
    windows = []
    for row in rows:
        try:
            windows.append(_window(row))
        except (ValueError, TypeError, AttributeError) as exc:
            log.warning("maintenance window %s left out: %s", row.id, escaped(str(exc)))
    return windows


def _utc(at: datetime | None) -> datetime | None:
    return None if at is None else at.astimezone(UTC)

