"""A PostgreSQL host that never answers: every command gives up after the connect timeout
(store.dburl.CONNECT_TIMEOUT, 5 s) and says which server did not answer and for how long."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from store import schema
from store.db import database_url
from tests.integration.blackhole import black_hole  # noqa: F401
from tests.integration.postgres import PrivateCluster, private_pg  # noqa: F401
from tests.integration.test_cli_errors import REPO, assert_no_traceback

COMMANDS = (("db", "current"), ("db", "upgrade"), ("outages",), ("history", "r1"),
            ("report", "--from", "1d"), ("poll", "--jsonl", "--duration", "30"))


def test_every_command_gives_up_on_a_black_holed_server_after_5_s(black_hole: int,  # noqa: F811
                                                                  tmp_path: Path) -> None:
    db = f"postgresql://postgres@127.0.0.1:{black_hole}/wardtui"
    env = {"PYTHONPATH": str(REPO), "XDG_DATA_HOME": str(tmp_path / "xdg"), "PATH": "/usr/bin:/bin"}
    started = time.monotonic()
    procs = [subprocess.Popen([sys.executable, "-m", "wardtui", *args, "--db", db], cwd=tmp_path, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for args in COMMANDS]
    try:
        results = [(p.wait(timeout=40), *p.communicate()) for p in procs]
    finally:
        for p in procs:
            p.kill()
    elapsed = time.monotonic() - started
    for args, (code, out, err) in zip(COMMANDS, results, strict=True):
        proc = subprocess.CompletedProcess(args, code, out, err)
        assert code == 1, (args, err)
        assert_no_traceback(proc)
        assert err.rstrip().endswith(f"no answer from 127.0.0.1:{black_hole} within 5 s"), (args, err)
    # Six at once on two cores: each waited its 5 s, none asyncpg's default minute.
    assert elapsed < 30, elapsed


def test_the_dashboards_schema_check_gives_up_after_5_s(black_hole: int) -> None:  # noqa: F811
    url = database_url(f"postgresql://postgres@127.0.0.1:{black_hole}/wardtui")
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        asyncio.run(schema.check(url))
    assert 4.5 < time.monotonic() - started < 10


def _stop_while_postgresql_hangs(cluster: PrivateCluster, tmp_path: Path,
                                 interval: str) -> tuple[subprocess.CompletedProcess[str], float]:
    """Poll into ``cluster``, make it hang (SIGSTOP: connections stay open, nothing answers),
    send SIGTERM; what wardtui said and how long it took to stop."""
    inventory = tmp_path / "net.csv"
    inventory.write_text("name,address,branch,region,type\nr1,127.0.4.1,b,r,router\n", encoding="utf-8")
    env = {"PYTHONPATH": str(REPO), "XDG_DATA_HOME": str(tmp_path / "xdg"), "PATH": "/usr/bin:/bin"}
    proc = subprocess.Popen([sys.executable, "-m", "wardtui", "poll", "--inventory", str(inventory),
                             "--jsonl", "--checks", "--interval", interval, "--db", cluster.url],
                            cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    server = [int((cluster.data / "postmaster.pid").read_text().split()[0])]
    try:
        assert proc.stdout is not None
        assert '"check"' in proc.stdout.readline()  # polling, and so writing, has begun
        time.sleep(2.5)  # the first checks went to the database; maintenance ran once
        children = subprocess.run(["pgrep", "-P", str(server[0])], capture_output=True, text=True).stdout
        server += [int(pid) for pid in children.split()]
        for pid in server:
            os.kill(pid, signal.SIGSTOP)
        time.sleep(1.0)
        proc.send_signal(signal.SIGTERM)
        started = time.monotonic()
        try:
            out, err = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            pytest.fail("SIGTERM with PostgreSQL hanging took over 30 s")
        elapsed = time.monotonic() - started
    finally:
        proc.kill()
        for pid in server:
            os.kill(pid, signal.SIGCONT)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err), elapsed


def test_sigterm_while_postgresql_hangs_stops_within_10_s_and_spools_what_is_left(
        private_pg: PrivateCluster, tmp_path: Path) -> None:  # noqa: F811
    """The rows the writer still held are not given up: they go to the spool (the next start
    writes them), and the stop says where."""
    proc, elapsed = _stop_while_postgresql_hangs(private_pg, tmp_path, "0.2")
    assert elapsed < 13, elapsed
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    assert "waiting up to 10 s for the history database" in proc.stderr
    assert "did not answer within 10 s of the stop: what was not written is kept in the spool" in proc.stderr
    segments = list((tmp_path / "xdg").rglob("*.spool"))
    assert segments and sum(len(p.read_bytes().splitlines()) for p in segments) > 0


def test_sigterm_while_postgresql_hangs_with_nothing_to_write_stops_at_once(private_pg: PrivateCluster,  # noqa: F811
                                                                            tmp_path: Path) -> None:
    """Nothing pending, but asyncpg's goodbye to a hung server waited its 60 s command timeout
    per connection: closing the connections is bounded too."""
    proc, elapsed = _stop_while_postgresql_hangs(private_pg, tmp_path, "3600")
    assert elapsed < 6, elapsed
    assert (proc.returncode, proc.stderr) == (0, "")
