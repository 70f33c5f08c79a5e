"""Each outage's cause on both engines (``db_url``): UNREACHABLE or DOWN at its start, the time an
unreachable one became down, written twice as once; revision 0007 on a history from before it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import insert, select
from sqlalchemy.engine import Connection

from poller.events import State, Transition
from store import HistoryStore, schema
from store.models import devices_table, outages_table
from tests.integration.test_store_migrations import on

T0 = datetime(2026, 12, 6, 3, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def move(device: str, old: State, new: State, when: float, since: float | None) -> Transition:
    return Transition(device, "127.0.0.1", old, new, at(when), None if since is None else at(since), None)


async def test_causes_and_the_time_an_unreachable_outage_became_down(db_url: str) -> None:
    burst = [move("rtr", State.UP, State.DOWN, 10, 8), move("atm", State.UP, State.UNREACHABLE, 12, 9),
             move("cam", State.UP, State.UNREACHABLE, 12, 9)]
    later = [move("rtr", State.DOWN, State.UP, 60, 8), move("cam", State.UNREACHABLE, State.UP, 61, 9),
             move("atm", State.UNREACHABLE, State.DOWN, 75, 9)]
    async with HistoryStore(db_url) as store:
        await store.write_transitions(burst)
        assert await store.open_outages(unreachable=True) == {"atm": at(9), "cam": at(9)}
        for _ in range(2):  # a replayed spool writes them again: nothing changes
            await store.write_transitions(later)
        outages = {o.device: o for o in await store.outages()}
        shown = {name: (o.cause, o.end, o.down_from) for name, o in outages.items()}
        assert shown == {"rtr": ("down", at(60), None), "cam": ("unreachable", at(61), None),
                         "atm": ("unreachable", None, at(75))}
        assert await store.open_outages() == {"atm": at(9)}
        assert await store.open_outages(unreachable=True) == {}  # down now: seeded DOWN at a start
        await store.write_transitions([move("atm", State.DOWN, State.UP, 90, 9)])
        atm = next(o for o in await store.outages("atm"))
        assert atm.end == at(90) and atm.unreachable_until(at(999)) == at(75)
        assert outages["cam"].unreachable_until(at(999)) == at(61)
        assert outages["rtr"].unreachable_until(at(999)) is None


async def test_an_up_whose_unreachable_outage_never_reached_the_database_records_it(db_url: str) -> None:
    async with HistoryStore(db_url) as store:
        await store.write_transitions([move("pos", State.UNKNOWN, State.UP, 1, None)])
        await store.write_transitions([move("pos", State.UNREACHABLE, State.UP, 50, 20)])
        (pos,) = await store.outages("pos")
        assert (pos.start, pos.end, pos.cause) == (at(20), at(50), "unreachable")


async def test_revision_0007_makes_every_earlier_outage_a_down_one_and_goes_back(db_url: str) -> None:
    await schema.upgrade(db_url, "0006")

    def history(conn: Connection) -> None:
        conn.execute(insert(devices_table), [{"id": 1, "name": "r1", "address": "10.0.0.1",
                                              "first_seen": T0}])
        conn.execute(insert(outages_table), [{"device_id": 1, "start": at(0), "end": at(30)},
                                             {"device_id": 1, "start": at(40), "end": None}])

    await on(db_url, history)
    assert (await schema.upgrade(db_url)).at_head
    o = outages_table.c
    rows = await on(db_url, lambda c: sorted(c.execute(select(o.start, o.end, o.cause, o.down_from)).all()))
    assert [(r.cause, r.down_from) for r in rows] == [("down", None), ("down", None)]
    assert await on(db_url, schema.differences) == []
    assert (await schema.downgrade(db_url, "0006")).current == ("0006",)
    back = await on(db_url, lambda c: sorted(c.execute(select(o.start, o.end)).all()))
    assert [(r.start, r.end) for r in back] == [(r.start, r.end) for r in rows]
    assert (await schema.upgrade(db_url)).at_head
