"""Titles of grouped notifications: one line a NOC reads at a glance, whatever the group holds."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from poller.notify.model import AlertItem
from poller.notify.titles import title

AT = datetime(2026, 12, 6, 8, 0, tzinfo=UTC)
B = (("branch", "north-b002"),)


def item(name: str, state: str = "down", *parents: str) -> AlertItem:
    return AlertItem(name, "127.0.0.1", state, AT, parents=parents)  # type: ignore[arg-type]


def kids(n: int, *parents: str, prefix: str = "d") -> list[AlertItem]:
    return [item(f"{prefix}{i}", "unreachable", *parents) for i in range(n)]


def roots_of(down: dict[str, tuple[str, ...]]) -> object:
    """Roots as the grouper computes them: the parents named DOWN in ``down``'s keys, through
    the unreachable ones named in its values."""
    def roots(name: str) -> frozenset[str]:
        return frozenset(down.get(name, ()))
    return roots


def no_roots(name: str) -> frozenset[str]:
    return frozenset()


def behind(rtr: str, n: int) -> object:
    return roots_of({f"d{i}": (rtr,) for i in range(n)})


@pytest.mark.parametrize(("firing", "resolved", "roots", "expected"), [
    ([item("north-b002-rtr"), *kids(40, "north-b002-rtr")], [], behind("north-b002-rtr", 40),
     "north-b002-rtr DOWN, 40 devices unreachable behind it"),
    ([item("north-b002-rtr"), *kids(1, "north-b002-rtr")], [], behind("north-b002-rtr", 1),
     "north-b002-rtr DOWN, 1 device unreachable behind it"),
    ([item("north-b002-rtr")], [], no_roots, "north-b002-rtr DOWN"),
    ([item("north-b002-rtr"), *kids(3, "x")], [], no_roots,
     "north-b002-rtr DOWN, 3 other devices unreachable"),
    ([item("north-b002-rtr"), *kids(2, "north-b002-rtr"), item("z", "unreachable")], [],
     behind("north-b002-rtr", 2), "north-b002-rtr DOWN, 2 devices unreachable behind it, "
                                  "1 other device unreachable"),
    ([item("a"), item("b"), item("c"), *kids(40, "a")], [], behind("a", 40),
     "3 devices DOWN in north-b002, 40 unreachable"),
    ([item("a"), item("b")], [], no_roots, "2 devices DOWN in north-b002"),
    (kids(40, "core"), [], behind("core-rtr", 40), "40 devices unreachable in north-b002 behind core-rtr"),
    (kids(2, "core"), [], roots_of({"d0": ("c1",), "d1": ("c2",)}),
     "2 devices unreachable in north-b002 behind 2 devices DOWN"),
    (kids(2, "core"), [], no_roots, "2 devices unreachable in north-b002"),
    (kids(1, "core"), [], behind("core-rtr", 1), "d0 unreachable behind core-rtr"),
])
def test_firing_titles(firing: list[AlertItem], resolved: list[tuple[AlertItem, str]], roots: object,
                       expected: str) -> None:
    assert title(firing, resolved, B, roots) == expected  # type: ignore[arg-type]


def up(name: str, was: str = "down") -> tuple[AlertItem, str]:
    return (AlertItem(name, "127.0.0.1", "up", AT, ended=AT), was)


@pytest.mark.parametrize(("resolved", "expected"), [
    ([up("north-b002-rtr"), *(up(f"d{i}", "unreachable") for i in range(40))],
     "north-b002-rtr UP again, 40 devices reachable"),
    ([up("north-b002-rtr"), up("d0", "unreachable")], "north-b002-rtr UP again, 1 device reachable"),
    ([up("a"), up("b"), up("c"), *(up(f"d{i}", "unreachable") for i in range(40))],
     "3 devices UP again in north-b002, 40 reachable"),
    ([up("north-b002-rtr")], "north-b002-rtr UP again"),
    ([up("d0", "unreachable")], "d0 reachable again"),
    ([up("d0", "unreachable"), up("d1", "unreachable")], "2 devices reachable again in north-b002"),
])
def test_resolved_titles(resolved: list[tuple[AlertItem, str]], expected: str) -> None:
    assert title([], resolved, B, no_roots) == expected


def test_a_message_with_both_says_what_is_open_first() -> None:
    firing = [item("north-b002-d07")]
    resolved = [up("north-b002-rtr"), *(up(f"d{i}", "unreachable") for i in range(39))]
    assert title(firing, resolved, B, no_roots) == \
        "north-b002-d07 DOWN; north-b002-rtr UP again, 39 devices reachable"


def test_the_place_joins_several_labels_and_leaves_out_empty_ones() -> None:
    two = [item("a"), item("b")]
    assert title(two, [], (("region", "north"), ("branch", "north-b002")), no_roots) == \
        "2 devices DOWN in north/north-b002"
    assert title(two, [], (("region", ""),), no_roots) == "2 devices DOWN"
    assert title(two, [], (), no_roots) == "2 devices DOWN"


@pytest.mark.parametrize("name", ["evil\nSubject: x", "\x1b[31mred\x1b[0m", "a\u202eb", "x\x00y\ttab"])
def test_a_title_stays_one_line_without_control_characters(name: str) -> None:
    text = title([item(name)], [up(name)], (("branch", name),), no_roots)
    assert "\n" not in text and "\x1b" not in text and "\u202e" not in text and "\x00" not in text
    assert text.count("\ufffd") >= 2  # visibly replaced, not silently dropped
    assert "\t" not in text


@pytest.mark.parametrize("name", ["[bold]x[/]", "<script>alert(1)</script>", "*_~`x`~_*"])
def test_markup_in_a_name_is_kept_literally_for_each_receiver_to_escape(name: str) -> None:
    assert title([item(name)], [], B, no_roots) == f"{name} DOWN"
