"""The port-162 note of docs/OPERATIONS.md, as written there: wardtui receives on a high port
(``--traps 0.0.0.0:1162``) and nft redirects 162 to it. A v3 trap sent to port 162 arrives with
its source address (what is checked), and a v3 inform is acknowledged: its discovery report and
Response leave from 1162 and conntrack gives them 162 back, which net-snmp's ``snmpinform``
needs to exit 0.

Two namespaces of the test's own joined by a veth pair: the monitor's ``va`` 10.77.0.1/24, the
sender's ``vb`` 10.77.0.2/24; no route out of either.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.test_snmp_e2e import ROOT, Lines, sh
from tests.lab.fixtures import require_lab

pytestmark = pytest.mark.lab

ENGINE = "8000000001c0ffee0002"
V3 = ("-v3", "-u", "noc", "-l", "authPriv", "-a", "SHA", "-A", "redirect-auth", "-x", "AES", "-X",
      "redirect-priv")


@pytest.fixture
def link() -> Iterator[tuple[str, str]]:
    require_lab()
    if subprocess.run(["which", "snmpinform"], capture_output=True).returncode:
        (pytest.fail if os.environ.get("CI", "").lower() == "true" else pytest.skip)("needs snmpinform")
    monitor, sender = f"wtr{os.getpid()}m", f"wtr{os.getpid()}s"
    made: list[str] = []
    try:
        for ns in (monitor, sender):
            sh("ip", "netns", "add", ns)
            made.append(ns)
            sh("ip", "-n", ns, "link", "set", "lo", "up")
        sh("ip", "-n", monitor, "link", "add", "va", "type", "veth", "peer", "name", "vb", "netns", sender)
        for ns, dev, address in ((monitor, "va", "10.77.0.1/24"), (sender, "vb", "10.77.0.2/24")):
            sh("ip", "-n", ns, "addr", "add", address, "dev", dev)
            sh("ip", "-n", ns, "link", "set", dev, "up")
        # docs/OPERATIONS.md's three commands, in the monitor's namespace.
        nft = ("ip", "netns", "exec", monitor, "nft")
        sh(*nft, "add", "table", "inet", "wardtui")
        sh(*nft, "add", "chain", "inet", "wardtui", "prerouting",
           "{ type nat hook prerouting priority dstnat; }")
        sh(*nft, "add", "rule", "inet", "wardtui", "prerouting", "udp", "dport", "162", "redirect", "to",
           ":1162")
        yield monitor, sender
    finally:
        for ns in made:
            subprocess.run(["ip", "netns", "del", ns], check=False)


def test_v3_traps_and_informs_through_the_documented_redirect(link: tuple[str, str], tmp_path: Path) -> None:
    monitor, sender = link
    credentials = tmp_path / "credentials.yaml"
    credentials.write_text("v3:\n  version: 3\n  user: noc\n  auth_protocol: sha\n  auth_key: redirect-auth\n"
                           "  priv_protocol: aes\n  priv_key: redirect-priv\n"
                           f"  trap_engine_ids: [0x{ENGINE}]\n", encoding="utf-8")
    credentials.chmod(0o600)
    inventory = tmp_path / "inv.csv"
    inventory.write_text("name,address,branch,region,type,snmp_credential\n"
                         "branch-rtr,10.77.0.2,b1,north,router,v3\n", encoding="utf-8")
    proc = subprocess.Popen(
        ["ip", "netns", "exec", monitor, sys.executable, "-m", "wardtui",
         "--db", f"sqlite:///{tmp_path / 'h.db'}", "poll", "--inventory", str(inventory),
         "--credentials", str(credentials), "--interval", "1", "--timeout", "0.5",
         "--snmp-timeout", "0.2", "--traps", "0.0.0.0:1162", "--jsonl"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    env = {**os.environ, "SNMP_PERSISTENT_DIR": str(tmp_path / "net-snmp")}
    try:
        assert proc.stdout is not None
        lines = Lines(proc.stdout)
        lines.wait(lambda r: r["type"] == "gauges", 20, "gauges (the receiver is up)")
        for tool, extra in (("snmptrap", ("-e", f"0x{ENGINE}")), ("snmpinform", ())):
            link_down = ("", "1.3.6.1.6.3.1.1.5.3", "1.3.6.1.2.1.2.2.1.1.4", "i", "4")
            done = subprocess.run(["ip", "netns", "exec", sender, tool, *V3, *extra, "-r", "1", "-t", "2",
                                   "10.77.0.1:162", *link_down],
                                  capture_output=True, text=True, timeout=30, env=env)
            assert done.returncode == 0, (tool, done.stderr)  # snmpinform: only once acknowledged
            got = lines.wait(lambda r: r["type"] == "trap", 10, f"the {tool} trap")
            assert (got["device"], got["address"], got["version"], got["kind"]) == \
                ("branch-rtr", "10.77.0.2", "3", "linkDown")
        gauges = lines.wait(lambda r: r["type"] == "gauges" and r.get("traps_informs_acked", 0) >= 1, 10,
                            "gauges counting the inform")
        assert gauges["traps_accepted"] == 2 and gauges["traps_v3_discoveries"] >= 1
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
