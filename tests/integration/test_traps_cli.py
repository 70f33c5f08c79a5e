"""``--traps HOST:PORT`` through the command line: ``wardtui poll --jsonl`` prints a trap sent by
net-snmp's ``snmptrap`` (and its interface event) within the run, its gauges count it, and a
port that cannot be bound stops the start with the reason."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.integration.cli_run import REPO, run
from tests.integration.test_snmp_traps import link_down
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
                             "--traps", f"127.0.0.1:{port}", "--jsonl", "--duration", "60"],
                            cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines: list[tuple[float, str]] = []

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append((time.monotonic(), line))

    reader = threading.Thread(target=read)
    reader.start()
    try:
        deadline = time.monotonic() + 15
        while not lines and time.monotonic() < deadline:  # the first gauges: the engine runs
            time.sleep(0.01)
        assert lines, proc.stderr.read() if proc.stderr else ""
        subprocess.run(["snmptrap", "-v", "2c", "-c", "tr4p-secret", f"127.0.0.1:{port}", "",
                        "1.3.6.1.6.3.1.1.5.3", "1.3.6.1.2.1.2.2.1.1.7", "i", "7",
                        "1.3.6.1.2.1.31.1.1.1.1.7", "s", "Gi0/7\x1b[2J"], check=True, timeout=10)
        # Trap -> its line on stdout, 20 times (ifIndex 100..119), 100 ms apart.
        sent: dict[int, float] = {}
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            for i in range(100, 120):
                sent[i] = time.monotonic()
                s.sendto(link_down(b"tr4p-secret", i), ("127.0.0.1", port))
                time.sleep(0.1)
        deadline = time.monotonic() + 30
        while sum('"type": "trap"' in line for _, line in lines) < 21 and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(1.5)  # a gauges line after the last trap
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
        reader.join()
    assert proc.returncode == 0, err
    out = "".join(line for _, line in lines)
    records = [(at, json.loads(line)) for at, line in lines]
    traps = [r for _, r in records if r["type"] == "trap"]
    links = [r for _, r in records if r["type"] == "interface"]
    assert len(traps) == 21 and traps[0]["kind"] == "linkDown" and traps[0]["ifindex"] == 7
    assert traps[0]["ifname"] == "Gi0/7\\x1b[2J" and "\x1b" not in out
    assert links[0] == {**links[0], "device": "edge", "ifindex": 7, "to": "down", "source": "trap"}
    last = [r for _, r in records if r["type"] == "gauges"][-1]
    assert last["traps_accepted"] == 21 and last["traps_checks"] >= 1
    # The scheduled poll of the silent agent may still wait for its answer: then none is added;
    # and one check and one poll a second at most (min_gap).
    assert last["traps_checks"] + last["traps_polls"] + last["traps_coalesced"] == 2 * 21
    latencies = sorted((at - sent[r["ifindex"]]) * 1000 for at, r in records
                       if r["type"] == "trap" and r["ifindex"] in sent)
    assert len(latencies) == 20
    print(f"trap -> its --jsonl line: median {latencies[10]:.1f} ms, max {latencies[-1]:.1f} ms")
    # The target is p99 <= 100 ms; 20 samples on a machine the whole suite loads: p90.
    assert latencies[17] <= 100.0


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
    short = run(("poll", "--inventory", "net.csv", "--traps", "127.0.0.1:1162", "--traps-engine-id", "0x8000",
                 "--jsonl"), cwd=tmp_path)[0]
    assert short.returncode == 2 and "an engine ID is 5 to 32 bytes in hex" in short.stderr
