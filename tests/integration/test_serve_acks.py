"""``wardtui serve --notify`` with ``wardtui ack``: the notify service reads the acknowledgements
every few seconds (here 0.3 s) with the maintenance windows; a router acknowledged with the CLI
gets no more repeats, and its recovery is still sent, naming who acknowledged it and the note.
Real parts: the serve loop on a SQLite history, a command receiver (a Python script appending
what it is given to a file), the CLI as a subprocess; the network is a scripted prober."""

from __future__ import annotations

import asyncio
import os
import pwd
import time
from pathlib import Path
from typing import Any

import pytest

from poller.inventory import Device
from poller.notify.config import load_notify
from tests.fakes import FakeProber
from tests.integration.cli_run import run
from tests.integration.notify_files import notify_file, received
from tests.integration.test_serve_maintenance import wait_for
from wardtui.notifying import NotifyService
from wardtui.runtime import Options, Runtime
from wardtui.service import ServeOptions, Service, serve

NOTE = "[bold]x[/] \x1b[31mred\x1b[0m\nISP <ticket> *4411*"


def firing(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [m for m in messages if m["status"] == "firing"]


@pytest.mark.alone
async def test_an_acknowledged_router_is_not_repeated_and_its_recovery_says_who(tmp_path: Path) -> None:
    db_path = tmp_path / "h.db"
    devices = [Device("b1-rtr", "127.6.1.1", "b1", "north", "router")]
    prober = FakeProber()
    prober.down = {"127.6.1.1"}
    out = tmp_path / "received.jsonl"
    config = load_notify(notify_file(tmp_path, out, group_interval="0.5s", repeat_interval="1s"), None)
    runtime = Runtime(Options(db=f"sqlite:///{db_path}", interval=0.1, confirm_spacing=0.05, quiet_every=0.3,
                              spool=tmp_path / "spool"), prober=prober, devices=devices)
    services: list[NotifyService] = []

    def make(r: Runtime, o: ServeOptions) -> list[Service]:
        services.append(NotifyService(r, config, o.site))
        return list(services)

    task = asyncio.create_task(serve(runtime, ServeOptions(tmp_path / "net.csv", notify=config), make))
    try:
        await wait_for(lambda: len(firing(received(out))) >= 2, 20, "b1-rtr not notified, then repeated")
        # The history may store the outage a moment after the engine declared it: try until then.
        deadline = time.monotonic() + 10
        while True:
            [acked] = await asyncio.to_thread(run, ("ack", "b1-rtr", "--note", NOTE, "--db",
                                                    f"sqlite:///{db_path}"), cwd=tmp_path)
            if acked.returncode == 0 or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.2)
        assert acked.returncode == 0, acked.stderr
        await wait_for(lambda: services[0].quiet.acks, 5, "the service did not read the acknowledgement")
        await asyncio.sleep(1.2)  # a repeat already handed over may still arrive
        before = len(firing(received(out)))
        await asyncio.sleep(3.5)  # three repeat intervals and more
        assert len(firing(received(out))) == before, received(out)
        prober.down = set()
        recovery = await wait_for(lambda: [m for m in received(out) if m["status"] == "resolved"], 20,
                                  "no recovery for the acknowledged router")
        [item] = recovery[0]["resolved"]
        assert item["device"] == "b1-rtr"
        assert item["acked_by"] == pwd.getpwuid(os.getuid()).pw_name and item["ack_note"] == NOTE
        assert services[0].quiet.acks == ()  # the acknowledgement ended with the outage
    finally:
        runtime.engine.stop()
        code = await asyncio.wait_for(task, 30)
    assert code == 0
