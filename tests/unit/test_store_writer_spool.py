"""StoreWriter with a real on-disk spool and a fake database that goes away and comes back."""

from __future__ import annotations

from pathlib import Path

from poller.bus import EventBus
from poller.events import State
from store.spool import Spool
from store.writer import StoreWriter
from tests.unit.test_store_writer import FakeStore, check, transition, wait_for


def writer_for(store: FakeStore, bus: EventBus, spool: Spool, **kw: float) -> StoreWriter:
    options = {"flush_interval": 0.02, "batch_size": 100, "retry_delay": 0.02,
               "max_retry_delay": 0.05, "spool_after": 0.1, "stop_attempts": 1}
    options.update(kw)
    return StoreWriter(store, bus.subscribe("store"), spool=spool, **options)  # type: ignore[arg-type]


async def test_rows_go_to_the_spool_while_the_database_is_down_and_come_back_in_order(
        tmp_path: Path) -> None:
    bus, store = EventBus(), FakeStore()
    spool = Spool(tmp_path / "spool")
    writer = writer_for(store, bus, spool)
    store.fail = 10**9  # down
    writer.start()
    sent_transitions = [transition(i, State.DOWN if i % 2 else State.UP) for i in range(40)]
    for i in range(400):
        bus.publish(check(i))
        if i % 10 == 0:
            bus.publish(sent_transitions[i // 10])
    await wait_for(lambda: spool.rows >= 440, timeout=5)
    assert list(tmp_path.joinpath("spool").glob("*.spool"))  # on disk, not only in memory
    assert writer.gauges()["store_failing"] == 1.0
    assert writer.gauges()["store_spool_rows"] >= 440
    # While the spool holds older rows, newer ones follow them there: order is kept.
    for i in range(400, 450):
        bus.publish(check(i))
    store.fail = 0  # back
    await wait_for(lambda: len(store.checks) == 450 and spool.empty, timeout=5)
    await writer.stop()
    assert store.transitions == sent_transitions
    assert sorted(c.at for c in store.checks) == [check(i).at for i in range(450)]
    assert writer.dropped_samples == 0 and writer.lost_at_stop == 0
    assert writer.replayed_rows >= 440
    assert not list(tmp_path.joinpath("spool").glob("*.spool"))


async def test_a_stop_with_the_database_down_keeps_everything_for_the_next_start(tmp_path: Path) -> None:
    bus, store = EventBus(), FakeStore()
    store.fail = 10**9
    spool = Spool(tmp_path / "spool")
    writer = writer_for(store, bus, spool, spool_after=60)  # still in memory when the stop comes
    writer.start()
    for i in range(30):
        bus.publish(check(i))
    bus.publish(transition(1))
    await writer.stop()
    assert writer.lost_at_stop == 0 and writer.dropped_samples == 0
    assert spool.rows == 31
    spool.close()

    # The next run: a healthy database gets the spooled rows before anything new.
    bus2, store2 = EventBus(), FakeStore()
    spool2 = Spool(tmp_path / "spool")
    writer2 = writer_for(store2, bus2, spool2)
    writer2.start()
    bus2.publish(transition(2))
    await wait_for(lambda: len(store2.transitions) == 2 and len(store2.checks) == 30)
    await writer2.stop()
    assert store2.transitions == [transition(1), transition(2)]
    assert spool2.empty


async def test_past_the_spool_cap_checks_are_dropped_and_counted_but_transitions_kept(
        tmp_path: Path) -> None:
    bus, store = EventBus(), FakeStore()
    store.fail = 10**9
    spool = Spool(tmp_path / "spool", max_bytes=20_000)  # room for ~140 checks
    writer = writer_for(store, bus, spool)
    writer.start()
    for i in range(1000):
        bus.publish(check(i))
    for i in range(50):
        bus.publish(transition(i))
    await wait_for(lambda: spool.rows >= 50 and writer.queue_depth == spool.rows, timeout=5)
    await writer.stop()
    dropped = writer.gauges()["store_samples_dropped"]
    assert 800 < dropped < 1000
    store.fail = 0
    spool.close()
    spool = Spool(tmp_path / "spool")
    replay = StoreWriter(store, EventBus().subscribe("store"), spool=spool)
    await replay.stop()  # never started: replays and writes inline
    assert store.transitions == [transition(i) for i in range(50)]
    assert len(store.checks) == 1000 - dropped
