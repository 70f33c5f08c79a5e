"""Traps end to end through the service (issue 17): ``wardtui serve --redis ... --traps`` and
``wardtui events --jsonl`` as two processes, net-snmp's ``snmptrap`` sending a v2c linkDown to
the service's receiver on loopback; the follower prints the ``{"type":"trap",...}`` line and
the interface event it became, the sender's text escaped."""

from __future__ import annotations

import json
import signal
import subprocess
from pathlib import Path

from tests.integration.feed_fixtures import SHARED_REDIS, follow
from tests.integration.test_serve import Service, need_root
from tests.integration.test_traps_cli import _need
from tests.ports import free_port


def test_serve_publishes_a_snmptrap_linkdown_that_events_jsonl_prints(feed_site: str, tmp_path: Path) -> None:
    need_root()  # serve probes by raw ICMP
    _need()  # snmptrap
    port, agent_port = free_port(), free_port()  # nothing answers SNMP there: polls time out
    (tmp_path / "net.csv").write_text("name,address,branch,region,type,snmp_credential,snmp_port\n"
                                      f"edge,127.0.0.1,b,r,router,lab,{agent_port}\n", encoding="utf-8")
    credentials = tmp_path / "credentials.yaml"
    credentials.write_text("lab:\n  version: 2c\n  community: tr4p-secret\n", encoding="utf-8")
    credentials.chmod(0o600)
    service = Service(tmp_path, "--credentials", "credentials.yaml", "--redis", SHARED_REDIS,
                      "--site", feed_site, "--traps", f"127.0.0.1:{port}")
    events = None
    try:
        service.wait_log("INFO wardtui.serve: monitoring")
        events = follow("--site", feed_site, "--jsonl")
        events.until(lambda r: r["type"] == "gauges", timeout=30)  # following the stream
        subprocess.run(["snmptrap", "-v", "2c", "-c", "tr4p-secret", f"127.0.0.1:{port}", "",
                        "1.3.6.1.6.3.1.1.5.3", "1.3.6.1.2.1.2.2.1.1.7", "i", "7",
                        "1.3.6.1.2.1.31.1.1.1.1.7", "s", "Gi0/7\x1b[2J"], check=True, timeout=10)
        trap, seen = events.until(lambda r: r["type"] == "trap", timeout=20)
        link, more = events.until(lambda r: r["type"] == "interface", timeout=20)
        gauges, more2 = events.until(lambda r: r["type"] == "gauges" and r.get("traps_accepted") == 1,
                                     timeout=20)
    finally:
        if events is not None:
            assert events.stop(signal.SIGINT) == 0, events.stderr
        assert service.stop() == 0, service.log
    assert trap == {**trap, "device": "edge", "address": "127.0.0.1", "kind": "linkDown", "ifindex": 7,
                    "trap_oid": "1.3.6.1.6.3.1.1.5.3", "version": "2c"}
    assert trap["ifname"] == "Gi0/7\\x1b[2J"  # the sender's ESC, as text
    assert link == {**link, "device": "edge", "ifindex": 7, "ifname": "Gi0/7\\x1b[2J", "to": "down",
                    "source": "trap"}
    assert gauges["traps_received"] == 1  # the service's receiver counted it, in the gauges line
    printed = json.dumps([*seen, *more, *more2], ensure_ascii=False)
    assert "\x1b" not in printed and "tr4p-secret" not in printed and "tr4p-secret" not in service.log
