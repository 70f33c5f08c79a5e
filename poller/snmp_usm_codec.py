"""SNMPv3 messages with the user-based security model (RFC 3412 6, RFC 3414 2.4), on the v2c codec.

A v3 message wraps the same PDUs as v2c (:mod:`poller.snmp_v2c` encodes and decodes them)::

    SEQUENCE { msgVersion 3,
               msgGlobalData SEQUENCE { msgID, msgMaxSize, msgFlags (1 byte), msgSecurityModel 3 },
               msgSecurityParameters OCTET STRING { SEQUENCE { engineID, engineBoots, engineTime,
                                                    userName, authParameters, privParameters } },
               msgData: ScopedPDU SEQUENCE { contextEngineID, contextName, PDU }
                        or, with privacy, OCTET STRING { that ScopedPDU encrypted } }

The digest (:mod:`poller.snmp_usm_crypto`) covers the whole message with its authentication
parameters zeroed: they are encoded as zeros at a known place and overwritten. Decoding reads the
message's fields and where its parts lie; authentication and decryption are separate steps, done
only for a reply that matches a request in flight.
"""

from __future__ import annotations

from typing import NamedTuple

from poller.snmp_getbulk import Oid, VarBind
from poller.snmp_usm_crypto import UserKeys, decrypt, encrypt, sign, verify
from poller.snmp_v2c import (
    BerError,
    Header,
    _header,
    _integer,
    _integer_at,
    _pdu_header,
    _tlv,
    decode_varbinds,
)

VERSION_3 = 3
USM = 3  # msgSecurityModel
FLAG_AUTH = 0x01
FLAG_PRIV = 0x02
FLAG_REPORTABLE = 0x04
MAX_SIZE = 65507  # the largest UDP payload over IPv4: what we accept
GET = 0xA0
RESPONSE = 0xA2
REPORT = 0xA8

# The reports an agent's USM and message processing send (RFC 3414 5, RFC 3412 5), by the
# counter's OID, and what each means to the person whose poll failed.
USM_STATS = (1, 3, 6, 1, 6, 3, 15, 1, 1)
UNSUPPORTED_SEC_LEVELS: Oid = (*USM_STATS, 1, 0)
NOT_IN_TIME_WINDOWS: Oid = (*USM_STATS, 2, 0)
UNKNOWN_USER_NAMES: Oid = (*USM_STATS, 3, 0)
UNKNOWN_ENGINE_IDS: Oid = (*USM_STATS, 4, 0)
WRONG_DIGESTS: Oid = (*USM_STATS, 5, 0)
DECRYPTION_ERRORS: Oid = (*USM_STATS, 6, 0)
REPORTS: dict[Oid, str] = {
    UNSUPPORTED_SEC_LEVELS: "the agent does not offer this user's security level "
                            "(authPriv or authNoPriv) (usmStatsUnsupportedSecLevels)",
    NOT_IN_TIME_WINDOWS: "outside the agent's time window, even after resynchronising "
                         "(usmStatsNotInTimeWindows)",
    UNKNOWN_USER_NAMES: "the agent knows no such user (usmStatsUnknownUserNames)",
    UNKNOWN_ENGINE_IDS: "the agent's engine ID changed again after rediscovery "
                        "(usmStatsUnknownEngineIDs)",
    WRONG_DIGESTS: "the agent refused the digest: wrong authentication key or protocol "
                   "(usmStatsWrongDigests)",
    DECRYPTION_ERRORS: "the agent could not decrypt the request: wrong privacy key or protocol "
                       "(usmStatsDecryptionErrors)",
    (1, 3, 6, 1, 6, 3, 11, 2, 1, 1, 0): "the agent does not offer USM (snmpUnknownSecurityModels)",
    (1, 3, 6, 1, 6, 3, 11, 2, 1, 2, 0): "the agent found the message invalid (snmpInvalidMsgs)",
    (1, 3, 6, 1, 6, 3, 12, 1, 4, 0): "the context is unavailable (snmpUnavailableContexts)",
    (1, 3, 6, 1, 6, 3, 12, 1, 5, 0): "the agent knows no such context (snmpUnknownContexts)",
}
AUTH_REPORTS = frozenset({UNSUPPORTED_SEC_LEVELS, NOT_IN_TIME_WINDOWS, UNKNOWN_USER_NAMES,
                          UNKNOWN_ENGINE_IDS, WRONG_DIGESTS, DECRYPTION_ERRORS})


