"""The live device table: every device that matches the filter, drawn one screenful at a time.

A Line API widget: it keeps the display order as a list of names and paints only the rows on
screen, reading their text from the trackers when it paints. Nothing is built per row, so
20,000 devices cost what the visible ~40 rows cost; an update touches only the devices that
changed, and a repaint happens only when a visible row changed (or shows a running "down for").

Which rows are shown and in what order is kept incrementally by ``RowOrder``
(wardtui/widgets/row_order.py); this widget paints it, moves the cursor and takes the keys.

The first frame does not wait for that order: at mount it paints the first screenful by name
(the default sort), the smallest rows found among every name's sort key, and makes the whole
order (every name's rank, every device's place and the problems: ~0.25 s at 100,000 devices)
right after that frame. Whatever reads the order before then (a key, a tick, a test) makes it
first, so nothing ever acts on the first screenful alone.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from contextlib import suppress
from datetime import UTC, datetime
from functools import partial
from itertools import compress
from operator import attrgetter
from typing import ClassVar

from rich.cells import cell_len, set_cell_size
from rich.segment import Segment
from rich.style import Style
from textual import events
from textual.binding import Binding, BindingType
from textual.geometry import Size
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.strip import Strip

from poller.events import OUT
from poller.quiet import Quiet
from poller.state import TrackerView
from poller.text import clean
from wardtui.literal import literal
from wardtui.widgets import quiet_marks
from wardtui.widgets.device_rows import COLUMNS, SORTS, STATIC_COLUMNS, StaticRanks, natural_keys, row_texts
from wardtui.widgets.row_order import VIEWS, RowOrder
from wardtui.widgets.states import StatePalette, state_label

_DIGITS_LOW = str.maketrans("0123456789", "\x10" * 10)


def first_by_name(names: list[str], count: int) -> list[str]:
    """The ``count`` first of ``names`` in natural name order (StaticRanks' order: by
    natural_keys, then the text), without making every name's key when the names are printable
    ASCII (every inventory here): ~3x cheaper at 100,000 devices.

    A name's key there is its lower-cased text with each digit run zero-filled and its digits
    moved below every printable character, so it starts with the text before its first digit
    (its "stem") and goes on with a character below " ", or ends. Hence a name whose stem is
    smaller has the smaller key, and the first ``count`` keys are among the names whose stem is
    at most the ``count``-th smallest stem: only theirs are made. The stems are read off the
    "shapes" (the lower-cased names with every digit made "\\x10"), whose order also keeps the
    stems' order; a name's stem is at most ``cut`` exactly when its shape is below ``cut +
    "\\x11"``."""
    joined = "".join(names)
    if not names or not (joined.isascii() and joined.isprintable()):
        chosen = names  # natural_keys makes natural()'s tuples for them all: no shortcut
    else:
        shapes = "\n".join(names).lower().translate(_DIGITS_LOW).split("\n")
        cut = heapq.nsmallest(count, shapes)[-1].partition("\x10")[0] + "\x11"
        chosen = list(compress(names, map(cut.__gt__, shapes)))
    return [name for _, name in heapq.nsmallest(count, zip(natural_keys(chosen), chosen, strict=True))]


# Widest a column measured from the inventory may get; longer values end in "…".
MAX_WIDTH = {"name": 32, "address": 39, "branch": 24, "region": 20, "type": 16}
PADDING = 1  # blank cells either side of every cell, as DataTable draws them
# The ack/maint column (wardtui/widgets/quiet_marks.py) is drawn right after the state's: it is
# not one of device_rows.COLUMNS (the filter's and the sorts' columns), as it is not the
# tracker's but the quiet state's, and is worked out for the rows painted only.
QUIET_AFTER = 1
# Attached to a cluster (serve --cluster), a last column names the member each device is shown
# from (poller/cluster_feed.py): not one of COLUMNS either (it is the feed's, not the tracker's).
POLLER_LABEL = "poller"
POLLER_WIDTH = 24


class DeviceTable(ScrollView, can_focus=True):
    """Shows every device that matches the filter; call :meth:`refresh_devices` with what changed.

    The cursor follows its device when the order changes (a row never changes under the
    operator's Enter), and stays on screen.
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "select_cursor", "Open", show=False),
        Binding("up,k", "cursor_up", "Up", show=False),  # k and j: vim's and less's
        Binding("down,j", "cursor_down", "Down", show=False),
        Binding("pageup", "page_up", "Page up", show=False),
        Binding("pagedown", "page_down", "Page down", show=False),
        Binding("home,ctrl+home", "first", "First row", show=False),
        Binding("end,ctrl+end", "last", "Last row", show=False),
        Binding("left", "scroll_left", "Left", show=False),
        Binding("right", "scroll_right", "Right", show=False),
    ]

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "device-table--header", "device-table--cursor", "device-table--even-row",
    }

    # The look of Textual's DataTable, which this table replaced.
    DEFAULT_CSS = """
    DeviceTable {
        height: 1fr;
        background: $surface;
        color: $foreground;
        &:focus { background-tint: $foreground 5%; }
        & > .device-table--header { text-style: bold; background: $panel; color: $foreground; }
        &:ansi > .device-table--header { background: ansi_bright_blue; color: ansi_default; }
        & > .device-table--even-row { background: $surface-lighten-1 50%; }
        &:dark > .device-table--even-row { background: $surface-darken-1 40%; }
        & > .device-table--cursor {
            background: $block-cursor-blurred-background;
            color: $block-cursor-blurred-foreground;
            text-style: $block-cursor-blurred-text-style;
        }
        &:focus > .device-table--cursor {
            background: $block-cursor-background;
            color: $block-cursor-foreground;
            text-style: $block-cursor-text-style;
        }
    }
    """

    class RowSelected(Message):
        """Enter (or a click on the cursor row) on a device."""

        def __init__(self, table: DeviceTable, device: str) -> None:
            super().__init__()
            self.table = table
            self.device = device

        @property
        def control(self) -> DeviceTable:
            return self.table

    def __init__(self, trackers: Mapping[str, TrackerView], *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._trackers = trackers
        self.palette = StatePalette()
        # Which rows are shown, in what order, and the ranks it sorts by: made when first read
        # (see _rows), after the first frame unless something reads them sooner.
        self._made_ranks: StaticRanks | None = None
        self._order: RowOrder | None = None
        # Until the order is made: the first rows by name, enough for a screenful (see on_mount).
        self._first_page: list[str] | None = None
        self._filter = ""
        self._now = datetime.now(UTC)  # the time "down for" is computed at (the last tick's)
        self._cursor_row = 0
        self._cursor_name: str | None = None
        self._widths = [0] * len(COLUMNS)
        self._state_styles: dict[str, Style] = {}
        # The maintenance windows and acknowledgements in force (set_quiet), and whether each
        # device painted since they changed (or a window started or ended) is in a window.
        self.quiet = Quiet()
        self._in_maintenance: dict[str, bool] = {}
        # Attached to a cluster: device name -> the member it is shown from (data: cleaned).
        self._poller_of: Callable[[str], str] | None = None

    def show_pollers(self, poller_of: Callable[[str], str]) -> None:
        """Add the ``poller`` column: ``poller_of(name)`` names the member a device comes from."""
        self._poller_of = poller_of
        self._resize_virtual()
        self.refresh()

    @property
    def _ranks(self) -> StaticRanks:
        ranks = self._made_ranks
        if ranks is None:
            ranks = self._made_ranks = StaticRanks({name: t.device for name, t in self._trackers.items()})
        return ranks

    @property
    def _rows(self) -> RowOrder:
        """Which rows are shown and in what order; made (every device placed) when first read."""
        rows = self._order
        if rows is None:
            rows = self._order = RowOrder(self._trackers, self._ranks)
            rows.set_filter(self._filter)
            rows.rebuild(self._now)
            self._first_page = None  # its rows are the order's first ones: nothing moves
        return rows

    @property
    def order_made(self) -> bool:
        """Whether the whole order is made (else only the first screenful is known)."""
        return self._order is not None

    def _shown_order(self, rows: int) -> Sequence[str]:
        """The display order, at least its first ``rows``: the first page while it covers them
        and the whole order is not made yet, else the order (made now if need be)."""
        if self._order is None:
            first = self._first_page
            if first is None:  # not mounted yet: nothing shown (as the order is before its first rebuild)
                return []
            if rows <= len(first) or len(first) >= len(self._trackers):
                return first
        return self._rows.display_order()

    # -- what the screen and the tests read ---------------------------------------------------
    @property
    def sort_column(self) -> str:
        return SORTS[0][0] if self._order is None else self._order.sort_column

    @property
    def filter_text(self) -> str:
        return self._filter

    @property
    def view(self) -> str:
        return VIEWS[0] if self._order is None else self._order.view

    @property
    def row_count(self) -> int:
        if self._order is None:  # mounted, no filter yet: every device; not mounted: none yet
            return 0 if self._first_page is None else len(self._trackers)
        return self._order.shown_count

    @property
    def cursor_row(self) -> int:
        return self._cursor_row

    @property
    def cursor_device(self) -> str | None:
        """The device under the cursor, if any row is shown."""
        return self._cursor_name

    def problem_names(self) -> list[str]:
        """Shown problem devices, in the problems view's order."""
        return self._rows.problem_names()

    def matches(self, name: str) -> bool:
        """Whether ``name`` passes the filter (for views that show devices elsewhere)."""
        return self._rows.matches(name)

    def shown_names(self) -> Collection[str] | None:
        """The devices the filter shows, all at once (None: no filter, every device)."""
        return self._rows.shown_names()

    def row_order(self) -> list[str]:
        """Device names in display order."""
        return list(self._rows.display_order())

    def get_row_index(self, name: str) -> int:
        """Where ``name`` is in the display order (ValueError if it is not shown)."""
        return self._rows.display_order().index(name)

    def cell_text(self, name: str, column: str) -> str:
        """Plain text of one shown cell, as it is drawn now (``quiet``: the ack/maint column;
        ``poller``: the cluster member's, attached to a cluster)."""
        if not self._rows.is_shown(name):
            raise KeyError(name)
        if column == POLLER_LABEL:
            return "" if self._poller_of is None else clean(self._poller_of(name))
        if column == "quiet":
            return self._quiet_mark(self._trackers[name])[0]
        index = next(i for i, c in enumerate(COLUMNS) if c.key == column)
        return row_texts(self._trackers[name], self._now)[index]

    def visible_rows(self) -> list[str]:
        """The devices whose rows are on screen now."""
        top = round(self.scroll_y)
        page = self._page_rows()
        return list(self._shown_order(top + page)[top:top + page])

    # -- lifecycle ----------------------------------------------------------------------------
    def on_mount(self) -> None:
        self._measure_columns()
        if self._order is None and not self._filter:
            self._paint_first_page()  # the order: see make_order
        else:
            self.rebuild()

    def _paint_first_page(self) -> None:
        """The first frame's rows: by name (the sort at start), as many as the terminal has
        lines (first_by_name: no sort of them all). The same rows, in the same order, as the
        first ones of the whole order (StaticRanks sorts by the same (key, name) pairs)."""
        self._first_page = first_by_name(list(self._trackers), max(1, self.app.size.height))
        self._now = datetime.now(UTC)
        self._cursor_row = 0
        self._cursor_name = self._first_page[0] if self._first_page else None
        self._resize_virtual()
        self._update_title()
        self.refresh()

    def make_order(self) -> None:
        """Make the whole order now if it is not made yet: the dashboard calls this once its
        first frame is shown; until then anything that reads the order makes it."""
        if self._order is None:
            self._rows  # noqa: B018 (made when read)
            self._order_changed()

    def rebuild(self) -> None:
        """Refill from scratch: on a filter change (a user's action), never on a live tick."""
        self._now = now = datetime.now(UTC)
        self._rows.rebuild(now)
        self._order_changed()
        self._update_title()

    def reset_devices(self, trackers: Mapping[str, TrackerView]) -> None:
        """Show ``trackers``, another set of devices (attached: the service's inventory
        changed): ranks and rows made again for them; sort, view and filter kept."""
        old = self._order
        self._trackers = trackers
        self._made_ranks = None
        self._first_page = None
        self._in_maintenance.clear()  # a device of the same name may sit in another branch now
        rows = self._order = RowOrder(self._trackers, self._ranks)
        if old is not None:
            rows.sort_index, rows.view = old.sort_index, old.view
        rows.set_filter(self._filter)
        self.rebuild()

    def prepare_filter(self) -> None:
        """Render every row's text once, so that the first filter only matches (call when idle)."""
        self._rows.prepare_filter(datetime.now(UTC))

    def _prepare_filter_aside(self) -> None:
        """prepare_filter, the static columns' text made on a worker thread (~0.2 s at 100,000
        devices that a key pressed meanwhile waited for) and the states' on the UI thread after
        it (they change there, at each tick). A filter typed sooner makes it all itself."""
        rows = self._rows

        def make() -> None:
            static = rows.static_texts()
            with suppress(RuntimeError):  # the app has stopped meanwhile
                self.app.call_from_thread(rows.prepare_filter, datetime.now(UTC), static)

        self.run_worker(make, thread=True, group="warm-up")

    def warm_up_steps(self) -> list[Callable[[], object]]:
        """Work the first frame did not wait for, in steps of <= ~0.1 s at 20,000 devices, for
        the screen to run when idle: then the first filter and the first sort by each column
        cost what the later ones do."""
        return [self._prepare_filter_aside, *(partial(self._rank_column, c) for c in STATIC_COLUMNS[1:])]

    def _rank_column(self, column: str) -> None:
        """A column's ranks and keys in order, on a thread of their own: 0.1-0.5 s of pure
        Python at 100,000 devices, during which a key pressed waited for the whole step; beside
        a thread it waits for the GIL a switch interval at a time. (StaticRanks and RowOrder keep
        what it makes in one dict assignment each; an `s` meanwhile makes the same itself.)"""
        self.run_worker(partial(self._rows.prepare_sort, column), thread=True, group="warm-up")

    # -- user actions -------------------------------------------------------------------------
    def set_filter(self, text: str) -> None:
        """Show only rows whose text contains every whitespace-separated term (the inventory's
        columns and the state; not RTT, loss or "down for", which move every second)."""
        if text == self._filter:
            return
        self._filter = text
        self._rows.set_filter(text)
        self.rebuild()

    def set_view(self, view: str) -> None:
        """Show ``all`` rows by the sort column, or ``problems`` first (then the rest)."""
        if view not in VIEWS:
            raise ValueError(f"unknown view {view!r}")
        if view == self._rows.view:
            return
        self._rows.view = view
        self._rows.invalidate()
        self.move_cursor(row=0)
        self._update_title()

    def set_sort(self, column: str) -> str:
        """Sort by ``column`` (a key of SORTS); return its description."""
        columns = [key for key, _ in SORTS]
        if column not in columns:
            raise ValueError(f"unknown column {column!r}; one of {', '.join(columns)}")
        self._rows.sort_index = columns.index(column) - 1
        return self.cycle_sort()

    def cycle_sort(self) -> str:
        """Move to the next sort column; return its description."""
        self._rows.cycle_sort()
        self.move_cursor(row=0)  # a new order is read from the top (down devices first)
        self._update_title()
        return SORTS[self._rows.sort_index][1]

    # -- live updates -------------------------------------------------------------------------
    def refresh_devices(self, names: Iterable[str], now: datetime | None = None) -> None:
        """Bring the rows of ``names`` up to date; repaint if a visible row changed."""
        self._now = now = now or datetime.now(UTC)
        rows = self._rows
        shown, problems = rows.shown_count, rows.problem_count
        names, moved, problems_moved = rows.update(names, now)
        if moved or (problems_moved and rows.view == "problems"):
            self._order_changed()
        else:
            visible = self.visible_rows()
            if names.intersection(visible) or any(self._trackers[n].state in OUT for n in visible):
                self.refresh()  # a visible row changed, or its "down for" advanced
        if rows.shown_count != shown or rows.problem_count != problems:
            self._update_title()

    def set_quiet(self, quiet: Quiet | None = None, now: datetime | None = None) -> None:
        """The windows and acknowledgements in force are ``quiet`` (None: the same, but a window
        has started or ended since ``now``): the rows on screen are marked again."""
        if quiet is not None:
            self.quiet = quiet
        if now is not None:
            self._now = now
        self._in_maintenance.clear()
        self.refresh()

    def _quiet_mark(self, tracker: TrackerView) -> tuple[str, str]:
        """The ack/maint cell's text and kind; whether the device is in a window is kept until
        the quiet state changes (a window's start and end included: set_quiet)."""
        quiet = self.quiet
        if not quiet:
            return "", ""
        name = tracker.device.name
        maintenance = self._in_maintenance.get(name)
        if maintenance is None:
            maintenance = self._in_maintenance[name] = quiet.in_maintenance(tracker.device, self._now)
        return quiet_marks.mark(quiet, tracker, self._now, maintenance)

    # -- cursor and keys ----------------------------------------------------------------------
    def move_cursor(self, *, row: int, scroll: bool = True) -> None:
        order = self._rows.display_order()
        self._cursor_row = max(0, min(row, len(order) - 1))
        self._cursor_name = order[self._cursor_row] if order else None
        if scroll:
            self._scroll_cursor_into_view()
        self.refresh()

    def action_cursor_up(self) -> None:
        self.move_cursor(row=self._cursor_row - 1)

    def action_cursor_down(self) -> None:
        self.move_cursor(row=self._cursor_row + 1)

    def action_page_up(self) -> None:
        page = self._page_rows()
        self.scroll_to(y=max(0, self.scroll_y - page), animate=False, immediate=True, force=True)
        self.move_cursor(row=self._cursor_row - page)

    def action_page_down(self) -> None:
        page = self._page_rows()
        self.scroll_to(y=self.scroll_y + page, animate=False, immediate=True, force=True)
        self.move_cursor(row=self._cursor_row + page)

    def action_first(self) -> None:
        self.move_cursor(row=0)

    def action_last(self) -> None:
        self.move_cursor(row=len(self._rows.display_order()) - 1)

    def action_select_cursor(self) -> None:
        if self._cursor_name is not None:
            self.post_message(self.RowSelected(self, self._cursor_name))

    def on_click(self, event: events.Click) -> None:
        offset = event.get_content_offset(self)
        if offset is None:
            return
        if offset.y == 0:  # the header: sort by the column clicked, when it sorts
            column = self._column_at(offset.x + round(self.scroll_x))
            if column is not None and column in (key for key, _ in SORTS):
                self.set_sort(column)
            return
        row = round(self.scroll_y) + offset.y - 1
        if row >= len(self._rows.display_order()):
            return
        if row == self._cursor_row or event.chain > 1:
            self.move_cursor(row=row)
            self.action_select_cursor()
        else:
            self.move_cursor(row=row)

    def on_focus(self) -> None:
        self.refresh()  # the cursor's colour shows where the focus is

    def on_blur(self) -> None:
        self.refresh()

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._state_styles.clear()

    # -- painting -----------------------------------------------------------------------------
    def render_line(self, y: int) -> Strip:
        scroll_x, scroll_y = self.scroll_offset
        width = self.size.width
        base = self.rich_style
        if y == 0:
            strip = self._header()
        else:
            row = scroll_y + y - 1
            order = self._shown_order(row + 1)
            if row >= len(order):
                return Strip.blank(width, base)
            strip = self._row(row, order[row], base)
        return strip.crop_extend(scroll_x, scroll_x + width, base)

    def _header(self) -> Strip:
        style = self.rich_style + self.get_component_rich_style("device-table--header")
        pad = " " * PADDING
        segments = [Segment(pad + self._fit(column.label, i) + pad, style)
                    for i, column in enumerate(COLUMNS)]
        label = quiet_marks.LABEL
        segments.insert(QUIET_AFTER + 1, Segment(pad + label.ljust(quiet_marks.WIDTH) + pad, style))
        if self._poller_of is not None:
            segments.append(Segment(pad + POLLER_LABEL.ljust(POLLER_WIDTH) + pad, style))
        return Strip(segments, self.virtual_size.width)

    def _row(self, row: int, name: str, base: Style) -> Strip:
        tracker = self._trackers[name]
        texts = row_texts(tracker, self._now)
        if row == self._cursor_row:
            style = base + self.get_component_rich_style("device-table--cursor")
        elif row % 2 == 0:
            style = base + self.get_component_rich_style("device-table--even-row")
        else:
            style = base
        pad = " " * PADDING
        segments: list[Segment] = []
        for index, text in enumerate(texts):
            cell = self._fit(text, index)
            if index == 1:  # state: coloured, and bold DOWN stays readable without colour
                segments.extend(self._state_cell(tracker, cell, style))
            else:
                segments.append(Segment(pad + cell + pad, style))
            if index == QUIET_AFTER:
                segments.append(self._quiet_cell(tracker, style))
        if self._poller_of is not None:
            text = clean(self._poller_of(name))
            cell = set_cell_size(text, POLLER_WIDTH - 1) + "…" if cell_len(text) > POLLER_WIDTH else \
                set_cell_size(text, POLLER_WIDTH)
            segments.append(Segment(pad + cell + pad, style))
        return Strip(segments, self.virtual_size.width)

    def _quiet_cell(self, tracker: TrackerView, style: Style) -> Segment:
        text, kind = self._quiet_mark(tracker)
        pad = " " * PADDING
        if not text:
            return Segment(pad * 2 + " " * quiet_marks.WIDTH, style)
        width = quiet_marks.WIDTH
        cell = set_cell_size(text, width - 1) + "…" if cell_len(text) > width else set_cell_size(text, width)
        colour = self.palette.maintenance if kind == quiet_marks.MAINT else self.palette.acked
        return Segment(pad + cell + pad, style + self._palette_style(colour))

    def _state_cell(self, tracker: TrackerView, cell: str, style: Style) -> list[Segment]:
        label = state_label(tracker.state)
        state_style = style + self._palette_style(self.palette.style(tracker.state))
        segments = [Segment(" " * PADDING + label, state_style)]
        rest = cell[len(label):]
        if tracker.flapping and rest.startswith("~flap"):
            segments.append(Segment("~flap", style + self._palette_style(self.palette.flapping)))
            rest = rest[len("~flap"):]
        segments.append(Segment(rest + " " * PADDING, style))
        return segments

    def _palette_style(self, spec: str) -> Style:
        style = self._state_styles.get(spec)
        if style is None:
            style = self._state_styles[spec] = Style.parse(spec)
        return style

    def _fit(self, text: str, index: int) -> str:
        """``text`` in exactly its column's width: padded, or cut with an ellipsis."""
        width = self._widths[index]
        length = cell_len(text)
        if length > width:
            return set_cell_size(text, width - 1) + "…"
        if COLUMNS[index].numeric:
            return " " * (width - length) + text
        return text + " " * (width - length)

    def _measure_columns(self) -> None:
        """Widths from the inventory once (live columns are fixed, so nothing ever jumps)."""
        devices = list(map(attrgetter("device"), self._trackers.values()))
        for index, column in enumerate(COLUMNS):
            if column.width is not None:
                width = column.width
            else:
                values = list(map(attrgetter(column.key), devices))
                # len() is the cell width of ASCII text, and ~20 times cheaper than cell_len
                if "".join(values).isascii():
                    longest = max(map(len, values), default=0)
                else:
                    longest = max((len(v) if v.isascii() else cell_len(v) for v in set(values)), default=0)
                width = min(MAX_WIDTH[column.key], longest)
            self._widths[index] = max(width, cell_len(column.label))
        self._resize_virtual()

    def _column_at(self, x: int) -> str | None:
        left = 0
        for index, column in enumerate(COLUMNS):
            left += self._widths[index] + 2 * PADDING
            if x < left:
                return column.key
            if index == QUIET_AFTER:
                left += quiet_marks.WIDTH + 2 * PADDING
                if x < left:
                    return "quiet"
        return None

    def _resize_virtual(self) -> None:
        width = sum(self._widths) + 2 * PADDING * len(COLUMNS) + quiet_marks.WIDTH + 2 * PADDING
        if self._poller_of is not None:
            width += POLLER_WIDTH + 2 * PADDING
        size = Size(width, self.row_count + 1)  # the header is line 0
        if size != self.virtual_size:
            self.virtual_size = size

    def _page_rows(self) -> int:
        return max(1, self.scrollable_content_region.height - 1)

    def _scroll_cursor_into_view(self) -> None:
        top, page, row = round(self.scroll_y), self._page_rows(), self._cursor_row
        if row < top:
            self.scroll_to(y=row, animate=False, immediate=True, force=True)
        elif row >= top + page:
            self.scroll_to(y=row - page + 1, animate=False, immediate=True, force=True)

    # -- order (kept by RowOrder) -------------------------------------------------------------
    def _order_changed(self) -> None:
        """The display order moved: follow the cursor's device, resize, repaint."""
        self._rows.invalidate()
        self._resize_virtual()
        order = self._rows.display_order()
        name = self._cursor_name
        if name is not None and self._rows.is_shown(name):
            row = order.index(name)
            if row != self._cursor_row:
                self._cursor_row = row
                self._scroll_cursor_into_view()
        else:  # gone (filtered out): the row where it was, now someone else's
            self._cursor_row = max(0, min(self._cursor_row, len(order) - 1))
            self._cursor_name = order[self._cursor_row] if order else None
        self.refresh()

    # -- helpers ------------------------------------------------------------------------------
    stale_since: str | None = None  # attached and the live feed is lost since then (HH:MM:SS)

    def set_stale(self, since: str | None) -> None:
        """Attached: the live feed is lost since ``since`` (None: live again). The rows stay (the
        operator may still open a device and read its history) but are dimmed and the title
        says since when they have not moved."""
        self.stale_since = since
        self.set_class(since is not None, "-stale")
        self._update_title()
        self.refresh()

    def _update_title(self) -> None:
        rows = self._order  # none yet: every device, by name (what the first frame shows)
        sort = SORTS[0 if rows is None else rows.sort_index][1]
        title = f"devices {self.row_count}/{len(self._trackers)} · sort: {sort}"
        if rows is not None and rows.view == "problems":
            title = f"problems {rows.problem_count} first · {title}"
        else:
            title = f"all · {title}"
        if self._filter:
            title += f" · filter: {self._filter}"
        if self.stale_since is not None:
            title = f"LIVE FEED LOST since {self.stale_since} UTC: figures as of then · {title}"
        self.border_title = literal(title)  # the filter is what the operator typed
