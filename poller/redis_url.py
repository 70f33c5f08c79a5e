"""Redis clients from a URL: the one place that makes them (the feed, the cluster's leases, the
viewers, ``events``, ``status``, ``doctor``, the commands all call :func:`client_for`).

Forms:

- ``redis://[[USER]:PASSWORD@]HOST[:PORT][/DB]``, ``rediss://...`` (TLS), ``unix:///PATH``: one
  server, as redis-py's ``Redis.from_url`` reads them.
- ``redis+sentinel://[[USER]:PASSWORD@]HOST[:PORT][,HOST[:PORT]...]/SERVICE[/DB]``: a primary
  watched by Redis Sentinel. The hosts are Sentinels (port 26379 when not given; ``[::1]:26379``
  for IPv6), ``SERVICE`` the name the Sentinels monitor (``sentinel monitor SERVICE ...``), ``DB``
  the database number (0). The password (and user) are the data nodes' (the primary's and its
  replicas' ``requirepass``/ACL user); the Sentinels are asked without one. The client is
  redis-py's ``redis.asyncio.sentinel.Sentinel(...).master_for(SERVICE)``: every new connection
  first asks the Sentinels which server is the primary now, and a connection to a primary that
  was demoted (``READONLY``) is dropped, so after a failover the next command (or the caller's
  reconnection) reaches the new primary.

Every message made here hides the password (:func:`shown_url`, :func:`describe_error`).
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import MasterNotFoundError, Sentinel
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from poller.text import escaped

CONNECT_TIMEOUT = 5.0
"""Seconds Redis gets to accept a connection or answer a command before it counts as lost."""
SENTINEL_SCHEME = "redis+sentinel"
SENTINEL_PORT = 26379
FORMS = ("redis://[:PASSWORD@]HOST[:PORT][/DB], rediss://..., unix:///PATH or "
         "redis+sentinel://[:PASSWORD@]HOST[:PORT][,HOST[:PORT]...]/SERVICE[/DB]")
_LABEL = r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_NAME = re.compile(rf"{_LABEL}(\.{_LABEL})*\.?")
_SERVICE = re.compile(r"[A-Za-z0-9_.:-]{1,128}")


def shown_url(url: str) -> str:
    """``url`` as it may be printed: never with its password.

    The user part is taken up to the last ``@`` of the address, not as ``urlsplit`` reads it: a
    password typed with ``/``, ``?`` or ``#`` unquoted ends its netloc early, and it would
    have been printed whole."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return "<unreadable URL>" if "@" in url else url
    at = rest.rfind("@")
    if at < 0:
        return url
    userinfo, host = rest[:at], rest[at + 1:]
    user, colon, _password = userinfo.partition(":")
    return f"{scheme}://{user}{':***' if colon else ''}@{host}"


class FeedUrlError(ValueError):
    """A Redis URL that cannot be used (the message hides its password)."""


class UnknownService(MasterNotFoundError):
    """Sentinels answered, and none of them monitors the URL's service name: the operator's to
    fix (a typo, or the wrong Sentinels), not a failover under way."""


@dataclass(frozen=True, slots=True)
class SentinelTarget:
    """A ``redis+sentinel://`` URL, read."""

    sentinels: tuple[tuple[str, int], ...]
    service: str
    db: int = 0
    username: str | None = None
    password: str | None = None


def parse_sentinel_url(url: str) -> SentinelTarget:
    """Read ``redis+sentinel://[[USER]:PASSWORD@]HOST[:PORT][,HOST[:PORT]...]/SERVICE[/DB]``;
    FeedUrlError (password hidden) for anything else."""
    shown = escaped(shown_url(url))
    scheme, sep, rest = url.partition("://")
    if scheme.lower() != SENTINEL_SCHEME or not sep:
        raise FeedUrlError(f"{shown}: not a {SENTINEL_SCHEME}:// URL")
    if "?" in rest or "#" in rest[rest.rfind("@") + 1:]:
        raise FeedUrlError(f"{shown}: {SENTINEL_SCHEME}:// takes no options (?...)")
    at = rest.rfind("@")
    userinfo, rest = (rest[:at], rest[at + 1:]) if at >= 0 else ("", rest)
    hosts, slash, path = rest.partition("/")
    username = password = None
    if at >= 0:
        user, colon, secret = userinfo.partition(":")
        username = unquote(user) or None  # as redis-py reads redis://USER[:PASSWORD]@
        password = unquote(secret) if colon else None
    sentinels = tuple(_sentinel(part, shown) for part in hosts.split(","))
    parts = path.split("/") if slash else []
    if not parts or not parts[0]:
        raise FeedUrlError(f"{shown}: no service name: {SENTINEL_SCHEME}://HOST[:PORT][,HOST[:PORT]...]"
                           "/SERVICE[/DB], SERVICE as the Sentinels monitor it")
    service = unquote(parts[0])
    if not _SERVICE.fullmatch(service):
        raise FeedUrlError(f"{shown}: the service name {escaped(service)[:40]!r} is not 1 to 128 "
                           "letters, digits, '_', '.', ':' or '-'")
    db = 0
    if len(parts) > 2 or (len(parts) == 2 and parts[1] and not parts[1].isdigit()):
        raise FeedUrlError(f"{shown}: after the service name, only a database number (/SERVICE/DB)")
    if len(parts) == 2 and parts[1]:
        db = int(parts[1])
    return SentinelTarget(sentinels, service, db, username, password)


