"""The `:` command line: what it understands, how it completes, and how a line is parsed."""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable
from dataclasses import dataclass

from textual.suggester import Suggester

from wardtui.widgets.device_rows import SORTS

# (command, argument, what it does): the help screen and the palette read this too.
COMMANDS = (
    ("problems", "", "problems-first view"),
    ("all", "", "every device, by the sort column"),
    ("groups", "", "region → branch → device, with counts"),
    ("device", "NAME", "open a device's drill-down (Tab completes the name)"),
    ("sort", "COLUMN", "sort by " + ", ".join(key for key, _ in SORTS)),
    ("filter", "TEXT", "filter every view (empty: clear)"),
    ("help", "", "all keys"),
    ("quit", "", "stop polling, save history, leave"),
)
NAMES = tuple(command for command, _, _ in COMMANDS)


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
    if len(matches) != 1:
        choice = f" (did you mean {' or '.join(matches)}?)" if matches else ""
        raise CommandError(f"unknown command :{word}{choice} — commands: {' '.join(NAMES)}")
    return Command(matches[0], argument.strip())


class CommandSuggester(Suggester):
    """Completes command words, sort columns, and device names by prefix (bisect: 20,000 is fine)."""

    def __init__(self, devices: Iterable[str]) -> None:
        super().__init__(use_cache=False, case_sensitive=True)
        self._devices = sorted(devices)
        self._folded = [name.lower() for name in self._devices]
        self._folded_order = sorted(range(len(self._devices)), key=self._folded.__getitem__)
        self._folded_sorted = [self._folded[i] for i in self._folded_order]

    def device_prefix(self, prefix: str, limit: int = 10) -> list[str]:
        """Device names starting with ``prefix`` (case-insensitive), at most ``limit``."""
        folded = prefix.lower()
        start = bisect_left(self._folded_sorted, folded)
        found: list[str] = []
        for index in range(start, min(start + limit, len(self._folded_sorted))):
            if not self._folded_sorted[index].startswith(folded):
                break
            found.append(self._devices[self._folded_order[index]])
        return found

    async def get_suggestion(self, value: str) -> str | None:
        word, space, argument = value.partition(" ")
        if not space:
            return next((name for name in NAMES if name.startswith(word.lower()) and word), None)
        if word == "device" and argument:
            found = self.device_prefix(argument, 1)
            return f"device {found[0]}" if found else None
        if word == "sort" and argument:
            column = next((key for key, _ in SORTS if key.startswith(argument.lower())), None)
            return f"sort {column}" if column else None
        return None
