"""Acknowledgements (issue 15 item 5) as pure logic: :class:`Ack`, one operator's "I have this" on
one outage of one device, and :class:`AckSuppressions`, the grouper's
:class:`~poller.notify.suppressions.Suppressions` that answers ``acked`` from the
acknowledgements in force and leaves ``silenced`` to the maintenance windows. No database here:
the store keeps them (store/acks.py) and hands them over as :class:`Ack`.

An acknowledgement names the outage it takes by its start (``down_since``): it holds until the
device recovers, and a later outage of the same device is not acknowledged. The service reads
the acknowledgements every 30 s; between two reads a device may recover and fail again, so
:meth:`AckSuppressions.ended` remembers which (device, outage) ended and a read that still
shows it (the history's writer may be behind the notifier) does not bring it back.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from poller.inventory import Device
from poller.notify.suppressions import Suppressions


@dataclass(frozen=True, slots=True)
class Ack:
    """One acknowledgement: ``device``'s outage that began at ``down_since`` (aware UTC), taken by
    ``who`` (a login name) at ``at`` with ``note``. ``cleared_at``/``cleared_why``: removed
    before the device recovered; ``recovered_at``: when that outage ended, if it has (known to
    the store, which reads the outage with it)."""

    id: int
    device: str
    down_since: datetime
    note: str
    who: str
    at: datetime
    cleared_at: datetime | None = None
    cleared_why: str | None = None
    recovered_at: datetime | None = None

    @property
    def open(self) -> bool:
        """In force: neither removed nor ended by the device's recovery."""
        return self.cleared_at is None and self.recovered_at is None


class AckSuppressions:
    """Maintenance windows (``windows``: their ``silenced``) and acknowledgements (``acked``): what
    ``wardtui serve --notify`` gives the notifier. :meth:`replace_acks` swaps the
    acknowledgements in force (the service reloads them from the database) and says whether
    anything changed, so that the notifier is told only then."""

    def __init__(self, windows: Suppressions, acks: Iterable[Ack] = ()) -> None:
        self.windows = windows
        self._acks: dict[str, Ack] = {}
        self._ended: set[tuple[str, datetime]] = set()  # outages ended here, maybe not yet stored
        self.replace_acks(acks)

    @property
    def acks(self) -> tuple[Ack, ...]:
        return tuple(self._acks.values())

    def replace_acks(self, acks: Iterable[Ack]) -> bool:
        """The acknowledgements in force now (open ones; several of one device: the latest)."""
        acks = tuple(acks)
        fresh: dict[str, Ack] = {}
        for ack in sorted(acks, key=lambda a: (a.at, a.id)):
            if ack.open and (ack.device, ack.down_since) not in self._ended:
                fresh[ack.device] = ack
        # What the store no longer shows open has been stored as ended: no need to remember it.
        shown = {(a.device, a.down_since) for a in acks}
        self._ended &= shown
        if fresh == self._acks:
            return False
        self._acks = fresh
        return True

    def silenced(self, device: Device, at: datetime) -> bool:
        return self.windows.silenced(device, at)

    def acked(self, device: Device) -> tuple[str, str] | None:
        ack = self._acks.get(device.name)
        return None if ack is None else (ack.who, ack.note)

    def ended(self, device: Device, at: datetime) -> None:
        self.windows.ended(device, at)
        ack = self._acks.pop(device.name, None)
        if ack is not None:
            self._ended.add((ack.device, ack.down_since))
