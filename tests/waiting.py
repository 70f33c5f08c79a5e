"""Waiting in tests that drive other processes: poll a condition until it holds or time is up."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_until(what: Callable[[], T], timeout: float, why: str, pace: float = 0.1) -> T:
    """``what()`` once it is true (returned), asking every ``pace`` seconds; an AssertionError
    saying ``why`` if it is still false after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = what()
        if value:
            return value
        assert time.monotonic() < deadline, why
        time.sleep(pace)
