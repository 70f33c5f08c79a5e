"""The v3 client's matching of replies, against a scripted agent on loopback made of our codec
(the codec itself is checked against pysnmp in test_snmp_usm_codec.py, the client against snmpd
in tests/integration/test_snmp_usm.py): only a signed Response to the request in flight, from
where the request went, gives values; everything else is dropped and counted."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from poller.credentials import V3
from poller.snmp_source import Agent, SnmpError
from poller.snmp_usm_client import UsmGetBulk
from poller.snmp_usm_codec import (
    GET,
    REPORT,
    RESPONSE,
    Message,
    SecurityParameters,
    decode_message,
    encode_message,
    encode_pdu,
    scoped_pdu,
)
from poller.snmp_usm_crypto import UserKeys, user_keys
from poller.snmp_v2c import _tlv, encode_oid

ENGINE = bytes.fromhex("80001f888001020304")
CREDENTIAL = V3("lab", "wt-user", "sha256", "auth-passphrase", "aes", "priv-passphrase")
KEYS = user_keys("sha256", "auth-passphrase", "aes", "priv-passphrase", ENGINE)
UPTIME_VARBIND = _tlv(0x30, _tlv(0x06, encode_oid((1, 3, 6, 1, 2, 1, 1, 3, 0))) + b"\x43\x02\x10\x68")
UNKNOWN_ENGINE = _tlv(0x30, _tlv(0x06, encode_oid((1, 3, 6, 1, 6, 3, 15, 1, 1, 4, 0))) + b"\x41\x01\x01")

Reply = Callable[[Message, int], list[tuple[bytes, Any]]]  # (request, its PDU's request id) -> sends


def response(msg_id: int, request_id: int, keys: UserKeys | None = KEYS, user: bytes = b"wt-user",
             engine: bytes = ENGINE) -> bytes:
    security = SecurityParameters(engine, 1, 100, user)
    return encode_message(msg_id, security, keys, encode_pdu(RESPONSE, request_id, UPTIME_VARBIND), 7,
                          reportable=False)


class ScriptedAgent(asyncio.DatagramProtocol):
    """Answers discovery with the engine's report, and each request as ``reply`` says."""

    def __init__(self, reply: Reply, engines: Callable[[], bytes] = lambda: ENGINE,
                 report: bytes = UNKNOWN_ENGINE) -> None:
        self.reply = reply
        self.engines = engines  # the engine ID each discovery is answered with
        self.report = report  # the discovery report's var-binds
        self.discoveries = 0
        self.transport: Any = None

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: Any) -> None:
        message = decode_message(data)
        if not message.security.engine_id:  # discovery
            pdu = scoped_pdu(data, message, None)
            assert pdu.pdu_tag == GET
            self.discoveries += 1
            report = encode_message(message.msg_id, SecurityParameters(self.engines(), 1, 100, b""), None,
                                    encode_pdu(REPORT, pdu.header.request_id, self.report),
                                    reportable=False)
            self.transport.sendto(report, addr)
            return
        request = scoped_pdu(data, message, KEYS)
        for packet, sender in self.reply(message, request.header.request_id):
            (sender or self.transport).sendto(packet, addr)


async def scripted(reply: Reply, **agent: Any) -> tuple[int, Any]:
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(lambda: ScriptedAgent(reply, **agent),
                                                       local_addr=("127.0.0.1", 0))
    return transport.get_extra_info("sockname")[1], transport


async def test_only_a_signed_response_to_the_request_from_its_agent_gives_values() -> None:
    loop = asyncio.get_running_loop()
    other, _ = await loop.create_datagram_endpoint(asyncio.DatagramProtocol, local_addr=("127.0.0.1", 0))
    elsewhere, _ = await loop.create_datagram_endpoint(asyncio.DatagramProtocol, local_addr=("127.0.0.2", 0))
    other_keys = user_keys("sha256", "not-the-passphrase", "aes", "priv-passphrase", ENGINE)

    def reply(request: Message, request_id: int) -> list[tuple[bytes, Any]]:
        msg_id = request.msg_id
        return [(response(msg_id, request_id), other),  # wrong source port
                (response(msg_id, request_id), elsewhere),  # wrong source address
                (response(msg_id + 1, request_id), None),  # wrong msgID
                (response(msg_id, request_id + 1), None),  # wrong request id
                (response(msg_id, request_id, keys=other_keys), None),  # wrong digest
                (response(msg_id, request_id, keys=None), None),  # unsigned
                (response(msg_id, request_id, user=b"someone"), None),  # another user
                (b"\x30\x03\x02\x01\x03", None),  # garbage
                (response(msg_id, request_id), None)]  # the answer
    port, server = await scripted(reply)
    client = UsmGetBulk()
    agent = Agent("a", "127.0.0.1", port, CREDENTIAL, timeout=1.0, retries=0)
    try:
        await client.open(agent)
        got = await client.getbulk(agent, 1, 0, [(1, 3, 6, 1, 2, 1, 1, 3)])
        assert got == [((1, 3, 6, 1, 2, 1, 1, 3, 0), 4200)]
        assert client.counters()["v3_bad_replies"] == 8 and client.counters()["v3_discoveries"] == 1
    finally:
        client.close()
        server.close()
        other.close()
        elsewhere.close()


