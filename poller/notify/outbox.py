"""The outbox: notifications kept per receiver until delivered, and what every outbox promises.

The grouper puts :class:`~poller.notify.model.Notification` objects in (its sink is
:meth:`Outbox.put`); the delivery loop (:mod:`poller.notify.delivery`) takes them out per
receiver, in the order they were put, and records what became of each. :class:`MemoryOutbox`
keeps everything in this process (tests, runs without a database); ``store.outbox.SqlOutbox``
keeps the same state in memory too and writes each change to the history database first (or
to an fsync'd spool while the database is down), so that a restart resumes where it stopped.

A message is ``pending`` until it is ``sent``, ``failed`` (the receiver said retrying cannot
help) or ``summarised`` (its group had too many messages waiting; the newest carries them:
:func:`summarise`). Order is put order: a receiver's message is never passed by a later one.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Literal, Protocol

from poller.notify.model import AlertItem, Notification
from poller.text import clean

OutboxStatus = Literal["pending", "sent", "failed", "summarised"]
GroupKey = tuple[str, tuple[tuple[str, str], ...]]  # (route, group)
ERROR_MAX = 300  # characters of a receiver's error kept: enough for "HTTP 503: <reason>"


def clean_error(text: str, limit: int = ERROR_MAX) -> str:
    """A receiver's error as stored and logged: control characters (newlines and ANSI escapes
    included) replaced, at most ``limit`` characters. The text is the receiver's, not ours: a
    web server's error page may hold anything."""
    text = clean(text)
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


@dataclass(frozen=True, slots=True)
class Pending:
    """A message waiting for its receiver: how many attempts failed, when the next may start
    (None: at once) and why the last one failed."""

    notification: Notification
    attempts: int = 0
    next_attempt: datetime | None = None
    last_error: str | None = None

    @property
    def key(self) -> str:
        return self.notification.key

    def due(self, now: datetime) -> bool:
        return self.next_attempt is None or self.next_attempt <= now


@dataclass(frozen=True, slots=True)
class OutboxStats:
    """What the gauges show: messages waiting, and (since this process started) sent, failed
    and summarised; the creation time of the oldest one waiting."""

    queued: int
    sent: int
    failed: int
    summarised: int
    oldest: datetime | None
    unsaved: int = 0  # changes neither the database nor the spool could take (at risk)
    spooled: int = 0  # changes in the spool, waiting for the database


class Outbox(Protocol):
    """Where notifications wait for their receivers. Every change is durable when the call
    returns (as durable as the implementation is: :class:`MemoryOutbox` is not)."""

    async def put(self, notifications: Sequence[Notification]) -> None:
        """Keep ``notifications`` (pending), in this order; a key already held is ignored."""

    async def due(self, receiver: str, now: datetime, limit: int) -> Sequence[Pending]:
        """The receiver's oldest pending messages in creation order, at most ``limit``; none
        while the oldest is not due (a message is not passed by a later one)."""

    async def pending(self, receiver: str, limit: int) -> Sequence[Pending]:
        """The receiver's oldest pending messages in creation order, due or not."""

    def receivers(self) -> set[str]:
        """Receivers with messages pending."""

    async def mark_sent(self, key: str, at: datetime) -> None: ...

    async def mark_retry(self, key: str, attempts: int, next_at: datetime, error: str) -> None: ...

    async def mark_failed(self, key: str, error: str) -> None: ...

    async def summarise(self, older: Sequence[str], into: Notification) -> None:
        """The ``older`` messages are ``summarised`` into ``into`` (pending, same key as a
        newer message of theirs, whose body it replaces): see :func:`summarise`."""

    def stats(self) -> OutboxStats: ...

    async def latest_per_group(self) -> dict[GroupKey, Notification]:
        """The newest notification of each (route, group), whatever its status: its ``firing``
        items are what was notified and not yet resolved (the grouper restores from it)."""

    def watch(self, callback: Callable[[str], None]) -> None:
        """Call ``callback(receiver)`` after each put of a message for that receiver."""


def summarise(older: Sequence[Notification], newest: Notification) -> Notification:
    """``newest`` standing for ``older`` messages of its group too (all unsent). Each message
    carries the group's full ``firing`` list, so the newest one's is the truth; what ``older``
    ones resolved is carried over into its ``resolved`` (a recovery is never lost), once per
    (device, since). The key stays the newest's; the title says how many it stands for."""
    seen: set[tuple[str, datetime]] = set()
    resolved: list[AlertItem] = []
    for item in [*(i for n in older for i in n.resolved), *newest.resolved]:
        if (item.device, item.since) not in seen:
            seen.add((item.device, item.since))
            resolved.append(item)
    title = newest.title.removesuffix(_title_suffix(newest))
    count = sum(_stands_for(n) for n in (*older, newest))
    return replace(newest, resolved=tuple(resolved), title=f"{title} (summary of {count} messages)")


def _stands_for(n: Notification) -> int:
    """How many messages ``n`` stands for: a summary summarised again counts all of them."""
    suffix = _title_suffix(n)
    return int(suffix[len(" (summary of "):-len(" messages)")]) if suffix else 1


def _title_suffix(n: Notification) -> str:
    _head, sep, tail = n.title.rpartition(" (summary of ")
    if sep and tail.endswith(" messages)") and tail[: -len(" messages)")].isdigit():
        return sep + tail
    return ""


