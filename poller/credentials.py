"""Credentials: a YAML file of named SNMP v2c communities and v3 users, and of named secrets for
the notifications (a webhook's HMAC key or URL, an SMTP password), readable by its owner only.

The inventory names a credential per device (``snmp_credential``), the notify file a secret per
receiver (``hmac_secret``, ``url_secret``, ``password_secret``); the secrets live here, in one
file an operator keeps at mode 0600 (``--credentials FILE``, default
``$XDG_CONFIG_HOME/wardtui/credentials.yaml``)::

    branch-v2:
      version: 2c
      community: s3cret
    core-v3:
      version: 3
      user: noc
      auth_protocol: sha256     # md5, sha, sha224, sha256, sha384, sha512; none: noAuthNoPriv
                                # (no auth_key or privacy then: the user name is all it proves)
      auth_key: long-passphrase
      priv_protocol: aes        # des, 3des, aes, aes192, aes256 (net-snmp's AES-192/256),
                                # aes192c, aes256c (Cisco's); leave out for authNoPriv
      priv_key: other-passphrase
      trap_engine_ids: [0x80001f8880c71100000000000000]  # optional: senders of v3 traps
    noc-hook-hmac:
      kind: secret              # not SNMP: one value a notify receiver names
      secret: long-random-string

A v3 trap is signed by its sender's engine (the sender is authoritative), so its keys are
localised with that engine's ID: ``trap_engine_ids`` lists the engine IDs (hex, 5 to 32 bytes)
whose traps this user's devices may send, as net-snmp's ``snmptrapd`` wants ``createUser -e``.
A device's agent's engine ID, found by its v3 polls, is believed without being listed here
(poller/snmp_trap_usm.py). Informs need none: the receiver is their authoritative engine.

Secrets never appear in a ``repr``, a log line or an error message: errors name the file,
the line and the credential, never the value.
"""

from __future__ import annotations

import os
import pwd
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import yaml

AUTH_PROTOCOLS = ("md5", "sha", "sha224", "sha256", "sha384", "sha512")
NO_AUTH = "none"  # auth_protocol of a noAuthNoPriv user
PRIV_PROTOCOLS = ("des", "3des", "aes", "aes192", "aes256", "aes192c", "aes256c")
MIN_KEY_LENGTH = 8  # RFC 3414: shorter passphrases are refused by agents


@dataclass(frozen=True, slots=True)
class V2c:
    name: str
    community: str = field(repr=False)

    @property
    def version(self) -> str:
        return "2c"


@dataclass(frozen=True, slots=True)
class V3:
    name: str
    user: str
    auth_protocol: str  # one of AUTH_PROTOCOLS, or NO_AUTH
    auth_key: str = field(repr=False)  # "" for noAuthNoPriv
    priv_protocol: str | None = None  # None: authNoPriv
    priv_key: str | None = field(default=None, repr=False)
    trap_engine_ids: tuple[bytes, ...] = ()  # engines whose v3 traps this user may sign

    @property
    def version(self) -> str:
        return "3"

    @property
    def level(self) -> str:
        if self.auth_protocol == NO_AUTH:
            return "noAuthNoPriv"
        return "authPriv" if self.priv_protocol else "authNoPriv"


Credential = V2c | V3


@dataclass(frozen=True, slots=True)
class Secret:
    """A named secret that is not SNMP's (``kind: secret``): what a notify receiver names."""

    name: str
    value: str = field(repr=False)


KINDS = ("snmp", "secret")


class CredentialsError(Exception):
    """The credentials file cannot be used; the message says where and why, never a secret."""


def default_credentials_path() -> Path:
    """``$XDG_CONFIG_HOME/wardtui/credentials.yaml``, else ``~/.config/wardtui/credentials.yaml``."""
    config_home = os.environ.get("XDG_CONFIG_HOME", "")
    if not config_home or not os.path.isabs(config_home):  # the XDG spec: ignore a relative one
        config_home = str(Path.home() / ".config")
    return Path(config_home) / "wardtui" / "credentials.yaml"


