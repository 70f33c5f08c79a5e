"""The notification outbox in the history database (SQLite and PostgreSQL): commits, restarts,
summaries, retention, hostile receiver errors, and a database that fails (the spool)."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, event, select
from sqlalchemy.ext.asyncio import create_async_engine

from poller.notify.delivery import Backoff, Delivery
from poller.notify.model import Notification
from poller.notify.outbox import ERROR_MAX, summarise
from poller.text import first_unsafe
from store import database_url
from store.database import Database
from store.history import HistoryStore
from store.maintenance import Maintenance
from store.models import notification_outbox_table
from store.outbox import SqlOutbox
from tests.integration.notify_http import T0, HttpReceiver, RecordingServer, note
from tests.integration.postgres import PrivateCluster, pg_url, private_pg  # noqa: F401
from tests.integration.test_spool_full_disk import small_disk  # noqa: F401

HOSTILE = "\x1b[31mred\x1b[0m\r\nX-Injected: 1\n<script>alert(1)</script> *_~ [bold]x[/] \x07" + "y" * 5000


@pytest.fixture
def server() -> Iterator[RecordingServer]:
    s = RecordingServer().start()
    yield s
    s.stop()


@asynccontextmanager
async def opened(url: str, spool: Path, **options: Any) -> AsyncIterator[SqlOutbox]:
    db = Database(url, busy_timeout=options.pop("busy_timeout", 5.0))
    await db.open()
    outbox = SqlOutbox(db, spool, site="s", **options)
    try:
        await outbox.open()
        yield outbox
    finally:
        await outbox.close()
        await db.close()


async def rows(url: str) -> list[dict[str, Any]]:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            t = notification_outbox_table
            result = await conn.execute(select(t).order_by(t.c.id))
            return [dict(r._mapping) for r in result]
    finally:
        await engine.dispose()


async def until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


async def test_put_commits_before_it_returns(db_url: str, tmp_path: Path) -> None:
    messages = [note(0), note(1, branch="b2"), note(2, status="resolved", devices=(), resolved=("r1",))]
    async with opened(db_url, tmp_path / "spool") as outbox:
        await outbox.put(messages)
        await outbox.put(messages[:1])  # a key held already: ignored
        stored = await rows(db_url)  # another connection sees them before anything else happens
    assert [r["key"] for r in stored] == [n.key for n in messages]
    assert [r["body"] for r in stored] == [n.to_dict() for n in messages]
    assert {(r["status"], r["site"], r["route"], r["receiver"], r["attempts"]) for r in stored} == {
        ("pending", "s", "noc", "hook", 0)}
    assert [r["group_key"] for r in stored] == ['[["branch","b1"]]', '[["branch","b2"]]', '[["branch","b1"]]']
    assert stored[0]["created"] == T0


async def test_a_restart_resumes_what_is_pending_in_order_and_each_groups_latest(db_url: str,
                                                                                 tmp_path: Path) -> None:
    b1 = [note(i) for i in range(4)]
    b2 = [note(10 + i, branch="b2") for i in range(2)]
    probe = note(99, status="test")
    async with opened(db_url, tmp_path / "spool") as outbox:
        await outbox.put([b1[0], b2[0], b1[1], b1[2], b2[1], b1[3], probe])
        await outbox.mark_sent(b1[0].key, T0)
        await outbox.mark_sent(b2[0].key, T0)
        await outbox.mark_retry(b1[1].key, 3, T0 + timedelta(minutes=1), "HTTP 503")
        await outbox.mark_sent(b2[1].key, T0)
    async with opened(db_url, tmp_path / "spool") as outbox:
        waiting = await outbox.pending("hook", 100)
        assert [p.key for p in waiting] == [b1[1].key, b1[2].key, b1[3].key, probe.key]
        assert (waiting[0].attempts, waiting[0].next_attempt, waiting[0].last_error) == (
            3, T0 + timedelta(minutes=1), "HTTP 503")
        assert await outbox.due("hook", T0, 10) == []  # the head waits: nothing passes it
        assert len(await outbox.due("hook", T0 + timedelta(minutes=1), 10)) == 4
        latest = await outbox.latest_per_group()
        assert latest == {("noc", (("branch", "b1"),)): b1[3], ("noc", (("branch", "b2"),)): b2[1]}
        assert outbox.stats().queued == 4 and outbox.stats().oldest == b1[1].created


async def test_a_summary_is_stored_and_survives_a_restart(db_url: str, tmp_path: Path) -> None:
    older = [note(i, devices=(f"d{i}",), resolved=(f"d{i - 1}",) if i else ()) for i in range(3)]
    newest = note(3, devices=("d3",), resolved=("d2",))
    async with opened(db_url, tmp_path / "spool") as outbox:
        await outbox.put([*older, newest])
        await outbox.summarise([n.key for n in older], summarise(older, newest))
    stored = await rows(db_url)
    assert [r["status"] for r in stored] == ["summarised"] * 3 + ["pending"]
    assert stored[0]["last_error"] == f"summarised into {newest.key}"
    async with opened(db_url, tmp_path / "spool") as outbox:
        (only,) = await outbox.pending("hook", 10)
        assert only.notification == summarise(older, newest)
        assert [a.device for a in only.notification.resolved] == ["d0", "d1", "d2"]


async def test_hostile_receiver_errors_are_stored_cleaned_and_bounded(db_url: str, tmp_path: Path,
                                                                      server: RecordingServer) -> None:
    """A 500 then a 400 whose bodies carry ANSI escapes, CR/LF, a bell, markup and 5,000 more
    characters: last_error keeps the text as data, with no control character, at most 300."""
    server.status, server.body = 500, HOSTILE.encode()
    server.on_request = lambda _r: setattr(server, "status", 400)
    async with opened(db_url, tmp_path / "spool") as outbox:
        delivery = Delivery(outbox, {"hook": HttpReceiver("hook", server.url)}, backoff=Backoff(first=0.05))
        await outbox.put([note(0)])
        await delivery.start()
        try:
            await until(lambda: outbox.stats().failed == 1)
        finally:
            await delivery.stop()
    (row,) = await rows(db_url)
    assert row["status"] == "failed" and row["attempts"] == 2
    error = row["last_error"]
    assert error.startswith("HTTP 400: \ufffd[31mred\ufffd[0m\ufffd\ufffdX-Injected: 1\ufffd"
                            "<script>alert(1)</script> *_~ [bold]x[/] \ufffdyyy")
    assert first_unsafe(error) is None and len(error) == ERROR_MAX and error.endswith("\u2026")


async def test_retention_deletes_old_delivered_rows_but_never_a_groups_newest_or_a_pending_one(
        db_url: str, tmp_path: Path) -> None:
    """Maintenance: sent and summarised rows older than 7 days go, failed ones after 30 days;
    each (route, group)'s newest row stays whatever its age, and pending rows always."""
    now = T0
    old, ancient = now - timedelta(days=8), now - timedelta(days=31)
    store = HistoryStore(db_url)
    await store.open()
    outbox = SqlOutbox(store.db, tmp_path / "spool", site="s")
    await outbox.open()
    try:
        sent_old = note(1, created=old)
        failed_old, failed_ancient = note(2, created=old), note(3, created=ancient)
        pending_ancient = note(4, created=ancient, receiver="other")
        newest_b2 = note(5, branch="b2", created=ancient)  # its group's only row: kept
        sent_new = note(6, created=now - timedelta(days=1))
        await outbox.put([sent_old, failed_old, failed_ancient, pending_ancient, newest_b2, sent_new])
        for n in (sent_old, newest_b2, sent_new):
            await outbox.mark_sent(n.key, n.created)
        for n in (failed_old, failed_ancient):
            await outbox.mark_failed(n.key, "HTTP 404")
        report = await Maintenance(store).run_once(now)
    finally:
        await outbox.close()
        await store.close()
    assert report.deleted_notifications == 2
    assert [r["key"] for r in await rows(db_url)] == [
        failed_old.key, pending_ancient.key, newest_b2.key, sent_new.key]


