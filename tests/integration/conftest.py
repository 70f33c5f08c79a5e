"""Integration fixtures: scratch databases on both engines, a private PostgreSQL, SNMP agents."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from store import database_url
from tests.integration.feed_fixtures import feed_site, private_redis, service_factory  # noqa: F401
from tests.integration.icmp_fixtures import icmp_root, prober  # noqa: F401
from tests.integration.postgres import pg_url, private_pg  # noqa: F401
from tests.lab.snmp_agents import SnmpdAgent, SnmpsimAgent, snmpd_missing, snmpsim_missing


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The same test on a new SQLite file and on a new PostgreSQL database."""
    if request.param == "sqlite":
        return database_url(str(tmp_path / "history.db"))
    return str(request.getfixturevalue("pg_url"))


# --------------------------------------------------------------------------------------------
# SNMP agents: Debian's snmpd and snmpsim on loopback (tests/lab/snmp_agents.py).
# Missing tools skip the test with the reason; under CI (CI=true) they fail it instead.
# --------------------------------------------------------------------------------------------


def _require_snmp(what: str, missing: list[str]) -> None:
    if not missing:
        return
    reason = f"{what} unavailable: " + "; ".join(missing)
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(reason + " (CI=true: SNMP agent tests must run, not skip)", pytrace=False)
    pytest.skip(reason)


@pytest.fixture
def snmpd_tools() -> None:
    """For tests that build their own SnmpdAgent: skip (or fail under CI) without snmpd."""
    _require_snmp("snmpd", snmpd_missing())


@pytest.fixture
def snmpd_agent() -> Iterator[SnmpdAgent]:
    """A started snmpd on 127.0.0.1 and a free port; per test, since tests restart and pause it.

    ``agent.port``, ``agent.v2c_community``, ``agent.v3_users`` (credentials-file entries by
    name), ``agent.credentials()``, ``restart()``, ``pause()``/``resume()``.
    """
    _require_snmp("snmpd", snmpd_missing())
    with SnmpdAgent() as agent:
        yield agent


@pytest.fixture(scope="session")
def snmpsim_agent() -> Iterator[SnmpsimAgent]:
    """One snmpsim for the session (~1 s to start): communities ``linux``, ``winxp``,
    ``rate64`` and ``wrap32`` (see ``RATE64``/``WRAP32`` for the true counter rates)."""
    _require_snmp("snmpsim", snmpsim_missing())
    with SnmpsimAgent() as agent:
        yield agent
