"""Runs the engine, its prober and the store writer on their own thread and event loop.

Why: Textual repaints on the UI loop (50-150 ms for a busy device table were measured),
and anything sharing that loop waits for it: scheduling lag grew by as much and, at tens
of thousands of devices, checks would be skipped. On their own loop the pollers get the
interpreter back every switch interval (5 ms by default, 1 ms as the dashboard's process
policy sets it: wardtui/process.py) however long a repaint takes. RTT never
depended on it (kernel timestamps), but due -> sent lag and skipped checks did.

Everything the engine owns is touched only from this thread, except what is safe to read
from another: the bus subscriptions (deques, one producer and one consumer), tracker
fields (plain values, windows copied as tuples) and ``last_gauges``.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine
from concurrent.futures import Future
from typing import Any, TypeVar

T = TypeVar("T")


class EngineThread:
    """A daemon thread running one asyncio loop until :meth:`close`."""

    def __init__(self, name: str = "wardtui-engine") -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_forever()
        finally:
            self.loop.close()

    def submit(self, coro: Coroutine[Any, Any, T]) -> Future[T]:
        """Run ``coro`` on the engine loop; the returned future is safe to wait on anywhere."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    async def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Await ``coro`` from another event loop (the UI's) while it runs on the engine loop."""
        return await asyncio.wrap_future(self.submit(coro))

    def call(self, callback: Callable[[], object]) -> None:
        """Call ``callback`` soon on the engine loop (thread-safe)."""
        self.loop.call_soon_threadsafe(callback)

    def close(self, timeout: float = 5.0) -> None:
        """Stop the loop once what is queued has run; wait for the thread."""
        if self.loop.is_closed():
            return
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout)
