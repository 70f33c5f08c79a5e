"""SNMPv3 GETBULK with the user-based security model, on one UDP socket per address family.

Why not pysnmp: through pyasn1 a v3 poll cost ~9.5 ms of CPU (105 full polls/s, 0.74x net-snmp's
``snmpbulkget``); the messages are the v2c codec's PDUs in a short fixed envelope
(:mod:`poller.snmp_usm_codec`) and the cryptography is OpenSSL's (:mod:`poller.snmp_usm_crypto`).

Per agent (RFC 3414 3, 4): its engine is discovered at the first request (a noAuthNoPriv probe
with an empty engine ID; the agent's report names its engineID, boots and time), the user's keys
are localised to that engine once (cached), and the agent's clock is followed from its
authenticated messages. Reports become the poll's outcome:

- usmStatsNotInTimeWindows (authenticated): the agent's boots and time are taken from it and
  the request is sent once more. This is also how an agent restarted with its clock set back
  (same engineID, boots not raised) is followed; pysnmp's cached engine state refused it;
- usmStatsUnknownEngineIDs: the agent has a new engineID (restarted without its state):
  rediscovered, keys localised again, the request sent once more;
- unknownUserNames, wrongDigests, decryptionErrors, unsupportedSecLevels: an "authentication"
  failure that says which;
- no answer to an encrypted request right after the agent answered discovery: an
  "authentication" failure too (net-snmp drops a PDU that a wrong privacy key decrypts to noise);
- an authenticated answer outside the time window (the agent's clock went back): rediscovered
  and asked once more, as a new engine.

A request that gets no answer, after every retry, forgets the agent's engine: its next poll
starts with discovery. Replies are matched by msgID and by the address and port the request
went to, and must be signed with the user's keys (a report alone may be unsigned, as RFC 3414
has it: it can only end the request, never give values); anything else is counted and dropped.
"""

from __future__ import annotations

import asyncio
import ipaddress
import random
import socket
import time
from typing import Any, NamedTuple

from poller.credentials import NO_AUTH, V3
from poller.snmp_getbulk import TOO_BIG, Oid, TooBig, VarBind, timeout_error
from poller.snmp_source import Agent, SnmpError
from poller.snmp_usm_codec import (
    AUTH_REPORTS,
    GET,
    NOT_IN_TIME_WINDOWS,
    REPORT,
    RESPONSE,
    UNKNOWN_ENGINE_IDS,
    Message,
    ScopedPdu,
    SecurityParameters,
    authentic,
    decode_message,
    encode_message,
    encode_pdu,
    report_of,
    report_text,
    scoped_pdu,
)
from poller.snmp_usm_crypto import UserKeys, user_keys
from poller.snmp_v2c import ERROR_STATUS, BerError, encode_getbulk_pdu, free_id
from poller.sockets import UdpSockets, reply_host, udp_peer

TIME_WINDOW = 150  # seconds (RFC 3414 2.2.3)
ENGINE_ID_OCTETS = (5, 32)  # SnmpEngineID's size (RFC 3411)
_MAX_BOOTS = 2**31 - 1


class _Engine:
    """An agent's engine as we know it: its ID, the user's keys for it, and its clock."""

    __slots__ = ("boots", "engine_id", "keys", "latest", "learnt_at", "time")

    def __init__(self, engine_id: bytes, boots: int, engine_time: int, keys: UserKeys | None) -> None:
        self.engine_id = engine_id
        self.keys = keys
        self.set_clock(boots, engine_time)

    def now(self) -> int:
        """The agent's engine time now, by our clock since it was learnt."""
        return min(self.time + int(time.monotonic() - self.learnt_at), _MAX_BOOTS)

    def set_clock(self, boots: int, engine_time: int) -> None:
        self.boots, self.time, self.learnt_at = boots, engine_time, time.monotonic()
        self.latest = engine_time  # latestReceivedEngineTime (RFC 3414 2.3)

    def follow(self, boots: int, engine_time: int) -> bool:
        """RFC 3414 3.2 7b for an authentic message: a later boots, or a time later than the
        latest received, is adopted (so an agent whose clock runs slower than ours is followed,
        not drifted away from); False if the message is outside the time window (an older
        boots, or a time more than 150 s behind ours for it)."""
        if boots >= _MAX_BOOTS or boots < self.boots:
            return False
        if boots > self.boots or engine_time > self.latest:
            self.set_clock(boots, engine_time)
            return True
        return engine_time >= self.now() - TIME_WINDOW


