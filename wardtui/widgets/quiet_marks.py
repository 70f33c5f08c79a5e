"""What the screens say of the quiet state (poller/quiet.py) of one device: the device table's
ack/maint cell and the drill-down's lines (no widget code here).

An acknowledgement takes one outage: it is shown only while the device is out (DOWN or
UNREACH) and its tracker's ``down_since`` is the outage's that was acknowledged, so it goes
from the row as soon as the device recovers, before the next read of the database. A
maintenance window is shown while it is active at the time asked (the table's last tick): the
dashboard asks again when one starts or ends (:meth:`Quiet.next_change`).

Notes, login names and matchers are data: cleaned of terminal control here (one line each) and
shown as literal text by the widgets.
"""

from __future__ import annotations

from datetime import datetime

from poller.events import OUT
from poller.notify.acks import Ack
from poller.quiet import Quiet
from poller.state import TrackerView
from poller.text import clean
from wardtui.widgets.device_facts import stamp

WIDTH = 9
"""The ack/maint column's width: ``ack:alice``, ``maint+ack``."""
LABEL = "ack/maint"

MAINT, ACK = "maint", "ack"


def ack_in_force(quiet: Quiet, tracker: TrackerView) -> Ack | None:
    """The acknowledgement of ``tracker``'s outage now, if it is out and one was taken."""
    since = tracker.down_since  # read once: the engine's thread may change it meanwhile
    if since is None or tracker.state not in OUT:
        return None
    return quiet.ack_of(tracker.device.name, since)


def mark(quiet: Quiet, tracker: TrackerView, at: datetime,
         maintenance: bool | None = None) -> tuple[str, str]:
    """The cell's text and what it says (``MAINT``, ``ACK`` or ``""``): ``maint``,
    ``ack:WHO``, ``maint+ack`` or nothing. ``maintenance``: whether the device is in a window
    at ``at``, when the caller has kept it (else asked here)."""
    if maintenance is None:
        maintenance = quiet.in_maintenance(tracker.device, at)
    ack = ack_in_force(quiet, tracker) if quiet.acks else None
    if ack is not None:
        return ("maint+ack", MAINT) if maintenance else (f"ack:{clean(ack.who)}", ACK)
    return ("maint", MAINT) if maintenance else ("", "")


def quiet_lines(quiet: Quiet, tracker: TrackerView, at: datetime) -> list[str]:
    """The drill-down's lines: who acknowledged the outage and why, each window the device is
    in and until when."""
    from poller.notify.windows import next_change

    lines = []
    ack = ack_in_force(quiet, tracker)
    if ack is not None:
        lines.append(f"acknowledged by {clean(ack.who)} at {stamp(ack.at)} UTC: {clean(ack.note)}")
    for window in quiet.windows_of(tracker.device, at):
        end = next_change([window], at)  # while it is active: its end (a recurring one's occurrence)
        until = f"until {stamp(end)} UTC" if end is not None else "with no end"
        by = f" by {clean(window.created_by)}" if window.created_by else ""
        lines.append(f"in maintenance {until} (window {window.id}{by}): {clean(window.note)}")
    return lines
