"""SNMP traps: a UDP receiver (``--traps HOST:PORT``) for SNMPv1 and SNMPv2c traps and informs
and SNMPv3 traps and informs from inventory devices, turned into events and immediate checks.

A datagram is believed only when its source address is an inventory device's (a zoned IPv6
device, ``fe80::2%eth1``, by its address and the interface it came in on) and it carries the
community of that device's SNMPv2c credential (compared in constant time) or, for SNMPv3, is
signed (and encrypted, for authPriv) with that device's SNMPv3 user's keys at its level
(poller/snmp_trap_usm.py: engine IDs, time windows, discovery, reports); everything else is
counted by reason (unknown source, wrong community, unknown user, engine ID, security level,
authentication, time window, malformed), per source too, and logged once per source, escaped,
never the community or key it carried. A v1 trap's agent-addr field is ignored: the
sender is the datagram's source. An unknown source costs a look-up and is dropped; an
inventory source passes a token bucket before anything is decoded, so its flood is dropped and
counted as cheaply (there are as many buckets as inventory addresses, whatever is spoofed).

An accepted trap is published as a :class:`~poller.events.Trap`; linkDown/linkUp with an
ifIndex also as an :class:`~poller.events.InterfaceChange`, coldStart/warmStart as a
:class:`~poller.events.Reboot` (both with ``source="trap"``), at once. Then the device is
checked (ICMP) and polled (SNMP) outside its schedule, unless a check or poll of it is in
flight or one was asked less than ``min_gap`` seconds ago: nothing is ever queued (the
scheduler's rule). An inform is acknowledged once accepted, a v3 one at its own security level.
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import logging
import socket
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

from poller.bus import EventBus
from poller.credentials import V3, V2c
from poller.events import InterfaceChange, Reboot, Trap
from poller.inventory import Device
from poller.snmp_getbulk import OidValue, Value
from poller.snmp_mib import status_name
from poller.snmp_source import Agent
from poller.snmp_v2c import (
    INFORM,
    SNMP_TRAPS,
    BerError,
    Notification,
    _header,
    _integer_at,
    decode_notification,
    encode_inform_ack,
)
from poller.sockets import enlarge_rcvbuf, reply_host, scoped_peer
from poller.text import escaped

if TYPE_CHECKING:
    from poller.snmp_trap_usm import TrapUsm

log = logging.getLogger(__name__)

TRAP_NAMES = {1: "coldStart", 2: "warmStart", 3: "linkDown", 4: "linkUp", 5: "authenticationFailure",
              6: "egpNeighborLoss"}
_IF_ENTRY = (1, 3, 6, 1, 2, 1, 2, 2, 1)  # ifIndex .1, ifDescr .2, ifAdminStatus .7, ifOperStatus .8
_IF_NAME = (1, 3, 6, 1, 2, 1, 31, 1, 1, 1, 1)
_ADMIN_DOWN = 2
_SUMMARY_MAX = 400  # characters of a trap's var-binds kept in its event
_LOGGED_MAX = 1000  # sources whose refusals are logged; past it, one line says so
_VERSIONS = {0: "1", 1: "2c", 3: "3"}
_ZONE_RETRY = 1.0  # seconds between two looks for the interfaces of zoned devices not found


@dataclass(frozen=True, slots=True)
class TrapConfig:
    host: str = "127.0.0.1"
    port: int = 162
    rate: float = 50.0  # traps per second per source, after the burst
    burst: float = 200.0
    # Seconds between two checks (and two polls) a device's traps ask for: a device sending 50
    # traps a second is checked once a second, not 50 times.
    min_gap: float = 1.0
    rcvbuf: int = 4 * 1024 * 1024
    engine_id: bytes | None = None  # our SNMPv3 engine's (informs); None: random at each start


@dataclass(frozen=True, slots=True)
class TrapSource:
    """An inventory device as a trap sender."""

    device: str
    address: str
    community: bytes | None  # None: the device names no SNMPv2c credential (refused)
    v3: V3 | None = None  # its SNMPv3 credential, if it names one

    def __repr__(self) -> str:  # never the community
        return f"TrapSource(device={self.device!r}, address={self.address!r})"


def canonical(address: str) -> str:
    """``address`` as the sources are keyed: compressed, v4-mapped as IPv4; a zoned IPv6
    address (``fe80::2%eth1``) with its zone as the interface's index (``fe80::2%3``), which is
    how :func:`poller.sockets.reply_host` keys a datagram from it. Raises ValueError for what
    is no address, OSError for a zone naming no interface here."""
    host, _, zone = address.partition("%")
    ip = ipaddress.ip_address(host)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return str(ip.ipv4_mapped)
    if zone and isinstance(ip, ipaddress.IPv6Address):
        return scoped_peer(f"{ip.compressed}%{zone}", 0)[0]
    return ip.compressed


def trap_sources(devices: Iterable[Device], agents: Iterable[Agent]) -> dict[str, TrapSource]:
    """Each inventory device by its address (the first device at an address wins), with the
    community of its SNMPv2c credential or its SNMPv3 credential. A zoned device whose
    interface is not there (yet) is keyed by its address as written: the receiver looks again
    when a datagram from that address comes in on an interface."""
    communities = {a.key: a.credential.community.encode() for a in agents if isinstance(a.credential, V2c)}
    users = {a.key: a.credential for a in agents if isinstance(a.credential, V3)}
    sources: dict[str, TrapSource] = {}
    for device in devices:
        try:
            key = canonical(device.address)
        except ValueError:
            continue
        except OSError:
            key = device.address  # zoned, no such interface now
        sources.setdefault(key, TrapSource(device.name, device.address, communities.get(device.name),
                                           users.get(device.name)))
    return sources


class CheckTarget(Protocol):
    """What the receiver asks of the engine (:class:`poller.engine.Engine`)."""

    def check_unless_busy(self, name: str) -> bool: ...


class PollTarget(Protocol):
    """What the receiver asks of the SNMP poller (:class:`poller.snmp_poller.SnmpPoller`)."""

    def poll_unless_busy(self, key: str) -> bool: ...

    def engine_id(self, key: str) -> bytes | None: ...

    def link_told(self, key: str, ifindex: int, oper: int, at: datetime) -> tuple[str, str]: ...

    def reboot_told(self, key: str, at: datetime) -> float | None: ...


class _Protocol(asyncio.DatagramProtocol):
    def __init__(self, owner: TrapReceiver) -> None:
        self.owner = owner

    def datagram_received(self, data: bytes, addr: Any) -> None:
        try:
            self.owner.received(data, addr)
        except Exception:  # a bug must cost one trap, not the receiver or a log line per trap
            self.owner.failed += 1
            if self.owner.failed == 1:
                log.exception("a trap could not be handled; further failures are counted (traps_failed)")

    def error_received(self, exc: Exception) -> None:
        self.owner.socket_errors += 1


class TrapReceiver:
    """Receives traps on one UDP socket (:meth:`bind`, then :meth:`run` on the engine's loop,
    as an engine companion) and publishes what they say on ``bus``."""

    def __init__(self, sources: dict[str, TrapSource], bus: EventBus, engine: CheckTarget,
                 snmp: Callable[[], PollTarget | None] = lambda: None,
                 config: TrapConfig | None = None) -> None:
        self.config = config or TrapConfig()
        self.sources = sources
        self.bus = bus
        self.engine = engine
        self.snmp = snmp
        self.sock: socket.socket | None = None
        self._transport: asyncio.DatagramTransport | None = None
        self._stop = asyncio.Event()
        self._buckets: dict[str, tuple[float, float]] = {}  # inventory address -> (tokens, at)
        self._logged: set[str] = set()
        self._asked: dict[str, tuple[float, float]] = {}  # device -> last check, last poll asked
        # Here: its cryptography loads only for a run that receives traps (wardtui/runtime.py
        # imports this module for every run).
        from poller.snmp_trap_usm import TrapUsm

        self.usm: TrapUsm = TrapUsm(self.config.engine_id)
        self._learned: dict[str, set[bytes]] = {}  # device -> engine IDs its v3 polls found
        self._zones_looked = -_ZONE_RETRY
        self.received_n = 0
        self.accepted = 0
        self.refused: Counter[str] = Counter()  # by reason: the traps_refused_* gauges
        # By inventory device and reason (unknown sources are no device: counted, not kept).
        self.refused_by: dict[str, Counter[str]] = {}
        # A cluster member (wardtui serve --cluster) accepts the traps of the devices it polls
        # only: the member polling a device answers its traps (docs/CLUSTER.md, "Traps").
        self.elsewhere: frozenset[str] = frozenset()  # inventory addresses another member polls
        self.polled_elsewhere = 0
        self.rate_limited = 0
        self.checks = 0  # ICMP checks the traps started
        self.polls = 0  # SNMP polls the traps started
        self.coalesced = 0  # checks and polls not started: one in flight, or asked < min_gap ago
        self.informs_acked = 0
        self.socket_errors = 0
        self.failed = 0  # datagrams whose handling raised (a bug): counted, logged once

    # -- the socket --------------------------------------------------------------------------
    def bind(self) -> tuple[str, int]:
        """Open and bind the socket now (a start fails here, not later); the address bound."""
        host, port = self.config.host, self.config.port
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            if family == socket.AF_INET6 and ipaddress.ip_address(host).is_unspecified:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)  # [::] hears IPv4 too
            sock.setblocking(False)
            # A core link going down makes hundreds of devices trap at once: room for the burst.
            enlarge_rcvbuf(sock, self.config.rcvbuf)
            sock.bind((host, port))
        except OSError:
            sock.close()
            raise
        self.sock = sock
        bound = sock.getsockname()
        return bound[0], bound[1]

    async def run(self) -> None:
        """Receive until :meth:`stop`."""
        if self.sock is None:
            self.bind()
        loop = asyncio.get_running_loop()
        sock = self.sock
        assert sock is not None
        transport, _ = await loop.create_datagram_endpoint(lambda: _Protocol(self), sock=sock)
        # What a sender of v3 informs may be configured with (Cisco: snmp-server engineID remote).
        log.info("traps received on %s; SNMPv3 informs to engine ID 0x%s", sock.getsockname()[:2],
                 self.usm.engine_id.hex())
        self._transport = transport
        try:
            await self._stop.wait()
        finally:
            transport.close()
            self._transport = None
            self.sock = None

    def stop(self) -> None:
        self._stop.set()

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()
        elif self.sock is not None:
            self.sock.close()
        self.sock = None

    def apply(self, sources: dict[str, TrapSource], elsewhere: frozenset[str] = frozenset()) -> None:
        """The senders of a new inventory (on the engine's loop); ``elsewhere``: addresses of
        inventory devices another cluster member polls (their traps are its: dropped, counted)."""
        self.sources = sources
        self.elsewhere = elsewhere
        names = {s.device for s in sources.values()}
        self._asked = {name: v for name, v in self._asked.items() if name in names}
        addresses = {s.address for s in sources.values()}
        self._buckets = {a: v for a, v in self._buckets.items() if a in addresses}
        users = {s.device: s.v3 for s in sources.values()}
        self._learned = {name: v for name, v in self._learned.items() if users.get(name) is not None}
        self.refused_by = {name: v for name, v in self.refused_by.items() if name in names}
        self.usm.forget(names)

    # The counts the v2c code and its tests read by name.
    @property
    def refused_unknown(self) -> int:
        return self.refused["unknown_source"]

    @property
    def refused_community(self) -> int:
        return self.refused["community"]

    @property
    def refused_malformed(self) -> int:
        return self.refused["malformed"]

    # -- one datagram ------------------------------------------------------------------------
    def _elsewhere(self, host: str) -> bool:
        if not self.elsewhere:
            return False
        if host in self.elsewhere:
            return True
        try:
            return canonical(host) in self.elsewhere
        except (ValueError, OSError):
            return False

    def received(self, data: bytes, addr: Any) -> None:
        self.received_n += 1
        host = reply_host(addr)  # a link-local source with its interface: fe80::2%3
        source = self.sources.get(host) or self._source(host)
        if source is None:
            if self._elsewhere(host):
                self.polled_elsewhere += 1
                return
            self.refused["unknown_source"] += 1
            self._log_once(host, "not an inventory device's address")
            return
        now = time.monotonic()
        if not self._allow(source.address, now):
            self.rate_limited += 1
            return
        if _is_v3(data):
            self._v3(data, addr, host, source, now)
            return
        try:
            notification = decode_notification(data)
        except BerError as exc:
            self._refuse("malformed", host, f"not an SNMP trap ({exc})", source)
            return
        if source.community is None or not hmac.compare_digest(notification.community, source.community):
            why = ("the device names no SNMPv2c credential" if source.community is None
                   else "not the community of the device's credential")
            self._refuse("community", host, why, source)
            return
        self.accepted += 1
        if notification.pdu == INFORM and self._transport is not None:
            self._transport.sendto(encode_inform_ack(notification), addr)
            self.informs_acked += 1
        self._accept(source, notification, now)

    def _source(self, host: str) -> TrapSource | None:
        """The inventory device at ``host`` when it is not written as the sources are keyed: an
        IPv4 sender on an IPv6 socket, or a zoned device whose interface came after the sources
        were made (looked for at most once a second: strangers cannot make it costly)."""
        try:
            source = self.sources.get(canonical(host))
        except (ValueError, OSError):
            return None
        if source is not None or "%" not in host:
            return source
        now = time.monotonic()
        if now - self._zones_looked < _ZONE_RETRY:
            return None
        self._zones_looked = now
        for key, source in list(self.sources.items()):
            if "%" in key and not key.rpartition("%")[2].isdigit():
                try:
                    found = canonical(key)
                except (ValueError, OSError):
                    continue
                del self.sources[key]
                self.sources.setdefault(found, source)
        return self.sources.get(host)

    def _v3(self, data: bytes, addr: Any, host: str, source: TrapSource, now: float) -> None:
        outcome = self.usm.read(data, source.device, source.v3, self._engines(source))
        answered = outcome.answer is not None and self._transport is not None
        if answered:
            assert self._transport is not None and outcome.answer is not None
            self._transport.sendto(outcome.answer, addr)  # a discovery, a report, an inform's Response
        if outcome.refused is not None:
            self._refuse(outcome.refused, host, outcome.why, source)
            return
        notification = outcome.notification
        if notification is None:
            return  # a discovery answered
        self.accepted += 1
        if notification.pdu == INFORM and answered:
            self.informs_acked += 1
        self._accept(source, notification, now)

    def _engines(self, source: TrapSource) -> frozenset[bytes]:
        """The engine IDs ``source`` may sign traps from: its credential's, and those its v3 polls
        found its agent's engine to be (kept when a poll forgets it: a device that traps while
        its polls time out is still itself)."""
        if source.v3 is None:
            return frozenset()
        learned = self._learned.setdefault(source.device, set())
        snmp = self.snmp()
        found = None if snmp is None else snmp.engine_id(source.device)
        if found is not None and found not in learned:
            if len(learned) >= 4:  # an agent restarted without its state many times: the newest
                learned.clear()
            learned.add(found)
        return frozenset(source.v3.trap_engine_ids).union(learned)

    def _refuse(self, reason: str, host: str, why: str, source: TrapSource) -> None:
        self.refused[reason] += 1
        self.refused_by.setdefault(source.device, Counter())[reason] += 1
        if reason == "engine_id":  # poller/snmp_trap_usm.py's ENGINE
            why += " (docs/OPERATIONS.md, SNMPv3 traps)"
        self._log_once(host, why, source)

    def refusals(self, device: str) -> dict[str, int]:
        """The traps refused from inventory device ``device``, by reason."""
        return dict(self.refused_by.get(device, {}))

    def _allow(self, key: str, now: float) -> bool:
        """One token from source ``key``'s bucket (``rate`` a second, ``burst`` at most). Only
        inventory addresses have one: the table is as large as the inventory, whoever sends."""
        rate, burst = self.config.rate, self.config.burst
        tokens, at = self._buckets.get(key, (burst, now))
        tokens = min(burst, tokens + (now - at) * rate)
        if tokens < 1.0:
            self._buckets[key] = (tokens, now)
            return False
        self._buckets[key] = (tokens - 1.0, now)
        return True

    def _log_once(self, host: str, why: str, source: TrapSource | None = None) -> None:
        if host in self._logged:
            return
        if len(self._logged) >= _LOGGED_MAX:
            if len(self._logged) == _LOGGED_MAX:
                self._logged.add("")
                log.warning("traps refused from more than %d sources: no more are logged (see the "
                            "traps_refused_* gauges)", _LOGGED_MAX)
            return
        self._logged.add(host)
        device = "" if source is None else f" ({escaped(source.device)})"
        log.warning("trap from %s%s refused: %s; further ones from it are counted, not logged",
                    escaped(host), device, why)

    # -- what an accepted trap does ----------------------------------------------------------
    def _accept(self, source: TrapSource, n: Notification, now: float) -> None:
        # The device's inventory address (the source is that, maybe written otherwise: an IPv4
        # sender on an IPv6 socket is ::ffff:a.b.c.d): the events of a device name one address.
        host = source.address
        at = datetime.now(UTC)
        oid = n.trap_oid
        kind = TRAP_NAMES.get(oid[-1], "") if oid[:-1] == SNMP_TRAPS else ""
        ifindex, ifname, admin, oper = _interface(n)
        uptime = None if n.uptime_ticks is None else n.uptime_ticks / 100
        bus, snmp = self.bus, self.snmp()
        bus.publish(Trap(source.device, host, at, kind or _dotted(oid), _dotted(oid),
                         _VERSIONS.get(n.version, str(n.version)), uptime, ifindex, ifname, _summary(n)))
        if kind in ("linkDown", "linkUp") and ifindex is not None and admin != _ADMIN_DOWN:
            # An interface an operator shut is not news (as for polls).
            if oper is None:
                oper = 2 if kind == "linkDown" else 1
            before, label = ("unknown", "") if snmp is None else snmp.link_told(source.device, ifindex,
                                                                                oper, at)
            bus.publish(InterfaceChange(source.device, host, at, ifindex, ifname or label or f"if{ifindex}",
                                        before, status_name(oper), source="trap"))
        elif kind in ("coldStart", "warmStart"):
            previous = None if snmp is None else snmp.reboot_told(source.device, at)
            up = uptime or 0.0
            bus.publish(Reboot(source.device, host, at, up, previous if previous is not None else up,
                               datetime.fromtimestamp(at.timestamp() - up, UTC), source="trap"))
        self._ask(source.device, now, snmp)

    def _ask(self, device: str, now: float, snmp: PollTarget | None) -> None:
        """An ICMP check and an SNMP poll of ``device`` now, unless one is in flight or was
        asked less than ``min_gap`` ago: never queued."""
        gap = self.config.min_gap
        checked, polled = self._asked.get(device, (-gap, -gap))
        if now - checked >= gap and self.engine.check_unless_busy(device):
            self.checks += 1
            checked = now
        else:
            self.coalesced += 1
        if snmp is not None:
            if now - polled >= gap and snmp.poll_unless_busy(device):
                self.polls += 1
                polled = now
            else:
                self.coalesced += 1
        self._asked[device] = (checked, polled)

    def gauges(self) -> dict[str, float]:
        """Figures for ``Gauges.extra``: counts since the start."""
        return {"traps_received": float(self.received_n), "traps_accepted": float(self.accepted),
                # Written out: tests/unit/test_metrics_collector.py finds each counter's name here.
                "traps_refused_unknown_source": float(self.refused["unknown_source"]),
                "traps_polled_elsewhere": float(self.polled_elsewhere),
                "traps_refused_community": float(self.refused["community"]),
                "traps_refused_user": float(self.refused["user"]),
                "traps_refused_engine_id": float(self.refused["engine_id"]),
                "traps_refused_level": float(self.refused["level"]),
                "traps_refused_auth": float(self.refused["auth"]),
                "traps_refused_time_window": float(self.refused["time_window"]),
                "traps_refused_malformed": float(self.refused["malformed"]),
                "traps_v3_discoveries": float(self.usm.discoveries),
                "traps_v3_reports": float(self.usm.reports),
                "traps_rate_limited": float(self.rate_limited),
                "traps_checks": float(self.checks), "traps_polls": float(self.polls),
                "traps_coalesced": float(self.coalesced),
                "traps_informs_acked": float(self.informs_acked), "traps_failed": float(self.failed)}


def _dotted(oid: tuple[int, ...]) -> str:
    return ".".join(map(str, oid))


def _interface(n: Notification) -> tuple[int | None, str, int | None, int | None]:
    """(ifIndex, ifName else ifDescr, ifAdminStatus, ifOperStatus) as far as the trap says."""
    ifindex: int | None = None
    name = descr = ""
    admin = oper = None
    for oid, value in n.varbinds:
        if len(oid) == len(_IF_ENTRY) + 2 and oid[:-2] == _IF_ENTRY:
            column, index = oid[-2], oid[-1]
            if ifindex is None:
                ifindex = index
            if column == 1 and isinstance(value, int):
                ifindex = value
            elif column == 2 and isinstance(value, bytes):
                descr = _text(value)
            elif column == 7 and isinstance(value, int):
                admin = value
            elif column == 8 and isinstance(value, int):
                oper = value
        elif oid[:-1] == _IF_NAME and isinstance(value, bytes):
            ifindex = oid[-1] if ifindex is None else ifindex
            name = _text(value)
    return ifindex, name or descr, admin, oper


def _text(value: bytes) -> str:
    """An octet string as text, escaped; bytes that are not UTF-8 as hex."""
    try:
        return escaped(value.decode("utf-8"))
    except UnicodeDecodeError:
        return "0x" + value.hex()


def _value(value: Value) -> str:
    if isinstance(value, OidValue):
        return _dotted(value)
    if isinstance(value, bytes):
        return _text(value)
    return str(value)


def _summary(n: Notification) -> str:
    """``OID=value, ...`` of the trap's var-binds (sysUpTime and snmpTrapOID aside)."""
    text = ", ".join(f"{_dotted(oid)}={_value(value)}" for oid, value in n.varbinds)
    return text if len(text) <= _SUMMARY_MAX else text[:_SUMMARY_MAX - 1] + "…"


def _is_v3(data: bytes) -> bool:
    """Whether the datagram says it is SNMPv3 (its first field); what it is else is decoded later."""
    try:
        tag, i, end = _header(data, 0, len(data))
        return tag == 0x30 and _integer_at(data, i, end)[0] == 3
    except BerError:
        return False
