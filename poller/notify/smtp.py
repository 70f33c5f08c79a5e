"""The email receiver: one message per notification over SMTP (aiosmtplib), text and HTML.

STARTTLS (``starttls: true``, the default: required, never skipped for a server that does not
offer it) or TLS from the first byte (``implicit_tls: true``, port 465), the server's
certificate checked against the system's CAs or ``ca_file``; AUTH with ``username`` and the
``password_secret`` of the credentials file. Subject: the title; a text/plain part
(render.plain_text) and a text/html alternative in which every value is HTML-escaped. The
Message-ID is made from the idempotency key, so a repeat after a restart is the same message
to a mail system that drops duplicates.

Not retryable: authentication refused, an extension the settings need that the server lacks,
a permanent (5xx) refusal. Retryable: connection refused or lost, a timeout, a temporary (4xx)
refusal, a certificate that fails (a server's certificate gets fixed; the message must wait).
"""

from __future__ import annotations

import hashlib
import html
import logging
import ssl
from email.message import EmailMessage
from email.utils import format_datetime

from poller.notify.model import DeliveryError, Notification
from poller.notify.receiver_config import EmailConfig
from poller.notify.render import (
    PLAIN_LIMIT,
    Entry,
    behind_line,
    columns,
    footer,
    plain_text,
    sections,
    unlisted_line,
)
from poller.text import clean

log = logging.getLogger(__name__)


class EmailReceiver:
    kind = "email"

    def __init__(self, config: EmailConfig) -> None:
        self.name = config.name
        self.config = config
        self._tls = ssl.create_default_context(cafile=config.ca_file)

    def __repr__(self) -> str:
        return f"EmailReceiver({self.name!r}, {self.config.host}:{self.config.port})"

    async def send(self, notification: Notification) -> None:
        # Here, not at the top: a service without --notify never loads aiosmtplib.
        import aiosmtplib

        config = self.config
        try:
            message = build_message(notification, config.sender, config.to)
        except (ValueError, TypeError) as exc:  # a header the email package refuses: no retry helps
            raise DeliveryError(f"cannot make the message: {_said(str(exc))}", retryable=False) from None
        where = f"SMTP {config.host}:{config.port}"
        try:
            refused, _ = await aiosmtplib.send(
                message, hostname=config.host, port=config.port, username=config.username,
                password=config.password, use_tls=config.implicit_tls, start_tls=config.starttls,
                tls_context=self._tls, timeout=config.timeout)
        except aiosmtplib.SMTPAuthenticationError as exc:
            raise DeliveryError(f"{where}: authentication refused ({exc.code} {_said(exc.message)})",
                                retryable=False) from None
        except aiosmtplib.SMTPRecipientsRefused as exc:
            codes = [r.code for r in exc.recipients]
            said = "; ".join(f"{clean(r.recipient)}: {r.code} {_said(r.message)}" for r in exc.recipients)
            raise DeliveryError(f"{where}: every recipient refused ({said})",
                                retryable=all(400 <= c < 500 for c in codes)) from None
        except aiosmtplib.SMTPResponseException as exc:
            raise DeliveryError(f"{where}: {exc.code} {_said(exc.message)}",
                                retryable=400 <= exc.code < 500 or exc.code < 0) from None
        except aiosmtplib.SMTPNotSupported as exc:
            raise DeliveryError(f"{where}: {_said(exc.message)}", retryable=False) from None
        except aiosmtplib.SMTPException as exc:
            # aiosmtplib says "... extension not supported" (STARTTLS, AUTH) with no class of its own:
            # the server lacks what the settings require; retrying cannot change that.
            lacking = "not supported" in exc.message
            raise DeliveryError(f"{where}: {_said(exc.message)}", retryable=not lacking) from None
        except (ssl.SSLError, OSError) as exc:
            raise DeliveryError(f"{where}: {_said(str(exc) or type(exc).__name__)}") from None
        if refused:  # some took it: sent (a retry would send it again to those)
            log.warning("receiver %s: %s refused %s", self.name, where, ", ".join(sorted(refused)))

    async def aclose(self) -> None:
        return None


def _said(text: str) -> str:
    return clean(" ".join(text.split()))[:300]


def message_id(key: str) -> str:
    return f"<{hashlib.sha256(key.encode('utf-8')).hexdigest()[:32]}@wardtui.invalid>"


def build_message(notification: Notification, sender: str, to: tuple[str, ...]) -> EmailMessage:
    message = EmailMessage()
    message["Subject"] = clean(notification.title)
    message["From"] = sender
    message["To"] = ", ".join(to)
    message["Date"] = format_datetime(notification.created)
    message["Message-ID"] = message_id(notification.key)
    message["X-Wardtui-Key"] = notification.key
    message.set_content(plain_text(notification), charset="utf-8")
    message.add_alternative(html_body(notification), subtype="html", charset="utf-8")
    return message


def _row(entry_item: list[str], indent: bool) -> str:
    cells = "".join(f"<td>{html.escape(text)}</td>" for text in entry_item)
    style = ' style="padding-left:2em"' if indent else ""
    return f"<tr{style}>{cells}</tr>"


def _note(text: str) -> str:
    return f'<tr><td colspan="6"><em>{html.escape(text)}</em></td></tr>'


def _rows(entry: Entry, resolved: bool) -> list[str]:
    rows = [_row(columns(entry.item), False)]
    if entry.count:
        rows.append(_note(behind_line(entry, resolved)))
        rows += [_row(["↳ " + c if i == 0 else c for i, c in enumerate(columns(child))], True)
                 for child in entry.behind]
        if entry.unlisted:
            rows.append(_note(unlisted_line(entry.unlisted)))
    return rows


def html_body(notification: Notification) -> str:
    """The HTML part: every text from outside (names, addresses, notes) through html.escape."""
    parts = ["<!DOCTYPE html>", '<html><head><meta charset="utf-8"></head><body>',
             f"<h3>{html.escape(clean(notification.title))}</h3>"]
    if notification.status == "test":
        parts.append(f"<p>A test from wardtui to receiver {html.escape(clean(notification.receiver))}: "
                     "no device is out.</p>")
    for section in sections(notification, PLAIN_LIMIT):
        parts.append(f"<h4>{html.escape(section.heading)}</h4>")
        parts.append('<table cellpadding="3">')
        for entry in section.entries:
            parts += _rows(entry, section.resolved)
        if section.unlisted:
            parts.append(_note(unlisted_line(section.unlisted)))
        parts.append("</table>")
    parts.append(f"<p><small>{html.escape(footer(notification))}</small></p></body></html>")
    return "\n".join(parts)
