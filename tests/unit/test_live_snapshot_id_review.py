"""Review finding: a snapshot's stream ID is read from Redis: one that is not an ID is a format error."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from poller.live import Columns, FeedFormatError, decode_snapshot, encode_snapshot


@pytest.mark.parametrize("stream_id", ["abc", "1-x", "", "-1", "1-2-3"])
def test_a_snapshot_whose_stream_id_is_not_an_id_is_refused(stream_id: str) -> None:
    blob = encode_snapshot(1, stream_id, datetime.now(UTC), "inv", "run", None, Columns.empty(2), None)
    with pytest.raises(FeedFormatError):
        decode_snapshot(blob)


def test_a_snapshot_with_a_stream_id_is_read() -> None:
    blob = encode_snapshot(1, "1700000000000-3", datetime.now(UTC), "inv", "run", None, Columns.empty(2),
                           None)
    assert decode_snapshot(blob).stream_id == "1700000000000-3"
