"""One poller per history database, and a cluster (issue 16): cluster members share the
database's lease (PostgreSQL's shared advisory lock), a plain poller is still refused beside
them and refuses them in turn, and exactly one member runs maintenance, another taking it over
when that one goes. ``wardtui serve --cluster`` refuses what it cannot run in one line, exit 2.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from store.lease import CLUSTER, Lease, LeaseRefused, lease_holder
from store.schema import check
from tests.integration.postgres import pg_url  # noqa: F401
from tests.integration.test_cli_errors import run


async def _until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition never met"
        await asyncio.sleep(0.05)


async def test_cluster_members_share_the_lease_and_a_plain_poller_is_refused_both_ways(
        pg_url: str) -> None:  # noqa: F811
    await check(pg_url)
    members = [Lease(pg_url, CLUSTER, shared=True, watch_every=0.2) for _ in range(3)]
    for member in members:
        await member.acquire()
    try:
        assert all(m.held for m in members)
        assert [m.maintains for m in members].count(True) == 1  # one runs rollups and retention
        plain = Lease(pg_url, "serve")
        with pytest.raises(LeaseRefused) as refused:
            await plain.acquire()
        assert "a cluster of 3 wardtui serve --cluster poller(s)" in str(refused.value)
        assert "start this one with --cluster" in str(refused.value)
        holder = await lease_holder(pg_url)
        assert holder is not None and holder.kind == CLUSTER and holder.members == 3
        # The maintainer goes: another member takes maintenance over at its next watch.
        maintainer = next(m for m in members if m.maintains)
        await maintainer.release()
        rest = [m for m in members if m is not maintainer]
        await _until(lambda: [m.maintains for m in rest].count(True) == 1)
    finally:
        for member in members:
            await member.release()
    plain = Lease(pg_url, "serve")
    await plain.acquire()
    try:
        member = Lease(pg_url, CLUSTER, shared=True)
        with pytest.raises(LeaseRefused) as refused:
            await member.acquire()
        assert "wardtui serve on" in str(refused.value) and "other --cluster pollers" in str(refused.value)
    finally:
        await plain.release()


def test_serve_cluster_refuses_sqlite_and_no_redis_in_one_line(tmp_path: Path) -> None:
    (tmp_path / "net.csv").write_text("name,address\nr1,127.0.0.1\n", encoding="utf-8")
    base = ("serve", "--cluster", "--inventory", "net.csv")
    cases = [
        ((*base, "--db", f"sqlite:///{tmp_path}/h.db", "--redis", "redis://127.0.0.1:1"),
         "a cluster needs a PostgreSQL history database"),
        ((*base, "--db", "postgresql://nobody@127.0.0.1:1/x"), "--cluster needs --redis URL"),
        (("serve", "--inventory", "net.csv", "--lease-ttl", "5"), "--lease-ttl is for --cluster"),
    ]
    for args, said in cases:
        proc = run(*args, cwd=tmp_path, env={"WARDTUI_REDIS": ""})
        assert proc.returncode == 2, (args, proc.stderr)
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and said in lines[0], (args, proc.stderr)
    bad = run(*base, "--lease-ttl", "0.1", cwd=tmp_path)
    assert bad.returncode == 2 and "use 0.5 to 600 seconds" in bad.stderr
