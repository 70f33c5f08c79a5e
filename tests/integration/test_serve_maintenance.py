"""``wardtui serve --notify`` with maintenance windows in the database: the notify service reads
them at start (a device failing in its window is not notified, another is) and again every few
seconds (the window removed with ``wardtui maintenance remove``: its device is notified well
before the grouper's own 5 s recheck, because the notifier was told that the windows changed).
Real parts: the serve loop on a SQLite history, a command receiver (a Python script that appends
what it is given to a file), the CLI as a subprocess; the network is a scripted prober."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from poller.inventory import Device
from poller.notify.config import load_notify
from poller.notify.windows import Window, parse_matcher
from store.database import Database
from store.db import database_url
from store.maintenance_windows import MaintenanceWindows
from tests.fakes import FakeProber
from tests.integration.cli_run import run
from tests.integration.notify_files import notify_file, received
from wardtui.notifying import NotifyService
from wardtui.runtime import Options, Runtime
from wardtui.service import ServeOptions, Service, serve


async def wait_for(what: Any, timeout: float, why: str) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := what()):
        assert time.monotonic() < deadline, why
        await asyncio.sleep(0.05)
    return value


@pytest.mark.alone
async def test_serve_reads_the_windows_at_start_and_when_they_change(tmp_path: Path) -> None:
    db_path = tmp_path / "h.db"
    url = database_url(str(db_path))
    now = datetime.now(UTC)
    db = Database(url)
    await db.open()
    try:
        window = await MaintenanceWindows(db).add(Window(
            0, (parse_matcher("branch=b1"),), starts_at=now - timedelta(minutes=1),
            ends_at=now + timedelta(hours=1), note="router swap", created_by="alice", created_at=now))
    finally:
        await db.close()
    devices = [Device("b1-rtr", "127.6.0.1", "b1", "north", "router"),
               Device("b2-rtr", "127.6.0.2", "b2", "north", "router")]
    prober = FakeProber()
    prober.down = {"127.6.0.1", "127.6.0.2"}  # both fail from the start
    out = tmp_path / "received.jsonl"
    config = load_notify(notify_file(tmp_path, out), None)
    runtime = Runtime(Options(db=f"sqlite:///{db_path}", interval=0.1, confirm_spacing=0.05, quiet_every=0.3,
                              spool=tmp_path / "spool"), prober=prober, devices=devices)
    services: list[NotifyService] = []

    def make(r: Runtime, o: ServeOptions) -> list[Service]:
        services.append(NotifyService(r, config, o.site))
        return list(services)

    task = asyncio.create_task(serve(runtime, ServeOptions(tmp_path / "net.csv", notify=config), make))
    try:
        first = await wait_for(lambda: received(out), 20, "nothing notified for b2-rtr")
        await asyncio.sleep(2.0)  # past group_interval: b1-rtr stays quiet in its window
        assert [m["title"] for m in received(out)] == ["b2-rtr DOWN"], received(out)
        assert first[0]["group"] == {"branch": "b2"}
        assert len(services[0].suppressions.windows) == 1
        notifier = services[0].notifier
        assert notifier is not None
        told: list[float] = []
        tell = notifier.suppressions_changed
        notifier.suppressions_changed = lambda: (told.append(time.monotonic()), tell())[1]  # type: ignore[method-assign]
        removed = await asyncio.to_thread(run, ("maintenance", "remove", str(window.id), "--db",
                                                f"sqlite:///{db_path}"), cwd=tmp_path)
        assert removed[0].returncode == 0, removed[0].stderr
        gone = time.monotonic()
        await wait_for(lambda: len(received(out)) >= 2, 10, "b1-rtr not notified after its window went")
        took = time.monotonic() - gone
        assert took < 4.0, took
        assert len(told) == 1 and told[0] - gone < 1.5  # the 0.3 s re-read told the notifier
        messages = received(out)
        assert [m["title"] for m in messages] == ["b2-rtr DOWN", "b1-rtr DOWN"], messages
        assert services[0].suppressions.windows == ()
    finally:
        runtime.engine.stop()
        code = await asyncio.wait_for(task, 30)
    assert code == 0
    assert runtime.quiet is None  # the reading loop stopped with the runtime
