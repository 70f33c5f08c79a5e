"""A dashboard attached to a service (``wardtui serve``) over Redis, instead of polling itself.

:class:`AttachedRuntime` stands where :class:`wardtui.runtime.Runtime` stands for the app: its
``engine`` is a :class:`poller.feed.LiveFeed` (trackers and a bus, fed by the service's snapshot
and stream), its ``store`` is the history database opened to read (never migrated, never
written: the service owns it), and operator actions go to the service as commands.
It imports neither textual nor rich.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from redis.exceptions import AuthenticationError, RedisError

from poller.cluster_feed import ClusterFeed
from poller.feed import (
    REDIS_ENV,
    FeedUrlError,
    LiveFeed,
    ServiceInfo,
    client_for,
    describe_error,
    is_live,
    read_service,
    shown_url,
)
from poller.live import DEFAULT_SITE, FeedFormatError, Keys, check_site
from poller.redis_url import UnknownService
from poller.text import escaped
from store.db import database_url
from store.dburl import failure
from store.queries import Retention
from wardtui.process import GUEST, ProcessPolicy
from wardtui.runtime import Options, StartupError

if TYPE_CHECKING:
    from poller.quiet import Quiet
    from store.history import HistoryStore

log = logging.getLogger(__name__)



@dataclass(frozen=True, slots=True)
class Site:
    """Where a site's live feed is: the Redis URL (as given) and the site's keys."""

    url: str
    keys: Keys

    @property
    def name(self) -> str:
        return self.keys.site


def site_from(redis: str | None, site: str | None) -> Site | None:
    """The site the operator named (``--redis`` or ``$WARDTUI_REDIS``), or None for none.

    Raises StartupError (code 2) for a site name or URL that cannot be used."""
    url = redis or os.environ.get(REDIS_ENV, "")
    if not url:
        return None
    try:
        keys = Keys(check_site(site or DEFAULT_SITE))
        client_for(url)  # checks the URL's form; connects nowhere yet
    except (ValueError, FeedUrlError) as exc:
        raise StartupError(f"{exc}", code=2) from None
    return Site(url, keys)


async def live_service(site: Site) -> ServiceInfo | None:
    """The site's service if one publishes now, else a live member of its cluster (``poller``
    set: ``serve --cluster``); None when none does or Redis cannot be reached (the dashboard
    then polls itself). A refused password is the operator's to fix: code 2."""
    from poller.cluster_feed import look_at_site

    client = client_for(site.url)
    try:
        info = await read_service(client, site.keys)
        if not is_live(info):
            members = (await look_at_site(client, site.keys)).members
            info = members[min(members)] if members else info
    except (AuthenticationError, UnknownService) as exc:
        raise StartupError(f"--redis {shown_url(site.url)}: {describe_error(exc, site.url)}",
                           code=2) from None
    except (RedisError, OSError) as exc:
        log.warning("Redis %s: %s", shown_url(site.url), describe_error(exc, site.url))
        return None
    finally:
        with contextlib.suppress(RedisError, OSError, RuntimeError):
            await client.aclose()
    return info if is_live(info) else None


