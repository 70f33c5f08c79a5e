"""SNMP rows through the spool and the writer, with a fake database: round trips, weights, caps,
ordering, refused rows and the memory bound."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path

from sqlalchemy.exc import IntegrityError

from poller.bus import EventBus
from poller.events import InterfaceChange, InterfaceStat, Reboot, SnmpAgentChange, SnmpPoll
from store.spool import Spool
from store.spool_records import SnmpEventIn
from store.writer import StoreWriter
from tests.unit.test_store_writer import T0, FakeStore, check, transition, wait_for


def iface(ifindex: int, rate: float | None = 1.5) -> InterfaceStat:
    return InterfaceStat(ifindex, f"ge-{ifindex}", "alias é", "up", "lowerLayerDown", 10**10, rate, None,
                         2**40, None, 0, 1, ifindex % 2 == 0)


def poll(i: int, interfaces: int = 3) -> SnmpPoll:
    return SnmpPoll(f"d{i % 5}", "10.0.0.1", T0 + timedelta(seconds=i), "sys", "descr\nline 2",
                    "1.3.6.1.4.1.9", 12.25 * i, tuple(iface(k) for k in range(1, interfaces + 1)))


EVENTS: list[SnmpEventIn] = [
    Reboot("d1", "10.0.0.1", T0, 3.0, 500.0, T0 - timedelta(seconds=3)),
    InterfaceChange("d1", "10.0.0.1", T0, 4, "ge-4", "up", "down"),
    SnmpAgentChange("d2", "10.0.0.2", T0, False, "authentication"),
]


class SnmpFakeStore(FakeStore):
    def __init__(self) -> None:
        super().__init__()
        self.poll_batches: list[list[SnmpPoll]] = []
        self.events: list[SnmpEventIn] = []
        self.refuse_events: list[SnmpEventIn] = []
        self.refuse_polls = False

    async def write_snmp_polls(self, polls: Sequence[SnmpPoll]) -> None:
        await self._maybe_fail()
        if self.refuse_polls:
            raise IntegrityError("INSERT ...", None, Exception("constraint"))
        self.poll_batches.append(list(polls))

    async def write_snmp_events(self, events: Sequence[SnmpEventIn]) -> None:
        await self._maybe_fail()
        if any(e in self.refuse_events for e in events):
            raise IntegrityError("INSERT ...", None, Exception("constraint"))
        self.events.extend(events)

    @property
    def polls(self) -> list[SnmpPoll]:
        return [p for batch in self.poll_batches for p in batch]


def test_the_spool_keeps_polls_and_events_exactly_and_weighs_polls_by_interface(tmp_path: Path) -> None:
    polls = [poll(i, interfaces=i % 4) for i in range(10)]
    with Spool(tmp_path / "spool") as spool:
        assert spool.append([transition(1)], [check(1)], polls, EVENTS) == 0
        assert spool.rows == 1 + 1 + 10 + 3
        batches = list(spool.batches(max_rows=6))
    assert [e for b in batches for e in b.events] == EVENTS
    assert [p for b in batches for p in b.polls] == polls  # every field, the enums' strings, 2**40
    assert [t for b in batches for t in b.transitions] == [transition(1)]
    # A batch holds at most 6 rows, a poll weighing its interfaces plus one (but at least one record).
    weights = [len(b.transitions) + len(b.checks) + len(b.events)
               + sum(1 + len(p.interfaces) for p in b.polls) for b in batches]
    assert max(weights) <= 6 and sum(weights) == 1 + 1 + 3 + sum(1 + len(p.interfaces) for p in polls)


def test_past_the_cap_polls_are_dropped_and_counted_and_events_never(tmp_path: Path) -> None:
    with Spool(tmp_path / "spool", max_bytes=3000) as spool:
        dropped = spool.append([], [], [poll(i) for i in range(20)], EVENTS)
        assert dropped > 0 and spool.dropped_polls == dropped and spool.dropped_checks == 0
        assert spool.append([], [], [poll(99)], EVENTS) == 1  # full: only the events go in
        batches = list(spool.batches())
    assert sum(len(b.events) for b in batches) == 2 * len(EVENTS)
    assert sum(len(b.polls) for b in batches) == 20 - dropped


async def test_polls_are_batched_by_rows_and_events_written_promptly() -> None:
    bus, store = EventBus(), SnmpFakeStore()
    writer = StoreWriter(store, bus.subscribe("store"), flush_interval=60, batch_size=10)
    writer.start()
    for i in range(7):
        bus.publish(poll(i, interfaces=3))  # 4 rows each: two polls fit in a batch of 10
    for event in EVENTS:
        bus.publish(event)
    await wait_for(lambda: store.events == EVENTS)  # not waiting for the 60 s flush
    await wait_for(lambda: len(store.polls) >= 6)
    await writer.stop()
    assert [len(b) for b in store.poll_batches] == [2, 2, 2, 1]  # 8 rows, 8, 8, then the rest
    assert store.polls == [poll(i, interfaces=3) for i in range(7)]
    assert writer.written_polls == 7 and writer.written_snmp_events == 3 and writer.queue_depth == 0


async def test_refused_rows_cost_only_themselves() -> None:
    bus, store = EventBus(), SnmpFakeStore()
    store.refuse_events = [EVENTS[1]]
    writer = StoreWriter(store, bus.subscribe("store"), flush_interval=0.01)
    writer.start()
    for event in EVENTS:
        bus.publish(event)
    await wait_for(lambda: len(store.events) == 2)
    assert store.events == [EVENTS[0], EVENTS[2]] and writer.dropped == 1
    store.refuse_polls = True
    bus.publish(poll(1))
    await wait_for(lambda: writer.dropped_polls == 1)
    assert writer.gauges()["store_snmp_dropped"] == 1 and writer.dropped_samples == 2
    await writer.stop()


async def test_without_a_spool_the_oldest_polls_past_the_bound_are_dropped() -> None:
    bus, store = EventBus(), SnmpFakeStore()
    store.fail = 10**9
    writer = StoreWriter(store, bus.subscribe("store"), flush_interval=0.01, batch_size=10,
                         max_pending=40, retry_delay=10, stop_attempts=1)
    writer.start()
    for i in range(25):
        bus.publish(poll(i, interfaces=3))  # 100 rows, 40 kept
    for event in EVENTS:
        bus.publish(event)
    await wait_for(lambda: len(writer.subscription) == 0)
    assert writer.dropped_polls == 15 and writer.gauges()["store_snmp_pending"] == 10 + 3
    await writer.stop()
    assert writer.lost_at_stop == 10 + 3  # the events were never dropped until the stop gave up
