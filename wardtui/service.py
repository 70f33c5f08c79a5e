"""``wardtui serve``, the run: the runtime without a screen until SIGTERM or SIGINT (history
flushed on the way out), SIGHUP reading the inventory again; its options are in wardtui/cli/serve.py.

Beside the runtime run its :class:`Service` s (the metrics server, the Redis publisher): started
once the runtime has started, stopped before it closes. :func:`services_for` is where they are
made from the command line's :class:`ServeOptions`.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import signal
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from poller.inventory_diff import InventoryDiff
from poller.live import DEFAULT_SITE
from store.schema import display_url
from wardtui.runtime import Runtime, StartupError

if TYPE_CHECKING:
    from poller.feed import Handler, Publisher
    from poller.notify.config import NotifyConfig

log = logging.getLogger("wardtui.serve")

_STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
DIFF_LINES = 50
"""Devices listed one per line in a reload's log; beyond, a count (a reload of a 50,000-device
inventory must not write 50,000 lines)."""
KEPT_IN_FORCE = "the inventory in force stays as it was."


@dataclass(frozen=True, slots=True)
class ServeOptions:
    """What ``wardtui serve`` was told beyond the runtime's :class:`~wardtui.runtime.Options`."""

    inventory: Path
    redis_url: str | None = None  # checked (wardtui/cli/serve.py); its password is never logged
    site: str = DEFAULT_SITE  # [A-Za-z0-9_.-]{1,64}: the deployment's name on Redis
    metrics: tuple[str, int] | None = None  # (host, port) to serve metrics on
    device_metrics: bool = True  # per-device series too (--no-device-metrics: totals only)
    notify: NotifyConfig | None = None  # --notify FILE, read and checked (wardtui/notifying.py)
    cluster: bool = False  # --cluster: a member of the site's pollers (wardtui/cluster.py)
    lease_ttl: float = 10.0  # --lease-ttl: the shard leases' TTL (seconds)
    poller_id: str | None = None  # set by serve() for a cluster member: its feed's keys


class Service(Protocol):
    """Something that runs as long as the service does, on the engine's loop."""

    name: str

    async def start(self) -> None:
        """Begin (the runtime has started: the store is open, the engine about to run)."""
        ...

    async def stop(self) -> None:
        """End; called once, before the runtime flushes the history and closes."""
        ...


ServiceFactory = Callable[[Runtime, ServeOptions], list[Service]]


def services_for(runtime: Runtime, options: ServeOptions) -> list[Service]:
    """The services ``options`` ask for, in the order they start (they stop in reverse).

    The seam for issue 14's companions; each reads the engine (``runtime.engine``: trackers,
    ``last_gauges``, ``bus.subscribe``, ``inventory_version``, ``on_inventory_change``).
    """
    services: list[Service] = []
    if options.metrics is not None:
        host, port = options.metrics
        services.append(MetricsService(runtime, host, port, per_device=options.device_metrics))
    if options.redis_url is not None:
        # A cluster member publishes its own devices under its own keys (Keys.of_poller); the
        # viewers merge the members' feeds (poller/cluster_feed.py).
        poller = options.poller_id if options.cluster else None
        services.append(FeedService(runtime, options.redis_url, options.site, poller,
                                    options.lease_ttl if poller is not None else None))
    if options.notify is not None and options.cluster:
        from wardtui.cluster_notify import ClusterNotifyService  # the member holding its lease

        assert options.redis_url is not None  # (wardtui/cli/serve.py refuses --cluster without)
        services.append(ClusterNotifyService(runtime, options.notify, options.site, options.redis_url,
                                             options.lease_ttl))
    elif options.notify is not None:
        from wardtui.notifying import NotifyService

        services.append(NotifyService(runtime, options.notify, options.site))
    return services


