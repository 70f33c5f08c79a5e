"""Process-wide policy: what a wardtui command sets on the interpreter it owns, in one place.

The GIL switch interval, ``gc.freeze()``, the collector's thresholds and its pause at start,
full collections put off until the operator pauses, and the exit watchdog belong to the
process, not to a screen or a store: a test harness or a benchmark that builds a
:class:`~wardtui.app.WardApp` or a :class:`~wardtui.runtime.Runtime` in its own process must
not have them changed behind its back.
So the command's entry point (``wardtui/cli/dashboard.py``, ``wardtui/cli/poll.py``) picks a
:class:`ProcessPolicy` and hands it to the runtime and the app, which only say *when* (the store
has started, the first round is done, the app is leaving); this module says *what*. Nothing else
in ``wardtui/``, ``poller/`` or ``store/`` sets these (tests/unit/test_layering.py checks).

Imports neither textual nor rich: ``wardtui poll`` uses it too.
"""

from __future__ import annotations

import gc
import os
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

SWITCH_INTERVAL = 0.001
"""The dashboard's engine thread waits for the interpreter while the UI renders: hand it over
every 1 ms instead of 5 (lag p99 with 10,000 devices: ~110 ms -> ~40 ms measured)."""
YOUNG_THRESHOLDS = (50_000, 20, 1_000)
"""Young collections less often once the first round is done: most objects here die by
reference count anyway."""
EXIT_GRACE = 10.0
"""Seconds Textual's shutdown gets, after the history is flushed, before the process ends anyway."""


def pause_collection() -> None:
    """The collector off while the command's modules load (wardtui/start.py): loading them makes
    some 200,000 objects that live as long as the process, and passes over them while they load
    find nothing to free (~15 % of the start). :func:`resume_collection` turns it on again."""
    gc.disable()


def resume_collection() -> None:
    """The collector on again after :func:`pause_collection` (a no-op when it is on)."""
    gc.enable()


def hand_over_often() -> None:
    """Set the GIL switch interval to :data:`SWITCH_INTERVAL`."""
    sys.setswitchinterval(SWITCH_INTERVAL)


def freeze_survivors() -> None:
    """``gc.freeze()``: what exists now lives for the run (inventory, trackers, rows made so
    far); move it out of the collector's way, so full collections stay short at 100,000 devices."""
    gc.freeze()


def collect_young_less_often() -> None:
    """Set the collector's thresholds to :data:`YOUNG_THRESHOLDS`."""
    gc.set_threshold(*YOUNG_THRESHOLDS)


def exit_watchdog(grace: float, code: int) -> threading.Timer:
    """End the process with ``code`` in ``grace`` seconds unless it has ended by then (a daemon
    timer: a normal exit does not wait for it). Seen in the dashboard: after SIGTERM/SIGHUP,
    Textual's output thread and its shutdown can wait on each other for ever (py-spy: both in
    Queue waits), leaving a process with no terminal behind each dropped SSH session."""
    watchdog = threading.Timer(grace, os._exit, args=(code,))
    watchdog.daemon = True
    watchdog.start()
    return watchdog


class IdleCollections:
    """Full collections off the keyboard's path. With 10,000 devices one held the interpreter
    ~300 ms every few seconds; after a freeze, at 20,000 devices and 180 transitions/s, they
    still ran every ~3 s and took 50-350 ms, and they were the slow key presses. The app asks
    :meth:`collect_if_idle` every :attr:`EVERY` seconds with the time of the last key or click."""

    IDLE_FOR = 3.0  # seconds without a key or click before a full collection may run
    EVERY = 30.0  # ... checked this often
    AT_LATEST = 300.0  # ... and run after this long even if the operator never stops typing

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.last_full = clock()

    def collect_if_idle(self, last_input: float) -> bool:
        """One full collection if the operator has left the keyboard alone since ``last_input``
        (a ``clock()`` time) for :attr:`IDLE_FOR`, or it has been put off for :attr:`AT_LATEST`;
        return whether it ran."""
        now = self.clock()
        idle = now - last_input >= self.IDLE_FOR
        if not idle and now - self.last_full < self.AT_LATEST:
            return False
        gc.collect()
        self.last_full = self.clock()
        return True


@dataclass(frozen=True, slots=True)
class ProcessPolicy:
    """What one command sets on its process, and when. The runtime and the app call the hooks;
    a hook whose setting is off does nothing (:data:`GUEST` sets nothing at all)."""

    switch_interval: bool = False  # enter(): hand_over_often()
    freeze_at_store_start: bool = False  # store_started(): freeze_survivors()
    settle_after_first_round: bool = False  # first_round_done(): freeze, thresholds
    idle_collections: bool = False  # first_round_done(): ... and IdleCollections, for a screen to drive
    exit_grace: float | None = None  # leaving(code): exit_watchdog(exit_grace, code)

    def enter(self) -> None:
        """At the command's start, before any thread is started."""
        if self.switch_interval:
            hand_over_often()

    def store_started(self) -> None:
        """The history store has opened and its open outages are read (Runtime.start)."""
        if self.freeze_at_store_start:
            freeze_survivors()

    def first_round_done(self) -> IdleCollections | None:
        """Every device has been checked once: its state now lives as long as the process.
        Returns the idle collections the caller (a screen) must drive, or None."""
        if not self.settle_after_first_round:
            return None
        freeze_survivors()
        collect_young_less_often()
        return IdleCollections() if self.idle_collections else None

    def leaving(self, code: int) -> None:
        """The app is about to exit with ``code``, its history flushed."""
        if self.exit_grace is not None:
            exit_watchdog(self.exit_grace, code)


DASHBOARD = ProcessPolicy(switch_interval=True, freeze_at_store_start=True, settle_after_first_round=True,
                          idle_collections=True, exit_grace=EXIT_GRACE)
"""``wardtui`` (the dashboard): the whole process is wardtui's."""
POLL = ProcessPolicy(freeze_at_store_start=True, settle_after_first_round=True)
"""``wardtui poll`` and ``wardtui serve``: one loop, no screen, no keyboard; the freeze once the
store has started, and after the first round (:meth:`Runtime.settle_after_first_round
<wardtui.runtime.Runtime.settle_after_first_round>`) the freeze again and young collections
less often. No full collection is put off: with no operator to wait for, the collector's own
threshold runs them. Measured at 100,000 devices (10,000 checks/s, SQLite) without it: 60-65
full collections in 90 s, 17-24 s of the loop's time, up to 0.3-0.85 s each; the loop fell
behind, the history writer's queue reached its bound and samples were dropped."""
GUEST = ProcessPolicy()
"""A process wardtui does not own (a test harness, a benchmark): nothing is set."""
