"""``wardtui events``: a site's live feed as JSON lines, in ``wardtui poll --jsonl``'s schema.

It reads the keys itself (poller/live.py decodes them) rather than through LiveFeed, because an
event log wants what a viewer's screen does not: every stream entry once, in order, with what it
carries beyond the event (``by`` on a check an operator asked for), and resumption from the last
entry read. So a Redis connection that drops and comes back loses nothing the stream still holds;
what it does not hold any more is found by the entries' numbers (``n``, per service run) and said
on stderr with its time span, never skipped silently.

``--since-snapshot`` first prints one ``device`` line per device from the snapshot, then the
events after it; it prints the device lines again whenever events went missing or the service
restarted, so a reader that keeps state from them never drifts."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import getpass
import json
import os
import select
import signal
import socket
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TextIO

from poller.text import escaped
from wardtui.cli.common import Commands, UsageError, command, failed
from wardtui.cli.feed_common import (
    add_feed_options,
    clock,
    connect,
    feed_target,
    from_ms,
    no_service_text,
    redis_failure,
    silence_stdout,
)
from wardtui.messages import error

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from poller.live import Keys
    from wardtui.cli.events_cluster import ClusterFollower

EXAMPLES = """\
examples:
  wardtui events --jsonl | jq 'select(.type=="transition")'
  wardtui events --site paris-dc1 --jsonl --since-snapshot > paris.jsonl
  WARDTUI_REDIS=redis://:PASSWORD@redis.example.net wardtui events --jsonl | head -n 20

Runs until SIGINT or SIGTERM, or until its reader goes away (| head). Lines on stderr say when
the feed was lost and back, and which events the stream no longer held (history and outages
have them). exit codes: 0 stopped, 1 no live service for the site or Redis unreachable at
start, 2 bad options, URL, password or permissions.
"""

_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
_PRESENCE_PERIOD = 5.0
_SERVICE_PERIOD = 5.0
_READ_COUNT = 10_000
_BLOCK_MS = 1000  # under the client's socket timeout, and how soon a stop or a gone reader is seen
_SNAPSHOT_WAIT = 5.0  # seconds a resynchronisation waits for the new run's first snapshot
_MISSED_HINT = "`wardtui history`/`outages` have them"


def register(sub: Commands) -> None:
    events = command(sub, "events", run, "follow a site's live events (wardtui serve) as JSON lines",
                     EXAMPLES,
                     description="Follow the events a wardtui serve publishes on Redis (transitions, "
                                 "flapping, reboots,\ninterfaces, SNMP agents, traps, gauges, checks "
                                 "an operator asked for), one JSON object a line,\nin the schema of "
                                 "wardtui poll --jsonl.")
    add_feed_options(events)
    events.add_argument("--jsonl", action="store_true",
                        help="one JSON object per line (required: the only output format, so that a "
                             "later one for people cannot change what scripts read)")
    events.add_argument("--since-snapshot", action="store_true",
                        help='first one {"type": "device", ...} line per device (its state in the '
                             "snapshot), then the events after it; again after events went missing "
                             "or the service restarted")


def run(args: argparse.Namespace) -> int:
    if not args.jsonl:
        error("events: only --jsonl output exists (wardtui events --jsonl)")
        return 2
    try:
        url, keys = feed_target(args)
        client = connect(url)
    except UsageError as exc:
        return failed(exc)
    made: list[Follower | ClusterFollower] = []
    try:
        return asyncio.run(_main(client, url, keys, args.since_snapshot, made))
    except UsageError as exc:
        return failed(exc)
    except KeyboardInterrupt:  # before the handlers were in place
        return 0
    finally:
        if made and made[0].reader_gone:
            silence_stdout()


async def _main(client: Redis, url: str, keys: Keys, since_snapshot: bool,
                made: list[Follower | ClusterFollower]) -> int:
    """Follow the site: its service's stream, or (no service, ``serve --cluster`` members
    publish it) every member's, merged (wardtui/cli/events_cluster.py)."""
    from wardtui.cli.events_cluster import ClusterFollower, cluster_members

    members = await cluster_members(client, url, keys)
    follower: Follower | ClusterFollower = (
        Follower(client, url, keys, sys.stdout, since_snapshot) if members is None else
        ClusterFollower(client, url, keys, sys.stdout, since_snapshot, members))
    made.append(follower)
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    assert task is not None

    def stop() -> None:
        # The flag too: a cancellation that lands inside the Redis client can come out of it as a
        # connection error, which the loop would take for a lost feed and retry.
        follower.stopping = True
        task.cancel()

    for sig in _STOP_SIGNALS:
        loop.add_signal_handler(sig, stop)
    try:
        await follower.start()
        await follower.follow()
    except asyncio.CancelledError:
        task.uncancel()  # a stop signal: exit 0, after the clean-up below
    except ReaderGone:
        follower.reader_gone = True
    finally:
        for sig in _STOP_SIGNALS:  # a second signal during the clean-up ends the process at once
            loop.remove_signal_handler(sig)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(follower.close(), 2.0)
    return 0


