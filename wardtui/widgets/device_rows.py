"""What each device-table column says and how each sort orders devices (no widget code here)."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from poller.events import State
from poller.inventory import Device
from poller.state import DeviceTracker
from wardtui.widgets.states import format_duration, state_label

SortKey = tuple[Any, ...]


@dataclass(frozen=True, slots=True)
class Column:
    key: str
    label: str
    width: int | None = None  # fixed for cells that change live, so the layout never jumps
    numeric: bool = False


# What answers "what is down, since when" comes right after the name, so it stays on screen in
# an 80-column SSH terminal; where the device sits follows.
COLUMNS = (
    Column("name", "name"), Column("state", "state", 9),
    Column("rtt", "RTT ms", 7, numeric=True), Column("loss", "loss %", 6, numeric=True),
    Column("down", "down for", 8, numeric=True),
    Column("address", "address"), Column("branch", "branch"),
    Column("region", "region"), Column("type", "type"),
)

# The order `s` cycles through: what an operator asks most often comes first.
SORTS = (
    ("name", "name"), ("state", "state, down first"), ("down", "down for, longest first"),
    ("loss", "loss %, worst first"), ("rtt", "RTT, slowest first"), ("address", "address"),
    ("branch", "branch"), ("region", "region"), ("type", "type"),
)


def natural(text: str) -> SortKey:
    """``dev2`` before ``dev10``; digits and text alternate, so keys always compare."""
    return tuple(int(part) if i % 2 else part.lower() for i, part in enumerate(re.split(r"(\d+)", text)))


def _address_key(address: str) -> SortKey:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return (99, 0, address)
    return (ip.version, int(ip), "")


def static_keys(device: Device) -> dict[str, SortKey]:
    """Keys of the columns that never change, computed once per device."""
    return {"name": natural(device.name), "address": _address_key(device.address),
            "branch": natural(device.branch), "region": natural(device.region),
            "type": natural(device.type)}


def _rtt(tracker: DeviceTracker) -> float | None:
    # The last reply's RTT of a device that is down now says nothing about it.
    return None if tracker.state is State.DOWN else tracker.last_rtt_ms


def _number(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.2f}" if value < 10 else f"{value:.1f}" if value < 1000 else f"{value:.0f}"


def row_texts(tracker: DeviceTracker, now: datetime) -> tuple[str, ...]:
    """The plain text of every column, in :data:`COLUMNS` order."""
    device = tracker.device
    loss = tracker.loss_pct
    down = ""
    since = tracker.down_since  # read once: the engine's thread may clear it meanwhile
    if tracker.state is State.DOWN and since is not None:
        down = format_duration(now - since)
    return (device.name, state_label(tracker.state, tracker.flapping), _number(_rtt(tracker)),
            "-" if loss is None else f"{loss:.0f}", down,
            device.address, device.branch, device.region, device.type)


_STATE_RANK = {State.DOWN: 0, State.UNKNOWN: 2, State.UP: 3}


def sort_key(column: str, tracker: DeviceTracker, static: dict[str, SortKey]) -> SortKey:
    """Key for ``column``; ties and missing values fall back to the name, missing ones last."""
    name = static["name"]
    if column == "state":
        rank = 1 if tracker.flapping and tracker.state is not State.DOWN else _STATE_RANK[tracker.state]
        return (rank, name)
    if column == "down":
        since = tracker.down_since if tracker.state is State.DOWN else None
        return (0, since.timestamp(), name) if since is not None else (1, 0.0, name)
    if column in ("loss", "rtt"):
        value = tracker.loss_pct if column == "loss" else _rtt(tracker)
        return (value is None, -(value or 0.0), name)
    return (static[column], name)


# -- the problems-first view ------------------------------------------------------------------
LOSS_THRESHOLD = 20.0  # rolling loss (%) from which an up device counts as a problem
PROBLEM_RULE = f"down, flapping, or rolling loss ≥ {LOSS_THRESHOLD:.0f} %"


def problem_key(tracker: DeviceTracker, static: dict[str, SortKey]) -> SortKey | None:
    """Where a problem device goes in the problems view (longest down first); None: no problem.

    Down devices first, by the start of the outage; then flapping ones, by their last change;
    then high loss, worst first. The key only moves on a transition or a loss change, so the
    view keeps an ordered set of problems instead of re-sorting every row on each tick.
    """
    name = static["name"]
    if tracker.state is State.DOWN:
        since = tracker.down_since
        return (0, since.timestamp() if since is not None else 0.0, name)
    if tracker.flapping:
        change = tracker.last_change
        return (1, change.timestamp() if change is not None else 0.0, name)
    loss = tracker.loss_pct
    if loss is not None and loss >= LOSS_THRESHOLD:
        return (2, -loss, name)
    return None
