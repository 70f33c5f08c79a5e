"""A device's last traps for the drill-down: kept by the dashboard as they arrive (a few per
device, for a bounded number of devices), drawn as data (a trap's var-binds are the sender's
text: they reach the screen through wardtui/literal.py, never as markup)."""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Iterable, Sequence

from poller.events import Trap
from wardtui.widgets.device_facts import stamp

PER_DEVICE = 10  # traps kept and shown per device, newest first
DEVICES = 10_000  # devices whose traps are kept; the one that sent least recently goes first


class RecentTraps:
    """The last ``per_device`` traps of each of at most ``devices`` devices, since this
    dashboard started (attached: since it attached; traps are not stored)."""

    def __init__(self, per_device: int = PER_DEVICE, devices: int = DEVICES) -> None:
        self.per_device = per_device
        self.devices = devices
        self._by_device: OrderedDict[str, deque[Trap]] = OrderedDict()

    def add(self, trap: Trap) -> None:
        kept = self._by_device.get(trap.device)
        if kept is None:
            if len(self._by_device) >= self.devices:
                self._by_device.popitem(last=False)
            kept = self._by_device[trap.device] = deque(maxlen=self.per_device)
        else:
            self._by_device.move_to_end(trap.device)
        kept.append(trap)

    def of(self, device: str) -> tuple[Trap, ...]:
        """``device``'s traps kept, oldest first."""
        return tuple(self._by_device.get(device, ()))


def trap_line(trap: Trap) -> str:
    """``2026-12-06 12:00:01  linkDown  ifIndex 3 Gi0/3  v2c  1.3.6...=...``: plain text, to be
    shown through Literal (the var-binds and interface name are the sender's)."""
    parts = [stamp(trap.at), trap.kind]
    if trap.ifindex is not None:
        parts.append(f"ifIndex {trap.ifindex} {trap.ifname}".rstrip())
    parts.append(f"v{trap.version}")
    if trap.varbinds:
        parts.append(trap.varbinds)
    return "  ".join(parts)


def traps_text(traps: Iterable[Trap]) -> tuple[str, str]:
    """(title, lines newest first) of the traps section."""
    shown: Sequence[Trap] = list(traps)[::-1]
    title = f"traps · the last {len(shown)} received (UTC)" if len(shown) > 1 else "traps · 1 received (UTC)"
    return title, "\n".join(trap_line(t) for t in shown)