class FeedService:
    """poller/feed.py's Publisher (``--redis URL --site NAME``): the live feed viewers attach to.
    It runs as a companion of the engine (started and stopped with it) and reads a reloaded
    inventory from ``engine.inventory_version`` at its next snapshot."""

    name = "the live feed"

    def __init__(self, runtime: Runtime, url: str, site: str, poller: str | None = None,
                 lease_ttl: float | None = None) -> None:
        from poller.feed import Publisher, ServiceInfo
        from poller.live import Keys
        from wardtui import __version__

        self.url = url
        keys = Keys(site) if poller is None else Keys(site).of_poller(poller)
        self.publisher = Publisher(runtime.engine, url, keys,
                                   ServiceInfo.here(__version__, len(runtime.engine.trackers), poller,
                                                    lease_ttl))
        runtime.engine.companions.append(self.publisher)
        runtime.engine.gauge_sources.append(self.publisher.gauges)
        # The windows and acknowledgements: published with the snapshots, changed by commands.
        self.publisher.quiet_source = runtime.quiet_now
        if poller is not None:  # a cluster member publishes its devices: the site has these many
            self.publisher.site_devices = lambda: len(runtime.devices)
        self.publisher.handlers.update(quiet_handlers(runtime))

    async def start(self) -> None:
        """A refused password is the operator's to fix (exit 2); Redis down is not: the
        publisher says so and retries while polling and history go on."""
        from redis.exceptions import AuthenticationError, RedisError

        from poller.feed import client_for, describe_error, shown_url
        from poller.redis_url import UnknownService

        client = client_for(self.url)
        try:
            await client.ping()
        except (AuthenticationError, UnknownService) as exc:
            raise StartupError(f"--redis {shown_url(self.url)}: {describe_error(exc, self.url)}",
                               code=2) from None
        except (RedisError, OSError):
            pass  # the publisher logs it and retries
        finally:
            with contextlib.suppress(RedisError, OSError, RuntimeError):
                await client.aclose()

    async def stop(self) -> None:
        self.publisher.stop()  # the engine awaits it with its companions


def quiet_handlers(runtime: Runtime) -> dict[str, Handler]:
    """The live feed's commands for issue 15: ``ack`` and ``maintenance`` from an attached
    dashboard's ``a`` and ``m`` (written here, the poller's database), and ``quiet`` from
    ``wardtui ack`` and ``wardtui maintenance``, which wrote the database themselves: each reads
    the quiet state again at once, so every viewer and the notifier see it within a second.
    Who is the login name the command carries (data: stored as sent, shown escaped)."""

    def who(doc: dict[str, Any]) -> str:
        return str(doc.get("user", "?"))[:64]

    async def ack(_: Publisher, doc: dict[str, Any]) -> dict[str, Any]:
        return await runtime.acknowledge(doc.get("device"), doc.get("note"), who(doc))  # type: ignore[arg-type]

    async def maintenance(_: Publisher, doc: dict[str, Any]) -> dict[str, Any]:
        return await runtime.add_maintenance(doc.get("matchers"), doc.get("duration_s"),  # type: ignore[arg-type]
                                             doc.get("note"), who(doc))  # type: ignore[arg-type]

    async def quiet(_: Publisher, doc: dict[str, Any]) -> dict[str, Any]:
        return await runtime.reread_quiet(who(doc))

    return {"ack": ack, "maintenance": maintenance, "quiet": quiet}


class MetricsService:
    """poller/metrics.py's Prometheus server (``--metrics HOST:PORT``): it reads the engine's last
    gauges and its trackers at each scrape, so a reloaded inventory shows at the next one."""

    name = "the metrics server"

    def __init__(self, runtime: Runtime, host: str, port: int, per_device: bool = True) -> None:
        from poller.metrics import MetricsServer  # prometheus_client: only for runs that serve it

        self.server = MetricsServer(runtime.engine, per_device=per_device)
        self.host, self.port = host, port

    async def start(self) -> None:
        try:
            self.server.start(self.host, self.port)
        except OSError as exc:  # "metrics: cannot listen on HOST:PORT: Address already in use"
            raise StartupError(str(exc)) from None
        where = f"[{self.host}]" if ":" in self.host else self.host
        log.info("metrics on http://%s:%d/metrics", where, self.server.port)

    async def stop(self) -> None:
        await asyncio.to_thread(self.server.close)  # blocks up to half a second


