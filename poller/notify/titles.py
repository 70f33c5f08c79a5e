"""One-line titles of grouped notifications: a router's outage and the devices behind it read as
one event ("north-b002-rtr DOWN, 40 devices unreachable behind it"), not 41.

A title counts devices and names at most two, so its length does not grow with the group. Names
are the inventory's (it refuses control characters); they are cleaned again here because a
title must stay one line whatever reaches it. Each receiver escapes the title for its format.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from poller.notify.model import AlertItem
from poller.text import clean

Roots = Callable[[str], frozenset[str]]
"""A device's name -> the DOWN devices it is unreachable behind (through its parents, and their
parents while those are unreachable too); empty when none is known."""


def devices(n: int) -> str:
    return "1 device" if n == 1 else f"{n} devices"


def where(group: Sequence[tuple[str, str]]) -> str:
    """`` in north-b002`` for a group by branch; several labels joined by ``/``; none: ``""``."""
    values = [clean(v) for _, v in group if v]
    return f" in {'/'.join(values)}" if values else ""


def title(firing: Sequence[AlertItem], resolved: Sequence[tuple[AlertItem, str]],
          group: Sequence[tuple[str, str]], roots: Roots) -> str:
    """The title of a message with these ``firing`` items and ``resolved`` ones (each with the
    state it was last notified in: "down" or "unreachable")."""
    parts = []
    if firing:
        parts.append(firing_part(firing, where(group), roots))
    if resolved:
        parts.append(resolved_part(resolved, where(group)))
    return "; ".join(parts) or f"nothing open{where(group)}"


def firing_part(firing: Sequence[AlertItem], place: str, roots: Roots) -> str:
    down = [a for a in firing if a.state == "down"]
    unreachable = [a for a in firing if a.state != "down"]
    if len(down) == 1:
        name = down[0].device
        text = f"{clean(name)} DOWN"
        behind = sum(1 for a in unreachable if name in roots(a.device))
        if behind:
            text += f", {devices(behind)} unreachable behind it"
        others = len(unreachable) - behind
        if others:
            text += f", {others} other {'device' if others == 1 else 'devices'} unreachable"
        return text
    if down:
        text = f"{len(down)} devices DOWN{place}"
        return f"{text}, {len(unreachable)} unreachable" if unreachable else text
    causes: set[str] = set()
    for a in unreachable:
        causes |= roots(a.device)
    if len(causes) == 1:
        cause = f" behind {clean(next(iter(causes)))}"
    elif causes:
        cause = f" behind {len(causes)} devices DOWN"
    else:
        cause = ""
    if len(unreachable) == 1:
        return f"{clean(unreachable[0].device)} unreachable{cause}"
    return f"{len(unreachable)} devices unreachable{place}{cause}"


def resolved_part(resolved: Sequence[tuple[AlertItem, str]], place: str) -> str:
    down = [a for a, was in resolved if was == "down"]
    reachable = len(resolved) - len(down)
    if len(down) == 1:
        text = f"{clean(down[0].device)} UP again"
    elif down:
        text = f"{len(down)} devices UP again{place}"
    elif reachable == 1:
        return f"{clean(resolved[0][0].device)} reachable again"
    else:
        return f"{reachable} devices reachable again{place}"
    if reachable:
        text += f", {devices(reachable) if len(down) == 1 else reachable} reachable"
    return text
