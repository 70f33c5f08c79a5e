"""The receivers of the notify file: each kind's settings, checked, with their defaults.

A setting that holds a secret (``hmac_secret``, ``url_secret``, ``password_secret``) names an
entry of the credentials file; config.py reads them from there (:class:`SecretNeed`) and
:func:`with_secrets` puts them in. A secret is never in a ``repr``: a webhook's URL neither,
since chat services put their token in it (messages show its origin only, :func:`origin`).
"""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass, field, replace
from email.utils import parseaddr
from pathlib import Path
from urllib.parse import urlsplit

from poller.notify.yaml_nodes import Field, NodeReader

KIND_KEYS: dict[str, tuple[str, ...]] = {
    "webhook": ("url", "url_secret", "preset", "hmac_secret", "timeout", "ca_file", "parallel"),
    "email": ("host", "port", "from", "to", "starttls", "implicit_tls", "username", "password_secret",
              "timeout", "ca_file", "parallel"),
    "command": ("argv", "timeout", "env", "parallel"),
    "syslog": ("host", "port", "transport", "facility", "firing_severity", "resolved_severity", "hostname",
               "max_length", "timeout", "parallel"),
}
MAX_PARALLEL = 32
"""Messages of different groups one receiver may have in flight at once (``parallel``)."""
DEFAULT_PARALLEL = {"webhook": 4}
"""``parallel`` when the notify file does not say, by kind (others: 1). A webhook takes requests
side by side (Alertmanager sends different groups' messages at once too): a storm of 250 groups
then reaches it within group_wait + 1 s at p95 (2.3-2.9 s against 3.1-3.6 s one at a time,
group_wait 2 s: docs/BENCHMARKS.md, "notify-policy"). Mail, a command and syslog keep one at a
time: an SMTP relay or a script may not take more, and a syslog stream is read in order."""
PRESETS = ("json", "slack", "teams")
FACILITIES = {name: code for code, name in enumerate(
    ("kern", "user", "mail", "daemon", "auth", "syslog", "lpr", "news", "uucp", "cron", "authpriv", "ftp",
     "ntp", "security", "console", "solaris-cron", *(f"local{n}" for n in range(8))))}
SEVERITIES = {name: code for code, name in enumerate(
    ("emerg", "alert", "crit", "err", "warning", "notice", "info", "debug"))}
_HOST = re.compile(r"[A-Za-z0-9._:-]+|\[[0-9A-Fa-f:.]+\]")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_PRINTABLE_ASCII = re.compile(r"[\x21-\x7e]{1,255}")


@dataclass(frozen=True, slots=True)
class WebhookConfig:
    name: str
    line: int
    url: str = field(repr=False)  # a chat service's URL holds its token: shown as origin(url)
    preset: str = "json"  # "json" (Notification.to_dict), "slack", "teams"
    hmac_secret: str | None = field(default=None, repr=False)
    timeout: float = 10.0
    ca_file: str | None = None  # None: the system's CAs
    kind: str = "webhook"
    parallel: int = DEFAULT_PARALLEL["webhook"]  # messages of different groups in flight at once (Delivery)


@dataclass(frozen=True, slots=True)
class EmailConfig:
    name: str
    line: int
    host: str
    sender: str
    to: tuple[str, ...]
    port: int = 587
    starttls: bool = True
    implicit_tls: bool = False
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    timeout: float = 30.0
    ca_file: str | None = None
    kind: str = "email"
    parallel: int = 1  # messages of different groups in flight at once (Delivery)


@dataclass(frozen=True, slots=True)
class CommandConfig:
    name: str
    line: int
    argv: tuple[str, ...]
    timeout: float = 10.0
    env: tuple[tuple[str, str], ...] = ()  # added to PATH, HOME, LANG, LC_ALL, TZ (nothing else passes)
    kind: str = "command"
    parallel: int = 1  # messages of different groups in flight at once (Delivery)


@dataclass(frozen=True, slots=True)
class SyslogConfig:
    name: str
    line: int
    host: str
    port: int = 514
    transport: str = "udp"  # "udp" or "tcp" (octet-counting framing, RFC 6587)
    facility: int = FACILITIES["local0"]
    firing_severity: int = SEVERITIES["warning"]
    resolved_severity: int = SEVERITIES["notice"]
    hostname: str | None = None  # None: this machine's name
    max_length: int = 2048  # octets of a message; RFC 5424 receivers SHOULD take 2048
    timeout: float = 10.0  # TCP: connecting and writing
    kind: str = "syslog"
    parallel: int = 1  # messages of different groups in flight at once (Delivery)


ReceiverConfig = WebhookConfig | EmailConfig | CommandConfig | SyslogConfig


@dataclass(frozen=True, slots=True)
class SecretNeed:
    """A receiver's setting naming a credentials-file entry: the entry is read after the file."""

    receiver: str
    key: str  # "hmac_secret", "url_secret", "password_secret"
    name: str = field(repr=False)  # may be the secret itself, pasted by mistake
    line: int


