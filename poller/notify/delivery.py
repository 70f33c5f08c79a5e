"""The delivery loop: one task per receiver takes its messages from the outbox, in order, and
retries with backoff; gauges for the engine panel, ``wardtui status`` and Prometheus.

A receiver's messages go out in the order they were put: the oldest pending one is sent, and
until it is sent (or has failed for good) no later one is. A failure the receiver calls
retryable is tried again after a backoff (1 s doubling to 5 min by default, less up to a fifth
at random so that receivers that failed together do not retry together), or after the
receiver's own ``retry_after`` (capped at an hour); one it calls not retryable marks the
message failed at once (counted) and the next goes. Each receiver has its own task, so a
receiver that is down holds up only its own messages, and the engine never waits on any.

``parallel`` > 1 (default 1): up to that many messages of different (route, group)s go to one
receiver side by side, each group's still in order (its next waits until the previous is sent,
and that committed, or failed for good); a message waiting for its retry still holds back every
newer one; failures side by side count once for the backoff. A crash can then repeat one
message per group in flight (each with its key), not only one per receiver.

A receiver down for long: while more than ``summarise_over`` messages of one (route, group)
wait for it, the older ones are summarised into the newest (:func:`~poller.notify.outbox.
summarise`: the newest carries the group's full firing list, and every recovery the older ones
carried), so it gets one message per group when it returns, in order, and no recovery is lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from poller.notify.model import DeliveryError, Notification, Receiver
from poller.notify.outbox import Outbox, Pending, clean_error, summarise, utcnow

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Backoff:
    """Seconds before the next attempt after ``failures`` failures in a row (1, 2, 4 ... 300 by
    default, each less up to ``jitter`` of it at random); a receiver's ``retry_after`` replaces
    it, up to ``retry_after_max``."""

    first: float = 1.0
    factor: float = 2.0
    most: float = 300.0
    jitter: float = 0.2
    retry_after_max: float = 3600.0

    def delay(self, failures: int, retry_after: float | None, draw: Callable[[], float]) -> float:
        if retry_after is not None and retry_after >= 0:
            return min(retry_after, self.retry_after_max)
        base = min(self.most, self.first * self.factor ** max(0, failures - 1))
        return base * (1.0 - self.jitter * draw())


Group = tuple[str, tuple[tuple[str, str], ...]]  # (route, group): the unit of order


def group_of(n: Notification) -> Group:
    return (n.route, n.group)


@dataclass(slots=True)
class _Lane:
    """One receiver's task and what it knows."""

    receiver: Receiver
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    failures: int = 0  # consecutive failed attempts (the backoff's exponent)
    task: asyncio.Task[None] | None = None
    failing_since: datetime | None = None
    sending: dict[Group, str] = field(default_factory=dict)  # the key in flight of each group
    picking: asyncio.Lock = field(default_factory=asyncio.Lock)
    outcomes: int = 0  # sends that counted (succeeded, or failed first): see _retry
    put: bool = True  # messages were put since the last _summarise (only puts can call for one)

