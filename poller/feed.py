"""The live feed on Redis: the service publishes (:class:`Publisher`), viewers follow (:class:`LiveFeed`).

The wire format is :mod:`poller.live`. What each side promises:

- The service never waits for Redis on the engine's behalf: the publisher is one more consumer
  of the engine's bus. While Redis is down, slow or restarted empty, polling and history go on;
  the publisher says so once in the log, retries with backoff, and when Redis answers again
  writes the inventory and a full snapshot before anything else.
- A viewer starts from the snapshot and follows the stream from the ID the snapshot covers.
  Events are numbered (``n``) per service run: a gap means the viewer fell behind the stream's
  trimmed end, and it reloads the snapshot. It never drifts.
- Operator commands go through a stream of their own and are answered on a reply key, and
  what they cause (a check) reaches every viewer on the event stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import math
import os
import re
import socket
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import count, repeat
from operator import attrgetter
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError, ResponseError

from poller.bus import EventBus, Subscription
from poller.engine import Engine
from poller.events import (
    OUT,
    CheckResult,
    Event,
    Gauges,
    SnmpAgentChange,
    SnmpFailure,
    SnmpPoll,
)
from poller.inventory import Device
from poller.jsonl import event_record
from poller.live import (
    COMMANDS_MAXLEN,
    DELTA_TTL,
    EVENTS_PER_ENTRY,
    HEARTBEAT_TTL,
    LIVE_AGE,
    STREAM_MAXLEN,
    STREAMED,
    Columns,
    DeltaHeader,
    FeedFormatError,
    Keys,
    LiveRows,
    LiveTracker,
    Snapshot,
    apply_delta,
    bitmap,
    decode_event,
    decode_inventory,
    decode_snapshot,
    encode_delta,
    encode_entry,
    encode_event,
    encode_inventory,
    encode_snapshot,
    entry_events,
    peek_delta,
    peek_snapshot,
)
from poller.live import REDIS_ENV as REDIS_ENV  # the variable the viewers and commands read
from poller.operator import login_name
from poller.quiet import Quiet, QuietChanged, QuietFormatError, quiet_from_json
from poller.redis_url import CONNECT_TIMEOUT as CONNECT_TIMEOUT
from poller.redis_url import FeedUrlError as FeedUrlError
from poller.redis_url import client_for as client_for
from poller.redis_url import describe_error as describe_error
from poller.redis_url import shown_url as shown_url
from poller.text import escaped

log = logging.getLogger("wardtui.feed")
_name_of = attrgetter("name")

BACKOFF = (0.5, 1.0, 2.0, 4.0, 5.0)
"""Seconds between reconnection attempts, the last repeated."""
COMMAND_TIMEOUT = 10.0
"""Seconds a viewer waits for the service to answer a command."""
COMMAND_MAX_AGE = 30.0
"""A command older than this when the service reads it is answered "expired", not run."""
REPLY_TTL = 60
MAX_COMMANDS = 64
"""Commands run at once at most; beyond, the command stream's entries are read and dropped
(counted in ``feed_commands_refused``): anyone who can write to Redis can flood it."""
VIEWER_TTL = 15.0
"""A viewer that has not said it is attached for this long is not counted."""
READ_PACE = 0.06
"""Seconds a viewer lets pass after a read of the stream that brought entries before it reads
again: at 1,000 transitions a second the service sends up to 50 entries a second
(:data:`PUBLISH_PACE`), and one read each cost a viewer more than decoding what they carried.
What it adds to an event's latency is at most this (measured at 1,000 transitions/s, one
event an entry then: 40 ms -> 60 ms took a viewer from 4.0 to 3.5 % of a core, stream-to-viewer
p99 48 -> 66 ms)."""
PUBLISH_PACE = 0.02
"""Seconds the publisher lets pass after sending events before it sends more: at most ~50
entries a second, each carrying what came meanwhile (at 1,000 transitions a second, ~20 events).
What it adds to an event's latency is at most this."""
REFRESH_AFTER = 0.1
"""Seconds after the service's snapshot (by its heartbeat's age) a viewer reads it."""
REFRESH_RETRY = 0.1
"""Seconds before a viewer reads the snapshot again when the one it read could not be taken
yet (the one it had, or one covering events it had not read)."""
REFRESH_LATE = 0.3
"""Seconds between a viewer's reads of the snapshot while the service is late writing the next."""


# -- URLs: poller/redis_url.py makes every client ------------------------------------------------


def _cut(text: str, limit: int = 64) -> str:
    """``text`` from outside, escaped and cut to about ``limit`` characters for a log line."""
    return escaped(text[:limit]) + ("..." if len(text) > limit else "")


def _refusal_kind(exc: ResponseError) -> str:
    """What Redis said, without the command redis-py quotes before it (its IDs change)."""
    return str(exc).rpartition("caused error: ")[2]


# -- the service's heartbeat --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ServiceInfo:
    """Who publishes a site: the heartbeat's content."""

    host: str
    pid: int
    version: str
    started: str  # ISO, UTC
    devices: int = 0
    snapshot_at: str | None = None
    heartbeat_age: float | None = None  # seconds since written, by Redis's clock (its key's TTL)
    poller: str | None = None  # a cluster member's id (serve --cluster): its feed is one of several
    lease_ttl: float | None = None  # ... and its shard leases' TTL (a lease's age = TTL - PTTL)
    site_devices: int | None = None  # ... and the devices of the whole site (every member's)

    @classmethod
    def here(cls, version: str, devices: int, poller: str | None = None,
             lease_ttl: float | None = None) -> ServiceInfo:
        return cls(socket.gethostname(), os.getpid(), version,
                   datetime.now(UTC).isoformat(timespec="seconds"), devices, poller=poller,
                   lease_ttl=lease_ttl)

    def to_json(self) -> str:
        doc: dict[str, Any] = {"host": self.host, "pid": self.pid, "version": self.version,
                               "started": self.started, "devices": self.devices,
                               "snapshot_at": self.snapshot_at}
        if self.poller is not None:
            doc.update(poller=self.poller, lease_ttl=self.lease_ttl, site_devices=self.site_devices)
        return json.dumps(doc)

    @classmethod
    def from_json(cls, raw: bytes | str) -> ServiceInfo:
        """Raises ValueError, KeyError or TypeError for a heartbeat this wardtui cannot use (its
        snapshot time is parsed here: :meth:`age` must not fail later)."""
        doc = json.loads(raw)
        snapshot_at = doc.get("snapshot_at")
        if snapshot_at is not None and datetime.fromisoformat(snapshot_at).tzinfo is None:
            raise ValueError("snapshot_at without a time zone")
        poller, ttl, site = doc.get("poller"), doc.get("lease_ttl"), doc.get("site_devices")
        return cls(str(doc["host"]), int(doc["pid"]), str(doc["version"]), str(doc["started"]),
                   int(doc.get("devices") or 0), snapshot_at,
                   poller=None if poller is None else str(poller),
                   lease_ttl=float(ttl) if type(ttl) in (int, float) else None,
                   site_devices=site if type(site) is int else None)

    def age(self, now: datetime | None = None) -> float | None:
        """Seconds since the last snapshot this service published (None: none yet)."""
        if not self.snapshot_at:
            return None
        at = datetime.fromisoformat(self.snapshot_at)
        return ((now or datetime.now(UTC)) - at).total_seconds()


