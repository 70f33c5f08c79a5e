"""``wardtui serve --notify FILE``: the notifier, its outbox and its delivery, as one service.

The parts (docs/NOTIFICATIONS.md): the :class:`~poller.notify.notifier.Notifier`, an engine
companion, turns transitions into messages per route and group; it hands them to the
:class:`~poller.notify.delivery.Delivery`, whose ``put`` is the outbox's
(:class:`~store.outbox.SqlOutbox`: the history database, a spool of its own beside the
history's while the database fails); the delivery's tasks send them, per receiver and in order.
The notifier starts from the outbox's latest message per group, so a problem notified before a
restart still gets its recovery after it. Loads no screen library (test_layering).

Maintenance windows (issue 15 item 4; docs/MAINTENANCE.md): the notifier's suppressions are a
:class:`~poller.notify.windows.WindowSuppressions` read from the database's
``maintenance_windows`` at start and every ``windows_every`` seconds (30); when they changed the
notifier is told (``suppressions_changed``), so a window added or removed with ``wardtui
maintenance`` takes effect within that period. A database that fails keeps the last windows read.

Acknowledgements (issue 15 item 5): the windows are wrapped in an
:class:`~poller.notify.acks.AckSuppressions`, whose ``acked`` answers from the acknowledgements in
force (``wardtui ack``; store/acks.py), read in the same cycle; the notifier is told when they
changed too. An acknowledged problem is not repeated; its recovery is still sent, and its items
carry who acknowledged it and the note. (A running service is not told at once through its
command path: that is not built; it reads the database every 30 s.)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from wardtui.runtime import Runtime, StartupError

if TYPE_CHECKING:
    from poller.notify.config import NotifyConfig
    from poller.notify.notifier import Notifier

log = logging.getLogger("wardtui.serve")


def read_notify(path: Path, credentials: Path | None) -> NotifyConfig:
    """The notify file, or a StartupError (exit 2) carrying every ``file:line`` problem."""
    from poller.notify.config import NotifyError, load_notify

    try:
        return load_notify(path, credentials)
    except NotifyError as exc:
        raise StartupError(f"the notify file {path} was refused:\n" + str(exc), code=2) from None


def outbox_spool_dir(history_spool: Path) -> Path:
    """The outbox's spool: beside the history's (each spool locks its directory for itself)."""
    return history_spool.with_name(history_spool.name + "-notify")


class NotifyService:
    """The notifier, the outbox and the delivery of one site (see the module's docstring)."""

    name = "notifications"

    def __init__(self, runtime: Runtime, config: NotifyConfig, site: str, *,
                 windows_every: float = 30.0) -> None:
        from poller.notify.acks import AckSuppressions
        from poller.notify.delivery import Delivery
        from poller.notify.receivers import build_receivers
        from poller.notify.windows import WindowSuppressions
        from store.acks import Acknowledgements
        from store.maintenance_windows import MaintenanceWindows
        from store.outbox import SqlOutbox

        self.runtime = runtime
        self.config = config
        self.site = site
        self.outbox = SqlOutbox(runtime.store.db, outbox_spool_dir(runtime.spool_dir), site=site)
        self.delivery = Delivery(self.outbox, build_receivers(config))
        self.notifier: Notifier | None = None  # made at start, from the outbox's latest messages
        self.windows = MaintenanceWindows(runtime.store.db)
        self.suppressions = WindowSuppressions()
        self.acks = Acknowledgements(runtime.store.db)
        # What the notifier asks: the windows' silences and the acknowledgements in force.
        self.quiet = AckSuppressions(self.suppressions)
        self.windows_every = windows_every
        self._failing: set[str] = set()  # what cannot be read now: said once per failure
        self._reader: asyncio.Task[None] | None = None
        self._opened = False

    async def start(self) -> None:
        """Open the outbox (its spool replayed), restore the groups from its latest messages,
        start the receivers' tasks; the notifier runs with the engine from then on."""
        try:
            await self.outbox.open()
        except Exception as exc:
            raise StartupError(f"notifications: cannot open the outbox: {type(exc).__name__}: {exc}",
                               code=1) from None
        self._opened = True
        from poller.notify.notifier import Notifier

        latest = await self.outbox.latest_per_group()
        await self.read_windows()  # before the first transition: planned work never pages
        await self.read_acks()
        engine = self.runtime.engine
        self.notifier = Notifier(engine, self.config.routes, self.delivery.put, site=self.site,
                                 suppressions=self.quiet, latest=latest.values())
        await self.delivery.start()
        engine.gauge_sources.append(self.delivery.gauges)
        engine.add_companion(self.notifier)
        self._reader = asyncio.create_task(self._read_windows_loop(), name="wardtui-maintenance-windows")
        routes = len(self.config.routes)
        log.info("notifications: %d route%s, %d receiver%s; %d message%s waiting in the outbox", routes,
                 "" if routes == 1 else "s", len(self.config.receivers),
                 "" if len(self.config.receivers) == 1 else "s", self.outbox.stats().queued,
                 "" if self.outbox.stats().queued == 1 else "s")

    async def stop(self) -> None:
        """The engine has stopped its companions (the notifier handed over what was due); the
        sends in flight get a few seconds, what is left stays in the outbox for the next run."""
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
            self._reader = None
        if self.notifier is not None:
            self.notifier.stop()
        await self.delivery.stop()
        if self._opened:
            await self.outbox.close()

    async def read_windows(self) -> bool:
        """The maintenance windows in force, from the database; whether they changed."""
        return await self._read("maintenance windows", lambda: self.windows.in_force(datetime.now(UTC)),
                                self.suppressions.replace, lambda: len(self.suppressions.windows))

    async def read_acks(self) -> bool:
        """The acknowledgements in force, from the database; whether they changed."""
        return await self._read("acknowledgements", self.acks.in_force, self.quiet.replace_acks,
                                lambda: len(self.quiet.acks))

    async def _read(self, what: str, fetch: Callable[[], Awaitable[Sequence[Any]]],
                    apply: Callable[[Sequence[Any]], bool], held: Callable[[], int]) -> bool:
        """Read ``what`` with ``fetch`` and ``apply`` it; whether it changed. A database that fails
        keeps what was read before (said once, and once when it answers again)."""
        from sqlalchemy.exc import SQLAlchemyError

        from store.dburl import failure

        try:
            rows = await fetch()
        except (SQLAlchemyError, OSError) as exc:
            if what not in self._failing:
                log.warning("notifications: cannot read the %s (keeping the %d read before): %s", what,
                            held(), failure(exc, self.runtime.store.url))
            self._failing.add(what)
            return False
        if what in self._failing:
            log.warning("notifications: the %s are read again", what)
            self._failing.discard(what)
        changed = apply(rows)
        if changed:
            log.info("notifications: %d %s in force", held(), what)
        return changed

    async def _read_windows_loop(self) -> None:
        while True:
            await asyncio.sleep(self.windows_every)
            windows = await self.read_windows()
            acks = await self.read_acks()
            if (windows or acks) and self.notifier is not None:
                self.notifier.suppressions_changed()