class SecurityParameters(NamedTuple):
    engine_id: bytes
    boots: int
    time: int
    user: bytes


class Message(NamedTuple):
    """A v3 message's fields, and where its authentication parameters and data lie in it."""

    msg_id: int
    flags: int
    security: SecurityParameters
    auth_at: int  # start and end of msgAuthenticationParameters' contents
    auth_end: int
    priv_params: bytes
    data_tag: int  # 0x30: a plaintext ScopedPDU; 0x04: an encrypted one
    data_at: int  # the data's contents (the ScopedPDU's, or the ciphertext)
    data_end: int

    def __repr__(self) -> str:
        return f"Message(msg_id={self.msg_id}, flags={self.flags:#x}, " \
               f"engine_id={self.security.engine_id.hex()})"


class ScopedPdu(NamedTuple):
    context_engine_id: bytes
    pdu_tag: int  # RESPONSE, REPORT, ...
    header: Header  # request id, error status and index, where the var-binds lie
    buf: bytes  # what header's positions refer to (the plaintext of an encrypted PDU)
    context_name: bytes = b""  # an inform's Response carries it back

    def varbinds(self) -> list[VarBind]:
        return decode_varbinds(self.buf, self.header)


# -- encoding ----------------------------------------------------------------------------------
def encode_pdu(tag: int, request_id: int, oids_encoded: bytes = b"") -> bytes:
    """A PDU shaped like a GetRequest: ``oids_encoded`` is the var-bind list's contents."""
    return _tlv(tag, _integer(request_id) + _integer(0) + _integer(0) + _tlv(0x30, oids_encoded))


def encode_message(msg_id: int, security: SecurityParameters, keys: UserKeys | None, pdu: bytes,
                   salt_counter: int = 0, *, reportable: bool = True, context_engine_id: bytes | None = None,
                   context_name: bytes = b"") -> bytes:
    """A whole v3 message carrying ``pdu``: noAuthNoPriv without ``keys`` (discovery), else
    signed, and encrypted if the keys have privacy. The scoped PDU's context engine is the
    agent's (``security.engine_id``) unless given."""
    flags = FLAG_REPORTABLE if reportable else 0
    context = security.engine_id if context_engine_id is None else context_engine_id
    scoped = _tlv(0x30, _tlv(0x04, context) + _tlv(0x04, context_name) + pdu)
    priv_params = b""
    mac_length = 0
    if keys is not None:
        flags |= FLAG_AUTH
        mac_length = keys.auth.mac_length
        if keys.priv is not None:
            flags |= FLAG_PRIV
            ciphertext, priv_params = encrypt(keys, security.boots, security.time, salt_counter, scoped)
            scoped = _tlv(0x04, ciphertext)
    priv_tlv = _tlv(0x04, priv_params)
    usm = _tlv(0x30, _tlv(0x04, security.engine_id) + _integer(security.boots) + _integer(security.time)
               + _tlv(0x04, security.user) + _tlv(0x04, bytes(mac_length)) + priv_tlv)
    global_data = _tlv(0x30, _integer(msg_id) + _integer(MAX_SIZE) + _tlv(0x04, bytes((flags,)))
                       + _integer(USM))
    message = _tlv(0x30, _integer(VERSION_3) + global_data + _tlv(0x04, usm) + scoped)
    if keys is None:
        return message
    # The authentication parameters are the last but one field before the data.
    at = len(message) - len(scoped) - len(priv_tlv) - mac_length
    return message[:at] + sign(keys, message) + message[at + mac_length:]


# -- decoding ----------------------------------------------------------------------------------
def _octets_at(buf: bytes, i: int, end: int) -> tuple[int, int]:
    tag, start, stop = _header(buf, i, end)
    if tag != 0x04:
        raise BerError("OCTET STRING expected")
    return start, stop


