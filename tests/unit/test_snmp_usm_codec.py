"""Our USM (poller/snmp_usm_crypto.py, poller/snmp_usm_codec.py) against RFC 3414's test vectors
and against pysnmp's own implementation: its key localisation and extension, its digests and
ciphers, and whole v3 messages encoded by one side and decoded by the other."""

from __future__ import annotations

from typing import Any

import pytest
from pyasn1.codec.ber import decoder, encoder
from pyasn1.type import univ
from pysnmp.hlapi.v3arch.asyncio import auth as _usm  # noqa: F401  (loads pysnmp in its own order: eso.priv alone is circular)
from pysnmp.proto import api, rfc1905
from pysnmp.proto.mpmod.rfc3412 import ScopedPDU, SNMPv3Message
from pysnmp.proto.secmod.eso.priv import aes192, aes256, des3
from pysnmp.proto.secmod.rfc3414.auth import hmacmd5, hmacsha
from pysnmp.proto.secmod.rfc3414.priv import des
from pysnmp.proto.secmod.rfc3414.service import UsmSecurityParameters
from pysnmp.proto.secmod.rfc3826.priv import aes
from pysnmp.proto.secmod.rfc7860.auth import hmacsha2

from poller.snmp_getbulk import END_OF_MIB_VIEW, OidValue
from poller.snmp_usm_codec import (
    FLAG_AUTH,
    FLAG_PRIV,
    GET,
    NOT_IN_TIME_WINDOWS,
    REPORT,
    RESPONSE,
    WRONG_DIGESTS,
    SecurityParameters,
    authentic,
    decode_message,
    encode_message,
    encode_pdu,
    report_of,
    report_text,
    scoped_pdu,
)
from poller.snmp_usm_crypto import AUTH, PRIV, localize, password_to_key, priv_key, user_keys
from poller.snmp_v2c import BerError, encode_getbulk_pdu

ENGINE = bytes.fromhex("000000000000000000000002")  # RFC 3414 A.3's engine ID
ENTERPRISE = (1, 3, 6, 1, 4, 1, 8072)
AGENT_ENGINE = bytes.fromhex("80001f8880e9bd0c1d12667a5100000000")  # as net-snmp makes them

P_AUTH: dict[str, Any] = {
    "md5": hmacmd5.HmacMd5(), "sha": hmacsha.HmacSha(),
    "sha224": hmacsha2.HmacSha2(hmacsha2.HmacSha2.SHA224_SERVICE_ID),
    "sha256": hmacsha2.HmacSha2(hmacsha2.HmacSha2.SHA256_SERVICE_ID),
    "sha384": hmacsha2.HmacSha2(hmacsha2.HmacSha2.SAH384_SERVICE_ID),
    "sha512": hmacsha2.HmacSha2(hmacsha2.HmacSha2.SHA512_SERVICE_ID),
}
P_AUTH_ID = {"md5": hmacmd5.HmacMd5.SERVICE_ID, "sha": hmacsha.HmacSha.SERVICE_ID,
             "sha224": hmacsha2.HmacSha2.SHA224_SERVICE_ID, "sha256": hmacsha2.HmacSha2.SHA256_SERVICE_ID,
             "sha384": hmacsha2.HmacSha2.SAH384_SERVICE_ID, "sha512": hmacsha2.HmacSha2.SHA512_SERVICE_ID}
P_PRIV: dict[str, Any] = {"des": des.Des(), "3des": des3.Des3(), "aes": aes.Aes(),
                          "aes192": aes192.AesBlumenthal192(), "aes256": aes256.AesBlumenthal256(),
                          "aes192c": aes192.Aes192(), "aes256c": aes256.Aes256()}


def test_rfc3414_a3_key_localisation_md5_and_sha() -> None:
    md5, sha = AUTH["md5"], AUTH["sha"]
    assert password_to_key(md5, b"maplesyrup").hex() == "9faf3283884e92834ebc9847d8edd963"
    assert localize(md5, b"maplesyrup", ENGINE).hex() == "526f5eed9fcce26f8964c2930787d82b"
    assert password_to_key(sha, b"maplesyrup").hex() == "9fb5cc0381497b3793528939ff788d5d79145211"
    assert localize(sha, b"maplesyrup", ENGINE).hex() == "6695febc9288e36282235fc7151f128497b38f3f"


