"""``wardtui serve --notify FILE`` as a real process in the network-namespace lab: a branch's
router and the devices behind it fail together and come back; the command receiver (a script
that appends what it is given to a file) must receive exactly one message naming the router
and its unreachable devices, then exactly one recovery; the outbox in the history database
holds both as sent. A broken notify file stops the start with every ``file:line``, exit 2.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.integration.notify_files import notify_file, received
from tests.integration.test_cli_errors import REPO
from tests.lab.netns import Lab
from tests.waiting import wait_until

CHILDREN = 5


@pytest.mark.lab
def test_a_branch_that_fails_and_returns_gives_one_message_and_one_recovery(tmp_path: Path, lab: Lab) -> None:
    hosts = lab.healthy(CHILDREN + 1, start=200)
    router, children = hosts[0], hosts[1:]
    inventory = tmp_path / "net.csv"
    inventory.write_text("name,address,branch,region,type,parent\n"
                         f"b7-rtr,{router},b7,north,router,\n"
                         + "".join(f"b7-atm{i},{a},b7,north,atm,b7-rtr\n" for i, a in enumerate(children)))
    out = tmp_path / "received.jsonl"
    db = tmp_path / "h.db"
    log_path = tmp_path / "serve.log"
    env = {**os.environ, "PYTHONPATH": str(REPO), "XDG_DATA_HOME": str(tmp_path / "xdg")}
    env.pop("WARDTUI_REDIS", None)
    notify = notify_file(tmp_path, out, group_wait="2s", group_interval="3s")
    with log_path.open("wb") as log:
        service = lab.popen([sys.executable, "-m", "wardtui", "serve", "--inventory", str(inventory),
                             "--db", f"sqlite:///{db}", "--interval", "0.5", "--timeout", "0.3",
                             "--confirm-spacing", "0.2", "--notify", str(notify)],
                            cwd=REPO, env=env, stderr=log)
    blocked: list[str] = []
    try:
        wait_until(lambda: "notifications: 1 route" in log_path.read_text(), 30, "no notifier started")
        time.sleep(2.0)  # every device UP (UNKNOWN -> UP is not a problem: nothing is sent)
        assert received(out) == []
        for host in [*children, router]:  # the children first: the router's verdict decides theirs
            lab.block(host)
            blocked.append(host)
        firing = wait_until(lambda: received(out), 30, "no message for the failed branch")
        time.sleep(4.0)  # past group_interval: nothing more comes for the same outage
        messages = received(out)
        assert len(messages) == 1, messages
        (message,) = messages
        assert message["status"] == "firing" and message["group"] == {"branch": "b7"}
        assert message["title"] == f"b7-rtr DOWN, {CHILDREN} devices unreachable behind it", message["title"]
        states = {a["device"]: a["state"] for a in message["firing"]}
        assert states == {"b7-rtr": "down", **{f"b7-atm{i}": "unreachable" for i in range(CHILDREN)}}
        for host in blocked:
            lab.unblock(host)
        blocked.clear()
        wait_until(lambda: len(received(out)) >= 2, 30, "no recovery")
        time.sleep(4.0)
        messages = received(out)
        assert len(messages) == 2, messages
        recovery = messages[1]
        assert recovery["status"] == "resolved" and recovery["firing"] == []
        assert {a["device"] for a in recovery["resolved"]} == set(states)
        assert recovery["key"] != firing[0]["key"]
    finally:
        for host in blocked:
            lab.unblock(host)
        service.send_signal(signal.SIGTERM)
        code = service.wait(30)
    assert code == 0, log_path.read_text()
    assert "Traceback" not in log_path.read_text()
    with sqlite3.connect(db) as conn:
        rows = conn.execute("select status, count(*) from notification_outbox group by status").fetchall()
    assert dict(rows) == {"sent": 2}


def test_a_broken_notify_file_stops_the_start_with_every_problem_exit_2(tmp_path: Path) -> None:
    (tmp_path / "net.csv").write_text("name,address,branch,region,type\nr1,127.0.0.1,b1,north,router\n")
    (tmp_path / "notify.yaml").write_text("routes:\n  - name: a\n    receivers: [nobody]\n"
                                          "    group_wait: -1s\nreceivers: []\n")
    proc = subprocess.run([sys.executable, "-m", "wardtui", "serve", "--inventory", "net.csv", "--db",
                           f"sqlite:///{tmp_path / 'h.db'}", "--notify", "notify.yaml"], cwd=tmp_path,
                          env={**os.environ, "PYTHONPATH": str(REPO), "XDG_DATA_HOME": str(tmp_path / "x")},
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2, proc.stderr
    assert "notify.yaml:3:" in proc.stderr and "nobody" in proc.stderr, proc.stderr
    assert "notify.yaml:4:" in proc.stderr, proc.stderr
    assert not (tmp_path / "h.db").exists()  # refused before anything was opened