@dataclass(slots=True)
class _Counts:
    sent: int = 0
    failed: int = 0
    summarised: int = 0


class MemoryOutbox:
    """An outbox held in this process only: for tests, embedded runs without a database, and as
    the working set of ``store.outbox.SqlOutbox`` (which writes each change durably first).

    Everything here is synchronous under the hood (``*_now`` methods) and cheap: a dict per
    receiver in put order, so ``due`` never reads a database."""

    def __init__(self) -> None:
        self._queues: dict[str, OrderedDict[str, Pending]] = {}
        self._where: dict[str, str] = {}  # key -> receiver, of pending messages
        self._known: set[str] = set()  # every key held this run (a put of one again is ignored)
        self._latest: dict[GroupKey, Notification] = {}
        self._counts = _Counts()
        self._watchers: list[Callable[[str], None]] = []

    # -- the protocol -----------------------------------------------------------------------

    async def put(self, notifications: Sequence[Notification]) -> None:
        self.put_now(notifications)

    async def due(self, receiver: str, now: datetime, limit: int) -> Sequence[Pending]:
        return self.due_now(receiver, now, limit)

    async def pending(self, receiver: str, limit: int) -> Sequence[Pending]:
        return self.pending_now(receiver, limit)

    def receivers(self) -> set[str]:
        return {name for name, queue in self._queues.items() if queue}

    async def mark_sent(self, key: str, at: datetime) -> None:
        self.settle_now(key, "sent")

    async def mark_retry(self, key: str, attempts: int, next_at: datetime, error: str) -> None:
        self.retry_now(key, attempts, next_at, error)

    async def mark_failed(self, key: str, error: str) -> None:
        self.settle_now(key, "failed")

    async def summarise(self, older: Sequence[str], into: Notification) -> None:
        self.summarise_now(older, into)

    def stats(self) -> OutboxStats:
        oldest = min((next(iter(q.values())).notification.created for q in self._queues.values() if q),
                     default=None)
        return OutboxStats(queued=len(self._where), sent=self._counts.sent, failed=self._counts.failed,
                           summarised=self._counts.summarised, oldest=oldest)

    async def latest_per_group(self) -> dict[GroupKey, Notification]:
        return dict(self._latest)

    def watch(self, callback: Callable[[str], None]) -> None:
        self._watchers.append(callback)

    # -- synchronous parts (SqlOutbox calls them once a change is durable) -------------------

    def put_now(self, notifications: Iterable[Notification], *, wake: bool = True) -> list[Notification]:
        """Add the messages not held yet; return those added."""
        added = [n for n in notifications if n.key not in self._known]
        for n in added:
            self.load(Pending(n))
            self.note_latest(n)
        if wake:
            for receiver in dict.fromkeys(n.receiver for n in added):
                for callback in self._watchers:
                    callback(receiver)
        return added

    def load(self, item: Pending) -> None:
        """Hold a pending message (as read back from a database: attempts kept)."""
        n = item.notification
        self._known.add(n.key)
        self._queues.setdefault(n.receiver, OrderedDict())[n.key] = item
        self._where[n.key] = n.receiver

    def note_latest(self, n: Notification) -> None:
        group = (n.route, n.group)
        held = self._latest.get(group)
        if n.status != "test" and (held is None or n.created >= held.created):
            self._latest[group] = n

    def holds(self, key: str) -> bool:
        return key in self._known

    def due_now(self, receiver: str, now: datetime, limit: int) -> list[Pending]:
        queue = self._queues.get(receiver)
        if not queue or not next(iter(queue.values())).due(now):
            return []
        return self.pending_now(receiver, limit)

    def pending_now(self, receiver: str, limit: int) -> list[Pending]:
        queue = self._queues.get(receiver)
        if not queue:
            return []
        out: list[Pending] = []
        for item in queue.values():
            if len(out) >= limit:
                break
            out.append(item)
        return out

    def get(self, key: str) -> Pending | None:
        receiver = self._where.get(key)
        return None if receiver is None else self._queues[receiver].get(key)

    def retry_now(self, key: str, attempts: int, next_at: datetime, error: str) -> None:
        receiver = self._where.get(key)
        if receiver is not None:
            queue = self._queues[receiver]
            queue[key] = replace(queue[key], attempts=attempts, next_attempt=next_at,
                                 last_error=clean_error(error))

    def settle_now(self, key: str, status: Literal["sent", "failed", "summarised"]) -> None:
        receiver = self._where.pop(key, None)
        if receiver is None:
            return
        del self._queues[receiver][key]
        if status == "sent":
            self._counts.sent += 1
        elif status == "failed":
            self._counts.failed += 1
        else:
            self._counts.summarised += 1

    def summarise_now(self, older: Sequence[str], into: Notification) -> None:
        receiver = self._where.get(into.key)
        if receiver is None:
            return
        queue = self._queues[receiver]
        queue[into.key] = replace(queue[into.key], notification=into)
        for key in older:
            self.settle_now(key, "summarised")
        held = self._latest.get((into.route, into.group))
        if held is not None and held.key == into.key:
            self._latest[(into.route, into.group)] = into


def utcnow() -> datetime:
    return datetime.now(UTC)
