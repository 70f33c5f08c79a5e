"""The ``?`` screen: every key each screen answers to, and what the columns mean."""

from __future__ import annotations

from collections.abc import Sequence

from rich.table import Table
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.screen import ModalScreen
from textual.widgets import Footer, Static

from wardtui.literal import Literal, literal
from wardtui.widgets.command_line import COMMANDS
from wardtui.widgets.device_rows import PROBLEM_RULE, SORTS
from wardtui.widgets.vim_keys import VimScroll

NOTES = (
    "s cycles the sort: " + " → ".join(description for _, description in SORTS) + ".",
    "The filter matches the name, address, branch, region, type and state (try a branch, a region, "
    "DOWN, UNREACH or unknown); not RTT, loss or down for, which move every second.",
    "down for: time since the first failed probe of the outage. Log times are UTC.",
    "ack/maint: maint — in a maintenance window now (polled, not notified); ack:WHO — WHO "
    "acknowledged the outage (until the device recovers). a and m set them; the drill-down says "
    "who, why and until when.",
    f"p: problems first — {PROBLEM_RULE}; longest down first, then flapping, then loss; the rest after.",
    "g: groups region → branch → device, with devices and down per group; the filter applies there too.",
    ": commands (a unique prefix works): "
    + " · ".join(f":{name}{' ' + arg if arg else ''}" for name, arg, _ in COMMANDS) + ".",
)


Keys = list[tuple[str, str]]


def binding_keys(app: App[object], bindings: Sequence[Binding | tuple[str, ...]]) -> Keys:
    """(key, "description: tooltip") of every shown binding, and of those kept out of a full footer
    that have a tooltip (``n`` in the drill-down): the help never disagrees with the footer."""
    return [(app.get_key_display(b), f"{b.description}: {b.tooltip}" if b.tooltip else b.description)
            for b in bindings if isinstance(b, Binding) and (b.show or b.tooltip)]


CLOSE = "Esc, ? or q closes this help."
SCROLL = "↑ ↓ PgUp PgDn Home End (j k g G) scroll"


class HelpScreen(ModalScreen[None]):
    """A modal list of keys; any of Esc, ? or q closes it. The box scrolls (it has the focus),
    and its bottom border always says how to scroll and close, even when the end of the text is
    below the fold (an 80x24 terminal)."""

    CSS_PATH = "help.tcss"
    BINDINGS = [
        Binding("escape", "dismiss", "Close"),
        Binding("question_mark", "dismiss", "Close", show=False),
        Binding("q", "dismiss", "Close", show=False),
    ]

    def __init__(self, keys: Keys, sections: Sequence[tuple[str, Keys]] = (),
                 notes: Sequence[str] = NOTES, title: str = "wardtui keys") -> None:
        """``keys`` of the screen it was opened from, then other screens' keys under a heading."""
        super().__init__()
        self.keys = keys
        self.sections = list(sections)
        self.notes = list(notes)
        self.box_title = title

    def compose(self) -> ComposeResult:
        table = Table.grid(padding=(0, 2))
        table.add_column(style="bold", no_wrap=True)
        table.add_column()
        for key, description in self.keys:
            table.add_row(key, description)
        for heading, keys in self.sections:
            table.add_row("", "")
            table.add_row(heading, "", style="italic")
            for key, description in keys:
                table.add_row(key, description)
        with VimScroll(id="help-box"):
            yield Static(table, id="help-keys")
            yield Literal("\n".join(self.notes), id="help-notes")
            yield Static(CLOSE, id="help-close")
        yield Footer(show_command_palette=False)

    def on_mount(self) -> None:
        box = self.query_one("#help-box")
        box.border_title = literal(self.box_title)
        box.border_subtitle = literal(f"{SCROLL} · Esc closes")
        box.focus()

    def text(self) -> str:
        """Everything the help shows, as plain text (for tests and screen readers)."""
        rows = [f"{key}  {description}" for key, description in self.keys]
        for heading, keys in self.sections:
            rows += ["", heading, *(f"{key}  {description}" for key, description in keys)]
        return "\n".join([*rows, *self.notes])
