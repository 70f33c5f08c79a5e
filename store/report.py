"""Availability reports: per device, branch or region, the up and down time of a period, from the
stored outages, with exact boundary rules (see docs/OPERATIONS.md, "Availability reports").

The figures are pure functions of what :func:`device_spans` and ``HistoryStore.outages`` read
(:func:`compute`), so they are tested against hand-computed cases without a database;
:func:`availability` reads the store and computes, for the CLI and the dashboard alike.

Rules:

- Time counts from when the device was first monitored: its first stored transition (the
  engine's UNKNOWN -> UP/DOWN at its first check) or its first outage's ``down_since``, if
  earlier. Before that nothing is counted, neither up nor down.
- Time counts up to the period's end, or up to ``now`` if the end is in the future.
- An outage that crosses either edge is clipped to it; an ongoing one counts up to that end.
- The rest of the counted time is up: the history holds no record of when wardtui was not
  running, so that time counts as the device's last known state (up, or down while an
  outage stayed open).
- Unreachable time (an outage whose cause is ``unreachable``, up to its ``down_from``) is
  downtime by default (``unreachable="down"``: the device could not be used) and is always
  reported apart (``unreachable_s``); with ``unreachable="excluded"`` (the SLA view: the device
  was not at fault) it is neither up nor down: it leaves the downtime and the counted time, and
  an outage unreachable throughout is not counted.
- Maintenance time (store/report_maintenance.py: the windows of ``wardtui maintenance`` that
  match the device, while they existed) is always reported apart (``maintenance_s``, of the
  counted time). By default it counts as any other time. With ``exclude_maintenance`` it is
  neither up nor down: it leaves the counted time, outages count only their time outside it,
  and an outage wholly inside maintenance is not counted (so MTTR and MTBF are those of the
  outages outside maintenance). Unreachable time that is also maintenance is left out once.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Literal

from store.records import Outage
from store.report_maintenance import NO_COVERAGE, Coverage, MaintenanceCover

if TYPE_CHECKING:
    from poller.notify.windows import Window
    from store.history import HistoryStore

GroupBy = Literal["device", "branch", "region"]
GROUP_BYS: tuple[GroupBy, ...] = ("device", "branch", "region")
Unreachable = Literal["down", "excluded"]
UNREACHABLE_MODES: tuple[Unreachable, ...] = ("down", "excluded")


@dataclass(frozen=True, slots=True)
class Period:
    """The report's period ``[start, end)``, aware datetimes, ``start`` before ``end``."""

    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise ValueError("a report period needs aware datetimes (UTC)")
        if self.end <= self.start:
            raise ValueError(f"the period's end {self.end.isoformat()} is not after its start "
                             f"{self.start.isoformat()}")

    def until(self, now: datetime) -> datetime:
        """Where counting stops: the end, or ``now`` if the end is in the future."""
        return min(self.end, max(now, self.start))


@dataclass(frozen=True, slots=True)
class DeviceSpan:
    """What the store knows about a device for reports: its groups and when monitoring began
    (``None``: never monitored; no transition was ever stored)."""

    name: str
    branch: str
    region: str
    first_monitored: datetime | None
    type: str = ""  # as the inventory last said (maintenance windows match on it)
    tags: tuple[str, ...] = ()  # the same


@dataclass(frozen=True, slots=True)
class ReportOutage:
    """A stored outage as the report counts it: ``counted_start``/``counted_end`` are its edges
    clipped to the counted window (``end`` is ``None`` while it is still open)."""

    device: str
    start: datetime
    end: datetime | None
    counted_start: datetime
    counted_end: datetime
    cause: str = "down"  # at its start: down, or unreachable (see Outage)
    unreachable_s: float = 0.0  # of the counted time, that while the device was unreachable
    acked_by: str | None = None  # who acknowledged it (wardtui ack; a login name), if anyone did
    ack_note: str | None = None  # ... and what they said
    maintenance_s: float = 0.0  # of the counted time, that inside maintenance windows

    @property
    def ongoing(self) -> bool:
        return self.end is None

    @property
    def counted_s(self) -> float:
        return (self.counted_end - self.counted_start).total_seconds()


