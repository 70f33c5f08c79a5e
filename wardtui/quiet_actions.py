"""An operator's acknowledgement or maintenance window, written by the poller that holds the
database: the embedded dashboard's ``a`` and ``m`` (wardtui/runtime.py), and the same keys of an
attached dashboard, which travel to ``wardtui serve`` as the live feed's ``ack`` and
``maintenance`` commands (wardtui/service.py). Each answers as a command does (``{"ok": True,
...}`` or ``{"ok": False, "error": ...}``): the screens show the answer, the service sends it
back. The caller reads the quiet state again at once (wardtui/quiet_watch.py), so every screen
and the notifier see the change within a second. Loads no screen library.

What an operator typed is data: stored as typed (a note is cut at :data:`MAX_NOTE` characters),
escaped wherever it is shown.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any

from poller.text import escaped
from store.database import Database

MAX_NOTE = 1000
"""Characters of a note kept (the CLI takes what it is given; a screen's input is bounded)."""

MIN_WINDOW_S = 60.0
MAX_WINDOW_S = 366 * 86400.0
"""A window from the dashboard lasts a minute to 366 days (as ``wardtui maintenance add``)."""


def _refused(message: str) -> dict[str, Any]:
    return {"ok": False, "error": message}


def _note(note: Any) -> str | None:
    if not isinstance(note, str) or not note.strip():
        return None
    return note[:MAX_NOTE]


async def acknowledge(db: Database, device: Any, note: Any, who: str) -> dict[str, Any]:
    """Acknowledge ``device``'s open outage with ``note``, as ``who``."""
    from sqlalchemy.exc import SQLAlchemyError

    from store.acks import Acknowledgements, AckRefused

    if not isinstance(device, str) or not device:
        return _refused("say which device to acknowledge")
    text = _note(note)
    if text is None:
        return _refused("a note is needed: what is being done, and by whom")
    try:
        ack, state = await Acknowledgements(db).add(device, text, who, datetime.now(UTC))
    except AckRefused as exc:
        return _refused(f"cannot acknowledge {escaped(device)}: {exc}")
    except (SQLAlchemyError, OSError) as exc:
        return _refused(f"the history database did not take it: {type(exc).__name__}")
    return {"ok": True, "id": ack.id, "device": ack.device, "state": state,
            "down_since": ack.down_since.isoformat(), "who": ack.who, "note": ack.note}


async def add_maintenance(db: Database, matchers: Any, duration_s: Any, note: Any,
                          who: str) -> dict[str, Any]:
    """A maintenance window from now for ``duration_s`` seconds over the devices every one of
    ``matchers`` (``["branch=north-b002"]``) matches, with ``note``, as ``who``."""
    from sqlalchemy.exc import SQLAlchemyError

    from poller.notify.windows import Window, parse_matcher
    from store.maintenance_windows import MaintenanceWindows

    if not isinstance(matchers, list) or not matchers or not all(isinstance(m, str) for m in matchers):
        return _refused("say which devices: one or more KEY=VALUE")
    try:
        parsed = tuple(parse_matcher(m) for m in matchers)
    except ValueError as exc:
        return _refused(escaped(str(exc)))
    number = isinstance(duration_s, int | float) and not isinstance(duration_s, bool)
    if not number or not math.isfinite(duration_s) or not MIN_WINDOW_S <= duration_s <= MAX_WINDOW_S:
        return _refused("a window lasts from 1 minute to 366 days")
    text = _note(note)
    if text is None:
        return _refused("a note is needed: why, a change number, who to call")
    now = datetime.now(UTC)
    window = Window(id=0, matchers=parsed, starts_at=now, ends_at=now + timedelta(seconds=duration_s),
                    note=text, created_by=who, created_at=now)
    try:
        added = await MaintenanceWindows(db).add(window)
    except (SQLAlchemyError, OSError) as exc:
        return _refused(f"the history database did not take it: {type(exc).__name__}")
    assert added.ends_at is not None
    return {"ok": True, "id": added.id, "matchers": list(matchers), "ends_at": added.ends_at.isoformat(),
            "who": who, "note": added.note}
