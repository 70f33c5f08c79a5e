"""Wiring shared by the dashboard and headless mode: inventory -> engine -> store writer."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import re
import sys
from collections.abc import Awaitable, Callable, Collection, Coroutine
from dataclasses import dataclass, fields
from datetime import timedelta
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from poller.credentials import Credential, CredentialsError, default_credentials_path, load_credentials
from poller.engine import Engine, EngineConfig
from poller.inventory import Device, InventoryError, load_inventory
from poller.inventory_diff import InventoryDiff
from poller.prober import Prober
from poller.snmp_poller import SnmpConfig, SnmpPoller
from poller.snmp_source import Agent, SnmpSource
from poller.snmp_traps import TrapConfig, TrapReceiver, trap_sources
from poller.state import StateConfig
from store.dburl import CONNECT_TIMEOUT, failure, shown
from store.files import missing_dirs
from store.queries import Retention
from store.spool import Spool, SpoolError
from wardtui.messages import error
from wardtui.process import GUEST, ProcessPolicy

if TYPE_CHECKING:
    from poller.events import Transition
    from poller.icmp import IcmpProber
    from poller.quiet import Quiet
    from store.maintenance import Maintenance
    from store.writer import HistorySink, StoreWriter
    from wardtui.quiet_watch import QuietWatch

# The history store's modules (SQLAlchemy, asyncpg, sqlmodel, pydantic) and the ICMP prober's
# (icmplib) are imported where they are first used: the dashboard attached to a service
# (wardtui/attached.py) imports this module and paints its first frame without them.

log = logging.getLogger(__name__)


class StartupError(Exception):
    """Something an operator must fix before wardtui can start; ``code`` is the exit status."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


_ENGINE: dict[str, Any] = {f.name: f.default for f in fields(EngineConfig)}
_STATE: dict[str, Any] = {f.name: f.default for f in fields(StateConfig)}
_RETENTION: dict[str, Any] = {f.name: f.default for f in fields(Retention)}
_SNMP: dict[str, Any] = {f.name: f.default for f in fields(SnmpConfig)}
_AGENT: dict[str, Any] = {f.name: f.default for f in fields(Agent)}
_TRAPS: dict[str, Any] = {f.name: f.default for f in fields(TrapConfig)}


@dataclass(frozen=True, slots=True)
class Options:
    """What an operator can set; the engine's and the state machine's defaults, not copies."""

    inventory: Path | None = None
    db: str | None = None
    interval: float = _ENGINE["interval"]
    timeout: float = _ENGINE["timeout"]
    confirm_probes: int = _STATE["confirm_probes"]
    confirm_spacing: float = _STATE["confirm_spacing"]
    up_after: int = _STATE["up_after"]
    flap_threshold: int = _STATE["flap_threshold"]
    flap_window: float = _STATE["flap_window"]
    spool: Path | None = None  # default: store.db.default_spool_dir(the database URL)
    spool_max_mb: float = 256.0
    keep_raw: timedelta | None = _RETENTION["raw"]
    keep_1m: timedelta | None = _RETENTION["minute"]
    keep_1h: timedelta | None = _RETENTION["hour"]
    credentials: Path | None = None  # default: poller.credentials.default_credentials_path()
    snmp_interval: float = _SNMP["interval"]
    snmp_timeout: float = _AGENT["timeout"]
    snmp_retries: int = _AGENT["retries"]
    traps: tuple[str, int] | None = None  # (host, port) to receive SNMP traps on; None: no receiver
    trap_rate: float = _TRAPS["rate"]  # traps a second per source, after the burst
    trap_burst: float = _TRAPS["burst"]
    trap_engine_id: bytes | None = None  # the receiver's SNMPv3 engine ID (informs); None: random
    # Seconds between two reads of the maintenance windows and acknowledgements (a change made
    # through the live feed's commands is read at once).
    quiet_every: float = 30.0


DB_HELP = ("history database, sqlite:///PATH or postgresql://USER@HOST/DB (default: $WARDTUI_DB, else "
           f"$XDG_DATA_HOME/wardtui/history.db); a PostgreSQL server gets {CONNECT_TIMEOUT:g} s to answer. "
           "ps shows --db to every user: give a password in ~/.pgpass, $PGPASSFILE or $WARDTUI_DB instead")


def redacted_url(url: str | None) -> str:
    """The URL as it may be shown: never with its password."""
    return shown(url or "")


