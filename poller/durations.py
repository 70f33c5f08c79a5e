"""How a duration reads, on screen, in the commands' output and in notifications (``3m05s``); no
screen library, so the headless commands and the notifier print it without loading rich."""

from __future__ import annotations

from datetime import timedelta


def format_duration(delta: timedelta) -> str:
    """Compact and fixed-ish width: ``42s``, ``3m05s``, ``2h07m``, ``3d04h``."""
    seconds = max(0, int(delta.total_seconds()))
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m{seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours}h{minutes:02d}m"
    days, hours = divmod(hours, 24)
    return f"{days}d{hours:02d}h"
