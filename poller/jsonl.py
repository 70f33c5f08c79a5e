"""The JSON-lines schema of events: `wardtui poll --jsonl` and `wardtui events --jsonl` print it,
so scripts and chat bots read one shape whichever process they talk to."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from poller.events import (
    CheckResult,
    Event,
    FlapChange,
    Gauges,
    InterfaceChange,
    Reboot,
    SnmpAgentChange,
    SnmpFailure,
    SnmpPoll,
    Transition,
    Trap,
)
from poller.quiet import QuietChanged
from poller.state import DeviceTracker


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _round(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(value, digits)


def quiet_record(event: QuietChanged) -> dict[str, Any]:
    """The maintenance windows and acknowledgements in force, whole, as their JSON says them
    (poller/quiet.py), times in ISO 8601 UTC."""
    doc = json.loads(event.quiet.to_json())
    for item in (*doc["windows"], *doc["acks"]):
        for key in ("starts_at", "ends_at", "created_at", "removed_at", "down_since", "at"):
            if isinstance(item.get(key), float):
                item[key] = datetime.fromtimestamp(item[key], UTC).isoformat()
    return {"type": "quiet", "by": event.by, "windows": doc["windows"], "acks": doc["acks"]}


def event_record(event: Event) -> dict[str, Any] | None:
    """The JSON shape of one event (None for events not printed)."""
    if isinstance(event, QuietChanged):
        return quiet_record(event)
    if isinstance(event, Transition):
        return {"type": "transition", "device": event.device, "address": event.address,
                "from": event.from_state.value, "to": event.to_state.value, "at": _iso(event.at),
                "down_since": _iso(event.down_since), "rtt_ms": _round(event.rtt_ms)}
    if isinstance(event, Gauges):
        return {"type": "gauges", "at": _iso(event.at), "devices_up": event.devices_up,
                "devices_down": event.devices_down, "devices_unknown": event.devices_unknown,
                "devices_unreachable": int(event.extra.get("devices_unreachable", 0)),
                "devices_flapping": event.devices_flapping,
                "checks_per_s": round(event.checks_per_s, 1), "probes_per_s": round(event.probes_per_s, 1),
                "in_flight": event.in_flight, "skipped": event.skipped,
                "skipped_late": event.skipped_late, "skipped_busy": event.skipped_busy,
                "lag_p50_ms": round(event.lag_p50_ms, 3), "lag_p99_ms": round(event.lag_p99_ms, 3),
                "oldest_overdue_ms": round(event.oldest_overdue_ms, 1),
                "rcvbuf_drops": event.rcvbuf_drops, "send_errors": event.send_errors,
                "store_queue": event.store_queue,
                "events_dropped": int(event.extra.get("events_dropped", 0)),
                # Replies that matched no waiting probe: too late, or from another address.
                "late_replies": int(event.extra.get("late_replies", 0)),
                # Sends the kernel put off (buffer full): sent again, not counted as loss.
                "send_waits": int(event.extra.get("send_waits", 0)),
                "store_spool_rows": int(event.extra.get("store_spool_rows", 0)),
                "store_samples_dropped": int(event.extra.get("store_samples_dropped", 0)),
                "store_failing": bool(event.extra.get("store_failing", 0)),
                **_snmp_gauges(event.extra), **_trap_gauges(event.extra), **_cluster_gauges(event.extra)}
    if isinstance(event, FlapChange):
        return {"type": "flapping", "device": event.device, "address": event.address,
                "flapping": event.flapping, "at": _iso(event.at),
                "transitions_in_window": event.transitions_in_window}
    if isinstance(event, Reboot):
        return {"type": "reboot", "device": event.device, "address": event.address, "at": _iso(event.at),
                "uptime_s": round(event.uptime_s, 2), "previous_uptime_s": round(event.previous_uptime_s, 2),
                "booted_at": _iso(event.booted_at), "source": event.source}
    if isinstance(event, InterfaceChange):
        return {"type": "interface", "device": event.device, "address": event.address, "at": _iso(event.at),
                "ifindex": event.ifindex, "ifname": event.ifname, "from": event.from_state,
                "to": event.to_state, "source": event.source}
    if isinstance(event, Trap):
        return {"type": "trap", "device": event.device, "address": event.address, "at": _iso(event.at),
                "kind": event.kind, "trap_oid": event.trap_oid, "version": event.version,
                "uptime_s": _round(event.uptime_s, 2), "ifindex": event.ifindex, "ifname": event.ifname,
                "varbinds": event.varbinds}
    if isinstance(event, SnmpAgentChange):
        return {"type": "snmp_agent", "device": event.device, "address": event.address,
                "at": _iso(event.at), "answering": event.answering, "reason": event.reason}
    if isinstance(event, SnmpPoll):
        return {"type": "snmp", "device": event.device, "address": event.address, "at": _iso(event.at),
                "sys_name": event.sys_name, "uptime_s": _round(event.uptime_s, 2),
                "missing": list(event.missing),
                "interfaces": [{"ifindex": i.ifindex, "name": i.name, "admin": i.admin, "oper": i.oper,
                                "speed_bps": i.speed_bps, "in_bps": _round(i.in_bps, 1),
                                "out_bps": _round(i.out_bps, 1)} for i in event.interfaces]}
    if isinstance(event, SnmpFailure):
        return {"type": "snmp_failed", "device": event.device, "address": event.address,
                "at": _iso(event.at), "reason": event.reason, "detail": event.detail}
    if isinstance(event, CheckResult):
        return {"type": "check", "device": event.device, "address": event.address, "at": _iso(event.at),
                "sent": event.sent, "received": event.received, "rtt_ms": _round(event.rtt_ms),
                "state": event.state.value}
    return None


_SNMP_COUNTS = ("snmp_timeouts", "snmp_auth_failures", "snmp_failed", "snmp_skipped", "snmp_backed_off",
                "snmp_agents_failing", "snmp_not_polled_down", "snmp_over_speed", "snmp_no_rate",
                "snmp_in_flight", "snmp_skipped_capacity", "snmp_v3_in_flight", "snmp_v3_limit",
                "snmp_v3_rediscoveries", "snmp_v3_discoveries", "snmp_v3_resyncs", "snmp_bad_replies",
                "snmp_send_errors")


def _snmp_gauges(extra: dict[str, float]) -> dict[str, Any]:
    """The SNMP poller's gauges, when there is one (no SNMP device: no such keys)."""
    if "snmp_agents" not in extra:
        return {}
    out: dict[str, Any] = {"snmp_agents": int(extra["snmp_agents"]),
                           "snmp_polls_per_s": round(extra.get("snmp_polls_per_s", 0.0), 1),
                           "snmp_requests_per_s": round(extra.get("snmp_requests_per_s", 0.0), 1),
                           "snmp_lag_p99_ms": round(extra.get("snmp_lag_p99_ms", 0.0), 3)}
    out.update({key: int(extra.get(key, 0)) for key in _SNMP_COUNTS})
    return out


