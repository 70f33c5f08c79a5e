"""Tests marked ``alone`` run with no other test running beside them under pytest-xdist.

Some tests measure time on this machine: a rate (SNMP counters, polls per second), a latency
(the event loop's lag, the time to detect an outage), a deadline met or missed. With other
workers running tests beside them on two cores, what they measure is the other tests' load.
The other workers wait while such a test runs, and it waits for the tests running when it asks.

One lock file per test run (xdist's workers share its basetemp's parent directory): every test
holds it shared, an ``alone`` test holds it exclusively, from the start of its setup (session
fixtures a first test starts included) to the end of its teardown.

``flock`` has no queue: while one worker or another always holds the lock shared, an exclusive
request could wait for ever. A second lock, the turnstile, fixes it: every request passes
through the turnstile (held exclusively, briefly); an exclusive request keeps it until it holds
the main lock, so no new shared holder slips in while it waits for the current ones to finish.
A worker never waits for a lock while holding one the others wait for, except the turnstile
while the main lock's current holders finish their one test each: no deadlock.

Without xdist (one process), nothing is locked.

This keeps the run's other tests away, not other work on the machine: tests/runqueue.py measures
how long a test's thread waited for a CPU, which such a test allows for in its bounds.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def _flock(path: Path, mode: int) -> Iterator[None]:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, mode)
        yield
    finally:
        os.close(fd)  # releases the lock


@contextmanager
def turn(directory: Path, exclusive: bool) -> Iterator[None]:
    """Hold the run's lock (in ``directory``) shared, or exclusively, for the ``with`` body."""
    main = directory / "wardtui-alone.lock"
    with _flock(directory / "wardtui-alone.turnstile", fcntl.LOCK_EX):
        fd = os.open(main, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        except BaseException:
            os.close(fd)
            raise
    try:
        yield
    finally:
        os.close(fd)
