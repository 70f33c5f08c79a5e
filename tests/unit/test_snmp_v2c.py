"""The v2c codec against pysnmp's own encoder and decoder, malformed input, and the UDP matching
rules (request id, source address and port, community) against a scripted agent on loopback."""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from pyasn1.codec.ber import decoder, encoder
from pysnmp.proto.api import v2c

from poller.credentials import V2c
from poller.snmp_getbulk import END_OF_MIB_VIEW, NO_SUCH_INSTANCE, NO_SUCH_OBJECT, NULL, OidValue, TooBig
from poller.snmp_source import Agent, SnmpError
from poller.snmp_v2c import (
    BerError,
    V2cAgentError,
    V2cGetBulk,
    V2cTimeout,
    V2cTransport,
    decode_oid,
    decode_response,
    encode_getbulk,
    encode_oid,
)
from poller.snmp_walk import SnmpClient
from tests.runqueue import thread_waited


def pysnmp_response(community: bytes, request_id: int, varbinds: list[tuple[str, Any]],
                    error_status: int = 0, error_index: int = 0) -> bytes:
    pdu = v2c.ResponsePDU()
    v2c.apiPDU.set_defaults(pdu)
    v2c.apiPDU.set_request_id(pdu, request_id)
    v2c.apiPDU.set_error_status(pdu, error_status)
    v2c.apiPDU.set_error_index(pdu, error_index)
    v2c.apiPDU.set_varbinds(pdu, [(v2c.ObjectIdentifier(oid), value) for oid, value in varbinds])
    msg = v2c.Message()
    v2c.apiMessage.set_defaults(msg)
    v2c.apiMessage.set_community(msg, community)
    v2c.apiMessage.set_pdu(msg, pdu)
    return bytes(encoder.encode(msg))


LONG_TEXT = b"Linux \x00\xe2\x82\xac" + b"x" * 300  # a NUL, UTF-8, and a length over 255
EVERY_TYPE: list[tuple[str, Any, Any]] = [
    ("1.3.6.1.2.1.1.1.0", v2c.OctetString(LONG_TEXT), LONG_TEXT),
    ("1.3.6.1.2.1.1.2.0", v2c.ObjectIdentifier("1.3.6.1.4.1.8072.3.2.10"),
     (1, 3, 6, 1, 4, 1, 8072, 3, 2, 10)),
    ("1.3.6.1.2.1.1.3.0", v2c.TimeTicks(4294967295), 4294967295),
    ("1.3.6.1.2.1.2.2.1.7.1", v2c.Integer(1), 1),
    ("1.3.6.1.2.1.2.2.1.7.2", v2c.Integer(-2147483648), -2147483648),
    ("1.3.6.1.2.1.2.2.1.10.1", v2c.Counter32(4294967295), 4294967295),
    ("1.3.6.1.2.1.2.2.1.10.2", v2c.Counter32(128), 128),
    ("1.3.6.1.2.1.2.2.1.5.1", v2c.Gauge32(4294967295), 4294967295),
    ("1.3.6.1.2.1.31.1.1.1.6.1", v2c.Counter64(18446744073709551615), 18446744073709551615),
    ("1.3.6.1.2.1.31.1.1.1.6.2", v2c.Counter64(0), 0),
    ("1.3.6.1.2.1.4.20.1.1.0", v2c.IpAddress("127.1.2.3"), b"\x7f\x01\x02\x03"),
    ("1.3.6.1.4.1.99999.4294967295.1", v2c.NoSuchObject(), NO_SUCH_OBJECT),
    ("1.3.6.1.2.1.1.9.0", v2c.NoSuchInstance(), NO_SUCH_INSTANCE),
    ("1.3.6.1.6.3.1", v2c.EndOfMibView(), END_OF_MIB_VIEW),
    ("1.3.6.1.2.1.1.8.0", v2c.Null(""), NULL),
]