def db_option(db: str | None) -> str:
    """How the operator named the database, for an error line: ``--db URL`` or ``WARDTUI_DB=URL``."""
    from store.db import DB_ENV

    if db:
        return f"--db {redacted_url(db)}"
    env = os.environ.get(DB_ENV, "")
    return f"{DB_ENV}={redacted_url(env)}" if env else "the default history database"


def bundled_inventory() -> Path:
    """The example bank network shipped with the package (loopback addresses only).

    A wheel carries it as package data; an editable install reads it from the source tree.
    """
    packaged = Path(str(resources.files("wardtui") / "data" / "bank.csv"))
    if packaged.is_file():
        return packaged
    return Path(__file__).resolve().parent.parent / "examples" / "bank.csv"


def _holder_pid(exc: Exception) -> int | None:
    """The pid of the process that holds a spool's lock, from the spool's error (``(pid N)``)."""
    pid = getattr(exc, "pid", None)
    if isinstance(pid, int):
        return pid
    found = re.search(r"\(pid (\d+)\)", str(exc))
    return int(found[1]) if found else None


NOT_STARTED = "nothing was started."


def load_devices(path: Path | None, progress: Callable[[str], None] = error,
                 outcome: str = NOT_STARTED) -> list[Device]:
    """The inventory's devices; resolving its host names says how far it got when it is slow.
    A refusal ends with ``outcome`` (what the refusal means: nothing started, or an old
    inventory still in force)."""
    try:
        return load_inventory(path or bundled_inventory(), progress=progress)
    except InventoryError as exc:
        raise StartupError(f"{exc}\n{len(exc.problems)} problem(s) in the inventory; {outcome}",
                           code=2) from None


def open_prober(devices: list[Device]) -> IcmpProber:
    from poller.icmp import IcmpPermissionError, IcmpProber, permission_message

    prober = IcmpProber()
    try:
        prober.open(tuple(sorted({d.family for d in devices})) or (4,))
    except IcmpPermissionError:
        raise StartupError(permission_message(sys.executable), code=77) from None
    return prober


def load_agents(devices: list[Device], options: Options, outcome: str = NOT_STARTED) -> list[Agent]:
    """The SNMP agent of every device whose row names a credential.

    The credentials file is read when a device names a credential or ``--credentials`` was
    given; a name it lacks, a missing file or one readable by others stops the start (code 2).
    """
    named = [d for d in devices if d.snmp_credential]
    if not named and options.credentials is None:
        return []
    path = options.credentials or default_credentials_path()
    try:
        credentials: dict[str, Credential] = load_credentials(path)
    except CredentialsError as exc:
        hint = "" if options.credentials else " (give another file with --credentials FILE)"
        # A file-level refusal (missing, owner, mode) is one line; entry problems one per line.
        tail = f"\n{outcome}" if "\n" in str(exc) else f"; {outcome}"
        raise StartupError(f"{exc}{hint}{tail}", code=2) from None
    unknown = sorted({d.snmp_credential or "" for d in named} - credentials.keys())
    if unknown:
        lines = []
        for name in unknown:
            users = [d.name for d in named if d.snmp_credential == name]
            more = f" and {len(users) - 3} more" if len(users) > 3 else ""
            lines.append(f"  {name!r} (used by {', '.join(users[:3])}{more})")
        raise StartupError(f"{path}: no credential named\n" + "\n".join(lines) + f"\n{outcome}", code=2)
    return [Agent(d.name, d.address, d.snmp_port, credentials[d.snmp_credential or ""],
                  timeout=options.snmp_timeout, retries=options.snmp_retries) for d in named]


