"""wardtui's persistence layer: table models, the history store and its event writer.

This package knows no screen: it never imports textual, rich or ``wardtui``. It reads
the engine's plain dataclasses (``poller.events``, ``poller.bus``, ``poller.inventory``).
"""

from __future__ import annotations

from store.db import database_url, default_database_path
from store.history import HistoryStore
from store.records import Check, IfRate, IfRollup, Outage, SnmpEvent, SnmpInterface, SnmpLatest, SnmpSystem
from store.writer import StoreWriter

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
