"""``wardtui status``'s notifications line and JSON, from the snapshot's gauges."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

from wardtui.cli.status import notifications


def snapshot(**extra: float) -> Any:
    return SimpleNamespace(gauges=SimpleNamespace(extra=extra), at=datetime.now(UTC) - timedelta(seconds=1))


def test_the_outbox_figures_come_from_the_gauges_and_none_without_notify() -> None:
    snap = snapshot(notify_queued=2.0, notify_sent=10.0, notify_failed=1.0, notify_oldest_s=75.0,
                    notify_receivers_failing=1.0)
    assert notifications(snap) == {"queued": 2.0, "sent": 10.0, "failed": 1.0, "summarised": 0.0,
                                   "oldest_s": 75.0, "receivers_failing": 1.0, "spooled": 0.0,
                                   "unsaved": 0.0}
    assert notifications(snapshot(lag_p99_ms=3.0)) is None
    assert notifications(None) is None