async def test_a_locked_sqlite_database_spools_delivery_goes_on_and_replay_keeps_statuses(
        tmp_path: Path, server: RecordingServer) -> None:
    """Another process holds SQLite's write lock: puts and marks go to the spool, the receiver
    gets every message once; the lock released, the spool is replayed: all sent, none again."""
    path = tmp_path / "history.db"
    url = database_url(str(path))
    async with opened(url, tmp_path / "spool", busy_timeout=0.2, retry_s=0.2, db_timeout=3.0) as outbox:
        delivery = Delivery(outbox, {"hook": HttpReceiver("hook", server.url)})
        await delivery.start()
        try:
            await outbox.put([note(0)])
            await until(lambda: server.delivered() == [note(0).key] and outbox.stats().queued == 0)
            holder = sqlite3.connect(path, isolation_level=None)
            holder.execute("BEGIN EXCLUSIVE")
            try:
                await outbox.put([note(1), note(2)])
                assert outbox.failing is not None and outbox.stats().spooled >= 2
                await until(lambda: len(server.delivered()) == 3 and outbox.stats().queued == 0)
                await outbox.put([note(3)])
                await until(lambda: len(server.delivered()) == 4)
            finally:
                holder.execute("ROLLBACK")
                holder.close()
            await until(lambda: outbox.stats().spooled == 0 and outbox.failing is None)
            await outbox.put([note(4)])
            await until(lambda: len(server.delivered()) == 5)
        finally:
            await delivery.stop()
    assert server.delivered() == [note(i).key for i in range(5)]
    stored = await rows(url)
    assert [(r["key"], r["status"]) for r in stored] == [(note(i).key, "sent") for i in range(5)]
    assert list((tmp_path / "spool").glob("*.outbox")) == []


