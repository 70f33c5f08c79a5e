"""The `:` command line: what it understands, how it completes, and how a line is parsed."""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable
from dataclasses import dataclass

from textual import events
from textual.suggester import Suggester
from textual.widgets import Input

from wardtui.widgets.device_rows import SORTS

# (command, argument, what it does): the help screen and the palette read this too.
COMMANDS = (
    ("problems", "", "problems-first view"),
    ("all", "", "every device, by the sort column"),
    ("groups", "", "region → branch → device, with counts"),
    ("device", "NAME", "open a device's drill-down (Tab completes the name)"),
    ("sort", "COLUMN", "sort by " + ", ".join(key for key, _ in SORTS)),
    ("filter", "TEXT", "filter every view (empty: clear)"),
    ("probe", "NAME", "check a device now, outside its schedule (attached: the service does, every "
                      "viewer sees it)"),
    ("help", "", "all keys"),
    ("quit", "", "stop polling, save history, leave"),
)
NAMES = tuple(command for command, _, _ in COMMANDS)
PREFIX_WINS: dict[tuple[str, ...], str] = {("problems", "probe"): "problems"}
"""A prefix of both (``:p``, ``:prob``) meant problems before probe existed, and still does."""


@dataclass(frozen=True, slots=True)
class Command:
    name: str
    argument: str


class CommandError(ValueError):
    """A line that is not a command; its text is what the operator reads."""


def parse(line: str) -> Command:
    """``"device core-1"`` → Command("device", "core-1"); a unique prefix of a command works."""
    word, _, argument = line.strip().lstrip(":").strip().partition(" ")
    word = word.lower()
    if not word:
        raise CommandError("empty command; try :help")
    matches = [name for name in NAMES if name.startswith(word)]
    if word in NAMES:
        matches = [word]
    if tuple(matches) in PREFIX_WINS:
        matches = [PREFIX_WINS[tuple(matches)]]
    if len(matches) != 1:
        choice = f" (did you mean {' or '.join(matches)}?)" if matches else ""
        raise CommandError(f"unknown command :{word}{choice} — commands: {' '.join(NAMES)}")
    return Command(matches[0], argument.strip())


class CommandSuggester(Suggester):
    """Completes command words, sort columns, and device names by prefix (bisect: 20,000 is fine)."""

    def __init__(self, devices: Iterable[str]) -> None:
        super().__init__(use_cache=False, case_sensitive=True)
        # The names as they are now; sorted at the first completion that needs them, not while
        # the dashboard builds its first frame (~0.1 s at 100,000 devices).
        self._names: list[str] | None = list(devices)
        self._devices: list[str] = []
        self._folded_order: list[int] = []
        self._folded_sorted: list[str] = []

    def _index(self) -> None:
        """Sort the names once: by name, and by folded name for case-insensitive prefixes."""
        if self._names is None:
            return
        self._devices = sorted(self._names)
        self._names = None
        folded = [name.lower() for name in self._devices]
        self._folded_order = sorted(range(len(self._devices)), key=folded.__getitem__)
        self._folded_sorted = [folded[i] for i in self._folded_order]

    def device_prefix(self, prefix: str, limit: int = 10) -> list[str]:
        """Device names starting with ``prefix`` (case-insensitive), at most ``limit``."""
        self._index()
        folded = prefix.lower()
        start = bisect_left(self._folded_sorted, folded)
        found: list[str] = []
        for index in range(start, min(start + limit, len(self._folded_sorted))):
            if not self._folded_sorted[index].startswith(folded):
                break
            found.append(self._devices[self._folded_order[index]])
        return found

    def completions(self, value: str, limit: int = 50) -> list[str]:
        """Whole lines that complete ``value``, best first: command words (with a space after
        those that take an argument), sort columns, device names (at most ``limit``)."""
        word, space, argument = value.partition(" ")
        if not space:
            folded = word.lower()
            return [f"{name} " if arg else name for name, arg, _ in COMMANDS
                    if name.startswith(folded) and name != folded]
        if word in ("device", "probe") and argument:
            return [f"{word} {name}" for name in self.device_prefix(argument, limit)]
        if word == "sort" and argument:
            return [f"sort {key}" for key, _ in SORTS if key.startswith(argument.lower())]
        return []

    async def get_suggestion(self, value: str) -> str | None:
        found = self.completions(value, 1) if value else []  # an empty line shows the placeholder
        return found[0].rstrip() if found else None


class LineInput(Input):
    """A one-line input that Enter and Esc close (the `/` filter, the `:` line).

    The app hands each key to the focused widget as the key arrives, not once the one before it
    has been handled, and a binding's action runs only after its key has bubbled back up to the
    app. Keys typed fast (or coalesced by an SSH link) would go astray: ``/dev1`` Enter ``jj``
    typed ``jj`` into the filter. So Enter and Esc are handled here, in the order the keys came,
    by running the screen's ``enter_action``/``escape_action`` at once (it moves the focus), and
    keys that were already queued here when the focus moved on are handed back to the app,
    which gives them to what has the focus now."""

    def __init__(self, placeholder: str = "", *, enter_action: str, escape_action: str,
                 suggester: Suggester | None = None, id: str | None = None) -> None:
        super().__init__(placeholder=placeholder, suggester=suggester, id=id)
        self._actions = {"enter": enter_action, "escape": escape_action}

    def _focused(self) -> bool:
        # Not has_focus: that follows the Blur message, which is queued behind these keys.
        return self.screen.focused is self

    async def _on_key(self, event: events.Key) -> None:
        if not self._focused() or event.key in self._actions:
            event.stop()
            event.prevent_default()
            if not self._focused():  # typed after Enter or Esc: meant for what has the focus now
                self.app.post_message(events.Key(event.key, event.character))
            else:
                await self.app.run_action(self._actions[event.key], self.screen)
            return
        await super()._on_key(event)


class CommandInput(LineInput):
    """The `:` line's input. Tab completes (again: the next candidate, shift+Tab the previous)
    instead of moving the focus out, which left the line open while the next letters ran as
    dashboard keys (``q`` quit). Completion is computed here, not taken from the grey
    suggestion, which arrives from a worker and may lag behind fast typing."""

    def __init__(self, suggester: CommandSuggester, placeholder: str = "", *, enter_action: str,
                 escape_action: str, id: str | None = None) -> None:
        super().__init__(placeholder, enter_action=enter_action, escape_action=escape_action,
                         suggester=suggester, id=id)
        self._cycle: list[str] = []  # the candidates of the last Tab, while the value is one of them

    async def _on_key(self, event: events.Key) -> None:
        # Handled here, in the order the keys came, not by a binding (see LineInput; seen in
        # tmux: `dev` Tab `qa` typed fast gave `devqa`).
        if event.key in ("tab", "shift+tab") and self._focused():
            event.stop()
            event.prevent_default()
            self.action_complete(1 if event.key == "tab" else -1)
            return
        await super()._on_key(event)

    def action_complete(self, step: int) -> None:
        suggester = self.suggester
        if not isinstance(suggester, CommandSuggester):
            return
        if self.value in self._cycle and len(self._cycle) > 1:
            index = (self._cycle.index(self.value) + step) % len(self._cycle)
        else:
            self._cycle = suggester.completions(self.value)
            index = 0 if step > 0 else len(self._cycle) - 1
        if self._cycle:
            self.value = self._cycle[index]
            self.cursor_position = len(self.value)
