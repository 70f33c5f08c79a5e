"""Fixtures for the integration tests: a private PostgreSQL server a test may kill."""

from __future__ import annotations

from tests.integration.postgres import private_pg  # noqa: F401
