"""A scrolling log of state changes, flapping, reboots and interface changes, newest at the bottom, in UTC."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from rich.text import Text
from textual.geometry import Size
from textual.reactive import Reactive
from textual.widgets import RichLog

from poller.events import FlapChange, InterfaceChange, Reboot, SnmpAgentChange, State, Transition
from wardtui.widgets.states import StatePalette, format_duration, state_text


def utc_stamp(at: datetime) -> str:
    # Month-day keeps a line within the panel; the year is in the history store.
    return at.astimezone(UTC).strftime("%m-%d %H:%M:%SZ")


class TransitionLog(RichLog):
    """Write :class:`Transition` and :class:`FlapChange` events; keeps the last ``max_lines``."""

    DEFAULT_CSS = """
    TransitionLog { height: 1fr; overflow-x: hidden; scrollbar-size-vertical: 1; }
    """

    # The log grows by a few lines every tick in an incident. For Textual's widgets a new
    # virtual size means a layout of the whole screen (~20 ms at 20,000 devices, each tick);
    # the log's place on screen does not change with its length, so only its scrollbar
    # follows. (The scrollbar appearing still lays out: that changes the log's content width.)
    virtual_size: Reactive[Size] = Reactive(Size(0, 0), layout=False)

    def watch_virtual_size(self, size: Size) -> None:
        self._scroll_update(size)

    def __init__(self, *, max_lines: int = 2000, id: str | None = None) -> None:
        # Wrapped rather than scrolled sideways: a narrow terminal must not hide the "to" state.
        super().__init__(max_lines=max_lines, wrap=True, markup=False, auto_scroll=True,
                         min_width=20, id=id)
        self.palette = StatePalette()
        self._first_up = 0  # first answers counted but not yet written
        self._first_up_at = datetime.now(UTC)
        self.lines_written: list[str] = []  # plain text, newest last, bounded like the log
        self._pending: list[Text] = []  # lines of this tick, written together by flush()

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
        line.append(event.device, style="bold")
        line.append(" ")
        line.append_text(state_text(event.from_state, self.palette))
        line.append(" → ")
        line.append_text(state_text(event.to_state, self.palette))
        if event.from_state is State.DOWN and event.down_since is not None:
            line.append(f" after {format_duration(event.at - event.down_since)} down")
        line.append(f"  {event.address}", style="dim")
        self._write(line)

    def add_flap(self, event: FlapChange) -> None:
        line = Text(utc_stamp(event.at) + " ", style="dim")
        line.append(event.device, style="bold")
        line.append(" ")
        if event.flapping:
            line.append("flapping", style=self.palette.flapping)
            line.append(f" ({event.transitions_in_window} changes in the window)")
        else:
            line.append("stopped flapping")
        line.append(f"  {event.address}", style="dim")
        self._write(line)

    def add_reboot(self, event: Reboot) -> None:
        line = Text(utc_stamp(event.at) + " ", style="dim")
        line.append(event.device, style="bold")
        line.append(" rebooted", style=self.palette.flapping)
        line.append(f" (up {format_duration(event.at - event.booted_at)}, was up "
                    f"{format_duration(timedelta(seconds=event.previous_uptime_s))})")
        line.append(f"  {event.address}", style="dim")
        self._write(line)

    def add_interface(self, event: InterfaceChange) -> None:
        line = Text(utc_stamp(event.at) + " ", style="dim")
        line.append(event.device, style="bold")
        line.append(f" {event.ifname} ")
        line.append(event.from_state, style=self._if_style(event.from_state))
        line.append(" → ")
        line.append(event.to_state, style=self._if_style(event.to_state))
        line.append(f"  ifIndex {event.ifindex}", style="dim")
        self._write(line)

    def add_snmp_agent(self, event: SnmpAgentChange) -> None:
        line = Text(utc_stamp(event.at) + " ", style="dim")
        line.append(event.device, style="bold")
        if event.answering:
            line.append(" SNMP agent answers again")
        else:
            line.append(f" SNMP agent not answering ({event.reason})", style=self.palette.flapping)
        line.append(f"  {event.address}", style="dim")
        self._write(line)

    def _if_style(self, status: str) -> str:
        if status == "up":
            return self.palette.up
        return self.palette.down if status in ("down", "lowerLayerDown") else ""

    def _write(self, line: Text) -> None:
        self._pending.append(line)
        self.lines_written.append(line.plain)
        if self.max_lines is not None and len(self.lines_written) > self.max_lines:
            del self.lines_written[: len(self.lines_written) - self.max_lines]

    def flush(self) -> None:
        """Write the lines added since the last flush, as one write: each write resizes the log
        and so lays out the whole screen again (~3 ms a line at 100 transitions a second)."""
        if self._pending:
            lines, self._pending = self._pending, []
            self.write(Text("\n").join(lines))
