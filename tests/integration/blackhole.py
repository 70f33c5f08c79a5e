"""A PostgreSQL server that never answers, made safely: a listening socket on a free 127.0.0.1
port that nobody accepts on. The kernel completes the TCP handshake (the backlog), the client's
startup message sits unread, and no reply ever comes, as from a black-holed host."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest


@pytest.fixture
def black_hole() -> Iterator[int]:
    """The port of a loopback listener that never accepts nor answers."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)
        yield listener.getsockname()[1]
