"""pysnmp is never imported outside the tests (SNMPv3 is our own USM since issue 17), and the
USM's cryptography only by an SNMP client made for a run that polls SNMP (or a trap receiver,
for v3 traps): the walk, the v2c client, the poller, the trap receiver's module and the runtime
read and load without it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

PROBE = """
import json, sys
import poller.snmp_getbulk, poller.snmp_mib, poller.snmp_poller, poller.snmp_rates, poller.snmp_source
import poller.snmp_v2c, poller.snmp_walk, poller.snmp_traps, wardtui.runtime
from poller.snmp_v2c import V2cGetBulk
from poller.snmp_walk import SnmpClient

def loaded():
    return sorted({m.split(".")[0] for m in sys.modules} & {"pysnmp", "pyasn1", "cryptography"})

before = loaded()
SnmpClient(v3=V2cGetBulk()).close()  # a client given its v3 GETBULK (tests, fakes)
given = loaded()
SnmpClient().close()
print(json.dumps({"imported": before, "given_v3": given, "client": loaded()}))
"""


def test_only_a_real_snmp_client_loads_cryptography_and_none_loads_pysnmp() -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-c", PROBE], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    found = json.loads(proc.stdout.strip().splitlines()[-1])
    assert found == {"imported": [], "given_v3": [], "client": ["cryptography"]}
