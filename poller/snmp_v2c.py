"""SNMPv2c GETBULK on one UDP socket per address family, its messages encoded and decoded here.

Why not pysnmp for v2c: pysnmp builds and decodes every message through pyasn1, measured
here at ~75 µs per value (6.4 ms for an 84-value response, 5.4 ms of CPU per 4-interface
poll); that capped one core at ~2,500 devices polled every 60 s, and an overloaded loop
turned slow decoding into timeouts, retries and skipped ICMP checks (docs/BENCHMARKS.md).
A v2c Response is a short, fixed shape of X.690 BER; decoding just that costs ~40x less. No
maintained Python library offers an asyncio v2c client at that cost (pysnmp and aiosnmp both
decode through generic pure-Python ASN.1 codecs), so this module does it, and its tests
check it against pysnmp's own encoder and decoder. SNMPv3 wraps the same PDUs in USM's
envelope (:mod:`poller.snmp_usm_codec`, :mod:`poller.snmp_usm_client`).

Replies are matched by request id *and* by the address and port the request went to, and
must carry the request's community and version; anything else is counted and dropped. A zoned
(link-local) agent, ``fe80::1%eth0``, is matched with its zone: the reply's scope id (an
interface index) must be the index of the interface the request went out of.
:class:`V2cGetBulk` is the walk's GETBULK (:mod:`poller.snmp_getbulk`) over this transport.
"""

from __future__ import annotations

import asyncio
import ipaddress
import random
import socket
from collections.abc import Callable, Container
from typing import Any, NamedTuple

from poller.credentials import V2c
from poller.snmp_getbulk import (
    END_OF_MIB_VIEW,
    NO_SUCH_INSTANCE,
    NO_SUCH_OBJECT,
    NULL,
    TOO_BIG,
    Oid,
    OidValue,
    TooBig,
    Value,
    VarBind,
    timeout_error,
)
from poller.snmp_source import Agent, SnmpError
from poller.sockets import UdpSockets, reply_host, udp_peer

_VERSION_2C = 1
_GETBULK = 0xA5
_RESPONSE = 0xA2
_UNSIGNED = frozenset({0x41, 0x42, 0x43, 0x46})  # Counter32, Gauge32, TimeTicks, Counter64
_OCTETS = frozenset({0x04, 0x40, 0x44})  # OCTET STRING, IpAddress, Opaque
_NO_VALUES = {0x05: NULL, 0x80: NO_SUCH_OBJECT, 0x81: NO_SUCH_INSTANCE, 0x82: END_OF_MIB_VIEW}
ERROR_STATUS = ("noError", "tooBig", "noSuchName", "badValue", "readOnly", "genErr", "noAccess",
                "wrongType", "wrongLength", "wrongEncoding", "wrongValue", "noCreation",
                "inconsistentValue", "resourceUnavailable", "commitFailed", "undoFailed",
                "authorizationError", "notWritable", "inconsistentName")


class BerError(ValueError):
    """A datagram that is not a well-formed SNMPv2c message."""


class Response(NamedTuple):
    version: int
    community: bytes
    request_id: int
    error_status: int
    error_index: int
    varbinds: list[VarBind]

    def __repr__(self) -> str:  # never the community
        return f"Response(request_id={self.request_id}, error_status={self.error_status}, " \
               f"varbinds={self.varbinds!r})"


# -- encoding ----------------------------------------------------------------------------------
def _length(n: int) -> bytes:
    if n < 0x80:
        return bytes((n,))
    body = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes((0x80 | len(body),)) + body


def _tlv(tag: int, body: bytes) -> bytes:
    return bytes((tag,)) + _length(len(body)) + body


