"""The ``a`` (acknowledge) and ``m`` (maintenance) boxes: an operator's acknowledgement of a
device's outage, or a maintenance window from now over a device, a branch or a region (issue 15
items 4-6).

What the boxes send runs where the probe-now key's check does (wardtui/app.py): on the engine's
thread, written to the database by the embedded runtime or sent to ``wardtui serve`` as a
command. The answer is shown in the box (refused: the box stays, with the reason) and as a
notice; the marks follow from the quiet state the poller publishes (QuietChanged). Names,
notes and errors are shown literally.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Footer, Input

from poller.quiet import Quiet
from wardtui.literal import Literal, literal

Reply = dict[str, Any]


@dataclass(frozen=True, slots=True)
class QuietKeys:
    """What the screens' ``a`` and ``m`` call (the app's wiring of the runtime, embedded or
    attached): ``now`` the quiet state in force, ``acknowledge(device, note)``,
    ``add_maintenance(matchers, duration_s, note)``; each answer ``{"ok": True, ...}`` or
    ``{"ok": False, "error": ...}``."""

    now: Callable[[], Quiet]
    acknowledge: Callable[[str, str], Awaitable[Reply]]
    add_maintenance: Callable[[list[str], float, str], Awaitable[Reply]]


class QuietBox(ModalScreen[Reply | None]):
    """What both boxes share: a title, fields, a status line; Enter sends, Esc cancels. Dismissed
    with the answer once it is yes (None: cancelled)."""

    CSS_PATH = "quiet.tcss"
    BINDINGS = [
        # priority: Enter sends from any field (an Input would take it as its own Submitted).
        Binding("enter", "send", "Send", priority=True),
        Binding("escape", "cancel", "Cancel"),
    ]
    TITLE = ""

    def __init__(self) -> None:
        super().__init__()
        self.sending = False

    def fields(self) -> ComposeResult:
        raise NotImplementedError

    def compose(self) -> ComposeResult:
        with Vertical(id="quiet-box"):
            yield from self.fields()
            yield Literal("Enter sends · Esc cancels · Tab: next field", id="quiet-status")
        yield Footer(show_command_palette=False)

    def on_mount(self) -> None:
        self.query_one("#quiet-box").border_title = literal(self.TITLE)

    @property
    def status(self) -> str:
        """The status line's text (tests)."""
        return str(self.query_one("#quiet-status", Literal).render())

    def say(self, message: str, error: bool = False) -> None:
        self.query_one("#quiet-status", Literal).update(message)
        self.query_one("#quiet-status").set_class(error, "-error")

    def action_cancel(self) -> None:
        if not self.sending:
            self.dismiss(None)

    def action_send(self) -> None:
        if self.sending:
            return
        request = self.request()
        if request is None:
            return
        self.sending = True
        self.say("sending…")
        self.send(request)

    def request(self) -> Callable[[], Awaitable[Reply]] | None:
        """What Enter sends, or None after saying what is missing."""
        raise NotImplementedError

    def done(self, reply: Reply) -> str:
        """The notice for a yes."""
        raise NotImplementedError

    @work(group="quiet", exclusive=True, exit_on_error=False)
    async def send(self, request: Callable[[], Awaitable[Reply]]) -> None:
        try:
            reply = await request()
        except Exception as exc:  # the operator hears it; the box stays
            reply = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
        finally:
            self.sending = False
        if not reply.get("ok"):
            error = str(reply.get("error", "no answer"))
            self.say(f"refused: {error}", error=True)
            self.notify(error, title=self.TITLE, severity="error")
            return
        self.app.notify(self.done(reply), title=self.TITLE)
        self.dismiss(reply)


class AckBox(QuietBox):
    """``a``: acknowledge ``device``'s outage with a note (required)."""

    TITLE = "acknowledge"

    def __init__(self, device: str, keys: QuietKeys) -> None:
        super().__init__()
        self.device = device
        self.keys = keys

    def fields(self) -> ComposeResult:
        yield Literal(f"acknowledge the outage of {self.device}", id="quiet-scope")
        yield Input(placeholder="note: what is being done, by whom (required)", max_length=1000,
                    id="quiet-note")

    def request(self) -> Callable[[], Awaitable[Reply]] | None:
        note = self.query_one("#quiet-note", Input).value
        if not note.strip():
            self.say("a note is needed: what is being done, and by whom", error=True)
            return None
        return lambda: self.keys.acknowledge(self.device, note)

    def done(self, reply: Reply) -> str:
        return f"{self.device} acknowledged by {reply.get('who', '?')}: {reply.get('note', '')}"


class MaintenanceBox(QuietBox):
    """``m``: a maintenance window from now over ``scope`` (``device=NAME``, ``branch=X``,
    ``region=Y``) for a length (``2h``, ``90m``) with a note (required)."""

    TITLE = "maintenance window"

    def __init__(self, scope: str, keys: QuietKeys) -> None:
        super().__init__()
        self.scope = scope
        self.keys = keys

    def fields(self) -> ComposeResult:
        yield Literal(f"maintenance from now for {self.scope}", id="quiet-scope")
        yield Input("2h", placeholder="for how long: 90m, 2h, 1h30m, 1d", max_length=40, id="quiet-duration")
        yield Input(placeholder="note: why, a change number, who to call (required)", max_length=1000,
                    id="quiet-note")

    def on_mount(self) -> None:
        super().on_mount()
        self.query_one("#quiet-note", Input).focus()

    def request(self) -> Callable[[], Awaitable[Reply]] | None:
        from wardtui.cli.common import UsageError
        from wardtui.cli.maintenance import span

        try:
            length = span(self.query_one("#quiet-duration", Input).value, "for")
        except UsageError as exc:
            self.say(str(exc), error=True)
            return None
        note = self.query_one("#quiet-note", Input).value
        if not note.strip():
            self.say("a note is needed: why, a change number, who to call", error=True)
            return None
        return lambda: self.keys.add_maintenance([self.scope], length.total_seconds(), note)

    def done(self, reply: Reply) -> str:
        ends = str(reply.get("ends_at", "?"))[:19].replace("T", " ")
        return f"maintenance for {self.scope} until {ends} UTC (window {reply.get('id', '?')})"