async def read_service(client: Redis, keys: Keys) -> ServiceInfo | None:
    """The site's heartbeat, or None when no service publishes it (or it cannot be read). Its
    age is read from the key's TTL (rewritten with :data:`HEARTBEAT_TTL` each second): Redis's
    clock, so a viewer whose clock is off still knows whether the service is live."""
    pipe = client.pipeline(transaction=True)
    pipe.get(keys.service)
    pipe.pttl(keys.service)
    raw, ttl_ms = await pipe.execute()
    return _service_info(raw, ttl_ms)


def _service_info(raw: bytes | None, ttl_ms: Any) -> ServiceInfo | None:
    """The heartbeat ``raw`` with its key's TTL (PTTL) read with it."""
    if raw is None:
        return None
    try:
        info = ServiceInfo.from_json(raw)
    except (ValueError, KeyError, TypeError, AttributeError, RecursionError):
        return None
    if isinstance(ttl_ms, int) and ttl_ms > 0:
        info = dataclasses.replace(info, heartbeat_age=max(0.0, HEARTBEAT_TTL - ttl_ms / 1000))
    return info


def is_live(info: ServiceInfo | None) -> bool:
    """A service that wrote its heartbeat within :data:`LIVE_AGE` seconds (by Redis's clock when
    known, else by the snapshot time it wrote)."""
    if info is None:
        return False
    age = info.heartbeat_age if info.heartbeat_age is not None else info.age()
    return age is not None and age <= LIVE_AGE


# -- the service side ---------------------------------------------------------------------------


class StreamIds:
    """Stream entry IDs made by the publisher (``ms-seq``), so a snapshot can name the last one it
    covers before the transaction that writes both is sent."""

    def __init__(self) -> None:
        self.ms = 0
        self.seq = 0

    def next(self) -> str:
        ms = max(int(time.time() * 1000), self.ms)
        self.seq = self.seq + 1 if ms == self.ms else 0
        self.ms = ms
        return f"{ms}-{self.seq}"

    def at_least(self, stream_id: bytes | str) -> None:
        """Never go back behind ``stream_id`` (the stream's last entry, after a restart)."""
        text = stream_id.decode() if isinstance(stream_id, bytes) else stream_id
        ms_text, _, seq_text = text.partition("-")
        ms, seq = int(ms_text), int(seq_text or 0)
        if (ms, seq) > (self.ms, self.seq):
            self.ms, self.seq = ms, seq

    @property
    def last(self) -> str:
        return f"{self.ms}-{self.seq}"


Handler = Callable[["Publisher", dict[str, Any]], Awaitable[dict[str, Any]]]


@dataclass
class FeedStats:
    """What the publisher counts; the engine's gauges show them (``feed_*``)."""

    up: bool = False
    events: int = 0
    events_lost: int = 0  # streamed events dropped while Redis was away
    snapshots: int = 0
    snapshot_bytes: int = 0
    snapshot_ms: float = 0.0
    losses: int = 0
    commands: int = 0
    commands_refused: int = 0
    viewers: int = 0