def load_credentials(path: Path) -> dict[str, Credential]:
    """The SNMP credentials of ``path`` (its secrets are :func:`load_secrets`'), after
    :func:`load_entries`' checks of the whole file."""
    return {name: c for name, c in load_entries(path).items() if not isinstance(c, Secret)}


def load_secrets(path: Path) -> dict[str, Secret]:
    """The ``kind: secret`` entries of ``path``, after :func:`load_entries`' checks."""
    return {name: c for name, c in load_entries(path).items() if isinstance(c, Secret)}


def load_entries(path: Path) -> dict[str, Credential | Secret]:
    """Read and check ``path``: a regular file owned by the running user or root (as ssh wants
    of its keys; a symlink is judged by the file it names), mode 0600 or stricter (no access for
    group or others), every entry complete and valid. All entry problems are reported at once."""
    try:
        text = _read_private(path)
    except UnicodeDecodeError as exc:
        raise CredentialsError(f"{path}: cannot read: {exc}") from None
    # Here, not at the top: the SNMP poller's module imports this one, and the dashboard's start
    # (attached: it reads no credentials) need not load YAML.
    import yaml

    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        # The parser's message quotes the offending text, which may be a secret: only the place.
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}" if mark else ""
        raise CredentialsError(f"{path}{where}: not valid YAML") from None
    if root is None:
        return {}
    if not isinstance(root, yaml.MappingNode):
        raise CredentialsError(f"{path}:1: expected a mapping of credential names to entries")
    problems: list[str] = []
    found: dict[str, Credential | Secret] = {}
    for key, value in root.value:
        name, line = str(key.value), key.start_mark.line + 1
        if name in found:
            problems.append(f"{path}:{line}: credential {name!r} is defined twice")
            continue
        credential = _entry(name, value, f"{path}:{line}", problems)
        if credential is not None:
            found[name] = credential
    if problems:
        raise CredentialsError("\n".join(problems))
    return found


def _read_private(path: Path) -> str:
    """The text of ``path`` once its owner and mode pass; checked on the open file itself, so
    the file judged is the file read (no swap between a stat and the read)."""
    try:
        # O_NONBLOCK: a FIFO put in its place must not hang the start; refused below anyway.
        fd = os.open(path, os.O_RDONLY | os.O_NOCTTY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise CredentialsError(f"{path}: cannot read the credentials file: {exc.strerror}") from None
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        raise CredentialsError(f"{path}: not a regular file")
    with os.fdopen(fd, "rb") as file:
        me = os.geteuid()
        if info.st_uid not in (me, 0):
            raise CredentialsError(
                f"{path}: holds secrets but is owned by {_user(info.st_uid)}, not by the user "
                f"running wardtui ({_user(me)}) or root; refusing to use it: run "
                f"`chown {_user(me, bare=True)} {path}` if it is yours")
        if info.st_mode & 0o077:
            raise CredentialsError(
                f"{path}: holds secrets but is mode {stat.S_IMODE(info.st_mode):04o}, readable or "
                f"writable by others; refusing to use it: run `chmod 600 {path}`")
        try:
            data = file.read()
        except OSError as exc:
            raise CredentialsError(f"{path}: cannot read: {exc.strerror}") from None
    return data.decode("utf-8")


def _user(uid: int, bare: bool = False) -> str:
    """``name (uid N)``, or the name alone (``bare``); the number when the uid has no name."""
    try:
        name = pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid) if bare else f"uid {uid}"
    return name if bare else f"{name} (uid {uid})"


def _entry(name: str, node: yaml.Node, where: str, problems: list[str]) -> Credential | Secret | None:
    import yaml

    if not isinstance(node, yaml.MappingNode):
        problems.append(f"{where}: credential {name!r}: expected a mapping (version: 2c or 3, ...)")
        return None
    fields: dict[str, str] = {}
    for key, value in node.value:
        if str(key.value) == "trap_engine_ids" and isinstance(value, yaml.SequenceNode) \
                and all(isinstance(item, yaml.ScalarNode) for item in value.value):
            fields["trap_engine_ids"] = ",".join(str(item.value) for item in value.value)
            continue
        if not isinstance(value, yaml.ScalarNode):
            problems.append(f"{where}: credential {name!r}: {key.value} must be a single value")
            continue
        fields[str(key.value)] = str(value.value)
    kind = fields.pop("kind", "snmp")
    if kind not in KINDS:
        problems.append(f"{where}: credential {name!r}: kind must be secret (or snmp, the default)")
        return None
    if kind == "secret":
        return _secret(name, fields, where, problems)
    return _snmp(name, fields, where, problems)


