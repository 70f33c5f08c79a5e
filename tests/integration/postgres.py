"""A scratch PostgreSQL database per test, on the server at 127.0.0.1:5432 (trust auth).

Unreachable server: the test skips with the reason, except under CI=true, where it fails.
Tests that kill the server use a :class:`PrivateCluster` of their own instead.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

from tests.ports import free_port

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


class PrivateCluster:
    """A PostgreSQL server of the test's own (initdb in a temporary directory, trust auth, a free
    port on 127.0.0.1), which a test may kill and start again without disturbing the shared one.

    Run as the ``postgres`` user when the tests run as root (the server refuses root).
    """

    def __init__(self, password: str | None = None) -> None:
        bins = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"))
        if not bins:
            raise FileNotFoundError("no PostgreSQL server binaries under /usr/lib/postgresql")
        self.bin = bins[-1].parent
        self.dir = Path(tempfile.mkdtemp(prefix="wardtui-pg-"))
        self.data = self.dir / "data"
        self.port = free_port(HOST)  # not the kernel's pick: see tests/ports.py
        self._as = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres", "postgres")
        if password is None:
            self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync")
        else:  # every connection must give the password (scram-sha-256)
            pwfile = self.dir / "pwfile"
            pwfile.write_text(password + "\n", encoding="utf-8")
            if os.geteuid() == 0:
                shutil.chown(pwfile, "postgres", "postgres")
            self._run("initdb", "-D", str(self.data), "-A", "scram-sha-256", "--pwfile", str(pwfile),
                      "-U", "postgres", "--no-sync")

    @property
    def url(self) -> str:
        return f"postgresql+asyncpg://postgres@{HOST}:{self.port}/postgres"

    def _run(self, tool: str, *args: str) -> None:
        proc = subprocess.run([*self._as, str(self.bin / tool), *args], capture_output=True, text=True,
                              timeout=120, check=False)
        if proc.returncode != 0:
            raise RuntimeError(f"{tool} failed ({proc.returncode}): {proc.stderr or proc.stdout}")

    def start(self) -> None:
        options = f"-p {self.port} -k {self.dir} -c listen_addresses={HOST} -c fsync=off"
        self._run("pg_ctl", "-D", str(self.data), "-o", options, "-l", str(self.dir / "log"), "-w",
                  "start")

    def kill(self) -> None:
        """Stop at once, as a crash would: no checkpoint, every connection cut."""
        self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")

    def remove(self) -> None:
        subprocess.run([*self._as, str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "immediate",
                        "stop"], capture_output=True, check=False)
        shutil.rmtree(self.dir, ignore_errors=True)


def checks_written(url: str) -> int:
    """Rows in the ``checks`` table of the database at ``url`` (0 while there is no such table):
    a poller's history writer has written to it."""

    async def count() -> int:
        conn = await asyncpg.connect(url.replace("+asyncpg", ""), timeout=5)
        try:
            return int(await conn.fetchval("SELECT count(*) FROM checks"))
        except asyncpg.UndefinedTableError:
            return 0
        finally:
            await conn.close()

    return asyncio.run(count())


@pytest.fixture
def private_pg() -> Iterator[PrivateCluster]:
    """A started :class:`PrivateCluster`, removed afterwards."""
    try:
        cluster = PrivateCluster()
        cluster.start()
    except (OSError, RuntimeError) as exc:
        reason = f"cannot start a private PostgreSQL server: {exc}"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    try:
        yield cluster
    finally:
        cluster.remove()
