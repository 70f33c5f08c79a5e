"""The webhook receiver: one POST of JSON per notification, with its idempotency key, signed.

Body: :meth:`Notification.to_dict` (preset ``json``), a Slack-compatible ``{"text": ...}``
(``slack``) or a Microsoft Teams message holding an Adaptive Card (``teams``). Headers:
``Idempotency-Key: <notification key>`` (the same on every retry and after a restart, so a
receiver drops a repeat) and, with ``hmac_secret``, ``X-Wardtui-Signature: sha256=<hex>``, the
HMAC-SHA256 of the exact body bytes under the secret.

2xx: sent. 408, 429, 5xx, a timeout or a connection that fails: retryable, with the server's
Retry-After (seconds or an HTTP date). A redirect (not followed: the body and key would go to
another place) or any other 4xx: not retryable. Errors name the URL's origin only (a chat
service's URL holds its token) and quote at most a cleaned line of the response.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import ssl
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from poller.notify.model import DeliveryError, Notification
from poller.notify.receiver_config import WebhookConfig, origin
from poller.notify.render import behind_line, columns, footer, plain_text, sections, unlisted_line
from poller.text import clean

if TYPE_CHECKING:
    import httpx

SIGNATURE_HEADER = "X-Wardtui-Signature"
# Device lines in a chat message: Slack cuts a message's text at 40,000 characters, Teams refuses
# a card past ~28 KB; past these the devices are counted, not listed (the JSON preset has all).
SLACK_LIMIT = 150
TEAMS_LIMIT = 100
USER_AGENT = "wardtui-notify/1"
_PRINTABLE_ASCII = re.compile(r"[\x20-\x7e]*")


class WebhookReceiver:
    kind = "webhook"

    def __init__(self, config: WebhookConfig) -> None:
        # httpx here, not at the top: a service without --notify never loads it.
        import httpx

        self.name = config.name
        self.config = config
        verify: ssl.SSLContext | bool = ssl.create_default_context(cafile=config.ca_file) \
            if config.ca_file else True
        # trust_env off: a proxy from the environment (HTTP_PROXY) must not silently receive
        # every alert; redirects not followed: the signed body and its key go where configured.
        self._client = httpx.AsyncClient(timeout=config.timeout, verify=verify, trust_env=False,
                                         follow_redirects=False)
        self._where = origin(config.url)

    def __repr__(self) -> str:
        return f"WebhookReceiver({self.name!r}, {self._where}, preset={self.config.preset})"

    async def send(self, notification: Notification) -> None:
        import httpx

        body = payload(notification, self.config.preset)
        headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT,
                   "Idempotency-Key": header_value(notification.key)}
        if self.config.hmac_secret is not None:
            headers[SIGNATURE_HEADER] = signature(self.config.hmac_secret, body)
        try:
            response = await self._client.post(self.config.url, content=body, headers=headers)
        except httpx.TimeoutException:
            raise DeliveryError(f"POST to {self._where}: no answer within {self.config.timeout:g} s") \
                from None
        except httpx.HTTPError as exc:  # refused, reset, TLS, DNS: the next try may get through
            reason = _reason(exc, self.config.url, self._where)
            raise DeliveryError(f"POST to {self._where}: {reason}") from None
        check(response, self._where)

    async def aclose(self) -> None:
        await self._client.aclose()


def check(response: httpx.Response, where: str) -> None:
    """Return if ``response`` says delivered, else raise the :class:`DeliveryError` it means."""
    status = response.status_code
    if 200 <= status < 300:
        return
    said = _snippet(response.text)
    message = f"POST to {where}: HTTP {status}" + (f": {said}" if said else "")
    if status in (408, 429) or status >= 500:
        wait = retry_after(response.headers.get("Retry-After"))
        raise DeliveryError(message, retryable=True, retry_after=wait)
    if 300 <= status < 400:
        message += " (a redirect, not followed: give the final URL)"
    raise DeliveryError(message, retryable=False)


def retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds from a Retry-After header: delta-seconds or an HTTP date (RFC 9110)."""
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def signature(secret: str, body: bytes) -> str:
    """``sha256=<hex>``: what a receiver recomputes over the body it got and compares (in
    constant time) to the ``X-Wardtui-Signature`` header."""
    return "sha256=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def header_value(key: str) -> str:
    """``key`` as an HTTP header value: printable ASCII as it is, anything else %-encoded."""
    return key if _PRINTABLE_ASCII.fullmatch(key) else quote(key, safe="")


