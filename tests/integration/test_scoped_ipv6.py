"""A zoned IPv6 device (``fe80::2%va`` in the inventory): its ICMP replies and its SNMP answers
are matched with the zone (issue 17, item 3), end to end through ``wardtui poll --jsonl``, over
v2c and over our v3 USM (SHA/AES).

Two namespaces of the test's own, joined by a veth pair and nothing else: the monitor's end
``va`` has ``fe80::1``, the agent's end ``vb`` has ``fe80::2``, and no other address (no
automatic link-local ones). snmpd runs in the agent's namespace, listening on
``[fe80::2%vb]`` (and its own loopback, for its readiness probe); wardtui runs in the
monitor's. A reply arrives from ``fe80::2`` with ``va``'s index as its scope id, which is what
the request's zone must be matched with: before, every reply was dropped as unmatched (the
device DOWN, its agent timing out).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.test_snmp_e2e import ROOT, Lines, sh
from tests.lab.fixtures import require_lab
from tests.lab.snmp_agents import SnmpdAgent, snmpd_missing

pytestmark = pytest.mark.lab


class ScopedSnmpd(SnmpdAgent):
    """snmpd answering v2c also on ``[fe80::2%vb]``, to link-local managers only."""

    def config_text(self) -> str:
        return super().config_text() + f"rocommunity6 {self.v2c_community} fe80::/10\n"

    def _command(self) -> list[str]:
        return [*super()._command(), f"udp6:[fe80::2%vb]:{self.port}"]


@pytest.fixture
def link() -> Iterator[tuple[str, str]]:
    """(monitor namespace, agent namespace), joined by va (fe80::1) <-> vb (fe80::2)."""
    require_lab()
    if snmpd_missing():
        message = "snmpd unavailable: " + "; ".join(snmpd_missing())
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    monitor, agent = f"wtz{os.getpid()}m", f"wtz{os.getpid()}a"
    made: list[str] = []
    try:
        for ns in (monitor, agent):
            sh("ip", "netns", "add", ns)
            made.append(ns)
            sh("ip", "-n", ns, "link", "set", "lo", "up")
        sh("ip", "-n", monitor, "link", "add", "va", "type", "veth", "peer", "name", "vb", "netns", agent)
        for ns, dev, address in ((monitor, "va", "fe80::1/64"), (agent, "vb", "fe80::2/64")):
            sh("ip", "-n", ns, "link", "set", dev, "addrgenmode", "none")  # fe80::1 and ::2 only
            sh("ip", "-n", ns, "addr", "add", address, "dev", dev, "nodad")
            sh("ip", "-n", ns, "link", "set", dev, "up")
        yield monitor, agent
    finally:
        for ns in made:
            subprocess.run(["ip", "netns", "del", ns], check=False)


@pytest.mark.parametrize("credential", ["lab-v2c", "lab-sha-aes"])  # v2c's codec, and our v3 USM's
def test_a_zoned_device_is_up_and_its_agent_answers(link: tuple[str, str], tmp_path: Path,
                                                     credential: str) -> None:
    monitor, agent_ns = link
    with ScopedSnmpd(netns=agent_ns) as agent:
        credentials = agent.write_credentials(tmp_path / "credentials.yaml")
        inventory = tmp_path / "inv.csv"
        inventory.write_text("name,address,branch,region,type,snmp_credential,snmp_port\n"
                             f"peer,fe80::2%va,b1,north,router,{credential},{agent.port}\n")
        proc = subprocess.Popen(
            ["ip", "netns", "exec", monitor, sys.executable, "-m", "wardtui",
             "--db", f"sqlite:///{tmp_path / 'h.db'}", "poll", "--inventory", str(inventory),
             "--credentials", str(credentials), "--interval", "0.5", "--timeout", "0.5",
             "--snmp-interval", "1", "--snmp-timeout", "0.5", "--jsonl", "--checks"],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            assert proc.stdout is not None
            lines = Lines(proc.stdout)
            check = lines.wait(lambda r: r["type"] == "check", 20, "check")
            assert (check["device"], check["address"], check["state"]) == ("peer", "fe80::2%va", "up")
            assert check["rtt_ms"] is not None
            poll = lines.wait(lambda r: r["type"] == "snmp", 20, "SNMP poll")
            assert poll["device"] == "peer"
            assert {i["name"] for i in poll["interfaces"]} == {"lo", "vb"}  # the agent's side
            gauges = lines.wait(lambda r: r["type"] == "gauges" and r.get("snmp_agents") == 1, 10, "gauges")
            # The first request may time out while the link's neighbour entry is made (seen with
            # the namespaces just built and the suite beside it); once the agent has answered,
            # every request is matched: no timeout over two more polls.
            for _ in range(2):
                lines.wait(lambda r: r["type"] == "snmp", 20, "another SNMP poll")
            later = lines.wait(lambda r: r["type"] == "gauges", 10, "gauges")
            assert later["snmp_timeouts"] == gauges["snmp_timeouts"], (gauges, later)
        finally:
            proc.send_signal(signal.SIGTERM)
            _, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, err
        assert not any(r["type"] in ("snmp_failed", "transition") and r.get("to") == "down"
                       for r in lines.seen), json.dumps(lines.seen)[:2000]
