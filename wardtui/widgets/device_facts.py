"""What the device drill-down says about one device, as plain text (no widget code here)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Protocol

from poller.durations import format_duration
from poller.events import OUT, SnmpFailure
from poller.snmp_source import missing_text
from poller.state import TrackerView
from store.records import Outage, SnmpEvent, SnmpStatus
from wardtui.widgets.states import state_label


class InterfaceLike(Protocol):
    """What the interface table shows; both ``SnmpInterface`` (store) and ``InterfaceStat`` (live) have it."""

    @property
    def ifindex(self) -> int: ...
    @property
    def name(self) -> str: ...
    @property
    def alias(self) -> str: ...
    @property
    def admin(self) -> str: ...
    @property
    def oper(self) -> str: ...
    @property
    def speed_bps(self) -> int | None: ...
    @property
    def in_bps(self) -> float | None: ...
    @property
    def out_bps(self) -> float | None: ...


def stamp(at: datetime | None) -> str:
    return "-" if at is None else at.strftime("%Y-%m-%d %H:%M:%S")


def ms(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.2f}" if value < 10 else f"{value:.1f}" if value < 1000 else f"{value:.0f}"


def identity_line(tracker: TrackerView) -> str:
    d = tracker.device
    return f"{d.name}  {d.address}  ·  branch {d.branch}  ·  region {d.region}  ·  type {d.type}"


def state_line(tracker: TrackerView, now: datetime) -> str:
    label = state_label(tracker.state, tracker.flapping)
    if tracker.state in OUT and tracker.down_since is not None:
        since = tracker.down_since
        return f"{label} since {stamp(since)} UTC, for {format_duration(now - since)}"
    changed = tracker.last_change
    if changed is not None:
        return f"{label} since {stamp(changed)} UTC ({format_duration(now - changed)})"
    return label


def stats_lines(tracker: TrackerView, width: int | None = None) -> list[str]:
    """Rolling figures (the tracker's window) and whole-run totals, in lines of at most ``width``
    characters: a figure is never cut, and where lines break depends on the width only, not on
    the values, so the lines (and the charts below them) stay put as figures change."""
    loss = tracker.loss_pct
    if getattr(tracker, "remote", False):
        # Attached to a service: the snapshot carries the window's figures, not the window itself
        # nor the service's whole-run totals (the charts below read the history).
        remote = [[f"RTT ms  last {ms(tracker.last_rtt_ms)}", f"avg {ms(tracker.avg_rtt_ms)}",
                   f"jitter {ms(tracker.jitter_ms)}"],
                  ["loss " + ("-" if loss is None else f"{loss:.1f}") + " %", "(the service's window)"]]
        widest_remote = [["RTT ms  last 999.9", "avg 999.9", "jitter 999.9"],
                         ["loss 100.0 %", "(the service's window)"]]
        return pack(remote, width, widest_remote)
    window = tracker.window()
    rtts = [r for r in window if r is not None]
    groups = _stats_groups(
        [ms(tracker.last_rtt_ms), ms(tracker.avg_rtt_ms), ms(min(rtts) if rtts else None),
         ms(max(rtts) if rtts else None), ms(tracker.jitter_ms)],
        "-" if loss is None else f"{loss:.1f}", len(window), tracker.sent, tracker.received,
        [ms(tracker.total_avg_rtt_ms), ms(tracker.rtt_min_ms), ms(tracker.rtt_max_ms)])
    # The widest these figures get in practice: RTTs under 10 s, a month of checks a second.
    widest = _stats_groups(["999.9"] * 5, "100.0", 999, 9_999_999, 9_999_999, ["999.9"] * 3)
    return [*pack(groups[:2], width, widest[:2]), *pack(groups[2:], width, widest[2:])]


def _stats_groups(rolling: list[str], loss: str, probes: int, sent: int, received: int,
                  whole: list[str]) -> list[list[str]]:
    last, avg, low, high, jitter = rolling
    total_avg, total_min, total_max = whole
    return [[f"RTT ms  last {last}", f"avg {avg}", f"min {low}", f"max {high}", f"jitter {jitter}"],
            [f"loss {loss} %", f"(last {probes} probes)"],
            [f"whole run  sent {sent}", f"received {received}", f"avg {total_avg}", f"min {total_min}",
             f"max {total_max} ms"]]


def pack(groups: list[list[str]], width: int | None, widest: list[list[str]] | None = None,
         group_sep: str = "  ·  ", sep: str = "  ", indent: str = "  ") -> list[str]:
    """``groups`` of fields in lines of ``width`` at most: groups side by side while they fit, a
    group's fields over several lines (continuations indented) only when it is too wide alone.
    Breaks are chosen on ``widest`` (the same fields at their widest) when given."""
    sizes = [[max(len(a), len(b)) for a, b in zip(g, w, strict=True)]
             for g, w in zip(groups, widest or groups, strict=True)]
    lines: list[str] = []
    line, used = "", 0
    for group, size in zip(groups, sizes, strict=True):
        wide = sum(size) + len(sep) * (len(size) - 1)
        fits = width is None or (used + len(group_sep) if line else 0) + wide <= width
        if fits:
            line = f"{line}{group_sep}{sep.join(group)}" if line else sep.join(group)
            used += (len(group_sep) if used else 0) + wide
            continue
        assert width is not None
        if line:
            lines.append(line)
        line, used = "", 0
        for item, item_size in zip(group, size, strict=True):
            if line and used + len(sep) + item_size > width:
                lines.append(line)
                line, used = indent + item, len(indent) + item_size
            else:
                line = f"{line}{sep}{item}" if line else item
                used += (len(sep) if used else 0) + item_size
    if line:
        lines.append(line)
    return lines


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


def snmp_fact_lines(name: str, descr: str, uptime_s: float | None, polled_at: datetime,
                    reboot: str | None, missing: tuple[str, ...] = (), object_id: str = "") -> list[str]:
    """The SNMP facts of the last answer; what the agent lacks is said, not shown as zero. An
    agent without sysDescr (a UPS card) is known by its sysObjectID: shown in its place."""
    uptime = "none (no sysUpTime)" if uptime_s is None else format_duration(timedelta(seconds=uptime_s))
    what = f"description {descr}" if descr else f"object id {object_id or '-'} (no description)"
    lines = [f"sysName {name or '-'}  ·  uptime {uptime}  ·  polled {stamp(polled_at)} UTC", what]
    if missing:
        lines.append(f"the agent has {missing_text(missing)}")
    if uptime_s is None and reboot is None:
        lines.append("last reboot: not detectable (no sysUpTime)")
    else:
        lines.append(f"last reboot {reboot}" if reboot else "last reboot: none recorded")
    return lines


def snmp_status_line(status: SnmpStatus | None) -> str | None:
    """When the last poll failed: how often the device was polled, and what came back."""
    if status is None or status.outcome == "answered":
        return None
    answered = "never answered" if status.answered_at is None else f"{status.answered} answered"
    detail = f" ({status.detail})" if status.detail else ""
    return (f"SNMP polls {status.polls} ({answered})  ·  last poll {stamp(status.polled_at)} UTC: "
            f"{status.outcome}{detail}")


def snmp_failure_line(failure: SnmpFailure) -> str:
    """A live failed poll of the device on screen."""
    return f"last poll {stamp(failure.at)} UTC: {failure.reason} ({failure.detail})"