class ReaderGone(Exception):
    """Nobody reads stdout any more (``| head`` has what it wanted)."""


class Unreadable(Exception):
    """The site's keys hold something this wardtui cannot read, or do not agree."""


class Follower:
    """Follows one site's event stream from a position: the last entry read, its number and its
    service run (the number restarts at 1 with each run)."""

    def __init__(self, client: Redis, url: str, keys: Keys, out: TextIO, since_snapshot: bool) -> None:
        self.client: Redis | None = client
        self.url = url
        self.keys = keys
        self.out = out
        self.since_snapshot = since_snapshot
        self.reader_gone = False
        self.stopping = False
        self._failure_said = ""
        self.last_id = "0-0"
        self.last_n = -1  # -1: not known (the next entry is taken as it comes)
        self.run = ""
        self.service_live = True
        self.viewer = f"{_user()}@{socket.gethostname()}:{os.getpid()} (wardtui events)"
        self._next_presence = 0.0
        self._next_service = time.monotonic() + _SERVICE_PERIOD
        self._poll = _broken_pipe_poller(out)
        # A cluster member's feed (wardtui/cli/events_cluster.py): every line names the member,
        # and its device lines may go to the cluster's follower to merge instead of out.
        self.poller: str | None = None
        self.device_sink: Callable[[str, list[dict[str, Any]]], None] | None = None

    # -- start -------------------------------------------------------------------------------
    async def start(self) -> None:
        """Check that a service publishes and take the start position; UsageError otherwise."""
        from redis.exceptions import RedisError

        from poller.feed import is_live, read_service
        from poller.live import FeedFormatError

        client = self.client
        assert client is not None
        try:
            info = await read_service(client, self.keys)
            if not is_live(info):
                raise UsageError(no_service_text(self.keys, self.url, *_who(info)), 1)
            if self.since_snapshot:
                await self._resync(client, None)
            else:
                await self._at_end(client)
        except (RedisError, OSError) as exc:
            raise redis_failure(exc, self.url) from None
        except (FeedFormatError, Unreadable) as exc:
            raise UsageError(f"site {self.keys.site}: {exc}", 1) from None

    async def _at_end(self, client: Redis) -> None:
        """The position of the stream's last entry: what comes after it is printed."""
        from poller.live import FeedFormatError, decode_snapshot

        pipe = client.pipeline(transaction=True)
        pipe.xrevrange(self.keys.events, "+", "-", count=1)
        pipe.get(self.keys.snapshot)
        last, blob = await pipe.execute()
        if last:
            entry_id, fields = last[0]
            self._take_position(entry_id, fields)
        with contextlib.suppress(FeedFormatError):
            started = decode_snapshot(blob).started if blob is not None else ""
            if started and self.run and started != self.run:
                # The service restarted before we came and has streamed nothing yet: its first
                # event will be its number 1, not a restart to report.
                self.run, self.last_n = started, 0

    async def _resync(self, client: Redis, run: str | None) -> None:
        """Print a device line per device from the snapshot (of service run ``run``, when given:
        waited for a little) and follow the stream from the entry it covers."""
        from poller.live import FeedFormatError, decode_inventory, decode_snapshot, entry_events

        deadline = time.monotonic() + _SNAPSHOT_WAIT
        while True:
            pipe = client.pipeline(transaction=True)  # the two keys of one publication
            pipe.get(self.keys.snapshot)
            pipe.get(self.keys.inventory)
            blob, raw = await pipe.execute()
            if blob is None or raw is None:
                raise Unreadable("no snapshot or inventory on Redis (the service has not published one, "
                                 "or Redis restarted empty)")
            snap = decode_snapshot(blob)
            if run is None or snap.started == run:
                break
            if time.monotonic() >= deadline:
                error(f"site {self.keys.site}: the restarted service has published no snapshot in "
                      f"{_SNAPSHOT_WAIT:.0f} s: these device lines are from before its restart")
                break
            await asyncio.sleep(0.2)
        inventory_id, devices = decode_inventory(raw, safe_text=False)  # printed as JSON: escaped
        if inventory_id != snap.inventory_id or len(devices) != len(snap.columns):
            raise FeedFormatError("the snapshot and the inventory on Redis do not match")
        at = snap.at.isoformat()
        records = [device_record(d, snap.columns.row(i), at) for i, d in enumerate(devices)]
        if self.poller is not None:
            for record in records:
                record["poller"] = self.poller
        if self.device_sink is not None and self.poller is not None:
            self.device_sink(self.poller, records)
        else:
            self._write([json.dumps(record) for record in records])
        # The run waited for, even when its snapshot did not come: not a restart again.
        self.last_id, self.last_n, self.run = snap.stream_id, -1, run or snap.started
        covered: Any = await client.xrange(self.keys.events, snap.stream_id, snap.stream_id, count=1)
        if covered:
            entry = entry_events(covered[0][1])
            if entry is not None and entry[1] == self.run:
                self.last_n = entry[0] + len(entry[2]) - 1
            elif entry is not None:
                self.last_n = 0  # the entry is another run's: this run streamed nothing before it

    def _take_position(self, entry_id: bytes | str, fields: dict[bytes, bytes]) -> None:
        from poller.live import entry_events

        self.last_id = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
        entry = entry_events(fields)
        if entry is not None:
            self.last_n, self.run = entry[0] + len(entry[2]) - 1, entry[1]

    # -- following ---------------------------------------------------------------------------
    async def follow(self) -> None:
        """Print the stream's entries until cancelled or the reader goes away; Redis failures are
        said on stderr and retried with backoff."""
        from redis.exceptions import RedisError

        from poller.live import FeedFormatError

        lost_at: datetime | None = None
        attempt = 0
        while not self.stopping:
            self._check_reader()
            client = self.client
            if client is None:
                client = await self._reconnect(attempt, lost_at)
                attempt += 1
                if client is None:
                    continue
                lost_at, attempt = None, 0
            try:
                await self._housekeeping(client)
                answer: Any = await client.xread({self.keys.events: self.last_id}, count=_READ_COUNT,
                                                 block=_BLOCK_MS)
                for _stream, entries in answer or []:
                    await self._print(client, entries)
            except (RedisError, OSError) as exc:
                if self.stopping:
                    return
                lost_at = datetime.now(UTC)
                self._failure_said = str(redis_failure(exc, self.url))
                error(f"live feed lost at {clock(lost_at)} UTC: {self._failure_said}; reconnecting")
                await self._drop_client()
            except (FeedFormatError, Unreadable) as exc:
                error(f"site {self.keys.site}: {exc}; following the events without device lines")

    async def _print(self, client: Redis, entries: list[Any]) -> None:
        lines: list[str] = []
        for entry_id, fields in entries:
            resync_for = self._entry(entry_id, fields, lines)
            if resync_for is not None:
                self._write(lines)
                lines = []
                await self._resync(client, resync_for)
                return  # the rest of this batch is read again from the snapshot's position
        self._write(lines)

    def _entry(self, entry_id: bytes, fields: dict[bytes, bytes], lines: list[str]) -> str | None:
        """Add one entry's lines (one per event it carries) to ``lines``; with --since-snapshot,
        the run to resynchronise on when events went missing before it (or the service
        restarted)."""
        from poller.jsonl import event_record
        from poller.live import FeedFormatError, decode_event, entry_events

        text = entry_id.decode()
        previous_ms = int(self.last_id.partition("-")[0])
        entry = entry_events(fields)
        self.last_id = text
        if entry is None:
            return None
        n, run, docs = entry
        restarted = bool(self.run) and run != self.run
        if restarted:
            error(f"site {self.keys.site}: the service restarted (its run started {escaped(run[:40])})")
            missed = n - 1  # its first events
        elif self.run and self.last_n >= 0:
            missed = n - self.last_n - 1
        else:
            missed = 0  # no position to count from yet: this entry is the first
        if missed > 0:
            self._say_missed(missed, previous_ms, int(text.partition("-")[0]))
        self.last_n, self.run = n + len(docs) - 1, run
        if self.since_snapshot and (restarted or missed > 0):
            return run
        said = False
        for doc in docs:
            try:
                if not isinstance(doc, dict):
                    raise FeedFormatError("an event cannot be read: not an object")
                event = decode_event(doc)
            except FeedFormatError as exc:
                if not said:  # once an entry: a forged one may hold thousands
                    said = True
                    error(f"site {self.keys.site}: stream entry {text}: {exc}")
                continue
            record = None if event is None else event_record(event)
            if record is not None:
                if record["type"] == "check" and "by" in doc:
                    record["by"] = doc["by"]  # who asked for it (an operator's "probe now")
                if self.poller is not None:
                    record["poller"] = self.poller
                lines.append(json.dumps(record))
        return None

    def _say_missed(self, missed: int, from_ms_: int, to_ms: int) -> None:
        span = f"{clock(from_ms(from_ms_))} to {clock(from_ms(to_ms))} UTC" if from_ms_ else \
            f"before {clock(from_ms(to_ms))} UTC"
        again = "; the device lines follow again" if self.since_snapshot else ""
        error(f"live feed: {missed} event{'s' if missed != 1 else ''} of {span} are not on the stream "
              f"any more (trimmed, or lost while the service could not reach Redis): not shown; "
              f"{_MISSED_HINT}{again}")

    def _write(self, lines: list[str]) -> None:
        if not lines:
            return
        try:
            self.out.write("\n".join(lines) + "\n")
            self.out.flush()
        except BrokenPipeError:
            raise ReaderGone from None

    def _check_reader(self) -> None:
        """A pipe whose reader closed reports an error on poll: stop even while nothing is printed."""
        if self._poll is not None and self._poll.poll(0):
            raise ReaderGone

    # -- presence, the service, reconnection --------------------------------------------------
    async def _housekeeping(self, client: Redis) -> None:
        from redis.exceptions import ResponseError

        from poller.feed import is_live, read_service

        now = time.monotonic()
        if now >= self._next_presence:
            self._next_presence = now + _PRESENCE_PERIOD
            with contextlib.suppress(ResponseError):  # a read-only user: not counted, still follows
                await client.zadd(self.keys.viewers, {self.viewer: time.time()})
        if now >= self._next_service:
            self._next_service = now + _SERVICE_PERIOD
            info = await read_service(client, self.keys)
            live = is_live(info)
            if live != self.service_live:
                self.service_live = live
                if live:
                    assert info is not None
                    error(f"site {self.keys.site}: wardtui serve on {escaped(info.host)} (pid {info.pid}) "
                          "publishes again")
                else:
                    error(f"{no_service_text(self.keys, self.url, *_who(info))}; waiting for it")

    async def _reconnect(self, attempt: int, lost_at: datetime | None) -> Redis | None:
        from redis.exceptions import RedisError

        from poller.feed import BACKOFF, client_for

        await asyncio.sleep(BACKOFF[min(attempt, len(BACKOFF) - 1)])
        client = client_for(self.url)
        try:
            await client.ping()
        except (RedisError, OSError) as exc:
            with contextlib.suppress(RedisError, OSError, RuntimeError):
                await client.aclose()
            failure = str(redis_failure(exc, self.url))
            if failure != self._failure_said:  # a new reason (a password changed meanwhile): once
                self._failure_said = failure
                error(f"live feed still lost: {failure}; retrying")
            return None
        self.client = client
        self._failure_said = ""
        self._next_presence = self._next_service = 0.0
        if lost_at is not None:
            error(f"live feed back at {clock(datetime.now(UTC))} UTC (lost at {clock(lost_at)}); "
                  "following on from the last event printed")
        return client

    async def _drop_client(self) -> None:
        from redis.exceptions import RedisError

        client, self.client = self.client, None
        if client is not None:
            with contextlib.suppress(RedisError, OSError, RuntimeError):
                await client.aclose()

    async def close(self) -> None:
        from redis.exceptions import RedisError

        client = self.client
        if client is not None:
            with contextlib.suppress(RedisError, OSError, RuntimeError, TimeoutError):
                await asyncio.wait_for(client.zrem(self.keys.viewers, self.viewer), 1.0)
        await self._drop_client()


