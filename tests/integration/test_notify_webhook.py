"""The webhook receiver against a real HTTP server on loopback: the exact body, the idempotency key
and a signature the server can check; which answers are retried and which are not."""

from __future__ import annotations

import hashlib
import hmac
import json
import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest

from poller.notify.model import DeliveryError, Notification
from poller.notify.receiver_config import WebhookConfig
from poller.notify.webhook import WebhookReceiver
from tests.integration.notify_servers import Answer, HttpReceiver, closed_port, self_signed
from tests.notify_samples import HOSTILE, KEY, outage

SECRET = "whsec-0123456789abcdef"


@pytest.fixture
def server() -> Iterator[HttpReceiver]:
    with HttpReceiver() as http:
        yield http


async def deliver(config: WebhookConfig, notification: Notification) -> None:
    receiver = WebhookReceiver(config)
    try:
        await receiver.send(notification)
    finally:
        await receiver.aclose()


async def refused(config: WebhookConfig, notification: Notification) -> DeliveryError:
    with pytest.raises(DeliveryError) as info:
        await deliver(config, notification)
    return info.value


async def test_the_body_the_key_and_the_signature_arrive_exactly(server: HttpReceiver) -> None:
    notification = outage(40, hostile=True)
    config = WebhookConfig("hook", 1, f"{server.url}/wardtui?team=noc", hmac_secret=SECRET)
    await deliver(config, notification)
    (request,) = server.requests
    assert request.path == "/wardtui?team=noc"
    assert request.body == json.dumps(notification.to_dict(), separators=(",", ":")).encode("ascii")
    assert Notification.from_dict(json.loads(request.body)) == notification  # the hostile text, intact
    assert request.headers["idempotency-key"] == KEY
    assert request.headers["content-type"] == "application/json"
    expected = hmac.new(SECRET.encode(), request.body, hashlib.sha256).hexdigest()
    assert request.headers["x-wardtui-signature"] == f"sha256={expected}"
    # What a receiver does: recompute over the bytes it got; a changed body no longer matches.
    tampered = request.body.replace(b"north-b002-rtr", b"north-b003-rtr", 1)
    assert hmac.new(SECRET.encode(), tampered, hashlib.sha256).hexdigest() != expected


async def test_without_a_secret_there_is_no_signature_and_a_retry_keeps_its_key(server: HttpReceiver) -> None:
    server.answers.append(Answer(503, body=b"busy"))
    config = WebhookConfig("hook", 1, f"{server.url}/h")
    notification = outage(2)
    with pytest.raises(DeliveryError):
        await deliver(config, notification)
    await deliver(config, notification)
    first, second = server.requests
    assert "x-wardtui-signature" not in first.headers
    assert first.headers["idempotency-key"] == second.headers["idempotency-key"] == KEY
    assert first.body == second.body


@pytest.mark.parametrize(("answer", "retryable", "wait"), [
    (Answer(429, {"Retry-After": "7"}, b"slow down"), True, 7.0),
    (Answer(500, body=b"\x1b[31mboom\n<b>trace</b>"), True, None),
    (Answer(503, {"Retry-After": "Thu, 01 Jan 1970 00:00:00 GMT"}), True, 0.0),
    (Answer(408), True, None),
    (Answer(400, body=b'{"error": "bad payload"}'), False, None),
    (Answer(404), False, None),
    (Answer(302, {"Location": "http://127.0.0.1:1/elsewhere"}), False, None),
])
async def test_answers_that_are_retried_and_answers_that_are_not(
        server: HttpReceiver, answer: Answer, retryable: bool, wait: float | None) -> None:
    server.answers.append(answer)
    error = await refused(WebhookConfig("hook", 1, f"{server.url}/token-in-path-XYZ"), outage(1))
    assert (error.retryable, error.retry_after) == (retryable, wait)
    assert f"POST to {server.url}: HTTP {answer.status}" in str(error)
    assert "token-in-path-XYZ" not in str(error)  # the URL's path may be a chat service's token
    assert "\x1b" not in str(error) and "\n" not in str(error)
    assert len(server.requests) == 1  # a redirect is not followed


async def test_a_refused_connection_and_a_silent_server_are_retryable(server: HttpReceiver) -> None:
    nobody = f"http://127.0.0.1:{closed_port()}/secret-path"
    error = await refused(WebhookConfig("hook", 1, nobody), outage(1))
    assert error.retryable and "secret-path" not in str(error)
    server.answers.append(Answer(200, delay=2.0))
    error = await refused(WebhookConfig("hook", 1, f"{server.url}/x", timeout=0.3), outage(1))
    assert error.retryable and "no answer within 0.3 s" in str(error)


async def test_the_slack_and_teams_presets_post_their_shapes(server: HttpReceiver) -> None:
    notification = outage(1, hostile=True)
    slack_config = WebhookConfig("chat", 1, f"{server.url}/slack", preset="slack", hmac_secret=SECRET)
    await deliver(slack_config, notification)
    await deliver(WebhookConfig("teams", 1, f"{server.url}/teams", preset="teams"), notification)
    slack, teams = server.requests
    text = json.loads(slack.body)["text"]
    assert text.startswith("north-b002-rtr DOWN, 2 devices unreachable behind it\n")
    assert "&lt;script&gt;" in text and "<script>" not in text and "*_~" in text
    assert slack.headers["x-wardtui-signature"] == \
        "sha256=" + hmac.new(SECRET.encode(), slack.body, hashlib.sha256).hexdigest()
    card = json.loads(teams.body)["attachments"][0]["content"]
    assert card["type"] == "AdaptiveCard"
    assert card["body"][0]["text"] == "north-b002-rtr DOWN, 2 devices unreachable behind it"
    assert HOSTILE not in teams.body.decode()


async def test_https_with_the_ca_file_it_is_given(tmp_path: Path) -> None:
    key, cert = self_signed(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    with HttpReceiver(tls=context) as https:
        await deliver(WebhookConfig("hook", 1, f"{https.url}/h", ca_file=str(cert)), outage(1))
        error = await refused(WebhookConfig("hook", 1, f"{https.url}/h"), outage(1))  # system CAs only
        assert len(https.requests) == 1
    assert error.retryable and "CERTIFICATE_VERIFY_FAILED" in str(error)