@pytest.mark.alone  # measures how long a put takes with the server gone
async def test_postgresql_down_spools_delivery_goes_on_and_a_restart_replays_keeping_statuses(
        private_pg: PrivateCluster, tmp_path: Path, server: RecordingServer) -> None:  # noqa: F811
    """The server is killed: puts return (spooled, fsync'd), the receiver still gets them; then
    the receiver fails too, and wardtui stops with the database still down. The database back, a
    new start replays the spool: what was sent is stored as sent and not sent again, what was
    waiting (with its attempts) is delivered, once; nothing is lost or doubled."""
    spool = tmp_path / "spool"
    url = private_pg.url
    async with opened(url, spool, retry_s=0.2, db_timeout=3.0) as outbox:
        delivery = Delivery(outbox, {"hook": HttpReceiver("hook", server.url)}, backoff=Backoff(first=0.05))
        await delivery.start()
        try:
            await outbox.put([note(0), note(1)])
            await until(lambda: len(server.delivered()) == 2 and outbox.stats().queued == 0)
            private_pg.kill()
            started = time.monotonic()
            await outbox.put([note(2), note(3)])
            assert time.monotonic() - started < 5 and outbox.stats().spooled >= 2
            await until(lambda: len(server.delivered()) == 4 and outbox.stats().queued == 0)
            server.status = 503
            await outbox.put([note(4), note(5)])
            await until(lambda: any(r.key == note(4).key for r in server.requests))
        finally:
            await delivery.stop()
        assert outbox.failing is not None
    assert server.delivered() == [note(i).key for i in range(4)]
    private_pg.start()
    server.status = 200
    async with opened(url, spool) as outbox:
        assert [p.key for p in await outbox.pending("hook", 10)] == [note(4).key, note(5).key]
        assert (await outbox.pending("hook", 1))[0].attempts >= 1
        delivery = Delivery(outbox, {"hook": HttpReceiver("hook", server.url)})
        await delivery.start()
        try:
            await until(lambda: outbox.stats().queued == 0)
        finally:
            await delivery.stop()
    assert server.delivered() == [note(i).key for i in range(6)]
    stored = await rows(url)
    assert [(r["key"], r["status"]) for r in stored] == [(note(i).key, "sent") for i in range(6)]
    assert list(spool.glob("*.outbox")) == []


async def test_a_torn_last_spool_record_is_ignored_and_the_rest_replayed(tmp_path: Path) -> None:
    """What a SIGKILL in the middle of an append leaves: the whole records before it are
    replayed at the next start, the torn one is cut, nothing else is lost."""
    path = tmp_path / "history.db"
    url = database_url(str(path))
    spool = tmp_path / "spool"
    async with opened(url, spool, busy_timeout=0.2, retry_s=60, db_timeout=2.0) as outbox:
        holder = sqlite3.connect(path, isolation_level=None)
        holder.execute("BEGIN EXCLUSIVE")
        try:
            await outbox.put([note(0), note(1)])
            await outbox.mark_sent(note(0).key, T0 + timedelta(seconds=5))
            assert outbox.stats().spooled == 3  # two puts and a sent
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        (segment,) = spool.glob("*.outbox")
        with segment.open("ab") as f:
            f.write(b'{"k":"n","site":"s","body":{"key":"torn')
        outbox.spool.close()  # type: ignore[union-attr]  # as a SIGKILL would leave it: nothing more written
        outbox.spool = None
    async with opened(url, spool) as outbox:
        assert [p.key for p in await outbox.pending("hook", 10)] == [note(1).key]
        await outbox.put([note(2)])
    stored = await rows(url)
    assert [(r["key"], r["status"]) for r in stored] == [
        (note(0).key, "sent"), (note(1).key, "pending"), (note(2).key, "pending")]
    assert stored[0]["sent_at"] == datetime(2026, 12, 6, 8, 0, 5, tzinfo=UTC)
    assert list(spool.glob("*.outbox")) == []


