"""``wardtui poll --jsonl`` with SNMP, end to end: a real snmpd in a network namespace of the test's
own, whose interface goes up under it and which restarts; the events come out as JSON lines.

The namespace holds only its loopback and a veth pair (``wta`` admin-up, its peer ``wtb``
down, so ``wta`` is admin-up and oper-down until the test raises ``wtb``). Both snmpd and
wardtui run inside it: nothing is sent outside it.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.lab.fixtures import require_lab
from tests.lab.snmp_agents import SnmpdAgent, snmpd_missing

pytestmark = pytest.mark.lab
ROOT = Path(__file__).resolve().parents[2]


def sh(*cmd: str) -> None:
    subprocess.run(cmd, check=True, capture_output=True, text=True)


@pytest.fixture
def netns() -> Iterator[str]:
    require_lab()
    if snmpd_missing():
        message = "snmpd unavailable: " + "; ".join(snmpd_missing())
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    name = f"wtsnmp{os.getpid()}"
    sh("ip", "netns", "add", name)
    try:
        sh("ip", "-n", name, "link", "set", "lo", "up")
        sh("ip", "-n", name, "link", "add", "wta", "type", "veth", "peer", "name", "wtb")
        sh("ip", "-n", name, "link", "set", "wta", "up")
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)


class Lines:
    """JSON lines read from a process's stdout on a thread."""

    def __init__(self, stream: Any) -> None:
        self.seen: list[dict[str, Any]] = []
        self._queue: queue.Queue[dict[str, Any]] = queue.Queue()
        threading.Thread(target=self._read, args=(stream,), daemon=True).start()

    def _read(self, stream: Any) -> None:
        for line in stream:
            self._queue.put(json.loads(line))

    def wait(self, match: Callable[[dict[str, Any]], bool], timeout: float, what: str) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            assert left > 0, f"no {what} within {timeout} s; types seen: " \
                             f"{sorted({r['type'] for r in self.seen})}"
            try:
                record = self._queue.get(timeout=left)
            except queue.Empty:
                continue
            self.seen.append(record)
            if match(record):
                return record


def test_interface_change_and_reboot_reach_the_jsonl_stream(netns: str, tmp_path: Path) -> None:
    with SnmpdAgent(netns=netns) as agent:
        credentials = agent.write_credentials(tmp_path / "credentials.yaml")
        inventory = tmp_path / "inv.csv"
        inventory.write_text("name,address,branch,region,type,snmp_credential,snmp_port\n"
                             f"r1,127.0.0.1,b1,north,router,lab-sha-aes,{agent.port}\n")
        db = tmp_path / "h.db"
        proc = subprocess.Popen(
            ["ip", "netns", "exec", netns, sys.executable, "-m", "wardtui", "--db", f"sqlite:///{db}",
             "poll", "--inventory", str(inventory), "--credentials", str(credentials),
             "--interval", "1", "--snmp-interval", "1", "--snmp-timeout", "0.5", "--jsonl", "--checks"],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            assert proc.stdout is not None
            lines = Lines(proc.stdout)
            first = lines.wait(lambda r: r["type"] == "snmp", 20, "SNMP poll")
            wta = next(i for i in first["interfaces"] if i["name"] == "wta")
            assert (wta["admin"], wta["oper"]) == ("up", "down")
            sh("ip", "-n", netns, "link", "set", "wtb", "up")  # wta's carrier comes up
            # (wtb, raised by the operator, is admin-up now: its down -> up is reported too.)
            change = lines.wait(lambda r: r["type"] == "interface" and r["ifname"] == "wta", 20,
                                "interface event")
            assert (change["device"], change["ifname"], change["from"], change["to"]) == \
                ("r1", "wta", "down", "up")
            agent.restart()
            reboot = lines.wait(lambda r: r["type"] == "reboot", 15, "reboot event")
            assert reboot["device"] == "r1" and reboot["uptime_s"] < reboot["previous_uptime_s"]
            gauges = lines.wait(lambda r: r["type"] == "gauges" and r.get("snmp_agents") == 1, 5, "gauges")
            assert gauges["snmp_skipped"] == 0 and gauges["snmp_lag_p99_ms"] < 500
        finally:
            proc.send_signal(signal.SIGTERM)
            _, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, err
        secrets = [agent.v2c_community, *(v for u in agent.v3_users.values()
                                          for k, v in u.items() if k.endswith("_key"))]
        # What an operator's script reads afterwards, from the store.
        shown = subprocess.run(
            [sys.executable, "-m", "wardtui", "snmp", "r1", "--json", "--db", f"sqlite:///{db}"],
            cwd=ROOT, capture_output=True, text=True, timeout=60)
        assert shown.returncode == 0, shown.stderr
        latest = json.loads(shown.stdout)
        assert latest["device"] == "r1" and latest["system"]["object_id"] == "1.3.6.1.4.1.8072.3.2.10"
        assert latest["system"]["uptime_s"] < 60  # the restarted agent's
        interfaces = {i["name"]: i for i in latest["interfaces"]}
        assert (interfaces["wta"]["admin"], interfaces["wta"]["oper"]) == ("up", "up")
        assert interfaces["lo"]["speed_bps"] == 10_000_000
        text = json.dumps(lines.seen) + err + shown.stdout
        assert not any(s in text for s in secrets)
