"""How long a thread (or a process) waited for a CPU: the machine's share of a delay a test measures.

A timing test on a loaded machine sees delays that are not the code's: its thread was ready to run
and waited on a CPU's run queue while other processes ran. The ``alone`` marker (tests/alone.py)
keeps this run's other tests away, not the rest of the machine (another test run, a benchmark, a
build). The kernel counts that waiting per thread: ``/proc/<pid>/task/<tid>/schedstat``, second
field, in nanoseconds.

A test adds what its loop's thread waited meanwhile to a latency bound, or takes it off the elapsed
time of a throughput. On a quiet machine it is about 0 and the bound is what it was; what the code
does wrong (CPU it burns, a blocking call, a timer set wrong, a skipped check) is not run-queue
waiting and still fails the bound. Without schedstat (a kernel built without it) every reading is
0: the bounds stay as strict as they were.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path


def _read(path: Path) -> float:
    try:
        return int(path.read_text().split()[1]) / 1e9
    except (OSError, IndexError, ValueError):
        return 0.0  # gone meanwhile, or no schedstat in this kernel


def thread_waited(tid: int | None = None) -> float:
    """Seconds the thread ``tid`` of this process (default: the calling one, e.g. the event
    loop's) has waited on a run queue since it started."""
    tid = threading.get_native_id() if tid is None else tid
    return _read(Path(f"/proc/{os.getpid()}/task/{tid}/schedstat"))


def process_waited(pid: int) -> float:
    """Seconds all threads of process ``pid`` (e.g. a server a test started) have waited on a
    run queue, summed (threads gone are no longer counted: read it while the process runs)."""
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return 0.0
    return sum(_read(task / "schedstat") for task in tasks)


class Waited:
    """Run-queue waiting since this object was made: the calling thread's (``loop``), and
    each process given (``of(pid)``), both in seconds."""

    def __init__(self, pids: tuple[int, ...] = ()) -> None:
        self._tid = threading.get_native_id()
        self._loop0 = thread_waited(self._tid)
        self._pids0 = {pid: process_waited(pid) for pid in pids}

    def loop(self) -> float:
        """Seconds the thread that made this object waited for a CPU since then."""
        return thread_waited(self._tid) - self._loop0

    def of(self, pid: int) -> float:
        """Seconds process ``pid`` (given at construction) waited for a CPU since then."""
        return process_waited(pid) - self._pids0[pid]


async def wait_until(condition: Callable[[], object], timeout: float, waited: Waited | None = None,
                     pace: float = 0.01) -> None:
    """Poll ``condition`` on the running loop until it holds; an AssertionError once ``timeout``
    seconds passed beyond what this thread waited for a CPU meanwhile (``waited``: since its
    making; default, since this call)."""
    waited = Waited() if waited is None else waited
    loop = asyncio.get_running_loop()
    start, before, cpu = loop.time(), waited.loop(), time.thread_time()
    while not condition():
        wall, wait = loop.time() - start, waited.loop() - before
        if wall - wait > timeout:
            raise AssertionError(
                f"condition not reached in {timeout} s of the loop's own time ({wall:.1f} s, {wait:.1f} s "
                f"of it waiting for a CPU, {time.thread_time() - cpu:.1f} s on one)")
        await asyncio.sleep(pace)
