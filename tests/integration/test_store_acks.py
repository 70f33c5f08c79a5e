"""Acknowledgements in the history database (store/acks.py), on SQLite and PostgreSQL: an
acknowledgement takes the device's open outage and ends with it (a later outage of the device
is not acknowledged), a device that is unknown or up is refused, removal is kept on record, and
the availability report's outage list says who acknowledged what, with the note."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from poller.events import State, Transition
from store.acks import Acknowledgements, AckRefused
from store.history import HistoryStore
from store.report import Period, availability

NOW = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2)  # recent: the history keeps it
M = timedelta(minutes=1)
HOSTILE = "[bold]x[/] \x1b[31mred\x1b[0m\nsecond line <script>alert(1)</script> *_~ 'quote\" é"
U, D, R = State.UP, State.DOWN, State.UNREACHABLE


@pytest.fixture
async def store(db_url: str) -> AsyncIterator[HistoryStore]:
    async with HistoryStore(db_url) as history:
        # rtr: up, then down since NOW; cam: unreachable since NOW; pc: known, up.
        await history.write_transitions([
            Transition("rtr", "127.0.0.1", State.UNKNOWN, U, NOW - 10 * M, None, 1.0),
            Transition("pc", "127.0.0.3", State.UNKNOWN, U, NOW - 10 * M, None, 1.0),
            Transition("cam", "127.0.0.2", State.UNKNOWN, U, NOW - 10 * M, None, 1.0),
            Transition("rtr", "127.0.0.1", U, D, NOW + 10 * 1 * timedelta(seconds=1), NOW, None),
            Transition("cam", "127.0.0.2", U, R, NOW + 20 * timedelta(seconds=1), NOW, None)])
        try:
            yield history
        finally:
            await history.close()


async def test_an_ack_takes_the_open_outage_and_ends_when_the_device_recovers(store: HistoryStore) -> None:
    acks = Acknowledgements(store.db)
    [outage] = [o for o in await store.outages(device="rtr") if o.end is None]
    ack, state = await acks.add("rtr", HOSTILE, "alice", NOW + 5 * M)
    assert state == "down" and ack.id > 0
    assert ack.down_since == outage.start and ack.down_since.utcoffset() == timedelta(0)
    assert (ack.device, ack.note, ack.who, ack.at) == ("rtr", HOSTILE, "alice", NOW + 5 * M)
    assert ack.open and await acks.get(ack.id) == ack
    assert [a.id for a in await acks.in_force()] == [ack.id]

    await store.write_transitions([Transition("rtr", "127.0.0.1", D, U, NOW + 30 * M, None, 1.0)])
    assert await acks.in_force() == []  # recovered: nothing to update, the outage says it
    [ended] = await acks.all()
    assert ended.recovered_at == NOW + 30 * M and not ended.open and ended.cleared_at is None

    await store.write_transitions([Transition("rtr", "127.0.0.1", U, D, NOW + 50 * M, NOW + 49 * M, None)])
    assert await acks.in_force() == []  # a new outage of the same device is not acknowledged
    again, _ = await acks.add("rtr", "second", "bob", NOW + 51 * M)
    assert again.down_since == NOW + 49 * M
    assert [(a.id, a.who) for a in await acks.in_force()] == [(again.id, "bob")]


async def test_unknown_or_up_devices_are_refused_and_unreachable_is_said(store: HistoryStore) -> None:
    acks = Acknowledgements(store.db)
    with pytest.raises(AckRefused, match="not in the history"):
        await acks.add("nosuch", "x", "alice", NOW)
    with pytest.raises(AckRefused, match="not DOWN or UNREACHABLE"):
        await acks.add("pc", "x", "alice", NOW)
    ack, state = await acks.add("cam", "behind rtr", "alice", NOW)
    assert state == "unreachable" and ack.down_since == NOW
    assert await acks.all() == [ack]  # nothing stored for the refusals
    with pytest.raises(ValueError, match="timezone-aware"):
        await acks.add("cam", "x", "alice", NOW.replace(tzinfo=None))


async def test_remove_clears_and_keeps_the_record(store: HistoryStore) -> None:
    acks = Acknowledgements(store.db)
    first, _ = await acks.add("rtr", "first", "alice", NOW + M)
    second, _ = await acks.add("cam", "second", "alice", NOW + M)
    removed = await acks.remove(first.id, NOW + 2 * M, "bob")
    assert removed is not None and removed.cleared_at == NOW + 2 * M
    assert removed.cleared_why == "removed by bob" and not removed.open
    assert await acks.remove(first.id, NOW + 3 * M, "bob") is None  # already removed
    assert await acks.remove(999, NOW + 3 * M, "bob") is None
    assert [a.id for a in await acks.in_force()] == [second.id]
    assert [a.id for a in await acks.all()] == [first.id, second.id]
    assert set(await acks.of_outages()) == {("cam", NOW)}  # a removed one is not shown in reports


async def test_the_report_outage_list_says_who_acknowledged_it(store: HistoryStore) -> None:
    acks = Acknowledgements(store.db)
    await acks.add("rtr", HOSTILE, "alice", NOW + M)
    await store.write_transitions([Transition("rtr", "127.0.0.1", D, U, NOW + 30 * M, None, 1.0)])
    report = await availability(store, Period(NOW - 20 * M, NOW + 60 * M), now=NOW + 60 * M)
    by_device = {o.device: o for o in report.outages}
    assert (by_device["rtr"].acked_by, by_device["rtr"].ack_note) == ("alice", HOSTILE)
    assert by_device["rtr"].end == NOW + 30 * M
    assert (by_device["cam"].acked_by, by_device["cam"].ack_note) == (None, None)
