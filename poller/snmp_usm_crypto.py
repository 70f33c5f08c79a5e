"""USM's cryptography (RFC 3414, 3826, 7860): keys from passphrases, message digests, privacy.

Every primitive is the ``cryptography`` package's (OpenSSL). What is USM's own is here:

- a passphrase becomes a key by hashing its first 1 MiB repeated (Ku), then localised to one
  agent's engine as ``H(Ku || engineID || Ku)`` (Kul; RFC 3414 A.2, RFC 7860 for SHA-2). Ku
  does not depend on the engine and costs ~1 ms: both are cached, so a poll never pays it;
- authentication is HMAC of the whole message with Kul, truncated (MD5, SHA-1: 12 bytes;
  SHA-224: 16, SHA-256: 24, SHA-384: 32, SHA-512: 48);
- privacy: DES-CBC (RFC 3414 8: the key and a pre-IV from Kul, a salt of engineBoots and a
  counter), AES-CFB128 (RFC 3826: the IV is engineBoots, engineTime and a 64-bit salt), and
  AES-192/256 with their longer keys. A Kul shorter than the cipher's key is extended, two
  ways in the field that do not agree: net-snmp's AES-192/AES-256 (Blumenthal's draft:
  ``K || H(K)``, again until long enough) and Cisco's, net-snmp's AES-192-C/AES-256-C (Reeder's
  draft: the next part is the key localised from the previous part taken as a passphrase), which
  is also 3DES-EDE's (Reeder's draft, key 24 bytes + pre-IV 8).
"""

from __future__ import annotations

from dataclasses import dataclass

from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
from cryptography.hazmat.decrepit.ciphers.modes import CFB
from cryptography.hazmat.primitives import constant_time, hashes, hmac
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

_MIB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class AuthProtocol:
    name: str
    algorithm: type[hashes.HashAlgorithm]
    digest_size: int  # Kul's length
    mac_length: int  # msgAuthenticationParameters' length


AUTH: dict[str, AuthProtocol] = {p.name: p for p in (
    AuthProtocol("md5", hashes.MD5, 16, 12),
    AuthProtocol("sha", hashes.SHA1, 20, 12),
    AuthProtocol("sha224", hashes.SHA224, 28, 16),
    AuthProtocol("sha256", hashes.SHA256, 32, 24),
    AuthProtocol("sha384", hashes.SHA384, 48, 32),
    AuthProtocol("sha512", hashes.SHA512, 64, 48),
)}

BLUMENTHAL = "blumenthal"
REEDER = "reeder"


@dataclass(frozen=True, slots=True)
class PrivProtocol:
    name: str
    cipher: str  # "des", "3des" or "aes"
    key_length: int  # the cipher's key (AES) or key + pre-IV (DES: 8 + 8, 3DES: 24 + 8)
    extension: str | None  # how a too short Kul grows: BLUMENTHAL, REEDER, or None (never short)


PRIV: dict[str, PrivProtocol] = {p.name: p for p in (
    PrivProtocol("des", "des", 16, None),
    PrivProtocol("3des", "3des", 32, REEDER),
    PrivProtocol("aes", "aes", 16, None),
    PrivProtocol("aes192", "aes", 24, BLUMENTHAL),
    PrivProtocol("aes256", "aes", 32, BLUMENTHAL),
    PrivProtocol("aes192c", "aes", 24, REEDER),
    PrivProtocol("aes256c", "aes", 32, REEDER),
)}


def _digest(auth: AuthProtocol, data: bytes) -> bytes:
    h = hashes.Hash(auth.algorithm())
    h.update(data)
    return h.finalize()


_KU: dict[tuple[str, bytes], bytes] = {}
_KUL: dict[tuple[str, bytes, bytes], bytes] = {}
_CACHE_MAX = 100_000  # (passphrase, engine) pairs; past it the cache starts again (never unbounded)


