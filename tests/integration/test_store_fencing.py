"""Fencing epochs (store/fencing.py) on the real PostgreSQL: takes raise the epoch, concurrent
takers get distinct epochs, a take and a fenced write never interleave (real connections, the
waits seen in pg_stat_activity), a stale batch of transitions is refused whole, a poller that
slept through a takeover is refused and counted, and one paused inside its transaction (a real
process under SIGSTOP) cannot hold a takeover back for longer than the idle limit."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncConnection

from poller.events import State, Transition
from store.checks import write_transitions_on
from store.database import Database
from store.fencing import Fenced, Fencing
from store.models import outages_table, transitions_table

REPO = Path(__file__).resolve().parents[2]
SITE = "bank"
T0 = datetime(2026, 12, 6, 9, 0, tzinfo=UTC)


@pytest.fixture
async def db(pg_url: str) -> AsyncIterator[Database]:
    database = Database(pg_url)
    await database.open()
    try:
        yield database
    finally:
        await database.close()


@pytest.fixture
async def other(pg_url: str) -> AsyncIterator[Database]:
    """A second poller's connection pool on the same database."""
    database = Database(pg_url)
    await database.open()
    try:
        yield database
    finally:
        await database.close()


def burst(prefix: str, n: int, start: float = 0.0, rtt: float | None = None) -> list[Transition]:
    """``n`` devices ``prefix-i`` going DOWN (each opens an outage), then the first half UP again."""
    down = [Transition(f"{prefix}-{i}", "127.0.0.1", State.UP, State.DOWN, T0 + timedelta(seconds=start + i),
                       None, rtt) for i in range(n)]
    up = [Transition(t.device, t.address, State.DOWN, State.UP, t.at + timedelta(seconds=n), t.at, rtt)
          for t in down[: n // 2]]
    return down + up


async def write(fencing: Fencing, epochs: dict[int, int], transitions: Sequence[Transition]) -> None:
    """A fenced write of ``transitions`` with the store's own code, as the wiring will do it."""
    db = fencing.db
    ids = await db.ensure_ids((t.device, t.address) for t in transitions)
    async with fencing.fenced(epochs) as conn:
        await write_transitions_on(db, conn, ids, transitions)


async def rows_of(db: Database, prefix: str) -> tuple[int, int]:
    """Transitions and outages of the devices named ``prefix-*``."""
    async with db.engine.connect() as conn:
        names = select(func.count()).select_from(transitions_table.join(
            db.table("devices"), db.table("devices").c.id == transitions_table.c.device_id)).where(
            db.table("devices").c.name.like(f"{prefix}-%"))
        outages = select(func.count()).select_from(outages_table.join(
            db.table("devices"), db.table("devices").c.id == outages_table.c.device_id)).where(
            db.table("devices").c.name.like(f"{prefix}-%"))
        return int((await conn.execute(names)).scalar_one()), int((await conn.execute(outages)).scalar_one())


async def lock_waiters(db: Database) -> list[str]:
    """The statements of this database's sessions now waiting for a lock."""
    async with db.engine.connect() as conn:
        rows = await conn.execute(text(
            "SELECT query FROM pg_stat_activity WHERE datname = current_database() "
            "AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()"))
        return [r.query for r in rows]


async def until(check: Callable[[], Awaitable[bool]], what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.02)


# -- takes ------------------------------------------------------------------------------------


async def test_take_raises_the_epoch_by_one_per_shard_and_site_and_records_the_owner(db: Database) -> None:
    fencing, elsewhere = Fencing(db, SITE), Fencing(db, "other-site")
    assert await fencing.take(0, "a:1") == 1
    assert await fencing.take(0, "b:2") == 2
    assert await fencing.take(0, "a:1") == 3
    assert await fencing.take(7, "b:2") == 1
    assert await elsewhere.take(0, "c:3") == 1  # another site's shard 0 is another shard
    rows = await fencing.epochs()
    assert [(r.site, r.shard, r.epoch, r.owner) for r in rows] == [(SITE, 0, 3, "a:1"), (SITE, 7, 1, "b:2")]
    assert all(r.taken_at.tzinfo is not None for r in rows)
    assert abs(rows[0].taken_at - datetime.now(UTC)) < timedelta(minutes=1)  # the server's clock
    assert fencing.takeovers == 4 and fencing.gauges()["cluster_takeovers"] == 4.0
    assert [r.epoch for r in await fencing.epochs([7])] == [1]


async def test_concurrent_takers_get_distinct_epochs(db: Database, other: Database) -> None:
    takers = [Fencing(db, SITE), Fencing(other, SITE)]
    for shard in (0, 1):  # 0: nobody took it yet (racing INSERTs); 1: taken before (racing UPDATEs)
        if shard == 1:
            await takers[0].take(1, "first")
        got = await asyncio.gather(*(takers[i % 2].take(shard, f"p{i}") for i in range(12)))
        base = 0 if shard == 0 else 1
        assert sorted(got) == list(range(base + 1, base + 13)), got
        (row,) = await takers[0].epochs([shard])
        assert row.epoch == base + 12


async def test_two_first_takes_racing_on_the_insert_get_1_and_2(db: Database, other: Database) -> None:
    first, second = Fencing(db, SITE), Fencing(other, SITE)
    async with db.engine.begin() as conn:
        assert await first.take_on(conn, 5, "first") == 1  # inserted, not committed
        racing = asyncio.create_task(second.take(5, "second"))
        await until(lambda: _waiting(db, "shard_epochs"), "the second take to wait on the first's insert")
        assert not racing.done()
    assert await racing == 2


async def _waiting(db: Database, table: str) -> bool:
    return any(table in q for q in await lock_waiters(db))


# -- a take and a fenced write never interleave -------------------------------------------------


async def test_a_take_waits_for_a_fenced_write_in_flight_then_sees_all_of_it(
        db: Database, other: Database) -> None:
    # (An idle limit longer than this test holds its transaction open on purpose.)
    owner, taker = Fencing(db, SITE, idle_limit=60), Fencing(other, SITE)
    epoch = await owner.take(0, "a")
    batch = burst("w", 200)
    ids = await db.ensure_ids((t.device, t.address) for t in batch)
    take: asyncio.Task[int] | None = None
    async with owner.fenced({0: epoch}) as conn:
        await write_transitions_on(db, conn, ids, batch)
        take = asyncio.create_task(taker.take(0, "b"))
        await until(lambda: _waiting(other, "shard_epochs"), "the take to wait for the write's lock")
        await asyncio.sleep(0.2)
        assert not take.done()  # still waiting while the write's transaction is open
        assert await rows_of(other, "w") == (0, 0)  # nothing committed yet
    assert await take == epoch + 1
    assert await rows_of(other, "w") == (300, 200)  # committed before the new epoch existed
    with pytest.raises(Fenced):  # and the old epoch writes no more
        await write(owner, {0: epoch}, burst("late", 4))
    assert await rows_of(other, "late") == (0, 0)


async def test_a_write_meeting_a_take_in_progress_waits_then_is_refused(
        db: Database, other: Database) -> None:
    owner, taker = Fencing(db, SITE), Fencing(other, SITE)
    epoch = await owner.take(0, "a")
    async with other.engine.begin() as conn:
        assert await taker.take_on(conn, 0, "b") == epoch + 1  # the take's row lock, not committed
        writing = asyncio.create_task(write(owner, {0: epoch}, burst("w", 50)))
        await until(lambda: _waiting(other, "shard_epochs"), "the write's check-in to wait for the take")
        await asyncio.sleep(0.2)
        assert not writing.done()
    with pytest.raises(Fenced) as refused:
        await writing
    # READ COMMITTED read the row again once the take committed: the new epoch, and its owner.
    assert (refused.value.shard, refused.value.held, refused.value.current, refused.value.owner) == \
        (0, epoch, epoch + 1, "b")
    assert await rows_of(other, "w") == (0, 0)
    assert owner.refused_writes == 1 and owner.refused_by_shard[0] == 1


async def test_writers_of_one_epoch_do_not_wait_for_each_other(db: Database, other: Database) -> None:
    first, second = Fencing(db, SITE, idle_limit=60), Fencing(other, SITE)
    epoch = await first.take(0, "a")
    async with first.fenced({0: epoch}) as conn:
        await conn.execute(text("SELECT 1"))
        # A second transaction of the same epoch checks in while the first holds its share.
        await asyncio.wait_for(write(second, {0: epoch}, burst("w", 10)), timeout=5)
    assert await rows_of(db, "w") == (15, 10)


async def test_the_idle_limit_holds_for_the_fenced_transaction_only(db: Database) -> None:
    """It is set LOCAL: the pooled connection goes back to the server's setting after a commit
    and after a refusal, so the writes of a single poller are not cut short."""
    fencing = Fencing(db, SITE, idle_limit=1.5)
    epoch = await fencing.take(0, "a")
    async with db.engine.connect() as held:
        @contextlib.asynccontextmanager
        async def begin() -> AsyncIterator[AsyncConnection]:
            async with held.begin():
                yield held

        async def setting() -> str:
            return str((await held.execute(text("SHOW idle_in_transaction_session_timeout"))).scalar())

        before = await setting()
        await held.commit()
        async with fencing.fenced({0: epoch}, begin=begin) as conn:
            assert await setting() == "1500ms"
            await write_transitions_on(db, conn, await db.ensure_ids([("i-0", "127.0.0.1")]),
                                       burst("i", 1))
        assert await setting() == before == "0"
        await held.commit()
        with pytest.raises(Fenced):
            async with fencing.fenced({0: epoch + 1}, begin=begin):
                pass
        assert await setting() == "0"
    assert await rows_of(db, "i") == (1, 1)


async def test_under_racing_takes_no_write_of_an_old_epoch_commits_after_the_new_one(
        db: Database, other: Database) -> None:
    """Two pollers take the shard from each other at random while both write as fast as they can,
    each with the epoch it last took (a poller that lost the shard writes on until refused). Each
    take counts, in its own transaction, the rows every older epoch wrote: none may appear later.
    A row's epoch is its ``rtt_ms`` (a tag for this test)."""
    pollers = {"a": Fencing(db, SITE), "b": Fencing(other, SITE)}
    held: dict[str, int] = {"a": await pollers["a"].take(0, "a")}
    seen: dict[int, dict[int, int]] = {}  # epoch taken -> {older epoch: its rows at the take}
    committed: dict[str, int] = {"a": 0, "b": 0}
    stop = asyncio.Event()
    rng = random.Random(16)
    counter = iter(range(10**9))

    async def writer(name: str) -> None:
        fencing = pollers[name]
        ids = await fencing.db.ensure_ids((f"{name}-{i}", "127.0.0.1") for i in range(20))
        while not stop.is_set():
            epoch = held.get(name)
            if epoch is None:
                await asyncio.sleep(0.005)
                continue
            batch = [Transition(f"{name}-{i}", "127.0.0.1", State.UNKNOWN, State.UP,
                                T0 + timedelta(seconds=next(counter)), None, float(epoch))
                     for i in range(rng.randint(1, 20))]
            try:
                async with fencing.fenced({0: epoch}) as conn:
                    await write_transitions_on(fencing.db, conn, ids, batch)
                committed[name] += 1
            except Fenced:
                if held.get(name) == epoch:
                    del held[name]  # it stands down until it takes the shard again
            await asyncio.sleep(rng.random() * 0.004)

    async def taker() -> None:
        for i in range(30):
            name = "b" if i % 2 == 0 else "a"
            database = pollers[name].db
            async with database.engine.begin() as conn:
                epoch = await pollers[name].take_on(conn, 0, name)
                counts = await conn.execute(text(
                    "SELECT rtt_ms::bigint AS epoch, count(*) FROM transitions GROUP BY 1"))
                seen[epoch] = {int(e): int(n) for e, n in counts}
            held[name] = epoch
            await asyncio.sleep(0.01 + rng.random() * 0.05)
        stop.set()

    await asyncio.wait_for(asyncio.gather(taker(), writer("a"), writer("b")), timeout=120)
    async with db.engine.connect() as conn:
        final = {int(e): int(n) for e, n in await conn.execute(text(
            "SELECT rtt_ms::bigint, count(*) FROM transitions GROUP BY 1"))}
    late = {(taken, older): (before.get(older, 0), final.get(older, 0))
            for taken, before in seen.items() for older in set(before) | set(final)
            if older < taken and before.get(older, 0) != final.get(older, 0)}
    assert late == {}, f"writes of an old epoch committed after a newer take: {late}"
    assert all(e in seen or e == 1 for e in final)  # every row carries an epoch that was taken
    refused = pollers["a"].refused_writes + pollers["b"].refused_writes
    assert committed["a"] > 5 and committed["b"] > 5 and refused > 5, (committed, refused)


# -- stale writers ----------------------------------------------------------------------------


async def test_a_stale_batch_of_transitions_is_refused_whole(db: Database, other: Database) -> None:
    old, new = Fencing(db, SITE), Fencing(other, SITE)
    held = await old.take(3, "poller-a")
    await write(old, {3: held}, burst("before", 10))  # its epoch is current: written
    taken = await new.take(3, "poller-b")
    with pytest.raises(Fenced) as refused:
        await write(old, {3: held}, burst("stale", 400))
    assert (refused.value.shard, refused.value.held, refused.value.current, refused.value.owner) == \
        (3, held, taken, "poller-b")
    assert "stands down" in str(refused.value) and "'poller-b'" in str(refused.value)
    assert await rows_of(db, "stale") == (0, 0)  # no transition, no outage of the batch
    assert await rows_of(db, "before") == (15, 10)
    await write(new, {3: taken}, burst("after", 10))  # the new owner writes
    assert await rows_of(db, "after") == (15, 10)


async def test_a_batch_over_several_shards_is_refused_if_one_is_stale(db: Database, other: Database) -> None:
    old, new = Fencing(db, SITE), Fencing(other, SITE)
    epochs = {shard: await old.take(shard, "a") for shard in (0, 1, 2)}
    await new.take(1, "b")
    await new.take(2, "b")
    with pytest.raises(Fenced) as refused:
        await write(old, epochs, burst("mixed", 30))
    assert refused.value.shard == 1 and refused.value.shards == (1, 2)
    assert await rows_of(db, "mixed") == (0, 0)  # shard 0's part is not written either
    assert old.refused_writes == 1 and dict(old.refused_by_shard) == {1: 1, 2: 1}
    await write(old, {0: epochs[0]}, burst("kept", 4))  # shard 0 alone is still its own
    assert await rows_of(db, "kept") == (6, 4)


async def test_a_shard_never_taken_refuses_every_write(db: Database) -> None:
    fencing = Fencing(db, SITE)
    with pytest.raises(Fenced, match="never taken") as refused:
        await write(fencing, {9: 1}, burst("x", 2))
    assert refused.value.current is None and refused.value.owner is None
    with pytest.raises(ValueError, match="names the shards"):
        async with fencing.fenced({}):
            pass


async def test_a_poller_that_slept_through_a_takeover_is_refused_and_counted(
        db: Database, other: Database) -> None:
    sleeper, awake = Fencing(db, SITE), Fencing(other, SITE)
    epoch = await sleeper.take(0, "sleeper")
    await write(sleeper, {0: epoch}, burst("s", 4))
    assert sleeper.gauges()["cluster_refused_writes"] == 0.0
    await awake.take(0, "awake")  # meanwhile (its lease expired), another poller took the shard
    for n in (1, 2):  # every late write is refused, and each is counted
        with pytest.raises(Fenced):
            await write(sleeper, {0: epoch}, burst(f"late{n}", 4))
        assert sleeper.refused_writes == n and sleeper.gauges()["cluster_refused_writes"] == float(n)
    assert await rows_of(db, "late1") == (0, 0) and await rows_of(db, "late2") == (0, 0)
    assert awake.refused_writes == 0


@pytest.mark.alone  # measures how long the takeover waits for the paused writer
async def test_a_poller_paused_inside_its_transaction_cannot_stall_the_takeover(
        pg_url: str, db: Database, tmp_path: Path) -> None:
    """A real process checks in, writes its batch, then is stopped (SIGSTOP) before it commits,
    holding the shard's row. The takeover waits only for the idle limit (the server ends the
    paused session); the paused batch is never committed; continued, the process's commit fails
    and its retry is refused."""
    limit = 1.0
    fencing = Fencing(db, SITE)
    epoch = await fencing.take(0, "paused")
    child = subprocess.Popen(
        [sys.executable, "-m", "tests.integration.fencing_child", pg_url, SITE, "0", str(epoch), str(limit)],
        cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None
        ready = child.stdout.readline().strip()
        assert ready == "in-transaction", child.stderr.read() if child.stderr else ""
        child.send_signal(signal.SIGSTOP)
        started = time.monotonic()
        assert await asyncio.wait_for(fencing.take(0, "taker"), timeout=limit * 10) == epoch + 1
        waited = time.monotonic() - started
        assert limit * 0.5 < waited < limit * 5, waited  # it waited for the paused writer, not for ever
        assert await rows_of(db, "paused") == (0, 0)
        child.send_signal(signal.SIGCONT)
        out, err = child.communicate(timeout=60)
    finally:
        if child.poll() is None:
            child.send_signal(signal.SIGCONT)
            child.kill()
            child.wait()
    report = json.loads(out.strip().splitlines()[-1])
    assert report["commit"] == "failed", (report, err)  # its session was ended: nothing committed
    assert report["retry"] == "fenced" and report["current"] == epoch + 1 and report["refused"] == 1, report
    assert await rows_of(db, "paused") == (0, 0)
