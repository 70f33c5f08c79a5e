"""SNMPv3 GETBULK through pysnmp's native API, over a few shared engines.

pysnmp does what v3 needs (USM: key localisation, HMAC, privacy, engine discovery). Its
engines are few and shared: a new ``SnmpEngine`` costs ~60 ms, and one engine slows down as
targets accumulate on it, so each serves at most ``targets_per_engine`` agents (field notes:
~250 kept first contacts flat). Every engine's sockets get a large receive buffer, so that
hundreds of answers arriving together are not dropped by the kernel (which would look like
timeouts). pysnmp takes ~0.2 s to load: only a client for a run that polls SNMP imports this.
"""

from __future__ import annotations

import asyncio
import socket
from typing import Any

from pyasn1.type.univ import Null, ObjectIdentifier, OctetString
from pysnmp.carrier.asyncio.dgram import udp, udp6
from pysnmp.entity import config as engine_config
from pysnmp.entity.rfc3413 import cmdgen
from pysnmp.hlapi.v3arch.asyncio import SnmpEngine, Udp6TransportTarget, UdpTransportTarget, UsmUserData
from pysnmp.hlapi.v3arch.asyncio import auth as usm
from pysnmp.hlapi.v3arch.asyncio.cmdgen import LCD
from pysnmp.proto import errind
from pysnmp.proto.rfc1902 import ObjectName

from poller.credentials import V3
from poller.snmp_getbulk import NULL, TOO_BIG, Oid, OidValue, TooBig, Value, VarBind, timeout_error
from poller.snmp_source import Agent, SnmpError
from poller.snmp_usm import forget_peer
from poller.sockets import enlarge_rcvbuf

AUTH = {"md5": usm.usmHMACMD5AuthProtocol, "sha": usm.usmHMACSHAAuthProtocol,
        "sha224": usm.usmHMAC128SHA224AuthProtocol, "sha256": usm.usmHMAC192SHA256AuthProtocol,
        "sha384": usm.usmHMAC256SHA384AuthProtocol, "sha512": usm.usmHMAC384SHA512AuthProtocol}
# aes192/aes256 are net-snmp's AES-192/AES-256 (Blumenthal key extension); the ...c variants
# are Cisco's (Reeder), net-snmp's AES-192-C/AES-256-C.
PRIV = {"des": usm.usmDESPrivProtocol, "3des": usm.usm3DESEDEPrivProtocol,
        "aes": usm.usmAesCfb128Protocol, "aes192": usm.usmAesBlumenthalCfb192Protocol,
        "aes256": usm.usmAesBlumenthalCfb256Protocol, "aes192c": usm.usmAesCfb192Protocol,
        "aes256c": usm.usmAesCfb256Protocol}

_NULL = Null()
_AUTH_FAILURES = (errind.UnknownUserName, errind.WrongDigest, errind.UnknownSecurityName,
                  errind.UnsupportedSecurityLevel, errind.DecryptionError, errind.AuthenticationError,
                  errind.AuthenticationFailure)
# What an agent whose engine is no longer the one pysnmp remembers looks like (it restarted
# without raising its boots): its answers are dropped, so the request times out, or is refused.
_STALE_ENGINE = (errind.RequestTimedOut, errind.NotInTimeWindow, errind.UnknownEngineID)


class _EngineSlot:
    __slots__ = ("engine", "targets")

    def __init__(self, engine: SnmpEngine) -> None:
        self.engine = engine
        self.targets = 0


class _Target:
    """One agent as its engine knows it: the engine and the target's name in its LCD."""

    __slots__ = ("addr_name", "slot")

    def __init__(self, slot: _EngineSlot, addr_name: str) -> None:
        self.slot = slot
        self.addr_name = addr_name


def _auth_data(credential: V3) -> UsmUserData:
    if credential.priv_protocol is None:
        return UsmUserData(credential.user, authKey=credential.auth_key,
                           authProtocol=AUTH[credential.auth_protocol])
    return UsmUserData(credential.user, authKey=credential.auth_key, privKey=credential.priv_key,
                       authProtocol=AUTH[credential.auth_protocol],
                       privProtocol=PRIV[credential.priv_protocol])


def _exception_tags() -> frozenset[Any]:
    from pysnmp.proto import rfc1905
    return frozenset(v.tagSet for v in (rfc1905.noSuchObject, rfc1905.noSuchInstance, rfc1905.endOfMibView))


_EXCEPTION_TAGS = _exception_tags()


