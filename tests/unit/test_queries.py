"""choose_tier: the resolution a span of history is read at."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from store.queries import Retention, choose_tier

NOW = datetime(2026, 11, 28, 3, 0, tzinfo=UTC)


@pytest.mark.parametrize(("span", "tier"), [
    (timedelta(hours=1), "raw"), (timedelta(hours=24), "raw"),
    (timedelta(hours=24, seconds=30), "raw"),  # "last 24 h" taken a moment before now
    (timedelta(hours=25), "1m"), (timedelta(days=7), "1m"),
    (timedelta(days=8), "1h"), (timedelta(days=30), "1h"),
])
def test_tier_by_span(span: timedelta, tier: str) -> None:
    assert choose_tier(NOW - span, NOW, now=NOW) == tier


def test_a_tier_whose_retention_no_longer_reaches_since_gives_way() -> None:
    short = Retention(raw=timedelta(hours=6), minute=timedelta(days=2))
    assert choose_tier(NOW - timedelta(hours=5), NOW, short, now=NOW) == "raw"
    assert choose_tier(NOW - timedelta(hours=12), NOW, short, now=NOW) == "1m"  # raw is gone
    assert choose_tier(NOW - timedelta(days=5), NOW - timedelta(days=4), short, now=NOW) == "1h"
    assert choose_tier(NOW - timedelta(hours=12), NOW, Retention(None, None, None), now=NOW) == "raw"
