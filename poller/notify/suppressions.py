"""What keeps a problem quiet: silences (maintenance windows) and acknowledgements, behind a small
protocol the grouper asks, with an in-memory implementation.

The grouper asks :meth:`Suppressions.silenced` when a problem begins, when a message of its group
is built and every few seconds while it is silenced (so the end of a window is noticed without
the window having to say so), and :meth:`Suppressions.acked` when a message or a repeat is
built. The durable implementation (windows and acknowledgements in the history database,
issue 15 items 4-6) keeps this protocol; the notifier then only needs to be told when something
changed (:meth:`poller.notify.grouper.Grouper.suppressions_changed`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from poller.inventory import Device
from poller.notify.model import Matcher


def device_labels(device: Device) -> dict[str, str]:
    """The labels a matcher sees for a device, its state aside (``tag``: any of ``device.tags``)."""
    return {"device": device.name, "branch": device.branch, "region": device.region,
            "type": device.type}


class Suppressions(Protocol):
    """Silences and acknowledgements, as the grouper needs them."""

    def silenced(self, device: Device, at: datetime) -> bool:
        """Whether a silence (a maintenance window) covers ``device`` at ``at``."""
        ...

    def acked(self, device: Device) -> tuple[str, str] | None:
        """``(who, note)`` when someone acknowledged the device's current problem, else None."""
        ...

    def ended(self, device: Device, at: datetime) -> None:
        """The device's problem ended at ``at``: an acknowledgement of it ends with it (one backed
        by the database may ignore this: its own handling of the transition ends it)."""
        ...


@dataclass(frozen=True, slots=True)
class Silence:
    """Devices every matcher matches (``state`` is not known here: a matcher on it never
    matches), from ``start`` (included) to ``end`` (excluded)."""

    matchers: tuple[Matcher, ...]
    start: datetime
    end: datetime
    note: str = ""

    def covers(self, device: Device, at: datetime) -> bool:
        if not self.start <= at < self.end:
            return False
        labels = device_labels(device)
        return all(m.matches(labels, device.tags) for m in self.matchers)


class MemorySuppressions:
    """Silences and acknowledgements kept in memory (tests, and a poller with no database)."""

    def __init__(self) -> None:
        self.silences: list[Silence] = []
        self._acks: dict[str, tuple[str, str]] = {}

    def silence(self, matchers: tuple[Matcher, ...], start: datetime, end: datetime,
                note: str = "") -> Silence:
        window = Silence(matchers, start, end, note)
        self.silences.append(window)
        return window

    def remove(self, window: Silence) -> None:
        self.silences.remove(window)

    def ack(self, name: str, who: str, note: str = "") -> None:
        self._acks[name] = (who, note)

    def silenced(self, device: Device, at: datetime) -> bool:
        return any(s.covers(device, at) for s in self.silences)

    def acked(self, device: Device) -> tuple[str, str] | None:
        return self._acks.get(device.name)

    def ended(self, device: Device, at: datetime) -> None:
        self._acks.pop(device.name, None)
