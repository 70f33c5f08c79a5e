"""A device's rolling figures, laid out for the width they are given (never a wrapped line)."""

from __future__ import annotations

from rich.text import Text
from textual.geometry import Size
from textual.widget import Widget

from poller.state import TrackerView
from wardtui.widgets.device_facts import stats_lines


class LiveStats(Widget):
    """The tracker's figures in as many lines as the width needs: two at 120 columns, three at 80.

    The lines are made at render time from the widget's own width, and the height follows
    them, so a resized terminal gets them laid out again with no code of the screen's.
    """

    DEFAULT_CSS = """
    LiveStats { height: auto; }
    """

    def __init__(self, tracker: TrackerView, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.tracker = tracker
        self.lines: list[str] = []  # what is on show, for tests

    def get_content_height(self, container: Size, viewport: Size, width: int) -> int:
        return len(stats_lines(self.tracker, width or None))

    def render(self) -> Text:
        self.lines = stats_lines(self.tracker, self.content_size.width or None)
        return Text("\n".join(self.lines), no_wrap=True, overflow="ellipsis")  # literal-ok: figures
