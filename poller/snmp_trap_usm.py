"""SNMPv3 traps and informs for the trap receiver (poller/snmp_traps.py): the user-based security
model (RFC 3414) from the receiving side, on the poller's codec and cryptography.

Who is authoritative decides whose engine ID the keys are localised with (RFC 3412 6.3):

- a **trap** is signed by its sender's engine: the message names that engine's ID, boots and
  time. The ID must be one this device may send from: one its credential lists
  (``trap_engine_ids``) or the one its agent's engine showed to our v3 polls. Keys are
  localised per (user, engine ID) once and cached. The sender's clock is followed per
  (device, engine) as a non-authoritative engine does (RFC 3414 3.2 7b): a later one is
  adopted; an older boots, or a time more than 150 s behind what we know, is a replay and
  refused;
- an **inform** is sent to our engine: a sender first discovers it (an unauthenticated,
  reportable message with another or no engine ID, answered by a usmStatsUnknownEngineIDs
  report naming our ID, boots and time), then sends the inform signed with keys localised to
  our ID, within 150 s of our clock (else an authenticated usmStatsNotInTimeWindows report
  resynchronises it). The Response acknowledging it goes at the inform's own security level.

Our engine ID is random at each start unless configured (``--traps-engine-id``, for senders
such as Cisco's that want it written in their configuration); engineBoots is the number of
seconds from 2020 to the start, so it grows at each restart without a state file (a clock
set back across a restart breaks that, as it breaks much else).

A message is believed only from an inventory device with an SNMPv3 credential, with that
credential's user, at that credential's level, signed with its keys (a noAuthNoPriv
credential, ``auth_protocol: none``, has none: its user name, engine ID and the source address
are all that is checked, as a community is; a lower level than the credential's is refused).
Everything else is refused with its reason; reports go back only to inventory devices with an
SNMPv3 credential (the caller's token bucket has passed), so the receiver reflects nothing to
strangers.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

from poller.credentials import NO_AUTH, V3
from poller.snmp_getbulk import Oid
from poller.snmp_usm_codec import (
    DECRYPTION_ERRORS,
    FLAG_AUTH,
    FLAG_PRIV,
    FLAG_REPORTABLE,
    NOT_IN_TIME_WINDOWS,
    REPORT,
    RESPONSE,
    UNKNOWN_ENGINE_IDS,
    UNKNOWN_USER_NAMES,
    UNSUPPORTED_SEC_LEVELS,
    WRONG_DIGESTS,
    Message,
    ScopedPdu,
    SecurityParameters,
    authentic,
    decode_message,
    encode_message,
    scoped_pdu,
)
from poller.snmp_usm_crypto import UserKeys, user_keys
from poller.snmp_v2c import (
    INFORM,
    TRAP_V2,
    BerError,
    Notification,
    _integer,
    _tlv,
    encode_oid,
    notification_of,
)

TIME_WINDOW = 150  # seconds (RFC 3414 2.2.3)
_MAX_BOOTS = 2**31 - 1
_BOOTS_EPOCH = 1_577_836_800  # 2020-01-01 UTC
_KEYS_MAX = 20_000  # (credential, engine) pairs whose keys are kept; past it the cache starts again
_CLOCKS_MAX = 100_000

# Why a message was refused: the gauges' names (traps_refused_<reason>).
USER = "user"  # no SNMPv3 credential for the device, or not its user
ENGINE = "engine_id"  # a trap from an engine this device may not send from
LEVEL = "level"  # not the credential's security level
AUTH = "auth"  # wrong digest, or (authPriv) not decryptable: wrong keys
TIME = "time_window"  # outside the time window
MALFORMED = "malformed"
_WRONG_DIGEST = "wrong digest: not the credential's authentication key or protocol"
_UNDECRYPTABLE = "cannot be decrypted: not the credential's privacy key or protocol"
_NOT_THE_USER = "not the user of the device's SNMPv3 credential"


def new_engine_id() -> bytes:
    """An engine ID of RFC 3411's form: enterprise 0 with the high bit, format 5 (octets), random."""
    return bytes((0x80, 0, 0, 0, 5)) + os.urandom(12)


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one v3 datagram comes to: a notification to accept (and an answer to send: an
    inform's Response), or a refusal's reason and text (and maybe a report to send back), or a
    discovery answered (``notification`` and ``refused`` both None)."""

    notification: Notification | None = None
    answer: bytes | None = None
    refused: str | None = None
    why: str = ""
    engine_id: bytes = b""  # a trap's sender's engine


class _Clock:
    """What we know of a trap sender's engine clock (RFC 3414 2.3: boots, latest time, when)."""

    __slots__ = ("at", "boots", "time")

    def __init__(self, boots: int, engine_time: int) -> None:
        self.boots, self.time, self.at = boots, engine_time, time.monotonic()

    def follow(self, boots: int, engine_time: int) -> bool:
        """RFC 3414 3.2 7b: False for a message outside the window; a later clock is adopted."""
        if boots >= _MAX_BOOTS or boots < self.boots:
            return False
        now = self.time + int(time.monotonic() - self.at)
        if boots > self.boots or engine_time > now:
            self.boots, self.time, self.at = boots, engine_time, time.monotonic()
            return True
        return engine_time >= now - TIME_WINDOW


class TrapUsm:
    """The receiver's USM: reads v3 messages from inventory devices (:meth:`read`)."""

    def __init__(self, engine_id: bytes | None = None) -> None:
        self.engine_id = engine_id or new_engine_id()
        self.boots = max(1, min(int(time.time()) - _BOOTS_EPOCH, _MAX_BOOTS - 1))
        self._started = time.monotonic()
        self._keys: dict[tuple[V3, bytes], UserKeys] = {}
        self._clocks: dict[tuple[str, bytes], _Clock] = {}  # (device, engine ID) -> its clock
        self._salt = int.from_bytes(os.urandom(8), "big")
        # Our usmStats counters, as reports carry them.
        self.stats: dict[Oid, int] = {oid: 0 for oid in (UNKNOWN_ENGINE_IDS, UNKNOWN_USER_NAMES,
                                                           UNSUPPORTED_SEC_LEVELS, WRONG_DIGESTS,
                                                           NOT_IN_TIME_WINDOWS, DECRYPTION_ERRORS)}
        self.discoveries = 0  # discovery reports sent
        self.reports = 0  # other reports sent

    def engine_time(self) -> int:
        return min(int(time.monotonic() - self._started), _MAX_BOOTS)

    def forget(self, devices: set[str]) -> None:
        """Keep only these devices' clocks (a new inventory)."""
        self._clocks = {k: v for k, v in self._clocks.items() if k[0] in devices}

    def keys(self, credential: V3, engine_id: bytes) -> UserKeys | None:
        """The credential's keys localised to ``engine_id``, cached per (user, engine); None for
        a noAuthNoPriv user."""
        if credential.auth_protocol == NO_AUTH:
            return None
        keys = self._keys.get((credential, engine_id))
        if keys is None:
            if len(self._keys) >= _KEYS_MAX:
                self._keys.clear()
            keys = self._keys[(credential, engine_id)] = user_keys(
                credential.auth_protocol, credential.auth_key, credential.priv_protocol,
                credential.priv_key, engine_id)
        return keys

    # -- one message ------------------------------------------------------------------------
    def read(self, data: bytes, device: str, credential: V3 | None, engines: frozenset[bytes]) -> Outcome:
        """The v3 message ``data`` from inventory device ``device`` (its credential, if v3,
        and the engine IDs it may send traps from)."""
        try:
            message = decode_message(data)
        except BerError as exc:
            return Outcome(refused=MALFORMED, why=f"not an SNMPv3 message ({exc})")
        reportable = bool(message.flags & FLAG_REPORTABLE)
        if credential is None:
            return Outcome(refused=USER, why="the device names no SNMPv3 credential")
        if message.security.engine_id == self.engine_id:
            return self._inform(data, message, credential)
        if reportable:
            # Confirmed-class messages (informs) name our engine; one naming another (or none)
            # asks what ours is (RFC 3414 4): the discovery, or a sender that knew us before a restart.
            return self._discovered(data, message)
        return self._trap(data, message, device, credential, engines)

    def _discovered(self, data: bytes, message: Message) -> Outcome:
        self.discoveries += 1
        request_id = _plain_request_id(data, message)
        return Outcome(answer=self._report(message, UNKNOWN_ENGINE_IDS, request_id, None))

    def _level(self, message: Message, credential: V3) -> bool:
        if credential.auth_protocol == NO_AUTH:
            return message.flags & (FLAG_AUTH | FLAG_PRIV) == 0
        wanted = FLAG_AUTH | (FLAG_PRIV if credential.priv_protocol else 0)
        return message.flags & (FLAG_AUTH | FLAG_PRIV) == wanted

    def _trap(self, data: bytes, message: Message, device: str, credential: V3,
              engines: frozenset[bytes]) -> Outcome:
        security = message.security
        engine_id = security.engine_id
        if security.user != credential.user.encode():
            return Outcome(refused=USER, why=_NOT_THE_USER)
        if engine_id not in engines:
            return Outcome(refused=ENGINE, why=f"engine ID {engine_id.hex() or '(none)'} is neither in the "
                           "credential's trap_engine_ids nor the one its agent's engine showed to polls")
        if not self._level(message, credential):
            return Outcome(refused=LEVEL, why=f"not {credential.level}, the credential's security level")
        keys = self.keys(credential, engine_id)
        if keys is not None:  # noAuthNoPriv: nothing to check, no clock (RFC 3414 3.2 7)
            if not authentic(data, message, keys):
                return Outcome(refused=AUTH, why=_WRONG_DIGEST)
            if not self._in_time(device, engine_id, security.boots, security.time):
                return Outcome(refused=TIME, why="outside the sender's time window (a replay, or its "
                               "clock went back)")
        try:
            pdu = scoped_pdu(data, message, keys)
        except BerError:
            return Outcome(refused=AUTH, why=_UNDECRYPTABLE)
        if pdu.pdu_tag != TRAP_V2:
            return Outcome(refused=MALFORMED, why=f"not an SNMPv2-Trap-PDU (0x{pdu.pdu_tag:02x}) from the "
                           "sender's engine")
        try:
            return Outcome(notification_of(pdu.buf, TRAP_V2, pdu.header), engine_id=engine_id)
        except BerError as exc:
            return Outcome(refused=MALFORMED, why=f"not a trap ({exc})")

    def _inform(self, data: bytes, message: Message, credential: V3) -> Outcome:
        security = message.security
        if security.user != credential.user.encode():
            return self._refuse(data, message, USER, UNKNOWN_USER_NAMES, None,
                                _NOT_THE_USER)
        if not self._level(message, credential):
            return self._refuse(data, message, LEVEL, UNSUPPORTED_SEC_LEVELS, None,
                                f"not {credential.level}, the credential's security level")
        keys = self.keys(credential, self.engine_id)
        if keys is None:  # noAuthNoPriv: the user's name is all there is to check
            pass
        elif not authentic(data, message, keys):
            return self._refuse(data, message, AUTH, WRONG_DIGESTS, None,
                                _WRONG_DIGEST)
        elif security.boots != self.boots or abs(security.time - self.engine_time()) > TIME_WINDOW:
            # Authenticated, so the report is too: the sender may believe our clock from it.
            auth_only = UserKeys(keys.auth, keys.auth_key, None, b"")
            return self._refuse(data, message, TIME, NOT_IN_TIME_WINDOWS, auth_only,
                                "outside our time window (the sender is resynchronised by a report)")
        try:
            pdu = scoped_pdu(data, message, keys)
        except BerError:
            return self._refuse(data, message, AUTH, DECRYPTION_ERRORS, None,
                                _UNDECRYPTABLE)
        if pdu.pdu_tag != INFORM:
            return Outcome(refused=MALFORMED,
                           why=f"not an InformRequest-PDU (0x{pdu.pdu_tag:02x}) to our engine")
        try:
            notification = notification_of(pdu.buf, INFORM, pdu.header)
        except BerError as exc:
            return Outcome(refused=MALFORMED, why=f"not an inform ({exc})")
        return Outcome(notification, self._response(message, pdu, keys, notification))

    def _in_time(self, device: str, engine_id: bytes, boots: int, engine_time: int) -> bool:
        """A trap sender's clock, followed per (device, engine); the first one is believed."""
        clock = self._clocks.get((device, engine_id))
        if clock is None:
            if len(self._clocks) >= _CLOCKS_MAX:
                self._clocks.clear()
            self._clocks[(device, engine_id)] = _Clock(boots, engine_time)
            return boots < _MAX_BOOTS
        return clock.follow(boots, engine_time)

    def _refuse(self, data: bytes, message: Message, reason: str, counter: Oid, keys: UserKeys | None,
                why: str) -> Outcome:
        self.stats[counter] += 1
        answer = None
        if message.flags & FLAG_REPORTABLE:
            self.reports += 1
            answer = self._report(message, counter, _plain_request_id(data, message), keys)
        return Outcome(refused=reason, why=why, answer=answer)

    # -- what we send -------------------------------------------------------------------------
    def _security(self, user: bytes) -> SecurityParameters:
        return SecurityParameters(self.engine_id, self.boots, self.engine_time(), user)

    def _report(self, message: Message, counter: Oid, request_id: int, keys: UserKeys | None) -> bytes:
        """A Report-PDU naming ``counter`` (RFC 3412 7.1.3c): unauthenticated unless ``keys``."""
        if counter == UNKNOWN_ENGINE_IDS:
            self.stats[counter] += 1
        varbind = _tlv(0x30, _tlv(0x06, encode_oid(counter)) + _tlv(0x41, _unsigned(self.stats[counter])))
        pdu = _tlv(REPORT, _integer(request_id) + _integer(0) + _integer(0) + _tlv(0x30, varbind))
        return encode_message(message.msg_id, self._security(message.security.user), keys, pdu,
                              self._next_salt(), reportable=False, context_engine_id=self.engine_id)

    def _response(self, message: Message, pdu: ScopedPdu, keys: UserKeys | None, n: Notification) -> bytes:
        """The Response to an inform: its request id and var-binds (RFC 3416 4.2.7), at its level."""
        body = _tlv(RESPONSE, _integer(n.request_id) + _integer(0) + _integer(0) + _tlv(0x30, n.varbind_list))
        return encode_message(message.msg_id, self._security(message.security.user),
                              keys if message.flags & FLAG_AUTH else None, body, self._next_salt(),
                              reportable=False, context_engine_id=pdu.context_engine_id,
                              context_name=pdu.context_name)

    def _next_salt(self) -> int:
        self._salt = (self._salt + 1) & 0xFFFFFFFFFFFFFFFF
        return self._salt


def _unsigned(value: int) -> bytes:
    value &= 0xFFFFFFFF
    return value.to_bytes(value.bit_length() // 8 + 1, "big")


def _plain_request_id(data: bytes, message: Message) -> int:
    """The request id of a plaintext scoped PDU (a report names it), else 0 (RFC 3412 7.1.3c)."""
    if message.data_tag != 0x30:
        return 0
    try:
        return scoped_pdu(data, message, None).header.request_id
    except BerError:
        return 0
