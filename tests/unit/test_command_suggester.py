"""CommandSuggester sorts the device names at its first completion, not when it is made (the
dashboard makes one before its first frame), and completes as if it had sorted them then."""

from __future__ import annotations

import asyncio

from wardtui.widgets.command_line import CommandSuggester


class Counted(str):
    compared = 0

    def __lt__(self, other: str) -> bool:
        Counted.compared += 1
        return str.__lt__(self, other)


def test_names_are_sorted_at_the_first_completion_and_as_they_were_when_made() -> None:
    names = [Counted(n) for n in ("sw-b", "Sw-a", "rtr-1", "sw-C", "ap-9")]
    trackers = dict.fromkeys(names)
    Counted.compared = 0
    suggester = CommandSuggester(trackers)
    assert Counted.compared == 0  # nothing sorted yet
    trackers[Counted("sw-d")] = None  # what changes later is not what was given
    assert suggester.device_prefix("sw") == ["Sw-a", "sw-b", "sw-C"]
    assert Counted.compared > 0
    assert suggester.completions("device s") == ["device Sw-a", "device sw-b", "device sw-C"]
    assert asyncio.run(suggester.get_suggestion("probe r")) == "probe rtr-1"
    assert suggester.device_prefix("x") == [] and CommandSuggester([]).device_prefix("a") == []
