"""The quiet state (poller/quiet.py) as the history database holds it: the maintenance windows not
yet over and the acknowledgements in force, read together."""

from __future__ import annotations

from datetime import datetime

from poller.quiet import Quiet, quiet_of
from store.acks import Acknowledgements
from store.database import Database
from store.maintenance_windows import MaintenanceWindows


async def read_quiet(db: Database, now: datetime) -> Quiet:
    """What keeps the team quiet at ``now``, from ``db`` (SQLAlchemyError/OSError when it fails)."""
    windows = await MaintenanceWindows(db).in_force(now)
    acks = await Acknowledgements(db).in_force()
    return quiet_of(windows, acks, now)