def payload(notification: Notification, preset: str) -> bytes:
    """The body for ``preset``: compact JSON, ASCII only (every other character \\u-escaped)."""
    if preset == "slack":
        document: dict[str, Any] = slack_message(notification)
    elif preset == "teams":
        document = teams_message(notification)
    else:
        document = notification.to_dict()
    return json.dumps(document, separators=(",", ":")).encode("ascii")


# -- Slack -----------------------------------------------------------------------------------


def slack_escape(text: str) -> str:
    """Slack's three control characters (its message formatting docs): ``&`` ``<`` ``>``, so a
    device named ``<!channel>`` or ``<http://x|y>`` pings no one and links nowhere."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack_message(notification: Notification) -> dict[str, Any]:
    """``{"text": ..., "mrkdwn": false}``: the plain text, escaped; with mrkdwn off Slack shows
    ``*_~`` and backticks in a name as they are instead of bold, italics, strike or code."""
    return {"text": slack_escape(plain_text(notification, SLACK_LIMIT)), "mrkdwn": False}


# -- Microsoft Teams -------------------------------------------------------------------------

# What Teams' Markdown subset (bold, italics, lists, links) and CommonMark give a meaning, written
# with a backslash (CommonMark: any ASCII punctuation so escaped stands for itself); a list marker
# only counts at the start of a block.
_MARKDOWN = re.compile(r"([\\`*_~\[\]()<>&#])")
_LIST_MARKER = re.compile(r"^(\s*(?:\d+)?)([-+.)])")


def markdown_escape(text: str) -> str:
    return _LIST_MARKER.sub(r"\1\\\2", _MARKDOWN.sub(r"\\\1", text))


def _block(text: str, **style: Any) -> dict[str, Any]:
    return {"type": "TextBlock", "text": markdown_escape(text), "wrap": True, **style}


def teams_message(notification: Notification) -> dict[str, Any]:
    """A Teams message with one Adaptive Card (1.4): the title, a block per section, a line per
    device (the children indented under their parent); every text Markdown-escaped."""
    body: list[dict[str, Any]] = [_block(clean(notification.title), size="Medium", weight="Bolder")]
    if notification.status == "test":
        body.append(_block(f"A test from wardtui to receiver {clean(notification.receiver)}: "
                           "no device is out."))
    for section in sections(notification, TEAMS_LIMIT):
        body.append(_block(section.heading, weight="Bolder", separator=True))
        for entry in section.entries:
            body.append(_block("  ".join(c for c in columns(entry.item) if c)))
            if entry.count:
                body.append(_block(behind_line(entry, section.resolved), isSubtle=True))
                body += [_block("↳ " + "  ".join(c for c in columns(child) if c), spacing="None")
                         for child in entry.behind]
                if entry.unlisted:
                    body.append(_block(unlisted_line(entry.unlisted), isSubtle=True))
        if section.unlisted:
            body.append(_block(unlisted_line(section.unlisted), isSubtle=True))
    body.append(_block(footer(notification), isSubtle=True, size="Small", separator=True))
    card = {"$schema": "http://adaptivecards.io/schemas/adaptive-card.json", "type": "AdaptiveCard",
            "version": "1.4", "body": body, "msteams": {"width": "Full"}}
    return {"type": "message", "attachments": [{"contentType": "application/vnd.microsoft.card.adaptive",
                                                "contentUrl": None, "content": card}]}


def _snippet(text: str, limit: int = 200) -> str:
    line = " ".join(text.split())
    return clean(line[:limit] + ("..." if len(line) > limit else ""))


def _reason(exc: Exception, url: str, where: str) -> str:
    """httpx's message, without the URL if it quotes it (its path may be a token)."""
    text = str(exc) or type(exc).__name__
    return _snippet(text.replace(url, where))
