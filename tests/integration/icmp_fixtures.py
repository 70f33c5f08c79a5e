"""The fixtures of the real-ICMP test modules (test_icmp_loopback, test_icmp_callback,
test_icmp_truth), through the integration conftest: each of those modules asks for
``icmp_root`` with ``pytestmark``."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from poller.icmp import IcmpProber


@pytest.fixture
def icmp_root() -> None:
    if os.geteuid() != 0:
        reason = "real ICMP tests need root (raw sockets, SO_RCVBUFFORCE)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason}; CI must run them as root")
        pytest.skip(reason)


@pytest.fixture
def prober() -> Iterator[IcmpProber]:
    p = IcmpProber()
    yield p
    p.close()
