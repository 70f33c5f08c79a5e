"""Maintenance windows as pure logic (poller/notify/windows.py): one-off and recurring windows,
daylight-saving changes both ways, matching, and the grouper's Suppressions over windows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from poller.inventory import Device
from poller.notify.grouper import Grouper
from poller.notify.model import Notification, Route
from poller.notify.suppressions import Suppressions
from poller.notify.windows import (
    Window,
    WindowSuppressions,
    active,
    check_cron,
    covering,
    local_start,
    matches,
    next_change,
    occurrence,
    parse_matcher,
    zone,
)

T0 = datetime(2026, 12, 7, 22, 0, tzinfo=UTC)
H = timedelta(hours=1)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


def device(name: str = "north-b002-rtr", branch: str = "north-b002", region: str = "north",
           type: str = "router", tags: tuple[str, ...] = ()) -> Device:
    return Device(name=name, address="127.0.0.1", branch=branch, region=region, type=type, tags=tags)


def one_off(*matchers: str, start: datetime = T0, end: datetime = T0 + 2 * H) -> Window:
    return Window(1, tuple(parse_matcher(m) for m in matchers or ("branch=north-b002",)),
                  starts_at=start, ends_at=end, note="n")


def daily(hour_minute: str = "0 2", hours: float = 2, tz: str = "Europe/Paris", *matchers: str) -> Window:
    return Window(2, tuple(parse_matcher(m) for m in matchers or ("branch=north-b002",)),
                  cron=f"{hour_minute} * * *", duration_s=hours * 3600, tz=tz)


# -- one-off -------------------------------------------------------------------------------


def test_one_off_is_active_from_its_start_included_to_its_end_excluded() -> None:
    w = one_off()
    assert not active(w, T0 - timedelta(microseconds=1))
    assert active(w, T0) and active(w, T0 + H)
    assert not active(w, T0 + 2 * H)
    assert next_change([w], T0 - H) == T0
    assert next_change([w], T0) == T0 + 2 * H
    assert next_change([w], T0 + 2 * H) is None


def test_a_removed_window_is_not_active_after_its_removal() -> None:
    w = Window(1, (parse_matcher("device=a"),), starts_at=T0, ends_at=T0 + 2 * H, removed_at=T0 + H)
    assert active(w, T0 + 30 * timedelta(minutes=1))
    assert not active(w, T0 + H)
    assert next_change([w], T0 + timedelta(minutes=10)) == T0 + H


def test_next_change_is_the_earliest_of_several_windows() -> None:
    early = one_off(start=T0 + H, end=T0 + 5 * H)
    late = one_off(start=T0 + 3 * H, end=T0 + 4 * H)
    assert next_change([late, early], T0) == T0 + H
    assert next_change([late, early], T0 + 2 * H) == T0 + 3 * H
    assert next_change([late, early], T0 + 3 * H) == T0 + 4 * H
    assert next_change([], T0) is None


def test_a_window_must_start_before_it_ends() -> None:
    with pytest.raises(ValueError, match="start before its end"):
        one_off(start=T0, end=T0)


# -- recurring, in UTC and in a zone with daylight saving ----------------------------------


def test_recurring_in_utc() -> None:
    w = daily("30 1", 1.5, "UTC")
    assert occurrence(w, utc(2026, 12, 8, 2, 0)) == (utc(2026, 12, 8, 1, 30), utc(2026, 12, 8, 3, 0))
    assert not active(w, utc(2026, 12, 8, 3, 0))
    assert not active(w, utc(2026, 12, 8, 1, 29, 59))
    assert next_change([w], utc(2026, 12, 8, 12, 0)) == utc(2026, 12, 9, 1, 30)


def test_daily_02_00_paris_stays_at_02_00_local_in_winter_and_summer() -> None:
    w = daily()
    # CET (UTC+1) in winter, CEST (UTC+2) in summer: the UTC start moves, the local one does not.
    assert occurrence(w, utc(2027, 1, 15, 1, 30)) == (utc(2027, 1, 15, 1, 0), utc(2027, 1, 15, 3, 0))
    assert occurrence(w, utc(2027, 7, 15, 0, 30)) == (utc(2027, 7, 15, 0, 0), utc(2027, 7, 15, 2, 0))
    assert not active(w, utc(2027, 7, 15, 2, 30))  # 04:30 local: over


def test_spring_forward_week_in_paris() -> None:
    """2027-03-28: at 02:00 CET clocks go to 03:00 CEST; 02:00 local does not exist that day.
    Days before start at 01:00 UTC (02:00 CET), days after at 00:00 UTC (02:00 CEST); on the
    day itself the window begins when the gap ends, 03:00 CEST (01:00 UTC), and lasts 2 h."""
    w = daily()
    covering_0130 = [occurrence(w, utc(2027, 3, d, 1, 30)) for d in (26, 27, 28, 29, 30)]
    assert [c[0] if c else None for c in covering_0130] == [
        utc(2027, 3, 26, 1), utc(2027, 3, 27, 1), utc(2027, 3, 28, 1),
        utc(2027, 3, 29, 0), utc(2027, 3, 30, 0)]
    assert occurrence(w, utc(2027, 3, 29, 0, 30)) == (utc(2027, 3, 29, 0), utc(2027, 3, 29, 2))
    assert occurrence(w, utc(2027, 3, 28, 2, 59)) == (utc(2027, 3, 28, 1), utc(2027, 3, 28, 3))
    assert not active(w, utc(2027, 3, 28, 0, 59))
    # Local wall clock of each start: 02:00 every day but the change day's 03:00.
    paris = zone("Europe/Paris")
    local = [occurrence(w, at)[0].astimezone(paris).strftime("%d %H:%M")  # type: ignore[index]
             for at in (utc(2027, 3, 27, 1, 30), utc(2027, 3, 28, 1, 30), utc(2027, 3, 29, 0, 30))]
    assert local == ["27 02:00", "28 03:00", "29 02:00"]


def test_a_02_30_window_on_the_spring_forward_day_starts_when_the_gap_ends() -> None:
    """02:30 Paris does not exist on 2027-03-28: as cron does, the window starts at the first
    instant after the gap (03:00 CEST = 01:00 UTC) and still lasts its full hour."""
    w = daily("30 2", 1)
    assert occurrence(w, utc(2027, 3, 28, 1, 30)) == (utc(2027, 3, 28, 1, 0), utc(2027, 3, 28, 2, 0))
    assert next_change([w], utc(2027, 3, 27, 23, 0)) == utc(2027, 3, 28, 1, 0)
    # The day before (CET) and after (CEST), 02:30 local as usual.
    assert occurrence(w, utc(2027, 3, 27, 1, 45))[0] == utc(2027, 3, 27, 1, 30)  # type: ignore[index]
    assert occurrence(w, utc(2027, 3, 29, 0, 45))[0] == utc(2027, 3, 29, 0, 30)  # type: ignore[index]
    assert local_start(datetime(2027, 3, 28, 2, 30), zone("Europe/Paris")) == utc(2027, 3, 28, 1, 0)


def test_fall_back_week_in_paris() -> None:
    """2027-10-31: at 03:00 CEST clocks go back to 02:00 CET; 02:00-02:59 local happen twice.
    A 02:00 start happens once, at its first occurrence (CEST, 00:00 UTC), and lasts 2 h of real
    time (to 03:00 CET); the days after start at 01:00 UTC (02:00 CET)."""
    w = daily()
    assert occurrence(w, utc(2027, 10, 30, 0, 30)) == (utc(2027, 10, 30, 0), utc(2027, 10, 30, 2))
    assert occurrence(w, utc(2027, 10, 31, 0, 30)) == (utc(2027, 10, 31, 0), utc(2027, 10, 31, 2))
    assert occurrence(w, utc(2027, 10, 31, 1, 30)) == (utc(2027, 10, 31, 0), utc(2027, 10, 31, 2))
    assert not active(w, utc(2027, 10, 31, 2, 0))  # not a second window from the repeated 02:00
    assert next_change([w], utc(2027, 10, 31, 2, 0)) == utc(2027, 11, 1, 1, 0)
    assert occurrence(w, utc(2027, 11, 1, 1, 30)) == (utc(2027, 11, 1, 1), utc(2027, 11, 1, 3))
    w30 = daily("30 2", 1)  # 02:30 in the repeated hour: once, the first (CEST, 00:30 UTC)
    assert occurrence(w30, utc(2027, 10, 31, 1, 0)) == (utc(2027, 10, 31, 0, 30), utc(2027, 10, 31, 1, 30))
    assert not active(w30, utc(2027, 10, 31, 1, 45))


def test_overlapping_occurrences_make_one_change() -> None:
    w = Window(3, (parse_matcher("type=atm"),), cron="0 * * * *", duration_s=90 * 60, tz="UTC")
    assert active(w, utc(2027, 1, 1, 5, 59))
    change = next_change([w], utc(2027, 1, 1, 5, 0))
    assert change is not None and change > utc(2027, 1, 2)  # always active: no end soon


def test_bad_cron_and_zone_are_refused() -> None:
    for bad in ("0 25 * * *", "* * * *", "0 0 * * * *", "@reboot", "banana", "0 0 31 2 *"):
        with pytest.raises(ValueError, match="bad cron"):
            check_cron(bad)
    for bad in ("Mars/Base", "", "../etc/passwd", "/etc/localtime"):
        with pytest.raises(ValueError, match="unknown time zone"):
            zone(bad)
    with pytest.raises(ValueError):
        Window(4, (), cron="0 2 * * *", duration_s=0, tz="UTC")
    with pytest.raises(ValueError, match="timezone-aware"):
        Window(5, (), starts_at=datetime(2027, 1, 1), ends_at=datetime(2027, 1, 2))
    assert check_cron("0 0 29 2 *") == "0 0 29 2 *"  # leap days: rare, but it happens


# -- matching ------------------------------------------------------------------------------


@pytest.mark.parametrize(("matcher", "hit", "miss"), [
    ("device=north-b002-rtr", device(), device(name="north-b002-atm1")),
    ("branch=north-b002", device(), device(branch="north-b003")),
    ("region=north", device(), device(region="south")),
    ("type=router", device(), device(type="atm")),
    ("tag=core", device(tags=("edge", "core")), device(tags=("edge",))),
])
def test_matching_by_each_key(matcher: str, hit: Device, miss: Device) -> None:
    w = one_off(matcher)
    assert matches(w, hit) and not matches(w, miss)


def test_several_matchers_are_anded() -> None:
    w = one_off("region=north", "type=atm", "tag=pci")
    assert matches(w, device(type="atm", tags=("pci",)))
    assert not matches(w, device(type="atm"))
    assert not matches(w, device(type="router", tags=("pci",)))
    assert not matches(w, device(region="south", type="atm", tags=("pci",)))


def test_matcher_values_are_literal_and_keys_checked() -> None:
    w = one_off("device=[bold]x[/]")
    assert matches(w, device(name="[bold]x[/]")) and not matches(w, device(name="x"))
    assert not matches(one_off("device=north.*"), device())  # "=" is equality, not a pattern
    with pytest.raises(ValueError, match="unknown match key 'state'"):
        parse_matcher("state=down")
    with pytest.raises(ValueError, match="KEY=VALUE"):
        parse_matcher("branch")
    with pytest.raises(ValueError, match="empty"):
        parse_matcher("branch=")


def test_covering_needs_both_match_and_time() -> None:
    windows = [one_off("branch=north-b002"), one_off("branch=north-b003")]
    assert [w.matchers[0].value for w in covering(windows, device(), T0 + H)] == ["north-b002"]
    assert covering(windows, device(), T0 - H) == []


# -- the grouper's Suppressions ------------------------------------------------------------


def test_window_suppressions_silence_matching_devices_while_active() -> None:
    s = WindowSuppressions([one_off("branch=north-b002"), daily("0 2", 2, "Europe/Paris", "tag=backup")])
    checked: Suppressions = s  # the protocol the grouper takes
    assert checked.silenced(device(), T0 + H)
    assert not checked.silenced(device(), T0 + 3 * H)
    assert not checked.silenced(device(branch="north-b003"), T0 + H)
    backup = device(branch="x", tags=("backup",))
    assert checked.silenced(backup, utc(2027, 1, 15, 1, 30))
    assert not checked.silenced(backup, utc(2027, 1, 15, 3))
    assert checked.acked(device()) is None
    checked.ended(device(), T0)  # nothing to end


def test_replace_says_whether_anything_changed() -> None:
    s = WindowSuppressions()
    assert s.replace([one_off()]) and not s.replace([one_off()])
    assert s.replace([]) and s.windows == ()


def test_the_grouper_keeps_a_window_quiet_then_notifies_what_is_still_down() -> None:
    """The grouper with WindowSuppressions: 10 devices of a branch in a 60 s window fail: nothing
    is sent; another branch's failure is sent at once; when the window ends, one message lists
    the 10 still down."""
    t = [0.0]

    def wall() -> datetime:
        return T0 + timedelta(seconds=t[0])

    window = one_off("branch=north-b009", start=T0, end=T0 + timedelta(seconds=60))
    grouper = Grouper([Route("noc", ("ops",), group_wait=0.5, group_interval=5.0, repeat_interval=1000.0)],
                      site="hq", suppressions=WindowSuppressions([window]), clock=lambda: t[0], wall=wall,
                      silence_recheck=1.0)

    def run_until(end: float) -> list[Notification]:
        out: list[Notification] = []
        while (at := grouper.next_due()) is not None and at <= end:
            t[0] = at
            out += grouper.due()
        t[0] = end
        return out

    for i in range(10):
        grouper.begin(device(f"north-b009-d{i}", branch="north-b009"), "down", wall())
    grouper.begin(device("south-b001-rtr", branch="south-b001"), "down", wall())
    first = run_until(30.0)
    assert [n.title for n in first] == ["south-b001-rtr DOWN"]
    assert run_until(59.9) == []
    after = run_until(100.0)
    assert len(after) == 1 and len(after[0].firing) == 10
    assert 60.0 <= (after[0].created - T0).total_seconds() <= 61.5


def test_window_suppressions_agree_with_active_hour_by_hour_across_a_dst_change() -> None:
    """The kept spans never answer differently from evaluating the window afresh: every 10 min
    from the Saturday before spring-forward to the Tuesday after, forwards then backwards."""
    windows = [daily("30 2", 1), one_off("branch=north-b002", start=utc(2027, 3, 28, 0, 15),
                                         end=utc(2027, 3, 28, 0, 45))]
    s = WindowSuppressions(windows)
    times = [utc(2027, 3, 27) + timedelta(minutes=10 * i) for i in range(4 * 24 * 6)]
    for at in [*times, *reversed(times)]:
        assert s.silenced(device(), at) == any(active(w, at) for w in windows), at


def test_a_storm_of_questions_costs_one_evaluation_per_window_and_change(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import poller.notify.windows as windows_module

    calls: list[datetime] = []
    real = windows_module.active

    def counted(window: Window, at: datetime) -> bool:
        calls.append(at)
        return real(window, at)

    monkeypatch.setattr(windows_module, "active", counted)
    s = WindowSuppressions([daily("0 2", 2, "Europe/Paris")])
    start = utc(2027, 1, 15, 0, 0)  # 01:00 Paris: the window starts at 01:00 UTC
    answers = [s.silenced(device(), start + timedelta(milliseconds=i)) for i in range(10_000)]
    assert answers == [False] * 10_000 and len(calls) == 1
    assert s.silenced(device(), utc(2027, 1, 15, 1, 0)) and len(calls) == 2  # the start: asked again
    assert s.silenced(device(), utc(2027, 1, 15, 2, 59)) and len(calls) == 2
    assert not s.silenced(device(), utc(2027, 1, 15, 3, 0)) and len(calls) == 3
    assert s.replace([]) and not s.silenced(device(), utc(2027, 1, 15, 1, 30))