_TRAP_COUNTS = ("traps_received", "traps_accepted", "traps_refused_unknown_source", "traps_refused_community",
                "traps_refused_malformed", "traps_refused_user", "traps_refused_engine_id",
                "traps_refused_level", "traps_refused_auth", "traps_refused_time_window",
                "traps_v3_discoveries", "traps_v3_reports", "traps_rate_limited", "traps_checks",
                "traps_polls", "traps_coalesced", "traps_informs_acked", "traps_failed")


def _trap_gauges(extra: dict[str, float]) -> dict[str, Any]:
    """The trap receiver's counts, when there is one (``--traps``)."""
    if "traps_received" not in extra:
        return {}
    return {key: int(extra.get(key, 0)) for key in _TRAP_COUNTS}


def summary_record(t: DeviceTracker) -> dict[str, Any]:
    """Whole-run figures for one device, printed at exit."""
    loss = 100.0 * (t.sent - t.received) / t.sent if t.sent else None
    return {"type": "summary", "device": t.device.name, "address": t.device.address,
            "state": t.state.value, "sent": t.sent, "received": t.received,
            "loss_pct": _round(loss, 2), "rtt_avg_ms": _round(t.total_avg_rtt_ms),
            "rtt_min_ms": _round(t.rtt_min_ms), "rtt_max_ms": _round(t.rtt_max_ms),
            "jitter_ms": _round(t.jitter_ms), "down_since": _iso(t.down_since),
            "flapping": t.flapping}


_CLUSTER_COUNTS = ("cluster_shards_owned", "cluster_members", "cluster_takeovers", "cluster_refused_writes",
                   "cluster_refused_transitions", "cluster_stood_down", "cluster_takeovers_failed")


def _cluster_gauges(extra: dict[str, float]) -> dict[str, Any]:
    """A cluster member's (``serve --cluster``): shards owned, takeovers, refused writes, ..."""
    if "cluster_shards_owned" not in extra:
        return {}
    return {key: int(extra.get(key, 0)) for key in _CLUSTER_COUNTS}