@dataclass(frozen=True, slots=True)
class ReportRow:
    """One device or group over the period; the derived figures are properties.

    ``monitored_s`` is the counted time (summed over a group's devices), ``down_now`` and
    ``unknown_now`` count the devices down now and never monitored (0 or 1 for a device).
    """

    name: str
    devices: int
    monitored_s: float
    downtime_s: float
    outages: int
    longest_s: float
    down_now: int
    unknown_now: int
    is_group: bool = False
    unreachable_s: float = 0.0  # of the outages' time, that unreachable (in downtime_s or not: Report)
    maintenance_s: float = 0.0  # of the counted time, that in maintenance (in monitored_s or not: Report)

    @property
    def uptime_s(self) -> float:
        return self.monitored_s - self.downtime_s

    @property
    def availability_pct(self) -> float | None:
        """Up time over counted time; ``None`` when nothing of the period was counted."""
        return 100.0 * self.uptime_s / self.monitored_s if self.monitored_s > 0 else None

    @property
    def mttr_s(self) -> float | None:
        """Mean time to repair: downtime / outages; ``None`` without outages."""
        return self.downtime_s / self.outages if self.outages else None

    @property
    def mtbf_s(self) -> float | None:
        """Mean time between failures: uptime / outages; ``None`` without outages (the uptime is
        then the whole counted time, and no failure bounds it)."""
        return self.uptime_s / self.outages if self.outages else None

    @property
    def state(self) -> str:
        """``up``, ``down`` or ``unknown`` now; for a group, ``down N/M`` while any device is."""
        if not self.is_group:
            return "down" if self.down_now else "unknown" if self.unknown_now else "up"
        if self.down_now:
            return f"down {self.down_now}/{self.devices}"
        return "unknown" if self.unknown_now == self.devices else "up"


@dataclass(frozen=True, slots=True)
class Report:
    """Rows (by name) and the counted outages (by start) of one period."""

    period: Period
    until: datetime  # where counting stopped (see Period.until)
    now: datetime
    group_by: GroupBy
    rows: list[ReportRow]
    outages: list[ReportOutage]
    unreachable: Unreachable = "down"  # how unreachable time counted (see the module's rules)
    exclude_maintenance: bool = False  # maintenance time left out (see the module's rules)


# -- the figures (pure) ------------------------------------------------------------------------


def counted_window(span: DeviceSpan, period: Period, now: datetime) -> tuple[datetime, datetime] | None:
    """The part of ``period`` counted for the device: from the later of the period's start and
    its first monitoring, to :meth:`Period.until`; ``None`` when that is empty."""
    if span.first_monitored is None:
        return None
    start, end = max(period.start, span.first_monitored), period.until(now)
    return (start, end) if start < end else None


def device_row(span: DeviceSpan, outages: Iterable[Outage], period: Period, now: datetime,
               unreachable: Unreachable = "down", cover: Coverage = NO_COVERAGE,
               exclude_maintenance: bool = False) -> tuple[ReportRow, list[ReportOutage]]:
    """The device's row and its outages clipped to the counted window; ``cover``: its
    maintenance time (the module's rules)."""
    mine = [o for o in outages if o.device == span.name]
    down_now = int(any(o.end is None for o in mine))
    unknown_now = int(span.first_monitored is None)
    window = counted_window(span, period, now)
    if window is None:
        return ReportRow(span.name, 1, 0.0, 0.0, 0, 0.0, down_now, unknown_now), []
    start, end = window
    counted: list[ReportOutage] = []
    for o in mine:
        o_end = end if o.end is None else min(o.end, end)
        o_start = max(o.start, start)
        # An outage that ends exactly at the window's start lies wholly before it.
        if o.start < end and (o.end is None or o.end > start or o.start >= start):
            o_end = max(o_start, o_end)
            away = o.unreachable_until(end)
            away_s = 0.0 if away is None else max(0.0, (min(away, o_end) - o_start).total_seconds())
            counted.append(ReportOutage(o.device, o.start, o.end, o_start, o_end, o.cause, away_s))
    counted = merge_overlaps(counted)
    maintenance_s = cover.seconds(start, end)
    if maintenance_s:
        counted = [_with_maintenance(c, cover) for c in counted]
    away_s = sum((c.unreachable_s for c in counted), 0.0)
    monitored = (end - start).total_seconds()
    if unreachable == "excluded" or exclude_maintenance:
        own = [_own_time(c, cover, unreachable, exclude_maintenance) for c in counted]
        left_out = maintenance_s if exclude_maintenance else 0.0
        if unreachable == "excluded":  # its part inside maintenance is already left out
            left_out += sum((c.unreachable_s - _maintenance_while_unreachable(c, cover, exclude_maintenance)
                             for c in counted), 0.0)
        return ReportRow(span.name, 1, monitored - left_out, sum(own, 0.0), sum(1 for s in own if s > 0),
                         max(own, default=0.0), down_now, unknown_now, unreachable_s=away_s,
                         maintenance_s=maintenance_s), counted
    downtime = sum((c.counted_s for c in counted), 0.0)
    longest = max((c.counted_s for c in counted), default=0.0)
    return ReportRow(span.name, 1, monitored, downtime, len(counted), longest, down_now,
                     unknown_now, unreachable_s=away_s, maintenance_s=maintenance_s), counted


