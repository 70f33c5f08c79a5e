"""What the table's ack/maint cell and the drill-down's lines say of a device's quiet state
(wardtui/widgets/quiet_marks.py), on real trackers driven as the engine drives them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from poller.notify.acks import Ack
from poller.notify.windows import Window, parse_matcher
from poller.quiet import Quiet
from poller.state import DeviceTracker, StateConfig
from tests.fakes import make_devices
from wardtui.widgets.quiet_marks import mark, quiet_lines

T0 = datetime(2026, 12, 6, 9, 0, tzinfo=UTC)
WHO = "\x1b]0;pwned\x07[b]al[/b]"
NOTE = "[link=http://x]on it[/link]\nline two \u202eevil"


def tracker(i: int, down_at: datetime | None = None) -> DeviceTracker:
    made = DeviceTracker(make_devices(i + 1)[i], StateConfig())
    at = T0 - timedelta(minutes=10)
    made.apply_check(True, at, at, at.timestamp(), 1.0)
    if down_at is not None:
        made.apply_check(False, down_at, down_at, down_at.timestamp(), None)
    return made


def test_an_acknowledged_outage_is_marked_with_who_cleaned_and_only_while_it_lasts() -> None:
    down = tracker(3, T0 - timedelta(minutes=2))
    assert down.down_since is not None
    ack = Ack(1, down.device.name, down.down_since, NOTE, WHO, T0 - timedelta(minutes=1))
    quiet = Quiet((), (ack,), T0)
    text, kind = mark(quiet, down, T0)
    assert kind == "ack" and text == "ack:\ufffd]0;pwned\ufffd[b]al[/b]"
    [line] = quiet_lines(quiet, down, T0)
    assert line == ("acknowledged by \ufffd]0;pwned\ufffd[b]al[/b] at 2026-12-06 08:59:00 UTC: "
                    "[link=http://x]on it[/link]\ufffdline two \ufffdevil")
    # Recovered: the acknowledgement took that outage only.
    down.apply_check(True, T0, T0, T0.timestamp(), 1.0)
    assert mark(quiet, down, T0) == ("", "") and quiet_lines(quiet, down, T0) == []
    # Down again: another outage, not acknowledged.
    later = T0 + timedelta(minutes=1)
    down.apply_check(False, later, later, later.timestamp(), None)
    assert down.down_since is not None and down.down_since != ack.down_since
    assert mark(quiet, down, later) == ("", "")


def test_a_window_marks_the_devices_it_matches_while_it_is_active() -> None:
    window = Window(7, (parse_matcher("branch=b2"),), starts_at=T0, ends_at=T0 + timedelta(hours=2),
                    note=NOTE, created_by=WHO, created_at=T0)
    quiet = Quiet((window,), (), T0)
    inside, outside = tracker(2), tracker(3)  # branches b2 and b3
    assert mark(quiet, inside, T0 + timedelta(minutes=1)) == ("maint", "maint")
    assert mark(quiet, outside, T0 + timedelta(minutes=1)) == ("", "")
    assert mark(quiet, inside, T0 - timedelta(seconds=1)) == ("", "")  # not started
    assert mark(quiet, inside, T0 + timedelta(hours=2)) == ("", "")  # over
    [line] = quiet_lines(quiet, inside, T0 + timedelta(minutes=1))
    assert line == ("in maintenance until 2026-12-06 11:00:00 UTC (window 7 by "
                    "\ufffd]0;pwned\ufffd[b]al[/b]): [link=http://x]on it[/link]\ufffdline two \ufffdevil")


def test_acknowledged_and_in_maintenance_says_both() -> None:
    down = tracker(2, T0 - timedelta(minutes=2))
    assert down.down_since is not None
    window = Window(1, (parse_matcher(f"device={down.device.name}"),), starts_at=T0 - timedelta(hours=1),
                    ends_at=T0 + timedelta(hours=1), note="n", created_by="bob", created_at=T0)
    quiet = Quiet((window,), (Ack(1, down.device.name, down.down_since, "n", "alice", T0),), T0)
    assert mark(quiet, down, T0) == ("maint+ack", "maint")
    assert [line.split(" ")[0] for line in quiet_lines(quiet, down, T0)] == ["acknowledged", "in"]
