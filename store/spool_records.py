"""How the spool writes one event as one line (compact JSON, newline included) and reads it back.

``k`` names the kind: ``t`` transition, ``c`` check, ``p`` SNMP poll (its interfaces as arrays,
in :data:`_IF_FIELDS` order), ``f`` failed SNMP poll, ``r`` reboot, ``i`` interface change, ``a``
SNMP agent change.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

from poller.events import (
    CheckResult,
    InterfaceChange,
    InterfaceStat,
    Reboot,
    SnmpAgentChange,
    SnmpFailure,
    SnmpPoll,
    State,
    Transition,
)

Line = bytes
SnmpEventIn = Reboot | InterfaceChange | SnmpAgentChange
"""The rare SNMP events the store keeps (never dropped, like transitions)."""
PollRecord = SnmpPoll | SnmpFailure
"""SNMP poll outcomes: samples, like checks (a failed poll is kept for the device's status)."""
Record = Transition | CheckResult | SnmpPoll | SnmpFailure | Reboot | InterfaceChange | SnmpAgentChange



@dataclass(frozen=True, slots=True)
class FencedTransition(Transition):
    """A cluster member's transition with the (shard, fencing epoch) of the tenure it was
    observed in, stamped as the store writer takes it (wardtui/cluster.py), so that spooled it
    is written under that epoch even by the member's next run (store/fenced_history.py)."""

    epoch: tuple[int, int]


_ENCODER = json.JSONEncoder(separators=(",", ":"))
_IF_FIELDS = ("ifindex", "name", "alias", "admin", "oper", "speed_bps", "in_bps", "out_bps", "in_errors",
              "out_errors", "in_discards", "out_discards", "counters_64")


def encode_transition(t: Transition) -> Line:
    record: dict[str, object] = {
        "k": "t", "device": t.device, "address": t.address,
        "from_state": t.from_state.value, "to_state": t.to_state.value, "at": t.at.isoformat(),
        "down_since": None if t.down_since is None else t.down_since.isoformat(), "rtt_ms": t.rtt_ms}
    if isinstance(t, FencedTransition):  # a cluster member's (older lines, other pollers', have none)
        record["epoch"] = list(t.epoch)
    return _line(record)


def encode_check(c: CheckResult) -> Line:
    return _line({"k": "c", "device": c.device, "address": c.address, "at": c.at.isoformat(),
                  "sent": c.sent, "received": c.received, "rtt_ms": c.rtt_ms, "state": c.state.value})


def encode_poll(p: PollRecord) -> Line:
    if isinstance(p, SnmpFailure):
        return _line({"k": "f", "device": p.device, "address": p.address, "at": p.at.isoformat(),
                      "reason": p.reason, "detail": p.detail})
    record: dict[str, object] = {
        "k": "p", "device": p.device, "address": p.address, "at": p.at.isoformat(),
        "sys_name": p.sys_name, "sys_descr": p.sys_descr, "sys_object_id": p.sys_object_id,
        "uptime_s": p.uptime_s, "ifs": [[getattr(i, f) for f in _IF_FIELDS] for i in p.interfaces]}
    if p.missing:  # absent from lines spooled before agents could lack objects
        record["missing"] = list(p.missing)
    return _line(record)


def encode_event(e: SnmpEventIn) -> Line:
    head: dict[str, object] = {"device": e.device, "address": e.address, "at": e.at.isoformat()}
    if isinstance(e, Reboot):
        return _line({"k": "r", **head, "uptime_s": e.uptime_s, "previous_uptime_s": e.previous_uptime_s,
                      "booted_at": e.booted_at.isoformat(), **_source(e.source)})
    if isinstance(e, InterfaceChange):
        return _line({"k": "i", **head, "ifindex": e.ifindex, "ifname": e.ifname,
                      "from_state": e.from_state, "to_state": e.to_state, **_source(e.source)})
    return _line({"k": "a", **head, "answering": e.answering, "reason": e.reason})


def _source(source: str) -> dict[str, object]:
    """A reboot's or link change's source, written only when not a poll (older lines have none)."""
    return {} if source == "poll" else {"source": source}


def _line(record: dict[str, object]) -> Line:
    return (_ENCODER.encode(record) + "\n").encode()


def decode(line: Line) -> Record:
    """The event ``line`` holds; ``ValueError``, ``KeyError`` or ``TypeError`` if it is not one."""
    if not line.endswith(b"\n"):
        raise ValueError("record cut short")
    d = json.loads(line)
    kind = d["k"]
    at = datetime.fromisoformat(d["at"])
    if kind == "t":
        down_since = d["down_since"]
        epoch = d.get("epoch")
        if epoch is not None and not (isinstance(epoch, list) and len(epoch) == 2
                                      and all(type(n) is int for n in epoch)):
            raise ValueError("a transition's epoch is not [shard, epoch]")
        fields = (d["device"], d["address"], State(d["from_state"]), State(d["to_state"]), at,
                  None if down_since is None else datetime.fromisoformat(down_since), d["rtt_ms"])
        return Transition(*fields) if epoch is None else FencedTransition(*fields, (epoch[0], epoch[1]))
    if kind == "c":
        return CheckResult(d["device"], d["address"], at, d["sent"], d["received"], d["rtt_ms"],
                           State(d["state"]))
    if kind == "p":
        interfaces = tuple(InterfaceStat(*row) for row in d["ifs"])
        if any(len(row) != len(_IF_FIELDS) for row in d["ifs"]):
            raise ValueError("interface row of the wrong length")
        return SnmpPoll(d["device"], d["address"], at, d["sys_name"], d["sys_descr"], d["sys_object_id"],
                        d["uptime_s"], interfaces, tuple(d.get("missing", ())))
    if kind == "f":
        return SnmpFailure(d["device"], d["address"], at, d["reason"], d["detail"])
    if kind == "r":
        return Reboot(d["device"], d["address"], at, d["uptime_s"], d["previous_uptime_s"],
                      datetime.fromisoformat(d["booted_at"]), d.get("source", "poll"))
    if kind == "i":
        return InterfaceChange(d["device"], d["address"], at, d["ifindex"], d["ifname"], d["from_state"],
                               d["to_state"], d.get("source", "poll"))
    if kind == "a":
        return SnmpAgentChange(d["device"], d["address"], at, d["answering"], d["reason"])
    raise ValueError(f"unknown record kind {kind!r}")
