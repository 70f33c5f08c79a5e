"""SIGKILL around a delivery: a message is sent twice only if the process died between the
receiver's answer and the commit of its sending, and then with the same idempotency key."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import create_async_engine

from store import database_url
from store.models import notification_outbox_table as outbox_table
from tests.integration.notify_http import RecordingServer, note
from tests.integration.test_cli_errors import REPO

KEYS = [note(i).key for i in range(5)]


@pytest.fixture
def server() -> Iterator[RecordingServer]:
    s = RecordingServer().start()
    yield s
    s.stop()


def child(tmp_path: Path, server: RecordingServer, *options: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "tests.integration.notify_child",
                           str(tmp_path / "history.db"), str(tmp_path / "spool"), server.url, *options],
                          cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=180, check=False)


def statuses(tmp_path: Path) -> list[tuple[str, str]]:
    async def read() -> list[tuple[str, str]]:
        engine = create_async_engine(database_url(str(tmp_path / "history.db")))
        try:
            async with engine.connect() as conn:
                result = await conn.execute(select(outbox_table.c.key, outbox_table.c.status)
                                            .order_by(outbox_table.c.id))
                return [(k, s) for k, s in result]
        finally:
            await engine.dispose()

    return asyncio.run(read())


def test_killed_after_the_receivers_200_before_the_commit_repeats_one_message_with_its_key(
        tmp_path: Path, server: RecordingServer) -> None:
    killed = child(tmp_path, server, "--put", "5", "--kill-after", KEYS[2])
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert server.delivered() == KEYS[:3]
    assert statuses(tmp_path) == [(KEYS[0], "sent"), (KEYS[1], "sent")] + [(k, "pending") for k in KEYS[2:]]
    again = child(tmp_path, server)
    assert again.returncode == 0, again.stderr
    # At most one repeat: the message whose answer came back as the process died, same key, same body.
    assert server.delivered() == [*KEYS[:3], KEYS[2], *KEYS[3:]]
    repeated = [r for r in server.requests if r.key == KEYS[2]]
    assert repeated[0].body == repeated[1].body == note(2).to_dict()
    assert statuses(tmp_path) == [(k, "sent") for k in KEYS]


def test_killed_before_sending_delivers_each_message_once_after_the_restart(
        tmp_path: Path, server: RecordingServer) -> None:
    killed = child(tmp_path, server, "--put", "5", "--kill-before", KEYS[2])
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert server.delivered() == KEYS[:2]
    again = child(tmp_path, server)
    assert again.returncode == 0, again.stderr
    assert server.delivered() == KEYS
    assert [r.key for r in server.requests] == KEYS
    assert statuses(tmp_path) == [(k, "sent") for k in KEYS]


def test_killed_while_the_database_is_locked_the_spool_holds_what_was_put_and_sent(
        tmp_path: Path, server: RecordingServer) -> None:
    """Another process holds the SQLite write lock: the puts and the first sends go to the
    outbox spool; SIGKILL after the receiver's 200 for message 2. The lock released, a restart
    replays the spool (0 and 1 stored as sent, not sent again) and sends 2 once more, then 3, 4."""
    assert child(tmp_path, server).returncode == 0  # the database made and migrated, empty
    holder = sqlite3.connect(tmp_path / "history.db", isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        killed = child(tmp_path, server, "--put", "5", "--kill-after", KEYS[2], "--busy", "0.2")
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert server.delivered() == KEYS[:3]
    assert statuses(tmp_path) == []  # nothing reached the table: all of it is in the spool
    assert list((tmp_path / "spool").glob("*.outbox"))
    again = child(tmp_path, server)
    assert again.returncode == 0, again.stderr
    assert server.delivered() == [*KEYS[:3], KEYS[2], *KEYS[3:]]
    assert statuses(tmp_path) == [(k, "sent") for k in KEYS]
    assert list((tmp_path / "spool").glob("*.outbox")) == []


def test_killed_while_groups_are_sent_side_by_side_repeats_only_what_was_answered_and_not_committed(
        tmp_path: Path, server: RecordingServer) -> None:
    """parallel=3, 12 messages of 3 groups, SIGKILL after the 200 for message 7: what is sent again
    after the restart is only messages the server had answered whose `sent` was not committed
    (message 7 among them), at most one per group in flight (3), each with its key and body;
    every message arrives; each group's in put order."""
    keys = [note(i, branch=f"b{i % 3}").key for i in range(12)]
    killed = child(tmp_path, server, "--put", "12", "--groups", "3", "--parallel", "3",
                   "--kill-after", keys[7])
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    answered = server.delivered()
    committed = {k for k, s in statuses(tmp_path) if s == "sent"}
    assert keys[7] in answered and keys[7] not in committed and committed <= set(answered)
    again = child(tmp_path, server, "--groups", "3", "--parallel", "3")
    assert again.returncode == 0, again.stderr
    everything = server.delivered()
    repeated = [k for k in set(everything) if everything.count(k) > 1]
    assert set(repeated) == set(answered) - committed and 1 <= len(repeated) <= 3
    assert all(everything.count(k) == 2 for k in repeated)
    assert sorted(set(everything)) == sorted(keys)
    for g in range(3):
        mine = [k for k in keys if keys.index(k) % 3 == g]
        assert list(dict.fromkeys(k for k in everything if k in mine)) == mine
    for k in repeated:
        bodies = [r.body for r in server.requests if r.key == k]
        assert bodies[0] == bodies[1]
    assert statuses(tmp_path) == [(k, "sent") for k in keys]
