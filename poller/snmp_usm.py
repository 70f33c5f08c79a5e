"""What a pysnmp engine remembers of a v3 agent's engine, and how to make it forget one agent.

pysnmp keeps two caches per ``SnmpEngine`` (field notes and pysnmp 7.1's source): the message
processing model maps a transport address to the agent's snmpEngineID, and the USM keeps,
per snmpEngineID, the agent's snmpEngineBoots and snmpEngineTime. Both are learnt at the first
contact and only move forward. An agent that restarts without raising snmpEngineBoots (net-snmp
started with ``-C`` and a fresh persistent directory, many embedded devices) comes back with a
new engineID, or with the same one and its clock set back: pysnmp then drops each of its
answers (unknown security name, or outside the time window) and every request times out, for
as long as the caches live. Forgetting the agent's entries makes the next request start with
discovery, as at the first contact; the new boots and time are then learnt from the agent.

These are pysnmp's private attributes (name-mangled); the only code that touches them is here,
and a later v3 codec of our own replaces it.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from pysnmp.entity.engine import SnmpEngine

_MP_V3 = 3  # SnmpV3MessageProcessingModel.MESSAGE_PROCESSING_MODEL_ID
_USM = 3  # SnmpUSMSecurityModel.SECURITY_MODEL_ID


def _same_host(a: str, b: str) -> bool:
    try:
        return ipaddress.ip_address(a) == ipaddress.ip_address(b)
    except ValueError:
        return a == b


def forget_peer(engine: SnmpEngine, address: str, port: int) -> bool:
    """Drop what ``engine`` cached of the agent at ``address``:``port`` (its engineID, boots and
    time); True if there was something to drop. The next request to it rediscovers them."""
    mp: Any = engine.message_processing_subsystems.get(_MP_V3)
    usm: Any = engine.security_models.get(_USM)
    id_cache: dict[Any, dict[str, Any]] = getattr(mp, "_SnmpV3MessageProcessingModel__engineIdCache", {})
    expiry: dict[int, list[Any]] = getattr(mp, "_SnmpV3MessageProcessingModel__engineIdCacheExpQueue", {})
    timeline: dict[Any, Any] = getattr(usm, "_SnmpUSMSecurityModel__timeline", {})
    forgot = False
    # Keyed by (transport domain, address as received): IPv6 addresses come with flow and scope.
    for key in [k for k in id_cache if k[1][1] == port and _same_host(str(k[1][0]), address)]:
        peer = id_cache.pop(key)
        timeline.pop(peer.get("securityEngineId"), None)
        # pysnmp expires each entry 300 s after it was learnt with `del cache[key]`, unchecked:
        # a key left in its expiry queue after we dropped the entry raises KeyError there, which
        # ends the engine's timer task, and with it every timeout and retry of its 250 agents.
        for keys in expiry.values():
            while key in keys:
                keys.remove(key)
        forgot = True
    return forgot
