"""The receivers of a checked notify file, ready to send: :func:`build_receivers`.

One module per kind: webhook.py (JSON, Slack, Teams; Idempotency-Key; HMAC-SHA256 signature),
smtp.py (email, text and HTML), command.py (a program without a shell, JSON on stdin),
syslog_rfc5424.py (RFC 5424 over UDP or TCP). What they say in words is render.py's. Each
raises :class:`~poller.notify.model.DeliveryError` (retryable or not) when it could not deliver;
the delivery loop (the outbox's side) decides when to try again.
"""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import uuid4

from poller.notify.command import CommandReceiver
from poller.notify.config import NotifyConfig
from poller.notify.model import Notification, Receiver
from poller.notify.receiver_config import CommandConfig, EmailConfig, ReceiverConfig, WebhookConfig
from poller.notify.smtp import EmailReceiver
from poller.notify.syslog_rfc5424 import SyslogReceiver
from poller.notify.webhook import WebhookReceiver

__all__ = ["CommandReceiver", "EmailReceiver", "SyslogReceiver", "WebhookReceiver", "build_receiver",
           "build_receivers", "build_test_notification"]


def build_receiver(config: ReceiverConfig) -> Receiver:
    if isinstance(config, WebhookConfig):
        return WebhookReceiver(config)
    if isinstance(config, EmailConfig):
        return EmailReceiver(config)
    if isinstance(config, CommandConfig):
        return CommandReceiver(config)
    return SyslogReceiver(config)


def build_receivers(config: NotifyConfig) -> dict[str, Receiver]:
    """Every receiver of ``config`` by name (a webhook's HTTP client is made here: close them
    with ``aclose``)."""
    return {name: build_receiver(receiver) for name, receiver in config.receivers.items()}


# (Not named test_*: pytest would collect it from a test module that imports it.)
def build_test_notification(site: str, route: str, receiver: str,
                            now: datetime | None = None) -> Notification:
    """What ``wardtui notify test`` sends: status "test", no device, a key of its own."""
    return Notification(key=f"{site}:{route}:{receiver}:test-{uuid4().hex}", site=site, route=route,
                        receiver=receiver, status="test", title=f"wardtui test notification (route {route})",
                        group=(), firing=(), resolved=(), created=now or datetime.now(UTC))
