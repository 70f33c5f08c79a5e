"""The SNMP client: one poll of one agent (system group + IF-MIB tables) over shared pysnmp engines.

A poll is a walk of the interface columns by GETBULK, all columns side by side; its first
request carries the system group as non-repeaters, so that sysUpTime and the first counters
come from the same response.

v2c goes through :mod:`poller.snmp_v2c` (its own codec, one UDP socket per family: ~0.25 ms
of CPU per poll instead of ~5 ms through pyasn1). v3 goes through pysnmp. Its engines are few
and shared: a new ``SnmpEngine`` costs ~60 ms, and one engine slows down as targets
accumulate on it, so each serves at most ``targets_per_engine`` agents (field notes: ~250
kept first contacts flat). Every socket's receive buffer is enlarged, so that hundreds of
answers arriving together are not dropped by the kernel (which would look like timeouts).
"""

from __future__ import annotations

import asyncio
import socket
import time
from datetime import UTC, datetime
from typing import Any

from pyasn1.type.univ import Null, ObjectIdentifier, OctetString
from pysnmp.carrier.asyncio.dgram import udp, udp6
from pysnmp.entity import config as engine_config
from pysnmp.entity.rfc3413 import cmdgen
from pysnmp.hlapi.v3arch.asyncio import (
    CommunityData,
    SnmpEngine,
    Udp6TransportTarget,
    UdpTransportTarget,
    UsmUserData,
)
from pysnmp.hlapi.v3arch.asyncio import auth as usm
from pysnmp.hlapi.v3arch.asyncio.cmdgen import LCD
from pysnmp.proto import errind
from pysnmp.proto.rfc1902 import ObjectName

from poller.credentials import Credential, V2c
from poller.snmp_getbulk import NULL, NoValue, OidValue, Value
from poller.snmp_mib import (
    IF_COLUMNS,
    IFX_COLUMNS,
    SYS_DESCR,
    SYS_NAME,
    SYS_OBJECT_ID,
    SYS_UPTIME,
    SYSTEM_OIDS,
)
from poller.snmp_source import NO_INTERFACES, NO_UPTIME, Agent, IfRow, RawPoll, SnmpError, SystemFacts
from poller.snmp_usm import forget_peer
from poller.snmp_v2c import V2cAgentError, V2cTimeout, V2cTransport
from poller.sockets import enlarge_rcvbuf
from poller.text import REPLACEMENT, clean

AUTH = {"md5": usm.usmHMACMD5AuthProtocol, "sha": usm.usmHMACSHAAuthProtocol,
        "sha224": usm.usmHMAC128SHA224AuthProtocol, "sha256": usm.usmHMAC192SHA256AuthProtocol,
        "sha384": usm.usmHMAC256SHA384AuthProtocol, "sha512": usm.usmHMAC384SHA512AuthProtocol}
# aes192/aes256 are net-snmp's AES-192/AES-256 (Blumenthal key extension); the ...c variants
# are Cisco's (Reeder), net-snmp's AES-192-C/AES-256-C.
PRIV = {"des": usm.usmDESPrivProtocol, "3des": usm.usm3DESEDEPrivProtocol,
        "aes": usm.usmAesCfb128Protocol, "aes192": usm.usmAesBlumenthalCfb192Protocol,
        "aes256": usm.usmAesBlumenthalCfb256Protocol, "aes192c": usm.usmAesCfb192Protocol,
        "aes256c": usm.usmAesCfb256Protocol}

Oid = tuple[int, ...]
Column = tuple[str, Oid]  # (IfRow field, column OID)
Walking = tuple[str, Oid, Oid]  # (IfRow field, column OID, last OID read)
Values = dict[str, int | str | None]  # one interface's fields read so far
Answer = list[tuple[Oid, Value]]  # a response's var-binds: OID and plain value

_COLUMNS: tuple[Column, ...] = tuple(
    (fieldname, tuple(int(x) for x in oid.split(".")))
    for fieldname, oid in (*IF_COLUMNS.items(), *IFX_COLUMNS.items()))
_TEXT_FIELDS = frozenset({"descr", "name", "alias"})
_IDENTITY = frozenset({"descr", "name", "alias", "speed", "high_speed"})
_ALL = _COLUMNS
_IDENTITY_COLUMNS = tuple(c for c in _COLUMNS if c[0] in _IDENTITY)
_FAST_BOTH = tuple(c for c in _COLUMNS if c[0] not in _IDENTITY)
_FAST_64 = tuple(c for c in _FAST_BOTH if c[0] not in ("in_octets", "out_octets"))
_FAST_32 = tuple(c for c in _COLUMNS
                 if c[0] not in _IDENTITY and c[0] not in ("hc_in_octets", "hc_out_octets"))