def origin(url: str) -> str:
    """``https://hooks.example.net:8443``: where a URL goes, without its path (a token)."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "(a URL that does not parse)"
    if ":" in host:
        host = f"[{host}]"
    return f"{parts.scheme}://{host}{port}"


def url_problem(url: str) -> str | None:
    """Why ``url`` cannot be a webhook's (without quoting it), or None."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises for a port that is not a number
    except ValueError as exc:
        return f"is not a valid URL ({exc})"
    if parts.scheme not in ("http", "https"):
        return "must be an http:// or https:// URL"
    if not parts.hostname:
        return "has no host"
    if parts.username is not None or parts.password is not None:
        return "holds a user or password: give the whole URL as url_secret instead (credentials file)"
    if any(c.isspace() for c in url):
        return "holds a space"
    return None


def read_receiver(reader: NodeReader, kind: str, name: str, line: int, keys: dict[str, Field],
                  base: Path, needs: list[SecretNeed]) -> ReceiverConfig | None:
    """The receiver ``name`` of ``kind`` from its settings, or None after its problems."""
    what = f"receiver {name!r}"
    before = reader.count()
    for key in ("hmac_secret", "url_secret", "password_secret"):
        if key in keys:
            secret_name = reader.text(keys[key], what)
            if secret_name is not None:
                needs.append(SecretNeed(name, key, secret_name, keys[key].line))
    built: ReceiverConfig | None
    if kind == "webhook":
        built = _webhook(reader, what, name, line, keys, base)
    elif kind == "email":
        built = _email(reader, what, name, line, keys, base)
    elif kind == "command":
        built = _command(reader, what, name, line, keys, base)
    else:
        built = _syslog(reader, what, name, line, keys)
    return built if reader.count() == before else None


def with_secrets(reader: NodeReader, config: ReceiverConfig,
                 secrets: dict[tuple[str, str], str]) -> ReceiverConfig:
    """``config`` with the secrets read for it; a ``url_secret`` is checked here, unquoted."""
    def get(key: str) -> str | None:
        return secrets.get((config.name, key))

    if isinstance(config, WebhookConfig):
        url = get("url_secret")
        if url is not None and (problem := url_problem(url.strip())) is not None:
            reader.problem(config.line, f"receiver {config.name!r}: the url_secret's URL {problem}")
        return replace(config, url=(url or config.url).strip(), hmac_secret=get("hmac_secret"))
    if isinstance(config, EmailConfig):
        return replace(config, password=get("password_secret"))
    return config


def _timeout(reader: NodeReader, keys: dict[str, Field], what: str, default: float) -> float:
    return (reader.duration(keys["timeout"], what) or default) if "timeout" in keys else default


def _file(reader: NodeReader, keys: dict[str, Field], key: str, what: str, base: Path) -> str | None:
    """A file named relative to the notify file's directory; it must be readable now."""
    if key not in keys:
        return None
    text = reader.text(keys[key], what)
    if text is None:
        return None
    path = base / Path(text).expanduser()
    if not path.is_file() or not os.access(path, os.R_OK):
        reader.problem(keys[key].node, f"{what}: {key} {str(path)!r} is not a readable file")
        return None
    return str(path)


def _host(reader: NodeReader, keys: dict[str, Field], what: str) -> str:
    host = reader.text(keys["host"], what) if "host" in keys else None
    if host is not None and not _HOST.fullmatch(host):
        reader.problem(keys["host"].node, f"{what}: host {host!r} is not a host name or address")
    return (host or "").strip("[]")


def _webhook(reader: NodeReader, what: str, name: str, line: int, keys: dict[str, Field],
             base: Path) -> WebhookConfig | None:
    if ("url" in keys) == ("url_secret" in keys):
        reader.problem(line, f"{what}: give 'url' or 'url_secret' (a URL holding a token), one of them")
    url = reader.text(keys["url"], what) if "url" in keys else None
    if url is not None and (problem := url_problem(url.strip())) is not None:
        reader.problem(keys["url"].node, f"{what}: url {url!r} {problem}")
    preset = reader.choice(keys["preset"], what, PRESETS) if "preset" in keys else "json"
    return WebhookConfig(name, line, (url or "").strip(), preset or "json",
                         timeout=_timeout(reader, keys, what, 10.0),
                         ca_file=_file(reader, keys, "ca_file", what, base))