def decode_message(buf: bytes) -> Message:
    """A v3 message with USM security parameters; raises :class:`BerError`. Nothing is checked
    but the form: the digest by :func:`authentic`, the data by :func:`scoped_pdu`."""
    tag, i, end = _header(buf, 0, len(buf))
    if tag != 0x30:
        raise BerError("not an SNMP message")
    version, i = _integer_at(buf, i, end)
    if version != VERSION_3:
        raise BerError("not SNMPv3")
    tag, i, global_end = _header(buf, i, end)
    if tag != 0x30:
        raise BerError("msgGlobalData expected")
    msg_id, i = _integer_at(buf, i, global_end)
    _max_size, i = _integer_at(buf, i, global_end)
    start, i = _octets_at(buf, i, global_end)
    if i - start != 1:
        raise BerError("msgFlags is not one byte")
    flags = buf[start]
    model, i = _integer_at(buf, i, global_end)
    if model != USM:
        raise BerError("not the user-based security model")
    i, usm_end = _octets_at(buf, global_end, end)
    data_tag, data_at, data_end = _header(buf, usm_end, end)
    if data_tag not in (0x30, 0x04):
        raise BerError("msgData expected")
    tag, i, seq_end = _header(buf, i, usm_end)
    if tag != 0x30:
        raise BerError("UsmSecurityParameters expected")
    start, i = _octets_at(buf, i, seq_end)
    engine_id = bytes(buf[start:i])
    boots, i = _integer_at(buf, i, seq_end)
    engine_time, i = _integer_at(buf, i, seq_end)
    start, i = _octets_at(buf, i, seq_end)
    user = bytes(buf[start:i])
    auth_at, auth_end = _octets_at(buf, i, seq_end)
    start, stop = _octets_at(buf, auth_end, seq_end)
    return Message(msg_id, flags, SecurityParameters(engine_id, boots, engine_time, user), auth_at, auth_end,
                   bytes(buf[start:stop]), data_tag, data_at, data_end)


def authentic(buf: bytes, message: Message, keys: UserKeys) -> bool:
    """Whether the message is signed with ``keys`` (its digest checked in constant time)."""
    if not message.flags & FLAG_AUTH:
        return False
    mac = bytes(buf[message.auth_at:message.auth_end])
    zeroed = bytes(buf[:message.auth_at]) + bytes(len(mac)) + bytes(buf[message.auth_end:])
    return verify(keys, zeroed, mac)


def scoped_pdu(buf: bytes, message: Message, keys: UserKeys | None) -> ScopedPdu:
    """The message's scoped PDU, decrypted with ``keys`` if it is encrypted; raises
    :class:`BerError` if it is not one (a wrong privacy key gives noise)."""
    if message.data_tag == 0x04:
        if keys is None or keys.priv is None or not message.flags & FLAG_PRIV:
            raise BerError("an encrypted PDU we cannot decrypt")
        security = message.security
        try:
            plain = decrypt(keys, security.boots, security.time, message.priv_params,
                            bytes(buf[message.data_at:message.data_end]))
        except ValueError as exc:
            raise BerError(str(exc)) from None
        tag, i, end = _header(plain, 0, len(plain))  # DES's padding follows the end
        if tag != 0x30:
            raise BerError("ScopedPDU expected")
        buf = plain
    else:
        i, end = message.data_at, message.data_end
    start, i = _octets_at(buf, i, end)
    context_engine_id = bytes(buf[start:i])
    start, i = _octets_at(buf, i, end)
    context_name = bytes(buf[start:i])
    pdu_tag, i, pdu_end = _header(buf, i, end)
    return ScopedPdu(context_engine_id, pdu_tag, _pdu_header(buf, VERSION_3, b"", i, pdu_end), buf,
                     context_name)


def report_of(varbinds: list[VarBind]) -> Oid | None:
    """The counter a Report-PDU's var-binds name (the first), None if they name none."""
    return varbinds[0][0] if varbinds else None


def report_text(oid: Oid | None) -> str:
    if oid is None:
        return "the agent sent an empty report"
    return REPORTS.get(oid) or f"the agent reported {'.'.join(map(str, oid))}"
