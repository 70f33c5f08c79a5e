"""Running the engine without a screen for `wardtui poll` (wardtui/cli/poll.py parses its options):
one JSON object per line on stdout, a summary per device at the end."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from typing import TYPE_CHECKING, TextIO

from poller.bus import Subscription
from poller.events import (
    CheckResult,
    SnmpFailure,
    SnmpPoll,
)
from poller.jsonl import event_record, summary_record
from poller.live import DEFAULT_SITE
from wardtui.messages import error
from wardtui.runtime import Runtime

if TYPE_CHECKING:
    from poller.notify.config import NotifyConfig

# SIGHUP too: `wardtui poll` over an SSH session that drops must still flush its history.
_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


async def _print_events(sub: Subscription, out: TextIO, checks: bool) -> None:
    dumps = json.dumps
    while True:
        batch = await sub.get_batch(5000)
        if not batch:
            return
        lines = []
        for event in batch:
            if isinstance(event, CheckResult | SnmpPoll | SnmpFailure) and not checks:
                continue
            record = event_record(event)
            if record is not None:
                lines.append(dumps(record))
        if lines:
            out.write("\n".join(lines) + "\n")
            out.flush()


async def run_headless(runtime: Runtime, duration: float | None, out: TextIO = sys.stdout,
                       checks: bool = False, notify: NotifyConfig | None = None,
                       site: str = DEFAULT_SITE) -> int:
    """Poll until the duration ends, SIGINT/SIGTERM/SIGHUP arrives or the reader of ``out`` goes
    away (``| head``); then flush the history and print the summaries. With ``notify`` (``--notify
    FILE``, read and checked) the run notifies as ``wardtui serve --notify`` does
    (wardtui/notifying.py), from the site ``site``.

    Returns 0, or 1 when history rows could not be written.
    """
    engine = runtime.engine
    # Without --checks the printer never sees samples; with it, they are printed in batches
    # (gauges wake the printer every second, so none waits longer than that).
    sub = engine.bus.subscribe("jsonl", maxsize=500_000, sample_batch=1000, samples=checks)
    loop = asyncio.get_running_loop()
    for sig in _STOP_SIGNALS:
        loop.add_signal_handler(sig, engine.stop)
    try:
        await runtime.start()
    except BaseException:
        runtime.prober.close()
        raise
    runtime.settle_after_first_round()
    notifications = None
    if notify is not None:
        from wardtui.notifying import NotifyService

        notifications = NotifyService(runtime, notify, site)
        try:
            await notifications.start()
        except BaseException:
            sub.close()
            await runtime.close()
            raise
    printer = asyncio.create_task(_print_events(sub, out, checks))
    # Nobody left to read: stop polling, but still flush the history (finally below).
    printer.add_done_callback(lambda _: engine.stop())
    reader_gone = False
    try:
        await engine.run(duration)
    finally:
        # The handlers stay until the history is flushed: a second Ctrl-C must not cut it short.
        sub.close()
        try:
            await printer
        except BrokenPipeError:
            reader_gone = True
        if notifications is not None:
            await notifications.stop()  # what is left stays in the outbox for the next run
        lost = await runtime.close()
        if not reader_gone:
            try:
                out.write("".join(json.dumps(summary_record(t)) + "\n" for t in engine.trackers.values()))
                out.flush()
            except BrokenPipeError:
                reader_gone = True
        for sig in _STOP_SIGNALS:
            loop.remove_signal_handler(sig)
    if reader_gone:
        _silence_stdout()
    if lost:
        error(f"{lost} history rows could not be written (database unavailable)")
        return 1
    return 0


def _silence_stdout() -> None:
    """After a broken pipe, keep Python's exit-time flush of stdout from raising again."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
