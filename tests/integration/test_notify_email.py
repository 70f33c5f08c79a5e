"""The email receiver against aiosmtpd on loopback: what arrives (subject, text and HTML parts with a
hostile device name escaped), STARTTLS with AUTH and implicit TLS with a self-signed certificate
the receiver is told to trust, and which failures are retried."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from poller.notify.model import DeliveryError, Notification
from poller.notify.receiver_config import EmailConfig
from poller.notify.smtp import EmailReceiver, message_id
from poller.text import REPLACEMENT
from tests.integration.notify_servers import closed_port, self_signed
from tests.notify_samples import HOSTILE, KEY, outage
from tests.ports import free_port

PASSWORD = "smtp-pa55word-value"


@dataclass
class Mailbox:
    """What the SMTP server was given: envelopes and who logged in."""

    messages: list[tuple[str, list[str], EmailMessage]] = field(default_factory=list)
    logins: list[str] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # aiosmtpd's name
        parsed = message_from_bytes(envelope.content, policy=policy.default)
        assert isinstance(parsed, EmailMessage)
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), parsed))
        return "250 OK"

    def authenticate(self, server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
        if isinstance(data, LoginPassword) and data.login == b"noc" and data.password == PASSWORD.encode():
            self.logins.append("noc")
            return AuthResult(success=True)
        return AuthResult(success=False, handled=False)


@pytest.fixture
def plain_smtp() -> Iterator[tuple[Mailbox, int]]:
    box = Mailbox()
    controller = Controller(box, hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        yield box, controller.port
    finally:
        controller.stop()


@pytest.fixture
def certificate(tmp_path: Path) -> tuple[ssl.SSLContext, Path]:
    key, cert = self_signed(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    return context, cert


@pytest.fixture
def tls_smtp(certificate: tuple[ssl.SSLContext, Path]) -> Iterator[tuple[Mailbox, int, Path]]:
    """STARTTLS required, AUTH required and only after STARTTLS."""
    context, cert = certificate
    box = Mailbox()
    controller = Controller(box, hostname="127.0.0.1", port=free_port(), tls_context=context,
                            require_starttls=True, auth_required=True, auth_require_tls=True,
                            authenticator=box.authenticate)
    controller.start()
    try:
        yield box, controller.port, cert
    finally:
        controller.stop()


async def deliver(config: EmailConfig, notification: Notification) -> None:
    receiver = EmailReceiver(config)
    try:
        await receiver.send(notification)
    finally:
        await receiver.aclose()


def mail(port: int, **more: Any) -> EmailConfig:
    settings: dict[str, Any] = {"starttls": False, **more}
    to = ("noc@noc.example", "oncall@noc.example")
    return EmailConfig("mail", 1, "127.0.0.1", "wardtui@noc.example", to, port=port, timeout=10.0, **settings)


async def test_the_message_arrives_with_its_subject_and_both_parts_escaped(
        plain_smtp: tuple[Mailbox, int]) -> None:
    box, port = plain_smtp
    notification = outage(2, hostile=True)
    await deliver(mail(port), notification)
    ((sender, recipients, message),) = box.messages
    assert sender == "wardtui@noc.example" and recipients == ["noc@noc.example", "oncall@noc.example"]
    assert message["Subject"] == "north-b002-rtr DOWN, 3 devices unreachable behind it"
    assert message["Message-ID"] == message_id(KEY) and message["X-Wardtui-Key"] == KEY
    assert message.get_content_type() == "multipart/alternative"
    text = message.get_body(("plain",))
    page = message.get_body(("html",))
    assert text is not None and page is not None
    plain, markup = text.get_content(), page.get_content()
    visible = HOSTILE.replace("\x1b", REPLACEMENT).replace("\n", REPLACEMENT)
    assert visible in plain and "north-b002-atm02  10.2.0.12  UNREACHABLE" in plain
    assert "<script>" not in markup and "&lt;script&gt;alert(1)&lt;/script&gt;" in markup
    assert "&lt;!channel&gt;" in markup and "[bold]x[/]" in markup and "\x1b" not in markup
    assert "<td>north-b002-rtr</td><td>10.2.0.1</td><td>DOWN</td>" in markup
    assert "<td>↳ north-b002-atm02</td><td>10.2.0.12</td><td>UNREACHABLE</td>" in markup


async def test_a_hostile_title_cannot_add_a_header(plain_smtp: tuple[Mailbox, int]) -> None:
    box, port = plain_smtp
    await deliver(mail(port), outage(1, title="x\r\nBcc: everyone@example.net\r\n\r\nbody"))
    ((_, recipients, message),) = box.messages
    assert recipients == ["noc@noc.example", "oncall@noc.example"] and message["Bcc"] is None
    assert message["Subject"].startswith("x" + REPLACEMENT)


async def test_starttls_with_auth_delivers_and_a_wrong_password_is_not_retried(
        tls_smtp: tuple[Mailbox, int, Path]) -> None:
    box, port, cert = tls_smtp
    good = mail(port, starttls=True, username="noc", password=PASSWORD, ca_file=str(cert))
    await deliver(good, outage(1))
    assert box.logins == ["noc"] and len(box.messages) == 1
    with pytest.raises(DeliveryError) as info:
        await deliver(mail(port, starttls=True, username="noc", password="wrong-password", ca_file=str(cert)),
                      outage(1))
    assert not info.value.retryable and "authentication refused (535" in str(info.value)
    assert "wrong-password" not in str(info.value) and len(box.messages) == 1


async def test_a_certificate_the_receiver_does_not_trust_is_refused_and_retried(
        tls_smtp: tuple[Mailbox, int, Path]) -> None:
    box, port, _ = tls_smtp
    with pytest.raises(DeliveryError) as info:  # the system's CAs know no self-signed loopback cert
        await deliver(mail(port, starttls=True, username="noc", password=PASSWORD), outage(1))
    assert info.value.retryable and "CERTIFICATE_VERIFY_FAILED" in str(info.value)
    assert box.messages == [] and box.logins == []


async def test_starttls_required_but_not_offered_is_not_retried(plain_smtp: tuple[Mailbox, int]) -> None:
    box, port = plain_smtp
    with pytest.raises(DeliveryError) as info:
        await deliver(mail(port, starttls=True), outage(1))
    assert not info.value.retryable and "STARTTLS" in str(info.value) and box.messages == []


async def test_implicit_tls_delivers(certificate: tuple[ssl.SSLContext, Path]) -> None:
    context, cert = certificate
    box = Mailbox()
    controller = Controller(box, hostname="127.0.0.1", port=free_port(), ssl_context=context)
    controller.start()
    try:
        await deliver(mail(controller.port, implicit_tls=True, ca_file=str(cert)), outage(1))
    finally:
        controller.stop()
    assert len(box.messages) == 1


async def test_a_refused_connection_is_retryable() -> None:
    with pytest.raises(DeliveryError) as info:
        await deliver(mail(closed_port()), outage(1))
    assert info.value.retryable and "SMTP 127.0.0.1:" in str(info.value)