def test_a_response_decodes_to_what_pysnmp_encoded() -> None:
    data = pysnmp_response(b"c0mm", 2**31 - 1, [(oid, value) for oid, value, _ in EVERY_TYPE])
    response = decode_response(data)
    assert (response.version, response.community, response.request_id) == (1, b"c0mm", 2**31 - 1)
    assert (response.error_status, response.error_index) == (0, 0)
    assert [".".join(map(str, oid)) for oid, _ in response.varbinds] == [oid for oid, _, _ in EVERY_TYPE]
    assert [value for _, value in response.varbinds] == [expected for _, _, expected in EVERY_TYPE]
    assert isinstance(response.varbinds[1][1], OidValue)


def test_many_var_binds_need_long_lengths() -> None:
    varbinds = [(f"1.3.6.1.2.1.31.1.1.1.6.{i}", v2c.Counter64(2**40 + i)) for i in range(1, 400)]
    response = decode_response(pysnmp_response(b"public", 7, varbinds, error_status=0))
    assert len(response.varbinds) == 399 and response.varbinds[-1][1] == 2**40 + 399


def test_error_status_and_index_are_read() -> None:
    response = decode_response(pysnmp_response(b"public", 9, [("1.3.6.1.2.1.1.1.0", v2c.Null(""))],
                                               error_status=5, error_index=1))
    assert (response.error_status, response.error_index) == (5, 1)


def test_a_getbulk_is_what_pysnmp_decodes() -> None:
    oids = [(1, 3, 6, 1, 2, 1, 1, 1), (1, 3, 6, 1, 2, 1, 31, 1, 1, 1, 6, 4294967295), (2, 999, 3)]
    message, _ = decoder.decode(encode_getbulk(b"s3cret", 123456, 1, 25, oids), asn1Spec=v2c.Message())
    assert int(message["version"]) == 1 and bytes(message["community"]) == b"s3cret"
    pdu = v2c.apiMessage.get_pdu(message)
    assert pdu.isSameTypeWith(v2c.GetBulkRequestPDU())
    assert v2c.apiBulkPDU.get_request_id(pdu) == 123456
    assert v2c.apiBulkPDU.get_non_repeaters(pdu) == 1
    assert v2c.apiBulkPDU.get_max_repetitions(pdu) == 25
    assert [tuple(oid) for oid, _ in v2c.apiBulkPDU.get_varbinds(pdu)] == oids


@pytest.mark.parametrize("oid", [(1, 3), (0, 39), (1, 3, 6, 1, 4, 1, 2**32 - 1, 0, 127, 128, 16383, 16384),
                                 (2, 40), (2, 999, 1)])
def test_oids_round_trip(oid: tuple[int, ...]) -> None:
    assert decode_oid(encode_oid(oid)) == oid


def test_truncated_or_corrupted_datagrams_raise_ber_errors_only() -> None:
    data = pysnmp_response(b"public", 77, [(oid, value) for oid, value, _ in EVERY_TYPE])
    for cut in range(len(data)):
        with pytest.raises(BerError):
            decode_response(data[:cut])
    rng = random.Random(4)
    for _ in range(3000):
        broken = bytearray(data)
        for _ in range(rng.randint(1, 4)):
            broken[rng.randrange(len(broken))] = rng.randrange(256)
        with contextlib.suppress(BerError):  # anything else (IndexError, ...) fails the test
            decode_response(bytes(broken))


def test_a_value_of_a_type_it_does_not_know_is_kept_as_bytes() -> None:
    data = bytearray(pysnmp_response(b"public", 5, [("1.3.6.1.2.1.1.3.0", v2c.Gauge32(7))]))
    data[data.rindex(0x42)] = 0x47  # the Gauge32 retagged as UInteger32 (an obsolete SMIv1 type)
    assert decode_response(bytes(data)).varbinds == [((1, 3, 6, 1, 2, 1, 1, 3, 0), b"\x07")]


