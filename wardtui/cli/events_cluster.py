"""``wardtui events`` of a site published by ``serve --cluster`` members (issue 16 item 5): one
:class:`~wardtui.cli.events.Follower` per live member, every line naming its member (``poller``).

``--since-snapshot``: the members' snapshots are read first and their device lines merged, each
device once, from the member its shard's lease names (else from the member with the newest
snapshot that has it: a takeover whose new owner has not published yet), then each member's
stream follows from the entry its snapshot covers. Members joining are followed from their first
snapshot (their device lines then say where the devices moved); members leaving are let go.
What is said on stderr names the member."""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import TYPE_CHECKING, Any, TextIO

from poller.text import escaped
from wardtui.cli.common import UsageError
from wardtui.cli.events import Follower, ReaderGone
from wardtui.messages import error

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from poller.feed import ServiceInfo
    from poller.live import Keys

LOOK_PERIOD = 2.0  # seconds between looks at the members
COMPLETE_WAIT = 5.0  # seconds --since-snapshot waits for every device (a hand-over between snapshots)


async def cluster_members(client: Redis, url: str, keys: Keys) -> dict[str, ServiceInfo] | None:
    """The live members publishing ``keys``' site, or None when its service publishes it (or
    nobody does, or Redis cannot be read: the plain follower says so)."""
    from redis.exceptions import RedisError

    from poller.cluster_feed import look_at_site
    from poller.feed import is_live, read_service

    try:
        if is_live(await read_service(client, keys)):
            return None
        members = (await look_at_site(client, keys)).members
    except (RedisError, OSError):
        return None
    return members or None


class ClusterFollower:
    """What :func:`wardtui.cli.events._main` runs for a cluster: ``start``, ``follow``, ``close``."""

    def __init__(self, client: Redis, url: str, keys: Keys, out: TextIO, since_snapshot: bool,
                 members: dict[str, ServiceInfo]) -> None:
        self.client = client
        self.url = url
        self.keys = keys
        self.out = out
        self.since_snapshot = since_snapshot
        self.first = sorted(members)
        # Every device of the site (each member's heartbeat says how many): a device handed
        # over between two members' snapshots is in neither for a moment.
        self.site_devices = max((m.site_devices or 0 for m in members.values()), default=0)
        self.followers: dict[str, Follower] = {}
        self.tasks: dict[str, asyncio.Task[None]] = {}
        self.owners: tuple[str | None, ...] = ()
        self.stopping = False
        self.reader_gone = False
        self._devices: dict[str, list[dict[str, Any]]] = {}  # the first snapshots', to merge

    async def start(self) -> None:
        from poller.cluster_feed import look_at_site

        for poller in self.first:
            await self._add(poller, merge=True)
        if not self.followers:
            raise UsageError(f"no member of the cluster publishing site {self.keys.site} could be "
                             "followed", 1)
        if self.since_snapshot:
            await self._complete()
            with contextlib.suppress(Exception):
                self.owners = (await look_at_site(self.client, self.keys)).owners
            self._write_merged()

    async def _complete(self) -> None:
        """Read the members' snapshots again (a little later) until they hold every device of the
        site between them, for :data:`COMPLETE_WAIT` s at most; then say what is missing."""
        import time

        deadline = time.monotonic() + COMPLETE_WAIT
        while True:
            names = {r["device"] for records in self._devices.values() for r in records}
            if len(names) >= self.site_devices:
                return
            if time.monotonic() >= deadline:
                error(f"site {self.keys.site}: the members' snapshots hold {len(names)} of the site's "
                      f"{self.site_devices} devices (the others are being handed over): only theirs "
                      "are printed")
                return
            await asyncio.sleep(0.3)
            for follower in self.followers.values():
                follower.device_sink = self._collect
                try:
                    await follower._resync(follower.client, None)  # type: ignore[arg-type]
                except Exception as exc:  # (a lost Redis: the stream's follower says it next)
                    error(f"site {self.keys.site}: {escaped(str(exc))}")
                    return
                finally:
                    follower.device_sink = None

    async def _add(self, poller: str, merge: bool = False) -> None:
        from poller.feed import client_for

        follower = Follower(client_for(self.url), self.url, self.keys.of_poller(poller), self.out,
                            self.since_snapshot)
        follower.poller = poller
        if merge:
            follower.device_sink = self._collect
        try:
            await follower.start()
        except UsageError as exc:
            error(f"cluster member {escaped(poller)}: {exc}; not followed")
            await follower.close()
            return
        follower.device_sink = None  # later device lines (a resync) are printed as they come
        self.followers[poller] = follower

    def _collect(self, poller: str, records: list[dict[str, Any]]) -> None:
        self._devices[poller] = records

    def _write_merged(self) -> None:
        """Each device once: from its shard's owner when that member has it, else from the
        newest snapshot that does."""
        from poller.cluster.shards import shard_of

        owners = self.owners
        chosen: dict[str, dict[str, Any]] = {}
        newest_last = sorted(self._devices.values(), key=lambda records: records[0]["at"] if records else "")
        for records in newest_last:
            for record in records:
                name = record["device"]
                held = chosen.get(name)
                if held is not None and owners:
                    owner = owners[shard_of(record["branch"] or name, len(owners))]
                    if held["poller"] == owner:
                        continue  # already from its owner
                chosen[name] = record
        self._devices.clear()
        if chosen:
            try:
                self.out.write("".join(json.dumps(r) + "\n" for r in chosen.values()))
                self.out.flush()
            except BrokenPipeError:
                raise ReaderGone from None

    async def follow(self) -> None:
        """Follow every member; look at the members every :data:`LOOK_PERIOD` seconds."""
        from redis.exceptions import RedisError

        from poller.cluster_feed import look_at_site

        for poller, follower in self.followers.items():
            self.tasks[poller] = asyncio.create_task(follower.follow())
        while not self.stopping:
            for task in self.tasks.values():
                if task.done() and not task.cancelled() and isinstance(task.exception(), ReaderGone):
                    raise ReaderGone
            await asyncio.sleep(LOOK_PERIOD)
            try:
                found = await look_at_site(self.client, self.keys)
            except (RedisError, OSError):
                continue  # each member's follower says what it sees of Redis
            for poller in sorted(found.members.keys() - self.followers.keys()):
                await self._add(poller)
                if poller in self.followers:
                    error(f"site {self.keys.site}: cluster member {escaped(poller)} joined: followed")
                    self.tasks[poller] = asyncio.create_task(self.followers[poller].follow())
            for poller in sorted(self.followers.keys() - found.members.keys()):
                error(f"site {self.keys.site}: cluster member {escaped(poller)} left")
                await self._drop(poller)

    async def _drop(self, poller: str) -> None:
        follower = self.followers.pop(poller)
        follower.stopping = True
        task = self.tasks.pop(poller, None)
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        await follower.close()

    async def close(self) -> None:
        from redis.exceptions import RedisError

        for poller in list(self.followers):
            await self._drop(poller)
        with contextlib.suppress(RedisError, OSError, RuntimeError):
            await self.client.aclose()
