"""How device states read on screen, shared by the table and the log (durations:
poller/durations.py)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from rich.text import Text

from poller.events import State

# Upper-case and bold DOWN stays distinguishable when NO_COLOR strips the colours; UNREACH
# (failed behind parents that are all out) is upper-case too, but not bold, and fits the column.
_LABELS = {State.DOWN: "DOWN", State.UP: "up", State.UNKNOWN: "unknown", State.UNREACHABLE: "UNREACH"}


@dataclass(frozen=True, slots=True)
class StatePalette:
    """Rich styles for the states; built from the app's CSS variables so they follow the theme."""

    down: str = "bold red"
    up: str = "green"
    unknown: str = "dim"
    flapping: str = "bold yellow"
    unreachable: str = "magenta"
    # The ack/maint column (wardtui/widgets/quiet_marks.py): a device under maintenance, an
    # outage someone has acknowledged.
    maintenance: str = "cyan"
    acked: str = "green"

    @classmethod
    def from_variables(cls, variables: Mapping[str, str]) -> StatePalette:
        """Take ``$state-*`` colours (wardtui.app.SHARED_VARIABLES) when they are plain colours
        Rich understands."""

        def pick(name: str, fallback: str, bold: bool = False) -> str:
            value = variables.get(name, "")
            # Rich cannot parse CSS extras like "auto 60%" or alpha hex; keep the fallback then.
            if not value.startswith("#") or len(value) != 7:
                return fallback
            return f"bold {value}" if bold else value

        default = cls()
        return cls(down=pick("state-down", default.down, bold=True),
                   up=pick("state-up", default.up), unknown=default.unknown,
                   flapping=pick("state-flapping", default.flapping, bold=True),
                   unreachable=pick("state-unreachable", default.unreachable),
                   maintenance=pick("state-maintenance", default.maintenance),
                   acked=pick("state-acked", default.acked))

    def style(self, state: State) -> str:
        return {State.DOWN: self.down, State.UP: self.up,
                State.UNREACHABLE: self.unreachable}.get(state, self.unknown)


def state_label(state: State, flapping: bool = False) -> str:
    label = _LABELS[state]
    return f"{label}~flap" if flapping else label


def state_text(state: State, palette: StatePalette, flapping: bool = False) -> Text:
    text = Text(_LABELS[state], style=palette.style(state))
    if flapping:
        text.append("~flap", style=palette.flapping)
    return text
