"""The transition log at a high rate of transitions: it renders only what comes into view, and
what it shows, scrolled anywhere, is every kept row of every line written, in order."""

from __future__ import annotations

import random
from datetime import UTC, datetime

from rich.console import Console
from rich.text import Text
from textual.app import App, ComposeResult

from poller.events import State, Transition
from wardtui.widgets.transition_log import TransitionLog

AT = datetime(2026, 11, 28, 3, 0, tzinfo=UTC)


class LogApp(App[None]):
    def __init__(self, log: TransitionLog) -> None:
        super().__init__()
        self.log_widget = log

    def compose(self) -> ComposeResult:
        yield self.log_widget


def expected_rows(lines: list[str], width: int) -> list[str]:
    """Each plain line wrapped at ``width`` as rich wraps it, from scratch."""
    console = Console(width=width, color_system=None, legacy_windows=False)
    return [part.plain.rstrip() for line in lines for part in Text(line).wrap(console, width)]


async def test_a_tick_of_many_transitions_renders_only_the_rows_in_view() -> None:
    log = TransitionLog(max_lines=2000)
    async with LogApp(log).run_test(size=(120, 12)) as pilot:
        await pilot.pause()
        rendered = 0
        original = log._strips

        def counting(entry):  # type: ignore[no-untyped-def]
            nonlocal rendered
            rendered += entry.strips is None
            return original(entry)

        log._strips = counting  # type: ignore[method-assign]
        for tick in range(4):
            log.add_transitions([Transition(f"dev{tick}-{i}", f"127.5.{tick}.{i % 250 + 1}", State.UP,
                                            State.DOWN, AT, AT, None) for i in range(500)])
            log.flush()
            await pilot.pause()
        assert rendered <= 4 * 2 * log.size.height, rendered  # about a screenful a tick, not 2,000
        bottom = log.render_line(log.size.height - 1).text
        assert "dev3-499" in bottom, bottom
        assert len(log.lines_written) == 2000 and "dev3-499" in log.lines_written[-1]


async def test_scrolled_anywhere_the_log_shows_its_kept_rows_in_order() -> None:
    """Lines of random length, some wrapping onto several rows, at most max_lines rows kept
    (the oldest line may lose its first rows): every row drawn, scrolled from top to bottom,
    is the row computed from scratch."""
    rng = random.Random(7)
    log = TransitionLog(max_lines=37)
    async with LogApp(log).run_test(size=(44, 9)) as pilot:
        await pilot.pause()
        for _ in range(6):
            log.add_transitions([Transition("r" + "x" * rng.randrange(1, 60) + str(rng.randrange(100)),
                                            f"127.5.0.{rng.randrange(1, 250)}", State.UP, State.DOWN, AT, AT,
                                            None) for _ in range(rng.randrange(1, 9))])
            log.flush()
            await pilot.pause()
        width = max(log.scrollable_content_region.width, log.MIN_WIDTH)
        want = expected_rows(log.lines_written, width)[-37:]
        assert [strip.text.rstrip() for strip in log.lines] == want
        height = log.scrollable_content_region.height
        shown: list[str] = []
        for top in range(0, len(want), height):
            log.scroll_to(y=top, animate=False, immediate=True)
            await pilot.pause()
            assert log.scroll_offset.y == min(top, log.max_scroll_y)
            for y in range(height):
                row = log.scroll_offset.y + y
                if row >= top and len(shown) < len(want):
                    shown.append(log.render_line(y).text.rstrip())
        assert shown == want