@pytest.mark.parametrize("auth", sorted(AUTH))
def test_auth_keys_as_pysnmp_localises_them(auth: str) -> None:
    service = P_AUTH[auth]
    theirs = service.localize_key(service.hash_passphrase(b"auth-passphrase"), univ.OctetString(AGENT_ENGINE))
    assert localize(AUTH[auth], b"auth-passphrase", AGENT_ENGINE) == bytes(theirs)
    assert len(theirs) == AUTH[auth].digest_size


@pytest.mark.parametrize("auth", sorted(AUTH))
@pytest.mark.parametrize("priv", sorted(PRIV))
def test_priv_keys_and_their_extensions_as_pysnmp_makes_them(auth: str, priv: str) -> None:
    service = P_PRIV[priv]
    ku = service.hash_passphrase(P_AUTH_ID[auth], b"priv-passphrase")
    theirs = service.localize_key(P_AUTH_ID[auth], ku, univ.OctetString(AGENT_ENGINE))
    ours = priv_key(AUTH[auth], PRIV[priv], b"priv-passphrase", AGENT_ENGINE)
    # pysnmp keeps DES's whole Kul; the cipher uses its first 16 bytes (key, pre-IV).
    assert bytes(theirs)[:PRIV[priv].key_length] == ours


def test_blumenthal_and_reeder_differ_where_a_key_is_extended() -> None:
    sha = AUTH["sha"]
    assert priv_key(sha, PRIV["aes256"], b"priv-pass", AGENT_ENGINE) != \
        priv_key(sha, PRIV["aes256c"], b"priv-pass", AGENT_ENGINE)
    # SHA-512's key needs no extension: both are its first 32 bytes.
    sha512 = AUTH["sha512"]
    assert priv_key(sha512, PRIV["aes256"], b"priv-pass", AGENT_ENGINE) == \
        priv_key(sha512, PRIV["aes256c"], b"priv-pass", AGENT_ENGINE)


COMBOS = [(a, p) for a in sorted(AUTH) for p in (None, *sorted(PRIV))]


@pytest.mark.parametrize(("auth", "priv"), COMBOS)
def test_our_request_as_pysnmp_reads_it(auth: str, priv: str | None) -> None:
    keys = user_keys(auth, "auth-passphrase", priv, "priv-passphrase" if priv else None, AGENT_ENGINE)
    oids = [(1, 3, 6, 1, 2, 1, 1, 3), (1, 3, 6, 1, 2, 1, 2, 2, 1, 10)]
    pdu = encode_getbulk_pdu(4242, 1, 25, oids)
    security = SecurityParameters(AGENT_ENGINE, 7, 123456, b"wt-user")
    wire = encode_message(31337, security, keys, pdu, salt_counter=0x0102030405060708)

    message, _ = decoder.decode(wire, asn1Spec=SNMPv3Message())
    assert int(message["msgGlobalData"]["msgID"]) == 31337
    flags = bytes(message["msgGlobalData"]["msgFlags"])[0]
    assert flags == 0x04 | FLAG_AUTH | (FLAG_PRIV if priv else 0)
    usm, _ = decoder.decode(bytes(message["msgSecurityParameters"]), asn1Spec=UsmSecurityParameters())
    assert bytes(usm["msgAuthoritativeEngineId"]) == AGENT_ENGINE
    assert (int(usm["msgAuthoritativeEngineBoots"]), int(usm["msgAuthoritativeEngineTime"])) == (7, 123456)
    assert bytes(usm["msgUserName"]) == b"wt-user"
    # pysnmp's digest check raises on a wrong digest
    P_AUTH[auth].authenticate_incoming_message(univ.OctetString(keys.auth_key),
                                               usm["msgAuthenticationParameters"], wire)
    data = message["msgData"]
    if priv is None:
        scoped = data["plaintext"]
    else:
        salt = univ.OctetString(bytes(usm["msgPrivacyParameters"]))
        plain = P_PRIV[priv].decrypt_data(univ.OctetString(keys.priv_key), (7, 123456, salt),
                                          data["encryptedPDU"])
        scoped, _ = decoder.decode(plain, asn1Spec=ScopedPDU())
    assert bytes(scoped["contextEngineId"]) == AGENT_ENGINE
    bulk = scoped["data"]["get-bulk-request"]
    assert int(bulk["request-id"]) == 4242 and int(bulk["max-repetitions"]) == 25
    assert [tuple(vb["name"]) for vb in bulk["variable-bindings"]] == oids


