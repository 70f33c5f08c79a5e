"""Fixtures for the integration tests: scratch databases on both engines, a private PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest

from store import database_url
from tests.integration.postgres import pg_url, private_pg  # noqa: F401


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The same test on a new SQLite file and on a new PostgreSQL database."""
    if request.param == "sqlite":
        return database_url(str(tmp_path / "history.db"))
    return str(request.getfixturevalue("pg_url"))
