"""``--traps HOST:PORT`` through the command line: ``wardtui poll --jsonl`` prints a trap sent by
net-snmp's ``snmptrap`` (and its interface event) within the run, its gauges count it, and a
port that cannot be bound stops the start with the reason."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.integration.cli_run import REPO, run
from tests.ports import free_port


def _need(root: bool = False) -> None:
    missing = [] if shutil.which("snmptrap") else ["snmptrap (package snmp)"]
    if root and os.geteuid() != 0:
        missing.append("root (raw ICMP)")
    if missing:
        reason = "needs " + ", ".join(missing)
        (pytest.fail if os.environ.get("CI", "").lower() == "true" else pytest.skip)(reason)


def _files(tmp_path: Path, agent_port: int) -> None:
    (tmp_path / "net.csv").write_text(
        "name,address,branch,region,type,snmp_credential,snmp_port\n"
        f"edge,127.0.0.1,b,r,router,lab,{agent_port}\n", encoding="utf-8")
    credentials = tmp_path / "credentials.yaml"
    credentials.write_text("lab:\n  version: 2c\n  community: tr4p-secret\n", encoding="utf-8")
    credentials.chmod(0o600)


def test_poll_jsonl_prints_a_trap_and_its_interface_event(tmp_path: Path) -> None:
    _need(root=True)
    port, agent_port = free_port(), free_port()  # nothing answers SNMP there: polls time out
    _files(tmp_path, agent_port)
    env = {**os.environ, "PYTHONPATH": str(REPO), "XDG_DATA_HOME": str(tmp_path / "xdg")}
    proc = subprocess.Popen([sys.executable, "-m", "wardtui", "poll", "--inventory", "net.csv",
                             "--credentials", "credentials.yaml", "--db", f"sqlite:///{tmp_path}/h.db",
                             "--traps", f"127.0.0.1:{port}", "--jsonl", "--duration", "4"],
                            cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()  # the first line comes once the engine runs (gauges at 1 s)
        assert first, proc.stderr.read() if proc.stderr else ""
        sent = time.monotonic()
        subprocess.run(["snmptrap", "-v", "2c", "-c", "tr4p-secret", f"127.0.0.1:{port}", "",
                        "1.3.6.1.6.3.1.1.5.3", "1.3.6.1.2.1.2.2.1.1.7", "i", "7",
                        "1.3.6.1.2.1.31.1.1.1.1.7", "s", "Gi0/7\x1b[2J"], check=True, timeout=10)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    records = [json.loads(line) for line in (first + out).splitlines()]
    traps = [r for r in records if r["type"] == "trap"]
    links = [r for r in records if r["type"] == "interface"]
    assert len(traps) == 1 and traps[0]["kind"] == "linkDown" and traps[0]["ifindex"] == 7
    assert traps[0]["ifname"] == "Gi0/7\\x1b[2J" and "\x1b" not in out
    assert links == [{**links[0], "device": "edge", "ifindex": 7, "to": "down", "source": "trap"}]
    last = [r for r in records if r["type"] == "gauges"][-1]
    assert last["traps_accepted"] == 1 and last["traps_checks"] == 1
    # The scheduled poll of the silent agent may still wait for its answer: then none is added.
    assert last["traps_polls"] + last["traps_coalesced"] == 1
    print(f"trap to exit: {time.monotonic() - sent:.1f} s")


def test_a_port_taken_stops_the_start_with_the_reason(tmp_path: Path) -> None:
    _files(tmp_path, 161)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", 0))
        port = taken.getsockname()[1]
        proc, bad = run(("poll", "--inventory", "net.csv", "--credentials", "credentials.yaml",
                         "--db", f"sqlite:///{tmp_path}/h.db", "--traps", f"127.0.0.1:{port}", "--jsonl",
                         "--duration", "1"),
                        ("poll", "--inventory", "net.csv", "--traps", "localhost:162", "--jsonl"),
                        cwd=tmp_path)
    assert proc.returncode == 2 and f"--traps 127.0.0.1:{port}" in proc.stderr and "in use" in proc.stderr
    assert bad.returncode == 2 and "use IP:PORT" in bad.stderr