class _Peer:
    """One agent: where it is, its user, and its engine once discovered."""

    __slots__ = ("credential", "engine", "family", "ip", "user")

    def __init__(self, agent: Agent, credential: V3) -> None:
        ip = self.ip = ipaddress.ip_address(agent.address)
        self.family = socket.AF_INET6 if ip.version == 6 else socket.AF_INET
        self.credential = credential
        self.user = credential.user.encode()
        self.engine: _Engine | None = None

    def keys_for(self, engine_id: bytes) -> UserKeys | None:
        """The user's keys for the engine; None for a noAuthNoPriv user (it has none)."""
        c = self.credential
        if c.auth_protocol == NO_AUTH:
            return None
        return user_keys(c.auth_protocol, c.auth_key, c.priv_protocol, c.priv_key, engine_id)


class _Reply(NamedTuple):
    message: Message
    pdu: ScopedPdu
    authentic: bool
    in_window: bool
    varbinds: list[VarBind]  # decoded as it arrived: a datagram that does not decode is dropped


class _Waiting(NamedTuple):
    future: asyncio.Future[_Reply | None]
    destination: tuple[str, int]
    keys: UserKeys | None  # None: a discovery probe
    engine: _Engine | None
    user: bytes
    request_id: int  # the PDU's: a response must carry it