def _with_maintenance(c: ReportOutage, cover: Coverage) -> ReportOutage:
    in_maintenance = cover.seconds(c.counted_start, c.counted_end)
    return replace(c, maintenance_s=in_maintenance) if in_maintenance else c


def _maintenance_while_unreachable(c: ReportOutage, cover: Coverage, exclude_maintenance: bool) -> float:
    """Of the outage's unreachable time (its first ``unreachable_s`` seconds: an outage is
    unreachable up to its ``down_from``; merged overlaps are read the same way), the part in
    maintenance, if maintenance is left out."""
    if not exclude_maintenance or not c.unreachable_s:
        return 0.0
    return cover.seconds(c.counted_start, c.counted_start + timedelta(seconds=c.unreachable_s))


def _own_time(c: ReportOutage, cover: Coverage, unreachable: Unreachable, exclude_maintenance: bool) -> float:
    """The outage's time that counts as downtime when unreachable time or maintenance is left
    out; rounded to the microsecond, so that an outage wholly left out is exactly 0."""
    if not c.maintenance_s and not c.unreachable_s:
        return c.counted_s
    own = c.counted_s - (c.maintenance_s if exclude_maintenance else 0.0)
    if unreachable == "excluded":
        own -= c.unreachable_s - _maintenance_while_unreachable(c, cover, exclude_maintenance)
    return max(0.0, round(own, 6))


def merge_overlaps(outages: Sequence[ReportOutage]) -> list[ReportOutage]:
    """One device's outages with those that overlap merged into one: a device is not down twice
    at once. Stored history can hold overlaps (a replayed or out-of-order write, issue 12), and
    summing them gave downtime beyond the counted time (availability -31 % was seen). Merged,
    downtime never exceeds the window, so availability stays within 0-100 %. Outages that only
    touch (one ends as the next starts) stay two."""
    merged: list[ReportOutage] = []
    for o in sorted(outages, key=lambda o: (o.counted_start, o.counted_end)):
        last = merged[-1] if merged else None
        if last is None or o.counted_start >= last.counted_end:
            merged.append(o)
            continue
        end = None if last.end is None or o.end is None else max(last.end, o.end)
        counted_end = max(last.counted_end, o.counted_end)
        away = min(last.unreachable_s + o.unreachable_s, (counted_end - last.counted_start).total_seconds())
        merged[-1] = ReportOutage(last.device, min(last.start, o.start), end, last.counted_start,
                                  counted_end, last.cause if last.cause == o.cause else "down", away)
    return merged


def group_row(name: str, rows: Sequence[ReportRow]) -> ReportRow:
    """A group's row: sums of its devices' times and counts, the longest of their outages.
    Availability is therefore weighted by each device's counted time."""
    return ReportRow(name, sum(r.devices for r in rows), sum((r.monitored_s for r in rows), 0.0),
                     sum((r.downtime_s for r in rows), 0.0), sum(r.outages for r in rows),
                     max((r.longest_s for r in rows), default=0.0),
                     sum(r.down_now for r in rows), sum(r.unknown_now for r in rows), is_group=True,
                     unreachable_s=sum((r.unreachable_s for r in rows), 0.0),
                     maintenance_s=sum((r.maintenance_s for r in rows), 0.0))


def group_of(span: DeviceSpan, group_by: GroupBy) -> str:
    if group_by == "device":
        return span.name
    return span.branch if group_by == "branch" else span.region


def compute(spans: Iterable[DeviceSpan], outages: Iterable[Outage], period: Period, now: datetime,
            group_by: GroupBy = "device", unreachable: Unreachable = "down",
            windows: Sequence[Window] = (), exclude_maintenance: bool = False) -> Report:
    """The report over ``spans``: a row per device, or per branch or region of them;
    ``unreachable``: unreachable time counted as down, or left out; ``windows``: the
    maintenance windows, their time shown apart and left out with ``exclude_maintenance``
    (the module's rules)."""
    by_device: dict[str, list[Outage]] = {}
    for o in outages:
        by_device.setdefault(o.device, []).append(o)
    maintenance = MaintenanceCover(windows, period.start, period.until(now))
    groups: dict[str, list[ReportRow]] = {}
    counted: list[ReportOutage] = []
    for span in spans:
        cover = maintenance.of(span.name, span.branch, span.region, span.type, span.tags)
        row, clipped = device_row(span, by_device.get(span.name, ()), period, now, unreachable, cover,
                                  exclude_maintenance)
        groups.setdefault(group_of(span, group_by), []).append(row)
        counted += clipped
    if group_by == "device":
        rows = [r for members in groups.values() for r in members]
    else:
        rows = [group_row(name, members) for name, members in groups.items()]
    rows.sort(key=lambda r: r.name)
    counted.sort(key=lambda c: (c.start, c.device))
    return Report(period, period.until(now), now, group_by, rows, counted, unreachable,
                  exclude_maintenance)


