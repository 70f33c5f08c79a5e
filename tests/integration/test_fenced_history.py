"""store/fenced_history.py on a real PostgreSQL: a cluster member's transitions are written only
under epochs still current; a stale shard's transitions are dropped and counted while the rest
of the batch is written, and the member is told which shard and epoch were refused."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from poller.events import State, Transition
from store.fenced_history import FencedHistory
from store.fencing import Fencing
from store.history import HistoryStore
from store.spool_records import FencedTransition
from tests.integration.postgres import pg_url  # noqa: F401

T0 = datetime(2026, 12, 6, 10, 0, tzinfo=UTC)
SHARD = {"a": 1, "b": 2, "c": 3}  # device -> shard


def _told(into: list[Any]) -> Callable[[Mapping[int, int]], list[int]]:
    """An ``on_refused`` that keeps what it is told and stands down from all of it."""
    def told(stale: Mapping[int, int]) -> list[int]:
        into.append(stale)
        return list(stale)
    return told


@pytest.fixture
async def store(pg_url: str) -> AsyncIterator[HistoryStore]:  # noqa: F811
    history = HistoryStore(pg_url)
    await history.open()
    try:
        yield history
    finally:
        await history.close()


def down(device: str, seconds: float) -> Transition:
    at = T0 + timedelta(seconds=seconds)
    return Transition(device, "127.0.0.1", State.UP, State.DOWN, at, at, None)


async def test_a_stale_shard_is_refused_alone_and_the_member_told(store: HistoryStore) -> None:
    mine, theirs = Fencing(store.db, "hq"), Fencing(store.db, "hq")
    epochs = {1: await mine.take(1, "me"), 2: await mine.take(2, "me")}
    refused: list[Mapping[int, int]] = []

    def epoch_of(t: Transition) -> tuple[int, int] | None:
        shard = SHARD[t.device]
        return (shard, epochs[shard]) if shard in epochs else None

    sink = FencedHistory(store, mine, epoch_of, _told(refused))
    await sink.write_transitions([down("a", 0), down("b", 0)])
    assert {o.device for o in await store.outages()} == {"a", "b"}

    await theirs.take(2, "another poller")  # b's shard taken over under this member
    await sink.write_transitions([down("a", 10), down("b", 10), down("c", 10)])
    assert refused == [{2: epochs[2]}]
    assert mine.refused_writes == 1 and sink.refused_transitions == 1
    assert sink.unfenced_transitions == 1  # c: no epoch known (shard 3 never taken here)
    written = [(t.device, t.at) for t in await store.transitions()]
    assert written == [("a", T0), ("b", T0), ("a", T0 + timedelta(seconds=10))]

    # The same shard under two epochs in one batch (lost and taken again): the older one is
    # refused without asking the database, the newer written.
    old = epochs[1]
    epochs[1] = await mine.take(1, "me")
    rows = [down("a", 20), down("a", 30)]
    tenure = {rows[0].at: old, rows[1].at: epochs[1]}
    sink.epoch_of = lambda t: (SHARD[t.device], tenure[t.at])
    await sink.write_transitions(rows)
    assert sink.refused_transitions == 2 and mine.refused_writes == 1
    assert [t.at for t in await store.transitions("a")][-1] == rows[1].at
    assert rows[0].at not in [t.at for t in await store.transitions("a")]


async def test_a_refused_write_of_a_tenure_already_over_is_no_error(
        store: HistoryStore, caplog: pytest.LogCaptureFixture) -> None:
    """A shard given back for the balance while its transitions waited, and taken since by
    another member: the member stands down from nothing (it does not hold it), so the refusal is
    said at INFO, not as an error an operator must act on."""
    mine, theirs = Fencing(store.db, "hq"), Fencing(store.db, "hq")
    epoch = await mine.take(2, "me")
    told: list[Mapping[int, int]] = []

    def nothing_held(stale: Mapping[int, int]) -> list[int]:
        told.append(stale)
        return []

    sink = FencedHistory(store, mine, lambda t: (SHARD[t.device], epoch), nothing_held)
    await theirs.take(2, "another poller")
    with caplog.at_level(logging.INFO, logger="store.fenced_history"):
        await sink.write_transitions([down("b", 0)])
    assert told == [{2: epoch}] and sink.refused_transitions == 1
    assert [r.levelno for r in caplog.records] == [logging.INFO], caplog.text
    assert "1 transitions of shards 2 not written" in caplog.text
    assert await store.transitions() == []


async def test_a_spooled_transition_is_written_by_the_next_run_under_the_epoch_it_was_stamped_with(
        store: HistoryStore, tmp_path: object) -> None:
    """A member restarted while its transitions waited in the spool: the new run knows no
    tenure of the old one (epoch_of gives None), but each spooled transition carries the epoch
    it was observed under. Nobody took the shard since: written. Somebody did: refused and
    counted, as a late write of the old run would be. (They were all dropped as unfenced.)"""
    from pathlib import Path

    from store.spool import Spool

    old_run = Fencing(store.db, "hq")
    epochs = {1: await old_run.take(1, "me"), 2: await old_run.take(2, "me")}
    spool_dir = Path(str(tmp_path)) / "spool"
    with Spool(spool_dir) as spool:  # the old run: the database was down, they were spooled
        spool.append([FencedTransition(t.device, t.address, t.from_state, t.to_state, t.at, t.down_since,
                                       t.rtt_ms, (SHARD[t.device], epochs[SHARD[t.device]]))
                      for t in (down("a", 0), down("b", 0))], [])
    await Fencing(store.db, "hq").take(2, "another poller")  # b's shard taken over meanwhile
    with Spool(spool_dir) as spool:  # the next run
        replayed = [t for batch in spool.batches() for t in batch.transitions]
    assert [t.epoch for t in replayed if isinstance(t, FencedTransition)] == [(1, epochs[1]), (2, epochs[2])]
    refused: list[Mapping[int, int]] = []
    sink = FencedHistory(store, Fencing(store.db, "hq"), lambda t: None, _told(refused))
    await sink.write_transitions(replayed)
    assert [(t.device, t.at) for t in await store.transitions()] == [("a", T0)]
    assert sink.unfenced_transitions == 0 and sink.refused_transitions == 1 and refused == [{2: epochs[2]}]