def _integer(value: int) -> bytes:
    return _tlv(0x02, value.to_bytes(value.bit_length() // 8 + 1, "big", signed=True))


def _subidentifier(value: int) -> bytearray:
    out = bytearray((value & 0x7F,))
    value >>= 7
    while value:
        out.insert(0, 0x80 | (value & 0x7F))
        value >>= 7
    return out


def encode_oid(oid: Oid) -> bytes:
    """The contents of an OBJECT IDENTIFIER (X.690 8.19): the first two arcs as 40*a + b."""
    if len(oid) < 2 or oid[0] > 2 or (oid[0] < 2 and oid[1] >= 40) or min(oid) < 0:
        raise ValueError(f"not an encodable OID: {oid}")
    body = _subidentifier(oid[0] * 40 + oid[1])
    for arc in oid[2:]:
        body += _subidentifier(arc)
    return bytes(body)


_VARBIND_CACHE: dict[Oid, bytes] = {}


def _null_varbind(oid: Oid) -> bytes:
    """(OID, NULL) as a request var-bind; cached, since requests repeat the same column OIDs."""
    encoded = _VARBIND_CACHE.get(oid)
    if encoded is None:
        encoded = _tlv(0x30, _tlv(0x06, encode_oid(oid)) + b"\x05\x00")
        if len(_VARBIND_CACHE) < 50_000:  # walks pass through per-interface OIDs too
            _VARBIND_CACHE[oid] = encoded
    return encoded


def encode_getbulk_pdu(request_id: int, non_repeaters: int, max_repetitions: int, oids: list[Oid]) -> bytes:
    """A GetBulkRequest-PDU (v2c's message carries it, and v3's scoped PDU: poller/snmp_usm_codec.py)."""
    varbinds = _tlv(0x30, b"".join(map(_null_varbind, oids)))
    return _tlv(_GETBULK, _integer(request_id) + _integer(non_repeaters) + _integer(max_repetitions)
                + varbinds)


def encode_getbulk(community: bytes, request_id: int, non_repeaters: int, max_repetitions: int,
                   oids: list[Oid]) -> bytes:
    """A whole SNMPv2c GetBulkRequest message."""
    pdu = encode_getbulk_pdu(request_id, non_repeaters, max_repetitions, oids)
    return _tlv(0x30, _integer(_VERSION_2C) + _tlv(0x04, community) + pdu)


# -- decoding ----------------------------------------------------------------------------------
def _header(buf: bytes, i: int, end: int) -> tuple[int, int, int]:
    """(tag, start of contents, end of contents) of the TLV at ``i``, checked against ``end``."""
    if i + 2 > end:
        raise BerError("truncated header")
    tag = buf[i]
    n = buf[i + 1]
    i += 2
    if n & 0x80:
        k = n & 0x7F
        if k == 0 or k > 4 or i + k > end:
            raise BerError("bad length")  # indefinite lengths are not allowed in SNMP
        n = int.from_bytes(buf[i:i + k], "big")
        i += k
    if i + n > end:
        raise BerError("truncated contents")
    return tag, i, i + n


_MAX_ARCS = 128  # RFC 2578: at most 128 sub-identifiers, each at most 2**32-1


def decode_oid(body: bytes) -> tuple[int, ...]:
    if not body or body[-1] & 0x80 or len(body) > 5 * _MAX_ARCS:
        raise BerError("bad OBJECT IDENTIFIER")
    arcs: list[int] = []
    value = 0
    for byte in body:
        value = (value << 7) | (byte & 0x7F)
        if not byte & 0x80:
            arcs.append(value)
            value = 0
        elif value > 0x1FFFFFF:  # a sixth byte would pass 2**32-1 (and a huge one costs time)
            raise BerError("OBJECT IDENTIFIER sub-identifier too large")
    if len(arcs) > _MAX_ARCS:
        raise BerError("OBJECT IDENTIFIER too long")
    first = arcs[0]
    head = [first // 40, first % 40] if first < 80 else [2, first - 80]
    return (*head, *arcs[1:])


def _value(tag: int, body: bytes) -> Value:
    if tag == 0x02:
        return int.from_bytes(body, "big", signed=True)
    if tag in _UNSIGNED:
        return int.from_bytes(body, "big")
    if tag in _OCTETS:
        return body
    if tag == 0x06:
        return OidValue(decode_oid(body))
    # A type this module does not know (UInteger32, NsapAddress, ...) is kept as its bytes: a
    # column walk steps past its column's end into whatever follows, and one odd value there
    # must not make the whole answer, and the agent, look lost.
    return _NO_VALUES.get(tag) or body


def _integer_at(buf: bytes, i: int, end: int) -> tuple[int, int]:
    tag, start, stop = _header(buf, i, end)
    if tag != 0x02 or start == stop:
        raise BerError("INTEGER expected")
    return int.from_bytes(buf[start:stop], "big", signed=True), stop


class Header(NamedTuple):
    """A Response's fields before its var-binds, which are decoded only for a reply we await."""

    version: int
    community: bytes
    request_id: int
    error_status: int
    error_index: int
    varbinds_at: int  # start and end of the var-bind list's contents
    varbinds_end: int

    def __repr__(self) -> str:  # never the community
        return f"Header(request_id={self.request_id}, error_status={self.error_status})"


def _message(buf: bytes) -> tuple[int, bytes, int, int, int]:
    """(version, community, PDU tag, start and end of the PDU's contents) of an SNMPv1/v2c message."""
    tag, i, end = _header(buf, 0, len(buf))
    if tag != 0x30:
        raise BerError("not an SNMP message")
    version, i = _integer_at(buf, i, end)
    tag, start, i = _header(buf, i, end)
    if tag != 0x04:
        raise BerError("community expected")
    community = bytes(buf[start:i])
    tag, i, pdu_end = _header(buf, i, end)
    return version, community, tag, i, pdu_end


def decode_header(buf: bytes) -> Header:
    """Parse an SNMPv1/v2c message carrying a Response-PDU up to its var-bind list."""
    version, community, tag, i, pdu_end = _message(buf)
    if tag != _RESPONSE:
        raise BerError(f"not a Response-PDU (0x{tag:02x})")
    return _pdu_header(buf, version, community, i, pdu_end)


def _pdu_header(buf: bytes, version: int, community: bytes, i: int, pdu_end: int) -> Header:
    """The request id, error fields and var-bind list of a PDU shaped like a Response's."""
    request_id, i = _integer_at(buf, i, pdu_end)
    status, i = _integer_at(buf, i, pdu_end)
    index, i = _integer_at(buf, i, pdu_end)
    tag, i, list_end = _header(buf, i, pdu_end)
    if tag != 0x30:
        raise BerError("var-bind list expected")
    return Header(version, community, request_id, status, index, i, list_end)


def decode_varbinds(buf: bytes, header: Header,
                    oid: Callable[[bytes], tuple[int, ...]] = decode_oid) -> list[VarBind]:
    """The var-binds; their names decoded by ``oid`` (traps pass :func:`_known_oid`)."""
    varbinds: list[VarBind] = []
    i, list_end = header.varbinds_at, header.varbinds_end
    while i < list_end:
        tag, i, vb_end = _header(buf, i, list_end)
        tag_name, start, stop = _header(buf, i, vb_end)
        if tag != 0x30 or tag_name != 0x06:
            raise BerError("var-bind expected")
        name = oid(buf[start:stop])
        tag, start, stop = _header(buf, stop, vb_end)
        varbinds.append((name, _value(tag, buf[start:stop])))
        i = vb_end
    return varbinds


def decode_response(buf: bytes) -> Response:
    """Parse an SNMPv1/v2c message carrying a Response-PDU; raises :class:`BerError`."""
    header = decode_header(buf)
    return Response(header.version, header.community, header.request_id, header.error_status,
                    header.error_index, decode_varbinds(buf, header))


# -- notifications (traps and informs, read by poller/snmp_traps.py) --------------------------
TRAP_V1 = 0xA4
INFORM = 0xA6
TRAP_V2 = 0xA7
SYS_UPTIME_0: Oid = (1, 3, 6, 1, 2, 1, 1, 3, 0)
SNMP_TRAP_OID_0: Oid = (1, 3, 6, 1, 6, 3, 1, 1, 4, 1, 0)
SNMP_TRAPS: Oid = (1, 3, 6, 1, 6, 3, 1, 1, 5)  # coldStart .1, warmStart .2, linkDown .3, linkUp .4, ...


class Notification(NamedTuple):
    """An SNMPv1 Trap, SNMPv2c Trap or InformRequest, in v2c terms (RFC 3584 3.1 for v1)."""

    version: int  # 0: SNMPv1, 1: SNMPv2c, 3: SNMPv3 (poller/snmp_trap_usm.py)
    community: bytes  # b"" for SNMPv3
    pdu: int  # TRAP_V1, TRAP_V2 or INFORM
    request_id: int  # 0 for a v1 trap, which has none
    uptime_ticks: int | None  # sysUpTime.0 (a v1 trap's time-stamp)
    trap_oid: Oid  # snmpTrapOID.0: what happened
    varbinds: list[VarBind]  # the rest, in order
    varbind_list: bytes  # the var-bind list's contents as received (an inform's Response carries them back)

    def __repr__(self) -> str:  # never the community
        return f"Notification(pdu=0x{self.pdu:02x}, trap_oid={self.trap_oid}, varbinds={self.varbinds!r})"


_KNOWN_OIDS: dict[bytes, tuple[int, ...]] = {}


def _known_oid(body: bytes) -> tuple[int, ...]:
    """:func:`decode_oid`, remembered: a device's traps name the same few OIDs again and again
    (sysUpTime.0, snmpTrapOID.0, ifIndex.N), and decoding them was half a trap's cost."""
    oid = _KNOWN_OIDS.get(body)
    if oid is None:
        oid = decode_oid(body)
        if len(_KNOWN_OIDS) < 20_000:
            _KNOWN_OIDS[body] = oid
    return oid


def decode_notification(buf: bytes) -> Notification:
    """Parse a v1 Trap-PDU, or a v2c Trap-PDU or InformRequest-PDU; raises :class:`BerError`.

    A v1 trap becomes its v2c form: generic traps 0-5 are ``snmpTraps.(generic + 1)``, an
    enterprise-specific one ``enterprise.0.specific``. Its agent-addr field is not returned: the
    sender is known by the datagram's source, never by what the datagram says."""
    version, community, tag, i, pdu_end = _message(buf)
    if tag == TRAP_V1:
        if version != 0:
            raise BerError("a v1 Trap-PDU in a message that is not SNMPv1")
        return _v1_trap(buf, community, i, pdu_end)
    if tag not in (TRAP_V2, INFORM) or version != _VERSION_2C:
        raise BerError(f"not an SNMPv2c notification (0x{tag:02x})")
    return notification_of(buf, tag, _pdu_header(buf, version, community, i, pdu_end))


def notification_of(buf: bytes, tag: int, header: Header) -> Notification:
    """The Trap-PDU or InformRequest-PDU (``tag``) whose fields ``header`` found in ``buf``: a
    v2c message's, or a v3 scoped PDU's (poller/snmp_trap_usm.py; version 3, no community)."""
    uptime: int | None = None
    trap_oid: Oid | None = None
    rest: list[VarBind] = []
    for name, value in decode_varbinds(buf, header, _known_oid):
        if name == SYS_UPTIME_0 and isinstance(value, int) and uptime is None:
            uptime = value
        elif name == SNMP_TRAP_OID_0 and isinstance(value, OidValue) and trap_oid is None:
            trap_oid = tuple(value)
        else:
            rest.append((name, value))
    if trap_oid is None:
        raise BerError("no snmpTrapOID.0")
    return Notification(header.version, header.community, tag, header.request_id, uptime, trap_oid, rest,
                        bytes(buf[header.varbinds_at:header.varbinds_end]))


def _v1_trap(buf: bytes, community: bytes, i: int, pdu_end: int) -> Notification:
    tag, start, i = _header(buf, i, pdu_end)
    if tag != 0x06:
        raise BerError("enterprise OID expected")
    enterprise = decode_oid(buf[start:i])
    tag, start, i = _header(buf, i, pdu_end)
    if tag != 0x40:
        raise BerError("agent-addr expected")
    generic, i = _integer_at(buf, i, pdu_end)
    specific, i = _integer_at(buf, i, pdu_end)
    tag, start, i = _header(buf, i, pdu_end)
    if tag != 0x43:
        raise BerError("time-stamp expected")
    uptime = int.from_bytes(buf[start:i], "big")
    tag, i, list_end = _header(buf, i, pdu_end)
    if tag != 0x30:
        raise BerError("var-bind list expected")
    varbinds = decode_varbinds(buf, Header(0, community, 0, 0, 0, i, list_end), _known_oid)
    if 0 <= generic <= 5:
        trap_oid: Oid = (*SNMP_TRAPS, generic + 1)
    elif generic == 6:
        trap_oid = (*enterprise, 0, specific)
    else:
        raise BerError(f"generic-trap {generic} out of range")
    return Notification(0, community, TRAP_V1, 0, uptime, trap_oid, varbinds, bytes(buf[i:list_end]))


def encode_inform_ack(notification: Notification) -> bytes:
    """The Response to an InformRequest: its request id and var-binds, no error (RFC 3416 4.2.7)."""
    pdu = _tlv(_RESPONSE, _integer(notification.request_id) + _integer(0) + _integer(0)
               + _tlv(0x30, notification.varbind_list))
    return _tlv(0x30, _integer(notification.version) + _tlv(0x04, notification.community) + pdu)


# -- transport ---------------------------------------------------------------------------------
def free_id(last: int, in_flight: Container[int]) -> int:
    """The id after ``last`` (1 to 2**31 - 2, wrapping round) that no request in flight has."""
    while True:
        last = last % (2**31 - 2) + 1
        if last not in in_flight:
            return last


class V2cTimeout(Exception):
    """No matching answer within the timeout, after every retry."""


class V2cAgentError(Exception):
    """The agent answered with an error status (``status``: 1 is tooBig)."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


class V2cTransport:
    """Sends GETBULKs and matches their answers; one socket per address family, shared by all."""

    def __init__(self, rcvbuf: int = 4 * 1024 * 1024) -> None:
        self._sockets = UdpSockets(self.received, self._send_error, rcvbuf)
        # request id -> (future of the send in flight, (address, port), community)
        self._pending: dict[int, tuple[asyncio.Future[Response | None], tuple[str, int], bytes]] = {}
        self._next_id = random.randrange(1, 2**31 - 1)
        self.bad_replies = 0  # malformed, or matching no request we are waiting for
        self.send_errors = 0

    def _send_error(self, exc: Exception) -> None:
        self.send_errors += 1  # e.g. ICMP port unreachable from a host with no agent

    def _request_id(self) -> int:
        self._next_id = free_id(self._next_id, self._pending)
        return self._next_id

    def received(self, data: bytes, addr: Any) -> None:
        try:
            header = decode_header(data)
            waiting = self._pending.get(header.request_id)
            if waiting is None:  # late (after its timeout) or not ours
                raise BerError("unmatched")
            future, destination, community = waiting
            if (reply_host(addr), addr[1]) != destination or header.community != community \
                    or header.version != _VERSION_2C:
                raise BerError("unmatched")
            # Only now, for an answer we wait for from where we sent, are the values decoded.
            response = Response(header.version, header.community, header.request_id,
                                header.error_status, header.error_index, decode_varbinds(data, header))
        except BerError:
            self.bad_replies += 1
            return
        if not future.done():
            future.set_result(response)

    async def getbulk(self, address: str, port: int, community: bytes, non_repeaters: int,
                      max_repetitions: int, oids: list[Oid], timeout: float, retries: int) -> list[VarBind]:
        """Send one GETBULK, resent ``retries`` times after ``timeout`` seconds without an answer."""
        ip = ipaddress.ip_address(address)
        transport = await self._sockets.get(socket.AF_INET6 if ip.version == 6 else socket.AF_INET)
        try:
            destination, sockaddr = udp_peer(ip, port)
        except OSError as exc:  # e.g. the interface named by the zone is not (or no longer) here
            raise SnmpError("error", f"zone of {address}: {exc.strerror or exc}") from None
        request_id = self._request_id()
        packet = encode_getbulk(community, request_id, non_repeaters, max_repetitions, oids)
        loop = asyncio.get_running_loop()
        try:
            for _ in range(retries + 1):
                # The same request id on a resend: a late answer to an earlier send answers it too.
                future: asyncio.Future[Response | None] = loop.create_future()
                self._pending[request_id] = (future, destination, community)
                transport.sendto(packet, sockaddr)
                timer = loop.call_later(timeout, _expire, future)
                try:
                    response = await future
                finally:
                    timer.cancel()
                if response is None:
                    continue
                if response.error_status:
                    status = response.error_status
                    name = ERROR_STATUS[status] if 0 < status < len(ERROR_STATUS) else str(status)
                    raise V2cAgentError(f"agent error {name} at var-bind {response.error_index}", status)
                return response.varbinds
            raise V2cTimeout
        finally:
            self._pending.pop(request_id, None)

    def close(self) -> None:
        self._sockets.close()


class V2cGetBulk:
    """SNMPv2c agents' GETBULKs (a :class:`poller.snmp_getbulk.GetBulk`) over one
    :class:`V2cTransport`; the transport's errors become the walk's."""

    def __init__(self, rcvbuf: int = 4 * 1024 * 1024) -> None:
        self.transport = V2cTransport(rcvbuf)
        self._communities: dict[str, bytes] = {}  # by agent key, encoded once

    def counters(self) -> dict[str, int]:
        return {"bad_replies": self.transport.bad_replies, "send_errors": self.transport.send_errors}

    async def open(self, agent: Agent) -> None:
        credential = agent.credential
        if not isinstance(credential, V2c):
            raise TypeError(f"not an SNMPv2c credential: {credential.name}")
        self._communities[agent.key] = credential.community.encode()

    def forget(self, key: str) -> None:
        self._communities.pop(key, None)

    async def getbulk(self, agent: Agent, non_repeaters: int, max_repetitions: int,
                      oids: list[Oid]) -> list[VarBind]:
        try:
            return await self.transport.getbulk(agent.address, agent.port, self._communities[agent.key],
                                                non_repeaters, max_repetitions, oids, agent.timeout,
                                                agent.retries)
        except V2cTimeout:
            raise timeout_error(agent) from None
        except V2cAgentError as exc:
            if exc.status == TOO_BIG:
                raise TooBig from None
            raise SnmpError("error", str(exc)) from None

    def close(self) -> None:
        self.transport.close()
        self._communities.clear()


def _expire(future: asyncio.Future[Response | None]) -> None:
    if not future.done():
        future.set_result(None)

