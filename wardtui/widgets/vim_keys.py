"""j/k (and g/G where they are free) for fingers that know vim and less, on the parts of
screens that scroll: the help box, the drill-down's body and its tables, the device table."""

from __future__ import annotations

from typing import ClassVar

from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll

from wardtui.literal import LiteralTable

# Shown in the help, not in the footer: they repeat keys the footer's screens already have.
SCROLL_KEYS: list[BindingType] = [
    Binding("j", "scroll_down", "Scroll down", show=False),
    Binding("k", "scroll_up", "Scroll up", show=False),
    Binding("g", "scroll_home", "Top", show=False),
    Binding("G", "scroll_end", "Bottom", show=False),
]


class VimScroll(VerticalScroll):
    """A VerticalScroll that also answers j, k, g and G (↓ ↑ Home End)."""

    BINDINGS: ClassVar[list[BindingType]] = SCROLL_KEYS


class VimDataTable(LiteralTable):
    """A LiteralTable (cells never markup) whose cursor also answers j, k (↓ ↑), g and G
    (first and last row)."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("j", "cursor_down", "Cursor down", show=False),
        Binding("k", "cursor_up", "Cursor up", show=False),
        Binding("g", "scroll_top", "First row", show=False),
        Binding("G", "scroll_bottom", "Last row", show=False),
    ]