@pytest.mark.alone  # measures how long puts take
async def test_a_hung_postgresql_costs_one_put_db_timeout_and_the_next_ones_nothing(
        private_pg: PrivateCluster, tmp_path: Path, server: RecordingServer) -> None:  # noqa: F811
    """The server stops answering (SIGSTOP, connections open): the first put gives up on it
    after ``db_timeout`` and spools, later ones spool at once; delivery goes on. The server
    back, the write that hung may still commit, and the replay beside it changes nothing."""
    pids = [int((private_pg.data / "postmaster.pid").read_text().split()[0])]
    async with opened(private_pg.url, tmp_path / "spool", retry_s=0.3, db_timeout=2.0) as outbox:
        delivery = Delivery(outbox, {"hook": HttpReceiver("hook", server.url)})
        await delivery.start()
        try:
            await outbox.put([note(0)])
            await until(lambda: outbox.stats().queued == 0)
            children = subprocess.run(["pgrep", "-P", str(pids[0])], capture_output=True, text=True).stdout
            pids += [int(pid) for pid in children.split()]
            for pid in pids:
                os.kill(pid, signal.SIGSTOP)
            try:
                started = time.monotonic()
                await outbox.put([note(1)])
                first = time.monotonic() - started
                started = time.monotonic()
                await outbox.put([note(2)])
                second = time.monotonic() - started
                await until(lambda: len(server.delivered()) == 3 and outbox.stats().queued == 0)
            finally:
                for pid in pids:
                    os.kill(pid, signal.SIGCONT)
            assert 1.9 < first < 4 and second < 1.0, (first, second)
            await until(lambda: outbox.stats().spooled == 0 and outbox.failing is None, timeout=20)
        finally:
            await delivery.stop()
    assert server.delivered() == [note(i).key for i in range(3)]
    assert [(r["key"], r["status"]) for r in await rows(private_pg.url)] == [
        (note(i).key, "sent") for i in range(3)]


async def test_database_and_spool_disk_both_full_keeps_changes_in_memory_then_writes_them_first(
        tmp_path: Path, small_disk: Path, server: RecordingServer) -> None:  # noqa: F811
    """SQLite locked and the spool on a 64 KiB tmpfs that fills up: what neither takes waits in
    memory (notify_unsaved), delivery goes on; the lock released, the spool is replayed and then
    what waited in memory: every row once, in order, with its status."""
    path = tmp_path / "history.db"
    url = database_url(str(path))
    big = tuple(f"atm-{i:04d}" for i in range(120))  # ~12 KiB a message
    messages = [note(i, devices=big) for i in range(10)]
    async with opened(url, small_disk / "spool", busy_timeout=0.2, retry_s=0.3, db_timeout=3.0) as outbox:
        delivery = Delivery(outbox, {"hook": HttpReceiver("hook", server.url)})
        await delivery.start()
        try:
            holder = sqlite3.connect(path, isolation_level=None)
            holder.execute("BEGIN EXCLUSIVE")
            try:
                for n in messages:
                    await outbox.put([n])
                await until(lambda: outbox.stats().queued == 0)
                assert outbox.stats().unsaved > 0 and outbox.stats().spooled > 0
                assert delivery.gauges()["notify_unsaved"] == outbox.stats().unsaved
            finally:
                holder.execute("ROLLBACK")
                holder.close()
            await until(lambda: outbox.stats().unsaved == 0 and outbox.stats().spooled == 0, timeout=20)
        finally:
            await delivery.stop()
    assert server.delivered() == [n.key for n in messages]
    assert [(r["key"], r["status"]) for r in await rows(url)] == [(n.key, "sent") for n in messages]


async def test_changes_made_side_by_side_share_a_transaction_each_committed_when_it_returns(
        db_url: str, tmp_path: Path) -> None:
    """20 sends marked at once (20 receivers, or groups sent side by side, answering together):
    the first mark has its transaction, the 19 that waited for it go together in the next (not
    19 more, one after the other); each returns only once its row is committed (another
    connection sees it)."""
    messages = [note(i, branch=f"b{i}") for i in range(20)]
    commits: list[object] = []

    def committed(conn: object) -> None:
        commits.append(conn)

    async with opened(db_url, tmp_path / "spool") as outbox:
        await outbox.put(messages)
        seen: list[set[str]] = []

        async def mark(n: Notification) -> None:
            await outbox.mark_sent(n.key, T0)
            seen.append({r["key"] for r in await rows(db_url) if r["status"] == "sent"})
            assert n.key in seen[-1]

        event.listen(Engine, "commit", committed)
        try:
            await asyncio.gather(*(mark(n) for n in messages))
        finally:
            event.remove(Engine, "commit", committed)
    assert len(seen) == 20
    assert len(commits) == 2, len(commits)
    assert [r["status"] for r in await rows(db_url)] == ["sent"] * 20
