"""Resolve an inventory's host names in parallel, each within a deadline, saying how far it got.

One after another, with a DNS server that drops queries, 6 names took 61 s of silence (the
C library waits about 10 s per name): about 17 minutes for 100. Here up to :data:`WORKERS`
names are asked at once, a name that has no answer within :data:`TIMEOUT` seconds is given up
(its problem says so), and a line of progress is reported every :data:`PROGRESS_EVERY` seconds
once it has taken that long.

The resolver is a plain blocking function (``socket.getaddrinfo`` cannot be cancelled), so each
runs in a daemon thread: one given up on is left to finish on its own, a fresh thread takes its
place, and it ends when its answer comes (or with the process) without holding anything up.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections import deque
from collections.abc import Callable, Collection
from queue import Empty, SimpleQueue

Resolver = Callable[[str], str]
"""Maps a host name to one IP address string; raises ``OSError`` when it cannot."""

TIMEOUT = 5.0
"""Seconds one name may take. A server that answers does so in milliseconds; one that drops
queries makes the C library retry for about 10 s."""
WORKERS = 32
PROGRESS_EVERY = 2.0


class ResolveError(OSError):
    """A name that gave no address because the resolver failed in an unexpected way."""


class ResolveTimeout(ResolveError):
    """A name with no answer within the deadline."""


def resolve_all(names: Collection[str], resolver: Resolver, *, timeout: float = TIMEOUT,
                workers: int = WORKERS, progress: Callable[[str], None] | None = None,
                progress_every: float | None = None) -> dict[str, str | OSError]:
    """Every name's address, or the error saying why it has none (:class:`ResolveTimeout` when
    it did not answer within ``timeout`` seconds). Returns within about ``timeout`` times the
    number of names divided by ``workers``, whatever the resolver does."""
    every = PROGRESS_EVERY if progress_every is None else progress_every
    return _Resolution(names, resolver, timeout, progress, every).run(max(1, workers))


class _Resolution:
    def __init__(self, names: Collection[str], resolver: Resolver, timeout: float,
                 progress: Callable[[str], None] | None, progress_every: float) -> None:
        self.names = list(dict.fromkeys(names))
        self.resolver = resolver
        self.timeout = timeout
        self.progress = progress
        self.progress_every = progress_every
        self.todo: deque[str] = deque(self.names)
        self.lock = threading.Lock()
        self.asking: dict[str, float] = {}  # name -> when a worker asked, until answered; guarded by lock
        self.answers: dict[str, str | OSError] = {}  # guarded by lock
        self.late = 0  # names given up on; guarded by lock
        self.done: SimpleQueue[str] = SimpleQueue()

    def run(self, workers: int) -> dict[str, str | OSError]:
        if not self.names:
            return {}
        for _ in range(min(workers, len(self.names))):
            self._spawn()
        begun = time.monotonic()
        next_report = begun + self.progress_every
        while True:
            now = time.monotonic()
            self._give_up_on_late(now)
            with self.lock:
                if len(self.answers) == len(self.names):
                    break
            if self.progress is not None and now >= next_report:
                self.progress(self._summary())
                next_report = now + self.progress_every
            wait = min(next_report, self._next_deadline(now)) - now
            with contextlib.suppress(Empty):
                self.done.get(timeout=max(0.001, wait))
        if self.progress is not None and time.monotonic() - begun >= self.progress_every:
            self.progress(f"{self._summary()} in {time.monotonic() - begun:.1f} s")
        return dict(self.answers)

    def _spawn(self) -> None:
        threading.Thread(target=self._work, name="wardtui-resolve", daemon=True).start()

    def _work(self) -> None:
        while True:
            with self.lock:
                if not self.todo:
                    return
                name = self.todo.popleft()
                self.asking[name] = time.monotonic()
            try:
                answer: str | OSError = self.resolver(name)
            except OSError as exc:
                answer = exc
            except Exception as exc:  # a resolver's bug costs its name, not the start
                answer = ResolveError(f"{type(exc).__name__}: {exc}")
            with self.lock:
                late = name in self.answers  # given up on: a fresh worker has taken this one's place
                if not late:
                    self.answers[name] = answer
                    del self.asking[name]
            self.done.put(name)
            if late:
                return

    def _give_up_on_late(self, now: float) -> None:
        with self.lock:
            late = [name for name, at in self.asking.items() if now - at >= self.timeout]
            for name in late:
                del self.asking[name]
                self.answers[name] = ResolveTimeout(f"no answer within {self.timeout:g} s "
                                                    "(is the DNS server answering?)")
            self.late += len(late)
        for _ in late:
            self._spawn()

    def _next_deadline(self, now: float) -> float:
        with self.lock:
            first = min(self.asking.values(), default=now)
        return first + self.timeout

    def _summary(self) -> str:
        with self.lock:
            done, late = len(self.answers), self.late
        count = len(self.names)
        text = f"resolving {count} name{'' if count == 1 else 's'}: {done} done"
        return text + (f", {late} not answering" if late else "")