class Publisher:
    """Publishes an engine's state and events to a site on Redis; a companion of the engine."""

    def __init__(self, engine: Engine, url: str, keys: Keys, info: ServiceInfo,
                 client_factory: Callable[[], Redis] | None = None, period: float = 1.0) -> None:
        self.engine = engine
        self.url = url
        self.keys = keys
        self.info = info
        self.period = period
        self._factory = client_factory or (lambda: client_for(url))
        self.stats = FeedStats()
        self.handlers: dict[str, Handler] = {"probe": _probe_command}
        self._client: Redis | None = None
        self._sub: Subscription | None = None
        self._stopping = asyncio.Event()
        self._ids = StreamIds()
        self._n = 0  # events numbered per run: a viewer sees a gap as a trim
        self._sent_id, self._sent_n = "0-0", 0  # the last entry sent to the stream, and its number
        self._run = info.started
        self._pending: list[str] = []  # events' JSON not yet sent: numbered up to self._n
        self._sent_at = 0.0  # monotonic time of the last entries sent
        self._rows: list[Any] = []
        self._index: dict[str, int] = {}
        self._columns = Columns.empty(0)
        self._dirty: set[int] = set()
        self._full = True  # the next snapshot has no "changed" list
        self._seq = 0
        self._inventory_id = ""
        self._inventory_blob = b""
        self._inventory_version: object = None
        self._inventory_written = False
        self._snmp: dict[int, dict[str, Any]] = {}
        self._snmp_json = b"{}"
        self._snmp_dirty = False
        self._snmp_built = 0.0
        # A cluster member's: how many devices the whole site has (its heartbeat says it, so that
        # a reader of every member's snapshot knows when it has them all).
        self.site_devices: Callable[[], int] | None = None
        # The quiet state (poller/quiet.py): where it is read at the start (the runtime's, set by
        # wardtui/service.py), then each QuietChanged; written with the next snapshot.
        self.quiet_source: Callable[[], Quiet] | None = None
        self._quiet_json = Quiet().to_json().encode()
        self._quiet_dirty = True
        self._dropped_seen = 0
        self._lost_since: float | None = None
        self._probes: set[asyncio.Task[None]] = set()
        self._refusal: str | None = None  # the last refusal said (ResponseError), until a success
        self._events_refusal: str | None = None

    # -- lifecycle ------------------------------------------------------------------------
    def gauges(self) -> dict[str, float]:
        s = self.stats
        return {"feed_up": float(s.up), "feed_events": float(s.events),
                "feed_events_lost": float(s.events_lost),
                "feed_snapshot_bytes": float(s.snapshot_bytes), "feed_snapshot_ms": s.snapshot_ms,
                "feed_viewers": float(s.viewers), "feed_commands": float(s.commands),
                "feed_commands_refused": float(s.commands_refused),
                "feed_losses": float(s.losses)}

    def stop(self) -> None:
        self._stopping.set()

    async def run(self) -> None:
        """Publish until :meth:`stop`; Redis failures are logged and retried, never raised."""
        self._sub = self.engine.bus.subscribe("feed", maxsize=400_000, sample_batch=5000)
        if self.quiet_source is not None:  # read before this subscription: its changes follow
            self._quiet_json = self.quiet_source().to_json().encode()
        await self._reindex()
        commands = asyncio.create_task(self._command_loop(), name="wardtui-feed-commands")
        try:
            while not self._stopping.is_set():
                if self._client is None:
                    await self._connect()
                    continue
                wait = max(0.0, self._next_snapshot - time.monotonic())
                batch = await self._next_batch(wait)
                self._take(batch)
                try:
                    if not self._inventory_written and time.monotonic() >= self._next_snapshot:
                        # Just (re)connected: the inventory and a full snapshot before any event,
                        # so a viewer never meets a run's events before its snapshot.
                        await self._publish_snapshot()
                    if self._pending:
                        pace = self._sent_at + PUBLISH_PACE - time.monotonic()
                        if pace > 0:
                            # Entries sent a moment ago: what the engine publishes meanwhile goes
                            # in the next ones (fewer entries, for the viewers to read and for
                            # the stream's bound in entries to hold more events).
                            await asyncio.sleep(pace)
                            self._take(self._sub.drain(50_000) if self._sub is not None else ())
                        await self._send_events()
                    if time.monotonic() >= self._next_snapshot:
                        await self._publish_snapshot()
                except ResponseError as exc:
                    self._refused(exc)  # Redis answers: reconnecting would not help
                except (RedisError, OSError) as exc:
                    await self._lost(exc)
        finally:
            commands.cancel()
            for task in self._probes:
                task.cancel()
            await asyncio.gather(commands, *self._probes, return_exceptions=True)
            if self._sub is not None:
                self.engine.bus.unsubscribe(self._sub)
            await self._goodbye()

    _next_snapshot = 0.0

    async def _next_batch(self, wait: float) -> list[Event]:
        sub = self._sub
        assert sub is not None
        if len(sub):
            return sub.drain(50_000)
        stop = asyncio.ensure_future(self._stopping.wait())
        get = asyncio.ensure_future(sub.get_batch(50_000))
        done, _ = await asyncio.wait({get, stop}, timeout=wait, return_when=asyncio.FIRST_COMPLETED)
        stop.cancel()
        if get in done:
            return get.result()
        get.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await get
        return sub.drain(50_000)

    async def _goodbye(self) -> None:
        """On the way out: the heartbeat goes (viewers say the service stopped, at once)."""
        client, self._client = self._client, None
        if client is None:
            return
        with contextlib.suppress(RedisError, OSError):
            await asyncio.wait_for(client.delete(self.keys.service), 2.0)
        with contextlib.suppress(RedisError, OSError, RuntimeError):
            await client.aclose()

    # -- Redis comes and goes -------------------------------------------------------------
    async def _connect(self) -> None:
        attempt = 0
        while not self._stopping.is_set():
            client = self._factory()
            try:
                await client.ping()
                with contextlib.suppress(ResponseError):  # no stream yet
                    info = await client.xinfo_stream(self.keys.events)
                    self._ids.at_least(info["last-generated-id"])
            except (RedisError, OSError) as exc:
                with contextlib.suppress(RedisError, OSError, RuntimeError):
                    await client.aclose()
                if self._lost_since is None:
                    self._lost_since = time.monotonic()
                    self.stats.losses += 1
                    log.error("live feed: Redis %s unreachable: %s; polling and history go on, retrying",
                              shown_url(self.url), describe_error(exc, self.url))
                delay = BACKOFF[min(attempt, len(BACKOFF) - 1)]
                attempt += 1
                await self._discard_for(delay)
                continue
            self._client = client
            self.stats.up = True
            if self._lost_since is not None:
                log.warning("live feed: Redis %s is back after %.0f s; publishing a fresh snapshot",
                            shown_url(self.url), time.monotonic() - self._lost_since)
            else:
                log.info("live feed: publishing site %s on Redis %s", self.keys.site, shown_url(self.url))
            self._lost_since = None
            self._full = True
            self._inventory_written = False
            self._next_snapshot = 0.0
            # What the stream holds up to now (an earlier run's, or nothing) is covered by the
            # next snapshot; events taken while connecting were never sent: lost to the feed.
            self.stats.events_lost += len(self._pending)
            self._pending.clear()
            self._sent_id, self._sent_n = self._ids.last, self._n
            return

    async def _discard_for(self, seconds: float) -> None:
        """Wait ``seconds`` (or until stop) while Redis is away, taking what the engine publishes:
        rows are marked for the next snapshot; events are counted as lost to the feed."""
        end = time.monotonic() + seconds
        while not self._stopping.is_set():
            left = end - time.monotonic()
            if left <= 0:
                return
            self._take(await self._next_batch(left))
            self.stats.events_lost += len(self._pending)
            self._pending.clear()

    async def _lost(self, exc: BaseException) -> None:
        client, self._client = self._client, None
        self.stats.up = False
        self.stats.losses += 1
        self._lost_since = time.monotonic()
        self.stats.events_lost += len(self._pending)
        self._pending.clear()
        log.error("live feed: Redis %s lost: %s; polling and history go on, reconnecting",
                  shown_url(self.url), describe_error(exc, self.url))
        if client is not None:
            with contextlib.suppress(RedisError, OSError, RuntimeError):
                await client.aclose()

    def _refused(self, exc: ResponseError) -> None:
        """Redis refused a write (a key of another type written by hand, a read-only replica, out
        of memory): said once per kind of refusal, retried with the next snapshot."""
        text = describe_error(exc, self.url)
        if _refusal_kind(exc) != self._refusal:
            self._refusal = _refusal_kind(exc)
            log.error("live feed: Redis %s refuses the site's keys: %s; retrying every snapshot",
                      shown_url(self.url), text)

    # -- what the engine publishes ---------------------------------------------------------
    async def _reindex(self) -> None:
        """Rows in the engine's inventory order; a new inventory starts a full snapshot. The
        inventory's encoding (~0.25 s at 100,000 devices) runs off the engine's loop."""
        # The version goes with the rows it was read with: a reload applied while the encoding
        # below runs is seen at the next snapshot, not taken for this one.
        version = getattr(self.engine, "inventory_version", None)
        old_rows = self._rows
        self._rows = list(self.engine.trackers.values())
        self._index = {t.device.name: i for i, t in enumerate(self._rows)}
        self._columns = Columns.empty(len(self._rows))
        self._dirty = set(range(len(self._rows)))
        self._full = True
        devices = [t.device for t in self._rows]
        self._inventory_id, self._inventory_blob = await asyncio.get_running_loop().run_in_executor(
            None, encode_inventory, devices)
        self._inventory_written = False
        self._inventory_version = version
        # SNMP summaries are keyed by row: carried over by name, and the JSON made again at the
        # next snapshot (the old one names the old rows, maybe past the new inventory's end).
        self._snmp = {self._index[old_rows[i].device.name]: v for i, v in self._snmp.items()
                      if i < len(old_rows) and old_rows[i].device.name in self._index}
        self._snmp_dirty = True
        self._snmp_built = 0.0
        self.info = dataclasses.replace(self.info, devices=len(self._rows))

    def _take(self, batch: Iterable[Event]) -> None:
        index = self._index
        dirty = self._dirty
        pending = self._pending
        for event in batch:
            if isinstance(event, CheckResult):
                row = index.get(event.device)
                if row is not None:
                    dirty.add(row)
            elif isinstance(event, SnmpPoll):
                self._snmp_poll(event)
            elif isinstance(event, SnmpFailure):
                self._snmp_failure(event)
            elif isinstance(event, QuietChanged):
                self._quiet_json = event.quiet.to_json().encode()
                self._quiet_dirty = True
                pending.append(self._entry(event))
            elif isinstance(event, STREAMED):
                if isinstance(event, SnmpAgentChange):
                    self._snmp_agent(event)
                device = getattr(event, "device", None)
                if device is not None and device in index:
                    dirty.add(index[device])
                pending.append(self._entry(event))
        sub = self._sub
        if sub is not None and sub.dropped != self._dropped_seen:
            # Check results were dropped for us: any row may be stale.
            self._dropped_seen = sub.dropped
            dirty.update(range(len(self._rows)))

    def _entry(self, event: Event, **extra: Any) -> str:
        self._n += 1
        return encode_event(event, **extra)

    def _snmp_poll(self, poll: SnmpPoll) -> None:
        row = self._index.get(poll.device)
        if row is None:
            return
        ifs = poll.interfaces
        self._snmp[row] = {"at": poll.at.timestamp(), "sys_name": poll.sys_name, "uptime_s": poll.uptime_s,
                           "if_up": sum(1 for i in ifs if i.oper == "up"), "if_total": len(ifs),
                           "answering": True}
        self._snmp_dirty = True

    def _snmp_failure(self, failure: SnmpFailure) -> None:
        row = self._index.get(failure.device)
        if row is None:
            return
        summary = dict(self._snmp.get(row, {}))
        summary.update({"failed_at": failure.at.timestamp(), "reason": failure.reason})
        self._snmp[row] = summary
        self._snmp_dirty = True

    def _snmp_agent(self, change: SnmpAgentChange) -> None:
        row = self._index.get(change.device)
        if row is not None:
            summary = dict(self._snmp.get(row, {}))
            summary["answering"] = change.answering
            self._snmp[row] = summary
            self._snmp_dirty = True

    # -- writing ----------------------------------------------------------------------------
    async def _send_events(self) -> None:
        client = self._client
        assert client is not None
        pending, self._pending = self._pending, []
        first = self._n - len(pending) + 1
        pipe = client.pipeline(transaction=False)
        entry_id = ""
        # The events taken together in one entry (EVENTS_PER_ENTRY at most, so that the
        # stream's bound in entries is one in bytes): a viewer reads and parses one entry for
        # what took one per event.
        for k in range(0, len(pending), EVENTS_PER_ENTRY):
            entry_id = self._ids.next()
            entry = encode_entry(pending[k:k + EVENTS_PER_ENTRY], first + k, self._run)
            pipe.xadd(self.keys.events, {"b": entry}, id=entry_id, maxlen=STREAM_MAXLEN, approximate=True)
        self._sent_at = time.monotonic()
        try:
            await pipe.execute()
        except ResponseError as exc:
            # IDs behind the stream's end (a clock step back, another publisher): catch up, and
            # let the snapshot carry what these events said. Said once while it lasts (a key of
            # another type refuses every batch).
            text = describe_error(exc, self.url)
            if _refusal_kind(exc) != self._events_refusal:
                self._events_refusal = _refusal_kind(exc)
                log.warning("live feed: the event stream refused %d events (%s); a full snapshot follows",
                            len(pending), text)
            with contextlib.suppress(ResponseError):
                info = await client.xinfo_stream(self.keys.events)
                self._ids.at_least(info["last-generated-id"])
            self.stats.events_lost += len(pending)
            self._full = True
            return
        except BaseException:
            self.stats.events_lost += len(pending)  # in flight when the connection broke
            raise
        self._events_refusal = None
        self.stats.events += len(pending)
        # The last entry on the stream: what a snapshot may say it covers (entries queued since,
        # a probe's result, are not on it yet).
        self._sent_id, self._sent_n = entry_id, first + len(pending) - 1

    async def _publish_snapshot(self) -> None:
        client = self._client
        assert client is not None
        started = time.perf_counter()
        self._next_snapshot = time.monotonic() + self.period
        if getattr(self.engine, "inventory_version", None) != self._inventory_version:
            await self._reindex()
        dirty, self._dirty = self._dirty, set()
        rows, columns = self._rows, self._columns
        for k, i in enumerate(dirty):
            columns.set_row(i, rows[i])
            if k % 2000 == 1999:
                await asyncio.sleep(0)  # 10,000 rows a second at 100,000 devices: in slices
        self._seq += 1
        full = self._full
        self._full = False
        now = time.monotonic()
        if self._snmp_dirty and now - self._snmp_built >= 5.0:
            self._snmp_json = json.dumps({str(k): v for k, v in self._snmp.items()},
                                         separators=(",", ":")).encode()
            self._snmp_dirty = False
            self._snmp_built = now
        at = datetime.now(UTC)
        # The last event numbered and its ID, taken together: a viewer loading this snapshot
        # knows which number comes next, and sees a trimmed stream even in its first read.
        stream_id, event_n, seq = self._sent_id, self._sent_n, self._seq
        def encode() -> tuple[bytes, bytes]:
            changed = None if full else bitmap(dirty, len(columns))  # one bitmap for both keys
            return (encode_snapshot(seq, stream_id, at, self._inventory_id, self._run,
                                    self.engine.last_gauges, columns, changed, self._snmp_json,
                                    event_n=event_n),
                    encode_delta(seq, stream_id, self._inventory_id, self._run, columns, changed, event_n))

        blob, delta = await asyncio.get_running_loop().run_in_executor(None, encode)
        self.info = dataclasses.replace(self.info, snapshot_at=at.isoformat(timespec="milliseconds"))
        if self.site_devices is not None:
            self.info = dataclasses.replace(self.info, site_devices=self.site_devices())
        pipe = client.pipeline(transaction=True)
        if not self._inventory_written:
            pipe.set(self.keys.inventory, self._inventory_blob)
        pipe.set(self.keys.snapshot, blob)
        quiet = self._quiet_dirty or not self._inventory_written
        if quiet:  # the windows and acknowledgements this snapshot goes with
            pipe.set(self.keys.quiet, self._quiet_json)
            self._quiet_dirty = False
        pipe.set(self.keys.delta, delta, ex=DELTA_TTL)
        pipe.set(self.keys.service, self.info.to_json(), ex=HEARTBEAT_TTL)
        pipe.exists(self.keys.inventory)
        pipe.zremrangebyscore(self.keys.viewers, 0, time.time() - VIEWER_TTL)
        pipe.zcard(self.keys.viewers)
        try:
            # Each command's error in its place: a refused one (the viewers key of another type)
            # does not undo the snapshot the others wrote.
            results = await pipe.execute(raise_on_error=False)
        except BaseException:
            self._dirty |= dirty
            self._full = True
            self._quiet_dirty |= quiet
            raise
        refused = [r for r in results if isinstance(r, Exception)]
        if any(isinstance(r, Exception) for r in results[:-3]):  # the inventory, snapshot, heartbeat
            self._dirty |= dirty
            self._full = True
            self._quiet_dirty |= quiet
            raise refused[0]
        self._inventory_written = True
        if not results[-3]:  # Redis restarted empty between two snapshots: write it all again
            self._inventory_written = False
            self._full = True
        self.stats.viewers = 0 if isinstance(results[-1], Exception) else int(results[-1])
        self.stats.snapshots += 1
        self.stats.snapshot_bytes = len(blob)
        self.stats.snapshot_ms = (time.perf_counter() - started) * 1000
        if refused:
            raise refused[0]
        if self._refusal is not None:
            self._refusal = None
            log.warning("live feed: Redis %s takes the site's keys again", shown_url(self.url))

    # -- commands ---------------------------------------------------------------------------
    async def _command_loop(self) -> None:
        last = "$"
        reading: Redis | None = None
        while not self._stopping.is_set():
            client = self._client
            if client is None:
                await asyncio.sleep(0.2)
                continue
            try:
                if client is not reading:
                    # (Re)connected: from the stream's end as it is now, not "$" at each read (a
                    # command added between two reads was missed). Commands sent while Redis was
                    # away are answered by no one: they time out.
                    reading, last = client, "0-0"
                    with contextlib.suppress(ResponseError):  # no stream yet
                        info: Any = await client.xinfo_stream(self.keys.commands)
                        last = info["last-generated-id"]
                        last = last.decode() if isinstance(last, bytes) else str(last)
                answer: Any = await client.xread({self.keys.commands: last}, count=100, block=1000)
            except (RedisError, OSError):
                await asyncio.sleep(0.5)  # the main loop notices and reconnects
                continue
            for _stream, entries in answer or []:
                for entry_id, fields in entries:
                    last = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
                    if len(self._probes) >= MAX_COMMANDS:
                        self.stats.commands_refused += 1
                        continue  # its sender hears nothing within its timeout: "did not answer"
                    task = asyncio.create_task(self._command(fields))
                    self._probes.add(task)
                    task.add_done_callback(self._probes.discard)

    async def _command(self, fields: dict[bytes, bytes]) -> None:
        # Anyone who can write to Redis writes here: what is not a command is dropped with a
        # short line, and what is logged of one is cut (a field may be megabytes).
        try:
            doc = json.loads(fields.get(b"c", b"{}"))
        except (ValueError, RecursionError):
            log.warning("live feed: a command that is not JSON was ignored")
            return
        command_id = str(doc.get("id", "")) if isinstance(doc, dict) else ""
        if not re.fullmatch(r"[0-9a-f]{32}", command_id):
            log.warning("live feed: a command without a valid id was ignored")
            return
        sent_at = doc.get("at")
        if not isinstance(sent_at, int | float) or not math.isfinite(sent_at):
            log.warning("live feed: a command without a valid time was ignored")
            return
        user, host = escaped(str(doc.get("user", "?"))[:64]), escaped(str(doc.get("host", "?"))[:64])
        name = str(doc.get("cmd", ""))
        self.stats.commands += 1
        age = time.time() - sent_at
        handler = self.handlers.get(name)
        if age > COMMAND_MAX_AGE:
            reply = {"ok": False, "error": f"the command waited {age:.0f} s for the service: not run"}
        elif handler is None:
            reply = {"ok": False, "error": f"this service does not know the command {_cut(name)!r}"}
        else:
            log.info("command %s from %s@%s: %s", _cut(name), user, host,
                     _cut(json.dumps({k: v for k, v in doc.items()
                                      if k not in ("id", "cmd", "user", "host", "at")}), 400))
            try:
                reply = await handler(self, doc)
            except Exception as exc:  # a command must never take the publisher down
                log.exception("command %s failed", _cut(name))
                reply = {"ok": False, "error": f"{type(exc).__name__}: {_cut(str(exc), 400)}"}
        client = self._client
        if client is None:
            return
        with contextlib.suppress(RedisError, OSError):
            pipe = client.pipeline(transaction=True)
            pipe.rpush(self.keys.reply(command_id), json.dumps(reply))
            pipe.expire(self.keys.reply(command_id), REPLY_TTL)
            await pipe.execute()

    def stream_now(self, event: Event, **extra: Any) -> None:
        """Put ``event`` on the stream with the next batch (a command's result)."""
        self._pending.append(self._entry(event, **extra))
        if self._sub is not None:
            self._sub._wake()  # the loop may be asleep waiting for the engine