def _secret(name: str, fields: dict[str, str], where: str, problems: list[str]) -> Secret | None:
    before = len(problems)
    value = fields.pop("secret", "")
    if not value:
        problems.append(f"{where}: credential {name!r}: secret is missing")
    for unknown in fields:
        problems.append(f"{where}: credential {name!r}: unknown field {unknown!r} (a secret has "
                        "kind and secret)")
    return Secret(name, value) if len(problems) == before else None


def _snmp(name: str, fields: dict[str, str], where: str, problems: list[str]) -> Credential | None:
    version = fields.pop("version", "")
    before = len(problems)

    def need(key: str) -> str:
        value = fields.pop(key, "")
        if not value:
            problems.append(f"{where}: credential {name!r}: {key} is missing")
        return value

    credential: Credential | None = None
    if version in ("2c", "2"):
        credential = V2c(name, need("community"))
    elif version == "3":
        user, auth = need("user"), need("auth_protocol").lower()
        auth_key = need("auth_key") if auth != NO_AUTH else fields.pop("auth_key", "")
        priv = fields.pop("priv_protocol", "").lower() or None
        priv_key = fields.pop("priv_key", "") or None
        if auth and auth not in (*AUTH_PROTOCOLS, NO_AUTH):
            problems.append(f"{where}: credential {name!r}: auth_protocol {auth!r} is not one of "
                            f"{', '.join(AUTH_PROTOCOLS)} or {NO_AUTH} (noAuthNoPriv)")
        if auth == NO_AUTH and (auth_key or priv or priv_key):
            problems.append(f"{where}: credential {name!r}: auth_protocol none (noAuthNoPriv) takes no "
                            "auth_key, priv_protocol or priv_key")
        if priv is not None and priv not in PRIV_PROTOCOLS:
            problems.append(f"{where}: credential {name!r}: priv_protocol {priv!r} is not one of "
                            f"{', '.join(PRIV_PROTOCOLS)}")
        if (priv is None) != (priv_key is None):
            problems.append(f"{where}: credential {name!r}: priv_protocol and priv_key go together")
        for key, secret in (("auth_key", auth_key), ("priv_key", priv_key)):
            if secret and len(secret) < MIN_KEY_LENGTH:
                problems.append(f"{where}: credential {name!r}: {key} is shorter than "
                                f"{MIN_KEY_LENGTH} characters (agents refuse it)")
        engine_ids = _engine_ids(fields.pop("trap_engine_ids", ""), f"{where}: credential {name!r}", problems)
        credential = V3(name, user, auth, auth_key, priv, priv_key, engine_ids)
    else:
        problems.append(f"{where}: credential {name!r}: version must be 2c or 3")
    for unknown in fields:
        problems.append(f"{where}: credential {name!r}: unknown field {unknown!r}")
    return credential if len(problems) == before else None


def _engine_ids(text: str, where: str, problems: list[str]) -> tuple[bytes, ...]:
    """``trap_engine_ids``: engine IDs in hex (``0x`` optional, ``:`` allowed), by commas, spaces
    or a YAML list; each 5 to 32 bytes (RFC 3411's SnmpEngineID)."""
    found: list[bytes] = []
    for item in text.replace(",", " ").split():
        digits = item[2:] if item.lower().startswith("0x") else item
        try:
            engine_id = bytes.fromhex(digits.replace(":", ""))
        except ValueError:
            problems.append(f"{where}: trap_engine_ids: {item!r} is not hexadecimal")
            continue
        if not 5 <= len(engine_id) <= 32:
            problems.append(f"{where}: trap_engine_ids: {item!r} is {len(engine_id)} bytes, not 5 to 32")
            continue
        found.append(engine_id)
    return tuple(dict.fromkeys(found))
