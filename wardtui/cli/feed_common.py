"""What the live-feed readers (``wardtui events``, ``wardtui status``) share: ``--redis`` and
``--site``, the connection and its failures as one line and an exit status, times and clean-up.

Exit statuses: 2 for what the operator must fix in the command (a bad URL, a wrong password, no
permission, a bad site name), 1 when there is nothing to read (Redis unreachable, no live service,
keys this wardtui cannot read). Nothing here prints a password: URLs go through
:func:`poller.feed.shown_url`, Redis's errors through :func:`poller.feed.describe_error`.

poller.feed (and with it redis) is imported inside the functions: ``wardtui --help`` builds every
command's parser and must not pay for it."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from poller.live import DEFAULT_REDIS, DEFAULT_SITE, REDIS_ENV
from poller.text import escaped
from wardtui.cli.common import UsageError

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from poller.live import Keys


REDIS_HELP = (f"the Redis that wardtui serve publishes to: redis://[:PASSWORD@]HOST[:PORT][/DB], "
              f"rediss://..., unix:///PATH or redis+sentinel://HOST[:PORT][,HOST[:PORT]...]/SERVICE[/DB] "
              f"(default: ${REDIS_ENV}, else {DEFAULT_REDIS}); "
              f"a password on the command line shows in ps: put the URL in ${REDIS_ENV} instead")
SITE_HELP = f"the site's name, as wardtui serve --site gave it (default: {DEFAULT_SITE})"


def add_feed_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--redis", metavar="URL", default=None, help=REDIS_HELP)
    parser.add_argument("--site", metavar="NAME", default=DEFAULT_SITE, help=SITE_HELP)


def feed_target(args: argparse.Namespace) -> tuple[str, Keys]:
    """(Redis URL, the site's keys) the options name; UsageError (exit 2) for a bad site name."""
    url = args.redis or os.environ.get(REDIS_ENV) or DEFAULT_REDIS
    return url, site_keys(args.site)


def site_keys(site: str) -> Keys:
    """The keys of site ``site``; UsageError (exit 2) for a bad site name."""
    from poller.live import Keys, check_site

    try:
        return Keys(check_site(site))
    except ValueError:
        raise UsageError(f"--site {escaped(repr(site))}: use 1 to 64 letters, digits, "
                         "'_', '.' or '-'") from None


def connect(url: str) -> Redis:
    """A client for ``url`` (nothing is sent yet); UsageError (exit 2) for a URL it cannot use."""
    from poller.feed import FeedUrlError, client_for

    try:
        return client_for(url)
    except FeedUrlError as exc:
        raise UsageError(escaped(str(exc))) from None


def redis_failure(exc: BaseException, url: str) -> UsageError:
    """A Redis failure as one line and its exit status: 2 for a password or permission the
    operator must fix, 1 for a Redis that cannot be reached or answers wrong."""
    from redis.exceptions import AuthenticationError, AuthorizationError, NoPermissionError

    from poller.feed import describe_error, shown_url
    from poller.redis_url import UnknownService

    where = f"Redis {escaped(shown_url(url))}"
    detail = describe_error(exc, url)
    if isinstance(exc, AuthenticationError | AuthorizationError):
        return UsageError(f"{where} refused the password: {detail} (give it as "
                          f"redis://:PASSWORD@HOST, in ${REDIS_ENV})", 2)
    if isinstance(exc, NoPermissionError):
        return UsageError(f"{where}: this user may not read the live feed: {detail}", 2)
    if isinstance(exc, UnknownService):
        return UsageError(f"{where}: {detail} (the service name is the URL's path: "
                          "redis+sentinel://HOST:PORT,.../SERVICE)", 2)
    return UsageError(f"cannot read {where}: {detail}", 1)


def no_service_text(keys: Keys, url: str, host: str | None = None, pid: int | None = None,
                    age: float | None = None) -> str:
    """Why nothing is live for the site: no heartbeat, or one that stopped moving."""
    from poller.feed import shown_url

    where = f"site {keys.site} on {escaped(shown_url(url))}"
    if host is None:
        return f"no wardtui serve publishes {where}"
    who = f"{escaped(host)} (pid {pid})"
    if age is None:
        return f"the wardtui serve of {where}, on {who}, has not published a snapshot yet"
    return f"the wardtui serve of {where}, on {who}, has not published for {age:.0f} s"


def clock(at: datetime) -> str:
    """``17:40:01``, UTC: the times of the stderr lines."""
    return at.astimezone(UTC).strftime("%H:%M:%S")


def from_ms(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


def silence_stdout() -> None:
    """After a broken pipe, keep Python's exit-time flush of stdout from raising again."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


def add_service_options(parser: argparse.ArgumentParser) -> None:
    """``--redis`` and ``--site`` on a command that tells the site's service of a change
    (``wardtui ack``, ``wardtui maintenance``): SUPPRESS, like ``--db``, so that ``wardtui --redis
    URL ack ...`` keeps the URL given before the command."""
    parser.add_argument("--redis", metavar="URL", default=argparse.SUPPRESS,
                        help=REDIS_HELP + "; the site's wardtui serve is told at once")
    parser.add_argument("--site", metavar="NAME", default=argparse.SUPPRESS, help=SITE_HELP)


LATER = "a running wardtui serve or dashboard reads it within 30 s"
TELL_TIMEOUT = 3.0
"""Seconds ``wardtui ack`` and ``wardtui maintenance`` wait for the service to read their change."""


def tell_service(args: argparse.Namespace, what: str) -> None:
    """After a command wrote a window or an acknowledgement to the database: ask the site's live
    service (``--redis``/``$WARDTUI_REDIS``, ``--site``) to read them now (the ``quiet``
    command), so that its notifier and every attached dashboard have it within a second. One
    line on stderr says what happened; this never fails the command: the change is stored, and
    a service that was not told reads it within 30 s."""
    from wardtui.messages import error

    url = getattr(args, "redis", None) or os.environ.get(REDIS_ENV, "")
    later = LATER
    if not url:
        error(f"stored; {later} (give --redis or ${REDIS_ENV} to tell the site's service at once)",
              prefix="note")
        return
    try:
        line = asyncio.run(_tell(url, getattr(args, "site", None) or DEFAULT_SITE, what))
    except UsageError as exc:
        line = f"stored, but the service was not told ({exc}); {later}"
    error(line, prefix="note")


async def _tell(url: str, site: str, what: str) -> str:
    from redis.exceptions import RedisError

    from poller.feed import describe_error, is_live, read_service, send_command, shown_url
    later = LATER
    keys = site_keys(site)
    client = connect(url)
    try:
        info = await asyncio.wait_for(read_service(client, keys), TELL_TIMEOUT)
        if not is_live(info):
            return (f"stored; no live wardtui serve publishes site {site!r} on "
                    f"{escaped(shown_url(url))}: {later}")
        assert info is not None
        reply = await send_command(client, keys, "quiet", timeout=TELL_TIMEOUT, what=what[:200])
    except (RedisError, OSError, TimeoutError) as exc:
        return f"stored; Redis {escaped(shown_url(url))} did not answer ({describe_error(exc, url)}): {later}"
    finally:
        with contextlib.suppress(RedisError, OSError, RuntimeError):
            await client.aclose()
    if not reply.get("ok"):
        return f"stored; the service of site {site!r} said: {escaped(str(reply.get('error', '?')))[:200]}"
    windows, acks = reply.get("windows"), reply.get("acks")
    return (f"the service of site {site!r} on {escaped(info.host)} has read it: "
            f"{_count(windows, 'maintenance window')} not over, {_count(acks, 'acknowledgement')} in force")


def _count(n: object, what: str) -> str:
    return f"{n} {what}" if n == 1 else f"{n if isinstance(n, int) else '?'} {what}s"