async def probe_reply(engine: Engine, name: str) -> tuple[dict[str, Any], CheckResult | None]:
    """Check ``name`` now (:meth:`~poller.engine.Engine.probe_now`): the answer an operator
    reads, and the check's result when it ran."""
    try:
        result = await engine.probe_now(name)
    except KeyError:
        return {"ok": False, "error": f"no device named {escaped(name)!r} in the inventory"}, None
    return {"ok": True, "result": event_record(result)}, result


async def _probe_command(publisher: Publisher, doc: dict[str, Any]) -> dict[str, Any]:
    """"probe now": the device is checked at once; every viewer sees the result on the stream."""
    reply, result = await probe_reply(publisher.engine, str(doc.get("device", "")))
    if result is not None:
        publisher.stream_now(result, by=str(doc.get("user", "?"))[:64])
    return reply


# -- the viewer side ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FeedStatus:
    """The viewer's link to the service changed: ``live`` False means what is shown is as of
    ``since`` and no longer moving."""

    live: bool
    since: datetime
    detail: str


@dataclass(frozen=True, slots=True)
class ProbeSeen:
    """A check an operator asked for (probe now) came back, with who asked: every viewer's log
    says so. ``by`` is what the service was told: data, cleaned where shown."""

    result: CheckResult
    by: str