def test_a_huge_sub_identifier_is_refused_at_once() -> None:
    body = b"\x2b" + b"\xff" * 60_000 + b"\x01"  # 1.3.<one sub-identifier of 420,000 bits>
    started, waited = time.perf_counter(), thread_waited()
    with pytest.raises(BerError):
        decode_oid(body)
    # 10 ms, plus any time this thread waited for a CPU meanwhile (other work on the machine)
    assert time.perf_counter() - started < 0.01 + (thread_waited() - waited)
    with pytest.raises(BerError):
        decode_oid(encode_oid((1, 3, *range(200))))  # more than 128 sub-identifiers


def test_a_request_pdu_is_not_a_response() -> None:
    with pytest.raises(BerError, match="not a Response-PDU"):
        decode_response(encode_getbulk(b"public", 1, 0, 1, [(1, 3, 6)]))


# -- the transport against a scripted agent on loopback ------------------------------------------
class ScriptedAgent(asyncio.DatagramProtocol):
    """Answers each GETBULK with ``reply(request_id, community) -> list of (datagram, via)``;
    ``via`` None answers from the agent's socket, else from that other socket."""

    def __init__(self, reply: Callable[[int, bytes], list[tuple[bytes, Any]]]) -> None:
        self.reply = reply
        self.requests = 0
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.requests += 1
        message, _ = decoder.decode(data, asn1Spec=v2c.Message())
        request_id = int(v2c.apiBulkPDU.get_request_id(v2c.apiMessage.get_pdu(message)))
        for datagram, via in self.reply(request_id, bytes(message["community"])):
            (via or self.transport).sendto(datagram, addr)


@pytest.fixture
async def v2c_transport() -> AsyncIterator[V2cTransport]:
    transport = V2cTransport()
    yield transport
    transport.close()


async def agent_on_loopback(reply: Callable[[int, bytes], list[tuple[bytes, Any]]]) \
        -> tuple[ScriptedAgent, int, asyncio.DatagramTransport]:
    loop = asyncio.get_running_loop()
    transport, agent = await loop.create_datagram_endpoint(lambda: ScriptedAgent(reply),
                                                           local_addr=("127.0.0.1", 0))
    return agent, transport.get_extra_info("sockname")[1], transport


UPTIME = [("1.3.6.1.2.1.1.3.0", v2c.TimeTicks(4200))]


async def test_an_answer_is_matched_and_decoded(v2c_transport: V2cTransport) -> None:
    _, port, server = await agent_on_loopback(lambda rid, c: [(pysnmp_response(c, rid, UPTIME), None)])
    try:
        got = await v2c_transport.getbulk("127.0.0.1", port, b"public", 1, 1, [(1, 3, 6, 1, 2, 1, 1, 3)],
                                          timeout=1.0, retries=0)
        assert got == [((1, 3, 6, 1, 2, 1, 1, 3, 0), 4200)]
    finally:
        server.close()


async def test_answers_from_elsewhere_with_another_id_or_community_are_dropped_and_counted(
        v2c_transport: V2cTransport) -> None:
    loop = asyncio.get_running_loop()
    other, _ = await loop.create_datagram_endpoint(asyncio.DatagramProtocol, local_addr=("127.0.0.1", 0))
    elsewhere, _ = await loop.create_datagram_endpoint(asyncio.DatagramProtocol, local_addr=("127.0.0.2", 0))

    def v1(community: bytes, rid: int) -> bytes:
        message = bytearray(pysnmp_response(community, rid, UPTIME))
        message[4] = 0  # the version INTEGER (after 30 len 02 01): SNMPv1
        return bytes(message)

    def reply(rid: int, community: bytes) -> list[tuple[bytes, Any]]:
        return [(pysnmp_response(community, rid, UPTIME), other),  # right id, wrong source port
                (pysnmp_response(community, rid, UPTIME), elsewhere),  # right id, wrong source address
                (pysnmp_response(community, rid + 1, UPTIME), None),  # wrong id
                (pysnmp_response(b"other", rid, UPTIME), None),  # wrong community
                (v1(community, rid), None),  # wrong version
                (b"\x30\x03\x02\x01", None)]  # garbage
    _, port, server = await agent_on_loopback(reply)
    try:
        with pytest.raises(V2cTimeout):
            await v2c_transport.getbulk("127.0.0.1", port, b"public", 0, 1, [(1, 3, 6)], timeout=0.3,
                                        retries=0)
        assert v2c_transport.bad_replies == 6
    finally:
        server.close()
        other.close()
        elsewhere.close()


