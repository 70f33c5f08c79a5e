"""One poller per history database (store/lease.py), with real processes: two `wardtui poll`
on one SQLite file and on one PostgreSQL database, the dashboard refused before its screen,
readers while the lease is held, SIGKILL then a restart, a lost PostgreSQL lease."""

from __future__ import annotations

import asyncio
import os
import pty
import re
import select
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy.engine import make_url

from store.db import database_url
from store.lease import Holder, Lease, LeaseRefused, lease_file, lease_holder
from store.schema import check
from tests.integration.postgres import pg_url  # noqa: F401

REPO = Path(__file__).resolve().parents[2]
INVENTORY = "name,address,branch,region,type\nr1,127.0.0.1,b,r,router\nr2,127.0.0.2,b,r,router\n"
REFUSAL = re.compile(
    r"^wardtui: the history database (?P<url>\S+) is polled by wardtui (?P<kind>\w+) on (?P<host>\S+) "
    r"\(pid (?P<pid>\d+)\) since \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC; attach to it instead: "
    r"wardtui --redis URL \(or run readers: wardtui history/outages/report\)$")


def _root() -> None:
    if os.geteuid() != 0:
        (pytest.fail if os.environ.get("CI") == "true" else pytest.skip)("needs root for raw ICMP")


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """``--db`` as an operator writes it: a new SQLite file, or a new PostgreSQL database
    (with a password in the URL that must never be printed; trust auth ignores it)."""
    _root()
    (tmp_path / "net.csv").write_text(INVENTORY, encoding="utf-8")
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'h.db'}"
    url = make_url(str(request.getfixturevalue("pg_url")))
    return f"postgresql://{url.username}:s3cret-pw@{url.host}:{url.port}/{url.database}"


def _env(cwd: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO), "XDG_DATA_HOME": str(cwd / "xdg"),
            "PYTHONDONTWRITEBYTECODE": "1"}


