"""Database URLs as operators write them for ``--db``, checked before anything connects, and
shown without their passwords; the connect timeout; database failures told in one line.

SQLAlchemy hands every query key of the URL to ``asyncpg.connect`` as a keyword argument, so
``?sslmode=require`` (libpq's spelling) or a typo was a ``TypeError`` deep in the first
connect, and port 99999 an ``OverflowError`` from the socket. Here the URL is read with the
same pattern SQLAlchemy uses, and each part either passes or is refused with one line.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, quote, unquote, unquote_plus

# sqlalchemy.engine.url._parse_url's pattern (compiled there with re.X alone): what these
# functions check is what SQLAlchemy will connect with. store/db.py reads sqlite URLs with it.
URL_PATTERN = (
    r"""
        (?P<name>[\w\+]+)://
        (?:
            (?P<username>[^:/]*)
            (?::(?P<password>[^@]*))?
        @)?
        (?:
            (?:
                \[(?P<ipv6host>[^/\?]+)\] |
                (?P<ipv4host>[^/:\?]+)
            )?
            (?::(?P<port>[^/\?]*))?
        )?
        (?:/(?P<database>[^\?]*))?
        (?:\?(?P<query>.*))?
    """
)
_URL = re.compile(URL_PATTERN, re.X | re.S)

SSL_MODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")
QUERY_KEYS = ("host", "port", "user", "password", "passfile", "sslmode", "ssl")
"""What ``?key=value`` may name: asyncpg's own keyword arguments that take text, and libpq's
``sslmode`` (given to asyncpg as ``ssl``)."""


def postgres_url(url: str) -> str:
    """``url`` (``postgresql://...``, ``postgres://...``) as a ``postgresql+asyncpg://`` URL.

    Raises ``ValueError`` saying which part is wrong, never quoting a password: an unknown
    query key, an SSL mode asyncpg does not know, a key given twice, a port outside 1-65535.
    """
    match = _URL.match(url)
    if match is None:  # pragma: no cover - every URL with :// matches the pattern
        raise ValueError("not a database URL")
    if _ambiguous(match):
        # postgresql://postgres:se@cret99@HOST/DB: SQLAlchemy reads password "se" and host
        # "cret99@HOST", and the password's tail went to DNS as a host name.
        raise ValueError("an '@' in the user name, password, host or database is not percent-encoded: "
                         "write it as %40 (postgresql://USER:PA%40SS@HOST/DB)")
    _check_port(match["port"], "port")
    query = _query(match["query"])
    rest = url.split("://", 1)[1]
    if match["query"] is not None:
        rest = rest[: len(rest) - len(match["query"]) - 1]
    if not query:
        return f"postgresql+asyncpg://{rest}"
    # Rendered by hand: SQLAlchemy would percent-encode the path of a unix socket (?host=/run/...).
    return f"postgresql+asyncpg://{rest}?" + "&".join(
        f"{quote(key)}={quote(value, safe='/:')}" for key, value in query)


SQLITE_KEYS = ("timeout", "uri", "mode", "cache", "immutable", "nolock", "vfs")
"""What a SQLite URL's query may name: sqlite3's busy ``timeout`` and, with ``uri=true``,
SQLite's own URI parameters."""


def check_sqlite_query(query: str) -> None:
    """``ValueError`` for a SQLite URL query that SQLAlchemy would ignore with a warning (an
    unknown key) or fail on with a traceback (``?timeout=abc``)."""
    for key, value in parse_qsl(query, keep_blank_values=True):
        if key not in SQLITE_KEYS:
            shown_key = key if len(key) <= 20 else key[:20] + "..."
            raise ValueError(f"unknown URL query key {shown_key!r}: use {', '.join(SQLITE_KEYS)}")
        if key == "timeout":
            try:
                seconds = float(value)
            except ValueError:
                seconds = -1.0
            if not 0 <= seconds <= 3600:  # nan fails this too
                raise ValueError(f"timeout={value!r}: seconds from 0 to 3600")
        if key == "uri" and value.lower() not in ("true", "false", "1", "0"):
            raise ValueError(f"uri={value!r}: use true or false")


def shown(url: str) -> str:
    """``url`` as it may be printed: every password form replaced by ``***`` (``USER:***@``,
    ``?password=***``; with an ``@`` that is not percent-encoded, all before the last ``@``),
    query values decoded (``?host=/var/run/postgresql``). A path is returned as it is."""
    match = _URL.match(url) if "://" in url else None
    if match is None:
        return url
    end = len(url) if match["query"] is None else match.start("query") - 1
    start = match.end("name") + 3
    if _ambiguous(match):
        authority = "***" + url[start:end][url[start:end].rfind("@"):]
    elif match["password"] is not None:
        authority = url[start:match.start("password")] + "***" + url[match.end("password"):end]
    else:
        authority = url[start:end]
    shown_url = f"{match['name']}://{authority}"
    if match["query"] is None:
        return shown_url
    parts = []
    for part in match["query"].split("&"):
        key, eq, value = part.partition("=")
        secret = unquote_plus(key).strip().lower() == "password"
        parts.append(f"{key}{eq}***" if secret else f"{key}{eq}{unquote(value)}")
    return f"{shown_url}?{'&'.join(parts)}"


def _ambiguous(match: re.Match[str]) -> bool:
    """An ``@`` that is not the one between the user and the host (SQLite's path may hold one)."""
    groups: tuple[str, ...] = ("username", "ipv4host", "ipv6host", "port")
    if not match["name"].lower().startswith("sqlite"):
        groups += ("database",)
    return any("@" in (match[g] or "") for g in groups)


def _check_port(text: str | None, what: str) -> None:
    if text is None or (text == "" and what == "port"):  # postgresql://HOST:/DB is no port
        return
    if not (text.isascii() and text.isdigit() and 1 <= int(text) <= 65535):
        raise ValueError(f"{what} {text!r} is not a port number (1 to 65535)")


def _query(text: str | None) -> list[tuple[str, str]]:
    """The query's pairs, ``sslmode`` renamed ``ssl``; ``ValueError`` for anything asyncpg
    would not take."""
    pairs = parse_qsl(text or "", keep_blank_values=True)
    seen: set[str] = set()
    out: list[tuple[str, str]] = []
    for key, value in pairs:
        if key not in QUERY_KEYS:
            # A key is no secret, but one mistyped from "password=..." could be: quote it short.
            shown = key if len(key) <= 20 else key[:20] + "..."
            raise ValueError(f"unknown URL query key {shown!r}: use {', '.join(QUERY_KEYS)} "
                             "(?sslmode=require, ?host=/var/run/postgresql)")
        name = "ssl" if key == "sslmode" else key
        if name in seen:
            raise ValueError("sslmode and ssl both given" if name == "ssl"
                             else f"URL query key {key!r} given twice")
        seen.add(name)
        if name == "ssl" and value not in SSL_MODES:
            raise ValueError(f"{key}={value!r}: use one of {', '.join(SSL_MODES)}")
        if name == "port":
            _check_port(value, "?port=")  # an empty one too
        out.append((name, value))
    return out


CONNECT_TIMEOUT = 5.0
"""Seconds to wait for a PostgreSQL server to accept a connection and answer its startup,
everywhere wardtui connects (asyncpg's own default is 60 s: a black-holed host kept
``wardtui db current`` silent for a minute and the dashboard's screen blank)."""


def connect_args(url: str) -> dict[str, float]:
    """``create_async_engine``'s ``connect_args`` bounding the connect to a PostgreSQL ``url``."""
    return {"timeout": CONNECT_TIMEOUT} if url.startswith("postgresql") else {}


def failure(exc: BaseException, url: str) -> str:
    """Why ``url`` could not be used, in a few words: the driver's message, or for a timeout
    (whose message is empty) which server did not answer and for how long."""
    reason = getattr(exc, "orig", None) or exc
    if isinstance(reason, TimeoutError):
        return f"no answer from {server(url)} within {CONNECT_TIMEOUT:g} s"
    text = str(reason).strip()
    return text if text else type(reason).__name__


def server(url: str) -> str:
    """``HOST:PORT`` (or the unix socket directory) that a PostgreSQL ``url`` connects to."""
    match = _URL.match(url)
    if match is None:  # pragma: no cover - every URL with :// matches the pattern
        return "the database server"
    query = dict(parse_qsl(match["query"] or ""))
    host = match["ipv4host"] or (f"[{match['ipv6host']}]" if match["ipv6host"] else None) \
        or query.get("host") or "localhost"
    port = match["port"] or query.get("port") or "5432"
    return host if host.startswith("/") else f"{host}:{port}"


def is_connection_error(exc: BaseException) -> bool:
    """Whether ``exc`` (or what caused it) says the database could not be reached or went away:
    refused, reset, timed out (``TimeoutError`` is an ``OSError``), shut down, starting up."""
    # Imported here: the dashboard reads this module's URL helpers before it loads a driver.
    import asyncpg
    from sqlalchemy.exc import DBAPIError

    connection_errors = (OSError, asyncpg.InterfaceError, asyncpg.PostgresConnectionError,
                         asyncpg.CannotConnectNowError, asyncpg.AdminShutdownError,
                         asyncpg.CrashShutdownError)
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, connection_errors):
            return True
        if isinstance(current, DBAPIError) and current.connection_invalidated:
            return True
        current = getattr(current, "orig", None) or current.__cause__ or current.__context__
    return False


def cause(exc: BaseException) -> str:
    """The driver's reason for ``exc`` on one line: ``ConnectionRefusedError: [Errno 111] ...``."""
    reason = getattr(exc, "orig", None) or exc
    lines = str(reason).strip().splitlines()
    text = lines[0] if lines else ""
    if isinstance(reason, TimeoutError) and not text:
        text = "no answer in time"
    return f"{type(reason).__name__}: {text}" if text else type(reason).__name__
