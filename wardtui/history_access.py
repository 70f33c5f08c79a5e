"""The history as the screens read it: each read one hop onto the engine's loop, which owns the store.

The drill-down and the export box receive a :class:`HistoryAccess` in their constructors (the
dashboard hands on the one the app built from its runtime) instead of looking for the app's
runtime and engine thread. It imports neither textual nor rich: it is the core seen from a
screen, and a test can drive it without one.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from store.queries import History, InterfaceHistory, Retention, device_history, interface_history, latest_snmp
from store.records import Outage, SnmpEvent, SnmpLatest
from store.report import GroupBy, Period, Report, availability

if TYPE_CHECKING:
    from store.history import HistoryStore

T = TypeVar("T")


def store_errors() -> tuple[type[BaseException], ...]:
    """Why a read fails: the store never opened, is still opening ("not open"), or the database
    went away. Monitoring goes on regardless; the screens say so instead of failing. A function
    (``except store_errors():``), so that SQLAlchemy is imported when a read fails, not before the
    dashboard's first frame."""
    from sqlalchemy.exc import SQLAlchemyError

    return (RuntimeError, SQLAlchemyError, OSError)


def __getattr__(name: str) -> Any:
    # ``STORE_ERRORS``, as it was: the tuple, its SQLAlchemy imported on first use.
    if name == "STORE_ERRORS":
        return store_errors()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

EVENTS_OVER = timedelta(days=365)  # how far back the drill-down looks for the last reboot


class EngineLoop(Protocol):
    """Runs a coroutine on the engine's loop, awaited from the UI's loop
    (:class:`~wardtui.engine_thread.EngineThread`)."""

    async def run(self, coro: Coroutine[Any, Any, T]) -> T: ...


@dataclass(frozen=True, slots=True)
class Scope:
    """What a report covers: the named ``devices`` (the filtered table), or one ``group``
    such as ``("branch", "b1")``; both ``None`` means every device."""

    devices: tuple[str, ...] | None = None
    group: tuple[GroupBy, str] | None = None

    def describe(self, total: int | None = None) -> str:
        if self.group is not None:
            return f"{self.group[0]} {self.group[1]}"
        if self.devices is None:
            return "every device"
        shown = f"{len(self.devices)}" + (f" of {total}" if total is not None else "")
        return f"{shown} devices shown"


@dataclass(frozen=True, slots=True)
class DeviceHistory:
    """A device's checks or rollups over a span, and its outages."""

    history: History
    outages: list[Outage]


@dataclass(frozen=True, slots=True)
class DeviceSnmp:
    """What the latest SNMP poll of a device left, and its SNMP events of the last
    :data:`EVENTS_OVER` (none read when it was never polled)."""

    latest: SnmpLatest | None
    events: list[SnmpEvent]


class HistoryAccess:
    """The reads the screens make, each run on the engine's loop as one coroutine; ``retention``
    (the run's, or ``None`` for the defaults) picks the tier a span is read from.

    A store that is not open yet, or no longer, raises one of :func:`store_errors`. ``store``
    may be a function that gives it, called at the first read (an attached dashboard's store is
    made after its first frame: wardtui/attached.py)."""

    def __init__(self, store: HistoryStore | Callable[[], HistoryStore], engine: EngineLoop,
                 retention: Retention | None = None) -> None:
        self._store_of: Callable[[], HistoryStore] = store if callable(store) else (lambda: store)
        self._engine = engine
        self.retention = retention

    @property
    def _store(self) -> HistoryStore:
        return self._store_of()

    async def device(self, device: str, span: timedelta) -> DeviceHistory:
        """``device``'s checks or rollups over the last ``span``, and its outages."""
        return await self._engine.run(self._device(device, span))

    async def _device(self, device: str, span: timedelta) -> DeviceHistory:
        now = datetime.now(UTC)
        history = await device_history(self._store, device, now - span, now, retention=self.retention)
        return DeviceHistory(history, await self._store.outages(device))

    async def snmp(self, device: str) -> DeviceSnmp:
        """``device``'s latest SNMP poll and, if there is one, its recent SNMP events."""
        return await self._engine.run(self._snmp(device))

    async def _snmp(self, device: str) -> DeviceSnmp:
        latest = await latest_snmp(self._store, device)
        if latest is None:
            return DeviceSnmp(None, [])
        events = await self._store.snmp_events(device, since=datetime.now(UTC) - EVENTS_OVER)
        return DeviceSnmp(latest, events)

    async def interface(self, device: str, ifindex: int, span: timedelta) -> InterfaceHistory:
        """One interface's rates over the last ``span``, raw or rolled up."""
        return await self._engine.run(self._interface(device, ifindex, span))

    async def _interface(self, device: str, ifindex: int, span: timedelta) -> InterfaceHistory:
        now = datetime.now(UTC)
        return await interface_history(self._store, device, now - span, now, ifindex=ifindex,
                                       retention=self.retention)

    async def availability(self, period: Period, scope: Scope, *, group_by: GroupBy = "device",
                           now: datetime | None = None) -> Report:
        """The availability report of ``period`` over ``scope``."""
        return await self._engine.run(availability(self._store, period, group_by=group_by,
                                                   devices=scope.devices, group=scope.group, now=now))
