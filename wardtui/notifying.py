"""``wardtui serve --notify FILE``: the notifier, its outbox and its delivery, as one service.

The parts (docs/NOTIFICATIONS.md): the :class:`~poller.notify.notifier.Notifier`, an engine
companion, turns transitions into messages per route and group; it hands them to the
:class:`~poller.notify.delivery.Delivery`, whose ``put`` is the outbox's
(:class:`~store.outbox.SqlOutbox`: the history database, a spool of its own beside the
history's while the database fails); the delivery's tasks send them, per receiver and in order.
The notifier starts from the outbox's latest message per group, so a problem notified before a
restart still gets its recovery after it. Loads no screen library (test_layering).

Maintenance windows and acknowledgements (issue 15 items 4-5; docs/MAINTENANCE.md): the
runtime reads them (wardtui/quiet_watch.py: at start, every 30 s, and at once when the live
feed's ``ack``, ``maintenance`` or ``quiet`` command asks) and hands each change to this service,
which makes the windows a :class:`~poller.notify.windows.WindowSuppressions` wrapped in an
:class:`~poller.notify.acks.AckSuppressions` (``acked``) and tells the notifier
(``suppressions_changed``). An acknowledged problem is not repeated; its recovery is still
sent, and its items carry who acknowledged it and the note.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from wardtui.runtime import Runtime, StartupError

if TYPE_CHECKING:
    from poller.notify.config import NotifyConfig
    from poller.notify.notifier import Notifier
    from poller.quiet import Quiet

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

    def __init__(self, runtime: Runtime, config: NotifyConfig, site: str) -> None:
        from poller.notify.acks import AckSuppressions
        from poller.notify.delivery import Delivery
        from poller.notify.receivers import build_receivers
        from poller.notify.windows import WindowSuppressions
        from store.outbox import SqlOutbox

        self.runtime = runtime
        self.config = config
        self.site = site
        self.outbox = SqlOutbox(runtime.store.db, outbox_spool_dir(runtime.spool_dir), site=site)
        self.delivery = Delivery(self.outbox, build_receivers(config),
                                 parallel={name: r.parallel for name, r in config.receivers.items()})
        self.notifier: Notifier | None = None  # made at start, from the outbox's latest messages
        self.suppressions = WindowSuppressions()
        # What the notifier asks: the windows' silences and the acknowledgements in force.
        self.quiet = AckSuppressions(self.suppressions)
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
        watch = self.runtime.quiet
        if watch is not None:  # read at the runtime's start: planned work never pages
            self._take(watch.quiet)
            watch.listeners.append(self.quiet_changed)
        engine = self.runtime.engine
        self.notifier = Notifier(engine, self.config.routes, self.delivery.put, site=self.site,
                                 suppressions=self.quiet, latest=latest.values())
        await self.delivery.start()
        engine.gauge_sources.append(self.delivery.gauges)
        engine.add_companion(self.notifier)
        routes = len(self.config.routes)
        log.info("notifications: %d route%s, %d receiver%s; %d message%s waiting in the outbox", routes,
                 "" if routes == 1 else "s", len(self.config.receivers),
                 "" if len(self.config.receivers) == 1 else "s", self.outbox.stats().queued,
                 "" if self.outbox.stats().queued == 1 else "s")

    async def stop(self) -> None:
        """The engine has stopped its companions (the notifier handed over what was due); the
        sends in flight get a few seconds, what is left stays in the outbox for the next run."""
        watch = self.runtime.quiet
        if watch is not None and self.quiet_changed in watch.listeners:
            watch.listeners.remove(self.quiet_changed)
        if self.notifier is not None:
            self.notifier.stop()
        await self.delivery.stop()
        if self._opened:
            await self.outbox.close()

    def _take(self, quiet: Quiet) -> bool:
        windows = self.suppressions.replace(quiet.windows)
        acks = self.quiet.replace_acks(quiet.acks)
        return windows or acks

    def quiet_changed(self, quiet: Quiet) -> None:
        """The runtime read other windows or acknowledgements: the notifier looks again."""
        if self._take(quiet) and self.notifier is not None:
            self.notifier.suppressions_changed()