def _pysnmp_response(auth: str, priv: str | None, keys: Any, boots: int, engine_time: int) -> bytes:
    """A signed (and encrypted) v3 Response, every part made by pysnmp and pyasn1."""
    v2c = api.PROTOCOL_MODULES[api.SNMP_VERSION_2C]
    pdu = v2c.ResponsePDU()
    v2c.apiPDU.set_defaults(pdu)
    v2c.apiPDU.set_request_id(pdu, 99)
    v2c.apiPDU.set_varbinds(pdu, [((1, 3, 6, 1, 2, 1, 1, 5, 0), v2c.OctetString(b"router-1")),
                                  ((1, 3, 6, 1, 2, 1, 1, 2, 0), v2c.ObjectIdentifier(ENTERPRISE)),
                                  ((1, 3, 6, 1, 2, 1, 31, 1, 1, 1, 6, 2), v2c.Counter64(2**63 + 5)),
                                  ((1, 3, 6, 1, 2, 1, 2, 2, 1, 8, 9), rfc1905.endOfMibView)])
    scoped = ScopedPDU()
    scoped["contextEngineId"] = AGENT_ENGINE
    scoped["contextName"] = b""
    scoped["data"]["response"] = pdu
    message = SNMPv3Message()
    message["msgVersion"] = 3
    message["msgGlobalData"]["msgID"] = 5150
    message["msgGlobalData"]["msgMaxSize"] = 65507
    message["msgGlobalData"]["msgFlags"] = bytes((FLAG_AUTH | (FLAG_PRIV if priv else 0),))
    message["msgGlobalData"]["msgSecurityModel"] = 3
    usm = UsmSecurityParameters()
    usm["msgAuthoritativeEngineId"] = AGENT_ENGINE
    usm["msgAuthoritativeEngineBoots"] = boots
    usm["msgAuthoritativeEngineTime"] = engine_time
    usm["msgUserName"] = b"wt-user"
    usm["msgAuthenticationParameters"] = bytes(AUTH[auth].mac_length)
    if priv is None:
        usm["msgPrivacyParameters"] = b""
        message["msgData"]["plaintext"] = scoped
    else:
        ciphertext, salt = P_PRIV[priv].encrypt_data(univ.OctetString(keys.priv_key),
                                                     (boots, engine_time, None), encoder.encode(scoped))
        usm["msgPrivacyParameters"] = salt
        message["msgData"]["encryptedPDU"] = ciphertext
    message["msgSecurityParameters"] = encoder.encode(usm)
    auth_key = univ.OctetString(keys.auth_key)
    signed = P_AUTH[auth].authenticate_outgoing_message(auth_key, encoder.encode(message))
    return bytes(signed)


@pytest.mark.parametrize(("auth", "priv"), COMBOS)
def test_a_pysnmp_response_as_we_read_it(auth: str, priv: str | None) -> None:
    keys = user_keys(auth, "auth-passphrase", priv, "priv-passphrase" if priv else None, AGENT_ENGINE)
    wire = _pysnmp_response(auth, priv, keys, 3, 4000)
    message = decode_message(wire)
    assert message.msg_id == 5150
    assert message.security == SecurityParameters(AGENT_ENGINE, 3, 4000, b"wt-user")
    assert authentic(wire, message, keys)
    pdu = scoped_pdu(wire, message, keys)
    assert pdu.pdu_tag == RESPONSE and pdu.header.request_id == 99 and pdu.context_engine_id == AGENT_ENGINE
    assert pdu.varbinds() == [((1, 3, 6, 1, 2, 1, 1, 5, 0), b"router-1"),
                              ((1, 3, 6, 1, 2, 1, 1, 2, 0), OidValue(ENTERPRISE)),
                              ((1, 3, 6, 1, 2, 1, 31, 1, 1, 1, 6, 2), 2**63 + 5),
                              ((1, 3, 6, 1, 2, 1, 2, 2, 1, 8, 9), END_OF_MIB_VIEW)]


