"""StoreWriter with a real on-disk spool and a fake database that goes away and comes back."""

from __future__ import annotations

import errno
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import pytest

from poller.bus import EventBus
from poller.events import CheckResult, State
from store.spool import Spool
from store.writer import StoreWriter
from tests.unit.test_store_writer import FakeStore, check, locked, transition, wait_for


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


async def test_a_damaged_record_is_set_aside_and_the_rest_replayed_before_new_rows(
        tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool")
    spool.append([transition(1)], [check(i) for i in range(5)])
    spool.append([], [check(i) for i in range(5, 10)])
    segment = next((tmp_path / "spool").glob("*.spool"))
    lines = segment.read_bytes().splitlines(keepends=True)
    lines[3] = b"{not json\n"  # a damaged record in the middle: check 2
    segment.write_bytes(b"".join(lines))
    spool.close()
    spool = Spool(tmp_path / "spool")
    bus, store = EventBus(), FakeStore()
    writer = writer_for(store, bus, spool)
    writer.start()
    for i in range(100, 110):
        bus.publish(check(i))
    bus.publish(transition(2))
    await wait_for(lambda: len([c for c in store.checks if c.at >= check(100).at]) == 10)
    await writer.stop()
    assert store.transitions == [transition(1), transition(2)]
    assert store.checks == [check(i) for i in (0, 1, *range(3, 10), *range(100, 110))]
    assert spool.empty and writer.gauges()["store_spool_damaged"] == 1
    assert [p.name for p in (tmp_path / "spool").glob("*.damaged-*")] == [f"{segment.name}.damaged-"
                                                                         f"{sum(map(len, lines[:3]))}"]


async def test_replay_goes_on_when_its_progress_cannot_be_saved(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No room for the offset sidecar: the spool is still replayed once, in order, and used."""
    spool = Spool(tmp_path / "spool")
    spool.append([transition(1)], [check(i) for i in range(5)])

    def full(_seq: int, _offset: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(spool, "_save_offset", full)
    bus, store = EventBus(), FakeStore()
    writer = writer_for(store, bus, spool, batch_size=2)
    writer.start()
    await wait_for(lambda: len(store.checks) == 5)
    bus.publish(check(50))
    await wait_for(lambda: len(store.checks) == 6)
    await writer.stop()
    assert store.transitions == [transition(1)]
    assert store.checks == [*(check(i) for i in range(5)), check(50)]
    assert spool.progress_error == "No space left on device" and spool.empty


async def test_rows_never_pass_older_rows_that_wait_in_a_full_spool(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The spool holds an outage's start; its disk fills up while the database is still down:
    the newer rows wait in memory, and when the database returns the spool goes in first
    (written ahead, they made a replayed DOWN close an outage late)."""
    spool = Spool(tmp_path / "spool")
    spool.append([transition(0)], [check(i) for i in range(5)])
    real_append = spool.append

    def full(*_rows: object) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(spool, "append", full)
    bus, store = EventBus(), FakeStore()
    store.fail = 10**9
    writer = writer_for(store, bus, spool)
    writer.start()
    for i in range(5, 10):
        bus.publish(check(i))
    bus.publish(transition(1))
    await wait_for(lambda: writer.spool_full is not None)
    assert writer.gauges()["store_spool_full"] == 1 and writer.gauges()["store_spool_rows"] == 6
    monkeypatch.setattr(spool, "append", real_append)  # room again (tried every SPOOL_RETRY_S)
    store.fail = 0
    await wait_for(lambda: len(store.checks) == 10, timeout=5)
    await writer.stop()
    assert store.transitions == [transition(0), transition(1)]
    assert store.checks == [check(i) for i in range(10)]


async def test_a_spool_that_cannot_be_written_bounds_memory_and_counts_what_a_stop_loses(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spool = Spool(tmp_path / "spool")

    def full(*_rows: object) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(spool, "append", full)
    bus, store = EventBus(), FakeStore()
    store.fail = 10**9
    writer = writer_for(store, bus, spool, max_pending=1000)
    writer.start()
    for i in range(3000):
        bus.publish(check(i))
    bus.publish(transition(1))
    await wait_for(lambda: writer.dropped >= 2000, timeout=5)
    assert writer.gauges()["store_spool_full"] == 1  # history at risk, on the screen
    await writer.stop()
    assert writer.lost_at_stop == 1001  # 1,000 checks and the transition, counted, not "kept"
    assert writer.dropped_samples == 3001


async def test_a_replayed_batch_whose_checks_failed_does_not_write_its_transitions_twice(
        tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool")
    spool.append([transition(1), transition(2)], [check(i) for i in range(5)])
    store = FakeStore()
    calls = {"checks": 0}
    real = store.write_checks

    async def flaky(results: Sequence[CheckResult]) -> None:
        calls["checks"] += 1
        if calls["checks"] == 1:
            raise locked()
        await real(results)

    store.write_checks = flaky  # type: ignore[method-assign]
    bus = EventBus()
    writer = writer_for(store, bus, spool)
    writer.start()
    await wait_for(lambda: spool.empty and len(store.checks) == 5)
    await writer.stop()
    assert store.transitions == [transition(1), transition(2)]


async def test_a_refused_spooled_transition_costs_only_itself(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool")
    spool.append([transition(i) for i in range(5)], [])
    store = FakeStore()
    store.refuse = [transition(2)]
    writer = writer_for(store, EventBus(), spool)
    await writer.stop()  # never started: replays inline
    assert store.transitions == [transition(i) for i in (0, 1, 3, 4)]
    assert spool.empty


def test_spool_gauges_never_wait_for_a_worker_thread_holding_the_lock(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool")
    spool.append([transition(1)], [check(1)])
    held, release = threading.Event(), threading.Event()

    def slow_fsync() -> None:
        with spool._mutex:
            held.set()
            release.wait(5)

    worker = threading.Thread(target=slow_fsync)
    worker.start()
    held.wait(5)
    started = time.monotonic()
    assert (spool.rows, spool.empty) == (2, False) and spool.bytes > 0
    assert time.monotonic() - started < 0.5
    release.set()
    worker.join()


async def test_what_a_hung_database_keeps_from_a_stop_goes_to_the_spool(tmp_path: Path) -> None:
    """The database hangs (a write never returns) and the stop stops waiting: the rows the writer
    holds, in its lists and still in its subscription, go to the spool for the next start."""
    spool = Spool(tmp_path / "spool")
    bus, store = EventBus(), FakeStore()
    store.delay = 3600  # every write hangs
    writer = writer_for(store, bus, spool, spool_after=3600)
    task = writer.start()
    for i in range(20):
        bus.publish(check(i))
    bus.publish(transition(1))
    await wait_for(lambda: len(writer.subscription) == 0)
    for i in range(20, 25):
        bus.publish(check(i))  # not taken from the subscription yet
    task.cancel()  # what the stop does past its timeout
    assert writer.spool_what_is_left() == 0
    assert spool.rows == 26 and writer.lost_at_stop == 0
    spool.close()
    with Spool(tmp_path / "spool") as again:
        got = [row for batch in again.batches(100) for row in (*batch.transitions, *batch.checks)]
    assert got == [transition(1), *(check(i) for i in range(25))]


async def test_without_the_lease_nothing_is_written_rows_go_to_the_spool_then_to_the_database(
        tmp_path: Path) -> None:
    """``may_write`` False (another poller holds the database's lease, store/lease.py): the
    writer writes nothing, rows wait and then move to the spool as for a failing database; the
    lease back, the spool is written first, in order, and then what came after."""
    bus, store = EventBus(), FakeStore()
    spool = Spool(tmp_path / "spool")
    held = False
    writer = StoreWriter(store, bus.subscribe("store"), flush_interval=0.05, spool=spool,
                         spool_after=0.2, may_write=lambda: held)
    writer.start()
    bus.publish(transition(1))
    for i in range(10):
        bus.publish(check(i))
    await wait_for(lambda: spool.rows == 11)
    assert store.transitions == [] and store.checks == [] and store.batches == []
    assert writer.last_error is not None and "lease" in writer.last_error  # store_lease_lost says it
    held = True
    bus.publish(transition(2))
    await wait_for(lambda: len(store.transitions) == 2 and len(store.checks) == 10, timeout=5)
    assert [t.device for t in store.transitions] == ["d1", "d2"]
    await wait_for(lambda: spool.rows == 0)  # the replay's progress is saved after its writes
    await writer.stop()
    assert len(store.transitions) == 2 and len(store.checks) == 10
    spool.close()


async def test_a_stop_without_the_lease_spools_and_writes_nothing(tmp_path: Path) -> None:
    bus, store = EventBus(), FakeStore()
    spool = Spool(tmp_path / "spool")
    writer = StoreWriter(store, bus.subscribe("store"), flush_interval=60, spool=spool,
                         may_write=lambda: False)
    writer.start()
    bus.publish(transition(1))
    bus.publish(check(1))
    await writer.stop()
    assert store.transitions == [] and store.checks == []
    assert spool.rows == 2 and writer.lost_at_stop == 0
    spool.close()