async def test_a_late_answer_to_the_first_send_answers_the_retry() -> None:
    sent: list[tuple[int, int]] = []

    def reply(request: Message, request_id: int) -> list[tuple[bytes, Any]]:
        sent.append((request.msg_id, request_id))
        if len(sent) == 1:
            return []
        first_msg_id, _ = sent[0]
        return [(response(first_msg_id, request_id), None)]  # answers the first send only
    port, server = await scripted(reply)
    client = UsmGetBulk()
    agent = Agent("a", "127.0.0.1", port, CREDENTIAL, timeout=0.3, retries=1)
    try:
        await client.open(agent)
        assert await client.getbulk(agent, 1, 0, [(1, 3, 6, 1, 2, 1, 1, 3)])
        assert len(sent) == 2 and sent[0][0] != sent[1][0] and sent[0][1] == sent[1][1]
    finally:
        client.close()
        server.close()


async def test_an_agent_that_never_answers_the_request_times_out_and_is_rediscovered() -> None:
    port, server = await scripted(lambda request, request_id: [])
    client = UsmGetBulk()
    agent = Agent("a", "127.0.0.1", port, V3("l", "wt-user", "sha256", "auth-passphrase"),
                  timeout=0.2, retries=0)
    try:
        await client.open(agent)
        with pytest.raises(SnmpError) as info:
            await client.getbulk(agent, 1, 0, [(1, 3, 6, 1, 2, 1, 1, 3)])
        assert info.value.reason == "timeout"  # authNoPriv: nothing to blame on a privacy key
        assert client.counters()["rediscoveries"] == 1 and client.counters()["engines"] == 0
    finally:
        client.close()
        server.close()


@pytest.mark.parametrize("size", [4, 33, 30_000])
async def test_an_engine_id_outside_rfc_3411s_size_is_refused_and_never_cached(size: int) -> None:
    """Discovery is unauthenticated and keys are localised and cached per engine ID: an agent
    naming a new 30 kB ID at each discovery grew the cache by megabytes (seen in review)."""
    from poller import snmp_usm_crypto

    made = iter(range(1_000_000))

    def engine_id() -> bytes:  # a new one at each discovery
        return next(made).to_bytes(4, "big") * (size // 4) + b"x" * (size % 4)
    port, server = await scripted(lambda request, request_id: [], engines=engine_id)
    client = UsmGetBulk()
    agent = Agent("a", "127.0.0.1", port, CREDENTIAL, timeout=0.5, retries=0)
    cached = len(snmp_usm_crypto._KUL)
    try:
        await client.open(agent)
        for _ in range(3):
            with pytest.raises(SnmpError) as info:
                await client.getbulk(agent, 1, 0, [(1, 3, 6, 1, 2, 1, 1, 3)])
            assert f"an engine ID of {size} octets (RFC 3411: 5 to 32)" in str(info.value)
        assert len(snmp_usm_crypto._KUL) == cached and client.counters()["engines"] == 0
    finally:
        client.close()
        server.close()


@pytest.mark.parametrize("where", ["report", "response"])
async def test_a_reply_whose_var_binds_do_not_decode_is_dropped_and_counted(where: str) -> None:
    """A discovery report or a signed response with a broken var-bind list is a malformed
    datagram: dropped and counted like any other, and the request goes on to its timeout (it
    escaped the client as a BerError, past the poller's counters, before)."""
    broken = _tlv(0x30, b"\x06\x05\x2b\x06")  # a var-bind whose OID claims 5 octets and has 2

    def reply(request: Message, request_id: int) -> list[tuple[bytes, Any]]:
        security = SecurityParameters(ENGINE, 1, 100, b"wt-user")
        return [(encode_message(request.msg_id, security, KEYS, encode_pdu(RESPONSE, request_id, broken), 7,
                                reportable=False), None)]
    port, server = await scripted(reply, **({"report": broken} if where == "report" else {}))
    client = UsmGetBulk()
    agent = Agent("a", "127.0.0.1", port, CREDENTIAL, timeout=0.3, retries=0)
    try:
        await client.open(agent)
        with pytest.raises(SnmpError) as info:
            await client.getbulk(agent, 1, 0, [(1, 3, 6, 1, 2, 1, 1, 3)])
        assert info.value.reason in ("timeout", "authentication")  # authPriv: blamed on the key
        assert client.counters()["v3_bad_replies"] == 1
        assert client.counters()["v3_discoveries"] == (0 if where == "report" else 1)
    finally:
        client.close()
        server.close()
