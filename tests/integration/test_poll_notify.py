"""``wardtui poll --notify``: a poller without a screen notifies as ``wardtui serve --notify`` does
(one notifier per site: the database's lease makes this poller the only one). Real parts: the
headless run on a SQLite history, a command receiver writing what it is given to a file, the
CLI's errors as a subprocess; the network is a scripted prober."""

from __future__ import annotations

import asyncio
import io
import json
from pathlib import Path

from poller.inventory import Device
from poller.notify.config import load_notify
from tests.fakes import FakeProber
from tests.integration.cli_run import run
from tests.integration.notify_files import notify_file, received
from tests.integration.test_serve_maintenance import wait_for
from wardtui.headless import run_headless
from wardtui.runtime import Options, Runtime


async def test_poll_notifies_a_failure_and_its_recovery_and_keeps_its_stdout_for_json(tmp_path: Path) -> None:
    devices = [Device("b1-rtr", "127.6.2.1", "b1", "north", "router"),
               Device("b1-atm", "127.6.2.2", "b1", "north", "atm", parents=("b1-rtr",))]
    prober = FakeProber()
    prober.down = {"127.6.2.1", "127.6.2.2"}
    out = tmp_path / "received.jsonl"
    config = load_notify(notify_file(tmp_path, out, group_interval="0.5s"), None)
    runtime = Runtime(Options(db=f"sqlite:///{tmp_path / 'h.db'}", interval=0.2, confirm_spacing=0.05,
                              spool=tmp_path / "spool"), prober=prober, devices=devices)
    stdout = io.StringIO()
    task = asyncio.create_task(run_headless(runtime, None, stdout, notify=config, site="branch-test"))
    try:
        [firing] = await wait_for(lambda: [m for m in received(out) if m["status"] == "firing"], 20,
                                  "the router's failure was not notified")
        assert firing["site"] == "branch-test"
        # one message: the router, and its ATM unreachable behind it
        assert [(i["device"], i["state"]) for i in firing["firing"]] == [("b1-rtr", "down"),
                                                                         ("b1-atm", "unreachable")]
        prober.down = set()
        await wait_for(lambda: [m for m in received(out) if m["status"] == "resolved"], 20,
                       "no recovery was notified")
    finally:
        runtime.engine.stop()
        code = await asyncio.wait_for(task, 30)
    assert code == 0
    lines = [json.loads(line) for line in stdout.getvalue().splitlines()]
    assert "transition" in {line.get("type") for line in lines}  # stdout stays JSON lines
    assert len([m for m in received(out) if m["status"] == "firing"]) == 1


def test_poll_refuses_a_broken_notify_file_and_a_site_without_it(tmp_path: Path) -> None:
    broken = tmp_path / "notify.yaml"
    broken.write_text("routes:\n  - receivers: [nowhere]\n")
    inventory = tmp_path / "net.csv"
    inventory.write_text("name,address\nr1,127.0.0.1\n")
    [refused] = run(("poll", "--inventory", str(inventory), "--jsonl", "--duration", "1",
                     "--notify", str(broken), "--db", f"sqlite:///{tmp_path / 'h.db'}"), cwd=tmp_path)
    assert refused.returncode == 2 and "notify.yaml:" in refused.stderr, refused.stderr
    [alone] = run(("poll", "--inventory", str(inventory), "--jsonl", "--duration", "1", "--site", "x",
                   "--db", f"sqlite:///{tmp_path / 'h.db'}"), cwd=tmp_path)
    assert alone.returncode == 2 and "--site goes with --notify" in alone.stderr, alone.stderr
    assert not (tmp_path / "h.db").exists()  # refused before anything was opened