_NULL = Null()
MAX_REQUESTS_PER_WALK = 100  # 25 rows each: 2,500 interfaces; an agent that never ends a column stops here
_MAX_IFINDEX = 2**31 - 1
_TOO_BIG = 1  # error-status tooBig  # RFC 2863: ifIndex is 1..2147483647
# GETNEXT of the OID just before each system scalar returns the scalar itself.
_SYSTEM_PREV = tuple(tuple(int(x) for x in oid[: -len(".0")].split(".")) for oid in SYSTEM_OIDS)
_AUTH_FAILURES = (errind.UnknownUserName, errind.WrongDigest, errind.UnknownSecurityName,
                  errind.UnsupportedSecurityLevel, errind.DecryptionError, errind.AuthenticationError,
                  errind.AuthenticationFailure)
# What an agent whose engine is no longer the one pysnmp remembers looks like (it restarted
# without raising its boots): its answers are dropped, so the request times out, or is refused.
_STALE_ENGINE = (errind.RequestTimedOut, errind.NotInTimeWindow, errind.UnknownEngineID)


class _TooBig(Exception):
    """The agent answered tooBig: ask for fewer rows."""


class _EngineSlot:
    __slots__ = ("engine", "targets")

    def __init__(self, engine: SnmpEngine) -> None:
        self.engine = engine
        self.targets = 0


class _AgentState:
    """What the client keeps per agent between polls: its engine and target, and the
    interfaces' identity columns, which are re-read only every ``full_every`` polls."""

    __slots__ = ("addr_name", "community", "fast", "full_due", "identity", "opers", "rows", "slot", "slowest",
                 "uptime")

    def __init__(self, slot: _EngineSlot | None, addr_name: str, community: bytes | None = None) -> None:
        self.slot = slot  # v3: the pysnmp engine and its target name
        self.addr_name = addr_name
        self.community = community  # v2c: by the client's own codec
        self.identity: dict[int, Values] = {}
        self.opers: dict[int, int | str | None] = {}
        self.rows = 8  # interfaces at the last poll: sizes the next GETBULK
        self.fast: tuple[Column, ...] | None = None  # the fast polls' columns; None until a full poll
        self.full_due = 0  # fast polls left before the next full one
        self.uptime = -1
        self.slowest = 0.0  # this poll's slowest request so far, seconds


def _auth_data(credential: Credential) -> CommunityData | UsmUserData:
    if isinstance(credential, V2c):
        return CommunityData(credential.community, mpModel=1)
    if credential.priv_protocol is None:
        return UsmUserData(credential.user, authKey=credential.auth_key,
                           authProtocol=AUTH[credential.auth_protocol])
    return UsmUserData(credential.user, authKey=credential.auth_key, privKey=credential.priv_key,
                       authProtocol=AUTH[credential.auth_protocol],
                       privProtocol=PRIV[credential.priv_protocol])


def _plain(value: Any) -> Value:
    """A pyasn1 value (pysnmp's v3 path) as the v2c codec's plain one."""
    if isinstance(value, Null) or value.tagSet in _EXCEPTION_TAGS:
        return NULL
    if isinstance(value, OctetString):
        return bytes(value)
    if isinstance(value, ObjectIdentifier):
        return OidValue(tuple(value))
    return int(value)


def _value(value: Value, text: bool) -> int | str | None:
    """A plain value for an IfRow or SystemFacts field; None where the agent has none."""
    if isinstance(value, NoValue):
        return None
    if isinstance(value, bytes):
        # Agent text reaches terminals (the dashboard, `wardtui snmp`): no control characters,
        # which could be escape sequences (poller/text.py). Trailing NULs are C strings' padding.
        return clean(value.decode("utf-8", "replace").rstrip("\x00"), tab=REPLACEMENT) if text \
            else value.hex()
    if isinstance(value, OidValue):
        return ".".join(map(str, value))
    return value


def _exception_tags() -> frozenset[Any]:
    from pysnmp.proto import rfc1905
    return frozenset(v.tagSet for v in (rfc1905.noSuchObject, rfc1905.noSuchInstance, rfc1905.endOfMibView))


