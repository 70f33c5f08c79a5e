"""A scrolling log of state changes, flapping, reboots and interface changes, newest at the bottom, in UTC."""

from __future__ import annotations

from bisect import bisect_right
from datetime import UTC, datetime, timedelta

from rich.cells import cell_len
from rich.segment import Segment
from rich.text import Text
from textual.events import Resize
from textual.geometry import Size
from textual.scroll_view import ScrollView
from textual.strip import Strip
from textual.widget import Widget

from poller.durations import format_duration
from poller.events import (
    OUT,
    CheckResult,
    FlapChange,
    InterfaceChange,
    Reboot,
    SnmpAgentChange,
    State,
    Transition,
    Trap,
)
from poller.text import clean
from wardtui.widgets.states import StatePalette, state_text


def utc_stamp(at: datetime) -> str:
    # Month-day keeps a line within the panel; the year is in the history store.
    return at.astimezone(UTC).strftime("%m-%d %H:%M:%SZ")


class _Entry:
    """One line of the log: its text, the width it wraps at, its rows once drawn."""

    __slots__ = ("strips", "text", "width")

    def __init__(self, text: Text, width: int) -> None:
        self.text = text
        self.width = width
        self.strips: list[Strip] | None = None


class TransitionLog(ScrollView, can_focus=True):
    """Write :class:`Transition` and :class:`FlapChange` events; keeps the last ``max_lines``.

    A Line API widget (like the device table): it keeps its lines as text, each wrapped at the
    width the log has when it is written (never scrolled sideways: a narrow terminal must not
    hide the "to" state), and renders a line only when it comes into view (then keeps it).
    """

    # RichLog's look (this log was one), with no sideways scrolling.
    DEFAULT_CSS = """
    TransitionLog {
        background: $surface;
        color: $foreground;
        height: 1fr;
        overflow-y: scroll;
        overflow-x: hidden;
        scrollbar-size-vertical: 1;
        &:focus { background-tint: $foreground 5%; }
    }
    """
    MIN_WIDTH = 20  # lines are rendered at least this wide, the panel as narrow as it may be

    def __init__(self, *, max_lines: int = 2000, id: str | None = None) -> None:
        super().__init__(id=id)
        self.max_lines = max_lines
        self.auto_scroll = True  # follow the newest line
        # The lines written, oldest first, each with the row it starts at (counted from the
        # first line ever written); the rows kept are _base.._end (at most max_lines).
        self._entries: list[_Entry] = []
        self._starts: list[int] = []
        self._base = 0
        self._end = 0
        self.palette = StatePalette()
        self._first_up = 0  # first answers counted but not yet written
        self._first_up_at = datetime.now(UTC)
        self.lines_written: list[str] = []  # plain text, newest last, bounded like the log
        self._pending: list[Text] = []  # lines of this tick, written together by flush()
        self._widest = 0
        self._size_known = False  # lines wait for the log's width before they are rendered

    def add_transitions(self, events: list[Transition]) -> None:
        """Write one tick's transitions; first answers (unknown → up) are only counted.

        At start-up every device goes unknown → up over one interval; 875 such lines would
        bury the few that matter. They become one line once a tick brings no more of them.
        A device found DOWN at its first check is still written on its own line.
        """
        first_up = 0
        for event in events:
            if event.from_state is State.UNKNOWN and event.to_state is State.UP:
                first_up += 1
                self._first_up_at = event.at
            else:
                self.add_transition(event)
        self._first_up += first_up
        if not first_up and self._first_up:
            self._write_first_up()

    def _write_first_up(self) -> None:
        count, self._first_up = self._first_up, 0
        line = Text(utc_stamp(self._first_up_at) + " ", style="dim")
        line.append(f"{count} device{'s' if count > 1 else ''} ")
        line.append_text(state_text(State.UNKNOWN, self.palette))
        line.append(" → ")
        line.append_text(state_text(State.UP, self.palette))
        line.append(" (first answer)")
        self._write(line)

    def add_transition(self, event: Transition) -> None:
        line = Text(utc_stamp(event.at) + " ", style="dim")
        line.append(clean(event.device), style="bold")
        line.append(" ")
        line.append_text(state_text(event.from_state, self.palette))
        line.append(" → ")
        line.append_text(state_text(event.to_state, self.palette))
        if event.from_state in OUT and event.to_state is State.UP and event.down_since is not None:
            how = "down" if event.from_state is State.DOWN else "unreachable"
            line.append(f" after {format_duration(event.at - event.down_since)} {how}")
        line.append(f"  {clean(event.address)}", style="dim")
        self._write(line)

    def add_flap(self, event: FlapChange) -> None:
        line = Text(utc_stamp(event.at) + " ", style="dim")
        line.append(clean(event.device), style="bold")
        line.append(" ")
        if event.flapping:
            line.append("flapping", style=self.palette.flapping)
            line.append(f" ({event.transitions_in_window} changes in the window)")
        else:
            line.append("stopped flapping")
        line.append(f"  {clean(event.address)}", style="dim")
        self._write(line)

    def add_reboot(self, event: Reboot) -> None:
        line = Text(utc_stamp(event.at) + " ", style="dim")
        line.append(clean(event.device), style="bold")
        line.append(" rebooted", style=self.palette.flapping)
        line.append(f" (up {format_duration(event.at - event.booted_at)}, was up "
                    f"{format_duration(timedelta(seconds=event.previous_uptime_s))})")
        if event.source == "trap":
            line.append(" by trap", style="dim")
        line.append(f"  {clean(event.address)}", style="dim")
        self._write(line)

    def add_interface(self, event: InterfaceChange) -> None:
        line = Text(utc_stamp(event.at) + " ", style="dim")
        line.append(clean(event.device), style="bold")
        line.append(f" {clean(event.ifname)} ")
        line.append(clean(event.from_state), style=self._if_style(event.from_state))
        line.append(" → ")
        line.append(clean(event.to_state), style=self._if_style(event.to_state))
        by_trap = " by trap" if event.source == "trap" else ""
        line.append(f"  ifIndex {event.ifindex}{by_trap}", style="dim")
        self._write(line)

    def add_trap(self, event: Trap) -> None:
        """A trap whose news no interface or reboot line tells (authenticationFailure, an
        enterprise's own, a linkDown naming no interface): its kind and var-binds."""
        if event.kind in ("coldStart", "warmStart") or (
                event.kind in ("linkDown", "linkUp") and event.ifindex is not None):
            return  # the reboot or interface line that came with it says it ("by trap")
        line = Text(utc_stamp(event.at) + " ", style="dim")
        line.append(clean(event.device), style="bold")
        line.append(f" trap {clean(event.kind)}")
        if event.varbinds:
            line.append(f" {clean(event.varbinds)}", style="dim")
        line.append(f"  {clean(event.address)}", style="dim")
        self._write(line)

    def add_probe(self, result: CheckResult, by: str) -> None:
        """A check an operator asked for (attached: any viewer of the service)."""
        line = Text(utc_stamp(result.at) + " ", style="dim")
        line.append(clean(result.device), style="bold")
        line.append(" checked now by ")
        line.append(clean(by))
        line.append(": ")
        line.append_text(state_text(result.state, self.palette))
        line.append(f", {result.rtt_ms:.2f} ms" if result.rtt_ms is not None else ", no reply")
        line.append(f"  {clean(result.address)}", style="dim")
        self._write(line)

    def add_snmp_agent(self, event: SnmpAgentChange) -> None:
        line = Text(utc_stamp(event.at) + " ", style="dim")
        line.append(clean(event.device), style="bold")
        if event.answering:
            line.append(" SNMP agent answers again")
        else:
            line.append(f" SNMP agent not answering ({clean(event.reason)})", style=self.palette.flapping)
        line.append(f"  {clean(event.address)}", style="dim")
        self._write(line)

    def _if_style(self, status: str) -> str:
        if status == "up":
            return self.palette.up
        return self.palette.down if status in ("down", "lowerLayerDown") else ""

    def _write(self, line: Text) -> None:
        self._pending.append(line)
        self.lines_written.append(line.plain)
        if len(self.lines_written) > self.max_lines:
            del self.lines_written[: len(self.lines_written) - self.max_lines]

    def flush(self) -> None:
        """Take the lines added since the last flush, together, and follow the newest.

        Only their place is worked out here (one row each, or as many as they wrap to); a line
        is rendered when it is drawn. At ~500 transitions a tick, rendering them all cost
        ~45 ms per tick at 100,000 devices, for the ~15 rows on screen.
        """
        if not self._pending or not self._size_known:
            return  # before the first size: written once it is known (on_resize)
        lines, self._pending = self._pending, []
        console = self.app.console
        # As RichLog wrote: wrapped at the width in view, at least MIN_WIDTH.
        width = max(self.scrollable_content_region.width, self.MIN_WIDTH)
        widest, end = self._widest, self._end
        entries, starts = self._entries, self._starts
        for text in lines:
            text.expand_tabs()
            plain = text.plain
            length = len(plain) if plain.isascii() else cell_len(plain)
            rows = 1 if length <= width else len(text.wrap(console, width))
            entries.append(_Entry(text, width))
            starts.append(end)
            end += rows
            widest = max(widest, min(length, width))
        self._end, self._widest = end, widest
        if end - self._base > self.max_lines:  # the oldest rows go
            self._base = base = end - self.max_lines
            gone = bisect_right(starts, base) - 1  # entries wholly before the first row kept
            if gone > 0:
                del entries[:gone]
                del starts[:gone]
        self._grow(Size(widest, end - self._base))
        if self.auto_scroll:
            self.scroll_end(animate=False, immediate=False, x_axis=False)
        self.refresh()

    @property
    def lines(self) -> list[Strip]:
        """Every row the log keeps, rendered (oldest first, at most ``max_lines``): for tests;
        drawing renders only the rows in view."""
        rows = [strip for entry in self._entries for strip in self._strips(entry)]
        return rows[self._base - self._starts[0]:] if rows else rows

    def _strips(self, entry: _Entry) -> list[Strip]:
        """The rows of one line, rendered once, at the width it was written at."""
        if entry.strips is None:
            console = self.app.console
            options = console.options.update_width(entry.width)
            rendered = Segment.split_lines(console.render(entry.text, options))
            entry.strips = Strip.from_lines(list(rendered))
        return entry.strips

    def get_content_width(self, container: Size, viewport: Size) -> int:
        # As RichLog: the container's width until the log has one (an auto width then follows its lines).
        return self.virtual_size.width if self._size_known else container.width

    def on_resize(self, event: Resize) -> None:
        if event.size.width and not self._size_known:
            self._size_known = True
            self.flush()

    def _grow(self, size: Size) -> None:
        """Take the new virtual size without laying out the screen when the scrollbars stay as
        they are. For Textual a new virtual size means a layout of the whole screen (~20 ms at
        20,000 devices, each tick of an incident); this log's place does not depend on its
        length (height 1fr), only its scrollbar follows."""
        if size == self.virtual_size:
            return
        if self._scrollbars_for(size) != self._scrollbars_for(self.virtual_size):
            self.virtual_size = size  # a scrollbar appears or goes: the content width changes
            return
        self.set_reactive(Widget.virtual_size, size)  # the value, without the layout it asks for
        if self.show_vertical_scrollbar:
            self.vertical_scrollbar.window_virtual_size = size.height
        if self.show_horizontal_scrollbar:
            self.horizontal_scrollbar.window_virtual_size = size.width

    def _scrollbars_for(self, size: Size) -> tuple[bool, bool]:
        """Which scrollbars the log shows with content of ``size`` (its overflow styles)."""
        view = self.scrollable_content_region.size

        def shown(overflow: str, content: int, room: int) -> bool:
            return overflow == "scroll" or (overflow == "auto" and content > room)

        return (shown(self.styles.overflow_x, size.width, view.width),
                shown(self.styles.overflow_y, size.height, view.height))

    def render_line(self, y: int) -> Strip:
        scroll_x, scroll_y = self.scroll_offset
        width = self.scrollable_content_region.width
        row = self._base + scroll_y + y
        style = self.rich_style
        if row >= self._end or not self._entries:
            return Strip.blank(width, style).apply_style(style)
        index = bisect_right(self._starts, row) - 1
        strips = self._strips(self._entries[index])
        offset = row - self._starts[index]
        if offset >= len(strips):  # never, unless a wrap and its render disagreed
            return Strip.blank(width, style).apply_style(style)
        return strips[offset].crop_extend(scroll_x, scroll_x + width, style).apply_style(style)
