"""The screen's one boundary for text that is not wardtui's own: shown literally, never obeyed.

Textual parses console markup in a plain ``str`` given to ``Static``, ``update()``,
``notify()``, ``border_title``, ``DataTable`` cells and command-palette hits: ``[/]`` in a
device name is a ``MarkupError`` that stops the app, ``[@click=app.quit]`` an action. So
every string that holds a device name, an SNMP string, a database row or what the operator
typed reaches a widget through this module, as a :class:`~textual.content.Content` (which is
never parsed) with terminal control replaced (:func:`poller.text.clean`). Our own fixed
strings may carry markup; nothing else does. ``tests/unit/test_static.py`` checks that no
formatted string goes to those APIs without passing here, and the UI tests feed hostile
names through every screen.
"""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.content import Content
from textual.widgets import DataTable, Static

from poller.text import clean, clean_lines


def literal(text: str) -> Content:
    """``text`` as content that is displayed exactly as written (controls replaced; newlines
    kept, for the multi-line statics that our own code joins)."""
    return Content(clean_lines(text))


def literal_text(text: str, style: str = "") -> Text:
    """The same as a Rich :class:`~rich.text.Text` (for tables and trees that take one), one
    line as DataTable makes of a ``str`` cell."""
    return Text(clean(text), style=style, end="", no_wrap=True)


class Literal(Static):
    """A ``Static`` whose strings are never markup: what it is given is what it shows."""

    def __init__(self, content: str | Content = "", **kwargs: Any) -> None:
        super().__init__(literal(content) if isinstance(content, str) else content, markup=False, **kwargs)

    def update(self, content: Any = "", *, layout: bool = True) -> None:
        super().update(literal(content) if isinstance(content, str) else content, layout=layout)


class LiteralTable(DataTable[Any]):
    """A ``DataTable`` whose string cells are shown as written (DataTable reads a ``str`` cell
    as markup). Cells read back are ``Text``; ``str()`` of one is the string given."""

    def add_row(self, *cells: Any, **kwargs: Any) -> Any:
        return super().add_row(*(_cell(c) for c in cells), **kwargs)

    def update_cell(self, row_key: Any, column_key: Any, value: Any, **kwargs: Any) -> None:
        super().update_cell(row_key, column_key, _cell(value), **kwargs)


def _cell(value: Any) -> Any:
    return literal_text(value) if isinstance(value, str) else value