def password_to_key(auth: AuthProtocol, passphrase: bytes) -> bytes:
    """Ku: the hash of the passphrase repeated to 1 MiB (RFC 3414 A.2.1, A.2.2); cached."""
    key = (auth.name, passphrase)
    ku = _KU.get(key)
    if ku is None:
        if not passphrase:
            raise ValueError("an empty passphrase has no key")
        repeated = passphrase * (_MIB // len(passphrase) + 1)
        ku = _digest(auth, repeated[:_MIB])
        if len(_KU) >= _CACHE_MAX:
            _KU.clear()
        _KU[key] = ku
    return ku


def localize(auth: AuthProtocol, passphrase: bytes, engine_id: bytes) -> bytes:
    """Kul: ``H(Ku || engineID || Ku)``, the key one agent's engine knows the user by; cached."""
    key = (auth.name, passphrase, engine_id)
    kul = _KUL.get(key)
    if kul is None:
        ku = password_to_key(auth, passphrase)
        kul = _digest(auth, ku + engine_id + ku)
        if len(_KUL) >= _CACHE_MAX:
            _KUL.clear()
        _KUL[key] = kul
    return kul


def priv_key(auth: AuthProtocol, priv: PrivProtocol, passphrase: bytes, engine_id: bytes) -> bytes:
    """The privacy key material (key, and DES's pre-IV) for ``priv``, extended if Kul is short."""
    key = localize(auth, passphrase, engine_id)
    while len(key) < priv.key_length:
        if priv.extension == BLUMENTHAL:
            key += _digest(auth, key)
        elif priv.extension == REEDER:
            # Each part is the key localised from the part before it, used as a passphrase.
            key += localize(auth, key[-auth.digest_size:], engine_id)
        else:
            raise ValueError(f"{priv.name}: a {auth.name} key is too short")
    return key[:priv.key_length]


@dataclass(frozen=True, slots=True)
class UserKeys:
    """A user's keys as one agent's engine knows them."""

    auth: AuthProtocol
    auth_key: bytes
    priv: PrivProtocol | None
    priv_key: bytes  # b"" for authNoPriv

    def __repr__(self) -> str:  # never a key
        return f"UserKeys({self.auth.name}, {self.priv.name if self.priv else None})"


def user_keys(auth_name: str, auth_passphrase: str, priv_name: str | None, priv_passphrase: str | None,
              engine_id: bytes) -> UserKeys:
    auth = AUTH[auth_name]
    auth_key = localize(auth, auth_passphrase.encode(), engine_id)
    if priv_name is None or priv_passphrase is None:
        return UserKeys(auth, auth_key, None, b"")
    priv = PRIV[priv_name]
    return UserKeys(auth, auth_key, priv, priv_key(auth, priv, priv_passphrase.encode(), engine_id))


# -- authentication ----------------------------------------------------------------------------
def sign(keys: UserKeys, message: bytes) -> bytes:
    """The truncated HMAC of ``message`` (whose authentication parameters are zeros)."""
    h = hmac.HMAC(keys.auth_key, keys.auth.algorithm())
    h.update(message)
    return h.finalize()[:keys.auth.mac_length]


def verify(keys: UserKeys, message: bytes, mac: bytes) -> bool:
    return len(mac) == keys.auth.mac_length and constant_time.bytes_eq(sign(keys, message), mac)


# -- privacy -----------------------------------------------------------------------------------
def _cipher(keys: UserKeys, boots: int, engine_time: int, salt: bytes) -> Cipher[modes.CBC | CFB]:
    priv = keys.priv
    if priv is None:
        raise ValueError("authNoPriv: no privacy")
    if priv.cipher == "aes":
        iv = boots.to_bytes(4, "big") + engine_time.to_bytes(4, "big") + salt
        return Cipher(algorithms.AES(keys.priv_key), CFB(iv))
    pre_iv = keys.priv_key[-8:]
    iv = bytes(a ^ b for a, b in zip(pre_iv, salt, strict=True))
    # Single DES is 3DES-EDE with one key thrice (OpenSSL 3 keeps single DES in its legacy provider).
    key = keys.priv_key[:8] * 3 if priv.cipher == "des" else keys.priv_key[:24]
    return Cipher(TripleDES(key), modes.CBC(iv))


def encrypt(keys: UserKeys, boots: int, engine_time: int, salt_counter: int,
            plaintext: bytes) -> tuple[bytes, bytes]:
    """(ciphertext, msgPrivacyParameters) of a scoped PDU. The salt is 8 bytes: AES's is the
    64-bit counter; DES's is engineBoots and the counter's low 32 bits (RFC 3414 8.1.1.1)."""
    assert keys.priv is not None
    if keys.priv.cipher == "aes":
        salt = (salt_counter & 0xFFFFFFFFFFFFFFFF).to_bytes(8, "big")
    else:
        salt = boots.to_bytes(4, "big") + (salt_counter & 0xFFFFFFFF).to_bytes(4, "big")
        plaintext += bytes(-len(plaintext) % 8)  # CBC: whole blocks; BER lengths end it anyway
    encryptor = _cipher(keys, boots, engine_time, salt).encryptor()
    return encryptor.update(plaintext) + encryptor.finalize(), salt


def decrypt(keys: UserKeys, boots: int, engine_time: int, salt: bytes, ciphertext: bytes) -> bytes:
    """The scoped PDU (DES: with its padding). Raises ValueError on parameters that cannot be
    right; a wrong key gives bytes that are not a scoped PDU, which the decoder finds."""
    assert keys.priv is not None
    if len(salt) != 8:
        raise ValueError("msgPrivacyParameters is not 8 bytes")
    if keys.priv.cipher != "aes" and len(ciphertext) % 8:
        raise ValueError("DES: not whole blocks")
    decryptor = _cipher(keys, boots, engine_time, salt).decryptor()
    return decryptor.update(ciphertext) + decryptor.finalize()
