"""The database layer (store.database) on a real SQLite file: writers take turns in arrival order,
and the id cache holds only ids the database committed."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.exc import OperationalError

from store import database_url
from store.database import Database
from store.models import devices_table


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "history.db"


@pytest.fixture
async def db(db_path: Path) -> AsyncIterator[Database]:
    database = Database(database_url(str(db_path)), busy_timeout=0.05)
    await database.open()
    yield database
    await database.close()


async def test_sqlite_writers_take_turns_in_arrival_order(db: Database) -> None:
    """While one writer holds its transaction the others wait, and then go in the order they came
    (left to SQLite's busy handler they would all start at once and race for the lock)."""
    await db.ensure_ids([("r0", "127.0.0.1")])
    entered: list[str] = []
    release = asyncio.Event()

    async def write(name: str, hold: bool = False) -> None:
        async with db.writing() as conn:
            entered.append(name)
            await conn.execute(devices_table.update().values(branch=name))
            if hold:
                await release.wait()

    first = asyncio.create_task(write("first", hold=True))
    while not entered:
        await asyncio.sleep(0.001)
    others = []
    for name in ("second", "third", "fourth"):
        others.append(asyncio.create_task(write(name)))
        await asyncio.sleep(0.01)  # each arrives after the one before
    assert entered == ["first"]  # the rest wait their turn, none got in beside it
    release.set()
    await asyncio.gather(first, *others)
    assert entered == ["first", "second", "third", "fourth"]
    async with db.engine.connect() as conn:
        assert await conn.scalar(select(devices_table.c.branch)) == "fourth"


async def test_ids_are_cached_only_once_committed(db: Database, db_path: Path) -> None:
    assert await db.ensure_ids([("r1", "127.0.0.1")]) == {"r1": db.device_id("r1")}
    blocker = sqlite3.connect(db_path, isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(OperationalError, match="locked"):
            await db.ensure_ids([("r1", "127.0.0.1"), ("r2", "127.0.0.2")])
        assert db.device_id("r2") is None and db.device_names() == {"r1"}  # nothing written, nothing cached
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    ids = await db.ensure_ids([("r2", "127.0.0.2"), ("r1", "127.0.0.1")])
    async with db.engine.connect() as conn:
        stored = dict((await conn.execute(select(devices_table.c.name, devices_table.c.id))).all())
    assert dict(ids) == stored == dict(db.ids()) and sorted(db.device_ids()) == sorted(stored.values())