_EXCEPTION_TAGS = _exception_tags()


class SnmpClient:
    """Polls agents; safe to call concurrently for different agents from one event loop.

    A *full* poll walks every interface column; a *fast* one only those that change (status,
    octets, errors, discards, discontinuity time) and takes names, aliases and speeds from
    the last full poll: fewer values to decode, which is where the client's CPU goes (pyasn1,
    ~0.1 ms per value). A full poll comes every ``full_every`` polls, on the first, after an
    interface changed status (its speed may have changed) or after the agent restarted, and
    at once when a fast poll finds interfaces it does not know.
    """

    def __init__(self, *, targets_per_engine: int = 250, rcvbuf: int = 4 * 1024 * 1024,
                 max_repetitions: int = 25, full_every: int = 10) -> None:
        self.targets_per_engine = targets_per_engine
        self.rcvbuf = rcvbuf
        self.max_repetitions = max_repetitions
        self.full_every = full_every
        self._engines: list[_EngineSlot] = []
        self._agents: dict[str, _AgentState] = {}
        self._generator = cmdgen.BulkCommandGenerator()
        self._v2c = V2cTransport(rcvbuf)
        self.requests = 0
        self.timeouts = 0
        self.auth_failures = 0
        self.errors = 0
        self.rediscoveries = 0  # v3 agents whose engine was forgotten after a timeout or report

    @property
    def engines(self) -> int:
        return len(self._engines)

    def counters(self) -> dict[str, int]:
        return {"requests": self.requests, "timeouts": self.timeouts,
                "auth_failures": self.auth_failures, "errors": self.errors, "engines": len(self._engines),
                "bad_replies": self._v2c.bad_replies, "rediscoveries": self.rediscoveries}

    def _new_engine(self) -> _EngineSlot:
        engine = SnmpEngine()
        # The engine sends and receives on these sockets (one per address family): pysnmp
        # would otherwise open its own, with the kernel's default receive buffer.
        families = ((socket.AF_INET, udp.UdpAsyncioTransport, udp.DOMAIN_NAME),
                    (socket.AF_INET6, udp6.Udp6AsyncioTransport, udp6.DOMAIN_NAME))
        for family, transport_class, domain in families:
            try:
                sock = socket.socket(family, socket.SOCK_DGRAM)
            except OSError:  # no IPv6 on this host: IPv6 agents will fail, and say so
                continue
            sock.setblocking(False)
            enlarge_rcvbuf(sock, self.rcvbuf)
            engine_config.add_transport(engine, domain, transport_class().open_server_mode(sock=sock))
        slot = _EngineSlot(engine)
        self._engines.append(slot)
        return slot

    async def _state(self, agent: Agent) -> _AgentState:
        known = self._agents.get(agent.key)
        if known is not None:
            return known
        if isinstance(agent.credential, V2c):
            state = self._agents[agent.key] = _AgentState(None, "", agent.credential.community.encode())
            return state
        slot = next((s for s in self._engines if s.targets < self.targets_per_engine), None)
        if slot is None:
            slot = self._new_engine()
        slot.targets += 1
        # An address literal resolves without any lookup; names were resolved by the inventory.
        target_class = Udp6TransportTarget if ":" in agent.address else UdpTransportTarget
        target = await target_class.create((agent.address, agent.port), timeout=agent.timeout,
                                           retries=agent.retries)
        addr_name, _ = LCD.configure(slot.engine, _auth_data(agent.credential), target, b"")
        state = _AgentState(slot, addr_name)
        self._agents[agent.key] = state
        return state

    async def poll(self, agent: Agent) -> RawPoll:
        """Read the system group and the interface tables of ``agent``; raises :class:`SnmpError`."""
        state = await self._state(agent)
        at = datetime.now(UTC)
        mono = time.monotonic()
        state.slowest = 0.0
        columns = _ALL if state.full_due <= 0 or state.fast is None else state.fast
        full = columns is _ALL
        system, rows = await self._walk(agent, state, columns, with_system=True)
        facts, missing = _facts(system)
        restarted = facts.uptime_ticks is not None and facts.uptime_ticks < state.uptime
        if facts.uptime_ticks is not None:
            state.uptime = facts.uptime_ticks
        if not rows:
            missing.append(NO_INTERFACES)
        if full:
            state.identity = {i: {k: v for k, v in r.items() if k in _IDENTITY} for i, r in rows.items()}
            # Fast polls read the octet counters each interface has: 64-bit where all have them,
            # 32-bit where none has, both on an agent that has 64-bit ones on some ports only.
            wide = [r.get("hc_in_octets") is not None for r in rows.values()]
            state.fast = _FAST_64 if all(wide) else _FAST_32 if not any(wide) else _FAST_BOTH
        elif rows.keys() != state.identity.keys() or restarted:
            # New or renumbered interfaces: their names and speeds are needed now, not in ten polls
            # (and whether they have 64-bit counters, at the next poll, a full one).
            _, names = await self._walk(agent, state, _IDENTITY_COLUMNS, with_system=False)
            state.identity = names
            restarted = True
        if not full:
            for index, values in rows.items():
                values.update(state.identity.get(index, {}))
        state.rows = len(rows)
        opers = {i: r.get("oper") for i, r in rows.items()}
        changed = any(state.opers.get(i, v) != v for i, v in opers.items())
        state.opers = opers
        state.full_due = 0 if restarted or changed else (self.full_every if full else state.full_due) - 1
        interfaces = tuple(IfRow(i, **values) for i, values in sorted(rows.items()))  # type: ignore[arg-type]
        return RawPoll(at=at, system=facts, interfaces=interfaces, counters_mono=mono,
                       latency_s=state.slowest, missing=tuple(missing))

    async def _walk(self, agent: Agent, state: _AgentState, columns: tuple[Column, ...],
                    with_system: bool) -> tuple[list[int | str | None], dict[int, Values]]:
        """Walk ``columns`` side by side by GETBULK; the first request also reads the system group."""
        reps = max(2, min(self.max_repetitions, state.rows + 1))
        todo = [(name, prefix, prefix) for name, prefix in columns]  # (field, column, last OID seen)
        rows: dict[int, Values] = {}
        system: list[int | str | None] = []
        first = with_system
        for _ in range(MAX_REQUESTS_PER_WALK):
            if not todo:
                return system, rows
            oids = [last for _, _, last in todo]
            if first:
                oids = [*_SYSTEM_PREV, *oids]
            try:
                answer = await self._request(agent, state, len(_SYSTEM_PREV) if first else 0, reps, oids)
            except _TooBig:
                if reps == 1:
                    raise SnmpError("error", "the agent's answers are too big even for one row") from None
                reps = max(1, reps // 2)  # RFC 3416 lets an agent say tooBig instead of truncating
                continue
            if first:
                system = _system(answer[: len(_SYSTEM_PREV)])
                answer = answer[len(_SYSTEM_PREV):]
                first = False
            if not answer:
                # Only the system group came back (a response size limit on the agent): an empty
                # table here would be a lie, and would delete the device's interfaces downstream.
                raise SnmpError("error", "the answer held none of the interface columns asked for")
            todo = _collect(todo, answer, rows)
        raise SnmpError("error", f"the interface walk did not end within {MAX_REQUESTS_PER_WALK} requests")

    async def _request(self, agent: Agent, state: _AgentState, non_repeaters: int, reps: int,
                       oids: list[Oid]) -> Answer:
        self.requests += 1
        sent = time.monotonic()
        answer = await self._request_once(agent, state, non_repeaters, reps, oids)
        # Sent -> answer processed: on a busy loop this is mostly our own queueing, not the agent.
        state.slowest = max(state.slowest, time.monotonic() - sent)
        return answer

    async def _request_once(self, agent: Agent, state: _AgentState, non_repeaters: int, reps: int,
                            oids: list[Oid]) -> Answer:
        if state.community is not None:
            try:
                return await self._v2c.getbulk(agent.address, agent.port, state.community, non_repeaters,
                                               reps, oids, agent.timeout, agent.retries)
            except V2cTimeout:
                self.timeouts += 1
                raise SnmpError("timeout", f"no answer within {agent.timeout:g} s "
                                           f"({agent.retries} retries)") from None
            except V2cAgentError as exc:
                if exc.status == _TOO_BIG:
                    raise _TooBig from None
                self.errors += 1
                raise SnmpError("error", str(exc)) from None
        return await self._request_v3(agent, state, non_repeaters, reps, oids)

    async def _request_v3(self, agent: Agent, state: _AgentState, non_repeaters: int, reps: int,
                          oids: list[Oid]) -> Answer:
        """One GETBULK by pysnmp's native API: the hlapi would resolve every OID through its MIB
        view, which costs as much as encoding the request."""
        assert state.slot is not None
        future: asyncio.Future[tuple[Any, Any, Any, Any]] = asyncio.get_running_loop().create_future()

        def done(_engine: Any, _handle: Any, indication: Any, status: Any, index: Any, varbinds: Any,
                 _ctx: Any) -> None:
            if not future.done():
                future.set_result((indication, status, index, varbinds))

        self._generator.send_varbinds(state.slot.engine, state.addr_name, None, b"", non_repeaters, reps,
                                      [(ObjectName(oid), _NULL) for oid in oids], done)
        indication, status, index, answer = await future
        if indication is not None:
            if isinstance(indication, _STALE_ENGINE) and forget_peer(state.slot.engine, agent.address,
                                                                     agent.port):
                # An agent that restarted without raising snmpEngineBoots has its answers dropped
                # by pysnmp (new engineID, or clock gone back) until its cached engine is
                # forgotten: the next request rediscovers it. A silent agent loses nothing by it.
                self.rediscoveries += 1
            if isinstance(indication, errind.RequestTimedOut):
                self.timeouts += 1
                raise SnmpError("timeout", f"no answer within {agent.timeout:g} s "
                                           f"({agent.retries} retries)")
            if isinstance(indication, _AUTH_FAILURES):
                self.auth_failures += 1
                raise SnmpError("authentication", f"the agent refused the credentials: {indication}")
            self.errors += 1
            raise SnmpError("error", str(indication))
        if status:
            if int(status) == _TOO_BIG:
                raise _TooBig
            self.errors += 1
            raise SnmpError("error", f"agent error {status.prettyPrint()} at var-bind {index}")
        return [(tuple(oid), _plain(value)) for oid, value in answer]

    def close(self) -> None:
        for slot in self._engines:
            dispatcher = slot.engine.transport_dispatcher
            if dispatcher is not None:
                dispatcher.close_dispatcher()
        self._engines.clear()
        self._agents.clear()
        self._v2c.close()


def _facts(system: list[int | str | None]) -> tuple[SystemFacts, list[str]]:
    """The system facts, and the scalars the agent does not have (an Eaton UPS card answers
    sysObjectID and nothing else of the group): what it has is kept, what it lacks is said."""
    name, descr, object_id, uptime = system
    ticks = uptime if isinstance(uptime, int) and uptime >= 0 else None
    missing = [label for label, value in ((NO_UPTIME, ticks), ("sysDescr", descr),
                                          ("sysObjectID", object_id), ("sysName", name)) if value is None]
    # Without sysUpTime a reboot cannot be told from a reset: no reboot is ever inferred
    # (poller/snmp_rates.py), and rates rely on the counters' own checks.
    return SystemFacts(name=str(name or ""), descr=str(descr or ""), object_id=str(object_id or ""),
                       uptime_ticks=ticks), missing


def _system(varbinds: Answer) -> list[int | str | None]:
    """sysName, sysDescr, sysObjectID, sysUpTime from the non-repeaters' answers (None if absent)."""
    got: dict[str, int | str | None] = {}
    for (oid, value), wanted in zip(varbinds, SYSTEM_OIDS, strict=False):
        if ".".join(map(str, oid)) == wanted:
            got[wanted] = _value(value, text=True)
    return [got.get(SYS_NAME), got.get(SYS_DESCR), got.get(SYS_OBJECT_ID), got.get(SYS_UPTIME)]


def _collect(columns: list[Walking], varbinds: Answer, rows: dict[int, Values]) -> list[Walking]:
    """File a GETBULK answer's values into ``rows``; return the columns still to walk."""
    width = len(columns)
    last = [c[2] for c in columns]
    done = [False] * width
    for n, (oid, value) in enumerate(varbinds):
        j = n % width
        if done[j]:
            continue
        fieldname, prefix, _ = columns[j]
        plen = len(prefix)
        if oid[:plen] != prefix or len(oid) != plen + 1 or isinstance(value, NoValue) \
                or oid <= last[j]:
            done[j] = True  # left the column (or the agent went backwards: stop, never loop)
            continue
        last[j] = oid
        if 0 < oid[plen] <= _MAX_IFINDEX:  # out of RFC 2863's range: skipped, the walk goes on
            rows.setdefault(oid[plen], {})[fieldname] = _value(value, fieldname in _TEXT_FIELDS)
    if not varbinds:
        return []
    return [(c[0], c[1], last[j]) for j, c in enumerate(columns) if not done[j]]