class UsmGetBulk:
    """SNMPv3 agents' GETBULKs (a :class:`poller.snmp_getbulk.GetBulk`) by our own USM."""

    def __init__(self, rcvbuf: int = 4 * 1024 * 1024) -> None:
        self._peers: dict[str, _Peer] = {}
        self._sockets = UdpSockets(self.received, self._send_error, rcvbuf)
        self._pending: dict[int, _Waiting] = {}  # msgID -> the request waiting for it
        self._next_id = random.randrange(1, 2**31 - 1)
        self._request_id = random.randrange(1, 2**31 - 1)
        self._salt = random.getrandbits(64)
        self.rediscoveries = 0  # engines forgotten after a timeout, a new engineID, a clock set back
        self.resyncs = 0  # notInTimeWindow reports followed
        self.discoveries = 0
        self.bad_replies = 0  # malformed, unsigned, or matching no request in flight
        self.send_errors = 0

    def counters(self) -> dict[str, int]:
        return {"engines": sum(1 for p in self._peers.values() if p.engine is not None),
                "rediscoveries": self.rediscoveries, "v3_resyncs": self.resyncs,
                "v3_discoveries": self.discoveries, "v3_bad_replies": self.bad_replies,
                "v3_send_errors": self.send_errors}

    async def open(self, agent: Agent) -> None:
        credential = agent.credential
        if not isinstance(credential, V3):
            raise TypeError(f"not an SNMPv3 credential: {credential.name}")
        self._peers[agent.key] = _Peer(agent, credential)

    def forget(self, key: str) -> None:
        self._peers.pop(key, None)

    def _send_error(self, exc: Exception) -> None:
        self.send_errors += 1  # e.g. ICMP port unreachable from a host with no agent

    def engine_id(self, key: str) -> bytes | None:
        """Agent ``key``'s engine ID as its discovery found it (None before, or once forgotten):
        the trap receiver believes that device's v3 traps signed by this engine."""
        peer = self._peers.get(key)
        return None if peer is None or peer.engine is None else peer.engine.engine_id

    def _msg_id(self) -> int:
        self._next_id = free_id(self._next_id, self._pending)
        return self._next_id

    def received(self, data: bytes, addr: Any) -> None:
        try:
            message = decode_message(data)
            waiting = self._pending.get(message.msg_id)
            if waiting is None or (reply_host(addr), addr[1]) != waiting.destination:
                raise BerError("unmatched")
            reply = self._check(data, message, waiting)
        except BerError:
            self.bad_replies += 1
            return
        if not waiting.future.done():
            waiting.future.set_result(reply)

    def _check(self, data: bytes, message: Message, waiting: _Waiting) -> _Reply:
        """The reply as far as it can be trusted; raises BerError for one to drop."""
        keys = waiting.keys
        engine = waiting.engine
        signed = keys is not None and message.flags & 0x01 != 0
        if signed:
            assert keys is not None and engine is not None
            if message.security.engine_id != engine.engine_id or message.security.user != waiting.user \
                    or not authentic(data, message, keys):
                raise BerError("not signed by the agent's engine with the user's key")
        pdu = scoped_pdu(data, message, keys if signed else None)
        if pdu.pdu_tag == REPORT:
            return _Reply(message, pdu, signed, True, pdu.varbinds())
        if pdu.pdu_tag != RESPONSE or pdu.header.request_id != waiting.request_id:
            raise BerError("an unexpected PDU")
        varbinds = pdu.varbinds()  # before the clock is followed: only a whole answer counts
        if not signed:
            # Values only from a signed response, unless the user is noAuthNoPriv (an engine
            # with no keys): then from its engine, for its user; no clock to check (RFC 3414 3.2 7).
            security = message.security
            if engine is None or engine.keys is not None or message.flags & 0x03 \
                    or security.engine_id != engine.engine_id or security.user != waiting.user:
                raise BerError("an unsigned response")
            return _Reply(message, pdu, False, True, varbinds)
        assert engine is not None
        in_window = engine.follow(message.security.boots, message.security.time)
        return _Reply(message, pdu, True, in_window, varbinds)

    # -- requests ---------------------------------------------------------------------------
    async def _exchange(self, peer: _Peer, agent: Agent, pdu: bytes, request_id: int,
                        engine: _Engine | None) -> _Reply:
        """Send ``pdu`` (signed and encrypted for ``engine``; a discovery probe without one),
        resent with a new msgID after each timeout; the first matching reply."""
        transport = await self._sockets.get(peer.family)
        try:
            # Zoned (fe80::1%eth0): sent out of that interface, its replies keyed with its index.
            destination, sockaddr = udp_peer(peer.ip, agent.port)
        except OSError as exc:  # no such interface (yet, or any more): this poll fails with the reason
            raise SnmpError("error", f"zone of {agent.address}: {exc.strerror or exc}") from None
        loop = asyncio.get_running_loop()
        keys = engine.keys if engine is not None else None
        ids: list[int] = []
        try:
            for _ in range(agent.retries + 1):
                future: asyncio.Future[_Reply | None] = loop.create_future()
                waiting = _Waiting(future, destination, keys, engine, peer.user, request_id)
                msg_id = self._msg_id()
                ids.append(msg_id)
                for each in ids:  # a late answer to an earlier send answers this one too
                    self._pending[each] = waiting
                if engine is None:
                    packet = encode_message(msg_id, SecurityParameters(b"", 0, 0, b""), None, pdu)
                else:
                    self._salt = (self._salt + 1) & 0xFFFFFFFFFFFFFFFF
                    security = SecurityParameters(engine.engine_id, engine.boots, engine.now(), peer.user)
                    packet = encode_message(msg_id, security, keys, pdu, self._salt)
                transport.sendto(packet, sockaddr)
                timer = loop.call_later(agent.timeout, _expire, future)
                try:
                    reply = await future
                finally:
                    timer.cancel()
                if reply is not None:
                    return reply
            raise timeout_error(agent)
        finally:
            for msg_id in ids:
                self._pending.pop(msg_id, None)

    def _next_request_id(self) -> int:
        self._request_id = self._request_id % (2**31 - 2) + 1
        return self._request_id

    async def _discover(self, peer: _Peer, agent: Agent) -> _Engine:
        request_id = self._next_request_id()
        reply = await self._exchange(peer, agent, encode_pdu(GET, request_id), request_id, None)
        security = reply.message.security
        if reply.pdu.pdu_tag != REPORT or not security.engine_id:
            raise SnmpError("error", "the agent's discovery reply named no engine ID")
        if not ENGINE_ID_OCTETS[0] <= len(security.engine_id) <= ENGINE_ID_OCTETS[1]:
            # Unauthenticated: keys are localised and cached per engine ID, and a broken or
            # hostile agent naming a new 30 kB ID at each discovery would grow that cache.
            raise SnmpError("error", f"the agent's discovery reply named an engine ID of "
                                     f"{len(security.engine_id)} octets (RFC 3411: 5 to 32)")
        self.discoveries += 1
        engine = _Engine(security.engine_id, security.boots, security.time, peer.keys_for(security.engine_id))
        peer.engine = engine
        return engine

    def _forget_engine(self, peer: _Peer) -> None:
        if peer.engine is not None:
            peer.engine = None
            self.rediscoveries += 1

    async def getbulk(self, agent: Agent, non_repeaters: int, max_repetitions: int,
                      oids: list[Oid]) -> list[VarBind]:
        peer = self._peers[agent.key]
        request_id = self._next_request_id()
        pdu = encode_getbulk_pdu(request_id, non_repeaters, max_repetitions, oids)
        followed: set[str] = set()  # each report is followed once per request
        while True:
            discovered = peer.engine is None
            engine = peer.engine or await self._discover(peer, agent)
            try:
                reply = await self._exchange(peer, agent, pdu, request_id, engine)
            except SnmpError as exc:
                self._forget_engine(peer)  # the next poll starts with discovery
                if discovered and engine.keys is not None and engine.keys.priv is not None:
                    # It answered the probe a moment ago: what it drops is what it cannot decrypt
                    # (net-snmp sends no decryptionError report for a PDU that decrypts to noise).
                    raise SnmpError("authentication", "the agent answered discovery but not the "
                                    "encrypted request: most likely a wrong privacy key or protocol") from exc
                raise
            if reply.pdu.pdu_tag == RESPONSE:
                if reply.in_window:
                    return _values(reply)
                if "window" in followed:
                    raise SnmpError("authentication", "the agent's answers stay outside its time window")
                followed.add("window")  # the agent's clock went back: a new engine to us
                self._forget_engine(peer)
                continue
            report = report_of(reply.varbinds)
            if report == NOT_IN_TIME_WINDOWS and reply.authentic and "time" not in followed:
                followed.add("time")
                self.resyncs += 1
                engine.set_clock(reply.message.security.boots, reply.message.security.time)
                continue
            if report == UNKNOWN_ENGINE_IDS and "engine" not in followed:
                followed.add("engine")
                self._forget_engine(peer)
                continue
            reason = "authentication" if report in AUTH_REPORTS else "error"
            raise SnmpError(reason, report_text(report))

    def close(self) -> None:
        self._sockets.close()
        self._peers.clear()


def _values(reply: _Reply) -> list[VarBind]:
    header = reply.pdu.header
    status = header.error_status
    if status:
        if status == TOO_BIG:
            raise TooBig
        name = ERROR_STATUS[status] if 0 < status < len(ERROR_STATUS) else str(status)
        raise SnmpError("error", f"agent error {name} at var-bind {header.error_index}")
    return reply.varbinds


def _expire(future: asyncio.Future[_Reply | None]) -> None:
    if not future.done():
        future.set_result(None)
