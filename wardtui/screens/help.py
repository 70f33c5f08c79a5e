"""The ``?`` screen: every key the dashboard answers to, and what the columns mean."""

from __future__ import annotations

from rich.table import Table
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Static

from wardtui.widgets.device_rows import SORTS

NOTES = (
    "s cycles the sort: " + " → ".join(description for _, description in SORTS) + ".",
    "The filter matches text in any column (try a branch, a region, DOWN or unknown).",
    "down for: time since the first failed probe of the outage. Log times are UTC.",
)


class HelpScreen(ModalScreen[None]):
    """A modal list of keys; any of Esc, ? or q closes it."""

    CSS_PATH = "help.tcss"
    BINDINGS = [
        Binding("escape", "dismiss", "Close"),
        Binding("question_mark", "dismiss", "Close", show=False),
        Binding("q", "dismiss", "Close", show=False),
    ]

    def __init__(self, keys: list[tuple[str, str]]) -> None:
        super().__init__()
        self.keys = keys

    def compose(self) -> ComposeResult:
        table = Table.grid(padding=(0, 2))
        table.add_column(style="bold", no_wrap=True)
        table.add_column()
        for key, description in self.keys:
            table.add_row(key, description)
        with Vertical(id="help-box"):
            yield Static(table, id="help-keys")
            yield Static("\n".join(NOTES), id="help-notes")
            yield Static("Esc, ? or q closes this help.", id="help-close")

    def on_mount(self) -> None:
        self.query_one("#help-box").border_title = "wardtui keys"

    def text(self) -> str:
        """Everything the help shows, as plain text (for tests and screen readers)."""
        rows = [f"{key}  {description}" for key, description in self.keys]
        return "\n".join([*rows, *NOTES])
