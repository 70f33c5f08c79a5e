"""Probe now: a check of one device outside its schedule, asked from a screen."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from textual.screen import Screen


async def probe_and_tell(screen: Screen[Any], probe: Callable[[str], Awaitable[dict[str, Any]]],
                         device: str) -> None:
    """Run ``probe(device)`` and notify its outcome (the drill-down's key and ``:probe``)."""
    screen.notify(f"checking {device} now…", title="probe now", timeout=3)
    try:
        reply = await probe(device)
    except Exception as exc:  # the operator hears it; the screen stays
        screen.notify(f"{device}: {type(exc).__name__}: {exc}", title="probe now", severity="error")
        return
    if not reply.get("ok"):
        screen.notify(str(reply.get("error", "no answer")), title="probe now", severity="error")
        return
    result = reply.get("result") or {}
    rtt = result.get("rtt_ms")
    state = str(result.get("state", "?")).upper()
    answer = f"reply in {rtt:.2f} ms" if isinstance(rtt, int | float) else "no reply"
    screen.notify(f"{device}: {state}, {answer} ({result.get('received', 0)}/{result.get('sent', 0)} "
                  "probes answered)", title="probe now",
                  severity="information" if rtt is not None else "warning")