def _plain(value: Any) -> Value:
    """A pyasn1 value as the walk's plain one (:mod:`poller.snmp_getbulk`)."""
    if isinstance(value, Null) or value.tagSet in _EXCEPTION_TAGS:
        return NULL
    if isinstance(value, OctetString):
        return bytes(value)
    if isinstance(value, ObjectIdentifier):
        return OidValue(tuple(value))
    return int(value)


class V3GetBulk:
    """SNMPv3 agents' GETBULKs (a :class:`poller.snmp_getbulk.GetBulk`): an engine slot and a
    target per agent, made at its first poll; after a timeout or a report the agent's cached
    engine is forgotten (:mod:`poller.snmp_usm`), so a restarted agent is rediscovered."""

    def __init__(self, *, targets_per_engine: int = 250, rcvbuf: int = 4 * 1024 * 1024) -> None:
        self.targets_per_engine = targets_per_engine
        self.rcvbuf = rcvbuf
        self._engines: list[_EngineSlot] = []
        self._targets: dict[str, _Target] = {}
        self._generator = cmdgen.BulkCommandGenerator()
        self.rediscoveries = 0  # agents whose engine was forgotten after a timeout or report

    @property
    def engines(self) -> int:
        return len(self._engines)

    def counters(self) -> dict[str, int]:
        return {"engines": len(self._engines), "rediscoveries": self.rediscoveries}

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

    async def open(self, agent: Agent) -> None:
        credential = agent.credential
        if not isinstance(credential, V3):
            raise TypeError(f"not an SNMPv3 credential: {credential.name}")
        slot = next((s for s in self._engines if s.targets < self.targets_per_engine), None)
        if slot is None:
            slot = self._new_engine()
        slot.targets += 1
        # An address literal resolves without any lookup; names were resolved by the inventory.
        target_class = Udp6TransportTarget if ":" in agent.address else UdpTransportTarget
        target = await target_class.create((agent.address, agent.port), timeout=agent.timeout,
                                           retries=agent.retries)
        addr_name, _ = LCD.configure(slot.engine, _auth_data(credential), target, b"")
        self._targets[agent.key] = _Target(slot, addr_name)

    def forget(self, key: str) -> None:
        """Give up the agent's target; its engine slot takes another agent. (Its entries in
        pysnmp's LCD configuration stay: they are looked up by target name only.)"""
        target = self._targets.pop(key, None)
        if target is not None:
            target.slot.targets -= 1

    async def getbulk(self, agent: Agent, non_repeaters: int, max_repetitions: int,
                      oids: list[Oid]) -> list[VarBind]:
        """One GETBULK by pysnmp's native API: the hlapi would resolve every OID through its MIB
        view, which costs as much as encoding the request."""
        target = self._targets[agent.key]
        engine = target.slot.engine
        future: asyncio.Future[tuple[Any, Any, Any, Any]] = asyncio.get_running_loop().create_future()

        def done(_engine: Any, _handle: Any, indication: Any, status: Any, index: Any, varbinds: Any,
                 _ctx: Any) -> None:
            if not future.done():
                future.set_result((indication, status, index, varbinds))

        self._generator.send_varbinds(engine, target.addr_name, None, b"", non_repeaters, max_repetitions,
                                      [(ObjectName(oid), _NULL) for oid in oids], done)
        indication, status, index, answer = await future
        if indication is not None:
            if isinstance(indication, _STALE_ENGINE) and forget_peer(engine, agent.address, agent.port):
                # An agent that restarted without raising snmpEngineBoots has its answers dropped
                # by pysnmp (new engineID, or clock gone back) until its cached engine is
                # forgotten: the next request rediscovers it. A silent agent loses nothing by it.
                self.rediscoveries += 1
            if isinstance(indication, errind.RequestTimedOut):
                raise timeout_error(agent)
            if isinstance(indication, _AUTH_FAILURES):
                raise SnmpError("authentication", f"the agent refused the credentials: {indication}")
            raise SnmpError("error", str(indication))
        if status:
            if int(status) == TOO_BIG:
                raise TooBig
            raise SnmpError("error", f"agent error {status.prettyPrint()} at var-bind {index}")
        return [(tuple(oid), _plain(value)) for oid, value in answer]

    def close(self) -> None:
        for slot in self._engines:
            dispatcher = slot.engine.transport_dispatcher
            if dispatcher is not None:
                dispatcher.close_dispatcher()
        self._engines.clear()
        self._targets.clear()