class Reloader:
    """SIGHUP: read the inventory again, off the loop, and apply the difference; one reload at
    a time (a SIGHUP during one makes one more after it). A broken inventory is refused with
    every problem logged, and the one in force stays."""

    def __init__(self, runtime: Runtime, path: Path) -> None:
        self.runtime = runtime
        self.path = path
        self.pending = False
        self.ready = False  # the engine runs: reloads may be applied
        self.done = 0  # reloads finished (applied or refused), for tests
        self._task: asyncio.Task[None] | None = None

    def request(self) -> None:
        log.info("SIGHUP: reading the inventory %s again", self.path)
        self.pending = True
        self._kick()

    def start(self) -> None:
        self.ready = True
        self._kick()

    def _kick(self) -> None:
        if self.ready and self.pending and (self._task is None or self._task.done()):
            self._task = asyncio.create_task(self._run(), name="wardtui-reload")

    async def _run(self) -> None:
        while self.pending:
            self.pending = False
            await self.reload()
            self.done += 1

    async def reload(self) -> InventoryDiff | None:
        """Read and apply the inventory once; the difference applied, or None if refused."""
        try:
            devices, agents = await asyncio.to_thread(self.runtime.read_inventory, self.path,
                                                      _progress, KEPT_IN_FORCE)
        except StartupError as exc:
            log.error("the inventory %s was refused:", self.path)
            for line in str(exc).splitlines():
                log.error("%s", line)
            return None
        except Exception as exc:  # a bug must not end the service that runs the old inventory
            log.error("reading the inventory %s failed: %s: %s; %s", self.path, type(exc).__name__, exc,
                      KEPT_IN_FORCE)
            return None
        diff = await self.runtime.apply_inventory(devices, agents)
        if diff.empty:
            log.info("inventory %s: no change (%d devices)", self.path, len(devices))
            return diff
        log.info("inventory %s applied (version %d): %s", self.path,
                 self.runtime.engine.inventory_version, diff.summary())
        lines = diff.lines()
        for line in lines[:DIFF_LINES]:
            log.info("%s", line)
        if len(lines) > DIFF_LINES:
            log.info("... and %d more", len(lines) - DIFF_LINES)
        return diff

    async def close(self) -> None:
        self.ready = False
        if self._task is not None and not self._task.done():
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)


def _progress(message: str) -> None:
    log.info("%s", message)


async def serve(runtime: Runtime, options: ServeOptions,
                make_services: ServiceFactory = services_for) -> int:
    """Run until SIGTERM or SIGINT; then stop the services and flush the history.

    Returns 0, or 1 when history rows could not be written. Raises
    :class:`~wardtui.runtime.StartupError` when the runtime cannot start.
    """
    engine = runtime.engine
    loop = asyncio.get_running_loop()
    reloader = Reloader(runtime, options.inventory)

    def stop(sig: signal.Signals) -> None:
        log.info("%s: stopping", sig.name)
        engine.stop()

    for sig in _STOP_SIGNALS:
        loop.add_signal_handler(sig, stop, sig)
    loop.add_signal_handler(signal.SIGHUP, reloader.request)
    started: list[Service] = []
    lost = 0
    member = None
    if options.cluster:
        from wardtui.cluster import ClusterMember

        assert options.redis_url is not None  # (wardtui/cli/serve.py refuses --cluster without)
        # Before the start: the history writer writes through the member's fenced sink.
        member = ClusterMember(runtime, options.redis_url, options.site, options.lease_ttl)
        options = dataclasses.replace(options, poller_id=member.leases.id)  # its feed's keys
    try:
        await runtime.start()
        runtime.settle_after_first_round()
        for service in make_services(runtime, options):
            try:
                await service.start()
            except StartupError:
                engine.stop()
                raise
            except Exception as exc:  # a server that refuses: the operator's to fix, in one line
                engine.stop()
                raise StartupError(f"cannot start {service.name}: {type(exc).__name__}: {exc}") from None
            started.append(service)
        if member is not None:
            try:
                await member.start()
            except StartupError:
                engine.stop()
                raise
        snmp = len(runtime.snmp) if runtime.snmp is not None else 0
        if member is None:
            log.info("monitoring %d devices (%d with SNMP) from %s; history in %s", len(engine.trackers),
                     snmp, options.inventory, display_url(runtime.store.url))
        else:
            log.info("monitoring, as a cluster member, the devices of the shards it holds among %d from %s; "
                     "history in %s", len(runtime.devices), options.inventory, display_url(runtime.store.url))
        reloader.start()
        await engine.run()
    finally:
        # The handlers stay until the history is flushed: a second SIGTERM must not cut it short.
        await reloader.close()
        if member is not None:
            await member.quiesce()
        for service in reversed(started):
            try:
                await service.stop()
            except Exception as exc:  # the history is flushed whatever a service does
                log.error("stopping %s failed: %s: %s", service.name, type(exc).__name__, exc)
        lost = await runtime.close()
        if member is not None:
            # After the flush: the last transitions are written under epochs still current.
            await member.stop()
        for sig in (*_STOP_SIGNALS, signal.SIGHUP):
            loop.remove_signal_handler(sig)
    if lost:
        log.error("%d history rows could not be written (database unavailable)", lost)
        return 1
    if member is not None and member.refused is not None:
        return 2
    log.info("stopped; history flushed")
    return 0