# -- the store ---------------------------------------------------------------------------------


async def device_spans(store: HistoryStore, devices: Collection[str] | None = None,
                       group: tuple[GroupBy, str] | None = None) -> list[DeviceSpan]:
    """Every device the store knows (or the named ``devices``, or those of ``group``, e.g.
    ``("branch", "north-b001")``), with when it was first monitored."""
    from sqlalchemy import func, select  # here: the dashboard imports this module before it needs SQLAlchemy

    from store.models import devices_table, outages_table, transitions_table

    d, t, o = devices_table, transitions_table, outages_table
    first_at = select(func.min(t.c.at)).where(t.c.device_id == d.c.id).scalar_subquery()
    first_down = select(func.min(o.c.start)).where(o.c.device_id == d.c.id).scalar_subquery()
    stmt = select(d.c.name, d.c.branch, d.c.region, d.c.type, d.c.tags, first_at.label("first_at"),
                  first_down.label("first_down"))
    if group is not None and group[0] != "device":
        stmt = stmt.where(d.c[group[0]] == group[1])
    elif group is not None:
        stmt = stmt.where(d.c.name == group[1])
    async with store.engine.connect() as conn:
        rows = (await conn.execute(stmt.order_by(d.c.name))).all()
    wanted = None if devices is None else set(devices)
    return [DeviceSpan(r.name, r.branch, r.region, _first(r.first_at, r.first_down), r.type or "",
                       _tags(r.tags)) for r in rows if wanted is None or r.name in wanted]


def _tags(text: str | None) -> tuple[str, ...]:
    """The tags column's JSON array (a row edited by hand into something else: no tags)."""
    import json

    try:
        value = json.loads(text or "[]")
    except ValueError:
        return ()
    return tuple(t for t in value if isinstance(t, str)) if isinstance(value, list) else ()


def _first(first_at: datetime | None, first_down: datetime | None) -> datetime | None:
    if first_at is None:  # no transition: never monitored (an outage always has one)
        return None
    return _aware(first_at) if first_down is None else min(_aware(first_at), _aware(first_down))


def _aware(at: datetime) -> datetime:
    # SQLite's MIN() may hand back the stored text's naive value: it is UTC.
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


async def availability(store: HistoryStore, period: Period, *, group_by: GroupBy = "device",
                       devices: Collection[str] | None = None,
                       group: tuple[GroupBy, str] | None = None,
                       now: datetime | None = None, unreachable: Unreachable = "down",
                       exclude_maintenance: bool = False) -> Report:
    """The availability report of ``period`` from ``store``: of every device, or of the named
    ``devices`` (a dashboard's current view), or of one ``group`` such as ``("region", "north")``;
    maintenance time shown apart, and left out with ``exclude_maintenance``."""
    from store.acks import Acknowledgements
    from store.maintenance_windows import MaintenanceWindows

    now = now or datetime.now(UTC)
    spans = await device_spans(store, devices, group)
    names = {s.name for s in spans}
    outages = [o for o in await store.outages(since=period.start) if o.device in names]
    windows = await MaintenanceWindows(store.db).all()  # removed ones too: they count until removed
    report = compute(spans, outages, period, now, group_by, unreachable, windows, exclude_maintenance)
    acks = await Acknowledgements(store.db).of_outages(since=period.start)
    return with_acks(report, {k: (a.who, a.note) for k, a in acks.items()}) if acks else report


def with_acks(report: Report, acks: Mapping[tuple[str, datetime], tuple[str, str]]) -> Report:
    """``report`` with each outage that someone acknowledged saying who and their note
    (``acks``: (device, outage start) -> (who, note); merged outages: that of their start)."""
    outages = []
    for o in report.outages:
        ack = acks.get((o.device, o.start))
        outages.append(o if ack is None else replace(o, acked_by=ack[0], ack_note=ack[1]))
    return replace(report, outages=outages)
