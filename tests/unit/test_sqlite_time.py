"""store.database.sqlite_time: the text SQLite stores for a time, written by the history writer's
raw executemany, must be what SQLAlchemy's DateTime (under sqlmodel's UTCDateTime) writes and
reads: the same rows compare, sort and roll up alike whichever path wrote them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy.dialects import sqlite
from sqlmodel.sql.sqltypes import UTCDateTime

from store.database import sqlite_time

CASES = [
    datetime(2026, 12, 5, 23, 46, 37, 462867, tzinfo=UTC),
    datetime(2026, 12, 5, 23, 46, 37, tzinfo=UTC),  # no microseconds: still six digits
    datetime(2026, 1, 2, 3, 4, 5, 7, tzinfo=timezone(timedelta(hours=2))),  # another offset
    datetime(2026, 3, 29, 0, 30, tzinfo=timezone(timedelta(hours=-9, minutes=-30))),  # day back
    datetime(1999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
]


def sqlalchemy_text(at: datetime) -> str:
    dialect = sqlite.dialect()
    process = UTCDateTime().dialect_impl(dialect).bind_processor(dialect)  # the decorator, then DATETIME
    assert process is not None
    text = process(at)
    assert isinstance(text, str)
    return text


@pytest.mark.parametrize("at", CASES, ids=str)
def test_sqlite_time_is_what_sqlalchemy_stores(at: datetime) -> None:
    assert sqlite_time(at) == sqlalchemy_text(at)


def test_a_naive_time_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone"):
        sqlite_time(datetime(2026, 12, 5, 8, 0))