@pytest.mark.parametrize("priv", [None, "des", "aes"])
def test_a_changed_byte_fails_the_digest_and_a_wrong_key_the_decryption(priv: str | None) -> None:
    keys = user_keys("sha", "auth-passphrase", priv, "priv-passphrase" if priv else None, AGENT_ENGINE)
    wire = _pysnmp_response("sha", priv, keys, 3, 4000)
    for at in (len(wire) - 1, len(wire) // 2, 20):
        changed = bytearray(wire)
        changed[at] ^= 0x01
        try:
            message = decode_message(bytes(changed))
        except BerError:
            continue
        assert not authentic(bytes(changed), message, keys)
    other = user_keys("sha", "other-passphrase", priv, "other-passphrase" if priv else None, AGENT_ENGINE)
    message = decode_message(wire)
    assert not authentic(wire, message, other)
    if priv is not None:
        with pytest.raises(BerError):
            scoped_pdu(wire, message, other).varbinds()


def test_a_discovery_probe_and_the_report_it_gets() -> None:
    probe = encode_message(1, SecurityParameters(b"", 0, 0, b""), None, encode_pdu(GET, 5))
    message, _ = decoder.decode(probe, asn1Spec=SNMPv3Message())
    assert bytes(message["msgGlobalData"]["msgFlags"]) == b"\x04"  # reportable, noAuthNoPriv
    assert int(message["msgData"]["plaintext"]["data"]["get-request"]["request-id"]) == 5
    # A report as an agent sends it, here by our encoder (pysnmp decodes it above too).
    counter = b"\x30\x11\x06\x0a\x2b\x06\x01\x06\x03\x0f\x01\x01\x04\x00\x41\x03\x01\x00\x01"
    report = encode_message(1, SecurityParameters(AGENT_ENGINE, 12, 345, b""), None,
                            encode_pdu(REPORT, 5, counter), reportable=False)
    message_ = decode_message(report)
    assert message_.security.engine_id == AGENT_ENGINE and message_.security.boots == 12
    pdu = scoped_pdu(report, message_, None)
    assert pdu.pdu_tag == REPORT and report_of(pdu.varbinds()) == (1, 3, 6, 1, 6, 3, 15, 1, 1, 4, 0)


def test_report_texts_say_what_went_wrong() -> None:
    assert "wrong authentication key" in report_text(WRONG_DIGESTS)
    assert "time window" in report_text(NOT_IN_TIME_WINDOWS)
    assert report_text((1, 3, 6, 1, 9)) == "the agent reported 1.3.6.1.9"


@pytest.mark.parametrize("junk", [b"", b"\x30\x00", b"\x30\x03\x02\x01\x01", b"\x30\x80\x02\x01\x03",
                                  bytes(range(64))])
def test_malformed_messages_raise_ber_error(junk: bytes) -> None:
    with pytest.raises(BerError):
        decode_message(junk)


def test_the_time_window_follows_later_clocks_and_refuses_older_ones() -> None:
    from poller.snmp_usm_client import _Engine

    keys = user_keys("sha", "auth-passphrase", None, None, AGENT_ENGINE)
    engine = _Engine(AGENT_ENGINE, 5, 1000, keys)
    assert engine.follow(5, 1001) and engine.time == 1001  # later: adopted
    assert engine.follow(5, 1001 - 150)  # 150 s behind: still in the window (RFC 3414 3.2 7b)
    assert not engine.follow(5, 1001 - 151)  # further behind: outside
    assert not engine.follow(4, 5000)  # an older boots: outside, whatever the time
    assert engine.follow(6, 3) and (engine.boots, engine.time) == (6, 3)  # a new boot: adopted
    assert not engine.follow(2**31 - 1, 0)  # boots at its end: the engine must be reconfigured


def test_an_agent_clock_slower_than_ours_is_followed(monkeypatch: pytest.MonkeyPatch) -> None:
    """RFC 3414 3.2 7b adopts a time later than the latest *received*: an agent whose clock runs
    1.6 % slow is 160 s behind our extrapolation after 10,000 s, yet every answer it sends is in
    its window (it was counted as a clock gone back and rediscovered before)."""
    from poller import snmp_usm_client
    from poller.snmp_usm_client import _Engine

    now = [100.0]
    monkeypatch.setattr(snmp_usm_client.time, "monotonic", lambda: now[0])
    engine = _Engine(AGENT_ENGINE, 5, 1000, user_keys("sha", "auth-passphrase", None, None, AGENT_ENGINE))
    for step in range(1, 101):  # an answer every 100 s of ours, 98.4 s of the agent's
        now[0] = 100.0 + 100 * step
        assert engine.follow(5, 1000 + int(98.4 * step)), step
    assert engine.time == 1000 + 9840 and engine.now() == 1000 + 9840
    assert engine.follow(5, 1000 + 9840 - 150)  # and the window is counted from what it said
    assert not engine.follow(5, 1000 + 9840 - 151)