class Delivery:
    """Delivers what ``outbox`` holds to ``receivers`` (by name), one task per receiver.

    ``clock`` gives aware UTC wall time (stored with each message: next attempt, sent at);
    ``sleep`` waits seconds (both injectable: tests compress time). A send taking longer than
    ``send_timeout`` counts as a retryable failure. Messages of receivers that are not
    configured any more are marked failed when the delivery starts (their rows keep the body).
    """

    def __init__(self, outbox: Outbox, receivers: Mapping[str, Receiver], *,
                 backoff: Backoff = Backoff(), summarise_over: int = 10, batch: int = 50,
                 parallel: int | Mapping[str, int] = 1,
                 send_timeout: float = 120.0, stop_grace: float = 5.0,
                 clock: Callable[[], datetime] = utcnow,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
                 draw: Callable[[], float] = random.random) -> None:
        self.outbox = outbox
        self.backoff = backoff
        self.summarise_over = max(1, summarise_over)
        self.batch = batch
        # Senders per receiver: one number for all, or by receiver's name (the notify file's
        # ``parallel``; a receiver it does not name: 1).
        self._parallel = ({name: max(1, n) for name, n in parallel.items()} if isinstance(parallel, Mapping)
                          else dict.fromkeys(receivers, max(1, parallel)))
        self.send_timeout = send_timeout
        self.stop_grace = stop_grace
        self.clock = clock
        self.sleep = sleep
        self.draw = draw
        self._lanes = {name: _Lane(receiver) for name, receiver in receivers.items()}
        self._stopping = False
        outbox.watch(self._woken)

    def parallel(self, receiver: str) -> int:
        """Messages of different groups that may be in flight to ``receiver`` at once."""
        return self._parallel.get(receiver, 1)

    # -- running ----------------------------------------------------------------------------

    async def start(self) -> None:
        """Start a task per receiver on the running loop."""
        for name in sorted(self.outbox.receivers() - set(self._lanes)):
            for item in await self.outbox.pending(name, 1_000_000):
                await self.outbox.mark_failed(item.key, f"receiver {name!r} is not configured")
            log.warning("notify: messages for receiver %r, which is no longer configured, are marked "
                        "failed", clean_error(name))
        for name, lane in self._lanes.items():
            if lane.task is None:
                lane.task = asyncio.create_task(self._run(name, lane), name=f"wardtui-notify-{name}")
                lane.task.add_done_callback(_log_crash)

    async def put(self, notifications: Sequence[Notification]) -> None:
        """The grouper's sink: the outbox's put (its watch wakes the receivers' tasks)."""
        await self.outbox.put(notifications)

    async def stop(self) -> None:
        """Let each task finish the send in flight (``stop_grace`` seconds at most, then cancel:
        that message stays pending and is sent again, with its key, after a restart); then
        close the receivers (the delivery owns them)."""
        self._stopping = True
        tasks = [lane.task for lane in self._lanes.values() if lane.task is not None]
        for lane in self._lanes.values():
            lane.wake.set()
        if tasks:
            _done, late = await asyncio.wait(tasks, timeout=self.stop_grace)
            for task in late:
                task.cancel()
            for task in late:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        for lane in self._lanes.values():
            lane.task = None
            with contextlib.suppress(Exception):
                await lane.receiver.aclose()

    def gauges(self) -> dict[str, float]:
        """``notify_queued`` (waiting), ``notify_sent``, ``notify_failed``, ``notify_summarised``
        (since start), ``notify_oldest_s`` (age of the oldest waiting message, 0 if none),
        ``notify_receivers_failing``, ``notify_spooled`` (changes waiting in the spool for the
        database) and ``notify_unsaved`` (changes neither could take: in memory only)."""
        stats = self.outbox.stats()
        oldest = 0.0 if stats.oldest is None else max(0.0, (self.clock() - stats.oldest).total_seconds())
        return {"notify_queued": float(stats.queued), "notify_sent": float(stats.sent),
                "notify_failed": float(stats.failed), "notify_summarised": float(stats.summarised),
                "notify_oldest_s": oldest,
                "notify_receivers_failing": float(sum(1 for lane in self._lanes.values() if lane.failures)),
                "notify_unsaved": float(stats.unsaved), "notify_spooled": float(stats.spooled)}

    def _woken(self, receiver: str) -> None:
        lane = self._lanes.get(receiver)
        if lane is not None:
            lane.put = True
            lane.wake.set()

    # -- one receiver -----------------------------------------------------------------------

    async def _run(self, name: str, lane: _Lane) -> None:
        """``parallel`` senders; each goes from one message straight to the next (no trip through
        the event loop between them: in a storm the loop is busy and each trip waits)."""
        head = await self.outbox.pending(name, 1)
        lane.failures = head[0].attempts if head else 0  # a restart keeps backing off
        senders = [asyncio.create_task(self._sender(name, lane), name=f"wardtui-notify-{name}-{i}")
                   for i in range(self.parallel(name))]
        try:
            await asyncio.gather(*senders)
        finally:  # cancelled (stop_grace passed): so are the sends in flight
            for task in senders:
                task.cancel()
            await asyncio.gather(*senders, return_exceptions=True)

    async def _sender(self, name: str, lane: _Lane) -> None:
        while not self._stopping:
            lane.wake.clear()
            try:
                async with lane.picking:  # summarise and pick one at a time: never a message twice
                    await self._summarise(name, lane)
                    item, wait = await self._next(name, lane)
                    if item is not None:
                        lane.sending[group_of(item.notification)] = item.key
                if item is None:
                    await self._wait(lane, wait)
                    continue
                try:
                    await self._deliver(name, lane, item, lane.outcomes)
                finally:
                    del lane.sending[group_of(item.notification)]
                    if self.parallel(name) > 1:
                        lane.wake.set()  # a sender that waits may take this group's next message
            except Exception as exc:  # an outbox bug: logged, and the sender goes on a second later
                log.error("notify: delivery to %s failed", clean_error(name), exc_info=exc)
                await self._wait(lane, 1.0)

    async def _next(self, name: str, lane: _Lane) -> tuple[Pending | None, float | None]:
        """The message to send now: the oldest pending one of a group with none in flight, unless
        a message before it is not due (a receiver backing off sends nothing newer); else None
        and the seconds until the message that waits is due (None: nothing waits for its time)."""
        now = self.clock()
        wanted = max(self.batch, self.parallel(name) * (self.summarise_over + 1))
        window = await self.outbox.pending(name, wanted)
        seen: set[Group] = set()
        for item in window:
            group = group_of(item.notification)
            if group in seen:
                continue  # an older message of its group waits, or is in flight
            seen.add(group)
            if item.next_attempt is not None and item.next_attempt > now:
                return None, (item.next_attempt - now).total_seconds()
            if group not in lane.sending:
                return item, None
        return None, None

    async def _wait(self, lane: _Lane, seconds: float | None) -> None:
        """Until ``seconds`` pass (None: for ever) or a put for this receiver (or the end of a
        send) wakes it."""
        if seconds is not None and seconds <= 0:
            await asyncio.sleep(0)
            return
        waits: set[asyncio.Future[object]] = {asyncio.ensure_future(_woken(lane.wake))}
        if seconds is not None:
            waits.add(asyncio.ensure_future(self.sleep(seconds)))
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiting in waits:
                waiting.cancel()

    async def _deliver(self, name: str, lane: _Lane, item: Pending, started: int) -> None:
        """Send one message and record what became of it (``started``: the lane's ``outcomes``
        when it went)."""
        try:
            async with asyncio.timeout(self.send_timeout):
                await lane.receiver.send(item.notification)
        except DeliveryError as exc:
            error = clean_error(str(exc) or type(exc).__name__)
            if not exc.retryable:
                await self.outbox.mark_failed(item.key, error)
                log.error("notify: %s refused message %s for good: %s", clean_error(name),
                          clean_error(item.key), error)
                return
            await self._retry(name, lane, item, error, exc.retry_after, started)
            return
        except TimeoutError:
            await self._retry(name, lane, item, f"no answer within {self.send_timeout:g} s", None, started)
            return
        except Exception as exc:  # a receiver's bug: retried like an outage, logged with its traceback
            if not lane.failures:
                log.error("notify: receiver %s raised", clean_error(name), exc_info=exc)
            await self._retry(name, lane, item, clean_error(f"{type(exc).__name__}: {exc}"), None, started)
            return
        await self.outbox.mark_sent(item.key, self.clock())
        if lane.failures:
            log.warning("notify: %s delivers again after %d failed attempts", clean_error(name),
                        lane.failures)
        lane.failures, lane.failing_since = 0, None
        lane.outcomes += 1

    async def _retry(self, name: str, lane: _Lane, item: Pending, error: str,
                     retry_after: float | None, started: int) -> None:
        # Sends that failed side by side (the receiver went down under them) count as one
        # failure of the run: the backoff grows per attempt of the receiver, not per message.
        if started == lane.outcomes:
            lane.failures += 1
            lane.outcomes += 1
        delay = self.backoff.delay(max(1, lane.failures), retry_after, self.draw)
        now = self.clock()
        await self.outbox.mark_retry(item.key, item.attempts + 1, now + timedelta(seconds=delay), error)
        if lane.failing_since is None:
            lane.failing_since = now
            log.warning("notify: %s failed (%s); retrying with backoff", clean_error(name), error)

    async def _summarise(self, name: str, lane: _Lane) -> None:
        """Fold each group's older waiting messages into its newest once more than
        ``summarise_over`` of them wait (test messages are never folded, nor one in flight).
        Only after a put: a group's waiting messages grow in number by puts alone, and a storm's
        hundreds of waiting messages are not read again after every send."""
        if not lane.put:
            return
        lane.put = False
        if len(await self.outbox.pending(name, self.summarise_over + 1)) <= self.summarise_over:
            return
        flying = set(lane.sending.values())
        waiting = await self.outbox.pending(name, 1_000_000)
        groups: dict[Group, list[Notification]] = {}
        for item in waiting:
            n = item.notification
            if n.status != "test" and n.key not in flying:
                groups.setdefault(group_of(n), []).append(n)
        for messages in groups.values():
            if len(messages) > self.summarise_over:
                *older, newest = messages
                await self.outbox.summarise([n.key for n in older], summarise(older, newest))
                log.warning("notify: %d waiting messages for %s summarised into %s", len(older) + 1,
                            clean_error(name), clean_error(newest.key))


async def _woken(event: asyncio.Event) -> object:
    return await event.wait()


def _log_crash(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("notify delivery task %s crashed", task.get_name(), exc_info=task.exception())

