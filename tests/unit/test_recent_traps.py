"""RecentTraps: the drill-down's memory of traps stays bounded per device and in devices."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from poller.events import Trap
from wardtui.widgets.device_traps import RecentTraps, trap_line, traps_text

T0 = datetime(2026, 12, 6, 12, 0, 0, tzinfo=UTC)


def trap(device: str, n: int, kind: str = "linkDown") -> Trap:
    return Trap(device, "127.0.0.1", T0 + timedelta(seconds=n), kind, "1.3.6.1.6.3.1.1.5.3", "2c",
                12.5, n, f"Gi0/{n}", f"1.3.6.1.2.1.2.2.1.1.{n}={n}")


def test_the_last_traps_of_the_devices_that_sent_last_are_kept() -> None:
    recent = RecentTraps(per_device=3, devices=2)
    for n in range(5):
        recent.add(trap("a", n))
    assert [t.ifindex for t in recent.of("a")] == [2, 3, 4]
    recent.add(trap("b", 0))
    recent.add(trap("a", 5))  # a sent last: b goes first when a third device comes
    recent.add(trap("c", 0))
    assert recent.of("b") == () and len(recent.of("a")) == 3 and len(recent.of("c")) == 1


def test_lines_are_newest_first_with_what_the_trap_said() -> None:
    assert trap_line(trap("a", 3)) == \
        "2026-12-06 12:00:03  linkDown  ifIndex 3 Gi0/3  v2c  1.3.6.1.2.1.2.2.1.1.3=3"
    title, lines = traps_text([trap("a", 1), trap("a", 2, "linkUp")])
    assert title == "traps · the last 2 received (UTC)"
    assert [line.split("  ")[1] for line in lines.splitlines()] == ["linkUp", "linkDown"]