def _email(reader: NodeReader, what: str, name: str, line: int, keys: dict[str, Field],
           base: Path) -> EmailConfig | None:
    for key in ("host", "from", "to"):
        if key not in keys:
            reader.problem(line, f"{what}: '{key}' is missing")
    host = _host(reader, keys, what)
    sender = _address(reader, keys["from"], what, reader.text(keys["from"], what)) if "from" in keys else ""
    to = [_address(reader, keys["to"], what, a) for a in reader.texts(keys["to"], what) or ()] \
        if "to" in keys else []
    implicit = bool(reader.boolean(keys["implicit_tls"], what)) if "implicit_tls" in keys else False
    starttls = bool(reader.boolean(keys["starttls"], what)) if "starttls" in keys else not implicit
    if implicit and starttls:
        reader.problem(keys["starttls"].node, f"{what}: starttls and implicit_tls exclude each other "
                                              "(implicit_tls: TLS from the first byte, port 465)")
    port = reader.integer(keys["port"], what, 1, 65535) if "port" in keys else (
        465 if implicit else 587 if starttls else 25)
    username = reader.text(keys["username"], what) if "username" in keys else None
    if ("username" in keys) != ("password_secret" in keys):
        reader.problem(line, f"{what}: 'username' and 'password_secret' go together")
    if "password_secret" in keys and not (starttls or implicit):
        reader.problem(keys["password_secret"].line, f"{what}: a password with starttls: false and no "
                                                     "implicit_tls would cross the network in clear")
    return EmailConfig(name, line, host, sender, tuple(to), port=port or 0, starttls=starttls,
                       implicit_tls=implicit, username=username, timeout=_timeout(reader, keys, what, 30.0),
                       ca_file=_file(reader, keys, "ca_file", what, base))


def _address(reader: NodeReader, field: Field, what: str, text: str | None) -> str:
    if text is None:
        return ""
    _, address = parseaddr(text)
    if "@" not in address or any(c.isspace() or c in ",;<>" for c in address):
        reader.problem(field.node, f"{what}: {field.key} {text!r} is not an e-mail address")
    return text.strip()


def _command(reader: NodeReader, what: str, name: str, line: int, keys: dict[str, Field],
             base: Path) -> CommandConfig | None:
    if "argv" not in keys:
        reader.problem(line, f"{what}: 'argv' is missing (the program and its arguments, a list)")
        return None
    argv = reader.texts(keys["argv"], what, one_allowed=False)
    if argv is not None and not argv:
        reader.problem(keys["argv"].node, f"{what}: 'argv' is empty")
    program = _program(reader, keys["argv"], what, argv[0], base) if argv else None
    env: list[tuple[str, str]] = []
    if "env" in keys:
        for key, value in (reader.fields(keys["env"].node, f"{what}: env", None) or {}).items():
            if not _ENV_NAME.fullmatch(key):
                reader.problem(value.line, f"{what}: env {key!r} is not a variable name")
            env.append((key, reader.text(value, f"{what}: env") or ""))
    timeout = _timeout(reader, keys, what, 10.0)
    if program is None or argv is None:
        return None
    return CommandConfig(name, line, (program, *argv[1:]), timeout=timeout, env=tuple(env))


def _program(reader: NodeReader, field: Field, what: str, program: str, base: Path) -> str | None:
    """argv[0] as an absolute path: relative to the notify file's directory if it has a '/',
    else found on PATH now (the service's PATH is the one the command gets)."""
    if "/" in program:
        path = str(base / Path(program).expanduser())
        found = path if os.path.isfile(path) and os.access(path, os.X_OK) else None
    else:
        found = shutil.which(program)
    if found is None:
        reader.problem(field.node, f"{what}: program {program!r} is not an executable file"
                                   + ("" if "/" in program else " on PATH"))
    return found


def _syslog(reader: NodeReader, what: str, name: str, line: int,
            keys: dict[str, Field]) -> SyslogConfig | None:
    if "host" not in keys:
        reader.problem(line, f"{what}: 'host' is missing")
    host = _host(reader, keys, what)
    port = reader.integer(keys["port"], what, 1, 65535) if "port" in keys else 514
    transport = reader.choice(keys["transport"], what, ("udp", "tcp")) if "transport" in keys else "udp"
    facility = reader.choice(keys["facility"], what, tuple(FACILITIES)) if "facility" in keys else "local0"
    firing = reader.choice(keys["firing_severity"], what, tuple(SEVERITIES)) \
        if "firing_severity" in keys else "warning"
    resolved = reader.choice(keys["resolved_severity"], what, tuple(SEVERITIES)) \
        if "resolved_severity" in keys else "notice"
    hostname = reader.text(keys["hostname"], what) if "hostname" in keys else None
    if hostname is not None and not _PRINTABLE_ASCII.fullmatch(hostname):
        reader.problem(keys["hostname"].node, f"{what}: hostname must be 1 to 255 printable ASCII "
                                              "characters without spaces (RFC 5424)")
    max_length = reader.integer(keys["max_length"], what, 480, 65000) if "max_length" in keys else 2048
    timeout = _timeout(reader, keys, what, 10.0)
    if None in (port, transport, facility, firing, resolved, max_length):
        return None
    return SyslogConfig(name, line, host, port=port or 0, transport=transport or "udp",
                        facility=FACILITIES[facility or "local0"],
                        firing_severity=SEVERITIES[firing or "warning"],
                        resolved_severity=SEVERITIES[resolved or "notice"], hostname=hostname,
                        max_length=max_length or 2048, timeout=timeout)