@dataclass(frozen=True, slots=True)
class RowsChanged:
    """A snapshot changed these devices' figures (None: every device)."""

    devices: tuple[str, ...] | None


@dataclass(frozen=True, slots=True)
class InventoryChanged:
    """The service's inventory changed (SIGHUP): the screens rebuild from ``trackers``, the
    feed's new mapping (never the old one changed in place: a screen on another thread may be
    iterating it)."""

    added: int
    removed: int
    trackers: dict[str, LiveTracker]
    announce: bool = True  # False: a cluster's devices moved between members (not the operator's news)


class NoService(Exception):
    """No live service publishes the site."""


def _same_rows(snap: Snapshot, devices: int) -> None:
    if len(snap.columns) != devices:
        raise FeedFormatError(f"the snapshot has {len(snap.columns)} rows for an inventory of {devices} "
                              "devices")


def _id_tuple(entry_id: bytes | str) -> tuple[int, int]:
    text = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    ms, _, seq = text.partition("-")
    return int(ms), int(seq or 0)


@dataclass
class ViewerStats:
    reloads: int = 0
    events: int = 0
    refreshes: int = 0
    deltas: int = 0  # refreshes made from the delta key, not the whole snapshot
    losses: int = 0
    latencies_ms: list[float] = field(default_factory=list)  # stream ID time -> applied, for benches


