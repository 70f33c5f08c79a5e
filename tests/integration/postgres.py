"""A scratch PostgreSQL database per test, on the server at 127.0.0.1:5432 (trust auth).

Unreachable server: the test skips with the reason, except under CI=true, where it fails.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Iterator

import asyncpg
import pytest

HOST, PORT, ADMIN_DB = "127.0.0.1", 5432, "test"
USERS = ("postgres", "root")


async def _admin() -> tuple[asyncpg.Connection, str]:
    errors: list[str] = []
    for user in USERS:
        try:
            return await asyncpg.connect(host=HOST, port=PORT, user=user, database=ADMIN_DB,
                                         timeout=5), user
        except (TimeoutError, OSError, asyncpg.PostgresError) as exc:
            errors.append(f"{user}: {exc}")
    raise ConnectionError("; ".join(errors))


async def _run(sql: str) -> str:
    conn, user = await _admin()
    try:
        await conn.execute(sql)
    finally:
        await conn.close()
    return user


@pytest.fixture
def pg_url() -> Iterator[str]:
    """``postgresql+asyncpg://USER@127.0.0.1:5432/wardtui_test_<random>``, dropped afterwards."""
    name = f"wardtui_test_{uuid.uuid4().hex[:12]}"
    try:
        user = asyncio.run(_run(f'CREATE DATABASE "{name}"'))
    except ConnectionError as exc:
        reason = f"PostgreSQL at {HOST}:{PORT} (database {ADMIN_DB}) unreachable: {exc}"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    try:
        yield f"postgresql+asyncpg://{user}@{HOST}:{PORT}/{name}"
    finally:
        asyncio.run(_run(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