class AttachedRuntime:
    """What the app runs when a live service publishes the site: nothing polls here."""

    attached = True

    def __init__(self, site: Site, options: Options, process: ProcessPolicy = GUEST,
                 cluster: bool = False) -> None:
        self.site = site
        self.options = options
        self.process = process
        self.cluster = cluster  # the site is published by serve --cluster members: merged
        self.engine: LiveFeed | ClusterFeed = (ClusterFeed(site.url, site.keys) if cluster else
                                               LiveFeed(site.url, site.keys))
        try:
            self.url = database_url(options.db, create=False)
        except (ValueError, OSError) as exc:
            raise StartupError(f"--db: {exc}", code=2) from None
        # The history store (SQLAlchemy and its drivers) is made when first used: the app opens
        # it after its first frame (wardtui/app.py), and the screens read it after that.
        self._store: HistoryStore | None = None
        self.history_off: str | None = None
        self.snmp = None

    @property
    def store(self) -> HistoryStore:
        """The history database, opened to read by :meth:`start`."""
        if self._store is None:
            from store.history import HistoryStore

            self._store = HistoryStore(self.url)
        return self._store

    @property
    def devices(self) -> list[Any]:
        return [t.device for t in self.engine.trackers.values()]

    @property
    def retention(self) -> Retention:
        o = self.options
        return Retention(raw=o.keep_raw, minute=o.keep_1m, hour=o.keep_1h)

    async def attach(self) -> None:
        """Load the site's inventory and snapshot (before the first frame: the screens are built
        from them). Raises StartupError when no live service publishes it any more."""
        from poller.feed import NoService

        try:
            await self.engine.attach()
        except NoService as exc:
            raise StartupError(str(exc), code=1) from None
        except (RedisError, OSError) as exc:
            raise StartupError(f"Redis {shown_url(self.site.url)}: "
                               f"{describe_error(exc, self.site.url)}") from None
        except FeedFormatError as exc:  # another wardtui's format, or keys written by hand
            raise StartupError(f"site {self.site.name!r} on Redis {shown_url(self.site.url)}: {exc}",
                               code=2) from None

    async def start(self) -> None:
        """Open the history to read. It is not an error to have none here: the screens say so."""
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import SQLAlchemyError

        from store.schema import SchemaError, display_url

        parsed = make_url(self.url)
        path = parsed.database
        if parsed.get_backend_name() == "sqlite" and path not in (None, "", ":memory:") \
                and not Path(str(path)).is_file():
            self.history_off = (f"no history at {path}: the service writes its own database; "
                                "give it with --db to read history here")
            raise StartupError(self.history_off)
        try:
            await self.store.open()
        except SchemaError as exc:
            self.history_off = str(exc)
            raise StartupError(self.history_off, code=2) from None
        except (SQLAlchemyError, OSError) as exc:
            self.history_off = (f"cannot open the history database {display_url(self.url)}: "
                                f"{failure(exc, self.url)}")
            raise StartupError(self.history_off) from None
        finally:
            self.process.store_started()

    async def check_schema(self) -> None:
        """Nothing to refuse here: an attached dashboard never writes the database."""

    async def probe_now(self, name: str) -> dict[str, Any]:
        """Ask the service to check ``name`` now; its answer."""
        return await self.engine.command("probe", device=name)

    def quiet_now(self) -> Quiet:
        """The windows and acknowledgements in force, as the service last published them."""
        return self.engine.quiet

    async def acknowledge(self, device: str, note: str) -> dict[str, Any]:
        """Ask the service to acknowledge ``device``'s outage (it writes the database and
        publishes the change to every viewer); its answer."""
        return await self.engine.command("ack", device=device, note=note)

    async def add_maintenance(self, matchers: list[str], duration_s: float, note: str) -> dict[str, Any]:
        """Ask the service for a maintenance window from now; its answer."""
        return await self.engine.command("maintenance", matchers=matchers, duration_s=duration_s, note=note)

    async def close(self) -> int:
        await self.engine.stopped()
        if self._store is not None:
            await self._store.close()
        return 0

    def describe(self) -> str:
        """The title bar's line: attached to what, since when."""
        info = self.engine.service
        if info is None:
            return f"attached to {self.site.name}"
        if isinstance(self.engine, ClusterFeed):
            return f"attached to {self.site.name}, a cluster of {len(self.engine.feeds)} pollers"
        since = info.started
        with contextlib.suppress(ValueError):
            since = datetime.fromisoformat(info.started).astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
        return f"attached to {self.site.name}, service on {escaped(info.host)} since {escaped(since)}"


def attach_or_none(site: Site | None) -> ServiceInfo | None:
    """Whether to attach: the live service of ``site``, or None (no site, no service, no Redis)."""
    if site is None:
        return None
    return asyncio.run(live_service(site))