def device_record(device: Any, row: tuple[Any, ...], at: str) -> dict[str, Any]:
    """One device as the snapshot has it (``row`` is :meth:`poller.live.Columns.row`). The
    device's own type is ``device_type``: ``type`` says what the line is, as on every line."""
    state, flapping, down_since, last_change, last_rtt, _avg, jitter, loss = row
    return {"type": "device", "device": device.name, "address": device.address, "branch": device.branch,
            "region": device.region, "device_type": device.type, "state": state.value,
            "since": _iso(down_since), "last_change": _iso(last_change), "rtt_ms": _round(last_rtt, 3),
            "loss_pct": _round(loss, 2), "jitter_ms": _round(jitter, 3), "flapping": flapping, "at": at}


def _who(info: Any) -> tuple[str | None, int | None, float | None]:
    return (None, None, None) if info is None else (info.host, info.pid, info.age())


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _round(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return str(os.getuid())


def _broken_pipe_poller(out: TextIO) -> select.poll | None:
    """A poller that reports when ``out`` is a pipe nobody reads any more (None: not a pipe)."""
    import stat

    try:
        fd = out.fileno()
        if not stat.S_ISFIFO(os.fstat(fd).st_mode):
            return None
    except (OSError, ValueError, AttributeError):
        return None
    poller = select.poll()
    poller.register(fd, select.POLLERR)
    return poller