async def test_a_lost_request_is_answered_on_its_retry(v2c_transport: V2cTransport) -> None:
    seen: list[int] = []

    def reply(rid: int, community: bytes) -> list[tuple[bytes, Any]]:
        seen.append(rid)
        return [] if len(seen) == 1 else [(pysnmp_response(community, rid, UPTIME), None)]
    agent, port, server = await agent_on_loopback(reply)
    try:
        got = await v2c_transport.getbulk("127.0.0.1", port, b"public", 1, 1, [(1, 3, 6, 1, 2, 1, 1, 3)],
                                          timeout=0.2, retries=1)
        assert got[0][1] == 4200 and agent.requests == 2 and seen[0] == seen[1]
    finally:
        server.close()


async def test_an_error_status_is_an_agent_error(v2c_transport: V2cTransport) -> None:
    _, port, server = await agent_on_loopback(
        lambda rid, c: [(pysnmp_response(c, rid, UPTIME, error_status=5, error_index=1), None)])
    try:
        with pytest.raises(V2cAgentError, match="genErr"):
            await v2c_transport.getbulk("127.0.0.1", port, b"public", 0, 1, [(1, 3, 6)], timeout=1.0,
                                        retries=0)
    finally:
        server.close()


async def test_the_walks_getbulk_gives_the_walk_its_errors_and_the_client_counts_them() -> None:
    """V2cGetBulk (the walk's v2c GetBulk): tooBig is TooBig (the walk asks again for fewer rows),
    another error status an SnmpError 'error', silence an SnmpError 'timeout'; the client counts
    each by its reason."""
    script = [1, 5, None, 1, 5, None]  # error statuses answered in turn; None: no answer

    def reply(rid: int, community: bytes) -> list[tuple[bytes, Any]]:
        status = script.pop(0)
        return [] if status is None else [(pysnmp_response(community, rid, UPTIME, error_status=status,
                                                           error_index=1), None)]
    _, port, server = await agent_on_loopback(reply)
    getbulk = V2cGetBulk()
    agent = Agent("a", "127.0.0.1", port, V2c("a", "public"), timeout=0.2, retries=0)
    try:
        await getbulk.open(agent)
        with pytest.raises(TooBig):
            await getbulk.getbulk(agent, 0, 2, [(1, 3, 6)])
        with pytest.raises(SnmpError, match="genErr") as error:
            await getbulk.getbulk(agent, 0, 1, [(1, 3, 6)])
        assert error.value.reason == "error"
        with pytest.raises(SnmpError, match=r"no answer within 0\.2 s \(0 retries\)") as error:
            await getbulk.getbulk(agent, 0, 1, [(1, 3, 6)])
        assert error.value.reason == "timeout"
        client = SnmpClient(v2c=getbulk, v3=getbulk)
        with pytest.raises(SnmpError, match="genErr"):
            await client.poll(agent)  # tooBig, then genErr on the smaller request
        with pytest.raises(SnmpError, match="no answer"):
            await client.poll(agent)
        assert client.counters() == {"requests": 3, "timeouts": 1, "auth_failures": 0, "errors": 1,
                                     "bad_replies": 0, "send_errors": 0}
    finally:
        getbulk.close()
        server.close()
