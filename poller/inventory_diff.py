"""What changes between two inventories: devices added, removed and changed (and in which fields).

Devices are matched by name. A row that only moved in the file (its ``line``) is unchanged. The
engine applies a difference without a restart (:meth:`poller.engine.Engine.apply_inventory`);
``wardtui serve --check`` prints one.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, fields

from poller.inventory import Device

COMPARED = tuple("parent" if f.name == "parents" else f.name
                 for f in fields(Device) if f.name not in ("name", "host", "line"))
"""The fields whose change is a change of the device (its position in the file is not, nor the
host name it was resolved from: the address it gave is compared). The parents are compared as
the inventory writes them (``parent``: ``a;b``)."""
STORED = ("address", "branch", "region", "type", "parent")
"""Those the history's devices table keeps (``wardtui serve --check`` without ``--against``)."""


@dataclass(frozen=True, slots=True)
class DeviceChange:
    old: Device
    new: Device
    fields: tuple[str, ...]  # those that differ, in COMPARED's order

    @property
    def name(self) -> str:
        return self.new.name


@dataclass(frozen=True, slots=True)
class InventoryDiff:
    """Devices in the new inventory only, in the old one only, in both but different; and how
    many are the same in both. Each in the order of the inventory that holds it."""

    added: tuple[Device, ...] = ()
    removed: tuple[Device, ...] = ()
    changed: tuple[DeviceChange, ...] = ()
    unchanged: int = 0

    @property
    def empty(self) -> bool:
        return not (self.added or self.removed or self.changed)

    def summary(self) -> str:
        """``2 added, 1 removed, 1 changed, 40 unchanged``."""
        return (f"{len(self.added)} added, {len(self.removed)} removed, {len(self.changed)} changed, "
                f"{self.unchanged} unchanged")

    def lines(self) -> list[str]:
        """One line per device that differs: ``+ name address``, ``- name address``,
        ``~ name: field old -> new, ...``. Values are the inventory's (the caller escapes them)."""
        out = [f"+ {d.name} {d.address}" for d in self.added]
        out += [f"- {d.name} {d.address}" for d in self.removed]
        for change in self.changed:
            parts = [f"{f} {_value(getattr(change.old, f))} -> {_value(getattr(change.new, f))}"
                     for f in change.fields]
            out.append(f"~ {change.name}: {', '.join(parts)}")
        return out


def _value(value: object) -> str:
    if value is None or value == "" or value == ():
        return "(none)"
    if isinstance(value, tuple):
        return ",".join(str(v) for v in value)
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def changed_fields(old: Device, new: Device, compared: tuple[str, ...] = COMPARED) -> tuple[str, ...]:
    return tuple(f for f in compared if getattr(old, f) != getattr(new, f))


def diff_inventories(old: Iterable[Device], new: Iterable[Device],
                     compared: tuple[str, ...] = COMPARED) -> InventoryDiff:
    """How ``new`` differs from ``old`` (devices matched by name), in the fields ``compared``."""
    before = {d.name: d for d in old}
    after = {d.name: d for d in new}
    added = tuple(d for name, d in after.items() if name not in before)
    removed = tuple(d for name, d in before.items() if name not in after)
    changed = []
    unchanged = 0
    for name, device in after.items():
        previous = before.get(name)
        if previous is None:
            continue
        if previous is device:  # the same (frozen) record: a cluster member's shards moved
            unchanged += 1
            continue
        differ = changed_fields(previous, device, compared)
        if differ:
            changed.append(DeviceChange(previous, device, differ))
        else:
            unchanged += 1
    return InventoryDiff(added, removed, tuple(changed), unchanged)
