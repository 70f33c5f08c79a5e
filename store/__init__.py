"""wardtui's persistence layer: table models, the history store and its event writer.

This package knows no screen: it never imports textual, rich or ``wardtui``. It reads
the engine's plain dataclasses (``poller.events``, ``poller.bus``, ``poller.inventory``).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from store.db import database_url, default_database_path
    from store.history import HistoryStore
    from store.records import (
        Check,
        IfRate,
        IfRollup,
        Outage,
        SnmpEvent,
        SnmpInterface,
        SnmpLatest,
        SnmpSystem,
    )
    from store.writer import StoreWriter

# Where each name lives: imported on first use (PEP 562), so that importing a light module of
# this package (store.records, store.dburl, store.queries, store.report) loads no SQLAlchemy.
_HOMES = {
    "Check": "store.records",
    "HistoryStore": "store.history",
    "IfRate": "store.records",
    "IfRollup": "store.records",
    "Outage": "store.records",
    "SnmpEvent": "store.records",
    "SnmpInterface": "store.records",
    "SnmpLatest": "store.records",
    "SnmpSystem": "store.records",
    "StoreWriter": "store.writer",
    "database_url": "store.db",
    "default_database_path": "store.db",
}

__all__ = [
    "Check",
    "HistoryStore",
    "IfRate",
    "IfRollup",
    "Outage",
    "SnmpEvent",
    "SnmpInterface",
    "SnmpLatest",
    "SnmpSystem",
    "StoreWriter",
    "database_url",
    "default_database_path",
]


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'store' has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value
    return value
