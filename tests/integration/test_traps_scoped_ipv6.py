"""Traps from zoned IPv6 devices (``fe80::2%va`` in the inventory) are matched by the sender's
address AND the interface they came in on (issue 17: scoped peers), through ``wardtui poll
--traps [::]:PORT --jsonl``, over SNMPv2c and SNMPv3.

Three namespaces of the test's own: the monitor's has two veth ends, ``va`` (fe80::1) to the
first sender's ``vb`` (fe80::2) and ``vc`` (fe80::1) to the second sender's ``vd`` (also
fe80::2), and no other address. Both senders are ``fe80::2``: only the interface tells them
apart. The inventory has ``left`` at ``fe80::2%va`` (v2c, community ``left-c``) and ``right``
at ``fe80::2%vc`` (SNMPv3 authPriv SHA/AES, its trap engine ID listed). Before, the zone was
dropped from the key and both senders were ``left``: a trap from the right-hand sender with
``left``'s community was believed as ``left``'s.
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
from tests.ports import free_port

pytestmark = pytest.mark.lab

ENGINE = "8000000001c0ffee0001"
LINK_DOWN, IF_INDEX = "1.3.6.1.6.3.1.1.5.3", "1.3.6.1.2.1.2.2.1.1"


@pytest.fixture
def links() -> Iterator[tuple[str, str, str]]:
    """(monitor, left sender, right sender) namespaces: va <-> vb and vc <-> vd."""
    require_lab()
    if subprocess.run(["which", "snmptrap"], capture_output=True).returncode:
        (pytest.fail if os.environ.get("CI", "").lower() == "true" else pytest.skip)("needs snmptrap")
    monitor, left, right = (f"wtt{os.getpid()}{s}" for s in "mlr")
    made: list[str] = []
    try:
        for ns in (monitor, left, right):
            sh("ip", "netns", "add", ns)
            made.append(ns)
            sh("ip", "-n", ns, "link", "set", "lo", "up")
        for mine, theirs, ns in (("va", "vb", left), ("vc", "vd", right)):
            sh("ip", "-n", monitor, "link", "add", mine, "type", "veth", "peer", "name", theirs, "netns", ns)
            for where, dev, address in ((monitor, mine, "fe80::1/64"), (ns, theirs, "fe80::2/64")):
                sh("ip", "-n", where, "link", "set", dev, "addrgenmode", "none")
                sh("ip", "-n", where, "addr", "add", address, "dev", dev, "nodad")
                sh("ip", "-n", where, "link", "set", dev, "up")
        yield monitor, left, right
    finally:
        for ns in made:
            subprocess.run(["ip", "netns", "del", ns], check=False)


def trap(ns: str, dev: str, port: int, tmp_path: Path, *security: str, tool: str = "snmptrap") -> None:
    env = {**os.environ, "SNMP_PERSISTENT_DIR": str(tmp_path / f"net-snmp-{ns}")}
    subprocess.run(["ip", "netns", "exec", ns, tool, *security, "-r", "1", "-t", "2",
                    f"udp6:[fe80::1%{dev}]:{port}", "", LINK_DOWN, f"{IF_INDEX}.7", "i", "7"],
                   check=True, capture_output=True, timeout=20, env=env)


def test_zoned_senders_are_told_apart_by_their_interface(links: tuple[str, str, str], tmp_path: Path) -> None:
    monitor, left, right = links
    port = free_port()
    credentials = tmp_path / "credentials.yaml"
    credentials.write_text("left-v2:\n  version: 2c\n  community: left-c\n"
                           "right-v3:\n  version: 3\n  user: noc\n  auth_protocol: sha\n"
                           "  auth_key: right-auth-pass\n  priv_protocol: aes\n  priv_key: right-priv-pass\n"
                           f"  trap_engine_ids: [0x{ENGINE}]\n", encoding="utf-8")
    credentials.chmod(0o600)
    inventory = tmp_path / "inv.csv"
    inventory.write_text("name,address,branch,region,type,snmp_credential\n"
                         "left,fe80::2%va,b1,north,router,left-v2\n"
                         "right,fe80::2%vc,b1,north,router,right-v3\n", encoding="utf-8")
    proc = subprocess.Popen(
        ["ip", "netns", "exec", monitor, sys.executable, "-m", "wardtui",
         "--db", f"sqlite:///{tmp_path / 'h.db'}", "poll", "--inventory", str(inventory),
         "--credentials", str(credentials), "--interval", "1", "--timeout", "0.5",
         "--snmp-timeout", "0.2", "--traps", f"[::]:{port}", "--jsonl"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        lines = Lines(proc.stdout)
        lines.wait(lambda r: r["type"] == "gauges", 20, "gauges (the receiver is up)")
        v3 = ("-v3", "-e", f"0x{ENGINE}", "-u", "noc", "-l", "authPriv", "-a", "SHA", "-A", "right-auth-pass",
              "-x", "AES", "-X", "right-priv-pass")
        trap(left, "vb", port, tmp_path, "-v2c", "-c", "left-c")
        got = lines.wait(lambda r: r["type"] == "trap", 10, "left's trap")
        assert (got["device"], got["address"], got["version"], got["ifindex"]) == \
            ("left", "fe80::2%va", "2c", 7)
        # The right-hand sender, with left's community: fe80::2 too, but not on va.
        trap(right, "vd", port, tmp_path, "-v2c", "-c", "left-c")
        trap(right, "vd", port, tmp_path, *v3)
        got = lines.wait(lambda r: r["type"] == "trap", 10, "right's trap")
        assert (got["device"], got["address"], got["version"]) == ("right", "fe80::2%vc", "3")
        # ... and left's v3 trap is not right's: left has no SNMPv3 user.
        trap(left, "vb", port, tmp_path, *v3)
        # A v3 inform from the right: discovery and Response go back out of vc (snmpinform exits
        # 0 only once acknowledged; check=True).
        inform = [a for a in v3 if a not in ("-e", f"0x{ENGINE}")]
        trap(right, "vd", port, tmp_path, *inform, tool="snmpinform")
        got = lines.wait(lambda r: r["type"] == "trap", 10, "right's inform")
        assert got["device"] == "right"
        gauges = lines.wait(lambda r: r["type"] == "gauges" and r.get("traps_accepted", 0) >= 3, 10,
                            "gauges counting the traps")
        assert (gauges["traps_accepted"], gauges["traps_refused_community"], gauges["traps_refused_user"],
                gauges["traps_refused_unknown_source"], gauges["traps_informs_acked"]) == (3, 1, 1, 0, 1)
        assert [r["device"] for r in lines.seen if r["type"] == "trap"] == ["left", "right", "right"]
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