def wardtui(*args: str, cwd: Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([sys.executable, "-m", "wardtui", *args], cwd=cwd, env=_env(cwd),
                          capture_output=True, text=True, timeout=timeout)
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc


def holder_of(db: str) -> Holder | None:
    return asyncio.run(lease_holder(database_url(db, create=False)))


def wait_for(predicate, what: str, timeout: float = 30.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


@pytest.fixture
def poller(db: str, tmp_path: Path) -> Iterator[subprocess.Popen[str]]:
    """A `wardtui poll` holding the lease of ``db`` (waited for: the holder names its pid)."""
    proc = subprocess.Popen([sys.executable, "-m", "wardtui", "poll", "--inventory", "net.csv", "--jsonl",
                             "--duration", "120", "--interval", "0.3", "--db", db], cwd=tmp_path,
                            env=_env(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        def holds() -> bool:
            assert proc.poll() is None, proc.communicate()[1]
            found = holder_of(db)
            return found is not None and found.pid == proc.pid
        wait_for(holds, "the first poller to hold the lease")
        # Its store has started (the first gauges line comes after): the schema is in place.
        assert proc.stdout is not None and proc.stdout.readline().startswith("{")
        yield proc
    finally:
        if proc.poll() is None:
            proc.terminate()
        proc.communicate(timeout=30)


def test_a_second_poll_exits_2_naming_the_holder_and_readers_still_work(
        db: str, poller: subprocess.Popen[str], tmp_path: Path) -> None:
    second = wardtui("poll", "--inventory", "net.csv", "--jsonl", "--duration", "5", "--db", db, cwd=tmp_path)
    assert second.returncode == 2, second.stderr
    lines = second.stderr.splitlines()
    assert len(lines) == 1, second.stderr
    found = REFUSAL.match(lines[0])
    assert found is not None, lines[0]
    assert (found["kind"], found["host"], int(found["pid"])) == ("poll", socket.gethostname(), poller.pid)
    assert "s3cret-pw" not in second.stderr and "s3cret-pw" not in second.stdout
    assert found["url"] == db.replace("s3cret-pw", "***")
    assert second.stdout == ""  # it polled nothing
    # Readers never take the lease: they work while it is held, and leave it where it was.
    time.sleep(1.0)  # a few rounds written
    for reader in (("outages", "--since", "1h"), ("history", "r1", "--since", "1h"),
                   ("report", "--from", "1d", "--format", "json"), ("db", "current")):
        proc = wardtui(*reader, "--db", db, cwd=tmp_path)
        assert proc.returncode == 0, (reader, proc.stderr)
    assert "r1" in wardtui("history", "r1", "--since", "1h", "--db", db, cwd=tmp_path).stdout
    found_holder = holder_of(db)
    assert found_holder is not None and found_holder.pid == poller.pid and found_holder.kind == "poll"
    poller.terminate()
    assert poller.wait(timeout=30) == 0
    assert holder_of(db) is None  # a clean stop gives it back


def test_after_sigkill_the_next_start_takes_the_lease_whatever_the_stale_holder_says(
        db: str, poller: subprocess.Popen[str], tmp_path: Path) -> None:
    poller.send_signal(signal.SIGKILL)
    poller.wait(timeout=10)
    # The description of the dead holder is still there...
    url = database_url(db, create=False)
    if url.startswith("sqlite"):
        file = lease_file(url)
        assert file is not None and f'"pid": {poller.pid}' in file.read_text()
    else:
        rows = asyncio.run(_lease_rows(db))
        assert [r["pid"] for r in rows] == [poller.pid]
    # ...but the lock decides: the kernel (flock) or the server (the session ended) dropped it.
    wait_for(lambda: holder_of(db) is None, "the killed poller's lease to go")
    again = wardtui("poll", "--inventory", "net.csv", "--jsonl", "--duration", "1", "--interval", "0.3",
                    "--db", db, cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert '"type": "summary"' in again.stdout


async def _lease_rows(db: str) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(db.replace(":s3cret-pw", ""))
    try:
        return list(await conn.fetch("SELECT * FROM poller_lease"))
    finally:
        await conn.close()


def _run_in_a_terminal(args: list[str], cwd: Path, timeout: float = 30) -> tuple[int, bytes]:
    """``wardtui ARGS`` with a pseudo-terminal as stdin, stdout and stderr; (exit status, all it wrote)."""
    master, slave = pty.openpty()
    env = {**_env(cwd), "TERM": "xterm-256color", "COLUMNS": "100", "LINES": "30"}
    proc = subprocess.Popen([sys.executable, "-m", "wardtui", *args], cwd=cwd, env=env,
                            stdin=slave, stdout=slave, stderr=slave, close_fds=True)
    os.close(slave)
    out = b""
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.2)
            if ready:
                try:
                    chunk = os.read(master, 65536)
                except OSError:  # EIO: the terminal's last writer has gone
                    break
                if not chunk:
                    break
                out += chunk
            elif proc.poll() is not None:
                break
        return proc.wait(timeout=max(0.1, deadline - time.monotonic())), out
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)


def test_a_second_dashboard_exits_2_before_it_draws_anything(
        db: str, poller: subprocess.Popen[str], tmp_path: Path) -> None:
    code, out = _run_in_a_terminal(["--inventory", "net.csv", "--db", db], tmp_path)
    text = out.decode(errors="replace")
    assert code == 2, text
    assert REFUSAL.match(text.strip()) is not None, text
    # Textual's first act is the alternate screen and hiding the cursor: never sent.
    assert b"\x1b[?1049h" not in out and b"\x1b[?25l" not in out, text


def test_a_dashboard_holds_the_lease_and_a_poll_is_refused_naming_it(db: str, tmp_path: Path) -> None:
    """The dashboard's lease says ``dashboard``; q gives it back."""
    master, slave = pty.openpty()
    env = {**_env(tmp_path), "TERM": "xterm-256color"}
    proc = subprocess.Popen([sys.executable, "-m", "wardtui", "--inventory", "net.csv", "--db", db,
                             "--interval", "0.5"], cwd=tmp_path, env=env, stdin=slave, stdout=slave,
                            stderr=slave, close_fds=True)
    os.close(slave)
    try:
        def drain() -> None:
            while select.select([master], [], [], 0)[0]:
                try:
                    os.read(master, 65536)
                except OSError:
                    return

        def holds() -> bool:
            drain()
            assert proc.poll() is None
            found = holder_of(db)
            return found is not None and found.pid == proc.pid
        wait_for(holds, "the dashboard to hold the lease")
        second = wardtui("poll", "--inventory", "net.csv", "--jsonl", "--duration", "5", "--db", db,
                         cwd=tmp_path)
        found = REFUSAL.match(second.stderr.strip())
        assert second.returncode == 2 and found is not None, second.stderr
        assert (found["kind"], int(found["pid"])) == ("dashboard", proc.pid)
        os.write(master, b"q")
        deadline = time.monotonic() + 30
        while proc.poll() is None and time.monotonic() < deadline:
            drain()
            time.sleep(0.05)
        assert proc.wait(timeout=1) == 0
        assert holder_of(db) is None
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)


async def test_a_lost_postgresql_lease_is_told_paused_and_taken_again(
        pg_url: str, caplog: pytest.LogCaptureFixture) -> None:  # noqa: F811
    """The lease's session is killed on the server: the holder notices within its watch period
    (store_lease_lost 1, logged), and takes the lease again; if another took it meanwhile it
    waits, naming that one, until it is free."""
    await check(pg_url)
    first = Lease(pg_url, "serve", watch_every=0.2)
    await first.acquire()
    await first.record()
    try:
        assert first.gauges() == {"store_lease_lost": 0.0}
        await _kill_lease_session(pg_url)
        await _until(lambda: first.lost)
        assert first.gauges() == {"store_lease_lost": 1.0}
        await _until(lambda: first.held and "again: history writes resume" in caplog.text)
        assert "LOST the poller lease" in caplog.text and first.gauges() == {"store_lease_lost": 0.0}

        await _kill_lease_session(pg_url)
        second = Lease(pg_url, "poll")
        await _until(lambda: first.lost)
        # The first may have taken it back already: take it as soon as it is free.
        await _until_acquired(second)
        try:
            await _until(lambda: first.taken_by is not None)
            assert first.lost and first.taken_by is not None and first.taken_by.kind == "poll"
            assert "writes no history" in caplog.text
            holder = await lease_holder(pg_url)
            assert holder is not None and holder.kind == "poll"
        finally:
            await second.release()
        await _until(lambda: first.held)
        holder = await lease_holder(pg_url)
        assert holder is not None and holder.kind == "serve" and holder.pid == os.getpid()
    finally:
        await first.release()
    assert await lease_holder(pg_url) is None


async def _until_acquired(lease: Lease, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            await lease.acquire()
            await lease.record()
            return
        except LeaseRefused:
            assert time.monotonic() < deadline, "the lease never came free"
            await asyncio.sleep(0.01)


async def _kill_lease_session(url: str) -> None:
    conn = await asyncpg.connect(url.replace("+asyncpg", ""))
    try:
        killed = await conn.fetchval(
            "SELECT count(pg_terminate_backend(l.pid)) FROM pg_locks l "
            "JOIN pg_database d ON d.oid = l.database "
            "WHERE d.datname = current_database() AND l.locktype = 'advisory' AND l.objsubid = 1 "
            "AND l.granted AND l.classid::bigint = $1 AND l.objid::bigint = $2",
            0x776172646C656173 >> 32, 0x776172646C656173 & 0xFFFFFFFF)
        assert killed == 1
    finally:
        await conn.close()


async def _until(predicate, timeout: float = 15.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)


async def _stored_checks(url: str) -> int:
    conn = await asyncpg.connect(url.replace("+asyncpg", ""))
    try:
        return int(await conn.fetchval("SELECT count(*) FROM checks"))
    finally:
        await conn.close()


async def test_a_runtime_that_lost_its_lease_to_another_poller_writes_nothing_until_it_is_back(
        pg_url: str, tmp_path: Path) -> None:  # noqa: F811
    """The runtime's lease session is killed and another poller takes the lease: polling goes
    on, the gauge says store_lease_lost, no check reaches the database; the other one stops,
    the lease is taken again and what was held back is written."""
    from tests.fakes import FakeProber, make_devices
    from wardtui.runtime import Options, Runtime

    runtime = Runtime(Options(db=pg_url, interval=0.1, spool=tmp_path / "spool"), prober=FakeProber(),
                      devices=make_devices(2, interval=0.1))
    runtime.lease.watch_every = 0.2
    await runtime.start()
    run = asyncio.create_task(runtime.engine.run())
    other = Lease(pg_url, "serve")
    try:
        await _until(lambda: runtime.engine.checks_done >= 10)
        await _kill_lease_session(pg_url)
        await _until_acquired(other)
        await _until(lambda: runtime.lease.taken_by is not None)
        assert runtime.engine._gauges().extra["store_lease_lost"] == 1.0
        await asyncio.sleep(1.5)  # the writer's flush interval is 1 s: anything due would be written
        before, done = await _stored_checks(pg_url), runtime.engine.checks_done
        await asyncio.sleep(1.5)
        assert await _stored_checks(pg_url) == before  # nothing written...
        assert runtime.engine.checks_done > done + 10  # ...while polling goes on
        await other.release()
        await _until(lambda: runtime.lease.held)
        assert runtime.engine._gauges().extra["store_lease_lost"] == 0.0
        target = runtime.engine.checks_done
        await _until(lambda: runtime.writer is not None and runtime.writer.written_checks >= target)
        assert await _stored_checks(pg_url) >= target  # what was held back, and what came since
    finally:
        await other.release()
        runtime.engine.stop()
        await run
        await runtime.close()
    assert await lease_holder(pg_url) is None
