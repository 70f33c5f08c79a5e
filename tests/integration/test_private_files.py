"""Files wardtui creates are private whatever the umask: the SQLite history (and its -wal/-shm)
0600 in 0700 directories, reports and generated inventories 0600 unless --mode says otherwise."""

from __future__ import annotations

import asyncio
import logging
import os
import stat
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from poller.inventory import Device
from store import HistoryStore, schema
from store.files import open_output, private_dirs
from store.report import Period, Report, availability
from tests.integration.cli_run import run
from wardtui.screens.export import write_report


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture(autouse=True)
def usual_umask() -> Iterator[None]:
    """The umask most systems give (files 0644, directories 0755); subprocesses inherit it."""
    before = os.umask(0o022)
    yield
    os.umask(before)


def test_a_new_sqlite_history_is_0600_with_its_wal_and_shm_in_0700_directories(tmp_path: Path) -> None:
    db = tmp_path / "new" / "deeper" / "history.db"

    async def write_and_look() -> dict[str, int]:
        async with HistoryStore(f"sqlite+aiosqlite:///{db}") as store:
            await store.sync_devices([Device("r1", "127.0.0.1", "b", "r", "router")])
            return {p.name: mode(p) for p in db.parent.iterdir()}

    seen = asyncio.run(write_and_look())
    assert seen["history.db"] == 0o600
    assert seen["history.db-wal"] == 0o600 and seen["history.db-shm"] == 0o600
    assert mode(db.parent) == 0o700 and mode(db.parent.parent) == 0o700


def test_db_upgrade_creates_the_file_0600_and_an_existing_file_keeps_its_mode(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    new, old = tmp_path / "up.db", tmp_path / "old.db"
    asyncio.run(schema.upgrade(f"sqlite+aiosqlite:///{new}"))
    assert mode(new) == 0o600
    old.touch(0o640)  # the operator's choice, made before wardtui first ran
    with caplog.at_level(logging.WARNING, logger="store.files"):
        asyncio.run(schema.upgrade(f"sqlite+aiosqlite:///{old}"))
        asyncio.run(schema.upgrade(f"sqlite+aiosqlite:///{old}"))
    assert mode(old) == 0o640
    said = [r.getMessage() for r in caplog.records if r.name == "store.files"]
    assert said == [f"{old} is mode 0640: other users can read the history; run `chmod 600 {old}` "
                    "unless that is meant"]  # once


def test_private_dirs_makes_each_missing_parent_0700_and_leaves_existing_ones(tmp_path: Path) -> None:
    tmp_path.chmod(0o755)
    private_dirs(tmp_path / "a" / "b" / "c")
    assert [mode(tmp_path / p) for p in ("a", "a/b", "a/b/c")] == [0o700] * 3
    assert mode(tmp_path) == 0o755


def test_open_output_gives_exactly_the_mode_asked_for(tmp_path: Path) -> None:
    fresh, shared, existing = tmp_path / "a.csv", tmp_path / "b.csv", tmp_path / "c.csv"
    with open_output(fresh) as out:
        out.write("x")
    os.umask(0o077)
    with open_output(shared, 0o640) as out:  # asked for: the umask does not take it away
        out.write("x")
    existing.write_text("old")
    existing.chmod(0o644)
    with open_output(existing) as out:
        out.write("new")
    assert (mode(fresh), mode(shared), mode(existing)) == (0o600, 0o640, 0o600)
    assert existing.read_text() == "new"
    devnull = mode(Path("/dev/null"))
    with open_output(Path("/dev/null")) as out:  # not a regular file: written, never chmod-ed
        out.write("x")
    assert mode(Path("/dev/null")) == devnull


def test_the_dashboards_export_is_0600(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'h.db'}"
    now = datetime.now(UTC)

    async def report_of() -> Report:
        async with HistoryStore(url) as store:
            await store.sync_devices([Device("r1", "127.0.0.1", "b", "r", "router")])
            return await availability(store, Period(now - timedelta(days=1), now), now=now)

    path = write_report(asyncio.run(report_of()), "csv", tmp_path / "r.csv")
    assert mode(path) == 0o600


def test_report_and_generate_write_0600_or_the_mode_given(tmp_path: Path) -> None:
    db = tmp_path / "h.db"
    asyncio.run(schema.upgrade(f"sqlite+aiosqlite:///{db}"))
    url = f"sqlite:///{db}"
    procs = run(("report", "--from", "7d", "--db", url, "-o", "r.csv"),
                ("report", "--from", "7d", "--db", url, "-o", "shared.csv", "--mode", "0640"),
                ("generate", "--devices", "5", "-o", "g.csv"),
                ("generate", "--devices", "5", "-o", "lab.csv", "--mode", "644"),
                ("report", "--from", "7d", "--db", url, "-o", "x.csv", "--mode", "u+rw"),
                ("generate", "--devices", "5", "-o", "y.csv", "--mode", "1777"),
                cwd=tmp_path)
    for proc in procs[:4]:
        assert proc.returncode == 0, proc.stderr
    assert [mode(tmp_path / n) for n in ("r.csv", "shared.csv", "g.csv", "lab.csv")] == \
        [0o600, 0o640, 0o600, 0o644]
    for proc in procs[4:]:
        assert proc.returncode == 2, proc.stderr
        assert "error: argument --mode: " in proc.stderr.strip().splitlines()[-1]  # after argparse's usage
    assert not (tmp_path / "x.csv").exists() and not (tmp_path / "y.csv").exists()


def test_wardtui_db_upgrade_makes_a_new_file_0600_and_says_nothing_else(tmp_path: Path) -> None:
    """`db upgrade` read the revision before upgrading, which made a new file under the umask
    (0644), and then warned about the file it had just made."""
    [proc] = run(("db", "upgrade", "--db", str(tmp_path / "a" / "b" / "new.db")), cwd=tmp_path)
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    assert mode(tmp_path / "a" / "b" / "new.db") == 0o600
    assert mode(tmp_path / "a" / "b") == mode(tmp_path / "a") == 0o700  # --db's directories too