class Runtime:
    """Owns the engine, its prober and the store writer for one run."""

    attached = False  # polls here (wardtui/attached.py: a dashboard attached to a service)

    def __init__(self, options: Options, prober: Prober | None = None,
                 devices: list[Device] | None = None, snmp_client: SnmpSource | None = None,
                 process: ProcessPolicy = GUEST, kind: str = "poll", cluster: bool = False) -> None:
        from store.db import database_url, default_spool_dir
        from store.history import HistoryStore
        from store.lease import CLUSTER, Lease

        self.options = options
        self.kind = kind  # what the lease says polls the database: serve, poll or dashboard
        self.process = process  # the command's: told when the store has started (wardtui/process.py)
        self.devices = devices if devices is not None else load_devices(options.inventory)
        # A cluster member (wardtui serve --cluster, wardtui/cluster.py) polls only the devices of
        # the shards it holds: ``polls`` says which (None: every device, as without a cluster).
        # The whole inventory stays in ``devices`` and ``agents``; the engine gets the polled part.
        self.polls: Callable[[Device], bool] | None = (lambda _: False) if cluster else None
        # What the history writer writes to (a cluster member's fenced store); None: the store.
        self.history_sink: HistorySink | None = None
        # Applied by the writer to each transition as it takes it (a cluster member's epoch).
        self.transition_stamp: Callable[[Transition], Transition] | None = None
        self.prober = prober if prober is not None else open_prober(self.devices)
        state = StateConfig(confirm_probes=options.confirm_probes, confirm_spacing=options.confirm_spacing,
                            up_after=options.up_after, flap_threshold=options.flap_threshold,
                            flap_window=options.flap_window)
        self.engine = Engine(self._polled(self.devices), self.prober,
                             EngineConfig(interval=options.interval, timeout=options.timeout, state=state))
        try:
            self.agents = load_agents(self.devices, options)
            url = database_url(options.db)
        except StartupError:
            self.prober.close()
            raise
        except (ValueError, OSError) as exc:
            self.prober.close()
            raise StartupError(f"{db_option(options.db)}: {exc}", code=2) from None
        self.snmp: SnmpPoller | None = None
        self._snmp_client = snmp_client
        agents = self._polled_agents(self._polled(self.devices), self.agents)
        if agents:
            self._start_snmp(agents)
        self.traps: TrapReceiver | None = None
        if options.traps is not None:
            self._start_traps(options.traps, agents)
        self.store = HistoryStore(url)
        # One poller per database (store/lease.py): taken before the store opens, held to the end;
        # shared by the members of a cluster, whose writes are fenced per shard instead.
        self.lease = Lease(url, CLUSTER if cluster else kind, shared=cluster)
        self.spool_dir = options.spool or default_spool_dir(url)
        self.spool: Spool | None = None
        self._made_dirs: list[Path] = []  # the spool's directory and parents this start made
        self.writer: StoreWriter | None = None
        self.maintenance: Maintenance | None = None
        # The maintenance windows and acknowledgements in force (wardtui/quiet_watch.py): read
        # once the store is open.
        self.quiet: QuietWatch | None = None
        self.history_off: str | None = None  # why, when start() failed and polling goes on without
        # The pid of the wardtui that holds the lease or the spool, if that is why.
        self._holder: int | None = None
        self.engine.gauge_sources.append(self._history_gauges)
        self.engine.gauge_sources.append(self.lease.gauges)

    def _start_snmp(self, agents: list[Agent]) -> SnmpPoller:
        client = self._snmp_client
        if client is None:
            from poller.snmp_walk import SnmpClient  # its v3 loads cryptography: only for runs that poll SNMP

            client = SnmpClient()
        self.snmp = SnmpPoller(agents, client, self.engine.bus, is_down=self.engine.is_down,
                               config=SnmpConfig(interval=self.options.snmp_interval))
        self.engine.add_companion(self.snmp)
        self.engine.gauge_sources.append(self.snmp.gauges)
        return self.snmp

    def _start_traps(self, where: tuple[str, int], agents: list[Agent]) -> None:
        """The trap receiver, its socket bound now: a port taken or not allowed stops the start."""
        o = self.options
        config = TrapConfig(host=where[0], port=where[1], rate=o.trap_rate, burst=o.trap_burst,
                            engine_id=o.trap_engine_id)
        polled = self._polled(self.devices)
        receiver = TrapReceiver(trap_sources(polled, agents), self.engine.bus, self.engine,
                                lambda: self.snmp, config)
        receiver.elsewhere = self._traps_elsewhere(polled)
        try:
            receiver.bind()
        except OSError as exc:
            self.prober.close()
            hint = (" (a port under 1024 needs CAP_NET_BIND_SERVICE, or use a high port and an nft "
                    "redirect: docs/OPERATIONS.md)" if where[1] < 1024 and exc.errno == errno.EACCES else "")
            raise StartupError(f"--traps {_host_port_text(where)}: {exc.strerror or exc}{hint}",
                               code=2) from None
        self.traps = receiver
        self.engine.add_companion(receiver)
        self.engine.gauge_sources.append(receiver.gauges)

    # -- a new inventory while running (wardtui serve's SIGHUP) -----------------------------

    def read_inventory(self, path: Path | None, progress: Callable[[str], None] = error,
                       outcome: str = NOT_STARTED) -> tuple[list[Device], list[Agent]]:
        """The devices of ``path`` and their SNMP agents (the credentials file read again),
        checked as at a start. Blocking (it may resolve names): run it off the engine's loop.
        Raises :class:`StartupError` (code 2) naming every problem, its last line ``outcome``."""
        devices = load_devices(path, progress, outcome)
        return devices, load_agents(devices, self.options, outcome)

    def _polled(self, devices: list[Device]) -> list[Device]:
        """The devices of ``devices`` this run polls: all of them, or a cluster member's shards'."""
        polls = self.polls
        return devices if polls is None else [d for d in devices if polls(d)]

    def _polled_agents(self, polled: list[Device], agents: list[Agent]) -> list[Agent]:
        if self.polls is None:
            return agents
        names = {d.name for d in polled}
        return [a for a in agents if a.key in names]

    async def apply_inventory(self, devices: list[Device], agents: list[Agent]) -> InventoryDiff:
        """Make ``devices`` (with ``agents``, from :meth:`read_inventory`) the run's inventory,
        on the engine's loop, without a restart: the history learns the new and changed devices
        first, then the engine and the SNMP poller take the difference. A device that is new to
        the engine (added, or at a new address) with an outage still open in the history starts
        DOWN from it, as at a start. A history database that cannot be reached costs the new
        devices' branch and region in it until the next start, not the reload.

        A cluster member polls only the devices ``polls`` picks (the shards it took over start
        through :meth:`apply_polled`, the inventory unchanged)."""
        from sqlalchemy.exc import SQLAlchemyError

        from store.schema import display_url

        open_outages: dict[str, Any] = {}
        unreachable: dict[str, Any] = {}
        if self.writer is not None:
            try:
                await self.store.sync_devices(devices)
                open_outages, unreachable = await self.committed_outages()
            except (SQLAlchemyError, OSError) as exc:
                log.warning("the history database %s did not take the new inventory: %s",
                            display_url(self.store.url), failure(exc, self.store.url))
        # From here to the end nothing awaits: no check of a new device runs before its seed.
        self.devices, self.agents = devices, agents
        return self.apply_polled(open_outages, unreachable.keys())

    async def committed_outages(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """The history's open outages (device -> start), and those still of cause unreachable."""
        return await self.store.open_outages(), await self.store.open_outages(unreachable=True)

    def apply_polled(self, open_outages: dict[str, Any] | None = None,
                     unreachable: Collection[str] = (), up: Collection[str] = (),
                     recent: Collection[Transition] = ()) -> InventoryDiff:
        """Give the engine (and the SNMP poller, the trap receiver) the devices polled now, from
        the inventory in force; synchronous, on the engine's loop: a cluster member that loses a
        shard stops its devices at once. A device new to the engine with an outage in
        ``open_outages`` starts DOWN (UNREACHABLE if in ``unreachable``) from its start; one
        named in ``up`` (and with no open outage) starts UP; its flapping window starts from its
        transitions in ``recent`` (another poller's, recorded)."""
        devices = self._polled(self.devices)
        agents = self._polled_agents(devices, self.agents)
        diff = self.engine.apply_inventory(devices)
        if self.polls is not None:  # a parent on another member's shard is probed for its children
            polled = {d.name for d in devices}
            inventory = {d.name: d for d in self.devices}
            self.engine.set_remote_parents({parent: inventory[parent] for d in devices for parent in d.parents
                                            if parent not in polled and parent in inventory}.values())
        fresh = {d.name for d in diff.added} | {c.name for c in diff.changed if "address" in c.fields}
        if open_outages:
            self.engine.seed_outages({name: at for name, at in open_outages.items() if name in fresh},
                                     unreachable={name for name in unreachable if name in fresh})
        if up:
            self.engine.seed_up([name for name in up if name in fresh and name not in (open_outages or {})])
        if recent:
            self.engine.seed_flaps([t for t in recent if t.device in fresh])
        if self.snmp is not None:
            self.snmp.apply_agents(agents)
        elif agents:
            self._start_snmp(agents)
        if self.traps is not None:
            self.traps.apply(trap_sources(devices, agents), self._traps_elsewhere(devices))
        return diff

    def _traps_elsewhere(self, polled: list[Device]) -> frozenset[str]:
        """A cluster member: the trap addresses of the devices another member polls."""
        if self.polls is None:
            return frozenset()
        names = {d.name for d in polled}
        return frozenset(trap_sources([d for d in self.devices if d.name not in names], ()))

    async def start(self) -> None:
        """Open the store, restore open outages, start the writer (before any check runs).

        Raises :class:`StartupError` naming the database when it cannot be opened (code 1), or
        when its schema is behind, ahead of or foreign to this wardtui's migrations (code 2).
        """
        from sqlalchemy.exc import SQLAlchemyError

        from store.maintenance import Maintenance
        from store.schema import SchemaError, display_url
        from store.writer import StoreWriter

        try:
            await self.take_lease()
        except StartupError as exc:
            raise self._off(exc) from None
        except (SQLAlchemyError, OSError) as exc:
            raise self._off(StartupError(f"cannot open the history database {display_url(self.store.url)}: "
                                         f"{failure(exc, self.store.url)}")) from None
        # What the spool makes is removed again if the start fails: a new PostgreSQL URL that
        # could not be opened left an empty spool directory behind for every attempt.
        self._made_dirs = missing_dirs(self.spool_dir)
        try:
            self.spool = Spool(self.spool_dir, max_bytes=int(self.options.spool_max_mb * 1024 * 1024))
        except (SpoolError, OSError) as exc:
            self._holder = _holder_pid(exc)
            _remove_made(self._made_dirs)
            await self.lease.release()
            raise self._off(StartupError(f"spool {self.spool_dir}: {exc}")) from None
        try:
            await self.store.open()
            await self.lease.record()  # the holder's row, now that the schema has its table
            await self.store.sync_devices(self.devices)
            lease = self.lease
            # While the lease is lost, nothing is written: rows wait as for a database that fails.
            self.writer = StoreWriter(self.history_sink or self.store,
                                      self.engine.bus.subscribe("store", sample_batch=1000),
                                      spool=self.spool, may_write=lambda: lease.held,
                                      stamp=self.transition_stamp)
            if not self.spool.empty:
                # Rows from a run that stopped while the database was down go in first, so that
                # the open outages read next include the ones they opened and closed.
                log.warning("writing %d history rows left in %s by an earlier run",
                            self.spool.rows, self.spool_dir)
                await self.writer.replay_spool()
            self.engine.seed_outages(await self.store.open_outages(),
                                     unreachable=(await self.store.open_outages(unreachable=True)).keys())
        except SchemaError as exc:
            await self._abandon_start()
            raise self._off(StartupError(str(exc), code=2)) from None
        except (SQLAlchemyError, OSError) as exc:
            await self._abandon_start()
            raise self._off(StartupError(f"cannot open the history database {display_url(self.store.url)}: "
                                         f"{failure(exc, self.store.url)}")) from None
        # Inventory, trackers and rows made so far live for the whole run (the dashboard and
        # `wardtui poll` freeze them here).
        self.process.store_started()
        self.writer.start()
        self.engine.queue_sources.append(lambda: self.writer.queue_depth if self.writer else 0)
        self.engine.gauge_sources.append(lambda: self.writer.gauges() if self.writer else {})
        # A cluster: one member runs it (store/lease.py's maintenance lock); else the lease's holder.
        self.maintenance = Maintenance(self.store, self.retention, may_run=lambda: lease.maintains)
        self.maintenance.start()
        from wardtui.quiet_watch import QuietWatch

        self.quiet = QuietWatch(self.store.db, self.engine.bus, every=self.options.quiet_every,
                                url=self.store.url)
        await self.quiet.start()

    def first_round_seconds(self) -> float:
        """Seconds from the engine's start by which every device has been checked once."""
        return min(60.0, max((s.interval for s in self.engine.slots), default=0.0)) + 2.0

    def settle_after_first_round(self) -> asyncio.TimerHandle:
        """Tell the process policy once the first round is done (``wardtui poll`` and ``serve``,
        on their loop; the dashboard's app tells it itself, as it drives idle collections)."""
        loop = asyncio.get_running_loop()
        return loop.call_later(self.first_round_seconds(), self.process.first_round_done)

    async def probe_now(self, name: str) -> dict[str, Any]:
        """Check ``name`` now, outside its schedule (an operator asked); the answer to show."""
        from poller.feed import probe_reply

        reply, _ = await probe_reply(self.engine, name)
        return reply

    # -- the quiet state: maintenance windows and acknowledgements (issue 15) ---------------

    def quiet_now(self) -> Quiet:
        """The windows and acknowledgements in force as last read (nothing before the store
        opened, or without history)."""
        from poller.quiet import Quiet

        return self.quiet.quiet if self.quiet is not None else Quiet()

    async def acknowledge(self, device: str, note: str, who: str | None = None) -> dict[str, Any]:
        """Acknowledge ``device``'s outage (the dashboard's ``a``); the answer to show."""
        from poller.operator import login_name
        from wardtui.quiet_actions import acknowledge

        return await self._quiet_action(acknowledge(self.store.db, device, note, who or login_name()), who)

    async def add_maintenance(self, matchers: list[str], duration_s: float, note: str,
                              who: str | None = None) -> dict[str, Any]:
        """A maintenance window from now (the dashboard's ``m``); the answer to show."""
        from poller.operator import login_name
        from wardtui.quiet_actions import add_maintenance

        return await self._quiet_action(
            add_maintenance(self.store.db, matchers, duration_s, note, who or login_name()), who)

    async def _quiet_action(self, action: Coroutine[Any, Any, dict[str, Any]],
                            who: str | None) -> dict[str, Any]:
        if self.quiet is None:
            action.close()
            return {"ok": False, "error": self.history_off or "the history database is not open"}
        reply = await action
        if reply.get("ok"):
            await self.quiet.read_now(by=who or "")  # every screen and the notifier: now
        return reply

    async def reread_quiet(self, by: str = "") -> dict[str, Any]:
        """Read the windows and acknowledgements now (the ``quiet`` command: ``wardtui ack`` or
        ``wardtui maintenance`` wrote the database); the answer to send back."""
        if self.quiet is None:
            return {"ok": False, "error": self.history_off or "the history database is not open"}
        await self.quiet.read_now(by=by)
        quiet = self.quiet.quiet
        return {"ok": True, "windows": len(quiet.windows), "acks": len(quiet.acks)}

    def describe(self) -> str:
        """The title bar's line: what polls, and where history goes."""
        mode = getattr(self.prober, "mode", type(self.prober).__name__)
        parts = ["embedded poller", f"{len(self.devices)} devices", f"ICMP {mode}"]
        if self.snmp is not None:
            parts.append(f"SNMP {len(self.snmp)} every {self.options.snmp_interval:g} s")
        url = getattr(self.store, "url", "")
        if url:
            from sqlalchemy.engine import make_url

            parsed = make_url(url)
            parts.append(f"{parsed.get_backend_name()} {parsed.database or ''}".strip())
        return " · ".join(parts)

    @property
    def retention(self) -> Retention:
        """How long each tier is kept: what maintenance deletes by, and what readers pick a tier by."""
        o = self.options
        return Retention(raw=o.keep_raw, minute=o.keep_1m, hour=o.keep_1h)

    async def take_lease(self) -> None:
        """Take the database's poller lease (once; :meth:`start` takes it if this was not
        called). :class:`StartupError` with code 2, naming the holder, when another poller
        holds it; a database that cannot be reached raises what the driver raised."""
        from store.lease import LeaseRefused

        try:
            await self.lease.acquire()
        except LeaseRefused as exc:
            self._holder = exc.holder.pid
            raise StartupError(str(exc), code=2) from None

    async def check_lease(self) -> bool:
        """What the dashboard does before its first screen: take the lease, refusing with code 2
        when another poller holds it. A database that cannot be reached is left to
        :meth:`start`, as in :meth:`check_schema` (for the dashboard that costs history): False."""
        from sqlalchemy.exc import SQLAlchemyError

        try:
            await self.take_lease()
        except (SQLAlchemyError, OSError):
            return False
        return True

    def _off(self, error: StartupError) -> StartupError:
        """Note that history is off (the dashboard polls on without it) and why; return ``error``."""
        self.history_off = str(error)
        return error

    def _history_gauges(self) -> dict[str, float]:
        """``store_off`` (1) once the store could not start, with ``store_off_pid``, the wardtui
        that holds the spool, when that is why: the screen says so where the database is shown."""
        if self.history_off is None:
            return {}
        return {"store_off": 1.0, **({"store_off_pid": float(self._holder)} if self._holder else {})}

    async def _abandon_start(self) -> None:
        if self.writer is not None:
            self.writer.subscription.close()
            self.writer = None
        if self.spool is not None:
            empty = self.spool.empty
            self.spool.close()
            self.spool = None
            if empty:
                _remove_made(self._made_dirs)
        await self.store.close()
        await self.lease.release()

    async def check_schema(self) -> None:
        """Refuse, before any screen is drawn, a database whose schema is behind or ahead.

        An empty database is migrated here. A database that cannot be reached is left to
        :meth:`start`: for the dashboard that costs history, not monitoring.
        """
        from sqlalchemy.exc import SQLAlchemyError

        from store.schema import SchemaError, check

        try:
            await check(self.store.url)
        except SchemaError as exc:
            raise StartupError(str(exc), code=2) from None
        except (SQLAlchemyError, OSError):
            pass

    async def close(self) -> int:
        """Flush the writer and close everything; safe to call more than once.

        Returns how many history rows could not be written (0 when all were).
        """
        lost = 0
        answers = True
        if self.quiet is not None:
            quiet, self.quiet = self.quiet, None
            await quiet.stop()
        if self.maintenance is not None:
            maintenance, self.maintenance = self.maintenance, None
            answers = await _within(maintenance.stop(), CLOSE_TIMEOUT)
        if self.writer is not None:
            writer, self.writer = self.writer, None
            lost, answers = await self._stop_writer(writer)
        if self.spool is not None:
            self.spool.close()
            self.spool = None
        await self.store.close(polite=answers)
        await self.lease.release()  # after the last write
        self.prober.close()
        if self.snmp is not None:
            self.snmp.close()
        if self.traps is not None:
            self.traps.close()
        return lost

    async def _stop_writer(self, writer: StoreWriter) -> tuple[int, bool]:
        """Flush ``writer``: (rows it could not write, True); past :data:`STOP_TIMEOUT`, the
        database not answering, (rows neither written nor spooled, given up, False)."""
        from store.schema import display_url

        task = asyncio.ensure_future(writer.aclose())
        if await _within(asyncio.shield(task), 1.0):
            return writer.lost_at_stop, True
        log.warning("waiting up to %g s for the history database to take the last rows", STOP_TIMEOUT)
        if await _within(task, STOP_TIMEOUT - 1.0):
            return writer.lost_at_stop, True
        # The writer waits on the database: what it holds goes to the spool for the next start.
        lost = writer.spool_what_is_left()
        if lost:
            log.error("the history database %s did not answer within %g s of the stop: %d history "
                      "rows could not be written or spooled and are given up", display_url(self.store.url),
                      STOP_TIMEOUT, lost)
        else:
            log.warning("the history database %s did not answer within %g s of the stop: what was not "
                        "written is kept in the spool %s (%d rows), written at the next start",
                        display_url(self.store.url), STOP_TIMEOUT, self.spool_dir,
                        writer.spool.rows if writer.spool is not None else 0)
        return lost, False


def _host_port_text(where: tuple[str, int]) -> str:
    return f"[{where[0]}]:{where[1]}" if ":" in where[0] else f"{where[0]}:{where[1]}"


def _remove_made(made: list[Path]) -> None:
    """Remove the directories in ``made`` (deepest first) with the spool's lock file, while
    they hold nothing else."""
    if made:
        with contextlib.suppress(FileNotFoundError):
            if [p.name for p in made[0].iterdir()] == ["lock"]:
                (made[0] / "lock").unlink()
    for path in made:
        try:
            path.rmdir()
        except OSError:  # not empty: something else was put there meanwhile
            return


STOP_TIMEOUT = 10.0
"""Seconds a stop waits for the history to be written: a database that hangs (a black-holed
host, a stopped server) kept SIGTERM waiting 90 s and more with nothing said."""
CLOSE_TIMEOUT = 2.0
"""Seconds for maintenance to stop and the database's connections to close."""


async def _within(step: Awaitable[None], timeout: float) -> bool:
    """Run ``step`` for at most ``timeout`` seconds; False (and ``step`` cancelled) if it took longer."""
    task = asyncio.ensure_future(step)
    done, _ = await asyncio.wait({task}, timeout=timeout)
    if not done:
        task.cancel()
        return False
    task.result()
    return True
