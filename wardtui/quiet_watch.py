"""The poller's reader of the quiet state (poller/quiet.py): the maintenance windows and
acknowledgements in the history database, read at start, every ``every`` seconds (30), and at
once when :meth:`QuietWatch.read_now` is asked (the live feed's ``quiet`` command, an embedded
dashboard's ``a`` or ``m``). A read that differs from the last one is published on the engine's
bus as :class:`~poller.quiet.QuietChanged` (the dashboard and the live feed take it) and handed
to the listeners (the notifier). A database that fails keeps the last state read: said once,
and once when it answers again. Runs on the engine's loop; loads no screen library.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from datetime import UTC, datetime

from poller.bus import EventBus
from poller.quiet import Quiet, QuietChanged
from store.database import Database

log = logging.getLogger("wardtui.quiet")


class QuietWatch:
    """Reads the quiet state of ``db`` and publishes its changes on ``bus``."""

    def __init__(self, db: Database, bus: EventBus, *, every: float = 30.0, url: str = "") -> None:
        self.db = db
        self.bus = bus
        self.every = every
        self.url = url  # for the failure's message (store/dburl.failure hides the password)
        self.quiet = Quiet()
        self.listeners: list[Callable[[Quiet], None]] = []
        self.reads = 0
        self._failing = False
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()

    async def start(self) -> None:
        """The first read (a database that fails: nothing in force until it answers), then the
        loop."""
        await self.read_now()
        self._task = asyncio.create_task(self._loop(), name="wardtui-quiet")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def wake(self) -> None:
        """Read at once (from the engine's loop; another thread: ``call_soon_threadsafe``)."""
        self._wake.set()

    async def read_now(self, by: str = "") -> bool:
        """Read the database now; whether the state changed (then published). Reads never
        overlap: a second caller waits for the first read and then reads again, so what it
        wrote before asking is seen."""
        from sqlalchemy.exc import SQLAlchemyError

        from store.dburl import failure
        from store.quiet import read_quiet

        async with self._lock:
            try:
                fresh = await read_quiet(self.db, datetime.now(UTC))
            except (SQLAlchemyError, OSError) as exc:
                if not self._failing:
                    log.warning("cannot read the maintenance windows and acknowledgements (keeping the "
                                "%d and %d read before): %s", len(self.quiet.windows), len(self.quiet.acks),
                                failure(exc, self.url))
                self._failing = True
                return False
            self.reads += 1
            if self._failing:
                self._failing = False
                log.warning("the maintenance windows and acknowledgements are read again")
            if fresh == self.quiet:
                self.quiet = fresh  # the same, read later
                return False
            self.quiet = fresh
            log.info("%d maintenance window%s not over, %d acknowledgement%s in force",
                     len(fresh.windows), "" if len(fresh.windows) == 1 else "s",
                     len(fresh.acks), "" if len(fresh.acks) == 1 else "s")
            for listener in self.listeners:
                try:
                    listener(fresh)
                except Exception:  # one listener's bug must not keep the others (or the bus) blind
                    log.exception("a listener of the quiet state failed")
            self.bus.publish(QuietChanged(fresh, by))  # type: ignore[arg-type]
            return True

    async def _loop(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.every)
            self._wake.clear()
            try:
                await self.read_now()
            except Exception:  # a row the store cannot make sense of: said, and read again later
                log.exception("reading the maintenance windows and acknowledgements failed")