class LiveFeed:
    """A viewer's copy of a site: trackers kept from the snapshot and the stream, events on
    :attr:`bus` as the engine would publish them, :class:`FeedStatus` when the link changes."""

    def __init__(self, url: str, keys: Keys, viewer: str = "",
                 client_factory: Callable[[], Redis] | None = None, refresh: float = 1.0,
                 record_latency: bool = False, read_pace: float = READ_PACE) -> None:
        self.url = url
        self.keys = keys
        self.viewer = viewer or f"{login_name()}@{socket.gethostname()}:{os.getpid()}"
        self.refresh_period = refresh
        self.read_pace = read_pace
        self._factory = client_factory or (lambda: client_for(url))
        self.trackers: dict[str, LiveTracker] = {}
        self.bus = EventBus()
        self.last_gauges: Gauges | None = None
        self.service: ServiceInfo | None = None
        self.stats = ViewerStats()
        self.live = False
        self.lost_since: datetime | None = None
        self.inventory_id = ""
        self.quiet = Quiet()  # the windows and acknowledgements in force, as last published
        self._record_latency = record_latency
        self._client: Redis | None = None
        self._rows: list[LiveTracker] = []
        self._names: list[str] = []  # device names in row order
        self._view = LiveRows(Columns.empty(0))  # what the trackers read
        self._columns: Columns | None = None
        self._last_id = (0, 0)
        self._last_n = 0
        self._run = ""
        self._seq = 0
        self._newer: dict[str, LiveTracker] = {}  # devices an event told more than the snapshot
        self._presence_refused = False
        self._stopping = asyncio.Event()
        self._running = False
        self._finished = asyncio.Event()

    slots: tuple[Any, ...] = ()

    def is_down(self, name: str) -> bool:
        tracker = self.trackers.get(name)
        return tracker is not None and tracker.state in OUT

    def stop(self) -> None:
        self._stopping.set()

    async def stopped(self, timeout: float = 2.0) -> None:
        """Stop, and wait (at most ``timeout`` s) until :meth:`run` has let go of Redis."""
        self.stop()
        if self._running:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._finished.wait(), timeout)

    async def attach(self) -> None:
        """Load the site (raises :class:`NoService` without a live service, RedisError or
        OSError when Redis cannot be reached, FeedFormatError for keys it cannot read)."""
        await self._open()

    async def _open(self) -> None:
        """Connect, check that a service publishes, load the site; on any failure the client
        is closed and the failure raised."""
        client = self._factory()
        try:
            info = await read_service(client, self.keys)
            if not is_live(info):
                raise NoService(self._no_service(info))
            await self._load(client)
        except BaseException:
            with contextlib.suppress(RedisError, OSError, RuntimeError):
                await client.aclose()
            raise
        self._client = client
        self.service = info
        self.live = True

    def _no_service(self, info: ServiceInfo | None) -> str:
        if info is None:
            return f"no wardtui serve publishes the site {self.keys.site!r}"
        age = info.age()
        return (f"the service of site {self.keys.site!r} on {escaped(info.host)} (pid {info.pid}) has not "
                f"published for {age:.0f} s" if age is not None else
                f"the service of site {self.keys.site!r} on {escaped(info.host)} has not published yet")

    async def _load(self, client: Redis) -> None:
        """The inventory (when it changed) and the whole snapshot."""
        kind: Any = await client.type(self.keys.events)
        if (kind.decode() if isinstance(kind, bytes) else kind) not in ("stream", "none"):
            raise FeedFormatError(f"the site's event key holds a {escaped(str(kind))[:20]}, not a stream")
        # Both in one transaction: a reload between two reads looked like a lost feed.
        pipe = client.pipeline(transaction=True)
        pipe.get(self.keys.snapshot)
        pipe.get(self.keys.inventory)
        pipe.get(self.keys.quiet)
        blob, raw, quiet = await pipe.execute()
        if blob is None:
            raise NoService(f"the site {self.keys.site!r} has no snapshot yet")
        snap = decode_snapshot(blob)
        if snap.inventory_id != self.inventory_id:
            if raw is None:
                raise NoService(f"the site {self.keys.site!r} has no inventory yet")
            inventory_id, devices = decode_inventory(raw)
            if inventory_id != snap.inventory_id:
                raise NoService("the service is changing its inventory; try again")
            _same_rows(snap, len(devices))
            self._set_inventory(inventory_id, devices, snap.columns)
        _same_rows(snap, len(self._rows))
        self._apply_all(snap)
        self._take_quiet(quiet)

    def _take_quiet(self, raw: bytes | None) -> None:
        """The quiet state loaded with a snapshot (none: a service of a wardtui before it, or
        nothing in force); published when it differs from what is held."""
        try:
            fresh = Quiet() if raw is None else quiet_from_json(raw)
        except QuietFormatError as exc:
            log.warning("live feed: the maintenance windows and acknowledgements cannot be read: %s",
                        escaped(str(exc)))
            return
        if fresh != self.quiet:
            self.quiet = fresh
            self.bus.publish(QuietChanged(fresh))  # type: ignore[arg-type]

    def _set_inventory(self, inventory_id: str, devices: list[Device], columns: Columns) -> None:
        old = self.trackers
        # The new inventory's rows, its snapshot's columns in them before any tracker reads them.
        rows = self._view = LiveRows(columns)
        fresh: dict[str, LiveTracker] = {}
        if not old:  # the attach: every tracker new, made by C-level map (~40 ms less at 100,000)
            fresh = dict(zip(map(_name_of, devices), map(LiveTracker, devices, repeat(rows), count()),
                             strict=False))
        for i, device in enumerate(devices if old else ()):
            tracker = old.get(device.name)
            if tracker is None or tracker.device != device:
                tracker = LiveTracker(device, rows, i)
            else:
                tracker.bind(rows, i)
            fresh[device.name] = tracker
        added = len(fresh.keys() - old.keys()) if old else len(fresh)
        removed = len(old.keys() - fresh.keys()) if old else 0
        first = not self.inventory_id
        # A new mapping, never the old one changed: the screens (another thread) iterate theirs
        # until they take this one from the event. Trackers of unchanged devices are shared.
        # The first one fills the mapping made empty with the feed: nobody has iterated it yet.
        if first:
            old.update(fresh)
            fresh = old
        self.trackers = fresh
        self._rows = list(fresh.values())
        self._names = list(fresh)
        self.inventory_id = inventory_id
        self._columns = None
        if not first:
            self.bus.publish(InventoryChanged(added, removed, fresh))  # type: ignore[arg-type]

    def _apply_all(self, snap: Snapshot) -> None:
        columns = snap.columns
        self._view.columns = columns
        for tracker in self._newer.values():
            tracker.settle()
        self._newer.clear()
        self._columns = columns
        self._seq, self._run = snap.seq, snap.started
        self._last_id = _id_tuple(snap.stream_id)
        # The next event must be number event_n + 1; a snapshot from a wardtui that did not say
        # takes the next number as it comes.
        self._last_n = -1 if snap.event_n is None else snap.event_n
        if snap.gauges is not None:
            self.last_gauges = snap.gauges
            self.bus.publish(snap.gauges)
        self.stats.reloads += 1
        self.bus.publish(RowsChanged(None))  # type: ignore[arg-type]

    def _apply_refresh(self, snap: Snapshot) -> None:
        """A newer snapshot's figures: its columns become every tracker's, and what an event
        streamed after it said stays (an older snapshot never undoes a newer transition)."""
        previous = self._columns
        columns = snap.columns
        if snap.changed is not None and snap.seq == self._seq + 1 and previous is not None:
            changed: Sequence[int] | None = snap.changed
        else:  # a snapshot skipped (or none before): the rows that differ
            changed = None if previous is None else columns.changed_rows(previous)
        self._take_columns(snap.seq, snap.stream_id, columns, changed)

    def _apply_delta(self, blob: bytes, head: DeltaHeader) -> None:
        """The next snapshot's figures from its delta: the rows it changed set in a copy of the
        columns held (the screens may be reading those), then taken as a snapshot's are."""
        assert self._columns is not None and head.seq == self._seq + 1
        columns, changed = apply_delta(blob, head, self._columns)
        self._take_columns(head.seq, head.stream_id, columns, changed)
        self.stats.deltas += 1

    def _take_columns(self, seq: int, stream_id: str, columns: Columns,
                      changed: Sequence[int] | None) -> None:
        self._view.columns = columns
        snap_id = _id_tuple(stream_id)
        newer = self._newer
        if newer:
            for name, tracker in list(newer.items()):
                if tracker.position is None or tracker.position <= snap_id:
                    tracker.settle()
                    del newer[name]
        self._columns = columns
        self._seq = seq
        self.stats.refreshes += 1
        if changed is None:
            self.bus.publish(RowsChanged(None))  # type: ignore[arg-type]
        elif changed:
            self.bus.publish(RowsChanged(tuple(map(self._names.__getitem__, changed))))  # type: ignore[arg-type]

    def _apply_event(self, entry_id: bytes, fields: dict[bytes, bytes]) -> bool:
        """Fold one stream entry's events in; False when it shows a gap (the viewer must reload)."""
        position = _id_tuple(entry_id)
        entry = entry_events(fields)
        if entry is None:
            if b"b" in fields or b"e" in fields:
                log.warning("live feed: a stream entry that is not an event was skipped")
            self._last_id = position  # read past it, or XREAD hands it back forever
            return True
        n, run, docs = entry
        if run == self._run and self._last_n >= 0 and n != self._last_n + 1:
            return False
        if run != self._run and run:
            return False  # another service run: its snapshot first
        self._last_n = n + len(docs) - 1
        self._last_id = position
        said = False
        trackers, newer, publish = self.trackers, self._newer, self.bus.publish
        for doc in docs:
            try:
                if not isinstance(doc, dict):
                    raise FeedFormatError("an event cannot be read: not an object")
                event = decode_event(doc)  # parsed once: ~1,000 events a second at 1 % churn
            except FeedFormatError as exc:
                if not said:  # once an entry: a forged one may hold thousands
                    said = True
                    log.warning("live feed: %s", exc)
                continue
            if event is None:
                continue
            self.stats.events += 1
            if self._record_latency:
                self.stats.latencies_ms.append(time.time() * 1000 - position[0])
            cls = type(event)
            if cls is Gauges:
                self.last_gauges = event  # type: ignore[assignment]
            elif cls is QuietChanged:  # type: ignore[comparison-overlap]
                self.quiet = event.quiet  # type: ignore[union-attr]
            device = getattr(event, "device", None)
            if device is not None:
                tracker = trackers.get(device)
                if tracker is not None and tracker.apply(event):
                    tracker.position = position
                    newer[device] = tracker
            publish(event)
            if cls is CheckResult and isinstance(doc.get("by"), str):
                publish(ProbeSeen(event, doc["by"][:64]))  # type: ignore[arg-type]
        return True

    async def run(self, duration: float | None = None) -> None:
        """Follow the site until :meth:`stop` (or ``duration`` seconds); reconnect on loss."""
        self._running = True
        self._finished.clear()
        try:
            await self._follow(duration)
        finally:
            self._running = False
            self._finished.set()

    async def _follow(self, duration: float | None) -> None:
        end = None if duration is None else time.monotonic() + duration
        next_refresh = time.monotonic() + self.refresh_period
        next_presence = 0.0
        read_more_at = 0.0
        attempt = 0
        while not self._stopping.is_set() and (end is None or time.monotonic() < end):
            client = self._client
            if client is None:
                await self._reconnect(attempt)
                attempt += 1
                continue
            attempt = 0
            try:
                now = time.monotonic()
                if now >= next_presence:
                    next_presence = now + 5.0
                    await self._presence(client)
                if read_more_at > now:
                    # Entries came at the last read: let a few of the service's pipelines pile
                    # up, so one round trip takes them all (each read costs a viewer more than
                    # the entries it brings).
                    await asyncio.sleep(read_more_at - now)
                    now = time.monotonic()
                block = max(1, int(min(next_refresh - now, 0.5) * 1000))
                last = f"{self._last_id[0]}-{self._last_id[1]}"
                answer: Any = await client.xread({self.keys.events: last}, count=10_000, block=block)
                read_more_at = time.monotonic() + self.read_pace if answer else 0.0
                for _stream, entries in answer or []:
                    for entry_id, fields in entries:
                        if not self._apply_event(entry_id, fields):
                            await self._reload(client)
                            break
                if time.monotonic() >= next_refresh:
                    next_refresh = time.monotonic() + self.refresh_period  # when it raises
                    next_refresh = time.monotonic() + await self._refresh(client)
            except (RedisError, OSError) as exc:
                self._lose(f"Redis {shown_url(self.url)}: {describe_error(exc, self.url)}")
            except NoService as exc:
                self._lose(str(exc))
            except FeedFormatError as exc:
                self._lose(str(exc))
        client, self._client = self._client, None
        if client is not None:
            with contextlib.suppress(RedisError, OSError, RuntimeError):
                await client.zrem(self.keys.viewers, self.viewer)
            with contextlib.suppress(RedisError, OSError, RuntimeError):
                await client.aclose()

    async def _reload(self, client: Redis) -> None:
        """A gap in the stream: load the snapshot again. When it is the one already loaded (the
        stream was trimmed past it before the service wrote the next), take the stream as it is
        from there: the next snapshot (a second at most) brings what the trimmed entries said;
        loading the same one again would only loop."""
        seq, run = self._seq, self._run
        await self._load(client)
        if (self._seq, self._run) == (seq, run):
            self._last_n = -1

    async def _presence(self, client: Redis) -> None:
        try:
            await client.zadd(self.keys.viewers, {self.viewer: time.time()})
        except ResponseError as exc:  # the key is not a sorted set: not counted, still following
            if not self._presence_refused:
                self._presence_refused = True
                log.warning("live feed: this viewer cannot say it is attached: %s",
                            describe_error(exc, self.url))

    async def _refresh(self, client: Redis) -> float:
        """Every second: the snapshot's figures, and whether the service still publishes.
        Returns the seconds until the next one: :data:`REFRESH_AFTER` after the service's next
        snapshot (the heartbeat, written with each snapshot, says how long ago the last one
        was, by Redis's clock), so that each snapshot is read once, none skipped; sooner
        when this one was not taken."""
        pipe = client.pipeline(transaction=True)
        pipe.get(self.keys.delta)
        pipe.get(self.keys.service)
        pipe.pttl(self.keys.service)
        delta, raw, ttl_ms = await pipe.execute()
        info = _service_info(raw, ttl_ms)
        if not is_live(info):
            raise NoService(self._no_service(info))
        self.service = info
        assert info is not None
        period = self.refresh_period
        age = info.heartbeat_age
        due = period if age is None else min(period, max(0.0, period - age) + REFRESH_AFTER)
        # This snapshot was read already: the next one, soon; not so soon from a service that
        # is late (the GET is every viewer's, and Redis serves them beside the service).
        retry = max(due, REFRESH_RETRY if age is None or age < period else REFRESH_LATE)
        if delta is not None and self._columns is not None:
            # The snapshot's delta (written with it): the whole snapshot only when the delta does
            # not follow from what this viewer holds (a snapshot skipped, a full one, another run
            # or inventory, a service that writes none).
            head = peek_delta(delta)
            if head.started == self._run and head.inventory_id == self.inventory_id:
                if head.seq <= self._seq:
                    return retry
                if head.seq == self._seq + 1 and head.rows is not None:
                    if _id_tuple(head.stream_id) > self._last_id:
                        return REFRESH_RETRY  # (as below)
                    self._apply_delta(delta, head)
                    return due
        blob: bytes | None = await client.get(self.keys.snapshot)  # type: ignore[assignment]
        if blob is None:
            raise NoService(f"the site {self.keys.site!r} has no snapshot (Redis restarted empty?)")
        seq, started, inventory_id, stream_id = peek_snapshot(blob)
        if started == self._run and inventory_id == self.inventory_id:  # not inflated for nothing
            if seq <= self._seq:
                return retry
            if _id_tuple(stream_id) > self._last_id:
                # It covers events this viewer has not read yet: read them first (the next
                # read is READ_PACE away); a viewer that stays behind by more than the stream
                # holds reloads on the gap.
                return REFRESH_RETRY
        snap = decode_snapshot(blob)
        if snap.started != self._run or snap.inventory_id != self.inventory_id:
            await self._load(client)  # a new service run, or a new inventory
            return due
        if snap.seq <= self._seq:
            return retry
        _same_rows(snap, len(self._rows))
        if _id_tuple(snap.stream_id) > self._last_id:
            return REFRESH_RETRY  # (as above)
        self._apply_refresh(snap)
        return due

    def _lose(self, detail: str) -> None:
        client, self._client = self._client, None
        if client is not None:
            task = asyncio.ensure_future(client.aclose())
            task.add_done_callback(lambda t: t.exception() if not t.cancelled() else None)
        self.stats.losses += 1
        if self.live:
            self.live = False
            self.lost_since = datetime.now(UTC)
            log.warning("live feed lost: %s", detail)
            self.bus.publish(FeedStatus(False, self.lost_since, detail))  # type: ignore[arg-type]

    async def _reconnect(self, attempt: int) -> None:
        delay = BACKOFF[min(attempt, len(BACKOFF) - 1)]
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), delay)
        if self._stopping.is_set():
            return
        try:
            await self._open()
        except (RedisError, OSError, NoService, FeedFormatError):
            return
        self.lost_since = None
        self.bus.publish(FeedStatus(True, datetime.now(UTC), "live"))  # type: ignore[arg-type]

    # -- commands ---------------------------------------------------------------------------
    async def command(self, name: str, **args: Any) -> dict[str, Any]:
        """Send a command to the service and wait for its answer (``{"ok": ..., ...}``)."""
        client = self._client
        if client is None:
            return {"ok": False, "error": "the live feed is lost: the service cannot be reached"}
        return await send_command(client, self.keys, name, **args)


