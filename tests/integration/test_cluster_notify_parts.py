"""The parts of a cluster's notifier on the real PostgreSQL (docs/CLUSTER.md, "The notifier
lease"): the tail of committed transitions reads a row that commits after a higher id was read
(a gap), gives up a gap whose transaction rolled back; the fenced outbox refuses the writes of a
holder whose notifier epoch was taken over (dropped, counted, told), and the new holder finds
what the old one put."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import insert, select

from poller.events import State
from store.database import Database
from store.fenced_outbox import FencedOutbox
from store.fencing import NOTIFIER_SHARD, Fenced, Fencing
from store.models import notification_outbox_table, transitions_table
from store.site_transitions import CommittedTransitions
from tests.integration.notify_http import note as message
from tests.integration.postgres import pg_url  # noqa: F401  (the fixture)

T0 = datetime(2026, 12, 6, 9, 0, tzinfo=UTC)


@pytest.fixture
async def db(pg_url: str) -> AsyncIterator[Database]:  # noqa: F811
    database = Database(pg_url)
    await database.open()
    try:
        yield database
    finally:
        await database.close()


def row(device_id: int, to: str, seconds: int) -> dict[str, object]:
    return {"device_id": device_id, "from_state": "up" if to == "down" else "down", "to_state": to,
            "at": T0 + timedelta(seconds=seconds), "down_since": None, "rtt_ms": None}


async def test_a_transition_committed_after_a_higher_id_was_read_is_still_read_once(db: Database) -> None:
    ids = await db.ensure_ids([("a", "127.0.0.1"), ("b", "127.0.0.2")])
    async with db.engine.begin() as conn:
        await conn.execute(insert(transitions_table), [row(ids["a"], "down", 0)])
    tail = CommittedTransitions(db)
    await tail.start()
    assert await tail.read() == []  # what was committed before the start is the state's
    async with db.engine.connect() as slow:
        late = await slow.begin()
        await slow.execute(insert(transitions_table), [row(ids["a"], "up", 10)])  # a lower id...
        async with db.engine.begin() as conn:
            await conn.execute(insert(transitions_table), [row(ids["b"], "down", 11)])  # ...commits later
        first = await tail.read()
        assert [(t.device, t.to_state) for t in first] == [("b", State.DOWN)]
        assert len(tail.gaps) == 1
        await late.commit()
    second = await tail.read()
    assert [(t.device, t.to_state, t.at) for t in second] == [("a", State.UP, T0 + timedelta(seconds=10))]
    assert tail.gaps == {} and await tail.read() == []
    assert tail.stats.filled == 1 and tail.stats.read == 2


async def test_a_gap_whose_transaction_rolled_back_is_given_up_after_the_timeout(db: Database) -> None:
    ids = await db.ensure_ids([("a", "127.0.0.1")])
    now = [0.0]
    tail = CommittedTransitions(db, gap_timeout=60.0, clock=lambda: now[0])
    await tail.start()
    async with db.engine.connect() as conn:
        tx = await conn.begin()
        await conn.execute(insert(transitions_table), [row(ids["a"], "down", 0)])
        await tx.rollback()  # its id is used, never committed
    async with db.engine.begin() as conn:
        await conn.execute(insert(transitions_table), [row(ids["a"], "down", 1)])
    assert [t.at for t in await tail.read()] == [T0 + timedelta(seconds=1)]
    assert len(tail.gaps) == 1
    now[0] = 30.0
    await tail.read()
    assert len(tail.gaps) == 1
    now[0] = 61.0
    assert await tail.read() == []
    assert tail.gaps == {} and tail.stats.expired == 1


async def test_a_holder_whose_notifier_epoch_was_taken_over_cannot_write_the_outbox(
        db: Database, tmp_path: Path) -> None:
    fencing = Fencing(db, "s")
    old_epoch = await fencing.take(NOTIFIER_SHARD, "old")
    refusals: list[Fenced] = []
    old = FencedOutbox(db, tmp_path / "old", fencing, old_epoch, refusals.append, site="s")
    await old.open()
    try:
        await old.put([message(1)])
        new_epoch = await fencing.take(NOTIFIER_SHARD, "new")  # another member took the lease
        assert new_epoch == old_epoch + 1
        await old.put([message(2)])
        await old.mark_sent(message(1).key, T0)
        assert len(refusals) == 1 and old.refused == 2  # told once; the next change not even tried
        assert refusals[0].shard == NOTIFIER_SHARD and refusals[0].current == new_epoch
        assert old.spool is not None and old.spool.empty  # refused is not "database down"
        assert await old.due("hook", T0 + timedelta(days=1), 10) == []  # a stale holder sends nothing
        assert await old.pending("hook", 10) == []
    finally:
        await old.close()
    async with db.engine.connect() as conn:
        rows = (await conn.execute(select(notification_outbox_table.c.key, notification_outbox_table.c.status)
                                   .order_by(notification_outbox_table.c.id))).all()
    assert [(r.key, r.status) for r in rows] == [(message(1).key, "pending")]
    new = FencedOutbox(db, tmp_path / "new", fencing, new_epoch, refusals.append, site="s")
    await new.open()
    try:
        assert [p.key for p in await new.pending("hook", 10)] == [message(1).key]
        await new.mark_sent(message(1).key, T0)  # the new holder's writes go through
        assert len(refusals) == 1
    finally:
        await new.close()
