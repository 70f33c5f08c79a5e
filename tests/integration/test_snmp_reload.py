"""A reload's new SNMP settings reach a real agent (Debian's snmpd): the client forgets what it
kept for a changed agent (its v2c community, its v3 target with address, port and keys)."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from pathlib import Path

from poller.bus import EventBus
from poller.credentials import V3, V2c, load_credentials
from poller.events import SnmpFailure, SnmpPoll
from poller.snmp_poller import SnmpConfig, SnmpPoller
from poller.snmp_source import Agent
from poller.snmp_walk import SnmpClient
from tests.lab.snmp_agents import SnmpdAgent, free_udp_port


async def test_a_changed_community_key_and_port_take_effect(snmpd_agent: SnmpdAgent,
                                                            tmp_path: Path) -> None:
    credentials = load_credentials(snmpd_agent.write_credentials(tmp_path / "credentials.yaml"))
    # Two v3 users on one agent (pysnmp's engine once held one key per user name).
    v2c, v3, other = credentials["lab-v2c"], credentials["lab-sha-aes"], credentials["lab-sha"]
    assert isinstance(v2c, V2c) and isinstance(v3, V3)
    port = snmpd_agent.port
    right = [Agent("r1", "127.0.0.1", port, v2c, timeout=0.3, retries=0),
             Agent("r2", "127.0.0.1", port, v3, timeout=0.3, retries=0),
             Agent("r3", "127.0.0.1", port, other, timeout=0.3, retries=0)]
    wrong = [dataclasses.replace(right[0], credential=V2c("lab-v2c", "not-the-community")),
             dataclasses.replace(right[1], credential=dataclasses.replace(v3, auth_key="not-the-auth-key")),
             dataclasses.replace(right[2], port=free_udp_port())]
    bus = EventBus()
    sub = bus.subscribe("t")
    poller = SnmpPoller(wrong, SnmpClient(), bus, config=SnmpConfig(interval=0.4))
    task = asyncio.create_task(poller.run())
    try:
        failed: set[str] = set()
        deadline = time.monotonic() + 10
        while failed != {"r1", "r2", "r3"} and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
            events = sub.drain()
            assert not [e for e in events if isinstance(e, SnmpPoll)]
            failed |= {e.device for e in events if isinstance(e, SnmpFailure)}
        assert failed == {"r1", "r2", "r3"}
        changes = poller.apply_agents(right)
        assert changes.details == {"r1": ("credential",), "r2": ("credential",), "r3": ("port",)}
        answered: set[str] = set()
        deadline = time.monotonic() + 10
        while answered != {"r1", "r2", "r3"} and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
            answered |= {e.device for e in sub.drain() if isinstance(e, SnmpPoll)}
        assert answered == {"r1", "r2", "r3"}
    finally:
        poller.stop()
        await task
        poller.close()
