"""A real loopback HTTP server that records what it is sent, and a small receiver that POSTs to it.

The real webhook receiver is poller/notify/receivers.py (another part of issue 15); these tests
of the outbox need only something that implements ``model.Receiver`` over a real socket: it
POSTs ``Notification.to_dict()`` with an ``Idempotency-Key`` header and maps the answer as a
webhook would (2xx sent; 408, 429 and 5xx retryable, with Retry-After; other 4xx not; no
connection: retryable). The server answers what the test says (``status``, ``retry_after``,
``body``), records every request (key, status answered), and can be stopped and started again
on the same port (a receiver that is down).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from poller.notify.model import AlertItem, DeliveryError, Notification, Status
from tests.ports import free_port

T0 = datetime(2026, 12, 6, 8, 0, tzinfo=UTC)


@dataclass(frozen=True)
class Request:
    key: str
    body: dict[str, object]
    answered: int


class RecordingServer:
    """``ThreadingHTTPServer`` on 127.0.0.1 and a free port, in a thread."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.requests: list[Request] = []
        self.status = 200
        self.retry_after: str | None = None
        self.body = b""
        self.on_request: Callable[[Request], None] | None = None
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def delivered(self) -> list[str]:
        """Keys of the requests answered 2xx, in arrival order."""
        with self._lock:
            return [r.key for r in self.requests if 200 <= r.answered < 300]

    def start(self) -> RecordingServer:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = json.loads(self.rfile.read(length) or b"{}")
                with outer._lock:
                    status, retry_after, text = outer.status, outer.retry_after, outer.body
                    request = Request(self.headers.get("Idempotency-Key", ""), body, status)
                    outer.requests.append(request)
                if outer.on_request is not None:
                    outer.on_request(request)
                self.send_response(status)
                if retry_after is not None:
                    self.send_header("Retry-After", retry_after)
                self.send_header("Content-Length", str(len(text)))
                self.end_headers()
                self.wfile.write(text)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


class HttpReceiver:
    """A webhook-like ``Receiver`` for tests (see the module's docstring). ``kill_after`` /
    ``kill_before``: SIGKILL this process once the server answered 2xx for that key (before the
    outbox can commit it as sent), or right before sending it."""

    kind = "webhook"

    def __init__(self, name: str, url: str, *, timeout: float = 5.0, kill_after: str | None = None,
                 kill_before: str | None = None) -> None:
        self.name = name
        host_port = url.split("//", 1)[1].split("/", 1)[0]
        self.host, port = host_port.rsplit(":", 1)
        self.port = int(port)
        self.path = "/" + url.split("//", 1)[1].split("/", 1)[1]
        self.timeout = timeout
        self.kill_after = kill_after
        self.kill_before = kill_before
        self.sent: list[str] = []

    async def send(self, notification: Notification) -> None:
        if notification.key == self.kill_before:
            os.kill(os.getpid(), signal.SIGKILL)
        body = json.dumps(notification.to_dict()).encode()
        head = (f"POST {self.path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
                f"Content-Type: application/json\r\nIdempotency-Key: {notification.key}\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode()
        try:
            async with asyncio.timeout(self.timeout):
                reader, writer = await asyncio.open_connection(self.host, self.port)
                try:
                    writer.write(head + body)
                    await writer.drain()
                    answer = await reader.read()
                finally:
                    writer.close()
        except (OSError, TimeoutError) as exc:
            raise DeliveryError(f"cannot reach {self.host}:{self.port}: {exc}") from exc
        status, headers, text = _parse(answer)
        if 200 <= status < 300:
            if notification.key == self.kill_after:
                os.kill(os.getpid(), signal.SIGKILL)
            self.sent.append(notification.key)
            return
        retry_after = float(headers["retry-after"]) if "retry-after" in headers else None
        retryable = status in (408, 429) or status >= 500
        raise DeliveryError(f"HTTP {status}: {text}", retryable=retryable, retry_after=retry_after)

    async def aclose(self) -> None:
        pass


def _parse(answer: bytes) -> tuple[int, dict[str, str], str]:
    head, _, body = answer.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1]) if lines and len(lines[0].split()) > 1 else 0
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    return status, headers, body.decode("utf-8", "replace")


def note(i: int, *, receiver: str = "hook", route: str = "noc", branch: str = "b1",
         status: Status = "firing", devices: tuple[str, ...] = ("r1",), resolved: tuple[str, ...] = (),
         created: datetime | None = None, site: str = "s") -> Notification:
    """A notification numbered ``i`` (its key says so), created ``i`` seconds after T0."""
    at = created or T0 + timedelta(seconds=i)

    def item(device: str, state: str) -> AlertItem:
        return AlertItem(device=device, address="10.0.0.1", state=state,  # type: ignore[arg-type]
                         since=T0 - timedelta(minutes=5), branch=branch,
                         ended=at if state == "up" else None)

    return Notification(key=f"{site}:{route}:{receiver}:{i:04d}", site=site, route=route, receiver=receiver,
                        status=status, title=f"message {i}", group=(("branch", branch),),
                        firing=tuple(item(d, "down") for d in devices),
                        resolved=tuple(item(d, "up") for d in resolved), created=at)
