"""The syslog receiver: one RFC 5424 message per notification, over UDP (RFC 5426) or TCP with
octet-counting framing (RFC 6587: ``LENGTH SP MESSAGE``, so a newline in it frames nothing).

``<PRI>1 TIMESTAMP HOSTNAME wardtui PROCID MSGID [wardtui@32473 key="..." ...] BOM MSG``:
PRI from the facility (default local0) and the severity (firing: ``firing_severity``, default
warning; resolved: ``resolved_severity``, default notice; a test: the firing one, so that it
takes the path an alert takes); MSGID the status; the structured data's values escaped as RFC
5424 says (``\\``, ``"``, ``]``); MSG the title and the devices on one line. Control characters
in anything from outside are written out (``\\x1b``), not sent; a message longer than
``max_length`` octets is cut on a character boundary and says so. 32473 is the enterprise
number RFC 5612 sets aside for examples and documentation: wardtui has none of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from datetime import UTC

from poller.notify.model import AlertItem, DeliveryError, Notification
from poller.notify.receiver_config import SyslogConfig
from poller.notify.render import STATE_WORDS
from poller.text import escaped

APP_NAME = "wardtui"
SD_ID = "wardtui@32473"
BOM = b"\xef\xbb\xbf"
CUT = " [cut]"
NIL = "-"


def sd_escape(value: str) -> str:
    """An SD-PARAM value: control characters written out, then ``\\`` ``"`` ``]`` escaped."""
    return escaped(value).replace("\\", "\\\\").replace('"', '\\"').replace("]", "\\]")


def header_token(text: str, limit: int) -> str:
    """HOSTNAME, APP-NAME, PROCID, MSGID: printable US-ASCII without spaces, or ``-``."""
    token = "".join(c for c in text if 33 <= ord(c) <= 126)[:limit]
    return token or NIL


def _items(items: tuple[AlertItem, ...]) -> str:
    return ", ".join(f"{a.device} {a.address} {STATE_WORDS.get(a.state, a.state)}" for a in items)


def message_text(notification: Notification) -> str:
    """The title and the devices, one line: "r1 DOWN, 2 devices unreachable behind it: firing
    r1 10.0.0.1 DOWN, a 10.0.0.2 UNREACHABLE, ...; resolved ..."."""
    parts = []
    if notification.firing:
        parts.append(f"firing {_items(notification.firing)}")
    if notification.resolved:
        parts.append(f"resolved {_items(notification.resolved)}")
    return escaped(notification.title + (": " + "; ".join(parts) if parts else ""))


def format_message(notification: Notification, config: SyslogConfig, hostname: str, pid: int) -> bytes:
    """The whole RFC 5424 message, at most ``config.max_length`` octets."""
    resolved = notification.status == "resolved"
    severity = config.resolved_severity if resolved else config.firing_severity
    stamp = notification.created.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    head = (f"<{config.facility * 8 + severity}>1 {stamp} {header_token(hostname, 255)} {APP_NAME} "
            f"{header_token(str(pid), 128)} {header_token(notification.status, 32)} ")
    params = [("key", notification.key), ("site", notification.site), ("route", notification.route),
              ("receiver", notification.receiver), *notification.group,
              ("firing", str(len(notification.firing))), ("resolved", str(len(notification.resolved)))]
    data = "[" + SD_ID + "".join(f' {header_token(k, 32)}="{sd_escape(v)}"' for k, v in params) + "] "
    start = (head + data).encode("utf-8", errors="replace")
    text = message_text(notification).encode("utf-8", errors="replace")
    room = config.max_length - len(start) - len(BOM)
    if len(text) > room:
        kept = text[: max(0, room - len(CUT))].decode("utf-8", errors="ignore")  # a cut character: gone
        text = kept.encode("utf-8") + CUT.encode("ascii")
    return start + BOM + text


class SyslogReceiver:
    kind = "syslog"

    def __init__(self, config: SyslogConfig) -> None:
        self.name = config.name
        self.config = config
        self.hostname = config.hostname or socket.gethostname()

    def __repr__(self) -> str:
        return f"SyslogReceiver({self.name!r}, {self.config.transport}://{self.config.host}:{self.config.port})"

    async def send(self, notification: Notification) -> None:
        message = format_message(notification, self.config, self.hostname, os.getpid())
        where = f"syslog {self.config.transport}://{self.config.host}:{self.config.port}"
        try:
            if self.config.transport == "tcp":
                await asyncio.wait_for(self._send_tcp(message), self.config.timeout)
            else:
                await self._send_udp(message)
        except TimeoutError:
            raise DeliveryError(f"{where}: no connection within {self.config.timeout:g} s") from None
        except OSError as exc:
            raise DeliveryError(f"{where}: {exc.strerror or exc}") from None

    async def _send_tcp(self, message: bytes) -> None:
        reader, writer = await asyncio.open_connection(self.config.host, self.config.port)
        del reader
        try:
            writer.write(f"{len(message)} ".encode("ascii") + message)
            await writer.drain()
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    async def _send_udp(self, message: bytes) -> None:
        loop = asyncio.get_running_loop()
        found = await loop.getaddrinfo(self.config.host, self.config.port, type=socket.SOCK_DGRAM)
        family, kind, proto, _, address = found[0]
        with socket.socket(family, kind, proto) as sock:
            sock.setblocking(False)
            sock.connect(address)
            sock.send(message)

    async def aclose(self) -> None:
        return None