def _sentinel(text: str, shown: str) -> tuple[str, int]:
    if not text:
        raise FeedUrlError(f"{shown}: a Sentinel's HOST[:PORT] is empty")
    if text.startswith("["):
        host, close, tail = text[1:].partition("]")
        ok = bool(close) and _is_ip(host, 6) and (not tail or tail.startswith(":"))
        port_text = tail[1:] if tail else ""
    else:
        host, colon, port_text = text.partition(":")
        ok = ":" not in port_text and (_is_ip(host, 4) or bool(_NAME.fullmatch(host)))
        if colon and not port_text:
            ok = False
    if not ok:
        raise FeedUrlError(f"{shown}: {escaped(text)[:60]!r} is not a Sentinel's HOST[:PORT] "
                           "(e.g. 10.0.0.5:26379 or [::1]:26379)")
    if not port_text:
        return host, SENTINEL_PORT
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise FeedUrlError(f"{shown}: {escaped(text)[:60]!r}: the port is not a number from 1 to 65535")
    return host, int(port_text)


def _is_ip(text: str, version: int) -> bool:
    try:
        return ipaddress.ip_address(text).version == version
    except ValueError:
        return False


def is_sentinel_url(url: str) -> bool:
    return url.partition("://")[0].lower() == SENTINEL_SCHEME


class _Sentinel(Sentinel):
    """redis-py's Sentinel, with a failure that says what happened: no Sentinel answered, the
    Sentinels see no healthy primary (a failover under way), or none knows the service."""

    async def discover_master(self, service_name: str) -> tuple[str, int]:
        errors: list[str] = []
        answered = known = 0
        for n, sentinel in enumerate(self.sentinels):
            where = _where(sentinel)
            try:
                masters: Any = await sentinel.sentinel_masters()
            except (RedisConnectionError, ResponseError, RedisTimeoutError, OSError) as exc:
                errors.append(f"{where}: {_first_line(exc)}")
                continue
            answered += 1
            state = masters.get(service_name)
            if state is None:
                continue
            known += 1
            if self.check_master_state(state, service_name):
                self.sentinels[0], self.sentinels[n] = sentinel, self.sentinels[0]
                return state["ip"], state["port"]
        count = len(self.sentinels)
        if answered and not known:
            raise UnknownService(f"{answered} of {count} Sentinels answered and none monitors a "
                                 f"service {service_name!r}" + (f" ({'; '.join(errors)})" if errors else ""))
        if not answered:
            raise MasterNotFoundError(f"no Sentinel answered ({'; '.join(errors)})")
        also = f" ({'; '.join(errors)})" if errors else ""
        raise MasterNotFoundError(f"the Sentinels see no healthy primary for {service_name!r} "
                                  f"now (a failover under way?){also}")


def _where(client: Redis) -> str:
    kwargs = client.connection_pool.connection_kwargs
    host = str(kwargs.get("host", "?"))
    return f"[{host}]:{kwargs.get('port')}" if ":" in host else f"{host}:{kwargs.get('port')}"


def _first_line(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text.splitlines()[0] if text else type(exc).__name__


class SentinelRedis(Redis):
    """The primary's client (``master_for``); closing it closes its Sentinels' clients too."""

    sentinels: Sentinel | None = None  # (not ``sentinel``: Redis has a SENTINEL command method)
    target: SentinelTarget | None = None

    async def aclose(self, close_connection_pool: bool | None = None) -> None:
        try:
            await super().aclose(close_connection_pool)
        finally:
            sentinel, self.sentinels = self.sentinels, None
            if sentinel is not None:
                await sentinel.aclose()


def client_for(url: str, timeout: float = CONNECT_TIMEOUT) -> Redis:
    """A Redis client for ``url`` (redis://, rediss://, unix://, redis+sentinel://) that fails
    fast: no retries of its own (callers have their backoff), ``timeout`` to connect and for each
    answer (each Sentinel asked too). Nothing is sent yet."""
    try:
        scheme = urlsplit(url).scheme.lower()
    except ValueError:
        scheme = url.partition("://")[0].lower()
    options: dict[str, Any] = {"socket_connect_timeout": timeout, "socket_timeout": timeout,
                               "retry": Retry(NoBackoff(), 0), "decode_responses": False}
    if scheme == SENTINEL_SCHEME:
        try:
            target = parse_sentinel_url(url)
        except FeedUrlError as exc:
            raise FeedUrlError(f"--redis {exc}") from None
        sentinel = _Sentinel(list(target.sentinels),
                             sentinel_kwargs={"socket_connect_timeout": timeout, "socket_timeout": timeout,
                                              "retry": Retry(NoBackoff(), 0)})
        client: SentinelRedis = sentinel.master_for(
            target.service, redis_class=SentinelRedis, db=target.db, username=target.username,
            password=target.password, **options)
        client.sentinels, client.target = sentinel, target
        return client
    if scheme not in ("redis", "rediss", "unix"):
        raise FeedUrlError(f"--redis {escaped(shown_url(url))}: use {FORMS}")
    try:
        return Redis.from_url(url, **options)
    except ValueError as exc:
        raise FeedUrlError(f"--redis {escaped(shown_url(url))}: {scrub(str(exc), url)}") from None


def scrub(text: str, url: str) -> str:
    """``text`` with ``url``'s password (as typed and decoded) replaced by ``***``."""
    _scheme, _, rest = url.partition("://")
    userinfo = rest[:rest.rfind("@")] if "@" in rest else ""
    password = userinfo.partition(":")[2]
    for secret in sorted({password, unquote(password)}, key=len, reverse=True):
        if secret:
            text = text.replace(secret, "***")
    return text


def describe_error(exc: BaseException, url: str) -> str:
    """One line for a Redis failure, the password hidden."""
    text = str(exc) or type(exc).__name__
    return escaped(scrub(text.splitlines()[0] if text else "", url))