async def send_command(client: Redis, keys: Keys, name: str, timeout: float = COMMAND_TIMEOUT,
                       **args: Any) -> dict[str, Any]:
    """Put a command on the site's command stream and wait for the service's answer."""
    command_id = uuid.uuid4().hex
    doc = {"id": command_id, "cmd": name, "user": login_name(), "host": socket.gethostname(),
           "at": time.time(), **args}
    await client.xadd(keys.commands, {"c": json.dumps(doc)}, maxlen=COMMANDS_MAXLEN, approximate=True)
    deadline = time.monotonic() + timeout
    # Blocking in slices shorter than the client's socket timeout (client_for's may be under
    # the 2 s it was taken for: the read then timed out and raised instead of answering).
    socket_timeout = client.connection_pool.connection_kwargs.get("socket_timeout") or COMMAND_TIMEOUT
    answer = None
    while answer is None:
        left = deadline - time.monotonic()
        if left <= 0:
            return {"ok": False, "error": f"the service did not answer within {timeout:g} s"}
        answer = await client.blpop([keys.reply(command_id)],
                                    timeout=round(max(0.05, min(2.0, left, socket_timeout / 2)), 2))
    try:
        reply: dict[str, Any] = json.loads(answer[1])
    except ValueError:
        return {"ok": False, "error": "the service's answer cannot be read"}
    return reply
