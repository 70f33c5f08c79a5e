"""What the device drill-down says about one device, as plain text (no widget code here)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Protocol

from poller.events import State
from poller.state import DeviceTracker
from store.records import Outage, SnmpEvent
from wardtui.widgets.states import format_duration, state_label


class InterfaceLike(Protocol):
    """What the interface table shows; both ``SnmpInterface`` (store) and ``InterfaceStat`` (live) have it."""

    ifindex: int
    name: str
    alias: str
    admin: str
    oper: str
    speed_bps: int | None
    in_bps: float | None
    out_bps: float | None


def stamp(at: datetime | None) -> str:
    return "-" if at is None else at.strftime("%Y-%m-%d %H:%M:%S")


def ms(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.2f}" if value < 10 else f"{value:.1f}" if value < 1000 else f"{value:.0f}"


def identity_line(tracker: DeviceTracker) -> str:
    d = tracker.device
    return f"{d.name}  {d.address}  ·  branch {d.branch}  ·  region {d.region}  ·  type {d.type}"


def state_line(tracker: DeviceTracker, now: datetime) -> str:
    label = state_label(tracker.state, tracker.flapping)
    if tracker.state is State.DOWN and tracker.down_since is not None:
        since = tracker.down_since
        return f"{label} since {stamp(since)} UTC, for {format_duration(now - since)}"
    changed = tracker.last_change
    if changed is not None:
        return f"{label} since {stamp(changed)} UTC ({format_duration(now - changed)})"
    return label


def stats_lines(tracker: DeviceTracker) -> list[str]:
    """Rolling figures (the tracker's window) and whole-run totals."""
    window = tracker.window()
    rtts = [r for r in window if r is not None]
    loss = tracker.loss_pct
    rolling = (f"RTT ms  last {ms(tracker.last_rtt_ms)}  avg {ms(tracker.avg_rtt_ms)}  "
               f"min {ms(min(rtts) if rtts else None)}  max {ms(max(rtts) if rtts else None)}  "
               f"jitter {ms(tracker.jitter_ms)}  ·  loss {'-' if loss is None else f'{loss:.1f}'} %  "
               f"(last {len(window)} probes)")
    whole = (f"whole run  sent {tracker.sent}  received {tracker.received}  "
             f"avg {ms(tracker.total_avg_rtt_ms)}  min {ms(tracker.rtt_min_ms)}  "
             f"max {ms(tracker.rtt_max_ms)} ms")
    return [rolling, whole]


def outage_rows(outages: Iterable[Outage], now: datetime) -> list[tuple[str, str, str]]:
    """(start, end or "ongoing", duration), newest first."""
    rows = sorted(outages, key=lambda o: o.start, reverse=True)
    return [(stamp(o.start), "ongoing" if o.end is None else stamp(o.end), format_duration(o.duration(now)))
            for o in rows]


def last_reboot(events: Iterable[SnmpEvent]) -> str | None:
    reboots = [e for e in events if e.kind == "reboot"]
    if not reboots:
        return None
    last = max(reboots, key=lambda e: e.at)
    booted = (last.detail or "").partition("booted at ")[2]
    when = booted[:19].replace("T", " ") if booted else stamp(last.at)
    return f"{when} UTC (seen {stamp(last.at)})"


def bits(value: float | None) -> str:
    """bit/s with an SI prefix: ``940 M``; ``-`` when there is no rate."""
    if value is None:
        return "-"
    for factor, prefix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= factor:
            return f"{value / factor:.3g} {prefix}"
    return f"{value:.0f}"


def interface_row(i: InterfaceLike) -> tuple[str, ...]:
    return (str(i.ifindex), i.name, i.alias, f"{i.admin}/{i.oper}",
            "-" if i.speed_bps is None else bits(float(i.speed_bps)), bits(i.in_bps), bits(i.out_bps))
